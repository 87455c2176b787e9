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

/// Lays out the receipt.
pub fn render(cfg: &Config, r: &TxnResult, copy: Copy) -> Vec<String> {
    let term = &cfg.terminal;
    let mut lines = vec![
        center(&term.merchant_name),
        center(&term.merchant_address),
        pair(
            &format!("TID {}", term.terminal_id),
            &format!("MID {}", term.merchant_id),
        ),
        pair(
            &r.when.format("%Y-%m-%d").to_string(),
            &r.when.format("%H:%M:%S").to_string(),
        ),
        String::new(),
        center(&r.kind.name().to_uppercase()),
        String::new(),
    ];
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
    lines.push(pair(
        "AMOUNT",
        &format!(
            "{} {}",
            term.currency_code,
            format_minor(r.amount_minor, term.currency_exponent)
        ),
    ));
    lines.push(String::new());
    let verdict = match r.outcome.as_str() {
        "approved" => "APPROVED".to_string(),
        "declined" => "DECLINED".to_string(),
        "host_unreachable" | "reversal_pending" => "NOT AUTHORISED".to_string(),
        "cancelled" => "CANCELLED".to_string(),
        other => other.replace('_', " ").to_uppercase(),
    };
    lines.push(center(&verdict));
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
