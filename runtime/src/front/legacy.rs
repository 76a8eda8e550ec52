//! The legacy front (2025-03-26, 2025-06-18, 2025-11-25): `initialize`,
//! sessions, the standalone GET stream, server-to-client requests relayed over
//! SSE, resumption and (in 2025-03-26) batches.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::modern::{capable, notification};
use super::reply::{self, Event};
use super::session::{GET_STREAM, Relayed, Session};
use super::{CallerRef, Front, guard};
use crate::audit::Decision;
use crate::era;
use crate::jsonrpc::{self, ClientMessage, ErrorObject, Request, code};
use crate::pool::Pin;
use crate::upstream::{Call, Connection, Era, Upcall};

/// The session header.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// Answers `initialize`: berth holds the server's handshake and gives the
/// client a session of its own.
pub async fn initialize(front: &Front, req: Request, caller: &CallerRef) -> Response {
    let pin = Pin::default();
    let user = caller.as_ref().map(|c| c.user.as_str());
    // A user who must connect an account first still gets a session: berth
    // answers for the server until it can start (see `Relay::open`).
    let ready = match front.pools.for_session(user).await {
        Ok(pool) => match pool.ready_pinned(&pin).await {
            Ok(r) => Some((pool, r)),
            Err(err) => return reply::error(StatusCode::OK, Some(&req.id), &err),
        },
        Err(err) if err.code == code::URL_ELICITATION_REQUIRED => None,
        Err(err) => return reply::error(StatusCode::OK, Some(&req.id), &err),
    };
    let params = req.params.clone().unwrap_or_default();
    let version = era::negotiate_legacy(params.get("protocolVersion").and_then(Value::as_str));
    let client_info = params.get("clientInfo").cloned().unwrap_or_else(|| json!({}));
    let caps = params.get("capabilities").cloned().unwrap_or_else(|| json!({}));
    let Some(session) = front.sessions.create(version.to_owned(), client_info, caps, caller.clone()) else {
        let err = ErrorObject::new(code::SERVER_UNAVAILABLE, "too many sessions; try again later");
        return reply::error(StatusCode::SERVICE_UNAVAILABLE, Some(&req.id), &err);
    };
    *session.pin.lock() = pin.lock().take();
    let mut result = match ready {
        Some((pool, ready)) => {
            let _ = session.pool.set(pool);
            let p = &ready.profile;
            let mut result = json!({"capabilities": p.capabilities, "serverInfo": p.server_info});
            if let Some(i) = &p.instructions {
                result["instructions"] = i.clone().into();
            }
            result
        }
        None => json!({
            "capabilities": {"tools": {}},
            "serverInfo": {"name": front.config.label, "version": env!("CARGO_PKG_VERSION")},
            "instructions": "This connector acts with the user's own account, which is not connected yet; \
                             its tools say where to connect it.",
        }),
    };
    result["protocolVersion"] = version.into();
    tracing::debug!(session = %session.id, %version, "legacy session opened");
    let mut res = reply::json(StatusCode::OK, jsonrpc::response(&req.id, &Ok(jsonrpc::to_raw(&result))));
    if let Ok(v) = HeaderValue::from_str(&session.id) {
        res.headers_mut().insert(SESSION_HEADER, v);
    }
    res
}

/// Looks up the session a request names; 404 if it is unknown or ended.
/// The session a request names, if it exists and belongs to the caller
/// (another user's session id is answered exactly like an unknown one).
pub fn session(front: &Front, headers: &HeaderMap, caller: &CallerRef) -> Result<Arc<Session>, Response> {
    let id = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let user = caller.as_ref().map(|c| c.user.as_str());
    front.sessions.get(id).filter(|s| s.owner.as_ref().map(|o| o.user.as_str()) == user).ok_or_else(|| {
        let err = ErrorObject::new(code::INVALID_REQUEST, "session not found; send initialize to start a new one");
        reply::error(StatusCode::NOT_FOUND, None, &err)
    })
}

