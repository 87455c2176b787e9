//! The transaction engine: one payment from amount to receipt, and the operations on earlier
//! ones (void, completion, forwarding what the host is owed).
//!
//! ```text
//! idle --> amount (refused: journal `refused` + reason) --> journal: started
//!   --> card (wait for the tap, kernel APDUs; Try Again restarts here) --> card_read
//!   --> [kernel approved offline] offline_approved, advice owed
//!   --> [online request] owed reversals and advices first; the request and its reversal
//!       sealed; journal: authorising --> Link::exchange
//!   --> approved | declined (answer recorded atomically with the reversal disarmed)
//!     | reversal_pending (sent, no usable answer, or the operator cancelled)
//!     | offline_approved (not sent, store-and-forward allowed) | host_unreachable
//!   --> result --> receipt (stored in the journal before printing, then marked printed)
//! ```
//! The journal is written before each step that cannot be undone: the row exists before the
//! card is read, and the state is `authorising` with the reversal armed before the request
//! leaves, so a crash or a timeout after that point leaves a transaction that recovery knows
//! to reverse. Every wait has a limit: the tap (`[reader] card_timeout_ms`), each APDU
//! (`apdu_timeout_ms`), the connection and the answer (`[acquirer]` timeouts).

use std::time::{Duration, Instant};

use acquirer::Link;
use acquirer::messages::{
    AuthorizationRequest, AuthorizationResponse, ProcessingCode, response_text,
};
use chrono::{Datelike, Timelike};
use drivers::{CardReader, ReaderError};
use emv::card::Track2;
use emv::config::{TerminalConfig, TxnInput, TxnType};
use emv::entry::{EntryPoint, Step};
use emv::outcome::{Outcome, OutcomeKind};
use emv::tags as t;
use emv::torn::TornRecord;
use emv::util::{Date, Time};
use tokio::sync::{mpsc, watch};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::journal::{CardFacts, HostRecord, Journal, JournalError, TxnState};
use crate::pinpad::{PinEnd, PinPad, PinPrompt};

/// The kind of transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    /// A sale (purchase).
    Sale,
    /// A refund.
    Refund,
    /// A pre-authorization: the amount is held (POS condition 06), a completion settles it.
    PreAuth,
    /// The completion of a pre-authorization (0220, no card).
    Completion,
}

impl TxnKind {
    /// Name used in JSON, the journal and receipts.
    pub fn name(self) -> &'static str {
        match self {
            TxnKind::Sale => "sale",
            TxnKind::Refund => "refund",
            TxnKind::PreAuth => "preauth",
            TxnKind::Completion => "completion",
        }
    }
}

/// What a transaction refers to, beyond its kind and amount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxnExtras {
    /// The journal row this one refers to (a refund's sale).
    pub original_id: Option<i64>,
    /// Tip included in the amount (taxi mode), minor units.
    pub tip_minor: u64,
}

/// Test hook for the crash test (docs/CLI.md, "Testing hooks"): when the environment
/// variable `KASSA_TEST_PAUSE_AT` names `point`, prints `KASSA_PAUSED <point>` on stderr and
/// stops there (the test then kills the process with SIGKILL). Points: `started`,
/// `card_read`, `authorising`, `answered`, `approved`, `offline_approved`, `receipt_stored`,
/// `reversal_sent`, `advice_sent`, `void_armed`, `completion_queued`.
///
/// `KASSA_TEST_PANIC_AT` names a point at which to panic instead, for the crash report test.
pub fn pause_point(point: &str) {
    if std::env::var("KASSA_TEST_PANIC_AT").is_ok_and(|p| p == point) {
        panic!("test panic at {point}");
    }
    if std::env::var("KASSA_TEST_PAUSE_AT").is_ok_and(|p| p == point) {
        use std::io::Write;
        eprintln!("KASSA_PAUSED {point}");
        let _ = std::io::stderr().flush();
        std::thread::sleep(Duration::from_secs(600));
    }
}

/// Terminal data that replaces what the engine would take from the clock and the random
/// source (for replaying a recorded trace).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Unpredictable number (9F37).
    pub unpredictable_number: Option<[u8; 4]>,
    /// Transaction date (9A).
    pub date: Option<Date>,
    /// Transaction time (9F21).
    pub time: Option<Time>,
}

/// Progress the UI shows (EMV Book A §9: messages and status lights).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// Waiting for a tap: first light on.
    WaitingForCard,
    /// A card is in the field: kernel running.
    CardDetected,
    /// The card has been read: all four lights and the success tone; remove the card. With
    /// the card's Language Preference (5F2D, most preferred first) and issuer country (5F28),
    /// so the customer screens can switch to the cardholder's language.
    CardRead {
        /// ISO 639-1 codes from 5F2D.
        languages: Vec<String>,
        /// ISO 3166-1 numeric issuer country.
        issuer_country: Option<u16>,
    },
    /// The card asked for an online PIN: the PIN pad is taking it.
    PinEntry,
    /// Waiting for the host.
    Authorising,
    /// The kernel asked for the card again (Outcome Try Again): its UI request ("Present
    /// card again", "See phone").
    PresentAgain(emv::outcome::UiRequest),
    /// The host registered a QR order: show the code until it is paid or `timeout_s` passes.
    QrShown {
        /// The EMVCo merchant-presented payload to draw.
        payload: String,
        /// The transaction's reference (62.05).
        reference: String,
        /// How long the customer has.
        timeout_s: u64,
    },
}

/// Associated data for sealing torn records.
const TORN_CONTEXT: &[u8] = b"kassa torn record";

/// What the host said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAnswer {
    /// ISO 8583 response code.
    pub response_code: String,
    /// Its meaning in English.
    pub response_text: String,
    /// Authorization code, when approved.
    pub auth_code: Option<String>,
    /// Retrieval reference number.
    pub rrn: Option<String>,
    /// Negotiated TLS version.
    pub tls_version: String,
    /// Issuer EMV data (field 55), hex.
    pub icc_data: Vec<u8>,
}

/// Failure classes, which decide the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Refused by the terminal's own rules: bad input (exit code 2).
    Refused,
    /// The host could not be reached or did not answer (exit code 3).
    Host,
    /// Reader, card, journal or anything else (exit code 1).
    Other,
}

/// A failure that ended the transaction without an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnError {
    /// Class.
    pub failure: Failure,
    /// Stable reason code.
    pub code: String,
    /// One line for people.
    pub message: String,
}

/// Milliseconds spent per stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// From card detected to kernel outcome.
    pub card_ms: u64,
    /// The host exchange.
    pub host_ms: u64,
    /// The whole transaction, from the tap to the result.
    pub total_ms: u64,
}

/// Everything about one finished transaction.
#[derive(Debug, Clone)]
pub struct TxnResult {
    /// `approved`, `declined`, `try_another_interface`, `end_application`, `host_unreachable`,
    /// `reversal_pending`, `card_error`, `cancelled`.
    pub outcome: String,
    /// Transaction kind.
    pub kind: TxnKind,
    /// Amount in minor units.
    pub amount_minor: u64,
    /// STAN.
    pub stan: u32,
    /// Journal row.
    pub journal_id: i64,
    /// The journal state it ended in.
    pub journal_state: TxnState,
    /// The kernel's outcome, when the card was read.
    pub kernel: Option<Box<Outcome>>,
    /// The host's answer.
    pub host: Option<HostAnswer>,
    /// When it ended badly, why.
    pub error: Option<TxnError>,
    /// Why an outcome that is not an error came about without the kernel's reason (a card
    /// removed mid-transaction).
    pub reason: Option<String>,
    /// How many times the card was presented (more than 1 after Try Again).
    pub presentations: u32,
    /// Timings.
    pub timing: Timing,
    /// Local date and time of the transaction.
    pub when: chrono::DateTime<chrono::Local>,
    /// Approved by the terminal without the host (card offline approval, store-and-forward):
    /// the response code it set (Y1, Y3) and its approval code. An advice is owed.
    pub offline: Option<(String, String)>,
    /// What it refers to and its tip.
    pub extras: TxnExtras,
    /// The batch it belongs to (closed by `kassa report z`).
    pub batch: i64,
    /// A QR payment's reference, mode, wallet and status checks.
    pub qr: Option<crate::qrpay::QrInfo>,
}

