//! The versioned store: published manifests, immutable once written.
//!
//! One schema and one query layer for SQLite (the embedded default) and
//! PostgreSQL (several berth replicas), through sqlx's `Any` driver and
//! portable SQL. Publishing is a single `INSERT`: a version either exists
//! completely or not at all, and the primary key refuses a second publish of
//! the same version even when two publishers race.

use std::cmp::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Row, SqlSafeStr};

use crate::Manifest;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// This version exists; published versions never change.
    #[error("{name} {version} is already published; published versions are immutable, publish a new version")]
    AlreadyPublished {
        /// Connector name.
        name: String,
        /// The version that exists.
        version: String,
    },
    /// No such connector or version.
    #[error("no connector {0}")]
    NotFound(String),
    /// The database refused or failed.
    #[error("catalog database: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("catalog migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored manifest no longer validates (written by a newer berth?).
    #[error("stored manifest of {name} {version} is unreadable: {reason}")]
    Corrupt {
        /// Connector name.
        name: String,
        /// Version.
        version: String,
        /// What failed.
        reason: String,
    },
}

/// Lifecycle of a published version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Served and listed.
    Active,
    /// Still served, but callers are told to move on; latest only if nothing is active.
    Deprecated,
    /// Withdrawn: not served, not latest; kept so the version can never be reused.
    Deleted,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deprecated => "deprecated",
            Self::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "deprecated" => Self::Deprecated,
            "deleted" => Self::Deleted,
            _ => Self::Active,
        }
    }
}

/// One published version, as stored.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The validated manifest.
    pub manifest: Manifest,
    /// Lifecycle status.
    pub status: Status,
    /// SHA-256 of the stored manifest JSON.
    pub sha256: String,
    /// When it was published.
    pub published_at: SystemTime,
    /// When its status last changed.
    pub updated_at: SystemTime,
    /// Whether it is what `latest` resolves to.
    pub is_latest: bool,
    seq: i64,
}

impl Entry {
    /// `namespace/name`.
    pub fn name(&self) -> &str {
        &self.manifest.server.name
    }

    /// The exact version.
    pub fn version(&self) -> &str {
        &self.manifest.server.version
    }
}

/// Which version of a connector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionRef {
    /// Whatever `latest` points at.
    Latest,
    /// This exact version.
    Exact(String),
}

impl VersionRef {
    /// `latest` or an exact version.
    pub fn parse(s: &str) -> Self {
        if s == "latest" { Self::Latest } else { Self::Exact(s.to_owned()) }
    }
}

/// A page of a listing.
#[derive(Debug)]
pub struct Page {
    /// The entries, ordered by name, then publish order.
    pub entries: Vec<Entry>,
    /// Pass back to get the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Page size (1–100; default 30).
    pub limit: Option<u32>,
    /// Case-insensitive substring of the name.
    pub search: Option<String>,
    /// Only each connector's latest version.
    pub latest_only: bool,
    /// Include deleted (yanked) versions.
    pub include_deleted: bool,
}

/// The catalog database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

/// The full row, then a static tail (sqlx accepts only static SQL text).
macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT name, version, seq, manifest, sha256, status, published_ms, updated_ms FROM connector_versions ",
            $tail
        )
    };
}

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "connector versions".into(),
        MigrationType::Simple,
        include_str!("../migrations/0001_versions.sql").into_sql_str(),
        false,
    )])
}

/// Connects to the database at `url` — `sqlite://PATH` (created if
/// needed) or `postgres://…` — as the one pool a berth process shares: the
/// catalog here, and the runtime's and the OAuth crate's tables, which each
/// migrate it with a history of their own.
pub async fn connect(url: &str) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let url = if sqlite && !url.contains('?') { format!("{url}?mode=rwc") } else { url.to_owned() };
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        // The busy timeout is a connection's own setting: every connection
        // gets it, so concurrent writers queue instead of failing.
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    if sqlite {
        // WAL (a property of the database file) lets readers continue
        // while a publish writes.
        sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
    }
    Ok(pool)
}

