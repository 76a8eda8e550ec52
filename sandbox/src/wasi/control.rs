//! Waiting for and killing a guest: its task is the instance.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::{BoxFuture, ExitStatus, InstanceControl, SandboxError, TrapCause, Usage, UsageProbe};

/// What a guest has used: the time its task spent being polled (the guest
/// computes only then; waiting for input costs none) and the linear memory
/// its limiter granted.
#[derive(Clone, Default)]
pub(super) struct GuestUsage {
    pub(super) memory: Arc<AtomicU64>,
    busy_ns: Arc<AtomicU64>,
}

impl GuestUsage {
    /// `fut`, with the time spent in each of its polls counted.
    pub(super) fn timed<F: Future>(&self, fut: F) -> impl Future<Output = F::Output> + use<F> {
        Timed { fut: Box::pin(fut), busy_ns: Arc::clone(&self.busy_ns) }
    }
}

struct Timed<F> {
    fut: Pin<Box<F>>,
    busy_ns: Arc<AtomicU64>,
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = Instant::now();
        let out = self.fut.as_mut().poll(cx);
        let spent = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.busy_ns.fetch_add(spent, Ordering::Relaxed);
        out
    }
}

pub(super) struct WasiControl {
    task: JoinHandle<ExitStatus>,
    killed: Arc<AtomicBool>,
    status: Option<ExitStatus>,
    usage: GuestUsage,
}

impl WasiControl {
    pub(super) fn new(task: JoinHandle<ExitStatus>, killed: Arc<AtomicBool>, usage: GuestUsage) -> Self {
        Self { task, killed, status: None, usage }
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

    fn usage(&self) -> UsageProbe {
        let usage = self.usage.clone();
        Arc::new(move || {
            let u = Usage {
                cpu: Some(Duration::from_nanos(usage.busy_ns.load(Ordering::Relaxed))),
                memory: Some(usage.memory.load(Ordering::Relaxed)),
            };
            Box::pin(async move { u })
        })
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
