//! The merchant's operations around payments: refund and tip rules, the supervisor PIN, void,
//! pre-authorization completion, the X and Z reports, the journal export, reprints and the
//! queue of what the host is still owed. The commands are documented in docs/CLI.md.

use std::collections::BTreeMap;

use anyhow::Context;
use drivers::SimReader;
use serde::Serialize;

use crate::config::Config;
use crate::emulator::{EmulatorEnv, Fault, Paths};
use crate::engine::{Engine, SyncReport, TxnResult};
use crate::journal::{Journal, JournalRow};
use crate::{EXIT_HOST, EXIT_OTHER, EXIT_USAGE, runtime, vault};

/// A refusal: a stable reason code and a sentence for people.
pub type Refusal = (String, String);

fn refusal(code: &str, message: String) -> Refusal {
    (code.to_string(), message)
}

/// A tip typed by the driver: a percentage of the fare ("10%") or an amount ("2.50").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tip {
    /// Percent of the fare.
    Percent(u32),
    /// Minor units.
    Amount(u64),
}

/// Parses `--tip`.
pub fn parse_tip(text: &str, exponent: u8) -> Result<Tip, Refusal> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        return match p.trim().parse::<u32>() {
            Ok(n) if n <= 100 => Ok(Tip::Percent(n)),
            _ => Err(refusal(
                "bad_tip",
                format!("tip {t:?}: a percentage is 0% to 100%"),
            )),
        };
    }
    crate::config::parse_amount(t, exponent)
        .map(Tip::Amount)
        .map_err(|e| refusal("bad_tip", format!("tip: {e}")))
}

/// The tip in minor units for a fare: percentages round half up to the minor unit.
pub fn tip_minor(fare: u64, tip: Tip) -> u64 {
    match tip {
        Tip::Percent(p) => (fare * p as u64 + 50) / 100,
        Tip::Amount(a) => a,
    }
}

/// Counter names in the journal for the supervisor PIN lock-out.
const PIN_FAILURES: &str = "supervisor_pin_failures";
const PIN_LOCKED_UNTIL: &str = "supervisor_pin_locked_until";

/// Checks the supervisor PIN: three wrong PINs in a row (`[operator] max_pin_failures`) lock
/// unreferenced refunds for `lockout_s`; the counters live in the journal, so a restart does
/// not reset them.
pub fn check_supervisor_pin(
    journal: &mut Journal,
    cfg: &Config,
    pin: Option<&str>,
) -> Result<(), Refusal> {
    let db = |e: crate::journal::JournalError| refusal("journal", e.to_string());
    let Some(hash) = &cfg.operator.supervisor_pin else {
        return Err(refusal(
            "supervisor_pin_not_set",
            "an unreferenced refund needs a supervisor PIN, and none is configured ([operator] supervisor_pin)".into(),
        ));
    };
    let now = chrono::Utc::now().timestamp();
    let locked_until = journal.counter(PIN_LOCKED_UNTIL).map_err(db)?;
    if locked_until > now {
        return Err(refusal(
            "operator_locked",
            format!(
                "too many wrong supervisor PINs: locked for {} more seconds",
                locked_until - now
            ),
        ));
    }
    let Some(pin) = pin else {
        return Err(refusal(
            "supervisor_pin_required",
            "an unreferenced refund needs the supervisor PIN (--pin-stdin)".into(),
        ));
    };
    if crate::config::verify_pin(hash, pin) {
        journal.set_counter(PIN_FAILURES, 0).map_err(db)?;
        return Ok(());
    }
    let failures = journal.counter(PIN_FAILURES).map_err(db)? + 1;
    if failures >= cfg.operator.max_pin_failures as i64 {
        journal.set_counter(PIN_FAILURES, 0).map_err(db)?;
        journal
            .set_counter(PIN_LOCKED_UNTIL, now + cfg.operator.lockout_s as i64)
            .map_err(db)?;
        return Err(refusal(
            "operator_locked",
            format!(
                "wrong supervisor PIN {failures} times: locked for {} seconds",
                cfg.operator.lockout_s
            ),
        ));
    }
    journal.set_counter(PIN_FAILURES, failures).map_err(db)?;
    Err(refusal(
        "supervisor_pin_wrong",
        format!(
            "wrong supervisor PIN ({} tries left)",
            cfg.operator.max_pin_failures as i64 - failures
        ),
    ))
}

