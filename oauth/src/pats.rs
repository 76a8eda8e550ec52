//! Personal access tokens: for scripts and CLIs that cannot run a browser
//! flow. Each belongs to one user, names the connectors it may call (or all),
//! may carry the admin role, expires, and can be revoked. Only a SHA-256 of
//! the token is stored; the token itself is shown once, at creation.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

use crate::upstream::now_ms;

/// Every personal access token starts with this, so scanners (and berth's
/// own bearer check) recognise one.
pub const PREFIX: &str = "berth_pat_";

/// A token as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatInfo {
    /// Its id, for listing and revoking.
    pub id: String,
    /// Whose it is.
    pub user: String,
    /// What it is for, as its owner named it.
    pub name: String,
    /// Connectors it may call; empty means every connector.
    pub connectors: Vec<String>,
    /// Whether it may use the admin API.
    pub admin: bool,
    /// The group its owner was admin through when they minted it themselves;
    /// the admin API refuses it once they are no longer in that group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_via: Option<String>,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Expires, ms since the epoch.
    pub expires_ms: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatError {
    /// Unknown or revoked.
    #[error("unknown or revoked personal access token")]
    Unknown,
    /// Past its expiry.
    #[error("the personal access token has expired")]
    Expired,
    /// Not good for this connector or for the admin API.
    #[error("the personal access token is not scoped for this")]
    OutOfScope,
}

/// What a token is asked to do.
#[derive(Debug, Clone, Copy)]
pub enum PatUse<'a> {
    /// Call this connector.
    Connector(&'a str),
    /// Use the admin API.
    Admin,
}

/// The live tokens, by hash; written through to the database and reread
/// from it (see [`Pats::reload`]).
#[derive(Default)]
pub struct Pats {
    by_hash: RwLock<HashMap<String, PatInfo>>,
    db: Option<AnyPool>,
    /// Bumped by every local write, so a reload that raced one is dropped
    /// rather than bringing back what the write just changed.
    writes: AtomicU64,
}

