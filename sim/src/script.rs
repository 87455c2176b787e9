//! Issuer script commands with secure messaging: what an issuer host sends to a card after an
//! online authorisation, and how the virtual card checks it.
//!
//! - Integrity (EMV Book 2 §9.2, "format 2"): every command carries an 8-byte MAC, ISO/IEC
//!   9797-1 algorithm 3 with padding method 2 (Book 2 A1.2.1), computed with the card's
//!   SMI session key over `CLA INS P1 P2 Lc || ATC || Application Cryptogram || data`, where
//!   Lc counts the MAC, and the ATC and cryptogram are those of the transaction the script
//!   arrives in.
//! - Confidentiality (Book 2 §9.3): a new PIN travels as an ISO 9564 format 2 PIN block
//!   enciphered with the SMC session key (triple DES, ECB).
//! - Session keys (Book 2 A1.3.1): the common session key derivation from the ICC master keys
//!   MK-SMI and MK-SMC (derived from the issuer's IMK-SMI and IMK-SMC like MK-AC, Book 2
//!   A1.4.1 option A) with R = ATC || 00 00 00 00 00 00.
//!
//! The commands (Book 3 §6.5): APPLICATION BLOCK (84 1E), APPLICATION UNBLOCK (84 18), PIN
//! CHANGE/UNBLOCK (84 24, P2 00 resets the PIN try counter, P2 02 also sets a new PIN).

use emv::crypto::{Key16, MacPadding, retail_mac, session_key_common, tdes_decrypt, tdes_encrypt};
use zeroize::{Zeroize, Zeroizing};

/// A script command the issuer can send.
pub enum ScriptCommand {
    /// APPLICATION BLOCK: the application answers SELECT with 6A81 from now on.
    ApplicationBlock,
    /// APPLICATION UNBLOCK.
    ApplicationUnblock,
    /// PIN CHANGE/UNBLOCK with P2 = 00: reset the PIN try counter.
    PinUnblock,
    /// PIN CHANGE/UNBLOCK with P2 = 02: a new PIN (4 to 12 digits), enciphered.
    PinChange(Zeroizing<String>),
}

impl std::fmt::Debug for ScriptCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScriptCommand::ApplicationBlock => "ApplicationBlock",
            ScriptCommand::ApplicationUnblock => "ApplicationUnblock",
            ScriptCommand::PinUnblock => "PinUnblock",
            ScriptCommand::PinChange(_) => "PinChange(***)",
        })
    }
}

impl ScriptCommand {
    /// CLA INS P1 P2.
    pub fn header(&self) -> [u8; 4] {
        match self {
            ScriptCommand::ApplicationBlock => [0x84, 0x1E, 0x00, 0x00],
            ScriptCommand::ApplicationUnblock => [0x84, 0x18, 0x00, 0x00],
            ScriptCommand::PinUnblock => [0x84, 0x24, 0x00, 0x00],
            ScriptCommand::PinChange(_) => [0x84, 0x24, 0x00, 0x02],
        }
    }
}

/// Why a script command cannot be built or is refused by the card.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// The new PIN is not 4 to 12 digits.
    #[error("a PIN is 4 to 12 digits")]
    BadPin,
    /// The command's length or layout is wrong (SW 6700).
    #[error("malformed script command")]
    Malformed,
    /// The MAC does not verify (SW 6988).
    #[error("secure messaging MAC does not verify")]
    BadMac,
}

/// The transaction a script belongs to: its ATC and the cryptogram the card produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptContext {
    /// Application Transaction Counter (9F36) of the transaction.
    pub atc: [u8; 2],
    /// The Application Cryptogram (9F26) the card returned (the ARQC).
    pub ac: [u8; 8],
}

/// The ICC's secure-messaging master keys.
#[derive(Clone)]
pub struct SmKeys {
    /// MK-SMI: integrity.
    pub mk_smi: Key16,
    /// MK-SMC: confidentiality.
    pub mk_smc: Key16,
}

