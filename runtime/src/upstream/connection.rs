//! One running server process, multiplexed among many callers.
//!
//! A single task owns each direction of the child's stdio. Callers reach the
//! child through [`Connection::call`], which gives the request a fresh id
//! (berth's, not the caller's) and registers where its replies go. The reader
//! routes every line the child prints: responses to their call, progress to the
//! call that owns the token, server requests to the one caller that can answer
//! them, and change notifications to every listener.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::BufReader;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::lines::{Frame, LineReader};
use super::stderr;
use super::stdin::Stdin;
use crate::jsonrpc::{self, ErrorObject, Outcome, code};
use berth_sandbox::{ExitStatus, Instance, UsageProbe};

/// Limits for one connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest stdout line accepted from the server.
    pub max_line: usize,
    /// How long a server gets to exit after its stdin closes before SIGKILL.
    pub exit_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_line: 64 << 20, exit_grace: Duration::from_secs(2) }
    }
}

/// Something the server sent that concerns one call.
#[derive(Debug)]
pub enum Upcall {
    /// `notifications/progress`, with the caller's own token restored.
    Progress(Value),
    /// `notifications/message` emitted while this call was the only one running.
    Log(Value),
    /// A notification tagged with this call's subscription id (modern servers).
    Tagged {
        /// Notification method.
        method: String,
        /// Its params, subscription id restored to the caller's.
        params: Value,
    },
    /// A request from the server (elicitation, sampling, roots) to answer with
    /// [`Connection::respond`].
    ServerRequest {
        /// The server's id for it.
        id: Box<RawValue>,
        /// Its method.
        method: String,
        /// Its params as sent.
        params: Option<Box<RawValue>>,
    },
    /// The final response.
    Done(Outcome),
}

/// A notification for everyone listening (list changes, resource updates).
#[derive(Debug, Clone)]
pub struct Broadcast {
    /// Notification method.
    pub method: String,
    /// Raw params.
    pub params: Option<Value>,
}

struct Pending {
    tx: mpsc::UnboundedSender<Upcall>,
    /// The caller's progress token, restored on each progress notification.
    progress: Option<Value>,
    /// The caller's id for a subscription it opened through this call.
    subscription: Option<Value>,
    /// Whether server requests and logs may be attributed to this call.
    relay: bool,
}

struct Shared {
    stdin: Stdin,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    /// Cleared the moment stdout closes or stdin breaks, before the reason
    /// (the exit status) is known, so no new call is sent to a dying server.
    alive: Arc<AtomicBool>,
    closed: watch::Sender<Option<String>>,
    events: broadcast::Sender<Arc<Broadcast>>,
    /// Rung to kill the process now (a failed health check).
    kill: tokio::sync::Notify,
}

/// A handle to one running server. Cloning shares it; when the last clone is
/// dropped the server's stdin is closed and, after a grace period, it is killed.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
    _owner: Arc<oneshot::Sender<()>>,
    pid: Option<u32>,
    usage: UsageProbe,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("pid", &self.pid).finish_non_exhaustive()
    }
}

