//! Each broken manifest yields its own precise problem: the JSON pointer of
//! the value at fault and what was expected there.

use berth_catalog::{Invalid, Manifest};
use serde_json::{Value, json};

fn valid() -> Value {
    json!({
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
        "name": "io.github.example/weather",
        "description": "Weather forecasts",
        "version": "1.2.3",
        "packages": [{
            "registryType": "npm",
            "identifier": "@example/weather-mcp",
            "version": "1.2.3",
            "transport": {"type": "stdio"},
            "environmentVariables": [{"name": "WEATHER_UNITS", "default": "metric"}]
        }],
        "_meta": {"dev.berth/connector": {
            "sandbox": {"backend": "native"},
            "limits": {"memory": "256M", "pids": 64, "cpus": 0.5},
            "egress": ["api.weather.example:443"],
            "isolation": "user",
            "scaling": {"min": 0, "max": 3, "targetConcurrency": 8, "idleTimeoutSeconds": 120},
            "credentials": [{"provider": "github", "scopes": ["read:user"], "inject": {"env": "GITHUB_TOKEN"}}],
            "policy": {"default": "allow", "deny": ["delete_everything"]}
        }}
    })
}

/// Applies `(pointer, value)` edits to the valid manifest; `Value::Null` at a
/// member removes it.
fn with(edits: &[(&str, Value)]) -> Value {
    let mut doc = valid();
    for (ptr, v) in edits {
        let (parent, key) = ptr.rsplit_once('/').expect("pointer");
        let parent = doc.pointer_mut(parent).expect("parent exists");
        match (parent, key.parse::<usize>()) {
            (Value::Array(a), Ok(i)) => a[i] = v.clone(),
            (Value::Object(o), _) if v.is_null() => {
                o.remove(&key.replace("~1", "/"));
            }
            (Value::Object(o), _) => {
                o.insert(key.replace("~1", "/"), v.clone());
            }
            _ => panic!("bad edit {ptr}"),
        }
    }
    doc
}

fn problems(doc: Value) -> Invalid {
    Manifest::from_document(doc).expect_err("the manifest should be refused")
}

const EXT: &str = "/_meta/dev.berth~1connector";

#[test]
fn a_valid_manifest_is_accepted_with_its_extension() {
    let m = Manifest::from_document(valid()).expect("valid");
    assert_eq!(m.server.name, "io.github.example/weather");
    assert_eq!(m.hosting.limits.memory.map(u64::from), Some(256 << 20));
    assert_eq!(m.hosting.scaling.max, 3);
    assert_eq!(m.package().identifier, "@example/weather-mcp");
}

#[test]
fn yaml_is_accepted_too() {
    let yaml = "name: io.github.example/yaml\ndescription: From YAML\nversion: 0.1.0\npackages:\n  - registryType: pypi\n    identifier: example-mcp\n    version: 0.1.0\n    transport: {type: stdio}\n";
    let m = Manifest::parse(yaml).expect("valid YAML manifest");
    assert_eq!(m.server.version, "0.1.0");
}

