//! Authorization codes and refresh tokens: single-use, short-lived, stored
//! only as hashes. A code or refresh token presented twice is treated as
//! stolen: the whole family of tokens it started is revoked.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// What an authorization code (and every token from it) stands for.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The user who consented.
    pub user: String,
    /// The client it was for.
    pub client_id: String,
    /// The resource (audience) the tokens are bound to.
    pub resource: String,
    /// Granted scopes.
    pub scope: String,
}

struct Code {
    grant: Grant,
    redirect_uri: String,
    challenge: String,
    expires: Instant,
    family: u64,
}

struct Refresh {
    grant: Grant,
    family: u64,
    used: bool,
    expires: Instant,
}

/// Why a code or refresh token was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Unknown or expired.
    #[error("unknown or expired")]
    Unknown,
    /// Presented a second time: its family is now revoked.
    #[error("already used; every token issued from it is now revoked")]
    Replayed,
    /// Issued to another client or redirect URI.
    #[error("issued to another client or redirect_uri")]
    Mismatch,
    /// The PKCE verifier does not match the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Pkce,
}

/// The live codes and refresh tokens.
#[derive(Default)]
pub struct Grants {
    inner: Mutex<State>,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, Code>,
    /// Hashes of redeemed codes, kept until they would have expired, so a
    /// replay is recognised and its family revoked.
    redeemed: HashMap<String, (u64, Instant)>,
    refresh: HashMap<String, Refresh>,
    next_family: u64,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn secret() -> String {
    B64.encode(rand::random::<[u8; 32]>())
}

/// Whether `verifier` answers `challenge` (S256 only).
pub(crate) fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let valid = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    valid && B64.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

impl Grants {
    /// A new single-use code.
    pub(crate) fn code(&self, grant: Grant, redirect_uri: &str, challenge: &str, ttl: Duration) -> String {
        let code = secret();
        let mut s = self.inner.lock();
        s.next_family += 1;
        let family = s.next_family;
        let now = Instant::now();
        s.codes.retain(|_, c| c.expires > now);
        s.redeemed.retain(|_, (_, exp)| *exp > now);
        s.codes.insert(
            hash(&code),
            Code { grant, redirect_uri: redirect_uri.into(), challenge: challenge.into(), expires: now + ttl, family },
        );
        code
    }

    /// Redeems a code; returns its grant and a refresh token in its family.
    pub(crate) fn redeem(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: &str,
        refresh_ttl: Duration,
    ) -> Result<(Grant, String), GrantError> {
        let h = hash(code);
        let mut s = self.inner.lock();
        let Some(c) = s.codes.remove(&h) else {
            if let Some((family, _)) = s.redeemed.get(&h).copied() {
                revoke(&mut s, family);
                tracing::warn!(family, "authorization code replayed; its tokens are revoked");
                return Err(GrantError::Replayed);
            }
            return Err(GrantError::Unknown);
        };
        s.redeemed.insert(h, (c.family, c.expires));
        if c.expires <= Instant::now() {
            return Err(GrantError::Unknown);
        }
        if c.grant.client_id != client_id || c.redirect_uri != redirect_uri {
            return Err(GrantError::Mismatch);
        }
        if !pkce_matches(verifier, &c.challenge) {
            return Err(GrantError::Pkce);
        }
        let refresh = secret();
        s.refresh.insert(
            hash(&refresh),
            Refresh { grant: c.grant.clone(), family: c.family, used: false, expires: Instant::now() + refresh_ttl },
        );
        Ok((c.grant, refresh))
    }

    /// Rotates a refresh token: the old one is spent, a new one returned.
    /// Presenting a spent one revokes its family (RFC 9700 §4.14).
    pub(crate) fn rotate(
        &self,
        token: &str,
        client_id: &str,
        refresh_ttl: Duration,
    ) -> Result<(Grant, String), GrantError> {
        let mut s = self.inner.lock();
        let h = hash(token);
        let (grant, family) = match s.refresh.get_mut(&h) {
            None => return Err(GrantError::Unknown),
            Some(r) if r.used => {
                let family = r.family;
                revoke(&mut s, family);
                tracing::warn!(family, "refresh token reused; its family is revoked");
                return Err(GrantError::Replayed);
            }
            Some(r) if r.expires <= Instant::now() => return Err(GrantError::Unknown),
            Some(r) if r.grant.client_id != client_id => return Err(GrantError::Mismatch),
            Some(r) => {
                r.used = true;
                (r.grant.clone(), r.family)
            }
        };
        let next = secret();
        s.refresh.insert(
            hash(&next),
            Refresh { grant: grant.clone(), family, used: false, expires: Instant::now() + refresh_ttl },
        );
        Ok((grant, next))
    }
}

fn revoke(s: &mut State, family: u64) {
    s.refresh.retain(|_, r| r.family != family);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant { user: "alice".into(), client_id: "c".into(), resource: "r".into(), scope: String::new() }
    }

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn pkce_s256_matches_the_rfc_example() {
        assert!(pkce_matches(VERIFIER, CHALLENGE));
        assert!(!pkce_matches("short", CHALLENGE));
        assert!(!pkce_matches(&VERIFIER.replace('d', "e"), CHALLENGE));
    }

    #[test]
    fn a_replayed_code_revokes_what_it_issued() {
        let g = Grants::default();
        let ttl = Duration::from_secs(60);
        let code = g.code(grant(), "https://a/cb", CHALLENGE, ttl);
        assert_eq!(g.redeem(&code, "c", "https://a/cb", VERIFIER, ttl).err(), None);
        let code2 = g.code(grant(), "https://a/cb", CHALLENGE, ttl);
        let (_, refresh) = g.redeem(&code2, "c", "https://a/cb", VERIFIER, ttl).unwrap();
        assert_eq!(g.redeem(&code2, "c", "https://a/cb", VERIFIER, ttl).err(), Some(GrantError::Replayed));
        assert_eq!(g.rotate(&refresh, "c", ttl).err(), Some(GrantError::Unknown), "the family is gone");
    }

    #[test]
    fn a_code_is_bound_to_its_client_redirect_and_verifier() {
        let g = Grants::default();
        let ttl = Duration::from_secs(60);
        let code = g.code(grant(), "https://a/cb", CHALLENGE, ttl);
        assert_eq!(g.redeem(&code, "other", "https://a/cb", VERIFIER, ttl).err(), Some(GrantError::Mismatch));
        let code = g.code(grant(), "https://a/cb", CHALLENGE, ttl);
        assert_eq!(g.redeem(&code, "c", "https://a/cb2", VERIFIER, ttl).err(), Some(GrantError::Mismatch));
        let code = g.code(grant(), "https://a/cb", CHALLENGE, ttl);
        let wrong = "x".repeat(43);
        assert_eq!(g.redeem(&code, "c", "https://a/cb", &wrong, ttl).err(), Some(GrantError::Pkce));
    }

    #[test]
    fn a_reused_refresh_token_revokes_its_family() {
        let g = Grants::default();
        let ttl = Duration::from_secs(60);
        let code = g.code(grant(), "https://a/cb", CHALLENGE, ttl);
        let (_, r1) = g.redeem(&code, "c", "https://a/cb", VERIFIER, ttl).unwrap();
        let (_, r2) = g.rotate(&r1, "c", ttl).unwrap();
        assert_eq!(g.rotate(&r1, "c", ttl).err(), Some(GrantError::Replayed));
        assert_eq!(
            g.rotate(&r2, "c", ttl).err(),
            Some(GrantError::Unknown),
            "the thief's and the user's tokens both die"
        );
    }
}
