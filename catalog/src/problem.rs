//! What is wrong with a manifest, and where.

use std::fmt;

/// One thing wrong with a manifest: where (a JSON pointer into the
/// document) and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// RFC 6901 pointer to the offending value (`""` is the whole document).
    pub pointer: String,
    /// What was expected, in words a manifest author can act on.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(f, "{at}: {}", self.message)
    }
}

/// Every problem found in one manifest; validation never stops at the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("invalid manifest: {}", summary(.problems))]
pub struct Invalid {
    /// In document order, as found.
    pub problems: Vec<Problem>,
}

fn summary(problems: &[Problem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// A JSON pointer under construction: `Pointer::root().key("packages").index(0)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pointer(String);

impl Pointer {
    pub(crate) fn root() -> Self {
        Self(String::new())
    }

    /// The pointer to member `key`, escaped per RFC 6901 (`~` → `~0`, `/` → `~1`).
    pub(crate) fn key(&self, key: &str) -> Self {
        Self(format!("{}/{}", self.0, key.replace('~', "~0").replace('/', "~1")))
    }

    pub(crate) fn index(&self, i: usize) -> Self {
        Self(format!("{}/{i}", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_escape_slashes_and_tildes() {
        let p = Pointer::root().key("_meta").key("dev.berth/connector").key("a~b").index(3);
        assert_eq!(p.as_str(), "/_meta/dev.berth~1connector/a~0b/3");
    }
}
