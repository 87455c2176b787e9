//! Human-readable meaning of EMV data: a decoded tree of a TLV buffer, bit fields bit by bit,
//! dates, amounts, currency and country codes, DOLs, AFLs and CVM lists. What `kassa tool tlv`
//! prints.

use crate::codes;
use crate::tags::{self as t, Format};
use crate::tlv::{self, Tag, TlvError};
use crate::util::{Date, hex, parse_bcd_n};
use crate::{dol, parse_afl};

/// One defined bit of a bit field and whether it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bit {
    /// Byte number, from 1.
    pub byte: u8,
    /// Bit number, 8 (most significant) to 1.
    pub bit: u8,
    /// Whether the bit is set in the value.
    pub set: bool,
    /// What the bit means, as the books word it.
    pub meaning: &'static str,
}

/// One DOL entry with its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DolItem {
    /// Requested tag.
    pub tag: Tag,
    /// Requested length.
    pub len: usize,
    /// Name from the dictionary.
    pub name: Option<&'static str>,
}

/// The meaning of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A one-line meaning: a date, an amount, a code, a text.
    Text(String),
    /// Every defined bit of a bit field, set or not, plus lines for multi-bit values.
    Bits {
        /// Single bits.
        bits: Vec<Bit>,
        /// Values of multi-bit fields (cryptogram type, CVM code...).
        values: Vec<String>,
    },
    /// The entries of a DOL.
    Dol(Vec<DolItem>),
    /// Several lines (AFL entries, CVM rules, languages).
    Lines(Vec<String>),
    /// The value does not fit the data object's rules.
    Invalid(String),
}

/// One node of a decoded TLV tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The tag.
    pub tag: Tag,
    /// Its name, if known.
    pub name: Option<&'static str>,
    /// Its format, if known.
    pub format: Option<Format>,
    /// Offset of the tag in the buffer.
    pub offset: usize,
    /// Value length.
    pub len: usize,
    /// The value (primitive objects only).
    pub value: Vec<u8>,
    /// True when the value was replaced by a mask because it is card data
    /// ([`tlv::is_sensitive`]).
    pub masked: bool,
    /// The decoded meaning, for known primitive objects.
    pub decoded: Option<Decoded>,
    /// Children of a constructed object.
    pub children: Vec<Node>,
}

/// Options for [`tree`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Kernel whose meaning of kernel-specific tags applies (0: general meaning).
    pub kernel: u8,
    /// Show PAN, track data, names and expiry in full instead of masked.
    pub reveal: bool,
}

