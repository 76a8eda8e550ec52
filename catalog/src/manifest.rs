//! The connector manifest: the official registry's `server.json`, unchanged,
//! plus berth's hosting extension under one reverse-DNS `_meta` key.
//!
//! Keeping `server.json` as is means anything in the official registry can be
//! published without edits, and berth's catalog reads back as a registry. The
//! document is stored exactly as published ([`Manifest::document`]); the typed
//! views here hold only what berth acts on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Invalid;
use crate::validate;

/// The `_meta` key of berth's extension.
pub const EXTENSION_KEY: &str = "dev.berth/connector";

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    document: Value,
    /// The registry fields berth acts on.
    pub server: Server,
    /// berth's extension, defaults filled in.
    pub hosting: Hosting,
}

impl Manifest {
    /// Parses JSON or YAML text and validates it, reporting every problem at once.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let document = parse_document(text)?;
        Self::from_document(document)
    }

    /// Validates an already parsed document.
    pub fn from_document(document: Value) -> Result<Self, Invalid> {
        validate::manifest(&document)?;
        // Validation checked every field these views read, so a failure here
        // is a gap in validation: report it rather than panic.
        let server: Server = serde_json::from_value(document.clone()).map_err(|e| invalid("", e))?;
        let hosting = match document.pointer(&format!("/_meta/{}", EXTENSION_KEY.replace('/', "~1"))) {
            Some(ext) => serde_json::from_value(ext.clone()).map_err(|e| invalid("/_meta", e))?,
            None => Hosting::default(),
        };
        Ok(Self { document, server, hosting })
    }

    /// The document as published.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The package berth runs: the first one it knows how to host.
    pub fn package(&self) -> &Package {
        // Validation guarantees at least one hostable package.
        self.server.packages.iter().find(|p| p.registry().is_some()).unwrap_or(&self.server.packages[0])
    }
}

fn invalid(pointer: &str, err: impl std::fmt::Display) -> Invalid {
    Invalid { problems: vec![crate::Problem { pointer: pointer.into(), message: err.to_string() }] }
}

/// JSON when it looks like JSON, YAML otherwise (YAML is a superset, but
/// JSON's own parser gives better error positions for JSON input).
pub fn parse_document(text: &str) -> Result<Value, Invalid> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| invalid("", format_args!("not valid JSON: {e}")))
    } else {
        serde_norway::from_str(text).map_err(|e| invalid("", format_args!("not valid YAML: {e}")))
    }
}

/// The registry (`server.json`) fields berth acts on.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    /// Reverse-DNS name, `namespace/name`.
    pub name: String,
    /// One line on what it does.
    pub description: String,
    /// An exact version.
    pub version: String,
    /// Display name.
    #[serde(default)]
    pub title: Option<String>,
    /// How to obtain and start it.
    #[serde(default)]
    pub packages: Vec<Package>,
}

/// One way to obtain and start the server.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    /// `npm`, `pypi`, `oci`, `mcpb`, `wasm` or `local`.
    pub registry_type: String,
    /// Package name, image reference, URL or path.
    pub identifier: String,
    /// Exact package version.
    #[serde(default)]
    pub version: Option<String>,
    /// SHA-256 of the downloaded file (required for `mcpb`).
    #[serde(default)]
    pub file_sha256: Option<String>,
    /// Arguments for the runtime (`node`, `python`), before the package.
    #[serde(default)]
    pub runtime_arguments: Vec<Argument>,
    /// Arguments for the server itself.
    #[serde(default)]
    pub package_arguments: Vec<Argument>,
    /// Environment the server expects.
    #[serde(default)]
    pub environment_variables: Vec<EnvVar>,
}

impl Package {
    /// The kind of registry, if berth can host it.
    pub fn registry(&self) -> Option<Registry> {
        Registry::from_name(&self.registry_type)
    }
}

/// Where a package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    /// An npm package, run with `node`.
    Npm,
    /// A PyPI package, run from its own virtual environment.
    Pypi,
    /// A container image.
    Oci,
    /// An MCP bundle downloaded from a URL.
    Mcpb,
    /// A WebAssembly module or component.
    Wasm,
    /// A program already on this host (first-party connectors, `berth migrate`).
    Local,
}

impl Registry {
    /// Every registry type berth hosts.
    pub const ALL: [Registry; 6] =
        [Registry::Npm, Registry::Pypi, Registry::Oci, Registry::Mcpb, Registry::Wasm, Registry::Local];

    /// Parses a `registryType`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The `registryType` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Npm => "npm",
            Self::Pypi => "pypi",
            Self::Oci => "oci",
            Self::Mcpb => "mcpb",
            Self::Wasm => "wasm",
            Self::Local => "local",
        }
    }
}

