//! `berth instances`: the servers running now, and stopping one, gently
//! (`drain`: no new requests, stops when its calls are done) or at once
//! (`kill`).

use reqwest::Method;
use serde_json::{Value, json};

use super::admin_client::{AdminArgs, AdminClient};
use super::output::{OutputArgs, cell, json as print_json, table};

#[derive(clap::Args)]
pub struct InstancesArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: InstancesCommand,
}

#[derive(clap::Subcommand)]
enum InstancesCommand {
    /// Every pool's instances: state, process, requests in flight, CPU time
    /// and memory.
    Ls,
    /// Take an instance out of service; it stops when its calls are done.
    Drain {
        /// The instance's id, as `ls` shows it.
        id: String,
    },
    /// Kill an instance now; the calls it is serving fail.
    Kill {
        /// The instance's id, as `ls` shows it.
        id: String,
    },
}

pub async fn instances(args: InstancesArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(args.admin)?;
    let json = args.output.json;
    let (id, action, done) = match args.command {
        InstancesCommand::Ls => return ls(&client, json).await,
        InstancesCommand::Drain { id } => (id, "drain", "draining"),
        InstancesCommand::Kill { id } => (id, "kill", "killed"),
    };
    client.send(Method::POST, &["admin", "v1", "instances", &id, action], &[], None).await?;
    if json {
        print_json(&json!({ "id": id, "state": done }));
    } else {
        println!("instance {id}: {done}");
    }
    Ok(())
}

async fn ls(client: &AdminClient, json: bool) -> anyhow::Result<()> {
    let pools = client.get(&["admin", "v1", "instances"], &[]).await?;
    if json {
        print_json(&pools);
        return Ok(());
    }
    let mut rows = Vec::new();
    for pool in pools.as_array().into_iter().flatten() {
        for i in pool["instances"].as_array().into_iter().flatten() {
            rows.push(vec![
                cell(&i["id"]),
                cell(&pool["connector"]),
                cell(&pool["pool"]),
                cell(&i["pid"]),
                cell(&i["state"]),
                cell(i.get("in_flight").unwrap_or(&Value::Null)),
                i["cpu_seconds"].as_f64().map_or_else(|| "-".into(), |s| format!("{s:.2}s")),
                i["memory_bytes"].as_u64().map_or_else(|| "-".into(), |b| format!("{:.1}MiB", b as f64 / 1048576.0)),
            ]);
        }
    }
    table(&["ID", "CONNECTOR", "POOL", "PID", "STATE", "IN-FLIGHT", "CPU", "MEMORY"], &rows);
    Ok(())
}
