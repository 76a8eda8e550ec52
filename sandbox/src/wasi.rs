//! The `wasi` backend: WebAssembly guests in wasmtime, in berth's own process.
//!
//! A guest is a core `wasm32-wasip1` module or a `wasip2` component (told
//! apart by its header). It gets what the spec grants and nothing else:
//! arguments, the spec's environment, its mounts as preopened directories
//! (read-only unless writable), stdio piped to the [`Instance`], no sockets.
//! Memory is capped per instance by a store limiter; CPU by epoch deadlines:
//! a ticker thread advances the engine's epoch, and a guest that computes
//! past its deadline without new input traps. Instances come from a pooling
//! allocator, and compiled code from a cache (in memory, and on disk keyed by
//! the module's SHA-256 and the engine's configuration), so a launch after
//! the first costs microseconds rather than the seconds cranelift needs.

mod cache;
mod clock;
mod control;
mod guest;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::{BoxFuture, Instance, Sandbox, SandboxError, SandboxSpec};
use cache::Cache;
use clock::Clock;
use guest::Linkers;

/// How often the epoch advances: the granularity of CPU deadlines, and how
/// often a computing guest yields its thread to other tasks.
pub const TICK: Duration = Duration::from_millis(10);

/// CPU deadline when the spec's limits name none: generous for a tool call,
/// short enough that a stuck guest does not hold a core for long.
pub const DEFAULT_CPU_DEADLINE: Duration = Duration::from_secs(30);

/// Memory limit when the spec's limits name none (as the native backend).
pub const DEFAULT_MEMORY: u64 = 512 << 20;

/// Settings of one [`WasiSandbox`]; [`WasiConfig::default`] suits a server.
#[derive(Debug, Clone)]
pub struct WasiConfig {
    /// Where compiled modules are kept between runs; `None` keeps them in
    /// memory only.
    pub cache_dir: Option<PathBuf>,
    /// Most guests alive at once: the pooling allocator reserves their slots
    /// (address space, not memory) up front.
    pub max_instances: u32,
}

impl Default for WasiConfig {
    fn default() -> Self {
        Self { cache_dir: None, max_instances: 128 }
    }
}

impl WasiConfig {
    /// Sets the on-disk cache of compiled modules.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }
}

/// Runs WebAssembly guests. Cheap to share: every launch reuses one engine,
/// its pooled slots and the cache of compiled modules.
#[derive(Clone)]
pub struct WasiSandbox {
    shared: Arc<Shared>,
}

struct Shared {
    engine: Engine,
    linkers: Linkers,
    cache: Cache,
    clock: Arc<Clock>,
}

impl std::fmt::Debug for WasiSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiSandbox").field("cache", &self.shared.cache).finish_non_exhaustive()
    }
}

fn unsupported(e: impl std::fmt::Debug) -> SandboxError {
    SandboxError::Unsupported(format!("wasmtime: {e:?}"))
}

impl WasiSandbox {
    /// Builds the engine (pooling allocator, epoch interruption) and starts
    /// its epoch ticker, which runs as long as the engine does.
    pub fn new(config: WasiConfig) -> Result<Self, SandboxError> {
        let n = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // A component built by Rust for wasip2 holds a few core instances,
        // memories and tables; leave room for several per guest.
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(4))
            .total_tables(n.saturating_mul(8))
            .total_stacks(n);
        let mut wasm = Config::new();
        wasm.epoch_interruption(true).allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(unsupported)?;
        let linkers = Linkers::new(&engine).map_err(unsupported)?;
        let cache = Cache::new(&engine, config.cache_dir)?;
        let clock = Clock::start(&engine, TICK);
        Ok(Self { shared: Arc::new(Shared { engine, linkers, cache, clock }) })
    }

    /// Compiles (or loads from the cache) `module` without running it, so a
    /// first launch does not pay for compilation.
    pub async fn prepare(&self, module: &std::path::Path) -> Result<(), SandboxError> {
        let s = &self.shared;
        s.cache.load(&s.engine, &s.linkers, module).await.map(drop)
    }

    /// Forgets the compiled modules held in memory (the disk cache stays),
    /// so the next launch of each loads it again; for benchmarks.
    pub fn forget_loaded(&self) {
        self.shared.cache.forget_loaded();
    }
}

impl Sandbox for WasiSandbox {
    fn name(&self) -> &'static str {
        "wasi"
    }

    fn launch<'a>(&'a self, spec: &'a SandboxSpec) -> BoxFuture<'a, Result<Instance, SandboxError>> {
        Box::pin(async move {
            if spec.network != crate::Network::None {
                // Guests get no sockets at all, so there is nothing for a
                // proxy to serve; refusing says so instead of failing later.
                return Err(SandboxError::Unsupported(
                    "the wasi backend gives guests no sockets, so it cannot grant egress".into(),
                ));
            }
            let s = &self.shared;
            let module = spec
                .module
                .as_deref()
                .ok_or_else(|| SandboxError::InvalidSpec("the wasi backend needs a wasm module".into()))?;
            let loaded = s.cache.load(&s.engine, &s.linkers, module).await?;
            guest::start(&s.engine, &loaded, &s.clock, spec).await
        })
    }
}

#[cfg(test)]
mod tests;
