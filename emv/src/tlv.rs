//! BER-TLV as profiled by EMV Book 3 Annex B (ISO/IEC 8825-1 subset).
//!
//! Two views of the same bytes:
//! - [`Tlv`] and [`Iter`]: a checked, zero-copy view over a borrowed buffer (the smoltcp
//!   "packet" style). Nothing is copied; every malformation is a [`TlvError`] naming the byte
//!   offset where it was found.
//! - [`TagStore`]: the owned data objects of one transaction, keyed by [`Tag`]. Its `Debug`
//!   output never shows sensitive values (PAN, track data, names, expiry).
//!
//! Encoding ([`encode`], [`encode_length`]) is the exact inverse of decoding: the shortest length
//! form is always used (Book 3 Annex B2).

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroize;

/// Deepest nesting of constructed objects that [`walk`] and [`TagStore::absorb`] accept.
pub const MAX_DEPTH: usize = 8;

/// A BER-TLV tag of one to three bytes, stored as the big-endian value of its bytes
/// (`Tag(0x9F02)` is the two bytes `9F 02`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(u32);

impl Tag {
    /// A tag from the big-endian value of its bytes. The value is not checked; use
    /// [`Tag::parse`] for bytes that come from outside.
    pub const fn new(raw: u32) -> Self {
        Tag(raw)
    }

    /// The big-endian value of the tag's bytes.
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// Number of bytes the tag occupies.
    pub const fn len(self) -> usize {
        if self.0 > 0xFFFF {
            3
        } else if self.0 > 0xFF {
            2
        } else {
            1
        }
    }

    /// Always false: a tag has at least one byte. Present for clippy's `len_without_is_empty`.
    pub const fn is_empty(self) -> bool {
        false
    }

    /// The first byte of the tag (the one carrying class and the constructed bit).
    pub const fn first_byte(self) -> u8 {
        (self.0 >> (8 * (self.len() - 1))) as u8
    }

    /// True for constructed data objects (bit 6 of the first byte, Book 3 Annex B1).
    pub const fn is_constructed(self) -> bool {
        self.first_byte() & 0x20 != 0
    }

    /// Appends the tag's bytes to `out`.
    pub fn write(self, out: &mut Vec<u8>) {
        for i in (0..self.len()).rev() {
            out.push((self.0 >> (8 * i)) as u8);
        }
    }

    /// Parses a tag at the start of `buf`, returning it and the number of bytes it used.
    ///
    /// Book 3 Annex B1: if bits 5-1 of the first byte are all ones, subsequent bytes follow;
    /// bit 8 of each subsequent byte says whether another one follows. EMV uses at most
    /// three bytes.
    pub fn parse(buf: &[u8]) -> Result<(Tag, usize), TlvErrorKind> {
        let first = *buf.first().ok_or(TlvErrorKind::TruncatedTag)?;
        if first & 0x1F != 0x1F {
            return Ok((Tag(first as u32), 1));
        }
        let mut raw = first as u32;
        for (i, &b) in buf.iter().enumerate().skip(1) {
            if i >= 3 {
                return Err(TlvErrorKind::TagTooLong);
            }
            raw = (raw << 8) | b as u32;
            if b & 0x80 == 0 {
                return Ok((Tag(raw), i + 1));
            }
        }
        if buf.len() >= 3 {
            Err(TlvErrorKind::TagTooLong)
        } else {
            Err(TlvErrorKind::TruncatedTag)
        }
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.len() {
            1 => write!(f, "{:02X}", self.0),
            2 => write!(f, "{:04X}", self.0),
            _ => write!(f, "{:06X}", self.0),
        }
    }
}