/// Checks a referenced refund: the original is an approved sale or completion, and the
/// refunds against it (this one included) do not exceed it.
pub fn check_refund(
    journal: &Journal,
    cfg: &Config,
    original: i64,
    amount: u64,
) -> Result<(), Refusal> {
    let m = |v: u64| ui::amount::format_minor(v, cfg.terminal.currency_exponent);
    let db = |e: crate::journal::JournalError| refusal("journal", e.to_string());
    let Some(row) = journal.get(original).map_err(db)? else {
        return Err(refusal(
            "refund_original_not_found",
            format!("no transaction {original}"),
        ));
    };
    if !matches!(row.txn_type.as_str(), "sale" | "completion")
        || !matches!(row.state.as_str(), "approved" | "offline_approved")
    {
        return Err(refusal(
            "refund_original_not_refundable",
            format!(
                "transaction {original} is a {} in state {}: only approved sales are refunded",
                row.txn_type, row.state
            ),
        ));
    }
    let refunded = journal.refunded(original).map_err(db)?;
    if refunded + amount > row.amount_minor {
        return Err(refusal(
            "refund_over_original",
            format!(
                "refund of {} exceeds what is left of transaction {original} ({} of {})",
                m(amount),
                m(row.amount_minor.saturating_sub(refunded)),
                m(row.amount_minor)
            ),
        ));
    }
    Ok(())
}

/// An engine for operations that need no card: the emulator's (or the configured) host.
async fn open_engine(
    paths: &Paths,
    cfg: &Config,
    fault: Option<Fault>,
) -> anyhow::Result<(EmulatorEnv, Engine<SimReader>)> {
    let env = EmulatorEnv::start(paths, cfg, fault).await?;
    let link = env.link(cfg)?;
    let journal = Journal::open(&paths.journal())
        .with_context(|| format!("journal {}", paths.journal().display()))?;
    let vault = vault::Vault::open(&paths.device_key())?;
    let (reader, _tap) = SimReader::new("virtual reader");
    let engine = Engine::new(cfg.clone(), reader, link, journal, vault)?;
    Ok((env, engine))
}

/// `kassa void`.
pub fn void(paths: &Paths, cfg: Config, id: Option<i64>, json: bool) -> anyhow::Result<u8> {
    let rt = runtime()?;
    rt.block_on(async {
        let (_env, mut engine) = open_engine(paths, &cfg, None).await?;
        let target = match id {
            Some(i) => Some(i),
            None => engine.journal.last_voidable()?,
        };
        let outcome = match target {
            Some(t) => engine.void(t).await?,
            None => Err(refusal(
                "nothing_to_void",
                "no approved transaction in the open batch".into(),
            )),
        };
        engine.link.close().await;
        let (state, error) = match &outcome {
            Ok(s) => (s.name().to_string(), None),
            Err((code, message)) => {
                // The refusal goes into the journal with its reason code.
                let rid = engine.journal.begin("void", 0, cfg.terminal.currency, 0)?;
                engine.journal.set_details(rid, target, 0)?;
                engine.journal.set_state(
                    rid,
                    crate::journal::TxnState::Refused,
                    Some(code),
                )?;
                ("refused".to_string(), Some((code.clone(), message.clone())))
            }
        };
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "id": target,
                    "outcome": state,
                    "state": target
                        .and_then(|t| engine.journal.get(t).ok().flatten())
                        .map(|r| r.state),
                    "error": error.as_ref().map(|(c, m)| serde_json::json!({"code": c, "message": m})),
                }))?
            );
        } else {
            if let (Ok(s), Some(t)) = (&outcome, target) {
                println!("transaction {t}: {}", s.name().replace('_', " "));
            }
        }
        Ok(match outcome {
            Ok(crate::journal::TxnState::Voided) => 0,
            Ok(_) => {
                eprintln!("kassa void: the host has not acknowledged the void yet; `kassa sync` sends it");
                EXIT_HOST
            }
            Err((_, message)) => {
                eprintln!("kassa void: {message}");
                EXIT_USAGE
            }
        })
    })
}

