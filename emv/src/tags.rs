//! The EMV data object dictionary (EMV Book 3 Annex A, Book 4, Contactless Books A/B, C-2 and
//! C-3 Annex A): tag, name, format, length range, source, and the kernel it belongs to.
//!
//! The table lives in `emv/data/tags.tsv` and is turned into [`DICTIONARY`] by
//! `scripts/gen-tags.py`. It drives DOL formatting (Book 3 §5.4 needs each object's format) and
//! the human-readable decoders.

use crate::tlv::Tag;

pub use crate::dictionary::DICTIONARY;

/// Data format of a data object (Book 3 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Alphabetic.
    A,
    /// Alphanumeric.
    An,
    /// Alphanumeric special (ISO 8859).
    Ans,
    /// Binary (and the books' "var." formats).
    B,
    /// Compressed numeric: left-justified BCD, trailing `F`.
    Cn,
    /// Numeric: right-justified BCD, leading zeros.
    N,
    /// Constructed template.
    Template,
}

impl Format {
    /// The books' abbreviation.
    pub fn name(self) -> &'static str {
        match self {
            Format::A => "a",
            Format::An => "an",
            Format::Ans => "ans",
            Format::B => "b",
            Format::Cn => "cn",
            Format::N => "n",
            Format::Template => "template",
        }
    }
}

/// Where a data object comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The card (ICC).
    Card,
    /// The terminal.
    Terminal,
    /// The issuer, through the acquirer.
    Issuer,
    /// The kernel itself (C-2 working data and outcome objects).
    Kernel,
}

impl Source {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Source::Card => "card",
            Source::Terminal => "terminal",
            Source::Issuer => "issuer",
            Source::Kernel => "kernel",
        }
    }
}

/// A dictionary entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagInfo {
    /// The tag.
    pub tag: Tag,
    /// Name as in the EMV books.
    pub name: &'static str,
    /// Data format.
    pub format: Format,
    /// Shortest length in bytes.
    pub min_len: usize,
    /// Longest length in bytes, when the books fix one.
    pub max_len: Option<usize>,
    /// Who provides it.
    pub source: Source,
    /// 0 for objects of EMV Books 1-4 and Contactless Books A/B; otherwise the kernel (2 for
    /// C-2...) whose Annex A defines this meaning of the tag.
    pub kernel: u8,
    /// The template(s) it appears in, as the books name them (e.g. "70 or 77"), or empty.
    pub template: &'static str,
}

impl TagInfo {
    /// True if `len` is within the dictionary's range.
    pub fn length_ok(&self, len: usize) -> bool {
        len >= self.min_len && self.max_len.is_none_or(|m| len <= m)
    }
}

/// Looks up a tag with its general (kernel-independent) meaning, falling back to any kernel's.
pub fn info(tag: Tag) -> Option<&'static TagInfo> {
    lookup(tag, 0, None)
}

/// True when a card may supply `tag` as kernel `kernel` (0 for none) knows it. A data object's
/// source decides who sets it (EMV Book 3 Annex A; Book C-2 §4.1.4, a card may update only
/// the objects its answers are permitted to carry): the objects the terminal or the kernel
/// owns (the TTQ, the amounts, the unpredictable number, the TVR...) are never taken from a
/// card's answer, so a card cannot change the terminal's capabilities or the terminal data
/// that goes to the issuer. Tags the dictionary does not know are the card's.
pub fn card_may_set(tag: Tag, kernel: u8) -> bool {
    !matches!(
        lookup(tag, kernel, None).map(|i| i.source),
        Some(Source::Terminal | Source::Kernel)
    )
}

/// Looks up a tag as kernel `kernel` (0 for none) sees it, inside template `parent` when known.
///
/// A kernel's own meaning wins over the general one (9F6E is Third Party Data in C-2 and the
/// Form Factor Indicator in C-3); the parent template picks between meanings that depend on it
/// (82 is the AIP, or a Biometric Subtype inside a biometric template).
pub fn lookup(tag: Tag, kernel: u8, parent: Option<Tag>) -> Option<&'static TagInfo> {
    let mut rows = DICTIONARY.iter().filter(|i| i.tag == tag);
    let candidates: Vec<&TagInfo> = rows.by_ref().collect();
    if candidates.is_empty() {
        return None;
    }
    let in_parent = |i: &&TagInfo| match parent {
        Some(p) => i.template.contains(&p.to_string()),
        None => false,
    };
    let score = |i: &&TagInfo| -> u8 {
        let k = if kernel != 0 && i.kernel == kernel {
            4
        } else if i.kernel == 0 {
            2
        } else {
            0
        };
        k + u8::from(in_parent(i))
    };
    // Highest score; ties keep table order (the classic meaning comes first).
    let best = candidates.iter().map(score).max()?;
    candidates.into_iter().find(|i| score(i) == best)
}

