//! Per-user and per-group tool policies: an admin narrows what one user, or
//! every member of a group (subject `group:NAME`), may see and call on a
//! connector, on top of the connector's manifest policy (a tool must pass
//! every policy that applies). Kept in the runtime's tables, loaded once per
//! connector.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_catalog::manifest::ToolPolicy as PolicyDoc;
use parking_lot::RwLock;
use sqlx::{AnyPool, Row};

use crate::policy::ToolPolicy;

/// The policy subject of a group.
pub fn group_subject(group: &str) -> String {
    format!("group:{group}")
}

/// Every connector with a policy, by subject (a user or `group:NAME`).
pub async fn subjects(db: &AnyPool) -> Result<BTreeMap<String, Vec<String>>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT user_id, connector FROM berth_policies ORDER BY user_id, connector").fetch_all(db).await?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        out.entry(r.try_get("user_id")?).or_default().push(r.try_get("connector")?);
    }
    Ok(out)
}

/// The user and group policies of one connector.
#[derive(Debug)]
pub struct UserPolicies {
    connector: String,
    db: Option<AnyPool>,
    by_user: RwLock<BTreeMap<String, (PolicyDoc, Arc<ToolPolicy>)>>,
}

impl UserPolicies {
    /// The policies stored for `connector` (none without a database).
    pub async fn load(connector: &str, db: Option<AnyPool>) -> Result<Arc<Self>, sqlx::Error> {
        let mut by_user = BTreeMap::new();
        if let Some(db) = &db {
            let rows = sqlx::query("SELECT user_id, policy FROM berth_policies WHERE connector = $1")
                .bind(connector)
                .fetch_all(db)
                .await?;
            for r in rows {
                let doc: String = r.try_get("policy")?;
                if let Ok(doc) = serde_json::from_str::<PolicyDoc>(&doc) {
                    let compiled = Arc::new(ToolPolicy::from_manifest(&doc));
                    by_user.insert(r.try_get("user_id")?, (doc, compiled));
                }
            }
        }
        Ok(Arc::new(Self { connector: connector.to_owned(), db, by_user: RwLock::new(by_user) }))
    }

    /// `user`'s policy, if an admin set one.
    pub fn get(&self, user: &str) -> Option<Arc<ToolPolicy>> {
        self.by_user.read().get(user).map(|(_, p)| p.clone())
    }

    /// Every user's policy, by user.
    pub fn list(&self) -> BTreeMap<String, PolicyDoc> {
        self.by_user.read().iter().map(|(u, (d, _))| (u.clone(), d.clone())).collect()
    }

    /// Sets `user`'s policy; it applies from the next request.
    pub async fn set(&self, user: &str, doc: PolicyDoc) -> Result<(), sqlx::Error> {
        if let Some(db) = &self.db {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let mut tx = db.begin().await?;
            sqlx::query("DELETE FROM berth_policies WHERE connector = $1 AND user_id = $2")
                .bind(&self.connector)
                .bind(user)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO berth_policies (connector, user_id, policy, updated_ms) VALUES ($1, $2, $3, $4)")
                .bind(&self.connector)
                .bind(user)
                .bind(serde_json::to_string(&doc).unwrap_or_default())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        let compiled = Arc::new(ToolPolicy::from_manifest(&doc));
        self.by_user.write().insert(user.to_owned(), (doc, compiled));
        tracing::info!(connector = %self.connector, user, "tool policy set");
        Ok(())
    }

    /// Removes `user`'s policy; whether there was one.
    pub async fn remove(&self, user: &str) -> Result<bool, sqlx::Error> {
        if let Some(db) = &self.db {
            sqlx::query("DELETE FROM berth_policies WHERE connector = $1 AND user_id = $2")
                .bind(&self.connector)
                .bind(user)
                .execute(db)
                .await?;
        }
        Ok(self.by_user.write().remove(user).is_some())
    }
}
