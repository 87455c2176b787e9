//! Issuer-side symmetric cryptography of EMV Book 2: master key derivation (Annex A1.4),
//! the ISO/IEC 9797-1 MAC used for application cryptograms (Annex A1.2), ARPC method 1
//! (§8.2.1), and the Visa cryptogram version 10 data layout.
//!
//! The terminal itself never holds these keys; this module exists for the card simulator, the
//! host simulator and `kassa tool arqc`. Keys are [`Key16`], which zeroizes on drop and never
//! prints its bytes.

use std::fmt;

use des::cipher::{Block, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use des::{Des, TdesEde2};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A double-length (112-bit) DES key. `Debug` shows only a key check value.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Key16([u8; 16]);

impl Key16 {
    /// Wraps 16 key bytes.
    pub fn new(bytes: [u8; 16]) -> Self {
        Key16(bytes)
    }

    /// From a 32-digit hex string (whitespace ignored).
    pub fn from_hex(s: &str) -> Option<Self> {
        let v = crate::util::unhex(s).ok()?;
        let arr: [u8; 16] = v.as_slice().try_into().ok()?;
        Some(Key16(arr))
    }

    /// The key bytes. Callers must not log them.
    pub fn expose(&self) -> &[u8; 16] {
        &self.0
    }

    /// Key check value: the first 3 bytes of the key encrypting zeros (ANSI X9.24).
    pub fn kcv(&self) -> [u8; 3] {
        let e = tdes_encrypt(self, [0u8; 8]);
        [e[0], e[1], e[2]]
    }

    fn left(&self) -> [u8; 8] {
        self.0[..8].try_into().expect("8 bytes")
    }

    fn right(&self) -> [u8; 8] {
        self.0[8..].try_into().expect("8 bytes")
    }
}

impl fmt::Debug for Key16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key16(kcv={})", crate::util::hex(&self.kcv()))
    }
}

fn des_encrypt(key: [u8; 8], block: [u8; 8]) -> [u8; 8] {
    let c = Des::new(&key.into());
    let mut b = Block::<Des>::from(block);
    c.encrypt_block(&mut b);
    b.into()
}

fn des_decrypt(key: [u8; 8], block: [u8; 8]) -> [u8; 8] {
    let c = Des::new(&key.into());
    let mut b = Block::<Des>::from(block);
    c.decrypt_block(&mut b);
    b.into()
}

/// Two-key triple DES encryption (EDE) of one block.
pub fn tdes_encrypt(key: &Key16, block: [u8; 8]) -> [u8; 8] {
    let c = TdesEde2::new(&key.0.into());
    let mut b = Block::<TdesEde2>::from(block);
    c.encrypt_block(&mut b);
    b.into()
}

/// Sets odd parity on every byte of a DES key (Book 2 A1.4.1 step 3).
pub fn set_odd_parity(key: &mut [u8]) {
    for b in key {
        let ones = (*b & 0xFE).count_ones();
        *b = (*b & 0xFE) | u8::from(ones % 2 == 0);
    }
}

/// ICC Master Key derivation, Option A (Book 2 Annex A1.4.1).
///
/// Y is the rightmost 16 digits of PAN || PAN sequence number (left-padded with zeros when
/// shorter), packed as 8 bytes. The left half of the key is 3DES(IMK)[Y], the right half
/// 3DES(IMK)[Y xor FF..FF], then odd parity is set.
pub fn derive_icc_master_key(imk: &Key16, pan: &str, psn: u8) -> Option<Key16> {
    if pan.is_empty() || !pan.bytes().all(|c| c.is_ascii_digit()) || psn > 99 {
        return None;
    }
    let digits = format!("{pan}{psn:02}");
    let tail = if digits.len() >= 16 {
        digits[digits.len() - 16..].to_string()
    } else {
        format!("{digits:0>16}")
    };
    let y: [u8; 8] = crate::util::unhex(&tail).ok()?.try_into().ok()?;
    let zl = tdes_encrypt(imk, y);
    let zr = tdes_encrypt(imk, y.map(|b| b ^ 0xFF));
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&zl);
    k[8..].copy_from_slice(&zr);
    set_odd_parity(&mut k);
    Some(Key16(k))
}

/// Padding before MAC computation (Book 2 A1.2.1 / ISO/IEC 9797-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacPadding {
    /// ISO/IEC 9797-1 method 1: zeros up to a multiple of 8 (nothing added if aligned).
    Method1,
    /// ISO/IEC 9797-1 method 2: `80` then zeros up to a multiple of 8 (always adds).
    Method2,
}

