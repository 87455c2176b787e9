//! Data Object Lists (EMV Book 3 §5.4): PDOL, CDOL1/2, DDOL, TDOL.
//!
//! A DOL is a list of (tag, length) pairs without values. The terminal answers it with the
//! concatenated values, each formatted to the requested length.

use crate::tags::{self, Format};
use crate::tlv::{self, Tag, TlvError, TlvErrorKind};

/// The largest length one DOL entry may ask for: the data of a short command APDU.
pub const MAX_ENTRY_LEN: usize = 255;

/// One entry of a DOL: a tag and the number of bytes the card wants for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DolEntry {
    /// The requested data object.
    pub tag: Tag,
    /// The length the card asks for.
    pub len: usize,
}

/// Parses a DOL into its entries.
///
/// The length bytes use the same BER rules as TLV (Book 3 §5.4: "the length ... coded as in
/// Annex B"), so an `81 xx` long form is accepted and a vendor `A1`/`C1` byte is refused with
/// its offset.
pub fn parse(dol: &[u8]) -> Result<Vec<DolEntry>, TlvError> {
    let mut entries = Vec::new();
    let mut pos = 0;
    while pos < dol.len() {
        let (tag, tag_len) =
            Tag::parse(&dol[pos..]).map_err(|kind| TlvError { kind, offset: pos })?;
        let (len, len_len) = tlv::parse_length(&dol[pos + tag_len..]).map_err(|kind| TlvError {
            kind,
            offset: pos + tag_len,
        })?;
        // No DOL entry can ask for more than a short command carries; refusing it here keeps
        // a hostile card from making the terminal allocate megabytes (83 FF FF FF).
        if len > MAX_ENTRY_LEN {
            return Err(TlvError {
                kind: TlvErrorKind::LengthTooLarge {
                    len,
                    max: MAX_ENTRY_LEN,
                },
                offset: pos + tag_len,
            });
        }
        entries.push(DolEntry { tag, len });
        pos += tag_len + len_len;
    }
    Ok(entries)
}

/// Total length of the data a DOL asks for.
pub fn data_len(entries: &[DolEntry]) -> usize {
    entries.iter().map(|e| e.len).sum()
}

/// Formats one value to `len` bytes by the rules of Book 3 §5.4:
/// - numeric (`n`): leading hexadecimal zeros when too short; the leftmost bytes dropped when
///   too long (the rightmost digits are kept);
/// - compressed numeric (`cn`): trailing `FF` when too short; truncated on the right;
/// - every other format: trailing `00` when too short; truncated on the right.
pub fn fit(format: Format, value: &[u8], len: usize) -> Vec<u8> {
    use std::cmp::Ordering::*;
    match (value.len().cmp(&len), format) {
        (Equal, _) => value.to_vec(),
        (Less, Format::N) => {
            let mut out = vec![0u8; len - value.len()];
            out.extend_from_slice(value);
            out
        }
        (Greater, Format::N) => value[value.len() - len..].to_vec(),
        (Less, Format::Cn) => {
            let mut out = value.to_vec();
            out.resize(len, 0xFF);
            out
        }
        (Less, _) => {
            let mut out = value.to_vec();
            out.resize(len, 0x00);
            out
        }
        (Greater, _) => value[..len].to_vec(),
    }
}

/// Builds the data for a DOL. `lookup` returns the value the terminal has for a tag.
///
/// Book 3 §5.4: a data object the terminal does not have, or a constructed one, is filled with
/// zeros of the requested length; a zero-length entry adds nothing.
///
/// Book 3 §5.4 says nothing about a tag listed twice (the rules against redundant objects in
/// §7.5 and §10.2 are about data the card sends). Each entry is filled independently, so a
/// repeated tag gets its value twice, at the lengths the card asked for: the data is exactly
/// as long as the DOL says, which is what the card will parse.
pub fn build<'a>(entries: &[DolEntry], lookup: impl Fn(Tag) -> Option<&'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(data_len(entries));
    for e in entries {
        if e.len == 0 {
            continue;
        }
        match lookup(e.tag) {
            Some(v) if !e.tag.is_constructed() => {
                out.extend_from_slice(&fit(tags::format(e.tag), v, e.len))
            }
            _ => out.resize(out.len() + e.len, 0x00),
        }
    }
    out
}