#[test]
fn every_broken_field_is_named_with_its_pointer() {
    let ext = |s: &str| format!("{EXT}{s}");
    let cases: Vec<(Value, String, &str)> = vec![
        (with(&[("/name", Value::Null)]), "/name".into(), "required string is missing"),
        (with(&[("/name", json!("weather"))]), "/name".into(), "namespace/name"),
        (with(&[("/name", json!("example/weather"))]), "/name".into(), "not reverse-DNS"),
        (with(&[("/description", json!(""))]), "/description".into(), "1 to 100 characters"),
        (with(&[("/version", json!("^1.2.3"))]), "/version".into(), "not a range"),
        (with(&[("/version", json!("latest"))]), "/version".into(), "not \"latest\""),
        (with(&[("/packages/0/version", json!("1.x"))]), "/packages/0/version".into(), "not a range"),
        (with(&[("/packages/0/version", Value::Null)]), "/packages/0/version".into(), "exact version"),
        (
            with(&[("/packages/0/registryType", json!("nuget"))]),
            "/packages/0/registryType".into(),
            "unsupported registry type",
        ),
        (
            with(&[("/packages/0/transport", json!({"type": "sse", "url": "https://x.example/sse"}))]),
            "/packages/0/transport/type".into(),
            "berth hosts stdio",
        ),
        (
            with(&[("/packages/0/environmentVariables/0", json!({"name": "1BAD-NAME"}))]),
            "/packages/0/environmentVariables/0/name".into(),
            "not a valid environment variable name",
        ),
        (with(&[("/packages/0/fileSha256", json!("ABC"))]), "/packages/0/fileSha256".into(), "64 lowercase hex"),
        (with(&[("/packages", json!([]))]), "/packages".into(), "at least one package"),
        (with(&[("/websiteUrl", json!("ftp://example.com"))]), "/websiteUrl".into(), "http:// or https://"),
        (with(&[(&ext("/limits"), json!({"memory": "lots"}))]), ext("/limits/memory"), "expected a size"),
        (with(&[(&ext("/limits"), json!({"memory": "1M"}))]), ext("/limits/memory"), "16M to 64G"),
        (with(&[(&ext("/limits"), json!({"pids": 0}))]), ext("/limits/pids"), "from 1 to 65536"),
        (with(&[(&ext("/limits"), json!({"memroy": "1G"}))]), ext("/limits/memroy"), "unknown field"),
        (with(&[(&ext("/sandbox"), json!({"backend": "vm"}))]), ext("/sandbox/backend"), "expected one of"),
        (with(&[(&ext("/sandbox"), json!({"backend": "container"}))]), ext("/sandbox/image"), "needs an image"),
        (with(&[(&ext("/egress"), json!(["https://api.example.com/v1"]))]), ext("/egress/0"), "no scheme"),
        (with(&[(&ext("/isolation"), json!("shared"))]), ext("/isolation"), "cannot go into a shared instance"),
        (with(&[(&ext("/scaling"), json!({"min": 5, "max": 2}))]), ext("/scaling/min"), "must not exceed max"),
        (
            with(&[(&ext("/credentials"), json!([{"provider": "github", "inject": {"env": "A", "file": "/b"}}]))]),
            ext("/credentials/0/inject"),
            "exactly one",
        ),
        (
            with(&[(&ext("/credentials"), json!([{"provider": "github", "inject": {"file": "relative/token"}}]))]),
            ext("/credentials/0/inject/file"),
            "absolute path",
        ),
        (
            with(&[(&ext("/policy"), json!({"allow": ["x"], "deny": ["x"]}))]),
            ext("/policy/deny/0"),
            "both allowed and denied",
        ),
        (
            with(&[(&ext("/policy"), json!({"resources": {"allow": [""]}}))]),
            ext("/policy/resources/allow/0"),
            "expected a resource URI or pattern",
        ),
        (with(&[(&ext("/policy"), json!({"prompts": {"default": "maybe"}}))]), ext("/policy/prompts/default"), "allow"),
        (with(&[(&ext("/policy"), json!({"prompts": {"hide": ["x"]}}))]), ext("/policy/prompts/hide"), ""),
        (
            with(&[
                ("/packages/0/registryType", json!("mcpb")),
                ("/packages/0/identifier", json!("https://example.com/a.mcpb")),
            ]),
            "/packages/0/fileSha256".into(),
            "must carry fileSha256",
        ),
    ];
    assert!(cases.len() >= 15);
    for (doc, pointer, fragment) in cases {
        let err = problems(doc);
        assert!(
            err.problems.iter().any(|p| p.pointer == pointer && p.message.contains(fragment)),
            "expected a problem at {pointer} containing {fragment:?}, got {err}"
        );
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let err = problems(with(&[
        ("/name", json!("nope")),
        ("/version", json!(">=2")),
        (&format!("{EXT}/limits"), json!({"pids": -1, "cpus": 0})),
    ]));
    let pointers: Vec<&str> = err.problems.iter().map(|p| p.pointer.as_str()).collect();
    for want in ["/name", "/version", &format!("{EXT}/limits/pids"), &format!("{EXT}/limits/cpus")] {
        assert!(pointers.contains(&want), "{want} missing from {pointers:?}");
    }
}

#[test]
fn text_that_is_not_a_document_is_refused_plainly() {
    let err = Manifest::parse("{\"name\": ").expect_err("truncated JSON");
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    let err = Manifest::parse("- just\n- a list\n").expect_err("not an object");
    assert!(err.to_string().contains("expected an object"), "{err}");
}
