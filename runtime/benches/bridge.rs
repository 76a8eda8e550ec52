//! Bridge overhead: tools/call latency and throughput of the first-party test
//! server (a) over a direct stdio pipe, (b) through berth (modern and legacy
//! clients), (c) through supergateway, at 1, 8 and 64 concurrent callers, all
//! measured in the same run on the same machine. Prints a table and the
//! ratios the protocol-core targets are stated in.
//!
//! Beside them, the floor any HTTP bridge stands on here: a separate process
//! on berth's own stack (tokio, hyper, axum) answering every POST with a
//! constant result: the loopback HTTP exchange alone, which any HTTP bridge
//! pays on top of the pipe.
//!
//! `cargo bench -p berth-runtime --bench bridge` (scripts/bench.sh sets the
//! paths). Environment: BERTH_BIN, BERTH_TESTSERVER, BERTH_SUPERGATEWAY
//! (omit to skip), BENCH_CALLS (calls per concurrency level, default 4000),
//! BENCH_LEVELS (concurrent callers per row, default `1,8,64`).

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{Caller, Http, Modern, Stats, measure, start_berth, start_http};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, oneshot};

type Pending = Arc<parking_lot::Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// Concurrent callers per row, unless BENCH_LEVELS lists others (`1,8`).
const LEVELS: [usize; 3] = [1, 8, 64];
const MESSAGE: &str = "benchmark payload ✓";

// ---- (a) direct stdio pipe ------------------------------------------------

struct Direct {
    stdin: Mutex<tokio::process::ChildStdin>,
    pending: Pending,
    next: AtomicU64,
}

impl Direct {
    async fn start(bin: &str) -> (Arc<Self>, Child) {
        let mut child = Command::new(bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn test server");
        let stdout = child.stdout.take().expect("stdout");
        let pending: Pending = Arc::default();
        let p = pending.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let v: Value = match serde_json::from_str(&line) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                if let Some(id) = v["id"].as_u64()
                    && let Some(tx) = p.lock().remove(&id)
                {
                    let _ = tx.send(v);
                }
            }
        });
        let me =
            Arc::new(Self { stdin: Mutex::new(child.stdin.take().expect("stdin")), pending, next: AtomicU64::new(1) });
        let init = json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}});
        me.request("initialize", init).await;
        me.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
        (me, child)
    }

    async fn send(&self, msg: Value) {
        let mut line = serde_json::to_vec(&msg).expect("json");
        line.push(b'\n');
        let mut w = self.stdin.lock().await;
        w.write_all(&line).await.expect("write");
        w.flush().await.expect("flush");
    }

    async fn request(&self, method: &str, params: Value) -> Value {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id, tx);
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await;
        rx.await.expect("response")
    }
}

impl Caller for Direct {
    async fn call(&self) {
        let r = self.request("tools/call", json!({"name": "echo", "arguments": {"text": MESSAGE}})).await;
        assert!(r.get("result").is_some(), "{r}");
    }
}

// ---- HTTP callers ------------------------------------------------------------

/// A legacy client with its own session.
struct Legacy {
    http: Http,
    session: String,
    body: String,
}

impl Legacy {
    async fn open(url: &str) -> Self {
        let http = Http::connect(url).await;
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}});
        let (head, _) = http.post(&[], &init.to_string()).await;
        let session =
            head.lines().find_map(|l| l.strip_prefix("mcp-session-id:")).expect("session id").trim().to_owned();
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": MESSAGE}}})
        .to_string();
        let me = Self { http, session, body };
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
        me.post(&note).await;
        me
    }

    async fn post(&self, body: &str) -> String {
        let headers = [("mcp-protocol-version", "2025-11-25"), ("mcp-session-id", self.session.as_str())];
        self.http.post(&headers, body).await.1
    }
}

impl Caller for Legacy {
    async fn call(&self) {
        let text = self.post(&self.body).await;
        assert!(text.contains("\"result\""), "{text}");
    }
}

// ---- processes ------------------------------------------------------------------

