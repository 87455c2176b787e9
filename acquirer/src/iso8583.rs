//! ISO 8583:1987 messages: MTI, bitmaps and fields, encoded by a [`Dialect`] table.
//!
//! A [`Message`] holds field values in their logical form: digits as ASCII for `n` and `z`
//! fields, text for `an`/`ans`, raw bytes for `b`. The dialect decides how each is put on the
//! wire (ASCII or packed BCD numerics, binary or hex bitmap, length prefixes).

use std::collections::BTreeMap;
use std::fmt;

/// How numeric digits (values of `n`/`z` fields, length prefixes, the MTI) travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumEncoding {
    /// One ASCII character per digit.
    Ascii,
    /// Packed BCD, two digits per byte.
    Bcd,
}

/// How the bitmaps travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitmapEncoding {
    /// 8 raw bytes per bitmap.
    Binary,
    /// 16 upper-case hex characters per bitmap.
    AsciiHex,
}

/// Data kind of a field (ISO 8583:1987 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Numeric digits.
    N,
    /// Alphanumeric (letters, digits, space).
    An,
    /// Alphanumeric and special characters (printable ASCII).
    Ans,
    /// Binary; lengths count bytes.
    B,
    /// Track 2 code set: digits and the separator `=` (or `D`).
    Z,
}

/// Length form of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Len {
    /// Exactly this many digits/characters/bytes.
    Fixed(usize),
    /// Up to this many, with a two-digit length prefix.
    LlVar(usize),
    /// Up to this many, with a three-digit length prefix.
    LllVar(usize),
}

impl Len {
    /// The longest value allowed.
    pub fn max(self) -> usize {
        match self {
            Len::Fixed(n) | Len::LlVar(n) | Len::LllVar(n) => n,
        }
    }
}

/// One field's definition in a dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// Data kind.
    pub kind: Kind,
    /// Length form.
    pub len: Len,
    /// Name, for decoders and errors.
    pub name: &'static str,
    /// Card data that must never be shown (PAN, track data, PIN block, expiry).
    pub sensitive: bool,
}

/// A dialect: the encodings and the table of field definitions (index = field number).
#[derive(Debug)]
pub struct Dialect {
    /// Name used in configuration (`bcd87`, `ascii87`).
    pub name: &'static str,
    /// Encoding of the MTI, numeric values and length prefixes.
    pub numeric: NumEncoding,
    /// Encoding of the bitmaps.
    pub bitmap: BitmapEncoding,
    /// Field definitions for fields 2-128 (index 0 and 1 unused).
    pub fields: [Option<FieldSpec>; 129],
}

/// What went wrong encoding or decoding a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecErrorKind {
    /// The message ended early.
    #[error("message truncated")]
    Truncated,
    /// The dialect does not define a field the bitmap names.
    #[error("field not defined in dialect")]
    UnknownField,
    /// A length prefix or value beyond the field's maximum.
    #[error("length {len} exceeds maximum {max}")]
    TooLong {
        /// The length found.
        len: usize,
        /// The dialect's maximum.
        max: usize,
    },
    /// A fixed-length value of the wrong length.
    #[error("length {len} but the field is fixed at {expected}")]
    WrongLength {
        /// The length found.
        len: usize,
        /// The fixed length.
        expected: usize,
    },
    /// A character not allowed by the field's kind.
    #[error("character not allowed in a {0:?} field")]
    BadCharacter(Kind),
    /// A BCD nibble above 9 in a numeric value or length.
    #[error("invalid BCD digit")]
    BadBcd,
    /// Bytes left after the last field.
    #[error("{0} bytes after the last field")]
    TrailingBytes(usize),
    /// An MTI that is not four digits.
    #[error("invalid MTI")]
    BadMti,
}

/// A codec error naming the field (when there is one) and the byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CodecError {
    /// The field being processed, if any.
    pub field: Option<u8>,
    /// Byte offset in the message.
    pub offset: usize,
    /// What was wrong.
    pub kind: CodecErrorKind,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(n) => write!(
                f,
                "ISO 8583 field {n} at byte {}: {}",
                self.offset, self.kind
            ),
            None => write!(f, "ISO 8583 at byte {}: {}", self.offset, self.kind),
        }
    }
}