/// Decodes a whole buffer into a tree. Fails with the first malformation's offset.
pub fn tree(buf: &[u8], opts: Options) -> Result<Vec<Node>, TlvError> {
    // Check everything first, so a malformed buffer gives one error and no partial tree.
    tlv::walk(buf, |_, _| {})?;
    let exponent = tlv::find(buf, t::TXN_CURRENCY)
        .ok()
        .flatten()
        .and_then(parse_bcd_n)
        .and_then(|c| codes::currency(c as u16))
        .map(|c| c.exponent);
    fn build(
        iter: tlv::Iter<'_>,
        parent: Option<Tag>,
        opts: Options,
        exponent: Option<u8>,
    ) -> Vec<Node> {
        iter.flatten()
            .map(|o| {
                let info = t::lookup(o.tag(), opts.kernel, parent);
                let constructed = o.is_constructed();
                let sensitive = tlv::is_sensitive(o.tag()) && !opts.reveal;
                let decoded = if constructed {
                    None
                } else if sensitive {
                    Some(Decoded::Text(mask_value(o.tag(), o.value())))
                } else if info != t::lookup(o.tag(), opts.kernel, None) {
                    // A template-specific meaning (e.g. 82 inside a biometric template): the
                    // decoders below know the general meaning only.
                    None
                } else {
                    explain(o.tag(), o.value(), opts.kernel, exponent)
                };
                Node {
                    tag: o.tag(),
                    name: info.map(|i| i.name),
                    format: info.map(|i| i.format),
                    offset: o.offset(),
                    len: o.value().len(),
                    value: if constructed || sensitive {
                        Vec::new()
                    } else {
                        o.value().to_vec()
                    },
                    masked: sensitive && !constructed,
                    decoded,
                    children: if constructed {
                        build(o.children(), Some(o.tag()), opts, exponent)
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect()
    }
    Ok(build(tlv::parse(buf), None, opts, exponent))
}

/// A masked rendering of card data: the PAN as 476173******0119, track 2 with its PAN masked
/// and the rest hidden, other values as their length.
fn mask_value(tag: Tag, v: &[u8]) -> String {
    match tag {
        t::PAN => match crate::card::Pan::from_cn(v) {
            Some(p) => format!("{} (masked)", p.masked()),
            None => format!("<{} bytes hidden>", v.len()),
        },
        t::TRACK2 => match crate::card::Track2::parse(v) {
            Some(t2) => format!("{} D <hidden> (masked)", t2.pan().masked()),
            None => format!("<{} bytes hidden>", v.len()),
        },
        _ => format!("<{} bytes hidden; --reveal shows them>", v.len()),
    }
}

fn text(v: &[u8]) -> String {
    v.iter()
        .map(|&c| {
            if (0x20..0x7F).contains(&c) {
                c as char
            } else {
                '.'
            }
        })
        .collect()
}

fn date(v: &[u8]) -> Decoded {
    match Date::from_bcd(v) {
        Some(d) => Decoded::Text(d.to_string()),
        None => Decoded::Invalid("not a YYMMDD date".into()),
    }
}

fn amount(v: &[u8], exponent: Option<u8>) -> Decoded {
    match parse_bcd_n(v) {
        Some(minor) => match exponent {
            Some(e) => Decoded::Text(format!("{} ({minor} minor units)", format_minor(minor, e))),
            None => Decoded::Text(format!("{minor} minor units")),
        },
        None => Decoded::Invalid("not BCD digits".into()),
    }
}

fn format_minor(minor: u64, exponent: u8) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let d = 10u64.pow(exponent as u32);
    format!("{}.{:0w$}", minor / d, minor % d, w = exponent as usize)
}

fn currency(v: &[u8]) -> Decoded {
    match parse_bcd_n(v).map(|n| (n, codes::currency(n as u16))) {
        Some((n, Some(c))) => Decoded::Text(format!(
            "{n:03} {} ({}, {} decimals)",
            c.alpha, c.name, c.exponent
        )),
        Some((n, None)) => Decoded::Text(format!("{n:03} (unknown currency)")),
        None => Decoded::Invalid("not BCD digits".into()),
    }
}

fn country(v: &[u8]) -> Decoded {
    match parse_bcd_n(v).map(|n| (n, codes::country(n as u16))) {
        Some((n, Some(c))) => Decoded::Text(format!("{n:03} {} ({})", c.alpha2, c.name)),
        Some((n, None)) => Decoded::Text(format!("{n:03} (unknown country)")),
        None => Decoded::Invalid("not BCD digits".into()),
    }
}

/// A bit table: (byte, bit, meaning).
type Table = &'static [(u8, u8, &'static str)];

fn bits(v: &[u8], table: Table, expected_len: usize) -> Decoded {
    if v.len() != expected_len {
        return Decoded::Invalid(format!("{} bytes, expected {expected_len}", v.len()));
    }
    Decoded::Bits {
        bits: table
            .iter()
            .map(|&(byte, bit, meaning)| Bit {
                byte,
                bit,
                set: v[(byte - 1) as usize] & (1 << (bit - 1)) != 0,
                meaning,
            })
            .collect(),
        values: Vec::new(),
    }
}

/// Terminal Verification Results (95), Book 3 Annex C5 (EMV 4.4).
pub static TVR: Table = &[
    (1, 8, "Offline data authentication was not performed"),
    (1, 7, "SDA failed"),
    (1, 6, "ICC data missing"),
    (1, 5, "Card appears on terminal exception file"),
    (1, 4, "DDA failed"),
    (1, 3, "CDA failed"),
    (1, 2, "SDA selected"),
    (1, 1, "XDA selected"),
    (2, 8, "ICC and terminal have different application versions"),
    (2, 7, "Expired application"),
    (2, 6, "Application not yet effective"),
    (2, 5, "Requested service not allowed for card product"),
    (2, 4, "New card"),
    (2, 2, "Biometric performed and successful"),
    (2, 1, "Biometric template format not supported"),
    (3, 8, "Cardholder verification was not successful"),
    (3, 7, "Unrecognised CVM"),
    (3, 6, "PIN Try Limit exceeded"),
    (
        3,
        5,
        "PIN entry required and PIN pad not present or not working",
    ),
    (
        3,
        4,
        "PIN entry required, PIN pad present, but PIN was not entered",
    ),
    (3, 3, "Online CVM captured"),
    (
        3,
        2,
        "Biometric required but Biometric capture device not working",
    ),
    (
        3,
        1,
        "Biometric required, capture device present, but Biometric Subtype entry bypassed",
    ),
    (4, 8, "Transaction exceeds floor limit"),
    (4, 7, "Lower consecutive offline limit exceeded"),
    (4, 6, "Upper consecutive offline limit exceeded"),
    (4, 5, "Transaction selected randomly for online processing"),
    (4, 4, "Merchant forced transaction online"),
    (4, 3, "Biometric Try Limit exceeded"),
    (4, 2, "A selected Biometric Type not supported"),
    (4, 1, "XDA signature verification failed"),
    (5, 8, "Default TDOL used"),
    (5, 7, "Issuer authentication failed"),
    (5, 6, "Script processing failed before final GENERATE AC"),
    (5, 5, "Script processing failed after final GENERATE AC"),
    (5, 4, "Reserved for the EMV Contactless Specifications"),
    (5, 3, "CA ECC key missing"),
    (5, 2, "ECC key recovery failed"),
    (5, 1, "Reserved for the EMV Contactless Specifications"),
];

/// TVR byte 5 as kernel 2 (Book C-2) uses it: relay resistance.
static TVR_C2_BYTE5: Table = &[
    (5, 8, "Default TDOL used"),
    (5, 7, "Issuer authentication failed"),
    (5, 6, "Script processing failed before final GENERATE AC"),
    (5, 5, "Script processing failed after final GENERATE AC"),
    (5, 4, "Relay resistance threshold exceeded"),
    (5, 3, "Relay resistance time limits exceeded"),
];

/// Transaction Status Information (9B), Book 3 Annex C6.
pub static TSI: Table = &[
    (1, 8, "Offline data authentication was performed"),
    (1, 7, "Cardholder verification was performed"),
    (1, 6, "Card risk management was performed"),
    (1, 5, "Issuer authentication was performed"),
    (1, 4, "Terminal risk management was performed"),
    (1, 3, "Script processing was performed"),
];

/// Application Interchange Profile (82), Book 3 Annex C1; byte 1 bit 2 and byte 2 as kernel 2
/// defines them.
pub static AIP: Table = &[
    (1, 8, "XDA supported"),
    (1, 7, "SDA supported"),
    (1, 6, "DDA supported"),
    (1, 5, "Cardholder verification is supported"),
    (1, 4, "Terminal risk management is to be performed"),
    (1, 3, "Issuer authentication is supported"),
    (1, 2, "On device cardholder verification is supported (C-2)"),
    (1, 1, "CDA supported"),
    (2, 8, "EMV mode is supported (C-2)"),
    (2, 1, "Relay resistance protocol is supported (C-2)"),
];

/// Application Usage Control (9F07), Book 3 Annex C2.
pub static AUC: Table = &[
    (1, 8, "Valid for domestic cash transactions"),
    (1, 7, "Valid for international cash transactions"),
    (1, 6, "Valid for domestic goods"),
    (1, 5, "Valid for international goods"),
    (1, 4, "Valid for domestic services"),
    (1, 3, "Valid for international services"),
    (1, 2, "Valid at ATMs"),
    (1, 1, "Valid at terminals other than ATMs"),
    (2, 8, "Domestic cashback allowed"),
    (2, 7, "International cashback allowed"),
];

/// Terminal Transaction Qualifiers (9F66), Book A / Book C-3.
pub static TTQ: Table = &[
    (1, 8, "Mag-stripe mode supported"),
    (1, 6, "EMV mode supported"),
    (1, 5, "EMV contact chip supported"),
    (1, 4, "Offline-only reader"),
    (1, 3, "Online PIN supported"),
    (1, 2, "Signature supported"),
    (
        1,
        1,
        "Offline Data Authentication for Online Authorizations supported",
    ),
    (2, 8, "Online cryptogram required"),
    (2, 7, "CVM required"),
    (2, 6, "(Contact Chip) Offline PIN supported"),
    (3, 8, "Issuer Update Processing supported"),
    (3, 7, "Consumer Device CVM supported"),
];

/// Card Transaction Qualifiers (9F6C), Book C-3.
pub static CTQ: Table = &[
    (1, 8, "Online PIN Required"),
    (1, 7, "Signature Required"),
    (
        1,
        6,
        "Go Online if Offline Data Authentication Fails and Reader is online capable",
    ),
    (
        1,
        5,
        "Switch Interface if Offline Data Authentication fails and Reader supports contact chip",
    ),
    (1, 4, "Go Online if Application Expired"),
    (1, 3, "Switch Interface for Cash Transactions"),
    (1, 2, "Switch Interface for Cashback Transactions"),
    (2, 8, "Consumer Device CVM Performed"),
    (2, 7, "Card supports Issuer Update Processing at the POS"),
];

/// Terminal Capabilities (9F33), Book 4 Annex A2.
pub static TERMINAL_CAPABILITIES: Table = &[
    (1, 8, "Card data input: Manual key entry"),
    (1, 7, "Card data input: Magnetic stripe"),
    (1, 6, "Card data input: IC with contacts"),
    (2, 8, "CVM: Plaintext PIN for ICC verification"),
    (2, 7, "CVM: Enciphered PIN for online verification"),
    (2, 6, "CVM: Signature"),
    (2, 5, "CVM: Enciphered PIN for offline verification (RSA)"),
    (2, 4, "CVM: No CVM required"),
    (2, 3, "CVM: Online biometric"),
    (2, 2, "CVM: Offline biometric"),
    (2, 1, "CVM: Enciphered PIN for offline verification (ECC)"),
    (3, 8, "Security: SDA"),
    (3, 7, "Security: DDA"),
    (3, 6, "Security: Card capture"),
    (3, 4, "Security: CDA"),
    (3, 3, "Security: XDA"),
];

/// Additional Terminal Capabilities (9F40), Book 4 Annex A3.
pub static ADDITIONAL_TERMINAL_CAPABILITIES: Table = &[
    (1, 8, "Transaction type: Cash"),
    (1, 7, "Transaction type: Goods"),
    (1, 6, "Transaction type: Services"),
    (1, 5, "Transaction type: Cashback"),
    (1, 4, "Transaction type: Inquiry"),
    (1, 3, "Transaction type: Transfer"),
    (1, 2, "Transaction type: Payment"),
    (1, 1, "Transaction type: Administrative"),
    (2, 8, "Transaction type: Cash deposit"),
    (3, 8, "Data input: Numeric keys"),
    (3, 7, "Data input: Alphabetic and special characters keys"),
    (3, 6, "Data input: Command keys"),
    (3, 5, "Data input: Function keys"),
    (4, 8, "Data output: Print or electronic, attendant"),
    (4, 7, "Data output: Print or electronic, cardholder"),
    (4, 6, "Data output: Display, attendant"),
    (4, 5, "Data output: Display, cardholder"),
    (4, 2, "Data output: Code table 10"),
    (4, 1, "Data output: Code table 9"),
    (5, 8, "Data output: Code table 8"),
    (5, 7, "Data output: Code table 7"),
    (5, 6, "Data output: Code table 6"),
    (5, 5, "Data output: Code table 5"),
    (5, 4, "Data output: Code table 4"),
    (5, 3, "Data output: Code table 3"),
    (5, 2, "Data output: Code table 2"),
    (5, 1, "Data output: Code table 1"),
];

/// The CVM code of a CV Rule or of CVM Results byte 1, bits 6-1 (Book 3 Annex C3, Table 43).
pub fn cvm_code(code: u8) -> &'static str {
    match code & 0x3F {
        0x00 => "Fail CVM processing",
        0x01 => "Plaintext PIN verification performed by ICC",
        0x02 => "Enciphered PIN verified online",
        0x03 => "Plaintext PIN verification performed by ICC and signature",
        0x04 => "Enciphered PIN verification performed by ICC",
        0x05 => "Enciphered PIN verification performed by ICC and signature",
        0x06 => "Facial biometric verified offline",
        0x07 => "Facial biometric verified online",
        0x08 => "Finger biometric verified offline",
        0x09 => "Finger biometric verified online",
        0x0A => "Palm biometric verified offline",
        0x0B => "Palm biometric verified online",
        0x0C => "Iris biometric verified offline",
        0x0D => "Iris biometric verified online",
        0x0E => "Voice biometric verified offline",
        0x0F => "Voice biometric verified online",
        0x1E => "Signature",
        0x1F => "No CVM required",
        0x3F => "No CVM performed",
        0x20..=0x2F => "Reserved for the payment systems",
        0x30..=0x3E => "Reserved for the issuer",
        _ => "RFU",
    }
}

