//! The HTTP edge: one MCP endpoint that speaks both protocol eras.
//!
//! Every POST passes the [`guard`] checks, then is sorted by era: a session
//! header, a batch or `initialize` means legacy ([`legacy`]); a modern
//! `MCP-Protocol-Version` means the stateless revision ([`modern`]). Both
//! relay to the same [`Host`], which speaks whatever era the server does.

mod continuation;
pub mod guard;
mod legacy;
mod listen;
mod modern;
mod reply;
mod session;
mod tools;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode};

pub use continuation::Continuations;
pub use modern::encode_header_value;
pub use session::Sessions;

use crate::audit::{Audit, AuditRecord, Decision};
use crate::era;
use crate::jsonrpc::{self, ClientMessage, ErrorObject, code};
use crate::pins::{PinStatus, Pins};
use crate::policy::ToolPolicy;

/// Who is calling, as the router authenticated them. Absent when the
/// endpoint is open to anyone who reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user (the token's subject).
    pub user: String,
    /// The OAuth client acting for them.
    pub client_id: String,
}

/// The caller of one request, shared by the tasks that serve it.
pub type CallerRef = Option<Arc<Caller>>;
use crate::pool::{Pool, Pools};

/// Settings of the HTTP edge.
#[derive(Debug, Clone)]
pub struct FrontConfig {
    /// Allowed `Host` and `Origin` values.
    pub allow: guard::Allow,
    /// Largest request body; larger ones get 413.
    pub max_body: usize,
    /// Deepest JSON nesting accepted.
    pub max_depth: usize,
    /// Longest a request may run.
    pub request_timeout: Duration,
    /// Interval of SSE keep-alive comments.
    pub keepalive: Duration,
    /// How long a parked multi round-trip call waits for the client's retry.
    pub input_timeout: Duration,
    /// Most concurrent legacy sessions.
    pub max_sessions: usize,
    /// Idle time after which a legacy session ends.
    pub session_idle: Duration,
    /// Which tools callers may see and call.
    pub policy: Arc<ToolPolicy>,
    /// Where tool calls are recorded, if anywhere.
    pub audit: Option<Audit>,
    /// Approved tool definitions, when pinning is on.
    pub pins: Option<Arc<Pins>>,
    /// Per-user and per-group narrowing of `policy`, set by admins.
    pub user_policies: Option<Arc<crate::policies::UserPolicies>>,
    /// Group memberships, for group policies.
    pub groups: Option<Arc<crate::groups::Groups>>,
    /// The endpoint's name in audit records and metrics (`name@version`).
    pub label: String,
}

impl Default for FrontConfig {
    fn default() -> Self {
        Self {
            allow: guard::Allow::default(),
            max_body: 4 << 20,
            max_depth: 64,
            request_timeout: Duration::from_secs(600),
            keepalive: Duration::from_secs(15),
            input_timeout: Duration::from_secs(600),
            max_sessions: 10_000,
            session_idle: Duration::from_secs(3600),
            policy: Arc::default(),
            audit: None,
            pins: None,
            user_policies: None,
            groups: None,
            label: String::new(),
        }
    }
}

/// The shared state of one MCP endpoint.
pub struct Front {
    pools: Arc<Pools>,
    config: FrontConfig,
    /// Turns true when berth is shutting down: long-lived streams end.
    closing: tokio::sync::watch::Sender<bool>,
    sessions: Sessions,
    continuations: Continuations,
    /// Tools' annotations, for annotation policies.
    tools: tools::ToolIndex,
}

impl Front {
    /// An endpoint relaying to `host`, with its housekeeping task.
    pub fn new(pools: Arc<Pools>, config: FrontConfig) -> Arc<Self> {
        let front = Arc::new(Self {
            pools,
            sessions: Sessions::new(config.max_sessions, config.session_idle),
            continuations: Continuations::new(config.input_timeout),
            tools: Default::default(),
            closing: tokio::sync::watch::Sender::new(false),
            config,
        });
        crate::tick::every_second(&front, |front| {
            front.sessions.reap();
            front.continuations.reap();
        });
        front
    }

