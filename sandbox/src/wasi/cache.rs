//! Compiled guests: in memory per file, and on disk per content.
//!
//! Compiling a 2 MB module takes cranelift seconds; loading its compiled form
//! takes milliseconds; reusing it from memory, microseconds. The disk cache
//! is keyed by the SHA-256 of the module's bytes and a hash of everything in
//! the engine's configuration that compiled code depends on (wasmtime's
//! version included), so a changed module or a changed engine never picks up
//! stale code. Entries are written to a temporary file and renamed into
//! place, so a reader sees a whole entry or none.
//!
//! Loading compiled code runs whatever machine code the file holds, so only
//! files this user owns, in a directory no one else may write, are trusted.
//!
//! The directory is swept when a sandbox opens it ([`sweep`]): entries
//! unused for [`UNUSED`] go (a load refreshes an entry's time), entries
//! another engine wrote go after [`FOREIGN`] (no engine but theirs can load
//! them, and theirs may still be running), and temporary files a crash left
//! go after [`ABANDONED`].

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::Module;
use wasmtime::component::Component;

use super::guest::{Linkers, Loaded};
use crate::SandboxError;

/// Which of the two binary formats a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A core module (`wasm32-wasip1`).
    Module,
    /// A component (`wasm32-wasip2`).
    Component,
}

impl Kind {
    /// Reads the preamble: `\0asm`, then a version whose upper half is the
    /// layer, 0 for core modules and 1 for components.
    pub(super) fn detect(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0, b'a', b's', b'm', _, _, 0, 0, ..] => Some(Self::Module),
            [0, b'a', b's', b'm', _, _, 1, 0, ..] => Some(Self::Component),
            _ => None,
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Module => "module.cwasm",
            Self::Component => "component.cwasm",
        }
    }
}

/// Identifies a file's current contents without reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self { dev: meta.dev(), ino: meta.ino(), len: meta.len(), mtime: (meta.mtime(), meta.mtime_nsec()) }
    }
}

/// An entry of this engine's not loaded for this long is removed.
const UNUSED: Duration = Duration::from_secs(30 * 24 * 3600);
/// An entry of another engine (another wasmtime, other settings) untouched
/// for this long is removed.
const FOREIGN: Duration = Duration::from_secs(24 * 3600);
/// A temporary file this old was abandoned by a process that died writing.
const ABANDONED: Duration = Duration::from_secs(3600);

pub(super) struct Cache {
    dir: Option<PathBuf>,
    /// Hex digest of the engine's compilation settings.
    engine_key: String,
    loaded: Mutex<HashMap<PathBuf, (FileId, Arc<Loaded>)>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// Feeds a `Hash` into SHA-256, so the engine's settings get a digest that
/// is stable across processes (std's hasher makes no such promise).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn module_error(path: &Path, message: impl std::fmt::Display) -> SandboxError {
    SandboxError::Module { path: path.to_owned(), message: message.to_string() }
}

impl Cache {
    pub(super) fn new(engine: &Engine, dir: Option<PathBuf>) -> Result<Self, SandboxError> {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..12]);
        let mut dir = dir;
        if let Some(d) = &dir {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .map_err(|e| module_error(d, format_args!("cannot create the cache directory: {e}")))?;
            if !private(d) {
                // Entries there could never be trusted: do not write them either.
                tracing::warn!(dir = %d.display(), "wasm cache directory is not private to this user; caching in memory only");
                dir = None;
            } else {
                sweep(d, &engine_key, SystemTime::now());
            }
        }
        Ok(Self { dir, engine_key, loaded: Mutex::new(HashMap::new()) })
    }

    pub(super) fn forget_loaded(&self) {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The guest at `path`, ready to instantiate: from memory if the file is
    /// unchanged, else from the disk cache, else compiled (and cached).
    pub(super) async fn load(
        &self,
        engine: &Engine,
        linkers: &Linkers,
        path: &Path,
    ) -> Result<Arc<Loaded>, SandboxError> {
        let meta = tokio::fs::metadata(path).await.map_err(|e| module_error(path, e))?;
        let id = FileId::of(&meta);
        if let Some((seen, loaded)) = self.loaded.lock().unwrap_or_else(|p| p.into_inner()).get(path)
            && *seen == id
        {
            return Ok(Arc::clone(loaded));
        }
        let bytes = tokio::fs::read(path).await.map_err(|e| module_error(path, e))?;
        let kind = Kind::detect(&bytes).ok_or_else(|| module_error(path, "not a WebAssembly module or component"))?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let entry = self.dir.as_ref().map(|d| d.join(format!("{digest}-{}.{}", self.engine_key, kind.extension())));

        let engine2 = engine.clone();
        let entry2 = entry.clone();
        let path2 = path.to_owned();
        // Loading or compiling blocks for milliseconds to seconds: keep it
        // off the async workers.
        let compiled = tokio::task::spawn_blocking(move || compile_or_load(&engine2, kind, &bytes, entry2.as_deref()))
            .await
            .map_err(|e| module_error(&path2, e))?
            .map_err(|e| module_error(&path2, format_args!("{e:?}")))?;
        let loaded = Arc::new(linkers.prepare(compiled).map_err(|e| module_error(path, format_args!("{e:?}")))?);
        self.loaded.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_owned(), (id, Arc::clone(&loaded)));
        Ok(loaded)
    }
}