/// The CVM condition code (Book 3 Annex C3, Table 44).
pub fn cvm_condition(code: u8) -> &'static str {
    match code {
        0x00 => "Always",
        0x01 => "If unattended cash",
        0x02 => "If not unattended cash and not manual cash and not purchase with cashback",
        0x03 => "If terminal supports the CVM",
        0x04 => "If manual cash",
        0x05 => "If purchase with cashback",
        0x06 => "If transaction is in the application currency and is under X value",
        0x07 => "If transaction is in the application currency and is over X value",
        0x08 => "If transaction is in the application currency and is under Y value",
        0x09 => "If transaction is in the application currency and is over Y value",
        0x80..=0xFF => "Reserved for the payment systems",
        _ => "RFU",
    }
}

fn cvm_results(v: &[u8]) -> Decoded {
    if v.len() != 3 {
        return Decoded::Invalid(format!("{} bytes, expected 3", v.len()));
    }
    let result = match v[2] {
        0x00 => "Unknown",
        0x01 => "Failed",
        0x02 => "Successful",
        _ => "RFU",
    };
    Decoded::Lines(vec![
        format!("CVM performed: {:02X} {}", v[0] & 0x3F, cvm_code(v[0])),
        format!("CVM condition: {:02X} {}", v[1], cvm_condition(v[1])),
        format!("CVM result: {:02X} {result}", v[2]),
    ])
}

