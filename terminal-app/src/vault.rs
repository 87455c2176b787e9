//! Card data at rest: what the terminal must keep until the host acknowledges it (a reversal's
//! message, an advice) is sealed with AES-256-GCM under a device key.
//!
//! The device key is 32 random bytes in `<data>/device.key`, mode 0600. On a device this is
//! where a secure element or TPM-sealed key belongs; the interface stays the same.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use zeroize::Zeroizing;

/// Vault errors.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The key file could not be read or created.
    #[error("device key {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is not 32 bytes.
    #[error("device key {0}: not a 32-byte key")]
    BadKey(String),
    /// No random bytes from the OS.
    #[error("no random source: {0}")]
    Random(String),
    /// Decryption failed: wrong key or tampered data.
    #[error("sealed data does not open (wrong device key or tampered)")]
    Open,
}

/// Seals and opens data with the device key.
pub struct Vault {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(<device key hidden>)")
    }
}

impl Vault {
    /// Opens the vault with the key at `path`, creating a new random key (mode 0600) if there
    /// is none.
    pub fn open(path: &Path) -> Result<Vault, VaultError> {
        let io = |source| VaultError::Io {
            path: path.display().to_string(),
            source,
        };
        if path.exists() {
            let bytes = Zeroizing::new(std::fs::read(path).map_err(io)?);
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| VaultError::BadKey(path.display().to_string()))?;
            return Ok(Vault {
                key: Zeroizing::new(key),
            });
        }
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|e| VaultError::Random(e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        write_secret(path, key.as_ref()).map_err(io)?;
        Ok(Vault { key })
    }

    /// Seals `plain`; `context` (e.g. the journal row) is authenticated but not stored in the
    /// output, so sealed data cannot be moved to another row. Output: nonce (12) || ciphertext.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| VaultError::Random(e.to_string()))?;
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.key.as_ref()));
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .map_err(|_| VaultError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens sealed data.
    pub fn open_sealed(
        &self,
        sealed: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if sealed.len() < 12 + 16 {
            return Err(VaultError::Open);
        }
        let (nonce, ct) = sealed.split_at(12);
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.key.as_ref()));
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Open)
    }
}

#[cfg(unix)]
fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_secret(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_refuses_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device.key");
        let v = Vault::open(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let sealed = v.seal(b"4761739001010119", b"row 7").unwrap();
        assert!(!sealed.windows(16).any(|w| w == b"4761739001010119"));
        assert_eq!(
            v.open_sealed(&sealed, b"row 7").unwrap().as_slice(),
            b"4761739001010119"
        );
        assert!(
            v.open_sealed(&sealed, b"row 8").is_err(),
            "bound to its row"
        );
        let mut t = sealed.clone();
        t[20] ^= 1;
        assert!(v.open_sealed(&t, b"row 7").is_err());
        // The same key file opens it again.
        let again = Vault::open(&path).unwrap();
        assert_eq!(
            again.open_sealed(&sealed, b"row 7").unwrap().as_slice(),
            b"4761739001010119"
        );
        std::fs::write(dir.path().join("short.key"), [1, 2, 3]).unwrap();
        assert!(Vault::open(&dir.path().join("short.key")).is_err());
    }
}
