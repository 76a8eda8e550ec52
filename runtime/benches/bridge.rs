//! Bridge overhead: tools/call latency and throughput of the first-party test
//! server (a) over a direct stdio pipe, (b) through berth (modern and legacy
//! clients), (c) through supergateway, at 1, 8 and 64 concurrent callers, all
//! measured in the same run on the same machine. Prints a table and the
//! ratios the protocol-core targets are stated in.
//!
//! `cargo bench -p berth-runtime --bench bridge` (scripts/bench.sh sets the
//! paths). Environment: BERTH_BIN, BERTH_TESTSERVER, BERTH_SUPERGATEWAY
//! (omit to skip), BENCH_CALLS (calls per concurrency level, default 4000).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, oneshot};

type Pending = Arc<parking_lot::Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

const LEVELS: [usize; 3] = [1, 8, 64];
const MESSAGE: &str = "benchmark payload ✓";

#[derive(Clone, Copy, Debug)]
struct Stats {
    p50_us: f64,
    p99_us: f64,
    per_sec: f64,
}

fn stats(mut lat: Vec<Duration>, wall: Duration) -> Stats {
    lat.sort();
    let pick = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
    Stats { p50_us: pick(0.50), p99_us: pick(0.99), per_sec: lat.len() as f64 / wall.as_secs_f64() }
}

/// A caller: one tools/call at a time.
trait Caller: Send + Sync + 'static {
    fn call(&self) -> impl std::future::Future<Output = ()> + Send;
}

async fn measure<C: Caller>(callers: Vec<Arc<C>>, calls: usize) -> Stats {
    let per = calls / callers.len();
    for c in &callers {
        for _ in 0..(per / 10).max(5) {
            c.call().await;
        }
    }
    let start = Instant::now();
    let tasks: Vec<_> = callers
        .into_iter()
        .map(|c| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per);
                for _ in 0..per {
                    let t = Instant::now();
                    c.call().await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::with_capacity(calls);
    for t in tasks {
        all.extend(t.await.expect("caller task"));
    }
    stats(all, start.elapsed())
}

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

/// One keep-alive HTTP/1.1 connection speaking just enough of the protocol
/// for these exchanges: a lean client, so the numbers are the servers' and
/// not a client library's.
struct Http {
    conn: Mutex<BufReader<TcpStream>>,
    host: String,
    path: String,
}

impl Http {
    async fn connect(url: &str) -> Self {
        let rest = url.strip_prefix("http://").expect("http url");
        let (host, path) = rest.split_once('/').expect("path");
        let stream = TcpStream::connect(host).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self { conn: Mutex::new(BufReader::new(stream)), host: host.to_owned(), path: format!("/{path}") }
    }

    /// Sends a POST and returns the response headers (lower-cased) and body.
    async fn post(&self, headers: &[(&str, &str)], body: &str) -> (String, String) {
        let mut req = format!(
            "POST {} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: {}\r\n",
            self.path,
            self.host,
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        let mut conn = self.conn.lock().await;
        conn.get_mut().write_all(req.as_bytes()).await.expect("write");
        let mut head = String::new();
        loop {
            let mut line = String::new();
            conn.read_line(&mut line).await.expect("read");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line.to_ascii_lowercase());
        }
        let header = |name: &str| head.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()));
        let mut body = Vec::new();
        if let Some(len) = header("content-length:") {
            body.resize(len.parse().expect("length"), 0);
            conn.read_exact(&mut body).await.expect("body");
        } else if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut size = String::new();
                conn.read_line(&mut size).await.expect("chunk size");
                let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
                let mut chunk = vec![0; n + 2];
                conn.read_exact(&mut chunk).await.expect("chunk");
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        (head, String::from_utf8(body).expect("utf-8"))
    }
}

/// A 2026-07-28 client: stateless POSTs.
struct Modern {
    http: Http,
    method: &'static str,
    body: String,
}

impl Modern {
    async fn new(url: &str) -> Self {
        Self::with(url, "tools/call", json!({"name": "echo", "arguments": {"text": MESSAGE}})).await
    }

    /// `ping` is answered by berth itself: the cost of the HTTP exchange alone.
    async fn ping(url: &str) -> Self {
        Self::with(url, "ping", json!({})).await
    }

    async fn with(url: &str, method: &'static str, mut params: Value) -> Self {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}});
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        Self { http: Http::connect(url).await, method, body: body.to_string() }
    }
}

impl Caller for Modern {
    async fn call(&self) {
        let mut headers = vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", self.method)];
        if self.method == "tools/call" {
            headers.push(("mcp-name", "echo"));
        }
        let (_, body) = self.http.post(&headers, &self.body).await;
        assert!(body.contains("\"result\""), "{body}");
    }
}

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

async fn start_berth(berth: &str, server: &str) -> (Child, String) {
    let mut child = Command::new(berth)
        .args(["run", "--listen", "127.0.0.1:0", "--", server])
        .env("BERTH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn berth");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = lines.next_line().await.expect("read").expect("berth printed nothing");
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("url").to_owned();
    (child, url)
}

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

fn row(name: &str, c: usize, s: Stats) {
    println!("| {name:<22} | {c:>3} | {:>9.1} | {:>9.1} | {:>10.0} |", s.p50_us, s.p99_us, s.per_sec);
}

#[tokio::main]
async fn main() {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let berth = std::env::var("BERTH_BIN").unwrap_or_else(|_| format!("{target}/release/berth"));
    let server = std::env::var("BERTH_TESTSERVER").unwrap_or_else(|_| format!("{target}/release/berth-testserver"));
    let sg = std::env::var("BERTH_SUPERGATEWAY").ok().filter(|s| !s.is_empty());
    let calls: usize = std::env::var("BENCH_CALLS").ok().and_then(|s| s.parse().ok()).unwrap_or(4000);

    println!("tools/call echo, {calls} calls per row; latency in µs\n");
    println!("| path                   |   c |   p50 µs  |   p99 µs  |   calls/s  |");
    println!("|------------------------|-----|-----------|-----------|------------|");
    let mut results: HashMap<(&str, usize), Stats> = HashMap::new();
    for &c in &LEVELS {
        let (direct, _child) = Direct::start(&server).await;
        let s = measure(vec![direct; c], calls).await;
        row("direct pipe", c, s);
        results.insert(("direct", c), s);

        let (_b, url) = start_berth(&berth, &server).await;
        let mut ping = Vec::new();
        let mut modern = Vec::new();
        let mut legacy = Vec::new();
        for _ in 0..c {
            ping.push(Arc::new(Modern::ping(&url).await));
            modern.push(Arc::new(Modern::new(&url).await));
            legacy.push(Arc::new(Legacy::open(&url).await));
        }
        let s = measure(ping, calls).await;
        row("berth ping (HTTP only)", c, s);
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
    let (d, b) = (results[&("direct", 1)], results[&("berth", 1)]);
    println!(
        "\nberth overhead at 1 caller: p50 +{:.1} µs (target ≤ 60), p99 +{:.1} µs (target ≤ 250)",
        b.p50_us - d.p50_us,
        b.p99_us - d.p99_us
    );
    if let Some(g) = results.get(&("supergateway", 64)) {
        let b = results[&("berth", 64)];
        println!(
            "throughput at 64 callers: berth {:.0}/s vs supergateway {:.0}/s = {:.1}x (target ≥ 10x)",
            b.per_sec,
            g.per_sec,
            b.per_sec / g.per_sec
        );
    }
}
