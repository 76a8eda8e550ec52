use std::path::PathBuf;

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
}

/// A host path visible inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The host path; it appears at the same path inside.
    pub path: PathBuf,
    /// Whether the sandbox may write to it.
    pub writable: bool,
}

impl Mount {
    /// A read-only mount.
    pub fn read_only(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), writable: false }
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
}

impl SandboxSpec {
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
