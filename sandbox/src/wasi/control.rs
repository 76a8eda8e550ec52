//! Waiting for and killing a guest: its task is the instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinHandle;

use crate::{BoxFuture, ExitStatus, InstanceControl, SandboxError, TrapCause};

pub(super) struct WasiControl {
    task: JoinHandle<ExitStatus>,
    killed: Arc<AtomicBool>,
    status: Option<ExitStatus>,
}

impl WasiControl {
    pub(super) fn new(task: JoinHandle<ExitStatus>, killed: Arc<AtomicBool>) -> Self {
        Self { task, killed, status: None }
    }

    /// Stops the guest: a guest waiting on a host call is dropped at once;
    /// one computing traps at its next epoch check (within a tick).
    fn stop(&self) {
        self.killed.store(true, Ordering::Relaxed);
        self.task.abort();
    }
}

impl InstanceControl for WasiControl {
    /// A guest is not a process.
    fn pid(&self) -> Option<u32> {
        None
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<ExitStatus, SandboxError>> {
        Box::pin(async move {
            if let Some(status) = self.status {
                return Ok(status);
            }
            let status = match (&mut self.task).await {
                Ok(status) => status,
                Err(e) if e.is_cancelled() => ExitStatus::Signal(libc::SIGKILL),
                // A panic in the host while running the guest.
                Err(_) => ExitStatus::Trap(TrapCause::Fault),
            };
            self.status = Some(status);
            Ok(status)
        })
    }

    fn kill(&mut self) -> BoxFuture<'_, Result<(), SandboxError>> {
        self.stop();
        Box::pin(async { Ok(()) })
    }
}

impl Drop for WasiControl {
    fn drop(&mut self) {
        self.stop();
    }
}