/// ISO 9564-1 format 2 PIN block: `2N` then the digits, filled with F.
pub fn pin_block(pin: &str) -> Result<Zeroizing<[u8; 8]>, ScriptError> {
    if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScriptError::BadPin);
    }
    let mut nibbles = Zeroizing::new([0x0Fu8; 16]);
    nibbles[0] = 2;
    nibbles[1] = pin.len() as u8;
    for (i, b) in pin.bytes().enumerate() {
        nibbles[2 + i] = b - b'0';
    }
    let mut out = Zeroizing::new([0u8; 8]);
    for i in 0..8 {
        out[i] = (nibbles[2 * i] << 4) | nibbles[2 * i + 1];
    }
    Ok(out)
}

/// The PIN digits of a format 2 PIN block.
fn pin_from_block(block: &[u8; 8]) -> Result<Zeroizing<String>, ScriptError> {
    let n = (block[0] & 0x0F) as usize;
    if block[0] >> 4 != 2 || !(4..=12).contains(&n) {
        return Err(ScriptError::BadPin);
    }
    let mut pin = Zeroizing::new(String::with_capacity(n));
    for i in 0..14 {
        let nib = (block[1 + i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0x0F;
        if i < n {
            if nib > 9 {
                return Err(ScriptError::BadPin);
            }
            pin.push((b'0' + nib) as char);
        } else if nib != 0x0F {
            return Err(ScriptError::BadPin);
        }
    }
    Ok(pin)
}

/// The secure-messaging MAC over the header, Lc, the transaction's ATC and cryptogram and
/// the (possibly enciphered) data.
pub fn script_mac(
    sk_smi: &Key16,
    header: [u8; 4],
    lc: u8,
    ctx: &ScriptContext,
    data: &[u8],
) -> [u8; 8] {
    let mut input = Vec::with_capacity(15 + data.len());
    input.extend_from_slice(&header);
    input.push(lc);
    input.extend_from_slice(&ctx.atc);
    input.extend_from_slice(&ctx.ac);
    input.extend_from_slice(data);
    let mac = retail_mac(sk_smi, &input, MacPadding::Method2);
    input.zeroize();
    mac
}

/// Builds the C-APDU of a script command for the card with these master keys, in the
/// transaction `ctx` (the issuer side).
pub fn build_script_command(
    cmd: &ScriptCommand,
    keys: &SmKeys,
    ctx: &ScriptContext,
) -> Result<Vec<u8>, ScriptError> {
    let header = cmd.header();
    let data = match cmd {
        ScriptCommand::PinChange(pin) => {
            let block = pin_block(pin)?;
            let sk_smc = session_key_common(&keys.mk_smc, ctx.atc);
            tdes_encrypt(&sk_smc, *block).to_vec()
        }
        _ => Vec::new(),
    };
    let lc = (data.len() + 8) as u8;
    let sk_smi = session_key_common(&keys.mk_smi, ctx.atc);
    let mac = script_mac(&sk_smi, header, lc, ctx, &data);
    let mut apdu = header.to_vec();
    apdu.push(lc);
    apdu.extend_from_slice(&data);
    apdu.extend_from_slice(&mac);
    Ok(apdu)
}

/// The card side: checks the MAC of a script command (`header` and `data` as received,
/// `data` ending with the 8-byte MAC) and returns the deciphered new PIN of a PIN CHANGE.
pub fn open_script_command(
    header: [u8; 4],
    data: &[u8],
    keys: &SmKeys,
    ctx: &ScriptContext,
) -> Result<Option<Zeroizing<String>>, ScriptError> {
    if data.len() < 8 || data.len() > 255 {
        return Err(ScriptError::Malformed);
    }
    let (body, mac) = data.split_at(data.len() - 8);
    let sk_smi = session_key_common(&keys.mk_smi, ctx.atc);
    let want = script_mac(&sk_smi, header, data.len() as u8, ctx, body);
    // Not secret-dependent timing in a simulator, but compare all bytes anyway.
    if want.iter().zip(mac).fold(0u8, |acc, (a, b)| acc | (a ^ b)) != 0 {
        return Err(ScriptError::BadMac);
    }
    if header == [0x84, 0x24, 0x00, 0x02] {
        let enc: [u8; 8] = body.try_into().map_err(|_| ScriptError::Malformed)?;
        let sk_smc = session_key_common(&keys.mk_smc, ctx.atc);
        let block = Zeroizing::new(tdes_decrypt(&sk_smc, enc));
        return pin_from_block(&block).map(Some);
    }
    if !body.is_empty() {
        return Err(ScriptError::Malformed);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key16 {
        Key16::from_hex(s).unwrap()
    }

    #[test]
    fn pin_block_format_2() {
        assert_eq!(
            *pin_block("1234").unwrap(),
            [0x24, 0x12, 0x34, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(
            *pin_block("123456789012").unwrap(),
            [0x2C, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0xFF]
        );
        assert_eq!(pin_block("123"), Err(ScriptError::BadPin));
        assert_eq!(pin_block("12a4"), Err(ScriptError::BadPin));
        let b = pin_block("98765").unwrap();
        assert_eq!(pin_from_block(&b).unwrap().as_str(), "98765");
        assert!(pin_from_block(&[0x24, 0x12, 0x34, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]).is_err());
    }

    /// The exact bytes, computed independently (Python `cryptography`: common session key
    /// derivation, retail MAC with padding method 2, triple DES ECB).
    #[test]
    fn independent_vectors() {
        let keys = SmKeys {
            mk_smi: key("0123456789ABCDEFFEDCBA9876543210"),
            mk_smc: key("FEDCBA98765432100123456789ABCDEF"),
        };
        let ctx = ScriptContext {
            atc: [0x00, 0x2A],
            ac: [1, 2, 3, 4, 5, 6, 7, 8],
        };
        let block = build_script_command(&ScriptCommand::ApplicationBlock, &keys, &ctx).unwrap();
        assert_eq!(emv::util::hex(&block), "841E000008032533B0AE9621A2");
        let change = build_script_command(
            &ScriptCommand::PinChange(Zeroizing::new("4321".into())),
            &keys,
            &ctx,
        )
        .unwrap();
        assert_eq!(
            emv::util::hex(&change),
            "8424000210D642E92D3FB65408B4B4389D6BD47F89"
        );
    }

    #[test]
    fn round_trip_and_tamper() {
        let keys = SmKeys {
            mk_smi: key("0123456789ABCDEFFEDCBA9876543210"),
            mk_smc: key("FEDCBA98765432100123456789ABCDEF"),
        };
        let ctx = ScriptContext {
            atc: [0x00, 0x2A],
            ac: [1, 2, 3, 4, 5, 6, 7, 8],
        };
        for cmd in [
            ScriptCommand::ApplicationBlock,
            ScriptCommand::ApplicationUnblock,
            ScriptCommand::PinUnblock,
            ScriptCommand::PinChange(Zeroizing::new("4321".into())),
        ] {
            let apdu = build_script_command(&cmd, &keys, &ctx).unwrap();
            let header: [u8; 4] = apdu[..4].try_into().unwrap();
            assert_eq!(apdu[4] as usize, apdu.len() - 5);
            let pin = open_script_command(header, &apdu[5..], &keys, &ctx).unwrap();
            assert_eq!(
                pin.as_deref().map(String::as_str),
                matches!(cmd, ScriptCommand::PinChange(_)).then_some("4321")
            );
            // Any changed byte, another transaction, or another card: refused.
            for i in 0..apdu.len() - 5 {
                let mut d = apdu[5..].to_vec();
                d[i] ^= 0x01;
                assert_eq!(
                    open_script_command(header, &d, &keys, &ctx),
                    Err(ScriptError::BadMac)
                );
            }
            let other = ScriptContext {
                atc: [0x00, 0x2B],
                ..ctx
            };
            assert_eq!(
                open_script_command(header, &apdu[5..], &keys, &other),
                Err(ScriptError::BadMac)
            );
        }
    }
}
