//! The two protocol eras and what berth adds or removes between them.
//!
//! Modern clients expect `resultType` on every result and caching hints on
//! list results; legacy servers send neither. Legacy servers do not know the
//! `io.modelcontextprotocol/*` request metadata; modern servers require it.
//! These edits are made on raw JSON text where possible, so a large result
//! is copied once and never parsed into a tree.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// The modern revision berth speaks.
pub const MODERN: &str = "2026-07-28";
/// Legacy revisions berth accepts from clients, newest first.
pub const LEGACY: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
/// The version a legacy request without `MCP-Protocol-Version` is taken to use.
pub const UNVERSIONED: &str = "2025-03-26";

/// `_meta` keys of the modern revision.
pub mod meta {
    /// Protocol version of the request.
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    /// The client's `Implementation`.
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    /// The client's capabilities for this request.
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    /// Log level the client opted into for this request.
    pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
    /// The listen request a notification belongs to.
    pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
    /// The server's `Implementation`, on results.
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    /// Prefix reserved for protocol keys.
    pub const PREFIX: &str = "io.modelcontextprotocol/";
}

/// Every version berth can serve, for `UnsupportedProtocolVersion` errors.
pub fn supported_versions() -> Vec<&'static str> {
    std::iter::once(MODERN).chain(LEGACY).collect()
}

/// Whether `v` is a legacy revision berth serves.
pub fn is_legacy(v: &str) -> bool {
    LEGACY.contains(&v)
}

/// The modern request `_meta` berth sends on a client's behalf.
pub fn modern_meta(client_info: &Value, capabilities: &Value, version: &str) -> Value {
    json!({
        meta::PROTOCOL_VERSION: version,
        meta::CLIENT_INFO: client_info,
        meta::CLIENT_CAPABILITIES: capabilities,
    })
}

/// Removes the modern protocol keys from `params._meta` before a request goes
/// to a legacy server, dropping `_meta` if nothing else is left in it.
pub fn strip_modern_meta(params: &mut Option<Value>) {
    let Some(Value::Object(p)) = params else { return };
    let Some(Value::Object(m)) = p.get_mut("_meta") else { return };
    m.retain(|k, _| !k.starts_with(meta::PREFIX));
    if m.is_empty() {
        p.remove("_meta");
    }
    p.remove("inputResponses");
    p.remove("requestState");
}

/// Adds modern `_meta` to a request going to a modern server for a legacy client.
pub fn add_modern_meta(params: &mut Option<Value>, client_info: &Value, capabilities: &Value) {
    let p = params.get_or_insert_with(|| json!({}));
    let Value::Object(p) = p else { return };
    let m = p.entry("_meta").or_insert_with(|| json!({}));
    if let (Value::Object(m), Value::Object(add)) = (m, modern_meta(client_info, capabilities, MODERN)) {
        m.extend(add);
    }
}

/// Methods whose results carry caching hints in the modern revision.
pub fn is_cacheable(method: &str) -> bool {
    matches!(
        method,
        "server/discover"
            | "tools/list"
            | "prompts/list"
            | "resources/list"
            | "resources/templates/list"
            | "resources/read"
    )
}

/// Caching hints berth attaches to a legacy server's cacheable results: never
/// fresh (the server made no promise) and private for reads, which may be
/// about the caller.
fn cache_hints(method: &str) -> &'static str {
    if method == "resources/read" {
        r#""ttlMs":0,"cacheScope":"private""#
    } else {
        r#""ttlMs":0,"cacheScope":"public""#
    }
}

/// Turns a legacy result into a modern one: `resultType`, plus caching hints
/// where the method calls for them. Keys already present are left alone.
pub fn modernize_result(method: &str, cacheable: bool, raw: Box<RawValue>) -> Box<RawValue> {
    let text = raw.get();
    let Some(body_start) = text.find('{').filter(|&i| text[..i].trim().is_empty()) else {
        return raw;
    };
    let present = top_level_keys(text);
    let mut add = String::new();
    if !present.iter().any(|k| k == "resultType") {
        add.push_str(r#""resultType":"complete""#);
    }
    if cacheable && is_cacheable(method) && !present.iter().any(|k| k == "ttlMs" || k == "cacheScope") {
        if !add.is_empty() {
            add.push(',');
        }
        add.push_str(cache_hints(method));
    }
    if add.is_empty() {
        return raw;
    }
    let rest = &text[body_start + 1..];
    let empty = rest.trim_start().starts_with('}');
    let mut out = String::with_capacity(text.len() + add.len() + 1);
    out.push('{');
    out.push_str(&add);
    if !empty {
        out.push(',');
    }
    out.push_str(rest);
    RawValue::from_string(out).unwrap_or(raw)
}

fn top_level_keys(text: &str) -> Vec<String> {
    #[derive(Deserialize)]
    struct Keys<'a>(#[serde(borrow)] std::collections::HashMap<String, &'a RawValue>);
    serde_json::from_str::<Keys<'_>>(text).map(|k| k.0.into_keys().collect()).unwrap_or_default()
}

/// MCP log levels in increasing severity.
const LEVELS: [&str; 8] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];

/// Whether a message at `level` passes a client's threshold `min`.
pub fn log_passes(level: &str, min: &str) -> bool {
    let rank = |l: &str| LEVELS.iter().position(|x| *x == l);
    match (rank(level), rank(min)) {
        (Some(l), Some(m)) => l >= m,
        (None, _) => true,
        (_, None) => false,
    }
}

/// The version berth answers a legacy `initialize` with: the client's, if
/// berth serves it, else berth's newest legacy one (the client then decides).
pub fn negotiate_legacy(requested: Option<&str>) -> &'static str {
    LEGACY.iter().copied().find(|v| Some(*v) == requested).unwrap_or(LEGACY[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.into()).unwrap()
    }

    #[test]
    fn modernizes_results() {
        let out = modernize_result("tools/call", true, raw(r#"{"content":[]}"#));
        let v: Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v, json!({"resultType": "complete", "content": []}));
        let out = modernize_result("tools/list", true, raw(" {}"));
        let v: Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v, json!({"resultType": "complete", "ttlMs": 0, "cacheScope": "public"}));
        let out = modernize_result("tools/list", false, raw(r#"{"tools":[]}"#));
        let v: Value = serde_json::from_str(out.get()).unwrap();
        assert_eq!(v, json!({"resultType": "complete", "tools": []}));
        let keep = r#"{"resultType":"input_required","requestState":"x"}"#;
        assert_eq!(modernize_result("tools/call", true, raw(keep)).get(), keep);
    }

    #[test]
    fn strips_only_protocol_meta() {
        let mut p = Some(json!({"name": "t", "_meta": {meta::PROTOCOL_VERSION: MODERN, "progressToken": 1}}));
        strip_modern_meta(&mut p);
        assert_eq!(p, Some(json!({"name": "t", "_meta": {"progressToken": 1}})));
        let mut p = Some(json!({"_meta": {meta::CLIENT_INFO: {}}, "requestState": "s"}));
        strip_modern_meta(&mut p);
        assert_eq!(p, Some(json!({})));
    }

    #[test]
    fn filters_log_levels() {
        assert!(log_passes("error", "warning"));
        assert!(!log_passes("info", "warning"));
        assert!(log_passes("debug", "debug"));
    }

    #[test]
    fn negotiates_legacy_versions() {
        assert_eq!(negotiate_legacy(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate_legacy(Some("2024-11-05")), LEGACY[0]);
    }
}