/// The format of `tag`: the dictionary's, or binary for unknown tags (Book 3 §5.4 treats
/// objects the terminal does not know by their bytes).
pub fn format(tag: Tag) -> Format {
    info(tag).map_or(Format::B, |i| i.format)
}

/// Application Identifier (ADF Name) in a directory entry.
pub const AID_CARD: Tag = Tag::new(0x4F);

/// Application Label.
pub const APPLICATION_LABEL: Tag = Tag::new(0x50);

/// Track 1 Data.
pub const TRACK1: Tag = Tag::new(0x56);

/// Track 2 Equivalent Data.
pub const TRACK2: Tag = Tag::new(0x57);

/// Application Primary Account Number.
pub const PAN: Tag = Tag::new(0x5A);

/// Application Template.
pub const APPLICATION_TEMPLATE: Tag = Tag::new(0x61);

/// File Control Information Template.
pub const FCI_TEMPLATE: Tag = Tag::new(0x6F);

/// READ RECORD Response Message Template.
pub const RECORD_TEMPLATE: Tag = Tag::new(0x70);

/// Response Message Template Format 2.
pub const RESPONSE_FORMAT2: Tag = Tag::new(0x77);

/// Response Message Template Format 1.
pub const RESPONSE_FORMAT1: Tag = Tag::new(0x80);

/// Application Interchange Profile.
pub const AIP: Tag = Tag::new(0x82);

/// Command Template.
pub const COMMAND_TEMPLATE: Tag = Tag::new(0x83);

/// Dedicated File Name.
pub const DF_NAME: Tag = Tag::new(0x84);

/// Application Priority Indicator.
pub const PRIORITY: Tag = Tag::new(0x87);

/// Short File Identifier.
pub const SFI: Tag = Tag::new(0x88);

/// Authorisation Code.
pub const AUTH_CODE: Tag = Tag::new(0x89);

/// Authorisation Response Code.
pub const ARC: Tag = Tag::new(0x8A);

/// CDOL1.
pub const CDOL1: Tag = Tag::new(0x8C);

/// CDOL2.
pub const CDOL2: Tag = Tag::new(0x8D);

/// CVM List.
pub const CVM_LIST: Tag = Tag::new(0x8E);

/// Certification Authority Public Key Index (card).
pub const CA_PK_INDEX: Tag = Tag::new(0x8F);

/// Issuer Public Key Certificate.
pub const ISSUER_PK_CERT: Tag = Tag::new(0x90);

/// Issuer Authentication Data.
pub const ISSUER_AUTH_DATA: Tag = Tag::new(0x91);

/// Issuer Public Key Remainder.
pub const ISSUER_PK_REMAINDER: Tag = Tag::new(0x92);

/// Signed Static Application Data.
pub const SSAD: Tag = Tag::new(0x93);

/// Application File Locator.
pub const AFL: Tag = Tag::new(0x94);

/// Terminal Verification Results.
pub const TVR: Tag = Tag::new(0x95);

/// Transaction Date.
pub const TXN_DATE: Tag = Tag::new(0x9A);

/// Transaction Status Information.
pub const TSI: Tag = Tag::new(0x9B);

/// Transaction Type.
pub const TXN_TYPE: Tag = Tag::new(0x9C);

/// Directory Definition File Name.
pub const DDF_NAME: Tag = Tag::new(0x9D);

/// Cardholder Name.
pub const CARDHOLDER_NAME: Tag = Tag::new(0x5F20);

/// Application Expiration Date.
pub const EXPIRY: Tag = Tag::new(0x5F24);

/// Application Effective Date.
pub const EFFECTIVE: Tag = Tag::new(0x5F25);

