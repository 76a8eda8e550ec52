//! The virtual server behind a bundle: a 2026-07-28 MCP server on
//! newline-delimited JSON-RPC, like any STDIO server, so the bundle's front
//! gives it both eras, its policy, audit, pools and health checks for free.
//!
//! It answers `tools/list` by asking every member and renaming what the
//! bundle takes, and relays `tools/call` to the member behind the name,
//! through that member's own endpoint and as the caller — so the member's
//! manifest, user and group policies, pins, credentials and audit apply
//! exactly as for a direct call. Progress and log notifications of a call
//! come back as they arrive; an `InputRequiredResult` passes through whole,
//! and the client's retry finds its way back by the same name.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use axum::body::{Body, Bytes};
use berth_catalog::VersionRef;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, header};
use parking_lot::Mutex;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::{Bundle, Member};
use crate::era::{self, meta};
use crate::front::CallerRef;
use crate::hosting::Hosting;
use crate::jsonrpc::{self, ErrorObject, Outcome, code};

/// Most tool pages read from one member for one `tools/list`.
const MAX_PAGES: usize = 50;

/// Largest answer read from a member.
const MAX_ANSWER: usize = 64 << 20;

/// One bundle, answering for one caller.
pub struct BundleServer {
    bundle: Arc<Bundle>,
    caller: CallerRef,
    hosting: Weak<Hosting>,
}

/// Requests in flight, by JSON-RPC id, so a cancellation can stop one.
type InFlight = Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>;

impl BundleServer {
    /// The bundle's server for `caller`, relaying through `hosting`.
    pub fn new(bundle: Arc<Bundle>, caller: CallerRef, hosting: Weak<Hosting>) -> Arc<Self> {
        Arc::new(Self { bundle, caller, hosting })
    }