/// What was wrong with a BER-TLV buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TlvErrorKind {
    /// The buffer ended inside a tag.
    #[error("truncated tag")]
    TruncatedTag,
    /// A tag longer than the three bytes EMV allows.
    #[error("tag longer than 3 bytes")]
    TagTooLong,
    /// The buffer ended inside a length field.
    #[error("truncated length")]
    TruncatedLength,
    /// `80`: the indefinite form, which EMV does not allow.
    #[error("indefinite length (80) is not allowed in EMV")]
    IndefiniteLength,
    /// A first length byte that is not BER for EMV (for example the `A1` or `C1` some reader
    /// vendors emit, or `84` and above).
    #[error("invalid length byte {0:02X}")]
    InvalidLengthByte(u8),
    /// A long-form length that is not the shortest encoding (for example `81 05`).
    #[error("length {0} is not in its shortest form")]
    NonMinimalLength(usize),
    /// The value runs past the end of the enclosing buffer.
    #[error("value of {needed} bytes but only {available} remain")]
    ValueOverrun {
        /// Bytes the length field announced.
        needed: usize,
        /// Bytes left in the buffer.
        available: usize,
    },
    /// Constructed objects nested deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A template that must be constructed was primitive, or the reverse.
    #[error("unexpected tag {0}")]
    UnexpectedTag(Tag),
    /// A length that is well formed but larger than the context allows (a DOL entry asking
    /// for more than a command can carry).
    #[error("length {len} exceeds the maximum of {max}")]
    LengthTooLarge {
        /// The length found.
        len: usize,
        /// The maximum.
        max: usize,
    },
}

/// A BER-TLV error and the byte offset (from the start of the outermost buffer) where it was
/// found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("TLV error at byte {offset}: {kind}")]
pub struct TlvError {
    /// What was wrong.
    pub kind: TlvErrorKind,
    /// Offset of the offending byte from the start of the outermost buffer.
    pub offset: usize,
}

/// Parses a BER length at the start of `buf`: the value and the bytes used.
///
/// Book 3 Annex B2: short form `00`-`7F`; long form `81 xx`, `82 xx xx`, and (for this
/// implementation) `83 xx xx xx`. Non-minimal long forms are refused so that encoding stays the
/// exact inverse of decoding.
pub fn parse_length(buf: &[u8]) -> Result<(usize, usize), TlvErrorKind> {
    let first = *buf.first().ok_or(TlvErrorKind::TruncatedLength)?;
    match first {
        0x00..=0x7F => Ok((first as usize, 1)),
        0x80 => Err(TlvErrorKind::IndefiniteLength),
        0x81..=0x83 => {
            let n = (first & 0x7F) as usize;
            let bytes = buf.get(1..1 + n).ok_or(TlvErrorKind::TruncatedLength)?;
            let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
            if length_size(len) != 1 + n {
                return Err(TlvErrorKind::NonMinimalLength(len));
            }
            Ok((len, 1 + n))
        }
        other => Err(TlvErrorKind::InvalidLengthByte(other)),
    }
}

/// Number of bytes [`encode_length`] uses for `len`.
pub const fn length_size(len: usize) -> usize {
    if len < 0x80 {
        1
    } else if len <= 0xFF {
        2
    } else if len <= 0xFFFF {
        3
    } else {
        4
    }
}

/// Appends the shortest BER encoding of `len` (at most `83 xx xx xx`).
///
/// # Panics
/// Never for lengths below 16 MiB; longer values cannot be encoded in EMV and are clamped by
/// callers (APDU data is at most 255 bytes).
pub fn encode_length(len: usize, out: &mut Vec<u8>) {
    match length_size(len) {
        1 => out.push(len as u8),
        2 => out.extend_from_slice(&[0x81, len as u8]),
        3 => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
        _ => {
            debug_assert!(len <= 0xFF_FFFF, "TLV length beyond 83 form");
            out.extend_from_slice(&[0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8])
        }
    }
}

/// Appends one data object (tag, length, value) to `out`.
pub fn encode(tag: Tag, value: &[u8], out: &mut Vec<u8>) {
    tag.write(out);
    encode_length(value.len(), out);
    out.extend_from_slice(value);
}

/// Appends a constructed data object whose value is written by `body`.
pub fn encode_constructed(tag: Tag, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    encode(tag, &inner, out);
}

