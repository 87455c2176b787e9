//! Terminal and per-AID kernel configuration the caller hands to Entry Point.

use crate::card::KernelId;
use crate::util::{Date, Time};

/// A (AID, kernel) combination the terminal supports, with its limits (Book B §3.1, Table 3-1
/// "Entry Point Configuration Data").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Combination {
    /// The terminal's AID (matched against the card's ADF names).
    pub aid: Vec<u8>,
    /// The kernel that runs this AID.
    pub kernel: KernelId,
    /// Accept card AIDs that begin with `aid` (partial selection, Book 1 §12.3.1).
    pub partial_match: bool,
    /// Reader Contactless Transaction Limit, minor units: at or above it, contactless is not
    /// allowed for this combination.
    pub contactless_txn_limit: Option<u64>,
    /// Reader Contactless Floor Limit: above it, an online cryptogram is required.
    pub floor_limit: Option<u64>,
    /// Reader CVM Required Limit: at or above it, a CVM is required.
    pub cvm_required_limit: Option<u64>,
    /// Terminal Transaction Qualifiers (9F66) for kernel 3 (and kernels 6 and 7).
    pub ttq: Option<[u8; 4]>,
    /// Whether a zero amount may go through contactless (as an online request).
    pub zero_amount_allowed: bool,
    /// Status check: an amount of one currency unit asks for an online cryptogram.
    pub status_check: bool,
    /// Extended selection: use the card's 9F29 in the final SELECT.
    pub extended_selection: bool,
    /// Parameters of the kernels that run terminal action analysis and GENERATE AC
    /// (kernels 2, 4 and 5); ignored by kernels 3, 6 and 7.
    pub emv_mode: EmvModeParams,
}

/// Per-combination data of the GENERATE AC kernels (Book C-2 Annex A data objects; kernels
/// 4 and 5 use the same ones where they have them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmvModeParams {
    /// Terminal Action Code - Default (DF8120).
    pub tac_default: [u8; 5],
    /// Terminal Action Code - Denial (DF8121).
    pub tac_denial: [u8; 5],
    /// Terminal Action Code - Online (DF8122).
    pub tac_online: [u8; 5],
    /// Kernel Configuration (DF811B): b8 mag-stripe mode not supported, b7 EMV mode not
    /// supported, b6 on-device cardholder verification supported, b5 relay resistance
    /// protocol supported.
    pub kernel_configuration: u8,
    /// CVM Capability - CVM Required (DF8118): Terminal Capabilities byte 2 above the CVM
    /// required limit.
    pub cvm_capability_cvm_required: u8,
    /// CVM Capability - No CVM Required (DF8119): byte 2 at or below it.
    pub cvm_capability_no_cvm_required: u8,
    /// Card Data Input Capability (DF8117): Terminal Capabilities byte 1 (b6: contact chip).
    pub card_data_input_capability: u8,
    /// Security Capability (DF811F): Terminal Capabilities byte 3 (b4: CDA).
    pub security_capability: u8,
    /// Reader Contactless Transaction Limit when the card does on-device CVM (DF8125); the
    /// combination's limit applies otherwise.
    pub on_device_cvm_txn_limit: Option<u64>,
    /// Application Version Number of the terminal (9F09).
    pub app_version: Option<[u8; 2]>,
    /// Max Number of Torn Transaction Log Records (DF811D); 0 turns torn recovery off.
    pub torn_log_max: u8,
}

impl Default for EmvModeParams {
    /// Values a Mastercard contactless acquirer commonly sets: TAC denial none, online and
    /// default F45084800C; on-device CVM supported, mag-stripe mode not supported; signature
    /// above the CVM limit, no CVM below; no contact interface; CDA; version 0002; two torn
    /// records.
    fn default() -> Self {
        EmvModeParams {
            tac_default: [0xF4, 0x50, 0x84, 0x80, 0x0C],
            tac_denial: [0; 5],
            tac_online: [0xF4, 0x50, 0x84, 0x80, 0x0C],
            kernel_configuration: 0xA0,
            cvm_capability_cvm_required: 0x20,
            cvm_capability_no_cvm_required: 0x08,
            card_data_input_capability: 0x00,
            security_capability: 0x08,
            on_device_cvm_txn_limit: None,
            app_version: Some([0x00, 0x02]),
            torn_log_max: 2,
        }
    }
}

/// Terminal-wide data (Book 4 §6, and the Entry Point configuration of Book B §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalConfig {
    /// Terminal Country Code (9F1A), ISO 3166-1 numeric.
    pub country: u16,
    /// Terminal Type (9F35), e.g. `0x22`: attended, offline with online capability.
    pub terminal_type: u8,
    /// Terminal Capabilities (9F33).
    pub capabilities: [u8; 3],
    /// Additional Terminal Capabilities (9F40).
    pub additional_capabilities: [u8; 5],
    /// Merchant Category Code (9F15).
    pub merchant_category_code: u16,
    /// Terminal Identification (9F1C), 8 characters.
    pub terminal_id: String,
    /// Combinations in the terminal's order of preference.
    pub combinations: Vec<Combination>,
    /// Certification authority public keys for offline data authentication (Book 2 §5.1).
    pub capks: Vec<crate::oda::CaPublicKey>,
}

/// Transaction Type (9C), ISO 8583:1987 processing code positions 1-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnType {
    /// Purchase of goods or services (00).
    Purchase,
    /// Cash advance (01).
    Cash,
    /// Purchase with cashback (09).
    PurchaseWithCashback,
    /// Refund (20).
    Refund,
}

impl TxnType {
    /// The 9C value.
    pub fn code(self) -> u8 {
        match self {
            TxnType::Purchase => 0x00,
            TxnType::Cash => 0x01,
            TxnType::PurchaseWithCashback => 0x09,
            TxnType::Refund => 0x20,
        }
    }
}

/// What the caller knows at the start of a transaction: amounts, date, time and the
/// unpredictable number (the kernel has no clock and no random source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnInput {
    /// Amount, Authorised in minor units.
    pub amount: u64,
    /// Amount, Other (cashback) in minor units.
    pub amount_other: u64,
    /// Transaction Currency Code (5F2A), ISO 4217 numeric.
    pub currency: u16,
    /// Transaction Currency Exponent (5F36).
    pub currency_exponent: u8,
    /// Transaction type.
    pub txn_type: TxnType,
    /// Local date.
    pub date: Date,
    /// Local time.
    pub time: Time,
    /// Unpredictable Number (9F37), from the caller's random source.
    pub unpredictable_number: [u8; 4],
    /// The live records of the caller's torn transaction log (kernel 2), oldest first.
    pub torn_log: Vec<crate::torn::TornRecord>,
}
