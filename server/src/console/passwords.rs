//! Password hashing (argon2id) and API-token secrets. Hashing is deliberately
//! slow, so it runs on the blocking pool instead of an async worker thread.

use crate::error::{Error, Result};
use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

pub const MIN_PASSWORD: usize = 8;
/// Bounds the work an attacker can make argon2 do per request.
pub const MAX_PASSWORD: usize = 256;

pub fn validate_new_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(Error::Invalid(format!(
            "The password needs at least {MIN_PASSWORD} characters."
        )));
    }
    if password.len() > MAX_PASSWORD {
        return Err(Error::Invalid(format!(
            "The password may have at most {MAX_PASSWORD} bytes."
        )));
    }
    Ok(())
}

pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(Error::internal)
    })
    .await
    .map_err(Error::internal)?
}

/// Checks `password` against `stored`. With no stored hash (unknown user) it
/// still does the same work, so response time does not reveal which
/// usernames exist.
pub async fn verify(password: String, stored: Option<String>) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let stored = stored.unwrap_or_else(|| dummy_hash().to_string());
        let parsed = PasswordHash::new(&stored).map_err(Error::internal)?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && password.len() <= MAX_PASSWORD)
    })
    .await
    .map_err(Error::internal)?
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"not a real password", &salt)
            .expect("argon2")
            .to_string()
    })
}

const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

pub fn random_string(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A new API token: `cpt_` and 40 random characters (~230 bits).
pub fn new_token() -> String {
    format!("cpt_{}", random_string(40))
}

/// Tokens carry enough entropy that a fast hash is safe; it lets a request be
/// authenticated with one indexed lookup instead of an argon2 run.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let a = hash("correct horse".into()).await.unwrap();
        let b = hash("correct horse".into()).await.unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify("correct horse".into(), Some(a.clone()))
            .await
            .unwrap());
        assert!(!verify("wrong horse".into(), Some(a)).await.unwrap());
        assert!(!verify("anything".into(), None).await.unwrap());
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert!(validate_new_password("short").is_err());
        assert!(validate_new_password(&"x".repeat(MAX_PASSWORD + 1)).is_err());
        assert!(validate_new_password("long enough").is_ok());
    }

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let t = new_token();
        assert!(t.starts_with("cpt_") && t.len() == 44);
        assert_ne!(t, new_token());
        assert_eq!(token_hash(&t), token_hash(&t));
        assert_eq!(token_hash(&t).len(), 64);
    }
}