fn cvm_list(v: &[u8]) -> Decoded {
    if v.len() < 8 || !v.len().is_multiple_of(2) {
        return Decoded::Invalid("a CVM List is 8 bytes of amounts and 2-byte rules".into());
    }
    let x = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
    let y = u32::from_be_bytes([v[4], v[5], v[6], v[7]]);
    let mut lines = vec![format!("Amount X: {x}"), format!("Amount Y: {y}")];
    for r in v[8..].chunks(2) {
        let then = if r[0] & 0x40 != 0 {
            "apply succeeding rule if unsuccessful"
        } else {
            "fail cardholder verification if unsuccessful"
        };
        lines.push(format!(
            "{:02X}{:02X}: {}; {}; {then}",
            r[0],
            r[1],
            cvm_code(r[0]),
            cvm_condition(r[1])
        ));
    }
    Decoded::Lines(lines)
}

fn cid(v: &[u8]) -> Decoded {
    let Some(&b) = v.first().filter(|_| v.len() == 1) else {
        return Decoded::Invalid(format!("{} bytes, expected 1", v.len()));
    };
    let kind = match b >> 6 {
        0 => "AAC (decline)",
        1 => "TC (approve offline)",
        2 => "ARQC (go online)",
        _ => "RFU (AAR in older EMV versions)",
    };
    let reason = match b & 0x07 {
        0 => "No information given",
        1 => "Service not allowed",
        2 => "PIN Try Limit exceeded",
        3 => "Issuer authentication failed",
        _ => "RFU",
    };
    Decoded::Bits {
        bits: vec![Bit {
            byte: 1,
            bit: 4,
            set: b & 0x08 != 0,
            meaning: "Advice required",
        }],
        values: vec![
            format!("Cryptogram type (bits 8-7): {kind}"),
            format!("Payment system-specific (bits 6-5): {}", (b >> 4) & 0x03),
            format!("Reason/advice code (bits 3-1): {reason}"),
        ],
    }
}

