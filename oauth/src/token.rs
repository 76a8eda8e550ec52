//! Access tokens: short-lived JWTs bound to one audience (the MCP URL the
//! client asked for with `resource`), checked on every request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::keys::Keyring;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The issuer: this berth.
    pub iss: String,
    /// The user.
    pub sub: String,
    /// The one resource (MCP URL) the token is good for.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// Unique id.
    pub jti: String,
    /// The OAuth client it was issued to.
    pub client_id: String,
    /// Granted scopes, space-separated.
    #[serde(default)]
    pub scope: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT this berth signed.
    #[error("the token is malformed or not signed by this server")]
    Invalid,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
    /// Issued by someone else.
    #[error("the token was issued by another server")]
    WrongIssuer,
    /// For another resource.
    #[error("the token is for another resource")]
    WrongAudience,
    /// Issued before its user was signed out everywhere.
    #[error("the token's user was signed out; sign in again")]
    SignedOut,
}

pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Signs an access token for `aud`, valid for `ttl`.
pub(crate) fn issue(
    keys: &Keyring,
    iss: &str,
    sub: &str,
    aud: &str,
    client_id: &str,
    scope: &str,
    ttl: Duration,
) -> String {
    let now = now();
    let claims = AccessClaims {
        iss: iss.to_owned(),
        sub: sub.to_owned(),
        aud: aud.to_owned(),
        exp: now + ttl.as_secs(),
        iat: now,
        jti: hex::encode(rand::random::<[u8; 16]>()),
        client_id: client_id.to_owned(),
        scope: scope.to_owned(),
    };
    let (kid, key) = keys.signer();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid);
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, &claims, &key).expect("Ed25519 signing does not fail")
}

/// Checks signature, issuer, audience and expiry; returns the claims.
pub(crate) fn verify(keys: &Keyring, token: &str, iss: &str, aud: &str) -> Result<AccessClaims, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
    if header.alg != Algorithm::EdDSA {
        return Err(TokenError::Invalid);
    }
    let key = header.kid.as_deref().and_then(|kid| keys.verifier(kid)).ok_or(TokenError::Invalid)?;
    let mut v = Validation::new(Algorithm::EdDSA);
    v.leeway = 5;
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.set_issuer(&[iss]);
    v.set_audience(&[aud]);
    use jsonwebtoken::errors::ErrorKind;
    jsonwebtoken::decode::<AccessClaims>(token, &key, &v).map(|d| d.claims).map_err(|e| match e.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        _ => TokenError::Invalid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_good_only_for_its_issuer_audience_and_lifetime() {
        let keys = Keyring::ephemeral();
        let t = issue(&keys, "https://b", "alice", "https://b/mcp/x", "c1", "", Duration::from_secs(60));
        assert_eq!(verify(&keys, &t, "https://b", "https://b/mcp/x").unwrap().sub, "alice");
        assert_eq!(verify(&keys, &t, "https://b", "https://b/mcp/y"), Err(TokenError::WrongAudience));
        assert_eq!(verify(&keys, &t, "https://other", "https://b/mcp/x"), Err(TokenError::WrongIssuer));
        assert_eq!(verify(&Keyring::ephemeral(), &t, "https://b", "https://b/mcp/x"), Err(TokenError::Invalid));
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].replace('A', "B");
        assert_eq!(verify(&keys, &parts.join("."), "https://b", "https://b/mcp/x"), Err(TokenError::Invalid));
        let (kid, key) = keys.signer();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        let mut claims = verify(&keys, &t, "https://b", "https://b/mcp/x").unwrap();
        claims.exp = now() - 60;
        let expired = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        assert_eq!(verify(&keys, &expired, "https://b", "https://b/mcp/x"), Err(TokenError::Expired));
    }
}