    /// Ends long-lived streams (GET streams, subscriptions) so a graceful
    /// shutdown is not held open by clients that never hang up.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`Front::close`] has been called.
    pub async fn closed(&self) {
        let _ = self.closing.subscribe().wait_for(|c| *c).await;
    }

    fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Serves one request addressed to this endpoint, for routers that pick
    /// among many endpoints themselves (`berth serve`, one per connector).
    pub async fn handle(self: Arc<Self>, req: axum::extract::Request) -> Response {
        let (parts, body) = req.into_parts();
        let caller = parts.extensions.get::<Caller>().cloned().map(Arc::new);
        match parts.method {
            http::Method::POST => match axum::body::to_bytes(body, self.config.max_body).await {
                Ok(bytes) => serve_post(self, caller, parts.headers, bytes).await,
                Err(_) => {
                    bad(StatusCode::PAYLOAD_TOO_LARGE, code::INVALID_REQUEST, "request body too large or cut short")
                }
            },
            http::Method::GET => serve_get(self, caller, parts.headers).await,
            http::Method::DELETE => serve_delete(self, caller, parts.headers).await,
            _ => bad(StatusCode::METHOD_NOT_ALLOWED, code::INVALID_REQUEST, "MCP endpoints take POST, GET and DELETE"),
        }
    }

    /// The pool serving a caller's stateless requests.
    pub(crate) async fn pool_for(&self, caller: &CallerRef) -> Result<Arc<Pool>, ErrorObject> {
        self.pools.for_user(caller.as_ref().map(|c| c.user.as_str())).await
    }

