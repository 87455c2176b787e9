//! The transaction engine: one payment from amount to receipt.
//!
//! ```text
//! journal: started --> wait for card --> kernel (APDUs through the reader)
//!   --> card_read --> [online request] journal: authorising --> Link::exchange
//!   --> approved | declined | host_unreachable | reversal_pending --> receipt
//! ```
//! The journal is written before each step that cannot be undone: the row exists before the
//! card is read, and the state is `authorising` before the request leaves, so a crash or a
//! timeout after that point leaves a transaction that recovery knows to reverse.

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
use crate::journal::{CardFacts, Journal, JournalError, TxnState};

/// The kind of transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    /// A sale (purchase).
    Sale,
    /// A refund.
    Refund,
}

impl TxnKind {
    /// Name used in JSON, the journal and receipts.
    pub fn name(self) -> &'static str {
        match self {
            TxnKind::Sale => "sale",
            TxnKind::Refund => "refund",
        }
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
    /// The card has been read: all four lights and the success tone; remove the card.
    CardRead,
    /// Waiting for the host.
    Authorising,
    /// The kernel asked for the card again (Outcome Try Again): its UI request ("Present
    /// card again", "See phone").
    PresentAgain(emv::outcome::UiRequest),
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
}

impl TxnResult {
    /// Ends the transaction without an outcome: records the state and reason in the journal.
    fn fail(
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
        })
    }

    /// Sends progress events to `tx` (the UI).
    pub fn with_events(mut self, tx: mpsc::UnboundedSender<EngineEvent>) -> Self {
        self.events = Some(tx);
        self
    }

    fn emit(&self, e: EngineEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    /// Runs one transaction. `cancel` turning true while waiting for the card cancels it.
    /// Errors are only for the journal itself failing; everything else is in the result.
    pub async fn run(
        &mut self,
        kind: TxnKind,
        amount_minor: u64,
        cancel: Option<watch::Receiver<bool>>,
    ) -> Result<TxnResult, JournalError> {
        self.run_with(kind, amount_minor, cancel, Overrides::default())
            .await
    }

    /// [`run`](Self::run) with terminal data taken from `overrides` where given.
    pub async fn run_with(
        &mut self,
        kind: TxnKind,
        amount_minor: u64,
        mut cancel: Option<watch::Receiver<bool>>,
        overrides: Overrides,
    ) -> Result<TxnResult, JournalError> {
        let when = chrono::Local::now();
        let currency = self.config.terminal.currency;
        let stan = self.journal.next_stan()?;
        let id = self
            .journal
            .begin(kind.name(), amount_minor, currency, stan)?;
        let mut result = TxnResult {
            outcome: String::new(),
            kind,
            amount_minor,
            stan,
            journal_id: id,
            journal_state: TxnState::Started,
            kernel: None,
            host: None,
            error: None,
            reason: None,
            presentations: 0,
            timing: Timing::default(),
            when,
        };
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
                    TxnKind::Sale => TxnType::Purchase,
                    TxnKind::Refund => TxnType::Refund,
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
        let apdu_timeout = Duration::from_millis(self.config.reader.apdu_timeout_ms);
        let _ = self.reader.wait_for_removal(apdu_timeout).await;
        result.timing.card_ms = started.elapsed().as_millis() as u64;
        if let Some(card) = &outcome.card {
            self.journal.set_card(
                id,
                &CardFacts {
                    pan_masked: card.pan.as_ref().map(|p| p.masked()),
                    scheme: Some(card.scheme.name().to_string()),
                    aid: Some(emv::util::hex(&card.aid)),
                },
            )?;
        }
        self.journal.set_state(id, TxnState::CardRead, None)?;
        self.emit(EngineEvent::CardRead);

        // 3. Offline outcomes end here.
        if outcome.kind != OutcomeKind::OnlineRequest {
            let (state, name) = match outcome.kind {
                OutcomeKind::Approved => (TxnState::Approved, "approved"),
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

        // 4. Online.
        let request = match self.authorization_request(&outcome, kind, amount_minor, stan, when) {
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
        // Reversals owed from earlier transactions go first (ISO 8583 practice: the host must
        // see them before new business from this terminal).
        let _ = self.send_pending_reversals().await;
        // The reversal is stored, sealed, before the request leaves: if the answer never comes,
        // even across a crash, the journal knows what to reverse.
        let reversal = acquirer::messages::reversal(&message, false);
        let sealed = reversal
            .encode(self.link.config().dialect)
            .ok()
            .and_then(|bytes| self.vault.seal(&bytes, &id.to_be_bytes()).ok());
        if let Some(s) = &sealed {
            self.journal.arm_reversal(id, s)?;
        }
        self.journal.set_state(id, TxnState::Authorising, None)?;
        self.emit(EngineEvent::Authorising);
        let host_started = Instant::now();
        let exchange = self.link.exchange(&message).await;
        result.timing.host_ms = host_started.elapsed().as_millis() as u64;
        let answered = matches!(&exchange, Ok(ex) if AuthorizationResponse::from_message(&ex.response).is_ok());
        let not_sent = matches!(&exchange, Err(e) if !e.request_sent);
        if answered || not_sent {
            self.journal.disarm_reversal(id)?;
        }
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
                self.journal.set_host(
                    id,
                    &answer.response_code,
                    answer.auth_code.as_deref(),
                    answer.rrn.as_deref(),
                )?;
                let approved = answer.approved();
                let state = if approved {
                    TxnState::Approved
                } else {
                    TxnState::Declined
                };
                self.journal
                    .set_state(id, state, Some(&format!("rc {}", answer.response_code)))?;
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
            }
            Err(e) => {
                let state = if e.request_sent {
                    TxnState::ReversalPending
                } else {
                    TxnState::HostUnreachable
                };
                result.fail(
                    &mut self.journal,
                    state,
                    Failure::Host,
                    e.kind.code(),
                    e.to_string(),
                )?;
            }
        }
        result.timing.total_ms = started.elapsed().as_millis() as u64;
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
            match self.link.exchange(&msg).await {
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
                        Err(e) if e.kind == drivers::ReaderErrorKind::CardLost => {
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
                TxnKind::Sale => ProcessingCode::Purchase,
                TxnKind::Refund => ProcessingCode::Refund,
            },
            pan: Zeroizing::new(pan.expose().to_string()),
            amount_minor,
            transmission: utc.format("%m%d%H%M%S").to_string(),
            stan,
            local_time: when.format("%H%M%S").to_string(),
            local_date: when.format("%m%d").to_string(),
            expiry_yymm: card.expiry_yymm.clone().map(Zeroizing::new),
            // 07: contactless chip; 2: the terminal cannot take a PIN yet.
            pos_entry_mode: "072".into(),
            psn: card.psn,
            track2: track2.map(|t2| Zeroizing::new(t2.expose_digits(true))),
            terminal_id: self.config.terminal.terminal_id.clone(),
            merchant_id: self.config.terminal.merchant_id.clone(),
            currency: self.config.terminal.currency,
            icc_data: o.online_data.clone(),
        })
    }
}

enum KernelRunError {
    Reader(ReaderError),
    /// The card left mid-kernel; the kernel's Try Again outcome and the reader's detail.
    CardLost(Box<Outcome>, String),
    Start(String),
}
