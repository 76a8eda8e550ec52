//! MCP wrappers for the escape probes in `crate::hostile`: the sandbox suite
//! drives them through berth like any other tool and judges the reports.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{ErrorData, tool, tool_router};
use serde_json::Value;

use super::params::{Addr, Count, Megabytes, PathArg, Spin, Target, WriteFile};
use super::{internal, structured};
use crate::hostile;
use crate::server::TestServer;

/// A probe's report, as JSON text and as structured content.
fn report(v: Value) -> Result<CallToolResult, ErrorData> {
    structured(v.to_string(), &v)
}

/// Runs a probe that blocks (forks, writes, spins) off the async workers.
async fn blocking(f: impl FnOnce() -> Value + Send + 'static) -> Result<CallToolResult, ErrorData> {
    report(tokio::task::spawn_blocking(f).await.map_err(internal)?)
}

#[tool_router(router = hostile_router, vis = "pub(crate)")]
impl TestServer {
    #[tool(description = "Hostile: read a file (at most 64 KiB).")]
    async fn read_file(&self, Parameters(PathArg { path }): Parameters<PathArg>) -> Result<CallToolResult, ErrorData> {
        report(hostile::read_file(&path))
    }

    #[tool(description = "Hostile: list a directory.")]
    async fn list_dir(&self, Parameters(PathArg { path }): Parameters<PathArg>) -> Result<CallToolResult, ErrorData> {
        report(hostile::list_dir(&path))
    }

    #[tool(description = "Hostile: capabilities, no_new_privs, seccomp and ids of this process.")]
    async fn status(&self) -> Result<CallToolResult, ErrorData> {
        report(hostile::status())
    }

    #[tool(description = "Hostile: try mount, unshare, ptrace, bpf, keyctl, setuid(0), chroot.")]
    async fn syscalls(&self) -> Result<CallToolResult, ErrorData> {
        report(hostile::syscalls())
    }

    #[tool(description = "Hostile: start up to n processes.")]
    async fn fork_bomb(&self, Parameters(Count { n }): Parameters<Count>) -> Result<CallToolResult, ErrorData> {
        blocking(move || hostile::fork_bomb(n)).await
    }

    #[tool(description = "Hostile: allocate and touch mb MiB.")]
    async fn alloc(&self, Parameters(Megabytes { mb }): Parameters<Megabytes>) -> Result<CallToolResult, ErrorData> {
        blocking(move || hostile::alloc(mb)).await
    }

    #[tool(description = "Hostile: write bytes to a file.")]
    async fn write_file(
        &self,
        Parameters(WriteFile { path, bytes, keep }): Parameters<WriteFile>,
    ) -> Result<CallToolResult, ErrorData> {
        blocking(move || hostile::write_file(&path, bytes, keep)).await
    }

    #[tool(description = "Hostile: open /dev/null up to n times.")]
    async fn open_files(&self, Parameters(Count { n }): Parameters<Count>) -> Result<CallToolResult, ErrorData> {
        report(hostile::open_files(n))
    }

    #[tool(description = "Hostile: spin on the CPU for ms milliseconds; reports the CPU time received.")]
    async fn spin(&self, Parameters(Spin { ms }): Parameters<Spin>) -> Result<CallToolResult, ErrorData> {
        blocking(move || hostile::spin(ms)).await
    }

    #[tool(description = "Compute for ms milliseconds answering nothing meanwhile (not even ping), as a \
                       single-threaded server busy with one call would; then answer.")]
    async fn hog(&self, Parameters(Spin { ms }): Parameters<Spin>) -> Result<CallToolResult, ErrorData> {
        crate::output::hold(true);
        let spun = blocking(move || hostile::spin(ms)).await;
        crate::output::hold(false);
        spun
    }

    #[tool(description = "Hostile: try a TCP connection to ip:port.")]
    async fn connect(&self, Parameters(Addr { addr }): Parameters<Addr>) -> Result<CallToolResult, ErrorData> {
        blocking(move || hostile::connect(&addr)).await
    }

    #[tool(description = "Hostile: open a CONNECT tunnel to host:port through HTTPS_PROXY and send GET / through it.")]
    async fn proxy_connect(
        &self,
        Parameters(Target { target }): Parameters<Target>,
    ) -> Result<CallToolResult, ErrorData> {
        blocking(move || hostile::proxy_connect(&target)).await
    }
}
