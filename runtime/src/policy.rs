//! Tool policy: which tools a caller may see and call. A refused tool is
//! hidden from `tools/list` and its `tools/call` answered with an error,
//! the same way in both eras, so a client never learns more than it may use.
//!
//! A policy is name rules (exact names or `*`/`?` patterns; deny wins over
//! allow, the default decides the rest) and annotation rules (hints a tool
//! must declare, e.g. only `readOnlyHint` tools). A connector's manifest
//! sets one; an admin may narrow it per user, and a tool must pass both.

use berth_catalog::manifest::Hint;
use serde_json::Value;
use serde_json::value::RawValue;
use wildmatch::WildMatch;

use crate::jsonrpc::{self, ErrorObject, code};

/// Name and annotation rules over a default.
#[derive(Debug, Clone, Default)]
pub struct ToolPolicy {
    deny_by_default: bool,
    allow: Vec<WildMatch>,
    deny: Vec<WildMatch>,
    /// Hints a tool must have, with their required values.
    annotations: Vec<(Hint, bool)>,
}

impl ToolPolicy {
    /// A policy from a manifest's `policy` section.
    pub fn from_manifest(p: &berth_catalog::manifest::ToolPolicy) -> Self {
        Self {
            deny_by_default: p.default == berth_catalog::manifest::PolicyDefault::Deny,
            allow: p.allow.iter().map(|s| WildMatch::new(s)).collect(),
            deny: p.deny.iter().map(|s| WildMatch::new(s)).collect(),
            annotations: p.annotations.iter().map(|(h, v)| (*h, *v)).collect(),
        }
    }

    /// Whether the policy lets every tool through (nothing to check).
    pub fn is_open(&self) -> bool {
        !self.deny_by_default && self.deny.is_empty() && self.annotations.is_empty()
    }

    /// Whether deciding on a call needs the tool's annotations.
    pub fn needs_annotations(&self) -> bool {
        !self.annotations.is_empty()
    }

    /// Whether `tool`, with these `annotations` (its definition's, if known),
    /// may be listed and called. An annotation rule refuses a tool whose
    /// annotations are unknown.
    pub fn allows(&self, tool: &str, annotations: Option<&Value>) -> bool {
        let by_name = !self.deny.iter().any(|p| p.matches(tool))
            && (!self.deny_by_default || self.allow.iter().any(|p| p.matches(tool)));
        by_name && (self.annotations.is_empty() || annotations.is_some_and(|a| self.hints_hold(a)))
    }

    fn hints_hold(&self, annotations: &Value) -> bool {
        self.annotations.iter().all(|(hint, want)| {
            let have = annotations.get(hint.key()).and_then(Value::as_bool).unwrap_or(hint.default_value());
            have == *want
        })
    }

    /// The error for a `tools/call` the policy refuses, if it does.
    /// `annotations` looks up a tool's annotations (`Some(Null)`: the tool
    /// declares none; `None`: no such tool is known).
    pub fn check(
        &self,
        method: &str,
        params: Option<&Value>,
        annotations: impl FnOnce(&str) -> Option<Value>,
    ) -> Result<(), ErrorObject> {
        if method != "tools/call" || self.is_open() {
            return Ok(());
        }
        let name = params.and_then(|p| p.get("name")).and_then(Value::as_str).unwrap_or("");
        let found = if self.needs_annotations() { annotations(name) } else { None };
        let known = found.map(|a| if a.is_null() { Value::Object(Default::default()) } else { a });
        if self.allows(name, known.as_ref()) {
            return Ok(());
        }
        Err(ErrorObject::new(code::INVALID_PARAMS, format!("tool '{name}' is not available: refused by policy")))
    }

