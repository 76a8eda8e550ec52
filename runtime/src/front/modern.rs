//! The 2026-07-28 front: stateless requests with per-request `_meta`.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::continuation::binding;
use super::reply::{self, Event};
use super::{CallerRef, Front, guard};
use crate::audit::Decision;
use crate::era::{self, meta};
use crate::jsonrpc::{self, ErrorObject, Outcome, Request, code};
use crate::upstream::{Call, Connection, Era, Upcall};

/// Methods of the legacy revisions that 2026-07-28 removed.
const REMOVED: [&str; 4] = ["initialize", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"];

/// Handles one modern request, in a span carrying the caller's trace.
pub async fn request(
    front: Arc<Front>,
    headers: &HeaderMap,
    version: &str,
    mut req: Request,
    caller: CallerRef,
) -> Response {
    let span = crate::trace::request_span(&mut req, &front.config.label);
    handle(front, headers, version, req, caller).instrument(span).await
}

async fn handle(front: Arc<Front>, headers: &HeaderMap, version: &str, req: Request, caller: CallerRef) -> Response {
    let started = Instant::now();
    if let Err(err) = check_headers(headers, version, &req) {
        return reply::error(StatusCode::BAD_REQUEST, Some(&req.id), &err);
    }
    let Some(caps) = req.meta().and_then(|m| m.get(meta::CLIENT_CAPABILITIES)).cloned() else {
        let err =
            ErrorObject::new(code::INVALID_PARAMS, format!("_meta[\"{}\"] is required", meta::CLIENT_CAPABILITIES));
        return reply::error(StatusCode::BAD_REQUEST, Some(&req.id), &err);
    };
    match req.method.as_str() {
        "ping" => return reply::json(StatusCode::OK, jsonrpc::response(&req.id, &Ok(complete(json!({}))))),
        "server/discover" => return discover(&front, &req, &caller).await,
        "subscriptions/listen" => return super::listen::open(front, req, &caller).await,
        m if REMOVED.contains(&m) => {
            let err = ErrorObject::new(code::METHOD_NOT_FOUND, format!("{m} does not exist in {}", era::MODERN));
            return reply::error(StatusCode::NOT_FOUND, Some(&req.id), &err);
        }
        _ => {}
    }
    if let Err(err) = front.check_call(&req.method, req.params.as_ref(), &caller).await {
        front.audit(&caller, &req, None, Decision::Deny, None, started);
        return reply::error(StatusCode::OK, Some(&req.id), &err);
    }
    let lease = match front.pool_for(&caller).await {
        Ok(pool) => pool.lease().await,
        Err(err) => Err(err),
    };
    let lease = match lease {
        Ok(l) => l,
        Err(err) => return unavailable(&req, &caps, err),
    };
    let ready = lease.ready();
    let instance = lease.instance();
    let legacy = ready.profile.era == Era::Legacy;
    let bind = binding(&req.method, req.target_name());
    let resumed = req.param_str("requestState").filter(|_| legacy).map(str::to_owned);
    let (call, conn) = match resumed {
        Some(state) => match front.continuations.resume(&state, &bind) {
            Ok(parked) => {
                let answers = req.params.as_ref().and_then(|p| p.get("inputResponses"));
                for (key, server_id) in &parked.asked {
                    let outcome: Outcome = match answers.and_then(|a| a.get(key)) {
                        Some(v) => Ok(jsonrpc::to_raw(v)),
                        None => Err(ErrorObject::new(code::INVALID_PARAMS, "the client gave no answer").to_raw()),
                    };
                    parked.conn.respond(server_id, &outcome);
                }
                (parked.call, parked.conn)
            }
            Err(err) => return reply::error(StatusCode::BAD_REQUEST, Some(&req.id), &err),
        },
        None => {
            let mut params = req.params.clone();
            if legacy {
                era::strip_modern_meta(&mut params);
                // The answer to berth's own question (see `unavailable`): not the server's business.
                if let Some(Value::Object(p)) = params.as_mut() {
                    p.remove("inputResponses");
                }
            }
            match ready.conn.call(&req.method, params, true) {
                Ok(call) => (call.hold(lease), ready.conn.clone()),
                Err(err) => return reply::error(StatusCode::OK, Some(&req.id), &err),
            }
        }
    };
    let ctx = Relay {
        caller,
        started,
        front: front.clone(),
        binding: bind,
        caps,
        log_level: req.meta().and_then(|m| m.get(meta::LOG_LEVEL)).and_then(Value::as_str).map(str::to_owned),
        legacy,
        cacheable: !req
            .params
            .as_ref()
            .is_some_and(|p| p.get("requestState").is_some() || p.get("inputResponses").is_some()),
        instance,
        req,
    };
    ctx.respond(call, conn, guard::accepts(headers, "text/event-stream")).await
}

/// Checks the mirrored headers against the body, as the transport requires.
fn check_headers(headers: &HeaderMap, version: &str, req: &Request) -> Result<(), ErrorObject> {
    let mismatch = |msg: String| ErrorObject::new(code::HEADER_MISMATCH, format!("Header mismatch: {msg}"));
    let body_version = req.meta().and_then(|m| m.get(meta::PROTOCOL_VERSION)).and_then(Value::as_str);
    match body_version {
        Some(v) if v == version => {}
        Some(v) => {
            return Err(mismatch(format!("MCP-Protocol-Version '{version}' does not match _meta version '{v}'")));
        }
        None => return Err(mismatch(format!("_meta[\"{}\"] is missing", meta::PROTOCOL_VERSION))),
    }
    match header(headers, "mcp-method") {
        Some(m) if m == req.method => {}
        Some(m) => return Err(mismatch(format!("Mcp-Method '{m}' does not match body method '{}'", req.method))),
        None => return Err(mismatch("Mcp-Method header is missing".into())),
    }
    if let Some(name) = req.target_name() {
        let Some(raw) = header(headers, "mcp-name") else {
            return Err(mismatch("Mcp-Name header is missing".into()));
        };
        let decoded = decode_header_value(raw).ok_or_else(|| mismatch(format!("Mcp-Name '{raw}' is not valid")))?;
        if decoded != name {
            return Err(mismatch(format!("Mcp-Name '{decoded}' does not match body value '{name}'")));
        }
    }
    Ok(())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Decodes the `=?base64?…?=` sentinel form of a header value.
pub fn decode_header_value(raw: &str) -> Option<String> {
    match raw.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            String::from_utf8(bytes).ok()
        }
        None => Some(raw.to_owned()),
    }
}

