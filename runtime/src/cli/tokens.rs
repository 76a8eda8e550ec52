//! `berth tokens`: personal access tokens through the admin API: list them
//! (never the tokens themselves), make one, revoke one.

use reqwest::Method;
use serde_json::{Value, json};

use super::admin_client::{AdminArgs, AdminClient};
use super::output::{OutputArgs, cell, json as print_json, table, time_ms};

#[derive(clap::Args)]
pub struct TokensArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(clap::Subcommand)]
enum TokensCommand {
    /// Every token, or one user's.
    Ls {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
    },
    /// Make a token for a user; it is printed once.
    Create {
        /// Whose token.
        #[arg(long)]
        user: String,
        /// What it is for.
        #[arg(long)]
        name: String,
        /// A connector it may call (repeatable; none: all).
        #[arg(long = "connector")]
        connectors: Vec<String>,
        /// Let it use the admin API.
        #[arg(long)]
        admin: bool,
        /// Lifetime (default 30 days, at most 365), e.g. `90d`.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// Revoke a token.
    Revoke {
        /// The token's id, as `ls` shows it.
        id: String,
    },
}

pub async fn tokens(args: TokensArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(args.admin)?;
    let json = args.output.json;
    match args.command {
        TokensCommand::Ls { user } => {
            let query: Vec<(&str, String)> = user.map(|u| ("user", u)).into_iter().collect();
            let listed = client.get(&["admin", "v1", "tokens"], &query).await?;
            if json {
                print_json(&listed["tokens"]);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = listed["tokens"].as_array().into_iter().flatten().map(row).collect();
            table(&["ID", "USER", "NAME", "ADMIN", "CONNECTORS", "EXPIRES"], &rows);
        }
        TokensCommand::Create { user, name, connectors, admin, expires_in } => {
            let mut body = json!({ "user": user, "name": name, "connectors": connectors, "admin": admin });
            if let Some(ttl) = expires_in {
                body["expires_in"] = ttl.as_secs().into();
            }
            let made =
                client.send(Method::POST, &["admin", "v1", "tokens"], &[], Some(&body)).await?.unwrap_or_default();
            if json {
                print_json(&made);
            } else {
                println!("token {} for {}: {}", cell(&made["id"]), cell(&made["user"]), cell(&made["token"]));
                println!("(shown once; it expires {})", time_ms(made["expires_ms"].as_i64().unwrap_or(0)));
            }
        }
        TokensCommand::Revoke { id } => {
            client.send(Method::DELETE, &["admin", "v1", "tokens", &id], &[], None).await?;
            if json {
                print_json(&json!({ "id": id, "revoked": true }));
            } else {
                println!("token {id}: revoked");
            }
        }
    }
    Ok(())
}

fn row(t: &Value) -> Vec<String> {
    let connectors: Vec<String> = t["connectors"].as_array().into_iter().flatten().map(cell).collect();
    vec![
        cell(&t["id"]),
        cell(&t["user"]),
        cell(&t["name"]),
        if t["admin"] == Value::Bool(true) { "yes".to_owned() } else { "no".to_owned() },
        if connectors.is_empty() { "all".to_owned() } else { connectors.join(",") },
        time_ms(t["expires_ms"].as_i64().unwrap_or(0)),
    ]
}
