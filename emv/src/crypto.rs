//! Issuer-side symmetric cryptography of EMV Book 2: master key derivation (Annex A1.4),
//! session keys (A1.3), the ISO/IEC 9797-1 MAC used for application cryptograms (A1.2),
//! ARPC methods 1 and 2 (§8.2), and the cryptogram versions of Visa (CVN 10, 18) and
//! Mastercard (CVN 16, 17, 20, 21). Tests carry published vectors.
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

/// Two-key triple DES decryption (EDE) of one block.
pub fn tdes_decrypt(key: &Key16, block: [u8; 8]) -> [u8; 8] {
    let c = TdesEde2::new(&key.0.into());
    let mut b = Block::<TdesEde2>::from(block);
    c.decrypt_block(&mut b);
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

/// EMV common session key derivation (Book 2 A1.3.1): R = ATC || 00 00 00 00 00 00 for
/// application cryptograms; SK_L = 3DES(MK)[R with byte 3 = F0], SK_R = 3DES(MK)[R with
/// byte 3 = 0F].
pub fn session_key_common(mk: &Key16, atc: [u8; 2]) -> Key16 {
    session_key_from(mk, [atc[0], atc[1], 0, 0, 0, 0, 0, 0])
}

/// Mastercard's proprietary session key derivation (M/Chip "SKD", CVN 16 and 17): the same
/// construction with R = ATC || 00 00 || unpredictable number.
pub fn session_key_mastercard(mk: &Key16, atc: [u8; 2], un: [u8; 4]) -> Key16 {
    session_key_from(mk, [atc[0], atc[1], 0, 0, un[0], un[1], un[2], un[3]])
}

fn session_key_from(mk: &Key16, r: [u8; 8]) -> Key16 {
    let mut left = r;
    left[2] = 0xF0;
    let mut right = r;
    right[2] = 0x0F;
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&tdes_encrypt(mk, left));
    k[8..].copy_from_slice(&tdes_encrypt(mk, right));
    set_odd_parity(&mut k);
    Key16(k)
}

/// Cryptogram versions: how a card computes its application cryptogram and how the issuer
/// answers (the scheme specifications, as implemented by issuers' HSMs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cvn {
    /// Visa CVN 10: MAC under the ICC master key, CVR from the IAD, padding method 1; ARPC
    /// method 1 with the master key.
    Visa10,
    /// Visa CVN 18: EMV common session key, the whole IAD in the MAC, padding method 2; ARPC
    /// method 2 with the session key.
    Visa18,
    /// Mastercard CVN 16: Mastercard session key (ATC, UN), 6-byte CVR; ARPC method 1 with
    /// the master key.
    Mastercard16,
    /// Mastercard CVN 17: as 16 with the IAD counters in the MAC.
    Mastercard17,
    /// Mastercard CVN 20: EMV common session key, 6-byte CVR; ARPC method 1 with the session
    /// key.
    Mastercard20,
    /// Mastercard CVN 21: as 20 with the IAD counters in the MAC.
    Mastercard21,
}

impl Cvn {
    /// The CVN byte as the IAD carries it.
    pub fn id(self) -> u8 {
        match self {
            Cvn::Visa10 => 0x0A,
            Cvn::Visa18 => 0x12,
            Cvn::Mastercard16 => 0x10,
            Cvn::Mastercard17 => 0x11,
            Cvn::Mastercard20 => 0x14,
            Cvn::Mastercard21 => 0x15,
        }
    }