/// A command-line argument: `value` (or its hint) alone, or `name value`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Argument {
    /// `positional` or `named`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The flag, for named arguments.
    #[serde(default)]
    pub name: Option<String>,
    /// The fixed value.
    #[serde(default)]
    pub value: Option<String>,
    /// The default when no value is fixed.
    #[serde(default)]
    pub default: Option<String>,
}

impl Argument {
    /// The command-line words this argument becomes, when it has a value.
    pub fn words(&self) -> Vec<String> {
        let value = self.value.clone().or_else(|| self.default.clone());
        match (self.kind.as_str(), &self.name, value) {
            ("named", Some(name), Some(v)) => vec![name.clone(), v],
            ("named", Some(name), None) => vec![name.clone()],
            (_, _, Some(v)) => vec![v],
            _ => Vec::new(),
        }
    }
}

/// An environment variable the server reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// A fixed value set by the publisher.
    #[serde(default)]
    pub value: Option<String>,
    /// The value when none is given.
    #[serde(default)]
    pub default: Option<String>,
    /// Whether the server refuses to start without it.
    #[serde(default)]
    pub is_required: bool,
    /// Whether it holds a secret (never logged, never shown).
    #[serde(default)]
    pub is_secret: bool,
}

/// berth's hosting extension (`_meta["dev.berth/connector"]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Hosting {
    /// Which sandbox runs it.
    pub sandbox: SandboxChoice,
    /// Resource limits of one instance.
    pub limits: Limits,
    /// Hosts the server may reach through berth's egress proxy (`host[:port]`).
    pub egress: Vec<String>,
    /// Who may share an instance.
    pub isolation: Isolation,
    /// How many instances, and when to stop them.
    pub scaling: Scaling,
    /// How often instances must prove they still answer.
    pub health: Health,
    /// Upstream credentials injected per user.
    pub credentials: Vec<Credential>,
    /// Which tools callers may use unless a per-user policy says otherwise.
    pub policy: ToolPolicy,
    /// The server's protocol era, when known (probed otherwise).
    pub era: EraHint,
}

/// The sandbox of a connector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct SandboxChoice {
    /// The backend; the server's default when absent.
    pub backend: Option<Backend>,
    /// The image (container backend), when not given by an `oci` package.
    pub image: Option<String>,
}

/// A sandbox backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Linux namespaces, seccomp and cgroups.
    Native,
    /// A Docker container.
    Container,
    /// A WebAssembly instance.
    Wasi,
    /// A plain process: only for trusted first-party connectors.
    None,
}

/// Limits of one instance; absent ones take the sandbox's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Limits {
    /// Memory, e.g. `"256M"` or bytes.
    pub memory: Option<Size>,
    /// Processes and threads.
    pub pids: Option<u64>,
    /// CPU cores (0.5 = half a core).
    pub cpus: Option<f64>,
    /// Open files.
    pub nofile: Option<u64>,
    /// Size of the private `/tmp`.
    pub tmpfs: Option<Size>,
    /// WASI only: how long a guest may compute without new input before it
    /// is stopped, in milliseconds.
    pub cpu_deadline_ms: Option<u64>,
}

/// A byte size written as a number or as `"256M"`, `"1G"`, `"64K"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "u64")]
pub struct Size(pub u64);

impl From<Size> for u64 {
    fn from(s: Size) -> u64 {
        s.0
    }
}

impl TryFrom<Value> for Size {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        match &v {
            Value::Number(n) => n.as_u64().map(Size).ok_or_else(|| "expected a whole number of bytes".into()),
            Value::String(s) => Size::parse(s),
            _ => Err("expected a size such as \"256M\" or a number of bytes".into()),
        }
    }
}

impl Size {
    /// Parses `"256M"`, `"1G"`, `"64K"` or plain bytes.
    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_uppercase();
        let t = t.strip_suffix('B').filter(|r| r.ends_with(['K', 'M', 'G'])).unwrap_or(&t);
        let (digits, shift) = match t.as_bytes().last() {
            Some(b'K') => (&t[..t.len() - 1], 10),
            Some(b'M') => (&t[..t.len() - 1], 20),
            Some(b'G') => (&t[..t.len() - 1], 30),
            _ => (t, 0),
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1 << shift))
            .map(Size)
            .ok_or_else(|| format!("expected a size such as \"256M\", got \"{s}\""))
    }
}

/// Who shares an instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// All callers share instances (no per-user credentials).
    #[default]
    Shared,
    /// One pool per user, with that user's credentials.
    User,
    /// One instance per legacy session.
    Session,
}

