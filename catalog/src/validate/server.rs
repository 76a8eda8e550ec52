//! The registry's rules for `server.json` (schema 2025-12-11), plus the
//! stricter ones a host needs: a reverse-DNS namespace, exact versions, and at
//! least one package berth can run over stdio.

use serde_json::{Map, Value};

use super::checker::Checker;
use super::{exact_version_problem, is_env_name};
use crate::manifest::Registry;
use crate::problem::Pointer;

pub(super) fn check(c: &mut Checker, doc: &Map<String, Value>, at: &Pointer) {
    if let Some(name) = c.bounded_string(doc, at, "name", true, 3..=200) {
        name_rules(c, name, &at.key("name"));
    }
    c.bounded_string(doc, at, "description", true, 1..=100);
    if let Some(version) = c.bounded_string(doc, at, "version", true, 1..=255)
        && let Some(why) = exact_version_problem(version)
    {
        c.report(&at.key("version"), why);
    }
    c.bounded_string(doc, at, "title", false, 1..=100);
    if let Some(url) = c.string(doc, at, "websiteUrl", false) {
        uri(c, url, &at.key("websiteUrl"), false);
    }
    if let Some(repo) = c.member_object(doc, at, "repository") {
        let here = at.key("repository");
        if let Some(url) = c.string(repo, &here, "url", true) {
            uri(c, url, &here.key("url"), false);
        }
        c.string(repo, &here, "source", true);
        c.string(repo, &here, "id", false);
        c.string(repo, &here, "subfolder", false);
    }
    c.array(doc, at, "icons", icon);
    c.array(doc, at, "remotes", remote);
    c.member_object(doc, at, "_meta");
    match doc.get("packages") {
        None => c.report(&at.key("packages"), "berth hosts packages: at least one package is required"),
        Some(Value::Array(p)) if p.is_empty() => {
            c.report(&at.key("packages"), "berth hosts packages: at least one package is required")
        }
        _ => {}
    }
    let mut hostable = false;
    c.array(doc, at, "packages", |c, v, here| hostable |= package(c, v, &here));
    if matches!(doc.get("packages"), Some(Value::Array(p)) if !p.is_empty()) && !hostable {
        let types = Registry::ALL.map(Registry::name).join(", ");
        c.report(&at.key("packages"), format!("no package berth can host: expected a stdio package of type {types}"));
    }
}

/// `namespace/name` with a reverse-DNS namespace (`io.github.alice/weather`).
fn name_rules(c: &mut Checker, name: &str, at: &Pointer) {
    let Some((namespace, server)) = name.split_once('/') else {
        c.report(at, "expected \"namespace/name\" with a reverse-DNS namespace, e.g. \"io.github.alice/weather\"");
        return;
    };
    let charset = |s: &str, extra: &str| s.chars().all(|ch| ch.is_ascii_alphanumeric() || extra.contains(ch));
    if server.is_empty() || !charset(server, "._-") || server.contains('/') {
        c.report(at, "the part after \"/\" may use only letters, digits, '.', '_' and '-'");
    }
    let labels: Vec<&str> = namespace.split('.').collect();
    let label_ok = |l: &&str| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-') && charset(l, "-");
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        c.report(
            at,
            format!(
                "namespace \"{namespace}\" is not reverse-DNS: expected dot-separated labels such as \"com.example\""
            ),
        );
    }
}

fn uri(c: &mut Checker, s: &str, at: &Pointer, https_only: bool) {
    let scheme_ok =
        if https_only { s.starts_with("https://") } else { s.starts_with("https://") || s.starts_with("http://") };
    if !scheme_ok || s.contains(char::is_whitespace) || s.len() <= "https://".len() {
        let want = if https_only { "an https:// URL" } else { "an http:// or https:// URL" };
        c.report(at, format!("expected {want}, found \"{s}\""));
    }
}