/// Handles a POST inside a session.
pub async fn post(front: Arc<Front>, headers: &HeaderMap, session: Arc<Session>, text: &str) -> Response {
    if let Some(v) = headers.get("mcp-protocol-version").and_then(|v| v.to_str().ok())
        && !era::is_legacy(v)
    {
        let err =
            ErrorObject::new(code::INVALID_REQUEST, format!("MCP-Protocol-Version '{v}' is not valid in this session"));
        return reply::error(StatusCode::BAD_REQUEST, None, &err);
    }
    let sse = guard::accepts(headers, "text/event-stream");
    match jsonrpc::split_batch(text) {
        Err(err) => reply::error(StatusCode::BAD_REQUEST, None, &err),
        Ok(Some(items)) if session.version == "2025-03-26" => batch(front, session, items).await,
        Ok(Some(_)) => {
            let err =
                ErrorObject::new(code::INVALID_REQUEST, format!("batches are not allowed in {}", session.version));
            reply::error(StatusCode::BAD_REQUEST, None, &err)
        }
        Ok(None) => match jsonrpc::parse_client(text) {
            Err(err) => reply::error(StatusCode::BAD_REQUEST, None, &err),
            Ok(ClientMessage::Request(req)) => match start(&front, &session, req) {
                Ok(rx) => reply::respond(rx, sse, front.config.keepalive).await,
                Err(res) => res,
            },
            Ok(other) => {
                accept(&session, other);
                reply::accepted()
            }
        },
    }
}

/// A 2025-03-26 batch: notifications and responses are taken, requests run
/// concurrently, and their responses come back as one JSON array.
async fn batch(front: Arc<Front>, session: Arc<Session>, items: Vec<Box<RawValue>>) -> Response {
    let mut waits = Vec::new();
    let mut answers = Vec::new();
    for item in items {
        match jsonrpc::parse_client(item.get()) {
            Err(err) => answers.push(jsonrpc::error_without_id(&err)),
            Ok(ClientMessage::Request(req)) if req.method == "initialize" => {
                let err = ErrorObject::new(code::INVALID_REQUEST, "initialize cannot be batched");
                answers.push(jsonrpc::response(&req.id, &Err(err.to_raw())));
            }
            Ok(ClientMessage::Request(req)) => {
                if let Ok(mut rx) = start(&front, &session, req) {
                    waits.push(async move {
                        while let Some(ev) = rx.recv().await {
                            if ev.last {
                                return Some(ev.data);
                            }
                        }
                        None
                    })
                }
            }
            Ok(other) => accept(&session, other),
        }
    }
    answers.extend(join_all(waits).await.into_iter().flatten());
    if answers.is_empty() {
        return reply::accepted();
    }
    reply::json(StatusCode::OK, format!("[{}]", answers.join(",")))
}

/// Takes a notification or a response to a relayed server request.
fn accept(session: &Session, msg: ClientMessage) {
    match msg {
        ClientMessage::Response { id, outcome } => {
            let key: String = serde_json::from_str(id.get()).unwrap_or_default();
            match session.take_relayed(&key) {
                Some(Relayed::Server(conn, server_id)) => conn.respond(&server_id, &outcome),
                Some(Relayed::Berth(tx)) => {
                    let _ = tx.send(outcome);
                }
                None => tracing::debug!(id = id.get(), "response to no relayed request"),
            }
        }
        ClientMessage::Notification { method, params } => match method.as_str() {
            "notifications/initialized" => {}
            "notifications/cancelled" => {
                let id = params.as_ref().and_then(|p| p.get("requestId")).map(Value::to_string).unwrap_or_default();
                session.cancel(&id);
            }
            _ => {
                let pinned = session.pin.lock().as_ref().and_then(std::sync::Weak::upgrade);
                let any = || session.pool.get().and_then(|p| p.current());
                if let Some(ready) = pinned.and_then(|h| h.current()).or_else(any) {
                    ready.conn.notify(&method, params);
                }
            }
        },
        ClientMessage::Request(_) => {}
    }
}

