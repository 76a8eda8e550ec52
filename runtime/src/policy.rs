//! Tool policy: which tools, prompts and resources a caller may see and
//! use. A refused one is left out of its list (`tools/list`,
//! `prompts/list`, `resources/list`, `resources/templates/list`) and its
//! use (`tools/call`, `prompts/get`, `resources/read`, `resources/subscribe`)
//! answered with an error, the same way in both eras, so a client never
//! learns more than it may use.
//!
//! A policy is name rules (exact names or `*`/`?` patterns; deny wins over
//! allow, the default decides the rest) for each kind — resources by URI,
//! templates by URI template — and, for tools, annotation rules (hints a
//! tool must declare, e.g. only `readOnlyHint` tools). A connector's
//! manifest sets one; an admin may narrow it per user or group, and
//! everything must pass each.

use berth_catalog::manifest::{Hint, NameRules, PolicyDefault};
use serde_json::Value;
use serde_json::value::RawValue;
use wildmatch::WildMatch;

use crate::jsonrpc::{self, ErrorObject, code};

/// Allow and deny patterns over a default.
#[derive(Debug, Clone, Default)]
struct Rules {
    deny_by_default: bool,
    allow: Vec<WildMatch>,
    deny: Vec<WildMatch>,
}

impl Rules {
    fn new(default: PolicyDefault, allow: &[String], deny: &[String]) -> Self {
        Self {
            deny_by_default: default == PolicyDefault::Deny,
            allow: allow.iter().map(|s| WildMatch::new(s)).collect(),
            deny: deny.iter().map(|s| WildMatch::new(s)).collect(),
        }
    }

    fn from_doc(r: &NameRules) -> Self {
        Self::new(r.default, &r.allow, &r.deny)
    }

    fn is_open(&self) -> bool {
        !self.deny_by_default && self.deny.is_empty()
    }

    fn allows(&self, name: &str) -> bool {
        !self.deny.iter().any(|p| p.matches(name))
            && (!self.deny_by_default || self.allow.iter().any(|p| p.matches(name)))
    }
}

/// Name and annotation rules over a default, for tools; name rules for
/// prompts and resources.
#[derive(Debug, Clone, Default)]
pub struct ToolPolicy {
    tools: Rules,
    /// Hints a tool must have, with their required values.
    annotations: Vec<(Hint, bool)>,
    prompts: Rules,
    resources: Rules,
}

/// What a method lists or uses, for policy: its kind and where its name is.
enum Subject {
    /// `tools/call`: the tool in `params.name`.
    Tool,
    /// `prompts/get`: the prompt in `params.name`.
    Prompt,
    /// `resources/read` and `resources/subscribe`: the URI in `params.uri`.
    Resource,
}

/// A list method's array and the key naming each item, with the rules kind.
fn listed(method: &str) -> Option<(&'static str, &'static str, Subject)> {
    match method {
        "tools/list" => Some(("tools", "name", Subject::Tool)),
        "prompts/list" => Some(("prompts", "name", Subject::Prompt)),
        "resources/list" => Some(("resources", "uri", Subject::Resource)),
        "resources/templates/list" => Some(("resourceTemplates", "uriTemplate", Subject::Resource)),
        _ => None,
    }
}

impl ToolPolicy {
    /// A policy from a manifest's `policy` section.
    pub fn from_manifest(p: &berth_catalog::manifest::ToolPolicy) -> Self {
        Self {
            tools: Rules::new(p.default, &p.allow, &p.deny),
            annotations: p.annotations.iter().map(|(h, v)| (*h, *v)).collect(),
            prompts: Rules::from_doc(&p.prompts),
            resources: Rules::from_doc(&p.resources),
        }
    }

    /// Whether the policy lets every tool through (nothing to check).
    pub fn is_open(&self) -> bool {
        self.tools.is_open() && self.annotations.is_empty()
    }

    fn rules(&self, subject: &Subject) -> &Rules {
        match subject {
            Subject::Tool => &self.tools,
            Subject::Prompt => &self.prompts,
            Subject::Resource => &self.resources,
        }
    }

    /// Whether deciding on a call needs the tool's annotations.
    pub fn needs_annotations(&self) -> bool {
        !self.annotations.is_empty()
    }

    /// Whether `tool`, with these `annotations` (its definition's, if known),
    /// may be listed and called. An annotation rule refuses a tool whose
    /// annotations are unknown.
    pub fn allows(&self, tool: &str, annotations: Option<&Value>) -> bool {
        self.tools.allows(tool) && (self.annotations.is_empty() || annotations.is_some_and(|a| self.hints_hold(a)))
    }

    fn hints_hold(&self, annotations: &Value) -> bool {
        self.annotations.iter().all(|(hint, want)| {
            let have = annotations.get(hint.key()).and_then(Value::as_bool).unwrap_or(hint.default_value());
            have == *want
        })
    }

