//! A connector's instances: requests go to the least-loaded ready one, a new
//! one starts when all are at their target concurrency (up to the maximum),
//! idle ones beyond the minimum stop, and a warm reserve of started,
//! handshaken instances hides cold starts.
//!
//! A request waits for a launch only when nothing runs at all; otherwise it
//! queues on the least-loaded instance while the new one starts in the
//! background, so a burst is never held up by a cold start it did not need.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use berth_sandbox::Sandbox;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::jsonrpc::ErrorObject;
use crate::upstream::{Broadcast, Host, HostConfig, Ready};

/// The longest a retired pool's in-flight requests may run on.
const RETIRE_GRACE: Duration = Duration::from_secs(300);

/// How many instances, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scaling {
    /// Instances kept running even when idle.
    pub min: usize,
    /// Most instances at once.
    pub max: usize,
    /// In-flight requests per instance before another starts.
    pub target: usize,
    /// Started instances kept idle beyond demand.
    pub warm: usize,
    /// Idle time after which an instance beyond `min` + `warm` stops.
    pub idle: Duration,
}

impl Default for Scaling {
    /// One instance, started on demand, stopped after five idle minutes.
    fn default() -> Self {
        Self { min: 0, max: 1, target: usize::MAX, warm: 0, idle: Duration::from_secs(300) }
    }
}

/// One instance as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceInfo {
    /// The process id, where there is one.
    pub pid: Option<u32>,
    /// `ready` or `stopped` (being relaunched on its next request).
    pub state: &'static str,
    /// Requests in flight.
    pub in_flight: usize,
}

/// Pins a legacy session to one instance (its server keeps per-client state).
pub type Pin = Mutex<Option<Weak<Host>>>;

/// The instances of one connector.
pub struct Pool {
    name: String,
    config: HostConfig,
    sandbox: Arc<dyn Sandbox>,
    scaling: Scaling,
    hosts: RwLock<Vec<Arc<Host>>>,
    events: broadcast::Sender<Arc<Broadcast>>,
    /// Set while a background launch is under way, so a burst starts one.
    growing: Mutex<bool>,
    /// Requests waiting for the first instance to start.
    waiting: AtomicUsize,
    /// When what this pool launches with (an injected upstream token) goes
    /// stale: from then on new requests get a fresh pool and this one drains.
    expires: Mutex<Option<Instant>>,
}

impl Pool {
    /// A pool launching `config` in `sandbox`.
    pub fn new(config: HostConfig, sandbox: Arc<dyn Sandbox>, scaling: Scaling) -> Arc<Self> {
        let scaling = Scaling { max: scaling.max.max(1), target: scaling.target.max(1), ..scaling };
        Arc::new(Self {
            name: config.name.clone(),
            config,
            sandbox,
            scaling,
            hosts: RwLock::new(Vec::new()),
            events: broadcast::channel(256).0,
            growing: Mutex::new(false),
            waiting: AtomicUsize::new(0),
            expires: Mutex::new(None),
        })
    }

    /// Marks the pool stale from `at` (see [`Pools::for_user`]).
    pub fn expire_at(&self, at: Instant) {
        *self.expires.lock() = Some(at);
    }

    fn expired(&self) -> bool {
        self.expires.lock().is_some_and(|at| Instant::now() >= at)
    }

    /// Stops the instances once the requests they are serving are done
    /// (or after [`RETIRE_GRACE`]), off the caller's path.
    pub fn retire(self: Arc<Self>) {
        tokio::spawn(async move {
            let deadline = Instant::now() + RETIRE_GRACE;
            while Instant::now() < deadline && self.instances().iter().any(|i| i.in_flight > 0) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            self.shutdown();
        });
    }

