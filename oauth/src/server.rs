//! berth as an OAuth 2.1 authorization server for its own MCP URLs:
//! dynamic registration, authorization code with PKCE (S256), consent,
//! audience-bound access tokens and rotating refresh tokens.
//!
//! HTTP is the caller's business: this type takes parsed parameters and
//! returns what to answer, so every rule here is testable without a server.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};
use url::Url;

use crate::clients::{Client, Clients};
use crate::documents::{Documents, DocumentsConfig, is_document_url};
use crate::error::OAuthError;
use crate::grants::{Grant, GrantError, Grants};
use crate::keys::Keyring;
use crate::pats::Pats;
use crate::token::{self, AccessClaims, TokenError};
use crate::users::Users;

/// How long a browser stays signed in to berth.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Lifetimes and the issuer.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// This server's public base URL (`https://berth.example`); tokens name it
    /// as `iss`, and resources are `{issuer}/mcp/…`.
    pub issuer: String,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
    /// Authorization code lifetime.
    pub code_ttl: Duration,
    /// How long a consent page stays valid.
    pub consent_ttl: Duration,
}

impl AuthConfig {
    /// Defaults for `issuer`: 10-minute access tokens, 30-day refresh tokens.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            access_ttl: Duration::from_secs(600),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            code_ttl: Duration::from_secs(60),
            consent_ttl: Duration::from_secs(600),
        }
    }
}

/// The query of `GET /authorize`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeParams {
    /// Must be `code`.
    pub response_type: Option<String>,
    /// A registered client.
    pub client_id: Option<String>,
    /// One of the client's redirect URIs, exactly.
    pub redirect_uri: Option<String>,
    /// The client's CSRF value, echoed back; required and single-use.
    pub state: Option<String>,
    /// PKCE challenge.
    pub code_challenge: Option<String>,
    /// Must be `S256`.
    pub code_challenge_method: Option<String>,
    /// Requested scopes.
    pub scope: Option<String>,
    /// The MCP URL the token is for (RFC 8707).
    pub resource: Option<String>,
}

/// Why an authorization request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show this, redirect nowhere.
    Show(String),
    /// Tell the client, at this URL (its redirect URI with `error`).
    Redirect(String),
}

/// What the consent page shows, and what its form must send back.
#[derive(Debug, Clone, Serialize)]
pub struct Consent {
    /// Identifies this pending request.
    pub id: String,
    /// Anti-CSRF value: in the form and in a cookie.
    pub csrf: String,
    /// The client's registered name.
    pub client_name: String,
    /// Where the answer goes.
    pub redirect_uri: String,
    /// What is asked for.
    pub scope: String,
    /// The MCP URL access is asked for.
    pub resource: String,
}

struct Pending {
    consent: Consent,
    client_id: String,
    state: String,
    challenge: String,
    expires: Instant,
}

/// A token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The next refresh token.
    pub refresh_token: String,
    /// Granted scopes.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

/// The authorization server.
pub struct AuthorizationServer {
    config: AuthConfig,
    keys: Keyring,
    /// Registered clients.
    pub clients: Clients,
    /// Local accounts.
    pub users: Users,
    /// Personal access tokens.
    pub pats: Pats,
    grants: Grants,
    pending: Mutex<HashMap<String, Pending>>,
    /// `(client, state)` pairs already seen, so a state is single-use.
    states: Mutex<HashMap<(String, String), Instant>>,
    /// Users signed out everywhere, and when (ms since the epoch): tokens
    /// and sessions issued to them before then are refused.
    sign_outs: parking_lot::RwLock<HashMap<String, i64>>,
    db: Option<AnyPool>,
    /// Clients known by their metadata document, when accepted.
    documents: Option<Documents>,
}

impl AuthorizationServer {
    /// A server signing with `keys`.
    pub fn new(config: AuthConfig, keys: Keyring) -> Self {
        Self {
            config,
            keys,
            clients: Clients::new(10_000),
            users: Users::default(),
            pats: Pats::default(),
            grants: Grants::default(),
            pending: Mutex::default(),
            states: Mutex::default(),
            sign_outs: Default::default(),
            db: None,
            documents: None,
        }
    }