/// Starts a request; the receiver yields its events, the last one final.
fn start(front: &Arc<Front>, session: &Arc<Session>, mut req: Request) -> Result<mpsc::Receiver<Event>, Response> {
    let (tx, rx) = mpsc::channel(64);
    let local = |result: Value| {
        let _ = tx.try_send(Event::last(jsonrpc::response(&req.id, &Ok(jsonrpc::to_raw(&result))), StatusCode::OK));
    };
    match req.method.as_str() {
        "initialize" => {
            let err = ErrorObject::new(code::INVALID_REQUEST, "this session is already initialized");
            return Err(reply::error(StatusCode::BAD_REQUEST, Some(&req.id), &err));
        }
        "ping" => local(json!({})),
        "logging/setLevel" => {
            *session.log_level.lock() = req.param_str("level").map(str::to_owned);
            local(json!({}));
        }
        "resources/unsubscribe" => {
            if let Some(uri) = req.param_str("uri") {
                session.resources.lock().remove(uri);
            }
            local(json!({}));
        }
        _ => {
            if req.method == "resources/subscribe"
                && let Some(uri) = req.param_str("uri")
            {
                session.resources.lock().insert(uri.to_owned());
            }
            let span = crate::trace::request_span(&mut req, &front.config.label);
            let relay =
                Relay { front: front.clone(), session: session.clone(), req, started: tokio::time::Instant::now() };
            tokio::spawn(relay.run(tx).instrument(span));
        }
    }
    Ok(rx)
}

/// A call sent to an instance.
struct Opened {
    call: Call,
    conn: Connection,
    /// Set when the server is modern: its input requests are then asked of
    /// the client and the call retried with the answers.
    modern_params: Option<Value>,
    /// The instance serving it.
    instance: u64,
}

struct Relay {
    front: Arc<Front>,
    session: Arc<Session>,
    req: Request,
    started: tokio::time::Instant,
}

impl Relay {
    fn caller(&self) -> CallerRef {
        self.session.owner.clone()
    }

    async fn run(self, tx: mpsc::Sender<Event>) {
        let client_id = self.req.id.get().to_owned();
        let cancelled = self.session.start_request(&client_id);
        let mut out = Out { session: self.session.clone(), tx, stream: self.session.new_stream(), attached: true };
        match self.open().await {
            Ok(opened) => self.pump(opened, &mut out, cancelled).await,
            Err(err) => out.send(jsonrpc::response(&self.req.id, &self.refusal(err)), true).await,
        }
        self.session.end_request(&client_id);
    }

    async fn open(&self) -> Result<Opened, ErrorObject> {
        let caller = self.caller();
        if let Err(e) = self.front.check_call(&self.req.method, self.req.params.as_ref(), &caller).await {
            self.front.audit(&caller, &self.req, None, Decision::Deny, None, self.started);
            return Err(e);
        }
        let pool = match self.session.pool.get() {
            Some(pool) => pool.clone(),
            None => {
                // Opened before the user's account was connected: try again now.
                let user = caller.as_ref().map(|c| c.user.as_str());
                let pool = self.front.pools.for_session(user).await?;
                self.session.pool.get_or_init(|| pool).clone()
            }
        };
        let lease = pool.lease_pinned(&self.session.pin).await?;
        let mut params = self.req.params.clone();
        let modern = lease.profile.era == Era::Modern;
        if modern {
            era::add_modern_meta(&mut params, &self.session.client_info, &self.session.capabilities);
        }
        let (conn, instance) = (lease.conn.clone(), lease.instance());
        let call = conn.call(&self.req.method, params.clone(), true)?.hold(lease);
        Ok(Opened { call, conn, modern_params: params.filter(|_| modern), instance })
    }

    /// What the client hears when no instance can take the request. A call
    /// that needs the user to connect an account is a tool error saying
    /// where, which every client shows (and its model can repeat), unless
    /// the client handles URL elicitations itself (`-32042`, 2025-11-25).
    fn refusal(&self, err: ErrorObject) -> jsonrpc::Outcome {
        let url_capable = self.session.capabilities.pointer("/elicitation/url").is_some_and(|c| !c.is_null());
        if err.code == code::URL_ELICITATION_REQUIRED && self.req.method == "tools/call" && !url_capable {
            let result = json!({"content": [{"type": "text", "text": err.message}], "isError": true});
            return Ok(jsonrpc::to_raw(&result));
        }
        Err(err.to_raw())
    }