fn kernel_id(v: &[u8]) -> Decoded {
    let Some(&b) = v.first() else {
        return Decoded::Invalid("empty".into());
    };
    let kind = match b >> 6 {
        0 => "international kernel",
        1 => "RFU",
        2 => "domestic kernel, EMVCo format",
        _ => "domestic kernel, proprietary format",
    };
    let short = b & 0x3F;
    let name = match short {
        1 => " (kernel 1)",
        2 => " (kernel 2, Mastercard)",
        3 => " (kernel 3, Visa)",
        4 => " (kernel 4, American Express)",
        5 => " (kernel 5, JCB)",
        6 => " (kernel 6, Discover)",
        7 => " (kernel 7, UnionPay)",
        8 => " (kernel 8)",
        _ => "",
    };
    let mut lines = vec![format!("{kind}; short kernel ID {short}{name}")];
    if v.len() > 1 {
        lines.push(format!("extended kernel ID {}", hex(&v[1..])));
    }
    Decoded::Lines(lines)
}

fn terminal_type(v: &[u8]) -> Decoded {
    let Some(n) = parse_bcd_n(v).filter(|_| v.len() == 1) else {
        return Decoded::Invalid("expected one BCD byte".into());
    };
    let control = match n / 10 {
        1 => "financial institution controlled",
        2 => "merchant controlled",
        3 => "cardholder controlled",
        _ => return Decoded::Invalid(format!("{n:02} is not a terminal type")),
    };
    let (place, online) = match n % 10 {
        1 => ("attended", "online only"),
        2 => ("attended", "offline with online capability"),
        3 => ("attended", "offline only"),
        4 => ("unattended", "online only"),
        5 => ("unattended", "offline with online capability"),
        6 => ("unattended", "offline only"),
        _ => return Decoded::Invalid(format!("{n:02} is not a terminal type")),
    };
    if n / 10 == 3 && n % 10 < 4 {
        return Decoded::Invalid(format!("{n:02} is not a terminal type"));
    }
    Decoded::Text(format!("{n:02}: {control}, {place}, {online}"))
}

fn afl(v: &[u8]) -> Decoded {
    if parse_afl(v).is_err() {
        return Decoded::Invalid("AFL breaks the rules of Book 3 §10.2".into());
    }
    Decoded::Lines(
        v.chunks(4)
            .map(|e| {
                format!(
                    "SFI {}, records {}-{}, {} for offline data authentication",
                    e[0] >> 3,
                    e[1],
                    e[2],
                    e[3]
                )
            })
            .collect(),
    )
}

fn dol_items(v: &[u8], kernel: u8) -> Decoded {
    match dol::parse(v) {
        Ok(entries) => Decoded::Dol(
            entries
                .into_iter()
                .map(|e| DolItem {
                    tag: e.tag,
                    len: e.len,
                    name: t::lookup(e.tag, kernel, None).map(|i| i.name),
                })
                .collect(),
        ),
        Err(e) => Decoded::Invalid(e.to_string()),
    }
}

fn languages(v: &[u8]) -> Decoded {
    let langs = crate::entry::parse_languages(v);
    if langs.is_empty() {
        return Decoded::Invalid("no two-letter language codes".into());
    }
    Decoded::Lines(
        langs
            .into_iter()
            .map(|l| match codes::language_name(&l) {
                Some(n) => format!("{l} ({n})"),
                None => format!("{l} (unknown language)"),
            })
            .collect(),
    )
}

fn txn_type(v: &[u8]) -> Decoded {
    let name = match v {
        [0x00] => "Purchase of goods or services",
        [0x01] => "Cash advance",
        [0x09] => "Purchase with cashback",
        [0x20] => "Refund",
        [0x30] => "Balance inquiry",
        _ => "other",
    };
    Decoded::Text(format!("{} {name}", hex(v)))
}