    /// Name used in profiles and `kassa tool arqc`: `visa-10`, `mastercard-16`...
    pub fn name(self) -> &'static str {
        match self {
            Cvn::Visa10 => "visa-10",
            Cvn::Visa18 => "visa-18",
            Cvn::Mastercard16 => "mastercard-16",
            Cvn::Mastercard17 => "mastercard-17",
            Cvn::Mastercard20 => "mastercard-20",
            Cvn::Mastercard21 => "mastercard-21",
        }
    }

    /// Parses a name from [`Cvn::name`].
    pub fn from_name(s: &str) -> Option<Cvn> {
        [
            Cvn::Visa10,
            Cvn::Visa18,
            Cvn::Mastercard16,
            Cvn::Mastercard17,
            Cvn::Mastercard20,
            Cvn::Mastercard21,
        ]
        .into_iter()
        .find(|c| c.name() == s)
    }

    /// Reads the CVN from an Issuer Application Data value: Visa formats 0/1/3 start with the
    /// length byte 06 and carry the CVN in byte 3; Mastercard's start with the key derivation
    /// index and carry the CVN in byte 2.
    pub fn from_iad(iad: &[u8]) -> Option<Cvn> {
        let visa = |b| match b {
            0x0A => Some(Cvn::Visa10),
            0x12 => Some(Cvn::Visa18),
            _ => None,
        };
        let mc = |b| match b {
            0x10 => Some(Cvn::Mastercard16),
            0x11 => Some(Cvn::Mastercard17),
            0x14 => Some(Cvn::Mastercard20),
            0x15 => Some(Cvn::Mastercard21),
            _ => None,
        };
        match iad {
            [0x06, _, cvn, ..] if iad.len() >= 7 => visa(*cvn),
            [_, cvn, ..] if iad.len() >= 18 => mc(*cvn),
            _ => None,
        }
    }
}

/// The data an application cryptogram covers (Book 2 §8.1.1 "minimum data" plus the IAD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcData {
    /// 9F02.
    pub amount_authorised: [u8; 6],
    /// 9F03.
    pub amount_other: [u8; 6],
    /// 9F1A.
    pub terminal_country: [u8; 2],
    /// 95.
    pub tvr: [u8; 5],
    /// 5F2A.
    pub currency: [u8; 2],
    /// 9A.
    pub date: [u8; 3],
    /// 9C.
    pub txn_type: u8,
    /// 9F37.
    pub unpredictable_number: [u8; 4],
    /// 82.
    pub aip: [u8; 2],
    /// 9F36.
    pub atc: [u8; 2],
    /// 9F10, whole value.
    pub iad: Vec<u8>,
}

impl AcData {
    /// Reads the elements from a transaction's data objects (what a host finds in field 55).
    /// Returns the tag of the first missing or wrongly sized element.
    pub fn from_store(s: &crate::tlv::TagStore) -> Result<Self, crate::tlv::Tag> {
        use crate::tags as t;
        fn get<const N: usize>(
            s: &crate::tlv::TagStore,
            tag: crate::tlv::Tag,
        ) -> Result<[u8; N], crate::tlv::Tag> {
            s.get(tag).and_then(|v| v.try_into().ok()).ok_or(tag)
        }
        Ok(AcData {
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
            iad: s.get(t::IAD).ok_or(t::IAD)?.to_vec(),
        })
    }

    fn base(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(48);
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
        d
    }

    /// The MAC input for `cvn` (unpadded). `None` when the IAD is too short for the version.
    pub fn mac_input(&self, cvn: Cvn) -> Option<Vec<u8>> {
        let mut d = self.base();
        match cvn {
            // CVR = IAD bytes 4-7 (its length byte 03 and three CVR bytes).
            Cvn::Visa10 => d.extend_from_slice(self.iad.get(3..7)?),
            Cvn::Visa18 => d.extend_from_slice(&self.iad),
            // CVR = IAD bytes 3-8; counters = IAD bytes 11-18.
            Cvn::Mastercard16 | Cvn::Mastercard20 => d.extend_from_slice(self.iad.get(2..8)?),
            Cvn::Mastercard17 | Cvn::Mastercard21 => {
                d.extend_from_slice(self.iad.get(2..8)?);
                d.extend_from_slice(self.iad.get(10..18)?);
            }
        }
        Some(d)
    }
}

