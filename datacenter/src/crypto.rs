//! Sealing secrets at rest (component secrets here, datacenter tokens in the
//! console): XChaCha20-Poly1305 with a 256-bit key kept in a file beside the
//! data, readable only by its owner. A stolen database alone reveals nothing.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use std::path::Path;

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key file {0}: {1}")]
    KeyFile(String, std::io::Error),
    #[error("key file {0} is not 32 bytes")]
    KeyLength(String),
    #[error("sealed value is damaged or was sealed with another key")]
    Open,
}

/// A random secret of `len` characters from [a-zA-Z0-9] (webhook secrets).
pub fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// Loads the key at `path`, creating it (mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<SecretBox, CryptoError> {
        let shown = path.display().to_string();
        let key = match std::fs::read(path) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut k);
                write_private(path, &k).map_err(|e| CryptoError::KeyFile(shown.clone(), e))?;
                k
            }
            Err(e) => return Err(CryptoError::KeyFile(shown, e)),
        };
        if key.len() != 32 {
            return Err(CryptoError::KeyLength(shown));
        }
        Ok(SecretBox {
            cipher: XChaCha20Poly1305::new_from_slice(&key).expect("32-byte key"),
        })
    }

    /// Nonce and ciphertext, base64-encoded for a text column.
    pub fn seal(&self, plain: &str) -> String {
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plain.as_bytes())
            .expect("encryption cannot fail");
        let mut out = nonce.to_vec();
        out.extend(ct);
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, out)
    }

    pub fn open(&self, sealed: &str) -> Result<String, CryptoError> {
        let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sealed)
            .map_err(|_| CryptoError::Open)?;
        if raw.len() < 24 {
            return Err(CryptoError::Open);
        }
        let (nonce, ct) = raw.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Open)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_detects_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        let b = SecretBox::load_or_create(&key).unwrap();
        let sealed = b.seal("hunter2");
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, b.seal("hunter2"), "fresh nonce each time");
        assert_eq!(
            SecretBox::load_or_create(&key)
                .unwrap()
                .open(&sealed)
                .unwrap(),
            "hunter2"
        );
        let mut bad =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &sealed).unwrap();
        *bad.last_mut().unwrap() ^= 1;
        assert!(b
            .open(&base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                bad
            ))
            .is_err());
        let other = SecretBox::load_or_create(&dir.path().join("other")).unwrap();
        assert!(other.open(&sealed).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
