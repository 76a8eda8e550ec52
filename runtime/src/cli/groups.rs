//! `berth groups`: who is in which group (for group tool policies), as the
//! identity provider's groups claim and admins set it.

use reqwest::Method;
use serde_json::json;

use super::admin_client::{AdminArgs, AdminClient};
use super::output::{OutputArgs, cell, json as print_json, table};

#[derive(clap::Args)]
pub struct GroupsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(clap::Subcommand)]
enum GroupsCommand {
    /// Every membership and where it came from (`admin` or `oidc`).
    Ls,
    /// Add a user to a group.
    Add {
        /// The group.
        group: String,
        /// The user.
        user: String,
    },
    /// Remove a user from a group (a membership an admin made).
    Rm {
        /// The group.
        group: String,
        /// The user.
        user: String,
    },
}

pub async fn groups(args: GroupsArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(args.admin)?;
    let json = args.output.json;
    let (group, user, method, done) = match args.command {
        GroupsCommand::Ls => {
            let all = client.get(&["admin", "v1", "groups"], &[]).await?;
            if json {
                print_json(&all);
                return Ok(());
            }
            let mut rows = Vec::new();
            for (group, members) in all.as_object().into_iter().flatten() {
                for (user, sources) in members.as_object().into_iter().flatten() {
                    let sources: Vec<String> = sources.as_array().into_iter().flatten().map(cell).collect();
                    rows.push(vec![group.clone(), user.clone(), sources.join(",")]);
                }
            }
            table(&["GROUP", "USER", "SOURCE"], &rows);
            return Ok(());
        }
        GroupsCommand::Add { group, user } => (group, user, Method::PUT, "added to"),
        GroupsCommand::Rm { group, user } => (group, user, Method::DELETE, "removed from"),
    };
    client.send(method, &["admin", "v1", "groups", &group, "members", &user], &[], None).await?;
    if json {
        print_json(&json!({ "group": group, "user": user, "member": done == "added to" }));
    } else {
        println!("{user}: {done} {group}");
    }
    Ok(())
}
