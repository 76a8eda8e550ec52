//! `berth import FILE`: seeds the catalog from a registry export — a
//! `/v0/servers` answer (`{"servers": [...]}`), or a JSON array of
//! `server.json` documents — through the admin API.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::Value;

use super::admin_client::{AdminArgs, AdminClient, Outcome, spinner};

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The export: a registry API answer or an array of server.json documents.
    file: PathBuf,
    #[command(flatten)]
    admin: AdminArgs,
    /// Exit 0 even when some servers were refused (a registry export holds
    /// remote-only servers berth cannot host).
    #[arg(long)]
    keep_going: bool,
}

/// The server.json documents in an export.
fn documents(export: Value) -> anyhow::Result<Vec<Value>> {
    let items = match export {
        Value::Object(mut o) if o.contains_key("servers") => o.remove("servers").unwrap_or_default(),
        v @ Value::Array(_) => v,
        _ => bail!("expected {{\"servers\": [...]}} (a registry API answer) or an array of server.json documents"),
    };
    let Value::Array(items) = items else { bail!("\"servers\" is not an array") };
    // A registry answer wraps each server.json in {"server": ..., "_meta": ...}.
    Ok(items.into_iter().map(|mut i| if i.get("server").is_some() { i["server"].take() } else { i }).collect())
}

pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let export: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", args.file.display()))?;
    let docs = documents(export)?;
    let client = AdminClient::new(args.admin)?;
    let (mut published, mut present, mut refused) = (0, 0, 0);
    let bar = spinner(format!("importing {} servers", docs.len()));
    for doc in &docs {
        let label = format!(
            "{} {}",
            doc["name"].as_str().unwrap_or("(unnamed)"),
            doc["version"].as_str().unwrap_or("(no version)")
        );
        match client.publish(doc).await? {
            Outcome::Published(_) => published += 1,
            Outcome::Refused { status: 409, .. } => present += 1,
            Outcome::Refused { reason, problems, .. } => {
                refused += 1;
                bar.suspend(|| {
                    eprintln!(
                        "refused {label}: {reason}{}",
                        problems.first().map(|p| format!(" ({p})")).unwrap_or_default()
                    )
                });
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("imported {published}, already present {present}, refused {refused} of {}", docs.len());
    if refused > 0 && !args.keep_going {
        bail!("{refused} servers were refused (use --keep-going to accept a partial import)");
    }
    Ok(())
}