/// An ISO 8583 message: MTI and fields 2-128.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Message type indicator, four digits (`0100`).
    pub mti: u16,
    fields: BTreeMap<u8, Vec<u8>>,
}

impl Message {
    /// An empty message of type `mti` (e.g. `0x0100` is written `100` in decimal: pass
    /// `100`).
    pub fn new(mti: u16) -> Self {
        Message {
            mti,
            fields: BTreeMap::new(),
        }
    }

    /// Sets field `n` (2-128) to a logical value.
    pub fn set(&mut self, n: u8, value: impl Into<Vec<u8>>) -> &mut Self {
        self.fields.insert(n, value.into());
        self
    }

    /// Sets field `n` to text.
    pub fn set_str(&mut self, n: u8, value: &str) -> &mut Self {
        self.set(n, value.as_bytes().to_vec())
    }

    /// Removes field `n` (its bytes are overwritten first).
    pub fn remove(&mut self, n: u8) -> &mut Self {
        if let Some(mut v) = self.fields.remove(&n) {
            zeroize::Zeroize::zeroize(&mut v);
        }
        self
    }

    /// Field `n`'s value.
    pub fn get(&self, n: u8) -> Option<&[u8]> {
        self.fields.get(&n).map(Vec::as_slice)
    }

    /// Field `n` as text (lossy).
    pub fn get_str(&self, n: u8) -> Option<String> {
        self.get(n).map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Field numbers present, ascending.
    pub fn field_numbers(&self) -> impl Iterator<Item = u8> + '_ {
        self.fields.keys().copied()
    }

    /// The MTI as four digits.
    pub fn mti_str(&self) -> String {
        format!("{:04}", self.mti)
    }

    /// Encodes with `dialect`.
    pub fn encode(&self, dialect: &Dialect) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(256);
        let err = |field, offset, kind| CodecError {
            field,
            offset,
            kind,
        };
        if self.mti > 9999 {
            return Err(err(None, 0, CodecErrorKind::BadMti));
        }
        put_digits(&mut out, &self.mti_str(), dialect.numeric, false);
        let secondary = self.fields.keys().any(|&n| n > 64);
        let mut bitmap = [0u8; 16];
        if secondary {
            bitmap[0] |= 0x80;
        }
        for &n in self.fields.keys() {
            if !(2..=128).contains(&n) {
                return Err(err(Some(n), out.len(), CodecErrorKind::UnknownField));
            }
            let i = (n - 1) as usize;
            bitmap[i / 8] |= 0x80 >> (i % 8);
        }
        let bm = if secondary { &bitmap[..] } else { &bitmap[..8] };
        match dialect.bitmap {
            BitmapEncoding::Binary => out.extend_from_slice(bm),
            BitmapEncoding::AsciiHex => {
                for b in bm {
                    out.extend_from_slice(format!("{b:02X}").as_bytes());
                }
            }
        }
        for (&n, value) in &self.fields {
            let spec = dialect.fields[n as usize]
                .ok_or_else(|| err(Some(n), out.len(), CodecErrorKind::UnknownField))?;
            encode_field(&mut out, spec, value, dialect.numeric)
                .map_err(|kind| err(Some(n), out.len(), kind))?;
        }
        Ok(out)
    }

    /// Decodes a whole message with `dialect`; every byte must belong to a field.
    pub fn decode(buf: &[u8], dialect: &Dialect) -> Result<Message, CodecError> {
        let mut r = Reader { buf, pos: 0 };
        let err = |field, offset, kind| CodecError {
            field,
            offset,
            kind,
        };
        let mti_digits = r
            .digits(4, dialect.numeric, false)
            .map_err(|k| err(None, 0, k))?;
        let mti: u16 = mti_digits
            .parse()
            .map_err(|_| err(None, 0, CodecErrorKind::BadMti))?;
        let mut bitmap = [0u8; 16];
        let read_bitmap = |r: &mut Reader<'_>, out: &mut [u8]| -> Result<(), CodecError> {
            let at = r.pos;
            match dialect.bitmap {
                BitmapEncoding::Binary => {
                    out.copy_from_slice(r.take(8).map_err(|k| err(None, at, k))?);
                }
                BitmapEncoding::AsciiHex => {
                    let hex = r.take(16).map_err(|k| err(None, at, k))?;
                    for (i, pair) in hex.chunks(2).enumerate() {
                        let s = std::str::from_utf8(pair)
                            .ok()
                            .filter(|s| s.bytes().all(|c| c.is_ascii_hexdigit()))
                            .ok_or_else(|| {
                                err(None, at + 2 * i, CodecErrorKind::BadCharacter(Kind::B))
                            })?;
                        out[i] = u8::from_str_radix(s, 16).expect("checked hex");
                    }
                }
            }
            Ok(())
        };
        read_bitmap(&mut r, &mut bitmap[..8])?;
        if bitmap[0] & 0x80 != 0 {
            read_bitmap(&mut r, &mut bitmap[8..])?;
        }
        let mut msg = Message::new(mti);
        for n in 2..=128u8 {
            let i = (n - 1) as usize;
            if bitmap[i / 8] & (0x80 >> (i % 8)) == 0 {
                continue;
            }
            // Field 65 in the secondary bitmap would be a tertiary bitmap: not supported.
            let at = r.pos;
            let spec = dialect.fields[n as usize]
                .ok_or_else(|| err(Some(n), at, CodecErrorKind::UnknownField))?;
            let value =
                decode_field(&mut r, spec, dialect.numeric).map_err(|k| err(Some(n), at, k))?;
            msg.fields.insert(n, value);
        }
        if r.pos != buf.len() {
            return Err(err(
                None,
                r.pos,
                CodecErrorKind::TrailingBytes(buf.len() - r.pos),
            ));
        }
        Ok(msg)
    }
}

