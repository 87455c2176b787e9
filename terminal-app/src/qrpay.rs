//! QR payments: a dynamic EMVCo merchant-presented code on the screen for the amount, or the
//! customer's code read by a scanner, and the host's word on whether it was paid.
//!
//! The order of things keeps money safe:
//!
//! 1. the code (with the transaction's reference in 62.05) is built and the QR payment
//!    request (0200, [`acquirer::qr`]) is sealed into the journal with the reference, and the
//!    row moves to `authorising`, before anything leaves;
//! 2. the host registers the order (`09`) and only then is the code shown; for a scanned code
//!    it usually decides at once;
//! 3. the terminal asks for the status (0600) every `[qr] poll_ms` until the host says paid
//!    or declined, the operator cancels, or `[qr] timeout_s` passes;
//! 4. out of time or cancelled: one last status, then the order is cancelled (0400). Only a
//!    host's `00` approves. When the host cannot be asked (silent, unreachable) the row ends
//!    `unknown` and every later sync ([`Engine::check_unknown_qr`]) asks again until it
//!    knows: paid (approved), declined, or still waiting (then cancelled).

use std::time::{Duration, Instant};

use acquirer::qr::{QrMode, QrPaymentRequest, QrResponse, QrStatus, status_request};
use drivers::CardReader;
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::config::{Config, merchant_code};
use acquirer::messages::response_text;

use crate::engine::{Engine, EngineEvent, Failure, HostAnswer, TxnExtras, TxnKind, TxnResult};
use crate::journal::{CardFacts, HostRecord, JournalError, TxnState};

/// A QR payment's facts, for the result, the JSON and the receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrInfo {
    /// Which way the code went.
    pub mode: QrMode,
    /// The transaction's reference (the code's 62.05, field 48.02).
    pub reference: String,
    /// The code shown on the screen (merchant-presented); never the customer's code.
    pub payload: Option<String>,
    /// The wallet that paid, as the host names it.
    pub wallet: Option<String>,
    /// The payer's masked account, when the host gives it.
    pub payer: Option<String>,
    /// Status requests sent.
    pub status_checks: u32,
}

/// Where the code comes from.
#[derive(Debug)]
pub enum QrSource {
    /// The terminal shows a dynamic merchant-presented code.
    Show,
    /// The customer's code, as the scanner read it (a payment token: never logged).
    Scanned(Zeroizing<String>),
}

/// The transaction's reference: `K`, the terminal ID, the date and the STAN (21
/// characters, within 62.05's 25).
pub fn reference(cfg: &Config, stan: u32, when: chrono::DateTime<chrono::Local>) -> String {
    format!(
        "K{}{}{:06}",
        cfg.terminal.terminal_id.trim(),
        when.format("%y%m%d"),
        stan % 1_000_000
    )
}