impl Connection {
    /// Takes over a freshly launched instance and starts its tasks.
    pub fn start(instance: Instance, limits: Limits, events: broadcast::Sender<Arc<Broadcast>>, name: &str) -> Self {
        let Instance { stdin, stdout, stderr, mut control } = instance;
        let pid = control.pid();
        let usage = control.usage();
        let (closed, _) = watch::channel(None);
        let (stop_tx, stop_rx) = watch::channel(false);
        let alive = Arc::new(AtomicBool::new(true));
        let broken = alive.clone();
        let stdin = Stdin::start(stdin, stop_rx, move || broken.store(false, Ordering::Release));
        let shared = Arc::new(Shared {
            stdin,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            alive,
            closed,
            events,
            kill: tokio::sync::Notify::new(),
        });
        let (owner_tx, owner_rx) = oneshot::channel::<()>();
        let (exit_tx, exit_rx) = watch::channel::<Option<ExitStatus>>(None);

        tokio::spawn(read_loop(shared.clone(), stdout, limits.max_line, exit_rx));
        tokio::spawn(stderr::capture(stderr, name.to_owned(), pid));
        let grace = limits.exit_grace;
        let name = name.to_owned();
        let killer = shared.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = killer.kill.notified() => {
                    let _ = control.kill().await;
                    let _ = exit_tx.send(control.wait().await.ok());
                }
                status = control.wait() => {
                    if let Ok(status) = &status { tracing::info!(connector = %name, ?pid, %status, "server exited"); }
                    let _ = exit_tx.send(status.ok());
                }
                _ = owner_rx => {
                    // Last handle dropped: close stdin, give the server a moment, then kill.
                    let _ = stop_tx.send(true);
                    match tokio::time::timeout(grace, control.wait()).await {
                        Ok(status) => { let _ = exit_tx.send(status.ok()); }
                        Err(_) => {
                            tracing::info!(connector = %name, ?pid, "server ignored stdin EOF; killing");
                            let _ = control.kill().await;
                            let _ = exit_tx.send(control.wait().await.ok());
                        }
                    }
                }
            }
        });
        Self { shared, _owner: Arc::new(owner_tx), pid, usage }
    }

    /// The server's process id, where it has one.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Reads the server's resource usage from its sandbox.
    pub fn usage(&self) -> UsageProbe {
        self.usage.clone()
    }

    /// Whether the server can take new calls.
    pub fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::Acquire)
    }

    /// Requests sent and not yet answered (open subscriptions included).
    pub fn in_flight(&self) -> usize {
        self.shared.pending.lock().len()
    }

    /// Kills the server now: no new call is sent to it, and the calls in
    /// flight fail as soon as its stdout closes.
    pub fn kill(&self, reason: &str) {
        tracing::info!(pid = ?self.pid, %reason, "killing server");
        self.shared.alive.store(false, Ordering::Release);
        self.shared.kill.notify_one();
    }

    /// Whether the server has gone away; the reason if so.
    pub fn closed(&self) -> Option<String> {
        self.shared.closed.borrow().clone()
    }

    /// Sends a request. `params._meta.progressToken` is replaced by berth's id
    /// and restored on the way back. With `relay`, server requests and logs
    /// may be attributed to this call (see [`Upcall`]).
    pub fn call(&self, method: &str, mut params: Option<Value>, relay: bool) -> Result<Call, ErrorObject> {
        if !self.is_alive() {
            return Err(unavailable(&self.closed().unwrap_or_else(|| "server is exiting".into())));
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let progress = params
            .as_mut()
            .and_then(|p| p.get_mut("_meta"))
            .and_then(Value::as_object_mut)
            .and_then(|meta| meta.get_mut("progressToken"))
            .map(|token| std::mem::replace(token, Value::from(id)));
        let subscription = (method == "subscriptions/listen").then(|| Value::from(id));
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared.pending.lock().insert(id, Pending { tx, progress, subscription, relay });
        let params = params.map(|p| jsonrpc::to_raw(&p));
        let id_raw = jsonrpc::to_raw(&Value::from(id));
        let line = jsonrpc::request(Some(&id_raw), method, params.as_deref());
        if !self.shared.stdin.send(&line) {
            self.shared.pending.lock().remove(&id);
            return Err(unavailable("server stdin is closed"));
        }
        Ok(Call { id, rx, shared: self.shared.clone(), done: false, held: None })
    }

    /// Sends a request and waits for its final outcome, ignoring upcalls.
    pub async fn request(&self, method: &str, params: Option<Value>, timeout: Duration) -> Outcome {
        let mut call = self.call(method, params, false).map_err(|e| e.to_raw())?;
        match tokio::time::timeout(timeout, call.finish()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ErrorObject::new(code::TIMEOUT, format!("{method} timed out after {timeout:?}")).to_raw()),
        }
    }

    /// Sends a notification.
    pub fn notify(&self, method: &str, params: Option<Value>) {
        let params = params.map(|p| jsonrpc::to_raw(&p));
        self.shared.stdin.send(&jsonrpc::request(None, method, params.as_deref()));
    }

    /// Sends a request whose answer nobody needs.
    pub fn notify_request_and_forget(&self, method: &str, params: Value) {
        if let Ok(call) = self.call(method, Some(params), false) {
            call.detach();
        }
    }

    /// Answers a request the server sent.
    pub fn respond(&self, id: &RawValue, outcome: &Outcome) {
        self.shared.stdin.send(&jsonrpc::response(id, outcome));
    }
}

fn unavailable(reason: &str) -> ErrorObject {
    ErrorObject::new(code::SERVER_UNAVAILABLE, format!("connector unavailable: {reason}"))
}

/// A request in flight. Dropping it before it is done cancels it at the server.
pub struct Call {
    id: u64,
    rx: mpsc::UnboundedReceiver<Upcall>,
    shared: Arc<Shared>,
    done: bool,
    /// Kept until the call is dropped (the caller's slot on the instance).
    held: Option<Box<dyn Send + Sync>>,
}

