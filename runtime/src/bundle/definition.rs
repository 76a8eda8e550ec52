//! The bundle document and the names it exposes.

use std::collections::{BTreeMap, BTreeSet};

use berth_catalog::manifest::ToolPolicy as PolicyDoc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wildmatch::WildMatch;

/// Joins a member's prefix and a tool's name in the name a bundle exposes.
pub const SEPARATOR: &str = "__";

/// A virtual server: chosen tools of several connectors behind one URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bundle {
    /// 1 to 64 letters, digits, `-` and `_`; the URL is `/mcp/bundle/{name}`.
    pub name: String,
    /// What the bundle is for; clients see it as the server's instructions.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The connectors whose tools it exposes.
    pub members: Vec<Member>,
    /// Which exposed tools callers may see and call, on top of each
    /// member's own policies.
    #[serde(default)]
    #[schema(value_type = crate::serve::schema::PolicyBody)]
    pub policy: PolicyDoc,
}

/// One connector's part of a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Member {
    /// The connector (`namespace/name`).
    pub connector: String,
    /// An exact version to pin; the latest active one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Put before its tools' names (`{prefix}__{tool}`); the part of the
    /// connector's name after `/` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The tools taken: names or `*`/`?` patterns (default: all).
    #[serde(default = "every_tool")]
    pub tools: Vec<String>,
    /// Tool → the name it is exposed under instead of `{prefix}__{tool}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
}

fn every_tool() -> Vec<String> {
    vec!["*".into()]
}

/// A name of the shape MCP recommends for tools: 1 to `max` letters,
/// digits, `_`, `-` or `.` (`.` left out with `dot` false).
fn valid(name: &str, max: usize, dot: bool) -> bool {
    (1..=max).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || (dot && c == '.'))
}

impl Member {
    /// The prefix of its tools' exposed names.
    pub fn prefix(&self) -> String {
        self.prefix.clone().unwrap_or_else(|| {
            let short = self.connector.rsplit('/').next().unwrap_or(&self.connector);
            short.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
        })
    }

    /// Whether the bundle takes `tool` from this member.
    pub fn takes(&self, tool: &str) -> bool {
        self.tools.iter().any(|p| WildMatch::new(p).matches(tool))
    }

    /// The name `tool` is exposed under, if the bundle takes it.
    pub fn expose(&self, tool: &str) -> Option<String> {
        if !self.takes(tool) {
            return None;
        }
        Some(self.aliases.get(tool).cloned().unwrap_or_else(|| format!("{}{SEPARATOR}{tool}", self.prefix())))
    }
}

impl Bundle {
    /// The member and its tool's own name behind an exposed name.
    pub fn resolve(&self, exposed: &str) -> Option<(&Member, String)> {
        for m in &self.members {
            if let Some((tool, _)) = m.aliases.iter().find(|(_, alias)| *alias == exposed) {
                return m.takes(tool).then(|| (m, tool.clone()));
            }
        }
        self.members.iter().find_map(|m| {
            let tool = exposed.strip_prefix(&m.prefix())?.strip_prefix(SEPARATOR)?;
            (m.takes(tool) && !m.aliases.contains_key(tool)).then(|| (m, tool.to_owned()))
        })
    }

