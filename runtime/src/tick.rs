//! Housekeeping that runs periodically for as long as its owner lives.

use std::sync::Arc;
use std::time::Duration;

/// Calls `work` on `owner` every second, from a task that holds only a weak
/// reference: dropping the last `Arc` ends it.
pub fn every_second<T: Send + Sync + 'static>(owner: &Arc<T>, work: impl Fn(&Arc<T>) + Send + 'static) {
    let weak = Arc::downgrade(owner);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(owner) = weak.upgrade() else { return };
            work(&owner);
        }
    });
}

/// Awaits `work` on `owner` every `period` (the first time after one period),
/// from a task that holds only a weak reference between runs: dropping the
/// last `Arc` ends it. `what` names the work in the warning a failure logs.
pub fn every<T, F, E>(owner: &Arc<T>, period: Duration, what: &'static str, work: impl Fn(Arc<T>) -> F + Send + 'static)
where
    T: Send + Sync + 'static,
    F: std::future::Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let weak = Arc::downgrade(owner);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(owner) = weak.upgrade() else { return };
            if let Err(e) = work(owner).await {
                tracing::warn!(error = %e, "{what}");
            }
        }
    });
}
