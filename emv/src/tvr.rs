//! Terminal Verification Results (95) and Transaction Status Information (9B) bits, as EMV
//! Book 3 Annex C5 and C6 define them, and the helper that sets them in a transaction's data.
//!
//! The contactless kernels set only the bits whose checks they perform; [`crate::explain`]
//! decodes every bit for people.

use crate::tags as t;
use crate::tlv::{Tag, TagStore};

/// One bit: the byte index (0 = byte 1) and the mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bit {
    /// Zero-based byte index.
    pub byte: usize,
    /// The bit mask within that byte (b8 = 0x80).
    pub mask: u8,
}

const fn bit(byte: usize, mask: u8) -> Bit {
    Bit { byte, mask }
}

/// TVR byte 1 b8: offline data authentication was not performed.
pub const ODA_NOT_PERFORMED: Bit = bit(0, 0x80);
/// TVR byte 1 b7: SDA failed.
pub const SDA_FAILED: Bit = bit(0, 0x40);
/// TVR byte 1 b6: ICC data missing (an object ODA needs was absent).
pub const ICC_DATA_MISSING: Bit = bit(0, 0x20);
/// TVR byte 1 b4: DDA failed (kernels 3 and 7 report a failed fDDA here).
pub const DDA_FAILED: Bit = bit(0, 0x08);
/// TVR byte 1 b3: CDA failed.
pub const CDA_FAILED: Bit = bit(0, 0x04);
/// TVR byte 2 b8: ICC and terminal have different application versions.
pub const APP_VERSIONS_DIFFER: Bit = bit(1, 0x80);
/// TVR byte 2 b7: expired application.
pub const EXPIRED_APPLICATION: Bit = bit(1, 0x40);
/// TVR byte 2 b6: application not yet effective.
pub const NOT_YET_EFFECTIVE: Bit = bit(1, 0x20);
/// TVR byte 2 b5: requested service not allowed for card product (usage control).
pub const SERVICE_NOT_ALLOWED: Bit = bit(1, 0x10);
/// TVR byte 3 b8: cardholder verification was not successful.
pub const CVM_NOT_SUCCESSFUL: Bit = bit(2, 0x80);
/// TVR byte 3 b7: unrecognised CVM.
pub const UNRECOGNISED_CVM: Bit = bit(2, 0x40);
/// TVR byte 3 b3: online PIN entered.
pub const ONLINE_PIN_ENTERED: Bit = bit(2, 0x04);
/// TVR byte 4 b8: transaction exceeds floor limit.
pub const FLOOR_LIMIT_EXCEEDED: Bit = bit(3, 0x80);

/// TSI byte 1 b8: offline data authentication was performed.
pub const TSI_ODA_PERFORMED: Bit = bit(0, 0x80);
/// TSI byte 1 b7: cardholder verification was performed.
pub const TSI_CVM_PERFORMED: Bit = bit(0, 0x40);

/// Sets `b` in the TVR of `data` (creating a zero TVR if there is none).
pub fn set_tvr(data: &mut TagStore, b: Bit) {
    set(data, t::TVR, 5, b);
}

/// Sets `b` in the TSI of `data` (creating a zero TSI if there is none).
pub fn set_tsi(data: &mut TagStore, b: Bit) {
    set(data, t::TSI, 2, b);
}

/// True if `b` is set in the TVR of `data`.
pub fn tvr_has(data: &TagStore, b: Bit) -> bool {
    data.get(t::TVR)
        .and_then(|v| v.get(b.byte))
        .is_some_and(|&v| v & b.mask != 0)
}

fn set(data: &mut TagStore, tag: Tag, len: usize, b: Bit) {
    let mut v = data.get(tag).map(<[u8]>::to_vec).unwrap_or_default();
    v.resize(len, 0);
    v[b.byte] |= b.mask;
    data.insert(tag, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_accumulate_in_the_right_bytes() {
        let mut d = TagStore::new();
        set_tvr(&mut d, DDA_FAILED);
        set_tvr(&mut d, EXPIRED_APPLICATION);
        set_tvr(&mut d, CVM_NOT_SUCCESSFUL);
        assert_eq!(d.get(t::TVR), Some(&[0x08, 0x40, 0x80, 0, 0][..]));
        assert!(tvr_has(&d, DDA_FAILED) && !tvr_has(&d, SDA_FAILED));
        set_tsi(&mut d, TSI_ODA_PERFORMED);
        assert_eq!(d.get(t::TSI), Some(&[0x80, 0][..]));
    }
}