    /// Relays events until the final response. A client that drops the
    /// stream has not cancelled (legacy semantics): later events go to its
    /// GET stream and all of them stay in the log for resumption.
    async fn pump(&self, opened: Opened, out: &mut Out, mut cancelled: oneshot::Receiver<()>) {
        let Opened { mut call, conn, modern_params, instance } = opened;
        let deadline = tokio::time::Instant::now() + self.front.config.request_timeout;
        loop {
            let up = tokio::select! {
                up = call.next() => up,
                _ = &mut cancelled => return,
                _ = tokio::time::sleep_until(deadline) => Upcall::Done(Err(timed_out())),
            };
            let data = match up {
                Upcall::Progress(p) => notification("notifications/progress", &p),
                Upcall::Log(p) => {
                    let min = self.session.log_level.lock().clone();
                    match min {
                        Some(min) if era::log_passes(p["level"].as_str().unwrap_or("info"), &min) => {
                            notification("notifications/message", &p)
                        }
                        _ => continue,
                    }
                }
                Upcall::Tagged { .. } => continue,
                Upcall::ServerRequest { id, method, params } => {
                    if !capable(&self.session.capabilities, &method) {
                        let err =
                            ErrorObject::new(code::METHOD_NOT_FOUND, format!("the client does not support {method}"));
                        conn.respond(&id, &Err(err.to_raw()));
                        continue;
                    }
                    let ours = self.session.relay_request(Relayed::Server(conn.clone(), id));
                    let ours = jsonrpc::to_raw(&Value::from(ours));
                    jsonrpc::request(Some(&ours), &method, params.as_deref())
                }
                Upcall::Done(Ok(result)) if modern_params.is_some() && is_input_required(&result) => {
                    let answered = tokio::select! {
                        a = self.ask_client(&result, out) => a,
                        _ = &mut cancelled => return,
                        _ = tokio::time::sleep_until(deadline) => Err(ErrorObject::new(code::TIMEOUT, "the request timed out")),
                    };
                    let retry = answered.and_then(|(responses, state)| {
                        let mut params = modern_params.clone().unwrap_or_else(|| json!({}));
                        params["inputResponses"] = responses;
                        if let Some(state) = state {
                            params["requestState"] = state;
                        }
                        conn.call(&self.req.method, Some(params), true)
                    });
                    match retry {
                        Ok(next) => {
                            call = next.carry(&mut call);
                            continue;
                        }
                        Err(err) => {
                            out.send(jsonrpc::response(&self.req.id, &Err(err.to_raw())), true).await;
                            return;
                        }
                    }
                }
                Upcall::Done(outcome) => {
                    if self.req.method == "tools/call" {
                        let (caller, started) = (self.caller(), self.started);
                        self.front.audit(&caller, &self.req, Some(instance), Decision::Allow, Some(&outcome), started);
                    }
                    let outcome = outcome.map(|r| self.front.filter_result(&self.req.method, r, &self.caller()));
                    out.send(jsonrpc::response(&self.req.id, &outcome), true).await;
                    return;
                }
            };
            out.send(data, false).await;
        }
    }

