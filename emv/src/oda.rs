//! Offline data authentication (EMV Book 2): certificate recovery and signature verification.
//!
//! - [`recover_issuer_key`]: Issuer Public Key Certificate, format `02` (Book 2 §6.3).
//! - [`recover_icc_key`]: ICC Public Key Certificate, format `04` (Book 2 §6.4).
//! - [`verify_ssad`]: Signed Static Application Data, format `03` (SDA, Book 2 §5.4).
//! - [`verify_sdad`]: Signed Dynamic Application Data, format `05` (DDA, fDDA, CDA; Book 2 §6.5).
//! - [`static_data`]: the static data to be authenticated (Book 3 §10.3).
//!
//! RSA and SHA-1 sit behind [`Crypto`], so tests and fuzzing can count or replace them. Every
//! failure is an [`OdaError`] naming the check, in the order the books perform them.

use num_bigint_dig::BigUint;
use sha1::{Digest, Sha1};

use crate::tlv::{self, Tag};
use crate::util::{Date, Hex};

/// The primitives offline data authentication needs.
pub trait Crypto {
    /// `input^exponent mod modulus`, big-endian, left-padded to the modulus length.
    fn rsa_public(&self, modulus: &[u8], exponent: &[u8], input: &[u8]) -> Vec<u8>;
    /// SHA-1.
    fn sha1(&self, data: &[u8]) -> [u8; 20];
}

/// RustCrypto SHA-1 and num-bigint-dig modular exponentiation.
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCrypto;

impl Crypto for RustCrypto {
    fn rsa_public(&self, modulus: &[u8], exponent: &[u8], input: &[u8]) -> Vec<u8> {
        let n = BigUint::from_bytes_be(modulus);
        let e = BigUint::from_bytes_be(exponent);
        let x = BigUint::from_bytes_be(input);
        let small = (1..=17).contains(&e.bits()) && n.bits() > 0;
        let mut out = if small {
            // EMV public exponents are 3 or 65537 (Book 2 §5.1): square-and-multiply with
            // plain reductions is 5 to 20 times faster here than the general modpow, whose
            // Montgomery set-up dominates for so few multiplications (docs/PERFORMANCE.md).
            let ev = exponent.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
            let x = x % &n;
            let mut acc = x.clone();
            for i in (0..e.bits() - 1).rev() {
                acc = (&acc * &acc) % &n;
                if ev >> i & 1 == 1 {
                    acc = (&acc * &x) % &n;
                }
            }
            acc
        } else {
            x.modpow(&e, &n)
        }
        .to_bytes_be();
        while out.len() < modulus.len() {
            out.insert(0, 0);
        }
        out
    }

    fn sha1(&self, data: &[u8]) -> [u8; 20] {
        Sha1::digest(data).into()
    }
}

/// A certification authority public key (Book 2 §5.1, Table 8 for the check sum).
#[derive(Clone, PartialEq, Eq)]
pub struct CaPublicKey {
    /// Registered application provider identifier.
    pub rid: [u8; 5],
    /// CA public key index (tag 8F on the card).
    pub index: u8,
    /// Modulus.
    pub modulus: Vec<u8>,
    /// Exponent (`03` or `010001`).
    pub exponent: Vec<u8>,
    /// The published check sum, if known.
    pub checksum: Option<[u8; 20]>,
    /// Last day the key may be used, if known.
    pub expiry: Option<Date>,
}

impl std::fmt::Debug for CaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CaPublicKey({} {:02X}, {} bits)",
            Hex(&self.rid),
            self.index,
            self.modulus.len() * 8
        )
    }
}

impl CaPublicKey {
    /// SHA-1 over RID || index || modulus || exponent (Book 2 §11.2).
    pub fn compute_checksum(&self, c: &dyn Crypto) -> [u8; 20] {
        let mut d = self.rid.to_vec();
        d.push(self.index);
        d.extend_from_slice(&self.modulus);
        d.extend_from_slice(&self.exponent);
        c.sha1(&d)
    }
}

