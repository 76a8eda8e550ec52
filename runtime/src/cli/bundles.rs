//! `berth bundles`: virtual servers at `/mcp/bundle/{name}` that expose
//! chosen tools of several connectors, one URL per role.

use std::io::Read;

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};

use super::admin_client::{AdminArgs, AdminClient};
use super::output::{OutputArgs, cell, json as print_json, table};

#[derive(clap::Args)]
pub struct BundlesArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: BundlesCommand,
}

#[derive(clap::Subcommand)]
enum BundlesCommand {
    /// Every bundle and its members.
    Ls,
    /// One bundle's definition (JSON).
    Show {
        /// The bundle.
        name: String,
    },
    /// Create or replace a bundle from a JSON definition.
    Put {
        /// The bundle.
        name: String,
        /// The definition (`-` for standard input): `{"members": [{"connector": …, "tools": […],
        /// "prefix": …, "aliases": {…}}], "policy": {…}, "description": …}`.
        file: String,
    },
    /// Remove a bundle.
    Rm {
        /// The bundle.
        name: String,
    },
}

pub async fn bundles(args: BundlesArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(args.admin)?;
    let json = args.output.json;
    match args.command {
        BundlesCommand::Ls => {
            let all = client.get(&["admin", "v1", "bundles"], &[]).await?;
            if json {
                print_json(&all);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = all
                .as_array()
                .into_iter()
                .flatten()
                .map(|b| {
                    let name = cell(&b["name"]);
                    let members: Vec<String> =
                        b["members"].as_array().into_iter().flatten().map(|m| cell(&m["connector"])).collect();
                    vec![name.clone(), format!("/mcp/bundle/{name}"), members.join(",")]
                })
                .collect();
            table(&["NAME", "URL", "MEMBERS"], &rows);
        }
        BundlesCommand::Show { name } => print_json(&client.get(&["admin", "v1", "bundles", &name], &[]).await?),
        BundlesCommand::Put { name, file } => {
            let doc = read_definition(&file)?;
            let stored = client.send(Method::PUT, &["admin", "v1", "bundles", &name], &[], Some(&doc)).await?;
            if json {
                print_json(&stored.unwrap_or(Value::Null));
            } else {
                println!("{name}: set; served at /mcp/bundle/{name}");
            }
        }
        BundlesCommand::Rm { name } => {
            client.send(Method::DELETE, &["admin", "v1", "bundles", &name], &[], None).await?;
            if json {
                print_json(&json!({ "bundle": name, "removed": true }));
            } else {
                println!("{name}: removed");
            }
        }
    }
    Ok(())
}

fn read_definition(file: &str) -> anyhow::Result<Value> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin().read_to_string(&mut text).context("reading the definition from standard input")?;
    } else {
        text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    }
    serde_json::from_str(&text).with_context(|| format!("{file} is not JSON"))
}