/// Compiled code, before it is linked.
pub(super) enum Compiled {
    Module(Module),
    Component(Component),
}

fn compile_or_load(engine: &Engine, kind: Kind, bytes: &[u8], entry: Option<&Path>) -> wasmtime::Result<Compiled> {
    if let Some(entry) = entry.filter(|e| trusted(e)) {
        match deserialize(engine, kind, entry) {
            Ok(c) => {
                // Used now: the sweep keeps it another [`UNUSED`].
                let _ = std::fs::File::open(entry).and_then(|f| f.set_modified(SystemTime::now()));
                return Ok(c);
            }
            // An entry from another wasmtime, or damaged: compile afresh.
            Err(e) => tracing::warn!(entry = %entry.display(), error = %e, "ignoring a wasm cache entry"),
        }
    }
    let started = std::time::Instant::now();
    let (compiled, serialized) = match kind {
        Kind::Module => {
            let m = Module::new(engine, bytes)?;
            let s = entry.map(|_| m.serialize()).transpose()?;
            (Compiled::Module(m), s)
        }
        Kind::Component => {
            let c = Component::new(engine, bytes)?;
            let s = entry.map(|_| c.serialize()).transpose()?;
            (Compiled::Component(c), s)
        }
    };
    tracing::info!(elapsed = ?started.elapsed(), "compiled a wasm guest");
    if let (Some(entry), Some(serialized)) = (entry, serialized) {
        // A cache that cannot be written costs time, not correctness.
        if let Err(e) = write_atomically(entry, &serialized) {
            tracing::warn!(entry = %entry.display(), error = %e, "could not write a wasm cache entry");
        }
    }
    Ok(compiled)
}

/// Whether `entry` and its directory belong to this user and no one else
/// may write them: loading compiled code executes it.
fn trusted(entry: &Path) -> bool {
    private(entry) && entry.parent().is_some_and(private)
}

/// Owned by this user, and writable by no one else.
fn private(path: &Path) -> bool {
    let uid = nix::unistd::geteuid().as_raw();
    std::fs::metadata(path).is_ok_and(|m| m.uid() == uid && m.permissions().mode() & 0o022 == 0)
}

/// Loads compiled code from the cache.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, kind: Kind, entry: &Path) -> wasmtime::Result<Compiled> {
    // SAFETY: wasmtime requires that the file hold code it produced itself.
    // Entries are written only by `write_atomically` below from wasmtime's
    // own output, the name carries the engine's compatibility hash (and
    // wasmtime checks its version again), and `trusted` refused files that
    // anyone but this user could have put there.
    unsafe {
        match kind {
            Kind::Module => Module::deserialize_file(engine, entry).map(Compiled::Module),
            Kind::Component => Component::deserialize_file(engine, entry).map(Compiled::Component),
        }
    }
}

/// Removes from cache directory `dir` what can no longer serve (see the
/// module's documentation); `engine_key` names this engine's entries.
/// Anything else in the directory is left alone.
fn sweep(dir: &Path, engine_key: &str, now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut removed = 0usize;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let limit = if name.starts_with(".tmp-") {
            ABANDONED
        } else if let Some(stem) = name.strip_suffix(".module.cwasm").or_else(|| name.strip_suffix(".component.cwasm"))
        {
            if stem.rsplit_once('-').is_some_and(|(_, key)| key == engine_key) { UNUSED } else { FOREIGN }
        } else {
            continue;
        };
        let age = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| now.duration_since(t).ok());
        if age.is_some_and(|a| a > limit) && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "swept the wasm cache");
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it there.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("cache entry has no directory"))?;
    let tmp = dir.join(format!(".tmp-{}-{:016x}", std::process::id(), rand::random::<u64>()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod sweep_tests {
    use super::*;

    #[test]
    fn the_sweep_removes_only_what_can_no_longer_serve() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(24 * 3600);
        let files = [
            ("aaaa-ours.module.cwasm", Duration::ZERO, true),
            ("bbbb-ours.component.cwasm", 29 * day, true),
            ("cccc-ours.module.cwasm", 31 * day, false),
            ("dddd-theirs.module.cwasm", Duration::from_secs(3600), true),
            ("eeee-theirs.component.cwasm", 2 * day, false),
            (".tmp-12-00ff", Duration::from_secs(60), true),
            (".tmp-13-00fe", Duration::from_secs(7200), false),
            ("notes.txt", 400 * day, true),
        ];
        for (name, age, _) in files {
            let f = std::fs::File::create(dir.path().join(name)).unwrap();
            f.set_modified(now - age).unwrap();
        }
        sweep(dir.path(), "ours", now);
        for (name, _, kept) in files {
            assert_eq!(dir.path().join(name).exists(), kept, "{name}");
        }
    }
}
