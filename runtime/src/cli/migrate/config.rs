//! MCP client configuration files as the clients write them: Claude Desktop
//! and Cursor (`{"mcpServers": {...}}`) and VS Code (`{"servers": {...}}`).
//! Reading keeps the whole document, so a rewrite changes only the entries
//! berth migrated.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Map, Value};

/// Which client wrote a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Claude Desktop: `mcpServers`, stdio entries only.
    Claude,
    /// Cursor: `mcpServers`, remote entries as `{"url"}`.
    Cursor,
    /// VS Code: `servers`, entries typed `stdio` / `http`.
    VsCode,
}

impl Flavor {
    /// The member holding the servers.
    pub fn key(self) -> &'static str {
        match self {
            Self::Claude | Self::Cursor => "mcpServers",
            Self::VsCode => "servers",
        }
    }
}

/// A client's config file.
pub struct ClientConfig {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its format.
    pub flavor: Flavor,
    /// The whole document.
    pub doc: Value,
}

/// One server entry.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A local process: what berth migrates.
    Stdio { command: String, args: Vec<String>, env: Vec<(String, String)> },
    /// Already remote: left as it is.
    Remote,
    /// Something berth does not understand.
    Unknown(String),
}

/// The default config path of a client on this machine.
pub fn default_path(flavor: Flavor) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    match flavor {
        Flavor::Claude => {
            let config = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).unwrap_or_else(|| home.join(".config"));
            let mac = home.join("Library/Application Support/Claude/claude_desktop_config.json");
            if mac.exists() { mac } else { config.join("Claude/claude_desktop_config.json") }
        }
        Flavor::Cursor => {
            let project = PathBuf::from(".cursor/mcp.json");
            if project.exists() { project } else { home.join(".cursor/mcp.json") }
        }
        Flavor::VsCode => PathBuf::from(".vscode/mcp.json"),
    }
}

impl ClientConfig {
    /// Reads a config; `flavor` None guesses from the document's shape.
    pub fn read(path: &Path, flavor: Option<Flavor>) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let doc: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let flavor = match flavor {
            Some(f) => f,
            None if doc.get("mcpServers").is_some() => Flavor::Cursor,
            None if doc.get("servers").is_some() => Flavor::VsCode,
            None => bail!("{} has neither \"mcpServers\" nor \"servers\"", path.display()),
        };
        if !doc.get(flavor.key()).is_some_and(Value::is_object) {
            bail!("{} has no \"{}\" object", path.display(), flavor.key());
        }
        Ok(Self { path: path.to_path_buf(), flavor, doc })
    }

    /// The entries, in file order.
    pub fn entries(&self) -> Vec<(String, Entry)> {
        let servers = self.doc[self.flavor.key()].as_object().cloned().unwrap_or_default();
        servers.into_iter().map(|(name, v)| (name, entry(&v))).collect()
    }

    /// Points `name` at `url` as a Streamable HTTP entry (`type` + `url`,
    /// the form VS Code, Cursor and Claude's `.mcp.json` all read).
    pub fn point_at(&mut self, name: &str, url: &str) {
        let remote = serde_json::json!({"type": "http", "url": url});
        if let Some(servers) = self.doc.get_mut(self.flavor.key()).and_then(Value::as_object_mut) {
            servers.insert(name.to_owned(), remote);
        }
    }

    /// Writes the document back, keeping the original as a backup beside it.
    pub fn write_with_backup(&self) -> anyhow::Result<PathBuf> {
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let backup = self.path.with_file_name(format!(
            "{}.berth-backup-{stamp}",
            self.path.file_name().and_then(|n| n.to_str()).unwrap_or("config")
        ));
        std::fs::copy(&self.path, &backup).with_context(|| format!("backing up {}", self.path.display()))?;
        let tmp = self.path.with_extension("berth-tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&self.doc)? + "\n")
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path).with_context(|| format!("replacing {}", self.path.display()))?;
        Ok(backup)
    }
}

fn entry(v: &Value) -> Entry {
    let Some(obj) = v.as_object() else { return Entry::Unknown("not an object".into()) };
    let kind = obj.get("type").and_then(Value::as_str);
    if obj.contains_key("url") || matches!(kind, Some("http" | "sse" | "streamable-http")) {
        return Entry::Remote;
    }
    let Some(command) = obj.get("command").and_then(Value::as_str) else {
        return Entry::Unknown("no \"command\" and no \"url\"".into());
    };
    let strings = |k: &str| -> Vec<String> {
        obj.get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let env = obj
        .get("env")
        .and_then(Value::as_object)
        .map(|m: &Map<String, Value>| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    Entry::Stdio { command: command.to_owned(), args: strings("args"), env }
}
