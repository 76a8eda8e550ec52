//! `berth audit tail [--follow]`: the latest tool calls, oldest first, as
//! `tail` shows a log; `--follow` keeps printing new ones as they are
//! recorded (by polling, so it works through any proxy). `berth audit
//! export` writes the admin API's NDJSON export to stdout.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use super::admin_client::{AdminArgs, AdminClient};
use super::output::{OutputArgs, cell, time_ms};

#[derive(clap::Args)]
pub struct AuditArgs {
    #[command(flatten)]
    admin: AdminArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(clap::Subcommand)]
enum AuditCommand {
    /// The latest records, oldest first; `--json` prints one object per line.
    Tail(TailArgs),
    /// Matching records as newline-delimited JSON, oldest first.
    Export {
        /// Most records (default 10 000, the most there can be).
        #[arg(short = 'n', long)]
        lines: Option<u32>,
        /// Records at or after this time (ms since the epoch).
        #[arg(long)]
        since_ms: Option<i64>,
        #[command(flatten)]
        filters: Filters,
    },
}

#[derive(clap::Args)]
struct TailArgs {
    /// How many records.
    #[arg(short = 'n', long, default_value_t = 20)]
    lines: u32,
    /// Keep printing new records as they are written.
    #[arg(short, long)]
    follow: bool,
    /// How often to ask for new records while following.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    #[command(flatten)]
    filters: Filters,
}

/// Which records.
#[derive(clap::Args)]
struct Filters {
    /// Only this user's calls.
    #[arg(long)]
    user: Option<String>,
    /// Only this connector (`name` or `name@version`).
    #[arg(long)]
    connector: Option<String>,
    /// Only this tool.
    #[arg(long)]
    tool: Option<String>,
    /// Only `allow` or `deny` decisions.
    #[arg(long)]
    decision: Option<String>,
}

/// The most records one poll asks for.
const MAX_PAGE: u32 = 10_000;

impl Filters {
    fn query(self) -> Vec<(&'static str, String)> {
        [("user", self.user), ("connector", self.connector), ("tool", self.tool), ("decision", self.decision)]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(args.admin)?;
    let tail = match args.command {
        AuditCommand::Tail(tail) => tail,
        AuditCommand::Export { lines, since_ms, filters } => {
            let mut query = filters.query();
            query.extend(lines.map(|n| ("limit", n.to_string())));
            query.extend(since_ms.map(|t| ("since_ms", t.to_string())));
            print!("{}", client.get_text(&["admin", "v1", "audit", "export"], &query).await?);
            return Ok(());
        }
    };
    let json = args.output.json;
    let filters = tail.filters.query();
    let mut query = filters.clone();
    query.push(("limit", tail.lines.clamp(1, MAX_PAGE).to_string()));
    let mut records = fetch(&client, &query).await?;
    records.reverse();
    let mut seen = Seen::default();
    for r in &records {
        seen.note(r);
        print(r, json);
    }
    if !tail.follow {
        return Ok(());
    }
    // Each poll asks for everything since the newest record printed; more
    // than MAX_PAGE records in one interval would lose the oldest of them.
    loop {
        tokio::time::sleep(tail.interval).await;
        let mut query = filters.clone();
        query.push(("since_ms", seen.last_ms.to_string()));
        query.push(("limit", MAX_PAGE.to_string()));
        let mut fresh = fetch(&client, &query).await?;
        fresh.reverse();
        for r in fresh.iter().filter(|r| seen.note(r)) {
            print(r, json);
        }
    }
}

async fn fetch(client: &AdminClient, query: &[(&str, String)]) -> anyhow::Result<Vec<Value>> {
    Ok(client.get(&["admin", "v1", "audit"], query).await?.as_array().cloned().unwrap_or_default())
}

/// What was printed at the newest millisecond: `since_ms` includes it, so
/// records written in that same millisecond come again and are skipped.
#[derive(Default)]
struct Seen {
    last_ms: i64,
    at_last: HashSet<String>,
}

impl Seen {
    /// Records `r`; false when it was printed already.
    fn note(&mut self, r: &Value) -> bool {
        let at = r["at_ms"].as_i64().unwrap_or(0);
        if at < self.last_ms {
            return false;
        }
        if at > self.last_ms {
            self.last_ms = at;
            self.at_last.clear();
        }
        self.at_last.insert(r.to_string())
    }
}

fn print(r: &Value, json: bool) {
    if json {
        println!("{r}");
        return;
    }
    let error = r["error"].as_str().filter(|e| !e.is_empty()).map(|e| format!("  {e}")).unwrap_or_default();
    println!(
        "{}  {}  {}  {}  {}  {}  {}ms{error}",
        time_ms(r["at_ms"].as_i64().unwrap_or(0)),
        cell(&r["user"]),
        cell(&r["connector"]),
        cell(&r["tool"]),
        cell(&r["decision"]),
        cell(&r["outcome"]),
        r["duration_ms"].as_i64().unwrap_or(0),
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Seen;

    #[test]
    fn a_record_is_printed_once_even_when_its_millisecond_comes_again() {
        let mut seen = Seen::default();
        let a = json!({"at_ms": 5, "tool": "a"});
        let b = json!({"at_ms": 5, "tool": "b"});
        assert!(seen.note(&a));
        assert!(!seen.note(&a), "the same record, asked again with since_ms=5");
        assert!(seen.note(&b), "another record in the same millisecond");
        assert!(!seen.note(&json!({"at_ms": 4})), "older than what was printed");
        assert!(seen.note(&json!({"at_ms": 6})));
    }
}
