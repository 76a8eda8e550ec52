//! Every published connector at its own URL: `/mcp/{name}` serves the
//! latest version, `/mcp/{name}@{version}` a pinned one.
//!
//! An endpoint (front + supervised server) is made on the first request for
//! a version, its package materialized if needed, and its server stopped
//! after the manifest's idle timeout; the next request starts it again.

mod credentials;
mod launch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_catalog::artifact::{ArtifactError, Artifacts};
use berth_catalog::{Entry, Manifest, Status, Store, StoreError, VersionRef};
use berth_oauth::{Broker, SecretStore};
use parking_lot::Mutex;

pub use launch::LaunchError;

use crate::front::{Front, FrontConfig};
use crate::policy::ToolPolicy;
use berth_catalog::artifact::Artifact;

use crate::jsonrpc::{ErrorObject, code};
use crate::pins::Pins;
use crate::policies::UserPolicies;
use crate::pool::{InstanceInfo, InstanceState, Isolation, Pool, PoolFactory, Pools, Scaling};
use crate::sandboxes::{Backend, Sandboxes};
use sqlx::AnyPool;

/// How long a resolved `name@version` is reused before the catalog is asked again.
const RESOLVE_TTL: Duration = Duration::from_secs(2);

/// When packages are installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Materialize {
    /// At publish: a publish fails if its package cannot be installed.
    Publish,
    /// On the first request for the version.
    Launch,
}

/// Settings of the hosting layer.
#[derive(Clone)]
pub struct HostingConfig {
    /// Backend for manifests that name none.
    pub default_backend: Backend,
    /// When packages are installed.
    pub materialize: Materialize,
    /// Settings of every endpoint.
    pub front: FrontConfig,
    /// Upstream tokens for manifests with credentials (`None`: such
    /// connectors cannot launch, since there are no signed-in users).
    pub broker: Option<Arc<Broker>>,
}

/// Why a connector could not be served.
#[derive(Debug, thiserror::Error)]
pub enum HostingError {
    /// The catalog said no.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The version is withdrawn.
    #[error("{0} was withdrawn by its publisher")]
    Deleted(String),
    /// Its package could not be installed.
    #[error("installing {connector}: {source}")]
    Artifact {
        /// Connector.
        connector: String,
        /// What failed.
        source: ArtifactError,
    },
    /// The manifest cannot be launched here.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// The sandbox backend is unavailable.
    #[error("{0}")]
    Sandbox(String),
    /// Its instances cannot start.
    #[error("{0}")]
    Unavailable(String),
}

/// One connector version being served.
pub struct Endpoint {
    /// Its MCP front.
    pub front: Arc<Front>,
    /// Its instances.
    pub pools: Arc<Pools>,
}

/// A connector name and the version a URL asked for.
type Asked = (String, VersionRef);

/// A connector name and an exact version.
type Exact = (String, String);

/// The catalog's connectors, served.
pub struct Hosting {
    store: Store,
    secrets: Arc<SecretStore>,
    /// The runtime's tables (tool pins); `None` keeps pins in memory only.
    db: Option<AnyPool>,
    /// Tool pins by connector name, shared by its versions.
    pins: tokio::sync::Mutex<HashMap<String, Arc<Pins>>>,
    /// Per-user tool policies by connector name, shared by its versions.
    policies: tokio::sync::Mutex<HashMap<String, Arc<UserPolicies>>>,
    artifacts: Artifacts,
    sandboxes: Arc<Sandboxes>,
    config: HostingConfig,
    endpoints: Mutex<HashMap<Exact, Arc<Endpoint>>>,
    /// `(name, version asked)` → version served, for [`RESOLVE_TTL`]: keeps
    /// the catalog off the request path while letting a publish or a yank
    /// take effect within that time.
    resolved: Mutex<HashMap<Asked, (Instant, Arc<Endpoint>)>>,
    /// One lock per version being created, so a burst of first requests
    /// makes one endpoint while other connectors are not held up by a slow
    /// package install.
    creating: Mutex<HashMap<Exact, Arc<tokio::sync::Mutex<()>>>>,
}

