//! The runtime's own tables (audit trail, tool pins, policies, groups,
//! bundles, settings), in the catalog's
//! database with a migration history of their own.

use sqlx::AnyPool;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

fn migrator() -> Migrator {
    let migration = |version, description: &'static str, sql: &'static str| {
        Migration::new(version, description.into(), MigrationType::Simple, sql.into_sql_str(), false)
    };
    let mut m = Migrator::with_migrations(vec![
        migration(1, "audit", include_str!("../migrations/0001_audit.sql")),
        migration(2, "tool pins", include_str!("../migrations/0002_tool_pins.sql")),
        migration(3, "user policies", include_str!("../migrations/0003_policies.sql")),
        migration(4, "groups", include_str!("../migrations/0004_groups.sql")),
        migration(5, "bundles", include_str!("../migrations/0005_bundles.sql")),
        migration(6, "audit detail and settings", include_str!("../migrations/0006_audit_detail.sql")),
    ]);
    m.dangerous_set_table_name("_berth_runtime_migrations");
    m
}

/// Brings the runtime's tables in `pool` (the catalog's, see
/// `berth_catalog::store::connect`) up to date.
pub async fn migrate(pool: &AnyPool) -> Result<(), sqlx::Error> {
    migrator().run(pool).await.map_err(|e| sqlx::Error::Migrate(Box::new(e)))
}
