//! Online PIN: ISO 9564-1 PIN blocks (format 0 under TDES, format 4 under AES) and the DUKPT
//! key management that gives every transaction its own PIN key (ANSI X9.24-3-2017 AES DUKPT
//! with AES-128 keys; ANSI X9.24-1-2009 TDES DUKPT).
//!
//! Every key and PIN buffer here is zeroized when dropped, and `Debug` never shows one.

use std::fmt;

use aes::cipher::{BlockDecrypt as _, BlockEncrypt as _, KeyInit as _};
use des::cipher::{BlockCipherDecrypt as _, BlockCipherEncrypt as _, KeyInit as _};
use zeroize::{Zeroize, Zeroizing};

/// Why a PIN block or a DUKPT key could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// A PIN is 4 to 12 digits (ISO 9564-1 §8.1).
    #[error("a PIN is 4 to 12 digits")]
    PinLength,
    /// The PAN is not 12 to 19 digits.
    #[error("the PAN must be 12 to 19 digits")]
    Pan,
    /// The transaction counter has run out: the device needs a new initial key.
    #[error("the DUKPT transaction counter is exhausted; load a new initial key")]
    Exhausted,
    /// A counter with more one-bits than the scheme allows (16 for AES, 10 for TDES).
    #[error("the DUKPT transaction counter {0:#x} is not a valid one")]
    Counter(u32),
    /// A key or KSN of the wrong length.
    #[error("{0}")]
    Length(&'static str),
    /// A deciphered block that is not a PIN block of its format (wrong key, wrong PAN, or
    /// damaged in transit).
    #[error("not a valid format {0} PIN block")]
    Block(u8),
}

/// PIN digits as entered, kept only here: zeroized on drop, never shown by `Debug`, never
/// turned into text except by [`expose`](PinDigits::expose) for building the block.
#[derive(Default, Clone, PartialEq, Eq)]
pub struct PinDigits(Zeroizing<Vec<u8>>);

impl fmt::Debug for PinDigits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PinDigits(<{} digits>)", self.0.len())
    }
}

impl PinDigits {
    /// The most digits a PIN has (ISO 9564-1 §8.1).
    pub const MAX: usize = 12;
    /// The fewest.
    pub const MIN: usize = 4;

    /// An empty buffer with room for the longest PIN (no reallocation copies digits).
    pub fn new() -> Self {
        PinDigits(Zeroizing::new(Vec::with_capacity(Self::MAX)))
    }

    /// From text (a PIN typed on stdin, a card profile's test PIN): 4 to 12 ASCII digits.
    pub fn parse(text: &str) -> Result<Self, PinError> {
        let mut p = PinDigits::new();
        for c in text.bytes() {
            if !c.is_ascii_digit() || !p.push(c - b'0') {
                return Err(PinError::PinLength);
            }
        }
        if !p.complete() {
            return Err(PinError::PinLength);
        }
        Ok(p)
    }

    /// Appends one digit (0-9); false when the buffer is full or it is not a digit.
    pub fn push(&mut self, digit: u8) -> bool {
        if digit > 9 || self.0.len() >= Self::MAX {
            return false;
        }
        self.0.push(b'0' + digit);
        true
    }

    /// Removes the last digit (the "correct" key takes them all: [`clear`](Self::clear)).
    pub fn pop(&mut self) {
        if let Some(d) = self.0.last_mut() {
            *d = 0;
        }
        self.0.pop();
    }

    /// Forgets every digit.
    pub fn clear(&mut self) {
        self.0.zeroize();
        self.0.clear();
    }

    /// How many digits were entered (what the screen shows as dots).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing was entered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// 4 to 12 digits: ready for a PIN block.
    pub fn complete(&self) -> bool {
        (Self::MIN..=Self::MAX).contains(&self.0.len())
    }

    /// The digits as text, for the PIN block functions only.
    pub fn expose(&self) -> &str {
        // Only ASCII digits are ever pushed.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// Compares in time independent of where the digits differ.
    pub fn matches(&self, other: &PinDigits) -> bool {
        let (a, b) = (&self.0, &other.0);
        let mut diff = u8::from(a.len() != b.len());
        for i in 0..a.len().max(b.len()) {
            diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xFF);
        }
        diff == 0
    }
}

