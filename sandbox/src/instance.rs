use std::fmt;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::{BoxFuture, SandboxError};

/// How an instance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The program exited with this code.
    Code(i32),
    /// The program was killed by this signal.
    Signal(i32),
    /// A WebAssembly guest was stopped by a trap.
    Trap(TrapCause),
}

/// Why a WebAssembly guest trapped: a limit of its sandbox, or its own fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapCause {
    /// It computed past its CPU deadline without waiting for input.
    CpuDeadline,
    /// It asked for more memory than its limit allows.
    Memory,
    /// Anything else: `unreachable`, an out-of-bounds access, a stack overflow.
    Fault,
}

impl From<std::process::ExitStatus> for ExitStatus {
    fn from(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Self::Code(code),
            (None, Some(sig)) => Self::Signal(sig),
            (None, None) => Self::Code(-1),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit code {c}"),
            Self::Signal(s) => write!(f, "signal {s}"),
            Self::Trap(TrapCause::CpuDeadline) => f.write_str("trap: CPU deadline exceeded"),
            Self::Trap(TrapCause::Memory) => f.write_str("trap: memory limit exceeded"),
            Self::Trap(TrapCause::Fault) => f.write_str("trap"),
        }
    }
}

/// What an instance is using, as far as its backend can tell.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// CPU time (user and system) of every process of the instance so far.
    pub cpu: Option<std::time::Duration>,
    /// Memory in use now, in bytes: the cgroup's or container's charge, a
    /// plain process's resident set, a guest's linear memory.
    pub memory: Option<u64>,
}

/// Reads an instance's [`Usage`] on demand. Taken from its control before a
/// task takes the control to wait on it; reading after the instance ended
/// gives whatever is left to read (usually nothing).
pub type UsageProbe = std::sync::Arc<dyn Fn() -> BoxFuture<'static, Usage> + Send + Sync>;

/// A probe that knows nothing.
pub fn no_usage() -> UsageProbe {
    std::sync::Arc::new(|| Box::pin(async { Usage::default() }))
}

/// Lifecycle control of a running instance, separate from its streams so that
/// one task can own the streams while another waits or kills.
pub trait InstanceControl: Send + Sync {
    /// Operating-system process id, where there is one.
    fn pid(&self) -> Option<u32>;
    /// How to read the instance's resource usage.
    fn usage(&self) -> UsageProbe {
        no_usage()
    }
    /// Waits for the instance to end.
    fn wait(&mut self) -> BoxFuture<'_, Result<ExitStatus, SandboxError>>;
    /// Ends the instance now (SIGKILL or the backend's equivalent).
    fn kill(&mut self) -> BoxFuture<'_, Result<(), SandboxError>>;
}

/// A running sandboxed program: three byte streams and a control handle.
pub struct Instance {
    /// The program's standard input.
    pub stdin: Box<dyn AsyncWrite + Send + Unpin>,
    /// The program's standard output.
    pub stdout: Box<dyn AsyncRead + Send + Unpin>,
    /// The program's standard error.
    pub stderr: Box<dyn AsyncRead + Send + Unpin>,
    /// Wait for or kill the program. Dropping it kills the program.
    pub control: Box<dyn InstanceControl>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance").field("pid", &self.control.pid()).finish_non_exhaustive()
    }
}
