//! `berth serve`: the catalog's connectors, each at its own URL, plus the
//! admin and registry APIs. Embedded defaults: a data directory holding a
//! SQLite catalog, the artifacts and the admin token.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use berth_catalog::artifact::Artifacts;
use berth_catalog::{Manifest, Store, StoreError};
use berth_oauth::{
    AuthConfig, AuthorizationServer, Broker, DocumentsConfig, Keyring, OidcLogin, ProviderConfig, Sealer, SecretStore,
};
use berth_runtime::audit::{Audit, AuditStore};
use berth_runtime::front::FrontConfig;
use berth_runtime::groups::Groups;
use berth_runtime::hosting::{Hosting, HostingConfig, Materialize};
use berth_runtime::sandboxes::Backend;
use berth_runtime::serve::schema::FixedSettings;
use berth_runtime::serve::{AppState, ServedSettings, router};
use berth_runtime::settings::RuntimeSettings;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;

use super::{examples, shutdown};

/// The default listen address of `berth serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8377";

#[derive(clap::Args)]
pub struct ServeArgs {
    /// A TOML file with any of the settings below (flags and env win).
    /// Default: `berth.toml` in the data directory, if there is one.
    #[arg(long, env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "BERTH_LISTEN")]
    listen: Option<SocketAddr>,
    /// Where the catalog, artifacts and admin token live.
    #[arg(long, env = "BERTH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Catalog database: `sqlite://PATH` or `postgres://…`.
    /// Default: `catalog.db` in the data directory.
    #[arg(long, env = "BERTH_DATABASE_URL")]
    database: Option<String>,
    /// Bearer token of the admin API. Default: generated once into
    /// `admin-token` in the data directory.
    #[arg(long, env = "BERTH_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Sandbox for connectors whose manifest names none.
    #[arg(long, value_enum, env = "BERTH_DEFAULT_SANDBOX")]
    default_sandbox: Option<Backend>,
    /// When packages are installed: at publish, or on first use.
    #[arg(long, value_enum, env = "BERTH_MATERIALIZE")]
    materialize: Option<Materialize>,
    /// Who may call the MCP URLs: anyone who reaches them (`none`), or
    /// holders of an access token from berth's authorization server (`oauth`).
    /// Default: `oauth`, except `none` when listening on loopback only.
    #[arg(long, value_enum, env = "BERTH_AUTH")]
    auth: Option<AuthMode>,
    /// The URL clients reach berth at: the OAuth issuer, and the base of
    /// every resource. Default: `http://` plus the listen address.
    #[arg(long, env = "BERTH_PUBLIC_URL")]
    public_url: Option<String>,
    /// A local account for the consent page, NAME:PASSWORD (repeatable;
    /// for development until an upstream identity provider is configured).
    #[arg(long = "dev-user", env = "BERTH_DEV_USERS", value_delimiter = ',', hide_env_values = true)]
    dev_users: Vec<String>,
    /// Sign users in through this OpenID Connect provider (its issuer URL).
    #[arg(long, env = "BERTH_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// berth's client id at the OIDC provider.
    #[arg(long, env = "BERTH_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,
    /// berth's client secret at the OIDC provider.
    #[arg(long, env = "BERTH_OIDC_CLIENT_SECRET", hide_env_values = true)]
    oidc_client_secret: Option<String>,
    /// The ID token claim listing a user's groups.
    #[arg(long, env = "BERTH_OIDC_GROUPS_CLAIM")]
    oidc_groups_claim: Option<String>,
    /// Members of this group (from the provider's groups claim, or added by
    /// an admin) may mint admin personal access tokens for themselves.
    #[arg(long, env = "BERTH_OIDC_ADMIN_GROUP")]
    oidc_admin_group: Option<String>,
    /// Scopes asked of the OIDC provider at sign-in (default: openid email
    /// profile; some providers put the groups claim behind a `groups` scope).
    #[arg(long, env = "BERTH_OIDC_SCOPES", value_delimiter = ',')]
    oidc_scopes: Vec<String>,
    /// Do not publish the example connectors on start.
    #[arg(long)]
    no_examples: bool,
    /// Extra root certificate (PEM file) trusted for outbound https, beside
    /// the system's (repeatable): a private CA of identity providers or of
    /// clients' metadata documents.
    #[arg(long = "extra-ca", env = "BERTH_EXTRA_CA", value_delimiter = ',')]
    extra_ca: Vec<PathBuf>,
    /// Fetch client metadata documents from private, loopback and
    /// link-local addresses too (clients hosted inside the network; tests).
    #[arg(long)]
    client_documents_allow_private: bool,
    /// Extra host name accepted in the Host header (repeatable; `*` for any).
    #[arg(long = "allowed-host")]
    allowed_hosts: Vec<String>,
    /// Origin accepted from browsers (repeatable; `*` for any).
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
}