/// An enciphered PIN block with the key serial number it was enciphered under: what ISO 8583
/// fields 52 and 53 carry. The length of each tells the scheme: an 8-byte format 0 block
/// with a 10-byte TDES DUKPT KSN (X9.24-1), or a 16-byte format 4 block with a 12-byte AES
/// DUKPT KSN (X9.24-3).
#[derive(Clone, PartialEq, Eq)]
pub enum EncipheredPin {
    /// ISO 9564-1 format 0 under a TDES DUKPT PIN key.
    Format0 {
        /// The block (field 52).
        block: [u8; 8],
        /// The KSN (field 53).
        ksn: [u8; 10],
    },
    /// ISO 9564-1 format 4 under an AES DUKPT PIN key.
    Format4 {
        /// The block (field 52).
        block: [u8; 16],
        /// The KSN (field 53).
        ksn: [u8; 12],
    },
}

impl fmt::Debug for EncipheredPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncipheredPin::Format0 { .. } => f.write_str("EncipheredPin::Format0(ksn ")?,
            EncipheredPin::Format4 { .. } => f.write_str("EncipheredPin::Format4(ksn ")?,
        }
        for b in self.ksn() {
            write!(f, "{b:02X}")?;
        }
        f.write_str(")")
    }
}

impl EncipheredPin {
    /// Field 52's bytes.
    pub fn block(&self) -> &[u8] {
        match self {
            EncipheredPin::Format0 { block, .. } => block,
            EncipheredPin::Format4 { block, .. } => block,
        }
    }

    /// Field 53's bytes.
    pub fn ksn(&self) -> &[u8] {
        match self {
            EncipheredPin::Format0 { ksn, .. } => ksn,
            EncipheredPin::Format4 { ksn, .. } => ksn,
        }
    }

    /// From fields 52 and 53 as received: 8 + 10 bytes or 16 + 12 bytes.
    pub fn from_fields(block: &[u8], ksn: &[u8]) -> Result<Self, PinError> {
        match (block.len(), ksn.len()) {
            (8, 10) => Ok(EncipheredPin::Format0 {
                block: block.try_into().map_err(|_| PinError::Length("field 52"))?,
                ksn: ksn.try_into().map_err(|_| PinError::Length("field 53"))?,
            }),
            (16, 12) => Ok(EncipheredPin::Format4 {
                block: block.try_into().map_err(|_| PinError::Length("field 52"))?,
                ksn: ksn.try_into().map_err(|_| PinError::Length("field 53"))?,
            }),
            _ => Err(PinError::Length(
                "fields 52/53: an 8-byte block with a 10-byte KSN, or 16 with 12",
            )),
        }
    }

    /// The host's side: derives this KSN's PIN key from the BDK of its scheme and deciphers
    /// the block against the PAN.
    pub fn decipher(
        &self,
        aes_bdk: &Key16,
        tdes_bdk: &Key16,
        pan: &str,
    ) -> Result<PinDigits, PinError> {
        match self {
            EncipheredPin::Format0 { block, ksn } => {
                let ipek = tdes_dukpt::ipek(tdes_bdk, ksn);
                let key = tdes_dukpt::pin_key(&ipek, ksn)?;
                format0_decipher(block, pan, &key)
            }
            EncipheredPin::Format4 { block, ksn } => {
                let ksn = aes_dukpt::Ksn::from_slice(ksn)?;
                let ik = aes_dukpt::initial_key(aes_bdk, &ksn.initial_key_id);
                let key = aes_dukpt::working_key(&ik, &ksn, aes_dukpt::Usage::PinEncryption)?;
                format4_decipher(block, pan, &key)
            }
        }
    }
}

/// A 16-byte key (AES-128, or double-length TDES), zeroized on drop; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key16(pub [u8; 16]);

impl Drop for Key16 {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key16 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key16(<hidden>)")
    }
}

impl Key16 {
    /// From 16 bytes.
    pub fn from_slice(b: &[u8]) -> Result<Key16, PinError> {
        let a: [u8; 16] = b
            .try_into()
            .map_err(|_| PinError::Length("a key is 16 bytes"))?;
        Ok(Key16(a))
    }
}

fn aes_encrypt(key: &Key16, block: &[u8; 16]) -> [u8; 16] {
    let c = aes::Aes128::new(&key.0.into());
    let mut b = aes::Block::from(*block);
    c.encrypt_block(&mut b);
    b.into()
}

fn aes_decrypt(key: &Key16, block: &[u8; 16]) -> [u8; 16] {
    let c = aes::Aes128::new(&key.0.into());
    let mut b = aes::Block::from(*block);
    c.decrypt_block(&mut b);
    b.into()
}

fn tdes_decrypt(key: &Key16, block: &[u8; 8]) -> [u8; 8] {
    let c = des::TdesEde2::new(&key.0.into());
    let mut b = des::cipher::Block::<des::TdesEde2>::from(*block);
    c.decrypt_block(&mut b);
    b.into()
}

