//! The Kassa test EMV PKI, card side: issuer and ICC public key certificates and the signed
//! data a card produces (EMV Book 2 formats 02, 03, 04 and 05), signed with the test keys in
//! [`crate::keys`]. The terminal side (recovery and verification) is `emv::oda`.

use emv::oda::{CaPublicKey, Crypto, RustCrypto};

use crate::keys::{self, KeyLookupError};
use crate::rsa::RsaKey;

/// The Kassa test CA public key index used under every RID.
pub const KASSA_CA_INDEX: u8 = 0xA1;

/// The RIDs the Kassa test PKI covers.
pub const RIDS: &[[u8; 5]] = &[
    [0xA0, 0, 0, 0, 0x03],
    [0xA0, 0, 0, 0, 0x04],
    [0xA0, 0, 0, 0x03, 0x33],
    [0xA0, 0, 0, 0, 0x65],
    [0xA0, 0, 0, 0, 0x25],
    [0xA0, 0, 0, 0x01, 0x52],
];

/// The test CA key for `rid` (private part included: the simulators sign with it).
pub fn ca_key(rid: &[u8; 5]) -> Result<RsaKey, KeyLookupError> {
    keys::key(&format!(
        "ca-{}-{:02X}",
        emv::util::hex(rid),
        KASSA_CA_INDEX
    ))
}

/// The Kassa test CA public keys, with their check sums, for the terminal's CAPK list.
pub fn ca_public_keys() -> Vec<CaPublicKey> {
    RIDS.iter()
        .filter_map(|rid| {
            let k = ca_key(rid).ok()?;
            let mut pk = CaPublicKey {
                rid: *rid,
                index: KASSA_CA_INDEX,
                modulus: k.modulus(),
                exponent: k.exponent(),
                checksum: None,
                expiry: None,
            };
            pk.checksum = Some(pk.compute_checksum(&RustCrypto));
            Some(pk)
        })
        .collect()
}

/// A certificate as a card stores it: the certificate, the public key remainder (empty when
/// the whole modulus fits) and the exponent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Tag 90 or 9F46.
    pub cert: Vec<u8>,
    /// Tag 92 or 9F48 (may be empty).
    pub remainder: Vec<u8>,
    /// Tag 9F32 or 9F47.
    pub exponent: Vec<u8>,
}

fn sha1(d: &[u8]) -> [u8; 20] {
    RustCrypto.sha1(d)
}

impl Certificate {
    /// The certificate as `emv::oda` takes it.
    pub fn data(&self) -> emv::oda::CertData<'_> {
        emv::oda::CertData {
            cert: &self.cert,
            remainder: &self.remainder,
            exponent: &self.exponent,
        }
    }
}

/// Packs digits left-justified with `F` padding into `len` bytes (the issuer identifier and
/// the PAN in certificates).
fn digits_f(digits: &str, len: usize) -> Vec<u8> {
    let mut s: String = digits.to_string();
    while s.len() < len * 2 {
        s.push('F');
    }
    emv::util::unhex(&s[..len * 2]).unwrap_or_else(|_| vec![0xFF; len])
}

/// Splits a modulus into the part that fits in the certificate (padded with BB) and the
/// remainder.
fn split_modulus(modulus: &[u8], room: usize) -> (Vec<u8>, Vec<u8>) {
    if modulus.len() <= room {
        let mut part = modulus.to_vec();
        part.resize(room, 0xBB);
        (part, Vec::new())
    } else {
        (modulus[..room].to_vec(), modulus[room..].to_vec())
    }
}

