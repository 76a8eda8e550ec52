//! berth's first-party WASI MCP server: a legacy-era STDIO server built with
//! rmcp for `wasm32-wasip2`, whose tools exercise the WASI sandbox from the
//! inside: `echo` and `add` (the happy path), `spin` (a guest that never
//! yields, for the CPU deadline), `alloc` (memory, for the memory limit) and
//! `read_file` (the filesystem, for escape tests: nothing is preopened unless
//! berth mounts it).
//!
//! Build: `cargo build -p berth-wasi-echo --target wasm32-wasip2 --release`.
//! It also builds natively, as an ordinary STDIO server, so that lints and
//! unit tests cover it on the host.

mod stdio;
mod tools;

use std::process::ExitCode;

use rmcp::ServiceExt;

fn main() -> ExitCode {
    // One thread: WASI has no others, and one is plenty for a test server.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-wasi-echo: no runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        match tools::Echo.serve((stdio::stdin(), stdio::stdout())).await {
            Ok(running) => {
                // Ends at stdin EOF.
                let _ = running.waiting().await;
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("berth-wasi-echo: handshake failed: {e}");
                ExitCode::from(2)
            }
        }
    })
}
