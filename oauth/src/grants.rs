//! Authorization codes and refresh tokens: single-use, short-lived, stored
//! only as hashes. A code or refresh token presented twice is treated as
//! stolen: the whole family of tokens it started is revoked.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

/// What an authorization code (and every token from it) stands for.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The user who consented.
    pub user: String,
    /// The client it was for.
    pub client_id: String,
    /// The resource (audience) the tokens are bound to.
    pub resource: String,
    /// Granted scopes.
    pub scope: String,
}

struct Code {
    grant: Grant,
    redirect_uri: String,
    challenge: String,
    expires: Instant,
    family: String,
}

struct Refresh {
    grant: Grant,
    family: String,
    used: bool,
    /// Wall-clock, in ms since the epoch: it outlives this process.
    expires_ms: i64,
}

/// Why a code or refresh token was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Unknown or expired.
    #[error("unknown or expired")]
    Unknown,
    /// Presented a second time: its family is now revoked.
    #[error("already used; every token issued from it is now revoked")]
    Replayed,
    /// Issued to another client or redirect URI.
    #[error("issued to another client or redirect_uri")]
    Mismatch,
    /// The PKCE verifier does not match the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Pkce,
    /// The token could not be stored, so it is not issued.
    #[error("the token could not be stored; try again")]
    Storage,
}

/// The live codes and refresh tokens. Refresh tokens are written through
/// to the database when there is one, so a restart does not log every
/// client out, and rotated against it (see [`Grants::rotate`]), so replicas
/// sharing it agree; codes live a minute and stay in memory.
#[derive(Default)]
pub struct Grants {
    inner: Mutex<State>,
    db: Option<AnyPool>,
}

/// A change to the stored refresh tokens, applied after the lock is released.
enum Write {
    Insert { hash: String, family: String, grant: Grant, expires_ms: i64 },
    Spend { hash: String },
    Revoke { family: String },
}

