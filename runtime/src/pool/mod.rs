//! A connector's instances: requests go to the least-loaded ready one, each
//! instance takes at most its concurrency limit, and beyond that requests
//! wait in a bounded queue with a deadline, so a flood costs memory in
//! proportion to the queue, not to the flood. How many instances run is the
//! [`crate::autoscale`] decision, taken once a second; a burst also starts an
//! instance at once, without waiting for the next decision.
//!
//! A request waits for a launch only when nothing runs at all; otherwise it
//! goes to a running instance with room, or queues, while a new one starts
//! in the background, so a burst is never held up by a cold start it did not
//! need. Scaling down stops idle instances first; a busy one is drained:
//! it takes no new requests and stops when its last one is answered.

mod health;
mod lease;
mod pools;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use berth_sandbox::{Sandbox, UsageProbe};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::{Notify, broadcast};

pub use self::lease::{Lease, Member};
use self::lease::{Load, Release};
pub use self::pools::{Isolation, PoolFactory, Pools};
use crate::autoscale::{Autoscaler, Windows};
use crate::jsonrpc::{ErrorObject, code};
use crate::upstream::{Broadcast, Host, HostConfig, Ready};

/// The longest a retired pool's in-flight requests may run on.
const RETIRE_GRACE: Duration = Duration::from_secs(300);

/// How many instances, how busy each may get, and how long requests wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scaling {
    /// Instances kept running even when idle.
    pub min: usize,
    /// Most instances at once.
    pub max: usize,
    /// In-flight requests per instance the autoscaler aims for.
    pub target: usize,
    /// Most requests one instance serves at once; more wait in the queue.
    pub max_concurrency: usize,
    /// Most requests waiting for a free instance; more are refused at once.
    pub queue: usize,
    /// Longest a request waits in the queue.
    pub queue_timeout: Duration,
    /// Started instances kept idle beyond demand.
    pub warm: usize,
    /// No request for this long lets the pool stop everything beyond `min`
    /// (and `warm`, for a shared pool).
    pub idle: Duration,
    /// The autoscaler's averaging window (its panic window is a tenth).
    pub stable_window: Duration,
    /// How often an instance is asked whether it still answers; zero: never.
    pub health_interval: Duration,
    /// How long it has to answer before it is replaced.
    pub health_timeout: Duration,
}

impl Default for Scaling {
    /// One instance, started on demand, no limit on concurrent requests
    /// (`berth run`'s single server), stopped after five idle minutes.
    fn default() -> Self {
        Self {
            min: 0,
            max: 1,
            target: usize::MAX,
            max_concurrency: usize::MAX,
            queue: 0,
            queue_timeout: Duration::ZERO,
            warm: 0,
            idle: Duration::from_secs(300),
            stable_window: Duration::from_secs(60),
            health_interval: Duration::ZERO,
            health_timeout: Duration::from_secs(10),
        }
    }
}

/// One instance as the admin API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InstanceInfo {
    /// Names it for draining or killing; unique within this berth process.
    pub id: String,
    /// The process id, where there is one.
    pub pid: Option<u32>,
    /// What it is doing.
    pub state: InstanceState,
    /// Requests in flight.
    pub in_flight: usize,
    /// Why it is stopped or crash-looping, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// CPU time it has used, in seconds, where its sandbox can tell (filled
    /// in by [`InstanceInfo::read_usage`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// Memory it holds now, in bytes, where its sandbox can tell (filled in
    /// by [`InstanceInfo::read_usage`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Where its usage is read from, while it runs.
    #[serde(skip)]
    #[schema(ignore)]
    pub usage: Option<UsageHandle>,
}

/// How to read a running instance's resource usage from its sandbox.
#[derive(Clone)]
pub struct UsageHandle(UsageProbe);

impl std::fmt::Debug for UsageHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UsageHandle")
    }
}

/// Longest a usage reading may take (the container engine answers over a
/// socket) before the listing goes on without it.
const USAGE_TIMEOUT: Duration = Duration::from_secs(2);

impl InstanceInfo {
    /// Fills in `cpu_seconds` and `memory_bytes` from the sandbox, for a
    /// running instance. Separate from listing because reading can wait on
    /// the container engine, and metrics list every second.
    pub async fn read_usage(&mut self) {
        let Some(UsageHandle(probe)) = &self.usage else { return };
        let usage = tokio::time::timeout(USAGE_TIMEOUT, probe()).await.unwrap_or_default();
        self.cpu_seconds = usage.cpu.map(|d| d.as_secs_f64());
        self.memory_bytes = usage.memory;
    }
}

