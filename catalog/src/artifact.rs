//! Artifacts: a package turned into files on this host, ready to launch
//! offline inside a sandbox with no network.
//!
//! Each artifact lives in a directory named by the hash of what it is
//! (registry type, identifier, version), so two connectors that pin the same
//! package share it and a version never silently changes. It is built in a
//! staging directory and renamed into place only when complete: a failed or
//! interrupted install leaves nothing a launch could pick up.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::process::Command;

use crate::manifest::{Package, Registry};

mod mcpb;

/// Why a package could not be materialized.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A tool the package type needs is not installed.
    #[error("{registry} packages need `{tool}` on this host: {hint}")]
    MissingTool {
        /// The package type.
        registry: &'static str,
        /// The missing program.
        tool: &'static str,
        /// How to get it.
        hint: &'static str,
    },
    /// The installer ran and failed.
    #[error("installing {package} failed ({status}): {output}")]
    Install {
        /// `identifier@version`.
        package: String,
        /// Its exit status.
        status: String,
        /// The end of its output.
        output: String,
    },
    /// The package installed but cannot be started as described.
    #[error("{0}")]
    Layout(String),
    /// Not supported on this host yet.
    #[error("{0} packages cannot be materialized by this berth yet")]
    Unsupported(&'static str),
    /// The artifact store's own files.
    #[error("artifact store at {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// How to start a materialized package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    /// The program (absolute path), or the image for `oci`.
    pub program: String,
    /// Its arguments, before the package's own.
    pub args: Vec<String>,
    /// Environment the runtime needs (e.g. `PYTHONPATH`).
    pub env: Vec<(String, String)>,
    /// Host directories the sandbox must show read-only (artifact, runtime).
    pub mounts: Vec<PathBuf>,
    /// The container image, for `oci`.
    pub image: Option<String>,
}

/// A materialized package.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    /// Its directory (absent for `oci`, the engine holds it).
    pub dir: Option<PathBuf>,
    /// SHA-256 over its files (path and content, in path order).
    pub sha256: String,
    /// How to start it.
    pub launch: Launch,
}

/// The content-addressed artifact directory.
#[derive(Debug, Clone)]
pub struct Artifacts {
    root: PathBuf,
}

/// The file in an artifact that says it is complete, with its record.
const RECORD: &str = ".berth-artifact.json";

impl Artifacts {
    /// Artifacts under `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The artifact of `package`, installing it first if it is not here yet.
    pub async fn materialize(&self, package: &Package) -> Result<Artifact, ArtifactError> {
        let registry = package.registry().ok_or(ArtifactError::Unsupported("unknown"))?;
        match registry {
            Registry::Wasm if is_url(&package.identifier) => self.installed(registry, package).await,
            Registry::Local | Registry::Wasm => local(package).await,
            Registry::Oci => Ok(Artifact {
                dir: None,
                sha256: String::new(),
                launch: Launch {
                    program: String::new(),
                    args: Vec::new(),
                    env: Vec::new(),
                    mounts: Vec::new(),
                    image: Some(package.identifier.clone()),
                },
            }),
            Registry::Npm | Registry::Pypi | Registry::Mcpb => self.installed(registry, package).await,
        }
    }

    /// The directory `package` is (or will be) in.
    pub fn dir_of(&self, package: &Package) -> PathBuf {
        // The declared digest is part of the key: a manifest naming the same
        // URL with another digest must be checked against its own, not
        // handed an artifact verified for someone else's.
        let key = format!(
            "{}\0{}\0{}\0{}",
            package.registry_type,
            package.identifier,
            package.version.as_deref().unwrap_or(""),
            package.file_sha256.as_deref().unwrap_or("")
        );
        self.root.join(hex::encode(&Sha256::digest(key.as_bytes())[..16]))
    }

    async fn installed(&self, registry: Registry, package: &Package) -> Result<Artifact, ArtifactError> {
        let dir = self.dir_of(package);
        if let Ok(text) = tokio::fs::read_to_string(dir.join(RECORD)).await
            && let Ok(artifact) = serde_json::from_str::<Artifact>(&text)
        {
            return Ok(artifact);
        }
        let staging = self.root.join(".staging").join(format!(
            "{}-{:08x}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("artifact"),
            std::process::id()
        ));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ArtifactError::Io { path, source }
        };
        let _ = tokio::fs::remove_dir_all(&staging).await;
        tokio::fs::create_dir_all(&staging).await.map_err(io(&staging))?;
        let built = match registry {
            Registry::Npm => npm(package, &staging, &dir).await,
            Registry::Mcpb => mcpb::materialize(package, &staging, &dir).await,
            Registry::Wasm => wasm(package, &staging, &dir).await,
            _ => pypi(package, &staging, &dir).await,
        };
        let launch = match built {
            Ok(l) => l,
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&staging).await;
                return Err(e);
            }
        };
        let tree = staging.clone();
        let sha256 = tokio::task::spawn_blocking(move || tree_hash(&tree))
            .await
            .map_err(|e| ArtifactError::Layout(e.to_string()))?
            .map_err(io(&staging))?;
        let artifact = Artifact { dir: Some(dir.clone()), sha256, launch };
        let record = serde_json::to_vec_pretty(&artifact).map_err(|e| ArtifactError::Layout(e.to_string()))?;
        tokio::fs::write(staging.join(RECORD), record).await.map_err(io(&staging))?;
        match tokio::fs::rename(&staging, &dir).await {
            Ok(()) => Ok(artifact),
            // Another berth finished the same artifact first: use theirs.
            Err(_) if dir.join(RECORD).exists() => {
                let _ = tokio::fs::remove_dir_all(&staging).await;
                Ok(artifact)
            }
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&staging).await;
                Err(ArtifactError::Io { path: dir, source: e })
            }
        }
    }
}

