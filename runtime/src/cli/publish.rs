//! `berth publish FILE|DIR`: validate a manifest here, then publish it
//! through a running berth's admin API.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use berth_catalog::Manifest;
use berth_catalog::manifest::parse_document;
use serde_json::Value;

use super::serve::{DEFAULT_LISTEN, default_data_dir};

#[derive(clap::Args)]
pub struct PublishArgs {
    /// A manifest (`server.json`, `.yaml`) or a directory holding one.
    path: PathBuf,
    /// The berth to publish to.
    #[arg(long, env = "BERTH_URL")]
    url: Option<String>,
    /// Admin token. Default: the one `berth serve` keeps in its data directory.
    #[arg(long, env = "BERTH_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Data directory to read the admin token from.
    #[arg(long, env = "BERTH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Only validate; publish nothing.
    #[arg(long)]
    check: bool,
}

/// The manifest file in `path` (a file, or a directory's server.json/.yaml).
fn manifest_file(path: &Path) -> anyhow::Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    ["server.json", "server.yaml", "server.yml"]
        .iter()
        .map(|n| path.join(n))
        .find(|p| p.is_file())
        .with_context(|| format!("{} has no server.json, server.yaml or server.yml", path.display()))
}

/// Relative `local` package paths are relative to the manifest's directory.
fn resolve_local_paths(doc: &mut Value, base: &Path) {
    let Some(packages) = doc.get_mut("packages").and_then(Value::as_array_mut) else { return };
    for p in packages {
        if p.get("registryType").and_then(Value::as_str) != Some("local") {
            continue;
        }
        if let Some(id) = p.get("identifier").and_then(Value::as_str).filter(|id| !id.starts_with('/')) {
            let joined = base.join(id);
            let abs = std::fs::canonicalize(&joined).unwrap_or(joined);
            p["identifier"] = abs.display().to_string().into();
        }
    }
}

pub async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let file = manifest_file(&args.path)?;
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let problems = |e: berth_catalog::Invalid| {
        let mut msg = format!("{} is not a valid manifest:", file.display());
        for p in &e.problems {
            msg.push_str(&format!("\n  {p}"));
        }
        anyhow::anyhow!(msg)
    };
    let mut doc = parse_document(&text).map_err(problems)?;
    resolve_local_paths(&mut doc, file.parent().unwrap_or(Path::new(".")));
    let manifest = Manifest::from_document(doc).map_err(problems)?;
    let (name, version) = (&manifest.server.name, &manifest.server.version);
    if args.check {
        println!("{name} {version}: valid");
        return Ok(());
    }
    let url = args.url.unwrap_or_else(|| format!("http://{DEFAULT_LISTEN}"));
    let token = match args.token {
        Some(t) => t,
        None => {
            let path = args.data_dir.unwrap_or_else(default_data_dir).join("admin-token");
            std::fs::read_to_string(&path)
                .map(|t| t.trim().to_owned())
                .with_context(|| format!("no --token given and none readable at {}", path.display()))?
        }
    };
    let endpoint = format!("{}/admin/v1/connectors", url.trim_end_matches('/'));
    let res = reqwest::Client::new()
        .post(&endpoint)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(manifest.document().to_string())
        .send()
        .await
        .with_context(|| format!("sending to {endpoint}"))?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        let path = body.pointer("/_meta/dev.berth~1hosted/path").and_then(Value::as_str).unwrap_or("");
        println!("published {name} {version}: {}{path}", url.trim_end_matches('/'));
        return Ok(());
    }
    let mut msg = format!(
        "{endpoint} refused {name} {version} ({status}): {}",
        body["error"].as_str().unwrap_or("no reason given")
    );
    if let Some(details) = body["details"].as_array() {
        for d in details {
            msg.push_str(&format!(
                "\n  {}: {}",
                d["pointer"].as_str().unwrap_or(""),
                d["message"].as_str().unwrap_or("")
            ));
        }
    }
    bail!(msg)
}