impl TxnResult {
    /// Ends the transaction without an outcome: records the state and reason in the journal.
    pub(crate) fn fail(
        &mut self,
        journal: &mut Journal,
        state: TxnState,
        failure: Failure,
        code: &str,
        message: String,
    ) -> Result<(), JournalError> {
        self.outcome = state.name().to_string();
        self.journal_state = state;
        self.error = Some(TxnError {
            failure,
            code: code.to_string(),
            message,
        });
        journal.set_state(self.journal_id, state, Some(code))
    }

    /// True when the money moved (approved).
    pub fn approved(&self) -> bool {
        self.outcome == "approved"
    }

    /// A transaction refused before any card or host was involved (bad amount, refund above
    /// the original, wrong supervisor PIN...), recorded in the journal as `refused`.
    pub fn refused(
        journal: &mut Journal,
        kind: TxnKind,
        amount_minor: u64,
        currency: u16,
        extras: TxnExtras,
        code: &str,
        message: String,
    ) -> Result<TxnResult, JournalError> {
        TxnResult::ended_early(
            journal,
            kind,
            amount_minor,
            currency,
            extras,
            (TxnState::Refused, Failure::Refused),
            code,
            message,
        )
    }

    /// A transaction that ended before any card or host was involved (refused by the
    /// terminal's rules, or no code from the scanner): journalled in `state` with `code`.
    #[allow(clippy::too_many_arguments)]
    pub fn ended_early(
        journal: &mut Journal,
        kind: TxnKind,
        amount_minor: u64,
        currency: u16,
        extras: TxnExtras,
        (state, failure): (TxnState, Failure),
        code: &str,
        message: String,
    ) -> Result<TxnResult, JournalError> {
        let id = journal.begin(kind.name(), amount_minor, currency, 0)?;
        journal.set_details(id, extras.original_id, extras.tip_minor)?;
        journal.set_state(id, state, Some(code))?;
        let mut r = TxnResult::start(kind, amount_minor, 0, id, chrono::Local::now(), extras);
        r.batch = journal.current_batch().unwrap_or(1);
        r.outcome = state.name().into();
        r.journal_state = state;
        r.error = Some(TxnError {
            failure,
            code: code.to_string(),
            message,
        });
        Ok(r)
    }

    /// A transaction just begun (journal row `id`, state `started`), nothing known yet.
    pub(crate) fn start(
        kind: TxnKind,
        amount_minor: u64,
        stan: u32,
        journal_id: i64,
        when: chrono::DateTime<chrono::Local>,
        extras: TxnExtras,
    ) -> TxnResult {
        TxnResult {
            outcome: String::new(),
            kind,
            amount_minor,
            stan,
            journal_id,
            journal_state: TxnState::Started,
            kernel: None,
            host: None,
            error: None,
            reason: None,
            presentations: 0,
            timing: Timing::default(),
            when,
            offline: None,
            extras,
            batch: 1,
            qr: None,
        }
    }
}

/// The engine with its parts.
pub struct Engine<R: CardReader> {
    /// Configuration.
    pub config: Config,
    kernel_config: TerminalConfig,
    /// The card reader.
    pub reader: R,
    /// The acquirer link.
    pub link: Link,
    /// The journal.
    pub journal: Journal,
    vault: crate::vault::Vault,
    events: Option<mpsc::UnboundedSender<EngineEvent>>,
    /// Where online PINs come from, and the data directory holding the PIN key.
    pin_pad: Option<(Box<dyn PinPad>, std::path::PathBuf)>,
    /// This transaction's terminal can take an online PIN (a PIN pad and a loaded key).
    pin_capable: bool,
}

impl<R: CardReader> std::fmt::Debug for Engine<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("reader", &self.reader.name())
            .finish()
    }
}

fn unpredictable_number() -> [u8; 4] {
    let mut un = [0u8; 4];
    // The OS random source; if it fails, a time-derived value keeps the terminal working
    // (and the issuer still checks the cryptogram over whatever was sent).
    if getrandom::fill(&mut un).is_err() {
        let n = chrono::Utc::now().timestamp_subsec_nanos();
        un = n.to_be_bytes();
    }
    un
}

impl<R: CardReader> Engine<R> {
    /// Assembles an engine. The configuration must have passed [`Config::check`].
    pub fn new(
        config: Config,
        reader: R,
        link: Link,
        journal: Journal,
        vault: crate::vault::Vault,
    ) -> anyhow::Result<Self> {
        let kernel_config = config
            .terminal_config()
            .map_err(|(k, m)| anyhow::anyhow!("configuration {k}: {m}"))?;
        Ok(Engine {
            config,
            kernel_config,
            reader,
            link,
            journal,
            vault,
            events: None,
            pin_pad: None,
            pin_capable: false,
        })
    }

    /// A software update holds the terminal (`kassa update check --hold`, just before the
    /// reboot into the new slot): the payment is refused with `updating` before anything
    /// starts. (`Journal::begin` also refuses atomically, should a hold land in between.)
    pub(crate) fn refuse_while_updating(
        &mut self,
        kind: TxnKind,
        amount_minor: u64,
        extras: TxnExtras,
    ) -> Result<Option<TxnResult>, JournalError> {
        if self.journal.update_hold()?.is_none() {
            return Ok(None);
        }
        let currency = self.config.terminal.currency;
        TxnResult::refused(
            &mut self.journal,
            kind,
            amount_minor,
            currency,
            extras,
            "updating",
            JournalError::UpdateHold.to_string(),
        )
        .map(Some)
    }

    /// Puts a new configuration in force (a configuration bundle, docs/FLEET.md): limits, AIDs,
    /// CA keys, receipt header and the rest apply from the next transaction. A transaction
    /// holds the engine mutably from start to end, so this can only happen between two. The
    /// reader, link and journal stay (a bundle cannot change `[acquirer]` or `[reader]`).
    pub fn reconfigure(&mut self, config: Config) -> anyhow::Result<()> {
        let kernel_config = config
            .terminal_config()
            .map_err(|(k, m)| anyhow::anyhow!("configuration {k}: {m}"))?;
        self.config = config;
        self.kernel_config = kernel_config;
        Ok(())
    }

    /// Takes online PINs from `pad`, enciphered under the PIN key loaded in `data_dir`
    /// ([`crate::keys`]). Without a PIN pad, or while no key is loaded, the terminal tells
    /// cards it cannot take an online PIN.
    pub fn with_pin_pad(mut self, pad: Box<dyn PinPad>, data_dir: std::path::PathBuf) -> Self {
        self.pin_pad = Some((pad, data_dir));
        self
    }

    /// Whether an online PIN can be taken now: a PIN pad and a readable PIN key whose
    /// counter is not exhausted. A test key (the simulator's published BDK) counts only
    /// while the acquirer is the built-in simulator: a real acquirer never gets a PIN under
    /// a key anyone can derive.
    pub fn online_pin_ready(&self) -> bool {
        self.pin_pad.as_ref().is_some_and(|(_, dir)| {
            match crate::keys::status(dir, &self.vault, &self.journal) {
                Ok(s) if s.test && !self.config.acquirer.simulator => {
                    tracing::warn!(
                        "the loaded PIN key is the simulator's test key: no online PIN with a real acquirer (kassa keys load)"
                    );
                    false
                }
                Ok(s) => s.next_ksn.is_some(),
                Err(_) => false,
            }
        })
    }

