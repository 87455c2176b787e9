//! Outcomes: what a kernel or Entry Point hands back to the terminal (EMV Book A §6.2, Book B
//! §3.5), with the user-interface request (Book A §7.1, §9.4) and the data the rest of the
//! terminal needs.

use std::fmt;

use crate::card::{KernelId, Pan, Scheme};
use crate::tlv::{Tag, TagStore, TlvError};

/// The kind of outcome (Book A §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// Approved offline.
    Approved,
    /// Declined offline.
    Declined,
    /// Send an authorization request with the online data.
    OnlineRequest,
    /// Ask the cardholder to use another interface (contact chip or magnetic stripe).
    TryAnotherInterface,
    /// The transaction stops; the UI request says what to tell the cardholder.
    EndApplication,
    /// Present the card again (restart at Start B).
    TryAgain,
    /// Select the next application on the card (restart at Start C).
    SelectNext,
}

impl OutcomeKind {
    /// Lower-case name used in JSON (`"online_request"`, `"declined"`...).
    pub fn name(self) -> &'static str {
        match self {
            OutcomeKind::Approved => "approved",
            OutcomeKind::Declined => "declined",
            OutcomeKind::OnlineRequest => "online_request",
            OutcomeKind::TryAnotherInterface => "try_another_interface",
            OutcomeKind::EndApplication => "end_application",
            OutcomeKind::TryAgain => "try_again",
            OutcomeKind::SelectNext => "select_next",
        }
    }
}

/// Standard messages of Book A §9.4 (Table 9-5), with their message identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// 03 "Approved".
    Approved,
    /// 07 "Not Authorised".
    NotAuthorised,
    /// 09 "Please enter your PIN".
    EnterPin,
    /// 0F "Processing error".
    ProcessingError,
    /// 10 "Remove card".
    RemoveCard,
    /// 14 "Welcome".
    Welcome,
    /// 15 "Present card".
    PresentCard,
    /// 16 "Processing".
    Processing,
    /// 17 "Card read OK. Please remove card".
    CardReadOk,
    /// 18 "Please insert or swipe card".
    InsertOrSwipe,
    /// 19 "Please present one card only".
    PresentOneCardOnly,
    /// 1A "Approved. Please sign".
    ApprovedSign,
    /// 1B "Authorising. Please wait".
    AuthorisingPleaseWait,
    /// 1C "Insert, swipe or try another card".
    TryAnotherCard,
    /// 1D "Please insert card".
    InsertCard,
    /// 20 "See phone for instructions".
    SeePhone,
    /// 21 "Present card again".
    PresentCardAgain,
}

impl Message {
    /// Lower-case name used in JSON (`"present_card_again"`).
    pub fn name(self) -> &'static str {
        match self {
            Message::Approved => "approved",
            Message::NotAuthorised => "not_authorised",
            Message::EnterPin => "enter_pin",
            Message::ProcessingError => "processing_error",
            Message::RemoveCard => "remove_card",
            Message::Welcome => "welcome",
            Message::PresentCard => "present_card",
            Message::Processing => "processing",
            Message::CardReadOk => "card_read_ok",
            Message::InsertOrSwipe => "insert_or_swipe",
            Message::PresentOneCardOnly => "present_one_card_only",
            Message::ApprovedSign => "approved_sign",
            Message::AuthorisingPleaseWait => "authorising_please_wait",
            Message::TryAnotherCard => "try_another_card",
            Message::InsertCard => "insert_card",
            Message::SeePhone => "see_phone",
            Message::PresentCardAgain => "present_card_again",
        }
    }

    /// The message identifier of Book A Table 9-5.
    pub fn id(self) -> u8 {
        match self {
            Message::Approved => 0x03,
            Message::NotAuthorised => 0x07,
            Message::EnterPin => 0x09,
            Message::ProcessingError => 0x0F,
            Message::RemoveCard => 0x10,
            Message::Welcome => 0x14,
            Message::PresentCard => 0x15,
            Message::Processing => 0x16,
            Message::CardReadOk => 0x17,
            Message::InsertOrSwipe => 0x18,
            Message::PresentOneCardOnly => 0x19,
            Message::ApprovedSign => 0x1A,
            Message::AuthorisingPleaseWait => 0x1B,
            Message::TryAnotherCard => 0x1C,
            Message::InsertCard => 0x1D,
            Message::SeePhone => 0x20,
            Message::PresentCardAgain => 0x21,
        }
    }
}

/// Reader status for the four status lights (Book A §9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not ready.
    NotReady,
    /// Idle.
    Idle,
    /// Ready to read.
    ReadyToRead,
    /// Processing.
    Processing,
    /// Card read successfully: all four lights and the success tone.
    CardReadSuccessfully,
    /// Processing error: the alert tone.
    ProcessingError,
}

