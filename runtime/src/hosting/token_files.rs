//! Upstream tokens injected as files (`"inject": {"file": PATH}`): written
//! into a directory of this berth's on the host, mounted read-only at
//! PATH's directory inside each of the user's instances, and replaced
//! atomically (write, then rename) when the token is renewed, so a running
//! server reads the new one without a restart. The directory goes when the
//! pool does.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use berth_oauth::Broker;
use berth_sandbox::{Mount, SandboxSpec};

use super::credentials::earliest;
use crate::pool::Pool;

/// How often a pool's token files are checked for renewal.
const CHECK: Duration = Duration::from_secs(1);

/// One user's token files for one pool.
pub(super) struct TokenFiles {
    /// Host directories made for it, removed on drop.
    dirs: Vec<(PathBuf, PathBuf)>,
    /// Provider → host file.
    files: Vec<(String, PathBuf)>,
    /// When the first of them should be renewed (ms since the epoch).
    renew_ms: Option<i64>,
}

impl TokenFiles {
    pub(super) fn new() -> Self {
        Self { dirs: Vec::new(), files: Vec::new(), renew_ms: None }
    }

    /// Writes `token` for `provider` where the sandbox will see it at
    /// `inside`, mounting a host directory at its parent the first time.
    pub(super) fn add(
        &mut self,
        spec: &mut SandboxSpec,
        provider: &str,
        inside: &Path,
        token: &str,
        renew_ms: Option<i64>,
    ) -> std::io::Result<()> {
        let (Some(parent), Some(name)) = (inside.parent(), inside.file_name()) else {
            return Err(std::io::Error::other(format!("{} names no file", inside.display())));
        };
        let dir = match self.dirs.iter().find(|(at, _)| at == parent) {
            Some((_, dir)) => dir.clone(),
            None => {
                let dir = base()?.join(hex::encode(rand::random::<[u8; 16]>()));
                std::fs::DirBuilder::new().mode(0o755).create(&dir)?;
                spec.mounts.push(Mount::read_only_at(&dir, parent));
                self.dirs.push((parent.to_owned(), dir.clone()));
                dir
            }
        };
        let file = dir.join(name);
        write_atomically(&file, token)?;
        self.files.push((provider.to_owned(), file));
        self.renew_ms = earliest(self.renew_ms, renew_ms);
        Ok(())
    }

    /// Keeps the files fresh while `pool` lives; a token that cannot be
    /// renewed retires the pool, so the next request learns why.
    pub(super) fn keep_fresh(mut self, pool: Weak<Pool>, broker: Arc<Broker>, user: String) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CHECK).await;
                let Some(pool) = pool.upgrade() else { return };
                if self.renew_ms.is_none_or(|at| berth_oauth::now_ms() < at) {
                    continue;
                }
                if let Err(e) = self.renew(&broker, &user).await {
                    tracing::warn!(pool = %pool.name(), error = %e, "a token file could not be renewed; the pool is replaced");
                    pool.expire_at(Instant::now());
                    return;
                }
                tracing::info!(pool = %pool.name(), "token files renewed in place");
            }
        });
    }

    async fn renew(&mut self, broker: &Broker, user: &str) -> Result<(), String> {
        let mut renew: Option<i64> = None;
        for (provider, file) in &self.files {
            let fresh = broker.token(user, provider).await.map_err(|e| e.to_string())?;
            write_atomically(file, &fresh.access).map_err(|e| format!("writing {}: {e}", file.display()))?;
            renew = earliest(renew, fresh.renew_ms);
        }
        self.renew_ms = renew;
        Ok(())
    }
}

impl Drop for TokenFiles {
    fn drop(&mut self) {
        for (_, dir) in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// This process's directory for token files (`$TMPDIR/berth-tokens-{pid}`,
/// mode 0711: nobody else can list it); the first call sweeps what berth
/// processes no longer running left behind.
fn base() -> std::io::Result<PathBuf> {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let tmp = std::env::temp_dir();
    SWEPT.call_once(|| sweep(&tmp));
    let dir = tmp.join(format!("berth-tokens-{}", std::process::id()));
    match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(dir),
    }
}

fn sweep(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("berth-tokens-")).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Replaces `file` with `text` in one step: a reader sees the old or the
/// new token, never half of one.
fn write_atomically(file: &Path, text: &str) -> std::io::Result<()> {
    let tmp = file.with_extension("berth-new");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_share_a_mount_per_directory_and_go_with_their_owner() {
        let mut spec = SandboxSpec::default();
        let mut files = TokenFiles::new();
        files.add(&mut spec, "a", Path::new("/run/tokens/a"), "one", Some(5)).unwrap();
        files.add(&mut spec, "b", Path::new("/run/tokens/b"), "two", Some(3)).unwrap();
        files.add(&mut spec, "c", Path::new("/etc/c-token"), "three", None).unwrap();
        assert_eq!(spec.mounts.len(), 2, "one mount per directory inside");
        assert_eq!(spec.mounts[0].inside(), Path::new("/run/tokens"));
        assert!(!spec.mounts[0].writable);
        let host = spec.mounts[0].path.clone();
        assert_eq!(std::fs::read_to_string(host.join("b")).unwrap(), "two");
        assert_eq!(files.renew_ms, Some(3));
        write_atomically(&host.join("b"), "renewed").unwrap();
        assert_eq!(std::fs::read_to_string(host.join("b")).unwrap(), "renewed");
        assert!(!host.join("b.berth-new").exists());
        drop(files);
        assert!(!host.exists(), "removed with the pool");
    }
}
