//! Health checks: every so often each instance must answer a cheap request
//! (`ping` for a legacy server, `server/discover` for a modern one); one
//! that does not answer in time is wedged and is replaced, failing the calls
//! it holds at once rather than at their deadlines.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::Pool;

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
            tokio::spawn(async move {
                if let Err(reason) = m.host.check(pool.scaling.health_timeout).await {
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
