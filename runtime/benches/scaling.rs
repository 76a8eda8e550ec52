//! Scaling: how much a pool of instances buys for a CPU-bound tool, and
//! what a warm instance saves the first caller after a pool went idle.
//!
//! 1. 64 callers of `work` (the first-party server computes for a few
//!    milliseconds, one call at a time per process, like a single-threaded
//!    server) through `berth run` with 1, 2 and 4 instances: calls/s, p50,
//!    p99, and the speed-up over one instance.
//! 2. The first call after the pool has been idle past its idle timeout:
//!    with no warm instance (it scaled to zero, so the call waits for a
//!    launch and handshake) and with one warm instance kept.
//!
//! `cargo bench -p berth-runtime --bench scaling` (scripts/bench.sh sets the
//! paths). Environment: BERTH_BIN, BERTH_TESTSERVER, BENCH_CALLS (calls per
//! row, default 3000), BENCH_WORK_MS (default 2).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Caller, Modern, measure, start_berth};
use serde_json::json;

const CALLERS: usize = 64;
const INSTANCES: [usize; 3] = [1, 2, 4];
/// First calls measured per warm-pool setting.
const FIRST_CALLS: usize = 8;

#[tokio::main]
async fn main() {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let berth = std::env::var("BERTH_BIN").unwrap_or_else(|_| format!("{target}/release/berth"));
    let server = std::env::var("BERTH_TESTSERVER").unwrap_or_else(|_| format!("{target}/release/berth-testserver"));
    let calls: usize = std::env::var("BENCH_CALLS").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    let work_ms: u64 = std::env::var("BENCH_WORK_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    println!(
        "tools/call work ({work_ms} ms of CPU, one at a time per process), {CALLERS} callers, {calls} calls per row, {cores} cores\n"
    );
    println!("| instances |  calls/s |   p50 ms |   p99 ms | speed-up | efficiency |");
    println!("|-----------|----------|----------|----------|----------|------------|");
    let mut one = None;
    for n in INSTANCES {
        let n_text = n.to_string();
        // Every instance up before measuring (min = max = n); target 1 spreads calls.
        let flags = ["--min-instances", &n_text, "--max-instances", &n_text, "--target-concurrency", "1"];
        let (_berth, url) = start_berth(&berth, &flags, &server).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut callers = Vec::new();
        for _ in 0..CALLERS {
            callers.push(Arc::new(Modern::tool(&url, "work", json!({"ms": work_ms})).await));
        }
        let s = measure(callers, calls).await;
        let base = *one.get_or_insert(s.per_sec);
        let speedup = s.per_sec / base;
        println!(
            "| {n:>9} | {:>8.0} | {:>8.2} | {:>8.2} | {:>7.2}x | {:>9.0}% |",
            s.per_sec,
            s.p50_us / 1e3,
            s.p99_us / 1e3,
            speedup,
            100.0 * speedup / n as f64
        );
    }

    println!("\nfirst call after the pool was idle past its idle timeout (1 s), {FIRST_CALLS} times each\n");
    println!("| warm instances | p50 ms | max ms |");
    println!("|----------------|--------|--------|");
    let mut p50s = Vec::new();
    for warm in ["0", "1"] {
        let flags = ["--min-instances", "0", "--idle-timeout", "1s", "--warm", warm];
        let (_berth, url) = start_berth(&berth, &flags, &server).await;
        let caller = Modern::tool(&url, "echo", json!({"text": "first"})).await;
        let mut lat = Vec::new();
        for _ in 0..FIRST_CALLS {
            // Idle timeout, the next autoscaler decision, and the stop.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let t = Instant::now();
            caller.call().await;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        lat.sort_by(f64::total_cmp);
        let p50 = lat[lat.len() / 2];
        println!("| {warm:>14} | {p50:>6.2} | {:>6.2} |", lat[lat.len() - 1]);
        p50s.push(p50);
    }
    println!("\na warm instance makes the first call {:.1}x faster (p50)", p50s[0] / p50s[1]);
}