    /// Notifications from every instance.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Broadcast>> {
        self.events.subscribe()
    }

    /// Any running instance, without launching one.
    pub fn current(&self) -> Option<Arc<Ready>> {
        self.hosts.read().iter().find_map(|h| h.current())
    }

    /// The least-loaded ready instance, growing the pool when all are busy.
    pub async fn ready(self: &Arc<Self>) -> Result<Arc<Ready>, ErrorObject> {
        self.pick().await.map(|(_, r)| r)
    }

    /// Like [`Pool::ready`], but keeps a legacy session on the instance it
    /// first used, as long as that instance lives.
    pub async fn ready_pinned(self: &Arc<Self>, pin: &Pin) -> Result<Arc<Ready>, ErrorObject> {
        let pinned = pin.lock().as_ref().and_then(Weak::upgrade);
        if let Some(host) = pinned
            && self.hosts.read().iter().any(|h| Arc::ptr_eq(h, &host))
        {
            return host.ready().await;
        }
        let (host, ready) = self.pick().await?;
        *pin.lock() = Some(Arc::downgrade(&host));
        Ok(ready)
    }

    async fn pick(self: &Arc<Self>) -> Result<(Arc<Host>, Arc<Ready>), ErrorObject> {
        let best = {
            let hosts = self.hosts.read();
            let ready: Vec<_> = hosts.iter().filter_map(|h| h.current().map(|r| (h.clone(), r))).collect();
            // Least loaded; ties broken at random so idle instances share work.
            let least = ready.iter().map(|(_, r)| r.conn.in_flight()).min();
            let tied: Vec<_> = ready.into_iter().filter(|(_, r)| Some(r.conn.in_flight()) == least).collect();
            let n = tied.len();
            (n > 0).then(|| tied.into_iter().nth(rand::random_range(0..n))).flatten()
        };
        match best {
            Some((host, ready)) => {
                if ready.conn.in_flight() + 1 >= self.scaling.target {
                    self.grow_in_background();
                }
                // Keep the host's idle clock honest.
                let ready = host.ready().await.unwrap_or(ready);
                Ok((host, ready))
            }
            None => {
                // Nothing runs: this request waits for a launch (the first
                // host, or a stopped one relaunched).
                let first = self.hosts.read().first().cloned();
                let host = first.unwrap_or_else(|| self.add());
                // A burst arriving at a cold pool: everyone beyond the
                // target waits on this launch, so start more at once.
                let waiting = self.waiting.fetch_add(1, Ordering::AcqRel) + 1;
                let ready = host.ready().await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                let ready = ready?;
                if waiting >= self.scaling.target {
                    self.grow_in_background();
                }
                Ok((host, ready))
            }
        }
    }

    fn add(&self) -> Arc<Host> {
        let host = Arc::new(Host::with_events(self.config.clone(), self.sandbox.clone(), self.events.clone()));
        self.hosts.write().push(host.clone());
        host
    }

    /// Starts one more instance unless at the maximum or already starting one.
    fn grow_in_background(self: &Arc<Self>) {
        {
            let mut growing = self.growing.lock();
            if *growing || self.hosts.read().len() >= self.scaling.max {
                return;
            }
            *growing = true;
        }
        let host = self.add();
        let pool = self.clone();
        tokio::spawn(async move {
            let started = host.ready().await;
            metrics::counter!("berth_scale_events_total", "connector" => pool.name.clone(), "direction" => "up")
                .increment(1);
            if let Err(e) = started {
                tracing::warn!(connector = %pool.name, error = %e.message, "scaling up failed");
                pool.hosts.write().retain(|h| !Arc::ptr_eq(h, &host));
            } else {
                tracing::info!(connector = %pool.name, instances = pool.hosts.read().len(), "scaled up");
            }
            *pool.growing.lock() = false;
        });
    }

    /// Brings the pool to its shape: stops instances idle for longer than
    /// allowed beyond `min` + `warm`, and starts instances to keep `min`
    /// running and `warm` idle ones ready. Run periodically.
    pub fn tend(self: &Arc<Self>) {
        let hosts: Vec<Arc<Host>> = self.hosts.read().clone();
        let running = hosts.iter().filter(|h| h.current().is_some()).count();
        let idle_ready = hosts.iter().filter(|h| h.idle_for().is_some()).count();
        let keep = self.scaling.min.max(if running > 0 { self.scaling.warm } else { 0 });
        let mut stoppable = running.saturating_sub(keep);
        for h in &hosts {
            if stoppable == 0 {
                break;
            }
            if h.idle_for().is_some_and(|idle| idle > self.scaling.idle) {
                h.shutdown();
                self.hosts.write().retain(|x| !Arc::ptr_eq(x, h));
                stoppable -= 1;
                metrics::counter!("berth_scale_events_total", "connector" => self.name.clone(), "direction" => "down")
                    .increment(1);
                tracing::info!(connector = %self.name, instances = self.hosts.read().len(), "scaled down an idle instance");
            }
        }
        let want_more = running < self.scaling.min || (running > 0 && idle_ready < self.scaling.warm);
        if want_more {
            self.grow_in_background();
        }
    }

    /// Stops every instance (they relaunch on the next request).
    pub fn shutdown(&self) {
        for h in self.hosts.write().drain(..) {
            h.shutdown();
        }
    }

    /// The instances, for the admin API and metrics.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        self.hosts
            .read()
            .iter()
            .map(|h| match h.current() {
                Some(r) => InstanceInfo { pid: r.conn.pid(), state: "ready", in_flight: r.conn.in_flight() },
                None => InstanceInfo { pid: None, state: "stopped", in_flight: 0 },
            })
            .collect()
    }
}