/// The key the cryptogram is computed under: the ICC master key for CVN 10, a session key
/// otherwise.
pub fn ac_key(cvn: Cvn, mk: &Key16, data: &AcData) -> Key16 {
    match cvn {
        Cvn::Visa10 => mk.clone(),
        Cvn::Visa18 | Cvn::Mastercard20 | Cvn::Mastercard21 => session_key_common(mk, data.atc),
        Cvn::Mastercard16 | Cvn::Mastercard17 => {
            session_key_mastercard(mk, data.atc, data.unpredictable_number)
        }
    }
}

/// The application cryptogram (ARQC, TC or AAC) of `cvn` over `data`. `None` when the IAD
/// does not fit the version.
pub fn application_cryptogram(cvn: Cvn, mk: &Key16, data: &AcData) -> Option<[u8; 8]> {
    let input = data.mac_input(cvn)?;
    let padding = if cvn == Cvn::Visa10 {
        MacPadding::Method1
    } else {
        MacPadding::Method2
    };
    Some(retail_mac(&ac_key(cvn, mk, data), &input, padding))
}

/// ARPC method 2 (Book 2 §8.2.2): the 4-byte MAC (padding method 2) over
/// ARQC || CSU || proprietary authentication data.
pub fn arpc_method2(key: &Key16, arqc: [u8; 8], csu: [u8; 4], pad: &[u8]) -> [u8; 4] {
    let mut d = arqc.to_vec();
    d.extend_from_slice(&csu);
    d.extend_from_slice(pad);
    let m = retail_mac(key, &d, MacPadding::Method2);
    [m[0], m[1], m[2], m[3]]
}