/// Instance counts and lifetimes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Scaling {
    /// Instances kept running even when idle.
    pub min: u32,
    /// Most instances at once.
    pub max: u32,
    /// In-flight requests per instance the autoscaler aims for.
    pub target_concurrency: u32,
    /// Most requests one instance serves at once; more wait in the queue.
    pub max_concurrency: u32,
    /// Most requests waiting for an instance with room; more are refused.
    pub queue_limit: u32,
    /// Longest a request waits in the queue.
    pub queue_timeout_seconds: u64,
    /// Seconds without requests after which the pool may stop instances
    /// (down to `min`, or to zero).
    pub idle_timeout_seconds: u64,
    /// The autoscaler's averaging window (Knative's stable window); its
    /// panic window is a tenth of it.
    pub stable_window_seconds: u64,
    /// Started instances kept ready beyond demand, to hide cold starts.
    pub warm_pool: u32,
}

impl Default for Scaling {
    fn default() -> Self {
        Self {
            min: 0,
            max: 4,
            target_concurrency: 16,
            max_concurrency: 64,
            queue_limit: 256,
            queue_timeout_seconds: 30,
            idle_timeout_seconds: 300,
            stable_window_seconds: 60,
            warm_pool: 0,
        }
    }
}

/// Health checks: `ping` (legacy) or `server/discover` (modern) to each
/// running instance; one that does not answer in time is replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Health {
    /// Seconds between checks of one instance; 0 turns checks off.
    pub interval_seconds: u64,
    /// Seconds an instance has to answer.
    pub timeout_seconds: u64,
}

impl Default for Health {
    fn default() -> Self {
        Self { interval_seconds: 30, timeout_seconds: 10 }
    }
}

/// An upstream credential the broker injects for each user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credential {
    /// The OAuth provider berth knows (e.g. `github`).
    pub provider: String,
    /// Scopes to request.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// How the server receives it.
    pub inject: Injection,
}

/// How a credential reaches the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Injection {
    /// As this environment variable.
    Env(String),
    /// As a file at this absolute path inside the sandbox.
    File(String),
}

/// The default tool policy of a connector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ToolPolicy {
    /// What happens to tools in neither list.
    pub default: PolicyDefault,
    /// Tools always allowed: names, or patterns with `*` and `?`.
    pub allow: Vec<String>,
    /// Tools always refused: names or patterns; deny wins over allow.
    pub deny: Vec<String>,
    /// Hints a tool's annotations must have for it to be used at all, e.g.
    /// `{"readOnlyHint": true}`; a hint the server leaves out takes the
    /// value MCP defines for it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<Hint, bool>,
    /// Which prompts callers may list and get, by name.
    #[serde(skip_serializing_if = "NameRules::is_open")]
    pub prompts: NameRules,
    /// Which resources callers may list and read, by URI (a template by its
    /// URI template).
    #[serde(skip_serializing_if = "NameRules::is_open")]
    pub resources: NameRules,
}

/// Allow and deny lists over a default, for prompts or resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct NameRules {
    /// What happens to names in neither list.
    pub default: PolicyDefault,
    /// Always allowed: names, or patterns with `*` and `?`.
    pub allow: Vec<String>,
    /// Always refused; deny wins over allow.
    pub deny: Vec<String>,
}

impl NameRules {
    /// Whether the rules let everything through.
    pub fn is_open(&self) -> bool {
        self.default == PolicyDefault::Allow && self.deny.is_empty()
    }
}

/// A tool annotation hint a policy can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Hint {
    /// The tool does not modify its environment (default false).
    ReadOnlyHint,
    /// A modifying tool may destroy (default true).
    DestructiveHint,
    /// Repeating a call has no further effect (default false).
    IdempotentHint,
    /// The tool reaches outside entities (default true).
    OpenWorldHint,
}

impl Hint {
    /// Every hint.
    pub const ALL: [Hint; 4] = [Hint::ReadOnlyHint, Hint::DestructiveHint, Hint::IdempotentHint, Hint::OpenWorldHint];

    /// Its name in a tool's `annotations`.
    pub fn key(self) -> &'static str {
        match self {
            Hint::ReadOnlyHint => "readOnlyHint",
            Hint::DestructiveHint => "destructiveHint",
            Hint::IdempotentHint => "idempotentHint",
            Hint::OpenWorldHint => "openWorldHint",
        }
    }

    /// Its value when the server leaves it out (MCP's `ToolAnnotations`).
    pub fn default_value(self) -> bool {
        matches!(self, Hint::DestructiveHint | Hint::OpenWorldHint)
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyDefault {
    /// Tools not listed are allowed.
    #[default]
    Allow,
    /// Tools not listed are refused.
    Deny,
}

/// The protocol era a server speaks, if the publisher knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EraHint {
    /// Probe it.
    #[default]
    Auto,
    /// 2025-03-26 … 2025-11-25: handshake and sessions.
    Legacy,
    /// 2026-07-28: stateless.
    Modern,
}