/// Splits DOL-built data back into (tag, value) pairs, the inverse of [`build`]; what a card
/// does with its command data. Fails if the data is shorter or longer than the DOL asks.
pub fn split<'d>(entries: &[DolEntry], data: &'d [u8]) -> Result<Vec<(Tag, &'d [u8])>, TlvError> {
    let need = data_len(entries);
    if data.len() != need {
        return Err(TlvError {
            kind: TlvErrorKind::ValueOverrun {
                needed: need,
                available: data.len(),
            },
            offset: 0,
        });
    }
    let mut pos = 0;
    Ok(entries
        .iter()
        .map(|e| {
            let v = &data[pos..pos + e.len];
            pos += e.len;
            (e.tag, v)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn parses_visa_pdol() {
        let e = parse(&h(
            "9F66 04 9F02 06 9F03 06 9F1A 02 95 05 5F2A 02 9A 03 9C 01 9F37 04",
        ))
        .unwrap();
        assert_eq!(e.len(), 9);
        assert_eq!(
            e[0],
            DolEntry {
                tag: Tag::new(0x9F66),
                len: 4
            }
        );
        assert_eq!(data_len(&e), 33);
        let err = parse(&h("9F66 A1 04")).unwrap_err();
        assert_eq!(
            (err.kind, err.offset),
            (TlvErrorKind::InvalidLengthByte(0xA1), 2)
        );
        assert!(parse(&h("9F")).is_err());
        let err = parse(&h("9F37 04 DF01 83FFFFFF")).unwrap_err();
        assert_eq!(
            (err.kind, err.offset),
            (
                TlvErrorKind::LengthTooLarge {
                    len: 0xFF_FFFF,
                    max: 255
                },
                5
            )
        );
    }

    #[test]
    fn numeric_pads_left_and_keeps_rightmost() {
        assert_eq!(fit(Format::N, &h("1234"), 4), h("00001234"));
        assert_eq!(fit(Format::N, &h("000000001234"), 4), h("00001234"));
        assert_eq!(fit(Format::N, &h("991234"), 2), h("1234"));
    }

    #[test]
    fn compressed_numeric_pads_with_ff() {
        assert_eq!(fit(Format::Cn, &h("476173"), 5), h("476173FFFF"));
        assert_eq!(fit(Format::Cn, &h("4761739001"), 3), h("476173"));
    }

    #[test]
    fn binary_and_text_pad_right_with_zeros() {
        assert_eq!(fit(Format::B, &h("3600"), 4), h("36000000"));
        assert_eq!(fit(Format::B, &h("36008000"), 2), h("3600"));
        assert_eq!(fit(Format::Ans, b"AB", 4), h("41420000"));
        assert_eq!(fit(Format::An, b"ABCD", 2), h("4142"));
    }

    #[test]
    fn missing_constructed_and_zero_length_entries() {
        let e = parse(&h("9F02 06 DF7F 02 70 03 9C 00 9A 03")).unwrap();
        let amount = h("000000001234");
        let date = h("261129");
        let data = build(&e, |t| match t.raw() {
            0x9F02 => Some(&amount[..]),
            0x9A => Some(&date[..]),
            0x70 => Some(&date[..]),
            _ => None,
        });
        assert_eq!(data, h("000000001234 0000 000000 261129"));
    }

    #[test]
    fn duplicated_tag_is_filled_twice() {
        let e = parse(&h("9F37 04 9F37 04")).unwrap();
        let un = h("DEADBEEF");
        assert_eq!(build(&e, |_| Some(&un[..])), h("DEADBEEF DEADBEEF"));
    }

    #[test]
    fn split_is_inverse_of_build() {
        let e = parse(&h("9F02 06 9F37 04")).unwrap();
        let data = h("000000001234 DEADBEEF");
        let parts = split(&e, &data).unwrap();
        assert_eq!(parts[1], (Tag::new(0x9F37), &h("DEADBEEF")[..]));
        assert!(split(&e, &data[..9]).is_err());
    }
}
