//! EMV® QR Code Specification for Payment Systems: Merchant-Presented Mode (EMVCo MPM v1.1).
//!
//! A merchant-presented code is a string of data objects, each a two-digit ID, a two-digit
//! length and a value (§4.7). The length counts *characters*, not bytes: the merchant
//! information language template (ID 64) carries names in another script, and
//! `"0104最佳运输"` is a four-character value. The payload ends with the CRC (ID 63), a
//! CRC-16/CCITT-FALSE over the UTF-8 bytes of everything before it including `"6304"`
//! (§4.7.3).
//!
//! [`Payload`] is the checked view (IDs, lengths, order, uniqueness, CRC); [`MerchantQr`] is
//! the representation with the fields by meaning, whose [`MerchantQr::encode`] and
//! [`MerchantQr::decode`] apply the rules of §4 and §5. Every broken rule is a [`QrError`]
//! naming the data object (`"62.05"` for the reference label inside the additional data
//! template) and the rule.
//!
//! ```
//! use emv::qr::MerchantQr;
//! let code = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678\
//!             520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京\
//!             540523.7253031565502016233030412340603***0708A60086670902ME91320016A01122334499\
//!             88770708123456786304A13A";
//! let qr = MerchantQr::decode(code).unwrap();
//! assert_eq!(qr.amount.as_deref(), Some("23.72"));
//! assert_eq!(qr.language.unwrap().name, "最佳运输");
//! ```

use std::fmt;

/// Largest payload in characters (§4.7: "the QR Code shall contain at most 512 characters").
pub const MAX_PAYLOAD_CHARS: usize = 512;

/// Where in a payload a rule was broken: a data object's ID, or a template's ID and the
/// ID inside it (`62.05`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPath {
    /// The top-level ID (00..=99).
    pub id: u8,
    /// The ID inside the template, when the rule is about a template's field.
    pub sub: Option<u8>,
}

impl TagPath {
    /// A top-level data object.
    pub fn top(id: u8) -> TagPath {
        TagPath { id, sub: None }
    }

    /// A field of the template `id`.
    pub fn sub(id: u8, sub: u8) -> TagPath {
        TagPath { id, sub: Some(sub) }
    }
}

impl fmt::Display for TagPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.sub {
            Some(s) => write!(f, "{:02}.{:02}", self.id, s),
            None => write!(f, "{:02}", self.id),
        }
    }
}

/// The rule a payload broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QrRule {
    /// The ID is not two digits.
    IdNotNumeric,
    /// The length is not two digits.
    LengthNotNumeric,
    /// The length is zero (§4.7: lengths are 01 to 99).
    LengthZero,
    /// The length runs past the end of the payload or template.
    Truncated {
        /// Characters the length announced.
        declared: usize,
        /// Characters that were left.
        available: usize,
    },
    /// The ID appears twice at the same level (§4.7: each ID at most once).
    Duplicate,
    /// A mandatory data object is absent.
    Missing,
    /// The payload format indicator is not the first data object (§4.7.1).
    NotFirst,
    /// The CRC is not the last data object (§4.7.3).
    NotLast,
    /// The CRC does not match the payload.
    CrcMismatch {
        /// The CRC computed over the payload.
        computed: u16,
        /// The value found in ID 63.
        found: String,
    },
    /// The value is longer than the field allows.
    TooLong {
        /// Most characters allowed.
        max: usize,
        /// Characters found.
        len: usize,
    },
    /// The value is shorter or longer than the field's fixed length.
    WrongLength {
        /// The field's length.
        expected: usize,
        /// Characters found.
        len: usize,
    },
    /// A character outside the field's format (digits only, or the alphanumeric special
    /// set of EMV Book 4 Annex B).
    Charset,
    /// The value breaks the field's own rule (the text says which).
    Value(&'static str),
    /// The payload is longer than [`MAX_PAYLOAD_CHARS`].
    PayloadTooLong(usize),
}

impl QrRule {
    /// A stable snake_case name for scripts (`kassa tool qr decode --json`).
    pub fn code(&self) -> &'static str {
        match self {
            QrRule::IdNotNumeric => "id_not_numeric",
            QrRule::LengthNotNumeric => "length_not_numeric",
            QrRule::LengthZero => "length_zero",
            QrRule::Truncated { .. } => "truncated",
            QrRule::Duplicate => "duplicate",
            QrRule::Missing => "missing",
            QrRule::NotFirst => "not_first",
            QrRule::NotLast => "not_last",
            QrRule::CrcMismatch { .. } => "crc_mismatch",
            QrRule::TooLong { .. } => "too_long",
            QrRule::WrongLength { .. } => "wrong_length",
            QrRule::Charset => "charset",
            QrRule::Value(_) => "value",
            QrRule::PayloadTooLong(_) => "payload_too_long",
        }
    }
}

impl fmt::Display for QrRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QrRule::IdNotNumeric => f.write_str("the ID is not two digits"),
            QrRule::LengthNotNumeric => f.write_str("the length is not two digits"),
            QrRule::LengthZero => f.write_str("the length is 00"),
            QrRule::Truncated {
                declared,
                available,
            } => write!(
                f,
                "the length {declared} runs past the end ({available} characters left)"
            ),
            QrRule::Duplicate => f.write_str("appears more than once"),
            QrRule::Missing => f.write_str("is mandatory and missing"),
            QrRule::NotFirst => f.write_str("must be the first data object"),
            QrRule::NotLast => f.write_str("must be the last data object"),
            QrRule::CrcMismatch { computed, found } => {
                write!(f, "CRC {found} does not match the payload ({computed:04X})")
            }
            QrRule::TooLong { max, len } => {
                write!(f, "is {len} characters, at most {max} allowed")
            }
            QrRule::WrongLength { expected, len } => {
                write!(f, "is {len} characters, must be {expected}")
            }
            QrRule::Charset => f.write_str("has a character outside its format"),
            QrRule::Value(why) => f.write_str(why),
            QrRule::PayloadTooLong(n) => write!(
                f,
                "the payload is {n} characters, at most {MAX_PAYLOAD_CHARS} allowed"
            ),
        }
    }
}

/// A merchant-presented payload that breaks a rule of the specification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("QR tag {tag}: {rule}")]
pub struct QrError {
    /// The data object.
    pub tag: TagPath,
    /// The rule it broke.
    pub rule: QrRule,
}

impl QrError {
    fn new(tag: TagPath, rule: QrRule) -> QrError {
        QrError { tag, rule }
    }
}

/// CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
/// XOR) over `bytes`, as §4.7.3 requires for ID 63. `crc16(b"123456789") == 0x29B1`.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One data object: its ID and its value, borrowed from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataObject<'a> {
    /// The ID (00..=99).
    pub id: u8,
    /// The value (as many characters as the length said).
    pub value: &'a str,
}

