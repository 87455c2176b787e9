//! The JSON object `kassa pay --json` prints: a contract (docs/CLI.md). Fields are added,
//! never renamed or removed.

use serde::Serialize;

use emv::tags as t;
use emv::util::hex;

use crate::config::Config;
use crate::engine::TxnResult;

/// Top level.
#[derive(Debug, Serialize)]
pub struct PayReport {
    /// `approved`, `declined`, `try_another_interface`, `end_application`, `select_next`,
    /// `try_again`, `host_unreachable`, `reversal_pending`, `card_error`, `cancelled`.
    pub outcome: String,
    /// The kernel's or host's reason, when not approved.
    pub reason: Option<String>,
    /// The transaction.
    pub transaction: TransactionPart,
    /// The card.
    pub card: Option<CardPart>,
    /// EMV results.
    pub emv: Option<EmvPart>,
    /// The kernel's user-interface request (Book A §7.1) with its outcome.
    pub kernel_ui: Option<KernelUiPart>,
    /// The host's answer.
    pub host: HostPart,
    /// Timings.
    pub timing_ms: TimingPart,
    /// The journal row.
    pub journal: JournalPart,
    /// How many times the card was presented (2 or more after "present card again").
    pub presentations: u32,
    /// Failure details when the transaction ended without an outcome.
    pub error: Option<ErrorPart>,
    /// The customer receipt.
    pub receipt: String,
    /// What the receipt printer did.
    pub printer: PrinterPart,
    /// A QR payment's facts (null for cards).
    pub qr: Option<QrPart>,
}

/// `qr`: a QR payment.
#[derive(Debug, Serialize)]
pub struct QrPart {
    /// `merchant_presented` (the code on the terminal's screen) or `consumer_presented`
    /// (the customer's code, scanned).
    pub mode: String,
    /// The transaction's reference (the code's 62.05).
    pub reference: String,
    /// The code shown (merchant-presented); the customer's code is never reported.
    pub payload: Option<String>,
    /// The wallet that paid, as the host names it.
    pub wallet: Option<String>,
    /// The payer's masked account, when the host gives one.
    pub payer: Option<String>,
    /// Status requests sent while waiting.
    pub status_checks: u32,
}

/// `printer`: the receipt on the configured printer.
#[derive(Debug, Serialize, Default)]
pub struct PrinterPart {
    /// `virtual` (standard output), `serial:/dev/ttyUSB0@9600`, `usb:/dev/usb/lp0`,
    /// `tcp:HOST:PORT`, or `none`.
    pub device: String,
    /// Whether the customer receipt was printed.
    pub printed: bool,
    /// Why not: `paper_out`, `cover_open`, `printer_offline`, `printer_timeout`,
    /// `printer_not_connected`; null when printed or when there was nothing to print.
    pub reason: Option<String>,
}

/// `kernel_ui`: what the kernel asked the screen, lights and speaker to do.
#[derive(Debug, Serialize)]
pub struct KernelUiPart {
    /// Book A Table 9-5 message identifier, two hex digits (`"1B"`).
    pub message_id: String,
    /// The message's name (`authorising_please_wait`, `present_card_again`...).
    pub message: String,
    /// Reader status (`card_read_successfully`, `processing_error`, `ready_to_read`...).
    pub status: String,
    /// How long to keep the message, in milliseconds.
    pub hold_time_ms: u32,
    /// The card's preferred language (5F2D) for the message, or null.
    pub language: Option<String>,
    /// The same request as Book C-2 User Interface Request Data (DF8116), hex.
    pub request_data: String,
}

