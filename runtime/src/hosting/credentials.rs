//! A manifest's upstream credentials, fetched from the broker for the one
//! user an instance serves and injected into its sandbox: as environment
//! variables (the pool is replaced when they are renewed) or as files
//! (renewed in place, see [`super::token_files`]).

use std::time::{Duration, Instant};

use berth_catalog::manifest::{Injection, Manifest};
use berth_oauth::{Broker, BrokerError};
use berth_sandbox::SandboxSpec;
use serde_json::json;

use super::token_files::TokenFiles;
use crate::jsonrpc::{ErrorObject, code};

/// Why an instance cannot be launched with its credentials.
#[derive(Debug, thiserror::Error)]
pub(super) enum CredentialError {
    /// Nobody signed in, so there is no one's account to use.
    #[error("{connector} acts with each user's {provider} account; call it with a berth access token")]
    NoUser { connector: String, provider: String },
    /// This berth has no broker (OAuth is off).
    #[error("{connector} needs upstream credentials, which need `berth serve --auth oauth`")]
    NoBroker { connector: String },
    /// The user must (re)connect their account.
    #[error("{reason}: connect it at {url}")]
    Connect { provider: String, reason: String, url: String },
    /// Anything else the broker reported.
    #[error("{0}")]
    Broker(BrokerError),
    /// The token file could not be written.
    #[error("writing {connector}'s {provider} token file: {source}")]
    File { connector: String, provider: String, source: std::io::Error },
}

impl CredentialError {
    /// The JSON-RPC error the caller gets: a URL elicitation when the user
    /// can fix it by connecting an account.
    pub(super) fn into_error(self) -> ErrorObject {
        match &self {
            Self::Connect { provider, url, .. } => ErrorObject::new(code::URL_ELICITATION_REQUIRED, self.to_string())
                .with_data(json!({
                    "elicitations": [{
                        "mode": "url",
                        "elicitationId": format!("connect-{provider}"),
                        "url": url,
                        "message": self.to_string(),
                    }]
                })),
            _ => ErrorObject::new(code::SERVER_UNAVAILABLE, self.to_string()),
        }
    }
}

/// The earlier of two optional times.
pub(super) fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What injecting a manifest's credentials gave an instance's spec.
#[derive(Default)]
pub(super) struct Injected {
    /// When the first environment-injected token should be renewed: the
    /// pool is replaced then.
    pub(super) replace_at: Option<Instant>,
    /// File-injected tokens, to keep fresh while the pool lives.
    pub(super) files: Option<TokenFiles>,
}

/// Adds `user`'s tokens for every credential `manifest` declares to `spec`.
pub(super) async fn inject(
    manifest: &Manifest,
    user: Option<&str>,
    broker: Option<&Broker>,
    spec: &mut SandboxSpec,
) -> Result<Injected, CredentialError> {
    let connector = &manifest.server.name;
    let mut renew: Option<i64> = None;
    let mut files: Option<TokenFiles> = None;
    for c in &manifest.hosting.credentials {
        let provider = c.provider.clone();
        let broker = broker.ok_or_else(|| CredentialError::NoBroker { connector: connector.clone() })?;
        let user =
            user.ok_or_else(|| CredentialError::NoUser { connector: connector.clone(), provider: provider.clone() })?;
        let fresh = match broker.token(user, &provider).await {
            Ok(f) => f,
            Err(e @ (BrokerError::NotConnected { .. } | BrokerError::Reconsent { .. })) => {
                return Err(CredentialError::Connect {
                    url: broker.connect_url(&provider),
                    reason: e.to_string(),
                    provider,
                });
            }
            Err(e) => return Err(CredentialError::Broker(e)),
        };
        match &c.inject {
            Injection::Env(var) => {
                spec.env.push((var.clone(), fresh.access.to_string()));
                renew = earliest(renew, fresh.renew_ms);
            }
            Injection::File(path) => files
                .get_or_insert_with(TokenFiles::new)
                .add(spec, &provider, std::path::Path::new(path), &fresh.access, fresh.renew_ms)
                .map_err(|source| CredentialError::File { connector: connector.clone(), provider, source })?,
        }
    }
    let replace_at = renew.map(|ms| {
        let now_ms = berth_oauth::now_ms();
        Instant::now() + Duration::from_millis(ms.saturating_sub(now_ms).max(0) as u64)
    });
    Ok(Injected { replace_at, files })
}
