//! Learning which protocol era a server speaks, once per connector.
//!
//! berth probes with `server/discover` (the modern way) and falls back to
//! `initialize` on any error or silence, as the 2026-07-28 stdio binding
//! prescribes. What it learns is the [`ServerProfile`] berth answers
//! `initialize` and `server/discover` from, whatever era the client speaks.

use std::time::Duration;

use serde_json::{Value, json};

use super::Connection;
use crate::era;
use crate::jsonrpc::{ErrorObject, code};

/// The protocol era of a server (or client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2025-03-26 … 2025-11-25: `initialize`, sessions, server-to-client requests.
    Legacy,
    /// 2026-07-28: stateless, per-request `_meta`, `server/discover`.
    Modern,
}

/// What a server told berth about itself.
#[derive(Debug, Clone)]
pub struct ServerProfile {
    /// Its era.
    pub era: Era,
    /// The protocol version berth speaks with it.
    pub version: String,
    /// Its `ServerCapabilities`.
    pub capabilities: Value,
    /// Its `Implementation` (name, version, …).
    pub server_info: Value,
    /// Its instructions, if any.
    pub instructions: Option<String>,
}

/// berth's identity towards servers.
pub fn client_info() -> Value {
    json!({"name": "berth", "version": env!("CARGO_PKG_VERSION")})
}

/// berth declares every client capability so that servers offer them; each
/// request is then answered by the real client, or refused if it lacks it.
fn client_capabilities() -> Value {
    json!({"roots": {"listChanged": true}, "sampling": {}, "elicitation": {"form": {}, "url": {}}})
}

/// Why a handshake failed.
#[derive(Debug)]
pub enum HandshakeError {
    /// The process died during the probe; relaunch it and skip the probe.
    DiedDuringProbe(String),
    /// The server refused or never answered.
    Failed(ErrorObject),
}

/// Performs the handshake. `known` skips the probe when the era is cached.
pub async fn handshake(
    conn: &Connection,
    known: Option<Era>,
    probe_timeout: Duration,
    init_timeout: Duration,
) -> Result<ServerProfile, HandshakeError> {
    if known != Some(Era::Legacy) {
        match probe(conn, probe_timeout).await {
            Ok(profile) => return Ok(profile),
            Err(reason) if conn.closed().is_some() => return Err(HandshakeError::DiedDuringProbe(reason)),
            Err(reason) => tracing::debug!(%reason, "server/discover probe failed; trying initialize"),
        }
    }
    initialize(conn, init_timeout).await.map_err(HandshakeError::Failed)
}

async fn probe(conn: &Connection, timeout: Duration) -> Result<ServerProfile, String> {
    let params = json!({"_meta": era::modern_meta(&client_info(), &client_capabilities(), era::MODERN)});
    let outcome = conn.request("server/discover", Some(params), timeout).await;
    let result: Value = match outcome {
        Ok(raw) => serde_json::from_str(raw.get()).map_err(|e| e.to_string())?,
        Err(raw) => {
            // A modern server that speaks another modern version says which.
            let err: Value = serde_json::from_str(raw.get()).unwrap_or_default();
            if err["code"] == code::UNSUPPORTED_VERSION {
                return Err(format!("server supports only {}", err["data"]["supported"]));
            }
            return Err(err.to_string());
        }
    };
    let supported = result["supportedVersions"].as_array().cloned().unwrap_or_default();
    if !supported.iter().any(|v| v == era::MODERN) {
        return Err(format!("server/discover answered without {} in supportedVersions", era::MODERN));
    }
    Ok(ServerProfile {
        era: Era::Modern,
        version: era::MODERN.to_owned(),
        capabilities: result.get("capabilities").cloned().unwrap_or_else(|| json!({})),
        server_info: result
            .pointer("/_meta/io.modelcontextprotocol~1serverInfo")
            .cloned()
            .unwrap_or_else(|| json!({"name": "unknown", "version": "0"})),
        instructions: result.get("instructions").and_then(Value::as_str).map(str::to_owned),
    })
}

/// A server that exits before it is ready usually failed to start (a missing
/// file, a missing mount, a crash). Its stderr is in berth's log; it is not
/// repeated to the client, since it may hold secrets.
async fn died(conn: &Connection) -> ErrorObject {
    // The exit status follows stdout's closing by a moment.
    for _ in 0..20 {
        if conn.closed().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let reason = conn.closed().unwrap_or_else(|| "it exited".into());
    ErrorObject::new(
        code::SERVER_UNAVAILABLE,
        format!("the server failed to start: {reason}; its stderr is in berth's log"),
    )
}

async fn initialize(conn: &Connection, timeout: Duration) -> Result<ServerProfile, ErrorObject> {
    let params = json!({
        "protocolVersion": era::LEGACY[0],
        "capabilities": client_capabilities(),
        "clientInfo": client_info(),
    });
    let raw = match conn.request("initialize", Some(params), timeout).await {
        Ok(raw) => raw,
        Err(_) if !conn.is_alive() => return Err(died(conn).await),
        Err(raw) => {
            let msg = format!("the server refused initialize: {}", raw.get());
            return Err(ErrorObject::new(code::SERVER_UNAVAILABLE, msg));
        }
    };
    let result: Value = serde_json::from_str(raw.get())
        .map_err(|e| ErrorObject::new(code::SERVER_UNAVAILABLE, format!("invalid initialize result: {e}")))?;
    conn.notify("notifications/initialized", None);
    let capabilities = result.get("capabilities").cloned().unwrap_or_else(|| json!({}));
    if capabilities.get("logging").is_some() {
        // Callers filter by their own level; the server sends everything.
        conn.notify_request_and_forget("logging/setLevel", json!({"level": "debug"}));
    }
    Ok(ServerProfile {
        era: Era::Legacy,
        version: result["protocolVersion"].as_str().unwrap_or(era::LEGACY[0]).to_owned(),
        capabilities,
        server_info: result.get("serverInfo").cloned().unwrap_or_else(|| json!({"name": "unknown", "version": "0"})),
        instructions: result.get("instructions").and_then(Value::as_str).map(str::to_owned),
    })
}

/// Asks a running server for a cheap answer: `ping` (legacy) or
/// `server/discover` (modern). Any answer, an error included, proves it
/// alive; silence for `timeout` or a dead connection does not.
pub async fn health_check(conn: &Connection, era: Era, timeout: Duration) -> Result<(), String> {
    let (method, params) = match era {
        Era::Legacy => ("ping", None),
        Era::Modern => (
            "server/discover",
            Some(json!({"_meta": era::modern_meta(&client_info(), &client_capabilities(), era::MODERN)})),
        ),
    };
    match conn.request(method, params, timeout).await {
        Ok(_) => Ok(()),
        Err(raw) => {
            let err: Value = serde_json::from_str(raw.get()).unwrap_or_default();
            if err["code"] == code::TIMEOUT || !conn.is_alive() {
                Err(err["message"].as_str().unwrap_or("no answer").to_owned())
            } else {
                Ok(())
            }
        }
    }
}