impl fmt::Debug for Message {
    /// Shows every field, with card data (PAN, track data, PIN block, expiry, ICC data)
    /// replaced by its length, or by the masked PAN for field 2.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Message");
        s.field("mti", &format_args!("{:04}", self.mti));
        for (n, v) in &self.fields {
            let name = format!("f{n}");
            let hidden = matches!(n, 2 | 14 | 35 | 36 | 45 | 52 | 55);
            if *n == 2 {
                let pan = String::from_utf8_lossy(v);
                s.field(&name, &mask(&pan));
            } else if hidden {
                s.field(&name, &format_args!("<{} bytes hidden>", v.len()));
            } else if v.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
                s.field(&name, &String::from_utf8_lossy(v));
            } else {
                s.field(&name, &format_args!("<{} bytes>", v.len()));
            }
        }
        s.finish()
    }
}

/// First six and last four digits, `*` between (fully masked when 10 digits or fewer).
pub fn mask(pan: &str) -> String {
    if pan.len() <= 10 {
        return "*".repeat(pan.len());
    }
    format!(
        "{}{}{}",
        &pan[..6],
        "*".repeat(pan.len() - 10),
        &pan[pan.len() - 4..]
    )
}

fn check_chars(kind: Kind, value: &[u8]) -> Result<(), CodecErrorKind> {
    let ok = match kind {
        Kind::N => value.iter().all(u8::is_ascii_digit),
        Kind::Z => value
            .iter()
            .all(|c| c.is_ascii_digit() || *c == b'=' || *c == b'D'),
        Kind::An => value
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b' '),
        Kind::Ans => value.iter().all(|c| (0x20..0x7F).contains(c)),
        Kind::B => true,
    };
    if ok {
        Ok(())
    } else {
        Err(CodecErrorKind::BadCharacter(kind))
    }
}

