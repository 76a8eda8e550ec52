//! One local server entry (`npx …`, `uvx …`, `docker run …`, a binary)
//! turned into a manifest: the package and a pinned version found, its
//! arguments kept, and environment values that look like secrets taken out
//! of the manifest to go into berth's secret store.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cli::runner::{npm_latest, pypi_latest, split_npm, split_pypi};

/// A manifest for one entry, and the secrets it leaves out.
pub struct Converted {
    /// The server.json document.
    pub manifest: Value,
    /// `(variable, value)` pairs for the secret store.
    pub secrets: Vec<(String, String)>,
    /// `npm`, `pypi`, `oci` or `local`.
    pub kind: &'static str,
}

/// Environment variable names whose values are treated as secrets.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["TOKEN", "SECRET", "KEY", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "PAT", "COOKIE", "SESSION"]
        .iter()
        .any(|w| n.split('_').any(|part| part == *w) || n.ends_with(w))
}

/// Converts one entry. `namespace` prefixes the connector name.
pub fn convert(
    namespace: &str,
    key: &str,
    command: &str,
    args: &[String],
    env: &[(String, String)],
) -> anyhow::Result<Converted> {
    let program = command.rsplit('/').next().unwrap_or(command);
    let (kind, package, rest): (&'static str, Value, Vec<String>) = match program {
        "npx" => npx(args)?,
        "uvx" | "pipx" => uvx(args)?,
        "docker" | "podman" => docker(args)?,
        _ => local(command, args)?,
    };
    let mut package = package;
    package["transport"] = json!({"type": "stdio"});
    if !rest.is_empty() {
        package["packageArguments"] = rest.iter().map(|a| json!({"type": "positional", "value": a})).collect();
    }
    let mut secrets = Vec::new();
    let mut vars = Vec::new();
    for (name, value) in env {
        if is_secret_name(name) {
            vars.push(json!({"name": name, "isSecret": true, "isRequired": true}));
            secrets.push((name.clone(), value.clone()));
        } else {
            vars.push(json!({"name": name, "value": value}));
        }
    }
    if !vars.is_empty() {
        package["environmentVariables"] = Value::Array(vars);
    }
    // The version says which package version, and (as build metadata) which
    // arguments and variables: re-running on the same config publishes
    // nothing new; a changed entry becomes a new version.
    let base = package["version"].as_str().filter(|v| semver::Version::parse(v).is_ok()).unwrap_or("0.0.0").to_owned();
    let fingerprint = hex::encode(&Sha256::digest(package.to_string().as_bytes())[..4]);
    let version = format!("{}+m{fingerprint}", base.split('+').next().unwrap_or(&base));
    let name = format!("{namespace}/{}", sanitize(key));
    let manifest = json!({
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
        "name": name,
        "description": truncate(&format!("Migrated from the local server \"{key}\"")),
        "version": version,
        "packages": [package],
        "_meta": {"dev.berth/connector": {
            "sandbox": {"backend": if kind == "oci" { "container" } else { "native" }},
            "isolation": "shared"
        }}
    });
    Ok(Converted { manifest, secrets, kind })
}

fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}

/// A connector name part: letters, digits, `.`, `_`, `-`.
fn sanitize(key: &str) -> String {
    let s: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' }).collect();
    if s.is_empty() { "server".into() } else { s }
}

/// `npx [-y] [--package X] PKG[@VERSION] ARGS…`
fn npx(args: &[String]) -> anyhow::Result<(&'static str, Value, Vec<String>)> {
    let mut it = args.iter().peekable();
    while let Some(a) = it.peek() {
        if a.starts_with('-') {
            it.next();
        } else {
            break;
        }
    }
    let spec = it.next().context("npx with no package")?;
    let (name, version) = split_npm(spec);
    let version = match version {
        Some(v) if semver::Version::parse(v).is_ok() => v.to_owned(),
        _ => npm_latest(name)?,
    };
    Ok(("npm", json!({"registryType": "npm", "identifier": name, "version": version}), it.cloned().collect()))
}