    /// Keeps registered clients, refresh tokens and personal access tokens in `db` (see
    /// [`crate::db::open`]), loading what an earlier run stored, so a restart
    /// logs no client out.
    pub async fn persist(&mut self, db: AnyPool) -> Result<(), sqlx::Error> {
        self.clients.load(db.clone()).await?;
        self.pats.load(db.clone()).await?;
        self.grants.load(db.clone()).await?;
        *self.sign_outs.write() = stored_sign_outs(&db).await?;
        self.db = Some(db);
        Ok(())
    }

    /// Rereads what other replicas may have changed in the shared database:
    /// clients registered, personal access tokens created or revoked, users
    /// signed out (a sign-out only ever moves later, so merging keeps the
    /// latest). Run every few seconds by a multi-replica deployment; a no-op
    /// without a database.
    pub async fn resync(&self) -> Result<(), sqlx::Error> {
        let Some(db) = &self.db else { return Ok(()) };
        self.clients.reload().await?;
        self.pats.reload().await?;
        let stored = stored_sign_outs(db).await?;
        let mut sign_outs = self.sign_outs.write();
        for (user, before) in stored {
            let at = sign_outs.entry(user).or_insert(before);
            *at = (*at).max(before);
        }
        Ok(())
    }

    /// Accepts clients identified by the URL of their metadata document.
    pub fn accept_client_documents(&mut self, config: DocumentsConfig) {
        self.documents = Some(Documents::new(config));
    }

    /// Fetches the metadata document an authorization request's client
    /// names, when it names one, so that [`Self::begin`] knows the client.
    pub async fn load_client(&self, client_id: Option<&str>) -> Result<(), AuthorizeError> {
        let (Some(docs), Some(id)) = (&self.documents, client_id.filter(|id| is_document_url(id))) else {
            return Ok(());
        };
        docs.client(id)
            .await
            .map(drop)
            .map_err(|e| AuthorizeError::Show(format!("the client's metadata document at {id} cannot be used: {e}")))
    }

    /// A registered client, or one known by its metadata document.
    fn client(&self, id: &str) -> Option<Client> {
        self.clients.get(id).or_else(|| self.documents.as_ref()?.known(id))
    }