fn des_encrypt(key: &[u8; 8], block: &[u8; 8]) -> [u8; 8] {
    let c = des::Des::new(&(*key).into());
    let mut b = des::cipher::Block::<des::Des>::from(*block);
    c.encrypt_block(&mut b);
    b.into()
}

fn tdes_encrypt(key: &Key16, block: &[u8; 8]) -> [u8; 8] {
    let c = des::TdesEde2::new(&key.0.into());
    let mut b = des::cipher::Block::<des::TdesEde2>::from(*block);
    c.encrypt_block(&mut b);
    b.into()
}

fn digits(s: &str) -> Option<Vec<u8>> {
    s.bytes()
        .map(|b| b.is_ascii_digit().then(|| b - b'0'))
        .collect()
}

fn pin_digits(pin: &str) -> Result<Zeroizing<Vec<u8>>, PinError> {
    let d = Zeroizing::new(digits(pin).ok_or(PinError::PinLength)?);
    if !(4..=12).contains(&d.len()) {
        return Err(PinError::PinLength);
    }
    Ok(d)
}

fn nibbles_to_bytes(n: &[u8]) -> Vec<u8> {
    n.chunks(2).map(|c| (c[0] << 4) | c[1]).collect()
}

/// ISO 9564-1 format 0 PAN field: four zero nibbles, then the 12 rightmost PAN digits before
/// the check digit (a 12-digit PAN has only 11: the field starts with one more zero).
fn format0_pan_field(pan: &str) -> Result<[u8; 8], PinError> {
    let pan = digits(pan)
        .filter(|d| (12..=19).contains(&d.len()))
        .ok_or(PinError::Pan)?;
    let body = &pan[..pan.len() - 1];
    let take = body.len().min(12);
    let mut pan_field = [0u8; 16];
    pan_field[16 - take..].copy_from_slice(&body[body.len() - take..]);
    let mut out = [0u8; 8];
    out.copy_from_slice(&nibbles_to_bytes(&pan_field));
    Ok(out)
}

/// ISO 9564-1 format 0: the PIN field (0, length, PIN, F fill) XOR the PAN field (four zero
/// nibbles, the 12 rightmost PAN digits before the check digit). Returns the clear block.
pub fn format0_clear(pin: &str, pan: &str) -> Result<Zeroizing<[u8; 8]>, PinError> {
    let p = pin_digits(pin)?;
    let b = format0_pan_field(pan)?;
    let mut pin_field = Zeroizing::new([0xFu8; 16]);
    pin_field[0] = 0;
    pin_field[1] = p.len() as u8;
    pin_field[2..2 + p.len()].copy_from_slice(&p);
    let a = Zeroizing::new(nibbles_to_bytes(&pin_field[..]));
    let mut out = Zeroizing::new([0u8; 8]);
    for i in 0..8 {
        out[i] = a[i] ^ b[i];
    }
    Ok(out)
}

/// The format 0 block enciphered under a TDES PIN key.
pub fn format0(pin: &str, pan: &str, key: &Key16) -> Result<[u8; 8], PinError> {
    Ok(tdes_encrypt(key, &*format0_clear(pin, pan)?))
}

/// ISO 9564-1 format 4 plain PIN field: 4, length, PIN, A fill to 16 nibbles, then `fill`
/// (8 random bytes; fixed only to compare with published vectors).
pub fn format4_pin_field(pin: &str, fill: &[u8; 8]) -> Result<Zeroizing<[u8; 16]>, PinError> {
    let p = pin_digits(pin)?;
    let mut n = Zeroizing::new([0xAu8; 16]);
    n[0] = 4;
    n[1] = p.len() as u8;
    n[2..2 + p.len()].copy_from_slice(&p);
    let mut out = Zeroizing::new([0u8; 16]);
    out[..8].copy_from_slice(&nibbles_to_bytes(&n[..]));
    out[8..].copy_from_slice(fill);
    Ok(out)
}

/// ISO 9564-1 format 4 PAN field: PAN length minus 12 (0 when shorter), the PAN (left-padded
/// with zeros to 12 digits), then zeros.
pub fn format4_pan_field(pan: &str) -> Result<[u8; 16], PinError> {
    let d = digits(pan)
        .filter(|d| (12..=19).contains(&d.len()))
        .ok_or(PinError::Pan)?;
    let mut n = [0u8; 32];
    n[0] = (d.len() - 12) as u8;
    n[1..1 + d.len()].copy_from_slice(&d);
    let mut out = [0u8; 16];
    out.copy_from_slice(&nibbles_to_bytes(&n));
    Ok(out)
}