    /// Refuses a call the policy forbids, or to a tool whose definition
    /// changed since it was approved.
    pub(crate) async fn check_call(
        &self,
        method: &str,
        params: Option<&serde_json::Value>,
        caller: &CallerRef,
    ) -> Result<(), ErrorObject> {
        let narrowing = self.caller_policies(caller);
        let needs_annotations =
            self.config.policy.needs_annotations() || narrowing.iter().any(|p| p.needs_annotations());
        if method == "tools/call" && needs_annotations {
            let tool = params.and_then(|p| p.get("name")).and_then(serde_json::Value::as_str).unwrap_or("");
            self.learn_tool(tool, caller).await?;
        }
        let known = |name: &str| self.tools.get(name);
        self.config.policy.check(method, params, known)?;
        for p in narrowing {
            p.check(method, params, known)?;
        }
        if method == "tools/call"
            && let Some(pins) = &self.config.pins
        {
            let tool = params.and_then(|p| p.get("name")).and_then(serde_json::Value::as_str).unwrap_or("");
            if !pins.callable(tool) {
                return Err(ErrorObject::new(
                    code::INVALID_PARAMS,
                    format!(
                        "tool '{tool}' changed since it was approved and is quarantined until an admin approves it"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A result as this caller may see it: refused and quarantined tools
    /// taken out of a `tools/list`.
    pub(crate) fn filter_result(
        &self,
        method: &str,
        result: Box<serde_json::value::RawValue>,
        caller: &CallerRef,
    ) -> Box<serde_json::value::RawValue> {
        let narrowing = self.caller_policies(caller);
        // Only annotation rules need the index; a call to a tool it lacks
        // asks the server (see `learn_tool`), so skipping here loses nothing.
        let judges_annotations =
            self.config.policy.needs_annotations() || narrowing.iter().any(|p| p.needs_annotations());
        if method == "tools/list"
            && judges_annotations
            && let Ok(page) = serde_json::from_str::<serde_json::Value>(result.get())
        {
            self.tools.record(&page);
        }
        let mut result = self.config.policy.filter(method, result);
        for p in narrowing {
            result = p.filter(method, result);
        }
        let Some(pins) = self.config.pins.as_ref().filter(|_| method == "tools/list") else { return result };
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(result.get()) else { return result };
        let Some(tools) = v.get_mut("tools").and_then(serde_json::Value::as_array_mut) else { return result };
        tools.retain(|t| pins.judge(t) == PinStatus::Approved);
        jsonrpc::to_raw(&v)
    }

    /// The policies an admin set on this connector for the caller and for
    /// each group the caller is in; a tool must pass every one.
    fn caller_policies(&self, caller: &CallerRef) -> Vec<Arc<ToolPolicy>> {
        let (Some(all), Some(caller)) = (self.config.user_policies.as_ref(), caller.as_ref()) else {
            return Vec::new();
        };
        let groups = self.config.groups.as_ref().map(|g| g.of(&caller.user)).unwrap_or_default();
        all.get(&caller.user)
            .into_iter()
            .chain(groups.iter().filter_map(|g| all.get(&crate::policies::group_subject(g))))
            .collect()
    }

    /// Records one tool call, when auditing is on: `instance` served it
    /// (none when it was refused first). Other requests are not recorded.
    pub(crate) fn audit(
        &self,
        caller: &CallerRef,
        req: &jsonrpc::Request,
        instance: Option<u64>,
        decision: Decision,
        outcome: Option<&jsonrpc::Outcome>,
        started: tokio::time::Instant,
    ) {
        let Some(audit) = self.config.audit.as_ref().filter(|_| req.method == "tools/call") else { return };
        let (kind, error) = match (decision, outcome) {
            (Decision::Deny, _) => ("denied", String::new()),
            (_, Some(o)) => crate::audit::classify(o),
            (_, None) => ("error", "timed out".to_owned()),
        };
        let tool = req.target_name().unwrap_or("");
        let mut r = AuditRecord::new(&self.config.label, tool, decision, kind, started.elapsed());
        r.error = error;
        r.instance = instance.map(|i| i.to_string()).unwrap_or_default();
        if audit.records_arguments() {
            r.arguments = req.params.as_ref().and_then(|p| p.get("arguments")).map(crate::audit::redact);
        }
        if let Some(c) = caller {
            r.user = c.user.clone();
            r.client_id = c.client_id.clone();
        }
        audit.record(r);
    }

    /// The axum router serving this endpoint at `path`.
    pub fn router(self: &Arc<Self>, path: &str) -> Router {
        Router::new()
            .route(path, post(post_mcp).get(get_mcp).delete(delete_mcp))
            .layer(DefaultBodyLimit::max(self.config.max_body))
            .with_state(self.clone())
    }
}

/// A JSON-RPC error with no id, for requests refused before they are read.
pub fn bad(status: StatusCode, code: i64, msg: impl Into<String>) -> Response {
    reply::error(status, None, &ErrorObject::new(code, msg))
}

async fn post_mcp(State(front): State<Arc<Front>>, headers: HeaderMap, body: Bytes) -> Response {
    serve_post(front, None, headers, body).await
}

async fn get_mcp(State(front): State<Arc<Front>>, headers: HeaderMap) -> Response {
    serve_get(front, None, headers).await
}

async fn delete_mcp(State(front): State<Arc<Front>>, headers: HeaderMap) -> Response {
    serve_delete(front, None, headers).await
}

async fn serve_post(front: Arc<Front>, caller: CallerRef, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = front.config.allow.check(&headers) {
        return bad(r.status, code::INVALID_REQUEST, r.message);
    }
    dispatch(front, caller, headers, body).await
}

/// Serves a POST made inside berth (a bundle relaying to a member): the
/// same checks, policies and audit as a request from the network, less the
/// `Host`/`Origin` guard, which protects browsers from DNS rebinding.
pub(crate) async fn dispatch(front: Arc<Front>, caller: CallerRef, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = guard::json_content(&headers) {
        return bad(r.status, code::INVALID_REQUEST, r.message);
    }
    if jsonrpc::nesting_depth(&body) > front.config.max_depth {
        return bad(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            format!("JSON nested deeper than {}", front.config.max_depth),
        );
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return bad(StatusCode::BAD_REQUEST, code::PARSE_ERROR, "body is not UTF-8");
    };
    if headers.contains_key(legacy::SESSION_HEADER) {
        return match legacy::session(&front, &headers, &caller) {
            Ok(session) => legacy::post(front.clone(), &headers, session, text).await,
            Err(res) => res,
        };
    }
    let version = headers.get("mcp-protocol-version").map(|v| v.to_str().unwrap_or("").to_owned());
    if jsonrpc::split_batch(text).map(|b| b.is_some()).unwrap_or(false) {
        return bad(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "a batch needs an Mcp-Session-Id (2025-03-26 sessions only)",
        );
    }
    let msg = match jsonrpc::parse_client(text) {
        Ok(m) => m,
        Err(err) => return bad(StatusCode::BAD_REQUEST, err.code, err.message),
    };
    if let ClientMessage::Request(req) = &msg
        && req.method == "initialize"
        && version.as_deref().is_none_or(|v| v != era::MODERN)
    {
        return legacy::initialize(&front, req.clone(), &caller).await;
    }
    match version.as_deref() {
        Some(era::MODERN) => match msg {
            ClientMessage::Request(req) => modern::request(front.clone(), &headers, era::MODERN, req, caller).await,
            ClientMessage::Notification { .. } => reply::accepted(),
            ClientMessage::Response { .. } => {
                bad(StatusCode::BAD_REQUEST, code::INVALID_REQUEST, "clients do not send responses in 2026-07-28")
            }
        },
        Some(v) if era::is_legacy(v) => bad(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "Mcp-Session-Id header is required; send initialize first",
        ),
        None => {
            let modern_body = matches!(&msg, ClientMessage::Request(r) if r.meta().is_some_and(|m| m.contains_key(era::meta::PROTOCOL_VERSION)));
            if modern_body {
                bad(
                    StatusCode::BAD_REQUEST,
                    code::HEADER_MISMATCH,
                    "Header mismatch: MCP-Protocol-Version header is missing",
                )
            } else {
                bad(
                    StatusCode::BAD_REQUEST,
                    code::INVALID_REQUEST,
                    "Mcp-Session-Id header is required; send initialize first",
                )
            }
        }
        Some(v) => {
            let id = match &msg {
                ClientMessage::Request(r) => Some(&*r.id),
                _ => None,
            };
            let err = ErrorObject::new(code::UNSUPPORTED_VERSION, format!("unsupported protocol version '{v}'"))
                .with_data(serde_json::json!({"requested": v, "supported": era::supported_versions()}));
            reply::error(StatusCode::BAD_REQUEST, id, &err)
        }
    }
}

async fn serve_get(front: Arc<Front>, caller: CallerRef, headers: HeaderMap) -> Response {
    if let Err(r) = front.config.allow.check(&headers) {
        return bad(r.status, code::INVALID_REQUEST, r.message);
    }
    if !headers.contains_key(legacy::SESSION_HEADER) {
        return bad(
            StatusCode::METHOD_NOT_ALLOWED,
            code::INVALID_REQUEST,
            "GET needs a legacy session; 2026-07-28 clients use subscriptions/listen",
        );
    }
    match legacy::session(&front, &headers, &caller) {
        Ok(session) => legacy::get_stream(&front, &headers, session),
        Err(res) => res,
    }
}

async fn serve_delete(front: Arc<Front>, caller: CallerRef, headers: HeaderMap) -> Response {
    if let Err(r) = front.config.allow.check(&headers) {
        return bad(r.status, code::INVALID_REQUEST, r.message);
    }
    if !headers.contains_key(legacy::SESSION_HEADER) {
        return bad(StatusCode::METHOD_NOT_ALLOWED, code::INVALID_REQUEST, "DELETE needs a legacy session");
    }
    match legacy::session(&front, &headers, &caller) {
        Ok(session) => {
            front.sessions.remove(&session.id);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(res) => res,
    }
}