impl Status {
    /// Lower-case name used in JSON (`"ready_to_read"`).
    pub fn name(self) -> &'static str {
        match self {
            Status::NotReady => "not_ready",
            Status::Idle => "idle",
            Status::ReadyToRead => "ready_to_read",
            Status::Processing => "processing",
            Status::CardReadSuccessfully => "card_read_successfully",
            Status::ProcessingError => "processing_error",
        }
    }
}

/// A user-interface request (Book A §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UiRequest {
    /// What to show.
    pub message: Message,
    /// Status lights and tone.
    pub status: Status,
    /// How long to keep it on screen, in milliseconds.
    pub hold_time_ms: u32,
    /// Language Preference (Book A §7.1): the card's most preferred language (5F2D), once the
    /// selected application gave one; the terminal shows the message in it if it can.
    pub language: Option<Language>,
}

impl UiRequest {
    /// User Interface Request Data (Book C-2 DF8116, 22 bytes): message identifier, status,
    /// hold time (n6, units of 100 ms), language preference (8 bytes, 00-padded), value
    /// qualifier, value (n12) and currency (n3). Kassa's requests carry no value: qualifier,
    /// value and currency are zero.
    pub fn to_c2_bytes(&self) -> [u8; 22] {
        let mut out = [0u8; 22];
        out[0] = self.message.id();
        out[1] = match self.status {
            Status::NotReady => 0x00,
            Status::Idle => 0x01,
            Status::ReadyToRead => 0x02,
            Status::Processing => 0x03,
            Status::CardReadSuccessfully => 0x04,
            Status::ProcessingError => 0x05,
        };
        let hold = crate::util::bcd_n(u64::from(self.hold_time_ms / 100), 3).unwrap_or_default();
        out[2..5].copy_from_slice(&hold);
        if let Some(l) = self.language {
            out[5..7].copy_from_slice(l.as_str().as_bytes());
        }
        out
    }
}

/// A two-letter ISO 639-1 language code, lower case (`"zh"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Language([u8; 2]);

impl Language {
    /// Parses two ASCII letters (any case); anything else is `None`.
    pub fn parse(code: &[u8]) -> Option<Self> {
        match code {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Language([a.to_ascii_lowercase(), b.to_ascii_lowercase()]))
            }
            _ => None,
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Debug for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Language({})", self.as_str())
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cardholder verification method the kernel settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cvm {
    /// No CVM required (under the CVM required limit, or the card asked for none).
    NoCvm,
    /// Signature on the merchant receipt.
    Signature,
    /// Online PIN, entered on the terminal and sent to the issuer.
    OnlinePin,
    /// Consumer device CVM: the phone or watch verified the cardholder.
    ConsumerDevice,
}

impl Cvm {
    /// Lower-case name used in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Cvm::NoCvm => "no_cvm",
            Cvm::Signature => "signature",
            Cvm::OnlinePin => "online_pin",
            Cvm::ConsumerDevice => "cdcvm",
        }
    }
}

/// The offline data authentication method (EMV Book 2 §5, §6; Book C-3 fDDA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OdaMethod {
    /// Static data authentication.
    Sda,
    /// Dynamic data authentication (INTERNAL AUTHENTICATE).
    Dda,
    /// Fast DDA of kernels 3 and 7 (signature returned with GPO).
    Fdda,
    /// Combined DDA / application cryptogram generation.
    Cda,
}

impl OdaMethod {
    /// Lower-case name (`"fdda"`).
    pub fn name(self) -> &'static str {
        match self {
            OdaMethod::Sda => "sda",
            OdaMethod::Dda => "dda",
            OdaMethod::Fdda => "fdda",
            OdaMethod::Cda => "cda",
        }
    }
}

/// Offline data authentication result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oda {
    /// Not performed (online transaction without ODA, or the card does not support it).
    NotPerformed,
    /// The method's signature verified.
    Succeeded(OdaMethod),
    /// The method failed (signature, certificate, missing data or CA key).
    Failed(OdaMethod),
}

impl Oda {
    /// Name used in JSON: `not_performed`, or the method and `_ok` / `_failed`
    /// (`"fdda_ok"`, `"cda_failed"`).
    pub fn name(self) -> &'static str {
        use OdaMethod::*;
        match self {
            Oda::NotPerformed => "not_performed",
            Oda::Succeeded(Sda) => "sda_ok",
            Oda::Succeeded(Dda) => "dda_ok",
            Oda::Succeeded(Fdda) => "fdda_ok",
            Oda::Succeeded(Cda) => "cda_ok",
            Oda::Failed(Sda) => "sda_failed",
            Oda::Failed(Dda) => "dda_failed",
            Oda::Failed(Fdda) => "fdda_failed",
            Oda::Failed(Cda) => "cda_failed",
        }
    }

    /// True for any failed method.
    pub fn failed(self) -> bool {
        matches!(self, Oda::Failed(_))
    }
}

