//! Who is in which group. An admin adds and removes members; a sign-in
//! through the identity provider replaces that user's provider-given
//! memberships with the ones its groups claim lists now. Group tool
//! policies ([`crate::policies`], subject `group:NAME`) apply to members.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use sqlx::{AnyPool, Row};

/// Where a membership came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Set through the admin API.
    Admin,
    /// The identity provider's groups claim at the user's last sign-in.
    Oidc,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Admin => "admin",
            Source::Oidc => "oidc",
        }
    }
}

/// A group name berth accepts: 1 to 128 printable characters, no `/`.
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && !name.contains('/') && !name.chars().any(char::is_control)
}

/// Every membership, kept in memory and in the runtime's tables.
#[derive(Debug)]
pub struct Groups {
    db: Option<AnyPool>,
    /// (group, user, source).
    members: RwLock<BTreeSet<(String, String, Source)>>,
}

impl Groups {
    /// The memberships stored in `db` (none without a database).
    pub async fn load(db: Option<AnyPool>) -> Result<Arc<Self>, sqlx::Error> {
        let mut members = BTreeSet::new();
        if let Some(db) = &db {
            for r in sqlx::query("SELECT group_name, user_id, source FROM berth_group_members").fetch_all(db).await? {
                let source = if r.try_get::<String, _>("source")? == "oidc" { Source::Oidc } else { Source::Admin };
                members.insert((r.try_get("group_name")?, r.try_get("user_id")?, source));
            }
        }
        Ok(Arc::new(Self { db, members: RwLock::new(members) }))
    }

    /// The groups `user` is in, whatever the source.
    pub fn of(&self, user: &str) -> BTreeSet<String> {
        self.members.read().iter().filter(|(_, u, _)| u == user).map(|(g, _, _)| g.clone()).collect()
    }

    /// Every group: its members and where each membership came from.
    pub fn list(&self) -> BTreeMap<String, BTreeMap<String, Vec<Source>>> {
        let mut out: BTreeMap<String, BTreeMap<String, Vec<Source>>> = BTreeMap::new();
        for (g, u, s) in self.members.read().iter() {
            out.entry(g.clone()).or_default().entry(u.clone()).or_default().push(*s);
        }
        out
    }

    /// Adds `user` to `group` (an admin's doing).
    pub async fn add(&self, group: &str, user: &str) -> Result<(), sqlx::Error> {
        if let Some(db) = &self.db {
            sqlx::query("DELETE FROM berth_group_members WHERE group_name = $1 AND user_id = $2 AND source = 'admin'")
                .bind(group)
                .bind(user)
                .execute(db)
                .await?;
            insert(db, group, user, Source::Admin).await?;
        }
        self.members.write().insert((group.to_owned(), user.to_owned(), Source::Admin));
        tracing::info!(group, user, "group member added");
        Ok(())
    }

    /// Removes `user` from `group`, whoever added them (a provider-given
    /// membership returns at the user's next sign-in if the claim still
    /// lists it). Whether there was one.
    pub async fn remove(&self, group: &str, user: &str) -> Result<bool, sqlx::Error> {
        if let Some(db) = &self.db {
            sqlx::query("DELETE FROM berth_group_members WHERE group_name = $1 AND user_id = $2")
                .bind(group)
                .bind(user)
                .execute(db)
                .await?;
        }
        let mut members = self.members.write();
        let before = members.len();
        members.retain(|(g, u, _)| !(g == group && u == user));
        Ok(members.len() < before)
    }

    /// Takes `user` out of every group, whatever the source; how many
    /// memberships there were.
    pub async fn remove_user(&self, user: &str) -> Result<usize, sqlx::Error> {
        if let Some(db) = &self.db {
            sqlx::query("DELETE FROM berth_group_members WHERE user_id = $1").bind(user).execute(db).await?;
        }
        let mut members = self.members.write();
        let before = members.len();
        members.retain(|(_, u, _)| u != user);
        Ok(before - members.len())
    }

    /// Replaces `user`'s provider-given memberships with `groups` (names
    /// berth cannot use are skipped).
    pub async fn sync_from_provider(&self, user: &str, groups: &[String]) -> Result<(), sqlx::Error> {
        let groups: BTreeSet<&str> = groups.iter().map(String::as_str).filter(|g| valid_name(g)).collect();
        if let Some(db) = &self.db {
            let mut tx = db.begin().await?;
            sqlx::query("DELETE FROM berth_group_members WHERE user_id = $1 AND source = 'oidc'")
                .bind(user)
                .execute(&mut *tx)
                .await?;
            for g in &groups {
                sqlx::query(
                    "INSERT INTO berth_group_members (group_name, user_id, source, updated_ms) VALUES ($1, $2, $3, $4)",
                )
                .bind(*g)
                .bind(user)
                .bind(Source::Oidc.as_str())
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        let mut members = self.members.write();
        members.retain(|(_, u, s)| !(u == user && *s == Source::Oidc));
        members.extend(groups.iter().map(|g| (g.to_string(), user.to_owned(), Source::Oidc)));
        Ok(())
    }
}

async fn insert(db: &AnyPool, group: &str, user: &str, source: Source) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO berth_group_members (group_name, user_id, source, updated_ms) VALUES ($1, $2, $3, $4)")
        .bind(group)
        .bind(user)
        .bind(source.as_str())
        .bind(now_ms())
        .execute(db)
        .await?;
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn provider_memberships_are_replaced_admin_ones_kept() {
        let groups = Groups::load(None).await.expect("in memory");
        groups.add("ops", "alice").await.expect("add");
        groups.sync_from_provider("alice", &["eng".into(), "ops".into(), "bad/name".into()]).await.expect("sync");
        assert_eq!(groups.of("alice"), BTreeSet::from(["eng".to_owned(), "ops".to_owned()]));
        groups.sync_from_provider("alice", &["sales".into()]).await.expect("sync");
        assert_eq!(groups.of("alice"), BTreeSet::from(["ops".to_owned(), "sales".to_owned()]), "admin's ops stays");
        assert!(groups.remove("ops", "alice").await.expect("remove"));
        assert!(!groups.remove("ops", "alice").await.expect("again"));
        assert_eq!(groups.of("alice"), BTreeSet::from(["sales".to_owned()]));
        assert!(groups.of("bob").is_empty());
    }
}
