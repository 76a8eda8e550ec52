//! `berth connectors`: the catalog as an operator sees it, through the
//! admin API: what is published, each connector's versions, and changing a
//! version's status (deprecate, yank, restore).

use reqwest::Method;
use serde_json::{Value, json};

use super::admin_client::{AdminArgs, AdminClient, connector_segments};
use super::output::{OutputArgs, cell, json as print_json, table};

#[derive(clap::Args)]
pub struct ConnectorsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: ConnectorsCommand,
}

#[derive(clap::Subcommand)]
enum ConnectorsCommand {
    /// Each connector at its latest version.
    Ls {
        /// Only names containing this text.
        #[arg(long)]
        search: Option<String>,
    },
    /// Every version of one connector, with its status.
    Versions {
        /// `namespace/name`.
        name: String,
    },
    /// Tell callers to move on from a version (it is still served).
    Deprecate {
        /// `namespace/name`.
        name: String,
        /// The exact version.
        version: String,
    },
    /// Withdraw a version: not served from now on, never reusable.
    Yank {
        /// `namespace/name`.
        name: String,
        /// The exact version.
        version: String,
    },
    /// Make a deprecated or yanked version active again.
    Restore {
        /// `namespace/name`.
        name: String,
        /// The exact version.
        version: String,
    },
}

/// Most entries the API gives per page.
const PAGE: &str = "100";

pub async fn connectors(args: ConnectorsArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(args.admin)?;
    let json = args.output.json;
    match args.command {
        ConnectorsCommand::Ls { search } => ls(&client, search, json).await,
        ConnectorsCommand::Versions { name } => {
            let mut segments = connector_segments(&name);
            segments.push("versions");
            let versions = client.get(&segments, &[]).await?;
            if json {
                print_json(&versions);
            } else {
                let rows: Vec<Vec<String>> = versions.as_array().into_iter().flatten().map(version_row).collect();
                table(&["VERSION", "STATUS", "LATEST", "PUBLISHED", "UPDATED"], &rows);
            }
            Ok(())
        }
        ConnectorsCommand::Deprecate { name, version } => {
            set_status(&client, &name, &version, "deprecated", json).await
        }
        ConnectorsCommand::Yank { name, version } => set_status(&client, &name, &version, "deleted", json).await,
        ConnectorsCommand::Restore { name, version } => set_status(&client, &name, &version, "active", json).await,
    }
}

/// Every page of the latest versions.
async fn ls(client: &AdminClient, search: Option<String>, json: bool) -> anyhow::Result<()> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("version", "latest".to_owned()), ("limit", PAGE.to_owned())];
        query.extend(search.clone().map(|s| ("search", s)));
        query.extend(cursor.take().map(|c| ("cursor", c)));
        let page = client.get(&["admin", "v1", "connectors"], &query).await?;
        all.extend(page["servers"].as_array().cloned().unwrap_or_default());
        match page["metadata"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    if json {
        print_json(&Value::Array(all));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|e| {
            let official = &e["_meta"]["io.modelcontextprotocol.registry/official"];
            vec![
                cell(&e["server"]["name"]),
                cell(&e["server"]["version"]),
                cell(&official["status"]),
                cell(&official["publishedAt"]),
                cell(&e["_meta"]["dev.berth/hosted"]["path"]),
            ]
        })
        .collect();
    table(&["NAME", "LATEST", "STATUS", "PUBLISHED", "PATH"], &rows);
    Ok(())
}

fn version_row(e: &Value) -> Vec<String> {
    let official = &e["_meta"]["io.modelcontextprotocol.registry/official"];
    vec![
        cell(&e["server"]["version"]),
        cell(&official["status"]),
        if official["isLatest"] == Value::Bool(true) { "yes".to_owned() } else { String::new() },
        cell(&official["publishedAt"]),
        cell(&official["updatedAt"]),
    ]
}

async fn set_status(client: &AdminClient, name: &str, version: &str, status: &str, json: bool) -> anyhow::Result<()> {
    let mut segments = connector_segments(name);
    segments.extend(["versions", version, "status"]);
    let entry = client.send(Method::PUT, &segments, &[], Some(&json!({ "status": status }))).await?.unwrap_or_default();
    if json {
        print_json(&entry);
    } else {
        let now = &entry["_meta"]["io.modelcontextprotocol.registry/official"]["status"];
        println!("{name} {version}: {}", cell(now));
    }
    Ok(())
}