/// How a QR payment's wait ended.
enum Verdict {
    Paid(QrResponse),
    Declined(QrResponse),
    /// The host has no such order.
    NotFound,
    /// Cancelled at the host (by the operator, or out of time): the reason code.
    Cancelled(&'static str),
    /// The host could not tell: the last error.
    Unknown(String),
}

impl<R: CardReader> Engine<R> {
    /// Runs one QR sale of `amount_minor`. `cancel` turning true stops the wait (the order is
    /// then cancelled at the host, unless it was paid in the meantime).
    pub async fn run_qr(
        &mut self,
        amount_minor: u64,
        extras: TxnExtras,
        source: QrSource,
        mut cancel: Option<watch::Receiver<bool>>,
    ) -> Result<TxnResult, JournalError> {
        let when = chrono::Local::now();
        let started = Instant::now();
        let currency = self.config.terminal.currency;
        if let Some(refused) = self.refuse_while_updating(TxnKind::Sale, amount_minor, extras)? {
            return Ok(refused);
        }
        let stan = self.journal.next_stan()?;
        let id = self
            .journal
            .begin(TxnKind::Sale.name(), amount_minor, currency, stan)?;
        if extras != TxnExtras::default() {
            self.journal
                .set_details(id, extras.original_id, extras.tip_minor)?;
        }
        let mut result = TxnResult::start(TxnKind::Sale, amount_minor, stan, id, when, extras);
        result.batch = self.journal.current_batch().unwrap_or(1);
        let reference = reference(&self.config, stan, when);
        let (mode, payload, consumer) = match source {
            QrSource::Show => match merchant_code(&self.config, amount_minor, &reference) {
                Ok(p) => (QrMode::MerchantPresented, Some(p), None),
                Err(e) => {
                    result.fail(
                        &mut self.journal,
                        TxnState::Refused,
                        Failure::Refused,
                        "qr_code",
                        format!("the code cannot be made: {e}"),
                    )?;
                    return Ok(result);
                }
            },
            QrSource::Scanned(code) => (QrMode::ConsumerPresented, None, Some(code)),
        };
        result.qr = Some(QrInfo {
            mode,
            reference: reference.clone(),
            payload: payload.clone(),
            wallet: None,
            payer: None,
            status_checks: 0,
        });
        // What earlier transactions owe the host goes first.
        let _ = self.sync().await;
        let utc = when.with_timezone(&chrono::Utc);
        let request = QrPaymentRequest {
            mode,
            reference: reference.clone(),
            consumer_code: consumer,
            payload_crc: payload.as_ref().map(|p| p[p.len() - 4..].to_string()),
            amount_minor,
            currency,
            transmission: utc.format("%m%d%H%M%S").to_string(),
            stan,
            local_time: when.format("%H%M%S").to_string(),
            local_date: when.format("%m%d").to_string(),
            terminal_id: self.config.terminal.terminal_id.clone(),
            merchant_id: self.config.terminal.merchant_id.clone(),
        };
        let message = match request.to_message() {
            Ok(m) => m,
            Err(e) => {
                result.fail(
                    &mut self.journal,
                    TxnState::Refused,
                    Failure::Refused,
                    "qr_request",
                    e.to_string(),
                )?;
                return Ok(result);
            }
        };
        drop(request);
        let Some(sealed) = self.seal_message(&message, id) else {
            result.fail(
                &mut self.journal,
                TxnState::CardError,
                Failure::Other,
                "seal_failed",
                "the QR payment request could not be stored; nothing was sent".into(),
            )?;
            return Ok(result);
        };
        let mode_name = match mode {
            QrMode::MerchantPresented => "mp",
            QrMode::ConsumerPresented => "cp",
        };
        self.journal.qr_begin(id, &reference, mode_name, &sealed)?;
        self.emit(EngineEvent::Authorising);
        let host_started = Instant::now();
        let first = self.link.exchange(&message).await;
        result.timing.host_ms = host_started.elapsed().as_millis() as u64;
        let tls_version = first
            .as_ref()
            .map(|e| e.tls_version.clone())
            .unwrap_or_default();
        let verdict = match first {
            Err(e) if !e.request_sent => {
                // Nothing left the terminal: no order exists, nobody can pay it.
                self.journal.record_unreachable(id, e.kind.code())?;
                result.fail(
                    &mut self.journal,
                    TxnState::HostUnreachable,
                    Failure::Host,
                    e.kind.code(),
                    e.to_string(),
                )?;
                result.timing.total_ms = started.elapsed().as_millis() as u64;
                return Ok(result);
            }
            // The request may have reached the host (and a scanned code may have been
            // charged): only the host can tell.
            Err(e) => {
                self.wait_for_payment(&message, &mut result, &mut cancel, false, e.to_string())
                    .await?
            }
            Ok(ex) => match QrResponse::from_message(&ex.response) {
                Err(e) => {
                    self.wait_for_payment(&message, &mut result, &mut cancel, false, e.to_string())
                        .await?
                }
                Ok(r) => match r.status() {
                    QrStatus::Paid => Verdict::Paid(r),
                    QrStatus::Declined(_) => Verdict::Declined(r),
                    QrStatus::NotFound => Verdict::NotFound,
                    QrStatus::Pending => {
                        if let Some(p) = &payload {
                            self.emit(EngineEvent::QrShown {
                                payload: p.clone(),
                                reference: reference.clone(),
                                timeout_s: self.config.qr.timeout_s,
                            });
                        }
                        self.wait_for_payment(
                            &message,
                            &mut result,
                            &mut cancel,
                            true,
                            String::new(),
                        )
                        .await?
                    }
                },
            },
        };
        self.conclude(&mut result, verdict, &sealed, tls_version)?;
        result.timing.total_ms = started.elapsed().as_millis() as u64;
        Ok(result)
    }