fn put_digits(out: &mut Vec<u8>, digits: &str, enc: NumEncoding, left_aligned: bool) {
    match enc {
        NumEncoding::Ascii => out.extend_from_slice(digits.as_bytes()),
        NumEncoding::Bcd => {
            let mut nibbles: Vec<u8> = digits
                .bytes()
                .map(|c| match c {
                    b'0'..=b'9' => c - b'0',
                    b'=' | b'D' => 0xD,
                    _ => 0xF,
                })
                .collect();
            if nibbles.len() % 2 == 1 {
                if left_aligned {
                    // Variable-length values are left-aligned; track 2 pads with F, digits with 0.
                    let pad = if digits.contains(['=', 'D']) {
                        0xF
                    } else {
                        0x0
                    };
                    nibbles.push(pad);
                } else {
                    nibbles.insert(0, 0);
                }
            }
            out.extend(nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]));
        }
    }
}

fn encode_field(
    out: &mut Vec<u8>,
    spec: FieldSpec,
    value: &[u8],
    enc: NumEncoding,
) -> Result<(), CodecErrorKind> {
    check_chars(spec.kind, value)?;
    let len = value.len();
    let max = spec.len.max();
    if len > max {
        return Err(CodecErrorKind::TooLong { len, max });
    }
    let prefix_digits = match spec.len {
        Len::Fixed(n) => {
            if len != n {
                return Err(CodecErrorKind::WrongLength { len, expected: n });
            }
            0
        }
        Len::LlVar(_) => 2,
        Len::LllVar(_) => 3,
    };
    if prefix_digits > 0 {
        put_digits(
            out,
            &format!("{len:0width$}", width = prefix_digits),
            enc,
            false,
        );
    }
    match spec.kind {
        Kind::N | Kind::Z => {
            let s = std::str::from_utf8(value).expect("checked ASCII");
            put_digits(out, s, enc, prefix_digits > 0);
        }
        Kind::An | Kind::Ans | Kind::B => out.extend_from_slice(value),
    }
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecErrorKind> {
        let s = self
            .buf
            .get(self.pos..self.pos + n)
            .ok_or(CodecErrorKind::Truncated)?;
        self.pos += n;
        Ok(s)
    }

    /// Reads `count` digits (characters of a `z` value included).
    fn digits(
        &mut self,
        count: usize,
        enc: NumEncoding,
        left_aligned: bool,
    ) -> Result<String, CodecErrorKind> {
        match enc {
            NumEncoding::Ascii => {
                let b = self.take(count)?;
                Ok(String::from_utf8_lossy(b).into_owned())
            }
            NumEncoding::Bcd => {
                let b = self.take(count.div_ceil(2))?;
                let mut nibbles: Vec<u8> = b.iter().flat_map(|x| [x >> 4, x & 0xF]).collect();
                if count % 2 == 1 {
                    if left_aligned {
                        nibbles.pop();
                    } else {
                        nibbles.remove(0);
                    }
                }
                nibbles
                    .into_iter()
                    .map(|n| match n {
                        0..=9 => Ok((b'0' + n) as char),
                        0xD => Ok('='),
                        _ => Err(CodecErrorKind::BadBcd),
                    })
                    .collect()
            }
        }
    }
}

fn decode_field(
    r: &mut Reader<'_>,
    spec: FieldSpec,
    enc: NumEncoding,
) -> Result<Vec<u8>, CodecErrorKind> {
    let max = spec.len.max();
    let (len, variable) = match spec.len {
        Len::Fixed(n) => (n, false),
        Len::LlVar(_) | Len::LllVar(_) => {
            let width = if matches!(spec.len, Len::LlVar(_)) {
                2
            } else {
                3
            };
            let d = r.digits(width, enc, false)?;
            let len: usize = d.parse().map_err(|_| CodecErrorKind::BadBcd)?;
            if len > max {
                return Err(CodecErrorKind::TooLong { len, max });
            }
            (len, true)
        }
    };
    let value = match spec.kind {
        Kind::N | Kind::Z => r.digits(len, enc, variable)?.into_bytes(),
        Kind::An | Kind::Ans | Kind::B => r.take(len)?.to_vec(),
    };
    if spec.kind == Kind::N && !value.iter().all(u8::is_ascii_digit) {
        return Err(CodecErrorKind::BadCharacter(Kind::N));
    }
    check_chars(spec.kind, &value)?;
    Ok(value)
}

