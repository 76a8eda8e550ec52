//! Housekeeping that runs once a second for as long as its owner lives.

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