/// One data object inside a buffer: its tag, its value and where it sits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    tag: Tag,
    value: &'a [u8],
    offset: usize,
    header_len: usize,
}

impl<'a> Tlv<'a> {
    /// The tag.
    pub fn tag(&self) -> Tag {
        self.tag
    }

    /// The value bytes.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// Offset of the tag's first byte in the outermost buffer.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Offset of the first value byte in the outermost buffer.
    pub fn value_offset(&self) -> usize {
        self.offset + self.header_len
    }

    /// Total encoded size: tag, length and value.
    pub fn encoded_len(&self) -> usize {
        self.header_len + self.value.len()
    }

    /// True if the tag says the value holds further data objects.
    pub fn is_constructed(&self) -> bool {
        self.tag.is_constructed()
    }

    /// The data objects inside a constructed object (empty for a primitive one).
    pub fn children(&self) -> Iter<'a> {
        if self.is_constructed() {
            Iter::with_base(self.value, self.value_offset())
        } else {
            Iter::with_base(&[], self.value_offset())
        }
    }
}

impl fmt::Debug for Tlv<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tlv")
            .field("tag", &self.tag)
            .field("len", &self.value.len())
            .field("offset", &self.offset)
            .finish()
    }
}

/// Iterator over the data objects at one level of a buffer.
///
/// `00` and `FF` bytes between objects are skipped (Book 3 Annex B1 allows `00` padding before,
/// between and after objects; ISO/IEC 7816-4 adds `FF`). After the first error the iterator
/// yields nothing more.
#[derive(Clone)]
pub struct Iter<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    failed: bool,
}

impl<'a> Iter<'a> {
    fn with_base(buf: &'a [u8], base: usize) -> Self {
        Iter {
            buf,
            pos: 0,
            base,
            failed: false,
        }
    }
}

/// Iterates over the top-level data objects of `buf`.
pub fn parse(buf: &[u8]) -> Iter<'_> {
    Iter::with_base(buf, 0)
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<Tlv<'a>, TlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        while matches!(self.buf.get(self.pos), Some(0x00 | 0xFF)) {
            self.pos += 1;
        }
        if self.pos >= self.buf.len() {
            return None;
        }
        let start = self.pos;
        let fail = |this: &mut Self, kind, at: usize| {
            this.failed = true;
            Some(Err(TlvError {
                kind,
                offset: this.base + at,
            }))
        };
        let (tag, tag_len) = match Tag::parse(&self.buf[start..]) {
            Ok(t) => t,
            Err(kind) => return fail(self, kind, start),
        };
        let (len, len_len) = match parse_length(&self.buf[start + tag_len..]) {
            Ok(l) => l,
            Err(kind) => return fail(self, kind, start + tag_len),
        };
        let value_start = start + tag_len + len_len;
        let available = self.buf.len() - value_start;
        if len > available {
            return fail(
                self,
                TlvErrorKind::ValueOverrun {
                    needed: len,
                    available,
                },
                start + tag_len,
            );
        }
        self.pos = value_start + len;
        Some(Ok(Tlv {
            tag,
            value: &self.buf[value_start..value_start + len],
            offset: self.base + start,
            header_len: tag_len + len_len,
        }))
    }
}

/// Checks a whole buffer, descending into constructed objects up to [`MAX_DEPTH`], and calls
/// `visit(depth, object)` for every object in document order.
pub fn walk<'a>(buf: &'a [u8], mut visit: impl FnMut(usize, &Tlv<'a>)) -> Result<(), TlvError> {
    fn go<'a>(
        iter: Iter<'a>,
        depth: usize,
        visit: &mut impl FnMut(usize, &Tlv<'a>),
    ) -> Result<(), TlvError> {
        for item in iter {
            let tlv = item?;
            visit(depth, &tlv);
            if tlv.is_constructed() {
                if depth + 1 >= MAX_DEPTH {
                    return Err(TlvError {
                        kind: TlvErrorKind::TooDeep,
                        offset: tlv.offset(),
                    });
                }
                go(tlv.children(), depth + 1, visit)?;
            }
        }
        Ok(())
    }
    go(parse(buf), 0, &mut visit)
}

