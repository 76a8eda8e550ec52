use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What to run and with what it may touch.
///
/// Closed by default: the program gets only the environment listed in `env`
/// (plus what `inherit_env` names), no mounts beyond a minimal system, no
/// network, and the default [`Limits`].
#[derive(Debug, Clone, Default)]
pub struct SandboxSpec {
    /// Program to execute, looked up on `PATH` if it has no slash.
    pub program: String,
    /// The image to run it in (container backend only).
    pub image: Option<String>,
    /// The WebAssembly module or component to run (WASI backend only; a
    /// core wasm32-wasip1 module or a wasip2 component, told apart by its
    /// header). `program` then only names it in logs and as `argv[0]`.
    pub module: Option<PathBuf>,
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Environment variables the program sees, in order; later entries win.
    pub env: Vec<(String, String)>,
    /// Working directory; the backend's default when `None`.
    pub cwd: Option<PathBuf>,
    /// Host environment variables passed through by name (e.g. `PATH`, so a
    /// launcher finds its interpreter).
    pub inherit_env: Vec<String>,
    /// Host paths made visible inside the sandbox, at the same path.
    pub mounts: Vec<Mount>,
    /// Resource limits.
    pub limits: Limits,
    /// What the program may reach over the network.
    pub network: Network,
}

/// What an instance may reach over the network.
///
/// Closed by default. There is no raw-route option: a connector that needs
/// the internet gets it through berth's egress proxy ([`crate::egress`]),
/// which checks every destination against the allowlist and refuses private,
/// loopback and metadata addresses after resolving them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Network {
    /// No network at all (the native backend's empty network namespace,
    /// the container backend's `none` network, WASI's missing sockets).
    #[default]
    None,
    /// Only HTTP CONNECT tunnels through berth's egress proxy, to the
    /// `host` (port 443) or `host:port` entries listed (`*.example.com`
    /// matches any subdomain); the program finds the proxy in
    /// `HTTPS_PROXY`/`HTTP_PROXY` (and their lower-case twins).
    Egress {
        /// Allowlist entries.
        allow: Vec<String>,
    },
}

/// A host path visible inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The host path.
    pub path: PathBuf,
    /// Where it appears inside; at the same path when `None`.
    #[serde(default)]
    pub target: Option<PathBuf>,
    /// Whether the sandbox may write to it.
    pub writable: bool,
}

impl Mount {
    /// A read-only mount at the same path.
    pub fn read_only(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), target: None, writable: false }
    }

    /// Host directory `path`, read-only, at `target` inside (a per-instance
    /// directory of files berth writes, such as credentials).
    pub fn read_only_at(path: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), target: Some(target.into()), writable: false }
    }

    /// Where it appears inside the sandbox.
    pub fn inside(&self) -> &std::path::Path {
        self.target.as_deref().unwrap_or(&self.path)
    }
}

/// Resource limits of one instance. `None` means the backend's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory, in bytes.
    pub memory: Option<u64>,
    /// Processes and threads.
    pub pids: Option<u64>,
    /// CPU, in cores (0.5 = half a core).
    pub cpus: Option<f64>,
    /// Open files.
    pub nofile: Option<u64>,
    /// Largest file the program may write, in bytes.
    pub file_size: Option<u64>,
    /// Size of the private `/tmp`, in bytes.
    pub tmpfs: Option<u64>,
    /// Longest the program may keep computing after its last input before
    /// it is stopped (WASI backend: an epoch deadline, so a guest stuck in a
    /// loop traps instead of holding a core forever; time spent waiting
    /// for input does not count).
    pub cpu_deadline: Option<Duration>,
}

impl SandboxSpec {
    /// A spec for the WebAssembly `module` with `args…` and nothing else
    /// granted (WASI backend).
    pub fn wasm(module: impl Into<PathBuf>, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let module = module.into();
        let program = module.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Self { module: Some(module), ..Self::command(program, args) }
    }

    /// A spec for `program args…` with nothing else granted.
    pub fn command(program: impl Into<String>, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { program: program.into(), args: args.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// Adds one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The environment the program starts with: inherited names first, then `env`.
    pub fn environment(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            self.inherit_env.iter().filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v))).collect();
        for (k, v) in &self.env {
            out.retain(|(ek, _)| ek != k);
            out.push((k.clone(), v.clone()));
        }
        out
    }
}
