//! MCP bundles (`.mcpb`): a zip holding a server and a `manifest.json` that
//! says how to start it. Downloaded, checked against the manifest's
//! `fileSha256` before a byte is unpacked, then unpacked with every entry
//! confined to the artifact directory.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{ArtifactError, Launch, runtime_root, which};
use crate::manifest::Package;

/// Largest bundle berth downloads.
const MAX_BUNDLE: u64 = 512 << 20;

/// Downloads, verifies and unpacks the bundle into `staging`; the launch
/// refers to `dir`, where staging will be renamed to.
pub(super) async fn materialize(package: &Package, staging: &Path, dir: &Path) -> Result<Launch, ArtifactError> {
    let want = package.file_sha256.as_deref().ok_or_else(|| layout("an mcpb package needs fileSha256"))?;
    let zip_path = staging.join(".bundle.mcpb");
    let got = download(&package.identifier, &zip_path).await?;
    if got != want {
        return Err(layout(format!(
            "{} has SHA-256 {got}, but the manifest says {want}: refusing it",
            package.identifier
        )));
    }
    let root = staging.join("bundle");
    let (zip, into) = (zip_path.clone(), root.clone());
    tokio::task::spawn_blocking(move || unpack(&zip, &into)).await.map_err(|e| layout(e.to_string()))??;
    let _ = tokio::fs::remove_file(&zip_path).await;
    let text = tokio::fs::read_to_string(root.join("manifest.json"))
        .await
        .map_err(|e| layout(format!("the bundle has no readable manifest.json: {e}")))?;
    let manifest: Value = serde_json::from_str(&text).map_err(|e| layout(format!("manifest.json: {e}")))?;
    launch(&manifest, &dir.join("bundle"))
}

fn layout(msg: impl Into<String>) -> ArtifactError {
    ArtifactError::Layout(msg.into())
}

/// Streams `url` to `to`, returning the SHA-256 of what arrived.
pub(super) async fn download(url: &str, to: &Path) -> Result<String, ArtifactError> {
    let failed =
        |e: String| ArtifactError::Install { package: url.to_owned(), status: "download failed".into(), output: e };
    let res = reqwest::get(url).await.map_err(|e| failed(e.to_string()))?;
    if !res.status().is_success() {
        return Err(failed(format!("HTTP {}", res.status())));
    }
    let mut file = tokio::fs::File::create(to).await.map_err(|e| failed(e.to_string()))?;
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| failed(e.to_string()))?;
        size += chunk.len() as u64;
        if size > MAX_BUNDLE {
            return Err(failed(format!("download larger than {} MiB", MAX_BUNDLE >> 20)));
        }
        hash.update(&chunk);
        file.write_all(&chunk).await.map_err(|e| failed(e.to_string()))?;
    }
    file.flush().await.map_err(|e| failed(e.to_string()))?;
    Ok(hex::encode(hash.finalize()))
}

/// Unpacks every entry under `into`; an entry naming a path outside it
/// (`../`, absolute) fails the whole bundle.
fn unpack(zip: &Path, into: &Path) -> Result<(), ArtifactError> {
    let io = |e: std::io::Error| ArtifactError::Io { path: into.to_path_buf(), source: e };
    let file = std::fs::File::open(zip).map_err(io)?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| layout(format!("not a zip bundle: {e}")))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| layout(format!("bundle entry {i}: {e}")))?;
        let Some(rel) = entry.enclosed_name() else {
            return Err(layout(format!("bundle entry {:?} points outside the bundle", entry.name())));
        };
        let path = into.join(rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&path).map_err(io)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut out = std::fs::File::create(&path).map_err(io)?;
        std::io::copy(&mut entry, &mut out).map_err(io)?;
        if let Some(mode) = entry.unix_mode() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o755)).map_err(io)?;
        }
    }
    Ok(())
}

/// `server.mcp_config` of the bundle's manifest, with `${__dirname}` made
/// the bundle's final directory and a bare runtime name resolved on this host.
fn launch(manifest: &Value, bundle: &Path) -> Result<Launch, ArtifactError> {
    let config =
        manifest.pointer("/server/mcp_config").ok_or_else(|| layout("manifest.json has no server.mcp_config"))?;
    let dirname = bundle.display().to_string();
    let expand = |s: &str| s.replace("${__dirname}", &dirname);
    let command = expand(config["command"].as_str().ok_or_else(|| layout("server.mcp_config.command is missing"))?);
    let program: PathBuf = if command.contains('/') {
        let p = PathBuf::from(&command);
        if !p.starts_with(bundle) || command.contains("..") {
            return Err(layout(format!("server.mcp_config.command {command} is outside the bundle")));
        }
        p
    } else {
        which(&command).ok_or(ArtifactError::MissingTool {
            registry: "mcpb",
            tool: "the bundle's runtime",
            hint: "install the runtime its manifest.json names (node or python3)",
        })?
    };
    let args =
        config["args"].as_array().map(|a| a.iter().filter_map(Value::as_str).map(expand).collect()).unwrap_or_default();
    let env = config["env"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), expand(v.as_str()?)))).collect())
        .unwrap_or_default();
    let mounts =
        [Some(bundle.parent().unwrap_or(bundle).to_path_buf()), runtime_root(&program)].into_iter().flatten().collect();
    Ok(Launch { program: program.display().to_string(), args, env, mounts, image: None })
}
