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
    let len = columns(s).min(WIDTH);
    let pad = (WIDTH - len) / 2;
    format!("{}{s}", " ".repeat(pad))
}

fn pair(left: &str, right: &str) -> String {
    let l = columns(left);
    let r = columns(right);
    if l + r + 1 > WIDTH {
        return format!("{left}\n{}{right}", " ".repeat(WIDTH.saturating_sub(r)));
    }
    format!("{left}{}{right}", " ".repeat(WIDTH - l - r))
}

/// The receipt's language: the customer copy speaks the cardholder's language (the card's
/// Language Preference, 5F2D, with the issuer country as the Chinese script hint) when the
/// UI has it; otherwise, and on the merchant copy, the merchant's (`[ui] language`).
pub fn language(cfg: &Config, r: &TxnResult, copy: Copy) -> String {
    let card = r.kernel.as_deref().and_then(|o| {
        let c = o.card.as_ref()?;
        let country = o
            .data
            .get(t::ISSUER_COUNTRY)
            .and_then(emv::util::parse_bcd_n)
            .and_then(|c| u16::try_from(c).ok());
        ui::lang::from_card(&c.languages, country)
    });
    match (copy, card) {
        (Copy::Customer, Some(lang)) => lang.code.to_string(),
        _ => cfg.ui.language.clone(),
    }
}

/// Columns a text takes on a receipt printer: East Asian wide characters take two, Thai and
/// other combining marks none.
pub fn columns(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x0300..=0x036F | 0x0E31 | 0x0E34..=0x0E3A | 0x0E47..=0x0E4E => 0,
            0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3041..=0x33FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

/// Merchant, terminal, date and time, and the transaction type.
fn header(
    cfg: &Config,
    when: Option<chrono::DateTime<chrono::Local>>,
    kind: &str,
    l: &str,
) -> Vec<String> {
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
        center(&match kind {
            "sale" => ui::lang::tr(l, "Receipt", "SALE"),
            "refund" => ui::lang::tr(l, "Receipt", "REFUND"),
            "preauth" => ui::lang::tr(l, "Receipt", "PRE-AUTHORIZATION"),
            "completion" => ui::lang::tr(l, "Receipt", "COMPLETION"),
            other => other.to_uppercase(),
        }),
        String::new(),
    ]
}