/// Who may call the MCP URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// No authentication (loopback development).
    None,
    /// Bearer tokens from berth's own authorization server.
    Oauth,
}

/// `berth.toml`: every setting optional; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database: Option<String>,
    admin_token: Option<String>,
    default_sandbox: Option<Backend>,
    materialize: Option<Materialize>,
    examples: Option<bool>,
    auth: Option<AuthMode>,
    public_url: Option<String>,
    oidc_issuer: Option<String>,
    oidc_client_id: Option<String>,
    oidc_client_secret: Option<String>,
    oidc_groups_claim: Option<String>,
    #[serde(default)]
    oidc_scopes: Vec<String>,
    oidc_admin_group: Option<String>,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    #[serde(default)]
    extra_ca: Vec<PathBuf>,
    client_documents_allow_private: Option<bool>,
}

/// The settings in force: flag or env, else file, else default.
struct Settings {
    listen: SocketAddr,
    data_dir: PathBuf,
    database: String,
    admin_token: Option<String>,
    default_sandbox: Backend,
    materialize: Materialize,
    examples: bool,
    auth: Option<AuthMode>,
    public_url: Option<String>,
    dev_users: Vec<String>,
    /// Sign-in through an upstream OIDC provider, if configured.
    oidc: Option<ProviderConfig>,
    oidc_groups_claim: String,
    oidc_admin_group: Option<String>,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
    extra_ca: Vec<PathBuf>,
    client_documents_allow_private: bool,
}

impl Settings {
    fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let default_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
        let path = args.config.clone().or_else(|| Some(default_dir.join("berth.toml")).filter(|p| p.exists()));
        let file: FileConfig = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("in {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = args.data_dir.or(file.data_dir).unwrap_or(default_dir);
        let database = args
            .database
            .or(file.database)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("catalog.db").display()));
        let oidc = match (args.oidc_issuer.or(file.oidc_issuer), args.oidc_client_id.or(file.oidc_client_id)) {
            (Some(issuer), Some(client_id)) => Some(ProviderConfig {
                issuer: Some(issuer),
                client_id,
                client_secret: args.oidc_client_secret.or(file.oidc_client_secret),
                scopes: if args.oidc_scopes.is_empty() { file.oidc_scopes } else { args.oidc_scopes },
                ..ProviderConfig::default()
            }),
            (None, None) => None,
            _ => anyhow::bail!("OIDC sign-in needs both --oidc-issuer and --oidc-client-id"),
        };
        Ok(Self {
            oidc,
            oidc_groups_claim: args.oidc_groups_claim.or(file.oidc_groups_claim).unwrap_or_else(|| "groups".into()),
            oidc_admin_group: args.oidc_admin_group.or(file.oidc_admin_group),
            listen: args.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default")),
            database,
            admin_token: args.admin_token.or(file.admin_token),
            default_sandbox: args.default_sandbox.or(file.default_sandbox).unwrap_or(Backend::Native),
            materialize: args.materialize.or(file.materialize).unwrap_or(Materialize::Launch),
            examples: !args.no_examples && file.examples.unwrap_or(true),
            auth: args.auth.or(file.auth),
            public_url: args.public_url.or(file.public_url),
            dev_users: args.dev_users,
            allowed_hosts: [file.allowed_hosts, args.allowed_hosts].concat(),
            allowed_origins: [file.allowed_origins, args.allowed_origins].concat(),
            extra_ca: [file.extra_ca, args.extra_ca].concat(),
            client_documents_allow_private: args.client_documents_allow_private
                || file.client_documents_allow_private.unwrap_or(false),
            data_dir,
        })
    }
}

impl Settings {
    /// Who may call the MCP URLs: as set, else open on loopback only.
    fn auth_mode(&self, listening: SocketAddr) -> AuthMode {
        self.auth.unwrap_or(if listening.ip().is_loopback() { AuthMode::None } else { AuthMode::Oauth })
    }

