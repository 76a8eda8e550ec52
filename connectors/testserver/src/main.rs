//! berth's first-party test server: a STDIO MCP server built with rmcp whose
//! tools reach every path of the bridge — echo and structured results,
//! progress, cancellation, elicitation, sampling, roots, logging, list
//! changes, large payloads, and the failure paths: crashing, printing garbage
//! to stdout, flooding stderr and ignoring stdin EOF.
//!
//! Flags: `--modern` also speaks 2026-07-28 (answers `server/discover`);
//! without it the server is legacy-only, like most servers in the wild.
//! `--ignore-eof` keeps the process alive after stdin closes.

mod hostile;
mod output;
mod server;

use rmcp::ServiceExt;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let (writer, garbage) = output::spawn_stdout();
    let service = server::TestServer::new(flag("--modern"), garbage);
    let running = match service.serve((tokio::io::stdin(), writer)).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth-testserver: handshake failed: {e}");
            std::process::exit(2);
        }
    };
    let _ = running.waiting().await;
    if flag("--ignore-eof") {
        eprintln!("berth-testserver: stdin closed; ignoring it");
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
    }
}
