//! The pools of one connector version, keyed as its isolation says.

use std::collections::HashMap;
use std::sync::Arc;

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
}

impl Pools {
    /// Pools made by `factory`.
    pub fn new(isolation: Isolation, factory: PoolFactory) -> Self {
        Self { isolation, factory, by_user: Default::default() }
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
            Isolation::Session => (self.factory)(user.map(str::to_owned)).await,
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
        for pool in self.by_user.lock().values() {
            pool.shutdown();
        }
    }

    /// Drains instance `id` wherever it runs; false when none has that id.
    pub fn drain(&self, id: u64) -> bool {
        self.by_user.lock().values().any(|p| p.drain(id))
    }

    /// Kills instance `id` wherever it runs; false when none has that id.
    pub fn kill(&self, id: u64) -> bool {
        self.by_user.lock().values().any(|p| p.kill(id))
    }

    /// Every pool's instances, by user (`""`: shared or anonymous).
    pub fn instances(&self) -> Vec<(String, Vec<InstanceInfo>)> {
        self.by_user.lock().iter().map(|(u, p)| (u.clone(), p.instances())).collect()
    }

    /// Requests waiting for an instance, over every pool.
    pub fn queued(&self) -> usize {
        self.by_user.lock().values().map(|p| p.queued()).sum()
    }
}
