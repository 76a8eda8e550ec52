//! The JSON shapes the admin and registry APIs answer with, as types.
//!
//! Handlers serialize these rather than ad-hoc `json!` values, so the OpenAPI
//! document (generated from the same types) cannot drift from the wire. The
//! libraries' own types (catalog entries, sealed-secret listings, tokens,
//! providers) are converted here: the OpenAPI derive stays in the runtime, and
//! a field added to a library type must be added here, on purpose, before it
//! reaches an API answer.

use std::collections::BTreeMap;

use berth_catalog::Entry;
use berth_catalog::manifest::{Hint, NameRules, PolicyDefault, ToolPolicy};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Every error answer: what went wrong, and for an invalid manifest each
/// problem with its JSON pointer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// Structured details, when there are any (an invalid manifest's
    /// problems: `[{"pointer": …, "message": …}]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(required = false)]
    pub details: Option<Value>,
}

/// One published version, shaped as the official registry shapes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistryEntry {
    /// The manifest as published (the registry's `server.json`).
    #[schema(value_type = Object)]
    pub server: Value,
    /// The registry's status block and where berth serves the version.
    #[serde(rename = "_meta")]
    pub meta: EntryMeta,
}

/// `_meta` of an entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryMeta {
    /// The registry's own status fields.
    #[serde(rename = "io.modelcontextprotocol.registry/official")]
    pub official: OfficialMeta,
    /// Where berth serves this version.
    #[serde(rename = "dev.berth/hosted")]
    pub hosted: HostedMeta,
}

/// A version's lifecycle, as the official registry reports it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfficialMeta {
    /// Lifecycle status.
    pub status: VersionStatus,
    /// RFC 3339.
    pub published_at: String,
    /// RFC 3339; when the status last changed.
    pub updated_at: String,
    /// Whether `latest` resolves to this version.
    pub is_latest: bool,
}

/// Where a version is served.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostedMeta {
    /// The MCP URL's path, `/mcp/{name}@{version}`.
    pub path: String,
    /// SHA-256 of the stored manifest.
    pub sha256: String,
}

impl From<&Entry> for RegistryEntry {
    fn from(e: &Entry) -> Self {
        let when = |t| humantime::format_rfc3339_millis(t).to_string();
        Self {
            server: e.manifest.document().clone(),
            meta: EntryMeta {
                official: OfficialMeta {
                    status: e.status.into(),
                    published_at: when(e.published_at),
                    updated_at: when(e.updated_at),
                    is_latest: e.is_latest,
                },
                hosted: HostedMeta { path: format!("/mcp/{}@{}", e.name(), e.version()), sha256: e.sha256.clone() },
            },
        }
    }
}

/// Lifecycle of a published version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VersionStatus {
    /// Served and listed.
    Active,
    /// Still served; callers are told to move on.
    Deprecated,
    /// Withdrawn (yanked): not served, never reusable.
    Deleted,
}

impl From<berth_catalog::Status> for VersionStatus {
    fn from(s: berth_catalog::Status) -> Self {
        match s {
            berth_catalog::Status::Active => Self::Active,
            berth_catalog::Status::Deprecated => Self::Deprecated,
            berth_catalog::Status::Deleted => Self::Deleted,
        }
    }
}

impl From<VersionStatus> for berth_catalog::Status {
    fn from(s: VersionStatus) -> Self {
        match s {
            VersionStatus::Active => Self::Active,
            VersionStatus::Deprecated => Self::Deprecated,
            VersionStatus::Deleted => Self::Deleted,
        }
    }
}

/// A page of entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerList {
    /// The entries.
    pub servers: Vec<RegistryEntry>,
    /// Paging.
    pub metadata: ListMetadata,
}

/// Paging of a listing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListMetadata {
    /// Entries on this page.
    pub count: usize,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A tool policy: tools in `allow` pass, in `deny` are refused (deny wins),
/// others follow `default`; and a tool whose annotations lack a required
/// hint is refused whatever the lists say.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyBody {
    /// What happens to tools in neither list (default `allow`).
    pub default: PolicyVerdict,
    /// Tools always allowed: names, or patterns with `*` and `?`.
    pub allow: Vec<String>,
    /// Tools always refused: names or patterns.
    pub deny: Vec<String>,
    /// Hints a tool's annotations must have for it to be used at all.
    #[serde(skip_serializing_if = "PolicyHints::is_empty", deserialize_with = "hints_from_map")]
    pub annotations: PolicyHints,
    /// Which prompts may be listed and got, by name.
    #[serde(skip_serializing_if = "RulesBody::is_open")]
    pub prompts: RulesBody,
    /// Which resources may be listed and read, by URI (templates by URI template).
    #[serde(skip_serializing_if = "RulesBody::is_open")]
    pub resources: RulesBody,
}