impl Hosting {
    /// Serves the connectors in `store`, installing packages into `artifacts`.
    pub fn new(
        store: Store,
        secrets: Arc<SecretStore>,
        db: Option<AnyPool>,
        artifacts: Artifacts,
        config: HostingConfig,
    ) -> Arc<Self> {
        let hosting = Arc::new(Self {
            store,
            secrets,
            db,
            pins: Default::default(),
            policies: Default::default(),
            artifacts,
            sandboxes: Arc::default(),
            config,
            endpoints: Mutex::new(HashMap::new()),
            resolved: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashMap::new()),
        });
        crate::tick::every_second(&hosting, |h| h.tend());
        hosting
    }

    /// The catalog.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The connectors' sealed secrets.
    pub fn secrets(&self) -> &SecretStore {
        &self.secrets
    }

    /// Stops every running version of `name`, so the next request launches
    /// with current settings (after a secret changed).
    pub fn restart(&self, name: &str) {
        self.resolved.lock().retain(|(n, _), _| n != name);
        let mut endpoints = self.endpoints.lock();
        for ((n, _), e) in endpoints.iter().filter(|((n, _), _)| n == name) {
            tracing::info!(connector = %n, "restarting: its settings changed");
            e.front.close();
            e.pools.shutdown();
        }
        endpoints.retain(|(n, _), _| n != name);
    }

    /// Validated, (optionally) materialized, then stored.
    pub async fn publish(&self, manifest: &Manifest) -> Result<Entry, HostingError> {
        if self.config.materialize == Materialize::Publish {
            self.artifacts
                .materialize(manifest.package())
                .await
                .map_err(|source| HostingError::Artifact { connector: manifest.server.name.clone(), source })?;
        }
        Ok(self.store.publish(manifest).await?)
    }

    /// The endpoint of `name` at `version`, made on first use.
    pub async fn endpoint(&self, name: &str, version: &VersionRef) -> Result<Arc<Endpoint>, HostingError> {
        let asked = (name.to_owned(), version.clone());
        if let Some((at, e)) = self.resolved.lock().get(&asked)
            && at.elapsed() < RESOLVE_TTL
        {
            return Ok(e.clone());
        }
        let endpoint = self.resolve(name, version).await?;
        self.resolved.lock().insert(asked, (Instant::now(), endpoint.clone()));
        Ok(endpoint)
    }

    async fn resolve(&self, name: &str, version: &VersionRef) -> Result<Arc<Endpoint>, HostingError> {
        let entry = self.store.get(name, version).await?;
        if entry.status == Status::Deleted {
            return Err(HostingError::Deleted(format!("{name} {}", entry.version())));
        }
        let key = (name.to_owned(), entry.version().to_owned());
        if let Some(e) = self.endpoints.lock().get(&key) {
            return Ok(e.clone());
        }
        let lock = self.creating.lock().entry(key.clone()).or_default().clone();
        let _one = lock.lock().await;
        if let Some(e) = self.endpoints.lock().get(&key) {
            return Ok(e.clone());
        }
        let manifest = &entry.manifest;
        let started = Instant::now();
        let artifact = self
            .artifacts
            .materialize(manifest.package())
            .await
            .map_err(|source| HostingError::Artifact { connector: format!("{name} {}", entry.version()), source })?;
        let (s, health) = (&manifest.hosting.scaling, &manifest.hosting.health);
        let scaling = Scaling {
            min: s.min as usize,
            max: s.max as usize,
            target: s.target_concurrency as usize,
            max_concurrency: s.max_concurrency as usize,
            queue: s.queue_limit as usize,
            queue_timeout: Duration::from_secs(s.queue_timeout_seconds),
            warm: s.warm_pool as usize,
            idle: Duration::from_secs(s.idle_timeout_seconds),
            stable_window: Duration::from_secs(s.stable_window_seconds),
            health_interval: Duration::from_secs(health.interval_seconds),
            health_timeout: Duration::from_secs(health.timeout_seconds),
        };
        let isolation = match manifest.hosting.isolation {
            berth_catalog::manifest::Isolation::Shared => Isolation::Shared,
            berth_catalog::manifest::Isolation::User => Isolation::User,
            berth_catalog::manifest::Isolation::Session => Isolation::Session,
        };
        let pools = Arc::new(Pools::new(isolation, self.pool_factory(manifest.clone(), artifact.clone(), scaling)));
        if isolation == Isolation::Shared {
            // Surface what keeps it from starting (a missing variable, an
            // unavailable sandbox) now, as this request's answer.
            pools.for_user(None).await.map_err(|e| HostingError::Unavailable(e.message))?;
        }
        tracing::info!(
            connector = %name,
            version = %entry.version(),
            sha256 = %artifact.sha256,
            materialize_ms = started.elapsed().as_millis() as u64,
            "endpoint ready"
        );
        let mut front = self.config.front.clone();
        front.policy = Arc::new(ToolPolicy::from_manifest(&manifest.hosting.policy));
        front.label = format!("{name}@{}", entry.version());
        front.pins =
            Some(self.pins(name).await.map_err(|e| HostingError::Unavailable(format!("loading tool pins: {e}")))?);
        front.user_policies = Some(
            self.policies(name).await.map_err(|e| HostingError::Unavailable(format!("loading tool policies: {e}")))?,
        );
        let endpoint = Arc::new(Endpoint { front: Front::new(pools.clone(), front), pools });
        self.endpoints.lock().insert(key.clone(), endpoint.clone());
        self.creating.lock().remove(&key);
        Ok(endpoint)
    }

    /// The tool pins of a connector, loaded once.
    pub async fn pins(&self, name: &str) -> Result<Arc<Pins>, sqlx::Error> {
        let mut all = self.pins.lock().await;
        if let Some(p) = all.get(name) {
            return Ok(p.clone());
        }
        let pins = Pins::load(name, self.db.clone()).await?;
        all.insert(name.to_owned(), pins.clone());
        Ok(pins)
    }

    /// The per-user tool policies of a connector, loaded once.
    pub async fn policies(&self, name: &str) -> Result<Arc<UserPolicies>, sqlx::Error> {
        let mut all = self.policies.lock().await;
        if let Some(p) = all.get(name) {
            return Ok(p.clone());
        }
        let policies = UserPolicies::load(name, self.db.clone()).await?;
        all.insert(name.to_owned(), policies.clone());
        Ok(policies)
    }

    /// Makes the pool of one user: their secrets (or the connector-wide
    /// ones) planned into the launch, in the manifest's sandbox.
    fn pool_factory(&self, manifest: Manifest, artifact: Artifact, scaling: Scaling) -> PoolFactory {
        let (secrets, sandboxes, default) = (self.secrets.clone(), self.sandboxes.clone(), self.config.default_backend);
        let broker = self.config.broker.clone();
        let unavailable = |m: String| ErrorObject::new(code::SERVER_UNAVAILABLE, m);
        Arc::new(move |user: Option<String>| {
            let (manifest, artifact, secrets, sandboxes, broker) =
                (manifest.clone(), artifact.clone(), secrets.clone(), sandboxes.clone(), broker.clone());
            Box::pin(async move {
                let name = &manifest.server.name;
                let values = secrets
                    .values(name, user.as_deref())
                    .await
                    .map_err(|e| unavailable(format!("reading {name}'s secrets: {e}")))?;
                let (backend, mut config) =
                    launch::plan(&manifest, &artifact, default, &values).map_err(|e| unavailable(e.to_string()))?;
                drop(values);
                let expires = credentials::inject(&manifest, user.as_deref(), broker.as_deref(), &mut config.spec)
                    .await
                    .map_err(credentials::CredentialError::into_error)?;
                if let Some(u) = &user {
                    config.name = format!("{} for {u}", config.name);
                }
                let sandbox = sandboxes.get(backend).await.map_err(unavailable)?;
                let pool = Pool::new(config, sandbox, scaling);
                if let Some(at) = expires {
                    pool.expire_at(at);
                }
                Ok(pool)
            })
        })
    }

    /// Scales every pool to its autoscaler's decision, and reports
    /// instances by state and queue depth per connector version.
    fn tend(&self) {
        let endpoints: Vec<((String, String), Arc<Endpoint>)> =
            self.endpoints.lock().iter().map(|(k, e)| (k.clone(), e.clone())).collect();
        for ((name, version), e) in endpoints {
            // The label other metrics use for a connector version.
            let connector = format!("{name}@{version}");
            e.pools.tend();
            let instances: Vec<InstanceInfo> = e.pools.instances().into_iter().flat_map(|(_, i)| i).collect();
            for state in InstanceState::ALL {
                let n = instances.iter().filter(|i| i.state == state).count();
                metrics::gauge!("berth_instances", "connector" => connector.clone(), "state" => state.as_str())
                    .set(n as f64);
            }
            metrics::gauge!("berth_queue_depth", "connector" => connector).set(e.pools.queued() as f64);
        }
    }

    /// Every pool's instances: `name@version`, the pool's user (empty when
    /// shared), and its instances.
    pub fn instances(&self) -> Vec<(String, String, Vec<InstanceInfo>)> {
        let mut out: Vec<_> = self
            .endpoints
            .lock()
            .iter()
            .flat_map(|((n, v), e)| e.pools.instances().into_iter().map(move |(u, i)| (format!("{n}@{v}"), u, i)))
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// Takes instance `id` out of service (see [`Pool::drain`]); false when
    /// no running connector has it.
    pub fn drain_instance(&self, id: u64) -> bool {
        self.endpoints().iter().any(|e| e.pools.drain(id))
    }

    /// Kills instance `id` now (see [`Pool::kill`]); false when no running
    /// connector has it.
    pub fn kill_instance(&self, id: u64) -> bool {
        self.endpoints().iter().any(|e| e.pools.kill(id))
    }

    /// The endpoints made so far, outside the lock.
    fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.endpoints.lock().values().cloned().collect()
    }

    /// Ends long-lived streams and stops every server (graceful shutdown).
    pub fn close(&self) {
        for e in self.endpoints.lock().values() {
            e.front.close();
        }
    }

    /// Stops every server now.
    pub fn shutdown(&self) {
        for e in self.endpoints.lock().values() {
            e.pools.shutdown();
        }
    }
}