/// Issuer Country Code.
pub const ISSUER_COUNTRY: Tag = Tag::new(0x5F28);

/// Transaction Currency Code.
pub const TXN_CURRENCY: Tag = Tag::new(0x5F2A);

/// Language Preference.
pub const LANGUAGE_PREFERENCE: Tag = Tag::new(0x5F2D);

/// Service Code.
pub const SERVICE_CODE: Tag = Tag::new(0x5F30);

/// Application PAN Sequence Number.
pub const PSN: Tag = Tag::new(0x5F34);

/// Transaction Currency Exponent.
pub const TXN_CURRENCY_EXPONENT: Tag = Tag::new(0x5F36);

/// Amount, Authorised (Binary).
pub const AMOUNT_AUTHORISED_BIN: Tag = Tag::new(0x81);

/// Amount, Authorised (Numeric).
pub const AMOUNT_AUTHORISED: Tag = Tag::new(0x9F02);

/// Amount, Other (Numeric).
pub const AMOUNT_OTHER: Tag = Tag::new(0x9F03);

/// Application Identifier (terminal).
pub const AID_TERMINAL: Tag = Tag::new(0x9F06);

/// Application Usage Control.
pub const AUC: Tag = Tag::new(0x9F07);

/// Application Version Number (card).
pub const APP_VERSION_CARD: Tag = Tag::new(0x9F08);

/// Application Version Number (terminal).
pub const APP_VERSION_TERMINAL: Tag = Tag::new(0x9F09);

/// Cardholder Name Extended.
pub const CARDHOLDER_NAME_EXT: Tag = Tag::new(0x9F0B);

/// Issuer Action Code - Default.
pub const IAC_DEFAULT: Tag = Tag::new(0x9F0D);

/// Issuer Action Code - Denial.
pub const IAC_DENIAL: Tag = Tag::new(0x9F0E);

/// Issuer Action Code - Online.
pub const IAC_ONLINE: Tag = Tag::new(0x9F0F);

/// Issuer Application Data.
pub const IAD: Tag = Tag::new(0x9F10);

/// Issuer Code Table Index.
pub const ISSUER_CODE_TABLE: Tag = Tag::new(0x9F11);

/// Application Preferred Name.
pub const PREFERRED_NAME: Tag = Tag::new(0x9F12);

/// Terminal Floor Limit.
pub const FLOOR_LIMIT: Tag = Tag::new(0x9F1B);

/// Terminal Identification.
pub const TERMINAL_ID: Tag = Tag::new(0x9F1C);

/// Interface Device Serial Number.
pub const IFD_SERIAL: Tag = Tag::new(0x9F1E);

/// Track 1 Discretionary Data.
pub const TRACK1_DISCRETIONARY: Tag = Tag::new(0x9F1F);

/// Track 2 Discretionary Data.
pub const TRACK2_DISCRETIONARY: Tag = Tag::new(0x9F20);

/// Terminal Country Code.
pub const TERMINAL_COUNTRY: Tag = Tag::new(0x9F1A);

/// Transaction Time.
pub const TXN_TIME: Tag = Tag::new(0x9F21);

/// Application Cryptogram.
pub const APPLICATION_CRYPTOGRAM: Tag = Tag::new(0x9F26);

/// Cryptogram Information Data.
pub const CID: Tag = Tag::new(0x9F27);

/// Extended Selection (Book B).
pub const EXTENDED_SELECTION: Tag = Tag::new(0x9F29);
/// Kernel Identifier.
pub const KERNEL_ID: Tag = Tag::new(0x9F2A);

/// Terminal Capabilities.
pub const TERMINAL_CAPABILITIES: Tag = Tag::new(0x9F33);

/// CVM Results.
pub const CVM_RESULTS: Tag = Tag::new(0x9F34);

/// Terminal Type.
pub const TERMINAL_TYPE: Tag = Tag::new(0x9F35);

/// Application Transaction Counter.
pub const ATC: Tag = Tag::new(0x9F36);

/// Unpredictable Number.
pub const UNPREDICTABLE_NUMBER: Tag = Tag::new(0x9F37);

/// Processing Options Data Object List.
pub const PDOL: Tag = Tag::new(0x9F38);

/// Point-of-Service Entry Mode.
pub const POS_ENTRY_MODE: Tag = Tag::new(0x9F39);