/// Why an outcome other than the happy path came about: the Book A "error indication" in a
/// form a log line and a test can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Nothing unusual.
    None,
    /// Every configured combination was ruled out by pre-processing (amount over the
    /// contactless transaction limit, zero amount not allowed).
    AmountNotAllowed,
    /// SELECT PPSE failed with this status word.
    PpseFailed(u16),
    /// No directory entry matched a supported AID and kernel.
    NoCommonApplication,
    /// A response was not valid BER-TLV.
    MalformedResponse(TlvError),
    /// A response APDU had fewer than two bytes.
    MalformedApdu,
    /// A mandatory data object was missing.
    MissingData(Tag),
    /// A data object was malformed or inconsistent.
    BadData(Tag),
    /// The card answered a command with an unexpected status word.
    StatusWord {
        /// The instruction byte of the command.
        ins: u8,
        /// SW1 SW2.
        sw: u16,
    },
    /// The card returned an Application Authentication Cryptogram (decline).
    CardDeclined,
    /// The card offered an offline approval that needs offline data authentication, which this
    /// kernel does not perform; declined.
    OfflineNotSupported,
    /// The application expired (and the card did not ask to go online for it).
    Expired,
    /// Offline data authentication failed: the check that failed.
    OdaFailed(String),
    /// A CVM is required and none the card asks for can be performed.
    CvmNotPossible,
    /// The kernel for the selected application is not implemented.
    KernelNotSupported(KernelId),
    /// More commands than any legitimate card needs.
    TooManyCommands,
    /// The card left the field (or the link to it broke) before the kernel finished.
    CardLost,
    /// The card offers only mag-stripe mode, which Kassa does not support (Book C-2).
    MagStripeNotSupported,
    /// The card returned a cryptogram type the terminal did not allow (a TC when an ARQC or
    /// AAC was asked for, an ARQC when an AAC was).
    WrongCryptogramType,
    /// A response arrived after the outcome.
    AlreadyFinished,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::None => f.write_str("none"),
            Reason::AmountNotAllowed => f.write_str("amount not allowed for contactless"),
            Reason::PpseFailed(sw) => write!(f, "SELECT PPSE failed (SW {sw:04X})"),
            Reason::NoCommonApplication => f.write_str("no common application"),
            Reason::MalformedResponse(e) => write!(f, "malformed card response: {e}"),
            Reason::MalformedApdu => f.write_str("malformed response APDU"),
            Reason::MissingData(t) => write!(f, "card data missing: {t}"),
            Reason::BadData(t) => write!(f, "card data invalid: {t}"),
            Reason::StatusWord { ins, sw } => {
                write!(f, "card answered INS {ins:02X} with SW {sw:04X}")
            }
            Reason::CardDeclined => f.write_str("card declined (AAC)"),
            Reason::OfflineNotSupported => {
                f.write_str("offline approval needs offline data authentication (not supported)")
            }
            Reason::Expired => f.write_str("application expired"),
            Reason::OdaFailed(e) => write!(f, "offline data authentication failed: {e}"),
            Reason::CvmNotPossible => f.write_str("no cardholder verification method possible"),
            Reason::KernelNotSupported(k) => write!(f, "kernel {k} not supported"),
            Reason::TooManyCommands => f.write_str("too many commands"),
            Reason::CardLost => f.write_str("card removed before the transaction finished"),
            Reason::MagStripeNotSupported => f.write_str("card offers only mag-stripe mode"),
            Reason::WrongCryptogramType => {
                f.write_str("card returned a cryptogram type the terminal did not ask for")
            }
            Reason::AlreadyFinished => f.write_str("transaction already finished"),
        }
    }
}

/// What the terminal learns about the card, for the screen, the receipt and the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSummary {
    /// The selected application's AID (DF name).
    pub aid: Vec<u8>,
    /// Application label (50), if the card gave one.
    pub label: Option<String>,
    /// Application preferred name (9F12), if any.
    pub preferred_name: Option<String>,
    /// The kernel that ran.
    pub kernel: KernelId,
    /// The scheme, from the AID.
    pub scheme: Scheme,
    /// Language preference (5F2D) as two-letter lower-case codes, most preferred first.
    pub languages: Vec<String>,
    /// The PAN (masked when printed).
    pub pan: Option<Pan>,
    /// PAN sequence number (5F34), if present.
    pub psn: Option<u8>,
    /// Expiry (YYMM), if present.
    pub expiry_yymm: Option<String>,
}

