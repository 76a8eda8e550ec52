//! Drives the built binary the way berth does: raw newline-delimited JSON-RPC
//! on its stdin and stdout, no MCP library in between, so these tests see
//! exactly the bytes berth will see — garbage lines included.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_berth-testserver");
const TIMEOUT: Duration = Duration::from_secs(10);
const UNICODE: &str = "héllo ✓ 世界 🚢 — ünïcödé \"quoted\" \\ back\nslash";

/// A running test server and what it has written so far.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Every stdout line, raw, without its newline.
    stdout: Receiver<Vec<u8>>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start berth-testserver");
        let (tx, stdout) = mpsc::channel();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        thread::spawn(move || {
            loop {
                let mut line = Vec::new();
                match out.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if line.last() == Some(&b'\n') {
                            line.pop();
                        }
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut line = String::new();
            while err.read_line(&mut line).is_ok_and(|n| n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Self { stdin: child.stdin.take(), child, stdout, stderr }
    }

    /// Starts a server and completes the legacy handshake.
    fn initialized() -> Self {
        let mut s = Self::start(&[]);
        let init = s.request(0, "initialize", initialize_params("2025-11-25"));
        assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
        s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        s
    }

    fn send(&mut self, msg: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends a request and returns its reply.
    fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.reply(id).1
    }

    fn call(&mut self, id: u64, tool: &str, arguments: Value) -> Value {
        self.request(id, "tools/call", json!({"name": tool, "arguments": arguments}))
    }

    /// Reads stdout until the reply to `id`; returns the lines before it too.
    fn reply(&mut self, id: u64) -> (Vec<Vec<u8>>, Value) {
        let deadline = Instant::now() + TIMEOUT;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.stdout.recv_timeout(left) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => panic!("no reply to {id} within {TIMEOUT:?}; saw {before:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("stdout closed before the reply to {id}; saw {before:?}"),
            };
            match serde_json::from_slice::<Value>(&line) {
                Ok(msg) if msg["id"] == id && msg.get("method").is_none() => return (before, msg),
                _ => before.push(line),
            }
        }
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn initialize_params(version: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "stdio-test", "version": "0"},
    })
}

fn text_of(reply: &Value) -> &str {
    reply["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text in {reply}"))
}

fn tool_names(s: &mut Server, id: u64) -> Vec<String> {
    let list = s.request(id, "tools/list", json!({}));
    let tools = list["result"]["tools"].as_array().unwrap_or_else(|| panic!("no tools in {list}"));
    tools.iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn handshake_announces_a_legacy_server_with_its_capabilities() {
    let mut s = Server::start(&[]);
    let init = s.request(1, "initialize", initialize_params("2025-06-18"));
    let result = &init["result"];
    assert_eq!(result["protocolVersion"], "2025-06-18", "{init}");
    assert_eq!(result["serverInfo"]["name"], "berth-testserver");
    assert_eq!(result["capabilities"]["tools"]["listChanged"], true);
    for cap in ["resources", "prompts", "logging"] {
        assert!(result["capabilities"][cap].is_object(), "{cap} missing from {init}");
    }
    assert!(result["instructions"].as_str().is_some_and(|i| !i.is_empty()));
}

#[test]
fn modern_clients_are_answered_with_the_newest_legacy_version() {
    let mut s = Server::start(&[]);
    let init = s.request(1, "initialize", initialize_params("2026-07-28"));
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
}

#[test]
fn tools_list_has_every_tool_with_schemas() {
    let mut s = Server::initialized();
    let list = s.request(1, "tools/list", json!({}));
    let tools = list["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for want in [
        "echo",
        "add",
        "sleep",
        "progress",
        "elicit",
        "sample",
        "roots",
        "large",
        "crash",
        "garbage",
        "log",
        "change_tools",
        "whoami",
        "stderr",
        "counter",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    assert!(!names.contains(&"dynamic"), "dynamic is listed before change_tools");
    for tool in tools {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
    }
    let echo = tools.iter().find(|t| t["name"] == "echo").unwrap();
    assert_eq!(echo["inputSchema"]["properties"]["text"]["type"], "string");
    assert_eq!(echo["outputSchema"]["properties"]["text"]["type"], "string");
}

#[test]
fn echo_round_trips_unicode_as_text_and_structured_content() {
    let mut s = Server::initialized();
    let reply = s.call(1, "echo", json!({"text": UNICODE}));
    assert_eq!(text_of(&reply), UNICODE);
    assert_eq!(reply["result"]["structuredContent"], json!({"text": UNICODE}));
    assert_eq!(reply["result"]["isError"], false);
}

#[test]
fn garbage_lines_reach_stdout_and_the_reply_still_arrives() {
    let mut s = Server::initialized();
    s.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "garbage", "arguments": {}}}));
    let (before, reply) = s.reply(1);
    assert_eq!(text_of(&reply), "ok");
    for want in [&b"this is not json"[..], b"{broken", b"", b"\xff\xfe not utf-8"] {
        assert!(before.iter().any(|l| l == want), "{:?} not on stdout before the reply: {before:?}", want);
    }
    // Every other line that came before is still whole JSON-RPC.
    for line in &before {
        if let Ok(msg) = serde_json::from_slice::<Value>(line) {
            assert!(msg.is_array() || msg["jsonrpc"] == "2.0", "{msg}");
        }
    }
    // And the stream is still usable.
    assert_eq!(text_of(&s.call(2, "echo", json!({"text": "after"}))), "after");
}