#[derive(Default)]
struct State {
    codes: HashMap<String, Code>,
    /// Hashes of redeemed codes, kept until they would have expired, so a
    /// replay is recognised and its family revoked.
    redeemed: HashMap<String, (String, Instant)>,
    refresh: HashMap<String, Refresh>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn expiry_ms(ttl: Duration) -> i64 {
    now_ms().saturating_add(ttl.as_millis() as i64)
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn secret() -> String {
    B64.encode(rand::random::<[u8; 32]>())
}

/// Whether `verifier` answers `challenge` (S256 only).
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let valid = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    valid && B64.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

impl Grants {
    /// A new single-use code.
    pub(crate) fn code(&self, grant: Grant, redirect_uri: &str, challenge: &str, ttl: Duration) -> String {
        let code = secret();
        let family = hex::encode(rand::random::<[u8; 16]>());
        let mut s = self.inner.lock();
        let now = Instant::now();
        s.codes.retain(|_, c| c.expires > now);
        s.redeemed.retain(|_, (_, exp)| *exp > now);
        s.codes.insert(
            hash(&code),
            Code { grant, redirect_uri: redirect_uri.into(), challenge: challenge.into(), expires: now + ttl, family },
        );
        code
    }

    /// Loads the unexpired refresh tokens stored in `db` and keeps writing there.
    pub(crate) async fn load(&mut self, db: AnyPool) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM berth_oauth_refresh WHERE expires_ms <= $1").bind(now_ms()).execute(&db).await?;
        let rows = sqlx::query(
            "SELECT token_hash, family, client_id, user_id, resource, scope, used, expires_ms FROM berth_oauth_refresh",
        )
        .fetch_all(&db)
        .await?;
        let mut s = self.inner.lock();
        for r in rows {
            let grant = Grant {
                user: r.try_get("user_id")?,
                client_id: r.try_get("client_id")?,
                resource: r.try_get("resource")?,
                scope: r.try_get("scope")?,
            };
            let refresh = Refresh {
                grant,
                family: r.try_get("family")?,
                used: r.try_get::<i64, _>("used")? != 0,
                expires_ms: r.try_get("expires_ms")?,
            };
            s.refresh.insert(r.try_get("token_hash")?, refresh);
        }
        drop(s);
        self.db = Some(db);
        Ok(())
    }

    /// Redeems a code; returns its grant and a refresh token in its family.
    pub(crate) async fn redeem(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
        refresh_ttl: Duration,
    ) -> Result<(Grant, String), GrantError> {
        let (result, writes) = self.redeem_locked(code, client_id, redirect_uri, verifier, refresh_ttl);
        self.store(writes).await?;
        result
    }

    fn redeem_locked(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
        refresh_ttl: Duration,
    ) -> (Result<(Grant, String), GrantError>, Vec<Write>) {
        let h = hash(code);
        let mut s = self.inner.lock();
        let Some(c) = s.codes.remove(&h) else {
            if let Some((family, _)) = s.redeemed.get(&h).cloned() {
                tracing::warn!(family, "authorization code replayed; its tokens are revoked");
                return (Err(GrantError::Replayed), vec![revoke(&mut s, family)]);
            }
            return (Err(GrantError::Unknown), vec![]);
        };
        s.redeemed.insert(h, (c.family.clone(), c.expires));
        if c.expires <= Instant::now() {
            return (Err(GrantError::Unknown), vec![]);
        }
        if c.grant.client_id != client_id || c.redirect_uri != redirect_uri {
            return (Err(GrantError::Mismatch), vec![]);
        }
        if !pkce_matches(verifier, &c.challenge) {
            return (Err(GrantError::Pkce), vec![]);
        }
        let (refresh, write) = issue(&mut s, c.grant.clone(), c.family, refresh_ttl);
        (Ok((c.grant, refresh)), vec![write])
    }

    /// Rotates a refresh token: the old one is spent, a new one returned.
    /// Presenting a spent one revokes its family (RFC 9700 §4.14).
    pub(crate) async fn rotate(
        &self,
        token: &str,
        client_id: &str,
        refresh_ttl: Duration,
    ) -> Result<(Grant, String), GrantError> {
        if let Some(db) = &self.db {
            return self.rotate_stored(db, token, client_id, refresh_ttl).await;
        }
        let (result, writes) = self.rotate_locked(token, client_id, refresh_ttl);
        self.store(writes).await?;
        result
    }

    /// [`Grants::rotate`] with the database as the judge, so that replicas
    /// sharing it agree: a token made on another replica is honoured here,
    /// and of two replicas presented the same token only the one whose
    /// conditional update spends it wins; the other sees a replay.
    async fn rotate_stored(
        &self,
        db: &AnyPool,
        token: &str,
        client_id: &str,
        refresh_ttl: Duration,
    ) -> Result<(Grant, String), GrantError> {
        let storage = |e: sqlx::Error| {
            tracing::error!(error = %e, "refresh token store");
            GrantError::Storage
        };
        let h = hash(token);
        let row = sqlx::query(
            "SELECT family, client_id, user_id, resource, scope, used, expires_ms \
             FROM berth_oauth_refresh WHERE token_hash = $1",
        )
        .bind(&h)
        .fetch_optional(db)
        .await
        .map_err(storage)?
        .ok_or(GrantError::Unknown)?;
        let get = |c: &str| row.try_get::<String, _>(c).map_err(storage);
        let family = get("family")?;
        let grant = Grant {
            client_id: get("client_id")?,
            user: get("user_id")?,
            resource: get("resource")?,
            scope: get("scope")?,
        };
        let used = row.try_get::<i64, _>("used").map_err(storage)? != 0;
        // The same order of checks as without a database.
        if !used && row.try_get::<i64, _>("expires_ms").map_err(storage)? <= now_ms() {
            return Err(GrantError::Unknown);
        }
        if !used && grant.client_id != client_id {
            return Err(GrantError::Mismatch);
        }
        let spent = !used
            && sqlx::query("UPDATE berth_oauth_refresh SET used = 1 WHERE token_hash = $1 AND used = 0")
                .bind(&h)
                .execute(db)
                .await
                .map_err(storage)?
                .rows_affected()
                == 1;
        if !spent {
            tracing::warn!(family, "refresh token reused; its family is revoked");
            let write = revoke(&mut self.inner.lock(), family);
            self.store(vec![write]).await?;
            return Err(GrantError::Replayed);
        }
        if let Some(r) = self.inner.lock().refresh.get_mut(&h) {
            r.used = true;
        }
        let (next, write) = issue(&mut self.inner.lock(), grant.clone(), family, refresh_ttl);
        self.store(vec![write]).await?;
        Ok((grant, next))
    }

    fn rotate_locked(
        &self,
        token: &str,
        client_id: &str,
        refresh_ttl: Duration,
    ) -> (Result<(Grant, String), GrantError>, Vec<Write>) {
        let mut s = self.inner.lock();
        let h = hash(token);
        let (grant, family) = match s.refresh.get_mut(&h) {
            None => return (Err(GrantError::Unknown), vec![]),
            Some(r) if r.used => {
                let family = r.family.clone();
                tracing::warn!(family, "refresh token reused; its family is revoked");
                return (Err(GrantError::Replayed), vec![revoke(&mut s, family)]);
            }
            Some(r) if r.expires_ms <= now_ms() => return (Err(GrantError::Unknown), vec![]),
            Some(r) if r.grant.client_id != client_id => return (Err(GrantError::Mismatch), vec![]),
            Some(r) => {
                r.used = true;
                (r.grant.clone(), r.family.clone())
            }
        };
        let (next, write) = issue(&mut s, grant.clone(), family, refresh_ttl);
        (Ok((grant, next)), vec![Write::Spend { hash: h }, write])
    }

    /// Revokes every refresh token of `user`; how many sign-ins (token
    /// families) that ended.
    pub(crate) async fn revoke_user(&self, user: &str) -> Result<usize, GrantError> {
        let writes: Vec<Write> = {
            let mut s = self.inner.lock();
            let families: std::collections::BTreeSet<String> =
                s.refresh.values().filter(|r| r.grant.user == user).map(|r| r.family.clone()).collect();
            families.into_iter().map(|f| revoke(&mut s, f)).collect()
        };
        let ended = writes.len();
        self.store(writes).await?;
        Ok(ended)
    }

    /// Users holding a live refresh token.
    pub(crate) fn users(&self) -> std::collections::BTreeSet<String> {
        let now = now_ms();
        self.inner
            .lock()
            .refresh
            .values()
            .filter(|r| !r.used && r.expires_ms > now)
            .map(|r| r.grant.user.clone())
            .collect()
    }

    /// Applies `writes` to the database, if there is one. A failure refuses
    /// the request: a token that was not stored must not be handed out.
    async fn store(&self, writes: Vec<Write>) -> Result<(), GrantError> {
        let Some(db) = &self.db else { return Ok(()) };
        for w in writes {
            let q = match w {
                Write::Insert { hash, family, grant, expires_ms } => sqlx::query(
                    "INSERT INTO berth_oauth_refresh \
                     (token_hash, family, client_id, user_id, resource, scope, used, expires_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
                )
                .bind(hash)
                .bind(family)
                .bind(grant.client_id)
                .bind(grant.user)
                .bind(grant.resource)
                .bind(grant.scope)
                .bind(expires_ms),
                Write::Spend { hash } => {
                    sqlx::query("UPDATE berth_oauth_refresh SET used = 1 WHERE token_hash = $1").bind(hash)
                }
                Write::Revoke { family } => {
                    sqlx::query("DELETE FROM berth_oauth_refresh WHERE family = $1").bind(family)
                }
            };
            q.execute(db).await.map_err(|e| {
                tracing::error!(error = %e, "refresh token store");
                GrantError::Storage
            })?;
        }
        Ok(())
    }
}

/// A new refresh token in `family`.
fn issue(s: &mut State, grant: Grant, family: String, ttl: Duration) -> (String, Write) {
    let token = secret();
    let h = hash(&token);
    let expires_ms = expiry_ms(ttl);
    s.refresh.insert(h.clone(), Refresh { grant: grant.clone(), family: family.clone(), used: false, expires_ms });
    (token, Write::Insert { hash: h, family, grant, expires_ms })
}

fn revoke(s: &mut State, family: String) -> Write {
    s.refresh.retain(|_, r| r.family != family);
    Write::Revoke { family }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant { user: "alice".into(), client_id: "c".into(), resource: "r".into(), scope: String::new() }
    }

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn pkce_s256_matches_the_rfc_example() {
        assert!(pkce_matches(VERIFIER, CHALLENGE));
        assert!(!pkce_matches("short", CHALLENGE));
        assert!(!pkce_matches(&VERIFIER.replace('d', "e"), CHALLENGE));
    }

