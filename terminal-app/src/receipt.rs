//! Text receipts, 32 columns (58 mm thermal paper), with the chip data the schemes require:
//! application label, AID, masked PAN, entry mode, TVR/TSI, ATC, cryptogram, CVM, host
//! response.

use emv::outcome::Cvm;
use emv::tags as t;
use emv::util::hex;
use ui::amount::format_minor;

use crate::config::Config;
use crate::engine::TxnResult;

/// Receipt width in characters.
pub const WIDTH: usize = 32;

/// Which copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copy {
    /// Kept by the merchant (carries the signature line when needed).
    Merchant,
    /// Given to the cardholder.
    Customer,
}

fn center(s: &str) -> String {
    let len = s.chars().count().min(WIDTH);
    let pad = (WIDTH - len) / 2;
    format!(
        "{}{}",
        " ".repeat(pad),
        s.chars().take(WIDTH).collect::<String>()
    )
}

fn pair(left: &str, right: &str) -> String {
    let l = left.chars().count();
    let r = right.chars().count();
    if l + r + 1 > WIDTH {
        return format!("{left}\n{right:>WIDTH$}");
    }
    format!("{left}{}{right}", " ".repeat(WIDTH - l - r))
}

/// Merchant, terminal, date and time, and the transaction type.
fn header(cfg: &Config, when: Option<chrono::DateTime<chrono::Local>>, kind: &str) -> Vec<String> {
    let term = &cfg.terminal;
    let f = |fmt: &str| when.map(|w| w.format(fmt).to_string()).unwrap_or_default();
    vec![
        center(&term.merchant_name),
        center(&term.merchant_address),
        pair(
            &format!("TID {}", term.terminal_id),
            &format!("MID {}", term.merchant_id),
        ),
        pair(&f("%Y-%m-%d"), &f("%H:%M:%S")),
        String::new(),
        center(&kind.to_uppercase()),
        String::new(),
    ]
}

/// Lays out the receipt.
pub fn render(cfg: &Config, r: &TxnResult, copy: Copy) -> Vec<String> {
    let term = &cfg.terminal;
    let mut lines = header(cfg, Some(r.when), r.kind.name());
    let kernel = r.kernel.as_deref();
    if let Some(card) = kernel.and_then(|o| o.card.as_ref()) {
        let label = card
            .label
            .clone()
            .unwrap_or_else(|| card.scheme.name().to_uppercase());
        lines.push(pair(&label, "CONTACTLESS"));
        if let Some(pan) = &card.pan {
            lines.push(pan.masked());
        }
        lines.push(format!("AID {}", hex(&card.aid)));
    }
    lines.push(String::new());
    let money = |minor: u64| {
        format!(
            "{} {}",
            term.currency_code,
            format_minor(minor, term.currency_exponent)
        )
    };
    if let Some(orig) = r.extras.original_id {
        lines.push(pair("ORIGINAL", &format!("#{orig}")));
    }
    if r.extras.tip_minor > 0 {
        lines.push(pair(
            "FARE",
            &money(r.amount_minor.saturating_sub(r.extras.tip_minor)),
        ));
        lines.push(pair("TIP", &money(r.extras.tip_minor)));
        lines.push(pair("TOTAL", &money(r.amount_minor)));
    } else {
        lines.push(pair("AMOUNT", &money(r.amount_minor)));
    }
    lines.push(String::new());
    let verdict = match r.outcome.as_str() {
        "approved" => "APPROVED".to_string(),
        "declined" => "DECLINED".to_string(),
        "host_unreachable" | "reversal_pending" => "NOT AUTHORISED".to_string(),
        "cancelled" => "CANCELLED".to_string(),
        other => other.replace('_', " ").to_uppercase(),
    };
    lines.push(center(&verdict));
    if let Some((rc, code)) = &r.offline {
        lines.push(center("APPROVED OFFLINE"));
        lines.push(pair("AUTH CODE", code));
        lines.push(pair(
            "RESPONSE",
            &format!("{rc} {}", acquirer::messages::response_text(rc)),
        ));
    }
    if let Some(h) = &r.host {
        if let Some(code) = &h.auth_code {
            lines.push(pair("AUTH CODE", code));
        }
        lines.push(pair(
            "RESPONSE",
            &format!("{} {}", h.response_code, h.response_text),
        ));
        if let Some(rrn) = &h.rrn {
            lines.push(pair("RRN", rrn));
        }
    }
    lines.push(pair("STAN", &format!("{:06}", r.stan)));
    // The EMV lines appear only when the card produced a cryptogram: a card that left the
    // field early (Try Again) or was refused before GENERATE AC has nothing to show.
    if let Some(o) = kernel.filter(|o| o.data.get(t::APPLICATION_CRYPTOGRAM).is_some()) {
        let d = &o.data;
        for (label, tag) in [("TVR", t::TVR), ("TSI", t::TSI), ("ATC", t::ATC)] {
            if let Some(v) = d.get(tag) {
                lines.push(pair(label, &hex(v)));
            }
        }
        let cid = d.get(t::CID).and_then(|v| v.first().copied()).unwrap_or(0);
        let ac_kind = match cid & 0xC0 {
            0x80 => "ARQC",
            0x40 => "TC",
            _ => "AAC",
        };
        if let Some(ac) = d.get(t::APPLICATION_CRYPTOGRAM) {
            lines.push(pair(ac_kind, &hex(ac)));
        }
        lines.push(String::new());
        let cvm_line = match o.cvm {
            Cvm::NoCvm => "NO CARDHOLDER VERIFICATION",
            Cvm::Signature => "SIGNATURE REQUIRED",
            Cvm::OnlinePin => "PIN VERIFIED ONLINE",
            Cvm::ConsumerDevice => "VERIFIED ON DEVICE",
        };
        lines.push(center(cvm_line));
        if o.cvm == Cvm::Signature && copy == Copy::Merchant && r.approved() {
            lines.push(String::new());
            lines.push(String::new());
            lines.push("X".to_string() + &"_".repeat(WIDTH - 1));
        }
    }
    lines.push(String::new());
    lines.push(center(match copy {
        Copy::Merchant => "MERCHANT COPY",
        Copy::Customer => "CUSTOMER COPY",
    }));
    lines
}