/// ISO/IEC 9797-1 MAC algorithm 3 with DES ("retail MAC"), Book 2 Annex A1.2.1: single-DES
/// CBC under the left key half over all blocks, then the last result is decrypted under the
/// right half and encrypted again under the left half. Returns the full 8 bytes.
pub fn retail_mac(key: &Key16, data: &[u8], padding: MacPadding) -> [u8; 8] {
    let mut padded = data.to_vec();
    if padding == MacPadding::Method2 {
        padded.push(0x80);
    }
    while !padded.len().is_multiple_of(8) || padded.is_empty() {
        padded.push(0x00);
    }
    let (kl, kr) = (key.left(), key.right());
    let mut h = [0u8; 8];
    for chunk in padded.chunks(8) {
        for (x, d) in h.iter_mut().zip(chunk) {
            *x ^= d;
        }
        h = des_encrypt(kl, h);
    }
    let out = des_encrypt(kl, des_decrypt(kr, h));
    padded.zeroize();
    out
}

/// ARPC method 1 (Book 2 §8.2.1): 3DES(key)[ARQC xor (ARC || 00 00 00 00 00 00)].
pub fn arpc_method1(key: &Key16, arqc: [u8; 8], arc: [u8; 2]) -> [u8; 8] {
    let mut x = arqc;
    x[0] ^= arc[0];
    x[1] ^= arc[1];
    tdes_encrypt(key, x)
}

/// The data elements of Visa cryptogram version 10, in MAC order.
///
/// CVN 10 (Visa Integrated Circuit Card Specification, cryptogram version 10): the MAC is taken
/// directly under the ICC master key (no session key) over Amount Authorised, Amount Other,
/// Terminal Country Code, TVR, Transaction Currency Code, Transaction Date, Transaction Type,
/// Unpredictable Number, AIP, ATC and the CVR (bytes 4-7 of the Issuer Application Data), with
/// ISO/IEC 9797-1 padding method 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cvn10Input {
    /// 9F02, 6 bytes.
    pub amount_authorised: [u8; 6],
    /// 9F03, 6 bytes.
    pub amount_other: [u8; 6],
    /// 9F1A, 2 bytes.
    pub terminal_country: [u8; 2],
    /// 95, 5 bytes.
    pub tvr: [u8; 5],
    /// 5F2A, 2 bytes.
    pub currency: [u8; 2],
    /// 9A, 3 bytes.
    pub date: [u8; 3],
    /// 9C, 1 byte.
    pub txn_type: u8,
    /// 9F37, 4 bytes.
    pub unpredictable_number: [u8; 4],
    /// 82, 2 bytes.
    pub aip: [u8; 2],
    /// 9F36, 2 bytes.
    pub atc: [u8; 2],
    /// CVR: Issuer Application Data bytes 4-7 (length byte and three CVR bytes).
    pub cvr: [u8; 4],
}

