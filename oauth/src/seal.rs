//! Sealing secrets at rest: AES-256-GCM with a random nonce, the row's
//! identity as associated data (a sealed value moved to another row no
//! longer opens), and the key's id stored beside it so keys can rotate.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Why sealing keys could not be had, or a value not opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Reading or writing the key file.
    #[error("secret key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The key file or the key from the environment is not 32 bytes of base64.
    #[error("secret key {0} must be 32 bytes, base64url-encoded, one per line")]
    BadKey(String),
    /// Sealed with a key this berth does not have (or tampered with).
    #[error("a sealed value cannot be opened: unknown key or tampered data")]
    Open,
}

/// The sealing keys; the first seals, all open.
pub struct Sealer {
    keys: Vec<(String, Aes256Gcm)>,
}

impl Sealer {
    /// Keys from `path` (one base64url key per line, newest first), created
    /// with one fresh key, owner-only, if missing.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        let io = |source| SealError::Io { path: path.to_path_buf(), source };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Zeroizing::new(B64.encode(rand::random::<[u8; 32]>()));
                crate::keys::write_private(path, format!("{}\n", key.as_str()).as_bytes()).map_err(io)?;
                Zeroizing::new(key.to_string())
            }
            Err(e) => return Err(io(e)),
        };
        Self::from_lines(&text, &path.display().to_string())
    }

    /// Keys given as text, one per line, newest first (`BERTH_SECRET_KEYS`).
    pub fn from_lines(text: &str, origin: &str) -> Result<Self, SealError> {
        let keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|line| {
                let bytes = Zeroizing::new(B64.decode(line).map_err(|_| SealError::BadKey(origin.into()))?);
                if bytes.len() != 32 {
                    return Err(SealError::BadKey(origin.into()));
                }
                let id = hex::encode(&Sha256::digest(bytes.as_slice())[..4]);
                Ok((id, Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes))))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SealError::BadKey(origin.into()));
        }
        Ok(Self { keys })
    }

    /// `v1.<key id>.<nonce>.<ciphertext>`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let (id, cipher) = &self.keys[0];
        let nonce = rand::random::<[u8; 12]>();
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .expect("AES-GCM encryption does not fail for in-memory input");
        format!("v1.{id}.{}.{}", B64.encode(nonce), B64.encode(ct))
    }

    /// The plaintext of a sealed value, if this berth's keys open it for `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let mut parts = sealed.split('.');
        let (Some("v1"), Some(id), Some(nonce), Some(ct), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Open);
        };
        let (_, cipher) = self.keys.iter().find(|(k, _)| k == id).ok_or(SealError::Open)?;
        let nonce = B64.decode(nonce).ok().filter(|n| n.len() == 12).ok_or(SealError::Open)?;
        let ct = B64.decode(ct).map_err(|_| SealError::Open)?;
        cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret-keys");
        let a = Sealer::load_or_create(&path).unwrap();
        let sealed = a.seal(b"canary", b"row-1");
        assert!(!sealed.contains("canary"));
        assert_eq!(a.open(&sealed, b"row-1").unwrap().as_slice(), b"canary");
        assert!(a.open(&sealed, b"row-2").is_err(), "moved to another row");
        let reloaded = Sealer::load_or_create(&path).unwrap();
        assert_eq!(reloaded.open(&sealed, b"row-1").unwrap().as_slice(), b"canary");
        let other = Sealer::from_lines(&B64.encode([7u8; 32]), "test").unwrap();
        assert!(other.open(&sealed, b"row-1").is_err(), "another key");
        // Rotation: a new key first, the old one after, still opens old values.
        let old = std::fs::read_to_string(&path).unwrap();
        let rotated = Sealer::from_lines(&format!("{}\n{old}", B64.encode([9u8; 32])), "test").unwrap();
        assert_eq!(rotated.open(&sealed, b"row-1").unwrap().as_slice(), b"canary");
        assert!(rotated.seal(b"x", b"r").starts_with(&format!("v1.{}.", rotated.keys[0].0)));
        let mut tampered = sealed.clone();
        tampered.push('A');
        assert!(a.open(&tampered, b"row-1").is_err());
    }
}
