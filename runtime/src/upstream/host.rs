//! Keeps one server process ready, relaunching it when it dies.
//!
//! Requests ask the host for a [`Ready`] server; the first asks it to launch
//! one. A server that keeps dying is relaunched after a jittered exponential
//! backoff so a crash loop cannot spin a core; after [`CIRCUIT_AFTER`]
//! failures in a row the circuit opens: requests are refused at once, saying
//! why, and one trial launch is allowed per cool-off period. The era learned
//! by the first handshake is cached, so later launches skip the probe.

use std::sync::Arc;
use std::time::Duration;

use berth_sandbox::{Sandbox, SandboxSpec};
use parking_lot::RwLock;
use rand::Rng;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::handshake::{HandshakeError, handshake, health_check};
use super::{Broadcast, Connection, Era, Limits, ServerProfile};
use crate::jsonrpc::{ErrorObject, code};

/// How a host launches and probes its server.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Name for logs (may name the user a pool serves).
    pub name: String,
    /// The connector, for metric labels (never a user).
    pub connector: String,
    /// What to run.
    pub spec: SandboxSpec,
    /// Per-connection limits.
    pub limits: Limits,
    /// The era, when the operator knows it; probed otherwise.
    pub era: Option<Era>,
    /// How long the `server/discover` probe waits before assuming legacy.
    pub probe_timeout: Duration,
    /// How long `initialize` may take (a cold `npx` start can be slow).
    pub init_timeout: Duration,
    /// First relaunch delay after a quick death; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest relaunch delay.
    pub max_backoff: Duration,
}

