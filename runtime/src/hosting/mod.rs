//! Every published connector at its own URL: `/mcp/{name}` serves the
//! latest version, `/mcp/{name}@{version}` a pinned one; every bundle at
//! `/mcp/bundle/{name}`.
//!
//! An endpoint (front + supervised server) is made on the first request for
//! a version, its package materialized if needed, and its server stopped
//! after the manifest's idle timeout; the next request starts it again.

mod credentials;
mod launch;
mod token_files;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_catalog::artifact::{ArtifactError, Artifacts};
use berth_catalog::{Entry, Manifest, Status, Store, StoreError, VersionRef};
use berth_oauth::{Broker, SecretStore};
use parking_lot::Mutex;

pub use launch::LaunchError;

use crate::bundle::server::BundleServer;
use crate::bundle::{Bundle, BundleSandbox, Bundles};
use crate::front::{Caller, Front, FrontConfig};
use crate::policy::ToolPolicy;
use berth_catalog::artifact::Artifact;

use crate::jsonrpc::{ErrorObject, code};
use crate::pins::Pins;
use crate::policies::UserPolicies;
use crate::pool::{InstanceInfo, InstanceState, Isolation, Pool, PoolFactory, Pools, Scaling};
use crate::sandboxes::{Backend, Sandboxes};
use crate::upstream::{Era, HostConfig};
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
    /// No bundle has the name.
    #[error("no bundle {0} here")]
    NoBundle(String),
}

/// One connector version being served.
pub struct Endpoint {
    /// Its MCP front.
    pub front: Arc<Front>,
    /// Its instances.
    pub pools: Arc<Pools>,
}

