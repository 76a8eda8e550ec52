//! `berth publish FILE|DIR`: validate a manifest here, then publish it
//! through a running berth's admin API.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use berth_catalog::Manifest;
use berth_catalog::manifest::parse_document;
use serde_json::Value;

use super::admin_client::{AdminArgs, AdminClient, Outcome, spinner};

#[derive(clap::Args)]
pub struct PublishArgs {
    /// A manifest (`server.json`, `.yaml`) or a directory holding one.
    path: PathBuf,
    #[command(flatten)]
    admin: AdminArgs,
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
    let client = AdminClient::new(args.admin)?;
    let bar = spinner(format!("publishing {name} {version} (the server may be installing its package)"));
    let outcome = client.publish(manifest.document()).await;
    bar.finish_and_clear();
    match outcome? {
        Outcome::Published(path) => {
            println!("published {name} {version}: {}{path}", client.url);
            Ok(())
        }
        Outcome::Refused { status, reason, problems } => {
            let mut msg = format!("{} refused {name} {version} ({status}): {reason}", client.url);
            for p in problems {
                msg.push_str(&format!("\n  {p}"));
            }
            bail!(msg)
        }
    }
}
