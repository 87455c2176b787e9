//! Card identity: PAN and track 2 that never print in full, schemes and kernel IDs.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::util;

/// A primary account number. `Display` and `Debug` show it masked (`476173******0119`); the
/// digits are zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Pan(String);

impl Pan {
    /// Accepts 8 to 19 digits.
    pub fn new(digits: &str) -> Option<Self> {
        let ok = (8..=19).contains(&digits.len()) && digits.bytes().all(|c| c.is_ascii_digit());
        ok.then(|| Pan(digits.to_string()))
    }

    /// From tag 5A (format `cn`).
    pub fn from_cn(bytes: &[u8]) -> Option<Self> {
        let mut s = util::parse_cn(bytes)?;
        let p = Pan::new(&s);
        s.zeroize();
        p
    }

    /// The digits. Only for building host messages and key derivation; never log them.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// First six and last four digits, the rest as `*` (PCI DSS 3.4 display rule).
    pub fn masked(&self) -> String {
        mask_digits(&self.0)
    }

    /// True if the Luhn check digit is right (ISO/IEC 7812-1 Annex B).
    pub fn luhn_ok(&self) -> bool {
        luhn(&self.0)
    }

    /// The issuer identification number: the first 6 digits.
    pub fn bin(&self) -> &str {
        &self.0[..6]
    }
}

/// Masks a digit string: first 6 and last 4 shown, `*` between. Strings of 10 digits or fewer
/// are fully masked.
pub fn mask_digits(d: &str) -> String {
    if d.len() <= 10 {
        return "*".repeat(d.len());
    }
    format!(
        "{}{}{}",
        &d[..6],
        "*".repeat(d.len() - 10),
        &d[d.len() - 4..]
    )
}

/// Luhn (mod 10) check over ASCII digits.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, c) in digits.bytes().rev().enumerate() {
        if !c.is_ascii_digit() {
            return false;
        }
        let mut d = (c - b'0') as u32;
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

/// Track 2 equivalent data (tag 57): PAN, separator `D`, expiry YYMM, service code,
/// discretionary data, `F` padding. Never printed; zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Track2 {
    nibbles: String,
}

impl Track2 {
    /// Parses tag 57. The separator must be present and the PAN valid.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            for nib in [b >> 4, b & 0xF] {
                s.push(match nib {
                    0..=9 => (b'0' + nib) as char,
                    0xD => 'D',
                    0xF => 'F',
                    _ => return None,
                });
            }
        }
        let t = Track2 {
            nibbles: s.trim_end_matches('F').to_string(),
        };
        s.zeroize();
        let sep = t.nibbles.find('D')?;
        if t.nibbles[sep + 1..].contains(['D', 'F']) || t.nibbles.len() < sep + 8 {
            return None;
        }
        Pan::new(&t.nibbles[..sep])?;
        Some(t)
    }

    /// Builds track 2 from its parts (used by virtual cards).
    pub fn build(
        pan: &str,
        expiry_yymm: &str,
        service_code: &str,
        discretionary: &str,
    ) -> Option<Vec<u8>> {
        let s = format!("{pan}D{expiry_yymm}{service_code}{discretionary}");
        let mut nibbles: Vec<u8> = s
            .bytes()
            .map(|c| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'D' => Some(0xD),
                _ => None,
            })
            .collect::<Option<_>>()?;
        if nibbles.len() % 2 == 1 {
            nibbles.push(0xF);
        }
        Some(nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
    }

    fn sep(&self) -> usize {
        self.nibbles.find('D').expect("checked in parse")
    }

    /// The PAN.
    pub fn pan(&self) -> Pan {
        Pan::new(&self.nibbles[..self.sep()]).expect("checked in parse")
    }

    /// Expiry as YYMM digits.
    pub fn expiry_yymm(&self) -> &str {
        let s = self.sep() + 1;
        &self.nibbles[s..s + 4]
    }

    /// The three-digit service code.
    pub fn service_code(&self) -> &str {
        let s = self.sep() + 5;
        &self.nibbles[s..s + 3]
    }

    /// The track as ISO 8583 field 35 wants it: digits and `D` (or `=` when `equals` is set).
    pub fn expose_digits(&self, equals: bool) -> String {
        if equals {
            self.nibbles.replace('D', "=")
        } else {
            self.nibbles.clone()
        }
    }
}

impl fmt::Debug for Track2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Track2({}, <hidden>)", self.pan().masked())
    }
}

/// A contactless kernel identifier (EMV Book B §3.3.2.5, Table 3-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelId(pub u8);

impl KernelId {
    /// Kernel 2: Mastercard.
    pub const C2: KernelId = KernelId(2);
    /// Kernel 3: Visa.
    pub const C3: KernelId = KernelId(3);
    /// Kernel 4: American Express.
    pub const C4: KernelId = KernelId(4);
    /// Kernel 5: JCB.
    pub const C5: KernelId = KernelId(5);
    /// Kernel 6: Discover.
    pub const C6: KernelId = KernelId(6);
    /// Kernel 7: UnionPay.
    pub const C7: KernelId = KernelId(7);

