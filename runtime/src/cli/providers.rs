//! `berth providers`: the upstream OAuth providers whose tokens the
//! credential broker keeps for users (never their client secrets).

use reqwest::Method;
use serde_json::{Value, json};

use super::admin_client::{AdminArgs, AdminClient};
use super::output::{OutputArgs, cell, json as print_json, table};

#[derive(clap::Args)]
pub struct ProvidersArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: ProvidersCommand,
}

#[derive(clap::Subcommand)]
enum ProvidersCommand {
    /// The registered providers, and the redirect URI to register at each.
    Ls,
    /// Remove a provider and every user's grant there.
    Rm {
        /// The provider's id.
        id: String,
    },
}

pub async fn providers(args: ProvidersArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(args.admin)?;
    let json = args.output.json;
    match args.command {
        ProvidersCommand::Ls => {
            let listed = client.get(&["admin", "v1", "providers"], &[]).await?;
            if json {
                print_json(&listed);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = listed["providers"].as_array().into_iter().flatten().map(row).collect();
            table(&["ID", "CLIENT-ID", "ENDPOINTS", "SCOPES", "SECRET"], &rows);
            println!("redirect URI: {}", cell(&listed["redirectUri"]));
        }
        ProvidersCommand::Rm { id } => {
            client.send(Method::DELETE, &["admin", "v1", "providers", &id], &[], None).await?;
            if json {
                print_json(&json!({ "id": id, "removed": true }));
            } else {
                println!("provider {id}: removed");
            }
        }
    }
    Ok(())
}

fn row(p: &Value) -> Vec<String> {
    let endpoints = match p["issuer"].as_str() {
        Some(issuer) => issuer.to_owned(),
        None => cell(&p["authorization_endpoint"]),
    };
    let scopes: Vec<String> = p["scopes"].as_array().into_iter().flatten().map(cell).collect();
    vec![
        cell(&p["id"]),
        cell(&p["client_id"]),
        endpoints,
        if scopes.is_empty() { "-".to_owned() } else { scopes.join(" ") },
        if p["has_client_secret"] == Value::Bool(true) { "sealed".to_owned() } else { "none".to_owned() },
    ]
}
