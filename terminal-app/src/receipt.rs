//! Text receipts, 32 columns (58 mm thermal paper), with the chip data the schemes require:
//! application label, AID, masked PAN, entry mode, TVR/TSI, ATC, cryptogram, CVM, host
//! response.

use emv::outcome::Cvm;
use emv::tags as t;
use emv::util::hex;
use ui::amount::format_minor;

use crate::config::Config;
use crate::engine::TxnResult;
use crate::journal::TxnState;
use drivers::escpos::{Align, Block, Document, Style};

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

/// A receipt being laid out: ESC/POS blocks for a paper `width` columns wide (left-right
/// pairs are padded to the width; centred lines carry their alignment).
struct Builder {
    width: usize,
    blocks: Vec<Block>,
}

impl Builder {
    fn new(width: usize) -> Self {
        Builder {
            width,
            blocks: Vec::new(),
        }
    }

    fn line(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Text(s.into(), Style::default()));
    }

    fn blank(&mut self) {
        self.line("");
    }

    fn styled(&mut self, s: impl Into<String>, bold: bool, double: bool) {
        self.blocks.push(Block::Text(
            s.into(),
            Style {
                align: Align::Center,
                bold,
                double,
            },
        ));
    }

    fn center(&mut self, s: impl Into<String>) {
        self.styled(s, false, false);
    }

    /// `left` and `right` on one line, or on two when they do not fit.
    fn pair(&mut self, left: &str, right: &str) {
        let l = columns(left);
        let r = columns(right);
        if l + r + 1 > self.width {
            self.line(left);
            self.line(format!(
                "{}{right}",
                " ".repeat(self.width.saturating_sub(r))
            ));
        } else {
            self.line(format!("{left}{}{right}", " ".repeat(self.width - l - r)));
        }
    }

    fn finish(self) -> Document {
        Document {
            blocks: self.blocks,
        }
    }
}

/// The document as plain text lines `width` columns wide (centred lines padded on the left),
/// as stored in the journal, shown on screen and sent as JSON.
pub fn to_text(doc: &Document, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for b in &doc.blocks {
        if let Block::Text(t, style) = b {
            for l in drivers::escpos::wrap(t, width) {
                match style.align {
                    Align::Left => lines.push(l),
                    Align::Center => {
                        let pad = (width - columns(&l).min(width)) / 2;
                        lines.push(format!("{}{l}", " ".repeat(pad)));
                    }
                    Align::Right => {
                        let pad = width - columns(&l).min(width);
                        lines.push(format!("{}{l}", " ".repeat(pad)));
                    }
                }
            }
        }
    }
    lines
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
    drivers::escpos::columns(s)
}

/// Merchant, terminal, date and time, and the transaction type.
fn header(
    b: &mut Builder,
    cfg: &Config,
    when: Option<chrono::DateTime<chrono::Local>>,
    kind: &str,
    l: &str,
) {
    let term = &cfg.terminal;
    let f = |fmt: &str| when.map(|w| w.format(fmt).to_string()).unwrap_or_default();
    b.styled(term.merchant_name.clone(), true, false);
    b.center(term.merchant_address.clone());
    b.pair(
        &format!("TID {}", term.terminal_id),
        &format!("MID {}", term.merchant_id),
    );
    b.pair(&f("%Y-%m-%d"), &f("%H:%M:%S"));
    b.blank();
    b.styled(
        match kind {
            "sale" => ui::lang::tr(l, "Receipt", "SALE"),
            "refund" => ui::lang::tr(l, "Receipt", "REFUND"),
            "preauth" => ui::lang::tr(l, "Receipt", "PRE-AUTHORIZATION"),
            "completion" => ui::lang::tr(l, "Receipt", "COMPLETION"),
            other => other.to_uppercase(),
        },
        true,
        false,
    );
    b.blank();
}

/// Options for the printed receipt beyond the journal's text.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// A QR code at the bottom: the e-receipt address (no card data in it).
    pub qr: Option<String>,
    /// Feed and cut at the end (for a printer).
    pub cut: bool,
    /// A reprint: marked DUPLICATE.
    pub duplicate: bool,
}

