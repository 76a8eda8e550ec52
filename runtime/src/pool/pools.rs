//! The pools of one connector version, keyed as its isolation says.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::{InstanceInfo, Pool};
use crate::jsonrpc::ErrorObject;

/// Who shares instances (a manifest's `isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// One pool for every caller.
    Shared,
    /// A pool per user: per-user credentials go only into that user's instances.
    User,
    /// An instance per legacy session; modern (sessionless) callers get a
    /// pool per user.
    Session,
}

/// Makes the pool of one user (`None`: callers with no identity).
pub type PoolFactory =
    Arc<dyn Fn(Option<String>) -> berth_sandbox::BoxFuture<'static, Result<Arc<Pool>, ErrorObject>> + Send + Sync>;

/// The pools of one connector version.
pub struct Pools {
    isolation: Isolation,
    factory: PoolFactory,
    by_user: Mutex<HashMap<String, Arc<Pool>>>,
    /// Each legacy session's own pool (`session` isolation), by user, for
    /// as long as the session holds it.
    by_session: Mutex<Vec<(String, Weak<Pool>)>>,
}

impl Pools {
    /// Pools made by `factory`.
    pub fn new(isolation: Isolation, factory: PoolFactory) -> Self {
        Self { isolation, factory, by_user: Default::default(), by_session: Default::default() }
    }

    /// One pool for everyone (`berth run`).
    pub fn single(pool: Arc<Pool>) -> Self {
        Self::new(
            Isolation::Shared,
            Arc::new(move |_| {
                let pool = pool.clone();
                Box::pin(async move { Ok(pool) })
            }),
        )
    }

    /// The pool serving `user`'s stateless requests.
    pub async fn for_user(&self, user: Option<&str>) -> Result<Arc<Pool>, ErrorObject> {
        let key = match self.isolation {
            Isolation::Shared => String::new(),
            Isolation::User | Isolation::Session => user.unwrap_or("").to_owned(),
        };
        let stale = {
            let mut map = self.by_user.lock();
            match map.get(&key) {
                Some(p) if !p.expired() => return Ok(p.clone()),
                Some(_) => map.remove(&key),
                None => None,
            }
        };
        if let Some(old) = stale {
            tracing::info!(pool = %old.name, "credentials renewed: new requests go to fresh instances");
            old.retire();
        }
        // Two first requests may both make one; pools launch lazily, so the
        // loser costs nothing.
        let pool = (self.factory)((!key.is_empty()).then(|| key.clone())).await?;
        Ok(self.by_user.lock().entry(key).or_insert(pool).clone())
    }

    /// The pool a new legacy session uses: its own under `session`
    /// isolation (dropped, and its server stopped, with the session).
    pub async fn for_session(&self, user: Option<&str>) -> Result<Arc<Pool>, ErrorObject> {
        match self.isolation {
            Isolation::Session => {
                let pool = (self.factory)(user.map(str::to_owned)).await?;
                let mut sessions = self.by_session.lock();
                sessions.retain(|(_, p)| p.strong_count() > 0);
                sessions.push((user.unwrap_or("").to_owned(), Arc::downgrade(&pool)));
                Ok(pool)
            }
            _ => self.for_user(user).await,
        }
    }

    /// Tends every pool; forgets per-user pools with nothing running. Only
    /// a shared pool keeps its warm reserve with no demand at all: per-user
    /// reserves would grow with the number of users who ever called.
    pub fn tend(&self) {
        let mut map = self.by_user.lock();
        let keep_warm = self.isolation == Isolation::Shared;
        for pool in map.values() {
            pool.tend(keep_warm);
        }
        if !keep_warm {
            map.retain(|_, p| !p.instances().is_empty());
        }
    }

    /// Stops every instance.
    pub fn shutdown(&self) {
        for (_, pool) in self.all() {
            pool.shutdown();
        }
    }

    /// Stops `user`'s own pool at once (not a shared one); how many
    /// instances it had.
    pub fn stop_user(&self, user: &str) -> usize {
        if self.isolation == Isolation::Shared {
            return 0;
        }
        let mut pools: Vec<Arc<Pool>> = self.by_user.lock().remove(user).into_iter().collect();
        pools.extend(self.sessions().into_iter().filter(|(u, _)| u == user).map(|(_, p)| p));
        pools
            .iter()
            .map(|pool| {
                let n = pool.instances().len();
                pool.shutdown();
                n
            })
            .sum()
    }

    /// The live session pools, with their users.
    fn sessions(&self) -> Vec<(String, Arc<Pool>)> {
        self.by_session.lock().iter().filter_map(|(u, p)| Some((u.clone(), p.upgrade()?))).collect()
    }

    /// Every pool, each with its name in the admin API (`shared`,
    /// `user:NAME`, `session:NAME`).
    fn all(&self) -> Vec<(String, Arc<Pool>)> {
        let mut out: Vec<(String, Arc<Pool>)> = self
            .by_user
            .lock()
            .iter()
            .map(|(u, p)| (if u.is_empty() { "shared".to_owned() } else { format!("user:{u}") }, p.clone()))
            .collect();
        out.extend(self.sessions().into_iter().map(|(u, p)| (format!("session:{u}"), p)));
        out
    }

    /// Drains instance `id` wherever it runs; false when none has that id.
    pub fn drain(&self, id: u64) -> bool {
        self.all().iter().any(|(_, p)| p.drain(id))
    }

    /// Kills instance `id` wherever it runs; false when none has that id.
    pub fn kill(&self, id: u64) -> bool {
        self.all().iter().any(|(_, p)| p.kill(id))
    }

    /// Every pool's instances, by pool name (`shared`, `user:NAME`,
    /// `session:NAME`).
    pub fn instances(&self) -> Vec<(String, Vec<InstanceInfo>)> {
        self.all().into_iter().map(|(name, p)| (name, p.instances())).collect()
    }

    /// Requests waiting for an instance, over every pool.
    pub fn queued(&self) -> usize {
        self.by_user.lock().values().map(|p| p.queued()).sum()
    }
}
