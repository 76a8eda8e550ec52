use std::io;
use std::path::PathBuf;

/// Why a sandbox could not start or control an instance.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec asks for something this backend cannot do (a wrong kind of
    /// program, an empty command line).
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    /// The program could not be started at all (not found, not executable).
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// The program that was asked for.
        program: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// This host cannot run the backend; the message says what is missing.
    #[error("sandbox unavailable: {0}")]
    Unsupported(String),
    /// Controlling a running instance failed.
    #[error("instance control failed: {0}")]
    Control(#[source] io::Error),
    /// A WebAssembly module could not be read, compiled or instantiated.
    #[error("wasm module {}: {message}", path.display())]
    Module {
        /// The module asked for.
        path: PathBuf,
        /// What went wrong, with its causes.
        message: String,
    },
    /// The spec's egress allowlist is invalid, or its proxy could not start.
    #[error(transparent)]
    Egress(#[from] crate::egress::EgressError),
}