    /// The default kernel for an AID whose directory entry has no Kernel Identifier (9F2A):
    /// chosen by the AID's RID (Book B §3.3.2.5).
    pub fn default_for_aid(aid: &[u8]) -> Option<KernelId> {
        Scheme::from_aid(aid).default_kernel()
    }
}

impl fmt::Display for KernelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "C-{}", self.0)
    }
}

/// A payment scheme, known from the AID's registered application provider identifier (RID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Visa (RID A000000003).
    Visa,
    /// Mastercard (RID A000000004).
    Mastercard,
    /// American Express (RID A000000025).
    Amex,
    /// JCB (RID A000000065).
    Jcb,
    /// Discover / Diners (RID A000000152).
    Discover,
    /// UnionPay (RID A000000333).
    UnionPay,
    /// Any other RID.
    Other,
}

impl Scheme {
    /// The scheme of an AID.
    pub fn from_aid(aid: &[u8]) -> Scheme {
        match aid.get(..5) {
            Some([0xA0, 0, 0, 0, 0x03]) => Scheme::Visa,
            Some([0xA0, 0, 0, 0, 0x04]) => Scheme::Mastercard,
            Some([0xA0, 0, 0, 0, 0x25]) => Scheme::Amex,
            Some([0xA0, 0, 0, 0, 0x65]) => Scheme::Jcb,
            Some([0xA0, 0, 0, 0x01, 0x52]) => Scheme::Discover,
            Some([0xA0, 0, 0, 0x03, 0x33]) => Scheme::UnionPay,
            _ => Scheme::Other,
        }
    }

    /// Lower-case name used in JSON and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Visa => "visa",
            Scheme::Mastercard => "mastercard",
            Scheme::Amex => "amex",
            Scheme::Jcb => "jcb",
            Scheme::Discover => "discover",
            Scheme::UnionPay => "unionpay",
            Scheme::Other => "other",
        }
    }

    /// The kernel an AID of this scheme uses by default.
    pub fn default_kernel(self) -> Option<KernelId> {
        match self {
            Scheme::Visa => Some(KernelId::C3),
            Scheme::Mastercard => Some(KernelId::C2),
            Scheme::Amex => Some(KernelId::C4),
            Scheme::Jcb => Some(KernelId::C5),
            Scheme::Discover => Some(KernelId::C6),
            Scheme::UnionPay => Some(KernelId::C7),
            Scheme::Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_like_pci() {
        let p = Pan::new("4761739001010119").unwrap();
        assert_eq!(p.masked(), "476173******0119");
        assert_eq!(format!("{p}"), "476173******0119");
        assert_eq!(format!("{p:?}"), "Pan(476173******0119)");
        assert!(p.luhn_ok());
        assert!(!Pan::new("4761739001010118").unwrap().luhn_ok());
        assert_eq!(mask_digits("1234567890"), "**********");
        assert_eq!(Pan::new("476173900101011"), Pan::new("476173900101011"));
        assert!(Pan::new("47617x").is_none());
    }

    #[test]
    fn track2_round_trip() {
        let t = Track2::build("4761739001010119", "3012", "201", "1234567899").unwrap();
        assert_eq!(crate::util::hex(&t), "4761739001010119D30122011234567899");
        let parsed = Track2::parse(&t).unwrap();
        assert_eq!(parsed.pan().expose(), "4761739001010119");
        assert_eq!(parsed.expiry_yymm(), "3012");
        assert_eq!(parsed.service_code(), "201");
        let odd = Track2::build("4761739001010119", "3012", "201", "123").unwrap();
        assert_eq!(crate::util::hex(&odd), "4761739001010119D3012201123F");
        assert_eq!(
            Track2::parse(&odd).unwrap().expose_digits(true),
            "4761739001010119=3012201123"
        );
        assert!(!format!("{parsed:?}").contains("4761739001010119"));
        assert!(Track2::parse(&[0x47, 0x61]).is_none());
    }

    #[test]
    fn schemes_and_default_kernels() {
        let visa = [0xA0, 0, 0, 0, 3, 0x10, 0x10];
        assert_eq!(Scheme::from_aid(&visa), Scheme::Visa);
        assert_eq!(KernelId::default_for_aid(&visa), Some(KernelId::C3));
        assert_eq!(
            KernelId::default_for_aid(&[0xA0, 0, 0, 3, 0x33, 1, 1, 1]),
            Some(KernelId::C7)
        );
        assert_eq!(KernelId::default_for_aid(&[0xA0, 0, 0, 0, 0x99]), None);
    }
}
