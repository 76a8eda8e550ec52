//! Registered OAuth clients (RFC 7591 dynamic registration). Every client
//! is public (PKCE, no secret): MCP clients run on users' machines.

use std::collections::HashMap;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};
use url::Url;

use crate::error::OAuthError;

/// What a client sends to register.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClientMetadata {
    /// Where authorization responses may go; matched exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Shown on the consent page.
    #[serde(default)]
    pub client_name: Option<String>,
    /// Must be within `authorization_code` and `refresh_token`.
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    /// Must be `code`.
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    /// Scopes the client may ask for.
    #[serde(default)]
    pub scope: Option<String>,
    /// Ignored: every client is public.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
}

/// A registered client, as returned to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Client {
    /// The id it uses from now on.
    pub client_id: String,
    /// When it was registered.
    pub client_id_issued_at: u64,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Its name, as shown to users.
    pub client_name: String,
    /// Always `authorization_code` and `refresh_token`.
    pub grant_types: Vec<String>,
    /// Always `code`.
    pub response_types: Vec<String>,
    /// Always `none`: public clients prove possession with PKCE.
    pub token_endpoint_auth_method: String,
}

/// The registered clients: in memory, written through to the database
/// when there is one, so registrations survive a restart.
#[derive(Default)]
pub struct Clients {
    by_id: RwLock<HashMap<String, Client>>,
    /// Most clients kept; registration is open to anyone.
    limit: usize,
    db: Option<AnyPool>,
}

impl Clients {
    pub(crate) fn new(limit: usize) -> Self {
        Self { by_id: RwLock::default(), limit, db: None }
    }

    /// Loads the clients stored in `db` and keeps writing there.
    pub(crate) async fn load(&mut self, db: AnyPool) -> Result<(), sqlx::Error> {
        self.db = Some(db);
        self.reload().await
    }

    /// Adds the stored clients this replica does not know yet (registered
    /// through another replica). Registrations are never changed, so adding
    /// is all a reread needs to do.
    pub(crate) async fn reload(&self) -> Result<(), sqlx::Error> {
        let Some(db) = &self.db else { return Ok(()) };
        let rows = sqlx::query("SELECT client FROM berth_oauth_clients").fetch_all(db).await?;
        let mut map = self.by_id.write();
        for r in rows {
            if let Ok(c) = serde_json::from_str::<Client>(&r.try_get::<String, _>("client")?) {
                map.entry(c.client_id.clone()).or_insert(c);
            }
        }
        Ok(())
    }

    /// Registers a client after checking its metadata.
    pub async fn register(&self, meta: ClientMetadata) -> Result<Client, OAuthError> {
        let bad = |d: String| OAuthError::new("invalid_client_metadata", d);
        if meta.redirect_uris.is_empty() {
            return Err(OAuthError::new("invalid_redirect_uri", "at least one redirect_uri is required"));
        }
        for uri in &meta.redirect_uris {
            check_redirect_uri(uri).map_err(|d| OAuthError::new("invalid_redirect_uri", d))?;
        }
        if let Some(g) = &meta.grant_types
            && let Some(other) = g.iter().find(|g| !["authorization_code", "refresh_token"].contains(&g.as_str()))
        {
            return Err(bad(format!("grant type {other} is not supported")));
        }
        if let Some(r) = &meta.response_types
            && r.iter().any(|r| r != "code")
        {
            return Err(bad("only the \"code\" response type is supported".into()));
        }
        let name = meta.client_name.unwrap_or_else(|| "an unnamed client".into());
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(bad("client_name must be at most 100 printable characters".into()));
        }
        let client = Client {
            client_id: format!("berth-client-{}", hex::encode(rand::random::<[u8; 16]>())),
            client_id_issued_at: crate::token::now(),
            redirect_uris: meta.redirect_uris,
            client_name: name,
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            response_types: vec!["code".into()],
            token_endpoint_auth_method: "none".into(),
        };
        if self.by_id.read().len() >= self.limit {
            return Err(OAuthError::new("temporarily_unavailable", "too many registered clients"));
        }
        if let Some(db) = &self.db {
            let stored = serde_json::to_string(&client).unwrap_or_default();
            sqlx::query("INSERT INTO berth_oauth_clients (client_id, client, issued_ms) VALUES ($1, $2, $3)")
                .bind(&client.client_id)
                .bind(stored)
                .bind(client.client_id_issued_at as i64 * 1000)
                .execute(db)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "client registration not stored");
                    OAuthError::new("temporarily_unavailable", "registration could not be stored")
                })?;
        }
        self.by_id.write().insert(client.client_id.clone(), client.clone());
        tracing::info!(client_id = %client.client_id, name = %client.client_name, "client registered");
        Ok(client)
    }

    /// The client with this id.
    pub fn get(&self, id: &str) -> Option<Client> {
        self.by_id.read().get(id).cloned()
    }
}

/// A redirect URI berth will send codes to: `https`, `http` on a loopback
/// host only (RFC 8252), or a private-use scheme of a native app
/// (`com.example.app:/cb`); never a fragment, credentials or a scheme a
/// browser would execute.
pub(crate) fn check_redirect_uri(uri: &str) -> Result<(), String> {
    let url = Url::parse(uri).map_err(|e| format!("redirect_uri {uri:?} is not a URL: {e}"))?;
    if url.fragment().is_some() {
        return Err(format!("redirect_uri {uri:?} must not have a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("redirect_uri {uri:?} must not carry credentials"));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost")) => Ok(()),
        "http" => Err(format!("redirect_uri {uri:?}: plain http is allowed only on a loopback host")),
        s if s.contains('.') && !s.starts_with('.') => Ok(()),
        s => Err(format!("redirect_uri {uri:?}: the scheme {s:?} is not allowed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_redirect_uris_are_refused() {
        for ok in
            ["https://app.example/cb", "http://127.0.0.1:33418/callback", "http://localhost/cb", "com.example.app:/cb"]
        {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "http://evil.example/cb",
            "https://app.example/cb#frag",
            "https://user:pw@app.example/cb",
            "not a url",
            "http://127.0.0.1.evil.example/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