    /// Signs `user` out everywhere: their refresh tokens are revoked, and
    /// access tokens and browser sessions issued until now are refused.
    /// Returns how many sign-ins (refresh token families) ended.
    pub async fn sign_out(&self, user: &str) -> Result<usize, OAuthError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        if let Some(db) = &self.db {
            let stored = async {
                let mut tx = db.begin().await?;
                sqlx::query("DELETE FROM berth_oauth_sign_outs WHERE user_id = $1")
                    .bind(user)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO berth_oauth_sign_outs (user_id, before_ms) VALUES ($1, $2)")
                    .bind(user)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            };
            stored.await.map_err(|e| {
                tracing::error!(error = %e, "storing a sign-out");
                OAuthError::new("temporarily_unavailable", "the sign-out could not be stored")
            })?;
        }
        self.sign_outs.write().insert(user.to_owned(), now);
        let ended = self.grants.revoke_user(user).await.map_err(grant_error)?;
        tracing::info!(user, ended, "signed out everywhere");
        Ok(ended)
    }

    /// Users holding a live sign-in (a refresh token).
    pub fn signed_in_users(&self) -> std::collections::BTreeSet<String> {
        self.grants.users()
    }

    /// Whether a token issued to `user` at `iat` (seconds) predates their
    /// sign-out everywhere.
    fn signed_out(&self, user: &str, iat: u64) -> bool {
        self.sign_outs.read().get(user).is_some_and(|&before| (iat as i64).saturating_mul(1000) <= before)
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Whether `resource` is one of this server's MCP URLs.
    pub fn protects(&self, resource: &str) -> bool {
        resource
            .strip_prefix(&self.config.issuer)
            .and_then(|p| p.strip_prefix("/mcp/"))
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(['#', '?']))
    }

    /// Authorization server metadata (RFC 8414), also served as OIDC discovery.
    pub fn metadata(&self) -> Value {
        let i = &self.config.issuer;
        json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/oauth/authorize"),
            "token_endpoint": format!("{i}/oauth/token"),
            "registration_endpoint": format!("{i}/oauth/register"),
            "jwks_uri": format!("{i}/oauth/jwks.json"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "authorization_response_iss_parameter_supported": true,
            "scopes_supported": ["mcp"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "client_id_metadata_document_supported": self.documents.is_some(),
        })
    }

    /// Protected resource metadata (RFC 9728) of one MCP URL.
    pub fn resource_metadata(&self, resource: &str) -> Value {
        json!({
            "resource": resource,
            "authorization_servers": [self.config.issuer],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["mcp"],
        })
    }

    /// The signing keys, public halves.
    pub fn jwks(&self) -> Value {
        self.keys.jwks()
    }

    /// Checks an authorization request; on success, the consent to show.
    pub fn begin(&self, p: &AuthorizeParams) -> Result<Consent, AuthorizeError> {
        let show = |m: &str| AuthorizeError::Show(m.to_owned());
        let client_id = p.client_id.as_deref().ok_or_else(|| show("client_id is missing"))?;
        let client = self.client(client_id).ok_or_else(|| show("unknown client_id"))?;
        let redirect = p.redirect_uri.as_deref().ok_or_else(|| show("redirect_uri is missing"))?;
        if !client.redirect_uris.iter().any(|r| r == redirect) {
            return Err(show("redirect_uri is not one the client registered (exact match required)"));
        }
        // From here on errors go back to the (verified) redirect URI.
        let state = p.state.clone().unwrap_or_default();
        let back = |error: &str, d: &str| {
            AuthorizeError::Redirect(self.redirect_with(
                redirect,
                &[("error", error), ("error_description", d)],
                &state,
            ))
        };
        if state.is_empty() {
            return Err(back("invalid_request", "state is required"));
        }
        if p.response_type.as_deref() != Some("code") {
            return Err(back("unsupported_response_type", "response_type must be code"));
        }
        if p.code_challenge_method.as_deref() != Some("S256") {
            return Err(back("invalid_request", "PKCE with code_challenge_method=S256 is required"));
        }
        let challenge = p
            .code_challenge
            .clone()
            .filter(|c| c.len() == 43)
            .ok_or_else(|| back("invalid_request", "code_challenge must be a base64url SHA-256"))?;
        let resource =
            p.resource.clone().ok_or_else(|| back("invalid_target", "resource (the MCP URL) is required"))?;
        if !self.protects(&resource) {
            return Err(back("invalid_target", "resource is not an MCP URL of this server"));
        }
        let scope = p.scope.clone().unwrap_or_default();
        if scope.split_whitespace().any(|s| s != "mcp") {
            return Err(back("invalid_scope", "the only scope is \"mcp\""));
        }
        let now = Instant::now();
        {
            let mut states = self.states.lock();
            states.retain(|_, exp| *exp > now);
            if states.insert((client_id.to_owned(), state.clone()), now + self.config.consent_ttl * 2).is_some() {
                return Err(back("invalid_request", "this state was already used"));
            }
        }
        let consent = Consent {
            id: hex::encode(rand::random::<[u8; 16]>()),
            csrf: hex::encode(rand::random::<[u8; 16]>()),
            client_name: client.client_name,
            redirect_uri: redirect.to_owned(),
            scope,
            resource,
        };
        let mut pending = self.pending.lock();
        pending.retain(|_, p| p.expires > now);
        pending.insert(
            consent.id.clone(),
            Pending {
                consent: consent.clone(),
                client_id: client_id.to_owned(),
                state,
                challenge,
                expires: now + self.config.consent_ttl,
            },
        );
        Ok(consent)
    }

    /// The user's answer to a consent page: `user` is who signed in (already
    /// authenticated by the caller), `approve` whether they agreed. Returns
    /// the URL to send the browser to. The pending request is spent either way.
    pub fn decide(&self, id: &str, csrf: &str, user: &str, approve: bool) -> Result<String, AuthorizeError> {
        let p = self.pending.lock().remove(id).filter(|p| p.expires > Instant::now());
        let Some(p) = p else {
            return Err(AuthorizeError::Show(
                "this consent page has expired or was already answered; start again".into(),
            ));
        };
        if p.consent.csrf.is_empty() || !constant_eq(p.consent.csrf.as_bytes(), csrf.as_bytes()) {
            return Err(AuthorizeError::Show("the consent form's anti-forgery check failed".into()));
        }
        let redirect = &p.consent.redirect_uri;
        if !approve {
            return Ok(self.redirect_with(redirect, &[("error", "access_denied")], &p.state));
        }
        let grant = Grant {
            user: user.to_owned(),
            client_id: p.client_id,
            resource: p.consent.resource,
            scope: p.consent.scope,
        };
        tracing::info!(user, client_id = %grant.client_id, resource = %grant.resource, "authorization granted");
        let code = self.grants.code(grant, redirect, &p.challenge, self.config.code_ttl);
        Ok(self.redirect_with(redirect, &[("code", &code)], &p.state))
    }

    /// `POST /token`, form fields already decoded.
    pub async fn token(&self, form: &HashMap<String, String>) -> Result<TokenResponse, OAuthError> {
        let field = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let client_id = field("client_id").ok_or_else(|| OAuthError::new("invalid_client", "client_id is required"))?;
        let by_document = match &self.documents {
            // A refresh after a restart: the document is fetched again.
            Some(docs) if is_document_url(client_id) && self.client(client_id).is_none() => {
                docs.client(client_id).await.is_ok()
            }
            _ => false,
        };
        if !by_document && self.client(client_id).is_none() {
            return Err(OAuthError::new("invalid_client", "unknown client_id"));
        }
        let (grant, refresh) = match field("grant_type") {
            Some("authorization_code") => {
                let code = field("code").ok_or_else(|| OAuthError::invalid_request("code is required"))?;
                let redirect =
                    field("redirect_uri").ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
                let verifier =
                    field("code_verifier").ok_or_else(|| OAuthError::invalid_request("code_verifier is required"))?;
                self.grants
                    .redeem(code, client_id, redirect, verifier, self.config.refresh_ttl)
                    .await
                    .map_err(grant_error)?
            }
            Some("refresh_token") => {
                let token =
                    field("refresh_token").ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
                self.grants.rotate(token, client_id, self.config.refresh_ttl).await.map_err(grant_error)?
            }
            Some(other) => return Err(OAuthError::new("unsupported_grant_type", format!("{other} is not supported"))),
            None => return Err(OAuthError::invalid_request("grant_type is required")),
        };
        if let Some(r) = field("resource")
            && r != grant.resource
        {
            return Err(OAuthError::new("invalid_target", "resource differs from the one authorized"));
        }
        let access = token::issue(
            &self.keys,
            &self.config.issuer,
            &grant.user,
            &grant.resource,
            &grant.client_id,
            &grant.scope,
            self.config.access_ttl,
        );
        Ok(TokenResponse {
            access_token: access,
            token_type: "Bearer",
            expires_in: self.config.access_ttl.as_secs(),
            refresh_token: refresh,
            scope: grant.scope,
        })
    }

    /// A browser session for `user` (a cookie value): a token whose audience
    /// is this server's session endpoint, so it is good for nothing else.
    pub fn session(&self, user: &str) -> String {
        token::issue(&self.keys, &self.config.issuer, user, &self.session_audience(), "berth", "", SESSION_TTL)
    }

    /// The user a session cookie value stands for, if it is valid.
    pub fn session_user(&self, cookie: &str) -> Option<String> {
        let claims = token::verify(&self.keys, cookie, &self.config.issuer, &self.session_audience()).ok()?;
        (!self.signed_out(&claims.sub, claims.iat)).then_some(claims.sub)
    }

    fn session_audience(&self) -> String {
        format!("{}/session", self.config.issuer)
    }

    /// Checks a bearer token presented to `resource`.
    pub fn verify(&self, token: &str, resource: &str) -> Result<AccessClaims, TokenError> {
        let claims = token::verify(&self.keys, token, &self.config.issuer, resource)?;
        if self.signed_out(&claims.sub, claims.iat) {
            return Err(TokenError::SignedOut);
        }
        Ok(claims)
    }

    fn redirect_with(&self, redirect: &str, params: &[(&str, &str)], state: &str) -> String {
        let Ok(mut url) = Url::parse(redirect) else { return redirect.to_owned() };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            if !state.is_empty() {
                q.append_pair("state", state);
            }
            q.append_pair("iss", &self.config.issuer);
        }
        url.into()
    }
}

fn grant_error(e: GrantError) -> OAuthError {
    match e {
        GrantError::Storage => OAuthError::new("temporarily_unavailable", e.to_string()),
        _ => OAuthError::invalid_grant(e.to_string()),
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Every stored sign-out: user → the moment (ms) before which their
/// sessions and tokens no longer count.
async fn stored_sign_outs(db: &AnyPool) -> Result<HashMap<String, i64>, sqlx::Error> {
    let rows = sqlx::query("SELECT user_id, before_ms FROM berth_oauth_sign_outs").fetch_all(db).await?;
    rows.iter().map(|r| Ok((r.try_get("user_id")?, r.try_get("before_ms")?))).collect()
}
