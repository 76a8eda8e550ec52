use std::path::PathBuf;

/// What to run and with what it may touch.
///
/// Closed by default: the program gets only the environment listed in `env`
/// (plus `PATH` and `HOME` the backend chooses), never the host's.
#[derive(Debug, Clone, Default)]
pub struct SandboxSpec {
    /// Program to execute, looked up on `PATH` if it has no slash.
    pub program: String,
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Environment variables the program sees, in order; later entries win.
    pub env: Vec<(String, String)>,
    /// Working directory; the backend's default when `None`.
    pub cwd: Option<PathBuf>,
    /// Host environment variables passed through by name (e.g. `PATH` for
    /// unsandboxed runs, where a program must find its interpreter).
    pub inherit_env: Vec<String>,
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
}
