//! Tool arguments and structured outputs. Their doc comments become the
//! descriptions in each tool's JSON schema.

use rmcp::schemars;
use serde::{Deserialize, Serialize};

/// Arguments of `echo`, and its structured output.
#[derive(Deserialize, Serialize, schemars::JsonSchema)]
pub struct Text {
    /// Any text; it comes back unchanged.
    pub text: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Add {
    /// First addend.
    pub a: f64,
    /// Second addend.
    pub b: f64,
}

/// Structured output of `add`.
#[derive(Serialize, schemars::JsonSchema)]
pub struct Sum {
    /// `a + b`.
    pub sum: f64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Sleep {
    /// Milliseconds to sleep.
    pub ms: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Spin {
    /// Wall-clock milliseconds to spin for.
    pub ms: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Progress {
    /// Number of progress notifications to send.
    pub steps: u32,
    /// Delay between them, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Elicit {
    /// The question shown to the user (optional, so SDK suites can call the tool with no arguments).
    #[serde(default = "default_question")]
    pub message: String,
}

fn default_question() -> String {
    "What is your name?".into()
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Sample {
    /// What to ask the client's model.
    pub prompt: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Large {
    /// Length of the returned text, in bytes (at most 64 MiB).
    pub bytes: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Crash {
    /// Exit code (default 3).
    pub code: Option<i32>,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Log {
    /// A syslog level: debug, info, notice, warning, error, critical, alert or emergency.
    pub level: String,
    /// The message to log.
    pub message: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Lines {
    /// Number of lines to write.
    pub lines: u32,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct PathArg {
    /// A filesystem path.
    pub path: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Count {
    /// How many times to try.
    pub n: u32,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Megabytes {
    /// MiB to allocate.
    pub mb: u64,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct WriteFile {
    /// File to write.
    pub path: String,
    /// Bytes to write.
    pub bytes: u64,
    /// Keep the file afterwards (it is removed by default).
    #[serde(default)]
    pub keep: bool,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Addr {
    /// `ip:port`
    pub addr: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Target {
    /// `host:port` to reach through the proxy named by `HTTPS_PROXY`.
    pub target: String,
}
