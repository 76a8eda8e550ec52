//! Cold start and idle memory per sandbox backend: time from launch to the
//! first JSON-RPC response (an `initialize` round trip) of the first-party
//! test server, p50/p99 over 50 launches, and the resident memory of an idle
//! instance, beside a plain fork/exec (the `none` backend) in the same run.
//!
//! The WASI backend runs the first-party wasip2 server instead
//! (`BERTH_WASI_SERVER`, built by `scripts/bench.sh`), with its compiled code
//! already cached: once as a berth that has launched it before (compiled
//! code in memory: instantiation only) and once as a freshly started berth
//! (compiled code loaded from the disk cache on every launch).
//!
//! `scripts/bench.sh` runs it; `BERTH_TESTSERVER` names the server binary.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_sandbox::container::ContainerSandbox;
use berth_sandbox::native::NativeSandbox;
use berth_sandbox::process::ProcessSandbox;
use berth_sandbox::wasi::{WasiConfig, WasiSandbox};
use berth_sandbox::{Sandbox, SandboxSpec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const LAUNCHES: usize = 50;
const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}"#;

fn main() {
    // The native backend runs this very executable as its init.
    berth_sandbox::native::run_init_if_requested();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let server = std::env::var("BERTH_TESTSERVER").unwrap_or_else(|_| format!("{target}/release/berth-testserver"));
    let spec = SandboxSpec::command(server.clone(), Vec::<String>::new());
    let mut backends: Vec<(&str, Arc<dyn Sandbox>, SandboxSpec)> =
        vec![("fork/exec (none)", Arc::new(ProcessSandbox), spec.clone())];
    // Sandboxes to make forget their in-memory compiled code before each launch.
    let mut cold: Vec<(&str, WasiSandbox)> = Vec::new();
    let wasm = std::env::var("BERTH_WASI_SERVER")
        .unwrap_or_else(|_| format!("{target}/wasm32-wasip2/wasm/berth-wasi-echo.wasm"));
    match wasi_sandbox(&target, &wasm).await {
        Ok(wasi) => {
            let spec = SandboxSpec::wasm(&wasm, Vec::<String>::new());
            backends.push(("wasi (code in mem)", Arc::new(wasi.clone()), spec.clone()));
            backends.push(("wasi (disk cache)", Arc::new(wasi.clone()), spec));
            cold.push(("wasi (disk cache)", wasi));
        }
        Err(e) => println!("wasi: skipped ({e})"),
    }
    match NativeSandbox::current_exe() {
        Ok(n) => backends.push(("native", Arc::new(n), spec.clone())),
        Err(e) => println!("native: skipped ({e})"),
    }
    match (ContainerSandbox::connect().await, import_image(&server)) {
        (Ok(c), Ok(image)) => {
            let mut spec = spec.clone();
            spec.image = Some(image);
            backends.push(("container", Arc::new(c), spec));
        }
        (Err(e), _) => println!("container: skipped ({e})"),
        (_, Err(e)) => println!("container: skipped ({e})"),
    }
    println!("cold start = launch → first JSON-RPC response; {LAUNCHES} launches each\n");
    println!("| backend            | p50 ms | p99 ms | idle RSS MiB | vs fork/exec p50 |");
    println!("|--------------------|--------|--------|--------------|------------------|");
    let mut baseline = None;
    for (name, sandbox, spec) in backends {
        let mut times = Vec::with_capacity(LAUNCHES);
        let mut rss = Vec::new();
        let forget = cold.iter().find(|(n, _)| *n == name).map(|(_, w)| w.clone());
        for i in 0..LAUNCHES {
            if let Some(w) = &forget {
                w.forget_loaded();
            }
            let start = Instant::now();
            let mut inst = sandbox.launch(&spec).await.expect("launch");
            inst.stdin.write_all(format!("{INIT}\n").as_bytes()).await.expect("write");
            let mut lines = BufReader::new(&mut inst.stdout).lines();
            let line = lines.next_line().await.expect("read").expect("a response");
            times.push(start.elapsed());
            assert!(line.contains("\"result\""), "{line}");
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some(pid) = inst.control.pid() {
                    rss.push(tree_rss_kib(pid));
                }
            }
            let _ = inst.control.kill().await;
            let _ = inst.control.wait().await;
        }
        times.sort();
        let ms = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)].as_secs_f64() * 1e3;
        let (p50, p99) = (ms(0.5), ms(0.99));
        let base = *baseline.get_or_insert(p50);
        // A container's processes belong to the engine; berth sees no pid.
        let mem = match rss.len() {
            0 => "n/a".to_owned(),
            n => format!("{:.1}", rss.iter().sum::<u64>() as f64 / n as f64 / 1024.0),
        };
        println!("| {name:<18} | {p50:>6.2} | {p99:>6.2} | {mem:>12} | {:>15.2}x |", p50 / base);
    }
}

/// A WASI sandbox whose disk cache already holds the compiled `wasm`.
async fn wasi_sandbox(target: &str, wasm: &str) -> Result<WasiSandbox, String> {
    let cache = Path::new(target).join("bench-wasm-cache");
    let wasi = WasiSandbox::new(WasiConfig::default().cache_dir(cache)).map_err(|e| e.to_string())?;
    wasi.prepare(Path::new(wasm)).await.map_err(|e| e.to_string())?;
    Ok(wasi)
}

/// Resident memory of a process and all its descendants, in KiB.
fn tree_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let own = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let children = Path::new("/proc").join(pid.to_string()).join("task").join(pid.to_string()).join("children");
    let kids: u64 = std::fs::read_to_string(children)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .map(tree_rss_kib)
        .sum();
    own + kids
}

/// Imports an image holding only `server` and the libraries it links.
fn import_image(server: &str) -> Result<String, String> {
    let image = "berth-testserver:bench".to_owned();
    let ldd = std::process::Command::new("ldd").arg(server).output().map_err(|e| e.to_string())?;
    let mut files: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(str::to_owned)
        .collect();
    files.push(server.to_owned());
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "set -e; d=$(mktemp -d); for f in {}; do cp --parents -L \"$f\" \"$d\"; done; \
             mkdir -p \"$d/tmp\"; chmod -R a+rX \"$d\"; tar -C \"$d\" -cf - . | docker import - {image} >/dev/null; rm -rf \"$d\"",
            files.join(" ")
        ))
        .status()
        .map_err(|e| e.to_string())?;
    status.success().then_some(image).ok_or_else(|| "docker import failed".into())
}