    /// A `tools/list` result without the tools the policy refuses; other
    /// results, and results that are not a tool list, pass untouched.
    pub fn filter(&self, method: &str, result: Box<RawValue>) -> Box<RawValue> {
        if method != "tools/list" || self.is_open() {
            return result;
        }
        let Ok(mut v) = serde_json::from_str::<Value>(result.get()) else { return result };
        let Some(tools) = v.get_mut("tools").and_then(Value::as_array_mut) else { return result };
        let empty = Value::Object(Default::default());
        tools.retain(|t| {
            let name = t.get("name").and_then(Value::as_str);
            name.is_some_and(|n| self.allows(n, Some(t.get("annotations").unwrap_or(&empty))))
        });
        jsonrpc::to_raw(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_catalog::manifest::{PolicyDefault, ToolPolicy as Manifest};
    use serde_json::json;

    fn policy(default: PolicyDefault, allow: &[&str], deny: &[&str]) -> ToolPolicy {
        ToolPolicy::from_manifest(&Manifest {
            default,
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            annotations: Default::default(),
        })
    }

    fn none(_: &str) -> Option<Value> {
        None
    }

    #[test]
    fn deny_wins_and_the_default_decides_the_rest() {
        let p = policy(PolicyDefault::Allow, &[], &["rm"]);
        assert!(p.allows("ls", None) && !p.allows("rm", None));
        let p = policy(PolicyDefault::Deny, &["ls", "rm"], &["rm"]);
        assert!(p.allows("ls", None) && !p.allows("rm", None) && !p.allows("cat", None));
    }

    #[test]
    fn patterns_match_whole_names() {
        let p = policy(PolicyDefault::Deny, &["read_*", "get_?"], &["*_secret"]);
        assert!(p.allows("read_file", None) && p.allows("get_x", None));
        assert!(!p.allows("read_secret", None), "deny wins over allow");
        assert!(!p.allows("get_xy", None) && !p.allows("xread_file", None) && !p.allows("write_file", None));
    }

    #[test]
    fn lists_lose_refused_tools_and_calls_are_refused() {
        let p = policy(PolicyDefault::Allow, &[], &["rm"]);
        let list = jsonrpc::to_raw(&json!({"tools": [{"name": "ls"}, {"name": "rm"}], "nextCursor": "x"}));
        let out: Value = serde_json::from_str(p.filter("tools/list", list).get()).unwrap();
        assert_eq!(out, json!({"tools": [{"name": "ls"}], "nextCursor": "x"}));
        assert!(p.check("tools/call", Some(&json!({"name": "rm"})), none).is_err());
        assert!(p.check("tools/call", Some(&json!({"name": "ls"})), none).is_ok());
        assert!(p.check("prompts/get", Some(&json!({"name": "rm"})), none).is_ok());
    }

    #[test]
    fn annotation_rules_use_mcp_defaults_and_refuse_the_unknown() {
        let mut doc = Manifest::default();
        doc.annotations.insert(Hint::ReadOnlyHint, true);
        doc.annotations.insert(Hint::OpenWorldHint, false);
        let p = ToolPolicy::from_manifest(&doc);
        let list = jsonrpc::to_raw(&json!({"tools": [
            {"name": "get", "annotations": {"readOnlyHint": true, "openWorldHint": false}},
            {"name": "fetch", "annotations": {"readOnlyHint": true}},
            {"name": "put", "annotations": {"readOnlyHint": false, "openWorldHint": false}},
            {"name": "bare"}
        ]}));
        let out: Value = serde_json::from_str(p.filter("tools/list", list).get()).unwrap();
        let names: Vec<&str> = out["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        // fetch: openWorldHint defaults to true; bare: readOnlyHint defaults to false.
        assert_eq!(names, ["get"]);
        let known = |n: &str| (n == "get").then(|| json!({"readOnlyHint": true, "openWorldHint": false}));
        assert!(p.check("tools/call", Some(&json!({"name": "get"})), known).is_ok());
        assert!(p.check("tools/call", Some(&json!({"name": "ghost"})), known).is_err(), "unknown tool");
        assert!(p.check("tools/call", Some(&json!({"name": "bare"})), |_| Some(Value::Null)).is_err());
    }
}
