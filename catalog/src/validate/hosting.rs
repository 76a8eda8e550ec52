//! Rules for berth's extension: known fields only, sane limits, and settings
//! that agree with each other (credentials need per-user isolation, a
//! container needs an image, scaling bounds that can be met).

use serde_json::{Map, Value};

use super::checker::{Checker, kind};
use super::is_env_name;
use crate::manifest::{EXTENSION_KEY, Hint, Size};
use crate::problem::Pointer;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

pub(super) fn check(c: &mut Checker, doc: &Map<String, Value>, root: &Pointer) {
    let Some(ext) = doc.get("_meta").and_then(Value::as_object).and_then(|m| m.get(EXTENSION_KEY)) else {
        return;
    };
    let at = root.key("_meta").key(EXTENSION_KEY);
    let Some(ext) = c.object(ext, &at) else { return };
    c.only(
        ext,
        &at,
        &["sandbox", "limits", "egress", "isolation", "scaling", "health", "credentials", "policy", "era"],
    );

    let backend = sandbox(c, ext, &at, doc);
    limits(c, ext, &at);
    c.array(ext, &at, "egress", egress_entry);
    // The native and container backends run berth's egress proxy; WASI
    // guests get no sockets, and `none` enforces nothing.
    if matches!(backend, Some("none" | "wasi")) && ext.get("egress").is_some() {
        c.report(&at.key("egress"), "an egress allowlist needs a sandbox that enforces it (native or container)");
    }
    let isolation = c.one_of(ext, &at, "isolation", false, &["shared", "user", "session"]).unwrap_or("shared");
    scaling(c, ext, &at);
    health(c, ext, &at);
    let mut has_credentials = false;
    c.array(ext, &at, "credentials", |c, v, here| {
        has_credentials = true;
        credential(c, v, &here);
    });
    if has_credentials && isolation == "shared" {
        c.report(
            &at.key("isolation"),
            "per-user credentials cannot go into a shared instance: set isolation to \"user\" or \"session\"",
        );
    }
    policy(c, ext, &at);
    c.one_of(ext, &at, "era", false, &["auto", "legacy", "modern"]);
}

/// Returns the backend named, if any.
fn sandbox<'a>(
    c: &mut Checker,
    ext: &'a Map<String, Value>,
    at: &Pointer,
    doc: &Map<String, Value>,
) -> Option<&'a str> {
    let s = c.member_object(ext, at, "sandbox")?;
    let here = at.key("sandbox");
    c.only(s, &here, &["backend", "image"]);
    let backend = c.one_of(s, &here, "backend", false, &["native", "container", "wasi", "none"]);
    let image = c.string(s, &here, "image", false);
    let has_oci = doc
        .get("packages")
        .and_then(Value::as_array)
        .is_some_and(|p| p.iter().any(|p| p.get("registryType").and_then(Value::as_str) == Some("oci")));
    if backend == Some("container") && image.is_none() && !has_oci {
        c.report(&here.key("image"), "the container backend needs an image here or an oci package");
    }
    if image.is_some() && backend.is_some_and(|b| b != "container") {
        c.report(&here.key("image"), "an image is only used by the container backend");
    }
    backend
}

fn limits(c: &mut Checker, ext: &Map<String, Value>, at: &Pointer) {
    let Some(l) = c.member_object(ext, at, "limits") else { return };
    let here = at.key("limits");
    c.only(l, &here, &["memory", "pids", "cpus", "nofile", "tmpfs", "cpuDeadlineMs"]);
    size(c, l, &here, "memory", 16 * MIB, 64 * GIB);
    size(c, l, &here, "tmpfs", MIB, 16 * GIB);
    c.whole(l, &here, "pids", 1..=65_536);
    c.whole(l, &here, "nofile", 16..=1_048_576);
    c.whole(l, &here, "cpuDeadlineMs", 10..=3_600_000);
    if let Some(v) = l.get("cpus") {
        match v.as_f64() {
            Some(n) if n > 0.0 && n <= 256.0 => {}
            _ => c.report(&here.key("cpus"), format!("expected a number of cores above 0 and at most 256, found {v}")),
        }
    }
}

fn size(c: &mut Checker, obj: &Map<String, Value>, at: &Pointer, key: &str, min: u64, max: u64) {
    let Some(v) = obj.get(key) else { return };
    match Size::try_from(v.clone()) {
        Ok(Size(n)) if (min..=max).contains(&n) => {}
        Ok(Size(n)) => c.report(&at.key(key), format!("expected {} to {}, found {n} bytes", human(min), human(max))),
        Err(e) => c.report(&at.key(key), e),
    }
}

fn human(n: u64) -> String {
    if n >= GIB { format!("{}G", n / GIB) } else { format!("{}M", n / MIB) }
}

/// `host` or `host:port`; a hostname (`*.` allowed in front) or an IP
/// address, no schemes or paths.
fn egress_entry(c: &mut Checker, v: &Value, at: Pointer) {
    let Some(s) = v.as_str() else {
        c.report(&at, format!("expected \"host\" or \"host:port\", found {}", kind(v)));
        return;
    };
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => (h, Some(p)),
        _ => (s, None),
    };
    let host = host.strip_prefix("*.").unwrap_or(host);
    let host_ok = host.parse::<std::net::IpAddr>().is_ok()
        || host.trim_matches(['[', ']']).parse::<std::net::Ipv6Addr>().is_ok()
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
            }));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if !host_ok || !port_ok {
        c.report(&at, format!("expected \"host\" or \"host:port\" (no scheme or path), found \"{s}\""));
    }
}

