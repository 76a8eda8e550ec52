//! Static secrets (a connector's `isSecret` environment variables): set
//! through the admin API, sealed at rest, handed only to the sandbox that
//! runs the connector. No API returns a value; listings give names only.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AnyPool, Row};
use zeroize::Zeroizing;

use crate::seal::{SealError, Sealer};

/// Why the secret store failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The database.
    #[error("secret store database: {0}")]
    Database(#[from] sqlx::Error),
    /// Sealing or opening.
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// A secret's name and when it was set; never its value.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SecretInfo {
    /// The environment variable.
    pub name: String,
    /// The user it belongs to; `None` for the connector-wide value.
    pub user: Option<String>,
    /// Milliseconds since the epoch.
    pub updated_ms: i64,
}

/// The sealed secrets, in the catalog's database.
pub struct SecretStore {
    pool: AnyPool,
    sealer: Arc<Sealer>,
}

/// Binds a sealed value to its row.
fn aad(connector: &str, user: &str, name: &str) -> Vec<u8> {
    format!("{connector}\0{user}\0{name}").into_bytes()
}

impl SecretStore {
    /// The store in `pool` (see [`crate::db::open`]), sealing with `sealer`.
    pub fn new(pool: AnyPool, sealer: Arc<Sealer>) -> Self {
        Self { pool, sealer }
    }

    /// Sets a secret (connector-wide when `user` is `None`).
    pub async fn put(&self, connector: &str, user: Option<&str>, name: &str, value: &str) -> Result<(), SecretError> {
        let user = user.unwrap_or("");
        let sealed = self.sealer.seal(value.as_bytes(), &aad(connector, user, name));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM berth_secrets WHERE connector = $1 AND user_id = $2 AND name = $3")
            .bind(connector)
            .bind(user)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO berth_secrets (connector, user_id, name, sealed, updated_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(connector)
        .bind(user)
        .bind(name)
        .bind(sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a secret; whether there was one.
    pub async fn delete(&self, connector: &str, user: Option<&str>, name: &str) -> Result<bool, SecretError> {
        let done = sqlx::query("DELETE FROM berth_secrets WHERE connector = $1 AND user_id = $2 AND name = $3")
            .bind(connector)
            .bind(user.unwrap_or(""))
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The names of a connector's secrets.
    pub async fn list(&self, connector: &str) -> Result<Vec<SecretInfo>, SecretError> {
        let rows = sqlx::query(
            "SELECT user_id, name, updated_ms FROM berth_secrets WHERE connector = $1 ORDER BY user_id, name",
        )
        .bind(connector)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let user: String = r.try_get("user_id")?;
                Ok(SecretInfo {
                    name: r.try_get("name")?,
                    user: (!user.is_empty()).then_some(user),
                    updated_ms: r.try_get("updated_ms")?,
                })
            })
            .collect()
    }

    /// The values a launch for `user` (or a shared instance) gets: the
    /// user's own value where there is one, else the connector-wide one.
    pub async fn values(
        &self,
        connector: &str,
        user: Option<&str>,
    ) -> Result<Vec<(String, Zeroizing<String>)>, SecretError> {
        let rows = sqlx::query("SELECT user_id, name, sealed FROM berth_secrets WHERE connector = $1 AND (user_id = '' OR user_id = $2) ORDER BY user_id")
            .bind(connector)
            .bind(user.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<(String, Zeroizing<String>)> = Vec::new();
        // '' sorts first, so a user's own value replaces the shared one.
        for r in &rows {
            let (u, name, sealed): (String, String, String) =
                (r.try_get("user_id")?, r.try_get("name")?, r.try_get("sealed")?);
            let plain = self.sealer.open(&sealed, &aad(connector, &u, &name))?;
            let value = Zeroizing::new(String::from_utf8_lossy(&plain).into_owned());
            out.retain(|(n, _)| n != &name);
            out.push((name, value));
        }
        Ok(out)
    }
}
