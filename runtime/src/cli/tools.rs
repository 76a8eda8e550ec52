//! `berth tools`: the tool definitions berth has pinned for a connector,
//! and approving a changed one so it is shown and callable again.

use reqwest::Method;
use serde_json::json;

use super::admin_client::{AdminArgs, AdminClient, connector_segments};
use super::output::{OutputArgs, cell, json as print_json, table};

#[derive(clap::Args)]
pub struct ToolsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: ToolsCommand,
}

#[derive(clap::Subcommand)]
enum ToolsCommand {
    /// Every definition seen of each tool, with its status (`--json` for the full text).
    Ls {
        /// `namespace/name`.
        name: String,
    },
    /// Let a changed definition through.
    Approve {
        /// `namespace/name`.
        name: String,
        /// The tool.
        tool: String,
        /// The definition's SHA-256, as `ls` shows it.
        sha256: String,
    },
}

pub async fn tools(args: ToolsArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(args.admin)?;
    let json = args.output.json;
    match args.command {
        ToolsCommand::Ls { name } => {
            let mut segments = connector_segments(&name);
            segments.push("tools");
            let pins = client.get(&segments, &[]).await?;
            if json {
                print_json(&pins);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = pins
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| vec![cell(&p["tool"]), cell(&p["status"]), cell(&p["sha256"])])
                .collect();
            table(&["TOOL", "STATUS", "SHA256"], &rows);
        }
        ToolsCommand::Approve { name, tool, sha256 } => {
            let mut segments = connector_segments(&name);
            segments.extend(["tools", tool.as_str(), "approve"]);
            client.send(Method::POST, &segments, &[], Some(&json!({ "sha256": sha256 }))).await?;
            if json {
                print_json(&json!({ "connector": name, "tool": tool, "sha256": sha256, "status": "approved" }));
            } else {
                println!("{name} {tool}: approved");
            }
        }
    }
    Ok(())
}