#[test]
fn crash_exits_with_the_given_code_without_answering() {
    let mut s = Server::initialized();
    s.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "crash", "arguments": {"code": 9}}}));
    assert_eq!(s.wait().code(), Some(9));
    // Everything it wrote before dying, up to the end of its stdout.
    let rest: Vec<Vec<u8>> = std::iter::from_fn(|| s.stdout.recv_timeout(TIMEOUT).ok()).collect();
    let answered = rest.iter().filter_map(|l| serde_json::from_slice::<Value>(l).ok()).any(|m| m["id"] == 1);
    assert!(!answered, "crash answered: {rest:?}");
}

#[test]
fn crash_defaults_to_exit_code_3() {
    let mut s = Server::initialized();
    s.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "crash", "arguments": {}}}));
    assert_eq!(s.wait().code(), Some(3));
}

#[test]
fn change_tools_reveals_dynamic_and_announces_it() {
    let mut s = Server::initialized();
    let hidden = s.call(1, "dynamic", json!({}));
    assert!(hidden.get("error").is_some() || hidden["result"]["isError"] == true, "{hidden}");

    s.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "change_tools", "arguments": {}}}));
    let (before, _) = s.reply(2);
    let announced = before
        .iter()
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .any(|m| m["method"] == "notifications/tools/list_changed");
    assert!(announced, "no list_changed before the reply: {before:?}");

    assert!(tool_names(&mut s, 3).contains(&"dynamic".to_owned()));
    assert_eq!(text_of(&s.call(4, "dynamic", json!({}))), "dynamic");
}

#[test]
fn progress_carries_the_callers_token() {
    let mut s = Server::initialized();
    let params =
        json!({"name": "progress", "arguments": {"steps": 3, "delay_ms": 5}, "_meta": {"progressToken": "p-1"}});
    s.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}));
    let (before, reply) = s.reply(1);
    assert_eq!(text_of(&reply), "done 3");
    let progress: Vec<Value> = before
        .iter()
        .filter_map(|l| serde_json::from_slice::<Value>(l).ok())
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"].clone())
        .collect();
    assert_eq!(progress.len(), 3, "{progress:?}");
    for (i, p) in progress.iter().enumerate() {
        assert_eq!(p["progressToken"], "p-1");
        assert_eq!(p["progress"].as_f64(), Some(i as f64 + 1.0));
        assert_eq!(p["total"].as_f64(), Some(3.0));
    }
}

#[test]
fn cancelled_sleep_stops_and_is_not_answered() {
    let mut s = Server::initialized();
    s.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "sleep", "arguments": {"ms": 60000}}}));
    thread::sleep(Duration::from_millis(200));
    s.send(
        &json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1, "reason": "test"}}),
    );
    // The next reply comes first: the cancelled call sends nothing at all.
    s.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "counter", "arguments": {}}}));
    let (before, reply) = s.reply(2);
    assert_eq!(text_of(&reply), "1");
    assert!(before.is_empty(), "{before:?}");
    let deadline = Instant::now() + TIMEOUT;
    while !s.stderr().contains("request 1 cancelled") {
        assert!(Instant::now() < deadline, "no cancellation on stderr: {}", s.stderr());
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn stdin_eof_ends_the_process_unless_told_to_ignore_it() {
    let mut s = Server::initialized();
    s.stdin = None;
    assert_eq!(s.wait().code(), Some(0));

    let mut stubborn = Server::start(&["--ignore-eof", "--stderr-on-start", "2"]);
    stubborn.request(1, "initialize", initialize_params("2025-11-25"));
    stubborn.stdin = None;
    thread::sleep(Duration::from_millis(300));
    assert!(stubborn.child.try_wait().unwrap().is_none(), "exited despite --ignore-eof");
    assert!(stubborn.stderr().contains("startup line 1"), "{}", stubborn.stderr());
}
