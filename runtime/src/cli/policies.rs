//! `berth policies`: per-user tool policies of a connector, which narrow
//! its manifest's policy for one user from the next request.

use reqwest::Method;
use serde_json::{Value, json};

use super::admin_client::{AdminArgs, AdminClient, connector_segments};
use super::output::{OutputArgs, cell, json as print_json, table};

#[derive(clap::Args)]
pub struct PoliciesArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: PoliciesCommand,
}

#[derive(clap::Subcommand)]
enum PoliciesCommand {
    /// Every user's policy on a connector.
    Ls {
        /// `namespace/name`.
        name: String,
    },
    /// Set one user's policy (replacing any they had).
    Set {
        /// `namespace/name`.
        name: String,
        /// The user.
        user: String,
        /// What happens to tools in neither list.
        #[arg(long, value_parser = ["allow", "deny"], default_value = "allow")]
        default: String,
        /// A tool always allowed (repeatable).
        #[arg(long)]
        allow: Vec<String>,
        /// A tool always refused (repeatable).
        #[arg(long)]
        deny: Vec<String>,
    },
    /// Remove one user's policy.
    Rm {
        /// `namespace/name`.
        name: String,
        /// The user.
        user: String,
    },
}

pub async fn policies(args: PoliciesArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(args.admin)?;
    let json = args.output.json;
    match args.command {
        PoliciesCommand::Ls { name } => {
            let mut segments = connector_segments(&name);
            segments.push("policies");
            let listed = client.get(&segments, &[]).await?;
            if json {
                print_json(&listed);
                return Ok(());
            }
            let list = |v: &Value| {
                let tools: Vec<String> = v.as_array().into_iter().flatten().map(cell).collect();
                if tools.is_empty() { "-".to_owned() } else { tools.join(",") }
            };
            let rows: Vec<Vec<String>> = listed["users"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(user, p)| vec![user.clone(), cell(&p["default"]), list(&p["allow"]), list(&p["deny"])])
                .collect();
            table(&["USER", "DEFAULT", "ALLOW", "DENY"], &rows);
        }
        PoliciesCommand::Set { name, user, default, allow, deny } => {
            let mut segments = connector_segments(&name);
            segments.extend(["policies", user.as_str()]);
            let policy = json!({ "default": default, "allow": allow, "deny": deny });
            client.send(Method::PUT, &segments, &[], Some(&policy)).await?;
            if json {
                print_json(&json!({ "connector": name, "user": user, "policy": policy }));
            } else {
                println!("{name} {user}: policy set");
            }
        }
        PoliciesCommand::Rm { name, user } => {
            let mut segments = connector_segments(&name);
            segments.extend(["policies", user.as_str()]);
            client.send(Method::DELETE, &segments, &[], None).await?;
            if json {
                print_json(&json!({ "connector": name, "user": user, "removed": true }));
            } else {
                println!("{name} {user}: policy removed");
            }
        }
    }
    Ok(())
}
