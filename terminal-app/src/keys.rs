//! The device's PIN key store: one DUKPT initial key, sealed under the device key in
//! `<data>/dukpt.sealed` (0600), and the transaction counter in the journal (`counters`, name
//! `dukpt_counter`). Either scheme an acquirer asks for:
//!
//! - AES DUKPT (ANSI X9.24-3-2017, AES-128): the initial key and its 8-byte initial key ID;
//!   PINs go as ISO 9564-1 format 4 blocks with 12-byte KSNs.
//! - TDES DUKPT (ANSI X9.24-1-2009): the IPEK and its 10-byte KSN; PINs go as format 0
//!   blocks with 10-byte KSNs.
//!
//! A PIN key is derived only after the next counter has been written to the journal (SQLite
//! with `synchronous=FULL`): a crash can skip a counter, never reuse one, so no KSN ever
//! encrypts two PINs, across restarts too.

use std::path::Path;

use acquirer::pin::{EncipheredPin, Key16, PinError, aes_dukpt, tdes_dukpt};
use zeroize::Zeroizing;

use crate::journal::{Journal, JournalError};
use crate::vault::Vault;

const CONTEXT: &[u8] = b"kassa dukpt initial key";
const COUNTER: &str = "dukpt_counter";
/// The sealed record: a scheme byte (`A` AES, `T` TDES), a flags byte (bit 0: a test key
/// derived from the simulator's published BDK), the key, then the AES initial key ID or the
/// TDES KSN. (A 24-byte record without the two bytes is an AES key from before.)
const AES_TAG: u8 = b'A';
const TDES_TAG: u8 = b'T';
const FLAG_TEST: u8 = 0x01;

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

/// An initial key to load (`Debug` hides the key).
#[derive(Debug)]
pub enum InitialKey {
    /// AES DUKPT: the initial key and the KSN it starts from (counter usually 0).
    Aes(Key16, aes_dukpt::Ksn),
    /// TDES DUKPT: the IPEK and its KSN (the counter bits usually 0).
    Tdes(Key16, [u8; 10]),
}

/// Where the sealed initial key lives.
pub fn key_file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("dukpt.sealed")
}

/// The identity of a loaded key: its scheme and initial key ID (TDES: the KSN without its
/// counter).
fn identity(key: &InitialKey) -> Vec<u8> {
    match key {
        InitialKey::Aes(_, ksn) => [&[AES_TAG][..], &ksn.initial_key_id].concat(),
        InitialKey::Tdes(_, ksn) => [&[TDES_TAG][..], &tdes_dukpt::with_counter(ksn, 0)].concat(),
    }
}

/// Loads an initial key: the key sealed to disk, the counter set from its KSN in the journal.
/// `test` marks a key derived from the simulator's published BDK: the engine uses it only
/// with the built-in simulator. Loading the key that is already loaded again never moves its
/// counter back (a KSN is never reused).
pub fn load(
    data_dir: &Path,
    vault: &Vault,
    journal: &mut Journal,
    key: &InitialKey,
    test: bool,
) -> Result<(), KeyError> {
    let mut plain = Zeroizing::new(Vec::with_capacity(28));
    let flags = if test { FLAG_TEST } else { 0 };
    let counter = match key {
        InitialKey::Aes(k, ksn) => {
            plain.extend_from_slice(&[AES_TAG, flags]);
            plain.extend_from_slice(&k.0);
            plain.extend_from_slice(&ksn.initial_key_id);
            ksn.counter
        }
        InitialKey::Tdes(k, ksn) => {
            plain.extend_from_slice(&[TDES_TAG, flags]);
            plain.extend_from_slice(&k.0);
            plain.extend_from_slice(&tdes_dukpt::with_counter(ksn, 0));
            u32::from_be_bytes([0, ksn[7] & 0x1F, ksn[8], ksn[9]])
        }
    };
    let same_key_loaded = read(data_dir, vault)
        .map(|(old, _)| identity(&old) == identity(key))
        .unwrap_or(false);
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
    let loaded = i64::from(counter);
    journal
        .advance_counter(COUNTER, |last| {
            Ok::<_, KeyError>(if same_key_loaded {
                last.max(loaded)
            } else {
                loaded
            })
        })?
        .map(|_| ())
}

/// The sealed key and whether it is a test key.
fn read(data_dir: &Path, vault: &Vault) -> Result<(InitialKey, bool), KeyError> {
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
    let aes = |key: &[u8], id: &[u8]| -> Result<InitialKey, KeyError> {
        let mut initial_key_id = [0u8; 8];
        initial_key_id.copy_from_slice(id);
        Ok(InitialKey::Aes(
            Key16::from_slice(key)?,
            aes_dukpt::Ksn {
                initial_key_id,
                counter: 0,
            },
        ))
    };
    match (plain.len(), plain.first(), plain.get(1)) {
        (24, _, _) => Ok((aes(&plain[..16], &plain[16..])?, false)),
        (26, Some(&AES_TAG), Some(&flags)) => {
            Ok((aes(&plain[2..18], &plain[18..])?, flags & FLAG_TEST != 0))
        }
        (28, Some(&TDES_TAG), Some(&flags)) => {
            let mut ksn = [0u8; 10];
            ksn.copy_from_slice(&plain[18..]);
            Ok((
                InitialKey::Tdes(Key16::from_slice(&plain[2..18])?, ksn),
                flags & FLAG_TEST != 0,
            ))
        }
        _ => Err(KeyError::Unreadable("not a key record".into())),
    }
}