    #[tokio::test]
    async fn a_replayed_code_revokes_what_it_issued() {
        let g = Grants::default();
        let ttl = Duration::from_secs(60);
        let code = g.code(grant(), "https://a/cb", CHALLENGE, ttl);
        assert_eq!(g.redeem(&code, "c", "https://a/cb", VERIFIER, ttl).await.err(), None);
        let code2 = g.code(grant(), "https://a/cb", CHALLENGE, ttl);
        let (_, refresh) = g.redeem(&code2, "c", "https://a/cb", VERIFIER, ttl).await.unwrap();
        assert_eq!(g.redeem(&code2, "c", "https://a/cb", VERIFIER, ttl).await.err(), Some(GrantError::Replayed));
        assert_eq!(g.rotate(&refresh, "c", ttl).await.err(), Some(GrantError::Unknown), "the family is gone");
    }

    #[tokio::test]
    async fn a_code_is_bound_to_its_client_redirect_and_verifier() {
        let g = Grants::default();
        let ttl = Duration::from_secs(60);
        let code = g.code(grant(), "https://a/cb", CHALLENGE, ttl);
        assert_eq!(g.redeem(&code, "other", "https://a/cb", VERIFIER, ttl).await.err(), Some(GrantError::Mismatch));
        let code = g.code(grant(), "https://a/cb", CHALLENGE, ttl);
        assert_eq!(g.redeem(&code, "c", "https://a/cb2", VERIFIER, ttl).await.err(), Some(GrantError::Mismatch));
        let code = g.code(grant(), "https://a/cb", CHALLENGE, ttl);
        let wrong = "x".repeat(43);
        assert_eq!(g.redeem(&code, "c", "https://a/cb", &wrong, ttl).await.err(), Some(GrantError::Pkce));
    }

