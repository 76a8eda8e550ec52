//! Settings an admin changes while berth runs (`PATCH /admin/v1/settings`),
//! kept in the runtime's tables so every replica and every restart agrees.
//! Everything else is set at start (flags, environment, `berth.toml`).
//!
//! A replica rereads the table every few seconds, so a change made through
//! another one arrives within [`REFRESH`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

/// How often the table is reread.
const REFRESH: Duration = Duration::from_secs(2);

/// The run-time settings as the admin API shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeValues {
    /// Audit records carry each call's arguments (secret-looking values
    /// redacted, long strings cut). Off by default: arguments may hold
    /// personal data.
    pub audit_arguments: bool,
}

/// A change to some run-time settings; absent ones stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimePatch {
    /// See [`RuntimeValues::audit_arguments`].
    pub audit_arguments: Option<bool>,
}

/// The live run-time settings.
pub struct RuntimeSettings {
    db: Option<AnyPool>,
    audit_arguments: Arc<AtomicBool>,
}

impl RuntimeSettings {
    /// Reads the stored settings into the switches they drive, and keeps
    /// rereading them while the returned value lives.
    pub async fn load(db: Option<AnyPool>, audit_arguments: Arc<AtomicBool>) -> Result<Arc<Self>, sqlx::Error> {
        let settings = Arc::new(Self { db, audit_arguments });
        settings.reload().await?;
        crate::tick::every(&settings, REFRESH, "rereading the run-time settings", |s| async move { s.reload().await });
        Ok(settings)
    }

    /// The settings now.
    pub fn values(&self) -> RuntimeValues {
        RuntimeValues { audit_arguments: self.audit_arguments.load(Ordering::Relaxed) }
    }

    /// Applies and stores `patch`.
    pub async fn apply(&self, patch: &RuntimePatch) -> Result<RuntimeValues, sqlx::Error> {
        if let Some(on) = patch.audit_arguments {
            self.store("auditArguments", &serde_json::Value::Bool(on)).await?;
            self.audit_arguments.store(on, Ordering::Relaxed);
            tracing::info!(audit_arguments = on, "setting changed");
        }
        Ok(self.values())
    }

    async fn store(&self, name: &str, value: &serde_json::Value) -> Result<(), sqlx::Error> {
        let Some(db) = &self.db else { return Ok(()) };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut tx = db.begin().await?;
        sqlx::query("DELETE FROM berth_settings WHERE name = $1").bind(name).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO berth_settings (name, value, updated_ms) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(value.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    async fn reload(&self) -> Result<(), sqlx::Error> {
        let Some(db) = &self.db else { return Ok(()) };
        for row in sqlx::query("SELECT name, value FROM berth_settings").fetch_all(db).await? {
            let (name, value): (String, String) = (row.try_get("name")?, row.try_get("value")?);
            let value: serde_json::Value = serde_json::from_str(&value).unwrap_or_default();
            if name == "auditArguments" {
                self.audit_arguments.store(value.as_bool().unwrap_or(false), Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