/// ISO 9564-1 format 4 enciphered block: AES(AES(PIN field) XOR PAN field).
pub fn format4(pin: &str, pan: &str, key: &Key16, fill: &[u8; 8]) -> Result<[u8; 16], PinError> {
    let pin_field = format4_pin_field(pin, fill)?;
    let pan_field = format4_pan_field(pan)?;
    let mut i = Zeroizing::new(aes_encrypt(key, &pin_field));
    for (a, b) in i.iter_mut().zip(pan_field) {
        *a ^= b;
    }
    Ok(aes_encrypt(key, &i))
}

/// Reads the PIN out of a clear PIN field's nibbles: `control`, length, digits, then `fill`
/// nibbles up to nibble 16 (format 0: F; format 4: A).
fn pin_from_field(n: &[u8], control: u8, fill: u8, format: u8) -> Result<PinDigits, PinError> {
    let bad = PinError::Block(format);
    if n.len() < 16 || n[0] != control {
        return Err(bad);
    }
    let len = usize::from(n[1]);
    if !(PinDigits::MIN..=PinDigits::MAX).contains(&len) {
        return Err(bad);
    }
    let mut pin = PinDigits::new();
    for &d in &n[2..2 + len] {
        if !pin.push(d) {
            return Err(bad);
        }
    }
    if n[2 + len..16].iter().any(|&f| f != fill) {
        return Err(bad);
    }
    Ok(pin)
}

fn bytes_to_nibbles(b: &[u8]) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(b.iter().flat_map(|x| [x >> 4, x & 0x0F]).collect())
}

/// The host's side of format 0: deciphers under the TDES PIN key, removes the PAN field and
/// reads the PIN (ISO 9564-1 §9.3.1).
pub fn format0_decipher(block: &[u8; 8], pan: &str, key: &Key16) -> Result<PinDigits, PinError> {
    let clear = Zeroizing::new(tdes_decrypt(key, block));
    let pan_field = format0_pan_field(pan)?;
    let mut pin_field = Zeroizing::new([0u8; 8]);
    for i in 0..8 {
        pin_field[i] = clear[i] ^ pan_field[i];
    }
    pin_from_field(&bytes_to_nibbles(&pin_field[..]), 0, 0xF, 0)
}

/// The host's side of format 4: AES-decipher, XOR the PAN field, AES-decipher again, read
/// the PIN (ISO 9564-1 §9.4.2).
pub fn format4_decipher(block: &[u8; 16], pan: &str, key: &Key16) -> Result<PinDigits, PinError> {
    let pan_field = format4_pan_field(pan)?;
    let mut i = Zeroizing::new(aes_decrypt(key, block));
    for (a, b) in i.iter_mut().zip(pan_field) {
        *a ^= b;
    }
    let pin_field = Zeroizing::new(aes_decrypt(key, &i));
    pin_from_field(&bytes_to_nibbles(&pin_field[..8]), 4, 0xA, 4)
}

/// ANSI X9.24-3-2017 AES DUKPT with AES-128 keys.
pub mod aes_dukpt {
    use super::*;

