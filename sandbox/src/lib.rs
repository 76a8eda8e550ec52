//! Sandboxes for untrusted programs.
//!
//! berth runs other people's code next to other users' credentials, so every
//! program it launches goes through one seam: a [`Sandbox`] turns a
//! [`SandboxSpec`] into a running [`Instance`]. The caller only ever sees byte
//! streams and a process handle; this crate knows nothing of MCP, HTTP or
//! connectors, so a backend can be reasoned about (and attacked) on its own.
//!
//! Backends: [`process::ProcessSandbox`] (no isolation, `--sandbox none`) and
//! [`native::NativeSandbox`] (namespaces, private root, no privileges,
//! seccomp, cgroup limits), [`container::ContainerSandbox`] (Docker) and,
//! with the `wasi` feature (on by default), [`wasi::WasiSandbox`]
//! (WebAssembly guests in wasmtime).

#[cfg(target_os = "linux")]
pub mod container;
pub mod egress;
mod error;
mod instance;
#[cfg(target_os = "linux")]
pub mod native;
pub mod process;
mod spec;
mod usage;
#[cfg(feature = "wasi")]
pub mod wasi;

pub use error::SandboxError;
pub use instance::{ExitStatus, Instance, InstanceControl, TrapCause, Usage, UsageProbe, no_usage};
pub use spec::{Limits, Mount, Network, SandboxSpec};

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so that backends can be chosen at run time (`dyn Sandbox`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Launches programs described by a [`SandboxSpec`].
///
/// Implementations must guarantee that dropping the returned [`Instance`]
/// (or the whole host process dying) leaves no program behind.
pub trait Sandbox: Send + Sync + 'static {
    /// A short name for logs and errors (`none`, `native`, `wasi`, `container`).
    fn name(&self) -> &'static str;

    /// Starts the program with piped stdin, stdout and stderr.
    fn launch<'a>(&'a self, spec: &'a SandboxSpec) -> BoxFuture<'a, Result<Instance, SandboxError>>;
}