/// A header value for `name`: as it is when it is visible ASCII, else in
/// the `=?base64?…?=` sentinel form (the inverse of [`decode_header_value`]).
pub fn encode_header_value(name: &str) -> String {
    let plain = !name.is_empty()
        && name.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !name.starts_with(' ')
        && !name.ends_with(' ')
        && !name.starts_with("=?base64?");
    if plain {
        name.to_owned()
    } else {
        format!("=?base64?{}?=", base64::engine::general_purpose::STANDARD.encode(name))
    }
}

fn complete(mut v: Value) -> Box<serde_json::value::RawValue> {
    v["resultType"] = "complete".into();
    jsonrpc::to_raw(&v)
}

async fn discover(front: &Front, req: &Request, caller: &CallerRef) -> Response {
    let ready = match front.pool_for(caller).await {
        Ok(pool) => pool.ready().await,
        Err(err) => Err(err),
    };
    let ready = match ready {
        Ok(r) => r,
        Err(err) => return reply::error(StatusCode::OK, Some(&req.id), &err),
    };
    let p = &ready.profile;
    let mut result = json!({
        "supportedVersions": [era::MODERN],
        "capabilities": p.capabilities,
        "_meta": { meta::SERVER_INFO: p.server_info },
        "ttlMs": 0,
        "cacheScope": "public",
    });
    if let Some(i) = &p.instructions {
        result["instructions"] = i.clone().into();
    }
    reply::json(StatusCode::OK, jsonrpc::response(&req.id, &Ok(complete(result))))
}