/// Allow and deny lists over a default, for prompts or resources.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RulesBody {
    /// What happens to names in neither list (default `allow`).
    pub default: PolicyVerdict,
    /// Always allowed: names, or patterns with `*` and `?`.
    pub allow: Vec<String>,
    /// Always refused; deny wins.
    pub deny: Vec<String>,
}

impl RulesBody {
    fn is_open(&self) -> bool {
        self.default == PolicyVerdict::Allow && self.deny.is_empty()
    }
}

impl From<NameRules> for RulesBody {
    fn from(r: NameRules) -> Self {
        Self { default: r.default.into(), allow: r.allow, deny: r.deny }
    }
}

impl From<RulesBody> for NameRules {
    fn from(r: RulesBody) -> Self {
        Self { default: r.default.into(), allow: r.allow, deny: r.deny }
    }
}

impl From<PolicyDefault> for PolicyVerdict {
    fn from(d: PolicyDefault) -> Self {
        match d {
            PolicyDefault::Allow => Self::Allow,
            PolicyDefault::Deny => Self::Deny,
        }
    }
}

impl From<PolicyVerdict> for PolicyDefault {
    fn from(v: PolicyVerdict) -> Self {
        match v {
            PolicyVerdict::Allow => Self::Allow,
            PolicyVerdict::Deny => Self::Deny,
        }
    }
}

/// Reads hints as the catalog does, from a map only (a derived struct would
/// take an array too).
fn hints_from_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PolicyHints, D::Error> {
    BTreeMap::<Hint, bool>::deserialize(d).map(PolicyHints::from)
}

/// Required tool annotation hints; a hint the server leaves out takes the
/// value MCP defines for it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyHints {
    /// The tool does not modify its environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_hint: Option<bool>,
    /// A modifying tool may destroy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destructive_hint: Option<bool>,
    /// Repeating a call has no further effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotent_hint: Option<bool>,
    /// The tool reaches outside entities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_world_hint: Option<bool>,
}

impl PolicyHints {
    fn is_empty(&self) -> bool {
        self.pairs().iter().all(|(_, v)| v.is_none())
    }

    fn pairs(&self) -> [(Hint, Option<bool>); 4] {
        [
            (Hint::ReadOnlyHint, self.read_only_hint),
            (Hint::DestructiveHint, self.destructive_hint),
            (Hint::IdempotentHint, self.idempotent_hint),
            (Hint::OpenWorldHint, self.open_world_hint),
        ]
    }
}

impl From<BTreeMap<Hint, bool>> for PolicyHints {
    fn from(m: BTreeMap<Hint, bool>) -> Self {
        let get = |h| m.get(&h).copied();
        Self {
            read_only_hint: get(Hint::ReadOnlyHint),
            destructive_hint: get(Hint::DestructiveHint),
            idempotent_hint: get(Hint::IdempotentHint),
            open_world_hint: get(Hint::OpenWorldHint),
        }
    }
}

impl From<PolicyHints> for BTreeMap<Hint, bool> {
    fn from(h: PolicyHints) -> Self {
        h.pairs().into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect()
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyVerdict {
    /// Tools not listed are allowed.
    #[default]
    Allow,
    /// Tools not listed are refused.
    Deny,
}

impl From<ToolPolicy> for PolicyBody {
    fn from(p: ToolPolicy) -> Self {
        Self {
            default: p.default.into(),
            allow: p.allow,
            deny: p.deny,
            annotations: p.annotations.into(),
            prompts: p.prompts.into(),
            resources: p.resources.into(),
        }
    }
}

impl From<PolicyBody> for ToolPolicy {
    fn from(p: PolicyBody) -> Self {
        Self {
            default: p.default.into(),
            allow: p.allow,
            deny: p.deny,
            annotations: p.annotations.into(),
            prompts: p.prompts.into(),
            resources: p.resources.into(),
        }
    }
}

/// The per-user policies of one connector.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPolicyList {
    /// The connector.
    pub connector: String,
    /// Each user's policy.
    pub users: BTreeMap<String, PolicyBody>,
}

/// A secret's name and when it was set; never its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretEntry {
    /// The environment variable.
    pub name: String,
    /// The user it belongs to; null for the connector-wide value.
    pub user: Option<String>,
    /// Milliseconds since the epoch.
    pub updated_ms: i64,
}

impl From<berth_oauth::SecretInfo> for SecretEntry {
    fn from(s: berth_oauth::SecretInfo) -> Self {
        Self { name: s.name, user: s.user, updated_ms: s.updated_ms }
    }
}