    /// Asks the legacy client what a modern server's `InputRequiredResult`
    /// wants, as ordinary server-to-client requests on its stream, and
    /// gathers the answers as `inputResponses` (plus the state to echo).
    async fn ask_client(&self, result: &RawValue, out: &mut Out) -> Result<(Value, Option<Value>), ErrorObject> {
        let result: Value = serde_json::from_str(result.get())
            .map_err(|e| ErrorObject::new(code::INTERNAL_ERROR, format!("invalid result from server: {e}")))?;
        let mut waiting = Vec::new();
        if let Some(requests) = result.get("inputRequests").and_then(Value::as_object) {
            for (key, req) in requests {
                let method = req["method"].as_str().unwrap_or_default();
                if !capable(&self.session.capabilities, method) {
                    return Err(ErrorObject::new(
                        code::MISSING_CAPABILITY,
                        format!("the server needs {method}, which this client did not declare"),
                    ));
                }
                let (tx, rx) = oneshot::channel();
                let ours = jsonrpc::to_raw(&Value::from(self.session.relay_request(Relayed::Berth(tx))));
                let params = req.get("params").map(jsonrpc::to_raw);
                out.send(jsonrpc::request(Some(&ours), method, params.as_deref()), false).await;
                waiting.push((key.clone(), rx));
            }
        }
        let mut responses = serde_json::Map::new();
        for (key, rx) in waiting {
            match rx.await {
                Ok(Ok(answer)) => {
                    responses.insert(key, serde_json::from_str(answer.get()).unwrap_or(Value::Null));
                }
                Ok(Err(err)) => {
                    let err: Value = serde_json::from_str(err.get()).unwrap_or(Value::Null);
                    return Err(ErrorObject::new(code::INTERNAL_ERROR, format!("the client refused input: {err}")));
                }
                Err(_) => return Err(ErrorObject::new(code::INTERNAL_ERROR, "the client never answered")),
            }
        }
        Ok((Value::Object(responses), result.get("requestState").cloned()))
    }
}

fn timed_out() -> Box<RawValue> {
    ErrorObject::new(code::TIMEOUT, "the request timed out").to_raw()
}

/// Whether a result is a modern `InputRequiredResult`.
fn is_input_required(result: &RawValue) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(rename = "resultType", borrow)]
        result_type: Option<&'a str>,
    }
    serde_json::from_str::<Kind<'_>>(result.get()).is_ok_and(|k| k.result_type == Some("input_required"))
}

/// One request's stream to a legacy client: every event is logged for
/// resumption, then sent on the request's own stream, or on the GET stream
/// once the client has dropped it (or resumed it there).
struct Out {
    session: Arc<Session>,
    tx: mpsc::Sender<Event>,
    stream: u64,
    attached: bool,
}

impl Out {
    async fn send(&mut self, data: String, last: bool) {
        match self.session.log_event(self.stream, data, last) {
            None => {}
            Some(ev) if !self.attached => {
                self.session.send_on_get_stream(ev);
            }
            Some(ev) => {
                if let Err(mpsc::error::SendError(ev)) = self.tx.send(ev).await {
                    self.attached = false;
                    self.session.send_on_get_stream(ev);
                }
            }
        }
    }
}

/// Opens (or resumes) the standalone GET stream of a session.
pub fn get_stream(front: &Front, headers: &HeaderMap, session: Arc<Session>) -> Response {
    if !guard::accepts(headers, "text/event-stream") {
        return (StatusCode::NOT_ACCEPTABLE, "Accept must include text/event-stream").into_response();
    }
    let (tx, rx) = mpsc::channel(1024);
    session.open_get_stream(tx.clone(), headers.get("last-event-id").and_then(|v| v.to_str().ok()));
    if let Some(pool) = session.pool.get() {
        tokio::spawn(forward_changes(pool.subscribe(), session.clone(), tx));
    }
    reply::stream(None, rx, front.config.keepalive, Some(front.closing()))
}

async fn forward_changes(
    mut events: tokio::sync::broadcast::Receiver<Arc<crate::upstream::Broadcast>>,
    session: Arc<Session>,
    tx: mpsc::Sender<Event>,
) {
    loop {
        let ev = tokio::select! {
            ev = events.recv() => ev,
            _ = tx.closed() => return,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        if ev.method == "notifications/resources/updated" {
            let uri = ev.params.as_ref().and_then(|p| p.get("uri")).and_then(Value::as_str).unwrap_or("");
            if !session.resources.lock().contains(uri) {
                continue;
            }
        }
        let data = notification(&ev.method, ev.params.as_ref().unwrap_or(&json!({})));
        let Some(ev) = session.log_event(GET_STREAM, data, false) else { continue };
        if tx.send(ev).await.is_err() {
            return;
        }
    }
}