/// Finds the first object with `tag` anywhere in `buf` (depth-first, document order).
pub fn find(buf: &[u8], tag: Tag) -> Result<Option<&[u8]>, TlvError> {
    let mut found = None;
    walk(buf, |_, tlv| {
        if found.is_none() && tlv.tag() == tag {
            found = Some(tlv.value());
        }
    })?;
    Ok(found)
}

/// Parses `buf` as exactly one object with tag `template` and returns its value.
pub fn expect_template(buf: &[u8], template: Tag) -> Result<Tlv<'_>, TlvError> {
    let mut iter = parse(buf);
    let first = iter.next().ok_or(TlvError {
        kind: TlvErrorKind::TruncatedTag,
        offset: 0,
    })??;
    if first.tag() != template {
        return Err(TlvError {
            kind: TlvErrorKind::UnexpectedTag(first.tag()),
            offset: first.offset(),
        });
    }
    if let Some(extra) = iter.next() {
        let extra = extra?;
        return Err(TlvError {
            kind: TlvErrorKind::UnexpectedTag(extra.tag()),
            offset: extra.offset(),
        });
    }
    Ok(first)
}

/// Tags whose values are card data that must never appear in logs or `Debug` output.
pub fn is_sensitive(tag: Tag) -> bool {
    matches!(
        tag.raw(),
        0x5A      // PAN
        | 0x57    // Track 2 Equivalent Data
        | 0x56    // Track 1 Data
        | 0x9F6B  // Track 2 Data (Mastercard)
        | 0x9F1F  // Track 1 Discretionary Data
        | 0x9F20  // Track 2 Discretionary Data
        | 0x5F20  // Cardholder Name
        | 0x9F0B  // Cardholder Name Extended
        | 0x5F24  // Application Expiration Date
        | 0x99 // Transaction PIN Data
    )
}

/// The data objects of one transaction, owned.
///
/// Values are zeroized when the store is dropped. `Debug` shows tags and lengths, and values
/// only for tags that are not [sensitive](is_sensitive).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TagStore {
    map: BTreeMap<Tag, Vec<u8>>,
}

impl TagStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `tag` to `value`, replacing any previous value.
    pub fn insert(&mut self, tag: Tag, value: impl Into<Vec<u8>>) {
        if let Some(mut old) = self.map.insert(tag, value.into()) {
            old.zeroize();
        }
    }

    /// The value of `tag`, if present.
    pub fn get(&self, tag: Tag) -> Option<&[u8]> {
        self.map.get(&tag).map(Vec::as_slice)
    }

    /// True if `tag` is present.
    pub fn contains(&self, tag: Tag) -> bool {
        self.map.contains_key(&tag)
    }

    /// Removes and zeroizes `tag`.
    pub fn remove(&mut self, tag: Tag) {
        if let Some(mut old) = self.map.remove(&tag) {
            old.zeroize();
        }
    }

    /// Number of data objects.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True if the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All tags and values in tag order.
    pub fn iter(&self) -> impl Iterator<Item = (Tag, &[u8])> {
        self.map.iter().map(|(t, v)| (*t, v.as_slice()))
    }

    /// Stores every primitive object of `buf`, descending into constructed ones.
    ///
    /// `on_duplicate` is called for a primitive tag that is already present; returning `false`
    /// stops with [`TlvErrorKind::UnexpectedTag`] at that object's offset (Book 3 §10.2: a
    /// redundant primitive object from the card terminates the transaction).
    pub fn absorb(
        &mut self,
        buf: &[u8],
        mut on_duplicate: impl FnMut(Tag) -> bool,
    ) -> Result<(), TlvError> {
        let mut objects = Vec::new();
        walk(buf, |_, tlv| {
            if !tlv.is_constructed() {
                objects.push((tlv.tag(), tlv.value(), tlv.offset()));
            }
        })?;
        for (tag, value, offset) in objects {
            if self.contains(tag) && !on_duplicate(tag) {
                return Err(TlvError {
                    kind: TlvErrorKind::UnexpectedTag(tag),
                    offset,
                });
            }
            self.insert(tag, value);
        }
        Ok(())
    }

    /// Encodes the listed tags that are present, in the order given, as concatenated TLV.
    pub fn encode_tags(&self, tags: &[Tag]) -> Vec<u8> {
        let mut out = Vec::new();
        for &tag in tags {
            if let Some(v) = self.get(tag) {
                encode(tag, v, &mut out);
            }
        }
        out
    }
}