impl HostConfig {
    /// Defaults for running `spec`.
    pub fn new(name: impl Into<String>, spec: SandboxSpec) -> Self {
        let name = name.into();
        Self {
            connector: name.clone(),
            name,
            spec,
            limits: Limits::default(),
            era: None,
            probe_timeout: Duration::from_secs(10),
            init_timeout: Duration::from_secs(120),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// A handshaken server, ready for requests.
#[derive(Debug)]
pub struct Ready {
    /// The connection to it.
    pub conn: Connection,
    /// What it said about itself.
    pub profile: ServerProfile,
    started: Instant,
}

/// A server lifetime shorter than this counts as a crash for backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// Consecutive quick deaths or failed launches that open the circuit.
pub const CIRCUIT_AFTER: u32 = 5;

/// How long an open circuit refuses requests before one trial launch.
const CIRCUIT_COOL_OFF: Duration = Duration::from_secs(30);

struct Launcher {
    /// Consecutive quick deaths or failed launches.
    failures: u32,
    era: Option<Era>,
}

/// What the admin API shows of a host that is not running.
#[derive(Debug, Clone, Default)]
pub struct HostStatus {
    /// Requests are being refused until the next trial launch.
    pub circuit_open: bool,
    /// Why the last instance died or failed to start.
    pub last_error: Option<String>,
    /// When the open circuit allows its next trial.
    retry_at: Option<Instant>,
}

/// Numbers hosts, so the admin API can name one. Counting starts at a
/// random point, so an id noted before a restart (or on another replica)
/// names nothing here rather than some other instance.
static NEXT_ID: std::sync::LazyLock<std::sync::atomic::AtomicU64> =
    std::sync::LazyLock::new(|| std::sync::atomic::AtomicU64::new(u64::from(rand::random::<u32>()) + 1));

/// Supervises one connector's server process.
pub struct Host {
    id: u64,
    config: HostConfig,
    sandbox: Arc<dyn Sandbox>,
    current: RwLock<Option<Arc<Ready>>>,
    launcher: tokio::sync::Mutex<Launcher>,
    events: broadcast::Sender<Arc<Broadcast>>,
    last_used: parking_lot::Mutex<Instant>,
    status: parking_lot::Mutex<HostStatus>,
}

impl Host {
    /// A host that launches nothing until asked.
    pub fn new(config: HostConfig, sandbox: Arc<dyn Sandbox>) -> Self {
        Self::with_events(config, sandbox, broadcast::channel(256).0)
    }

    /// A host whose server's notifications go to `events` (shared by the
    /// instances of one pool, so a listener hears all of them).
    pub fn with_events(
        config: HostConfig,
        sandbox: Arc<dyn Sandbox>,
        events: broadcast::Sender<Arc<Broadcast>>,
    ) -> Self {
        let era = config.era;
        Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            config,
            sandbox,
            current: RwLock::new(None),
            launcher: tokio::sync::Mutex::new(Launcher { failures: 0, era }),
            events,
            last_used: parking_lot::Mutex::new(Instant::now()),
            status: parking_lot::Mutex::new(HostStatus::default()),
        }
    }

    /// Unique among this process's hosts; stays the same across relaunches.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Notifications for every listener, across relaunches.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Broadcast>> {
        self.events.subscribe()
    }

    /// The server if it is running, without launching one.
    pub fn current(&self) -> Option<Arc<Ready>> {
        self.current.read().clone().filter(|r| r.conn.is_alive())
    }

    /// A ready server, launching (or relaunching) one if needed.
    pub async fn ready(&self) -> Result<Arc<Ready>, ErrorObject> {
        *self.last_used.lock() = Instant::now();
        if let Some(ready) = self.current() {
            return Ok(ready);
        }
        let mut launcher = self.launcher.lock().await;
        if let Some(ready) = self.current() {
            return Ok(ready);
        }
        if let Some(dead) = self.current.write().take() {
            if dead.started.elapsed() < HEALTHY_AFTER {
                launcher.failures += 1;
            } else {
                launcher.failures = 0;
            }
            self.status.lock().last_error = dead.conn.closed();
        }
        if launcher.failures >= CIRCUIT_AFTER {
            self.circuit_trial(&launcher)?;
        }
        loop {
            if launcher.failures > 0 && launcher.failures < CIRCUIT_AFTER {
                let delay = self.backoff(launcher.failures);
                tracing::info!(connector = %self.config.name, ?delay, failures = launcher.failures, "relaunch backoff");
                tokio::time::sleep(delay).await;
            }
            match self.launch(launcher.era).await {
                Ok(ready) => {
                    launcher.era = Some(ready.profile.era);
                    self.status.lock().circuit_open = false;
                    let ready = Arc::new(ready);
                    *self.current.write() = Some(ready.clone());
                    return Ok(ready);
                }
                Err(HandshakeError::DiedDuringProbe(reason)) => {
                    tracing::info!(connector = %self.config.name, %reason, "server died on server/discover; it is legacy");
                    launcher.era = Some(Era::Legacy);
                }
                Err(HandshakeError::Failed(err)) => {
                    launcher.failures += 1;
                    self.status.lock().last_error = Some(err.message.clone());
                    return Err(err);
                }
            }
        }
    }

    async fn launch(&self, era: Option<Era>) -> Result<Ready, HandshakeError> {
        let started = Instant::now();
        let instance = self.sandbox.launch(&self.config.spec).await.map_err(|e| {
            HandshakeError::Failed(ErrorObject::new(code::SERVER_UNAVAILABLE, format!("could not launch server: {e}")))
        })?;
        let conn = Connection::start(instance, self.config.limits.clone(), self.events.clone(), &self.config.name);
        let profile = handshake(&conn, era, self.config.probe_timeout, self.config.init_timeout).await?;
        metrics::counter!("berth_cold_starts_total", "connector" => self.config.connector.clone()).increment(1);
        metrics::histogram!("berth_cold_start_seconds", "connector" => self.config.connector.clone())
            .record(started.elapsed().as_secs_f64());
        tracing::info!(
            connector = %self.config.name,
            pid = ?conn.pid(),
            era = ?profile.era,
            version = %profile.version,
            server = %profile.server_info,
            ms = started.elapsed().as_millis() as u64,
            "server ready"
        );
        Ok(Ready { conn, profile, started })
    }

    /// With the circuit open: refuses at once during the cool-off, then
    /// lets one caller make a trial launch (re-arming the cool-off, so a
    /// failed trial keeps it open). Opening it refuses too.
    fn circuit_trial(&self, launcher: &Launcher) -> Result<(), ErrorObject> {
        let mut status = self.status.lock();
        let now = Instant::now();
        if !status.circuit_open {
            status.circuit_open = true;
            status.retry_at = Some(now + CIRCUIT_COOL_OFF);
            metrics::counter!("berth_circuit_opened_total", "connector" => self.config.connector.clone()).increment(1);
            tracing::warn!(
                connector = %self.config.name,
                failures = launcher.failures,
                error = ?status.last_error,
                cool_off = ?CIRCUIT_COOL_OFF,
                "crash loop: refusing requests until a trial launch"
            );
        } else if status.retry_at.is_some_and(|t| now >= t) {
            status.retry_at = Some(now + CIRCUIT_COOL_OFF);
            return Ok(());
        }
        let wait = status.retry_at.map(|t| t.saturating_duration_since(now)).unwrap_or_default();
        let why = status.last_error.as_deref().unwrap_or("it keeps failing");
        let msg = format!(
            "connector unavailable: {} failed {} times in a row ({why}); next attempt in {}s",
            self.config.connector,
            launcher.failures,
            wait.as_secs().max(1)
        );
        Err(ErrorObject::new(code::SERVER_UNAVAILABLE, msg))
    }

    /// Why this host is not running, for the admin API.
    pub fn status(&self) -> HostStatus {
        self.status.lock().clone()
    }

    /// Asks the running server for a cheap answer within `timeout`. An
    /// error from the server still proves it alive; only silence or a
    /// dead connection fails.
    pub async fn check(&self, timeout: Duration) -> Result<(), String> {
        match self.current() {
            Some(ready) => health_check(&ready.conn, ready.profile.era, timeout).await,
            None => Ok(()),
        }
    }

    /// Kills the running server (its in-flight calls fail now); the next
    /// request launches a new one.
    pub fn replace(&self, reason: &str) {
        if let Some(ready) = self.current.read().clone() {
            self.status.lock().last_error = Some(reason.to_owned());
            ready.conn.kill(reason);
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let exp = self.config.min_backoff.saturating_mul(1 << failures.min(16));
        let capped = exp.min(self.config.max_backoff);
        // Full jitter on the upper half keeps relaunches of many hosts apart.
        let half = capped / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// How long the running server has had nothing to do: no request in
    /// flight and none asked for. `None` when nothing runs or work is open.
    pub fn idle_for(&self) -> Option<Duration> {
        let ready = self.current()?;
        (ready.conn.in_flight() == 0).then(|| self.last_used.lock().elapsed())
    }

    /// Stops the current server, if any (it is killed once unused).
    pub fn shutdown(&self) {
        self.current.write().take();
    }
}