/// Splits `s` into data objects, checking the IDs, the lengths (in characters) and that no
/// ID appears twice. `parent` names the template in errors.
pub fn parse_objects(s: &str, parent: Option<u8>) -> Result<Vec<DataObject<'_>>, QrError> {
    let path = |id: u8| match parent {
        Some(p) => TagPath::sub(p, id),
        None => TagPath::top(id),
    };
    let mut out: Vec<DataObject<'_>> = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let id_text = rest.get(..2).filter(|t| is_digits(t));
        let Some(id_text) = id_text else {
            // Name the position by the previous object (or the template itself).
            let at = out.last().map(|o| o.id).unwrap_or(0);
            return Err(QrError::new(
                parent.map_or(TagPath::top(at), TagPath::top),
                QrRule::IdNotNumeric,
            ));
        };
        let id = two_digits(id_text);
        let len_text = rest.get(2..4).filter(|t| is_digits(t));
        let Some(len_text) = len_text else {
            return Err(QrError::new(path(id), QrRule::LengthNotNumeric));
        };
        let declared = usize::from(two_digits(len_text));
        if declared == 0 {
            return Err(QrError::new(path(id), QrRule::LengthZero));
        }
        let body = &rest[4..];
        // The byte offset after `declared` characters.
        let end = match body.char_indices().nth(declared) {
            Some((i, _)) => i,
            None => {
                let available = body.chars().count();
                if available < declared {
                    return Err(QrError::new(
                        path(id),
                        QrRule::Truncated {
                            declared,
                            available,
                        },
                    ));
                }
                body.len()
            }
        };
        if out.iter().any(|o| o.id == id) {
            return Err(QrError::new(path(id), QrRule::Duplicate));
        }
        out.push(DataObject {
            id,
            value: &body[..end],
        });
        rest = &body[end..];
    }
    Ok(out)
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn two_digits(s: &str) -> u8 {
    s.bytes().fold(0u8, |a, b| a * 10 + (b - b'0'))
}

/// The checked view of a payload: its top-level data objects, with the payload format
/// indicator first, the CRC last and matching (§4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload<'a> {
    objects: Vec<DataObject<'a>>,
}

impl<'a> Payload<'a> {
    /// Checks `payload`'s structure and CRC.
    pub fn new_checked(payload: &'a str) -> Result<Payload<'a>, QrError> {
        let n = payload.chars().count();
        if n > MAX_PAYLOAD_CHARS {
            return Err(QrError::new(TagPath::top(0), QrRule::PayloadTooLong(n)));
        }
        let objects = parse_objects(payload, None)?;
        match objects.first() {
            Some(o) if o.id == 0 => {}
            _ => {
                let rule = if objects.iter().any(|o| o.id == 0) {
                    QrRule::NotFirst
                } else {
                    QrRule::Missing
                };
                return Err(QrError::new(TagPath::top(0), rule));
            }
        }
        let crc = match objects.iter().position(|o| o.id == 63) {
            None => return Err(QrError::new(TagPath::top(63), QrRule::Missing)),
            Some(i) if i + 1 != objects.len() => {
                return Err(QrError::new(TagPath::top(63), QrRule::NotLast));
            }
            Some(i) => objects[i].value,
        };
        if crc.chars().count() != 4 {
            return Err(QrError::new(
                TagPath::top(63),
                QrRule::WrongLength {
                    expected: 4,
                    len: crc.chars().count(),
                },
            ));
        }
        // The CRC value is the payload's last data object: what precedes it ends at a
        // character boundary whatever the value holds.
        let covered = &payload[..payload.len() - crc.len()];
        let computed = crc16(covered.as_bytes());
        let found = u16::from_str_radix(crc, 16).ok();
        if !crc.bytes().all(|b| b.is_ascii_hexdigit()) || found != Some(computed) {
            return Err(QrError::new(
                TagPath::top(63),
                QrRule::CrcMismatch {
                    computed,
                    found: crc.to_string(),
                },
            ));
        }
        Ok(Payload { objects })
    }

    /// The top-level data objects in payload order.
    pub fn objects(&self) -> &[DataObject<'a>] {
        &self.objects
    }

    /// The value of ID `id`.
    pub fn get(&self, id: u8) -> Option<&'a str> {
        self.objects.iter().find(|o| o.id == id).map(|o| o.value)
    }
}

/// Point of initiation method (ID 01, §4.7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiation {
    /// `11`: the same code for many payments (printed at the counter).
    Static,
    /// `12`: a code for one payment (shown on the terminal's screen with the amount).
    Dynamic,
}

impl Initiation {
    fn code(self) -> &'static str {
        match self {
            Initiation::Static => "11",
            Initiation::Dynamic => "12",
        }
    }
}

/// A template: a globally unique identifier (sub-ID 00) and the fields its owner defines
/// (merchant account information 26-51, payment system specific templates 62.50-99,
/// unreserved templates 80-99).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The template's ID.
    pub id: u8,
    /// Globally unique identifier (sub-ID 00): an AID in hex, a reverse domain name or a
    /// UUID without hyphens, at most 32 characters.
    pub gui: String,
    /// Sub-IDs 01-99 with their values, in order.
    pub fields: Vec<(u8, String)>,
}

impl Template {
    /// The value of sub-ID `id`.
    pub fn field(&self, id: u8) -> Option<&str> {
        self.fields
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v.as_str())
    }

    fn encode(&self) -> Result<String, QrError> {
        check_ans(TagPath::sub(self.id, 0), &self.gui, 32)?;
        let mut inner = obj(0, &self.gui);
        let mut fields = self.fields.clone();
        fields.sort_by_key(|(i, _)| *i);
        for (i, v) in &fields {
            if *i == 0 || *i > 99 || fields.iter().filter(|(j, _)| j == i).count() > 1 {
                return Err(QrError::new(TagPath::sub(self.id, *i), QrRule::Duplicate));
            }
            check_len(TagPath::sub(self.id, *i), v, 99)?;
            inner.push_str(&obj(*i, v));
        }
        check_len(TagPath::top(self.id), &inner, 99)?;
        Ok(obj(self.id, &inner))
    }

    fn decode(id: u8, value: &str) -> Result<Template, QrError> {
        let objs = parse_objects(value, Some(id))?;
        let gui = objs
            .iter()
            .find(|o| o.id == 0)
            .ok_or(QrError::new(TagPath::sub(id, 0), QrRule::Missing))?;
        check_ans(TagPath::sub(id, 0), gui.value, 32)?;
        Ok(Template {
            id,
            gui: gui.value.to_string(),
            fields: objs
                .iter()
                .filter(|o| o.id != 0)
                .map(|o| (o.id, o.value.to_string()))
                .collect(),
        })
    }
}

/// Merchant account information (IDs 02-51, §4.7.4): the payment networks that accept
/// this code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MerchantAccount {
    /// IDs 02-25, reserved for the card schemes (Visa 02-03, Mastercard 04-05, EMVCo 06-08,
    /// Discover 09-10, Amex 11-12, JCB 13-14, UnionPay 15-16, EMVCo 17-25): the scheme's
    /// merchant identifier as a primitive value.
    Scheme {
        /// The ID.
        id: u8,
        /// The merchant identifier.
        value: String,
    },
    /// IDs 26-51: a template with the network's globally unique identifier.
    Template(Template),
}

impl MerchantAccount {
    /// The data object's ID.
    pub fn id(&self) -> u8 {
        match self {
            MerchantAccount::Scheme { id, .. } => *id,
            MerchantAccount::Template(t) => t.id,
        }
    }