/// What an instance is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// Serving requests.
    Ready,
    /// Launching for a request that waits for it.
    Starting,
    /// Not running; relaunched on its next request.
    Stopped,
    /// Taking no new requests; stops once its calls are done.
    Draining,
    /// Launches keep failing; requests are refused until the next trial.
    CrashLoop,
}

impl InstanceState {
    /// Every state, for metrics that report each even at zero.
    pub const ALL: [InstanceState; 5] = [Self::Ready, Self::Starting, Self::Stopped, Self::Draining, Self::CrashLoop];

    /// The state as the API and metrics spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Starting => "starting",
            Self::Stopped => "stopped",
            Self::Draining => "draining",
            Self::CrashLoop => "crash-loop",
        }
    }
}

/// Pins a legacy session to one instance (its server keeps per-client state).
pub type Pin = Mutex<Option<Weak<Member>>>;

/// The instances of one connector.
pub struct Pool {
    name: String,
    /// The connector, for metrics (never a user).
    connector: String,
    config: HostConfig,
    sandbox: Arc<dyn Sandbox>,
    scaling: Scaling,
    hosts: RwLock<Vec<Arc<Member>>>,
    /// Scaled down while busy: no new requests, stopped once idle.
    draining: Mutex<Vec<Arc<Member>>>,
    events: broadcast::Sender<Arc<Broadcast>>,
    /// Background launches under way.
    growing: AtomicUsize,
    /// Requests queued for a slot.
    waiting: AtomicUsize,
    /// Requests holding a slot on an instance that is still launching.
    cold: AtomicUsize,
    /// Rings when a lease ends or an instance becomes ready.
    freed: Notify,
    load: Mutex<Load>,
    autoscaler: Mutex<Autoscaler>,
    /// When what this pool launches with (an injected upstream token) goes
    /// stale: from then on new requests get a fresh pool and this one drains.
    expires: Mutex<Option<Instant>>,
}

impl Pool {
    /// A pool launching `config` in `sandbox`.
    pub fn new(config: HostConfig, sandbox: Arc<dyn Sandbox>, scaling: Scaling) -> Arc<Self> {
        let scaling = Scaling {
            max: scaling.max.max(1),
            target: scaling.target.max(1),
            max_concurrency: scaling.max_concurrency.max(1),
            ..scaling
        };
        let windows = Windows {
            target: scaling.target,
            min: scaling.min,
            max: scaling.max,
            stable: scaling.stable_window,
            panic: scaling.stable_window / 10,
            idle: scaling.idle,
        };
        Arc::new(Self {
            name: config.name.clone(),
            connector: config.connector.clone(),
            config,
            sandbox,
            scaling,
            hosts: RwLock::new(Vec::new()),
            draining: Mutex::new(Vec::new()),
            events: broadcast::channel(256).0,
            growing: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            cold: AtomicUsize::new(0),
            freed: Notify::new(),
            load: Mutex::new(Load::new(Instant::now())),
            autoscaler: Mutex::new(Autoscaler::new(windows)),
            expires: Mutex::new(None),
        })
    }

    /// Its name in logs (may name the user it serves).
    pub fn name(&self) -> &str {
        &self.name
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
        self.hosts.read().iter().find_map(|m| m.host.current())
    }

    /// Requests queued for a slot.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// A ready instance for something that holds no slot (a subscription,
    /// a handshake answered from its profile).
    pub async fn ready(self: &Arc<Self>) -> Result<Arc<Ready>, ErrorObject> {
        self.lease().await.map(|l| l.ready())
    }

    /// A slot on the least-loaded ready instance, waiting in the queue when
    /// all are full.
    pub async fn lease(self: &Arc<Self>) -> Result<Lease, ErrorObject> {
        self.acquire(None).await
    }

    /// Like [`Pool::ready`], for a legacy session: see [`Pool::lease_pinned`].
    pub async fn ready_pinned(self: &Arc<Self>, pin: &Pin) -> Result<Arc<Ready>, ErrorObject> {
        self.lease_pinned(pin).await.map(|l| l.ready())
    }

