//! berth's first-party test server: a STDIO MCP server built with rmcp whose
//! tools reach every path of the bridge — echo and structured results,
//! progress, cancellation, elicitation, sampling, roots, logging, list
//! changes, large payloads, and the failure paths: crashing, printing garbage
//! to stdout, flooding stderr and ignoring stdin EOF. Every failure is a tool
//! call away, because berth's tests can only reach the server through berth.
//!
//! It speaks newline-delimited JSON-RPC on stdin/stdout and is legacy-era
//! (`initialize`, protocol 2024-11-05 … 2025-11-25) unless started with
//! `--modern`, which also accepts 2026-07-28 and `server/discover`.
//!
//! Flags: `--ignore-eof` keeps the process alive after stdin closes (berth
//! must then kill it); `--stderr-on-start N` writes N lines to stderr first.

mod flags;
mod hostile;
mod output;
mod prompts;
mod resources;
mod server;
mod tools;

use std::process::ExitCode;
use std::time::Duration;

use rmcp::ServiceExt;

use crate::flags::{Flags, USAGE};

/// How long the last replies may take to reach stdout after stdin closes.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> ExitCode {
    let flags = match Flags::parse(std::env::args().skip(1)) {
        Ok(flags) => flags,
        Err(e) => {
            output::stderr_lines([format!("berth-testserver: {e}"), USAGE.to_owned()]);
            return ExitCode::from(2);
        }
    };
    if flags.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    output::stderr_lines((0..flags.stderr_on_start).map(|i| format!("berth-testserver startup line {i}")));

    let stdout = output::spawn();
    let server = server::TestServer::new(flags.modern, stdout.garbage);
    let code = match server.serve((tokio::io::stdin(), stdout.writer)).await {
        Ok(running) => {
            // Ends at stdin EOF, after rmcp has handed over its last replies.
            let _ = running.waiting().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            output::stderr_lines([format!("berth-testserver: handshake failed: {e}")]);
            ExitCode::from(2)
        }
    };
    // rmcp has dropped the pipe's write half; let the pump empty it.
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, stdout.pump).await;

    if flags.ignore_eof {
        output::stderr_lines(["berth-testserver: stdin closed; ignoring it"]);
        std::future::pending::<()>().await;
    }
    code
}