    /// The name of the scheme that EMVCo reserved IDs 02-25 for.
    pub fn scheme_name(id: u8) -> Option<&'static str> {
        Some(match id {
            2 | 3 => "Visa",
            4 | 5 => "Mastercard",
            6..=8 | 17..=25 => "EMVCo",
            9 | 10 => "Discover",
            11 | 12 => "American Express",
            13 | 14 => "JCB",
            15 | 16 => "UnionPay",
            _ => return None,
        })
    }
}

/// Tip or convenience fee indicator (ID 55) with its value (ID 56 or 57), §4.7.6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tip {
    /// `01`: the wallet asks the consumer for a tip.
    Prompt,
    /// `02` with ID 56: a fixed convenience fee in the transaction currency.
    Fixed(String),
    /// `03` with ID 57: a convenience fee in percent (`"3.00"`, between 00.01 and 99.99).
    Percentage(String),
}

/// Additional data field template (ID 62, §4.8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdditionalData {
    /// 01 bill number (invoice).
    pub bill_number: Option<String>,
    /// 02 mobile number (top-ups, bills).
    pub mobile_number: Option<String>,
    /// 03 store label.
    pub store_label: Option<String>,
    /// 04 loyalty number.
    pub loyalty_number: Option<String>,
    /// 05 reference label: the transaction reference the host matches the payment by.
    pub reference_label: Option<String>,
    /// 06 customer label.
    pub customer_label: Option<String>,
    /// 07 terminal label.
    pub terminal_label: Option<String>,
    /// 08 purpose of transaction.
    pub purpose: Option<String>,
    /// 09 additional consumer data request: any of `A` (address), `M` (mobile), `E` (email).
    pub consumer_data_request: Option<String>,
    /// 10 merchant tax ID.
    pub merchant_tax_id: Option<String>,
    /// 11 merchant channel (three characters: media, location, presence).
    pub merchant_channel: Option<String>,
    /// 12-49: reserved for future use by EMVCo, kept as found.
    pub rfu: Vec<(u8, String)>,
    /// 50-99: payment system specific templates.
    pub payment_system: Vec<Template>,
}

impl AdditionalData {
    const LABELS: [(u8, usize); 11] = [
        (1, 25),
        (2, 25),
        (3, 25),
        (4, 25),
        (5, 25),
        (6, 25),
        (7, 25),
        (8, 25),
        (9, 3),
        (10, 20),
        (11, 3),
    ];

    fn slot(&self, id: u8) -> Option<&Option<String>> {
        Some(match id {
            1 => &self.bill_number,
            2 => &self.mobile_number,
            3 => &self.store_label,
            4 => &self.loyalty_number,
            5 => &self.reference_label,
            6 => &self.customer_label,
            7 => &self.terminal_label,
            8 => &self.purpose,
            9 => &self.consumer_data_request,
            10 => &self.merchant_tax_id,
            11 => &self.merchant_channel,
            _ => return None,
        })
    }

    fn slot_mut(&mut self, id: u8) -> Option<&mut Option<String>> {
        Some(match id {
            1 => &mut self.bill_number,
            2 => &mut self.mobile_number,
            3 => &mut self.store_label,
            4 => &mut self.loyalty_number,
            5 => &mut self.reference_label,
            6 => &mut self.customer_label,
            7 => &mut self.terminal_label,
            8 => &mut self.purpose,
            9 => &mut self.consumer_data_request,
            10 => &mut self.merchant_tax_id,
            11 => &mut self.merchant_channel,
            _ => return None,
        })
    }

    fn check_field(id: u8, max: usize, v: &str) -> Result<(), QrError> {
        let path = TagPath::sub(62, id);
        check_ans(path.clone(), v, max)?;
        match id {
            9 => {
                let ok = v.chars().all(|c| matches!(c, 'A' | 'M' | 'E'))
                    && v.chars()
                        .enumerate()
                        .all(|(i, c)| !v.chars().skip(i + 1).any(|d| d == c));
                if !ok {
                    return Err(QrError::new(
                        path,
                        QrRule::Value("consumer data request is A, M and E, each at most once"),
                    ));
                }
            }
            11 if v.chars().count() != 3 => {
                return Err(QrError::new(
                    path,
                    QrRule::WrongLength {
                        expected: 3,
                        len: v.chars().count(),
                    },
                ));
            }
            _ => {}
        }
        Ok(())
    }

    fn encode(&self) -> Result<String, QrError> {
        let mut inner = String::new();
        for (id, max) in AdditionalData::LABELS {
            if let Some(Some(v)) = self.slot(id) {
                AdditionalData::check_field(id, max, v)?;
                inner.push_str(&obj(id, v));
            }
        }
        let mut rest: Vec<(u8, String)> = self.rfu.clone();
        for t in &self.payment_system {
            if !(50..=99).contains(&t.id) {
                return Err(QrError::new(
                    TagPath::sub(62, t.id),
                    QrRule::Value("payment system specific templates are 50 to 99"),
                ));
            }
            let e = t.encode()?;
            rest.push((t.id, e[4..].to_string()));
        }
        rest.sort_by_key(|(i, _)| *i);
        for (i, (id, v)) in rest.iter().enumerate() {
            if rest[..i].iter().any(|(j, _)| j == id) {
                return Err(QrError::new(TagPath::sub(62, *id), QrRule::Duplicate));
            }
            if !(12..=99).contains(id) {
                return Err(QrError::new(
                    TagPath::sub(62, *id),
                    QrRule::Value("reserved fields are 12 to 49"),
                ));
            }
            check_len(TagPath::sub(62, *id), v, 99)?;
            inner.push_str(&obj(*id, v));
        }
        if inner.is_empty() {
            return Err(QrError::new(
                TagPath::top(62),
                QrRule::Value("the template is empty"),
            ));
        }
        check_len(TagPath::top(62), &inner, 99)?;
        Ok(obj(62, &inner))
    }

    fn decode(value: &str) -> Result<AdditionalData, QrError> {
        let mut out = AdditionalData::default();
        for o in parse_objects(value, Some(62))? {
            match o.id {
                1..=11 => {
                    let max = AdditionalData::LABELS[usize::from(o.id) - 1].1;
                    AdditionalData::check_field(o.id, max, o.value)?;
                    if let Some(slot) = out.slot_mut(o.id) {
                        *slot = Some(o.value.to_string());
                    }
                }
                50..=99 => out.payment_system.push(Template::decode(o.id, o.value)?),
                _ => out.rfu.push((o.id, o.value.to_string())),
            }
        }
        Ok(out)
    }

    /// The fields that are present, with their IDs, names and values.
    pub fn fields(&self) -> Vec<(u8, &'static str, &str)> {
        let mut v = Vec::new();
        for (id, _) in AdditionalData::LABELS {
            if let Some(Some(s)) = self.slot(id) {
                v.push((id, additional_name(id), s.as_str()));
            }
        }
        v
    }
}

/// Merchant information language template (ID 64, §4.9): the merchant's name (and city)
/// in another language and script, e.g. Chinese characters beside the Latin name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantLanguage {
    /// 00 language preference: an ISO 639-1 code in upper or lower case (`ZH`).
    pub language: String,
    /// 01 merchant name in that language (at most 25 characters, any script).
    pub name: String,
    /// 02 merchant city in that language (at most 15 characters).
    pub city: Option<String>,
    /// 03-99: reserved for future use, kept as found.
    pub rfu: Vec<(u8, String)>,
}