    /// Like [`Pool::lease`], but keeps a legacy session on the instance it
    /// first used, as long as that instance serves.
    pub async fn lease_pinned(self: &Arc<Self>, pin: &Pin) -> Result<Lease, ErrorObject> {
        self.acquire(Some(pin)).await
    }

    async fn acquire(self: &Arc<Self>, pin: Option<&Pin>) -> Result<Lease, ErrorObject> {
        let deadline = tokio::time::Instant::now() + self.scaling.queue_timeout;
        let mut queued: Option<Waiting<'_>> = None;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self.take(pin) {
                Taken::Member(member) => {
                    drop(queued);
                    return self.start(member).await;
                }
                Taken::Cold(member) => {
                    // A burst at a cold pool: everyone beyond the target
                    // waits on this launch, so start more at once.
                    let waiting = Waiting::enter(&self.cold);
                    if waiting.count > self.scaling.target {
                        self.grow_in_background();
                    }
                    drop(queued);
                    return self.start(member).await;
                }
                Taken::Full => {}
            }
            self.grow_in_background();
            if queued.is_none() {
                let w = Waiting::enter(&self.waiting);
                if w.count > self.scaling.queue {
                    metrics::counter!("berth_queue_rejections_total", "connector" => self.connector.clone(), "reason" => "full")
                        .increment(1);
                    return Err(overloaded(format!(
                        "{}: every instance is at its limit of {} requests and {} are already waiting",
                        self.connector, self.scaling.max_concurrency, self.scaling.queue
                    )));
                }
                queued = Some(w);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                metrics::counter!("berth_queue_rejections_total", "connector" => self.connector.clone(), "reason" => "deadline")
                    .increment(1);
                return Err(overloaded(format!(
                    "{}: no instance had room within {:?}",
                    self.connector, self.scaling.queue_timeout
                )));
            }
        }
    }

    /// Picks an instance for one request and takes a slot on it.
    fn take(self: &Arc<Self>, pin: Option<&Pin>) -> Taken {
        let cap = self.scaling.max_concurrency;
        let hosts = self.hosts.read();
        if let Some(pin) = pin {
            let pinned = pin.lock().as_ref().and_then(Weak::upgrade);
            if let Some(m) = pinned.filter(|m| hosts.iter().any(|h| Arc::ptr_eq(h, m))) {
                return if m.try_take(cap) { Taken::Member(m) } else { Taken::Full };
            }
        }
        let ready: Vec<&Arc<Member>> = hosts.iter().filter(|m| m.host.current().is_some()).collect();
        let taken = if ready.is_empty() {
            // Nothing runs: wait for a launch (the first host, a stopped one
            // relaunched, or a new one while below the maximum).
            let least = hosts.iter().min_by_key(|m| m.load()).cloned();
            match least {
                Some(m) if m.try_take(cap) => Taken::Cold(m),
                _ if hosts.len() < self.scaling.max => {
                    drop(hosts);
                    let m = self.add();
                    return if m.try_take(cap) { self.pin(pin, Taken::Cold(m)) } else { Taken::Full };
                }
                _ => Taken::Full,
            }
        } else {
            // Least loaded; ties broken at random so idle instances share
            // work. Loads change under us, so they are read once.
            let loads: Vec<(usize, &Arc<Member>)> = ready.into_iter().map(|m| (m.load(), m)).collect();
            let least = loads.iter().map(|(l, _)| *l).min().unwrap_or(0);
            let tied: Vec<&Arc<Member>> = loads.into_iter().filter(|(l, _)| *l == least).map(|(_, m)| m).collect();
            let m = tied[rand::random_range(0..tied.len())].clone();
            if m.try_take(cap) {
                if m.load() >= self.scaling.target {
                    drop(hosts);
                    self.grow_in_background();
                }
                Taken::Member(m)
            } else {
                Taken::Full
            }
        };
        self.pin(pin, taken)
    }

    fn pin(&self, pin: Option<&Pin>, taken: Taken) -> Taken {
        if let (Some(pin), Taken::Member(m) | Taken::Cold(m)) = (pin, &taken) {
            *pin.lock() = Some(Arc::downgrade(m));
        }
        taken
    }

    /// Turns a taken slot into a lease on a ready instance.
    async fn start(self: &Arc<Self>, member: Arc<Member>) -> Result<Lease, ErrorObject> {
        self.load.lock().start(Instant::now());
        let release: Arc<dyn Release> = self.clone();
        // The lease exists before the launch, so a failed one gives its slot back.
        let pending = PendingLease { member: member.clone(), pool: Some(release) };
        let ready = member.host.ready().await?;
        Ok(pending.into_lease(ready))
    }

    fn add(&self) -> Arc<Member> {
        let host = Host::with_events(self.config.clone(), self.sandbox.clone(), self.events.clone());
        let member = Arc::new(Member::new(host));
        self.hosts.write().push(member.clone());
        member
    }

    /// Starts one more instance unless at the maximum or one is starting.
    fn grow_in_background(self: &Arc<Self>) {
        if self.growing.load(Ordering::Acquire) > 0 || self.hosts.read().len() >= self.scaling.max {
            return;
        }
        self.launch_more(1);
    }

    /// Starts `n` instances in the background.
    fn launch_more(self: &Arc<Self>, n: usize) {
        for _ in 0..n {
            if self.hosts.read().len() >= self.scaling.max {
                return;
            }
            self.growing.fetch_add(1, Ordering::AcqRel);
            let member = self.add();
            let pool = self.clone();
            tokio::spawn(async move {
                let started = member.host.ready().await;
                metrics::counter!("berth_scale_events_total", "connector" => pool.connector.clone(), "direction" => "up")
                    .increment(1);
                match started {
                    // It stays, stopped: the next request relaunches it with
                    // backoff (and the circuit), rather than every tick anew.
                    Err(e) => tracing::warn!(connector = %pool.name, error = %e.message, "scaling up failed"),
                    Ok(_) => tracing::info!(connector = %pool.name, instances = pool.hosts.read().len(), "scaled up"),
                }
                pool.growing.fetch_sub(1, Ordering::AcqRel);
                pool.freed.notify_waiters();
            });
        }
    }

    /// Brings the pool to the autoscaler's size, plus the warm reserve
    /// (`keep_warm`: even with no demand), drains and stops what is beyond
    /// it, and checks instances' health. Run once a second.
    pub fn tend(self: &Arc<Self>, keep_warm: bool) {
        let now = Instant::now();
        let waiting = self.queued();
        let (mean, busy) = self.load.lock().sample(now);
        let current = self.hosts.read().len();
        let desired = {
            let mut scaler = self.autoscaler.lock();
            scaler.observe(now, mean + waiting as f64, busy || waiting > 0);
            scaler.desired(now, current)
        };
        let warm = if keep_warm || desired > 0 { self.scaling.warm } else { 0 };
        let want = (desired + warm).min(self.scaling.max);
        let starting = self.growing.load(Ordering::Acquire);
        if want > current {
            self.launch_more(want - current);
        } else if want < current && starting == 0 {
            self.scale_down(current - want);
        }
        self.finish_draining();
        self.check_health(now);
    }

    /// Stops `n` instances: idle ones first (longest idle first), then
    /// busy ones by draining. An instance holding a legacy session is
    /// stopped only once it has been idle for the whole idle timeout.
    fn scale_down(&self, n: usize) {
        let mut hosts = self.hosts.write();
        let mut candidates: Vec<(usize, Option<Duration>)> = hosts
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.pinned() || m.host.idle_for().is_some_and(|d| d >= self.scaling.idle))
            .map(|(i, m)| (i, m.host.idle_for().or(m.host.current().is_none().then_some(Duration::MAX))))
            .collect();
        // Stopped and idle ones first, the longest idle leading; busy ones last.
        candidates.sort_by_key(|(_, idle)| std::cmp::Reverse(*idle));
        let mut victims: Vec<usize> = candidates.into_iter().take(n).map(|(i, _)| i).collect();
        victims.sort_unstable_by(|a, b| b.cmp(a));
        let mut draining = self.draining.lock();
        for i in victims {
            let m = hosts.remove(i);
            metrics::counter!("berth_scale_events_total", "connector" => self.connector.clone(), "direction" => "down")
                .increment(1);
            if m.load() == 0 {
                m.host.shutdown();
            } else {
                draining.push(m);
            }
        }
        tracing::info!(connector = %self.name, instances = hosts.len(), draining = draining.len(), "scaled down");
    }

    /// Stops drained instances whose last request has been answered.
    fn finish_draining(&self) {
        // Leases only: a subscription would hold an instance forever; its
        // client is told the stream ended and listens again elsewhere.
        self.draining.lock().retain(|m| {
            let busy = m.load() > 0;
            if !busy {
                m.host.shutdown();
            }
            busy
        });
    }

    /// Stops every instance (they relaunch on the next request).
    pub fn shutdown(&self) {
        for m in self.hosts.write().drain(..).chain(self.draining.lock().drain(..)) {
            m.host.shutdown();
        }
    }

    /// Takes instance `id` out of service: new requests go to the others
    /// (or a fresh one), and it stops once its calls are done. False when
    /// it is not in this pool.
    pub fn drain(&self, id: u64) -> bool {
        let Some(m) = self.remove(id) else { return false };
        tracing::info!(connector = %self.name, instance = id, "draining an instance on request");
        if m.load() == 0 {
            m.host.shutdown();
        } else {
            self.draining.lock().push(m);
        }
        true
    }

    /// Kills instance `id` now, draining or not; the calls it is serving
    /// fail. False when it is not in this pool.
    pub fn kill(&self, id: u64) -> bool {
        let m = self.remove(id).or_else(|| {
            let mut draining = self.draining.lock();
            let at = draining.iter().position(|m| m.host.id() == id)?;
            Some(draining.remove(at))
        });
        let Some(m) = m else { return false };
        m.host.replace("killed through the admin API");
        m.host.shutdown();
        true
    }

    /// Removes instance `id` from service.
    fn remove(&self, id: u64) -> Option<Arc<Member>> {
        let mut hosts = self.hosts.write();
        let at = hosts.iter().position(|m| m.host.id() == id)?;
        Some(hosts.remove(at))
    }

    /// The instances, for the admin API and metrics.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        let info = |m: &Arc<Member>, draining: bool| match m.host.current() {
            Some(r) => InstanceInfo {
                id: m.host.id().to_string(),
                pid: r.conn.pid(),
                state: if draining { InstanceState::Draining } else { InstanceState::Ready },
                in_flight: r.conn.in_flight(),
                error: None,
                cpu_seconds: None,
                memory_bytes: None,
                usage: Some(UsageHandle(r.conn.usage())),
            },
            None => {
                let status = m.host.status();
                let state = if status.circuit_open {
                    InstanceState::CrashLoop
                } else if m.load() > 0 {
                    InstanceState::Starting
                } else {
                    InstanceState::Stopped
                };
                InstanceInfo {
                    id: m.host.id().to_string(),
                    pid: None,
                    state,
                    in_flight: 0,
                    error: status.last_error,
                    cpu_seconds: None,
                    memory_bytes: None,
                    usage: None,
                }
            }
        };
        let hosts = self.hosts.read();
        let draining = self.draining.lock();
        hosts.iter().map(|m| info(m, false)).chain(draining.iter().map(|m| info(m, true))).collect()
    }
}