/// The meaning of one primitive value, when Kassa knows how to explain it. `exponent` is the
/// transaction currency's, for amounts.
pub fn explain(tag: Tag, v: &[u8], kernel: u8, exponent: Option<u8>) -> Option<Decoded> {
    let info = t::lookup(tag, kernel, None);
    if let Some(i) = info
        && !i.length_ok(v.len())
    {
        return Some(Decoded::Invalid(format!(
            "length {} outside {}-{}",
            v.len(),
            i.min_len,
            i.max_len.map_or("any".to_string(), |m| m.to_string())
        )));
    }
    Some(match tag.raw() {
        0x95 => {
            if kernel == 2 {
                let mut d = bits(v, &TVR[..31], 5);
                if let (Decoded::Bits { bits: b, values }, Some(&last)) = (&mut d, v.get(4)) {
                    b.extend(TVR_C2_BYTE5.iter().map(|&(byte, bit, meaning)| Bit {
                        byte,
                        bit,
                        set: last & (1 << (bit - 1)) != 0,
                        meaning,
                    }));
                    let rrp = match last & 0x03 {
                        0 => "relay resistance protocol not supported",
                        1 => "relay resistance protocol not performed",
                        2 => "relay resistance protocol performed",
                        _ => "RFU",
                    };
                    values.push(format!("Byte 5 bits 2-1: {rrp}"));
                }
                d
            } else {
                bits(v, TVR, 5)
            }
        }
        0x9F0D | 0x9F0E | 0x9F0F | 0xDF8120 | 0xDF8121 | 0xDF8122 => bits(v, TVR, 5),
        0x9B => bits(v, TSI, 2),
        0x82 => bits(v, AIP, 2),
        0x9F07 => bits(v, AUC, 2),
        0x9F66 => bits(v, TTQ, 4),
        0x9F6C => bits(v, CTQ, 2),
        0x9F33 => bits(v, TERMINAL_CAPABILITIES, 3),
        0x9F40 => bits(v, ADDITIONAL_TERMINAL_CAPABILITIES, 5),
        0x9F27 => cid(v),
        0x9F34 => cvm_results(v),
        0x8E => cvm_list(v),
        0x9F2A => kernel_id(v),
        0x9F35 => terminal_type(v),
        0x94 => afl(v),
        0x9F38 | 0x8C | 0x8D | 0x9F49 | 0x97 | 0x9F51 | 0x9F5B | 0xDF8112 => dol_items(v, kernel),
        0x9A | 0x5F24 | 0x5F25 => date(v),
        0x9F21 => match v {
            [h, m, s] => Decoded::Text(format!("{:02X}:{:02X}:{:02X}", h, m, s)),
            _ => Decoded::Invalid("expected HHMMSS".into()),
        },
        0x9F02 | 0x9F03 => amount(v, exponent),
        0x81 | 0x9F04 if v.len() == 4 => Decoded::Text(format!(
            "{} minor units",
            u32::from_be_bytes([v[0], v[1], v[2], v[3]])
        )),
        0x5F2A | 0x9F42 | 0x9F3C => currency(v),
        0x5F28 | 0x9F1A => country(v),
        0x5F2D => languages(v),
        0x9C => txn_type(v),
        0x9F36 | 0x9F13 => Decoded::Text(format!(
            "{}",
            v.iter().fold(0u64, |a, &b| (a << 8) | b as u64)
        )),
        0x87 if v.len() == 1 => Decoded::Text(format!(
            "priority {}{}",
            v[0] & 0x0F,
            if v[0] & 0x80 != 0 {
                ", cardholder confirmation required"
            } else {
                ""
            }
        )),
        0x88 if v.len() == 1 => Decoded::Text(format!("SFI {}", v[0])),
        0x84 | 0x9D | 0x4F | 0x9F06 => {
            if v.iter().all(|c| c.is_ascii_graphic()) {
                Decoded::Text(format!("\"{}\"", text(v)))
            } else {
                Decoded::Text(format!(
                    "{} ({})",
                    hex(v),
                    crate::card::Scheme::from_aid(v).name()
                ))
            }
        }
        0x9F39 => Decoded::Text(match v {
            [0x05] => "05 chip (contact)".into(),
            [0x07] => "07 contactless chip".into(),
            [0x91] => "91 contactless magnetic stripe".into(),
            [0x90] => "90 magnetic stripe".into(),
            _ => format!("{} ", hex(v)),
        }),
        _ => match info.map(|i| i.format) {
            Some(Format::A | Format::An | Format::Ans) => Decoded::Text(format!("\"{}\"", text(v))),
            Some(Format::N) => match parse_bcd_n(v) {
                Some(n) => Decoded::Text(n.to_string()),
                None => Decoded::Invalid("not BCD digits".into()),
            },
            _ => return None,
        },
    })
}