/// What `kassa keys status` shows: never the key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    /// `aes` (X9.24-3, format 4) or `tdes` (X9.24-1, format 0).
    pub scheme: &'static str,
    /// The initial key ID (AES), or the KSN with its counter cleared (TDES), hex.
    pub initial_key_id: String,
    /// The last counter used (or loaded).
    pub counter: u32,
    /// The KSN the next PIN will be encrypted under, hex.
    pub next_ksn: Option<String>,
    /// A test key from the simulator's published BDK (`kassa keys load --test`): used only
    /// with the built-in simulator, never with a real acquirer.
    pub test: bool,
}

fn ksn_for(key: &InitialKey, counter: u32) -> Vec<u8> {
    match key {
        InitialKey::Aes(_, ksn) => aes_dukpt::Ksn {
            initial_key_id: ksn.initial_key_id,
            counter,
        }
        .to_bytes()
        .to_vec(),
        InitialKey::Tdes(_, ksn) => tdes_dukpt::with_counter(ksn, counter).to_vec(),
    }
}

fn next_counter(key: &InitialKey, last: u32) -> Result<u32, PinError> {
    match key {
        InitialKey::Aes(..) => aes_dukpt::next_counter(last),
        InitialKey::Tdes(..) => tdes_dukpt::next_counter(last),
    }
}

/// The loaded key's scheme, ID and counter.
pub fn status(data_dir: &Path, vault: &Vault, journal: &Journal) -> Result<Status, KeyError> {
    let (key, test) = read(data_dir, vault)?;
    let counter = u32::try_from(journal.counter(COUNTER)?).unwrap_or(u32::MAX);
    let next = next_counter(&key, counter)
        .ok()
        .map(|c| emv::util::hex(&ksn_for(&key, c)));
    let (scheme, id) = match &key {
        InitialKey::Aes(_, ksn) => ("aes", emv::util::hex(&ksn.initial_key_id)),
        InitialKey::Tdes(_, ksn) => ("tdes", emv::util::hex(ksn)),
    };
    Ok(Status {
        scheme,
        initial_key_id: id,
        counter,
        next_ksn: next,
        test,
    })
}

/// One transaction's PIN key with its KSN (`Debug` hides the key).
#[derive(Debug)]
pub enum PinKey {
    /// AES DUKPT PIN encryption key: format 4.
    Aes(aes_dukpt::Ksn, Key16),
    /// TDES DUKPT PIN key: format 0.
    Tdes([u8; 10], Key16),
}

impl PinKey {
    /// The KSN, as field 53 carries it.
    #[cfg(test)]
    pub fn ksn(&self) -> Vec<u8> {
        match self {
            PinKey::Aes(ksn, _) => ksn.to_bytes().to_vec(),
            PinKey::Tdes(ksn, _) => ksn.to_vec(),
        }
    }

    /// Enciphers `pin` for `pan`: format 4 with the random `fill` under an AES key, format 0
    /// under a TDES key.
    pub fn encipher(
        &self,
        pin: &str,
        pan: &str,
        fill: &[u8; 8],
    ) -> Result<EncipheredPin, PinError> {
        Ok(match self {
            PinKey::Aes(ksn, key) => EncipheredPin::Format4 {
                block: acquirer::pin::format4(pin, pan, key, fill)?,
                ksn: ksn.to_bytes(),
            },
            PinKey::Tdes(ksn, key) => EncipheredPin::Format0 {
                block: acquirer::pin::format0(pin, pan, key)?,
                ksn: *ksn,
            },
        })
    }
}

