//! `berth users`: everyone a running berth knows of, and offboarding.

use reqwest::Method;

use super::admin_client::{AdminArgs, AdminClient};
use super::output::{OutputArgs, cell, json as print_json, table, time_ms};

#[derive(clap::Args)]
pub struct UsersArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(clap::Subcommand)]
enum UsersCommand {
    /// Everyone berth knows of: groups, tokens, sign-ins, accounts, last call.
    Ls,
    /// Take back everything berth handed a user: tokens, sign-ins, connected
    /// accounts, memberships, policies; stop their instances.
    Offboard {
        /// The user.
        user: String,
    },
}

pub async fn users(args: UsersArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(args.admin)?;
    let json = args.output.json;
    match args.command {
        UsersCommand::Ls => {
            let all = client.get(&["admin", "v1", "users"], &[]).await?;
            if json {
                print_json(&all);
                return Ok(());
            }
            let joined = |v: &serde_json::Value| {
                let items: Vec<String> = v.as_array().into_iter().flatten().map(cell).collect();
                if items.is_empty() { "-".to_owned() } else { items.join(",") }
            };
            let rows: Vec<Vec<String>> = all
                .as_array()
                .into_iter()
                .flatten()
                .map(|u| {
                    vec![
                        cell(&u["user"]),
                        joined(&u["groups"]),
                        cell(&u["tokens"]),
                        if u["signedIn"] == true { "yes" } else { "no" }.to_owned(),
                        joined(&u["accounts"]),
                        joined(&u["policies"]),
                        u["lastCallMs"].as_i64().map_or_else(|| "-".to_owned(), time_ms),
                    ]
                })
                .collect();
            table(&["USER", "GROUPS", "TOKENS", "SIGNED-IN", "ACCOUNTS", "POLICIES", "LAST-CALL"], &rows);
        }
        UsersCommand::Offboard { user } => {
            let done = client
                .send(Method::POST, &["admin", "v1", "users", &user, "offboard"], &[], None)
                .await?
                .unwrap_or_default();
            if json {
                print_json(&done);
            } else {
                println!(
                    "{user}: offboarded — {} token(s) revoked, {} sign-in(s) ended, {} account(s), {} membership(s) and {} \
                     policy(ies) removed, {} instance(s) stopped",
                    done["tokensRevoked"],
                    done["signInsEnded"],
                    done["accountsRemoved"],
                    done["groupsLeft"],
                    done["policiesRemoved"],
                    done["instancesStopped"]
                );
            }
        }
    }
    Ok(())
}