/// The Issuer Authentication Data (tag 91) for an approval or decline: method 1 (ARPC || ARC)
/// for CVN 10, 16, 17, 20, 21; method 2 (ARPC || CSU) for CVN 18, with CSU byte 2 bit 8 set
/// for an approval.
pub fn issuer_authentication_data(
    cvn: Cvn,
    mk: &Key16,
    data: &AcData,
    arqc: [u8; 8],
    arc: [u8; 2],
) -> Vec<u8> {
    let approved = arc == *b"00";
    match cvn {
        Cvn::Visa10 | Cvn::Mastercard16 | Cvn::Mastercard17 => {
            let mut v = arpc_method1(mk, arqc, arc).to_vec();
            v.extend_from_slice(&arc);
            v
        }
        Cvn::Mastercard20 | Cvn::Mastercard21 => {
            let mut v = arpc_method1(&ac_key(cvn, mk, data), arqc, arc).to_vec();
            v.extend_from_slice(&arc);
            v
        }
        Cvn::Visa18 => {
            let csu = [0x00, if approved { 0x80 } else { 0x00 }, 0x00, 0x00];
            let mut v = arpc_method2(&ac_key(cvn, mk, data), arqc, csu, &[]).to_vec();
            v.extend_from_slice(&csu);
            v
        }
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

    #[allow(clippy::too_many_arguments)] // One argument per data element of the vectors.
    fn vector_data(
        amount: &str,
        tvr: &str,
        date: &str,
        txn_type: u8,
        un: &str,
        aip: &str,
        atc: &str,
        iad: &str,
    ) -> AcData {
        let a = |s: &str| unhex(s).unwrap();
        AcData {
            amount_authorised: a(amount).try_into().unwrap(),
            amount_other: [0; 6],
            terminal_country: [0x01, 0x24],
            tvr: a(tvr).try_into().unwrap(),
            currency: [0x01, 0x24],
            date: a(date).try_into().unwrap(),
            txn_type,
            unpredictable_number: a(un).try_into().unwrap(),
            aip: a(aip).try_into().unwrap(),
            atc: a(atc).try_into().unwrap(),
            iad: a(iad),
        }
    }

    /// Published vectors (pyemv's HSM-checked tests): IMK 0123456789ABCDEFFEDCBA9876543210,
    /// PAN 1234567890123456, PSN 00.
    fn vector_mk() -> Key16 {
        let imk = k("0123456789ABCDEFFEDCBA9876543210");
        let mk = derive_icc_master_key(&imk, "1234567890123456", 0).unwrap();
        assert_eq!(hex(mk.expose()), "154F349D8585CB7F6B0798E9839B10C1");
        mk
    }

    #[test]
    fn visa_cvn10_vector() {
        let mk = vector_mk();
        let d = vector_data(
            "000000004000",
            "8000048000",
            "191105",
            0x01,
            "52BF4585",
            "1800",
            "001C",
            "06010A03A06010",
        );
        let arqc = application_cryptogram(Cvn::Visa10, &mk, &d).unwrap();
        assert_eq!(hex(&arqc), "29CCA15AE665FA2E");
        assert_eq!(
            hex(&arpc_method1(&mk, arqc, [0x30, 0x30])),
            "28993816AFAE4AEB"
        );
        assert_eq!(
            hex(&issuer_authentication_data(
                Cvn::Visa10,
                &mk,
                &d,
                arqc,
                *b"00"
            )),
            "28993816AFAE4AEB3030"
        );
    }

    #[test]
    fn visa_cvn18_vector() {
        let mk = vector_mk();
        assert_eq!(
            hex(session_key_common(&mk, [0x00, 0x1C]).expose()),
            "436B942AD637E08564B532B0EC97CB26"
        );
        let d = vector_data(
            "000000004000",
            "8000048000",
            "191105",
            0x01,
            "52BF4585",
            "1800",
            "001C",
            "06011203A0B800",
        );
        let arqc = application_cryptogram(Cvn::Visa18, &mk, &d).unwrap();
        assert_eq!(hex(&arqc), "7A788EA6B8A3E733");
        let sk = ac_key(Cvn::Visa18, &mk, &d);
        assert_eq!(hex(&arpc_method2(&sk, arqc, [0, 0, 0, 0], &[])), "9AF514C1");
    }

    #[test]
    fn mastercard_vectors() {
        let mk = vector_mk();
        assert_eq!(
            hex(session_key_mastercard(&mk, [0x00, 0x1C], [0xAB, 0xCD, 0xEF, 0x12]).expose()),
            "5D8F37BCD9E5DA68048CDFA2EA255D9E"
        );
        let iad = "0110A00003220000000000000000000322FF";
        for (cvn, arqc_hex, arpc_hex) in [
            (Cvn::Mastercard16, "24CCF3DEE3158C70", "73F6BBF389A6586C"),
            (Cvn::Mastercard17, "EAE8A620A75648D8", "29CF11FBDB9CA650"),
            (Cvn::Mastercard20, "CD29615D6452E70E", "DFD0956606B68D64"),
            (Cvn::Mastercard21, "C30E54BE496CF5E5", "4F51F9CC63CE8B3C"),
        ] {
            let d = vector_data(
                "000000009999",
                "8000000000",
                "209906",
                0x00,
                "ABCDEF12",
                "1800",
                "001C",
                iad,
            );
            let arqc = application_cryptogram(cvn, &mk, &d).unwrap();
            assert_eq!(hex(&arqc), arqc_hex, "{cvn:?}");
            let iadata = issuer_authentication_data(cvn, &mk, &d, arqc, [0x00, 0x10]);
            assert_eq!(hex(&iadata[..8]), arpc_hex, "{cvn:?}");
        }
    }

    #[test]
    fn cvn_from_iad() {
        assert_eq!(
            Cvn::from_iad(&unhex("06010A03A00000").unwrap()),
            Some(Cvn::Visa10)
        );
        assert_eq!(
            Cvn::from_iad(&unhex("06011203A0B800").unwrap()),
            Some(Cvn::Visa18)
        );
        assert_eq!(
            Cvn::from_iad(&unhex("0110A00003220000000000000000000322FF").unwrap()),
            Some(Cvn::Mastercard16)
        );
        assert_eq!(Cvn::from_iad(&[0x06, 0x01]), None);
        assert_eq!(Cvn::from_name("mastercard-20"), Some(Cvn::Mastercard20));
    }

    #[test]
    fn key_debug_hides_bytes() {
        let s = format!("{:?}", k("0123456789ABCDEFFEDCBA9876543210"));
        assert_eq!(s, "Key16(kcv=08D7B4)");
    }
}