    /// Asks the host for the payment's status until it is paid or declined, the operator
    /// cancels, or time runs out; then cancels the order if it is still open. `registered`:
    /// the host acknowledged the order (so "no such order" would be a host error).
    async fn wait_for_payment(
        &mut self,
        original: &acquirer::Message,
        result: &mut TxnResult,
        cancel: &mut Option<watch::Receiver<bool>>,
        registered: bool,
        mut last_error: String,
    ) -> Result<Verdict, JournalError> {
        let poll = Duration::from_millis(self.config.qr.poll_ms);
        let deadline = Instant::now() + Duration::from_secs(self.config.qr.timeout_s);
        let mut why = "qr_timeout";
        loop {
            let wait = poll.min(deadline.saturating_duration_since(Instant::now()));
            let cancelled = match cancel.as_mut() {
                Some(rx) if *rx.borrow() => true,
                Some(rx) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => false,
                        _ = rx.wait_for(|c| *c) => true,
                    }
                }
                None => {
                    tokio::time::sleep(wait).await;
                    false
                }
            };
            if cancelled {
                why = "operator";
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            match self.qr_status(original, result).await? {
                Ok(r) => match r.status() {
                    QrStatus::Paid => return Ok(Verdict::Paid(r)),
                    QrStatus::Declined(_) => return Ok(Verdict::Declined(r)),
                    QrStatus::NotFound if !registered => return Ok(Verdict::NotFound),
                    QrStatus::NotFound => last_error = "the host lost the order (25)".into(),
                    QrStatus::Pending => {}
                },
                Err(e) => last_error = e,
            }
        }
        // The last word before giving up: paid in the final second is still paid.
        match self.qr_status(original, result).await? {
            Ok(r) => match r.status() {
                QrStatus::Paid => return Ok(Verdict::Paid(r)),
                QrStatus::Declined(_) => return Ok(Verdict::Declined(r)),
                QrStatus::NotFound if !registered => return Ok(Verdict::NotFound),
                _ => {}
            },
            Err(e) => last_error = e,
        }
        Ok(match self.qr_cancel(original).await {
            Ok(()) => Verdict::Cancelled(why),
            Err(e) if last_error.is_empty() => Verdict::Unknown(e),
            Err(e) => Verdict::Unknown(format!("{last_error}; cancel: {e}")),
        })
    }

    /// One status request (0600) for `original`, counted in the journal.
    async fn qr_status(
        &mut self,
        original: &acquirer::Message,
        result: &mut TxnResult,
    ) -> Result<Result<QrResponse, String>, JournalError> {
        let stan = self.journal.next_stan()?;
        self.journal.qr_checked(result.journal_id)?;
        if let Some(q) = result.qr.as_mut() {
            q.status_checks += 1;
        }
        let transmission = chrono::Utc::now().format("%m%d%H%M%S").to_string();
        let m = match status_request(original, stan, &transmission) {
            Ok(m) => m,
            Err(e) => return Ok(Err(e.to_string())),
        };
        Ok(match self.link.exchange(&m).await {
            Ok(ex) => QrResponse::from_message(&ex.response).map_err(|e| e.to_string()),
            Err(e) => Err(e.kind.code().to_string()),
        })
    }

    /// Cancels the order (the reversal of its 0200); Ok when the host acknowledged.
    async fn qr_cancel(&mut self, original: &acquirer::Message) -> Result<(), String> {
        let m = acquirer::messages::reversal(original, false);
        match self.link.exchange(&m).await {
            Ok(ex) if ex.response.get_str(39).as_deref() == Some("00") => Ok(()),
            Ok(ex) => Err(format!(
                "cancel refused: rc {}",
                ex.response.get_str(39).unwrap_or_default()
            )),
            Err(e) => Err(e.kind.code().to_string()),
        }
    }