impl Call {
    /// Keeps `guard` alive as long as the call: a slot on the instance is
    /// then held until the answer arrives, however the answer is streamed.
    pub fn hold(mut self, guard: impl Send + Sync + 'static) -> Self {
        self.held = Some(Box::new(guard));
        self
    }

    /// Moves what `earlier` holds to this call (a retry of the same request).
    pub fn carry(mut self, earlier: &mut Call) -> Self {
        self.held = earlier.held.take();
        self
    }

    /// The next thing the server sent for this call. After [`Upcall::Done`]
    /// the call is finished; calling again returns an error outcome.
    pub async fn next(&mut self) -> Upcall {
        match self.rx.recv().await {
            Some(up) => {
                if matches!(up, Upcall::Done(_)) {
                    self.done = true;
                }
                up
            }
            None => {
                self.done = true;
                Upcall::Done(Err(unavailable("server went away").to_raw()))
            }
        }
    }

    /// Waits for the final outcome, discarding everything else. Server requests
    /// are refused, since no one is there to answer them.
    pub async fn finish(&mut self) -> Outcome {
        loop {
            match self.next().await {
                Upcall::Done(outcome) => return outcome,
                Upcall::ServerRequest { id, method, .. } => {
                    let err = ErrorObject::new(code::METHOD_NOT_FOUND, format!("{method} is not available here"));
                    self.shared.stdin.send(&jsonrpc::response(&id, &Err(err.to_raw())));
                }
                _ => {}
            }
        }
    }

    /// Marks the call as answered by other means, so dropping it sends nothing.
    pub fn detach(mut self) {
        self.shared.pending.lock().remove(&self.id);
        self.done = true;
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.shared.pending.lock().remove(&self.id).is_some() && self.shared.closed.borrow().is_none() {
            let params = jsonrpc::to_raw(&json!({"requestId": self.id, "reason": "client went away"}));
            self.shared.stdin.send(&jsonrpc::request(None, "notifications/cancelled", Some(&params)));
        }
    }
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    method: Option<String>,
    params: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

async fn read_loop(
    shared: Arc<Shared>,
    stdout: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    max_line: usize,
    mut exit: watch::Receiver<Option<ExitStatus>>,
) {
    let mut reader = LineReader::new(BufReader::with_capacity(64 << 10, stdout), max_line);
    let reason = loop {
        match reader.next().await {
            Ok(Some(Frame::Line(line))) => route(&shared, &line),
            Ok(Some(Frame::TooLong { len, head, tail })) => too_long(&shared, len, &head, &tail, max_line),
            Ok(None) => break "closed its stdout".to_owned(),
            Err(e) => break format!("stdout read failed: {e}"),
        }
    };
    shared.alive.store(false, Ordering::Release);
    // Prefer the exit status as the reason, if it arrives promptly.
    let status = tokio::time::timeout(Duration::from_millis(250), exit.wait_for(Option::is_some))
        .await
        .ok()
        .and_then(|r| r.ok().and_then(|s| *s));
    let reason = match status {
        Some(status) => format!("server process ended ({status})"),
        None => format!("server {reason}"),
    };
    let drained: Vec<Pending> = {
        shared.closed.send_replace(Some(reason.clone()));
        shared.pending.lock().drain().map(|(_, p)| p).collect()
    };
    let err = unavailable(&reason).to_raw();
    for p in drained {
        let _ = p.tx.send(Upcall::Done(Err(err.clone())));
    }
}

fn route(shared: &Shared, line: &[u8]) {
    let Ok(text) = std::str::from_utf8(line) else {
        tracing::warn!(bytes = line.len(), "server wrote non-UTF-8 to stdout; skipped");
        return;
    };
    if text.trim().is_empty() {
        return;
    }
    let msg: Wire<'_> = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(_) => {
            tracing::warn!(line = %truncate(text, 200), "server wrote a non-JSON-RPC line to stdout; skipped");
            return;
        }
    };
    match (msg.id, msg.method, msg.result, msg.error) {
        (Some(id), None, result, error) if result.is_some() || error.is_some() => {
            let outcome = match (result, error) {
                (Some(r), _) => Ok(r.to_owned()),
                (None, Some(e)) => Err(e.to_owned()),
                (None, None) => unreachable!("guarded above"),
            };
            let pending = id.get().parse::<u64>().ok().and_then(|id| shared.pending.lock().remove(&id));
            match pending {
                Some(p) => {
                    let _ = p.tx.send(Upcall::Done(outcome));
                }
                None => tracing::debug!(id = id.get(), "response for no pending request (cancelled?)"),
            }
        }
        (Some(id), Some(method), None, None) => server_request(shared, id, method, msg.params),
        (None, Some(method), None, None) => notification(shared, method, msg.params),
        _ => tracing::warn!(line = %truncate(text, 200), "server wrote an invalid JSON-RPC message; skipped"),
    }
}

