//! Health checks: every so often each instance must answer a cheap request
//! (`ping` for a legacy server, `server/discover` for a modern one); one
//! that does not answer in time is wedged and is replaced, failing the calls
//! it holds at once rather than at their deadlines. Unless it was computing:
//! a single-threaded server busy with a long call answers nothing either,
//! but its sandbox charges it CPU time while the check waits, and a wedged
//! one (deadlocked, stopped, blocked on something that never comes) uses
//! next to none.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use berth_sandbox::UsageProbe;

use super::Pool;

/// CPU time, as a share of the check's timeout, that marks an instance that
/// did not answer as computing rather than wedged.
const COMPUTING_SHARE: u32 = 10;

impl Pool {
    /// Starts a check of every instance whose turn has come.
    pub(super) fn check_health(self: &Arc<Self>, now: Instant) {
        let interval = self.scaling.health_interval;
        if interval.is_zero() {
            return;
        }
        for m in self.hosts.read().iter() {
            if !m.health_due(now, interval) {
                continue;
            }
            let (m, pool) = (m.clone(), self.clone());
            let probe = m.host.current().map(|r| r.conn.usage());
            tokio::spawn(async move {
                let timeout = pool.scaling.health_timeout;
                let before = cpu(probe.as_ref()).await;
                if let Err(reason) = m.host.check(timeout).await {
                    let after = cpu(probe.as_ref()).await;
                    if let (Some(b), Some(a)) = (before, after)
                        && a.saturating_sub(b) >= timeout / COMPUTING_SHARE
                    {
                        let used = a.saturating_sub(b);
                        tracing::info!(connector = %pool.name, %reason, ?used, "instance did not answer its health check but is computing; keeping it");
                        m.checking.store(false, Ordering::Release);
                        return;
                    }
                    tracing::warn!(connector = %pool.name, %reason, "instance failed its health check; replacing it");
                    metrics::counter!("berth_health_check_failures_total", "connector" => pool.connector.clone())
                        .increment(1);
                    m.host.replace(&format!("failed its health check: {reason}"));
                }
                m.checking.store(false, Ordering::Release);
            });
        }
    }
}

/// The instance's CPU time so far, where its sandbox can tell.
async fn cpu(probe: Option<&UsageProbe>) -> Option<Duration> {
    let probe = probe?;
    tokio::time::timeout(super::USAGE_TIMEOUT, probe()).await.ok()?.cpu
}
