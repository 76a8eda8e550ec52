//! The credential broker: each user's grant at each upstream OAuth provider
//! (GitHub, Google, a company IdP), obtained once through `/connect`, kept
//! sealed, refreshed ahead of expiry, and handed out only for that user's
//! own instances.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sqlx::{AnyPool, Row};
use url::Url;
use zeroize::Zeroizing;

use crate::seal::{SealError, Sealer};
use crate::upstream::{ProviderConfig, Tokens, Upstream, UpstreamError, now_ms};

/// How long a user has to finish connecting an account.
const CONNECT_TTL: Duration = Duration::from_secs(600);
/// A token this close to expiry is refreshed before it is handed out.
const REFRESH_MARGIN_MS: i64 = 60_000;

/// Why the broker could not help.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No provider of that id.
    #[error("no OAuth provider named {0:?} is registered")]
    UnknownProvider(String),
    /// The user has not connected this provider yet.
    #[error("connect your {provider} account first")]
    NotConnected {
        /// The provider.
        provider: String,
    },
    /// The grant stopped working (revoked, or refresh refused).
    #[error("your {provider} account needs to be connected again ({reason})")]
    Reconsent {
        /// The provider.
        provider: String,
        /// What the provider said.
        reason: String,
    },
    /// The callback's state is unknown, used or expired.
    #[error("this connection attempt has expired or was already completed; start again")]
    UnknownState,
    /// The callback came back in another user's browser session.
    #[error("this connection was started by another user")]
    WrongUser,
    /// The provider itself.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The database.
    #[error("credential store: {0}")]
    Database(#[from] sqlx::Error),
    /// Sealing or opening.
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// A provider as listed: its configuration without the secret.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProviderInfo {
    /// Its id (`github`), as manifests name it.
    pub id: String,
    /// Its configuration; `client_secret` is never included.
    #[serde(flatten)]
    pub config: ProviderConfig,
    /// Whether a client secret is stored.
    pub has_client_secret: bool,
}

/// One user's standing at one provider, as their account page shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccountStatus {
    /// The provider's id.
    pub provider: String,
    /// `ok`, or why the user must connect again (a refused refresh).
    pub status: String,
    /// When the grant was last stored (ms since the epoch).
    pub updated_ms: i64,
}

/// A token ready for injection.
pub struct Fresh {
    /// The access token.
    pub access: Zeroizing<String>,
    /// From when (ms since the epoch) [`Broker::token`] would refresh it:
    /// an instance holding it should be replaced by then.
    pub renew_ms: Option<i64>,
}

struct Connecting {
    user: String,
    provider: String,
    verifier: Zeroizing<String>,
    expires: Instant,
}

/// The broker.
pub struct Broker {
    db: AnyPool,
    sealer: Arc<Sealer>,
    /// berth's `/connect/callback` URL, registered at every provider.
    callback: String,
    resolved: tokio::sync::Mutex<HashMap<String, Arc<Upstream>>>,
    connecting: Mutex<HashMap<String, Connecting>>,
    /// One refresh at a time per `(user, provider)`.
    refreshing: Mutex<HashMap<(String, String), Gate>>,
}

/// Held while one grant refreshes.
type Gate = Arc<tokio::sync::Mutex<()>>;

fn aad(user: &str, provider: &str) -> Vec<u8> {
    format!("account\0{user}\0{provider}").into_bytes()
}

impl Broker {
    /// A broker keeping its tables in `db` (see [`crate::db::open`]),
    /// sealing with `sealer`, with `callback` as the redirect URI it
    /// registers at providers.
    pub fn new(db: AnyPool, sealer: Arc<Sealer>, callback: impl Into<String>) -> Self {
        Self {
            db,
            sealer,
            callback: callback.into(),
            resolved: Default::default(),
            connecting: Mutex::default(),
            refreshing: Mutex::default(),
        }
    }