/// `uvx [--from X] PKG[==VERSION|@VERSION] ARGS…`
fn uvx(args: &[String]) -> anyhow::Result<(&'static str, Value, Vec<String>)> {
    let mut from = None;
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        if args[i] == "--from" {
            from = args.get(i + 1).cloned();
            i += 1;
        }
        i += 1;
    }
    let first = args.get(i).context("uvx with no package")?;
    let spec = from.unwrap_or_else(|| first.clone());
    let (name, version) = split_pypi(&spec);
    let version = match version {
        Some(v) => v.to_owned(),
        None => pypi_latest(name)?,
    };
    Ok(("pypi", json!({"registryType": "pypi", "identifier": name, "version": version}), args[i + 1..].to_vec()))
}

/// `docker run [-i] [--rm] [-e K] … IMAGE ARGS…` (the image's own entrypoint).
fn docker(args: &[String]) -> anyhow::Result<(&'static str, Value, Vec<String>)> {
    if args.first().map(String::as_str) != Some("run") {
        bail!("only `docker run` entries can be migrated");
    }
    let takes_value = [
        "-e",
        "--env",
        "-v",
        "--volume",
        "--name",
        "--network",
        "-p",
        "--publish",
        "--entrypoint",
        "-u",
        "--user",
        "-w",
        "--workdir",
    ];
    let mut i = 1;
    while i < args.len() && args[i].starts_with('-') {
        if takes_value.contains(&args[i].as_str()) {
            i += 1;
        }
        i += 1;
    }
    let image = args.get(i).context("docker run with no image")?;
    Ok(("oci", json!({"registryType": "oci", "identifier": image}), args[i + 1..].to_vec()))
}

/// Any other command: a program on this host.
fn local(command: &str, args: &[String]) -> anyhow::Result<(&'static str, Value, Vec<String>)> {
    let path = if command.contains('/') {
        std::path::PathBuf::from(command)
    } else {
        let paths = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&paths)
            .map(|d| d.join(command))
            .find(|p| p.is_file())
            .with_context(|| format!("{command} is not on PATH"))?
    };
    let path = std::fs::canonicalize(&path).with_context(|| format!("{} does not exist", path.display()))?;
    Ok(("local", json!({"registryType": "local", "identifier": path.display().to_string()}), args.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn npx_entries_keep_their_pinned_package_and_arguments() {
        let c = convert(
            "dev.x",
            "fs",
            "npx",
            &strings(&["-y", "@modelcontextprotocol/server-filesystem@2026.8.31", "/data"]),
            &[],
        )
        .unwrap();
        let p = &c.manifest["packages"][0];
        assert_eq!(p["identifier"], "@modelcontextprotocol/server-filesystem");
        assert_eq!(p["version"], "2026.8.31");
        assert_eq!(p["packageArguments"][0]["value"], "/data");
        assert!(c.manifest["version"].as_str().unwrap().starts_with("2026.8.31+m"));
        berth_catalog::Manifest::from_document(c.manifest).expect("a valid manifest");
    }

    #[test]
    fn secret_looking_values_leave_the_manifest() {
        let env =
            [("GITHUB_TOKEN".to_string(), "ghp_canary".to_string()), ("LOG_LEVEL".to_string(), "debug".to_string())];
        let c = convert("dev.x", "gh", "uvx", &strings(&["mcp-server-time==2026.10.19"]), &env).unwrap();
        assert!(!c.manifest.to_string().contains("ghp_canary"));
        assert_eq!(c.secrets, vec![("GITHUB_TOKEN".to_string(), "ghp_canary".to_string())]);
        assert_eq!(c.manifest["packages"][0]["environmentVariables"][1]["value"], "debug");
        assert_eq!(c.kind, "pypi");
    }

    #[test]
    fn docker_entries_become_images_and_names_are_sanitized() {
        let c = convert(
            "dev.x",
            "my server!",
            "docker",
            &strings(&["run", "-i", "--rm", "-e", "X", "ghcr.io/a/b:1", "--flag"]),
            &[],
        )
        .unwrap();
        assert_eq!(c.manifest["packages"][0]["identifier"], "ghcr.io/a/b:1");
        assert_eq!(c.manifest["name"], "dev.x/my-server-");
        assert!(is_secret_name("API_KEY") && is_secret_name("OPENAI_API_KEY") && !is_secret_name("KEYBOARD_LAYOUT"));
    }
}