    /// Terminal Transaction Qualifiers byte 1 bit 3, "online PIN supported" (EMV Book C-3
    /// §5.2.2, C-7), follows what the terminal can do for this transaction, whatever the
    /// configured TTQ says: cards then choose a CVM the terminal can perform.
    fn apply_pin_capability(&mut self) {
        self.pin_capable = self.online_pin_ready();
        for c in &mut self.kernel_config.combinations {
            if let Some(ttq) = c.ttq.as_mut() {
                if self.pin_capable {
                    ttq[0] |= 0x04;
                } else {
                    ttq[0] &= !0x04;
                }
            }
        }
    }

    /// Asks the PIN pad for the cardholder's PIN and enciphers it at once under the next
    /// DUKPT PIN key (the counter is written to the journal before the key is derived):
    /// ISO 9564-1 format 4 with a random fill under AES DUKPT, format 0 under TDES DUKPT.
    /// The digits are zeroized when this returns.
    async fn collect_pin(
        &mut self,
        outcome: &Outcome,
        amount_minor: u64,
    ) -> Result<acquirer::pin::EncipheredPin, (TxnState, String, String)> {
        let card = outcome.card.as_ref();
        let pan = card
            .and_then(|c| c.pan.as_ref())
            .map(|p| Zeroizing::new(p.expose().to_string()))
            .ok_or((
                TxnState::CardError,
                "card_data".to_string(),
                "card gave no PAN".to_string(),
            ))?;
        let prompt = PinPrompt {
            amount: format!(
                "{} {}",
                self.config.terminal.currency_code,
                ui::amount::format_minor(amount_minor, self.config.terminal.currency_exponent)
            ),
            scheme: card.and_then(|c| c.label.clone()).unwrap_or_else(|| {
                card.map(|c| c.scheme.name().to_string())
                    .unwrap_or_default()
            }),
            languages: card.map(|c| c.languages.clone()).unwrap_or_default(),
            timeout: Duration::from_secs(self.config.ui.pin_timeout_s),
        };
        // A card can still ask (a kernel 2 configuration offering online PIN, a key that ran
        // out since the transaction began): the cardholder is not asked for a PIN that
        // cannot be sent.
        if !self.pin_capable {
            return Err((
                TxnState::Declined,
                PinEnd::Unavailable.code().into(),
                "the card asks for an online PIN and this terminal cannot take one now".into(),
            ));
        }
        self.emit(EngineEvent::PinEntry);
        let Some((pad, dir)) = self.pin_pad.as_mut() else {
            return Err((
                TxnState::Declined,
                PinEnd::Unavailable.code().into(),
                "the card asks for an online PIN and this terminal has no PIN pad".into(),
            ));
        };
        let dir = dir.clone();
        let pin = pad.enter(&prompt).await.map_err(|end| {
            let state = match end {
                PinEnd::Unavailable => TxnState::Declined,
                _ => TxnState::Cancelled,
            };
            (
                state,
                end.code().to_string(),
                format!("PIN entry ended: {}", end.code()),
            )
        })?;
        let key = crate::keys::next_pin_key(&dir, &self.vault, &mut self.journal)
            .map_err(|e| (TxnState::Declined, e.code().to_string(), e.to_string()))?;
        let mut fill = [0u8; 8];
        getrandom::fill(&mut fill).map_err(|e| {
            (
                TxnState::Declined,
                "pin_random".to_string(),
                format!("no random fill for the PIN block: {e}"),
            )
        })?;
        key.encipher(pin.expose(), &pan, &fill)
            .map_err(|e| (TxnState::Declined, "pin_block".to_string(), e.to_string()))
    }

    /// Sends progress events to `tx` (the UI).
    pub fn with_events(mut self, tx: mpsc::UnboundedSender<EngineEvent>) -> Self {
        self.events = Some(tx);
        self
    }

    /// Sends progress events to `tx` from now on (the UI, one transaction at a time).
    pub fn set_events(&mut self, tx: mpsc::UnboundedSender<EngineEvent>) {
        self.events = Some(tx);
    }

    /// Stops sending progress events (the UI's receiver can end).
    pub fn detach_events(&mut self) {
        self.events = None;
    }