fn server_request(shared: &Shared, id: &RawValue, method: String, params: Option<&RawValue>) {
    if method == "ping" {
        shared.stdin.send(&jsonrpc::response(id, &Ok(jsonrpc::to_raw(&json!({})))));
        return;
    }
    let relayed = {
        let pending = shared.pending.lock();
        let mut relays = pending.values().filter(|p| p.relay);
        match (relays.next(), relays.next()) {
            (Some(p), None) => {
                p.tx.send(Upcall::ServerRequest {
                    id: id.to_owned(),
                    method: method.clone(),
                    params: params.map(ToOwned::to_owned),
                })
                .is_ok()
            }
            _ => false,
        }
    };
    if relayed {
        return;
    }
    if method == "roots/list" {
        // A server shared by several clients has no roots of its own.
        shared.stdin.send(&jsonrpc::response(id, &Ok(jsonrpc::to_raw(&json!({"roots": []})))));
        return;
    }
    // Several callers share this server and the request names none of them:
    // guessing could show one user's prompt to another, so refuse it.
    tracing::warn!(%method, "server request with no single caller to answer it; refused");
    let err = ErrorObject::new(
        code::INTERNAL_ERROR,
        format!("berth cannot route {method}: no single client request is in flight on this shared server"),
    );
    shared.stdin.send(&jsonrpc::response(id, &Err(err.to_raw())));
}

fn notification(shared: &Shared, method: String, params: Option<&RawValue>) {
    let mut params: Option<Value> = params.and_then(|p| serde_json::from_str(p.get()).ok());
    match method.as_str() {
        "notifications/progress" => {
            let Some(p) = params.as_mut() else { return };
            let Some(id) = p.get("progressToken").and_then(Value::as_u64) else { return };
            let pending = shared.pending.lock();
            if let Some(call) = pending.get(&id)
                && let Some(token) = &call.progress
            {
                p["progressToken"] = token.clone();
                let _ = call.tx.send(Upcall::Progress(params.unwrap_or_default()));
            }
        }
        "notifications/message" => {
            let pending = shared.pending.lock();
            let mut relays = pending.values().filter(|p| p.relay);
            match (relays.next(), relays.next()) {
                (Some(call), None) => {
                    let _ = call.tx.send(Upcall::Log(params.unwrap_or_default()));
                }
                _ => tracing::debug!(params = ?params, "server log with no single request to attach it to"),
            }
        }
        "notifications/cancelled" => tracing::debug!("server cancelled one of its requests"),
        _ => {
            let sub = params
                .as_ref()
                .and_then(|p| p.pointer("/_meta/io.modelcontextprotocol~1subscriptionId"))
                .and_then(Value::as_u64);
            if let Some(sub) = sub {
                let pending = shared.pending.lock();
                if let (Some(call), Some(p)) = (pending.get(&sub), params.as_mut()) {
                    if let Some(caller_id) = &call.subscription {
                        p["_meta"]["io.modelcontextprotocol/subscriptionId"] = caller_id.clone();
                    }
                    let _ = call.tx.send(Upcall::Tagged { method, params: params.unwrap_or_default() });
                }
                return;
            }
            let _ = shared.events.send(Arc::new(Broadcast { method, params }));
        }
    }
}

/// An over-long line may be the response to a request; find its id in the
/// kept ends so that caller gets an error instead of waiting forever.
fn too_long(shared: &Shared, len: usize, head: &[u8], tail: &[u8], max: usize) {
    tracing::warn!(len, max, "server wrote a line over the limit; dropped");
    let id = find_id(head).or_else(|| find_id(tail));
    if let Some(p) = id.and_then(|id| shared.pending.lock().remove(&id)) {
        let err = ErrorObject::new(
            code::INTERNAL_ERROR,
            format!("the server's response was {len} bytes, over berth's limit of {max} bytes"),
        );
        let _ = p.tx.send(Upcall::Done(Err(err.to_raw())));
    }
}

fn find_id(bytes: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(bytes);
    let at = text.find("\"id\":")? + 5;
    let digits: String = text[at..].trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ids_in_line_ends() {
        assert_eq!(find_id(br#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"#), Some(42));
        assert_eq!(find_id(br#"aaaa"}]},"jsonrpc":"2.0","id": 7}"#), Some(7));
        assert_eq!(find_id(br#"{"jsonrpc":"2.0","method":"x"#), None);
    }
}
