//! The torn transaction log of kernel 2 (EMV Contactless Book C-2 §3.9, §4.x "Torn
//! Transaction Log"): what the terminal keeps when a card leaves the field after GENERATE AC
//! was sent, so that the same card presented again can return the cryptogram it already
//! computed (RECOVER AC) instead of counting a second transaction.
//!
//! The kernel is sans-IO: the caller keeps the log (sealed on disk: a record holds the PAN),
//! passes the live records in with [`crate::config::TxnInput::torn_log`], and applies what the
//! outcome says ([`crate::outcome::Outcome::torn_new`], `torn_done`). The caller also drops
//! records older than the Max Lifetime of Torn Transaction Log Record (DF811C).

use std::fmt;

use zeroize::Zeroizing;

use crate::tags as t;
use crate::tlv::{self, Tag, TagStore};

/// Torn Record (FF8101): a constructed object holding the transaction's data.
pub const TORN_RECORD: Tag = Tag::new(0xFF8101);
/// PDOL Related Data (DF8111).
pub const PDOL_RELATED_DATA: Tag = Tag::new(0xDF8111);
/// CDOL1 Related Data (DF8107).
pub const CDOL1_RELATED_DATA: Tag = Tag::new(0xDF8107);
/// DRDOL Related Data (DF8113).
pub const DRDOL_RELATED_DATA: Tag = Tag::new(0xDF8113);
/// Reference Control Parameter (DF8114): the P1 of GENERATE AC.
pub const REFERENCE_CONTROL_PARAMETER: Tag = Tag::new(0xDF8114);
/// DRDOL (9F51).
pub const DRDOL: Tag = Tag::new(0x9F51);

/// The tags a torn record keeps (Book C-2 Table 4.2), when present and not empty.
pub const RECORD_TAGS: &[Tag] = &[
    t::AMOUNT_AUTHORISED,
    t::AMOUNT_OTHER,
    t::PAN,
    t::PSN,
    CDOL1_RELATED_DATA,
    t::CVM_RESULTS,
    DRDOL_RELATED_DATA,
    PDOL_RELATED_DATA,
    REFERENCE_CONTROL_PARAMETER,
    t::TERMINAL_CAPABILITIES,
    t::TERMINAL_COUNTRY,
    t::TERMINAL_TYPE,
    t::TVR,
    t::TXN_CURRENCY,
    t::TXN_DATE,
    t::TXN_TIME,
    t::TXN_TYPE,
    t::UNPREDICTABLE_NUMBER,
];

/// One torn record: the FF8101 object. It holds the PAN, so it is zeroized on drop and its
/// `Debug` shows only the masked PAN.
#[derive(Clone, PartialEq, Eq)]
pub struct TornRecord {
    encoded: Zeroizing<Vec<u8>>,
}

impl TornRecord {
    /// Builds a record from the transaction's data.
    pub(crate) fn from_data(data: &TagStore) -> Self {
        let mut out = Vec::new();
        tlv::encode_constructed(TORN_RECORD, &mut out, |o| {
            for &tag in RECORD_TAGS {
                if let Some(v) = data.get(tag).filter(|v| !v.is_empty()) {
                    tlv::encode(tag, v, o);
                }
            }
        });
        TornRecord {
            encoded: Zeroizing::new(out),
        }
    }

    /// A record as the caller stored it (the bytes of [`TornRecord::as_bytes`]). `None` if
    /// it is not a well-formed FF8101 object with a PAN.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let rec = TornRecord {
            encoded: Zeroizing::new(bytes.to_vec()),
        };
        let data = rec.data()?;
        data.get(t::PAN)?;
        Some(rec)
    }

    /// The encoded FF8101 object, for the caller to seal and store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }

    /// The record's data objects.
    pub fn data(&self) -> Option<TagStore> {
        // The tag is read by hand: the general parser skips FF bytes as inter-object padding
        // (Book 3 Annex B), which would swallow the first byte of FF8101.
        let rest = self.encoded.strip_prefix(&[0xFF, 0x81, 0x01][..])?;
        let (len, used) = tlv::parse_length(rest).ok()?;
        let value = rest.get(used..)?;
        if value.len() != len {
            return None;
        }
        let mut store = TagStore::new();
        store.absorb(value, |_| false).ok()?;
        Some(store)
    }

    /// Whether this record is for the card with this PAN (5A) and PAN sequence number (5F34,
    /// both absent or both equal): Book C-2 S456.43.
    pub fn matches(&self, pan: &[u8], psn: Option<&[u8]>) -> bool {
        self.data()
            .is_some_and(|d| d.get(t::PAN) == Some(pan) && d.get(t::PSN) == psn)
    }
}

impl fmt::Debug for TornRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pan = self
            .data()
            .and_then(|d| d.get(t::PAN).and_then(crate::card::Pan::from_cn))
            .map(|p| p.masked())
            .unwrap_or_else(|| "?".into());
        write!(f, "TornRecord({pan}, {} bytes)", self.encoded.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_match() {
        let mut d = TagStore::new();
        d.insert(t::PAN, vec![0x54, 0x13, 0x33, 0x00, 0x89, 0x01, 0x00, 0x12]);
        d.insert(t::PSN, vec![0x01]);
        d.insert(DRDOL_RELATED_DATA, vec![1, 2, 3, 4]);
        d.insert(t::APPLICATION_LABEL, b"not kept".to_vec());
        let r = TornRecord::from_data(&d);
        assert_eq!(&r.as_bytes()[..3], &[0xFF, 0x81, 0x01]);
        let back = TornRecord::from_bytes(r.as_bytes()).unwrap();
        let data = back.data().unwrap();
        assert_eq!(data.get(DRDOL_RELATED_DATA), Some(&[1, 2, 3, 4][..]));
        assert!(data.get(t::APPLICATION_LABEL).is_none());
        let pan = [0x54, 0x13, 0x33, 0x00, 0x89, 0x01, 0x00, 0x12];
        assert!(back.matches(&pan, Some(&[0x01])));
        assert!(!back.matches(&pan, Some(&[0x02])));
        assert!(!back.matches(&pan, None));
        let dbg = format!("{back:?}");
        assert!(dbg.contains("541333******0012"), "{dbg}");
        assert!(TornRecord::from_bytes(&[0xFF, 0x81, 0x01, 0x00]).is_none());
        assert!(TornRecord::from_bytes(&[0x70, 0x00]).is_none());
    }
}