/// Advances the counter (read, advanced and written in one locked journal transaction, so
/// two processes never share a KSN), then derives that KSN's PIN key.
pub fn next_pin_key(
    data_dir: &Path,
    vault: &Vault,
    journal: &mut Journal,
) -> Result<PinKey, KeyError> {
    let (key, _) = read(data_dir, vault)?;
    let counter = journal.advance_counter(COUNTER, |last| {
        let last = u32::try_from(last).map_err(|_| PinError::Exhausted)?;
        next_counter(&key, last).map(i64::from)
    })??;
    let counter = u32::try_from(counter).map_err(|_| PinError::Exhausted)?;
    Ok(match &key {
        InitialKey::Aes(ik, ksn) => {
            let ksn = aes_dukpt::Ksn {
                initial_key_id: ksn.initial_key_id,
                counter,
            };
            let k = aes_dukpt::working_key(ik, &ksn, aes_dukpt::Usage::PinEncryption)?;
            PinKey::Aes(ksn, k)
        }
        InitialKey::Tdes(ipek, ksn) => {
            let ksn = tdes_dukpt::with_counter(ksn, counter);
            PinKey::Tdes(ksn, tdes_dukpt::pin_key(ipek, &ksn)?)
        }
    })
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
            load(
                d,
                &vault,
                &mut journal,
                &InitialKey::Aes(ik.clone(), ksn),
                false,
            )
            .unwrap();
            for _ in 0..3 {
                seen.push(next_pin_key(d, &vault, &mut journal).unwrap());
            }
        }
        // The published PIN keys for counters 1 and 2 (X9.24-3 supplement).
        let PinKey::Aes(k1, key1) = &seen[0] else {
            panic!("an AES key")
        };
        assert_eq!(k1.counter, 1);
        assert_eq!(key1.0.to_vec(), h("AF8CB133A78F8DC2D1359F18527593FB"));
        let PinKey::Aes(_, key2) = &seen[1] else {
            panic!("an AES key")
        };
        assert_eq!(key2.0.to_vec(), h("D30BDC73EC9714B000BEC66BDB7B6D09"));
        // Format 4 under the counter-2 key: the published block.
        let b = seen[1]
            .encipher(
                "1234",
                "4111111111111111",
                &h("2F69ADDE2E9E7ACE").try_into().unwrap(),
            )
            .unwrap();
        assert_eq!(b.block().to_vec(), h("52A00503BD34BA1383F6A7EE9FE2547F"));
        // A restart: the counter continues, it does not start again.
        let vault = Vault::open(&d.join("device.key")).unwrap();
        let mut journal = Journal::open(&d.join("journal.db")).unwrap();
        for _ in 0..3 {
            seen.push(next_pin_key(d, &vault, &mut journal).unwrap());
        }
        let ksns: Vec<Vec<u8>> = seen.iter().map(PinKey::ksn).collect();
        let counters: Vec<u8> = ksns.iter().map(|k| k[11]).collect();
        assert_eq!(counters, vec![1, 2, 3, 4, 5, 6]);
        let s = status(d, &vault, &journal).unwrap();
        assert_eq!((s.scheme, s.counter, s.test), ("aes", 6, false));
        // Loading the same key again does not move its counter back.
        load(
            d,
            &vault,
            &mut journal,
            &InitialKey::Aes(ik.clone(), ksn),
            false,
        )
        .unwrap();
        assert_eq!(status(d, &vault, &journal).unwrap().counter, 6);
        assert_eq!(s.next_ksn.as_deref(), Some("123456789012345600000007"));
        // The key file is sealed: the key's bytes are not in it.
        let file = std::fs::read(key_file(d)).unwrap();
        assert!(!file.windows(16).any(|w| w == &ik.0[..]));
        // Near the end of the counter space: exhausted is an error with its code.
        journal.set_counter(COUNTER, 0xFFFF_0000).unwrap();
        let e = next_pin_key(d, &vault, &mut journal).unwrap_err();
        assert_eq!(e.code(), "dukpt_exhausted");
    }

    #[test]
    fn a_tdes_key_gives_format_0_blocks_under_x9_24_1_keys() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let vault = Vault::open(&d.join("device.key")).unwrap();
        let mut journal = Journal::open(&d.join("journal.db")).unwrap();
        // The X9.24-1 Annex A IPEK and KSN.
        let ipek = Key16::from_slice(&h("6AC292FAA1315B4D858AB3A3D7D5933A")).unwrap();
        let ksn: [u8; 10] = h("FFFF9876543210E00000").try_into().unwrap();
        load(
            d,
            &vault,
            &mut journal,
            &InitialKey::Tdes(ipek.clone(), ksn),
            true,
        )
        .unwrap();
        let s = status(d, &vault, &journal).unwrap();
        assert_eq!((s.scheme, s.test), ("tdes", true));
        assert_eq!(s.next_ksn.as_deref(), Some("FFFF9876543210E00001"));
        let k = next_pin_key(d, &vault, &mut journal).unwrap();
        assert_eq!(k.ksn(), h("FFFF9876543210E00001"));
        let PinKey::Tdes(_, key) = &k else {
            panic!("a TDES key")
        };
        assert_eq!(key.0.to_vec(), h("042666B49184CF5C68DE9628D0397B36"));
        // The published format 0 block of PIN 1234, PAN 4012345678909.
        let b = k.encipher("1234", "4012345678909", &[0; 8]).unwrap();
        assert_eq!(b.block().to_vec(), h("1B9C1845EB993A7A"));
        assert_eq!(b.ksn().to_vec(), h("FFFF9876543210E00001"));
        let file = std::fs::read(key_file(d)).unwrap();
        assert!(!file.windows(16).any(|w| w == &ipek.0[..]));
    }
}