/// `kassa complete`.
pub fn complete(
    paths: &Paths,
    cfg: Config,
    id: i64,
    amount: &str,
    json: bool,
) -> anyhow::Result<u8> {
    let amount_minor = match cfg.amount(amount) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kassa complete: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let rt = runtime()?;
    rt.block_on(async {
        let (_env, mut engine) = open_engine(paths, &cfg, None).await?;
        let result = engine.complete(id, amount_minor).await?;
        engine.link.close().await;
        let code = crate::finish(&mut engine.journal, "complete", &cfg, &result, "", json);
        if result.error.is_none() && result.reason.is_some() {
            eprintln!("kassa complete: queued; the host has not acknowledged it yet");
            return Ok(EXIT_HOST);
        }
        Ok(code)
    })
}

/// `kassa sync`: advices and reversals to the host, status checks of QR payments whose
/// outcome is unknown, now; lists receipts never printed.
pub fn sync(paths: &Paths, cfg: Config, json: bool, fault: Option<Fault>) -> anyhow::Result<u8> {
    let rt = runtime()?;
    rt.block_on(async {
        let (_env, mut engine) = open_engine(paths, &cfg, fault).await?;
        let r: SyncReport = engine.sync().await?;
        engine.link.close().await;
        let unprinted: Vec<i64> = engine.journal.unprinted()?.iter().map(|r| r.id).collect();
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "reversals": { "acknowledged": r.reversals_done, "pending": r.reversals_left },
                    "advices": { "acknowledged": r.advices_done, "pending": r.advices_left },
                    "qr": {
                        "resolved": r.qr_resolved,
                        "approved": r.qr_approved,
                        "unknown": r.qr_unknown,
                    },
                    "unprinted": unprinted,
                })
            );
        } else {
            println!(
                "reversals: {} acknowledged, {} still pending",
                r.reversals_done, r.reversals_left
            );
            println!(
                "advices: {} acknowledged, {} still pending",
                r.advices_done, r.advices_left
            );
            println!(
                "qr payments: {} resolved ({} paid), {} still unknown",
                r.qr_resolved, r.qr_approved, r.qr_unknown
            );
            if !unprinted.is_empty() {
                println!(
                    "receipts never printed (kassa journal reprint ID): {}",
                    unprinted
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        Ok(
            if r.reversals_left == 0 && r.advices_left == 0 && r.qr_unknown == 0 {
                0
            } else {
                EXIT_HOST
            },
        )
    })
}

/// Count and amount.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Sum {
    /// How many.
    pub count: u64,
    /// Total, minor units.
    pub amount_minor: u64,
}

impl Sum {
    fn add(&mut self, amount: u64) {
        self.count += 1;
        self.amount_minor += amount;
    }
}

/// The totals of a batch (`kassa report`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct BatchReport {
    /// `x` (running totals) or `z` (batch close).
    pub report: String,
    /// Batch number.
    pub batch: i64,
    /// ISO 4217 alphabetic currency.
    pub currency: String,
    /// Approved sales (online and offline), tips included.
    pub sales: Sum,
    /// Tips within the sales.
    pub tips: Sum,
    /// Completions of pre-authorizations.
    pub completions: Sum,
    /// Approved refunds.
    pub refunds: Sum,
    /// Sales plus completions minus refunds, minor units (negative: more refunded).
    pub net_minor: i64,
    /// Voided transactions (not in the totals).
    pub voided: Sum,
    /// Declined (not in the totals).
    pub declined: Sum,
    /// Pre-authorizations holding funds, not completed, from any batch (not in the totals).
    pub open_preauths: Sum,
    /// Offline approvals whose advice is still owed to the host.
    pub advices_pending: Sum,
    /// Per scheme and type: `visa/sale`, `mastercard/refund`...
    pub by_scheme: BTreeMap<String, Sum>,
    /// Z only: true when the host agreed and the batch is closed.
    pub closed: bool,
    /// Z only: the host's response code to the reconciliation (0500).
    pub response_code: Option<String>,
    /// Z only: its meaning.
    pub response_text: Option<String>,
}