/// `transaction`.
#[derive(Debug, Serialize)]
pub struct TransactionPart {
    /// `sale` or `refund`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Amount in minor units.
    pub amount_minor: u64,
    /// Amount as text ("12.34").
    pub amount: String,
    /// ISO 4217 alphabetic.
    pub currency: String,
    /// ISO 4217 numeric.
    pub currency_numeric: u16,
    /// STAN.
    pub stan: u32,
    /// RRN from the host.
    pub rrn: Option<String>,
    /// Authorization code from the host (or the terminal's, when approved offline).
    pub auth_code: Option<String>,
    /// Local date and time (RFC 3339).
    pub time: String,
    /// Tip included in `amount_minor`.
    pub tip_minor: u64,
    /// The journal ID this transaction refers to (a refund's sale, a completion's
    /// pre-authorization).
    pub original_id: Option<i64>,
    /// Approved by the terminal without the host: `Y1` (the card approved offline) or `Y3`
    /// (store-and-forward, host unreachable); null otherwise.
    pub offline: Option<String>,
}

/// `card`.
#[derive(Debug, Serialize)]
pub struct CardPart {
    /// Scheme: visa, mastercard, ...
    pub scheme: String,
    /// AID, hex.
    pub aid: String,
    /// Application label.
    pub label: Option<String>,
    /// PAN, masked: 476173******0119.
    pub pan: Option<String>,
    /// Kernel: "C-3".
    pub kernel: String,
    /// The cardholder's first language from the card (5F2D), or null.
    pub language: Option<String>,
    /// All languages from the card, most preferred first.
    pub languages: Vec<String>,
    /// CVM: no_cvm, signature, online_pin, cdcvm.
    pub cvm: String,
    /// Offline data authentication: not_performed, succeeded, failed.
    pub oda: String,
}

/// `emv`.
#[derive(Debug, Serialize)]
pub struct EmvPart {
    /// Terminal verification results (95), hex.
    pub tvr: Option<String>,
    /// Transaction status information (9B), hex.
    pub tsi: Option<String>,
    /// Cryptogram information data (9F27), hex.
    pub cid: Option<String>,
    /// Application cryptogram (9F26), hex.
    pub ac: Option<String>,
    /// Application transaction counter (9F36), hex.
    pub atc: Option<String>,
    /// Unpredictable number (9F37), hex.
    pub un: Option<String>,
    /// Field 55 as sent, hex.
    pub field55: Option<String>,
    /// The kernel's outcome as Book C-2's Outcome Parameter Set (DF8129), hex.
    pub outcome_parameter_set: String,
}

/// `host`.
#[derive(Debug, Serialize, Default)]
pub struct HostPart {
    /// ISO 8583 response code.
    pub response_code: Option<String>,
    /// Its meaning.
    pub response_text: Option<String>,
    /// "TLSv1.3".
    pub tls_version: Option<String>,
    /// Issuer EMV data from field 55 (ARPC), hex.
    pub issuer_data: Option<String>,
}

/// `timing_ms`.
#[derive(Debug, Serialize)]
pub struct TimingPart {
    /// Card: tap to kernel outcome.
    pub card: u64,
    /// Host exchange.
    pub host: u64,
    /// Total.
    pub total: u64,
}

/// `journal`.
#[derive(Debug, Serialize)]
pub struct JournalPart {
    /// Row ID.
    pub id: i64,
    /// State: approved, declined, reversal_pending, host_unreachable, ...
    pub state: String,
    /// `none` or `pending`.
    pub reversal: String,
    /// Store-and-forward advice: `none`, `pending` (owed to the host) or `done`.
    pub advice: String,
}

/// `error`.
#[derive(Debug, Serialize)]
pub struct ErrorPart {
    /// Reason code (refused, response_timeout, client_certificate_rejected, timeout...).
    pub code: String,
    /// One line for people.
    pub message: String,
}

