//! What the benches share: a lean keep-alive HTTP/1.1 client, a modern
//! MCP caller on it, the measuring loop and `berth run` started as a child.

#![allow(dead_code)] // each bench uses part of it

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub p50_us: f64,
    pub p99_us: f64,
    pub per_sec: f64,
}

pub fn stats(mut lat: Vec<Duration>, wall: Duration) -> Stats {
    lat.sort();
    let pick = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
    Stats { p50_us: pick(0.50), p99_us: pick(0.99), per_sec: lat.len() as f64 / wall.as_secs_f64() }
}

/// A caller: one tools/call at a time.
pub trait Caller: Send + Sync + 'static {
    fn call(&self) -> impl std::future::Future<Output = ()> + Send;
}

pub async fn measure<C: Caller>(callers: Vec<Arc<C>>, calls: usize) -> Stats {
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

/// One keep-alive HTTP/1.1 connection speaking just enough of the protocol
/// for these exchanges: a lean client, so the numbers are the servers' and
/// not a client library's.
pub struct Http {
    conn: Mutex<BufReader<TcpStream>>,
    host: String,
    path: String,
}

impl Http {
    pub async fn connect(url: &str) -> Self {
        let rest = url.strip_prefix("http://").expect("http url");
        let (host, path) = rest.split_once('/').expect("path");
        let stream = TcpStream::connect(host).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self { conn: Mutex::new(BufReader::new(stream)), host: host.to_owned(), path: format!("/{path}") }
    }

    /// Sends a POST and returns the response headers (lower-cased) and body.
    pub async fn post(&self, headers: &[(&str, &str)], body: &str) -> (String, String) {
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
pub struct Modern {
    http: Http,
    method: &'static str,
    /// The tool, for `Mcp-Name`.
    name: Option<String>,
    body: String,
}

impl Modern {
    /// Calls `tool` with `arguments`.
    pub async fn tool(url: &str, tool: &str, arguments: Value) -> Self {
        Self::with(url, "tools/call", json!({"name": tool, "arguments": arguments})).await
    }

    /// `ping` is answered by berth itself: the HTTP exchange and berth's front,
    /// without the server.
    pub async fn ping(url: &str) -> Self {
        Self::with(url, "ping", json!({})).await
    }

    pub async fn with(url: &str, method: &'static str, mut params: Value) -> Self {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}});
        let name = params["name"].as_str().map(str::to_owned);
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        Self { http: Http::connect(url).await, method, name, body: body.to_string() }
    }
}

impl Caller for Modern {
    async fn call(&self) {
        let mut headers = vec![("mcp-protocol-version", "2026-07-28"), ("mcp-method", self.method)];
        if let Some(name) = &self.name {
            headers.push(("mcp-name", name));
        }
        let (_, body) = self.http.post(&headers, &self.body).await;
        assert!(body.contains("\"result\""), "{body}");
    }
}

/// Starts `berth run` with `flags` in front of `server`; its URL.
pub async fn start_berth(berth: &str, flags: &[&str], server: &str) -> (Child, String) {
    let mut cmd = Command::new(berth);
    cmd.args(["run", "--listen", "127.0.0.1:0"])
        // The bridge is measured, not a sandbox: the direct pipe has none.
        .args(if flags.contains(&"--sandbox") { &[][..] } else { &["--sandbox", "none"][..] })
        .args(flags)
        .args(["--", server])
        .env("BERTH_LOG", "warn");
    start_http(cmd).await
}

/// Spawns a server that prints its URL on its first line; it and the URL.
pub async fn start_http(mut cmd: Command) -> (Child, String) {
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true).spawn().expect("spawn the server");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = lines.next_line().await.expect("read").expect("the server printed nothing");
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("url").to_owned();
    (child, url)
}
