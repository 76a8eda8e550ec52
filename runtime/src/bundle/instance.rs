//! A bundle's server as a sandbox "instance": a task in this process on the
//! far end of an in-memory pipe, so pools, supervision and health checks
//! treat it exactly like a STDIO server. It runs no foreign code, so it
//! needs no isolation of its own.

use std::sync::Arc;

use berth_sandbox::{BoxFuture, ExitStatus, Instance, InstanceControl, Sandbox, SandboxError, SandboxSpec};
use tokio::task::JoinHandle;

use super::server::BundleServer;

/// Size of each direction's in-memory buffer.
const PIPE: usize = 1 << 16;

/// Launches one bundle server for one caller; the spec is ignored.
pub struct BundleSandbox {
    server: Arc<BundleServer>,
}

impl BundleSandbox {
    /// Instances of `server`.
    pub fn new(server: Arc<BundleServer>) -> Self {
        Self { server }
    }
}

impl Sandbox for BundleSandbox {
    fn name(&self) -> &'static str {
        "bundle"
    }

    fn launch<'a>(&'a self, _spec: &'a SandboxSpec) -> BoxFuture<'a, Result<Instance, SandboxError>> {
        Box::pin(async move {
            let (ours, theirs) = tokio::io::duplex(PIPE);
            let (input, output) = tokio::io::split(theirs);
            let task = tokio::spawn(self.server.clone().run(input, output));
            let (stdout, stdin) = tokio::io::split(ours);
            Ok(Instance {
                stdin: Box::new(stdin),
                stdout: Box::new(stdout),
                stderr: Box::new(tokio::io::empty()),
                control: Box::new(Task { task, ended: None }),
            })
        })
    }
}

/// The server's task: waiting joins it, killing (or dropping) aborts it.
struct Task {
    task: JoinHandle<()>,
    /// How it ended, once joined (a handle is joined only once).
    ended: Option<ExitStatus>,
}

impl InstanceControl for Task {
    fn pid(&self) -> Option<u32> {
        None
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<ExitStatus, SandboxError>> {
        Box::pin(async move {
            if let Some(status) = self.ended {
                return Ok(status);
            }
            let status = match (&mut self.task).await {
                Ok(()) => ExitStatus::Code(0),
                Err(_) => ExitStatus::Signal(9),
            };
            self.ended = Some(status);
            Ok(status)
        })
    }

    fn kill(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        self.task.abort();
        Box::pin(async { Ok(()) })
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.task.abort();
    }
}