    /// Serves requests read from `input` until it closes, each in a task of
    /// its own, writing answers and notifications to `output`.
    pub async fn run(
        self: Arc<Self>,
        input: impl AsyncRead + Send + Unpin + 'static,
        mut output: impl AsyncWrite + Send + Unpin + 'static,
    ) {
        let (tx, mut rx) = mpsc::channel::<String>(256);
        let writer = tokio::spawn(async move {
            while let Some(mut line) = rx.recv().await {
                line.push('\n');
                if output.write_all(line.as_bytes()).await.is_err() || output.flush().await.is_err() {
                    return;
                }
            }
        });
        let in_flight = InFlight::default();
        let mut lines = BufReader::new(input).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(msg) = serde_json::from_str::<Message>(&line) else {
                let err = ErrorObject::new(code::PARSE_ERROR, "not a JSON-RPC message");
                let _ = tx.send(jsonrpc::response(&jsonrpc::null_raw(), &Err(err.to_raw()))).await;
                continue;
            };
            match (msg.method, msg.id) {
                (Some(method), Some(id)) => self.start(method, id, msg.params, &tx, &in_flight),
                (Some(method), None) if method == "notifications/cancelled" => {
                    let id = msg.params.as_ref().and_then(|p| p.get("requestId")).map(Value::to_string);
                    if let Some(task) = id.and_then(|id| in_flight.lock().remove(&id)) {
                        task.abort();
                    }
                }
                // Other notifications, and answers to requests it never sends.
                _ => {}
            }
        }
        for (_, task) in in_flight.lock().drain() {
            task.abort();
        }
        drop(tx);
        let _ = writer.await;
    }

    fn start(
        self: &Arc<Self>,
        method: String,
        id: Box<RawValue>,
        params: Option<Value>,
        tx: &mpsc::Sender<String>,
        in_flight: &InFlight,
    ) {
        let (this, tx, flights) = (self.clone(), tx.clone(), in_flight.clone());
        let key = id.get().to_owned();
        let task = tokio::spawn(async move {
            let outcome = this.answer(&method, params, &tx).await;
            flights.lock().remove(id.get());
            let _ = tx.send(jsonrpc::response(&id, &outcome)).await;
        });
        in_flight.lock().insert(key, task.abort_handle());
    }

    async fn answer(&self, method: &str, params: Option<Value>, tx: &mpsc::Sender<String>) -> Outcome {
        match method {
            "server/discover" => Ok(jsonrpc::to_raw(&self.discover())),
            "ping" => Ok(jsonrpc::to_raw(&json!({"resultType": "complete"}))),
            "tools/list" => Ok(jsonrpc::to_raw(&self.list_tools(params).await)),
            "tools/call" => self.call_tool(params.unwrap_or_default(), tx).await,
            other => Err(ErrorObject::new(
                code::METHOD_NOT_FOUND,
                format!("bundle {} offers tools only; it has no {other}", self.bundle.name),
            )
            .to_raw()),
        }
    }

    fn discover(&self) -> Value {
        let mut result = json!({
            "supportedVersions": [era::MODERN],
            "capabilities": {"tools": {}},
            "_meta": {meta::SERVER_INFO: {"name": format!("bundle/{}", self.bundle.name), "version": env!("CARGO_PKG_VERSION")}},
            "resultType": "complete",
        });
        if !self.bundle.description.is_empty() {
            result["instructions"] = self.bundle.description.clone().into();
        }
        result
    }

    /// Every member's tools that the bundle takes, renamed. A member that
    /// cannot answer is left out (and logged) rather than failing the list.
    async fn list_tools(&self, params: Option<Value>) -> Value {
        let meta = params.and_then(|p| p.get("_meta").cloned());
        let lists = self.bundle.members.iter().map(|m| self.member_tools(m, meta.clone()));
        let mut tools = Vec::new();
        for (m, listed) in self.bundle.members.iter().zip(futures_util::future::join_all(lists).await) {
            match listed {
                Ok(listed) => tools.extend(listed),
                Err(e) => {
                    tracing::warn!(bundle = %self.bundle.name, connector = %m.connector, error = %e.message, "a bundle member's tools are missing from its list")
                }
            }
        }
        // What a caller may see depends on who they are: never shared, never fresh.
        json!({"tools": tools, "resultType": "complete", "ttlMs": 0, "cacheScope": "private"})
    }

    async fn member_tools(&self, m: &Member, meta: Option<Value>) -> Result<Vec<Value>, ErrorObject> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params = json!({});
            if let Some(meta) = &meta {
                params["_meta"] = meta.clone();
            }
            if let Some(c) = &cursor {
                params["cursor"] = c.clone().into();
            }
            let page: Value = match self.relay(m, "tools/list", params, None).await {
                Ok(raw) => serde_json::from_str(raw.get()).unwrap_or_default(),
                Err(raw) => return Err(error_object(&raw)),
            };
            for mut tool in page["tools"].as_array().cloned().unwrap_or_default() {
                if let Some(exposed) = tool["name"].as_str().and_then(|n| m.expose(n)) {
                    tool["name"] = exposed.into();
                    tools.push(tool);
                }
            }
            match page["nextCursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        Ok(tools)
    }

    async fn call_tool(&self, mut params: Value, tx: &mpsc::Sender<String>) -> Outcome {
        let exposed = params["name"].as_str().unwrap_or("").to_owned();
        let Some((member, tool)) = self.bundle.resolve(&exposed) else {
            let msg = format!("bundle {} has no tool '{exposed}'", self.bundle.name);
            return Err(ErrorObject::new(code::INVALID_PARAMS, msg).to_raw());
        };
        params["name"] = tool.into();
        self.relay(member, "tools/call", params, Some(tx)).await
    }

    /// Sends one request to a member's endpoint as the caller and waits for
    /// its answer, passing notifications on to `tx` as they come.
    async fn relay(&self, m: &Member, method: &str, mut params: Value, tx: Option<&mpsc::Sender<String>>) -> Outcome {
        let unavailable = |msg: String| Err(ErrorObject::new(code::SERVER_UNAVAILABLE, msg).to_raw());
        let Some(hosting) = self.hosting.upgrade() else { return unavailable("berth is shutting down".into()) };
        let version = m.version.as_deref().map_or(VersionRef::Latest, VersionRef::parse);
        let endpoint = match hosting.endpoint(&m.connector, &version).await {
            Ok(e) => e,
            Err(e) => return unavailable(format!("{}: {e}", m.connector)),
        };
        complete_meta(&mut params);
        let name = (method == "tools/call").then(|| params["name"].as_str().unwrap_or("").to_owned());
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": method, "params": params}).to_string();
        let res = crate::front::dispatch(
            endpoint.front.clone(),
            self.caller.clone(),
            headers(method, name.as_deref()),
            Bytes::from(body),
        )
        .await;
        let sse =
            res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let body = res.into_body();
        if !sse {
            return match axum::body::to_bytes(body, MAX_ANSWER).await {
                Ok(bytes) => {
                    final_outcome(&bytes).unwrap_or_else(|| unavailable(format!("{} gave no answer", m.connector)))
                }
                Err(e) => unavailable(format!("reading {}'s answer: {e}", m.connector)),
            };
        }
        let mut events = SseMessages::new(body);
        while let Some(data) = events.next().await {
            if let Some(outcome) = final_outcome(data.as_bytes()) {
                return outcome;
            }
            if let Some(tx) = tx {
                let _ = tx.send(data).await;
            }
        }
        unavailable(format!("{} ended its stream without an answer", m.connector))
    }
}