fn icon(c: &mut Checker, v: &Value, at: Pointer) {
    let Some(obj) = c.object(v, &at) else { return };
    if let Some(src) = c.bounded_string(obj, &at, "src", true, 1..=255) {
        uri(c, src, &at.key("src"), true);
    }
    c.one_of(obj, &at, "mimeType", false, &["image/png", "image/jpeg", "image/jpg", "image/svg+xml", "image/webp"]);
    c.one_of(obj, &at, "theme", false, &["light", "dark"]);
    c.array(obj, &at, "sizes", |c, v, here| match v.as_str() {
        Some(s) if s == "any" || s.split_once('x').is_some_and(|(w, h)| digits(w) && digits(h)) => {}
        _ => c.report(&here, "expected a size such as \"48x48\" or \"any\""),
    });
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn remote(c: &mut Checker, v: &Value, at: Pointer) {
    let Some(obj) = c.object(v, &at) else { return };
    c.one_of(obj, &at, "type", true, &["streamable-http", "sse"]);
    if let Some(url) = c.string(obj, &at, "url", true) {
        uri(c, url, &at.key("url"), false);
    }
    c.array(obj, &at, "headers", |c, v, here| {
        key_value(c, v, here);
    });
}

/// Checks one package; true when berth can host it.
fn package(c: &mut Checker, v: &Value, at: &Pointer) -> bool {
    let Some(obj) = c.object(v, at) else { return false };
    let registry = c.string(obj, at, "registryType", true);
    let known = registry.and_then(Registry::from_name);
    if let (Some(r), None) = (registry, known) {
        let types = Registry::ALL.map(Registry::name).join(", ");
        c.report(&at.key("registryType"), format!("unsupported registry type \"{r}\"; berth hosts {types}"));
    }
    let identifier = c.bounded_string(obj, at, "identifier", true, 1..=1000);
    let version = c.string(obj, at, "version", false);
    if let Some(why) = version.and_then(exact_version_problem) {
        c.report(&at.key("version"), why);
    }
    if matches!(known, Some(Registry::Npm | Registry::Pypi)) && version.is_none() {
        c.report(&at.key("version"), "npm and PyPI packages need an exact version, so every launch runs the same code");
    }
    let sha = c.string(obj, at, "fileSha256", false);
    if let Some(s) = sha
        && (s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    {
        c.report(&at.key("fileSha256"), "expected 64 lowercase hex digits (a SHA-256)");
    }
    if known == Some(Registry::Mcpb) && sha.is_none() {
        c.report(&at.key("fileSha256"), "mcpb packages must carry fileSha256; berth refuses unverified downloads");
    }
    let remote = identifier.is_some_and(|i| i.starts_with("https://") || i.starts_with("http://"));
    if known == Some(Registry::Wasm) && remote && sha.is_none() {
        c.report(
            &at.key("fileSha256"),
            "a wasm module at a URL must carry fileSha256; berth refuses unverified downloads",
        );
    }
    if known == Some(Registry::Wasm) && !remote && identifier.is_some_and(|i| !i.starts_with('/')) {
        c.report(&at.key("identifier"), "a wasm package's identifier is an https URL or an absolute path");
    }
    if let (Some(Registry::Local), Some(path)) = (known, identifier)
        && !path.starts_with('/')
    {
        c.report(&at.key("identifier"), "a local package's identifier is an absolute path");
    }
    if let Some(url) = c.string(obj, at, "registryBaseUrl", false) {
        uri(c, url, &at.key("registryBaseUrl"), false);
    }
    c.string(obj, at, "runtimeHint", false);
    c.array(obj, at, "runtimeArguments", argument);
    c.array(obj, at, "packageArguments", argument);
    c.array(obj, at, "environmentVariables", |c, v, here| {
        if let Some(name) = key_value(c, v, here.clone())
            && !is_env_name(name)
        {
            c.report(&here.key("name"), format!("\"{name}\" is not a valid environment variable name"));
        }
    });
    let transport = match obj.get("transport") {
        None => {
            c.report(&at.key("transport"), "required object is missing");
            None
        }
        Some(t) => c.object(t, &at.key("transport")),
    };
    let stdio =
        transport.and_then(|t| c.one_of(t, &at.key("transport"), "type", true, &["stdio", "streamable-http", "sse"]));
    if let Some(kind) = stdio.filter(|k| *k != "stdio") {
        c.report(
            &at.key("transport").key("type"),
            format!("berth hosts stdio servers; \"{kind}\" packages are already remote"),
        );
    }
    known.is_some() && stdio == Some("stdio")
}

fn argument(c: &mut Checker, v: &Value, at: Pointer) {
    let Some(obj) = c.object(v, &at) else { return };
    input(c, obj, &at);
    match c.one_of(obj, &at, "type", true, &["positional", "named"]) {
        Some("named") => {
            c.string(obj, &at, "name", true);
        }
        Some(_) => {
            let hint = c.string(obj, &at, "valueHint", false);
            if hint.is_none() && !obj.contains_key("value") {
                c.report(&at, "a positional argument needs \"value\" or \"valueHint\"");
            }
        }
        None => {}
    }
    c.boolean(obj, &at, "isRepeated");
}

/// A named input (environment variable or header); returns its name.
fn key_value<'a>(c: &mut Checker, v: &'a Value, at: Pointer) -> Option<&'a str> {
    let obj = c.object(v, &at)?;
    input(c, obj, &at);
    c.bounded_string(obj, &at, "name", true, 1..=255)
}

/// The fields every input shares.
fn input(c: &mut Checker, obj: &Map<String, Value>, at: &Pointer) {
    for key in ["description", "value", "default", "placeholder"] {
        c.string(obj, at, key, false);
    }
    c.one_of(obj, at, "format", false, &["string", "number", "boolean", "filepath"]);
    c.boolean(obj, at, "isRequired");
    c.boolean(obj, at, "isSecret");
    c.array(obj, at, "choices", |c, v, here| {
        if !v.is_string() {
            c.report(&here, "expected a string");
        }
    });
    if let Some(vars) = c.member_object(obj, at, "variables") {
        for (name, var) in vars {
            if let Some(o) = c.object(var, &at.key("variables").key(name)) {
                input(c, o, &at.key("variables").key(name));
            }
        }
    }
}