/// Issuer Public Key Certificate, format 02 (Book 2 Table 6), signed by the CA key.
/// `issuer_id` is 3-8 leftmost PAN digits; `expiry` and `serial` as they go in the certificate.
pub fn issuer_certificate(
    ca: &RsaKey,
    issuer: &RsaKey,
    issuer_id: &str,
    expiry_mmyy: [u8; 2],
    serial: [u8; 3],
) -> Certificate {
    let nca = ca.len();
    let modulus = issuer.modulus();
    let exponent = issuer.exponent();
    let (part, remainder) = split_modulus(&modulus, nca - 36);
    let mut body = vec![0x02];
    body.extend_from_slice(&digits_f(issuer_id, 4));
    body.extend_from_slice(&expiry_mmyy);
    body.extend_from_slice(&serial);
    body.extend_from_slice(&[0x01, 0x01, modulus.len() as u8, exponent.len() as u8]);
    body.extend_from_slice(&part);
    let mut hash_input = body.clone();
    hash_input.extend_from_slice(&remainder);
    hash_input.extend_from_slice(&exponent);
    let mut rec = vec![0x6A];
    rec.extend_from_slice(&body);
    rec.extend_from_slice(&sha1(&hash_input));
    rec.push(0xBC);
    debug_assert_eq!(rec.len(), nca);
    Certificate {
        cert: ca.private_op(&rec),
        remainder,
        exponent,
    }
}

/// ICC Public Key Certificate, format 04 (Book 2 Table 14), signed by the issuer key over the
/// card's static data to be authenticated.
pub fn icc_certificate(
    issuer: &RsaKey,
    icc: &RsaKey,
    pan: &str,
    expiry_mmyy: [u8; 2],
    serial: [u8; 3],
    static_data: &[u8],
) -> Certificate {
    let ni = issuer.len();
    let modulus = icc.modulus();
    let exponent = icc.exponent();
    let (part, remainder) = split_modulus(&modulus, ni - 42);
    let mut body = vec![0x04];
    body.extend_from_slice(&digits_f(pan, 10));
    body.extend_from_slice(&expiry_mmyy);
    body.extend_from_slice(&serial);
    body.extend_from_slice(&[0x01, 0x01, modulus.len() as u8, exponent.len() as u8]);
    body.extend_from_slice(&part);
    let mut hash_input = body.clone();
    hash_input.extend_from_slice(&remainder);
    hash_input.extend_from_slice(&exponent);
    hash_input.extend_from_slice(static_data);
    let mut rec = vec![0x6A];
    rec.extend_from_slice(&body);
    rec.extend_from_slice(&sha1(&hash_input));
    rec.push(0xBC);
    debug_assert_eq!(rec.len(), ni);
    Certificate {
        cert: issuer.private_op(&rec),
        remainder,
        exponent,
    }
}

/// Signed Static Application Data, format 03 (Book 2 Table 7).
pub fn ssad(issuer: &RsaKey, dac: [u8; 2], static_data: &[u8]) -> Vec<u8> {
    let ni = issuer.len();
    let mut body = vec![0x03, 0x01, dac[0], dac[1]];
    body.resize(body.len() + ni - 26, 0xBB);
    let mut hash_input = body.clone();
    hash_input.extend_from_slice(static_data);
    let mut rec = vec![0x6A];
    rec.extend_from_slice(&body);
    rec.extend_from_slice(&sha1(&hash_input));
    rec.push(0xBC);
    debug_assert_eq!(rec.len(), ni);
    issuer.private_op(&rec)
}