/// Names a command APDU and explains its parameters (EMV Book 3 §6.5, Book C-2 for
/// COMPUTE CRYPTOGRAPHIC CHECKSUM and EXCHANGE RELAY RESISTANCE DATA).
pub fn describe_command(c: &crate::apdu::Command) -> (String, Vec<String>) {
    let mut lines = Vec::new();
    let name = match (c.cla & 0xF0, c.ins) {
        (_, 0xA4) => {
            let how = match c.p1 {
                0x04 => "by DF name",
                0x00 => "by file identifier",
                _ => "other",
            };
            let occurrence = match c.p2 & 0x03 {
                0x00 => "first or only occurrence",
                0x02 => "next occurrence",
                _ => "other occurrence",
            };
            lines.push(format!("{how}, {occurrence}"));
            if c.data == crate::entry::PPSE {
                lines.push("name: 2PAY.SYS.DDF01 (Proximity Payment System Environment)".into());
            } else if c.data == b"1PAY.SYS.DDF01" {
                lines.push("name: 1PAY.SYS.DDF01 (Payment System Environment)".into());
            } else if !c.data.is_empty() {
                let scheme = crate::card::Scheme::from_aid(&c.data);
                lines.push(format!("AID: {} ({})", hex(&c.data), scheme.name()));
            }
            "SELECT"
        }
        (0x80, 0xA8) => {
            match tlv::expect_template(&c.data, t::COMMAND_TEMPLATE) {
                Ok(tpl) => lines.push(format!(
                    "PDOL data ({} bytes): {}",
                    tpl.value().len(),
                    hex(tpl.value())
                )),
                Err(e) => lines.push(format!("command data is not a tag 83 template: {e}")),
            }
            "GET PROCESSING OPTIONS"
        }
        (_, 0xB2) => {
            if c.p2 & 0x07 == 0x04 {
                lines.push(format!("SFI {}, record {}", c.p2 >> 3, c.p1));
            } else {
                lines.push(format!(
                    "P2 {:02X}: not the EMV \"P1 is a record number\" form",
                    c.p2
                ));
            }
            "READ RECORD"
        }
        (0x80, 0xAE) => {
            let kind = match c.p1 & 0xC0 {
                0x00 => "AAC",
                0x40 => "TC",
                0x80 => "ARQC",
                _ => "RFU",
            };
            let cda = if c.p1 & 0x10 != 0 {
                ", CDA signature requested"
            } else {
                ""
            };
            lines.push(format!(
                "reference control {:02X}: {kind} requested{cda}",
                c.p1
            ));
            lines.push(format!(
                "CDOL data ({} bytes): {}",
                c.data.len(),
                hex(&c.data)
            ));
            "GENERATE AC"
        }
        (_, 0x88) => {
            lines.push(format!(
                "DDOL data ({} bytes): {}",
                c.data.len(),
                hex(&c.data)
            ));
            "INTERNAL AUTHENTICATE"
        }
        (_, 0x82) => "EXTERNAL AUTHENTICATE",
        (_, 0x84) => "GET CHALLENGE",
        (0x80, 0xCA) => {
            let tag = Tag::new(u32::from_be_bytes([0, 0, c.p1, c.p2]));
            let name = t::info(tag).map(|i| i.name).unwrap_or("unknown");
            lines.push(format!("data object {tag} ({name})"));
            "GET DATA"
        }
        (_, 0x20) => {
            let form = match c.p2 {
                0x80 => "plaintext PIN",
                0x88 => "enciphered PIN",
                _ => "other",
            };
            lines.push(format!("{form}, {} data bytes (not shown)", c.data.len()));
            "VERIFY"
        }
        (_, 0xC0) => "GET RESPONSE",
        (0x80, 0x2A) => "COMPUTE CRYPTOGRAPHIC CHECKSUM",
        (0x80, 0xEA) => "EXCHANGE RELAY RESISTANCE DATA",
        (_, 0xDA) => "PUT DATA",
        (_, 0x1E) => "APPLICATION BLOCK",
        (_, 0x18) => "APPLICATION UNBLOCK",
        (_, 0x16) => "CARD BLOCK",
        (_, 0x24) => "PIN CHANGE/UNBLOCK",
        (0x80, 0xD0) => "RECOVER AC",
        _ => "unknown command",
    };
    (name.to_string(), lines)
}