/// Additional Terminal Capabilities.
pub const ADDITIONAL_TERMINAL_CAPABILITIES: Tag = Tag::new(0x9F40);

/// Transaction Sequence Counter.
pub const TXN_SEQUENCE_COUNTER: Tag = Tag::new(0x9F41);

/// Application Currency Code.
pub const APP_CURRENCY: Tag = Tag::new(0x9F42);

/// ICC Public Key Certificate.
pub const ICC_PK_CERT: Tag = Tag::new(0x9F46);

/// Signed Dynamic Application Data.
pub const SDAD: Tag = Tag::new(0x9F4B);

/// Merchant Name and Location.
pub const MERCHANT_NAME_LOCATION: Tag = Tag::new(0x9F4E);

/// Card Authentication Related Data (Book C-3, fDDA).
pub const CARD_AUTH_RELATED_DATA: Tag = Tag::new(0x9F69);

/// Terminal Transaction Qualifiers (Book C-3).
pub const TTQ: Tag = Tag::new(0x9F66);

/// Card Transaction Qualifiers (Book C-3).
pub const CTQ: Tag = Tag::new(0x9F6C);

/// Form Factor Indicator (Book C-3).
pub const FORM_FACTOR: Tag = Tag::new(0x9F6E);

/// Customer Exclusive Data (Book C-3).
pub const CUSTOMER_EXCLUSIVE_DATA: Tag = Tag::new(0x9F7C);

/// Available Offline Spending Amount (Book C-3).
pub const AOSA: Tag = Tag::new(0x9F5D);

/// Merchant Category Code.
pub const MERCHANT_CATEGORY_CODE: Tag = Tag::new(0x9F15);

/// Merchant Identifier.
pub const MERCHANT_ID: Tag = Tag::new(0x9F16);

/// FCI Proprietary Template.
pub const FCI_PROPRIETARY: Tag = Tag::new(0xA5);

/// FCI Issuer Discretionary Data.
pub const FCI_ISSUER_DISCRETIONARY: Tag = Tag::new(0xBF0C);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_in_the_dictionary() {
        for t in [
            PAN,
            TRACK2,
            AIP,
            AFL,
            TVR,
            TTQ,
            CTQ,
            PDOL,
            IAD,
            CID,
            ATC,
            FORM_FACTOR,
            AMOUNT_AUTHORISED,
            FCI_ISSUER_DISCRETIONARY,
        ] {
            assert!(info(t).is_some(), "{t} missing");
        }
    }

    #[test]
    fn formats_and_lengths() {
        assert_eq!(format(AMOUNT_AUTHORISED), Format::N);
        assert_eq!(format(PAN), Format::Cn);
        assert_eq!(format(Tag::new(0xDF7F)), Format::B);
        assert_eq!(
            info(TTQ).unwrap().name,
            "Terminal Transaction Qualifiers (TTQ)"
        );
        let amount = info(AMOUNT_AUTHORISED).unwrap();
        assert!(amount.length_ok(6) && !amount.length_ok(5));
        assert_eq!(info(TXN_DATE).unwrap().source, Source::Terminal);
        assert!(DICTIONARY.len() > 250);
    }

    #[test]
    fn kernel_and_template_pick_the_meaning() {
        // 9F6E: Third Party Data in C-2, Form Factor Indicator in C-3.
        assert!(
            lookup(FORM_FACTOR, 3, None)
                .unwrap()
                .name
                .contains("Form Factor")
        );
        assert!(
            lookup(FORM_FACTOR, 2, None)
                .unwrap()
                .name
                .contains("Third Party")
        );
        // 82 is the AIP, except inside a biometric template.
        assert!(lookup(AIP, 0, None).unwrap().name.contains("Interchange"));
        assert!(
            lookup(AIP, 0, Some(Tag::new(0xA1)))
                .unwrap()
                .name
                .contains("Biometric")
        );
    }

    #[test]
    fn every_row_is_consistent() {
        for i in DICTIONARY {
            if let Some(max) = i.max_len {
                assert!(i.min_len <= max, "{}: {} > {}", i.tag, i.min_len, max);
            }
            assert_eq!(
                i.format == Format::Template,
                i.tag.is_constructed(),
                "{} {}",
                i.tag,
                i.name
            );
        }
    }
}
