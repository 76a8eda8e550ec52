//! `berth migrate`: local STDIO servers from a client's config, published
//! as hosted connectors, their secrets moved into berth's secret store, and
//! (with `--rewrite`) the config pointed at the hosted URLs.

mod config;
mod convert;

use std::path::PathBuf;

use anyhow::bail;

use super::admin_client::{AdminArgs, AdminClient, Outcome};
use config::{ClientConfig, Entry, Flavor};

#[derive(clap::Args)]
pub struct MigrateArgs {
    /// `claude`, `cursor`, `vscode`, or the path of a config file.
    #[arg(long)]
    from: String,
    /// Publish the connectors (and set their secrets) on the berth at --url.
    #[arg(long)]
    publish: bool,
    /// Point the config's migrated entries at their hosted URLs (needs
    /// --publish; the original is kept as a backup beside it).
    #[arg(long, requires = "publish")]
    rewrite: bool,
    /// Show what would happen; change nothing.
    #[arg(long, conflicts_with_all = ["publish", "rewrite"])]
    dry_run: bool,
    /// Namespace of the migrated connectors' names.
    #[arg(long, default_value = "dev.berth.migrated")]
    namespace: String,
    #[command(flatten)]
    admin: AdminArgs,
}

fn source(from: &str) -> (PathBuf, Option<Flavor>) {
    match from {
        "claude" => (config::default_path(Flavor::Claude), Some(Flavor::Claude)),
        "cursor" => (config::default_path(Flavor::Cursor), Some(Flavor::Cursor)),
        "vscode" | "code" => (config::default_path(Flavor::VsCode), Some(Flavor::VsCode)),
        path => (PathBuf::from(path), None),
    }
}

pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    if !args.publish && !args.dry_run {
        bail!("say what to do: --dry-run to preview, --publish to publish (and --rewrite to update the config)");
    }
    let (path, flavor) = source(&args.from);
    let mut cfg = ClientConfig::read(&path, flavor)?;
    let client = if args.publish { Some(AdminClient::new(args.admin)?) } else { None };
    let mut rows: Vec<[String; 3]> = Vec::new();
    let mut failed = 0;
    let mut rewritten = 0;
    for (key, entry) in cfg.entries() {
        let (command, argv, env) = match entry {
            Entry::Stdio { command, args, env } => (command, args, env),
            Entry::Remote => {
                rows.push([key, "remote".into(), "kept: already remote".into()]);
                continue;
            }
            Entry::Unknown(why) => {
                rows.push([key, "?".into(), format!("skipped: {why}")]);
                continue;
            }
        };
        let converted = match convert::convert(&args.namespace, &key, &command, &argv, &env) {
            Ok(c) => c,
            Err(e) => {
                failed += 1;
                rows.push([key, "?".into(), format!("skipped: {e:#}")]);
                continue;
            }
        };
        let name = converted.manifest["name"].as_str().unwrap_or_default().to_owned();
        let version = converted.manifest["version"].as_str().unwrap_or_default().to_owned();
        let secret_note = match converted.secrets.len() {
            0 => String::new(),
            n => format!(", {n} secret(s) to the secret store"),
        };
        let Some(client) = &client else {
            rows.push([key, converted.kind.into(), format!("would publish {name} {version}{secret_note}")]);
            println!("{}", serde_json::to_string_pretty(&converted.manifest)?);
            continue;
        };
        let note = match client.publish(&converted.manifest).await? {
            Outcome::Published(_) => "published",
            Outcome::Refused { status: 409, .. } => "already migrated",
            Outcome::Refused { reason, problems, .. } => {
                failed += 1;
                rows.push([key, converted.kind.into(), format!("refused: {reason} {}", problems.join("; "))]);
                continue;
            }
        };
        for (var, value) in &converted.secrets {
            client.put_secret(&name, var, value).await?;
        }
        let url = format!("{}/mcp/{name}", client.url);
        if args.rewrite {
            cfg.point_at(&key, &url);
            rewritten += 1;
        }
        rows.push([key, converted.kind.into(), format!("{note}: {url}{secret_note}")]);
    }
    print_table(&rows);
    if rewritten > 0 {
        let backup = cfg.write_with_backup()?;
        println!("rewrote {} ({rewritten} entries); the original is at {}", cfg.path.display(), backup.display());
    }
    if failed > 0 {
        bail!("{failed} entries could not be migrated");
    }
    Ok(())
}

fn print_table(rows: &[[String; 3]]) {
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max("SERVER".len());
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0).max("KIND".len());
    println!("{:w0$}  {:w1$}  RESULT", "SERVER", "KIND");
    for [a, b, c] in rows {
        println!("{a:w0$}  {b:w1$}  {c}");
    }
}