    pub(crate) fn emit(&self, e: EngineEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    /// Runs one sale or refund with terminal data taken from `overrides` where given (a
    /// replayed trace).
    pub async fn run_with(
        &mut self,
        kind: TxnKind,
        amount_minor: u64,
        cancel: Option<watch::Receiver<bool>>,
        overrides: Overrides,
    ) -> Result<TxnResult, JournalError> {
        self.run_full(kind, amount_minor, TxnExtras::default(), cancel, overrides)
            .await
    }

    /// Runs one card transaction (sale, refund or pre-authorization). The caller has checked
    /// the amount and what the transaction refers to; `cancel` turning true stops it at any
    /// step (while the request is out, the request is reversed).
    pub async fn run_full(
        &mut self,
        kind: TxnKind,
        amount_minor: u64,
        extras: TxnExtras,
        mut cancel: Option<watch::Receiver<bool>>,
        overrides: Overrides,
    ) -> Result<TxnResult, JournalError> {
        let when = chrono::Local::now();
        let currency = self.config.terminal.currency;
        if let Some(refused) = self.refuse_while_updating(kind, amount_minor, extras)? {
            return Ok(refused);
        }
        let stan = self.journal.next_stan()?;
        let id = self
            .journal
            .begin(kind.name(), amount_minor, currency, stan)?;
        if extras != TxnExtras::default() {
            self.journal
                .set_details(id, extras.original_id, extras.tip_minor)?;
        }
        let mut result = TxnResult::start(kind, amount_minor, stan, id, when, extras);
        result.batch = self.journal.current_batch().unwrap_or(1);
        self.apply_pin_capability();
        pause_point("started");
        // 1-2. Wait for the tap and run the kernel; on Outcome Try Again (Book A §6.2: the
        // card left, or a phone asks to be presented again) restart at Start B with the same
        // amount and a new unpredictable number, up to `[reader] max_presentations` taps.
        let card_timeout = Duration::from_millis(self.config.reader.card_timeout_ms);
        let max_presentations = self.config.reader.max_presentations.max(1);
        let mut started: Instant;
        let outcome = loop {
            result.presentations += 1;
            if result.presentations == 1 {
                self.emit(EngineEvent::WaitingForCard);
            }
            let waited = match cancel.as_mut() {
                Some(rx) => {
                    tokio::select! {
                        r = self.reader.wait_for_card(card_timeout) => Some(r),
                        _ = rx.wait_for(|c| *c) => None,
                    }
                }
                None => Some(self.reader.wait_for_card(card_timeout).await),
            };
            match waited {
                None => {
                    result.outcome = "cancelled".into();
                    result.journal_state = TxnState::Cancelled;
                    self.journal
                        .set_state(id, TxnState::Cancelled, Some("operator"))?;
                    return Ok(result);
                }
                // Asked to present the card again, the cardholder did not: the transaction
                // ends with the Try Again it already had.
                Some(Err(e)) if result.presentations > 1 => {
                    result.outcome = "try_again".into();
                    result.journal_state = TxnState::Ended;
                    result.reason = Some(format!("not presented again: {e}"));
                    self.journal
                        .set_state(id, TxnState::Ended, Some("not presented again"))?;
                    return Ok(result);
                }
                Some(Err(e)) => {
                    result.fail(
                        &mut self.journal,
                        TxnState::CardError,
                        Failure::Other,
                        e.kind.code(),
                        e.to_string(),
                    )?;
                    return Ok(result);
                }
                Some(Ok(_)) => {}
            }
            self.emit(EngineEvent::CardDetected);
            started = Instant::now();
            let input = TxnInput {
                amount: amount_minor,
                amount_other: 0,
                currency,
                currency_exponent: self.config.terminal.currency_exponent,
                txn_type: match kind {
                    TxnKind::Refund => TxnType::Refund,
                    _ => TxnType::Purchase,
                },
                date: overrides.date.unwrap_or(Date {
                    year: when.year() as u16,
                    month: when.month() as u8,
                    day: when.day() as u8,
                }),
                time: overrides.time.unwrap_or(Time {
                    hour: when.hour() as u8,
                    minute: when.minute() as u8,
                    second: when.second() as u8,
                }),
                unpredictable_number: overrides
                    .unpredictable_number
                    .unwrap_or_else(unpredictable_number),
                torn_log: Vec::new(),
            };
            let again = result.presentations < max_presentations;
            match self.run_kernel(input, id).await {
                Ok(o) if o.kind == OutcomeKind::TryAgain && again => {
                    self.emit(EngineEvent::PresentAgain(o.ui));
                    result.kernel = Some(Box::new(o));
                }
                Ok(o) => break o,
                Err(KernelRunError::CardLost(o, _)) if again => {
                    self.emit(EngineEvent::PresentAgain(o.ui));
                    result.kernel = Some(o);
                }
                Err(KernelRunError::CardLost(o, detail)) => {
                    // Book A §6.2 / Book B §3.5: the card left during the kernel: the
                    // kernel's Outcome Try Again, "Present card again", and no more
                    // presentations are allowed.
                    result.outcome = "try_again".into();
                    result.journal_state = TxnState::Ended;
                    result.reason = Some(format!("card_lost: {detail}"));
                    result.kernel = Some(o);
                    self.journal
                        .set_state(id, TxnState::Ended, Some("card_lost"))?;
                    result.timing.card_ms = started.elapsed().as_millis() as u64;
                    result.timing.total_ms = result.timing.card_ms;
                    return Ok(result);
                }
                Err(KernelRunError::Reader(e)) => {
                    result.fail(
                        &mut self.journal,
                        TxnState::CardError,
                        Failure::Other,
                        e.kind.code(),
                        e.to_string(),
                    )?;
                    result.timing.card_ms = started.elapsed().as_millis() as u64;
                    result.timing.total_ms = result.timing.card_ms;
                    return Ok(result);
                }
                Err(KernelRunError::Start(msg)) => {
                    result.fail(
                        &mut self.journal,
                        TxnState::CardError,
                        Failure::Other,
                        "kernel_start",
                        msg,
                    )?;
                    return Ok(result);
                }
            }
        };
        // Card detected to the kernel's outcome ("remove card"): the card-in-field time.
        result.timing.card_ms = started.elapsed().as_millis() as u64;
        let apdu_timeout = Duration::from_millis(self.config.reader.apdu_timeout_ms);
        if let Err(e) = self.reader.wait_for_removal(apdu_timeout).await {
            tracing::debug!(error = %e, "card not removed");
        }
        let masked = outcome
            .card
            .as_ref()
            .and_then(|c| c.pan.as_ref())
            .map(|p| p.masked());
        if let Some(card) = &outcome.card {
            self.journal.set_card(
                id,
                &CardFacts {
                    pan_masked: masked.clone(),
                    scheme: Some(card.scheme.name().to_string()),
                    aid: Some(emv::util::hex(&card.aid)),
                },
            )?;
        }
        self.journal.set_state(id, TxnState::CardRead, None)?;
        self.emit(EngineEvent::CardRead {
            languages: outcome
                .card
                .as_ref()
                .map(|c| c.languages.clone())
                .unwrap_or_default(),
            issuer_country: outcome
                .data
                .get(t::ISSUER_COUNTRY)
                .and_then(emv::util::parse_bcd_n)
                .and_then(|c| u16::try_from(c).ok()),
        });
        pause_point("card_read");

        // A referenced refund goes back to the card that paid.
        if kind == TxnKind::Refund
            && let Some(orig) = extras.original_id
        {
            let paid_with = self.journal.get(orig)?.and_then(|r| r.pan_masked);
            if paid_with.is_none() || paid_with != masked {
                result.kernel = Some(Box::new(outcome));
                result.fail(
                    &mut self.journal,
                    TxnState::Refused,
                    Failure::Refused,
                    "refund_card_mismatch",
                    format!("transaction {orig} was paid with another card"),
                )?;
                return Ok(result);
            }
        }
        if cancel.as_ref().is_some_and(|rx| *rx.borrow()) {
            result.kernel = Some(Box::new(outcome));
            result.outcome = "cancelled".into();
            result.journal_state = TxnState::Cancelled;
            self.journal
                .set_state(id, TxnState::Cancelled, Some("operator"))?;
            return Ok(result);
        }

        // 3. Offline outcomes end here. A card's offline approval is owed to the host as an
        // advice (the clearing record with the TC).
        if outcome.kind != OutcomeKind::OnlineRequest {
            if outcome.kind == OutcomeKind::Approved && kind != TxnKind::Sale {
                // A pre-authorization must hold funds at the issuer and a refund is cleared
                // online: a card's offline approval of either is not accepted.
                let reason = format!("offline_not_for_{}", kind.name());
                self.journal
                    .set_state(id, TxnState::Declined, Some(&reason))?;
                result.outcome = "declined".into();
                result.journal_state = TxnState::Declined;
                result.reason = Some(reason);
                result.kernel = Some(Box::new(outcome));
                result.timing.total_ms = started.elapsed().as_millis() as u64;
                return Ok(result);
            }
            if outcome.kind == OutcomeKind::Approved {
                let code = format!("Y1{:04}", stan % 10_000);
                let sealed = self
                    .authorization_request(&outcome, kind, amount_minor, stan, when)
                    .ok()
                    .and_then(|r| r.to_message().ok())
                    .and_then(|m| {
                        let advice = acquirer::messages::advice(&m, &code, false);
                        self.seal_message(&advice, id)
                    });
                result.kernel = Some(Box::new(outcome));
                result.timing.total_ms = started.elapsed().as_millis() as u64;
                result.outcome = "approved".into();
                match sealed {
                    Some(sealed) => {
                        self.journal.record_offline(
                            id,
                            "Y1",
                            &code,
                            &sealed,
                            "card approved offline",
                        )?;
                        result.journal_state = TxnState::OfflineApproved;
                        result.offline = Some(("Y1".into(), code));
                    }
                    None => {
                        // No clearing record could be built or sealed: the merchant would never
                        // be paid, so the sale is not approved.
                        result.fail(
                            &mut self.journal,
                            TxnState::CardError,
                            Failure::Other,
                            "seal_failed",
                            "the clearing record of the offline approval could not be stored"
                                .into(),
                        )?;
                        return Ok(result);
                    }
                }
                pause_point("offline_approved");
                return Ok(result);
            }
            let (state, name) = match outcome.kind {
                OutcomeKind::Declined => (TxnState::Declined, "declined"),
                other => (TxnState::Ended, other.name()),
            };
            self.journal
                .set_state(id, state, Some(&outcome.reason.to_string()))?;
            result.outcome = name.to_string();
            result.journal_state = state;
            result.kernel = Some(Box::new(outcome));
            result.timing.total_ms = started.elapsed().as_millis() as u64;
            return Ok(result);
        }

        // 4. Online. The card chose online PIN (Book C-3 §5.7): the cardholder enters it now,
        // the card already away, and it travels enciphered in fields 52 and 53.
        let pin = if outcome.cvm == emv::outcome::Cvm::OnlinePin {
            // The operator can cancel while the cardholder is at the PIN pad.
            let collected = match cancel.as_mut() {
                Some(rx) => {
                    tokio::select! {
                        r = self.collect_pin(&outcome, amount_minor) => r,
                        _ = rx.wait_for(|c| *c) => Err((
                            TxnState::Cancelled,
                            "operator".to_string(),
                            "cancelled by the operator during PIN entry".to_string(),
                        )),
                    }
                }
                None => self.collect_pin(&outcome, amount_minor).await,
            };
            match collected {
                Ok(p) => Some(p),
                Err((state, code, message)) => {
                    result.kernel = Some(Box::new(outcome));
                    result.outcome = state.name().to_string();
                    result.journal_state = state;
                    result.reason = Some(code.clone());
                    if state == TxnState::CardError {
                        result.fail(&mut self.journal, state, Failure::Other, &code, message)?;
                    } else {
                        tracing::info!(reason = %code, "online PIN not taken: {message}");
                        self.journal.set_state(id, state, Some(&code))?;
                    }
                    result.timing.total_ms = started.elapsed().as_millis() as u64;
                    return Ok(result);
                }
            }
        } else {
            None
        };
        let request = match self
            .authorization_request(&outcome, kind, amount_minor, stan, when)
            .map(|mut r| {
                r.pin = pin;
                r
            }) {
            Ok(r) => r,
            Err(msg) => {
                result.kernel = Some(Box::new(outcome));
                result.fail(
                    &mut self.journal,
                    TxnState::CardError,
                    Failure::Other,
                    "card_data",
                    msg,
                )?;
                return Ok(result);
            }
        };
        let offline_check = self.offline_allowed(&outcome, kind, amount_minor);
        result.kernel = Some(Box::new(outcome));
        let message = match request.to_message() {
            Ok(m) => m,
            Err(e) => {
                result.fail(
                    &mut self.journal,
                    TxnState::CardError,
                    Failure::Other,
                    "card_data",
                    e.to_string(),
                )?;
                return Ok(result);
            }
        };
        // What earlier transactions owe the host goes first (ISO 8583 practice: the host must
        // see advices and reversals before new business from this terminal).
        let _ = self.sync().await;
        // The reversal is stored, sealed, before the request leaves: if the answer never comes,
        // even across a crash, the journal knows what to reverse. The request itself is kept
        // for a void (without card data) or a completion (a pre-authorization, sealed).
        let reversal = acquirer::messages::reversal(&message, false);
        let sealed = self.seal_message(&reversal, id);
        let keep = if kind == TxnKind::PreAuth {
            // The completion is built from it: everything but the PIN data, which is never
            // kept once it has been sent.
            let mut kept = message.clone();
            kept.remove(52).remove(53);
            self.seal_message(&kept, id)
        } else {
            self.seal_message(&void_template(&message), id)
        };
        let (Some(sealed), Some(keep)) = (sealed, keep) else {
            // Without its reversal stored, a request must not leave.
            result.fail(
                &mut self.journal,
                TxnState::CardError,
                Failure::Other,
                "seal_failed",
                "the reversal could not be stored; nothing was sent".into(),
            )?;
            return Ok(result);
        };
        self.journal.arm_reversal(id, &sealed)?;
        self.journal.set_state(id, TxnState::Authorising, None)?;
        self.emit(EngineEvent::Authorising);
        pause_point("authorising");
        let host_started = Instant::now();
        let exchange = match cancel.as_mut() {
            Some(rx) => {
                tokio::select! {
                    r = self.link.exchange(&message) => Some(r),
                    _ = rx.wait_for(|c| *c) => None,
                }
            }
            None => Some(self.link.exchange(&message).await),
        };
        result.timing.host_ms = host_started.elapsed().as_millis() as u64;
        let Some(exchange) = exchange else {
            // Cancelled while the request was out: it may have reached the host. The
            // connection is dropped (a late answer is never read) and the request reversed.
            self.link.close().await;
            result.fail(
                &mut self.journal,
                TxnState::ReversalPending,
                Failure::Other,
                "operator_cancelled",
                "cancelled by the operator while authorising; the request is reversed".into(),
            )?;
            result.outcome = "cancelled".into();
            let _ = self.send_pending_reversals().await;
            if let Some(r) = self.journal.get(id)? {
                result.journal_state = TxnState::from_name(&r.state);
            }
            result.timing.total_ms = started.elapsed().as_millis() as u64;
            return Ok(result);
        };
        match exchange {
            Ok(ex) => {
                let answer = match AuthorizationResponse::from_message(&ex.response) {
                    Ok(a) => a,
                    Err(e) => {
                        // A response we cannot read: the host may have approved; reverse.
                        result.fail(
                            &mut self.journal,
                            TxnState::ReversalPending,
                            Failure::Host,
                            "bad_response",
                            e.to_string(),
                        )?;
                        result.timing.total_ms = started.elapsed().as_millis() as u64;
                        return Ok(result);
                    }
                };
                pause_point("answered");
                if answer.response_code == "10" {
                    // A partial approval: the terminal has no way to collect the rest, so the
                    // approval is reversed and the sale is not made.
                    result.fail(
                        &mut self.journal,
                        TxnState::ReversalPending,
                        Failure::Host,
                        "partial_approval",
                        "the host approved part of the amount; reversed".into(),
                    )?;
                    let _ = self.send_pending_reversals().await;
                    result.timing.total_ms = started.elapsed().as_millis() as u64;
                    return Ok(result);
                }
                let approved = answer.approved();
                let state = if approved {
                    TxnState::Approved
                } else {
                    TxnState::Declined
                };
                self.journal.record_answer(
                    id,
                    &HostRecord {
                        response_code: &answer.response_code,
                        auth_code: answer.auth_code.as_deref(),
                        rrn: answer.rrn.as_deref(),
                    },
                    state,
                    if approved { Some(&keep) } else { None },
                )?;
                result.outcome = state.name().to_string();
                result.journal_state = state;
                result.host = Some(HostAnswer {
                    response_text: response_text(&answer.response_code).to_string(),
                    response_code: answer.response_code,
                    auth_code: answer.auth_code,
                    rrn: answer.rrn,
                    tls_version: ex.tls_version,
                    icc_data: answer.icc_data,
                });
                if approved {
                    pause_point("approved");
                }
            }
            Err(e) if !e.request_sent => {
                // Nothing left the terminal: store-and-forward if the rules allow it.
                match offline_check {
                    Ok(()) => {
                        let code = format!("Y3{:04}", stan % 10_000);
                        let advice = acquirer::messages::advice(&message, &code, false);
                        match self.seal_message(&advice, id) {
                            Some(sealed) => {
                                self.journal.record_offline(
                                    id,
                                    "Y3",
                                    &code,
                                    &sealed,
                                    &format!("store-and-forward: {}", e.kind.code()),
                                )?;
                                result.outcome = "approved".into();
                                result.journal_state = TxnState::OfflineApproved;
                                result.offline = Some(("Y3".into(), code));
                                result.reason =
                                    Some(format!("approved offline: {}", e.kind.code()));
                                pause_point("offline_approved");
                            }
                            None => {
                                self.journal.record_unreachable(id, e.kind.code())?;
                                result.fail(
                                    &mut self.journal,
                                    TxnState::HostUnreachable,
                                    Failure::Host,
                                    e.kind.code(),
                                    e.to_string(),
                                )?;
                            }
                        }
                    }
                    Err(why) => {
                        self.journal.record_unreachable(id, e.kind.code())?;
                        result.fail(
                            &mut self.journal,
                            TxnState::HostUnreachable,
                            Failure::Host,
                            e.kind.code(),
                            format!("{e} (not approved offline: {why})"),
                        )?;
                    }
                }
            }
            Err(e) => {
                result.fail(
                    &mut self.journal,
                    TxnState::ReversalPending,
                    Failure::Host,
                    e.kind.code(),
                    e.to_string(),
                )?;
            }
        }
        result.timing.total_ms = started.elapsed().as_millis() as u64;
        Ok(result)
    }

    /// Seals an ISO 8583 message for the journal under the device key, bound to the row.
    pub(crate) fn seal_message(&self, m: &acquirer::Message, id: i64) -> Option<Vec<u8>> {
        let bytes = Zeroizing::new(m.encode(self.link.config().dialect).ok()?);
        self.vault.seal(&bytes, &id.to_be_bytes()).ok()
    }

    /// Opens a message sealed by [`seal_message`](Self::seal_message).
    pub(crate) fn open_message(&self, sealed: &[u8], id: i64) -> Result<acquirer::Message, String> {
        let plain = self
            .vault
            .open_sealed(sealed, &id.to_be_bytes())
            .map_err(|e| format!("unreadable: {e}"))?;
        acquirer::Message::decode(&plain, self.link.config().dialect)
            .map_err(|e| format!("undecodable: {e}"))
    }

    /// Store-and-forward rules (`[offline]`): may this transaction, whose request could not
    /// be sent, be approved by the terminal? Card risk: offline data authentication did not
    /// fail, the card has not expired, the CVM was done (online PIN cannot be), and the kernel
    /// asked for online only because of the terminal's limits. Err names the reason.
    fn offline_allowed(&self, o: &Outcome, kind: TxnKind, amount: u64) -> Result<(), String> {
        let cfg = &self.config;
        if !cfg.offline_enabled() {
            return Err("offline_disabled".into());
        }
        if kind != TxnKind::Sale {
            return Err(format!("offline_not_for_{}", kind.name()));
        }
        let scheme = o.card.as_ref().map(|c| c.scheme.name()).unwrap_or("other");
        if !cfg.offline.schemes.iter().any(|s| s == scheme) {
            return Err(format!("offline_scheme_{scheme}"));
        }
        if amount > cfg.offline_amount(&cfg.offline.max_amount) {
            return Err("offline_amount_cap".into());
        }
        let (count, total) = self.journal.offline_exposure().map_err(|e| e.to_string())?;
        if count + 1 > cfg.offline.max_count as u64 {
            return Err("offline_count_cap".into());
        }
        if total + amount > cfg.offline_amount(&cfg.offline.max_total) {
            return Err("offline_total_cap".into());
        }
        if matches!(o.oda, emv::outcome::Oda::Failed(_)) {
            return Err("offline_oda_failed".into());
        }
        if emv::tvr::tvr_has(&o.data, emv::tvr::EXPIRED_APPLICATION)
            || emv::tvr::tvr_has(&o.data, emv::tvr::CVM_NOT_SUCCESSFUL)
        {
            return Err("offline_card_risk".into());
        }
        if o.cvm == emv::outcome::Cvm::OnlinePin {
            return Err("offline_online_pin".into());
        }
        Ok(())
    }

    /// Sends every advice the journal owes (0220, repeats as 0221) until the host
    /// acknowledges it; the sealed copy is then erased. Returns (acknowledged, still pending).
    pub async fn send_pending_advices(&mut self) -> Result<(usize, usize), JournalError> {
        let pending = self.journal.pending_advices()?;
        let total = pending.len();
        let (mut done, mut left) = (0, 0);
        for (id, sealed, attempts) in pending {
            let mut msg = match self.open_message(&sealed, id) {
                Ok(m) => m,
                Err(e) => {
                    self.journal.advice_attempt(id, &e)?;
                    left += 1;
                    continue;
                }
            };
            if attempts > 0 {
                msg.mti = 221;
            }
            // Counted before it leaves: an advice with no attempt has certainly never reached
            // the host (a void may then withdraw it). Not counted (withdrawn meanwhile by a
            // void in another process): not sent.
            if !self.journal.advice_attempt(id, "sending")? {
                continue;
            }
            match self.link.exchange(&msg).await {
                Ok(ex) => {
                    pause_point("advice_sent");
                    let rc = ex.response.get_str(39).unwrap_or_default();
                    match rc.as_str() {
                        // Acknowledged (94: the host already had it).
                        "00" | "94" => {
                            let rrn = ex.response.get_str(37);
                            self.journal.advice_done(id, &rc, rrn.as_deref())?;
                            done += 1;
                        }
                        // The host could not take it now: it stays owed.
                        "91" | "96" | "68" | "19" => {
                            self.journal
                                .note(id, &format!("advice_unacknowledged rc {rc}"))?;
                            left += 1;
                        }
                        // Refused for good: the transaction is declined after all.
                        _ => {
                            self.journal.advice_refused(id, &rc)?;
                            done += 1;
                        }
                    }
                }
                Err(e) => {
                    self.journal
                        .note(id, &format!("advice_unacknowledged {}", e.kind.code()))?;
                    // The host is not answering: the rest would fail the same way.
                    left = total - done;
                    break;
                }
            }
        }
        Ok((done, left))
    }

    /// Everything the host is owed, in order: advices, then reversals. Advices go first so
    /// that the void of an offline approval whose advice was still owed reaches the host
    /// after the advice it cancels, never before.
    pub async fn sync(&mut self) -> Result<SyncReport, JournalError> {
        let (advices_done, advices_left) = self.send_pending_advices().await?;
        let (reversals_done, reversals_left) = self.send_pending_reversals().await?;
        let (qr_resolved, qr_unknown, qr_approved) = self.check_unknown_qr().await?;
        Ok(SyncReport {
            reversals_done,
            reversals_left,
            advices_done,
            advices_left,
            qr_resolved,
            qr_unknown,
            qr_approved,
        })
    }

    /// Voids transaction `id` (approved, in the open batch): an advice never sent is
    /// withdrawn; otherwise the request is reversed (0400) and the row is `void_pending` until
    /// the host acknowledges, then `voided`. Refusals carry a reason code.
    pub async fn void(
        &mut self,
        id: i64,
    ) -> Result<Result<TxnState, (String, String)>, JournalError> {
        let refuse = |code: &str, msg: String| Ok(Err((code.to_string(), msg)));
        let Some(row) = self.journal.get(id)? else {
            return refuse("not_found", format!("no transaction {id}"));
        };
        // A pre-authorization stays open across batches until completed or voided.
        if row.batch != self.journal.current_batch()? && row.txn_type != "preauth" {
            return refuse(
                "settled",
                format!("transaction {id} was settled with batch {}", row.batch),
            );
        }
        match row.state.as_str() {
            "approved" | "offline_approved" => {}
            "voided" | "void_pending" => {
                return refuse(
                    "already_voided",
                    format!("transaction {id} is already voided"),
                );
            }
            other => {
                return refuse(
                    "not_voidable",
                    format!("transaction {id} is {other}: only approved transactions are voided"),
                );
            }
        }
        if row.txn_type == "preauth" && self.journal.completion_of(id)?.is_some() {
            return refuse(
                "preauth_completed",
                format!("pre-authorization {id} is completed: void the completion"),
            );
        }
        if self.journal.refunded(id)? > 0 {
            return refuse(
                "refunded",
                format!("transaction {id} has refunds: void them first"),
            );
        }
        if row.advice == "pending" && self.journal.withdraw_advice(id)? {
            // Never sent: nothing reached the host, nothing to reverse.
            return Ok(Ok(TxnState::Voided));
        }
        if row.advice == "pending" {
            // The host may have the advice: it must be acknowledged before its reversal goes,
            // or the reversal could arrive first and the advice after it.
            let _ = self.send_pending_advices().await?;
            if self.journal.get(id)?.is_some_and(|r| r.advice == "pending") {
                return refuse(
                    "advice_pending",
                    format!(
                        "transaction {id} is still being forwarded to the host; void it once `kassa sync` succeeds"
                    ),
                );
            }
        }
        let Some(sealed) = self.journal.request_msg(id)? else {
            return refuse(
                "no_request",
                format!("transaction {id} has no stored request to reverse"),
            );
        };
        let original = match self.open_message(&sealed, id) {
            Ok(m) => m,
            Err(e) => return refuse("no_request", format!("transaction {id}: {e}")),
        };
        let reversal = acquirer::messages::reversal(&original, false);
        let Some(sealed_reversal) = self.seal_message(&reversal, id) else {
            return refuse("seal_failed", "the reversal could not be sealed".into());
        };
        self.journal.arm_void(id, &sealed_reversal)?;
        pause_point("void_armed");
        let _ = self.send_pending_reversals().await?;
        let state = self
            .journal
            .get(id)?
            .map(|r| TxnState::from_name(&r.state))
            .unwrap_or(TxnState::VoidPending);
        Ok(Ok(state))
    }

    /// Completes pre-authorization `preauth_id` with the final amount (0220 naming it, no
    /// card): within `[terminal] completion_tolerance_pct` above the held amount, once.
    pub async fn complete(
        &mut self,
        preauth_id: i64,
        amount_minor: u64,
    ) -> Result<TxnResult, JournalError> {
        let extras = TxnExtras {
            original_id: Some(preauth_id),
            tip_minor: 0,
        };
        let currency = self.config.terminal.currency;
        let refuse = |j: &mut Journal, code: &str, msg: String| {
            TxnResult::refused(
                j,
                TxnKind::Completion,
                amount_minor,
                currency,
                extras,
                code,
                msg,
            )
        };
        let Some(pre) = self.journal.get(preauth_id)? else {
            return refuse(
                &mut self.journal,
                "not_found",
                format!("no transaction {preauth_id}"),
            );
        };
        if pre.txn_type != "preauth" || pre.state != "approved" {
            return refuse(
                &mut self.journal,
                "not_completable",
                format!(
                    "transaction {preauth_id} is a {} in state {}: only approved pre-authorizations complete",
                    pre.txn_type, pre.state
                ),
            );
        }
        if let Some(c) = self.journal.completion_of(preauth_id)? {
            return refuse(
                &mut self.journal,
                "already_completed",
                format!("pre-authorization {preauth_id} was completed by transaction {c}"),
            );
        }
        let tolerance = self.config.terminal.completion_tolerance_pct as u64;
        let ceiling = pre.amount_minor + pre.amount_minor * tolerance / 100;
        if amount_minor > ceiling {
            return refuse(
                &mut self.journal,
                "completion_over_preauth",
                format!(
                    "the completion exceeds the pre-authorized {} by more than {tolerance}%",
                    ui::amount::format_minor(
                        pre.amount_minor,
                        self.config.terminal.currency_exponent
                    )
                ),
            );
        }
        let Some(original) = self
            .journal
            .request_msg(preauth_id)?
            .and_then(|s| self.open_message(&s, preauth_id).ok())
        else {
            return refuse(
                &mut self.journal,
                "no_request",
                format!("pre-authorization {preauth_id} has no stored request"),
            );
        };
        if self.journal.update_hold()?.is_some() {
            return refuse(
                &mut self.journal,
                "updating",
                JournalError::UpdateHold.to_string(),
            );
        }
        let when = chrono::Local::now();
        let stan = self.journal.next_stan()?;
        let id = self
            .journal
            .begin(TxnKind::Completion.name(), amount_minor, currency, stan)?;
        self.journal.set_details(id, Some(preauth_id), 0)?;
        self.journal.set_card(
            id,
            &CardFacts {
                pan_masked: pre.pan_masked.clone(),
                scheme: pre.scheme.clone(),
                aid: pre.aid.clone(),
            },
        )?;
        let auth = pre.auth_code.clone().unwrap_or_else(|| "000000".into());
        let transmission = when
            .with_timezone(&chrono::Utc)
            .format("%m%d%H%M%S")
            .to_string();
        let msg =
            acquirer::messages::completion(&original, &auth, amount_minor, stan, &transmission);
        let mut result =
            TxnResult::start(TxnKind::Completion, amount_minor, stan, id, when, extras);
        result.batch = self.journal.current_batch().unwrap_or(1);
        let Some(sealed) = self.seal_message(&msg, id) else {
            result.fail(
                &mut self.journal,
                TxnState::Ended,
                Failure::Other,
                "seal_failed",
                "the completion could not be sealed".into(),
            )?;
            return Ok(result);
        };
        // Queued before it is sent: from here the completion is owed to the host and a crash
        // or a dead link only delays it (repeated as 0221).
        self.journal
            .queue_advice(id, TxnState::Approved, &auth, &sealed, "completion")?;
        pause_point("completion_queued");
        let started = Instant::now();
        let _ = self.sync().await;
        result.timing.host_ms = started.elapsed().as_millis() as u64;
        result.timing.total_ms = result.timing.host_ms;
        let row = self.journal.get(id)?;
        let state = row
            .as_ref()
            .map(|r| TxnState::from_name(&r.state))
            .unwrap_or(TxnState::Approved);
        result.journal_state = state;
        result.outcome = match state {
            TxnState::Approved => "approved".into(),
            other => other.name().into(),
        };
        if let Some(r) = row {
            result.host = r.response_code.as_ref().map(|rc| HostAnswer {
                response_text: response_text(rc).to_string(),
                response_code: rc.clone(),
                auth_code: r.auth_code.clone(),
                rrn: r.rrn.clone(),
                tls_version: String::new(),
                icc_data: Vec::new(),
            });
            if r.advice == "pending" {
                result.reason = Some("completion queued: the host is not reachable".into());
            }
        }
        Ok(result)
    }

    /// Sends every reversal the journal owes (0400, repeats as 0401) until the host
    /// acknowledges it with 0410 and response code 00. Returns (acknowledged, still pending).
    pub async fn send_pending_reversals(&mut self) -> Result<(usize, usize), JournalError> {
        let pending = self.journal.pending_reversals()?;
        let (mut done, mut left) = (0, 0);
        for (id, sealed, attempts) in pending {
            let plain = match self.vault.open_sealed(&sealed, &id.to_be_bytes()) {
                Ok(p) => p,
                Err(e) => {
                    // A reversal we cannot read cannot be sent: keep it for the operator.
                    self.journal
                        .reversal_attempt(id, &format!("unreadable: {e}"))?;
                    left += 1;
                    continue;
                }
            };
            let Ok(mut msg) = acquirer::Message::decode(&plain, self.link.config().dialect) else {
                self.journal.reversal_attempt(id, "undecodable")?;
                left += 1;
                continue;
            };
            if attempts > 0 {
                msg.mti = 401;
            }
            let exchange = self.link.exchange(&msg).await;
            if exchange.is_ok() {
                pause_point("reversal_sent");
            }
            match exchange {
                Ok(ex) if ex.response.get_str(39).as_deref() == Some("00") => {
                    self.journal.reversal_done(id)?;
                    done += 1;
                }
                Ok(ex) => {
                    let rc = ex.response.get_str(39).unwrap_or_default();
                    self.journal.reversal_attempt(id, &format!("rc {rc}"))?;
                    left += 1;
                }
                Err(e) => {
                    self.journal.reversal_attempt(id, e.kind.code())?;
                    left += 1;
                    // The host is not answering: later reversals would fail the same way.
                    left += self
                        .journal
                        .pending_reversals()?
                        .len()
                        .saturating_sub(done + left);
                    break;
                }
            }
        }
        Ok((done, left))
    }

    /// Runs Entry Point and the kernel against the card in the field. The kernel 2 torn
    /// transaction log goes in (the live records, unsealed) and what the outcome says about
    /// it is applied, whichever way the kernel ends.
    async fn run_kernel(
        &mut self,
        mut input: TxnInput,
        txn_id: i64,
    ) -> Result<Outcome, KernelRunError> {
        let torn = self.torn_records();
        input.torn_log = torn.iter().map(|(_, r)| r.clone()).collect();
        let r = self.drive_kernel(input).await;
        match &r {
            Ok(o) => self.settle_torn(o, &torn, txn_id),
            Err(KernelRunError::CardLost(o, _)) => self.settle_torn(o, &torn, txn_id),
            Err(_) => {}
        }
        r
    }

    /// The live torn records: (journal row, record). Records past their lifetime
    /// (`[terminal] torn_lifetime_s`, Book C-2 DF811C) are dropped; a record that does not
    /// unseal is dropped with a warning.
    fn torn_records(&mut self) -> Vec<(i64, TornRecord)> {
        let oldest = chrono::Utc::now().timestamp() - self.config.terminal.torn_lifetime_s as i64;
        let rows = match self.journal.torn_live(oldest) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "torn log unreadable");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (row, _txn, sealed) in rows {
            match self
                .vault
                .open_sealed(&sealed, TORN_CONTEXT)
                .ok()
                .and_then(|plain| TornRecord::from_bytes(&plain))
            {
                Some(r) => out.push((row, r)),
                None => {
                    tracing::warn!(row, "torn record does not unseal; dropped");
                    let _ = self.journal.torn_remove(row);
                }
            }
        }
        out
    }