fn scaling(c: &mut Checker, ext: &Map<String, Value>, at: &Pointer) {
    let Some(s) = c.member_object(ext, at, "scaling") else { return };
    let here = at.key("scaling");
    c.only(
        s,
        &here,
        &[
            "min",
            "max",
            "targetConcurrency",
            "maxConcurrency",
            "queueLimit",
            "queueTimeoutSeconds",
            "idleTimeoutSeconds",
            "stableWindowSeconds",
            "warmPool",
        ],
    );
    let min = c.whole(s, &here, "min", 0..=1000);
    let max = c.whole(s, &here, "max", 1..=1000);
    let target = c.whole(s, &here, "targetConcurrency", 1..=10_000);
    let most = c.whole(s, &here, "maxConcurrency", 1..=10_000);
    c.whole(s, &here, "queueLimit", 0..=100_000);
    c.whole(s, &here, "queueTimeoutSeconds", 0..=3600);
    c.whole(s, &here, "idleTimeoutSeconds", 1..=7 * 24 * 3600);
    c.whole(s, &here, "stableWindowSeconds", 6..=3600);
    let warm = c.whole(s, &here, "warmPool", 0..=1000);
    let most = most.unwrap_or(64);
    if target.is_some_and(|t| t > most) {
        c.report(&here.key("targetConcurrency"), format!("targetConcurrency must not exceed maxConcurrency ({most})"));
    }
    let max = max.unwrap_or(4);
    if min.is_some_and(|m| m > max) {
        c.report(&here.key("min"), format!("min must not exceed max ({max})"));
    }
    if warm.is_some_and(|w| w > max) {
        c.report(&here.key("warmPool"), format!("warmPool must not exceed max ({max})"));
    }
}

fn health(c: &mut Checker, ext: &Map<String, Value>, at: &Pointer) {
    let Some(h) = c.member_object(ext, at, "health") else { return };
    let here = at.key("health");
    c.only(h, &here, &["intervalSeconds", "timeoutSeconds"]);
    c.whole(h, &here, "intervalSeconds", 0..=24 * 3600);
    c.whole(h, &here, "timeoutSeconds", 1..=600);
}

fn credential(c: &mut Checker, v: &Value, at: &Pointer) {
    let Some(cred) = c.object(v, at) else { return };
    c.only(cred, at, &["provider", "scopes", "inject"]);
    if let Some(p) = c.bounded_string(cred, at, "provider", true, 1..=64)
        && !p.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
    {
        c.report(&at.key("provider"), "a provider id uses lowercase letters, digits and '-'");
    }
    c.array(cred, at, "scopes", |c, v, here| {
        if !v.as_str().is_some_and(|s| !s.is_empty() && !s.contains(char::is_whitespace)) {
            c.report(&here, "expected a scope: a non-empty string without spaces");
        }
    });
    let here = at.key("inject");
    let Some(inject) = cred.get("inject") else {
        c.report(&here, "required: {\"env\": NAME} or {\"file\": PATH}");
        return;
    };
    let Some(inject) = c.object(inject, &here) else { return };
    c.only(inject, &here, &["env", "file"]);
    match (c.string(inject, &here, "env", false), c.string(inject, &here, "file", false)) {
        (Some(name), None) if !is_env_name(name) => {
            c.report(&here.key("env"), format!("\"{name}\" is not a valid environment variable name"))
        }
        (None, Some(path)) if !path.starts_with('/') || path.split('/').any(|p| p == "..") => {
            c.report(&here.key("file"), "expected an absolute path without \"..\"")
        }
        (Some(_), None) | (None, Some(_)) => {}
        _ => c.report(&here, "expected exactly one of \"env\" or \"file\""),
    }
}

/// `default`, `allow` and `deny` of a policy section.
fn name_rules(c: &mut Checker, p: &Map<String, Value>, here: &Pointer, what: &str) {
    c.one_of(p, here, "default", false, &["allow", "deny"]);
    let mut allowed = Vec::new();
    c.array(p, here, "allow", |c, v, at| match v.as_str() {
        Some(s) if !s.is_empty() => allowed.push(s),
        _ => c.report(&at, format!("expected {what}")),
    });
    c.array(p, here, "deny", |c, v, at| match v.as_str() {
        Some(s) if allowed.contains(&s) => c.report(&at, format!("\"{s}\" is both allowed and denied")),
        Some(s) if !s.is_empty() => {}
        _ => c.report(&at, format!("expected {what}")),
    });
}

fn policy(c: &mut Checker, ext: &Map<String, Value>, at: &Pointer) {
    let Some(p) = c.member_object(ext, at, "policy") else { return };
    let here = at.key("policy");
    c.only(p, &here, &["default", "allow", "deny", "annotations", "prompts", "resources"]);
    name_rules(c, p, &here, "a tool name or pattern");
    for (key, what) in [("prompts", "a prompt name or pattern"), ("resources", "a resource URI or pattern")] {
        if let Some(rules) = c.member_object(p, &here, key) {
            let at = here.key(key);
            c.only(rules, &at, &["default", "allow", "deny"]);
            name_rules(c, rules, &at, what);
        }
    }
    if let Some(a) = c.member_object(p, &here, "annotations") {
        let at = here.key("annotations");
        for (k, v) in a {
            if !Hint::ALL.iter().any(|h| h.key() == k) {
                let known: Vec<&str> = Hint::ALL.iter().map(|h| h.key()).collect();
                c.report(&at.key(k), format!("unknown hint; expected one of {}", known.join(", ")));
            } else if !v.is_boolean() {
                c.report(&at.key(k), "expected true or false");
            }
        }
    }
}