/// Who shares instances (a manifest's `isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// One pool for every caller.
    Shared,
    /// A pool per user: per-user credentials go only into that user's instances.
    User,
    /// An instance per legacy session; modern (sessionless) callers get a
    /// pool per user.
    Session,
}

/// Makes the pool of one user (`None`: callers with no identity).
pub type PoolFactory =
    Arc<dyn Fn(Option<String>) -> berth_sandbox::BoxFuture<'static, Result<Arc<Pool>, ErrorObject>> + Send + Sync>;

/// The pools of one connector version, keyed as its isolation says.
pub struct Pools {
    isolation: Isolation,
    factory: PoolFactory,
    by_user: Mutex<std::collections::HashMap<String, Arc<Pool>>>,
}

impl Pools {
    /// Pools made by `factory`.
    pub fn new(isolation: Isolation, factory: PoolFactory) -> Self {
        Self { isolation, factory, by_user: Default::default() }
    }

    /// One pool for everyone (`berth run`).
    pub fn single(pool: Arc<Pool>) -> Self {
        Self::new(
            Isolation::Shared,
            Arc::new(move |_| {
                let pool = pool.clone();
                Box::pin(async move { Ok(pool) })
            }),
        )
    }

    /// The pool serving `user`'s stateless requests.
    pub async fn for_user(&self, user: Option<&str>) -> Result<Arc<Pool>, ErrorObject> {
        let key = match self.isolation {
            Isolation::Shared => String::new(),
            Isolation::User | Isolation::Session => user.unwrap_or("").to_owned(),
        };
        let stale = {
            let mut map = self.by_user.lock();
            match map.get(&key) {
                Some(p) if !p.expired() => return Ok(p.clone()),
                Some(_) => map.remove(&key),
                None => None,
            }
        };
        if let Some(old) = stale {
            tracing::info!(pool = %old.name, "credentials renewed: new requests go to fresh instances");
            old.retire();
        }
        // Two first requests may both make one; pools launch lazily, so the
        // loser costs nothing.
        let pool = (self.factory)((!key.is_empty()).then(|| key.clone())).await?;
        Ok(self.by_user.lock().entry(key).or_insert(pool).clone())
    }

    /// The pool a new legacy session uses: its own under `session`
    /// isolation (dropped, and its server stopped, with the session).
    pub async fn for_session(&self, user: Option<&str>) -> Result<Arc<Pool>, ErrorObject> {
        match self.isolation {
            Isolation::Session => (self.factory)(user.map(str::to_owned)).await,
            _ => self.for_user(user).await,
        }
    }

    /// Tends every pool; forgets per-user pools with nothing running.
    pub fn tend(&self) {
        let mut map = self.by_user.lock();
        for pool in map.values() {
            pool.tend();
        }
        if self.isolation != Isolation::Shared {
            map.retain(|_, p| !p.instances().is_empty());
        }
    }

    /// Stops every instance.
    pub fn shutdown(&self) {
        for pool in self.by_user.lock().values() {
            pool.shutdown();
        }
    }

    /// Every pool's instances, by user (`""`: shared or anonymous).
    pub fn instances(&self) -> Vec<(String, Vec<InstanceInfo>)> {
        self.by_user.lock().iter().map(|(u, p)| (u.clone(), p.instances())).collect()
    }
}
