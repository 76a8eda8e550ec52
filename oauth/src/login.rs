//! Users sign in to berth through an upstream OpenID Connect provider: an
//! authorization code flow with PKCE and a nonce, whose ID token names the
//! user and their groups.
//!
//! The ID token comes straight from the provider's token endpoint over a
//! connection berth opened and authenticated with its client secret, so its
//! issuer, audience, expiry and nonce are checked but its signature is not
//! (OpenID Connect Core §3.1.3.7 allows this for the code flow).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use parking_lot::Mutex;
use serde::Deserialize;
use url::Url;
use zeroize::Zeroizing;

use crate::upstream::{ProviderConfig, Upstream, UpstreamError};

/// How long a user has to finish signing in at the provider.
const PENDING_TTL: Duration = Duration::from_secs(600);

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// berth's user id: the provider's `sub`.
    pub user: String,
    /// The `email` claim, for display.
    pub email: Option<String>,
    /// The groups claim, for group policies.
    pub groups: Vec<String>,
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown, used or expired `state`.
    #[error("this sign-in has expired or was already completed; start again")]
    UnknownState,
    /// The provider refused or failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The ID token is missing or does not check out.
    #[error("the identity provider's ID token was refused: {0}")]
    IdToken(&'static str),
}

struct Pending {
    verifier: Zeroizing<String>,
    nonce: String,
    next: String,
    expires: Instant,
}

/// Sign-in through one OIDC provider.
pub struct OidcLogin {
    upstream: Upstream,
    client_id: String,
    groups_claim: String,
    pending: Mutex<HashMap<String, Pending>>,
}

#[derive(Deserialize)]
struct IdClaims {
    iss: String,
    sub: String,
    aud: serde_json::Value,
    exp: u64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(flatten)]
    rest: HashMap<String, serde_json::Value>,
}

impl OidcLogin {
    /// Sign-in through `config` (which must name its `issuer`), calling back
    /// to `redirect`; groups are read from the claim `groups_claim`.
    pub async fn new(config: ProviderConfig, redirect: &str, groups_claim: &str) -> Result<Self, UpstreamError> {
        if config.issuer.is_none() {
            return Err(UpstreamError::Config("sign-in needs the provider's issuer".into()));
        }
        let mut config = config;
        if config.scopes.is_empty() {
            config.scopes = vec!["openid".into(), "email".into(), "profile".into()];
        }
        let client_id = config.client_id.clone();
        let upstream = Upstream::resolve(config, redirect).await?;
        Ok(Self { upstream, client_id, groups_claim: groups_claim.to_owned(), pending: Mutex::default() })
    }

    /// The provider's issuer.
    pub fn issuer(&self) -> &str {
        self.upstream.issuer.as_deref().unwrap_or_default()
    }

    /// Starts a sign-in that returns the browser to `next` (a path on berth).
    pub fn begin(&self, next: &str) -> Url {
        let nonce = B64.encode(rand::random::<[u8; 16]>());
        let auth = self.upstream.authorize(&[], &[("nonce", &nonce)]);
        let now = Instant::now();
        let mut pending = self.pending.lock();
        pending.retain(|_, p| p.expires > now);
        pending.insert(
            auth.state,
            Pending { verifier: auth.verifier, nonce, next: next.to_owned(), expires: now + PENDING_TTL },
        );
        auth.url
    }

    /// Completes a sign-in from the callback's `state` and `code`: who
    /// signed in, and where the browser goes next.
    pub async fn finish(&self, state: &str, code: &str) -> Result<(Identity, String), LoginError> {
        let p = self.pending.lock().remove(state).filter(|p| p.expires > Instant::now());
        let p = p.ok_or(LoginError::UnknownState)?;
        let tokens = self.upstream.exchange(code, &p.verifier).await?;
        let id_token = tokens.id_token.ok_or(LoginError::IdToken("no id_token in the token response"))?;
        let payload = id_token.split('.').nth(1).ok_or(LoginError::IdToken("not a JWT"))?;
        let bytes = B64.decode(payload.trim_end_matches('=')).map_err(|_| LoginError::IdToken("not a JWT"))?;
        let claims: IdClaims = serde_json::from_slice(&bytes).map_err(|_| LoginError::IdToken("unreadable claims"))?;
        if claims.iss != self.issuer() {
            return Err(LoginError::IdToken("issued by another provider"));
        }
        let audience_ok = match &claims.aud {
            serde_json::Value::String(a) => a == &self.client_id,
            serde_json::Value::Array(all) => all.iter().any(|a| a.as_str() == Some(&self.client_id)),
            _ => false,
        };
        if !audience_ok {
            return Err(LoginError::IdToken("issued to another client"));
        }
        if claims.exp <= crate::token::now() {
            return Err(LoginError::IdToken("expired"));
        }
        if claims.nonce.as_deref() != Some(p.nonce.as_str()) {
            return Err(LoginError::IdToken("nonce mismatch"));
        }
        let groups = match claims.rest.get(&self.groups_claim) {
            Some(serde_json::Value::Array(v)) => v.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect(),
            Some(serde_json::Value::String(g)) => vec![g.clone()],
            _ => Vec::new(),
        };
        Ok((Identity { user: claims.sub, email: claims.email, groups }, p.next))
    }
}