const fn f(kind: Kind, len: Len, name: &'static str) -> Option<FieldSpec> {
    Some(FieldSpec {
        kind,
        len,
        name,
        sensitive: false,
    })
}

const fn secret(kind: Kind, len: Len, name: &'static str) -> Option<FieldSpec> {
    Some(FieldSpec {
        kind,
        len,
        name,
        sensitive: true,
    })
}

/// The ISO 8583:1987 data elements, shared by both dialects (field 55 as in ISO 8583:1993 and
/// the EMV ICC data convention).
const fn fields_1987() -> [Option<FieldSpec>; 129] {
    use Kind::*;
    use Len::*;
    let mut t: [Option<FieldSpec>; 129] = [None; 129];
    t[2] = secret(N, LlVar(19), "Primary account number");
    t[3] = f(N, Fixed(6), "Processing code");
    t[4] = f(N, Fixed(12), "Amount, transaction");
    t[5] = f(N, Fixed(12), "Amount, settlement");
    t[6] = f(N, Fixed(12), "Amount, cardholder billing");
    t[7] = f(N, Fixed(10), "Transmission date and time");
    t[11] = f(N, Fixed(6), "System trace audit number");
    t[12] = f(N, Fixed(6), "Time, local transaction");
    t[13] = f(N, Fixed(4), "Date, local transaction");
    t[14] = secret(N, Fixed(4), "Date, expiration");
    t[15] = f(N, Fixed(4), "Date, settlement");
    t[18] = f(N, Fixed(4), "Merchant type");
    t[19] = f(N, Fixed(3), "Acquiring institution country code");
    t[22] = f(N, Fixed(3), "Point of service entry mode");
    t[23] = f(N, Fixed(3), "Card sequence number");
    t[24] = f(N, Fixed(3), "Network international identifier");
    t[25] = f(N, Fixed(2), "Point of service condition code");
    t[32] = f(N, LlVar(11), "Acquiring institution identification code");
    t[35] = secret(Z, LlVar(37), "Track 2 data");
    t[37] = f(An, Fixed(12), "Retrieval reference number");
    t[38] = f(An, Fixed(6), "Authorization identification response");
    t[39] = f(An, Fixed(2), "Response code");
    t[41] = f(Ans, Fixed(8), "Card acceptor terminal identification");
    t[42] = f(Ans, Fixed(15), "Card acceptor identification code");
    t[43] = f(Ans, Fixed(40), "Card acceptor name/location");
    t[44] = f(Ans, LlVar(25), "Additional response data");
    t[45] = secret(Ans, LlVar(76), "Track 1 data");
    t[48] = f(Ans, LllVar(999), "Additional data - private");
    t[49] = f(N, Fixed(3), "Currency code, transaction");
    // 52 and 53 as ISO 8583:1993 has them (LLVAR), so one table carries both online PIN
    // schemes: an 8-byte format 0 block with a 10-byte TDES DUKPT KSN, or a 16-byte format 4
    // block with a 12-byte AES DUKPT KSN (acquirer::pin::EncipheredPin).
    t[52] = secret(B, LlVar(16), "Personal identification number data");
    t[53] = f(B, LlVar(48), "Security related control information");
    t[54] = f(Ans, LllVar(120), "Additional amounts");
    t[55] = f(B, LllVar(255), "ICC data");
    t[60] = f(Ans, LllVar(999), "Reserved national");
    t[62] = f(Ans, LllVar(999), "Reserved private");
    t[63] = f(Ans, LllVar(999), "Reserved private");
    t[64] = f(B, Fixed(8), "Message authentication code");
    t[70] = f(N, Fixed(3), "Network management information code");
    t[74] = f(N, Fixed(10), "Credits, number");
    t[75] = f(N, Fixed(10), "Credits, reversal number");
    t[76] = f(N, Fixed(10), "Debits, number");
    t[77] = f(N, Fixed(10), "Debits, reversal number");
    t[86] = f(N, Fixed(16), "Credits, amount");
    t[87] = f(N, Fixed(16), "Credits, reversal amount");
    t[88] = f(N, Fixed(16), "Debits, amount");
    t[89] = f(N, Fixed(16), "Debits, reversal amount");
    t[90] = f(N, Fixed(42), "Original data elements");
    t[95] = f(Ans, Fixed(42), "Replacement amounts");
    t[97] = f(Ans, Fixed(17), "Amount, net settlement");
    t[128] = f(B, Fixed(8), "Message authentication code");
    t
}

