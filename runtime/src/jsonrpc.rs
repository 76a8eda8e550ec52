//! Just enough JSON-RPC 2.0 for a relay.
//!
//! berth parses only what it acts on (`id`, `method`, `params`) and keeps
//! results and errors as raw JSON text, so unknown fields, extensions and future
//! methods pass through byte for byte and large results are never re-serialized.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Standard and MCP error codes berth emits.
pub mod code {
    /// The body is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The body is JSON but not a valid JSON-RPC message.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method (or no such tool/prompt where the server says so).
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Parameters are missing or malformed.
    pub const INVALID_PARAMS: i64 = -32602;
    /// Something failed inside berth or the server.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// MCP: HTTP headers disagree with the body, or a required one is missing.
    pub const HEADER_MISMATCH: i64 = -32020;
    /// MCP: the request needs a client capability it did not declare.
    pub const MISSING_CAPABILITY: i64 = -32021;
    /// MCP: the requested protocol version is not supported.
    pub const UNSUPPORTED_VERSION: i64 = -32022;
    /// berth (implementation range): the connector's process is gone or unreachable.
    pub const SERVER_UNAVAILABLE: i64 = -32001;
    /// berth: the request took longer than berth allows.
    pub const TIMEOUT: i64 = -32002;
    /// berth: every instance is at its concurrency limit and the request
    /// found the queue full, or waited in it past the deadline.
    pub const OVERLOADED: i64 = -32003;
    /// The user must visit a URL first (2025-11-25's URL elicitation
    /// required; `data.elicitations` lists them). Modern clients get an
    /// `InputRequiredResult` instead.
    pub const URL_ELICITATION_REQUIRED: i64 = -32042;
}

/// A JSON-RPC error object, as berth produces it.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorObject {
    /// Numeric code from [`code`] or the server.
    pub code: i64,
    /// Human-readable reason.
    pub message: String,
    /// Structured detail, if any.
    pub data: Option<Value>,
}

impl ErrorObject {
    /// An error with no `data`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }

    /// Adds structured detail.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The error object as JSON text.
    pub fn to_raw(&self) -> Box<RawValue> {
        let mut obj = Map::new();
        obj.insert("code".into(), self.code.into());
        obj.insert("message".into(), self.message.clone().into());
        if let Some(data) = &self.data {
            obj.insert("data".into(), data.clone());
        }
        to_raw(&Value::Object(obj))
    }
}

/// The outcome of a request: raw result text or raw error object text.
pub type Outcome = Result<Box<RawValue>, Box<RawValue>>;

/// Serializes a value that is known to serialize.
pub fn to_raw(value: &Value) -> Box<RawValue> {
    // A `Value` always serializes; the fallback is unreachable in practice.
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| null_raw())
}

/// JSON `null`, as the id of an answer to a message that had none readable.
pub fn null_raw() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!("null is valid JSON"))
}

/// Writes a complete response message.
pub fn response(id: &RawValue, outcome: &Outcome) -> String {
    let (key, body) = match outcome {
        Ok(r) => ("result", r.get()),
        Err(e) => ("error", e.get()),
    };
    let id = id.get();
    let mut s = String::with_capacity(body.len() + id.len() + 32);
    s.push_str("{\"jsonrpc\":\"2.0\",\"id\":");
    s.push_str(id);
    s.push_str(",\"");
    s.push_str(key);
    s.push_str("\":");
    s.push_str(body);
    s.push('}');
    s
}

/// An error response with no id (the request could not be parsed far enough).
pub fn error_without_id(err: &ErrorObject) -> String {
    response(&null_raw(), &Err(err.to_raw()))
}

/// Writes a request or notification message.
pub fn request(id: Option<&RawValue>, method: &str, params: Option<&RawValue>) -> String {
    let mut s = String::with_capacity(64 + params.map_or(0, |p| p.get().len()));
    s.push_str("{\"jsonrpc\":\"2.0\"");
    if let Some(id) = id {
        s.push_str(",\"id\":");
        s.push_str(id.get());
    }
    s.push_str(",\"method\":");
    s.push_str(&Value::from(method).to_string());
    if let Some(p) = params {
        s.push_str(",\"params\":");
        s.push_str(p.get());
    }
    s.push('}');
    s
}

/// One message a client sent.
#[derive(Debug)]
pub enum ClientMessage {
    /// A request that expects a response.
    Request(Request),
    /// A notification.
    Notification {
        /// The method name.
        method: String,
        /// Its parameters.
        params: Option<Value>,
    },
    /// A response to a request the server (through berth) sent.
    Response {
        /// The id berth gave the server's request.
        id: Box<RawValue>,
        /// Result or error.
        outcome: Outcome,
    },
}

/// A client request, with its params parsed because berth edits `_meta`.
#[derive(Debug, Clone)]
pub struct Request {
    /// The caller's id, kept as text to echo it back exactly.
    pub id: Box<RawValue>,
    /// The method name.
    pub method: String,
    /// The parameters; `None` when absent.
    pub params: Option<Value>,
}

impl Request {
    /// `params._meta`, if present.
    pub fn meta(&self) -> Option<&Map<String, Value>> {
        self.params.as_ref()?.get("_meta")?.as_object()
    }

