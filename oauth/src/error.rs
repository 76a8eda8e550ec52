//! OAuth errors as RFC 6749 names them, so clients can act on the code.

use serde::Serialize;

/// An error answered to an OAuth client (`{"error", "error_description"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{error}: {error_description}")]
pub struct OAuthError {
    /// The RFC 6749 / 7591 error code.
    pub error: &'static str,
    /// What was wrong, for the developer of the client.
    pub error_description: String,
}

impl OAuthError {
    pub(crate) fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self { error, error_description: description.into() }
    }

    pub(crate) fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }

    pub(crate) fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }

    /// Whether the client itself is at fault (401) rather than its request (400).
    pub fn is_client_error(&self) -> bool {
        self.error == "invalid_client"
    }
}