/// The receipt as a document for a paper `width` columns wide: the data the schemes ask for
/// (merchant, terminal and merchant IDs, date and time, type, amount, tip, masked PAN,
/// application label, AID, entry mode, TVR, TSI, ATC, cryptogram, CVM with a signature line on
/// the merchant copy, authorisation code, ARC, RRN, STAN, batch) and the marks (offline,
/// reversed, duplicate). The customer copy speaks the cardholder's language, the merchant
/// copy the merchant's.
pub fn document(
    cfg: &Config,
    r: &TxnResult,
    copy: Copy,
    width: usize,
    extras: &Extras,
) -> Document {
    let l = language(cfg, r, copy);
    let l = l.as_str();
    let term = &cfg.terminal;
    let mut b = Builder::new(width);
    if extras.duplicate {
        b.styled(
            format!("*** {} ***", ui::lang::tr(l, "Receipt", "DUPLICATE")),
            true,
            false,
        );
    }
    header(&mut b, cfg, Some(r.when), r.kind.name(), l);
    let kernel = r.kernel.as_deref();
    if let Some(card) = kernel.and_then(|o| o.card.as_ref()) {
        let label = card
            .label
            .clone()
            .unwrap_or_else(|| card.scheme.name().to_uppercase());
        b.pair(&label, &ui::lang::tr(l, "Receipt", "CONTACTLESS"));
        if let Some(pan) = &card.pan {
            b.line(pan.masked());
        }
        b.line(format!("AID {}", hex(&card.aid)));
    }
    if let Some(q) = &r.qr {
        b.pair(
            &ui::lang::tr(l, "Receipt", "QR PAYMENT"),
            q.wallet.as_deref().unwrap_or(""),
        );
        if let Some(payer) = &q.payer {
            b.line(payer.clone());
        }
        b.pair(&ui::lang::tr(l, "Receipt", "REFERENCE"), &q.reference);
    }
    b.blank();
    let money = |minor: u64| {
        format!(
            "{} {}",
            term.currency_code,
            format_minor(minor, term.currency_exponent)
        )
    };
    if let Some(orig) = r.extras.original_id {
        b.pair(&ui::lang::tr(l, "Receipt", "ORIGINAL"), &format!("#{orig}"));
    }
    if r.extras.tip_minor > 0 {
        b.pair(
            &ui::lang::tr(l, "Receipt", "FARE"),
            &money(r.amount_minor.saturating_sub(r.extras.tip_minor)),
        );
        b.pair(
            &ui::lang::tr(l, "Receipt", "TIP"),
            &money(r.extras.tip_minor),
        );
        b.pair(&ui::lang::tr(l, "Receipt", "TOTAL"), &money(r.amount_minor));
    } else {
        b.pair(
            &ui::lang::tr(l, "Receipt", "AMOUNT"),
            &money(r.amount_minor),
        );
    }
    b.blank();
    let verdict = match r.outcome.as_str() {
        "approved" => ui::lang::tr(l, "Receipt", "APPROVED"),
        "declined" => ui::lang::tr(l, "Receipt", "DECLINED"),
        "host_unreachable" | "reversal_pending" => ui::lang::tr(l, "Receipt", "NOT AUTHORISED"),
        "cancelled" => ui::lang::tr(l, "Receipt", "CANCELLED"),
        "unknown" => ui::lang::tr(l, "Receipt", "RESULT UNKNOWN"),
        other => other.replace('_', " ").to_uppercase(),
    };
    b.styled(verdict, true, false);
    if matches!(
        r.journal_state,
        TxnState::Reversed | TxnState::ReversalPending
    ) && r.host.is_some()
    {
        b.styled(ui::lang::tr(l, "Receipt", "REVERSED"), true, false);
    }
    if let Some((rc, code)) = &r.offline {
        b.center(ui::lang::tr(l, "Receipt", "APPROVED OFFLINE"));
        b.pair(&ui::lang::tr(l, "Receipt", "AUTH CODE"), code);
        b.pair(
            &ui::lang::tr(l, "Receipt", "RESPONSE"),
            &format!("{rc} {}", acquirer::messages::response_text(rc)),
        );
    }
    if let Some(h) = &r.host {
        if let Some(code) = &h.auth_code {
            b.pair(&ui::lang::tr(l, "Receipt", "AUTH CODE"), code);
        }
        b.pair(
            &ui::lang::tr(l, "Receipt", "RESPONSE"),
            &format!("{} {}", h.response_code, h.response_text),
        );
        if let Some(rrn) = &h.rrn {
            b.pair("RRN", rrn);
        }
    }
    b.pair("STAN", &format!("{:06}", r.stan));
    b.pair(
        &ui::lang::tr(l, "Receipt", "BATCH"),
        &format!("{:03}", r.batch),
    );
    // The EMV lines appear only when the card produced a cryptogram: a card that left the
    // field early (Try Again) or was refused before GENERATE AC has nothing to show.
    if let Some(o) = kernel.filter(|o| o.data.get(t::APPLICATION_CRYPTOGRAM).is_some()) {
        let d = &o.data;
        for (label, tag) in [("TVR", t::TVR), ("TSI", t::TSI), ("ATC", t::ATC)] {
            if let Some(v) = d.get(tag) {
                b.pair(label, &hex(v));
            }
        }
        let cid = d.get(t::CID).and_then(|v| v.first().copied()).unwrap_or(0);
        let ac_kind = match cid & 0xC0 {
            0x80 => "ARQC",
            0x40 => "TC",
            _ => "AAC",
        };
        if let Some(ac) = d.get(t::APPLICATION_CRYPTOGRAM) {
            b.pair(ac_kind, &hex(ac));
        }
        // Authorisation Response Code (8A): the host's, or the terminal's Y1/Y3 offline.
        let arc = r
            .host
            .as_ref()
            .map(|h| h.response_code.clone())
            .or_else(|| r.offline.as_ref().map(|(rc, _)| rc.clone()));
        if let Some(arc) = arc {
            b.pair("ARC", &arc);
        }
        b.blank();
        let cvm_line = match o.cvm {
            Cvm::NoCvm => ui::lang::tr(l, "Receipt", "NO CARDHOLDER VERIFICATION"),
            Cvm::Signature => ui::lang::tr(l, "Receipt", "SIGNATURE REQUIRED"),
            Cvm::OnlinePin => ui::lang::tr(l, "Receipt", "PIN VERIFIED ONLINE"),
            Cvm::ConsumerDevice => ui::lang::tr(l, "Receipt", "VERIFIED ON DEVICE"),
        };
        b.center(cvm_line);
        if o.cvm == Cvm::Signature && copy == Copy::Merchant && r.approved() {
            b.blank();
            b.blank();
            b.line("X".to_string() + &"_".repeat(width - 1));
        }
    }
    b.blank();
    b.styled(
        match copy {
            Copy::Merchant => ui::lang::tr(l, "Receipt", "MERCHANT COPY"),
            Copy::Customer => ui::lang::tr(l, "Receipt", "CUSTOMER COPY"),
        },
        true,
        false,
    );
    if let Some(url) = &extras.qr {
        b.blank();
        b.blocks.push(Block::Qr(url.clone()));
    }
    if extras.cut {
        b.blocks.push(Block::Feed(3));
        b.blocks.push(Block::Cut);
    }
    b.finish()
}