/// A personal access token as listed: everything but the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenEntry {
    /// Its id, for revoking.
    pub id: String,
    /// Whose it is.
    pub user: String,
    /// What it is for.
    pub name: String,
    /// Connectors it may call; empty means every connector.
    pub connectors: Vec<String>,
    /// Whether it opens the admin API.
    pub admin: bool,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Expires, ms since the epoch.
    pub expires_ms: i64,
}

impl From<berth_oauth::PatInfo> for TokenEntry {
    fn from(p: berth_oauth::PatInfo) -> Self {
        Self {
            id: p.id,
            user: p.user,
            name: p.name,
            connectors: p.connectors,
            admin: p.admin,
            created_ms: p.created_ms,
            expires_ms: p.expires_ms,
        }
    }
}

/// Personal access tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// The tokens.
    pub tokens: Vec<TokenEntry>,
}

/// A token just made: the only answer that carries the token itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token as listed.
    #[serde(flatten)]
    pub info: TokenEntry,
    /// The bearer token (`berth_pat_…`); shown once.
    pub token: String,
}

/// An upstream OAuth provider as listed (never its client secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderEntry {
    /// Its id (`github`), as manifests name it.
    pub id: String,
    /// The OIDC issuer, when endpoints are discovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Where users are sent to consent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// Where codes and refresh tokens are exchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// berth's client id there.
    pub client_id: String,
    /// Scopes asked for when a connector names none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Extra authorization request parameters.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_params: BTreeMap<String, String>,
    /// Whether a client secret is stored.
    pub has_client_secret: bool,
}

impl From<berth_oauth::ProviderInfo> for ProviderEntry {
    fn from(p: berth_oauth::ProviderInfo) -> Self {
        let c = p.config;
        Self {
            id: p.id,
            issuer: c.issuer,
            authorization_endpoint: c.authorization_endpoint,
            token_endpoint: c.token_endpoint,
            client_id: c.client_id,
            scopes: c.scopes,
            extra_params: c.extra_params,
            has_client_secret: p.has_client_secret,
        }
    }
}

/// The registered providers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderList {
    /// The providers.
    pub providers: Vec<ProviderEntry>,
    /// The redirect URI to register at each provider.
    pub redirect_uri: String,
}

/// An upstream OAuth provider to register: an `issuer` whose discovery
/// document names the endpoints, or both endpoints.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderBody {
    /// The OIDC issuer.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Where users are sent to consent.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Where codes and refresh tokens are exchanged.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// berth's client id there.
    pub client_id: String,
    /// berth's client secret there (sealed at rest, never returned).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Scopes asked for when a connector names none.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Extra authorization request parameters (e.g. `access_type=offline`).
    #[serde(default)]
    pub extra_params: BTreeMap<String, String>,
}

impl From<ProviderBody> for berth_oauth::ProviderConfig {
    fn from(b: ProviderBody) -> Self {
        Self {
            issuer: b.issuer,
            authorization_endpoint: b.authorization_endpoint,
            token_endpoint: b.token_endpoint,
            client_id: b.client_id,
            client_secret: b.client_secret,
            scopes: b.scopes,
            extra_params: b.extra_params,
        }
    }
}

/// Settings fixed when berth started (flags, environment, `berth.toml`);
/// changing one takes a restart. Secrets (the admin token, the OIDC client
/// secret, a database password) are never shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FixedSettings {
    /// The listen address.
    pub listen: String,
    /// The URL clients reach berth at (the OAuth issuer), if set.
    pub public_url: Option<String>,
    /// The data directory.
    pub data_dir: String,
    /// The database, without its password.
    pub database: String,
    /// Sandbox for manifests that name none.
    pub default_sandbox: String,
    /// When packages are installed: `publish` or `launch`.
    pub materialize: String,
    /// Who may call MCP URLs: `oauth` or `none`.
    pub auth: String,
    /// Whether the example connectors are published at start.
    pub examples: bool,
    /// The OIDC provider users sign in through, if any.
    pub oidc_issuer: Option<String>,
    /// berth's client id there.
    pub oidc_client_id: Option<String>,
    /// The ID token claim listing groups.
    pub oidc_groups_claim: String,
    /// Members of this group may mint admin tokens for themselves.
    pub oidc_admin_group: Option<String>,
    /// Extra accepted `Host` values.
    pub allowed_hosts: Vec<String>,
    /// Accepted browser origins.
    pub allowed_origins: Vec<String>,
    /// Extra root certificates trusted for outbound https.
    pub extra_ca: Vec<String>,
    /// Client metadata documents may come from private addresses.
    pub client_documents_allow_private: bool,
}

/// Every setting berth runs with.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsBody {
    /// berth's version.
    pub version: String,
    /// Set at start; a restart changes them.
    pub fixed: FixedSettings,
    /// Changed at run time with `PATCH /admin/v1/settings`.
    pub runtime: crate::settings::RuntimeValues,
}
