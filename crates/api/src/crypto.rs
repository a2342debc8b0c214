//! Secrets at rest: AES-256-GCM under the master key, with the owning row's id as associated
//! data so a sealed value cannot be moved to another row. The master key comes from
//! `PMAP_MASTER_KEY` or is generated once into the data directory with mode 0600.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("PMAP_MASTER_KEY must be base64 of exactly 32 bytes")]
    BadKey,
    #[error("cannot read or create the master key file {path}: {source}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a sealed secret could not be opened (wrong master key or damaged data)")]
    Open,
}

/// Seals and opens secrets. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

impl Cipher {
    pub fn from_key(key: &[u8]) -> Result<Self, CryptoError> {
        let aead = Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::BadKey)?;
        Ok(Self { aead })
    }

    pub fn from_base64(key: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        Self::from_key(&bytes)
    }

    /// The configured key, or the one kept in `data_dir/master.key`, generated on first start.
    pub fn load_or_generate(
        configured: Option<&str>,
        data_dir: &Path,
    ) -> Result<Self, CryptoError> {
        if let Some(key) = configured {
            return Self::from_base64(key);
        }
        let path = data_dir.join("master.key");
        let key_file_error = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => return Self::from_base64(&text),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(key_file_error(e)),
            Err(_) => {}
        }

        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        write_private(&path, STANDARD.encode(key).as_bytes()).map_err(key_file_error)?;
        tracing::warn!(
            path = %path.display(),
            "generated a new master key; back it up: without it stored secrets cannot be read"
        );
        Self::from_key(&key)
    }

    /// Encrypts `plaintext` bound to `owner` (a row id). Output: nonce || ciphertext.
    pub fn seal(&self, owner: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .aead
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: owner,
                },
            )
            .expect("AES-GCM encryption cannot fail for inputs under 64 GiB");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, owner: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.aead
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner,
                },
            )
            .map_err(|_| CryptoError::Open)
    }
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_owner() {
        let cipher = Cipher::from_key(&[9; 32]).unwrap();
        let sealed = cipher.seal(b"row-1", b"s3cret");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(cipher.open(b"row-1", &sealed).unwrap(), b"s3cret");
        assert!(cipher.open(b"row-2", &sealed).is_err());
        let other = Cipher::from_key(&[8; 32]).unwrap();
        assert!(other.open(b"row-1", &sealed).is_err());
    }

    #[test]
    fn generated_key_is_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("pmap-key-{}", uuid::Uuid::new_v4()));
        let first = Cipher::load_or_generate(None, &dir).unwrap();
        let sealed = first.seal(b"x", b"value");
        let second = Cipher::load_or_generate(None, &dir).unwrap();
        assert_eq!(second.open(b"x", &sealed).unwrap(), b"value");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            Cipher::from_base64("c2hvcnQ="),
            Err(CryptoError::BadKey)
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