/// Every stored token, by hash.
async fn stored(db: &AnyPool) -> Result<HashMap<String, PatInfo>, sqlx::Error> {
    let rows = sqlx::query("SELECT token_hash, info FROM berth_oauth_pats").fetch_all(db).await?;
    let mut all = HashMap::with_capacity(rows.len());
    for r in rows {
        if let Ok(info) = serde_json::from_str::<PatInfo>(&r.try_get::<String, _>("info")?) {
            all.insert(r.try_get("token_hash")?, info);
        }
    }
    Ok(all)
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Pats {
    /// Loads the unrevoked tokens stored in `db` and keeps writing there.
    pub async fn load(&mut self, db: AnyPool) -> Result<(), sqlx::Error> {
        *self.by_hash.write() = stored(&db).await?;
        self.db = Some(db);
        Ok(())
    }

    /// Rereads the stored tokens, so that one another replica created
    /// works here and one it revoked stops working here.
    pub async fn reload(&self) -> Result<(), sqlx::Error> {
        let Some(db) = &self.db else { return Ok(()) };
        let before = self.writes.load(Ordering::Acquire);
        let all = stored(db).await?;
        // Every local write bumps the counter before and after it, so one
        // that overlapped this read in any part is seen here.
        let mut map = self.by_hash.write();
        if self.writes.load(Ordering::Acquire) == before {
            *map = all;
        }
        Ok(())
    }

    /// Creates a token; returns it (shown once) and what it allows.
    pub async fn create(
        &self,
        user: &str,
        name: &str,
        connectors: Vec<String>,
        admin: bool,
        admin_via: Option<&str>,
        ttl: Duration,
    ) -> Result<(String, PatInfo), sqlx::Error> {
        self.writes.fetch_add(1, Ordering::AcqRel);
        let token = format!("{PREFIX}{}", B64.encode(rand::random::<[u8; 32]>()));
        let now = now_ms();
        let info = PatInfo {
            id: hex::encode(rand::random::<[u8; 8]>()),
            user: user.to_owned(),
            name: name.to_owned(),
            connectors,
            admin,
            admin_via: admin_via.filter(|_| admin).map(str::to_owned),
            created_ms: now,
            expires_ms: now.saturating_add(ttl.as_millis() as i64),
        };
        let h = hash(&token);
        if let Some(db) = &self.db {
            sqlx::query("INSERT INTO berth_oauth_pats (token_hash, id, user_id, info) VALUES ($1, $2, $3, $4)")
                .bind(&h)
                .bind(&info.id)
                .bind(user)
                .bind(serde_json::to_string(&info).unwrap_or_default())
                .execute(db)
                .await?;
        }
        self.by_hash.write().insert(h, info.clone());
        self.writes.fetch_add(1, Ordering::AcqRel);
        tracing::info!(user, id = %info.id, name, admin, "personal access token created");
        Ok((token, info))
    }

    /// Revokes a token by id (only `user`'s, when given); whether one was.
    pub async fn revoke(&self, id: &str, user: Option<&str>) -> Result<bool, sqlx::Error> {
        let found = self
            .by_hash
            .read()
            .iter()
            .find(|(_, i)| i.id == id && user.is_none_or(|u| u == i.user))
            .map(|(h, _)| h.clone());
        let Some(h) = found else { return Ok(false) };
        self.writes.fetch_add(1, Ordering::AcqRel);
        if let Some(db) = &self.db {
            sqlx::query("DELETE FROM berth_oauth_pats WHERE token_hash = $1").bind(&h).execute(db).await?;
        }
        self.by_hash.write().remove(&h);
        self.writes.fetch_add(1, Ordering::AcqRel);
        tracing::info!(id, "personal access token revoked");
        Ok(true)
    }

    /// Revokes every token of `user`; how many there were.
    pub async fn revoke_user(&self, user: &str) -> Result<usize, sqlx::Error> {
        self.writes.fetch_add(1, Ordering::AcqRel);
        if let Some(db) = &self.db {
            sqlx::query("DELETE FROM berth_oauth_pats WHERE user_id = $1").bind(user).execute(db).await?;
        }
        let mut all = self.by_hash.write();
        let before = all.len();
        all.retain(|_, i| i.user != user);
        self.writes.fetch_add(1, Ordering::AcqRel);
        let revoked = before - all.len();
        tracing::info!(user, revoked, "personal access tokens revoked");
        Ok(revoked)
    }

    /// The tokens (of `user`, when given), newest first.
    pub fn list(&self, user: Option<&str>) -> Vec<PatInfo> {
        let mut out: Vec<PatInfo> =
            self.by_hash.read().values().filter(|i| user.is_none_or(|u| u == i.user)).cloned().collect();
        out.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// Checks a presented token for one use.
    pub fn verify(&self, token: &str, purpose: PatUse<'_>) -> Result<PatInfo, PatError> {
        let info = self.by_hash.read().get(&hash(token)).cloned().ok_or(PatError::Unknown)?;
        if info.expires_ms <= now_ms() {
            return Err(PatError::Expired);
        }
        let allowed = match purpose {
            PatUse::Admin => info.admin,
            PatUse::Connector(c) => info.connectors.is_empty() || info.connectors.iter().any(|n| n == c),
        };
        if !allowed {
            return Err(PatError::OutOfScope);
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_is_scoped_expiring_revocable_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("berth.db").display());
        let mut pats = Pats::default();
        pats.load(crate::db::open(&url).await.unwrap()).await.unwrap();
        let day = Duration::from_secs(86_400);
        let (token, info) = pats.create("alice", "ci", vec!["a/one".into()], false, None, day).await.unwrap();
        assert!(token.starts_with(PREFIX));
        assert_eq!(pats.verify(&token, PatUse::Connector("a/one")).unwrap().user, "alice");
        assert_eq!(pats.verify(&token, PatUse::Connector("a/two")), Err(PatError::OutOfScope));
        assert_eq!(pats.verify(&token, PatUse::Admin), Err(PatError::OutOfScope));
        assert_eq!(pats.verify(&format!("{token}x"), PatUse::Connector("a/one")), Err(PatError::Unknown));
        let (short, _) = pats.create("alice", "short", vec![], false, None, Duration::ZERO).await.unwrap();
        assert_eq!(pats.verify(&short, PatUse::Connector("a/one")), Err(PatError::Expired));

        let mut again = Pats::default();
        again.load(crate::db::open(&url).await.unwrap()).await.unwrap();
        assert_eq!(again.verify(&token, PatUse::Connector("a/one")).unwrap().id, info.id);
        assert!(!again.revoke(&info.id, Some("bob")).await.unwrap(), "only its owner or an admin revokes it");
        assert!(again.revoke(&info.id, Some("alice")).await.unwrap());
        assert_eq!(again.verify(&token, PatUse::Connector("a/one")), Err(PatError::Unknown));
        let mut third = Pats::default();
        third.load(crate::db::open(&url).await.unwrap()).await.unwrap();
        assert_eq!(third.verify(&token, PatUse::Connector("a/one")), Err(PatError::Unknown), "revocation stored");
    }
}
