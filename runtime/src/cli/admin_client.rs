//! A client of a running berth's admin API, for `berth publish` and `berth import`.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use super::serve::{DEFAULT_LISTEN, default_data_dir};

/// Where the admin API is and how to authenticate to it.
#[derive(clap::Args)]
pub struct AdminArgs {
    /// The berth to talk to.
    #[arg(long, env = "BERTH_URL")]
    url: Option<String>,
    /// Admin token. Default: the one `berth serve` keeps in its data directory.
    #[arg(long, env = "BERTH_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Data directory to read the admin token from.
    #[arg(long, env = "BERTH_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// What the server said to a publish.
pub enum Outcome {
    /// Published; the path it is served at.
    Published(String),
    /// Refused: HTTP status, reason, and each problem as `pointer: message`.
    Refused { status: u16, reason: String, problems: Vec<String> },
}

pub struct AdminClient {
    /// Base URL, no trailing slash.
    pub url: String,
    token: String,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(args: AdminArgs) -> anyhow::Result<Self> {
        let url = args.url.unwrap_or_else(|| format!("http://{DEFAULT_LISTEN}")).trim_end_matches('/').to_owned();
        let token = match args.token {
            Some(t) => t,
            None => {
                let path = args.data_dir.unwrap_or_else(default_data_dir).join("admin-token");
                std::fs::read_to_string(&path)
                    .map(|t| t.trim().to_owned())
                    .with_context(|| format!("no --token given and none readable at {}", path.display()))?
            }
        };
        Ok(Self { url, token, http: reqwest::Client::new() })
    }

    /// Publishes one manifest document.
    pub async fn publish(&self, doc: &Value) -> anyhow::Result<Outcome> {
        let endpoint = format!("{}/admin/v1/connectors", self.url);
        let res = self
            .http
            .post(&endpoint)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(doc.to_string())
            .send()
            .await
            .with_context(|| format!("sending to {endpoint}"))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            let path = body.pointer("/_meta/dev.berth~1hosted/path").and_then(Value::as_str).unwrap_or("");
            return Ok(Outcome::Published(path.to_owned()));
        }
        let problems = body["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|p| {
                        format!("{}: {}", p["pointer"].as_str().unwrap_or(""), p["message"].as_str().unwrap_or(""))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Outcome::Refused {
            status: status.as_u16(),
            reason: body["error"].as_str().unwrap_or("no reason given").to_owned(),
            problems,
        })
    }
}

impl AdminClient {
    /// Sets a connector's secret; the value goes only into the request body.
    pub async fn put_secret(&self, connector: &str, var: &str, value: &str) -> anyhow::Result<()> {
        let endpoint = format!("{}/admin/v1/connectors/{connector}/secrets/{var}", self.url);
        let res = self
            .http
            .put(&endpoint)
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "value": value }))
            .send()
            .await
            .with_context(|| format!("sending to {endpoint}"))?;
        if !res.status().is_success() {
            let status = res.status();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            anyhow::bail!("setting {var} of {connector} failed ({status}): {}", body["error"].as_str().unwrap_or(""));
        }
        Ok(())
    }
}

/// A spinner on stderr while `what` runs, when stderr is a terminal.
pub fn spinner(what: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"));
    bar.set_message(what);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