impl MerchantLanguage {
    fn encode(&self) -> Result<String, QrError> {
        let mut inner = String::new();
        check_language(&self.language)?;
        inner.push_str(&obj(0, &self.language));
        check_text(TagPath::sub(64, 1), &self.name, 25)?;
        inner.push_str(&obj(1, &self.name));
        if let Some(c) = &self.city {
            check_text(TagPath::sub(64, 2), c, 15)?;
            inner.push_str(&obj(2, c));
        }
        let mut rfu = self.rfu.clone();
        rfu.sort_by_key(|(i, _)| *i);
        for (i, (id, v)) in rfu.iter().enumerate() {
            if *id < 3 || *id > 99 || rfu[..i].iter().any(|(j, _)| j == id) {
                return Err(QrError::new(TagPath::sub(64, *id), QrRule::Duplicate));
            }
            check_text(TagPath::sub(64, *id), v, 99)?;
            inner.push_str(&obj(*id, v));
        }
        check_len(TagPath::top(64), &inner, 99)?;
        Ok(obj(64, &inner))
    }

    fn decode(value: &str) -> Result<MerchantLanguage, QrError> {
        let objs = parse_objects(value, Some(64))?;
        let get = |id: u8| objs.iter().find(|o| o.id == id).map(|o| o.value);
        let language = get(0).ok_or(QrError::new(TagPath::sub(64, 0), QrRule::Missing))?;
        check_language(language)?;
        let name = get(1).ok_or(QrError::new(TagPath::sub(64, 1), QrRule::Missing))?;
        check_text(TagPath::sub(64, 1), name, 25)?;
        let city = get(2);
        if let Some(c) = city {
            check_text(TagPath::sub(64, 2), c, 15)?;
        }
        Ok(MerchantLanguage {
            language: language.to_string(),
            name: name.to_string(),
            city: city.map(str::to_string),
            rfu: objs
                .iter()
                .filter(|o| o.id > 2)
                .map(|o| (o.id, o.value.to_string()))
                .collect(),
        })
    }
}

fn check_language(language: &str) -> Result<(), QrError> {
    if language.chars().count() != 2 || !language.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(QrError::new(
            TagPath::sub(64, 0),
            QrRule::Value("language preference is a two-letter ISO 639-1 code"),
        ));
    }
    Ok(())
}

/// A merchant-presented code by meaning (EMVCo MPM §4 and §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantQr {
    /// 01 point of initiation method.
    pub initiation: Option<Initiation>,
    /// 02-51 merchant account information: at least one.
    pub accounts: Vec<MerchantAccount>,
    /// 52 merchant category code (ISO 18245, four digits).
    pub mcc: String,
    /// 53 transaction currency (ISO 4217 numeric, three digits).
    pub currency: String,
    /// 54 transaction amount (`"23.72"`): digits with at most one `.` as decimal mark.
    pub amount: Option<String>,
    /// 55-57 tip or convenience fee.
    pub tip: Option<Tip>,
    /// 58 country of the merchant (ISO 3166-1 alpha-2).
    pub country: String,
    /// 59 merchant name (at most 25 characters).
    pub merchant_name: String,
    /// 60 merchant city (at most 15 characters).
    pub merchant_city: String,
    /// 61 postal code (at most 10 characters).
    pub postal_code: Option<String>,
    /// 62 additional data field template.
    pub additional: Option<AdditionalData>,
    /// 64 merchant information in another language.
    pub language: Option<MerchantLanguage>,
    /// 65-79: reserved for future use by EMVCo, kept as found.
    pub rfu: Vec<(u8, String)>,
    /// 80-99 unreserved templates (a wallet's or an acquirer's own data).
    pub unreserved: Vec<Template>,
}

impl MerchantQr {
    /// Checks `payload` (structure, CRC, every field's rule) and reads its fields.
    pub fn decode(payload: &str) -> Result<MerchantQr, QrError> {
        let p = Payload::new_checked(payload)?;
        let get = |id: u8| p.get(id);
        let need = |id: u8| get(id).ok_or(QrError::new(TagPath::top(id), QrRule::Missing));
        if need(0)? != "01" {
            return Err(QrError::new(
                TagPath::top(0),
                QrRule::Value("payload format indicator must be 01"),
            ));
        }
        let initiation = match get(1) {
            None => None,
            Some("11") => Some(Initiation::Static),
            Some("12") => Some(Initiation::Dynamic),
            Some(_) => {
                return Err(QrError::new(
                    TagPath::top(1),
                    QrRule::Value("point of initiation is 11 (static) or 12 (dynamic)"),
                ));
            }
        };
        let mut accounts = Vec::new();
        let mut rfu = Vec::new();
        let mut unreserved = Vec::new();
        for o in p.objects() {
            match o.id {
                2..=25 => {
                    check_ans(TagPath::top(o.id), o.value, 99)?;
                    accounts.push(MerchantAccount::Scheme {
                        id: o.id,
                        value: o.value.to_string(),
                    });
                }
                26..=51 => {
                    accounts.push(MerchantAccount::Template(Template::decode(o.id, o.value)?))
                }
                65..=79 => rfu.push((o.id, o.value.to_string())),
                80..=99 => unreserved.push(Template::decode(o.id, o.value)?),
                _ => {}
            }
        }
        let tip = match get(55) {
            None => {
                for id in [56, 57] {
                    if get(id).is_some() {
                        return Err(QrError::new(
                            TagPath::top(id),
                            QrRule::Value("present without the tip indicator (55)"),
                        ));
                    }
                }
                None
            }
            Some("01") => Some(Tip::Prompt),
            Some("02") => Some(Tip::Fixed(need(56)?.to_string())),
            Some("03") => Some(Tip::Percentage(need(57)?.to_string())),
            Some(_) => {
                return Err(QrError::new(
                    TagPath::top(55),
                    QrRule::Value("tip indicator is 01, 02 or 03"),
                ));
            }
        };
        if matches!(tip, Some(Tip::Prompt) | Some(Tip::Percentage(_))) && get(56).is_some() {
            return Err(QrError::new(
                TagPath::top(56),
                QrRule::Value("a fixed fee needs tip indicator 02"),
            ));
        }
        if matches!(tip, Some(Tip::Prompt) | Some(Tip::Fixed(_))) && get(57).is_some() {
            return Err(QrError::new(
                TagPath::top(57),
                QrRule::Value("a percentage fee needs tip indicator 03"),
            ));
        }
        let qr = MerchantQr {
            initiation,
            accounts,
            mcc: need(52)?.to_string(),
            currency: need(53)?.to_string(),
            amount: get(54).map(str::to_string),
            tip,
            country: need(58)?.to_string(),
            merchant_name: need(59)?.to_string(),
            merchant_city: need(60)?.to_string(),
            postal_code: get(61).map(str::to_string),
            additional: get(62).map(AdditionalData::decode).transpose()?,
            language: get(64).map(MerchantLanguage::decode).transpose()?,
            rfu,
            unreserved,
        };
        qr.check()?;
        Ok(qr)
    }

