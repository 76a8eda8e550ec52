//! W3C trace context through berth. A client puts `traceparent` (and
//! `tracestate`) at the root of a request's `_meta`, the convention MCP
//! instrumentation shares; berth opens a span for the request carrying the
//! trace id, and hands the server a `traceparent` whose parent is berth's
//! span, so the server's spans nest under berth's in the caller's trace.

use serde_json::Value;

use crate::jsonrpc::Request;

/// One request's place in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// The caller's span: 16 lowercase hex digits, not all zero.
    pub parent_id: String,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a version-00 `traceparent` (later versions: their first four
    /// fields, as the W3C spec asks). `None` for anything malformed.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('-');
        let (version, trace_id, parent_id, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        let valid = hex(version, 2)
            && version != "ff"
            && (version != "00" || parts.next().is_none())
            && hex(trace_id, 32)
            && !zero(trace_id)
            && hex(parent_id, 16)
            && !zero(parent_id)
            && hex(flags, 2);
        valid.then(|| Self {
            trace_id: trace_id.to_owned(),
            parent_id: parent_id.to_owned(),
            flags: u8::from_str_radix(flags, 16).unwrap_or(0),
        })
    }

    /// The same trace with `span_id` as the parent.
    pub fn child(&self, span_id: &str) -> String {
        format!("00-{}-{span_id}-{:02x}", self.trace_id, self.flags)
    }
}

/// A fresh span id: 16 hex digits, never all zero.
fn span_id() -> String {
    format!("{:016x}", rand::random_range(1..=u64::MAX))
}

/// The span for one request. With a valid `_meta.traceparent` it carries
/// the trace and the request's `traceparent` is rewritten to name berth's
/// span; a malformed one is dropped rather than passed on.
pub fn request_span(req: &mut Request, connector: &str) -> tracing::Span {
    let span = open_span(req, connector);
    tracing::debug!(parent: &span, "request");
    span
}

fn open_span(req: &mut Request, connector: &str) -> tracing::Span {
    let meta = req.params.as_mut().and_then(|p| p.get_mut("_meta")).and_then(Value::as_object_mut);
    let Some(meta) = meta else {
        return tracing::info_span!("mcp", connector, method = %req.method);
    };
    let Some(raw) = meta.get("traceparent") else {
        return tracing::info_span!("mcp", connector, method = %req.method);
    };
    match raw.as_str().and_then(TraceParent::parse) {
        Some(tp) => {
            let span = span_id();
            meta.insert("traceparent".into(), tp.child(&span).into());
            tracing::info_span!(
                "mcp",
                connector,
                method = %req.method,
                trace_id = %tp.trace_id,
                parent_span_id = %tp.parent_id,
                span_id = %span,
            )
        }
        None => {
            tracing::debug!(traceparent = %raw, "malformed traceparent dropped");
            meta.remove("traceparent");
            meta.remove("tracestate");
            tracing::info_span!("mcp", connector, method = %req.method)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_spec_example() {
        let tp = TraceParent::parse(GOOD).expect("valid");
        assert_eq!(tp.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id, "00f067aa0ba902b7");
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.child("1111111111111111"), "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01");
    }

    #[test]
    fn refuses_what_the_spec_refuses() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
        // A later version may add fields after the four it shares with 00.
        assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later").is_some());
    }

    fn request(meta: Value) -> Request {
        Request {
            id: crate::jsonrpc::to_raw(&json!(1)),
            method: "tools/call".into(),
            params: Some(json!({"name": "x", "_meta": meta})),
        }
    }

    #[test]
    fn the_server_sees_berths_span_as_its_parent() {
        let mut req = request(json!({"traceparent": GOOD, "tracestate": "a=b"}));
        let _span = request_span(&mut req, "c");
        let meta = req.meta().expect("meta");
        let sent = TraceParent::parse(meta["traceparent"].as_str().unwrap()).expect("still valid");
        assert_eq!(sent.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(sent.parent_id, "00f067aa0ba902b7");
        assert_eq!(meta["tracestate"], "a=b");
    }

    #[test]
    fn a_malformed_one_is_not_passed_on() {
        let mut req = request(json!({"traceparent": "garbage", "tracestate": "a=b", "other": 1}));
        let _span = request_span(&mut req, "c");
        assert_eq!(req.meta().map(|m| Value::Object(m.clone())), Some(json!({"other": 1})));
    }
}