/// The receipt as one string.
pub fn render_text(cfg: &Config, r: &TxnResult, copy: Copy) -> String {
    let mut s = render(cfg, r, copy).join("\n");
    s.push('\n');
    s
}

/// A receipt rebuilt from the journal alone, for a transaction whose laid-out receipt was
/// never stored (a crash between the approval and the receipt): the same header, card and
/// amount lines, and the host's answer; no EMV lines (the journal keeps no chip data).
pub fn render_row(cfg: &Config, row: &crate::journal::JournalRow) -> String {
    let term = &cfg.terminal;
    let money = |minor: u64| {
        format!(
            "{} {}",
            term.currency_code,
            format_minor(minor, term.currency_exponent)
        )
    };
    let when = chrono::DateTime::parse_from_rfc3339(&row.created_at)
        .map(|t| t.with_timezone(&chrono::Local))
        .ok();
    let mut lines = header(cfg, when, &row.txn_type);

    if let Some(scheme) = &row.scheme {
        lines.push(pair(&scheme.to_uppercase(), "CONTACTLESS"));
    }
    if let Some(pan) = &row.pan_masked {
        lines.push(pan.clone());
    }
    if let Some(aid) = &row.aid {
        lines.push(format!("AID {aid}"));
    }
    lines.push(String::new());
    if let Some(orig) = row.original_id {
        lines.push(pair("ORIGINAL", &format!("#{orig}")));
    }
    if row.tip_minor > 0 {
        lines.push(pair(
            "FARE",
            &money(row.amount_minor.saturating_sub(row.tip_minor)),
        ));
        lines.push(pair("TIP", &money(row.tip_minor)));
        lines.push(pair("TOTAL", &money(row.amount_minor)));
    } else {
        lines.push(pair("AMOUNT", &money(row.amount_minor)));
    }
    lines.push(String::new());
    lines.push(center(&match row.state.as_str() {
        "approved" => "APPROVED".to_string(),
        "offline_approved" => "APPROVED OFFLINE".to_string(),
        other => other.replace('_', " ").to_uppercase(),
    }));
    if let Some(code) = &row.auth_code {
        lines.push(pair("AUTH CODE", code));
    }
    if let Some(rc) = &row.response_code {
        lines.push(pair(
            "RESPONSE",
            &format!("{rc} {}", acquirer::messages::response_text(rc)),
        ));
    }
    if let Some(rrn) = &row.rrn {
        lines.push(pair("RRN", rrn));
    }
    lines.push(pair("STAN", &format!("{:06}", row.stan)));
    lines.push(String::new());
    lines.push(center("CUSTOMER COPY"));
    let mut s = lines.join("\n");
    s.push('\n');
    s
}