/// Lays out the receipt as text, 32 columns.
pub fn render(cfg: &Config, r: &TxnResult, copy: Copy) -> Vec<String> {
    to_text(&document(cfg, r, copy, WIDTH, &Extras::default()), WIDTH)
}

/// The receipt as one string.
pub fn render_text(cfg: &Config, r: &TxnResult, copy: Copy) -> String {
    let mut s = render(cfg, r, copy).join("\n");
    s.push('\n');
    s
}

/// A stored text receipt (the journal's) as a document for the printer: its lines as they
/// are, then the QR code and the cut.
/// A reprint's DUPLICATE mark is in `language`.
pub fn text_document(text: &str, extras: &Extras, language: &str) -> Document {
    let mut blocks: Vec<Block> = Vec::new();
    if extras.duplicate {
        blocks.push(Block::Text(
            format!("*** {} ***", ui::lang::tr(language, "Receipt", "DUPLICATE")),
            Style {
                align: Align::Center,
                bold: true,
                double: false,
            },
        ));
    }
    blocks.extend(
        text.lines()
            .map(|l| Block::Text(l.to_string(), Style::default())),
    );
    if let Some(url) = &extras.qr {
        blocks.push(Block::Qr(url.clone()));
    }
    if extras.cut {
        blocks.push(Block::Feed(3));
        blocks.push(Block::Cut);
    }
    Document { blocks }
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
    let mut b = Builder::new(WIDTH);
    header(&mut b, cfg, when, &row.txn_type, l);

    if let Some(scheme) = &row.scheme {
        b.pair(
            &scheme.to_uppercase(),
            &ui::lang::tr(l, "Receipt", "CONTACTLESS"),
        );
    }
    if let Some(pan) = &row.pan_masked {
        b.line(pan.clone());
    }
    if let Some(aid) = &row.aid {
        b.line(format!("AID {aid}"));
    }
    b.blank();
    if let Some(orig) = row.original_id {
        b.pair(&ui::lang::tr(l, "Receipt", "ORIGINAL"), &format!("#{orig}"));
    }
    if row.tip_minor > 0 {
        b.pair(
            &ui::lang::tr(l, "Receipt", "FARE"),
            &money(row.amount_minor.saturating_sub(row.tip_minor)),
        );
        b.pair(&ui::lang::tr(l, "Receipt", "TIP"), &money(row.tip_minor));
        b.pair(
            &ui::lang::tr(l, "Receipt", "TOTAL"),
            &money(row.amount_minor),
        );
    } else {
        b.pair(
            &ui::lang::tr(l, "Receipt", "AMOUNT"),
            &money(row.amount_minor),
        );
    }
    b.blank();
    b.styled(
        match row.state.as_str() {
            "approved" => ui::lang::tr(l, "Receipt", "APPROVED"),
            "offline_approved" => ui::lang::tr(l, "Receipt", "APPROVED OFFLINE"),
            other => other.replace('_', " ").to_uppercase(),
        },
        true,
        false,
    );
    if let Some(code) = &row.auth_code {
        b.pair(&ui::lang::tr(l, "Receipt", "AUTH CODE"), code);
    }
    if let Some(rc) = &row.response_code {
        b.pair(
            &ui::lang::tr(l, "Receipt", "RESPONSE"),
            &format!("{rc} {}", acquirer::messages::response_text(rc)),
        );
    }
    if let Some(rrn) = &row.rrn {
        b.pair("RRN", rrn);
    }
    b.pair("STAN", &format!("{:06}", row.stan));
    b.blank();
    b.pair(
        &ui::lang::tr(l, "Receipt", "BATCH"),
        &format!("{:03}", row.batch),
    );
    b.blank();
    b.styled(ui::lang::tr(l, "Receipt", "CUSTOMER COPY"), true, false);
    let mut s = to_text(&b.finish(), WIDTH).join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    //! Golden ESC/POS bytes of a receipt in English and Chinese at 58 mm and 80 mm, and the
    //! decoder reading every mandatory field back. The transaction is real: the virtual Visa
    //! card through kernel 3 with a fixed unpredictable number and date, so its cryptogram,
    //! TVR and TSI are what the card computes. `KASSA_UPDATE_GOLDEN=1` rewrites the files.
    use super::*;
    use crate::engine::{HostAnswer, Timing, TxnExtras, TxnKind};
    use chrono::TimeZone;
    use drivers::escpos::{self, Encoding, Paper, Printed};
    use emv::entry::{EntryPoint, Step};

    fn transaction() -> TxnResult {
        use drivers::VirtualCard;
        let mut card = sim::builtin_card("visa").unwrap().unwrap();
        let (config, mut input) = emv::testdata::terminal_and_input(1234);
        input.unpredictable_number = [0x12, 0x34, 0x56, 0x78];
        let mut txn = EntryPoint::new(&config).start(input).unwrap();
        let mut step = txn.begin();
        let outcome = loop {
            match step {
                Step::Transmit(cmd) => {
                    step = txn.on_response(&card.process(&cmd.to_bytes().unwrap()))
                }
                Step::Outcome(o) => break o,
            }
        };
        TxnResult {
            outcome: "approved".into(),
            kind: TxnKind::Sale,
            amount_minor: 1234,
            stan: 42,
            journal_id: 7,
            journal_state: TxnState::Approved,
            kernel: Some(outcome),
            host: Some(HostAnswer {
                response_code: "00".into(),
                response_text: "Approved".into(),
                auth_code: Some("A1B2C3".into()),
                rrn: Some("633412000042".into()),
                tls_version: "TLSv1.3".into(),
                icc_data: Vec::new(),
            }),
            error: None,
            reason: None,
            presentations: 1,
            timing: Timing::default(),
            when: chrono::Local
                .with_ymd_and_hms(2026, 11, 30, 12, 34, 56)
                .single()
                .unwrap(),
            offline: None,
            extras: TxnExtras::default(),
            batch: 3,
            qr: None,
        }
    }

    fn config(language: &str, paper: u32, encoding: &str) -> Config {
        let mut cfg = Config::default();
        cfg.ui.language = language.into();
        cfg.printer.paper = paper;
        cfg.printer.encoding = encoding.into();
        cfg.printer.e_receipt_url = Some("https://receipts.example/r/{reference}".into());
        cfg
    }

    fn bytes(cfg: &Config, r: &TxnResult) -> Vec<u8> {
        let extras = Extras {
            qr: cfg.e_receipt_url(r.journal_id, r.batch, r.stan),
            cut: true,
            duplicate: false,
        };
        let doc = document(
            cfg,
            r,
            Copy::Merchant,
            cfg.escpos().paper.columns(),
            &extras,
        );
        escpos::encode(&doc, &cfg.escpos(), &mut escpos::NoRenderer)
    }

    fn golden(name: &str, got: &[u8]) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(format!("{name}.escpos.hex"));
        let text: String = got
            .chunks(32)
            .map(|c| {
                let mut l: String = c.iter().map(|b| format!("{b:02X}")).collect();
                l.push('\n');
                l
            })
            .collect();
        if std::env::var_os("KASSA_UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e} (KASSA_UPDATE_GOLDEN=1 writes it)", path.display())
        });
        assert_eq!(text, want, "{name}: the ESC/POS bytes changed");
    }

    /// Every field the schemes ask for, read back from the bytes.
    fn check_fields(printed: &[Printed], words: &[&str]) {
        let text = drivers::printer::text_of(printed);
        let r = transaction();
        let o = r.kernel.as_ref().unwrap();
        let ac = hex(o.data.get(t::APPLICATION_CRYPTOGRAM).unwrap());
        let tvr = hex(o.data.get(t::TVR).unwrap());
        for want in [
            "Kassa Demo Shop",
            "Alexanderplatz 1, Berlin",
            "TID KASSA001",
            "MID KASSA0000000001",
            "2026-11-30",
            "12:34:56",
            "EUR 12.34",
            "476173******0119",
            "AID A0000000031010",
            "A1B2C3",
            "00 Approved",
            "633412000042",
            "000042",
            "003",
            ac.as_str(),
            tvr.as_str(),
            "TSI",
            "ARC",
            "[QR https://receipts.example/r/KASSA001-003-000042]",
        ]
        .iter()
        .chain(words)
        {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        // No full PAN, ever.
        assert!(!text.contains("4761739001010119"));
        assert_eq!(printed.last(), Some(&Printed::Cut));
    }

    #[test]
    fn english_merchant_receipt_58_and_80_mm() {
        let r = transaction();
        for paper in [58, 80] {
            let cfg = config("en", paper, "latin");
            let b = bytes(&cfg, &r);
            golden(&format!("receipt-en-{paper}"), &b);
            let printed = escpos::decode(&b, Encoding::Latin).unwrap();
            check_fields(
                &printed,
                &[
                    "SALE",
                    "CONTACTLESS",
                    "APPROVED",
                    "BATCH",
                    "MERCHANT COPY",
                    "STAN",
                ],
            );
            // Every text line fits the paper.
            let cols = if paper == 58 { 32 } else { 48 };
            for p in &printed {
                if let Printed::Line(l, s) = p {
                    let w = if s.double { cols / 2 } else { cols };
                    assert!(columns(l) <= w, "{l:?} wider than {w}");
                }
            }
        }
        assert_eq!(Paper::Mm80.columns(), 48);
    }

    #[test]
    fn chinese_merchant_receipt_58_and_80_mm() {
        let r = transaction();
        for paper in [58, 80] {
            let cfg = config("zh_CN", paper, "gb18030");
            let b = bytes(&cfg, &r);
            golden(&format!("receipt-zh-{paper}"), &b);
            // Double-byte mode, and GB18030 bytes for 交易成功 (approved).
            assert!(b.windows(2).any(|w| w == [0x1C, 0x26]));
            let approved = [0xBD, 0xBB, 0xD2, 0xD7, 0xB3, 0xC9, 0xB9, 0xA6];
            assert!(b.windows(8).any(|w| w == approved));
            let printed = escpos::decode(&b, Encoding::Gb18030).unwrap();
            check_fields(&printed, &["消费", "非接", "交易成功", "商户存根"]);
        }
    }
}