impl Outcome {
    /// The Outcome Parameter Set (Book C-2 DF8129, 8 bytes): status, start, online response
    /// data, CVM, flags (UI request on outcome / on restart, data record, discretionary data,
    /// receipt), alternate interface preference, field off request, removal timeout.
    pub fn parameter_set(&self) -> [u8; 8] {
        const NA: u8 = 0xF0;
        let status = match self.kind {
            OutcomeKind::Approved => 0x10,
            OutcomeKind::Declined => 0x20,
            OutcomeKind::OnlineRequest => 0x30,
            OutcomeKind::EndApplication => 0x40,
            OutcomeKind::SelectNext => 0x50,
            OutcomeKind::TryAnotherInterface => 0x60,
            OutcomeKind::TryAgain => 0x70,
        };
        let start = match self.kind {
            OutcomeKind::TryAgain => 0x10,   // B
            OutcomeKind::SelectNext => 0x20, // C
            _ => NA,
        };
        let decided = matches!(
            self.kind,
            OutcomeKind::Approved | OutcomeKind::OnlineRequest | OutcomeKind::Declined
        );
        let cvm = if decided {
            match self.cvm {
                Cvm::NoCvm => 0x00,
                Cvm::Signature => 0x10,
                Cvm::OnlinePin => 0x20,
                Cvm::ConsumerDevice => 0x30,
            }
        } else {
            NA
        };
        let mut flags = 0x80; // a UI request comes with every Kassa outcome
        if self.kind == OutcomeKind::TryAgain {
            flags |= 0x40;
        }
        if decided {
            flags |= 0x20;
        }
        if self.cvm == Cvm::Signature && decided {
            flags |= 0x08;
        }
        let alternate = if self.kind == OutcomeKind::TryAnotherInterface {
            0x10
        } else {
            NA
        };
        [status, start, NA, cvm, flags, alternate, 0xFF, 0x00]
    }
}

/// The result of a kernel run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What happened.
    pub kind: OutcomeKind,
    /// What to show and sound.
    pub ui: UiRequest,
    /// Why, when it is not the happy path.
    pub reason: Reason,
    /// The CVM.
    pub cvm: Cvm,
    /// Offline data authentication result.
    pub oda: Oda,
    /// The card, when an application was selected.
    pub card: Option<CardSummary>,
    /// Every data object of the transaction (terminal and card).
    pub data: TagStore,
    /// The BER-TLV for ISO 8583 field 55, for [`OutcomeKind::OnlineRequest`] (and for the
    /// advice of an offline decision).
    pub online_data: Vec<u8>,
    /// Kernel 2: a torn record for the caller to add to its torn transaction log (the card
    /// left after GENERATE AC was sent). The caller keeps at most the configured number,
    /// dropping the oldest.
    pub torn_new: Option<crate::torn::TornRecord>,
    /// Kernel 2: the index (in [`crate::config::TxnInput::torn_log`]) of a record this
    /// transaction settled (recovered, or superseded): the caller removes it.
    pub torn_done: Option<usize>,
}

#[cfg(test)]
mod c2_encoding_tests {
    use super::*;

    #[test]
    fn outcome_parameter_set_and_ui_request_bytes() {
        let ui = UiRequest {
            message: Message::PresentCardAgain,
            status: Status::ReadyToRead,
            hold_time_ms: 1300,
            language: Language::parse(b"ZH"),
        };
        let b = ui.to_c2_bytes();
        assert_eq!(&b[..7], &[0x21, 0x02, 0x00, 0x00, 0x13, b'z', b'h']);
        assert!(b[7..].iter().all(|&x| x == 0));
        let mut o = Outcome {
            kind: OutcomeKind::TryAgain,
            ui,
            reason: Reason::CardLost,
            cvm: Cvm::NoCvm,
            oda: Oda::NotPerformed,
            card: None,
            data: TagStore::new(),
            online_data: Vec::new(),
            torn_new: None,
            torn_done: None,
        };
        assert_eq!(
            o.parameter_set(),
            [0x70, 0x10, 0xF0, 0xF0, 0xC0, 0xF0, 0xFF, 0x00]
        );
        o.kind = OutcomeKind::OnlineRequest;
        o.cvm = Cvm::Signature;
        assert_eq!(
            o.parameter_set(),
            [0x30, 0xF0, 0xF0, 0x10, 0xA8, 0xF0, 0xFF, 0x00]
        );
        o.kind = OutcomeKind::TryAnotherInterface;
        assert_eq!(o.parameter_set()[5], 0x10);
    }
}