fn is_url(identifier: &str) -> bool {
    identifier.starts_with("https://") || identifier.starts_with("http://")
}

/// A WebAssembly module or component at a URL: downloaded, checked against
/// `fileSha256` and for the wasm preamble, and run from the artifact.
async fn wasm(package: &Package, staging: &Path, dir: &Path) -> Result<Launch, ArtifactError> {
    let layout = |m: String| ArtifactError::Layout(m);
    let want =
        package.file_sha256.as_deref().ok_or_else(|| layout("a wasm module at a URL needs fileSha256".into()))?;
    let file = staging.join("guest.wasm");
    let got = mcpb::download(&package.identifier, &file).await?;
    if got != want {
        return Err(layout(format!(
            "{} has SHA-256 {got}, but the manifest says {want}: refusing it",
            package.identifier
        )));
    }
    let head = tokio::fs::read(&file).await.map_err(|source| ArtifactError::Io { path: file.clone(), source })?;
    if !head.starts_with(b"\0asm") {
        return Err(layout(format!("{} is not a WebAssembly module or component", package.identifier)));
    }
    Ok(Launch {
        program: dir.join("guest.wasm").to_string_lossy().into_owned(),
        args: Vec::new(),
        env: Vec::new(),
        mounts: Vec::new(),
        image: None,
    })
}

/// A program already on this host: nothing to install, only to hash.
async fn local(package: &Package) -> Result<Artifact, ArtifactError> {
    let path = PathBuf::from(&package.identifier);
    let bytes = tokio::fs::read(&path).await.map_err(|source| ArtifactError::Io { path: path.clone(), source })?;
    let parent = path.parent().map(Path::to_path_buf);
    Ok(Artifact {
        dir: parent.clone(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        launch: Launch {
            program: package.identifier.clone(),
            args: Vec::new(),
            env: Vec::new(),
            mounts: parent.into_iter().collect(),
            image: None,
        },
    })
}

/// `npm install --ignore-scripts` of the pinned version: no install script of
/// someone else's package runs on the host.
async fn npm(package: &Package, staging: &Path, dir: &Path) -> Result<Launch, ArtifactError> {
    let node = which("node").ok_or(ArtifactError::MissingTool {
        registry: "npm",
        tool: "node",
        hint: "install Node.js 20 or later (Debian: apt-get install nodejs npm)",
    })?;
    let npm = which("npm").ok_or(ArtifactError::MissingTool {
        registry: "npm",
        tool: "npm",
        hint: "install npm (Debian: apt-get install npm)",
    })?;
    let spec = format!("{}@{}", package.identifier, package.version.as_deref().unwrap_or_default());
    let mut cmd = Command::new(npm);
    cmd.args(["install", "--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev", "--no-save", "--prefix"])
        .arg(staging)
        .arg(&spec);
    run(cmd, &spec).await?;
    let pkg_dir = Path::new("node_modules").join(&package.identifier);
    let manifest = tokio::fs::read_to_string(staging.join(&pkg_dir).join("package.json"))
        .await
        .map_err(|e| ArtifactError::Layout(format!("{spec} installed without a package.json: {e}")))?;
    let bin = npm_bin(&package.identifier, &manifest).ok_or_else(|| {
        ArtifactError::Layout(format!("{spec} has no \"bin\" entry to start; berth runs npm packages by their bin"))
    })?;
    let node_root = runtime_root(&node);
    Ok(Launch {
        program: node.display().to_string(),
        args: vec![dir.join(&pkg_dir).join(bin).display().to_string()],
        env: Vec::new(),
        mounts: [Some(dir.to_path_buf()), node_root].into_iter().flatten().collect(),
        image: None,
    })
}

/// The script a package's `bin` names: the only one, or the one named after
/// the package.
fn npm_bin(identifier: &str, package_json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(package_json).ok()?;
    match v.get("bin")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(m) => {
            let short = identifier.rsplit('/').next().unwrap_or(identifier);
            let pick = if m.len() == 1 { m.values().next() } else { m.get(short).or_else(|| m.get(identifier)) };
            pick.and_then(|s| s.as_str()).map(str::to_owned)
        }
        _ => None,
    }
}