    #[tokio::test]
    async fn a_reused_refresh_token_revokes_its_family() {
        let g = Grants::default();
        let ttl = Duration::from_secs(60);
        let code = g.code(grant(), "https://a/cb", CHALLENGE, ttl);
        let (_, r1) = g.redeem(&code, "c", "https://a/cb", VERIFIER, ttl).await.unwrap();
        let (_, r2) = g.rotate(&r1, "c", ttl).await.unwrap();
        assert_eq!(g.rotate(&r1, "c", ttl).await.err(), Some(GrantError::Replayed));
        assert_eq!(
            g.rotate(&r2, "c", ttl).await.err(),
            Some(GrantError::Unknown),
            "the thief's and the user's tokens both die"
        );
    }

    async fn stored(url: &str) -> Grants {
        let mut g = Grants::default();
        g.load(crate::db::open(url).await.unwrap()).await.unwrap();
        g
    }

    #[tokio::test]
    async fn refresh_tokens_and_their_revocation_outlive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("berth.db").display());
        let ttl = Duration::from_secs(60);
        let g = stored(&url).await;
        let code = g.code(grant(), "https://a/cb", CHALLENGE, ttl);
        let (_, r1) = g.redeem(&code, "c", "https://a/cb", VERIFIER, ttl).await.unwrap();
        let (_, r2) = g.rotate(&r1, "c", ttl).await.unwrap();
        drop(g);

        let g = stored(&url).await;
        let (granted, r3) = g.rotate(&r2, "c", ttl).await.unwrap();
        assert_eq!(granted.user, "alice");
        assert_eq!(g.rotate(&r1, "c", ttl).await.err(), Some(GrantError::Replayed), "r1 was spent before the restart");
        drop(g);

        let g = stored(&url).await;
        assert_eq!(g.rotate(&r3, "c", ttl).await.err(), Some(GrantError::Unknown), "the revocation was stored");
    }

    #[tokio::test]
    async fn expired_refresh_tokens_are_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("berth.db").display());
        let g = stored(&url).await;
        let code = g.code(grant(), "https://a/cb", CHALLENGE, Duration::from_secs(60));
        let (_, r1) = g.redeem(&code, "c", "https://a/cb", VERIFIER, Duration::from_millis(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let g = stored(&url).await;
        assert_eq!(g.rotate(&r1, "c", Duration::from_secs(60)).await.err(), Some(GrantError::Unknown));
    }

    #[tokio::test]
    async fn replicas_sharing_a_database_honour_and_spend_each_others_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("berth.db").display());
        let ttl = Duration::from_secs(60);
        let (a, b) = (stored(&url).await, stored(&url).await);
        let code = a.code(grant(), "https://a/cb", CHALLENGE, ttl);
        let (_, r1) = a.redeem(&code, "c", "https://a/cb", VERIFIER, ttl).await.unwrap();
        // Made on a, rotated on b (which never saw it in memory).
        let (granted, r2) = b.rotate(&r1, "c", ttl).await.unwrap();
        assert_eq!(granted.user, "alice");
        // a still remembers r1 as unspent; the database says otherwise.
        assert_eq!(a.rotate(&r1, "c", ttl).await.err(), Some(GrantError::Replayed));
        assert_eq!(b.rotate(&r2, "c", ttl).await.err(), Some(GrantError::Unknown), "the family is revoked for both");
        // Only one of two replicas racing to spend the same token wins.
        let code = a.code(grant(), "https://a/cb", CHALLENGE, ttl);
        let (_, r) = a.redeem(&code, "c", "https://a/cb", VERIFIER, ttl).await.unwrap();
        let (x, y) = tokio::join!(a.rotate(&r, "c", ttl), b.rotate(&r, "c", ttl));
        assert_eq!([x.is_ok(), y.is_ok()].iter().filter(|ok| **ok).count(), 1, "{x:?} {y:?}");
        // A mismatched client spends nothing.
        let code = a.code(grant(), "https://a/cb", CHALLENGE, ttl);
        let (_, r) = a.redeem(&code, "c", "https://a/cb", VERIFIER, ttl).await.unwrap();
        assert_eq!(b.rotate(&r, "other", ttl).await.err(), Some(GrantError::Mismatch));
        assert!(b.rotate(&r, "c", ttl).await.is_ok());
    }
}