    /// The settings as the admin API shows them, without any secret.
    fn fixed(&self, listening: SocketAddr) -> FixedSettings {
        FixedSettings {
            listen: listening.to_string(),
            public_url: self.public_url.clone(),
            data_dir: self.data_dir.display().to_string(),
            database: redact(&self.database),
            default_sandbox: self.default_sandbox.name().to_owned(),
            materialize: match self.materialize {
                Materialize::Publish => "publish",
                Materialize::Launch => "launch",
            }
            .to_owned(),
            auth: match self.auth_mode(listening) {
                AuthMode::Oauth => "oauth",
                AuthMode::None => "none",
            }
            .to_owned(),
            examples: self.examples,
            oidc_issuer: self.oidc.as_ref().and_then(|o| o.issuer.clone()),
            oidc_client_id: self.oidc.as_ref().map(|o| o.client_id.clone()),
            oidc_groups_claim: self.oidc_groups_claim.clone(),
            oidc_admin_group: self.oidc_admin_group.clone(),
            allowed_hosts: self.allowed_hosts.clone(),
            allowed_origins: self.allowed_origins.clone(),
            extra_ca: self.extra_ca.iter().map(|p| p.display().to_string()).collect(),
            client_documents_allow_private: self.client_documents_allow_private,
        }
    }
}

/// `$XDG_DATA_HOME/berth`, or `~/.local/share/berth`, or `./berth-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("berth");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/berth"),
        None => PathBuf::from("berth-data"),
    }
}

/// The admin token: given, or read from (or first written to) the data dir
/// with owner-only permissions.
pub fn admin_token(data_dir: &Path, given: Option<String>) -> anyhow::Result<String> {
    if let Some(t) = given.filter(|t| !t.is_empty()) {
        return Ok(t);
    }
    let path = data_dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok(t.trim().to_owned());
    }
    let token = format!("berth_{}", hex::encode(rand::random::<[u8; 24]>()));
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{token}")?;
    Ok(token)
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(args)?;
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating the data directory {}", settings.data_dir.display()))?;
    let token = admin_token(&settings.data_dir, settings.admin_token.clone())?;
    let mut extra_roots = Vec::new();
    for path in &settings.extra_ca {
        extra_roots.push(std::fs::read(path).with_context(|| format!("reading --extra-ca {}", path.display()))?);
    }
    berth_oauth::trust_extra_roots(&extra_roots).map_err(|e| anyhow::anyhow!("--extra-ca: {e}"))?;
    let store =
        Store::open(&settings.database).await.with_context(|| format!("opening {}", redact(&settings.database)))?;
    // One pool for the process: the catalog's, which the runtime's and the
    // OAuth tables share (each with a migration history of its own).
    let runtime_db = store.pool().clone();
    berth_runtime::db::migrate(&runtime_db)
        .await
        .with_context(|| format!("updating the runtime's tables in {}", redact(&settings.database)))?;
    let audit = AuditStore::new(runtime_db.clone());
    let groups = Groups::load(Some(runtime_db.clone())).await.context("loading group memberships")?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| tracing::warn!(error = %e, "no Prometheus metrics"))
        .ok();
    let writer = Audit::spawn(audit.clone());
    let runtime_settings = RuntimeSettings::load(Some(runtime_db.clone()), writer.arguments_switch())
        .await
        .context("loading the run-time settings")?;
    let mut front = FrontConfig { audit: Some(writer), ..FrontConfig::default() };
    front.allow.hosts.extend(settings.allowed_hosts.iter().cloned());
    if !settings.listen.ip().is_unspecified() && !settings.listen.ip().is_loopback() {
        front.allow.hosts.push(settings.listen.ip().to_string());
    }
    front.allow.origins = settings.allowed_origins.clone();
    front.groups = Some(groups.clone());
    let sealer = Arc::new(match std::env::var("BERTH_SECRET_KEYS") {
        Ok(keys) => Sealer::from_lines(&keys, "BERTH_SECRET_KEYS")?,
        Err(_) => Sealer::load_or_create(&settings.data_dir.join("secret-keys"))?,
    });
    let oauth_db = runtime_db.clone();
    berth_oauth::db::migrate(&oauth_db)
        .await
        .with_context(|| format!("updating the secrets and OAuth tables in {}", redact(&settings.database)))?;
    let secrets = SecretStore::new(oauth_db.clone(), sealer.clone());
    let listener =
        tokio::net::TcpListener::bind(settings.listen).await.with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let auth = authorization_server(&settings, addr, oauth_db.clone()).await?;
    if let Some(auth) = &auth {
        let what = "rereading tokens, clients and sign-outs";
        berth_runtime::tick::every(auth, AUTH_RESYNC, what, |a| async move { a.resync().await });
    }
    let broker =
        auth.as_ref().map(|a| Arc::new(Broker::new(oauth_db, sealer, format!("{}/connect/callback", a.issuer()))));
    let login = match (&auth, &settings.oidc) {
        (Some(a), Some(config)) => {
            let login =
                OidcLogin::new(config.clone(), &format!("{}/login/callback", a.issuer()), &settings.oidc_groups_claim)
                    .await
                    .context("setting up sign-in through the OIDC provider")?;
            tracing::info!(issuer = login.issuer(), "users sign in through the OIDC provider");
            Some(Arc::new(login))
        }
        (None, Some(_)) => anyhow::bail!("OIDC sign-in needs --auth oauth"),
        _ => None,
    };
    let hosting = Hosting::new(
        store,
        Arc::new(secrets),
        Some(runtime_db),
        Artifacts::new(settings.data_dir.join("artifacts")),
        HostingConfig {
            default_backend: settings.default_sandbox,
            materialize: settings.materialize,
            front,
            broker: broker.clone(),
        },
    );
    if settings.examples {
        for manifest in examples::manifests() {
            publish_example(&hosting, manifest).await;
        }
    }
    let state = Arc::new(AppState {
        hosting: hosting.clone(),
        admin_token_sha256: Sha256::digest(token.as_bytes()).into(),
        auth,
        login,
        broker,
        audit: Some(audit),
        metrics,
        groups: Some(groups),
        admin_group: settings.oidc_admin_group.clone(),
        settings: Some(Arc::new(ServedSettings { fixed: settings.fixed(addr), runtime: runtime_settings })),
    });
    println!("berth: serving the catalog at http://{addr}/mcp/{{name}}");
    println!("berth: registry API at http://{addr}/v0/servers, admin API at http://{addr}/admin/v1");
    println!("berth: data in {}", settings.data_dir.display());
    let closer = hosting.clone();
    let serve = axum::serve(listener, router(state)).with_graceful_shutdown(async move {
        shutdown::signal().await;
        closer.close();
    });
    let mut serve = std::pin::pin!(serve.into_future());
    tokio::select! {
        res = &mut serve => res.context("serving HTTP")?,
        _ = async { shutdown::signal().await; tokio::time::sleep(shutdown::GRACE * 2).await } => {
            tracing::warn!("requests still running after the grace period; exiting");
        }
    }
    hosting.shutdown();
    Ok(())
}