/// Adds up a batch's rows.
pub fn batch_report(
    kind: &str,
    batch: i64,
    cfg: &Config,
    rows: &[JournalRow],
    journal: &Journal,
) -> Result<BatchReport, crate::journal::JournalError> {
    let mut r = BatchReport {
        report: kind.into(),
        batch,
        currency: cfg.terminal.currency_code.clone(),
        ..BatchReport::default()
    };
    for row in rows {
        let approved = matches!(row.state.as_str(), "approved" | "offline_approved");
        let scheme = row.scheme.clone().unwrap_or_else(|| "other".into());
        match (row.txn_type.as_str(), approved) {
            ("sale", true) => {
                r.sales.add(row.amount_minor);
                if row.tip_minor > 0 {
                    r.tips.add(row.tip_minor);
                }
            }
            ("completion", true) => r.completions.add(row.amount_minor),
            ("refund", true) => r.refunds.add(row.amount_minor),
            _ => {}
        }
        if approved && row.txn_type != "preauth" {
            r.by_scheme
                .entry(format!("{scheme}/{}", row.txn_type))
                .or_default()
                .add(row.amount_minor);
        }
        if row.advice == "pending" {
            r.advices_pending.add(row.amount_minor);
        }
        match row.state.as_str() {
            "voided" | "void_pending" => r.voided.add(row.amount_minor),
            "declined" => r.declined.add(row.amount_minor),
            _ => {}
        }
    }
    // Pre-authorizations stay open across batches: all of them, whichever batch.
    let (count, amount_minor) = journal.open_preauths()?;
    r.open_preauths = Sum {
        count,
        amount_minor,
    };
    r.net_minor = r.sales.amount_minor as i64 + r.completions.amount_minor as i64
        - r.refunds.amount_minor as i64;
    Ok(r)
}

/// A report as text (the X/Z printout, the operator screen).
pub fn report_text(r: &BatchReport, exponent: u8) -> String {
    use std::fmt::Write;
    let m = |v: u64| ui::amount::format_minor(v, exponent);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} REPORT  batch {}  {}",
        r.report.to_uppercase(),
        r.batch,
        r.currency
    );
    for (name, s) in [
        ("sales", r.sales),
        ("  of which tips", r.tips),
        ("completions", r.completions),
        ("refunds", r.refunds),
        ("voided", r.voided),
        ("declined", r.declined),
        ("open pre-auths", r.open_preauths),
        ("advices pending", r.advices_pending),
    ] {
        let _ = writeln!(
            out,
            "  {name:<18} {:>5}  {:>12}",
            s.count,
            m(s.amount_minor)
        );
    }
    let net = if r.net_minor < 0 {
        format!("-{}", m(r.net_minor.unsigned_abs()))
    } else {
        m(r.net_minor as u64)
    };
    let _ = writeln!(out, "  {:<18} {:>5}  {net:>12}", "net", "");
    for (k, s) in &r.by_scheme {
        let _ = writeln!(out, "  {k:<18} {:>5}  {:>12}", s.count, m(s.amount_minor));
    }
    if let Some(rc) = &r.response_code {
        let _ = writeln!(
            out,
            "host: {rc} {}; batch {}",
            r.response_text.clone().unwrap_or_default(),
            if r.closed { "closed" } else { "NOT closed" }
        );
    }
    out
}

/// The running totals of the open batch (X report).
pub fn x_report(journal: &Journal, cfg: &Config) -> anyhow::Result<BatchReport> {
    let batch = journal.current_batch()?;
    Ok(batch_report(
        "x",
        batch,
        cfg,
        &journal.batch_rows(batch)?,
        journal,
    )?)
}

/// How a Z close ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZEnd {
    /// The host agreed: closed.
    Closed,
    /// Advices or reversals still owed: not attempted, the batch stays open.
    Owed,
    /// The host answered something else (95: out of balance): open.
    Refused,
    /// The host could not be reached: open.
    Unreachable,
}

