//! Tool policy: which tools a caller may see and call. A refused tool is
//! hidden from `tools/list` and its `tools/call` answered with an error,
//! the same way in both eras, so a client never learns more than it may use.
//!
//! Today a policy comes from the connector's manifest; per-user and group
//! policies (which need to know the caller) layer on the same check.

use std::collections::HashSet;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::jsonrpc::{self, ErrorObject, code};

/// Allow and deny lists over a default.
#[derive(Debug, Clone, Default)]
pub struct ToolPolicy {
    deny_by_default: bool,
    allow: HashSet<String>,
    deny: HashSet<String>,
}

impl ToolPolicy {
    /// A policy from a manifest's `policy` section.
    pub fn from_manifest(p: &berth_catalog::manifest::ToolPolicy) -> Self {
        Self {
            deny_by_default: p.default == berth_catalog::manifest::PolicyDefault::Deny,
            allow: p.allow.iter().cloned().collect(),
            deny: p.deny.iter().cloned().collect(),
        }
    }

    /// Whether the policy lets every tool through (nothing to check).
    pub fn is_open(&self) -> bool {
        !self.deny_by_default && self.deny.is_empty()
    }

    /// Whether `tool` may be listed and called. Deny wins over allow.
    pub fn allows(&self, tool: &str) -> bool {
        !self.deny.contains(tool) && (self.allow.contains(tool) || !self.deny_by_default)
    }

    /// The error for a `tools/call` the policy refuses, if it does.
    pub fn check(&self, method: &str, params: Option<&Value>) -> Result<(), ErrorObject> {
        if method != "tools/call" || self.is_open() {
            return Ok(());
        }
        let name = params.and_then(|p| p.get("name")).and_then(Value::as_str).unwrap_or("");
        if self.allows(name) {
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
        tools.retain(|t| t.get("name").and_then(Value::as_str).is_some_and(|n| self.allows(n)));
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
        })
    }

    #[test]
    fn deny_wins_and_the_default_decides_the_rest() {
        let p = policy(PolicyDefault::Allow, &[], &["rm"]);
        assert!(p.allows("ls") && !p.allows("rm"));
        let p = policy(PolicyDefault::Deny, &["ls", "rm"], &["rm"]);
        assert!(p.allows("ls") && !p.allows("rm") && !p.allows("cat"));
    }

    #[test]
    fn lists_lose_refused_tools_and_calls_are_refused() {
        let p = policy(PolicyDefault::Allow, &[], &["rm"]);
        let list = jsonrpc::to_raw(&json!({"tools": [{"name": "ls"}, {"name": "rm"}], "nextCursor": "x"}));
        let out: Value = serde_json::from_str(p.filter("tools/list", list).get()).unwrap();
        assert_eq!(out, json!({"tools": [{"name": "ls"}], "nextCursor": "x"}));
        assert!(p.check("tools/call", Some(&json!({"name": "rm"}))).is_err());
        assert!(p.check("tools/call", Some(&json!({"name": "ls"}))).is_ok());
        assert!(p.check("prompts/get", Some(&json!({"name": "rm"}))).is_ok());
    }
}
