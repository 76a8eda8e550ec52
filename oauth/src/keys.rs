//! Signing keys for access tokens: Ed25519, each with a key id, published as
//! a JWKS. The newest key signs; older ones still verify until they age out,
//! so a rotation never invalidates tokens already handed out.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Why the keys could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The key file is not what berth wrote.
    #[error("key file {0} is corrupt")]
    Corrupt(PathBuf),
}

#[derive(Clone, Serialize, Deserialize)]
struct Stored {
    kid: String,
    secret: String,
    created: u64,
}

/// One key.
#[derive(Clone)]
struct Key {
    kid: String,
    signing: SigningKey,
    created: u64,
}

impl Key {
    fn generate(now: u64) -> Self {
        let signing = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let kid = hex::encode(&sha2_256(signing.verifying_key().as_bytes())[..8]);
        Self { kid, signing, created: now }
    }

    fn public_x(&self) -> String {
        B64.encode(self.signing.verifying_key().as_bytes())
    }
}

fn sha2_256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// The signing keys, newest first.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

/// How many retired keys still verify.
const KEEP_RETIRED: usize = 2;

impl Keyring {
    /// Keys that live only as long as this process (tests, `--ephemeral`).
    pub fn ephemeral() -> Self {
        Self { keys: vec![Key::generate(now())] }
    }

    /// The keys in `path` (created on first use, owner-only), with a new key
    /// added when the newest is older than `rotate_after`.
    pub fn load_or_create(path: &Path, rotate_after: Duration) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: path.to_path_buf(), source };
        let mut keys = match std::fs::read_to_string(path) {
            Ok(text) => {
                let stored: Vec<Stored> = serde_json::from_str(&text).map_err(|_| KeyError::Corrupt(path.into()))?;
                stored
                    .into_iter()
                    .map(|s| {
                        let bytes: [u8; 32] = hex::decode(&s.secret)
                            .ok()
                            .and_then(|b| b.try_into().ok())
                            .ok_or_else(|| KeyError::Corrupt(path.into()))?;
                        Ok(Key { kid: s.kid, signing: SigningKey::from_bytes(&bytes), created: s.created })
                    })
                    .collect::<Result<Vec<_>, KeyError>>()?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let stale = keys.first().is_none_or(|k| now().saturating_sub(k.created) >= rotate_after.as_secs());
        if stale {
            keys.insert(0, Key::generate(now()));
            keys.truncate(1 + KEEP_RETIRED);
            let stored: Vec<Stored> = keys
                .iter()
                .map(|k| Stored { kid: k.kid.clone(), secret: hex::encode(k.signing.to_bytes()), created: k.created })
                .collect();
            write_private(path, &serde_json::to_vec(&stored).map_err(|_| KeyError::Corrupt(path.into()))?)
                .map_err(io)?;
            tracing::info!(kid = %keys[0].kid, "new token signing key");
        }
        Ok(Self { keys })
    }

    /// The key that signs, and its id.
    pub(crate) fn signer(&self) -> (String, EncodingKey) {
        let k = &self.keys[0];
        let der = k.signing.to_pkcs8_der().expect("an Ed25519 key always encodes");
        (k.kid.clone(), EncodingKey::from_ed_der(der.as_bytes()))
    }

    /// The key with id `kid`, if it still verifies.
    pub(crate) fn verifier(&self, kid: &str) -> Option<DecodingKey> {
        let k = self.keys.iter().find(|k| k.kid == kid)?;
        DecodingKey::from_ed_components(&k.public_x()).ok()
    }

    /// The public keys, as a JSON Web Key Set.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|k| json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.kid, "x": k.public_x()}))
            .collect();
        json!({ "keys": keys })
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Writes `bytes` to `path` readable by the owner only, atomically.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let a = Keyring::load_or_create(&path, Duration::from_secs(3600)).unwrap();
        let b = Keyring::load_or_create(&path, Duration::from_secs(3600)).unwrap();
        assert_eq!(a.signer().0, b.signer().0, "a fresh key is reused");
        let c = Keyring::load_or_create(&path, Duration::ZERO).unwrap();
        assert_ne!(c.signer().0, a.signer().0, "an old key is rotated");
        assert!(c.verifier(&a.signer().0).is_some(), "the retired key still verifies");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
