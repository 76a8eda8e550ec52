//! A client of a running berth's admin API, for `berth publish`, `berth
//! import`, `berth migrate` and the operator commands (`berth connectors`,
//! `instances`, `audit`, `tokens`, `providers`).

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;

use super::serve::{DEFAULT_LISTEN, default_data_dir};

/// Where the admin API is and how to authenticate to it.
#[derive(clap::Args)]
pub struct AdminArgs {
    /// The berth to talk to.
    #[arg(long, env = "BERTH_URL", global = true)]
    url: Option<String>,
    /// Admin token. Default: the one `berth serve` keeps in its data directory.
    #[arg(long, env = "BERTH_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Data directory to read the admin token from.
    #[arg(long, env = "BERTH_DATA_DIR", global = true)]
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

/// A refusal from the admin API, as it explained it.
#[derive(Debug, thiserror::Error)]
#[error("{method} {path}: {status}: {message}")]
pub struct Refused {
    /// The request's method.
    pub method: reqwest::Method,
    /// The request's path.
    pub path: String,
    /// What berth answered.
    pub status: reqwest::StatusCode,
    /// Its `error`, or the body when it had none.
    pub message: String,
}

impl AdminClient {
    /// `GET` of an admin path (segments are percent-encoded one by one), as JSON.
    pub async fn get(&self, segments: &[&str], query: &[(&str, String)]) -> anyhow::Result<Value> {
        let text = self.send_text(reqwest::Method::GET, segments, query, None).await?;
        serde_json::from_str(&text).context("berth's answer is not JSON")
    }

    /// `GET` of an admin path, as text (an export).
    pub async fn get_text(&self, segments: &[&str], query: &[(&str, String)]) -> anyhow::Result<String> {
        self.send_text(reqwest::Method::GET, segments, query, None).await
    }

    /// Any request; the answer's JSON, or `None` when it had no body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<Option<Value>> {
        let text = self.send_text(method, segments, query, body).await?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text).map(Some).context("berth's answer is not JSON")
    }

    async fn send_text(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<String> {
        let mut url = url::Url::parse(&self.url).with_context(|| format!("{} is not a URL", self.url))?;
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("{} cannot have a path", self.url))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let path = url.path().to_owned();
        let mut req = self.http.request(method.clone(), url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.with_context(|| format!("sending {method} {path} to {}", self.url))?;
        let status = res.status();
        let text = res.text().await.with_context(|| format!("reading the answer to {method} {path}"))?;
        if status.is_success() {
            return Ok(text);
        }
        let message = serde_json::from_str::<Value>(&text).ok().and_then(|v| error_text(&v)).unwrap_or(text);
        Err(Refused { method, path, status, message }.into())
    }
}

/// An error body as one message: the error, then each detail on a line.
fn error_text(body: &Value) -> Option<String> {
    let error = body["error"].as_str()?;
    let details: Vec<String> = body["details"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned))
        .collect();
    Some(if details.is_empty() { error.to_owned() } else { format!("{error}:\n  - {}", details.join("\n  - ")) })
}

/// The path segments of a connector's admin resources: its name holds one `/`.
pub fn connector_segments(name: &str) -> Vec<&str> {
    ["admin", "v1", "connectors"].into_iter().chain(name.split('/')).collect()
}

/// A spinner on stderr while `what` runs, when stderr is a terminal.
pub fn spinner(what: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"));
    bar.set_message(what);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