/// `pip install --target` of the pinned version into the artifact, run by a
/// throwaway venv's pip; the server then runs on the host's Python with
/// `PYTHONPATH` pointing at the artifact, so the directory can be moved.
async fn pypi(package: &Package, staging: &Path, dir: &Path) -> Result<Launch, ArtifactError> {
    let python = which("python3").ok_or(ArtifactError::MissingTool {
        registry: "pypi",
        tool: "python3",
        hint: "install Python 3.10 or later with venv (Debian: apt-get install python3 python3-venv)",
    })?;
    let python = resolve_python(&python).await.unwrap_or(python);
    let spec = format!("{}=={}", package.identifier, package.version.as_deref().unwrap_or_default());
    let tools = staging.join(".pip");
    let mut venv = Command::new(&python);
    venv.args(["-m", "venv", "--without-scm-ignore-files"]).arg(&tools);
    if run(venv, "python3 -m venv").await.is_err() {
        let mut venv = Command::new(&python);
        venv.args(["-m", "venv"]).arg(&tools);
        run(venv, "python3 -m venv").await?;
    }
    let site = staging.join("site");
    let mut pip = Command::new(tools.join("bin").join("python"));
    pip.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--only-binary=:all:", "--target"])
        .arg(&site)
        .arg(&spec);
    let installed = run(pip, &spec).await;
    let _ = tokio::fs::remove_dir_all(&tools).await;
    installed?;
    let script = pypi_script(&package.identifier, &site.join("bin")).await?;
    let python_root = runtime_root(&python);
    Ok(Launch {
        program: python.display().to_string(),
        args: vec![dir.join("site").join("bin").join(script).display().to_string()],
        env: vec![
            ("PYTHONPATH".into(), dir.join("site").display().to_string()),
            ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
            ("PYTHONUNBUFFERED".into(), "1".into()),
        ],
        mounts: [Some(dir.to_path_buf()), python_root].into_iter().flatten().collect(),
        image: None,
    })
}

/// The console script to run: the one named like the package, or the only one.
async fn pypi_script(identifier: &str, bin: &Path) -> Result<String, ArtifactError> {
    let mut names = Vec::new();
    if let Ok(mut rd) = tokio::fs::read_dir(bin).await {
        while let Ok(Some(e)) = rd.next_entry().await {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    let wanted = identifier.to_lowercase().replace('_', "-");
    if let Some(n) = names.iter().find(|n| n.to_lowercase().replace('_', "-") == wanted) {
        return Ok(n.clone());
    }
    match names.as_slice() {
        [only] => Ok(only.clone()),
        _ => Err(ArtifactError::Layout(format!(
            "{identifier} installs {} console scripts ({}); berth runs the one named after the package",
            names.len(),
            names.join(", ")
        ))),
    }
}

/// The real interpreter behind shims (pyenv, venvs): what the sandbox must show.
async fn resolve_python(python: &Path) -> Option<PathBuf> {
    let out = Command::new(python)
        .args(["-c", "import os, sys; print(os.path.realpath(sys.executable))"])
        .output()
        .await
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(path.trim())).filter(|p| p.is_absolute())
}

/// The installation a runtime binary belongs to, when it is outside the
/// system directories every sandbox already shows (`/opt/node/bin/node` →
/// `/opt/node`).
fn runtime_root(program: &Path) -> Option<PathBuf> {
    let real = std::fs::canonicalize(program).ok()?;
    let root = real.parent()?.parent()?.to_path_buf();
    (!["/usr", "/bin", "/lib", "/sbin"].iter().any(|p| real.starts_with(p))).then_some(root)
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

async fn run(mut cmd: Command, what: &str) -> Result<(), ArtifactError> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let out = cmd.output().await.map_err(|e| ArtifactError::Install {
        package: what.into(),
        status: "not started".into(),
        output: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    let tail: String = text.lines().rev().take(12).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    Err(ArtifactError::Install { package: what.into(), status: out.status.to_string(), output: tail })
}

/// SHA-256 over every file's relative path and content, in path order;
/// symlinks hash their target path.
fn tree_hash(root: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let ty = e.file_type()?;
            if ty.is_dir() {
                stack.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap_or(&f);
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update([0]);
        if f.is_symlink() {
            h.update(std::fs::read_link(&f)?.as_os_str().as_encoded_bytes());
        } else {
            h.update(std::fs::read(&f)?);
        }
        h.update([0]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_bin_picks_the_packages_own_script() {
        assert_eq!(npm_bin("x", r#"{"bin": "dist/index.js"}"#).as_deref(), Some("dist/index.js"));
        let two = r#"{"bin": {"mcp-server-everything": "dist/index.js", "helper": "dist/h.js"}}"#;
        assert_eq!(npm_bin("@modelcontextprotocol/server-everything", two), None);
        assert_eq!(npm_bin("@scope/mcp-server-everything", two).as_deref(), Some("dist/index.js"));
        assert_eq!(npm_bin("x", r#"{"name": "x"}"#), None);
    }

    #[test]
    fn the_tree_hash_changes_with_any_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("a/f"), "one").unwrap();
        let before = tree_hash(d.path()).unwrap();
        assert_eq!(before, tree_hash(d.path()).unwrap());
        std::fs::write(d.path().join("a/f"), "two").unwrap();
        assert_ne!(before, tree_hash(d.path()).unwrap());
    }
}