/// Signed Dynamic Application Data, format 05 (Book 2 Table 17): the ICC Dynamic Data signed
/// together with the terminal's data.
pub fn sdad(icc: &RsaKey, icc_dynamic_data: &[u8], terminal_data: &[u8]) -> Vec<u8> {
    let nic = icc.len();
    let mut body = vec![0x05, 0x01, icc_dynamic_data.len() as u8];
    body.extend_from_slice(icc_dynamic_data);
    body.resize(nic - 22, 0xBB);
    let mut hash_input = body.clone();
    hash_input.extend_from_slice(terminal_data);
    let mut rec = vec![0x6A];
    rec.extend_from_slice(&body);
    rec.extend_from_slice(&sha1(&hash_input));
    rec.push(0xBC);
    debug_assert_eq!(rec.len(), nic);
    icc.private_op(&rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use emv::oda::{self, OdaError};
    use emv::util::Date;

    const TODAY: Date = Date {
        year: 2026,
        month: 11,
        day: 29,
    };

    #[test]
    fn chain_recovers_and_each_byte_matters() {
        let rid = [0xA0, 0, 0, 0, 0x03];
        let ca = ca_key(&rid).unwrap();
        let capk = ca_public_keys().into_iter().find(|k| k.rid == rid).unwrap();
        assert_eq!(capk.modulus.len(), 248);
        let issuer = keys::key("issuer-visa").unwrap();
        let icc = keys::key("icc-visa").unwrap();
        let pan = "4761739001010119";
        let static_data = b"record data to be authenticated";
        let ic = issuer_certificate(&ca, &issuer, "476173", [0x12, 0x30], [0, 0, 1]);
        // 1408-bit issuer key under a 1984-bit CA: the whole modulus fits, no remainder.
        assert!(ic.remainder.is_empty());
        let ipk = oda::recover_issuer_key(&RustCrypto, &capk, ic.data(), pan, TODAY).unwrap();
        assert_eq!(ipk.modulus, issuer.modulus());
        assert_eq!(ipk.issuer_id, "476173");
        let cc = icc_certificate(&issuer, &icc, pan, [0x12, 0x30], [0, 0, 2], static_data);
        let icpk =
            oda::recover_icc_key(&RustCrypto, &ipk, cc.data(), static_data, pan, TODAY).unwrap();
        assert_eq!(icpk.modulus, icc.modulus());
        let dyn_data = [0x02, 0x12, 0x34];
        let s = sdad(&icc, &dyn_data, &[0xDE, 0xAD, 0xBE, 0xEF]);
        assert_eq!(
            oda::verify_sdad(&RustCrypto, &icpk, &s, &[0xDE, 0xAD, 0xBE, 0xEF]).unwrap(),
            dyn_data
        );

        // One byte changed anywhere breaks it.
        let mut bad = s.clone();
        bad[40] ^= 0x01;
        assert!(oda::verify_sdad(&RustCrypto, &icpk, &bad, &[0xDE, 0xAD, 0xBE, 0xEF]).is_err());
        assert_eq!(
            oda::verify_sdad(&RustCrypto, &icpk, &s, &[0xDE, 0xAD, 0xBE, 0xEE]),
            Err(OdaError::Hash("signed dynamic application data"))
        );
        assert_eq!(
            oda::recover_icc_key(
                &RustCrypto,
                &ipk,
                cc.data(),
                b"record data to be authenticateD",
                pan,
                TODAY
            ),
            Err(OdaError::Hash("ICC public key certificate"))
        );
        assert_eq!(
            oda::recover_issuer_key(&RustCrypto, &capk, ic.data(), "5413330000000019", TODAY),
            Err(OdaError::IssuerId)
        );
        let late = Date {
            year: 2031,
            month: 1,
            day: 1,
        };
        assert_eq!(
            oda::recover_issuer_key(&RustCrypto, &capk, ic.data(), pan, late),
            Err(OdaError::Expired("issuer"))
        );
        // SDA.
        let ss = ssad(&issuer, [0xDA, 0xC1], static_data);
        assert_eq!(
            oda::verify_ssad(&RustCrypto, &ipk, &ss, static_data),
            Ok([0xDA, 0xC1])
        );
        assert!(oda::verify_ssad(&RustCrypto, &ipk, &ss, b"other").is_err());
    }

    #[test]
    fn remainder_when_the_key_does_not_fit() {
        // A 1408-bit issuer key under the 1408-bit Mastercard test CA needs a remainder.
        let rid = [0xA0, 0, 0, 0, 0x04];
        let ca = ca_key(&rid).unwrap();
        let capk = ca_public_keys().into_iter().find(|k| k.rid == rid).unwrap();
        let issuer = keys::key("issuer-unionpay").unwrap();
        let ic = issuer_certificate(&ca, &issuer, "541333", [0x12, 0x30], [0, 0, 1]);
        assert_eq!(ic.remainder.len(), 36);
        let ipk = oda::recover_issuer_key(&RustCrypto, &capk, ic.data(), "5413330089010012", TODAY)
            .unwrap();
        assert_eq!(ipk.modulus, issuer.modulus());
        assert!(
            oda::recover_issuer_key(
                &RustCrypto,
                &capk,
                oda::CertData {
                    remainder: &ic.remainder[1..],
                    ..ic.data()
                },
                "5413330089010012",
                TODAY
            )
            .is_err()
        );
        assert_eq!(capk.checksum, Some(capk.compute_checksum(&RustCrypto)));
    }
}
