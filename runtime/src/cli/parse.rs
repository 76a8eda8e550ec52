//! Parsers for flag values shared by the subcommands.

use berth_sandbox::Mount;

pub fn mount(s: &str) -> Result<Mount, String> {
    let (path, writable) = match s.strip_suffix(":rw") {
        Some(p) => (p, true),
        None => (s.strip_suffix(":ro").unwrap_or(s), false),
    };
    let path = std::path::Path::new(path);
    if !path.is_absolute() {
        return Err(format!("mount path must be absolute: '{s}'"));
    }
    Ok(Mount { path: path.to_path_buf(), target: None, writable })
}

pub fn size(s: &str) -> Result<u64, String> {
    berth_catalog::manifest::Size::parse(s).map(u64::from)
}

pub fn env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("expected a duration like 500ms or 2s, got '{s}': {e}"))
}
