//! The sandbox backends of this process, each set up once on first use.
//!
//! Connectors choose their backend per manifest; the first one to need the
//! container backend connects to the engine (and sweeps what a previous,
//! killed berth left behind), and a backend that cannot run here says why
//! once per launch instead of failing berth's start.

use std::path::PathBuf;
use std::sync::Arc;

use berth_sandbox::Sandbox;
use berth_sandbox::container::ContainerSandbox;
use berth_sandbox::native::NativeSandbox;
use berth_sandbox::process::ProcessSandbox;
use berth_sandbox::wasi::{WasiConfig, WasiSandbox};
use tokio::sync::OnceCell;

/// A sandbox backend, as named on the command line and in manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// No isolation: a plain child process (trusted servers only).
    None,
    /// Linux namespaces, a private read-only root, no privileges, seccomp, cgroup limits.
    Native,
    /// A Docker container (needs a running engine and an image).
    Container,
    /// A WebAssembly guest in wasmtime (the command is a `.wasm` file).
    Wasi,
}

impl Backend {
    /// The name used in flags, manifests and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Native => "native",
            Self::Container => "container",
            Self::Wasi => "wasi",
        }
    }

    /// The backend a manifest names, if this berth has it.
    pub fn from_manifest(b: berth_catalog::manifest::Backend) -> Option<Self> {
        use berth_catalog::manifest::Backend as M;
        match b {
            M::None => Some(Self::None),
            M::Native => Some(Self::Native),
            M::Container => Some(Self::Container),
            M::Wasi => Some(Self::Wasi),
        }
    }
}

/// Lazily created backends, shared by every connector.
#[derive(Default)]
pub struct Sandboxes {
    native: OnceCell<Result<Arc<NativeSandbox>, String>>,
    container: OnceCell<Result<Arc<ContainerSandbox>, String>>,
    wasi: OnceCell<Result<Arc<WasiSandbox>, String>>,
}

/// Overrides where compiled wasm modules are cached.
pub const ENV_WASM_CACHE: &str = "BERTH_WASM_CACHE";

/// The cache of compiled wasm modules: `$BERTH_WASM_CACHE`, else
/// `$XDG_CACHE_HOME/berth/wasm`, else `~/.cache/berth/wasm`; none (memory
/// only) when no such directory can be named.
pub fn wasm_cache_dir() -> Option<PathBuf> {
    cache_dir(ENV_WASM_CACHE, "wasm")
}

/// A cache directory of berth's: `$override_var`, else
/// `$XDG_CACHE_HOME/berth/{sub}`, else `~/.cache/berth/{sub}`; `None` when
/// no such directory can be named.
pub fn cache_dir(override_var: &str, sub: &str) -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var(override_var)
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("berth").join(sub)))
        .or_else(|| var("HOME").map(|d| d.join(".cache/berth").join(sub)))
}

impl Sandboxes {
    /// The backend, set up on first use; the error says what is missing.
    pub async fn get(&self, backend: Backend) -> Result<Arc<dyn Sandbox>, String> {
        match backend {
            Backend::None => Ok(Arc::new(ProcessSandbox)),
            Backend::Native => {
                let native = self
                    .native
                    .get_or_init(|| async {
                        NativeSandbox::current_exe()
                            .map(Arc::new)
                            .map_err(|e| format!("the native sandbox cannot run here: {e}"))
                    })
                    .await;
                native.clone().map(|s| s as Arc<dyn Sandbox>)
            }
            Backend::Container => {
                let container = self
                    .container
                    .get_or_init(|| async {
                        let engine = ContainerSandbox::connect()
                            .await
                            .map_err(|e| format!("the container sandbox needs a Docker engine: {e}"))?;
                        engine.sweep().await;
                        Ok(Arc::new(engine))
                    })
                    .await;
                container.clone().map(|s| s as Arc<dyn Sandbox>)
            }
            Backend::Wasi => self.wasi().await.map(|s| s as Arc<dyn Sandbox>),
        }
    }

    /// The WASI backend itself, for callers that precompile modules.
    pub async fn wasi(&self) -> Result<Arc<WasiSandbox>, String> {
        self.wasi
            .get_or_init(|| async {
                let config = WasiConfig { cache_dir: wasm_cache_dir(), ..WasiConfig::default() };
                WasiSandbox::new(config).map(Arc::new).map_err(|e| format!("the wasi sandbox cannot run here: {e}"))
            })
            .await
            .clone()
    }
}
