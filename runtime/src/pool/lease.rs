//! A request's claim on one instance, and the pool's running measure of
//! how many requests it serves.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::upstream::{Host, Ready};

/// One instance of a pool and the requests it is serving.
pub struct Member {
    pub(super) host: Host,
    /// Requests holding a [`Lease`] on it.
    pub(super) leases: AtomicUsize,
    /// A health check is running.
    pub(super) checking: AtomicBool,
    last_check: Mutex<Instant>,
}

impl Member {
    pub(super) fn new(host: Host) -> Self {
        Self {
            host,
            leases: AtomicUsize::new(0),
            checking: AtomicBool::new(false),
            last_check: Mutex::new(Instant::now()),
        }
    }

    /// Whether a running instance is due a health check; if so, marks the
    /// check as started.
    pub(super) fn health_due(&self, now: Instant, interval: Duration) -> bool {
        if self.host.current().is_none() || self.checking.load(Ordering::Acquire) {
            return false;
        }
        let mut last = self.last_check.lock();
        if now.saturating_duration_since(*last) < interval {
            return false;
        }
        *last = now;
        self.checking.store(true, Ordering::Release);
        true
    }

    /// The running server, if any.
    pub fn current(&self) -> Option<Arc<Ready>> {
        self.host.current()
    }

    /// Takes a slot if fewer than `cap` are taken.
    pub(super) fn try_take(&self, cap: usize) -> bool {
        self.leases.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < cap).then_some(n + 1)).is_ok()
    }

    pub(super) fn load(&self) -> usize {
        self.leases.load(Ordering::Acquire)
    }

    /// Whether a legacy session is pinned to it (pins hold weak references).
    pub(super) fn pinned(self: &Arc<Self>) -> bool {
        Arc::weak_count(self) > 0
    }
}

/// What a lease gives back when it ends.
pub(super) trait Release: Send + Sync {
    fn release(&self);
}

/// A ready instance reserved for one request: it counts against the
/// instance's concurrency limit until dropped. Attach it to the request's
/// [`crate::upstream::Call`] so the slot is held until the answer arrives.
pub struct Lease {
    pub(super) ready: Arc<Ready>,
    pub(super) member: Arc<Member>,
    pub(super) pool: Arc<dyn Release>,
}

impl Lease {
    /// The instance, for use after the lease has moved into a call.
    pub fn ready(&self) -> Arc<Ready> {
        self.ready.clone()
    }

    /// The instance's id, as the admin API and audit records name it.
    pub fn instance(&self) -> u64 {
        self.member.host.id()
    }
}

impl Deref for Lease {
    type Target = Ready;
    fn deref(&self) -> &Ready {
        &self.ready
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.member.leases.fetch_sub(1, Ordering::AcqRel);
        self.pool.release();
    }
}

/// Requests in flight over time: a time-weighted mean between samples, so a
/// burst of millisecond calls between two samples is not missed.
#[derive(Debug)]
pub(super) struct Load {
    in_flight: usize,
    since: Instant,
    /// Request-seconds accumulated since the last sample.
    area: f64,
    /// Whether any request started since the last sample.
    touched: bool,
    last_sample: Instant,
}

impl Load {
    pub(super) fn new(now: Instant) -> Self {
        Self { in_flight: 0, since: now, area: 0.0, touched: false, last_sample: now }
    }

    fn advance(&mut self, now: Instant) {
        self.area += self.in_flight as f64 * now.saturating_duration_since(self.since).as_secs_f64();
        self.since = now;
    }

    pub(super) fn start(&mut self, now: Instant) {
        self.advance(now);
        self.in_flight += 1;
        self.touched = true;
    }

    pub(super) fn end(&mut self, now: Instant) {
        self.advance(now);
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The mean in flight since the last sample, and whether anything ran.
    pub(super) fn sample(&mut self, now: Instant) -> (f64, bool) {
        self.advance(now);
        let span = now.saturating_duration_since(self.last_sample).as_secs_f64();
        let mean = if span > 0.0 { self.area / span } else { self.in_flight as f64 };
        let busy = self.touched || self.in_flight > 0;
        self.area = 0.0;
        self.touched = false;
        self.last_sample = now;
        (mean, busy)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_mean_weighs_requests_by_how_long_they_ran() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut load = Load::new(t0);
        // Two requests for the first half second, one for the second half.
        load.start(ms(0));
        load.start(ms(0));
        load.end(ms(500));
        let (mean, busy) = load.sample(ms(1000));
        assert!((mean - 1.5).abs() < 1e-9, "{mean}");
        assert!(busy);
        // The one still running keeps the next second at 1.
        let (mean, _) = load.sample(ms(2000));
        assert!((mean - 1.0).abs() < 1e-9, "{mean}");
        load.end(ms(2000));
        assert_eq!(load.sample(ms(3000)), (0.0, false));
    }

    #[test]
    fn a_blip_between_samples_is_activity() {
        let t0 = Instant::now();
        let mut load = Load::new(t0);
        load.start(t0 + Duration::from_millis(10));
        load.end(t0 + Duration::from_millis(11));
        let (mean, busy) = load.sample(t0 + Duration::from_secs(1));
        assert!(mean < 0.01 && busy);
    }
}