    /// Applies the outcome to the torn log: removes the record it settled, stores (sealed)
    /// the record it created. Failures are logged: the payment itself is not at stake.
    fn settle_torn(&mut self, o: &Outcome, torn: &[(i64, TornRecord)], txn_id: i64) {
        if let Some((row, _)) = o.torn_done.and_then(|i| torn.get(i))
            && let Err(e) = self.journal.torn_remove(*row)
        {
            tracing::warn!(error = %e, "torn record not removed");
        }
        if let Some(record) = &o.torn_new {
            let max = self
                .kernel_config
                .combinations
                .iter()
                .map(|c| c.emv_mode.torn_log_max as usize)
                .max()
                .unwrap_or(0);
            let stored = self
                .vault
                .seal(record.as_bytes(), TORN_CONTEXT)
                .map_err(|e| e.to_string())
                .and_then(|sealed| {
                    self.journal
                        .torn_add(txn_id, &sealed, chrono::Utc::now().timestamp(), max)
                        .map_err(|e| e.to_string())
                });
            match stored {
                Ok(()) => tracing::info!(txn_id, "torn transaction recorded for recovery"),
                Err(e) => tracing::warn!(error = %e, "torn record not stored"),
            }
        }
    }

    async fn drive_kernel(&mut self, input: TxnInput) -> Result<Outcome, KernelRunError> {
        let apdu_timeout = Duration::from_millis(self.config.reader.apdu_timeout_ms);
        let mut txn = EntryPoint::new(&self.kernel_config)
            .start(input)
            .map_err(|e| KernelRunError::Start(e.to_string()))?;
        let mut step = txn.begin();
        loop {
            match step {
                Step::Transmit(cmd) => {
                    let bytes = cmd
                        .to_bytes()
                        .map_err(|e| KernelRunError::Start(e.to_string()))?;
                    let resp = match self.reader.transceive(&bytes, apdu_timeout).await {
                        Ok(r) => r,
                        // A reader that reset mid-exchange powered the card down with its
                        // field: for the kernel that is a card that left (Book A §6.2).
                        Err(e)
                            if matches!(
                                e.kind,
                                drivers::ReaderErrorKind::CardLost
                                    | drivers::ReaderErrorKind::ReaderReset
                            ) =>
                        {
                            return match txn.on_card_lost() {
                                Step::Outcome(o) => Err(KernelRunError::CardLost(o, e.detail)),
                                Step::Transmit(_) => Err(KernelRunError::Reader(e)),
                            };
                        }
                        Err(e) => return Err(KernelRunError::Reader(e)),
                    };
                    step = txn.on_response(&resp);
                }
                Step::Outcome(o) => return Ok(*o),
            }
        }
    }