async fn start_supergateway(sg: &str, server: &str) -> (Child, String) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let child = Command::new("node")
        .args([
            sg,
            "--stdio",
            server,
            "--outputTransport",
            "streamableHttp",
            "--stateful",
            "--port",
            &port.to_string(),
            "--logLevel",
            "none",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn supergateway");
    let url = format!("http://127.0.0.1:{port}/mcp");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return (child, url);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("supergateway did not listen on {port}");
}

/// Set in the copy of this bench that serves the HTTP floor.
const FLOOR_ENV: &str = "BENCH_HTTP_FLOOR";

/// The floor server: POST /mcp answers a constant JSON-RPC result, nothing
/// parsed, nothing relayed. Prints its URL as `berth run` does.
fn serve_floor() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let reply = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        let app = axum::Router::new()
            .route("/mcp", axum::routing::post(move || async move { ([("content-type", "application/json")], reply) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("listening on http://{}/mcp", listener.local_addr().expect("addr"));
        axum::serve(listener, app).await.expect("serve");
    });
}

/// Starts the floor server (this bench, again) and returns its URL.
async fn start_floor() -> (Child, String) {
    let mut cmd = Command::new(std::env::current_exe().expect("bench executable"));
    cmd.env(FLOOR_ENV, "1");
    start_http(cmd).await
}

fn row(name: &str, c: usize, s: Stats) {
    println!("| {name:<22} | {c:>3} | {:>9.1} | {:>9.1} | {:>10.0} |", s.p50_us, s.p99_us, s.per_sec);
}

fn main() {
    if std::env::var_os(FLOOR_ENV).is_some() {
        return serve_floor();
    }
    tokio::runtime::Runtime::new().expect("runtime").block_on(bench());
}

async fn bench() {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let berth = std::env::var("BERTH_BIN").unwrap_or_else(|_| format!("{target}/release/berth"));
    let server = std::env::var("BERTH_TESTSERVER").unwrap_or_else(|_| format!("{target}/release/berth-testserver"));
    let sg = std::env::var("BERTH_SUPERGATEWAY").ok().filter(|s| !s.is_empty());
    let calls: usize = std::env::var("BENCH_CALLS").ok().and_then(|s| s.parse().ok()).unwrap_or(4000);

    println!("tools/call echo, {calls} calls per row; latency in µs\n");
    println!("| path                   |   c |   p50 µs  |   p99 µs  |   calls/s  |");
    println!("|------------------------|-----|-----------|-----------|------------|");
    let mut results: HashMap<(&str, usize), Stats> = HashMap::new();
    let levels: Vec<usize> = std::env::var("BENCH_LEVELS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| LEVELS.to_vec());
    for &c in &levels {
        let (direct, _child) = Direct::start(&server).await;
        let s = measure(vec![direct; c], calls).await;
        row("direct pipe", c, s);
        results.insert(("direct", c), s);

        let (_f, url) = start_floor().await;
        let mut floor = Vec::new();
        for _ in 0..c {
            floor.push(Arc::new(Modern::ping(&url).await));
        }
        let s = measure(floor, calls).await;
        row("HTTP floor (axum)", c, s);
        results.insert(("floor", c), s);

        let (_b, url) = start_berth(&berth, &[], &server).await;
        let mut ping = Vec::new();
        let mut modern = Vec::new();
        let mut legacy = Vec::new();
        for _ in 0..c {
            ping.push(Arc::new(Modern::ping(&url).await));
            modern.push(Arc::new(Modern::tool(&url, "echo", json!({"text": MESSAGE})).await));
            legacy.push(Arc::new(Legacy::open(&url).await));
        }
        let s = measure(ping, calls).await;
        row("berth ping (no server)", c, s);
        results.insert(("http", c), s);
        let s = measure(modern, calls).await;
        row("berth, modern client", c, s);
        results.insert(("berth", c), s);
        let s = measure(legacy, calls).await;
        row("berth, legacy client", c, s);

        if let Some(sg) = &sg {
            let (_g, url) = start_supergateway(sg, &server).await;
            let mut callers = Vec::new();
            for _ in 0..c {
                callers.push(Arc::new(Legacy::open(&url).await));
            }
            let s = measure(callers, calls.min(2000)).await;
            row("supergateway", c, s);
            results.insert(("supergateway", c), s);
        }
    }
    let (Some(d), Some(b)) = (results.get(&("direct", 1)), results.get(&("berth", 1))) else { return };
    println!(
        "\nberth overhead at 1 caller: p50 +{:.1} µs (target ≤ 60), p99 +{:.1} µs (target ≤ 250)",
        b.p50_us - d.p50_us,
        b.p99_us - d.p99_us
    );
    let Some(f) = results.get(&("floor", 1)) else { return };
    println!(
        "for scale: the loopback HTTP exchange alone (floor) costs p50 {:.1} µs, p99 {:.1} µs at 1 caller",
        f.p50_us, f.p99_us
    );
    if let Some(g) = results.get(&("supergateway", 64)) {
        let b = &results[&("berth", 64)];
        println!(
            "throughput at 64 callers: berth {:.0}/s vs supergateway {:.0}/s = {:.1}x (target ≥ 10x)",
            b.per_sec,
            g.per_sec,
            b.per_sec / g.per_sec
        );
    }
}