    /// The redirect URI to register at providers.
    pub fn callback(&self) -> &str {
        &self.callback
    }

    /// Where a user connects `provider`: the page beside the callback.
    pub fn connect_url(&self, provider: &str) -> String {
        let base = self.callback.trim_end_matches("/callback");
        format!("{base}/{}", url::form_urlencoded::byte_serialize(provider.as_bytes()).collect::<String>())
    }

    /// Registers or replaces a provider, after checking its endpoints
    /// resolve. Its client secret is sealed.
    pub async fn put_provider(&self, id: &str, mut config: ProviderConfig) -> Result<(), BrokerError> {
        let upstream = Upstream::resolve(config.clone(), &self.callback).await?;
        let secret = config.client_secret.take();
        let sealed = secret.map(|s| self.sealer.seal(s.as_bytes(), format!("provider\0{id}").as_bytes()));
        let stored = serde_json::to_string(&config).unwrap_or_default();
        let mut tx = self.db.begin().await?;
        sqlx::query("DELETE FROM berth_oauth_providers WHERE id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO berth_oauth_providers (id, config, sealed_secret, updated_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(stored)
        .bind(sealed)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.resolved.lock().await.insert(id.to_owned(), Arc::new(upstream));
        Ok(())
    }

    /// Removes a provider and every user's grant there.
    pub async fn delete_provider(&self, id: &str) -> Result<bool, BrokerError> {
        let done = sqlx::query("DELETE FROM berth_oauth_providers WHERE id = $1").bind(id).execute(&self.db).await?;
        sqlx::query("DELETE FROM berth_oauth_accounts WHERE provider = $1").bind(id).execute(&self.db).await?;
        self.resolved.lock().await.remove(id);
        Ok(done.rows_affected() > 0)
    }

    /// The registered providers, without secrets.
    pub async fn providers(&self) -> Result<Vec<ProviderInfo>, BrokerError> {
        let rows = sqlx::query("SELECT id, config, sealed_secret FROM berth_oauth_providers ORDER BY id")
            .fetch_all(&self.db)
            .await?;
        rows.iter()
            .map(|r| {
                let config: String = r.try_get("config")?;
                Ok(ProviderInfo {
                    id: r.try_get("id")?,
                    config: serde_json::from_str(&config).unwrap_or_default(),
                    has_client_secret: r.try_get::<Option<String>, _>("sealed_secret")?.is_some(),
                })
            })
            .collect()
    }

    /// Where `user` stands at each provider they have connected. Reads the
    /// status column only, so listing opens no sealed grant.
    pub async fn accounts(&self, user: &str) -> Result<Vec<AccountStatus>, BrokerError> {
        let rows = sqlx::query(
            "SELECT provider, status, updated_ms FROM berth_oauth_accounts WHERE user_id = $1 ORDER BY provider",
        )
        .bind(user)
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AccountStatus {
                    provider: r.try_get("provider")?,
                    status: r.try_get("status")?,
                    updated_ms: r.try_get("updated_ms")?,
                })
            })
            .collect()
    }

    /// Every user with a connected account, and the providers.
    pub async fn account_holders(&self) -> Result<BTreeMap<String, Vec<String>>, BrokerError> {
        let rows = sqlx::query("SELECT user_id, provider FROM berth_oauth_accounts ORDER BY user_id, provider")
            .fetch_all(&self.db)
            .await?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in rows {
            out.entry(r.try_get("user_id")?).or_default().push(r.try_get("provider")?);
        }
        Ok(out)
    }

    /// Deletes every connected account of `user`, grants and all; how many.
    pub async fn forget(&self, user: &str) -> Result<usize, BrokerError> {
        let done =
            sqlx::query("DELETE FROM berth_oauth_accounts WHERE user_id = $1").bind(user).execute(&self.db).await?;
        Ok(done.rows_affected() as usize)
    }

    /// The provider, endpoints resolved (once per process).
    async fn upstream(&self, id: &str) -> Result<Arc<Upstream>, BrokerError> {
        let mut resolved = self.resolved.lock().await;
        if let Some(u) = resolved.get(id) {
            return Ok(u.clone());
        }
        let row = sqlx::query("SELECT config, sealed_secret FROM berth_oauth_providers WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db)
            .await?
            .ok_or_else(|| BrokerError::UnknownProvider(id.to_owned()))?;
        let mut config: ProviderConfig = serde_json::from_str(&row.try_get::<String, _>("config")?).unwrap_or_default();
        if let Some(sealed) = row.try_get::<Option<String>, _>("sealed_secret")? {
            let plain = self.sealer.open(&sealed, format!("provider\0{id}").as_bytes())?;
            config.client_secret = Some(String::from_utf8_lossy(&plain).into_owned());
        }
        let upstream = Arc::new(Upstream::resolve(config, &self.callback).await?);
        resolved.insert(id.to_owned(), upstream.clone());
        Ok(upstream)
    }

    /// Starts connecting `user`'s account at `provider`: the URL to send
    /// their browser to. The state it carries is bound to `user` and single-use.
    pub async fn connect(&self, user: &str, provider: &str, scopes: &[String]) -> Result<Url, BrokerError> {
        let upstream = self.upstream(provider).await?;
        let auth = upstream.authorize(scopes, &[]);
        let now = Instant::now();
        let mut connecting = self.connecting.lock();
        connecting.retain(|_, c| c.expires > now);
        connecting.insert(
            auth.state,
            Connecting {
                user: user.to_owned(),
                provider: provider.to_owned(),
                verifier: auth.verifier,
                expires: now + CONNECT_TTL,
            },
        );
        Ok(auth.url)
    }

    /// Completes a connection from the callback, in `user`'s browser
    /// session: stores the grant; returns the provider.
    pub async fn complete(&self, user: &str, state: &str, code: &str) -> Result<String, BrokerError> {
        let c = self.connecting.lock().remove(state).filter(|c| c.expires > Instant::now());
        let c = c.ok_or(BrokerError::UnknownState)?;
        if c.user != user {
            return Err(BrokerError::WrongUser);
        }
        let tokens = self.upstream(&c.provider).await?.exchange(code, &c.verifier).await?;
        self.store(user, &c.provider, &tokens, "ok").await?;
        tracing::info!(user, provider = %c.provider, "upstream account connected");
        Ok(c.provider)
    }

    async fn store(&self, user: &str, provider: &str, tokens: &Tokens, status: &str) -> Result<(), BrokerError> {
        let plain = Zeroizing::new(serde_json::to_vec(tokens).unwrap_or_default());
        let sealed = self.sealer.seal(&plain, &aad(user, provider));
        let mut tx = self.db.begin().await?;
        sqlx::query("DELETE FROM berth_oauth_accounts WHERE user_id = $1 AND provider = $2")
            .bind(user)
            .bind(provider)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO berth_oauth_accounts (user_id, provider, sealed, status, updated_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user)
        .bind(provider)
        .bind(sealed)
        .bind(status)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load(&self, user: &str, provider: &str) -> Result<Option<(Tokens, String, i64)>, BrokerError> {
        let row = sqlx::query(
            "SELECT sealed, status, updated_ms FROM berth_oauth_accounts WHERE user_id = $1 AND provider = $2",
        )
        .bind(user)
        .bind(provider)
        .fetch_optional(&self.db)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let plain = self.sealer.open(&row.try_get::<String, _>("sealed")?, &aad(user, provider))?;
        let tokens: Tokens = serde_json::from_slice(&plain).map_err(|_| SealError::Open)?;
        Ok(Some((tokens, row.try_get("status")?, row.try_get("updated_ms")?)))
    }

    /// `user`'s current access token at `provider`, refreshed first when it
    /// is about to expire (one refresh at a time per grant). A grant whose
    /// refresh is refused is marked as needing the user to connect again.
    pub async fn token(&self, user: &str, provider: &str) -> Result<Fresh, BrokerError> {
        let gate = self.refreshing.lock().entry((user.to_owned(), provider.to_owned())).or_default().clone();
        let _one = gate.lock().await;
        let (tokens, status, obtained_ms) =
            self.load(user, provider).await?.ok_or_else(|| BrokerError::NotConnected { provider: provider.into() })?;
        if status != "ok" {
            return Err(BrokerError::Reconsent { provider: provider.into(), reason: status });
        }
        let renew_ms = renew_at(&tokens, obtained_ms);
        if renew_ms.is_none_or(|at| now_ms() < at) {
            return Ok(Fresh { access: Zeroizing::new(tokens.access.clone()), renew_ms });
        }
        let Some(refresh) = tokens.refresh.clone() else {
            self.store(user, provider, &tokens, "expired and no refresh token").await?;
            return Err(BrokerError::Reconsent { provider: provider.into(), reason: "no refresh token".into() });
        };
        match self.upstream(provider).await?.refresh(&refresh).await {
            Ok(fresh) => {
                self.store(user, provider, &fresh, "ok").await?;
                tracing::info!(user, provider, "upstream token refreshed");
                Ok(Fresh { access: Zeroizing::new(fresh.access.clone()), renew_ms: renew_at(&fresh, now_ms()) })
            }
            Err(UpstreamError::Token(reason)) => {
                tracing::warn!(user, provider, %reason, "upstream refresh refused; the user must connect again");
                self.store(user, provider, &tokens, &format!("refresh refused: {reason}")).await?;
                Err(BrokerError::Reconsent { provider: provider.into(), reason })
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// When a token is close enough to expiry to refresh: a minute before, or
/// a third of its lifetime before for short-lived ones (`None`: never expires).
fn renew_at(tokens: &Tokens, obtained_ms: i64) -> Option<i64> {
    let expires = tokens.expires_ms?;
    Some(expires - REFRESH_MARGIN_MS.min((expires - obtained_ms).max(0) / 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(expires_ms: Option<i64>) -> Tokens {
        Tokens { access: "a".into(), refresh: None, expires_ms, id_token: None }
    }

    #[tokio::test]
    async fn accounts_list_one_users_grants_and_their_status() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("berth.db").display());
        let db = crate::db::open(&url).await.unwrap();
        let sealer = Sealer::load_or_create(&dir.path().join("secret-keys")).unwrap();
        let broker = Broker::new(db, Arc::new(sealer), "http://127.0.0.1/connect/callback");
        assert!(broker.accounts("alice").await.unwrap().is_empty());
        broker.store("alice", "github", &tokens(None), "ok").await.unwrap();
        broker.store("alice", "acme", &tokens(None), "refresh refused: invalid_grant").await.unwrap();
        broker.store("bob", "github", &tokens(None), "ok").await.unwrap();
        let alice: Vec<_> =
            broker.accounts("alice").await.unwrap().into_iter().map(|a| (a.provider, a.status)).collect();
        assert_eq!(
            alice,
            [("acme".into(), "refresh refused: invalid_grant".into()), ("github".into(), "ok".into())],
            "alice's own grants only, by provider"
        );
        assert_eq!(broker.accounts("carol").await.unwrap(), []);
    }

    #[test]
    fn renews_a_minute_ahead_or_a_third_of_a_short_lifetime() {
        assert_eq!(renew_at(&tokens(None), 0), None);
        assert_eq!(renew_at(&tokens(Some(3_600_000)), 0), Some(3_540_000), "an hour's token a minute early");
        assert_eq!(renew_at(&tokens(Some(9_000)), 0), Some(6_000), "a 9 s token at 6 s");
        assert_eq!(renew_at(&tokens(Some(1_000)), 2_000), Some(1_000), "already past: now");
    }
}