    /// Every problem with the document, each naming where it is; empty when
    /// it is valid. Whether the members exist is the catalog's to say.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !valid(&self.name, 64, false) {
            out.push(format!("name \"{}\": expected 1 to 64 letters, digits, '-' or '_'", self.name));
        }
        if self.members.is_empty() {
            out.push("members: a bundle needs at least one member".into());
        }
        let prefixes: Vec<String> = self.members.iter().map(Member::prefix).collect();
        let mut seen_prefix = BTreeSet::new();
        let mut seen_alias = BTreeSet::new();
        for (i, m) in self.members.iter().enumerate() {
            let at = format!("members[{i}]");
            match m.connector.split_once('/') {
                Some((ns, n)) if !ns.is_empty() && !n.is_empty() && !n.contains('/') => {}
                _ => out.push(format!("{at}.connector \"{}\": expected \"namespace/name\"", m.connector)),
            }
            if m.version.as_deref().is_some_and(|v| v.is_empty() || v == "latest") {
                out.push(format!("{at}.version: leave it out for the latest version, or name an exact one"));
            }
            let prefix = &prefixes[i];
            if !valid(prefix, 32, false) {
                out.push(format!("{at}.prefix \"{prefix}\": expected 1 to 32 letters, digits, '-' or '_'"));
            } else if !seen_prefix.insert(prefix.clone()) {
                out.push(format!("{at}.prefix \"{prefix}\": another member has it; give one of them a prefix"));
            }
            if m.tools.is_empty() || m.tools.iter().any(String::is_empty) {
                out.push(format!("{at}.tools: expected tool names or patterns (\"*\" for all)"));
            }
            for (tool, alias) in &m.aliases {
                let at = format!("{at}.aliases[\"{tool}\"]");
                if !valid(alias, 128, true) {
                    out.push(format!("{at} \"{alias}\": expected 1 to 128 letters, digits, '_', '-' or '.'"));
                }
                if !m.takes(tool) {
                    out.push(format!("{at}: the member's tools do not take \"{tool}\""));
                }
                if prefixes.iter().any(|p| alias.starts_with(&format!("{p}{SEPARATOR}"))) {
                    out.push(format!("{at} \"{alias}\": looks like a prefixed name; choose another"));
                }
                if !seen_alias.insert(alias.clone()) {
                    out.push(format!("{at} \"{alias}\": another tool already has this name"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle(v: serde_json::Value) -> Bundle {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn prefixes_aliases_and_patterns_map_both_ways() {
        let b = bundle(json!({
            "name": "support",
            "members": [
                {"connector": "dev.berth.test/alpha", "tools": ["echo", "a*"], "aliases": {"add": "sum"}},
                {"connector": "io.github.x/server.time", "prefix": "t"},
            ]
        }));
        assert!(b.problems().is_empty(), "{:?}", b.problems());
        let (alpha, time) = (&b.members[0], &b.members[1]);
        assert_eq!(alpha.prefix(), "alpha");
        assert_eq!(alpha.expose("echo").as_deref(), Some("alpha__echo"));
        assert_eq!(alpha.expose("add").as_deref(), Some("sum"));
        assert_eq!(alpha.expose("crash"), None, "not taken");
        assert_eq!(time.expose("now").as_deref(), Some("t__now"));
        assert_eq!(
            b.resolve("sum").map(|(m, t)| (m.connector.as_str(), t)),
            Some(("dev.berth.test/alpha", "add".into()))
        );
        assert_eq!(b.resolve("alpha__echo").map(|(_, t)| t), Some("echo".into()));
        assert!(b.resolve("alpha__add").is_none(), "an aliased tool answers only to its alias");
        assert!(b.resolve("alpha__crash").is_none(), "a tool the member does not take");
        assert_eq!(b.resolve("t__now").map(|(_, t)| t), Some("now".into()));
        assert!(b.resolve("now").is_none() && b.resolve("nobody__x").is_none());
        assert_eq!(
            bundle(json!({"name": "x", "members": [{"connector": "a.b/server.time"}]})).members[0].prefix(),
            "server_time"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let b = bundle(json!({
            "name": "no spaces",
            "members": [
                {"connector": "dev.berth.test/alpha", "version": "latest", "aliases": {"echo": "beta__echo"}},
                {"connector": "other.ns/alpha"},
                {"connector": "nonamespace", "tools": [], "aliases": {"x": "bad name"}},
            ]
        }));
        let problems = b.problems().join("\n");
        for want in [
            "name \"no spaces\"",
            "members[0].version",
            "members[1].prefix \"alpha\": another member has it",
            "members[2].connector \"nonamespace\"",
            "members[2].tools",
            "members[2].aliases[\"x\"] \"bad name\"",
            "members[2].aliases[\"x\"]: the member's tools do not take \"x\"",
        ] {
            assert!(problems.contains(want), "missing {want:?} in\n{problems}");
        }
        let clash = bundle(json!({"name": "x", "members": [
            {"connector": "a.b/one", "aliases": {"t": "same"}},
            {"connector": "a.b/two", "aliases": {"u": "same", "v": "one__v"}},
        ]}));
        let problems = clash.problems().join("\n");
        assert!(problems.contains("another tool already has this name"), "{problems}");
        assert!(problems.contains("looks like a prefixed name"), "{problems}");
        assert!(bundle(json!({"name": "x", "members": []})).problems()[0].contains("at least one member"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<Bundle>(json!({"name": "x", "members": [], "tols": []})).unwrap_err();
        assert!(err.to_string().contains("tols"), "{err}");
    }
}
