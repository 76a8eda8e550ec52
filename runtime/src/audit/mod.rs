//! The audit trail: one record per tool call — who called which tool of
//! which connector on which instance, what the policy decided and how it
//! ended, and the arguments only while an admin has asked for them —
//! written off the request path, queryable through the admin API, and
//! counted in the Prometheus metrics.

mod redact;
mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use redact::redact;
pub use store::{AuditQuery, AuditStore};

use crate::jsonrpc::Outcome;

/// What the policy said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The call went to the server.
    Allow,
    /// The call was refused before reaching it.
    Deny,
}

/// One tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    /// The authenticated user; empty when the endpoint is open.
    pub user: String,
    /// The OAuth client; empty when the endpoint is open.
    pub client_id: String,
    /// `name@version`.
    pub connector: String,
    /// The tool's name.
    pub tool: String,
    /// The policy's decision.
    pub decision: Decision,
    /// `ok`, `tool_error` (the tool said `isError`), `error` (a JSON-RPC
    /// error), or `denied`.
    pub outcome: String,
    /// The JSON-RPC error's code and message, when there was one.
    pub error: String,
    /// Time from request to answer.
    pub duration_ms: i64,
    /// The instance that served it (its id in the admin API); empty when
    /// the call was refused before reaching one.
    #[serde(default)]
    pub instance: String,
    /// The call's arguments, recorded only while the `auditArguments`
    /// setting is on, with secret-looking values redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub arguments: Option<serde_json::Value>,
}

impl AuditRecord {
    /// A record stamped now.
    pub fn new(connector: &str, tool: &str, decision: Decision, outcome: &'static str, duration: Duration) -> Self {
        Self {
            at_ms: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0),
            user: String::new(),
            client_id: String::new(),
            connector: connector.to_owned(),
            tool: tool.to_owned(),
            decision,
            outcome: outcome.to_owned(),
            error: String::new(),
            duration_ms: duration.as_millis() as i64,
            instance: String::new(),
            arguments: None,
        }
    }
}

/// How a tools/call ended: `ok`, `tool_error` or `error`, and the error.
pub fn classify(outcome: &Outcome) -> (&'static str, String) {
    match outcome {
        Err(e) => {
            let v: serde_json::Value = serde_json::from_str(e.get()).unwrap_or_default();
            let code = v.get("code").and_then(serde_json::Value::as_i64).unwrap_or(0);
            let msg: String =
                v.get("message").and_then(serde_json::Value::as_str).unwrap_or("").chars().take(200).collect();
            ("error", format!("{code}: {msg}"))
        }
        // Only look closer when the flag can be there at all.
        Ok(r) if r.get().contains("\"isError\"") => {
            let v: serde_json::Value = serde_json::from_str(r.get()).unwrap_or_default();
            if v.get("isError").and_then(serde_json::Value::as_bool) == Some(true) {
                ("tool_error", String::new())
            } else {
                ("ok", String::new())
            }
        }
        Ok(_) => ("ok", String::new()),
    }
}

/// Where records go: a bounded queue drained by one writer task, so a slow
/// database never slows a call; when the queue is full the record is
/// counted as dropped (and said so) rather than held in memory.
#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<AuditRecord>,
    dropped: Arc<AtomicU64>,
    /// Whether records carry arguments (the `auditArguments` setting).
    arguments: Arc<AtomicBool>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").field("dropped", &self.dropped.load(Ordering::Relaxed)).finish()
    }
}

impl Audit {
    /// Starts the writer for `store`.
    pub fn spawn(store: AuditStore) -> Self {
        let (tx, mut rx) = mpsc::channel::<AuditRecord>(4096);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(256);
            while rx.recv_many(&mut batch, 256).await > 0 {
                if let Err(e) = store.insert(&batch).await {
                    tracing::error!(error = %e, lost = batch.len(), "audit records not written");
                }
                batch.clear();
            }
        });
        Self { tx, dropped: Arc::default(), arguments: Arc::default() }
    }

    /// The switch that makes records carry (redacted) arguments.
    pub fn arguments_switch(&self) -> Arc<AtomicBool> {
        self.arguments.clone()
    }

    /// Whether records carry arguments now.
    pub fn records_arguments(&self) -> bool {
        self.arguments.load(Ordering::Relaxed)
    }

    /// Records a call and counts it in the metrics, by connector and tool.
    /// Only a tool the server answered for is named: a name a client made
    /// up (refused, or an error) counts as `-`, so clients cannot grow the
    /// metrics without bound.
    pub fn record(&self, r: AuditRecord) {
        let answered = r.decision == Decision::Allow && (r.outcome == "ok" || r.outcome == "tool_error");
        let tool = if answered { r.tool.clone() } else { "-".to_owned() };
        let labels = [
            ("connector", r.connector.clone()),
            ("tool", tool.clone()),
            ("decision", format!("{:?}", r.decision).to_lowercase()),
            ("outcome", r.outcome.clone()),
        ];
        metrics::counter!("berth_tool_calls_total", &labels).increment(1);
        metrics::histogram!("berth_tool_call_duration_seconds", "connector" => r.connector.clone(), "tool" => tool)
            .record(r.duration_ms as f64 / 1000.0);
        if self.tx.try_send(r).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::counter!("berth_audit_dropped_total").increment(1);
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit queue full; records dropped");
            }
        }
    }
}
