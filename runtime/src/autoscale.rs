//! How many instances a pool should run, decided the way Knative's KPA does:
//! from the average number of requests in flight over a long *stable*
//! window and a short *panic* window.
//!
//! Normally the pool follows the stable average, so a brief lull does not
//! stop instances that the next minute needs. When the short-window demand
//! reaches twice what the running instances can take at their target, the
//! pool panics: it scales to the short-window demand at once and does not
//! scale down until a whole stable window has passed without panic. After
//! a pool has had no requests at all for its idle timeout it may go to zero.
//!
//! The type is a pure function of the samples it is given, so its decisions
//! are tested with a fake clock; [`crate::pool`] feeds it once a second.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Demand at or above this multiple of the running capacity starts a panic.
const PANIC_THRESHOLD: f64 = 2.0;

/// A pool's scaling bounds and windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Windows {
    /// Requests in flight per instance that the pool aims for.
    pub target: usize,
    /// Fewest instances.
    pub min: usize,
    /// Most instances.
    pub max: usize,
    /// Averaging window for normal decisions (KPA: 60 s).
    pub stable: Duration,
    /// Averaging window for bursts (KPA: a tenth of the stable window).
    pub panic: Duration,
    /// No request at all for this long lets the pool go to zero.
    pub idle: Duration,
}

/// The decision state of one pool.
#[derive(Debug)]
pub struct Autoscaler {
    windows: Windows,
    /// (when, mean requests in flight since the previous sample).
    samples: VecDeque<(Instant, f64)>,
    panicking_since: Option<Instant>,
    /// The last time any request was in flight or waiting.
    last_busy: Option<Instant>,
}

impl Autoscaler {
    /// A scaler with no history.
    pub fn new(windows: Windows) -> Self {
        let windows = Windows { target: windows.target.max(1), max: windows.max.max(1), ..windows };
        Self { windows, samples: VecDeque::new(), panicking_since: None, last_busy: None }
    }

