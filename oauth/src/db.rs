//! This crate's tables (secrets, clients, refresh tokens, the broker's
//! providers and accounts, personal access tokens) in the catalog's database, with a migration
//! history of their own.

use sqlx::AnyPool;
use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

fn migrator() -> Migrator {
    let migration = |version, description: &'static str, sql: &'static str| {
        Migration::new(version, description.into(), MigrationType::Simple, sql.into_sql_str(), false)
    };
    let mut m = Migrator::with_migrations(vec![
        migration(1, "secrets", include_str!("../migrations/0001_secrets.sql")),
        migration(2, "clients and refresh tokens", include_str!("../migrations/0002_grants.sql")),
        migration(3, "credential broker", include_str!("../migrations/0003_broker.sql")),
        migration(4, "personal access tokens", include_str!("../migrations/0004_pats.sql")),
        migration(5, "sign-outs", include_str!("../migrations/0005_sign_outs.sql")),
    ]);
    // The catalog and the runtime migrate the same database with their own histories.
    m.dangerous_set_table_name("_berth_oauth_migrations");
    m
}

/// Brings this crate's tables in `pool` (the catalog's database, which the
/// binary connects to) up to date.
pub async fn migrate(pool: &AnyPool) -> Result<(), sqlx::Error> {
    migrator().run(pool).await.map_err(|e| sqlx::Error::Migrate(Box::new(e)))
}

/// A database of this crate's tables alone, for its tests.
#[cfg(test)]
pub(crate) async fn open(url: &str) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let url = if url.starts_with("sqlite:") && !url.contains('?') { format!("{url}?mode=rwc") } else { url.to_owned() };
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(4).connect(&url).await?;
    migrate(&pool).await?;
    Ok(pool)
}