impl Drop for TagStore {
    fn drop(&mut self) {
        for v in self.map.values_mut() {
            v.zeroize();
        }
    }
}

impl fmt::Debug for TagStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (tag, value) in &self.map {
            if is_sensitive(*tag) {
                m.entry(tag, &format_args!("<{} bytes hidden>", value.len()));
            } else {
                m.entry(tag, &format_args!("{}", crate::util::Hex(value)));
            }
        }
        m.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn tags_of_one_two_three_bytes() {
        assert_eq!(Tag::parse(&[0x5A, 0x08]), Ok((Tag::new(0x5A), 1)));
        assert_eq!(Tag::parse(&[0x9F, 0x02, 0x06]), Ok((Tag::new(0x9F02), 2)));
        assert_eq!(Tag::parse(&[0xDF, 0x81, 0x29]), Ok((Tag::new(0xDF8129), 3)));
        assert_eq!(Tag::parse(&[0x9F]), Err(TlvErrorKind::TruncatedTag));
        assert_eq!(Tag::parse(&[0xDF, 0x81]), Err(TlvErrorKind::TruncatedTag));
        assert_eq!(
            Tag::parse(&[0xDF, 0x81, 0x81, 0x01]),
            Err(TlvErrorKind::TagTooLong)
        );
        assert!(Tag::new(0x70).is_constructed());
        assert!(Tag::new(0xBF0C).is_constructed());
        assert!(!Tag::new(0x9F02).is_constructed());
        assert_eq!(Tag::new(0xDF8129).to_string(), "DF8129");
        assert_eq!(Tag::new(0x5A).to_string(), "5A");
    }

    #[test]
    fn lengths_short_and_long() {
        assert_eq!(parse_length(&[0x05]), Ok((5, 1)));
        assert_eq!(parse_length(&[0x81, 0x80]), Ok((128, 2)));
        assert_eq!(parse_length(&[0x82, 0x01, 0x00]), Ok((256, 3)));
        assert_eq!(parse_length(&[0x83, 0x01, 0x00, 0x00]), Ok((65536, 4)));
        assert_eq!(parse_length(&[0x80]), Err(TlvErrorKind::IndefiniteLength));
        assert_eq!(parse_length(&[0x81]), Err(TlvErrorKind::TruncatedLength));
        assert_eq!(
            parse_length(&[0x81, 0x05]),
            Err(TlvErrorKind::NonMinimalLength(5))
        );
        assert_eq!(
            parse_length(&[0xA1, 0x05]),
            Err(TlvErrorKind::InvalidLengthByte(0xA1))
        );
        assert_eq!(
            parse_length(&[0xC1, 0x05]),
            Err(TlvErrorKind::InvalidLengthByte(0xC1))
        );
        for len in [0usize, 1, 127, 128, 255, 256, 65535, 65536] {
            let mut out = Vec::new();
            encode_length(len, &mut out);
            assert_eq!(parse_length(&out), Ok((len, out.len())), "len {len}");
        }
    }

    #[test]
    fn iterates_with_padding_and_nesting() {
        // 00 padding before, between and after objects.
        let buf = h("00 70 0C 5F20 03 414243 00 9F08 02 0002 00 FF");
        let objs: Vec<_> = parse(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0].tag(), Tag::new(0x70));
        assert_eq!(objs[0].offset(), 1);
        let kids: Vec<_> = objs[0].children().collect::<Result<_, _>>().unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0].tag(), Tag::new(0x5F20));
        assert_eq!(kids[0].value(), b"ABC");
        assert_eq!(kids[0].offset(), 3);
        assert_eq!(kids[1].tag(), Tag::new(0x9F08));
        assert_eq!(kids[1].offset(), 10);
    }

    #[test]
    fn overrun_names_the_offset() {
        let buf = h("5A 08 47617390");
        let err = parse(&buf).next().unwrap().unwrap_err();
        assert_eq!(err.offset, 1);
        assert_eq!(
            err.kind,
            TlvErrorKind::ValueOverrun {
                needed: 8,
                available: 4
            }
        );
        // Inside a template, the offset counts from the outer buffer.
        let buf = h("77 05 9F36 05 0001");
        let err = walk(&buf, |_, _| {}).unwrap_err();
        assert_eq!(err.offset, 4);
    }

    #[test]
    fn vendor_length_bytes_are_rejected() {
        // A field-55 blob where a reader vendor wrote A1 instead of a BER length.
        let buf = h("9F26 08 1122334455667788 9F10 A1 07 06010A03A00000");
        let errs: Vec<_> = parse(&buf).filter_map(Result::err).collect();
        assert_eq!(
            errs,
            vec![TlvError {
                kind: TlvErrorKind::InvalidLengthByte(0xA1),
                offset: 13
            }]
        );
    }

    #[test]
    fn depth_limit() {
        let mut buf = h("5A 01 00");
        for _ in 0..MAX_DEPTH {
            let mut outer = Vec::new();
            encode(Tag::new(0x70), &buf, &mut outer);
            buf = outer;
        }
        assert_eq!(
            walk(&buf, |_, _| {}).unwrap_err().kind,
            TlvErrorKind::TooDeep
        );
    }

    #[test]
    fn encode_is_inverse_of_decode() {
        let mut out = Vec::new();
        encode(Tag::new(0x9F02), &h("000000001234"), &mut out);
        encode_constructed(Tag::new(0x70), &mut out, |o| {
            encode(Tag::new(0x5F2D), b"en", o);
            encode(Tag::new(0xDF8129), &[0u8; 200], o);
        });
        let mut back = Vec::new();
        for o in parse(&out) {
            let o = o.unwrap();
            encode(o.tag(), o.value(), &mut back);
        }
        assert_eq!(back, out);
        assert_eq!(&out[..9], &h("9F02 06 000000001234")[..]);
        // 70 81 D2: 5F2D (5 bytes) + DF8129 81 C8 (5 bytes) + 200
        assert_eq!(&out[9..12], &[0x70, 0x81, 0xD2]);
    }

    #[test]
    fn store_hides_sensitive_values() {
        let mut s = TagStore::new();
        s.absorb(&h("70 0F 5A 08 4761739001010119 9F36 02 0001"), |_| false)
            .unwrap();
        assert_eq!(s.get(Tag::new(0x9F36)), Some(&[0x00, 0x01][..]));
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("4761739001010119"), "{dbg}");
        assert!(dbg.contains("8 bytes hidden"), "{dbg}");
        assert!(dbg.contains("0001"), "{dbg}");
        let err = s.absorb(&h("5A 01 00"), |_| false).unwrap_err();
        assert_eq!(err.kind, TlvErrorKind::UnexpectedTag(Tag::new(0x5A)));
    }

    #[test]
    fn expect_template_refuses_trailing_objects() {
        let ok = h("6F 03 84 01 AA");
        assert_eq!(
            expect_template(&ok, Tag::new(0x6F)).unwrap().value().len(),
            3
        );
        let trailing = h("6F 03 84 01 AA 90 00");
        assert!(expect_template(&trailing, Tag::new(0x6F)).is_err());
        assert!(expect_template(&ok, Tag::new(0x77)).is_err());
    }
}