/// The meaning of a status word (ISO/IEC 7816-4 §5.6, EMV Book 3 Annex A / §6.3.5).
pub fn status_word(sw: u16) -> String {
    let [sw1, sw2] = sw.to_be_bytes();
    match (sw1, sw2) {
        (0x90, 0x00) => "normal processing".into(),
        (0x61, n) => format!("{n} more bytes available (GET RESPONSE)"),
        (0x6C, n) => format!("wrong Le; re-send with Le={n}"),
        (0x62, 0x83) => "selected file invalidated (application blocked)".into(),
        (0x63, 0x00) => "authentication failed".into(),
        (0x63, n) if n & 0xF0 == 0xC0 => format!("verification failed, {} tries left", n & 0x0F),
        (0x64, 0x00) => "state of non-volatile memory unchanged".into(),
        (0x65, 0x81) => "memory failure".into(),
        (0x67, 0x00) => "wrong length".into(),
        (0x68, 0x81) => "logical channel not supported".into(),
        (0x68, 0x82) => "secure messaging not supported".into(),
        (0x69, 0x81) => "command incompatible with file structure".into(),
        (0x69, 0x82) => "security status not satisfied".into(),
        (0x69, 0x83) => "authentication method blocked".into(),
        (0x69, 0x84) => "referenced data invalidated".into(),
        (0x69, 0x85) => "conditions of use not satisfied".into(),
        (0x69, 0x86) => "command not allowed (no current EF)".into(),
        (0x6A, 0x81) => "function not supported (card or application blocked)".into(),
        (0x6A, 0x82) => "file or application not found".into(),
        (0x6A, 0x83) => "record not found".into(),
        (0x6A, 0x84) => "not enough memory space in the file".into(),
        (0x6A, 0x86) => "incorrect parameters P1-P2".into(),
        (0x6A, 0x88) => "referenced data not found".into(),
        (0x6B, 0x00) => "wrong parameters P1-P2".into(),
        (0x6D, 0x00) => "instruction code not supported".into(),
        (0x6E, 0x00) => "class not supported".into(),
        (0x6F, 0x00) => "no precise diagnosis".into(),
        _ => "unknown status".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        crate::util::unhex(s).unwrap()
    }

    #[test]
    fn tvr_bit_by_bit() {
        let Some(Decoded::Bits { bits, .. }) = explain(t::TVR, &h("8000048000"), 0, None) else {
            panic!("TVR decodes to bits")
        };
        let set: Vec<_> = bits.iter().filter(|b| b.set).map(|b| b.meaning).collect();
        assert_eq!(
            set,
            vec![
                "Offline data authentication was not performed",
                "Online CVM captured",
                "Transaction exceeds floor limit"
            ]
        );
        assert_eq!(bits.len(), 39);
        assert!(matches!(
            explain(t::TVR, &h("80"), 0, None),
            Some(Decoded::Invalid(_))
        ));
    }

    #[test]
    fn cid_and_cvm() {
        let Some(Decoded::Bits { values, .. }) = explain(t::CID, &[0x80], 0, None) else {
            panic!()
        };
        assert!(values[0].contains("ARQC"));
        let Some(Decoded::Lines(l)) = explain(t::CVM_RESULTS, &h("1E0300"), 0, None) else {
            panic!()
        };
        assert_eq!(l[0], "CVM performed: 1E Signature");
        let Some(Decoded::Lines(l)) =
            explain(t::CVM_LIST, &h("00000000 00000000 4203 1E03 1F03"), 0, None)
        else {
            panic!()
        };
        assert_eq!(
            l[2],
            "4203: Enciphered PIN verified online; If terminal supports the CVM; apply succeeding rule if unsuccessful"
        );
    }

    #[test]
    fn codes_dates_amounts() {
        assert_eq!(
            explain(t::TXN_CURRENCY, &h("0978"), 0, None),
            Some(Decoded::Text("978 EUR (Euro, 2 decimals)".into()))
        );
        assert_eq!(
            explain(t::TERMINAL_COUNTRY, &h("0276"), 0, None),
            Some(Decoded::Text("276 DE (Germany)".into()))
        );
        assert_eq!(
            explain(t::TXN_DATE, &h("261129"), 0, None),
            Some(Decoded::Text("2026-11-29".into()))
        );
        assert_eq!(
            explain(t::AMOUNT_AUTHORISED, &h("000000001234"), 0, Some(2)),
            Some(Decoded::Text("12.34 (1234 minor units)".into()))
        );
        assert_eq!(
            explain(t::AMOUNT_AUTHORISED, &h("000000001234"), 0, Some(0)),
            Some(Decoded::Text("1234 (1234 minor units)".into()))
        );
        assert_eq!(
            explain(t::LANGUAGE_PREFERENCE, b"jaen", 0, None),
            Some(Decoded::Lines(vec![
                "ja (Japanese)".into(),
                "en (English)".into()
            ]))
        );
        assert_eq!(
            explain(t::TERMINAL_TYPE, &[0x22], 0, None),
            Some(Decoded::Text(
                "22: merchant controlled, attended, offline with online capability".into()
            ))
        );
    }

    #[test]
    fn tree_masks_card_data_unless_asked() {
        let buf = h("70 15 5A 08 4761739001010119 5F24 03 301231 9F07 02 FF00");
        let nodes = tree(&buf, Options::default()).unwrap();
        let kids = &nodes[0].children;
        assert_eq!(
            kids[0].decoded,
            Some(Decoded::Text("476173******0119 (masked)".into()))
        );
        assert!(kids[0].value.is_empty() && kids[0].masked);
        assert!(kids[1].masked, "expiry is card data");
        assert_eq!(kids[2].name, Some("Application Usage Control"));
        let shown = tree(
            &buf,
            Options {
                reveal: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(shown[0].children[0].value, h("4761739001010119"));
        assert_eq!(
            shown[0].children[1].decoded,
            Some(Decoded::Text("2030-12-31".into()))
        );
        assert!(tree(&h("70 05 5A 08"), Options::default()).is_err());
    }

    #[test]
    fn commands_and_status_words() {
        use crate::apdu::Command;
        let (name, lines) = describe_command(&Command::read_record(2, 3));
        assert_eq!(
            (name.as_str(), lines[0].as_str()),
            ("READ RECORD", "SFI 2, record 3")
        );
        let gac = Command::parse(&h("80AE900002AABB00")).unwrap();
        let (name, lines) = describe_command(&gac);
        assert_eq!(name, "GENERATE AC");
        assert_eq!(
            lines[0],
            "reference control 90: ARQC requested, CDA signature requested"
        );
        let (name, lines) = describe_command(&Command::select(crate::entry::PPSE));
        assert_eq!(name, "SELECT");
        assert!(lines[1].contains("2PAY.SYS.DDF01"));
        assert_eq!(
            describe_command(&Command::parse(&h("80CA9F1700")).unwrap()).1[0],
            "data object 9F17 (Personal Identification Number (PIN) Try Counter)"
        );
        assert_eq!(status_word(0x6A82), "file or application not found");
        assert_eq!(status_word(0x63C2), "verification failed, 2 tries left");
        assert_eq!(
            status_word(0x6110),
            "16 more bytes available (GET RESPONSE)"
        );
    }

    #[test]
    fn dol_and_afl() {
        let Some(Decoded::Dol(items)) = explain(t::PDOL, &h("9F6604 9F0206"), 0, None) else {
            panic!()
        };
        assert_eq!(items[0].name, Some("Terminal Transaction Qualifiers (TTQ)"));
        assert_eq!(items[1].len, 6);
        assert_eq!(
            explain(t::AFL, &h("08010200"), 0, None),
            Some(Decoded::Lines(vec![
                "SFI 1, records 1-2, 0 for offline data authentication".into()
            ]))
        );
    }
}
