//! Manifest validation: the registry schema's rules for `server.json`, then
//! what berth needs to host it. Every problem is collected, each with the
//! JSON pointer of the value at fault, so an author fixes them in one pass.

mod checker;
mod hosting;
mod server;

use serde_json::Value;

use crate::problem::Pointer;
use crate::{Invalid, Problem};
use checker::Checker;

/// Checks a whole manifest document.
pub(crate) fn manifest(doc: &Value) -> Result<(), Invalid> {
    let mut c = Checker::default();
    let root = Pointer::root();
    if let Some(obj) = c.object(doc, &root) {
        server::check(&mut c, obj, &root);
        hosting::check(&mut c, obj, &root);
    }
    c.finish()
}

/// Whether `v` is an exact version: not empty, not `latest`, not a range.
pub(crate) fn exact_version_problem(v: &str) -> Option<&'static str> {
    let v = v.trim();
    if v.is_empty() {
        return Some("an exact version, not an empty string");
    }
    if v == "latest" {
        return Some("an exact version, not \"latest\"");
    }
    if v.starts_with(['^', '~', '>', '<', '=', '!'])
        || v.contains([' ', '*', '|', ','])
        || v.split(['.', '-', '+']).any(|part| part == "x" || part == "X")
    {
        return Some("an exact version, not a range (such as ^1.2.3, ~1.2, >=1, 1.x or 1.*)");
    }
    None
}

/// Environment variable names a shell and every runtime accept.
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// A problem at `pointer`.
pub(crate) fn problem(pointer: &Pointer, message: impl Into<String>) -> Problem {
    Problem { pointer: pointer.as_str().to_owned(), message: message.into() }
}