    /// Key usage indicators of the derivation data (X9.24-3 §6.3.2).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Usage {
        /// 8001: the initial key from the BDK.
        InitialKey,
        /// 8000: intermediate derivation keys.
        Derivation,
        /// 1000: PIN encryption.
        PinEncryption,
        /// 2000: MAC generation.
        MacGeneration,
        /// 3000: data encryption, both ways.
        DataEncryption,
    }

    impl Usage {
        fn code(self) -> [u8; 2] {
            match self {
                Usage::InitialKey => [0x80, 0x01],
                Usage::Derivation => [0x80, 0x00],
                Usage::PinEncryption => [0x10, 0x00],
                Usage::MacGeneration => [0x20, 0x00],
                Usage::DataEncryption => [0x30, 0x00],
            }
        }
    }

    /// A 12-byte key serial number: the 8-byte initial key ID and a 4-byte counter.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Ksn {
        /// BDK ID (4 bytes) and derivation ID (4 bytes).
        pub initial_key_id: [u8; 8],
        /// The transaction counter.
        pub counter: u32,
    }

    impl Ksn {
        /// From 12 bytes.
        pub fn from_slice(b: &[u8]) -> Result<Ksn, PinError> {
            if b.len() != 12 {
                return Err(PinError::Length("an AES DUKPT KSN is 12 bytes"));
            }
            let mut id = [0u8; 8];
            id.copy_from_slice(&b[..8]);
            Ok(Ksn {
                initial_key_id: id,
                counter: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            })
        }

        /// The 12 bytes (field 53 carries them).
        pub fn to_bytes(&self) -> [u8; 12] {
            let mut b = [0u8; 12];
            b[..8].copy_from_slice(&self.initial_key_id);
            b[8..].copy_from_slice(&self.counter.to_be_bytes());
            b
        }
    }

    fn derivation_data(usage: Usage, data: &[u8; 8]) -> [u8; 16] {
        let mut d = [0u8; 16];
        d[0] = 0x01; // version
        d[1] = 0x01; // key block counter
        d[2..4].copy_from_slice(&usage.code());
        d[4..6].copy_from_slice(&[0x00, 0x02]); // AES-128
        d[6..8].copy_from_slice(&[0x00, 0x80]); // 128 bits
        d[8..].copy_from_slice(data);
        d
    }

    /// The initial key a device is loaded with, from the BDK and its initial key ID.
    pub fn initial_key(bdk: &Key16, initial_key_id: &[u8; 8]) -> Key16 {
        Key16(aes_encrypt(
            bdk,
            &derivation_data(Usage::InitialKey, initial_key_id),
        ))
    }

    fn data_for(id: &[u8; 8], counter: u32) -> [u8; 8] {
        let mut d = [0u8; 8];
        d[..4].copy_from_slice(&id[4..]);
        d[4..].copy_from_slice(&counter.to_be_bytes());
        d
    }

    /// The derivation key of `ksn`'s counter, walking its one-bits from the top down from the
    /// initial key. A counter with more than 16 one-bits is not valid (§6.1).
    pub fn derivation_key(initial: &Key16, ksn: &Ksn) -> Result<Key16, PinError> {
        if ksn.counter.count_ones() > 16 {
            return Err(PinError::Counter(ksn.counter));
        }
        let mut key = initial.clone();
        let mut working = 0u32;
        for bit in (0..32).rev() {
            let mask = 1u32 << bit;
            if ksn.counter & mask != 0 {
                working |= mask;
                let d = derivation_data(Usage::Derivation, &data_for(&ksn.initial_key_id, working));
                key = Key16(aes_encrypt(&key, &d));
            }
        }
        Ok(key)
    }

    /// A working key of `usage` for `ksn`.
    pub fn working_key(initial: &Key16, ksn: &Ksn, usage: Usage) -> Result<Key16, PinError> {
        let k = derivation_key(initial, ksn)?;
        let d = derivation_data(usage, &data_for(&ksn.initial_key_id, ksn.counter));
        Ok(Key16(aes_encrypt(&k, &d)))
    }

    /// The next valid counter after `counter` (at most 16 one-bits), or `Exhausted`.
    pub fn next_counter(counter: u32) -> Result<u32, PinError> {
        let mut c = counter.checked_add(1).ok_or(PinError::Exhausted)?;
        while c.count_ones() > 16 {
            // Skip to the next value with fewer one-bits: add the lowest set bit.
            c = c
                .checked_add(c & c.wrapping_neg())
                .ok_or(PinError::Exhausted)?;
        }
        Ok(c)
    }
}

/// ANSI X9.24-1-2009 TDES DUKPT (10-byte KSN: 59-bit initial key serial number and a 21-bit
/// counter).
pub mod tdes_dukpt {
    use super::*;

    const MASK: [u8; 16] = [
        0xC0, 0xC0, 0xC0, 0xC0, 0x00, 0x00, 0x00, 0x00, 0xC0, 0xC0, 0xC0, 0xC0, 0x00, 0x00, 0x00,
        0x00,
    ];

