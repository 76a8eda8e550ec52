//! The example connectors `berth serve` publishes on start: public servers
//! from npm and PyPI (installed on first use), and berth's own test server
//! when it sits next to the `berth` executable (as after `cargo build`).

use berth_catalog::Manifest;
use serde_json::Value;

const EVERYTHING: &str = include_str!("../../../connectors/everything/server.json");
const TIME: &str = include_str!("../../../connectors/time/server.json");
const TESTSERVER: &str = include_str!("../../../connectors/testserver/server.json");

/// The example manifests that can run on this host.
pub fn manifests() -> Vec<Manifest> {
    let mut out = Vec::new();
    for text in [EVERYTHING, TIME] {
        match Manifest::parse(text) {
            Ok(m) => out.push(m),
            Err(e) => tracing::error!(error = %e, "built-in example manifest is invalid"),
        }
    }
    if let Some(m) = testserver() {
        out.push(m);
    }
    out
}

/// The test server's manifest, pointing at the binary beside this one.
fn testserver() -> Option<Manifest> {
    let exe = std::env::current_exe().ok()?;
    let binary = exe.parent()?.join("berth-testserver");
    if !binary.is_file() {
        return None;
    }
    let mut doc: Value = serde_json::from_str(TESTSERVER).ok()?;
    doc["packages"][0]["identifier"] = binary.display().to_string().into();
    Manifest::from_document(doc).ok()
}