/// Lays out the receipt.
pub fn render(cfg: &Config, r: &TxnResult, copy: Copy) -> Vec<String> {
    let l = language(cfg, r, copy);
    let l = l.as_str();
    let term = &cfg.terminal;
    let mut lines = header(cfg, Some(r.when), r.kind.name(), l);
    let kernel = r.kernel.as_deref();
    if let Some(card) = kernel.and_then(|o| o.card.as_ref()) {
        let label = card
            .label
            .clone()
            .unwrap_or_else(|| card.scheme.name().to_uppercase());
        lines.push(pair(&label, &ui::lang::tr(l, "Receipt", "CONTACTLESS")));
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
        lines.push(pair(
            &ui::lang::tr(l, "Receipt", "ORIGINAL"),
            &format!("#{orig}"),
        ));
    }
    if r.extras.tip_minor > 0 {
        lines.push(pair(
            &ui::lang::tr(l, "Receipt", "FARE"),
            &money(r.amount_minor.saturating_sub(r.extras.tip_minor)),
        ));
        lines.push(pair(
            &ui::lang::tr(l, "Receipt", "TIP"),
            &money(r.extras.tip_minor),
        ));
        lines.push(pair(
            &ui::lang::tr(l, "Receipt", "TOTAL"),
            &money(r.amount_minor),
        ));
    } else {
        lines.push(pair(
            &ui::lang::tr(l, "Receipt", "AMOUNT"),
            &money(r.amount_minor),
        ));
    }
    lines.push(String::new());
    let verdict = match r.outcome.as_str() {
        "approved" => ui::lang::tr(l, "Receipt", "APPROVED"),
        "declined" => ui::lang::tr(l, "Receipt", "DECLINED"),
        "host_unreachable" | "reversal_pending" => ui::lang::tr(l, "Receipt", "NOT AUTHORISED"),
        "cancelled" => ui::lang::tr(l, "Receipt", "CANCELLED"),
        other => other.replace('_', " ").to_uppercase(),
    };
    lines.push(center(&verdict));
    if let Some((rc, code)) = &r.offline {
        lines.push(center(&ui::lang::tr(l, "Receipt", "APPROVED OFFLINE")));
        lines.push(pair(&ui::lang::tr(l, "Receipt", "AUTH CODE"), code));
        lines.push(pair(
            &ui::lang::tr(l, "Receipt", "RESPONSE"),
            &format!("{rc} {}", acquirer::messages::response_text(rc)),
        ));
    }
    if let Some(h) = &r.host {
        if let Some(code) = &h.auth_code {
            lines.push(pair(&ui::lang::tr(l, "Receipt", "AUTH CODE"), code));
        }
        lines.push(pair(
            &ui::lang::tr(l, "Receipt", "RESPONSE"),
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
            Cvm::NoCvm => ui::lang::tr(l, "Receipt", "NO CARDHOLDER VERIFICATION"),
            Cvm::Signature => ui::lang::tr(l, "Receipt", "SIGNATURE REQUIRED"),
            Cvm::OnlinePin => ui::lang::tr(l, "Receipt", "PIN VERIFIED ONLINE"),
            Cvm::ConsumerDevice => ui::lang::tr(l, "Receipt", "VERIFIED ON DEVICE"),
        };
        lines.push(center(&cvm_line));
        if o.cvm == Cvm::Signature && copy == Copy::Merchant && r.approved() {
            lines.push(String::new());
            lines.push(String::new());
            lines.push("X".to_string() + &"_".repeat(WIDTH - 1));
        }
    }
    lines.push(String::new());
    lines.push(center(&match copy {
        Copy::Merchant => ui::lang::tr(l, "Receipt", "MERCHANT COPY"),
        Copy::Customer => ui::lang::tr(l, "Receipt", "CUSTOMER COPY"),
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
    let l = cfg.ui.language.as_str();
    let mut lines = header(cfg, when, &row.txn_type, l);

    if let Some(scheme) = &row.scheme {
        lines.push(pair(
            &scheme.to_uppercase(),
            &ui::lang::tr(l, "Receipt", "CONTACTLESS"),
        ));
    }
    if let Some(pan) = &row.pan_masked {
        lines.push(pan.clone());
    }
    if let Some(aid) = &row.aid {
        lines.push(format!("AID {aid}"));
    }
    lines.push(String::new());
    if let Some(orig) = row.original_id {
        lines.push(pair(
            &ui::lang::tr(l, "Receipt", "ORIGINAL"),
            &format!("#{orig}"),
        ));
    }
    if row.tip_minor > 0 {
        lines.push(pair(
            &ui::lang::tr(l, "Receipt", "FARE"),
            &money(row.amount_minor.saturating_sub(row.tip_minor)),
        ));
        lines.push(pair(
            &ui::lang::tr(l, "Receipt", "TIP"),
            &money(row.tip_minor),
        ));
        lines.push(pair(
            &ui::lang::tr(l, "Receipt", "TOTAL"),
            &money(row.amount_minor),
        ));
    } else {
        lines.push(pair(
            &ui::lang::tr(l, "Receipt", "AMOUNT"),
            &money(row.amount_minor),
        ));
    }
    lines.push(String::new());
    lines.push(center(&match row.state.as_str() {
        "approved" => ui::lang::tr(l, "Receipt", "APPROVED"),
        "offline_approved" => ui::lang::tr(l, "Receipt", "APPROVED OFFLINE"),
        other => other.replace('_', " ").to_uppercase(),
    }));
    if let Some(code) = &row.auth_code {
        lines.push(pair(&ui::lang::tr(l, "Receipt", "AUTH CODE"), code));
    }
    if let Some(rc) = &row.response_code {
        lines.push(pair(
            &ui::lang::tr(l, "Receipt", "RESPONSE"),
            &format!("{rc} {}", acquirer::messages::response_text(rc)),
        ));
    }
    if let Some(rrn) = &row.rrn {
        lines.push(pair("RRN", rrn));
    }
    lines.push(pair("STAN", &format!("{:06}", row.stan)));
    lines.push(String::new());
    lines.push(center(&ui::lang::tr(l, "Receipt", "CUSTOMER COPY")));
    let mut s = lines.join("\n");
    s.push('\n');
    s
}