    fn authorization_request(
        &self,
        o: &Outcome,
        kind: TxnKind,
        amount_minor: u64,
        stan: u32,
        when: chrono::DateTime<chrono::Local>,
    ) -> Result<AuthorizationRequest, String> {
        let card = o.card.as_ref().ok_or("no card data")?;
        let pan = card.pan.as_ref().ok_or("card gave no PAN")?;
        let track2 = o.data.get(t::TRACK2).and_then(Track2::parse);
        let utc = when.with_timezone(&chrono::Utc);
        Ok(AuthorizationRequest {
            processing: match kind {
                TxnKind::Refund => ProcessingCode::Refund,
                _ => ProcessingCode::Purchase,
            },
            pan: Zeroizing::new(pan.expose().to_string()),
            amount_minor,
            transmission: utc.format("%m%d%H%M%S").to_string(),
            stan,
            local_time: when.format("%H%M%S").to_string(),
            local_date: when.format("%m%d").to_string(),
            expiry_yymm: card.expiry_yymm.clone().map(Zeroizing::new),
            // 07: contactless chip; then 1 when the terminal can take an online PIN (a PIN
            // pad and a loaded key), 2 when it cannot.
            pos_entry_mode: if self.pin_capable { "071" } else { "072" }.into(),
            psn: card.psn,
            pos_condition: if kind == TxnKind::PreAuth {
                acquirer::messages::PosCondition::PreAuthorization
            } else {
                acquirer::messages::PosCondition::Normal
            },
            track2: track2.map(|t2| Zeroizing::new(t2.expose_digits(true))),
            terminal_id: self.config.terminal.terminal_id.clone(),
            merchant_id: self.config.terminal.merchant_id.clone(),
            currency: self.config.terminal.currency,
            icc_data: o.online_data.clone(),
            pin: None,
        })
    }
}

/// What `sync` sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Reversals the host acknowledged.
    pub reversals_done: usize,
    /// Reversals still owed.
    pub reversals_left: usize,
    /// Advices the host acknowledged (or refused).
    pub advices_done: usize,
    /// Advices still owed.
    pub advices_left: usize,
    /// QR payments whose unknown outcome the host has now told.
    pub qr_resolved: usize,
    /// QR payments whose outcome is still unknown.
    pub qr_unknown: usize,
    /// Of the resolved, those the customer had paid (now approved).
    pub qr_approved: usize,
}

/// The request kept for a void: the original without card data (PAN, expiry, track 2, PIN
/// block and KSN, EMV data). A reversal needs only the STAN, amount, terminal and field 90.
fn void_template(m: &acquirer::Message) -> acquirer::Message {
    let mut t = m.clone();
    t.remove(2)
        .remove(14)
        .remove(35)
        .remove(52)
        .remove(53)
        .remove(55);
    t
}

enum KernelRunError {
    Reader(ReaderError),
    /// The card left mid-kernel; the kernel's Try Again outcome and the reader's detail.
    CardLost(Box<Outcome>, String),
    Start(String),
}
