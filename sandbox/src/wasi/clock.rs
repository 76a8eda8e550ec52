//! The epoch ticker: one thread per engine that advances its epoch every
//! tick and counts the ticks, so deadlines can be measured in them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::Engine;

/// Ticks since the engine was made.
#[derive(Debug, Default)]
pub(super) struct Clock {
    ticks: AtomicU64,
}

impl Clock {
    /// Starts the ticker. It holds the engine weakly and stops once the
    /// engine is gone: not when the sandbox is dropped, because guests still
    /// running then must still meet their deadlines.
    pub(super) fn start(engine: &Engine, tick: Duration) -> Arc<Self> {
        let clock = Arc::new(Self::default());
        let weak = engine.weak();
        let ticks = Arc::clone(&clock);
        let spawned = std::thread::Builder::new().name("berth-wasi-epoch".into()).spawn(move || {
            loop {
                std::thread::sleep(tick);
                let Some(engine) = weak.upgrade() else { break };
                ticks.ticks.fetch_add(1, Ordering::Relaxed);
                engine.increment_epoch();
            }
        });
        if let Err(e) = spawned {
            // Without a ticker, guests never yield or time out: say so loudly.
            tracing::error!(error = %e, "could not start the wasm epoch ticker; CPU deadlines are not enforced");
        }
        clock
    }

    /// The current tick.
    pub(super) fn now(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
}