impl Store {
    /// Opens (creating if needed) the database at `url` (see [`connect`])
    /// and brings the catalog's schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::on(connect(url).await?).await
    }

    /// The catalog in a database already connected, its schema brought up
    /// to date.
    pub async fn on(pool: AnyPool) -> Result<Self, StoreError> {
        migrator().run(&pool).await?;
        Ok(Self { pool })
    }

    /// The database pool, for the other parts of berth that keep tables in it.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Publishes a new version. Refuses one that exists, whatever its status.
    pub async fn publish(&self, manifest: &Manifest) -> Result<Entry, StoreError> {
        let name = &manifest.server.name;
        let version = &manifest.server.version;
        let text = manifest.document().to_string();
        let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        let now = millis(SystemTime::now());
        // `seq` is the next in this connector's publish order; two racing
        // publishers of different versions can pick the same one, and the
        // UNIQUE constraint makes the loser retry.
        for _ in 0..10 {
            let res = sqlx::query(
                "INSERT INTO connector_versions (name, version, seq, manifest, sha256, status, published_ms, updated_ms)
                 SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, 'active', $5, $5
                 FROM connector_versions WHERE name = $1",
            )
            .bind(name)
            .bind(version)
            .bind(&text)
            .bind(&sha256)
            .bind(now)
            .execute(&self.pool)
            .await;
            match res {
                Ok(_) => return self.get(name, &VersionRef::Exact(version.clone())).await,
                Err(e) if is_unique_violation(&e) => {
                    if self.find(name, version).await?.is_some() {
                        return Err(StoreError::AlreadyPublished { name: name.clone(), version: version.clone() });
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Database(sqlx::Error::Protocol("publish kept colliding with concurrent publishes".into())))
    }

    /// One version (or `latest`) of a connector.
    pub async fn get(&self, name: &str, version: &VersionRef) -> Result<Entry, StoreError> {
        let versions = self.versions(name).await?;
        let found = match version {
            VersionRef::Latest => versions.into_iter().find(|e| e.is_latest),
            VersionRef::Exact(v) => versions.into_iter().find(|e| e.version() == v),
        };
        found.ok_or_else(|| {
            StoreError::NotFound(match version {
                VersionRef::Latest => format!("{name} (no version is active)"),
                VersionRef::Exact(v) => format!("{name} {v}"),
            })
        })
    }

    /// Every version of a connector in publish order, `latest` marked.
    pub async fn versions(&self, name: &str) -> Result<Vec<Entry>, StoreError> {
        let rows = sqlx::query(select!("WHERE name = $1 ORDER BY seq")).bind(name).fetch_all(&self.pool).await?;
        let mut entries = rows.iter().map(entry).collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            return Err(StoreError::NotFound(name.to_owned()));
        }
        mark_latest(&mut entries);
        Ok(entries)
    }

    /// Sets a version's status (deprecate, yank, restore).
    pub async fn set_status(&self, name: &str, version: &str, status: Status) -> Result<Entry, StoreError> {
        let done =
            sqlx::query("UPDATE connector_versions SET status = $1, updated_ms = $2 WHERE name = $3 AND version = $4")
                .bind(status.as_str())
                .bind(millis(SystemTime::now()))
                .bind(name)
                .bind(version)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("{name} {version}")));
        }
        self.get(name, &VersionRef::Exact(version.to_owned())).await
    }

    /// A page of versions ordered by name then publish order.
    pub async fn list(&self, q: &ListQuery) -> Result<Page, StoreError> {
        let limit = q.limit.unwrap_or(30).clamp(1, 100) as usize;
        let (after_name, after_seq) = match &q.cursor {
            Some(c) => decode_cursor(c),
            None => (String::new(), 0),
        };
        let pattern = format!("%{}%", q.search.as_deref().unwrap_or("").to_lowercase());
        let mut out = Vec::new();
        let mut cursor = (after_name, after_seq);
        // Fetch whole connectors at a time so `latest` can be computed, in
        // batches until the page is full or the catalog ends.
        loop {
            let names: Vec<String> = sqlx::query(
                "SELECT DISTINCT name FROM connector_versions WHERE name >= $1 AND LOWER(name) LIKE $2 ORDER BY name LIMIT $3",
            )
            .bind(&cursor.0)
            .bind(&pattern)
            .bind((limit + 1) as i64)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
            if names.is_empty() {
                break;
            }
            let batch_end = names.len() < limit + 1;
            for name in &names {
                let mut versions = self.versions(name).await?;
                versions.retain(|e| {
                    (name > &cursor.0 || e.seq > cursor.1)
                        && (q.include_deleted || e.status != Status::Deleted)
                        && (!q.latest_only || e.is_latest)
                });
                for e in versions {
                    if out.len() == limit {
                        let last: &Entry = out.last().expect("page is full");
                        return Ok(Page { next_cursor: Some(encode_cursor(last.name(), last.seq)), entries: out });
                    }
                    out.push(e);
                }
                cursor = (name.clone(), i64::MAX);
            }
            if batch_end {
                break;
            }
        }
        Ok(Page { entries: out, next_cursor: None })
    }

    /// Looks up one version without computing `latest`.
    async fn find(&self, name: &str, version: &str) -> Result<Option<AnyRow>, StoreError> {
        Ok(sqlx::query(select!("WHERE name = $1 AND version = $2"))
            .bind(name)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?)
    }
}

fn entry(row: &AnyRow) -> Result<Entry, StoreError> {
    let name: String = row.try_get("name")?;
    let version: String = row.try_get("version")?;
    let text: String = row.try_get("manifest")?;
    let corrupt = |reason: String| StoreError::Corrupt { name: name.clone(), version: version.clone(), reason };
    let doc = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    let manifest = Manifest::from_document(doc).map_err(|e| corrupt(e.to_string()))?;
    Ok(Entry {
        manifest,
        status: Status::parse(&row.try_get::<String, _>("status")?),
        sha256: row.try_get("sha256")?,
        published_at: from_millis(row.try_get("published_ms")?),
        updated_at: from_millis(row.try_get("updated_ms")?),
        is_latest: false,
        seq: row.try_get("seq")?,
    })
}

/// `latest` is the highest version among active ones, or among deprecated
/// ones if none is active; deleted versions never are. Semver versions
/// compare as semver; others by publish order.
fn mark_latest(entries: &mut [Entry]) {
    let rank = |e: &Entry| match e.status {
        Status::Active => 2,
        Status::Deprecated => 1,
        Status::Deleted => 0,
    };
    let best = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.status != Status::Deleted)
        .max_by(|(_, a), (_, b)| rank(a).cmp(&rank(b)).then_with(|| compare_versions(a, b)))
        .map(|(i, _)| i);
    if let Some(i) = best {
        entries[i].is_latest = true;
    }
}

fn compare_versions(a: &Entry, b: &Entry) -> Ordering {
    match (semver::Version::parse(a.version()), semver::Version::parse(b.version())) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.seq.cmp(&b.seq),
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// Cursors are `name:seq`, hex-encoded so they are opaque and URL-safe.
fn encode_cursor(name: &str, seq: i64) -> String {
    hex::encode(format!("{name}:{seq}"))
}

fn decode_cursor(c: &str) -> (String, i64) {
    hex::decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.rsplit_once(':').and_then(|(n, q)| Some((n.to_owned(), q.parse().ok()?))))
        .unwrap_or_default()
}