/// A message as it arrives: any of request, notification or response.
#[derive(serde::Deserialize)]
struct Message {
    #[serde(default)]
    id: Option<Box<RawValue>>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Value>,
}

/// The modern request headers a member's endpoint checks against the body.
fn headers(method: &str, name: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
    h.insert("mcp-protocol-version", HeaderValue::from_static(era::MODERN));
    if let Ok(v) = HeaderValue::from_str(method) {
        h.insert("mcp-method", v);
    }
    if let Some(v) = name.and_then(|n| HeaderValue::from_str(&crate::front::encode_header_value(n)).ok()) {
        h.insert("mcp-name", v);
    }
    h
}

/// Makes sure a relayed request carries the `_meta` a modern endpoint
/// requires (the bundle's own front always sends it; this is a backstop).
fn complete_meta(params: &mut Value) {
    let Value::Object(p) = params else { return };
    let Value::Object(m) = p.entry("_meta").or_insert_with(|| json!({})) else { return };
    if let Value::Object(defaults) = era::modern_meta(&crate::upstream::client_info(), &json!({}), era::MODERN) {
        for (k, v) in defaults {
            m.entry(k).or_insert(v);
        }
    }
}

/// The outcome in a JSON-RPC response; `None` for anything else.
fn final_outcome(bytes: &[u8]) -> Option<Outcome> {
    #[derive(serde::Deserialize)]
    struct Response {
        #[serde(default)]
        result: Option<Box<RawValue>>,
        #[serde(default)]
        error: Option<Box<RawValue>>,
    }
    let r: Response = serde_json::from_slice(bytes).ok()?;
    match (r.result, r.error) {
        (_, Some(e)) => Some(Err(e)),
        (Some(r), None) => Some(Ok(r)),
        (None, None) => None,
    }
}

fn error_object(raw: &RawValue) -> ErrorObject {
    let v: Value = serde_json::from_str(raw.get()).unwrap_or_default();
    ErrorObject::new(v["code"].as_i64().unwrap_or(code::INTERNAL_ERROR), v["message"].as_str().unwrap_or("failed"))
}

/// The `data` of each event in a server-sent event stream.
struct SseMessages {
    body: axum::body::BodyDataStream,
    buf: Vec<u8>,
}

impl SseMessages {
    fn new(body: Body) -> Self {
        Self { body: body.into_data_stream(), buf: Vec::new() }
    }

    async fn next(&mut self) -> Option<String> {
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = self.buf.drain(..end + 2).collect();
                let data = data_of(&String::from_utf8_lossy(&event));
                if !data.is_empty() {
                    return Some(data);
                }
            }
            let chunk = self.body.next().await?.ok()?;
            self.buf.extend_from_slice(&chunk);
        }
    }
}

/// An event's `data` lines, joined as the SSE format prescribes.
fn data_of(event: &str) -> String {
    event
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sse_events_are_read_across_chunks_and_comments() {
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b":\n\nevent: message\ndata: {\"a\"")),
            Ok(Bytes::from_static(b":1}\n\nevent: message\ndata: x\ndata: y\n\n")),
        ];
        let mut events = SseMessages::new(Body::from_stream(futures_util::stream::iter(chunks)));
        assert_eq!(events.next().await.as_deref(), Some("{\"a\":1}"));
        assert_eq!(events.next().await.as_deref(), Some("x\ny"));
        assert_eq!(events.next().await, None);
    }

    #[test]
    fn only_responses_end_a_relay() {
        assert!(matches!(final_outcome(br#"{"jsonrpc":"2.0","id":0,"result":{"x":1}}"#), Some(Ok(_))));
        assert!(matches!(
            final_outcome(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"m"}}"#),
            Some(Err(_))
        ));
        assert!(final_outcome(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#).is_none());
        assert!(final_outcome(b"not json").is_none());
    }

    #[test]
    fn missing_meta_is_filled_in_and_present_meta_kept() {
        let mut p = json!({"name": "t"});
        complete_meta(&mut p);
        assert_eq!(p["_meta"][meta::PROTOCOL_VERSION], era::MODERN);
        assert!(p["_meta"][meta::CLIENT_CAPABILITIES].is_object());
        let mut p = json!({"_meta": {meta::PROTOCOL_VERSION: era::MODERN, meta::CLIENT_CAPABILITIES: {"x": {}}, "traceparent": "t"}});
        complete_meta(&mut p);
        assert_eq!(p["_meta"][meta::CLIENT_CAPABILITIES], json!({"x": {}}), "the caller's own are kept");
        assert_eq!(p["_meta"]["traceparent"], "t");
        assert_eq!(p["_meta"][meta::CLIENT_INFO]["name"], "berth", "only what was missing is added");
    }
}