    /// A string field of `params`.
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.params.as_ref()?.get(key)?.as_str()
    }

    /// The name the `Mcp-Name` header must mirror: `params.name` or `params.uri`.
    pub fn target_name(&self) -> Option<&str> {
        match self.method.as_str() {
            "tools/call" | "prompts/get" => self.param_str("name"),
            "resources/read" => self.param_str("uri"),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Wire {
    jsonrpc: Option<Box<RawValue>>,
    /// Present-but-null must stay distinguishable from absent: `"id": null`
    /// is an invalid request, not a notification.
    #[serde(default, deserialize_with = "present")]
    id: Option<Box<RawValue>>,
    method: Option<Box<RawValue>>,
    params: Option<Value>,
    result: Option<Box<RawValue>>,
    error: Option<Box<RawValue>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(d).map(Some)
}

/// Parses one JSON-RPC message from a JSON value's text.
///
/// The error says whether the text was not JSON at all ([`code::PARSE_ERROR`])
/// or not a valid message ([`code::INVALID_REQUEST`]).
pub fn parse_client(text: &str) -> Result<ClientMessage, ErrorObject> {
    let wire: Wire = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            ErrorObject::new(code::INVALID_REQUEST, format!("invalid JSON-RPC message: {e}"))
        } else {
            ErrorObject::new(code::PARSE_ERROR, format!("parse error: {e}"))
        }
    })?;
    from_wire(wire)
}

fn from_wire(wire: Wire) -> Result<ClientMessage, ErrorObject> {
    let invalid = |msg: &str| ErrorObject::new(code::INVALID_REQUEST, msg.to_owned());
    if wire.jsonrpc.as_deref().map(RawValue::get) != Some("\"2.0\"") {
        return Err(invalid("`jsonrpc` must be \"2.0\""));
    }
    if let Some(id) = &wire.id
        && !valid_id(id)
    {
        return Err(invalid("`id` must be a string or an integer"));
    }
    match (wire.method, wire.id, wire.result, wire.error) {
        (Some(method), id, None, None) => {
            let method: String =
                serde_json::from_str(method.get()).map_err(|_| invalid("`method` must be a string"))?;
            if let Some(p) = &wire.params
                && !p.is_object()
                && !p.is_array()
            {
                return Err(invalid("`params` must be an object"));
            }
            Ok(match id {
                Some(id) => ClientMessage::Request(Request { id, method, params: wire.params }),
                None => ClientMessage::Notification { method, params: wire.params },
            })
        }
        (None, Some(id), Some(result), None) => Ok(ClientMessage::Response { id, outcome: Ok(result) }),
        (None, Some(id), None, Some(error)) => Ok(ClientMessage::Response { id, outcome: Err(error) }),
        _ => Err(invalid("not a request, notification or response")),
    }
}

/// JSON-RPC ids are strings or numbers; MCP forbids null. berth also refuses
/// fractional numbers, which no client sends and which compare badly.
fn valid_id(id: &RawValue) -> bool {
    match serde_json::from_str::<Value>(id.get()) {
        Ok(Value::String(_)) => true,
        Ok(Value::Number(n)) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// Splits a body into messages: one object, or (where the revision allows
/// them) a non-empty array of objects.
pub fn split_batch(text: &str) -> Result<Option<Vec<Box<RawValue>>>, ErrorObject> {
    if !text.trim_start().starts_with('[') {
        return Ok(None);
    }
    let items: Vec<Box<RawValue>> =
        serde_json::from_str(text).map_err(|e| ErrorObject::new(code::PARSE_ERROR, format!("parse error: {e}")))?;
    if items.is_empty() {
        return Err(ErrorObject::new(code::INVALID_REQUEST, "empty batch"));
    }
    Ok(Some(items))
}

/// Deepest array/object nesting in a JSON text, counted without parsing it, so
/// hostile bodies are refused before a recursive parser sees them.
pub fn nesting_depth(text: &[u8]) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for &b in text {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_notification_response() {
        let m = parse_client(r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}"#).unwrap();
        assert!(matches!(m, ClientMessage::Request(ref r) if r.id.get() == "7" && r.method == "tools/list"));
        let m = parse_client(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(m, ClientMessage::Notification { ref method, .. } if method == "notifications/initialized"));
        let m = parse_client(r#"{"jsonrpc":"2.0","id":"s1","result":{"x":1}}"#).unwrap();
        assert!(matches!(m, ClientMessage::Response { outcome: Ok(ref r), .. } if r.get() == r#"{"x":1}"#));
    }

    #[test]
    fn classifies_bad_input() {
        assert_eq!(parse_client("{not json").unwrap_err().code, code::PARSE_ERROR);
        assert_eq!(parse_client("[1,2").unwrap_err().code, code::PARSE_ERROR);
        for bad in [
            r#"{"id":1,"method":"x"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":3}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"7"#,
        ] {
            assert_eq!(parse_client(bad).unwrap_err().code, code::INVALID_REQUEST, "{bad}");
        }
    }

    #[test]
    fn writes_responses_with_ids_verbatim() {
        let id = RawValue::from_string("\"a\\\"b\"".into()).unwrap();
        let out = response(&id, &Ok(RawValue::from_string("{\"ok\":true}".into()).unwrap()));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["id"], "a\"b");
        assert_eq!(v["result"]["ok"], true);
    }

    #[test]
    fn measures_nesting_ignoring_strings() {
        assert_eq!(nesting_depth(br#"{"a":[1,{"b":"[[[["}]}"#), 3);
        assert_eq!(nesting_depth(br#""\"[""#), 0);
    }
}