    /// Records the mean number of requests in flight (waiting ones included)
    /// over the interval ending `now`; `busy` says whether any request ran
    /// or waited during it, however briefly.
    pub fn observe(&mut self, now: Instant, concurrency: f64, busy: bool) {
        if busy || concurrency > 0.0 {
            self.last_busy = Some(now);
        }
        self.samples.push_back((now, concurrency.max(0.0)));
        while self.samples.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > self.windows.stable) {
            self.samples.pop_front();
        }
    }

    /// Whether the pool is in panic mode.
    pub fn panicking(&self) -> bool {
        self.panicking_since.is_some()
    }

    /// How many instances should serve, given `current` running ones.
    pub fn desired(&mut self, now: Instant, current: usize) -> usize {
        let w = self.windows;
        let need = |avg: f64| (avg / w.target as f64).ceil() as usize;
        let stable = need(self.average(now, w.stable));
        let burst = need(self.average(now, w.panic));
        let capacity = current.max(1) as f64;
        let panic_now = burst as f64 / capacity >= PANIC_THRESHOLD && burst > current;
        match self.panicking_since {
            None if panic_now => self.panicking_since = Some(now),
            Some(since) if !panic_now && now.saturating_duration_since(since) >= w.stable => {
                self.panicking_since = None;
            }
            Some(_) if panic_now => self.panicking_since = Some(now),
            _ => {}
        }
        let recently_busy = self.last_busy.is_some_and(|t| now.saturating_duration_since(t) < w.idle);
        let want = if !recently_busy {
            // Nothing ran for the idle timeout: what the averages remember
            // is history, and must not size the pool for the next request.
            self.samples.clear();
            self.panicking_since = None;
            0
        } else if self.panicking() {
            burst.max(current)
        } else {
            // Requests came recently: keep one even if the average rounds to nothing.
            stable.max(usize::from(current > 0))
        };
        want.clamp(w.min, w.max)
    }

    /// Mean concurrency over the samples within `window` of `now`.
    fn average(&self, now: Instant, window: Duration) -> f64 {
        let recent: Vec<f64> = self
            .samples
            .iter()
            .rev()
            .take_while(|(t, _)| now.saturating_duration_since(*t) < window)
            .map(|(_, c)| *c)
            .collect();
        if recent.is_empty() { 0.0 } else { recent.iter().sum::<f64>() / recent.len() as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows() -> Windows {
        Windows {
            target: 10,
            min: 0,
            max: 10,
            stable: Duration::from_secs(60),
            panic: Duration::from_secs(6),
            idle: Duration::from_secs(30),
        }
    }

    /// Feeds one sample a second for `secs` seconds.
    fn feed(a: &mut Autoscaler, t: &mut Instant, secs: u64, concurrency: f64) {
        for _ in 0..secs {
            *t += Duration::from_secs(1);
            a.observe(*t, concurrency, concurrency > 0.0);
        }
    }

    #[test]
    fn steady_load_asks_for_load_over_target() {
        let mut a = Autoscaler::new(windows());
        let mut t = Instant::now();
        feed(&mut a, &mut t, 60, 25.0);
        assert_eq!(a.desired(t, 3), 3);
        assert!(!a.panicking());
    }

    #[test]
    fn a_burst_panics_and_scales_at_once() {
        let mut a = Autoscaler::new(windows());
        let mut t = Instant::now();
        feed(&mut a, &mut t, 60, 5.0);
        assert_eq!(a.desired(t, 1), 1);
        // Six seconds at 60 in flight: the stable average barely moves, the panic one says 6.
        feed(&mut a, &mut t, 6, 60.0);
        assert_eq!(a.desired(t, 1), 6);
        assert!(a.panicking());
    }

    #[test]
    fn panic_never_scales_down_until_a_calm_stable_window() {
        let mut a = Autoscaler::new(windows());
        let mut t = Instant::now();
        feed(&mut a, &mut t, 6, 80.0);
        assert_eq!(a.desired(t, 1), 8);
        // Load drops: still panicking, so the 8 stay.
        feed(&mut a, &mut t, 10, 1.0);
        assert_eq!(a.desired(t, 8), 8);
        assert!(a.panicking());
        // A whole stable window without panic ends it; the stable average rules.
        feed(&mut a, &mut t, 60, 1.0);
        assert_eq!(a.desired(t, 8), 1);
        assert!(!a.panicking());
    }

    #[test]
    fn a_lull_shorter_than_the_stable_window_keeps_instances() {
        let mut a = Autoscaler::new(windows());
        let mut t = Instant::now();
        feed(&mut a, &mut t, 60, 40.0);
        feed(&mut a, &mut t, 20, 0.0);
        // Two thirds of the window at 40, a third at 0: still wants 3 of 4.
        assert_eq!(a.desired(t, 4), 3);
    }

    #[test]
    fn zero_only_after_the_idle_timeout() {
        let mut a = Autoscaler::new(windows());
        let mut t = Instant::now();
        // A trickle of short requests averages to nearly nothing.
        feed(&mut a, &mut t, 60, 0.01);
        assert_eq!(a.desired(t, 1), 1);
        feed(&mut a, &mut t, 29, 0.0);
        assert_eq!(a.desired(t, 1), 1, "busy 29 s ago, idle timeout 30 s");
        feed(&mut a, &mut t, 2, 0.0);
        assert_eq!(a.desired(t, 1), 0);
    }

    #[test]
    fn demand_from_before_an_idle_spell_is_forgotten() {
        let mut a = Autoscaler::new(windows());
        let mut t = Instant::now();
        feed(&mut a, &mut t, 5, 100.0);
        assert_eq!(a.desired(t, 1), 10);
        feed(&mut a, &mut t, 31, 0.0);
        assert_eq!(a.desired(t, 10), 0, "idle past the timeout");
        // One request now: one instance, not the ten the burst wanted.
        t += Duration::from_secs(1);
        a.observe(t, 0.5, true);
        assert_eq!(a.desired(t, 1), 1);
        assert!(!a.panicking());
    }

    #[test]
    fn bounds_hold() {
        let mut a = Autoscaler::new(Windows { min: 2, max: 4, ..windows() });
        let mut t = Instant::now();
        assert_eq!(a.desired(t, 0), 2);
        feed(&mut a, &mut t, 60, 1000.0);
        assert_eq!(a.desired(t, 4), 4);
    }

    #[test]
    fn a_brief_request_between_samples_counts_as_activity() {
        let mut a = Autoscaler::new(windows());
        let mut t = Instant::now();
        t += Duration::from_secs(1);
        a.observe(t, 0.0, true);
        feed(&mut a, &mut t, 10, 0.0);
        assert_eq!(a.desired(t, 1), 1);
    }
}