/// Why no instance can serve the request, as a modern client should hear
/// it: "connect your account at this URL" becomes a URL-mode elicitation in
/// an `InputRequiredResult` when the client can show one, so it sends the
/// user there and retries the same request; anything else is an error.
fn unavailable(req: &Request, caps: &Value, err: ErrorObject) -> Response {
    let url_capable = caps.pointer("/elicitation/url").is_some_and(|c| !c.is_null());
    let connect = url_capable && err.code == code::URL_ELICITATION_REQUIRED;
    let Some(asked) = err.data.as_ref().and_then(|d| d.pointer("/elicitations/0")).filter(|_| connect) else {
        return reply::error(StatusCode::OK, Some(&req.id), &err);
    };
    let key = asked["elicitationId"].as_str().unwrap_or("connect");
    let result = json!({
        "resultType": "input_required",
        "inputRequests": {
            key: {"method": "elicitation/create", "params": {"mode": "url", "url": asked["url"], "message": asked["message"]}},
        },
    });
    reply::json(StatusCode::OK, jsonrpc::response(&req.id, &Ok(jsonrpc::to_raw(&result))))
}

/// Whether a client's capabilities let it answer a server request.
pub fn capable(caps: &Value, method: &str) -> bool {
    let need = match method {
        "elicitation/create" => "elicitation",
        "sampling/createMessage" => "sampling",
        "roots/list" => "roots",
        _ => return false,
    };
    caps.get(need).is_some_and(|c| !c.is_null())
}

/// Drives one call for a modern client.
struct Relay {
    /// The request; a `tools/call` is audited.
    req: Request,
    /// The instance serving it.
    instance: u64,
    caller: CallerRef,
    started: Instant,
    front: Arc<Front>,
    binding: String,
    caps: Value,
    log_level: Option<String>,
    legacy: bool,
    cacheable: bool,
}

impl Relay {
    /// Serves the call from the handler itself: a plain JSON answer when the
    /// outcome is the first thing the server sends (no extra task, no
    /// channel), an SSE stream fed by a task once there is more to say.
    async fn respond(self, call: Call, conn: Connection, sse: bool) -> Response {
        let deadline = Instant::now() + self.front.config.request_timeout;
        let mut call = Some(call);
        while let Some(live) = call.as_mut() {
            let Ok(up) = tokio::time::timeout_at(deadline, live.next()).await else {
                return reply::json(StatusCode::OK, self.timed_out());
            };
            let Some(ev) = self.translate(up, &mut call, &conn) else { continue };
            if ev.last {
                return reply::json(ev.status, ev.data);
            }
            if !sse {
                continue;
            }
            let (tx, rx) = mpsc::channel(64);
            let _ = tx.try_send(ev);
            let keepalive = self.front.config.keepalive;
            if let Some(call) = call.take() {
                tokio::spawn(self.stream(call, conn, tx, deadline));
            }
            return reply::stream(None, rx, keepalive, None);
        }
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }

    /// Streams the rest of a call. Closing the response stream cancels the
    /// request (dropping `call` tells the server).
    async fn stream(self, call: Call, conn: Connection, tx: mpsc::Sender<Event>, deadline: Instant) {
        let mut call = Some(call);
        while let Some(live) = call.as_mut() {
            let up = tokio::select! {
                up = live.next() => up,
                _ = tx.closed() => return,
                _ = tokio::time::sleep_until(deadline) => {
                    let _ = tx.send(Event::last(self.timed_out(), StatusCode::OK)).await;
                    return;
                }
            };
            let Some(ev) = self.translate(up, &mut call, &conn) else { continue };
            let last = ev.last;
            if tx.send(ev).await.is_err() || last {
                return;
            }
        }
    }

    fn timed_out(&self) -> String {
        self.audit(None);
        jsonrpc::response(&self.req.id, &Err(ErrorObject::new(code::TIMEOUT, "the request timed out").to_raw()))
    }

