//! Bundle definitions, in the runtime's tables.
//!
//! Reads go through a short-lived cache, so a bundle's requests do not each
//! ask the database while a change made on another replica still arrives
//! within [`FRESH`]. Without a database the definitions live in memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use sqlx::{AnyPool, Row};

use super::Bundle;

/// How long a definition read from the database is trusted.
const FRESH: Duration = Duration::from_secs(2);

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum BundleStoreError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A stored definition no longer reads (written by a newer berth?).
    #[error("stored bundle {name} does not read: {source}")]
    Corrupt {
        /// The bundle.
        name: String,
        /// Why.
        source: serde_json::Error,
    },
}

/// A definition as last read (`None`: there was none), and when.
type Read = (Instant, Option<Arc<Bundle>>);

/// Every bundle.
pub struct Bundles {
    db: Option<AnyPool>,
    /// By name.
    cache: RwLock<HashMap<String, Read>>,
}

impl Bundles {
    /// Bundles kept in `db` (in memory without one).
    pub fn new(db: Option<AnyPool>) -> Self {
        Self { db, cache: RwLock::default() }
    }

    /// The bundle called `name`, if there is one.
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Bundle>>, BundleStoreError> {
        if let Some((at, b)) = self.cache.read().get(name)
            && (self.db.is_none() || at.elapsed() < FRESH)
        {
            return Ok(b.clone());
        }
        let Some(db) = &self.db else { return Ok(None) };
        let row =
            sqlx::query("SELECT definition FROM berth_bundles WHERE name = $1").bind(name).fetch_optional(db).await?;
        let bundle = match row {
            Some(r) => Some(Arc::new(parse(name, &r.try_get::<String, _>("definition")?)?)),
            None => None,
        };
        self.cache.write().insert(name.to_owned(), (Instant::now(), bundle.clone()));
        Ok(bundle)
    }

    /// Every bundle, by name.
    pub async fn list(&self) -> Result<Vec<Bundle>, BundleStoreError> {
        let Some(db) = &self.db else {
            let mut all: Vec<Bundle> = self.cache.read().values().filter_map(|(_, b)| b.as_deref().cloned()).collect();
            all.sort_by(|a, b| a.name.cmp(&b.name));
            return Ok(all);
        };
        let rows = sqlx::query("SELECT name, definition FROM berth_bundles ORDER BY name").fetch_all(db).await?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get("name")?;
                parse(&name, &r.try_get::<String, _>("definition")?)
            })
            .collect()
    }

    /// Creates or replaces a (valid) bundle; true when it is new.
    pub async fn put(&self, bundle: &Bundle) -> Result<bool, BundleStoreError> {
        let existed = self.get(&bundle.name).await?.is_some();
        if let Some(db) = &self.db {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let mut tx = db.begin().await?;
            sqlx::query("DELETE FROM berth_bundles WHERE name = $1").bind(&bundle.name).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO berth_bundles (name, definition, updated_ms) VALUES ($1, $2, $3)")
                .bind(&bundle.name)
                .bind(serde_json::to_string(bundle).unwrap_or_default())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        self.cache.write().insert(bundle.name.clone(), (Instant::now(), Some(Arc::new(bundle.clone()))));
        tracing::info!(bundle = %bundle.name, members = bundle.members.len(), "bundle set");
        Ok(!existed)
    }

    /// Removes a bundle; whether there was one.
    pub async fn delete(&self, name: &str) -> Result<bool, BundleStoreError> {
        let existed = self.get(name).await?.is_some();
        if let Some(db) = &self.db {
            sqlx::query("DELETE FROM berth_bundles WHERE name = $1").bind(name).execute(db).await?;
        }
        self.cache.write().insert(name.to_owned(), (Instant::now(), None));
        Ok(existed)
    }
}

fn parse(name: &str, text: &str) -> Result<Bundle, BundleStoreError> {
    serde_json::from_str(text).map_err(|source| BundleStoreError::Corrupt { name: name.to_owned(), source })
}
