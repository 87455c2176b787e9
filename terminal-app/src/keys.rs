//! The device's PIN key store: one AES DUKPT initial key (ANSI X9.24-3-2017, AES-128) with
//! its initial key ID, sealed under the device key in `<data>/dukpt.sealed` (0600), and the
//! transaction counter in the journal (`counters`, name `dukpt_counter`). A PIN key is
//! derived only after the next counter has been written to the journal (SQLite with
//! `synchronous=FULL`): a crash can skip a counter, never reuse one, so no KSN ever
//! encrypts two PINs, across restarts too.

use std::path::Path;

use acquirer::pin::{Key16, PinError, aes_dukpt};
use zeroize::Zeroizing;

use crate::journal::{Journal, JournalError};
use crate::vault::Vault;

const CONTEXT: &[u8] = b"kassa dukpt initial key";
const COUNTER: &str = "dukpt_counter";

/// Why no PIN key could be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No initial key has been loaded (`kassa keys load`).
    #[error("no PIN key loaded (kassa keys load)")]
    NotLoaded,
    /// The sealed key could not be read (another device key, a damaged file).
    #[error("the sealed PIN key cannot be read: {0}")]
    Unreadable(String),
    /// DUKPT refused: the counter is exhausted, or the input is malformed.
    #[error(transparent)]
    Dukpt(#[from] PinError),
    /// The journal holding the counter.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The key file.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl KeyError {
    /// A stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            KeyError::NotLoaded => "pin_key_missing",
            KeyError::Unreadable(_) => "pin_key_unreadable",
            KeyError::Dukpt(PinError::Exhausted) => "dukpt_exhausted",
            KeyError::Dukpt(_) => "dukpt",
            KeyError::Journal(_) => "journal",
            KeyError::Io(_) => "io",
        }
    }
}

/// Where the sealed initial key lives.
pub fn key_file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("dukpt.sealed")
}

/// Loads an initial key and the KSN it starts from (counter usually 0): the key sealed to
/// disk, the counter reset in the journal.
pub fn load(
    data_dir: &Path,
    vault: &Vault,
    journal: &mut Journal,
    initial_key: &Key16,
    ksn: &aes_dukpt::Ksn,
) -> Result<(), KeyError> {
    let mut plain = Zeroizing::new(Vec::with_capacity(24));
    plain.extend_from_slice(&initial_key.0);
    plain.extend_from_slice(&ksn.initial_key_id);
    let sealed = vault
        .seal(&plain, CONTEXT)
        .map_err(|e| KeyError::Unreadable(e.to_string()))?;
    let path = key_file(data_dir);
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&sealed)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    journal.set_counter(COUNTER, i64::from(ksn.counter))?;
    Ok(())
}

fn read(data_dir: &Path, vault: &Vault) -> Result<(Key16, [u8; 8]), KeyError> {
    let sealed = match std::fs::read(key_file(data_dir)) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(KeyError::NotLoaded),
        Err(e) => return Err(e.into()),
    };
    let plain = Zeroizing::new(
        vault
            .open_sealed(&sealed, CONTEXT)
            .map_err(|e| KeyError::Unreadable(e.to_string()))?,
    );
    if plain.len() != 24 {
        return Err(KeyError::Unreadable("wrong length".into()));
    }
    let key = Key16::from_slice(&plain[..16])?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&plain[16..]);
    Ok((key, id))
}

/// What `kassa keys status` shows: never the key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// The initial key ID, hex.
    pub initial_key_id: String,
    /// The last counter used (or loaded).
    pub counter: u32,
    /// The KSN the next PIN will be encrypted under, hex.
    pub next_ksn: Option<String>,
}

/// The loaded key's ID and counter.
pub fn status(data_dir: &Path, vault: &Vault, journal: &Journal) -> Result<Status, KeyError> {
    let (_, id) = read(data_dir, vault)?;
    let counter = u32::try_from(journal.counter(COUNTER)?).unwrap_or(u32::MAX);
    let next = aes_dukpt::next_counter(counter).ok().map(|c| {
        let k = aes_dukpt::Ksn {
            initial_key_id: id,
            counter: c,
        };
        emv::util::hex(&k.to_bytes())
    });
    Ok(Status {
        initial_key_id: emv::util::hex(&id),
        counter,
        next_ksn: next,
    })
}

/// Advances the counter (written to the journal first), then derives that KSN's PIN key.
pub fn next_pin_key(
    data_dir: &Path,
    vault: &Vault,
    journal: &mut Journal,
) -> Result<(aes_dukpt::Ksn, Key16), KeyError> {
    let (ik, id) = read(data_dir, vault)?;
    let last = u32::try_from(journal.counter(COUNTER)?).map_err(|_| PinError::Exhausted)?;
    let counter = aes_dukpt::next_counter(last)?;
    journal.set_counter(COUNTER, i64::from(counter))?;
    let ksn = aes_dukpt::Ksn {
        initial_key_id: id,
        counter,
    };
    let key = aes_dukpt::working_key(&ik, &ksn, aes_dukpt::Usage::PinEncryption)?;
    Ok((ksn, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        emv::util::unhex(s).unwrap()
    }

    #[test]
    fn no_ksn_is_used_twice_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ik = Key16::from_slice(&h("1273671EA26AC29AFA4D1084127652A1")).unwrap();
        let ksn = aes_dukpt::Ksn::from_slice(&h("123456789012345600000000")).unwrap();
        let mut seen = Vec::new();
        {
            let vault = Vault::open(&d.join("device.key")).unwrap();
            let mut journal = Journal::open(&d.join("journal.db")).unwrap();
            assert!(matches!(
                next_pin_key(d, &vault, &mut journal),
                Err(KeyError::NotLoaded)
            ));
            load(d, &vault, &mut journal, &ik, &ksn).unwrap();
            for _ in 0..3 {
                seen.push(next_pin_key(d, &vault, &mut journal).unwrap());
            }
        }
        // The published PIN keys for counters 1 and 2 (X9.24-3 supplement).
        assert_eq!(seen[0].0.counter, 1);
        assert_eq!(seen[0].1.0.to_vec(), h("AF8CB133A78F8DC2D1359F18527593FB"));
        assert_eq!(seen[1].1.0.to_vec(), h("D30BDC73EC9714B000BEC66BDB7B6D09"));
        // A restart: the counter continues, it does not start again.
        let vault = Vault::open(&d.join("device.key")).unwrap();
        let mut journal = Journal::open(&d.join("journal.db")).unwrap();
        for _ in 0..3 {
            seen.push(next_pin_key(d, &vault, &mut journal).unwrap());
        }
        let counters: Vec<u32> = seen.iter().map(|(k, _)| k.counter).collect();
        assert_eq!(counters, vec![1, 2, 3, 4, 5, 6]);
        let s = status(d, &vault, &journal).unwrap();
        assert_eq!(s.counter, 6);
        assert_eq!(s.next_ksn.as_deref(), Some("123456789012345600000007"));
        // The key file is sealed: the key's bytes are not in it.
        let file = std::fs::read(key_file(d)).unwrap();
        assert!(!file.windows(16).any(|w| w == &ik.0[..]));
        // Near the end of the counter space: exhausted is an error with its code.
        journal.set_counter(COUNTER, 0xFFFF_0000).unwrap();
        let e = next_pin_key(d, &vault, &mut journal).unwrap_err();
        assert_eq!(e.code(), "dukpt_exhausted");
    }
}