impl PayReport {
    /// Builds the report.
    pub fn new(cfg: &Config, r: &TxnResult, receipt: String) -> Self {
        let kernel = r.kernel.as_deref();
        let card = kernel.and_then(|o| {
            o.card.as_ref().map(|c| CardPart {
                scheme: c.scheme.name().to_string(),
                aid: hex(&c.aid),
                label: c.label.clone(),
                pan: c.pan.as_ref().map(|p| p.masked()),
                kernel: c.kernel.to_string(),
                language: c.languages.first().cloned(),
                languages: c.languages.clone(),
                cvm: o.cvm.name().to_string(),
                oda: o.oda.name().to_string(),
            })
        });
        let emv = kernel.map(|o| {
            let g = |tag| o.data.get(tag).map(hex);
            EmvPart {
                tvr: g(t::TVR),
                tsi: g(t::TSI),
                cid: g(t::CID),
                ac: g(t::APPLICATION_CRYPTOGRAM),
                atc: g(t::ATC),
                un: g(t::UNPREDICTABLE_NUMBER),
                field55: (!o.online_data.is_empty()).then(|| hex(&o.online_data)),
                outcome_parameter_set: hex(&o.parameter_set()),
            }
        });
        let kernel_ui = kernel.map(|o| KernelUiPart {
            message_id: format!("{:02X}", o.ui.message.id()),
            message: o.ui.message.name().to_string(),
            status: o.ui.status.name().to_string(),
            hold_time_ms: o.ui.hold_time_ms,
            language: o.ui.language.map(|l| l.to_string()),
            request_data: hex(&o.ui.to_c2_bytes()),
        });
        let reason = match (&r.error, kernel, &r.host) {
            _ if r.reason.is_some() => r.reason.clone(),
            (Some(e), _, _) => Some(e.code.clone()),
            (None, _, Some(h)) if r.outcome != "approved" => Some(format!(
                "host response {} {}",
                h.response_code, h.response_text
            )),
            (None, Some(o), None) if r.outcome != "approved" => Some(o.reason.to_string()),
            _ => None,
        };
        PayReport {
            outcome: r.outcome.clone(),
            reason,
            transaction: TransactionPart {
                kind: r.kind.name().to_string(),
                amount_minor: r.amount_minor,
                amount: ui::amount::format_minor(r.amount_minor, cfg.terminal.currency_exponent),
                currency: cfg.terminal.currency_code.clone(),
                currency_numeric: cfg.terminal.currency,
                stan: r.stan,
                rrn: r.host.as_ref().and_then(|h| h.rrn.clone()),
                auth_code: r
                    .host
                    .as_ref()
                    .and_then(|h| h.auth_code.clone())
                    .or_else(|| r.offline.as_ref().map(|o| o.1.clone())),
                time: r.when.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                tip_minor: r.extras.tip_minor,
                original_id: r.extras.original_id,
                offline: r.offline.as_ref().map(|o| o.0.clone()),
            },
            card,
            emv,
            kernel_ui,
            host: r
                .host
                .as_ref()
                .map(|h| HostPart {
                    response_code: Some(h.response_code.clone()),
                    response_text: Some(h.response_text.clone()),
                    tls_version: Some(h.tls_version.clone()),
                    issuer_data: (!h.icc_data.is_empty()).then(|| hex(&h.icc_data)),
                })
                .unwrap_or_default(),
            timing_ms: TimingPart {
                card: r.timing.card_ms,
                host: r.timing.host_ms,
                total: r.timing.total_ms,
            },
            journal: JournalPart {
                id: r.journal_id,
                state: r.journal_state.name().to_string(),
                reversal: if r.journal_state == crate::journal::TxnState::ReversalPending {
                    "pending".into()
                } else {
                    "none".into()
                },
                advice: if r.offline.is_some() {
                    "pending".into()
                } else if r.kind == crate::engine::TxnKind::Completion && r.error.is_none() {
                    if r.reason.is_some() {
                        "pending"
                    } else {
                        "done"
                    }
                    .into()
                } else {
                    "none".into()
                },
            },
            presentations: r.presentations,
            error: r.error.as_ref().map(|e| ErrorPart {
                code: e.code.clone(),
                message: e.message.clone(),
            }),
            receipt,
            printer: PrinterPart::default(),
            qr: r.qr.as_ref().map(|q| QrPart {
                mode: match q.mode {
                    acquirer::qr::QrMode::MerchantPresented => "merchant_presented",
                    acquirer::qr::QrMode::ConsumerPresented => "consumer_presented",
                }
                .into(),
                reference: q.reference.clone(),
                payload: q.payload.clone(),
                wallet: q.wallet.clone(),
                payer: q.payer.clone(),
                status_checks: q.status_checks,
            }),
        }
    }
}
