//! `berth secrets`: a connector's secret environment values. Values are
//! write-only: `ls` shows names and times, and `set` reads the value from
//! stdin, so it is never on a command line (where `ps` and shell history
//! would keep it).

use std::io::Read;

use anyhow::Context;
use reqwest::Method;
use serde_json::json;

use super::admin_client::{AdminArgs, AdminClient, connector_segments};
use super::output::{OutputArgs, cell, json as print_json, table, time_ms};

#[derive(clap::Args)]
pub struct SecretsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(clap::Subcommand)]
enum SecretsCommand {
    /// The secrets set for a connector: names and times, never values.
    Ls {
        /// `namespace/name`.
        name: String,
    },
    /// Set a variable the manifest declares, to the value on stdin.
    Set {
        /// `namespace/name`.
        name: String,
        /// The environment variable.
        var: String,
        /// One user's own value (their instances only).
        #[arg(long)]
        user: Option<String>,
    },
    /// Remove a secret.
    Rm {
        /// `namespace/name`.
        name: String,
        /// The environment variable.
        var: String,
        /// One user's own value.
        #[arg(long)]
        user: Option<String>,
    },
}

pub async fn secrets(args: SecretsArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(args.admin)?;
    let json = args.output.json;
    let (name, var, user, set) = match args.command {
        SecretsCommand::Ls { name } => {
            let mut segments = connector_segments(&name);
            segments.push("secrets");
            let listed = client.get(&segments, &[]).await?;
            if json {
                print_json(&listed);
            } else {
                let rows: Vec<Vec<String>> = listed
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| vec![cell(&s["name"]), cell(&s["user"]), time_ms(s["updated_ms"].as_i64().unwrap_or(0))])
                    .collect();
                table(&["VARIABLE", "USER", "UPDATED"], &rows);
            }
            return Ok(());
        }
        SecretsCommand::Set { name, var, user } => (name, var, user, true),
        SecretsCommand::Rm { name, var, user } => (name, var, user, false),
    };
    let mut segments = connector_segments(&name);
    segments.extend(["secrets", var.as_str()]);
    let query: Vec<(&str, String)> = user.map(|u| ("user", u)).into_iter().collect();
    if set {
        let mut value = String::new();
        std::io::stdin().read_to_string(&mut value).context("reading the value from stdin")?;
        let value = value.strip_suffix('\n').unwrap_or(&value);
        client.send(Method::PUT, &segments, &query, Some(&json!({ "value": value }))).await?;
    } else {
        client.send(Method::DELETE, &segments, &query, None).await?;
    }
    let done = if set { "set" } else { "removed" };
    if json {
        print_json(&json!({ "connector": name, "name": var, "state": done }));
    } else {
        println!("{name} {var}: {done}");
    }
    Ok(())
}