/// Packed-BCD numerics and lengths, binary bitmap: the form many Asian acquirers use.
/// Variable-length numerics are left-aligned (padded with `0`, track 2 with `F`); fixed ones
/// right-aligned (padded with a leading `0`).
pub static BCD87: Dialect = Dialect {
    name: "bcd87",
    numeric: NumEncoding::Bcd,
    bitmap: BitmapEncoding::Binary,
    fields: fields_1987(),
};

/// ASCII numerics and lengths, hex-ASCII bitmap; binary fields travel as raw bytes.
pub static ASCII87: Dialect = Dialect {
    name: "ascii87",
    numeric: NumEncoding::Ascii,
    bitmap: BitmapEncoding::AsciiHex,
    fields: fields_1987(),
};

/// The dialect called `name`.
pub fn dialect(name: &str) -> Option<&'static Dialect> {
    match name {
        "bcd87" => Some(&BCD87),
        "ascii87" => Some(&ASCII87),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn sample() -> Message {
        let mut m = Message::new(100);
        m.set_str(2, "4761739001010119")
            .set_str(3, "000000")
            .set_str(4, "000000001234")
            .set_str(11, "000042")
            .set_str(35, "4761739001010119=30122011234567899")
            .set_str(41, "KASSA001")
            .set(55, h("9F2608 1122334455667788"));
        m
    }

    #[test]
    fn bcd87_exact_bytes() {
        let m = sample();
        let bytes = m.encode(&BCD87).unwrap();
        let expected = h(concat!(
            "0100",                                  // MTI
            "7020 0000 2080 0200",                   // bitmap: 2 3 4 11 35 41 55
            "16 4761739001010119",                   // field 2: LL=16, BCD
            "000000",                                // field 3
            "000000001234",                          // field 4
            "000042",                                // field 11
            "34 4761739001010119D30122011234567899", // field 35: 34 chars, D separator
            "4B41535341303031",                      // field 41 "KASSA001"
            "0011 9F26081122334455667788",           // field 55: LLL=011
        ));
        assert_eq!(hex::encode_upper(&bytes), hex::encode_upper(&expected));
        assert_eq!(Message::decode(&bytes, &BCD87).unwrap(), m);
    }

    #[test]
    fn ascii87_exact_bytes() {
        let mut m = Message::new(110);
        m.set_str(11, "000042").set_str(39, "00").set_str(70, "301");
        let bytes = m.encode(&ASCII87).unwrap();
        let expected = "0110\
             80200000020000000400000000000000\
             000042\
             00\
             301";
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        assert_eq!(Message::decode(&bytes, &ASCII87).unwrap(), m);
    }

    #[test]
    fn bcd87_secondary_bitmap_exact_bytes() {
        let mut m = Message::new(400);
        m.set_str(11, "000042")
            .set_str(41, "KASSA001")
            .set_str(90, "010000004211291200000000000000000000000000");
        let bytes = m.encode(&BCD87).unwrap();
        let expected = h(concat!(
            "0400",
            "8020000000800000", // primary: secondary bitmap, 11, 41
            "0000004000000000", // secondary: 90
            "000042",
            "4B41535341303031",
            "010000004211291200000000000000000000000000", // field 90, 21 bytes BCD
        ));
        assert_eq!(hex::encode_upper(&bytes), hex::encode_upper(&expected));
        assert_eq!(Message::decode(&bytes, &BCD87).unwrap(), m);
        // The same message in ascii87: hex bitmaps and ASCII digits.
        let ascii = m.encode(&ASCII87).unwrap();
        assert_eq!(
            String::from_utf8(ascii.clone()).unwrap(),
            "040080200000008000000000004000000000000042KASSA001010000004211291200000000000000000000000000"
        );
        assert_eq!(Message::decode(&ascii, &ASCII87).unwrap(), m);
    }

    #[test]
    fn odd_track2_pads_with_f_and_odd_pan_with_zero() {
        let mut m = Message::new(100);
        m.set_str(2, "476173900101011")
            .set_str(35, "476173900101011=3012201");
        let bytes = m.encode(&BCD87).unwrap();
        assert_eq!(&bytes[10..19], &h("15 4761739001010110")[..]);
        assert_eq!(&bytes[19..], &h("23 476173900101011D3012201F")[..]);
        assert_eq!(Message::decode(&bytes, &BCD87).unwrap(), m);
    }

    #[test]
    fn decode_errors_name_field_and_offset() {
        let bytes = sample().encode(&BCD87).unwrap();
        let e = Message::decode(&bytes[..bytes.len() - 3], &BCD87).unwrap_err();
        assert_eq!(
            (e.field, e.kind.clone()),
            (Some(55), CodecErrorKind::Truncated)
        );
        assert_eq!(
            e.to_string(),
            format!("ISO 8583 field 55 at byte {}: message truncated", e.offset)
        );
        // A bitmap naming field 8, which the dialect leaves undefined.
        let e = Message::decode(&h("0100 0100000000000000 00"), &BCD87).unwrap_err();
        assert_eq!((e.field, e.kind), (Some(8), CodecErrorKind::UnknownField));
        // LL beyond the maximum of 19.
        let e = Message::decode(&h("0100 4000000000000000 21 47617390010101190000"), &BCD87)
            .unwrap_err();
        assert_eq!(e.kind, CodecErrorKind::TooLong { len: 21, max: 19 });
        // A nibble A in a numeric field.
        let e = Message::decode(&h("0100 2000000000000000 00000A"), &BCD87).unwrap_err();
        assert_eq!((e.field, e.kind), (Some(3), CodecErrorKind::BadBcd));
        // Trailing garbage.
        let e = Message::decode(&h("0100 0000000000000000 FF"), &BCD87).unwrap_err();
        assert_eq!(e.kind, CodecErrorKind::TrailingBytes(1));
        // Letters in an ASCII numeric field.
        let e = Message::decode(b"01002000000000000000ABCDEF", &ASCII87).unwrap_err();
        assert_eq!(
            (e.field, e.kind),
            (Some(3), CodecErrorKind::BadCharacter(Kind::N))
        );
    }

    #[test]
    fn encode_refuses_bad_values() {
        let mut m = Message::new(100);
        m.set_str(3, "12345");
        assert_eq!(
            m.encode(&BCD87).unwrap_err().kind,
            CodecErrorKind::WrongLength {
                len: 5,
                expected: 6
            }
        );
        let mut m = Message::new(100);
        m.set_str(4, "00000000123X");
        assert_eq!(
            m.encode(&BCD87).unwrap_err().kind,
            CodecErrorKind::BadCharacter(Kind::N)
        );
        let mut m = Message::new(100);
        m.set(55, vec![0u8; 256]);
        assert_eq!(
            m.encode(&BCD87).unwrap_err().kind,
            CodecErrorKind::TooLong { len: 256, max: 255 }
        );
    }

    #[test]
    fn debug_masks_card_data() {
        let s = format!("{:?}", sample());
        assert!(s.contains("476173******0119"), "{s}");
        assert!(!s.contains("4761739001010119"), "{s}");
        assert!(s.contains("f35: <34 bytes hidden>"), "{s}");
    }
}