    /// The error for a use the policy refuses, if it does. `annotations`
    /// looks up a tool's annotations (`Some(Null)`: the tool declares
    /// none; `None`: no such tool is known).
    pub fn check(
        &self,
        method: &str,
        params: Option<&Value>,
        annotations: impl FnOnce(&str) -> Option<Value>,
    ) -> Result<(), ErrorObject> {
        let param = |key: &str| params.and_then(|p| p.get(key)).and_then(Value::as_str).unwrap_or("");
        let (what, name, rules) = match method {
            "prompts/get" => ("prompt", param("name"), &self.prompts),
            "resources/read" | "resources/subscribe" => ("resource", param("uri"), &self.resources),
            _ => ("", "", &self.tools),
        };
        if !what.is_empty() {
            if rules.allows(name) {
                return Ok(());
            }
            let msg = format!("{what} '{name}' is not available: refused by policy");
            return Err(ErrorObject::new(code::INVALID_PARAMS, msg));
        }
        if method != "tools/call" || self.is_open() {
            return Ok(());
        }
        let name = param("name");
        let found = if self.needs_annotations() { annotations(name) } else { None };
        let known = found.map(|a| if a.is_null() { Value::Object(Default::default()) } else { a });
        if self.allows(name, known.as_ref()) {
            return Ok(());
        }
        Err(ErrorObject::new(code::INVALID_PARAMS, format!("tool '{name}' is not available: refused by policy")))
    }

    /// A list result without what the policy refuses; other results, and
    /// results that are not such a list, pass untouched.
    pub fn filter(&self, method: &str, result: Box<RawValue>) -> Box<RawValue> {
        let Some((array, key, subject)) = listed(method) else { return result };
        let open = match subject {
            Subject::Tool => self.is_open(),
            _ => self.rules(&subject).is_open(),
        };
        if open {
            return result;
        }
        let Ok(mut v) = serde_json::from_str::<Value>(result.get()) else { return result };
        let Some(items) = v.get_mut(array).and_then(Value::as_array_mut) else { return result };
        let empty = Value::Object(Default::default());
        items.retain(|item| {
            let Some(name) = item.get(key).and_then(Value::as_str) else { return false };
            match subject {
                Subject::Tool => self.allows(name, Some(item.get("annotations").unwrap_or(&empty))),
                _ => self.rules(&subject).allows(name),
            }
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
            ..Default::default()
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
        assert!(p.check("prompts/get", Some(&json!({"name": "rm"})), none).is_ok(), "tool rules only");
    }

    #[test]
    fn prompts_and_resources_have_rules_of_their_own() {
        let rules = |default, allow: &[&str], deny: &[&str]| NameRules {
            default,
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        };
        let p = ToolPolicy::from_manifest(&Manifest {
            prompts: rules(PolicyDefault::Allow, &[], &["secret_*"]),
            resources: rules(PolicyDefault::Deny, &["file:///public/*", "mem://{id}"], &[]),
            ..Default::default()
        });
        let prompts = jsonrpc::to_raw(&json!({"prompts": [{"name": "greet"}, {"name": "secret_plan"}]}));
        let out: Value = serde_json::from_str(p.filter("prompts/list", prompts).get()).unwrap();
        assert_eq!(out, json!({"prompts": [{"name": "greet"}]}));
        assert!(p.check("prompts/get", Some(&json!({"name": "secret_plan"})), none).is_err());
        assert!(p.check("prompts/get", Some(&json!({"name": "greet"})), none).is_ok());
        let res = jsonrpc::to_raw(&json!({"resources": [{"uri": "file:///public/a"}, {"uri": "file:///etc/passwd"}]}));
        let out: Value = serde_json::from_str(p.filter("resources/list", res).get()).unwrap();
        assert_eq!(out, json!({"resources": [{"uri": "file:///public/a"}]}));
        let tpl = jsonrpc::to_raw(
            &json!({"resourceTemplates": [{"uriTemplate": "mem://{id}"}, {"uriTemplate": "db://{t}"}]}),
        );
        let out: Value = serde_json::from_str(p.filter("resources/templates/list", tpl).get()).unwrap();
        assert_eq!(out, json!({"resourceTemplates": [{"uriTemplate": "mem://{id}"}]}));
        for method in ["resources/read", "resources/subscribe"] {
            let err = p.check(method, Some(&json!({"uri": "file:///etc/passwd"})), none).unwrap_err();
            assert!(err.message.contains("resource 'file:///etc/passwd' is not available"), "{}", err.message);
            assert!(p.check(method, Some(&json!({"uri": "file:///public/b"})), none).is_ok());
        }
        assert!(p.check("tools/call", Some(&json!({"name": "anything"})), none).is_ok(), "tools stay open");
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
