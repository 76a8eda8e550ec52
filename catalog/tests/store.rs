//! The store against a real SQLite file: immutability, latest, yanking,
//! pagination, racing publishers and persistence across reopen.

use berth_catalog::store::ListQuery;
use berth_catalog::{Manifest, Status, Store, StoreError, VersionRef};
use serde_json::json;

fn manifest(name: &str, version: &str) -> Manifest {
    Manifest::from_document(json!({
        "name": name,
        "description": "test connector",
        "version": version,
        "packages": [{"registryType": "local", "identifier": "/bin/true", "transport": {"type": "stdio"}}]
    }))
    .expect("valid manifest")
}

async fn store(dir: &tempfile::TempDir) -> Store {
    Store::open(&format!("sqlite://{}", dir.path().join("catalog.db").display())).await.expect("open store")
}

/// A fresh PostgreSQL database on the server `scripts/postgres.sh` runs
/// (`BERTH_TEST_POSTGRES`, an admin URL); `None` when no server was given.
async fn postgres() -> Option<String> {
    let Ok(admin) = std::env::var("BERTH_TEST_POSTGRES") else {
        eprintln!("BERTH_TEST_POSTGRES not set: PostgreSQL cases not run (scripts/test.sh sets it)");
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!("berth_test_{}_{}", std::process::id(), rand_suffix());
    let conn = sqlx::AnyPool::connect(&admin).await.expect("connect to BERTH_TEST_POSTGRES");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&conn).await.expect("create database");
    Some(format!("{}/{name}", admin.rsplit_once('/').expect("URL with a database").0))
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64);
    h.finish() % 1_000_000_000
}

/// Every backend a test runs on: SQLite always, PostgreSQL when available.
async fn every_backend(dir: &tempfile::TempDir) -> Vec<Store> {
    let mut out = vec![store(dir).await];
    if let Some(url) = postgres().await {
        out.push(Store::open(&url).await.expect("open PostgreSQL store"));
    }
    out
}

#[tokio::test]
async fn a_published_version_is_immutable_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir).await;
    s.publish(&manifest("com.example/a", "1.0.0")).await.expect("first publish");
    let again = s.publish(&manifest("com.example/a", "1.0.0")).await;
    assert!(matches!(again, Err(StoreError::AlreadyPublished { .. })), "{again:?}");
    drop(s);
    let s = store(&dir).await;
    let e = s.get("com.example/a", &VersionRef::Latest).await.expect("still there");
    assert_eq!(e.version(), "1.0.0");
    assert!(e.is_latest);
}

#[tokio::test]
async fn latest_follows_semver_and_skips_yanked_versions() {
    let dir = tempfile::tempdir().unwrap();
    for s in every_backend(&dir).await {
        latest_on(s).await;
    }
}

async fn latest_on(s: Store) {
    for v in ["1.2.0", "1.10.0", "1.9.3", "2.0.0-rc.1"] {
        s.publish(&manifest("com.example/b", v)).await.unwrap();
    }
    let latest =
        |s: Store| async move { s.get("com.example/b", &VersionRef::Latest).await.unwrap().version().to_owned() };
    assert_eq!(latest(s.clone()).await, "2.0.0-rc.1");
    s.set_status("com.example/b", "2.0.0-rc.1", Status::Deleted).await.unwrap();
    assert_eq!(latest(s.clone()).await, "1.10.0");
    s.set_status("com.example/b", "1.10.0", Status::Deprecated).await.unwrap();
    assert_eq!(latest(s.clone()).await, "1.9.3", "an active version wins over a deprecated one");
    // A yanked version still blocks reuse of its number.
    assert!(matches!(
        s.publish(&manifest("com.example/b", "2.0.0-rc.1")).await,
        Err(StoreError::AlreadyPublished { .. })
    ));
    assert!(matches!(s.get("com.example/none", &VersionRef::Latest).await, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn pages_cover_every_version_once() {
    let dir = tempfile::tempdir().unwrap();
    for s in every_backend(&dir).await {
        pages_on(s).await;
    }
}

async fn pages_on(s: Store) {
    let mut want = Vec::new();
    for n in 0..7 {
        for v in 0..3 {
            let (name, version) = (format!("com.example/c{n}"), format!("0.{v}.0"));
            s.publish(&manifest(&name, &version)).await.unwrap();
            want.push((name, version));
        }
    }
    let mut got = Vec::new();
    let mut q = ListQuery { limit: Some(4), ..ListQuery::default() };
    loop {
        let page = s.list(&q).await.unwrap();
        assert!(page.entries.len() <= 4);
        got.extend(page.entries.iter().map(|e| (e.name().to_owned(), e.version().to_owned())));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(got, want);
    let latest =
        s.list(&ListQuery { latest_only: true, search: Some("C3".into()), ..ListQuery::default() }).await.unwrap();
    assert_eq!(latest.entries.len(), 1);
    assert_eq!(latest.entries[0].version(), "0.2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_publishers_never_corrupt_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    for s in every_backend(&dir).await {
        race_on(s).await;
    }
}

async fn race_on(s: Store) {
    let mut tasks = Vec::new();
    // 20 publishers: 10 distinct versions, each published twice at once.
    for i in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(
            async move { s.publish(&manifest("com.example/race", &format!("1.0.{}", i % 10))).await },
        ));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::AlreadyPublished { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(ok, 10, "each version is published exactly once");
    let versions = s.versions("com.example/race").await.unwrap();
    assert_eq!(versions.len(), 10);
    assert_eq!(versions.iter().filter(|e| e.is_latest).count(), 1);
}