/// The batch close (Z): everything owed first, then the reconciliation (0500); the batch is
/// closed only on 00. The report says what was sent and answered.
pub async fn z_close<R: drivers::CardReader>(
    engine: &mut Engine<R>,
    cfg: &Config,
) -> anyhow::Result<(BatchReport, ZEnd)> {
    // Everything owed goes first: the host's totals must include it.
    let s = engine.sync().await?;
    let batch = engine.journal.current_batch()?;
    let rows = engine.journal.batch_rows(batch)?;
    let mut r = batch_report("z", batch, cfg, &rows, &engine.journal)?;
    if s.advices_left > 0 || s.reversals_left > 0 {
        engine.link.close().await;
        return Ok((r, ZEnd::Owed));
    }
    let stan = engine.journal.next_stan()?;
    let transmission = chrono::Utc::now().format("%m%d%H%M%S").to_string();
    let totals = acquirer::messages::BatchTotals {
        debits: r.sales.count + r.completions.count,
        debits_amount: r.sales.amount_minor + r.completions.amount_minor,
        credits: r.refunds.count,
        credits_amount: r.refunds.amount_minor,
    };
    let msg = acquirer::messages::reconciliation(
        stan,
        &transmission,
        &cfg.terminal.terminal_id,
        &cfg.terminal.merchant_id,
        cfg.terminal.currency,
        totals,
    );
    let exchange = engine.link.exchange(&msg).await;
    engine.link.close().await;
    let end = match exchange {
        Ok(ex) => {
            let rc = ex.response.get_str(39).unwrap_or_default();
            r.response_text = Some(acquirer::messages::response_text(&rc).to_string());
            r.response_code = Some(rc.clone());
            if rc == "00" {
                let json_totals = serde_json::to_string(&r)?;
                engine.journal.close_batch(&json_totals, Some(&rc))?;
                r.closed = true;
                ZEnd::Closed
            } else {
                ZEnd::Refused
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "batch close: host unreachable");
            ZEnd::Unreachable
        }
    };
    Ok((r, end))
}

/// `kassa report x|z`.
pub fn report(paths: &Paths, cfg: Config, kind: &str, json: bool) -> anyhow::Result<u8> {
    if kind == "x" {
        let path = paths.journal();
        let journal =
            Journal::open(&path).with_context(|| format!("journal {}", path.display()))?;
        let r = x_report(&journal, &cfg)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            print!("{}", report_text(&r, cfg.terminal.currency_exponent));
        }
        return Ok(0);
    }
    let rt = runtime()?;
    rt.block_on(async {
        let (_env, mut engine) = open_engine(paths, &cfg, None).await?;
        let (r, end) = z_close(&mut engine, &cfg).await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&r)?);
        } else {
            print!("{}", report_text(&r, cfg.terminal.currency_exponent));
        }
        Ok(match end {
            ZEnd::Closed => 0,
            ZEnd::Owed => {
                eprintln!(
                    "kassa report z: the host has not acknowledged every advice and reversal; the batch stays open"
                );
                EXIT_HOST
            }
            ZEnd::Refused => {
                eprintln!(
                    "kassa report z: the host answered {} ({}); the batch stays open",
                    r.response_code.clone().unwrap_or_default(),
                    r.response_text.clone().unwrap_or_default()
                );
                EXIT_OTHER
            }
            ZEnd::Unreachable => {
                eprintln!("kassa report z: the host cannot be reached; the batch stays open");
                EXIT_HOST
            }
        })
    })
}

/// Quotes a CSV field (RFC 4180).
fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `kassa journal export --csv`: every row, oldest first, masked PANs only.
pub fn export_csv(journal: &Journal, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "id,created_at,type,amount_minor,tip_minor,currency,stan,state,reason,pan,scheme,aid,response_code,auth_code,rrn,original_id,batch,reversal,advice,printed_at"
    )?;
    for r in journal.all()? {
        let fields = [
            r.id.to_string(),
            r.created_at,
            r.txn_type,
            r.amount_minor.to_string(),
            r.tip_minor.to_string(),
            r.currency.to_string(),
            r.stan.to_string(),
            r.state,
            r.reason.unwrap_or_default(),
            r.pan_masked.unwrap_or_default(),
            r.scheme.unwrap_or_default(),
            r.aid.unwrap_or_default(),
            r.response_code.unwrap_or_default(),
            r.auth_code.unwrap_or_default(),
            r.rrn.unwrap_or_default(),
            r.original_id.map(|o| o.to_string()).unwrap_or_default(),
            r.batch.to_string(),
            r.reversal,
            r.advice,
            r.printed_at.unwrap_or_default(),
        ];
        writeln!(
            out,
            "{}",
            fields.iter().map(|f| csv(f)).collect::<Vec<_>>().join(",")
        )?;
    }
    Ok(())
}

/// The receipt of a finished transaction: stored in the journal before it is printed, then
/// marked printed (the virtual printer is standard output).
pub fn store_receipt(journal: &mut Journal, r: &TxnResult, text: &str) {
    if r.journal_id > 0
        && let Err(e) = journal.set_receipt(r.journal_id, text)
    {
        tracing::warn!(error = %e, "receipt not stored");
    }
    crate::engine::pause_point("receipt_stored");
}