/// A public key certificate as the card stores it: the certificate (90 or 9F46), the
/// remainder of the key (92 or 9F48, possibly empty) and the exponent (9F32 or 9F47).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertData<'a> {
    /// The certificate.
    pub cert: &'a [u8],
    /// The public key remainder (empty when the whole key fits).
    pub remainder: &'a [u8],
    /// The public key exponent.
    pub exponent: &'a [u8],
}

/// A recovered issuer public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerPublicKey {
    /// Modulus.
    pub modulus: Vec<u8>,
    /// Exponent.
    pub exponent: Vec<u8>,
    /// Issuer identifier from the certificate (3-8 leftmost PAN digits).
    pub issuer_id: String,
    /// Certificate expiry as MMYY.
    pub expiry_mmyy: String,
    /// Certificate serial number.
    pub serial: [u8; 3],
}

/// A recovered ICC public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IccPublicKey {
    /// Modulus.
    pub modulus: Vec<u8>,
    /// Exponent.
    pub exponent: Vec<u8>,
    /// Certificate expiry as MMYY.
    pub expiry_mmyy: String,
    /// Certificate serial number.
    pub serial: [u8; 3],
}

/// Why offline data authentication failed: the first check that did not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OdaError {
    /// No CA public key for this RID and index.
    #[error("no CA public key for RID {rid} index {index:02X}")]
    CaKeyMissing {
        /// RID, hex.
        rid: String,
        /// Index.
        index: u8,
    },
    /// The CA key's check sum does not match the published one.
    #[error("CA public key check sum mismatch")]
    CaChecksum,
    /// A mandatory data object is missing.
    #[error("missing {0}")]
    Missing(Tag),
    /// The certificate or signature is not as long as the key's modulus.
    #[error("{what} is {len} bytes but the key is {key} bytes")]
    Length {
        /// Which object.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The modulus length.
        key: usize,
    },
    /// Recovered data does not start with `6A`.
    #[error("{0}: recovered data header is not 6A")]
    Header(&'static str),
    /// Recovered data does not end with `BC`.
    #[error("{0}: recovered data trailer is not BC")]
    Trailer(&'static str),
    /// Wrong certificate or signature format byte.
    #[error("{what}: format {found:02X}, expected {expected:02X}")]
    Format {
        /// Which object.
        what: &'static str,
        /// Found.
        found: u8,
        /// Expected.
        expected: u8,
    },
    /// The hash in the recovered data does not match.
    #[error("{0}: hash mismatch")]
    Hash(&'static str),
    /// The issuer identifier does not match the PAN.
    #[error("issuer identifier does not match the PAN")]
    IssuerId,
    /// The PAN in the ICC certificate does not match the application PAN.
    #[error("PAN in the ICC certificate does not match the application PAN")]
    Pan,
    /// The certificate expired.
    #[error("{0} certificate expired")]
    Expired(&'static str),
    /// An algorithm indicator other than SHA-1 / RSA.
    #[error("{0}: unsupported hash or key algorithm")]
    Algorithm(&'static str),
    /// Inconsistent lengths inside the recovered data.
    #[error("{0}: inconsistent lengths in the recovered data")]
    Inconsistent(&'static str),
}

/// The raw RSA public operation on a certificate or signature, without any check: what a
/// decoder shows when a check fails. `None` when the lengths do not match the key.
pub fn recover_raw(
    c: &dyn Crypto,
    modulus: &[u8],
    exponent: &[u8],
    data: &[u8],
) -> Option<Vec<u8>> {
    (data.len() == modulus.len() && !modulus.is_empty() && data < modulus)
        .then(|| c.rsa_public(modulus, exponent, data))
}

/// Recovers data from a certificate or signature: RSA public operation and the header,
/// trailer and format checks common to all Book 2 formats.
fn recover(
    c: &dyn Crypto,
    what: &'static str,
    modulus: &[u8],
    exponent: &[u8],
    data: &[u8],
    formats: &[u8],
) -> Result<Vec<u8>, OdaError> {
    if data.len() != modulus.len() || modulus.is_empty() {
        return Err(OdaError::Length {
            what,
            len: data.len(),
            key: modulus.len(),
        });
    }
    // A value not below the modulus cannot come from the private operation.
    if data >= modulus {
        return Err(OdaError::Header(what));
    }
    let r = c.rsa_public(modulus, exponent, data);
    if r.first() != Some(&0x6A) {
        return Err(OdaError::Header(what));
    }
    if r.last() != Some(&0xBC) {
        return Err(OdaError::Trailer(what));
    }
    if !formats.contains(&r[1]) {
        return Err(OdaError::Format {
            what,
            found: r[1],
            expected: formats[0],
        });
    }
    Ok(r)
}

/// Parses MMYY (BCD) and checks it is not before `today`'s month (Book 2 §6.3 step 7).
fn not_expired(mmyy: &[u8], today: Date) -> Option<bool> {
    let mm = crate::util::parse_bcd_n(&mmyy[..1])? as u16;
    let yy = crate::util::parse_bcd_n(&mmyy[1..2])? as u16;
    if !(1..=12).contains(&mm) {
        return None;
    }
    let year = if yy < 50 { 2000 + yy } else { 1900 + yy };
    Some((year, mm) >= (today.year, today.month as u16))
}

fn digits_of(bytes: &[u8]) -> String {
    crate::util::hex(bytes).trim_end_matches('F').to_string()
}

/// Issuer Public Key Certificate recovery (Book 2 §6.3, Table 6).
///
/// Checks in order: certificate length = NCA; header 6A; format 02; trailer BC; SHA-1 over
/// format..modulus part || remainder || exponent; issuer identifier against the leftmost PAN
/// digits; certificate not expired at `today`; algorithm indicators 01.
pub fn recover_issuer_key(
    c: &dyn Crypto,
    ca: &CaPublicKey,
    cd: CertData<'_>,
    pan: &str,
    today: Date,
) -> Result<IssuerPublicKey, OdaError> {
    let CertData {
        cert,
        remainder,
        exponent,
    } = cd;
    const WHAT: &str = "issuer public key certificate";
    let r = recover(c, WHAT, &ca.modulus, &ca.exponent, cert, &[0x02])?;
    let nca = r.len();
    if nca < 36 {
        return Err(OdaError::Inconsistent(WHAT));
    }
    let hash = &r[nca - 21..nca - 1];
    let mut input = r[1..nca - 21].to_vec();
    input.extend_from_slice(remainder);
    input.extend_from_slice(exponent);
    if c.sha1(&input) != hash {
        return Err(OdaError::Hash(WHAT));
    }
    let issuer_id = digits_of(&r[2..6]);
    if issuer_id.len() < 3 || !pan.starts_with(&issuer_id) {
        return Err(OdaError::IssuerId);
    }
    if not_expired(&r[6..8], today) != Some(true) {
        return Err(OdaError::Expired("issuer"));
    }
    if r[11] != 0x01 || r[12] != 0x01 {
        return Err(OdaError::Algorithm(WHAT));
    }
    let ni = r[13] as usize;
    let exp_len = r[14] as usize;
    if exp_len != exponent.len() {
        return Err(OdaError::Inconsistent(WHAT));
    }
    let part = &r[15..nca - 21];
    let modulus = if ni <= part.len() {
        part[..ni].to_vec()
    } else {
        if remainder.len() != ni - part.len() {
            return Err(OdaError::Inconsistent(WHAT));
        }
        [part, remainder].concat()
    };
    Ok(IssuerPublicKey {
        modulus,
        exponent: exponent.to_vec(),
        issuer_id,
        expiry_mmyy: crate::util::hex(&r[6..8]),
        serial: [r[8], r[9], r[10]],
    })
}

/// ICC Public Key Certificate recovery (Book 2 §6.4, Table 14). `static_data` is the static
/// data to be authenticated ([`static_data`]).
pub fn recover_icc_key(
    c: &dyn Crypto,
    issuer: &IssuerPublicKey,
    cd: CertData<'_>,
    static_data: &[u8],
    pan: &str,
    today: Date,
) -> Result<IccPublicKey, OdaError> {
    let CertData {
        cert,
        remainder,
        exponent,
    } = cd;
    const WHAT: &str = "ICC public key certificate";
    let r = recover(c, WHAT, &issuer.modulus, &issuer.exponent, cert, &[0x04])?;
    let ni = r.len();
    if ni < 42 {
        return Err(OdaError::Inconsistent(WHAT));
    }
    let hash = &r[ni - 21..ni - 1];
    let mut input = r[1..ni - 21].to_vec();
    input.extend_from_slice(remainder);
    input.extend_from_slice(exponent);
    input.extend_from_slice(static_data);
    if c.sha1(&input) != hash {
        return Err(OdaError::Hash(WHAT));
    }
    if digits_of(&r[2..12]) != pan {
        return Err(OdaError::Pan);
    }
    if not_expired(&r[12..14], today) != Some(true) {
        return Err(OdaError::Expired("ICC"));
    }
    if r[17] != 0x01 || r[18] != 0x01 {
        return Err(OdaError::Algorithm(WHAT));
    }
    let nic = r[19] as usize;
    if r[20] as usize != exponent.len() {
        return Err(OdaError::Inconsistent(WHAT));
    }
    let part = &r[21..ni - 21];
    let modulus = if nic <= part.len() {
        part[..nic].to_vec()
    } else {
        if remainder.len() != nic - part.len() {
            return Err(OdaError::Inconsistent(WHAT));
        }
        [part, remainder].concat()
    };
    Ok(IccPublicKey {
        modulus,
        exponent: exponent.to_vec(),
        expiry_mmyy: crate::util::hex(&r[12..14]),
        serial: [r[14], r[15], r[16]],
    })
}

/// Signed Static Application Data verification (SDA, Book 2 §5.4, Table 7). Returns the
/// Data Authentication Code.
pub fn verify_ssad(
    c: &dyn Crypto,
    issuer: &IssuerPublicKey,
    ssad: &[u8],
    static_data: &[u8],
) -> Result<[u8; 2], OdaError> {
    const WHAT: &str = "signed static application data";
    let r = recover(c, WHAT, &issuer.modulus, &issuer.exponent, ssad, &[0x03])?;
    let n = r.len();
    if n < 26 {
        return Err(OdaError::Inconsistent(WHAT));
    }
    if r[2] != 0x01 {
        return Err(OdaError::Algorithm(WHAT));
    }
    let mut input = r[1..n - 21].to_vec();
    input.extend_from_slice(static_data);
    if c.sha1(&input) != r[n - 21..n - 1] {
        return Err(OdaError::Hash(WHAT));
    }
    Ok([r[3], r[4]])
}

/// Signed Dynamic Application Data verification (format 05: DDA, fDDA and CDA; Book 2 §6.5,
/// Table 17). `terminal_data` is what the terminal appends to the hash input (the DDOL data for
/// DDA, the fDDA data for qVSDC, the unpredictable number for CDA). Returns the ICC Dynamic
/// Data.
pub fn verify_sdad(
    c: &dyn Crypto,
    icc: &IccPublicKey,
    sdad: &[u8],
    terminal_data: &[u8],
) -> Result<Vec<u8>, OdaError> {
    verify_sdad_formats(c, icc, sdad, terminal_data, &[0x05])
}

/// Verifies a qVSDC fDDA signature: format 05, or 95 which cards use for fDDA on an online
/// transaction (seen on issued Visa cards; Book C-3 Annex C).
pub fn verify_fdda(
    c: &dyn Crypto,
    icc: &IccPublicKey,
    sdad: &[u8],
    terminal_data: &[u8],
) -> Result<Vec<u8>, OdaError> {
    verify_sdad_formats(c, icc, sdad, terminal_data, &[0x05, 0x95])
}

/// What a verified CDA signature yields (Book 2 §6.6.2, Table 22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdaResult {
    /// ICC Dynamic Number (9F4C).
    pub icc_dynamic_number: Vec<u8>,
    /// The Application Cryptogram from inside the signature.
    pub cryptogram: [u8; 8],
}

/// CDA verification (Book 2 §6.6.2): recovers the Signed Dynamic Application Data with the
/// unpredictable number as terminal data, then checks that the ICC Dynamic Data carries the
/// CID the card returned in 9F27, and that its Transaction Data Hash Code is SHA-1 of
/// `hash_input`: the PDOL data, the CDOL1 data (and CDOL2 data on a second GENERATE AC),
/// then the GENERATE AC response's objects other than 9F4B, in order.
pub fn verify_cda(
    c: &dyn Crypto,
    icc: &IccPublicKey,
    sdad: &[u8],
    unpredictable_number: &[u8],
    cid: u8,
    hash_input: &[u8],
) -> Result<CdaResult, OdaError> {
    const WHAT: &str = "ICC dynamic data";
    let dd = verify_sdad(c, icc, sdad, unpredictable_number)?;
    let n = *dd.first().ok_or(OdaError::Inconsistent(WHAT))? as usize;
    // Number length, number (2-8 bytes), CID, AC (8), transaction data hash code (20).
    if !(2..=8).contains(&n) || dd.len() < 1 + n + 1 + 8 + 20 {
        return Err(OdaError::Inconsistent(WHAT));
    }
    if dd[1 + n] != cid {
        return Err(OdaError::Inconsistent(
            "CID in the signature differs from 9F27",
        ));
    }
    let cryptogram: [u8; 8] = dd[2 + n..10 + n].try_into().expect("length checked");
    if c.sha1(hash_input) != dd[10 + n..30 + n] {
        return Err(OdaError::Hash("transaction data hash code"));
    }
    Ok(CdaResult {
        icc_dynamic_number: dd[1..1 + n].to_vec(),
        cryptogram,
    })
}

fn verify_sdad_formats(
    c: &dyn Crypto,
    icc: &IccPublicKey,
    sdad: &[u8],
    terminal_data: &[u8],
    formats: &[u8],
) -> Result<Vec<u8>, OdaError> {
    const WHAT: &str = "signed dynamic application data";
    let r = recover(c, WHAT, &icc.modulus, &icc.exponent, sdad, formats)?;
    let n = r.len();
    if n < 26 {
        return Err(OdaError::Inconsistent(WHAT));
    }
    if r[2] != 0x01 {
        return Err(OdaError::Algorithm(WHAT));
    }
    let ldd = r[3] as usize;
    if ldd > n - 25 {
        return Err(OdaError::Inconsistent(WHAT));
    }
    let mut input = r[1..n - 21].to_vec();
    input.extend_from_slice(terminal_data);
    if c.sha1(&input) != r[n - 21..n - 1] {
        return Err(OdaError::Hash(WHAT));
    }
    Ok(r[4..4 + ldd].to_vec())
}

/// Builds the static data to be authenticated (Book 3 §10.3): for each AFL entry, the first
/// "ODA" records; from SFIs 1-10 the value of the template 70 (without tag and length), from
/// SFIs 11-30 the whole record; then the value of each tag in the SDA Tag List (9F4A, which
/// may only name the AIP). `records` holds the raw responses (without SW) by (SFI, record).
pub fn static_data(
    afl: &[u8],
    records: &[(u8, u8, Vec<u8>)],
    sda_tag_list: Option<&[u8]>,
    aip: &[u8],
) -> Result<Vec<u8>, OdaError> {
    let mut out = Vec::new();
    for e in afl.chunks(4) {
        if e.len() != 4 {
            return Err(OdaError::Inconsistent("AFL"));
        }
        let (sfi, first, count) = (e[0] >> 3, e[1], e[3]);
        for rec in first..first.saturating_add(count) {
            let raw = records
                .iter()
                .find(|(s, r, _)| *s == sfi && *r == rec)
                .map(|(_, _, v)| v.as_slice())
                .ok_or(OdaError::Missing(Tag::new(0x70)))?;
            if sfi <= 10 {
                let tpl = tlv::expect_template(raw, crate::tags::RECORD_TEMPLATE)
                    .map_err(|_| OdaError::Inconsistent("record for ODA is not template 70"))?;
                out.extend_from_slice(tpl.value());
            } else {
                out.extend_from_slice(raw);
            }
        }
    }
    if let Some(list) = sda_tag_list {
        // Book 3 §10.3: the SDA Tag List may contain only the AIP.
        if list != [0x82] {
            return Err(OdaError::Inconsistent(
                "SDA tag list names something other than the AIP",
            ));
        }
        out.extend_from_slice(aip);
    }
    Ok(out)
}
