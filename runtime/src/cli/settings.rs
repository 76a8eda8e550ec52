//! `berth settings`: what a running berth runs with, and the settings that
//! change without a restart.

use reqwest::Method;
use serde_json::{Value, json};

use super::admin_client::{AdminArgs, AdminClient};
use super::output::{OutputArgs, cell, json as print_json, table};

#[derive(clap::Args)]
pub struct SettingsArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: Option<SettingsCommand>,
}

#[derive(clap::Subcommand)]
enum SettingsCommand {
    /// Every setting, and whether it changes at run time (the default).
    Ls,
    /// Record each tool call's arguments in the audit trail (redacted), or stop.
    AuditArguments {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

pub async fn settings(args: SettingsArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(args.admin)?;
    let shown = match args.command.unwrap_or(SettingsCommand::Ls) {
        SettingsCommand::Ls => client.get(&["admin", "v1", "settings"], &[]).await?,
        SettingsCommand::AuditArguments { state } => {
            let patch = json!({ "auditArguments": state == "on" });
            client.send(Method::PATCH, &["admin", "v1", "settings"], &[], Some(&patch)).await?.unwrap_or_default()
        }
    };
    if args.output.json {
        print_json(&shown);
        return Ok(());
    }
    let rows = |section: &str, changes: &str| -> Vec<Vec<String>> {
        shown[section]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, v)| vec![name.clone(), value(v), changes.to_owned()])
            .collect()
    };
    table(&["SETTING", "VALUE", "CHANGES"], &[rows("runtime", "now"), rows("fixed", "on restart")].concat());
    Ok(())
}

fn value(v: &Value) -> String {
    match v {
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => cell(other),
    }
}