    /// Checks every field's rule.
    pub fn check(&self) -> Result<(), QrError> {
        if self.accounts.is_empty() {
            return Err(QrError::new(
                TagPath::top(26),
                QrRule::Value("at least one merchant account information (02-51) is mandatory"),
            ));
        }
        for a in &self.accounts {
            match a {
                MerchantAccount::Scheme { id, value } => {
                    if !(2..=25).contains(id) {
                        return Err(QrError::new(
                            TagPath::top(*id),
                            QrRule::Value("scheme merchant identifiers are IDs 02 to 25"),
                        ));
                    }
                    check_ans(TagPath::top(*id), value, 99)?;
                }
                MerchantAccount::Template(t) if !(26..=51).contains(&t.id) => {
                    return Err(QrError::new(
                        TagPath::top(t.id),
                        QrRule::Value("merchant account templates are IDs 26 to 51"),
                    ));
                }
                MerchantAccount::Template(_) => {}
            }
        }
        check_digits(TagPath::top(52), &self.mcc, 4)?;
        check_digits(TagPath::top(53), &self.currency, 3)?;
        let exponent = self
            .currency
            .parse::<u16>()
            .ok()
            .and_then(crate::codes::currency)
            .map(|c| c.exponent);
        if let Some(a) = &self.amount {
            check_amount(TagPath::top(54), a, 13, exponent)?;
        }
        match &self.tip {
            Some(Tip::Fixed(v)) => check_amount(TagPath::top(56), v, 13, exponent)?,
            Some(Tip::Percentage(v)) => check_percentage(v)?,
            _ => {}
        }
        if self.country.chars().count() != 2
            || !self.country.chars().all(|c| c.is_ascii_uppercase())
        {
            return Err(QrError::new(
                TagPath::top(58),
                QrRule::Value("country is an ISO 3166-1 alpha-2 code"),
            ));
        }
        check_ans(TagPath::top(59), &self.merchant_name, 25)?;
        check_ans(TagPath::top(60), &self.merchant_city, 15)?;
        if let Some(p) = &self.postal_code {
            check_ans(TagPath::top(61), p, 10)?;
        }
        for (id, v) in &self.rfu {
            if !(65..=79).contains(id) {
                return Err(QrError::new(
                    TagPath::top(*id),
                    QrRule::Value("reserved data objects are 65 to 79"),
                ));
            }
            check_len(TagPath::top(*id), v, 99)?;
        }
        for t in &self.unreserved {
            if !(80..=99).contains(&t.id) {
                return Err(QrError::new(
                    TagPath::top(t.id),
                    QrRule::Value("unreserved templates are IDs 80 to 99"),
                ));
            }
        }
        Ok(())
    }

    /// The payload: the data objects in ascending ID order, the CRC last (§4.7).
    pub fn encode(&self) -> Result<String, QrError> {
        self.check()?;
        let mut parts: Vec<(u8, String)> = vec![(0, obj(0, "01"))];
        if let Some(i) = self.initiation {
            parts.push((1, obj(1, i.code())));
        }
        for a in &self.accounts {
            let e = match a {
                MerchantAccount::Scheme { id, value } => obj(*id, value),
                MerchantAccount::Template(t) => t.encode()?,
            };
            parts.push((a.id(), e));
        }
        parts.push((52, obj(52, &self.mcc)));
        parts.push((53, obj(53, &self.currency)));
        if let Some(a) = &self.amount {
            parts.push((54, obj(54, a)));
        }
        match &self.tip {
            None => {}
            Some(Tip::Prompt) => parts.push((55, obj(55, "01"))),
            Some(Tip::Fixed(v)) => {
                parts.push((55, obj(55, "02")));
                parts.push((56, obj(56, v)));
            }
            Some(Tip::Percentage(v)) => {
                parts.push((55, obj(55, "03")));
                parts.push((57, obj(57, v)));
            }
        }
        parts.push((58, obj(58, &self.country)));
        parts.push((59, obj(59, &self.merchant_name)));
        parts.push((60, obj(60, &self.merchant_city)));
        if let Some(p) = &self.postal_code {
            parts.push((61, obj(61, p)));
        }
        if let Some(a) = &self.additional {
            parts.push((62, a.encode()?));
        }
        if let Some(l) = &self.language {
            parts.push((64, l.encode()?));
        }
        for (id, v) in &self.rfu {
            parts.push((*id, obj(*id, v)));
        }
        for t in &self.unreserved {
            parts.push((t.id, t.encode()?));
        }
        parts.sort_by_key(|(id, _)| *id);
        for (i, (id, _)) in parts.iter().enumerate() {
            if parts[..i].iter().any(|(j, _)| j == id) {
                return Err(QrError::new(TagPath::top(*id), QrRule::Duplicate));
            }
        }
        let mut out: String = parts.into_iter().map(|(_, s)| s).collect();
        out.push_str("6304");
        let crc = crc16(out.as_bytes());
        out.push_str(&format!("{crc:04X}"));
        let n = out.chars().count();
        if n > MAX_PAYLOAD_CHARS {
            return Err(QrError::new(TagPath::top(0), QrRule::PayloadTooLong(n)));
        }
        Ok(out)
    }

    /// The transaction reference (62.05), which ties a dynamic code to its payment.
    pub fn reference(&self) -> Option<&str> {
        self.additional.as_ref()?.reference_label.as_deref()
    }

    /// Every field with its tag path, its name in the specification and its value, in
    /// payload order: what `kassa tool qr decode` prints.
    pub fn fields(&self) -> Vec<Field> {
        let mut v = Vec::new();
        let mut push = |tag: TagPath, name: &str, value: &str| {
            v.push(Field {
                tag: tag.to_string(),
                name: name.to_string(),
                value: value.to_string(),
            })
        };
        push(TagPath::top(0), "Payload Format Indicator", "01");
        if let Some(i) = self.initiation {
            push(TagPath::top(1), "Point of Initiation Method", i.code());
        }
        for a in &self.accounts {
            match a {
                MerchantAccount::Scheme { id, value } => {
                    let name = format!(
                        "Merchant Account Information ({})",
                        MerchantAccount::scheme_name(*id).unwrap_or("scheme")
                    );
                    push(TagPath::top(*id), &name, value);
                }
                MerchantAccount::Template(t) => {
                    push(
                        TagPath::sub(t.id, 0),
                        "Merchant Account Information: Globally Unique Identifier",
                        &t.gui,
                    );
                    for (i, val) in &t.fields {
                        push(
                            TagPath::sub(t.id, *i),
                            "Merchant Account Information: payment network specific",
                            val,
                        );
                    }
                }
            }
        }
        push(TagPath::top(52), "Merchant Category Code", &self.mcc);
        push(TagPath::top(53), "Transaction Currency", &self.currency);
        if let Some(a) = &self.amount {
            push(TagPath::top(54), "Transaction Amount", a);
        }
        match &self.tip {
            None => {}
            Some(Tip::Prompt) => push(TagPath::top(55), "Tip or Convenience Indicator", "01"),
            Some(Tip::Fixed(f)) => {
                push(TagPath::top(55), "Tip or Convenience Indicator", "02");
                push(TagPath::top(56), "Value of Convenience Fee Fixed", f);
            }
            Some(Tip::Percentage(p)) => {
                push(TagPath::top(55), "Tip or Convenience Indicator", "03");
                push(TagPath::top(57), "Value of Convenience Fee Percentage", p);
            }
        }
        push(TagPath::top(58), "Country Code", &self.country);
        push(TagPath::top(59), "Merchant Name", &self.merchant_name);
        push(TagPath::top(60), "Merchant City", &self.merchant_city);
        if let Some(p) = &self.postal_code {
            push(TagPath::top(61), "Postal Code", p);
        }
        if let Some(a) = &self.additional {
            for (id, name, val) in a.fields() {
                push(TagPath::sub(62, id), name, val);
            }
            for (id, val) in &a.rfu {
                push(TagPath::sub(62, *id), "RFU for EMVCo", val);
            }
            for t in &a.payment_system {
                push(
                    TagPath::sub(62, t.id),
                    "Payment System Specific Template",
                    &format!("GUI {} {:?}", t.gui, t.fields),
                );
            }
        }
        if let Some(l) = &self.language {
            push(TagPath::sub(64, 0), "Language Preference", &l.language);
            push(
                TagPath::sub(64, 1),
                "Merchant Name—Alternate Language",
                &l.name,
            );
            if let Some(c) = &l.city {
                push(TagPath::sub(64, 2), "Merchant City—Alternate Language", c);
            }
        }
        for (id, val) in &self.rfu {
            push(TagPath::top(*id), "RFU for EMVCo", val);
        }
        for t in &self.unreserved {
            push(
                TagPath::sub(t.id, 0),
                "Unreserved Template: Globally Unique Identifier",
                &t.gui,
            );
            for (i, val) in &t.fields {
                push(
                    TagPath::sub(t.id, *i),
                    "Unreserved Template: context specific",
                    val,
                );
            }
        }
        v
    }
}