    /// What the client sees of one upcall, if anything. A server request
    /// parks the call (taking it out of `call`) and ends the exchange with an
    /// `InputRequiredResult`.
    fn translate(&self, up: Upcall, call: &mut Option<Call>, conn: &Connection) -> Option<Event> {
        Some(match up {
            Upcall::Progress(p) => Event::message(notification("notifications/progress", &p)),
            Upcall::Log(p) => {
                let min = self.log_level.as_deref()?;
                if !era::log_passes(p["level"].as_str().unwrap_or("info"), min) {
                    return None;
                }
                Event::message(notification("notifications/message", &p))
            }
            Upcall::Tagged { method, params } => Event::message(notification(&method, &params)),
            Upcall::ServerRequest { id, method, params } => {
                if !self.legacy || !capable(&self.caps, &method) {
                    let err = ErrorObject::new(
                        code::METHOD_NOT_FOUND,
                        format!("the client did not declare the capability {method} needs"),
                    );
                    conn.respond(&id, &Err(err.to_raw()));
                    return None;
                }
                let key = "input-1".to_owned();
                let mut request = json!({"method": method});
                if let Some(p) = params {
                    request["params"] = serde_json::from_str(p.get()).unwrap_or(Value::Null);
                }
                let state = self.front.continuations.park(
                    call.take()?,
                    conn.clone(),
                    vec![(key.clone(), id)],
                    self.binding.clone(),
                );
                let result = json!({
                    "resultType": "input_required",
                    "inputRequests": { key: request },
                    "requestState": state,
                });
                Event::last(jsonrpc::response(&self.req.id, &Ok(jsonrpc::to_raw(&result))), StatusCode::OK)
            }
            Upcall::Done(outcome) => {
                self.audit(Some(&outcome));
                let status = status_for(&outcome);
                let method = &self.req.method;
                let outcome = match outcome {
                    Ok(r) if self.legacy => Ok(era::modernize_result(method, self.cacheable, r)),
                    other => other,
                }
                .map(|r| self.front.filter_result(method, r, &self.caller));
                Event::last(jsonrpc::response(&self.req.id, &outcome), status)
            }
        })
    }
}

impl Relay {
    /// Records how a `tools/call` ended (`None`: it timed out).
    fn audit(&self, outcome: Option<&Outcome>) {
        if self.req.method == "tools/call" {
            self.front.audit(&self.caller, &self.req, Some(self.instance), Decision::Allow, outcome, self.started);
        }
    }
}

/// `Method not found` is a 404 in the modern transport; other errors are 200s.
fn status_for(outcome: &Outcome) -> StatusCode {
    match outcome {
        Err(e) if serde_json::from_str::<Value>(e.get()).is_ok_and(|v| v["code"] == code::METHOD_NOT_FOUND) => {
            StatusCode::NOT_FOUND
        }
        _ => StatusCode::OK,
    }
}

/// A notification message.
pub fn notification(method: &str, params: &Value) -> String {
    jsonrpc::request(None, method, Some(&jsonrpc::to_raw(params)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64_sentinel() {
        assert_eq!(decode_header_value("get_weather").as_deref(), Some("get_weather"));
        assert_eq!(decode_header_value("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(), Some("Hello, 世界"));
        assert_eq!(decode_header_value("=?base64?!!?="), None);
        for name in ["get_weather", "Hello, 世界", " padded ", "=?base64?x?=", ""] {
            assert_eq!(decode_header_value(&encode_header_value(name)).as_deref(), Some(name));
        }
        assert_eq!(encode_header_value("a.b-c_d"), "a.b-c_d");
    }

    #[test]
    fn capabilities_gate_server_requests() {
        let caps = json!({"elicitation": {}});
        assert!(capable(&caps, "elicitation/create"));
        assert!(!capable(&caps, "sampling/createMessage"));
        assert!(!capable(&json!({}), "roots/list"));
    }
}
