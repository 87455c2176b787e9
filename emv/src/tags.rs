//! The EMV data objects Kassa uses, with name, format and source (EMV Book 3 Annex A,
//! Book C-3 Annex A).
//!
//! The dictionary drives DOL formatting (Book 3 §5.4 needs each object's format) and the
//! human-readable decoders.

use crate::tlv::Tag;

macro_rules! tags {
    ($( $(#[$doc:meta])* $name:ident = $raw:literal, $text:literal, $fmt:ident, $src:ident; )*) => {
        $( $(#[$doc])* pub const $name: Tag = Tag::new($raw); )*

        /// Every data object in the dictionary.
        pub static DICTIONARY: &[TagInfo] = &[
            $( TagInfo { tag: $name, name: $text, format: Format::$fmt, source: Source::$src }, )*
        ];
    };
}

/// Data format of a data object (Book 3 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Alphabetic.
    A,
    /// Alphanumeric.
    An,
    /// Alphanumeric special (ISO 8859).
    Ans,
    /// Binary.
    B,
    /// Compressed numeric: left-justified BCD, trailing `F`.
    Cn,
    /// Numeric: right-justified BCD, leading zeros.
    N,
    /// Constructed template.
    Template,
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
}

/// A dictionary entry.
#[derive(Debug, Clone, Copy)]
pub struct TagInfo {
    /// The tag.
    pub tag: Tag,
    /// Name as in the EMV books.
    pub name: &'static str,
    /// Data format.
    pub format: Format,
    /// Who provides it.
    pub source: Source,
}

/// Looks up a tag in the dictionary.
pub fn info(tag: Tag) -> Option<&'static TagInfo> {
    DICTIONARY.iter().find(|i| i.tag == tag)
}

/// The format of `tag`: the dictionary's, or binary for unknown tags (Book 3 §5.4 treats
/// objects the terminal does not know by their bytes).
pub fn format(tag: Tag) -> Format {
    info(tag).map_or(Format::B, |i| i.format)
}

tags! {
    /// Application Identifier (ADF Name) in a directory entry.
    AID_CARD = 0x4F, "Application Identifier (AID) - card", B, Card;
    /// Application Label.
    APPLICATION_LABEL = 0x50, "Application Label", Ans, Card;
    /// Track 1 Data.
    TRACK1 = 0x56, "Track 1 Data", Ans, Card;
    /// Track 2 Equivalent Data.
    TRACK2 = 0x57, "Track 2 Equivalent Data", B, Card;
    /// Application Primary Account Number.
    PAN = 0x5A, "Application Primary Account Number (PAN)", Cn, Card;
    /// Application Template.
    APPLICATION_TEMPLATE = 0x61, "Application Template", Template, Card;
    /// File Control Information Template.
    FCI_TEMPLATE = 0x6F, "File Control Information (FCI) Template", Template, Card;
    /// READ RECORD Response Message Template.
    RECORD_TEMPLATE = 0x70, "READ RECORD Response Message Template", Template, Card;
    /// Response Message Template Format 2.
    RESPONSE_FORMAT2 = 0x77, "Response Message Template Format 2", Template, Card;
    /// Response Message Template Format 1.
    RESPONSE_FORMAT1 = 0x80, "Response Message Template Format 1", B, Card;
    /// Application Interchange Profile.
    AIP = 0x82, "Application Interchange Profile", B, Card;
    /// Command Template.
    COMMAND_TEMPLATE = 0x83, "Command Template", B, Terminal;
    /// Dedicated File Name.
    DF_NAME = 0x84, "Dedicated File (DF) Name", B, Card;
    /// Application Priority Indicator.
    PRIORITY = 0x87, "Application Priority Indicator", B, Card;
    /// Short File Identifier.
    SFI = 0x88, "Short File Identifier (SFI)", B, Card;
    /// Authorisation Code.
    AUTH_CODE = 0x89, "Authorisation Code", An, Issuer;
    /// Authorisation Response Code.
    ARC = 0x8A, "Authorisation Response Code", An, Issuer;
    /// CDOL1.
    CDOL1 = 0x8C, "Card Risk Management Data Object List 1 (CDOL1)", B, Card;
    /// CDOL2.
    CDOL2 = 0x8D, "Card Risk Management Data Object List 2 (CDOL2)", B, Card;
    /// CVM List.
    CVM_LIST = 0x8E, "Cardholder Verification Method (CVM) List", B, Card;
    /// Certification Authority Public Key Index (card).
    CA_PK_INDEX = 0x8F, "Certification Authority Public Key Index", B, Card;
    /// Issuer Public Key Certificate.
    ISSUER_PK_CERT = 0x90, "Issuer Public Key Certificate", B, Card;
    /// Issuer Authentication Data.
    ISSUER_AUTH_DATA = 0x91, "Issuer Authentication Data", B, Issuer;
    /// Issuer Public Key Remainder.
    ISSUER_PK_REMAINDER = 0x92, "Issuer Public Key Remainder", B, Card;
    /// Signed Static Application Data.
    SSAD = 0x93, "Signed Static Application Data", B, Card;
    /// Application File Locator.
    AFL = 0x94, "Application File Locator (AFL)", B, Card;
    /// Terminal Verification Results.
    TVR = 0x95, "Terminal Verification Results", B, Terminal;
    /// Transaction Date.
    TXN_DATE = 0x9A, "Transaction Date", N, Terminal;
    /// Transaction Status Information.
    TSI = 0x9B, "Transaction Status Information", B, Terminal;
    /// Transaction Type.
    TXN_TYPE = 0x9C, "Transaction Type", N, Terminal;
    /// Directory Definition File Name.
    DDF_NAME = 0x9D, "Directory Definition File (DDF) Name", B, Card;
    /// Cardholder Name.
    CARDHOLDER_NAME = 0x5F20, "Cardholder Name", Ans, Card;
    /// Application Expiration Date.
    EXPIRY = 0x5F24, "Application Expiration Date", N, Card;
    /// Application Effective Date.
    EFFECTIVE = 0x5F25, "Application Effective Date", N, Card;
    /// Issuer Country Code.
    ISSUER_COUNTRY = 0x5F28, "Issuer Country Code", N, Card;
    /// Transaction Currency Code.
    TXN_CURRENCY = 0x5F2A, "Transaction Currency Code", N, Terminal;
    /// Language Preference.
    LANGUAGE_PREFERENCE = 0x5F2D, "Language Preference", An, Card;
    /// Service Code.
    SERVICE_CODE = 0x5F30, "Service Code", N, Card;
    /// Application PAN Sequence Number.
    PSN = 0x5F34, "Application PAN Sequence Number", N, Card;
    /// Transaction Currency Exponent.
    TXN_CURRENCY_EXPONENT = 0x5F36, "Transaction Currency Exponent", N, Terminal;
    /// Amount, Authorised (Binary).
    AMOUNT_AUTHORISED_BIN = 0x81, "Amount, Authorised (Binary)", B, Terminal;
    /// Amount, Authorised (Numeric).
    AMOUNT_AUTHORISED = 0x9F02, "Amount, Authorised (Numeric)", N, Terminal;
    /// Amount, Other (Numeric).
    AMOUNT_OTHER = 0x9F03, "Amount, Other (Numeric)", N, Terminal;
    /// Application Identifier (terminal).
    AID_TERMINAL = 0x9F06, "Application Identifier (AID) - terminal", B, Terminal;
    /// Application Usage Control.
    AUC = 0x9F07, "Application Usage Control", B, Card;
    /// Application Version Number (card).
    APP_VERSION_CARD = 0x9F08, "Application Version Number - card", B, Card;
    /// Application Version Number (terminal).
    APP_VERSION_TERMINAL = 0x9F09, "Application Version Number - terminal", B, Terminal;
    /// Cardholder Name Extended.
    CARDHOLDER_NAME_EXT = 0x9F0B, "Cardholder Name Extended", Ans, Card;
    /// Issuer Action Code - Default.
    IAC_DEFAULT = 0x9F0D, "Issuer Action Code - Default", B, Card;
    /// Issuer Action Code - Denial.
    IAC_DENIAL = 0x9F0E, "Issuer Action Code - Denial", B, Card;
    /// Issuer Action Code - Online.
    IAC_ONLINE = 0x9F0F, "Issuer Action Code - Online", B, Card;
    /// Issuer Application Data.
    IAD = 0x9F10, "Issuer Application Data", B, Card;
    /// Issuer Code Table Index.
    ISSUER_CODE_TABLE = 0x9F11, "Issuer Code Table Index", N, Card;
    /// Application Preferred Name.
    PREFERRED_NAME = 0x9F12, "Application Preferred Name", Ans, Card;
    /// Terminal Floor Limit.
    FLOOR_LIMIT = 0x9F1B, "Terminal Floor Limit", B, Terminal;
    /// Terminal Identification.
    TERMINAL_ID = 0x9F1C, "Terminal Identification", An, Terminal;
    /// Interface Device Serial Number.
    IFD_SERIAL = 0x9F1E, "Interface Device (IFD) Serial Number", An, Terminal;
    /// Track 1 Discretionary Data.
    TRACK1_DISCRETIONARY = 0x9F1F, "Track 1 Discretionary Data", Ans, Card;
    /// Track 2 Discretionary Data.
    TRACK2_DISCRETIONARY = 0x9F20, "Track 2 Discretionary Data", Cn, Card;
    /// Terminal Country Code.
    TERMINAL_COUNTRY = 0x9F1A, "Terminal Country Code", N, Terminal;
    /// Transaction Time.
    TXN_TIME = 0x9F21, "Transaction Time", N, Terminal;
    /// Application Cryptogram.
    APPLICATION_CRYPTOGRAM = 0x9F26, "Application Cryptogram", B, Card;
    /// Cryptogram Information Data.
    CID = 0x9F27, "Cryptogram Information Data", B, Card;
    /// Kernel Identifier.
    KERNEL_ID = 0x9F2A, "Kernel Identifier", B, Card;
    /// Terminal Capabilities.
    TERMINAL_CAPABILITIES = 0x9F33, "Terminal Capabilities", B, Terminal;
    /// CVM Results.
    CVM_RESULTS = 0x9F34, "Cardholder Verification Method (CVM) Results", B, Terminal;
    /// Terminal Type.
    TERMINAL_TYPE = 0x9F35, "Terminal Type", N, Terminal;
    /// Application Transaction Counter.
    ATC = 0x9F36, "Application Transaction Counter (ATC)", B, Card;
    /// Unpredictable Number.
    UNPREDICTABLE_NUMBER = 0x9F37, "Unpredictable Number", B, Terminal;
    /// Processing Options Data Object List.
    PDOL = 0x9F38, "Processing Options Data Object List (PDOL)", B, Card;
    /// Point-of-Service Entry Mode.
    POS_ENTRY_MODE = 0x9F39, "Point-of-Service (POS) Entry Mode", N, Terminal;
    /// Additional Terminal Capabilities.
    ADDITIONAL_TERMINAL_CAPABILITIES = 0x9F40, "Additional Terminal Capabilities", B, Terminal;
    /// Transaction Sequence Counter.
    TXN_SEQUENCE_COUNTER = 0x9F41, "Transaction Sequence Counter", N, Terminal;
    /// Application Currency Code.
    APP_CURRENCY = 0x9F42, "Application Currency Code", N, Card;
    /// ICC Public Key Certificate.
    ICC_PK_CERT = 0x9F46, "ICC Public Key Certificate", B, Card;
    /// Signed Dynamic Application Data.
    SDAD = 0x9F4B, "Signed Dynamic Application Data", B, Card;
    /// Merchant Name and Location.
    MERCHANT_NAME_LOCATION = 0x9F4E, "Merchant Name and Location", Ans, Terminal;
    /// Card Authentication Related Data (Book C-3, fDDA).
    CARD_AUTH_RELATED_DATA = 0x9F69, "Card Authentication Related Data", B, Card;
    /// Terminal Transaction Qualifiers (Book C-3).
    TTQ = 0x9F66, "Terminal Transaction Qualifiers (TTQ)", B, Terminal;
    /// Card Transaction Qualifiers (Book C-3).
    CTQ = 0x9F6C, "Card Transaction Qualifiers (CTQ)", B, Card;
    /// Form Factor Indicator (Book C-3).
    FORM_FACTOR = 0x9F6E, "Form Factor Indicator", B, Card;
    /// Customer Exclusive Data (Book C-3).
    CUSTOMER_EXCLUSIVE_DATA = 0x9F7C, "Customer Exclusive Data", B, Card;
    /// Available Offline Spending Amount (Book C-3).
    AOSA = 0x9F5D, "Available Offline Spending Amount", N, Card;
    /// Merchant Category Code.
    MERCHANT_CATEGORY_CODE = 0x9F15, "Merchant Category Code", N, Terminal;
    /// Merchant Identifier.
    MERCHANT_ID = 0x9F16, "Merchant Identifier", Ans, Terminal;
    /// FCI Proprietary Template.
    FCI_PROPRIETARY = 0xA5, "FCI Proprietary Template", Template, Card;
    /// FCI Issuer Discretionary Data.
    FCI_ISSUER_DISCRETIONARY = 0xBF0C, "FCI Issuer Discretionary Data", Template, Card;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_has_no_duplicates_and_formats() {
        let mut tags: Vec<_> = DICTIONARY.iter().map(|i| i.tag).collect();
        tags.sort();
        let n = tags.len();
        tags.dedup();
        assert_eq!(n, tags.len(), "duplicate tag in dictionary");
        assert_eq!(format(AMOUNT_AUTHORISED), Format::N);
        assert_eq!(format(PAN), Format::Cn);
        assert_eq!(format(Tag::new(0xDF7F)), Format::B);
        assert_eq!(
            info(TTQ).unwrap().name,
            "Terminal Transaction Qualifiers (TTQ)"
        );
    }
}