/// One decoded field, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// `"54"` or `"62.05"`.
    pub tag: String,
    /// The field's name in the specification.
    pub name: String,
    /// The value.
    pub value: String,
}

fn additional_name(id: u8) -> &'static str {
    match id {
        1 => "Bill Number",
        2 => "Mobile Number",
        3 => "Store Label",
        4 => "Loyalty Number",
        5 => "Reference Label",
        6 => "Customer Label",
        7 => "Terminal Label",
        8 => "Purpose of Transaction",
        9 => "Additional Consumer Data Request",
        10 => "Merchant Tax ID",
        11 => "Merchant Channel",
        _ => "RFU for EMVCo",
    }
}

fn obj(id: u8, value: &str) -> String {
    format!("{id:02}{:02}{value}", value.chars().count())
}

fn check_len(path: TagPath, v: &str, max: usize) -> Result<(), QrError> {
    let len = v.chars().count();
    if len == 0 {
        return Err(QrError::new(path, QrRule::LengthZero));
    }
    if len > max {
        return Err(QrError::new(path, QrRule::TooLong { max, len }));
    }
    Ok(())
}

/// Format "ans": the alphanumeric special characters of EMV Book 4 Annex B (0x20-0x7E).
fn check_ans(path: TagPath, v: &str, max: usize) -> Result<(), QrError> {
    check_len(path.clone(), v, max)?;
    if !v.chars().all(|c| (' '..='~').contains(&c)) {
        return Err(QrError::new(path, QrRule::Charset));
    }
    Ok(())
}

/// Format "S" (any Unicode text) for the language template, without control characters.
fn check_text(path: TagPath, v: &str, max: usize) -> Result<(), QrError> {
    check_len(path.clone(), v, max)?;
    if v.chars().any(char::is_control) {
        return Err(QrError::new(path, QrRule::Charset));
    }
    Ok(())
}

fn check_digits(path: TagPath, v: &str, len: usize) -> Result<(), QrError> {
    let n = v.chars().count();
    if n != len {
        return Err(QrError::new(
            path,
            QrRule::WrongLength {
                expected: len,
                len: n,
            },
        ));
    }
    if !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QrError::new(path, QrRule::Charset));
    }
    Ok(())
}

/// §4.7.5: digits, at most one `.` as decimal mark, not zero, and no more decimals than the
/// currency's minor unit.
fn check_amount(path: TagPath, v: &str, max: usize, exponent: Option<u8>) -> Result<(), QrError> {
    check_len(path.clone(), v, max)?;
    let mut parts = v.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !frac.is_none_or(digits) || (int.is_empty() && frac.unwrap_or("").is_empty())
    {
        return Err(QrError::new(
            path,
            QrRule::Value("an amount is digits with at most one '.' as decimal mark"),
        ));
    }
    if !v.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        return Err(QrError::new(path, QrRule::Value("the amount is zero")));
    }
    if let (Some(f), Some(e)) = (frac, exponent)
        && f.len() > usize::from(e)
    {
        return Err(QrError::new(
            path,
            QrRule::Value("more decimals than the currency has"),
        ));
    }
    Ok(())
}

/// §4.7.6: ID 57 is a percentage between 00.01 and 99.99.
fn check_percentage(v: &str) -> Result<(), QrError> {
    let path = TagPath::top(57);
    check_len(path.clone(), v, 5)?;
    let ok = v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|&b| b == b'.').count() <= 1
        && v.parse::<f64>()
            .map(|p| (0.01..=99.99).contains(&p))
            .unwrap_or(false);
    if !ok {
        return Err(QrError::new(
            path,
            QrRule::Value("a percentage fee is between 00.01 and 99.99"),
        ));
    }
    Ok(())
}

/// Formats minor units as a QR amount for a currency with `exponent` decimals
/// (`1234, 2` → `"12.34"`, `500, 0` → `"500"`).
pub fn amount_text(minor: u64, exponent: u8) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let div = 10u64.pow(u32::from(exponent));
    format!(
        "{}.{:0width$}",
        minor / div,
        minor % div,
        width = usize::from(exponent)
    )
}