impl Release for Pool {
    fn release(&self) {
        self.load.lock().end(Instant::now());
        self.freed.notify_one();
    }
}

/// A slot taken on a member.
enum Taken {
    /// On a ready instance.
    Member(Arc<Member>),
    /// On an instance that must launch first.
    Cold(Arc<Member>),
    /// Nowhere: every instance is at its limit.
    Full,
}

/// A slot whose instance is still launching: gives the slot back if the
/// launch fails or the request goes away.
struct PendingLease {
    member: Arc<Member>,
    pool: Option<Arc<dyn Release>>,
}

impl PendingLease {
    fn into_lease(mut self, ready: Arc<Ready>) -> Lease {
        let pool = self.pool.take().expect("a pending lease is converted once");
        Lease { ready, member: self.member.clone(), pool }
    }
}

impl Drop for PendingLease {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            self.member.leases.fetch_sub(1, Ordering::AcqRel);
            pool.release();
        }
    }
}

/// Counts a request in `counter` while it lives.
struct Waiting<'a> {
    counter: &'a AtomicUsize,
    count: usize,
}

impl<'a> Waiting<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        let count = counter.fetch_add(1, Ordering::AcqRel) + 1;
        Self { counter, count }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

fn overloaded(message: String) -> ErrorObject {
    ErrorObject::new(code::OVERLOADED, format!("connector overloaded: {message}"))
}