/// A bundle's endpoint and the definition it was made from.
type BundleEndpoint = (Arc<Bundle>, Arc<Endpoint>);

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
    /// Bundle definitions.
    bundles: Bundles,
    /// Each bundle's endpoint, by bundle name.
    bundle_endpoints: Mutex<HashMap<String, BundleEndpoint>>,
    /// The connectors the instance gauges were last set for, so one that
    /// stops being served (restarted, withdrawn) is set to zero, not left
    /// showing its last instances.
    gauged: Mutex<std::collections::HashSet<String>>,
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
            db: db.clone(),
            pins: Default::default(),
            policies: Default::default(),
            artifacts,
            sandboxes: Arc::default(),
            config,
            endpoints: Mutex::new(HashMap::new()),
            resolved: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashMap::new()),
            bundles: Bundles::new(db.clone()),
            bundle_endpoints: Mutex::new(HashMap::new()),
            gauged: Mutex::default(),
        });
        crate::tick::every_second(&hosting, |h| h.tend());
        hosting
    }

    /// The catalog.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The bundle definitions.
    pub fn bundles(&self) -> &Bundles {
        &self.bundles
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

    /// The endpoint of bundle `name`, made anew when its definition
    /// changed (calls in flight finish on the one they started on).
    pub async fn bundle(self: &Arc<Self>, name: &str) -> Result<Arc<Endpoint>, HostingError> {
        let read = self.bundles.get(name).await;
        let bundle = read.map_err(|e| HostingError::Unavailable(format!("reading bundle {name}: {e}")))?;
        let Some(bundle) = bundle else {
            self.bundle_endpoints.lock().remove(name);
            return Err(HostingError::NoBundle(name.to_owned()));
        };
        if let Some((made_from, e)) = self.bundle_endpoints.lock().get(name)
            && *made_from == bundle
        {
            return Ok(e.clone());
        }
        let endpoint = self.bundle_endpoint(bundle.clone());
        self.bundle_endpoints.lock().insert(name.to_owned(), (bundle, endpoint.clone()));
        Ok(endpoint)
    }

    /// A bundle's endpoint: its virtual server per caller (one instance
    /// each, started on demand, stopped when idle) behind a front with the
    /// bundle's policy.
    fn bundle_endpoint(self: &Arc<Self>, bundle: Arc<Bundle>) -> Arc<Endpoint> {
        let label = format!("bundle/{}", bundle.name);
        let (hosting, b, name) = (Arc::downgrade(self), bundle.clone(), label.clone());
        let factory: PoolFactory = Arc::new(move |user: Option<String>| {
            let client_id = format!("bundle:{}", b.name);
            let caller = user.map(|user| Arc::new(Caller { user, client_id }));
            let sandbox = Arc::new(BundleSandbox::new(BundleServer::new(b.clone(), caller, hosting.clone())));
            let mut config = HostConfig::new(name.clone(), Default::default());
            config.era = Some(Era::Modern);
            Box::pin(async move { Ok(Pool::new(config, sandbox, Scaling::default())) })
        });
        let pools = Arc::new(Pools::new(Isolation::User, factory));
        let mut front = self.config.front.clone();
        front.policy = Arc::new(ToolPolicy::from_manifest(&bundle.policy));
        front.label = label;
        front.pins = None;
        front.user_policies = None;
        Arc::new(Endpoint { front: Front::new(pools.clone(), front), pools })
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

    /// Every connector with a policy for each subject (a user or
    /// `group:NAME`).
    pub async fn policy_subjects(&self) -> Result<std::collections::BTreeMap<String, Vec<String>>, sqlx::Error> {
        match &self.db {
            Some(db) => crate::policies::subjects(db).await,
            None => Ok(Default::default()),
        }
    }

    /// Forgets `user`: their policies on every connector, and their own
    /// pools, stopped at once. Returns (policies removed, instances stopped).
    pub async fn forget_user(&self, user: &str) -> Result<(usize, usize), sqlx::Error> {
        let connectors = self.policy_subjects().await?.remove(user).unwrap_or_default();
        for c in &connectors {
            self.policies(c).await?.remove(user).await?;
        }
        let stopped = self.served().iter().map(|(_, e)| e.pools.stop_user(user)).sum();
        Ok((connectors.len(), stopped))
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
                let injected = credentials::inject(&manifest, user.as_deref(), broker.as_deref(), &mut config.spec)
                    .await
                    .map_err(credentials::CredentialError::into_error)?;
                if let Some(u) = &user {
                    config.name = format!("{} for {u}", config.name);
                }
                let sandbox = sandboxes.get(backend).await.map_err(unavailable)?;
                let pool = Pool::new(config, sandbox, scaling);
                if let Some(at) = injected.replace_at {
                    pool.expire_at(at);
                }
                if let (Some(files), Some(broker), Some(user)) = (injected.files, broker, user) {
                    files.keep_fresh(Arc::downgrade(&pool), broker, user);
                }
                Ok(pool)
            })
        })
    }

    /// Scales every pool to its autoscaler's decision, and reports
    /// instances by state and queue depth per connector version.
    fn tend(&self) {
        let mut gauged = std::collections::HashSet::new();
        for (connector, e) in self.served() {
            e.pools.tend();
            let instances: Vec<InstanceInfo> = e.pools.instances().into_iter().flat_map(|(_, i)| i).collect();
            let count = |state| instances.iter().filter(|i| i.state == state).count();
            gauge(&connector, count, e.pools.queued());
            gauged.insert(connector);
        }
        let gone: Vec<String> = std::mem::replace(&mut *self.gauged.lock(), gauged.clone())
            .into_iter()
            .filter(|c| !gauged.contains(c))
            .collect();
        for connector in gone {
            gauge(&connector, |_| 0, 0);
        }
    }

    /// Every pool's instances: `name@version` (or `bundle/{name}`), the
    /// pool's name (`shared`, `user:NAME`, `session:NAME`), and its instances.
    pub fn instances(&self) -> Vec<(String, String, Vec<InstanceInfo>)> {
        let mut out: Vec<_> = self
            .served()
            .into_iter()
            .flat_map(|(label, e)| e.pools.instances().into_iter().map(move |(u, i)| (label.clone(), u, i)))
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// Takes instance `id` out of service (see [`Pool::drain`]); false when
    /// no running connector has it.
    pub fn drain_instance(&self, id: u64) -> bool {
        self.served().iter().any(|(_, e)| e.pools.drain(id))
    }

    /// Kills instance `id` now (see [`Pool::kill`]); false when no running
    /// connector has it.
    pub fn kill_instance(&self, id: u64) -> bool {
        self.served().iter().any(|(_, e)| e.pools.kill(id))
    }

    /// The endpoints made so far, outside the locks, each with the label
    /// metrics and the admin API use: `name@version`, or `bundle/{name}`.
    fn served(&self) -> Vec<(String, Arc<Endpoint>)> {
        let mut all: Vec<_> = self.endpoints.lock().iter().map(|((n, v), e)| (format!("{n}@{v}"), e.clone())).collect();
        all.extend(self.bundle_endpoints.lock().iter().map(|(n, (_, e))| (format!("bundle/{n}"), e.clone())));
        all
    }

    /// Ends long-lived streams and stops every server (graceful shutdown).
    pub fn close(&self) {
        for (_, e) in self.served() {
            e.front.close();
        }
    }

    /// Stops every server now.
    pub fn shutdown(&self) {
        for (_, e) in self.served() {
            e.pools.shutdown();
        }
    }
}

/// Sets a connector's instance gauges (`count` per state) and queue depth.
fn gauge(connector: &str, count: impl Fn(InstanceState) -> usize, queued: usize) {
    for state in InstanceState::ALL {
        metrics::gauge!("berth_instances", "connector" => connector.to_owned(), "state" => state.as_str())
            .set(count(state) as f64);
    }
    metrics::gauge!("berth_queue_depth", "connector" => connector.to_owned()).set(queued as f64);
}
