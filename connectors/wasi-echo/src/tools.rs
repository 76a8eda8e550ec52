//! The tools, each one request away from a sandbox boundary.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{schemars, tool, tool_router};
use serde::Deserialize;

/// The server; it keeps no state.
#[derive(Clone, Copy)]
pub struct Echo;

#[derive(Deserialize, schemars::JsonSchema)]
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

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Path {
    /// A path as the guest sees it.
    pub path: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Write {
    /// A path as the guest sees it.
    pub path: String,
    /// What to write there.
    pub text: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Addr {
    /// `host:port` to open a TCP connection to.
    pub addr: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct Alloc {
    /// Mebibytes to allocate and touch.
    pub mib: u64,
}

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

#[tool_router(server_handler)]
impl Echo {
    #[tool(description = "Echo the text back.")]
    async fn echo(&self, Parameters(Text { text: t }): Parameters<Text>) -> CallToolResult {
        text(t)
    }

    #[tool(description = "Add two numbers; the sum as text.")]
    async fn add(&self, Parameters(Add { a, b }): Parameters<Add>) -> CallToolResult {
        text((a + b).to_string())
    }

    #[tool(description = "Loop forever without waiting for anything: only the host's CPU deadline ends it.")]
    async fn spin(&self) -> CallToolResult {
        let mut n: u64 = 0;
        loop {
            // `black_box` keeps the loop from being optimised into nothing.
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    #[tool(description = "Allocate and touch this many MiB, then free them; says how many bytes it held.")]
    async fn alloc(&self, Parameters(Alloc { mib }): Parameters<Alloc>) -> CallToolResult {
        let bytes = usize::try_from(mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        // An allocation the sandbox refuses aborts the guest; that is the point.
        let block = vec![1u8; bytes];
        text(std::hint::black_box(&block).iter().map(|&b| usize::from(b)).sum::<usize>().to_string())
    }

    #[tool(description = "Read a file as UTF-8 text; an error result says why it could not.")]
    async fn read_file(&self, Parameters(Path { path }): Parameters<Path>) -> CallToolResult {
        match std::fs::read_to_string(&path) {
            Ok(contents) => text(contents),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(format!("cannot read {path}: {e}"))]),
        }
    }

    #[tool(description = "Write text to a file; an error result says why it could not.")]
    async fn write_file(&self, Parameters(Write { path, text: body }): Parameters<Write>) -> CallToolResult {
        match std::fs::write(&path, body) {
            Ok(()) => text("written"),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(format!("cannot write {path}: {e}"))]),
        }
    }

    #[tool(description = "The names of the environment variables the guest sees, one per line.")]
    async fn env(&self) -> CallToolResult {
        let mut names: Vec<String> = std::env::vars_os().map(|(k, _)| k.to_string_lossy().into_owned()).collect();
        names.sort();
        text(names.join("\n"))
    }

    #[tool(description = "Open a TCP connection to host:port; an error result says why it could not.")]
    async fn connect(&self, Parameters(Addr { addr }): Parameters<Addr>) -> CallToolResult {
        match std::net::TcpStream::connect(&addr) {
            Ok(_) => text(format!("connected to {addr}")),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(format!("cannot connect to {addr}: {e}"))]),
        }
    }
}