impl Cvn10Input {
    /// The concatenated MAC input (37 bytes, unpadded).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(37);
        d.extend_from_slice(&self.amount_authorised);
        d.extend_from_slice(&self.amount_other);
        d.extend_from_slice(&self.terminal_country);
        d.extend_from_slice(&self.tvr);
        d.extend_from_slice(&self.currency);
        d.extend_from_slice(&self.date);
        d.push(self.txn_type);
        d.extend_from_slice(&self.unpredictable_number);
        d.extend_from_slice(&self.aip);
        d.extend_from_slice(&self.atc);
        d.extend_from_slice(&self.cvr);
        d
    }

    /// Reads the elements from a transaction's data objects (the ones a host finds in ISO 8583
    /// field 55). Returns the tag of the first missing or wrongly sized element on failure.
    pub fn from_store(s: &crate::tlv::TagStore) -> Result<Self, crate::tlv::Tag> {
        use crate::tags as t;
        fn get<const N: usize>(
            s: &crate::tlv::TagStore,
            tag: crate::tlv::Tag,
        ) -> Result<[u8; N], crate::tlv::Tag> {
            s.get(tag).and_then(|v| v.try_into().ok()).ok_or(tag)
        }
        let iad = s.get(t::IAD).ok_or(t::IAD)?;
        let cvr: [u8; 4] = iad
            .get(3..7)
            .and_then(|v| v.try_into().ok())
            .ok_or(t::IAD)?;
        Ok(Cvn10Input {
            amount_authorised: get(s, t::AMOUNT_AUTHORISED)?,
            amount_other: get(s, t::AMOUNT_OTHER).unwrap_or([0; 6]),
            terminal_country: get(s, t::TERMINAL_COUNTRY)?,
            tvr: get(s, t::TVR)?,
            currency: get(s, t::TXN_CURRENCY)?,
            date: get(s, t::TXN_DATE)?,
            txn_type: get::<1>(s, t::TXN_TYPE)?[0],
            unpredictable_number: get(s, t::UNPREDICTABLE_NUMBER)?,
            aip: get(s, t::AIP)?,
            atc: get(s, t::ATC)?,
            cvr,
        })
    }

    /// The ARQC (or TC/AAC) under the ICC master key.
    pub fn cryptogram(&self, icc_master_key: &Key16) -> [u8; 8] {
        retail_mac(icc_master_key, &self.to_bytes(), MacPadding::Method1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::{hex, unhex};

    fn k(s: &str) -> Key16 {
        Key16::from_hex(s).unwrap()
    }

    #[test]
    fn des_known_answer() {
        // FIPS 81 / classic test vector: key 0123456789ABCDEF, "Now is t".
        let key: [u8; 8] = unhex("0123456789ABCDEF").unwrap().try_into().unwrap();
        let pt: [u8; 8] = *b"Now is t";
        assert_eq!(hex(&des_encrypt(key, pt)), "3FA40E8A984D4815");
        assert_eq!(des_decrypt(key, des_encrypt(key, pt)), pt);
    }

    #[test]
    fn tdes_with_equal_halves_is_single_des() {
        let key = k("0123456789ABCDEF0123456789ABCDEF");
        assert_eq!(hex(&tdes_encrypt(&key, *b"Now is t")), "3FA40E8A984D4815");
    }

    #[test]
    fn parity() {
        let mut v = [0x00, 0x01, 0xFE, 0x7F];
        set_odd_parity(&mut v);
        assert_eq!(v, [0x01, 0x01, 0xFE, 0x7F]);
    }

    #[test]
    fn kcv_of_well_known_test_key() {
        // The widely published check value of the test key 0123456789ABCDEFFEDCBA9876543210.
        assert_eq!(hex(&k("0123456789ABCDEFFEDCBA9876543210").kcv()), "08D7B4");
    }

    #[test]
    fn option_a_follows_the_steps() {
        let imk = k("0123456789ABCDEFFEDCBA9876543210");
        let udk = derive_icc_master_key(&imk, "4761739001010119", 0).unwrap();
        // Independently: Y = last 16 digits of PAN||PSN = "6173900101011900".
        let y: [u8; 8] = unhex("6173900101011900").unwrap().try_into().unwrap();
        let mut expect = [0u8; 16];
        expect[..8].copy_from_slice(&tdes_encrypt(&imk, y));
        expect[8..].copy_from_slice(&tdes_encrypt(&imk, y.map(|b| !b)));
        set_odd_parity(&mut expect);
        assert_eq!(udk.expose(), &expect);
        // Short PANs are left-padded.
        assert!(derive_icc_master_key(&imk, "12345", 1).is_some());
        assert!(derive_icc_master_key(&imk, "12a45", 1).is_none());
    }

    #[test]
    fn retail_mac_padding_rules() {
        let key = k("0123456789ABCDEFFEDCBA9876543210");
        // Method 1 adds nothing to aligned data; method 2 always adds a block.
        let d8 = [0x11u8; 8];
        let mut p2 = d8.to_vec();
        p2.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            retail_mac(&key, &d8, MacPadding::Method2),
            retail_mac(&key, &p2, MacPadding::Method1)
        );
        // Single block: MAC = E_L(D_R(E_L(x))) = 3DES(x).
        assert_eq!(
            retail_mac(&key, &d8, MacPadding::Method1),
            tdes_encrypt(&key, d8)
        );
    }

    #[test]
    fn arpc_method1_xors_arc_into_the_first_bytes() {
        let key = k("0123456789ABCDEFFEDCBA9876543210");
        let arqc = [1, 2, 3, 4, 5, 6, 7, 8];
        let arpc = arpc_method1(&key, arqc, *b"00");
        assert_eq!(
            arpc,
            tdes_encrypt(&key, [1 ^ 0x30, 2 ^ 0x30, 3, 4, 5, 6, 7, 8])
        );
    }

    #[test]
    fn key_debug_hides_bytes() {
        let s = format!("{:?}", k("0123456789ABCDEFFEDCBA9876543210"));
        assert_eq!(s, "Key16(kcv=08D7B4)");
    }
}