/// berth's authorization server, if the MCP URLs are to need OAuth.
async fn authorization_server(
    settings: &Settings,
    addr: SocketAddr,
    db: AnyPool,
) -> anyhow::Result<Option<Arc<AuthorizationServer>>> {
    if settings.auth_mode(addr) == AuthMode::None {
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "MCP URLs are open to anyone who reaches this address (--auth none)");
        }
        return Ok(None);
    }
    let issuer = settings.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let keys = Keyring::load_or_create(&settings.data_dir.join("signing-keys.json"), KEY_ROTATION)?;
    let mut server = AuthorizationServer::new(AuthConfig::new(issuer), keys);
    server.persist(db).await.context("loading registered OAuth clients and refresh tokens")?;
    server.accept_client_documents(DocumentsConfig { allow_private: settings.client_documents_allow_private });
    for user in &settings.dev_users {
        let (name, password) = user.split_once(':').context("--dev-user takes NAME:PASSWORD")?;
        server.users.add(name, password);
    }
    tracing::info!(issuer = server.issuer(), "MCP URLs need OAuth access tokens");
    Ok(Some(Arc::new(server)))
}

/// How often a replica rereads the tokens and sign-outs other replicas may
/// have changed in the shared database: a revoked token stops working
/// everywhere within this.
const AUTH_RESYNC: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a token signing key signs before a new one takes over.
const KEY_ROTATION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

async fn publish_example(hosting: &Hosting, manifest: Manifest) {
    match hosting.publish(&manifest).await {
        Ok(e) => tracing::info!(connector = e.name(), version = e.version(), "published example connector"),
        Err(berth_runtime::hosting::HostingError::Store(StoreError::AlreadyPublished { .. })) => {}
        Err(e) => tracing::warn!(connector = %manifest.server.name, error = %e, "example connector not published"),
    }
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}