    /// Records the verdict in the journal and the result.
    fn conclude(
        &mut self,
        result: &mut TxnResult,
        verdict: Verdict,
        sealed_request: &[u8],
        tls_version: String,
    ) -> Result<(), JournalError> {
        let id = result.journal_id;
        match verdict {
            Verdict::Paid(r) | Verdict::Declined(r) => {
                let approved = r.status() == QrStatus::Paid;
                let state = if approved {
                    TxnState::Approved
                } else {
                    TxnState::Declined
                };
                self.journal.record_answer(
                    id,
                    &HostRecord {
                        response_code: &r.response_code,
                        auth_code: r.auth_code.as_deref(),
                        rrn: r.rrn.as_deref(),
                    },
                    state,
                    approved.then_some(sealed_request),
                )?;
                self.journal.set_card(
                    id,
                    &CardFacts {
                        pan_masked: r.payer.clone(),
                        scheme: Some(r.wallet.clone().unwrap_or_else(|| "qr".into())),
                        aid: None,
                    },
                )?;
                if let Some(q) = result.qr.as_mut() {
                    q.wallet = r.wallet.clone();
                    q.payer = r.payer.clone();
                }
                result.outcome = state.name().to_string();
                result.journal_state = state;
                if !approved {
                    result.reason = Some(format!("qr_declined_{}", r.response_code));
                }
                result.host = Some(HostAnswer {
                    response_text: response_text(&r.response_code).to_string(),
                    response_code: r.response_code,
                    auth_code: r.auth_code,
                    rrn: r.rrn,
                    tls_version,
                    icc_data: Vec::new(),
                });
            }
            Verdict::NotFound => {
                self.journal
                    .set_state(id, TxnState::Declined, Some("qr_not_found"))?;
                result.outcome = "declined".into();
                result.journal_state = TxnState::Declined;
                result.reason = Some("qr_not_found".into());
            }
            Verdict::Cancelled(why) => {
                self.journal.set_state(id, TxnState::Cancelled, Some(why))?;
                result.outcome = "cancelled".into();
                result.journal_state = TxnState::Cancelled;
                result.reason = Some(why.to_string());
            }
            Verdict::Unknown(e) => {
                result.fail(
                    &mut self.journal,
                    TxnState::Unknown,
                    Failure::Host,
                    "qr_status_unknown",
                    format!(
                        "the host did not say whether the customer paid ({e}); \
                         kassa sync asks again"
                    ),
                )?;
            }
        }
        Ok(())
    }

    /// Asks the host about every QR payment whose outcome is unknown: paid becomes
    /// approved, declined declined, no such order ended, still waiting is cancelled. A
    /// payment the host still cannot tell about stays unknown. Returns (resolved, still
    /// unknown, of which approved).
    pub async fn check_unknown_qr(&mut self) -> Result<(usize, usize, usize), JournalError> {
        let (mut resolved, mut left, mut approved) = (0, 0, 0);
        for (id, sealed, _) in self.journal.unknown_qr()? {
            let original = match self.open_message(&sealed, id) {
                Ok(m) => m,
                Err(e) => {
                    self.journal.note(id, &format!("qr status: {e}"))?;
                    left += 1;
                    continue;
                }
            };
            let Some(row) = self.journal.get(id)? else {
                continue;
            };
            let when = chrono::DateTime::parse_from_rfc3339(&row.created_at)
                .map(|t| t.with_timezone(&chrono::Local))
                .unwrap_or_else(|_| chrono::Local::now());
            let mut result = TxnResult::start(
                TxnKind::Sale,
                row.amount_minor,
                row.stan,
                id,
                when,
                TxnExtras::default(),
            );
            let mode = original
                .get_str(48)
                .and_then(|f| acquirer::qr::parse_field48(&f).ok())
                .and_then(|items| {
                    items
                        .into_iter()
                        .find(|(i, _)| *i == acquirer::qr::sub::MODE)
                        .and_then(|(_, m)| QrMode::from_code(&m))
                })
                .unwrap_or(QrMode::MerchantPresented);
            result.qr = Some(QrInfo {
                mode,
                reference: row.qr_ref.clone().unwrap_or_default(),
                payload: None,
                wallet: None,
                payer: None,
                status_checks: 0,
            });
            let verdict = match self.qr_status(&original, &mut result).await? {
                Ok(r) => match r.status() {
                    QrStatus::Paid => Verdict::Paid(r),
                    QrStatus::Declined(_) => Verdict::Declined(r),
                    QrStatus::NotFound => Verdict::NotFound,
                    QrStatus::Pending => match self.qr_cancel(&original).await {
                        Ok(()) => Verdict::Cancelled("qr_timeout"),
                        Err(e) => Verdict::Unknown(e),
                    },
                },
                Err(e) => Verdict::Unknown(e),
            };
            if let Verdict::Unknown(e) = &verdict {
                self.journal.note(id, &format!("qr status: {e}"))?;
                // The host is not answering: the others would fail the same way.
                left = self.journal.unknown_qr()?.len();
                break;
            }
            if matches!(verdict, Verdict::Paid(_)) {
                approved += 1;
            }
            self.conclude(&mut result, verdict, &sealed, String::new())?;
            result.batch = row.batch;
            // The receipt kept for reprints says what is now known.
            let text =
                crate::receipt::render_text(&self.config, &result, crate::receipt::Copy::Customer);
            crate::ops::store_receipt(&mut self.journal, &result, &text);
            resolved += 1;
        }
        Ok((resolved, left, approved))
    }
}