    /// The initial PIN encryption key (IPEK) from the BDK and the KSN (its counter cleared).
    pub fn ipek(bdk: &Key16, ksn: &[u8; 10]) -> Key16 {
        let mut base = [0u8; 8];
        base.copy_from_slice(&ksn[..8]);
        base[7] &= 0xE0;
        let left = tdes_encrypt(bdk, &base);
        let mut masked = bdk.clone();
        for (k, m) in masked.0.iter_mut().zip(MASK) {
            *k ^= m;
        }
        let right = tdes_encrypt(&masked, &base);
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&left);
        k[8..].copy_from_slice(&right);
        Key16(k)
    }

    /// The non-reversible key generation process (X9.24-1 A.2): one step of the key chain.
    fn step(key: &Key16, reg: &[u8; 8]) -> Key16 {
        let half = |k: &Key16| -> [u8; 8] {
            let mut r1 = [0u8; 8];
            for i in 0..8 {
                r1[i] = reg[i] ^ k.0[8 + i];
            }
            let mut l = [0u8; 8];
            l.copy_from_slice(&k.0[..8]);
            let mut r2 = des_encrypt(&l, &r1);
            for (r, kb) in r2.iter_mut().zip(&k.0[8..]) {
                *r ^= kb;
            }
            l.zeroize();
            r2
        };
        let right = half(key);
        let mut masked = key.clone();
        for (k, m) in masked.0.iter_mut().zip(MASK) {
            *k ^= m;
        }
        let left = half(&masked);
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&left);
        k[8..].copy_from_slice(&right);
        Key16(k)
    }

    /// The transaction key of `ksn` (its 21-bit counter walked from the top bit down).
    pub fn transaction_key(ipek: &Key16, ksn: &[u8; 10]) -> Result<Key16, PinError> {
        let counter = u32::from_be_bytes([0, ksn[7] & 0x1F, ksn[8], ksn[9]]);
        if counter.count_ones() > 10 {
            return Err(PinError::Counter(counter));
        }
        let mut reg = [0u8; 8];
        reg.copy_from_slice(&ksn[2..]);
        reg[5] &= 0xE0;
        reg[6] = 0;
        reg[7] = 0;
        let mut key = ipek.clone();
        for bit in (0..21).rev() {
            let mask = 1u32 << bit;
            if counter & mask != 0 {
                let b = mask.to_be_bytes();
                reg[5] |= b[1];
                reg[6] |= b[2];
                reg[7] |= b[3];
                key = step(&key, &reg);
            }
        }
        Ok(key)
    }

    /// The next valid counter after `counter` (at most 10 one-bits, within the 21-bit
    /// field), or `Exhausted`.
    pub fn next_counter(counter: u32) -> Result<u32, PinError> {
        let mut c = counter.checked_add(1).ok_or(PinError::Exhausted)?;
        while c.count_ones() > 10 {
            c = c
                .checked_add(c & c.wrapping_neg())
                .ok_or(PinError::Exhausted)?;
        }
        if c > 0x1F_FFFF {
            return Err(PinError::Exhausted);
        }
        Ok(c)
    }

    /// `ksn` with its 21-bit counter set to `counter`.
    pub fn with_counter(ksn: &[u8; 10], counter: u32) -> [u8; 10] {
        let mut k = *ksn;
        let c = (counter & 0x1F_FFFF).to_be_bytes();
        k[7] = (k[7] & 0xE0) | c[1];
        k[8] = c[2];
        k[9] = c[3];
        k
    }

    /// The PIN encryption key: the transaction key with the PIN variant
    /// (00000000000000FF00000000000000FF).
    pub fn pin_key(ipek: &Key16, ksn: &[u8; 10]) -> Result<Key16, PinError> {
        let mut k = transaction_key(ipek, ksn)?;
        k.0[7] ^= 0xFF;
        k.0[15] ^= 0xFF;
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    //! Published vectors: ANSI X9.24-3-2017 supplement (AES DUKPT), X9.24-1-2009 Annex A.4
    //! (TDES DUKPT), and the ISO 9564 blocks those annexes encipher (docs/research).

    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn k(s: &str) -> Key16 {
        Key16::from_slice(&h(s)).unwrap()
    }

    #[test]
    fn aes_dukpt_x9_24_3_vectors() {
        use aes_dukpt::*;
        let bdk = k("FEDCBA9876543210F1F1F1F1F1F1F1F1");
        let id: [u8; 8] = h("1234567890123456").try_into().unwrap();
        let ik = initial_key(&bdk, &id);
        assert_eq!(ik, k("1273671EA26AC29AFA4D1084127652A1"));
        for (counter, derivation, pin) in [
            (
                1,
                "4F21B565BAD9835E112B6465635EAE44",
                "AF8CB133A78F8DC2D1359F18527593FB",
            ),
            (
                2,
                "2F34D68DE10F68D38091A73B9E7C437C",
                "D30BDC73EC9714B000BEC66BDB7B6D09",
            ),
            (
                8,
                "718EE6CF0B27E53D5F7AF99C4D8146A2",
                "4D9DF3FBEE3448FC3E676D04320A90F5",
            ),
            (
                0x10,
                "7459762EED7F51D08567ED6598DFBEA2",
                "A09C63853B707708DEAB907BA778C191",
            ),
        ] {
            let ksn = Ksn {
                initial_key_id: id,
                counter,
            };
            assert_eq!(
                derivation_key(&ik, &ksn).unwrap(),
                k(derivation),
                "{counter}"
            );
            assert_eq!(
                working_key(&ik, &ksn, Usage::PinEncryption).unwrap(),
                k(pin),
                "{counter}"
            );
        }
        assert_eq!(
            Ksn::from_slice(&h("123456789012345600000001"))
                .unwrap()
                .to_bytes()
                .to_vec(),
            h("123456789012345600000001")
        );
    }

    #[test]
    fn format4_under_the_x9_24_3_pin_keys() {
        let fill: [u8; 8] = h("2F69ADDE2E9E7ACE").try_into().unwrap();
        assert_eq!(
            format4_pin_field("1234", &fill).unwrap().to_vec(),
            h("441234AAAAAAAAAA2F69ADDE2E9E7ACE")
        );
        assert_eq!(
            format4_pan_field("4111111111111111").unwrap().to_vec(),
            h("44111111111111111000000000000000")
        );
        for (key, block) in [
            (
                "AF8CB133A78F8DC2D1359F18527593FB",
                "A912150391AB65A67E52883D81CE2D15",
            ),
            (
                "D30BDC73EC9714B000BEC66BDB7B6D09",
                "52A00503BD34BA1383F6A7EE9FE2547F",
            ),
        ] {
            assert_eq!(
                format4("1234", "4111111111111111", &k(key), &fill)
                    .unwrap()
                    .to_vec(),
                h(block)
            );
        }
    }

    #[test]
    fn tdes_dukpt_x9_24_1_vectors_and_format0() {
        use tdes_dukpt::*;
        let bdk = k("0123456789ABCDEFFEDCBA9876543210");
        let ksn0: [u8; 10] = h("FFFF9876543210E00000").try_into().unwrap();
        let ipek = ipek(&bdk, &ksn0);
        assert_eq!(ipek, k("6AC292FAA1315B4D858AB3A3D7D5933A"));
        let ksn1: [u8; 10] = h("FFFF9876543210E00001").try_into().unwrap();
        assert_eq!(
            transaction_key(&ipek, &ksn1).unwrap(),
            k("042666B49184CFA368DE9628D0397BC9")
        );
        let pk1 = pin_key(&ipek, &ksn1).unwrap();
        assert_eq!(pk1, k("042666B49184CF5C68DE9628D0397B36"));
        let ksn2: [u8; 10] = h("FFFF9876543210E00002").try_into().unwrap();
        assert_eq!(
            pin_key(&ipek, &ksn2).unwrap(),
            k("C46551CEF9FD244FAA9AD834130D3B38")
        );
        // ISO 9564 format 0, PIN 1234 and PAN 4012345678909, under the counter-1 PIN key.
        assert_eq!(
            format0_clear("1234", "4012345678909").unwrap().to_vec(),
            h("041274EDCBA9876F")
        );
        assert_eq!(
            format0("1234", "4012345678909", &pk1).unwrap().to_vec(),
            h("1B9C1845EB993A7A")
        );
    }

    #[test]
    fn bad_pins_pans_and_counters() {
        let key = k("00112233445566778899AABBCCDDEEFF");
        let fill = [0u8; 8];
        for pin in ["123", "1234567890123", "12a4", ""] {
            assert_eq!(
                format4(pin, "4111111111111111", &key, &fill),
                Err(PinError::PinLength),
                "{pin}"
            );
        }
        assert_eq!(
            format4("1234", "41111111111", &key, &fill),
            Err(PinError::Pan)
        );
        assert_eq!(
            format0("1234", "4111x11111111111", &key),
            Err(PinError::Pan)
        );
        assert!(format4("123456789012", "4111111111111111111", &key, &fill).is_ok());
        // The shortest PAN: 11 digits before the check digit, right-aligned.
        assert_eq!(
            format0_clear("1234", "123456789012").unwrap().to_vec(),
            h("041235DCBA9876FE")
        );
        assert!(format4("1234", "123456789012", &key, &fill).is_ok());
        // Counters: more than 16 one-bits is invalid; the next valid one skips ahead.
        let ik = k("1273671EA26AC29AFA4D1084127652A1");
        let ksn = aes_dukpt::Ksn {
            initial_key_id: [0; 8],
            counter: 0x0001_FFFF,
        };
        assert_eq!(
            aes_dukpt::derivation_key(&ik, &ksn),
            Err(PinError::Counter(0x1FFFF))
        );
        assert_eq!(aes_dukpt::next_counter(1), Ok(2));
        assert_eq!(aes_dukpt::next_counter(0xFFFE), Ok(0xFFFF));
        assert_eq!(aes_dukpt::next_counter(0xFFFF), Ok(0x0001_0000));
        assert_eq!(aes_dukpt::next_counter(0x0001_FFFE), Ok(0x0002_0000));
        assert_eq!(
            aes_dukpt::next_counter(0xFFFF_0000),
            Err(PinError::Exhausted)
        );
        assert!(!format!("{ik:?}").contains("12"));
        // TDES: at most 10 one-bits in 21 bits.
        assert_eq!(tdes_dukpt::next_counter(0), Ok(1));
        assert_eq!(tdes_dukpt::next_counter(0x3FE), Ok(0x3FF));
        assert_eq!(tdes_dukpt::next_counter(0x3FF), Ok(0x400));
        assert_eq!(tdes_dukpt::next_counter(0x1FF800), Err(PinError::Exhausted));
        assert_eq!(
            tdes_dukpt::with_counter(
                &[0xFF, 0xFF, 0x98, 0x76, 0x54, 0x32, 0x10, 0xE0, 0, 0],
                0x1_0203
            )
            .to_vec(),
            h("FFFF9876543210E10203")
        );
    }

    #[test]
    fn the_host_deciphers_the_published_blocks() {
        // Format 4: the X9.24-3 blocks of PIN 1234, PAN 4111111111111111, back from the BDK
        // and KSN alone, as the host sees them in fields 52 and 53.
        let aes_bdk = k("FEDCBA9876543210F1F1F1F1F1F1F1F1");
        let tdes_bdk = k("0123456789ABCDEFFEDCBA9876543210");
        let f4 = EncipheredPin::from_fields(
            &h("52A00503BD34BA1383F6A7EE9FE2547F"),
            &h("123456789012345600000002"),
        )
        .unwrap();
        let pin = f4
            .decipher(&aes_bdk, &tdes_bdk, "4111111111111111")
            .unwrap();
        assert_eq!(pin.expose(), "1234");
        // Another PAN (the block is bound to its PAN) or another counter: not a PIN block.
        assert_eq!(
            f4.decipher(&aes_bdk, &tdes_bdk, "4111111111111112"),
            Err(PinError::Block(4))
        );
        let other = EncipheredPin::from_fields(
            &h("52A00503BD34BA1383F6A7EE9FE2547F"),
            &h("123456789012345600000001"),
        )
        .unwrap();
        assert_eq!(
            other.decipher(&aes_bdk, &tdes_bdk, "4111111111111111"),
            Err(PinError::Block(4))
        );
        // Format 0: the X9.24-1 block of PIN 1234, PAN 4012345678909, counter 1.
        let f0 =
            EncipheredPin::from_fields(&h("1B9C1845EB993A7A"), &h("FFFF9876543210E00001")).unwrap();
        assert_eq!(
            f0.decipher(&aes_bdk, &tdes_bdk, "4012345678909")
                .unwrap()
                .expose(),
            "1234"
        );
        assert_eq!(f0.block(), &h("1B9C1845EB993A7A")[..]);
        assert_eq!(f0.ksn(), &h("FFFF9876543210E00001")[..]);
        // Lengths that belong to no scheme.
        assert!(EncipheredPin::from_fields(&[0; 8], &[0; 12]).is_err());
        assert!(EncipheredPin::from_fields(&[0; 16], &[0; 10]).is_err());
        // Debug shows the KSN, never the block.
        let d = format!("{f4:?}");
        assert!(
            d.contains("123456789012345600000002") && !d.contains("52A005"),
            "{d}"
        );
        // Round trips of every length under a random-looking fill.
        let key = k("00112233445566778899AABBCCDDEEFF");
        let fill: [u8; 8] = h("0123456789ABCDEF").try_into().unwrap();
        for pin in ["0000", "98765", "123456789012"] {
            let b = format4(pin, "6250946000000016", &key, &fill).unwrap();
            assert_eq!(
                format4_decipher(&b, "6250946000000016", &key)
                    .unwrap()
                    .expose(),
                pin
            );
            let b0 = format0(pin, "6250946000000016", &key).unwrap();
            assert_eq!(
                format0_decipher(&b0, "6250946000000016", &key)
                    .unwrap()
                    .expose(),
                pin
            );
        }
    }

    #[test]
    fn pin_digits_hold_4_to_12_digits_and_hide_them() {
        let mut p = PinDigits::new();
        for d in [1, 2, 3] {
            assert!(p.push(d));
        }
        assert!(!p.complete());
        assert!(!p.push(10));
        assert!(p.push(4));
        assert!(p.complete());
        assert_eq!(p.expose(), "1234");
        assert_eq!(format!("{p:?}"), "PinDigits(<4 digits>)");
        p.pop();
        assert_eq!(p.len(), 3);
        for _ in 0..20 {
            p.push(9);
        }
        assert_eq!(p.len(), 12);
        p.clear();
        assert!(p.is_empty());
        assert_eq!(PinDigits::parse("123"), Err(PinError::PinLength));
        assert_eq!(PinDigits::parse("12 34"), Err(PinError::PinLength));
        assert_eq!(PinDigits::parse("1234567890123"), Err(PinError::PinLength));
        let a = PinDigits::parse("1234").unwrap();
        assert!(a.matches(&PinDigits::parse("1234").unwrap()));
        assert!(!a.matches(&PinDigits::parse("1235").unwrap()));
        assert!(!a.matches(&PinDigits::parse("12340").unwrap()));
    }
}
