//! Local accounts (the development default): names with argon2 hashes.

use std::collections::HashMap;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use parking_lot::RwLock;

/// The local accounts.
#[derive(Default)]
pub struct Users {
    hashes: RwLock<HashMap<String, String>>,
}

impl Users {
    /// Adds (or replaces) an account; only the hash is kept.
    pub fn add(&self, name: &str, password: &str) {
        self.hashes.write().insert(name.to_owned(), hash(password));
    }

    /// Whether `password` is `name`'s. Unknown names cost a hash too, so
    /// timing does not tell which names exist.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let stored = self.hashes.read().get(name).cloned();
        let hash =
            stored.as_deref().unwrap_or_else(|| DUMMY.get_or_init(|| hash(&hex::encode(rand::random::<[u8; 16]>()))));
        let ok =
            PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
        ok && stored.is_some()
    }
}

fn hash(password: &str) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes encode");
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 hashes").to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_right_password_passes() {
        let u = super::Users::default();
        u.add("alice", "correct horse");
        assert!(u.verify("alice", "correct horse"));
        assert!(!u.verify("alice", "wrong"));
        assert!(!u.verify("bob", "correct horse"));
    }
}
