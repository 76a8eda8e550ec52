//! What of a call's arguments may be written to the audit trail: values
//! under secret-sounding keys and values shaped like credentials are
//! replaced, and long strings cut, so turning argument capture on never
//! turns the audit store into a second secret store.

use serde_json::Value;

/// What replaces a redacted value.
pub const REDACTED: &str = "[redacted]";

/// Longest string kept whole.
const MAX_STRING: usize = 512;

/// Deepest nesting kept; deeper values are replaced.
const MAX_DEPTH: usize = 16;

/// Parts of key names whose values are secrets (compared lower-cased, with
/// `-` and `_` removed).
const SECRET_KEYS: [&str; 10] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "privatekey",
    "bearer",
];

/// Prefixes of well-known credential formats.
const SECRET_PREFIXES: [&str; 12] = [
    "bearer ",
    "basic ",
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "sk-",
    "xoxb-",
    "xoxp-",
    "akia",
    "berth_pat_",
    "glpat-",
];

/// `arguments` with secrets taken out.
pub fn redact(arguments: &Value) -> Value {
    walk(arguments, 0)
}

fn walk(v: &Value, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::from("[too deep]");
    }
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if secret_key(k) { Value::from(REDACTED) } else { walk(v, depth + 1) };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| walk(v, depth + 1)).collect()),
        Value::String(s) if looks_secret(s) => Value::from(REDACTED),
        Value::String(s) if s.chars().count() > MAX_STRING => Value::from(format!(
            "{}… ({} characters)",
            s.chars().take(MAX_STRING).collect::<String>(),
            s.chars().count()
        )),
        other => other.clone(),
    }
}

fn secret_key(key: &str) -> bool {
    let k: String = key.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect();
    SECRET_KEYS.iter().any(|s| k.contains(s))
}

/// A credential by its shape: a known prefix, a JWT, or a PEM key.
fn looks_secret(s: &str) -> bool {
    let t = s.trim();
    let lower = t.get(..12.min(t.len())).unwrap_or("").to_ascii_lowercase();
    let jwt = t.starts_with("eyJ") && t.split('.').count() == 3 && !t.contains(char::is_whitespace);
    SECRET_PREFIXES.iter().any(|p| lower.starts_with(p)) || jwt || t.contains("-----BEGIN ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_by_key_and_by_shape_are_replaced() {
        let got = redact(&json!({
            "query": "open tickets",
            "api_key": "abc",
            "X-Auth-Token": "abc",
            "nested": [{"password": 1, "note": "Bearer abc.def"}],
            "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig",
            "gh": "ghp_0123456789abcdef",
            "pem": "-----BEGIN PRIVATE KEY-----\nMII…",
            "count": 3,
            "keyword": "monkey",
        }));
        assert_eq!(
            got,
            json!({
                "query": "open tickets",
                "api_key": REDACTED,
                "X-Auth-Token": REDACTED,
                "nested": [{"password": REDACTED, "note": REDACTED}],
                "jwt": REDACTED,
                "gh": REDACTED,
                "pem": REDACTED,
                "count": 3,
                "keyword": "monkey",
            })
        );
    }

    #[test]
    fn long_strings_are_cut_and_deep_values_replaced() {
        let long = "x".repeat(2000);
        let got = redact(&json!({ "text": long }));
        let text = got["text"].as_str().unwrap();
        assert!(text.starts_with(&"x".repeat(MAX_STRING)) && text.ends_with("(2000 characters)"), "{text}");
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!([deep]);
        }
        assert!(redact(&deep).to_string().contains("[too deep]"));
    }
}