/// Parses a QR amount into minor units of a currency with `exponent` decimals
/// (`"23.72", 2` → `2372`); `None` when it has more decimals or is not an amount.
pub fn amount_minor(text: &str, exponent: u8) -> Option<u64> {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    if frac.len() > usize::from(exponent)
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (int.is_empty() && frac.is_empty())
    {
        return None;
    }
    let mut digits = format!("{int}{frac}");
    for _ in frac.len()..usize::from(exponent) {
        digits.push('0');
    }
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of EMVCo MPM v1.1 Appendix A (with the Chinese merchant information
    /// language template and the unreserved template 91).
    const EMVCO_EXAMPLE: &str = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A";

    /// The static example of the Banco Central do Brasil's BR Code (Pix) manual.
    const PIX_EXAMPLE: &str = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";

    #[test]
    fn crc16_ccitt_false_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
        assert_eq!(crc16(b""), 0xFFFF);
    }

    #[test]
    fn emvco_example_field_by_field() {
        let qr = MerchantQr::decode(EMVCO_EXAMPLE).unwrap();
        assert_eq!(qr.initiation, Some(Initiation::Dynamic));
        assert_eq!(qr.accounts.len(), 2);
        let MerchantAccount::Template(t29) = &qr.accounts[0] else {
            panic!("29 is a template")
        };
        assert_eq!(t29.id, 29);
        assert_eq!(t29.gui, "D15600000000");
        assert_eq!(t29.fields, vec![(5, "A93FO3230Q".to_string())]);
        let MerchantAccount::Template(t31) = &qr.accounts[1] else {
            panic!("31 is a template")
        };
        assert_eq!(t31.gui, "D15600000001");
        assert_eq!(t31.field(3), Some("12345678"));
        assert_eq!(qr.mcc, "4111");
        assert_eq!(qr.currency, "156");
        assert_eq!(qr.amount.as_deref(), Some("23.72"));
        assert_eq!(qr.tip, Some(Tip::Prompt));
        assert_eq!(qr.country, "CN");
        assert_eq!(qr.merchant_name, "BEST TRANSPORT");
        assert_eq!(qr.merchant_city, "BEIJING");
        assert_eq!(qr.postal_code, None);
        let add = qr.additional.clone().unwrap();
        assert_eq!(add.store_label.as_deref(), Some("1234"));
        assert_eq!(add.customer_label.as_deref(), Some("***"));
        assert_eq!(add.terminal_label.as_deref(), Some("A6008667"));
        assert_eq!(add.consumer_data_request.as_deref(), Some("ME"));
        assert_eq!(add.bill_number, None);
        let lang = qr.language.clone().unwrap();
        assert_eq!(lang.language, "ZH");
        assert_eq!(lang.name, "最佳运输");
        assert_eq!(lang.city.as_deref(), Some("北京"));
        assert_eq!(qr.unreserved.len(), 1);
        assert_eq!(qr.unreserved[0].id, 91);
        assert_eq!(qr.unreserved[0].gui, "A011223344998877");
        assert_eq!(qr.unreserved[0].field(7), Some("12345678"));
        // The CRC covers the UTF-8 bytes (the Chinese characters are three bytes each)
        // up to and including "6304".
        let body = &EMVCO_EXAMPLE[..EMVCO_EXAMPLE.len() - 4];
        assert!(body.ends_with("6304"));
        assert_eq!(crc16(body.as_bytes()), 0xA13A);
    }

    #[test]
    fn emvco_example_reencodes_in_id_order_with_a_new_crc() {
        let qr = MerchantQr::decode(EMVCO_EXAMPLE).unwrap();
        let again = qr.encode().unwrap();
        // Same data objects, ascending IDs: 54 and 55 move before 58, 64 after 62.
        assert!(again.starts_with(
            "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678\
             52044111530315654052\u{33}.72550201"
        ));
        assert!(
            again.contains("6233030412340603***0708A60086670902ME64200002ZH0104最佳运输0202北京")
        );
        assert_eq!(MerchantQr::decode(&again).unwrap(), qr);
    }

    #[test]
    fn pix_example_field_by_field() {
        let qr = MerchantQr::decode(PIX_EXAMPLE).unwrap();
        assert_eq!(qr.initiation, None);
        let MerchantAccount::Template(t) = &qr.accounts[0] else {
            panic!("26 is a template")
        };
        assert_eq!(t.id, 26);
        assert_eq!(t.gui, "br.gov.bcb.pix");
        assert_eq!(t.field(1), Some("123e4567-e12b-12d1-a456-426655440000"));
        assert_eq!(qr.mcc, "0000");
        assert_eq!(qr.currency, "986");
        assert_eq!(qr.amount, None);
        assert_eq!(qr.country, "BR");
        assert_eq!(qr.merchant_name, "Fulano de Tal");
        assert_eq!(qr.merchant_city, "BRASILIA");
        assert_eq!(qr.reference(), Some("***"));
        // Already in ascending order: encoding gives back the same bytes and CRC.
        assert_eq!(qr.encode().unwrap(), PIX_EXAMPLE);
    }

    fn sample() -> MerchantQr {
        MerchantQr {
            initiation: Some(Initiation::Dynamic),
            accounts: vec![MerchantAccount::Template(Template {
                id: 26,
                gui: "A000000333010101".into(),
                fields: vec![(1, "KASSA0001".into())],
            })],
            mcc: "5812".into(),
            currency: "156".into(),
            amount: Some("88.00".into()),
            tip: None,
            country: "CN".into(),
            merchant_name: "GOLDEN DRAGON".into(),
            merchant_city: "SHANGHAI".into(),
            postal_code: Some("200000".into()),
            additional: Some(AdditionalData {
                reference_label: Some("K0000420001".into()),
                terminal_label: Some("KASSA001".into()),
                ..AdditionalData::default()
            }),
            language: Some(MerchantLanguage {
                language: "ZH".into(),
                name: "金龙酒家".into(),
                city: Some("上海".into()),
                rfu: vec![],
            }),
            rfu: vec![],
            unreserved: vec![],
        }
    }

    #[test]
    fn encode_counts_characters_not_bytes() {
        let code = sample().encode().unwrap();
        assert!(code.contains("64200002ZH0104金龙酒家0202上海"), "{code}");
        assert_eq!(MerchantQr::decode(&code).unwrap(), sample());
        assert_eq!(
            MerchantQr::decode(&code).unwrap().reference(),
            Some("K0000420001")
        );
    }

    fn err(payload: &str) -> QrError {
        MerchantQr::decode(payload).unwrap_err()
    }

    /// Rebuilds a payload with `edit` applied to the part before the CRC, and a fresh CRC.
    fn recrc(body: &str) -> String {
        let mut s = format!("{body}6304");
        let c = crc16(s.as_bytes());
        s.push_str(&format!("{c:04X}"));
        s
    }

    fn body_of(p: &str) -> &str {
        &p[..p.len() - 8]
    }

    #[test]
    fn wrong_crc_names_tag_63() {
        let bad = format!("{}6304A13B", body_of(EMVCO_EXAMPLE));
        let e = err(&bad);
        assert_eq!(e.tag, TagPath::top(63));
        assert_eq!(
            e.rule,
            QrRule::CrcMismatch {
                computed: 0xA13A,
                found: "A13B".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "QR tag 63: CRC A13B does not match the payload (A13A)"
        );
        // A changed character anywhere breaks it too.
        let changed = EMVCO_EXAMPLE.replace("23.72", "23.73");
        assert!(matches!(err(&changed).rule, QrRule::CrcMismatch { .. }));
        // Lower-case hex is the same CRC.
        assert!(MerchantQr::decode(&PIX_EXAMPLE.replace("1D3D", "1d3d")).is_ok());
    }

    #[test]
    fn length_past_the_end() {
        // "0520ABC" announces five characters and has them: fine.
        assert_eq!(
            parse_objects("000201590520ABC", None).unwrap()[1].value,
            "20ABC"
        );
        let e = parse_objects("0002015910ABC", None).unwrap_err();
        assert_eq!(
            e,
            QrError::new(
                TagPath::top(59),
                QrRule::Truncated {
                    declared: 10,
                    available: 3
                }
            )
        );
        // Inside a template the path names the template's field.
        let e = parse_objects("0509REF", Some(62)).unwrap_err();
        assert_eq!(e.tag, TagPath::sub(62, 5));
        // Characters, not bytes: four Chinese characters are 12 bytes but length 04.
        let objs = parse_objects("0104最佳运输0202北京", Some(64)).unwrap();
        assert_eq!(objs[0].value, "最佳运输");
        assert_eq!(objs[1].value, "北京");
        assert!(parse_objects("0105最佳运输", Some(64)).is_err());
    }

    #[test]
    fn duplicated_tag() {
        let body = body_of(PIX_EXAMPLE).replace("5802BR", "5802BR5802BR");
        let e = err(&recrc(&body));
        assert_eq!(e, QrError::new(TagPath::top(58), QrRule::Duplicate));
        assert_eq!(e.to_string(), "QR tag 58: appears more than once");
    }

    #[test]
    fn non_numeric_amount() {
        let body = body_of(PIX_EXAMPLE).replace("5802BR", "54041O.05802BR");
        let e = err(&recrc(&body));
        assert_eq!(e.tag, TagPath::top(54));
        assert!(matches!(e.rule, QrRule::Value(_)), "{e}");
        for bad in ["1.2.3", ".", "0.00", "12.345"] {
            let body = body_of(PIX_EXAMPLE).replace("5802BR", &format!("{}5802BR", obj(54, bad)));
            let e = err(&recrc(&body));
            assert_eq!(e.tag, TagPath::top(54), "{bad}");
        }
        // BRL has two decimals: "12.3" and "12." are amounts.
        for good in ["12.3", "12.", "0.01", "1000"] {
            let body = body_of(PIX_EXAMPLE).replace("5802BR", &format!("{}5802BR", obj(54, good)));
            assert!(MerchantQr::decode(&recrc(&body)).is_ok(), "{good}");
        }
    }

    #[test]
    fn missing_mandatory_tags() {
        for (tlv, id) in [
            ("52040000", 52),
            ("5303986", 53),
            ("5802BR", 58),
            ("5913Fulano de Tal", 59),
            ("6008BRASILIA", 60),
        ] {
            let body = body_of(PIX_EXAMPLE).replace(tlv, "");
            let e = err(&recrc(&body));
            assert_eq!(e, QrError::new(TagPath::top(id), QrRule::Missing), "{id}");
        }
        let no_account = body_of(PIX_EXAMPLE).replace(
            "26580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000",
            "",
        );
        assert_eq!(err(&recrc(&no_account)).tag, TagPath::top(26));
        let no_crc = body_of(PIX_EXAMPLE);
        assert_eq!(err(no_crc), QrError::new(TagPath::top(63), QrRule::Missing));
        // 00 must come first.
        let moved = recrc(&format!(
            "5802BR{}",
            body_of(PIX_EXAMPLE).replace("5802BR", "")
        ));
        assert_eq!(err(&moved), QrError::new(TagPath::top(0), QrRule::NotFirst));
        // A template without its GUI.
        let body = body_of(PIX_EXAMPLE).replace("26580014br.gov.bcb.pix0136", "26400136");
        assert_eq!(
            err(&recrc(&body)),
            QrError::new(TagPath::sub(26, 0), QrRule::Missing)
        );
        // The language template needs its name.
        let body = format!("{}64060002ZH", body_of(PIX_EXAMPLE));
        assert_eq!(
            err(&recrc(&body)),
            QrError::new(TagPath::sub(64, 1), QrRule::Missing)
        );
    }

    #[test]
    fn tip_rules() {
        let with =
            |extra: &str| recrc(&body_of(PIX_EXAMPLE).replace("5802BR", &format!("{extra}5802BR")));
        let qr = MerchantQr::decode(&with("550202560512.00")).unwrap();
        assert_eq!(qr.tip, Some(Tip::Fixed("12.00".into())));
        let qr = MerchantQr::decode(&with("55020357043.00")).unwrap();
        assert_eq!(qr.tip, Some(Tip::Percentage("3.00".into())));
        assert_eq!(
            err(&with("550202")),
            QrError::new(TagPath::top(56), QrRule::Missing)
        );
        assert_eq!(err(&with("560512.00")).tag, TagPath::top(56));
        assert_eq!(err(&with("5502035706100.00")).tag, TagPath::top(57));
        assert_eq!(err(&with("550204")).tag, TagPath::top(55));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [
            "",
            "0",
            "00",
            "0002",
            "XX0201",
            "0002016304",
            "00020163041D3",
            "hello world",
            "00020163",
            "\u{0}\u{1}\u{2}\u{3}\u{4}",
            "0099",
        ] {
            assert!(MerchantQr::decode(junk).is_err(), "{junk:?}");
        }
        // A CRC of four multi-byte characters is an error, not a slice across a character.
        assert!(matches!(
            MerchantQr::decode("0002016304中文中文").unwrap_err().rule,
            QrRule::CrcMismatch { .. }
        ));
        // Every prefix of a good payload, cut at any character boundary.
        for (i, _) in EMVCO_EXAMPLE.char_indices() {
            let _ = MerchantQr::decode(&EMVCO_EXAMPLE[..i]);
        }
    }

    #[test]
    fn encode_rejects_broken_fields() {
        let mut qr = sample();
        qr.merchant_name = "A NAME THAT IS MUCH TOO LONG FOR A QR".into();
        assert_eq!(
            qr.encode().unwrap_err(),
            QrError::new(TagPath::top(59), QrRule::TooLong { max: 25, len: 37 })
        );
        let mut qr = sample();
        qr.merchant_name = "金龙".into();
        assert_eq!(
            qr.encode().unwrap_err(),
            QrError::new(TagPath::top(59), QrRule::Charset)
        );
        let mut qr = sample();
        qr.mcc = "58A2".into();
        assert_eq!(
            qr.encode().unwrap_err(),
            QrError::new(TagPath::top(52), QrRule::Charset)
        );
        let mut qr = sample();
        qr.country = "China".into();
        assert_eq!(qr.encode().unwrap_err().tag, TagPath::top(58));
        let mut qr = sample();
        qr.currency = "392".into(); // JPY has no decimals
        assert_eq!(qr.encode().unwrap_err().tag, TagPath::top(54));
    }

    proptest::proptest! {
        #[test]
        fn any_valid_code_round_trips(
            name in "[A-Z][A-Z &.-]{0,24}",
            city in "[A-Z][A-Z ]{0,14}",
            alt in "[\\p{Han}\\p{Thai}a-z]{1,25}",
            minor in 1u64..10_000_000_000,
            reference in "[A-Z0-9]{1,25}",
        ) {
            let mut qr = sample();
            qr.merchant_name = name;
            qr.merchant_city = city;
            qr.amount = Some(amount_text(minor, 2));
            qr.additional.as_mut().unwrap().reference_label = Some(reference);
            qr.language.as_mut().unwrap().name = alt;
            let code = qr.encode().unwrap();
            proptest::prop_assert_eq!(MerchantQr::decode(&code).unwrap(), qr);
        }

        #[test]
        fn any_string_decodes_or_errs(s in "\\PC{0,200}") {
            let _ = MerchantQr::decode(&s);
        }
    }

    #[test]
    fn amounts_in_minor_units() {
        assert_eq!(amount_text(2372, 2), "23.72");
        assert_eq!(amount_text(5, 2), "0.05");
        assert_eq!(amount_text(500, 0), "500");
        assert_eq!(amount_text(1234, 3), "1.234");
        assert_eq!(amount_minor("23.72", 2), Some(2372));
        assert_eq!(amount_minor("23.7", 2), Some(2370));
        assert_eq!(amount_minor("23", 2), Some(2300));
        assert_eq!(amount_minor("23.", 2), Some(2300));
        assert_eq!(amount_minor("23.723", 2), None);
        assert_eq!(amount_minor("2x", 2), None);
        assert_eq!(amount_minor("", 2), None);
    }
}
