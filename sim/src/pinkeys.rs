//! The simulator's PIN keys: the base derivation keys (BDKs) of the test host, from which it
//! derives each terminal's PIN key again out of the KSN in field 53, and the initial key a
//! development terminal is loaded with (`kassa keys load --test`).
//!
//! Both BDKs are the published test keys of the DUKPT standards (ANSI X9.24-3-2017 and
//! X9.24-1-2009 test vectors): they protect nothing, so a PIN typed in emulator mode is only
//! ever enciphered under keys everyone can derive. A real acquirer's BDK lives in its HSM.

use acquirer::pin::{Key16, aes_dukpt, tdes_dukpt};

/// The AES-128 BDK of X9.24-3's test vectors.
pub const TEST_AES_BDK: [u8; 16] = [
    0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10, 0xF1, 0xF1, 0xF1, 0xF1, 0xF1, 0xF1, 0xF1, 0xF1,
];

/// The double-length TDES BDK of X9.24-1's test vectors.
pub const TEST_TDES_BDK: [u8; 16] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10,
];

/// The initial key ID of development terminals: BDK ID "KASS" (4B415353), derivation ID
/// 41000001.
pub const TEST_INITIAL_KEY_ID: [u8; 8] = [0x4B, 0x41, 0x53, 0x53, 0x41, 0x00, 0x00, 0x01];

/// The TDES KSN of development terminals (counter 0): "KASSA" under issuer FFFF.
pub const TEST_TDES_KSN: [u8; 10] = [0xFF, 0xFF, 0x4B, 0x41, 0x53, 0x53, 0x41, 0xE0, 0x00, 0x00];

/// The AES BDK as a key.
pub fn aes_bdk() -> Key16 {
    Key16(TEST_AES_BDK)
}

/// The TDES BDK as a key.
pub fn tdes_bdk() -> Key16 {
    Key16(TEST_TDES_BDK)
}

/// The AES DUKPT initial key and starting KSN (counter 0) a development terminal is loaded
/// with.
pub fn test_aes_initial_key() -> (Key16, aes_dukpt::Ksn) {
    (
        aes_dukpt::initial_key(&aes_bdk(), &TEST_INITIAL_KEY_ID),
        aes_dukpt::Ksn {
            initial_key_id: TEST_INITIAL_KEY_ID,
            counter: 0,
        },
    )
}

/// The TDES DUKPT initial PIN encryption key (IPEK) and starting KSN of a development
/// terminal.
pub fn test_tdes_initial_key() -> (Key16, [u8; 10]) {
    (tdes_dukpt::ipek(&tdes_bdk(), &TEST_TDES_KSN), TEST_TDES_KSN)
}
