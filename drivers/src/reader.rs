//! The contactless card reader trait.

use std::future::Future;
use std::time::Duration;

/// Why a reader operation failed. Every variant is a reason code that reaches the user and
/// the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReaderErrorKind {
    /// No reader is connected or it could not be opened.
    NoReader,
    /// The reader reset or re-enumerated during the operation.
    ReaderReset,
    /// The card left the field during an exchange.
    CardLost,
    /// Nothing happened within the allowed time.
    Timeout,
    /// The reader or card broke the transport protocol.
    Protocol,
    /// The operating system refused access to the device.
    Permission,
    /// More than one card is in the field (Book A §9.4: "present one card only").
    Collision,
    /// The reader did not acknowledge a command (it is unpowered, unplugged or asleep).
    NoAnswer,
    /// A frame from the reader kept arriving with a wrong checksum (noise on the line).
    BadChecksum,
}

impl ReaderErrorKind {
    /// Stable reason code for logs, JSON and the journal.
    pub fn code(self) -> &'static str {
        match self {
            ReaderErrorKind::NoReader => "no_reader",
            ReaderErrorKind::ReaderReset => "reader_reset",
            ReaderErrorKind::CardLost => "card_lost",
            ReaderErrorKind::Timeout => "timeout",
            ReaderErrorKind::Protocol => "protocol",
            ReaderErrorKind::Permission => "permission",
            ReaderErrorKind::Collision => "collision",
            ReaderErrorKind::NoAnswer => "no_answer",
            ReaderErrorKind::BadChecksum => "bad_checksum",
        }
    }
}

/// A reader failure: the reason and a short human-readable detail (never card data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("card reader: {} ({detail})", kind.code())]
pub struct ReaderError {
    /// The reason code.
    pub kind: ReaderErrorKind,
    /// What was being done, for people.
    pub detail: String,
}

impl ReaderError {
    /// An error of `kind` with a detail.
    pub fn new(kind: ReaderErrorKind, detail: impl Into<String>) -> Self {
        ReaderError {
            kind,
            detail: detail.into(),
        }
    }
}

/// What the reader learnt when a card entered the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardInfo {
    /// ISO/IEC 14443 type: `'A'` or `'B'`.
    pub technology: char,
    /// The anti-collision identifier (UID or PUPI). Random for most payment cards.
    pub uid: Vec<u8>,
}

/// A contactless reader that exchanges APDUs with one card at a time.
///
/// Every method takes a timeout and must return within it: a reader that hangs is a reader
/// error with [`ReaderErrorKind::Timeout`], never a hang of the terminal.
pub trait CardReader: Send {
    /// Polls until a card is in the field and activated, or `timeout` passes.
    fn wait_for_card(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<CardInfo, ReaderError>> + Send;

    /// Sends a command APDU and returns the response APDU (data and SW1 SW2).
    fn transceive(
        &mut self,
        capdu: &[u8],
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<u8>, ReaderError>> + Send;

    /// Waits until the card has left the field (Book A §9.5 "card removal"), or `timeout`.
    fn wait_for_removal(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), ReaderError>> + Send;

    /// A short name for logs and `kassa readers`.
    fn name(&self) -> String;
}
