//! Kernel 2 (EMV Contactless Book C-2, Mastercard), EMV (M/Chip) mode, and the EMV modes of
//! kernel 4 (Book C-4, American Express ExpressPay) and kernel 5 (Book C-5, JCB), which share
//! its shape: GPO, records, terminal checks, one GENERATE AC with CDA.
//!
//! Where kernels 4 and 5 differ ([`Flavour`]):
//! - C-4 sends the Enhanced Contactless Reader Capabilities (9F6E) and Contactless Reader
//!   Capabilities (9F6D) in the PDOL data; a TC where an ARQC was asked for is a decline.
//! - C-5 sends the Terminal Interchange Profile (9F53) and Terminal Compatibility Indicator
//!   (9F52); the card chooses the CVM and reports it in the Cardholder Verification Status
//!   (9F50) with GENERATE AC; 57 (not 5A) is mandatory; 6986 asks to see the phone, 6984 for
//!   another interface. Legacy mode (format 1 GPO) is not supported.
//! - Torn transaction recovery and on-device CVM from the AIP are kernel 2's alone.
//!
//! ```text
//! activate     GET PROCESSING OPTIONS with the PDOL data            (C-2 §3.2, S1-S3)
//! AwaitGpo     AIP and AFL; EMV mode or not; ODA status (CDA)       (S3)
//! records      READ RECORD for each AFL entry (shared with C-3)     (S4)
//! prepare      limits, mandatory data, CDA prerequisites, 9F33,     (S456)
//!              processing restrictions, CVM selection, floor limit,
//!              terminal action analysis
//! torn?        RECOVER AC when the torn log has this card           (S456.43-48, S10)
//! AwaitGenAc   GENERATE AC (CDA requested), CDA verification,       (S9, S910)
//!              the outcome
//! ```
//! Mag-stripe mode, relay resistance (EXCHANGE RELAY RESISTANCE DATA), Data Storage, and
//! balance reading are not implemented: a mag-stripe-only card ends with End Application,
//! and the Kernel Configuration reports relay resistance as unsupported (TVR byte 5 b2-b1
//! 00). Section and step labels follow Book C-2 as cited by public kernel implementations;
//! the requirement text was not available to the authors.

use crate::apdu::{Command, Response};
use crate::c3::{self, AflError, parse_afl_oda};
use crate::card::KernelId;
use crate::config::{EmvModeParams, TxnType};
use crate::dol;
use crate::entry::{Ctx, State, Transition};
use crate::oda::{self, OdaError, RustCrypto};
use crate::outcome::{
    Cvm, Message, Oda, OdaMethod, Outcome, OutcomeKind, Reason, Status, UiRequest,
};
use crate::tags as t;
use crate::tlv::{self, Tag, TagStore};
use crate::torn::{self, TornRecord};
use crate::tvr;
use crate::util::Date;

/// Tags sent to the issuer in ISO 8583 field 55 for a kernel 2 (and 4, 5) online request,
/// when present: the cryptogram and the data it covers, then terminal and card context.
pub const ONLINE_TAGS: &[Tag] = &[
    t::APPLICATION_CRYPTOGRAM,
    t::CID,
    t::IAD,
    t::UNPREDICTABLE_NUMBER,
    t::ATC,
    t::TVR,
    t::TXN_DATE,
    t::TXN_TYPE,
    t::AMOUNT_AUTHORISED,
    t::TXN_CURRENCY,
    t::AIP,
    t::TERMINAL_COUNTRY,
    t::CVM_RESULTS,
    t::TERMINAL_CAPABILITIES,
    t::TERMINAL_TYPE,
    t::DF_NAME,
    t::APP_VERSION_TERMINAL,
    t::AMOUNT_OTHER,
    t::PSN,
    t::TXN_SEQUENCE_COUNTER,
];

/// GENERATE AC reference control parameter, AC type bits (Book 3 Table 12).
const AAC: u8 = 0x00;
const TC: u8 = 0x40;
const ARQC: u8 = 0x80;
/// P1 b5: CDA signature requested.
const CDA_REQUESTED: u8 = 0x10;

/// The GENERATE AC kernels (2, 4, 5) share this flow.
pub(crate) fn is_gen_ac_kernel(k: KernelId) -> bool {
    matches!(k, KernelId::C2 | KernelId::C4 | KernelId::C5)
}

/// Which of the GENERATE AC kernels runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// Kernel 2, Mastercard.
    Mastercard,
    /// Kernel 4, American Express.
    Amex,
    /// Kernel 5, JCB.
    Jcb,
}

fn flavour(ctx: &Ctx) -> Flavour {
    match ctx.kernel() {
        KernelId::C4 => Flavour::Amex,
        KernelId::C5 => Flavour::Jcb,
        _ => Flavour::Mastercard,
    }
}

/// Whether the amount needs a CVM (at or above the Reader CVM Required Limit).
fn cvm_required_now(ctx: &Ctx) -> bool {
    ctx.selected_pre().is_some_and(|p| p.cvm_required)
}

/// The terminal data kernels 4 and 5 put in the PDOL data.
fn kernel_terminal_data(ctx: &mut Ctx, p: &EmvModeParams) {
    let cvm_required = cvm_required_now(ctx);
    match flavour(ctx) {
        Flavour::Mastercard => {}
        Flavour::Amex => {
            // Book C-4 Table 4-4, Enhanced Contactless Reader Capabilities: byte 1 b5 EMV
            // partial online mode; byte 2 b6 signature (b7 online PIN when Kassa has a PIN
            // pad); byte 3 b7 CVM required; byte 4 kernel version 2.7 (011).
            let sig = p.cvm_capability_cvm_required & 0x20;
            let pin = p.cvm_capability_cvm_required & 0x40;
            let ercc = [
                0x10,
                sig | pin,
                if cvm_required { 0x40 } else { 0x00 },
                0x03,
            ];
            ctx.data.insert(Tag::new(0x9F6E), ercc.to_vec());
            // Book C-4 Table 4-2: EMV and mag-stripe capable reader, b4 CVM required.
            ctx.data.insert(
                Tag::new(0x9F6D),
                vec![if cvm_required { 0xC8 } else { 0xC0 }],
            );
        }
        Flavour::Jcb => {
            // Book C-5, Terminal Interchange Profile: byte 1 b8 CVM required, b7 signature,
            // b6 online PIN, b5 on-device CVM; byte 2 b8 issuer update (not supported).
            let mut tip0 = 0u8;
            if cvm_required {
                tip0 |= 0x80;
            }
            if p.cvm_capability_cvm_required & 0x20 != 0 {
                tip0 |= 0x40;
            }
            if p.cvm_capability_cvm_required & 0x40 != 0 {
                tip0 |= 0x20;
            }
            if p.kernel_configuration & 0x20 != 0 {
                tip0 |= 0x10;
            }
            ctx.data.insert(Tag::new(0x9F53), vec![tip0, 0x00, 0x00]);
            // Terminal Compatibility Indicator: b2 EMV mode (no mag-stripe mode).
            ctx.data.insert(Tag::new(0x9F52), vec![0x02]);
        }
    }
}

fn params(ctx: &Ctx) -> EmvModeParams {
    ctx.selected_pre()
        .map(|p| p.combo.emv_mode.clone())
        .unwrap_or_default()
}

fn ui(message: Message, status: Status, hold_time_ms: u32) -> UiRequest {
    UiRequest {
        message,
        status,
        hold_time_ms,
        language: None,
    }
}

/// Kernel activation (Book C-2 S1-S3): GET PROCESSING OPTIONS with the PDOL data, or an
/// empty command template when the card has no PDOL.
pub(crate) fn activate(ctx: &mut Ctx) -> Transition {
    let p = params(ctx);
    // S1.7: a kernel configured without EMV mode (and Kassa has no mag-stripe mode) cannot
    // run.
    if p.kernel_configuration & 0x40 != 0 {
        return Transition::Finish(ctx.end_application(Reason::MagStripeNotSupported));
    }
    kernel_terminal_data(ctx, &p);
    let kernel = ctx.kernel().0;
    let data = match ctx.data.get(t::PDOL).map(<[u8]>::to_vec) {
        Some(pdol) => {
            let entries = match dol::parse(&pdol) {
                Ok(e) => e,
                Err(_) => {
                    return Transition::Finish(ctx.end_application(Reason::BadData(t::PDOL)));
                }
            };
            if dol::data_len(&entries) > 252 {
                return Transition::Finish(ctx.end_application(Reason::BadData(t::PDOL)));
            }
            // Only terminal data, as this kernel names it (9F6E is card data for kernel 2,
            // the reader's capabilities for kernel 4).
            dol::build(&entries, |tag| match t::lookup(tag, kernel, None) {
                Some(i) if i.source == t::Source::Card => None,
                _ => ctx.data.get(tag),
            })
        }
        None => Vec::new(),
    };
    // Kept for the CDA transaction data hash (Book 2 §6.6.1) and the torn record.
    ctx.data.insert(torn::PDOL_RELATED_DATA, data.clone());
    Transition::Send(
        State::C2Gpo(AwaitGpo),
        Command::get_processing_options(&data),
    )
}

/// GPO sent.
#[derive(Debug)]
pub(crate) struct AwaitGpo;

impl AwaitGpo {
    /// Book C-2 S3: status word, response format 1 (80) or 2 (77), AIP and AFL, EMV mode,
    /// ODA status.
    pub(crate) fn on_response(self, resp: Response, ctx: &mut Ctx) -> Transition {
        match resp.sw {
            0x9000 => {}
            // S3.9: any other status word: Select Next (the next candidate, Start C).
            _ => {
                let remaining = std::mem::take(&mut ctx.remaining);
                return crate::entry::FinalSelect::next(remaining, ctx);
            }
        }
        let mut gpo = TagStore::new();
        match tlv::parse(&resp.data).next() {
            // Book C-5: a format 1 response selects legacy mode, which Kassa does not run.
            Some(Ok(o)) if o.tag() == t::RESPONSE_FORMAT1 && flavour(ctx) == Flavour::Jcb => {
                return Transition::Finish(ctx.outcome(
                    OutcomeKind::EndApplication,
                    Reason::MagStripeNotSupported,
                    ui(Message::TryAnotherCard, Status::NotReady, 1500),
                ));
            }
            // Format 1: AIP (2 bytes) || AFL.
            Some(Ok(o)) if o.tag() == t::RESPONSE_FORMAT1 && o.encoded_len() == resp.data.len() => {
                let v = o.value();
                if v.len() < 2 {
                    return Transition::Finish(ctx.end_application(Reason::BadData(t::AIP)));
                }
                gpo.insert(t::AIP, v[..2].to_vec());
                gpo.insert(t::AFL, v[2..].to_vec());
            }
            _ => {
                let tpl = match tlv::expect_template(&resp.data, t::RESPONSE_FORMAT2) {
                    Ok(tpl) => tpl,
                    Err(e) => {
                        return Transition::Finish(
                            ctx.end_application(Reason::MalformedResponse(e)),
                        );
                    }
                };
                if let Err(e) = gpo.absorb(tpl.value(), |_| false) {
                    return Transition::Finish(ctx.end_application(Reason::MalformedResponse(e)));
                }
            }
        }
        let Some(aip) = gpo.get(t::AIP).map(<[u8]>::to_vec) else {
            return Transition::Finish(ctx.end_application(Reason::MissingData(t::AIP)));
        };
        if aip.len() != 2 {
            return Transition::Finish(ctx.end_application(Reason::BadData(t::AIP)));
        }
        let Some(afl) = gpo.get(t::AFL).map(<[u8]>::to_vec) else {
            return Transition::Finish(ctx.end_application(Reason::MissingData(t::AFL)));
        };
        // S3.15/16: EMV mode when the card supports it (AIP byte 2 b8) and the kernel does.
        let p = params(ctx);
        if aip[1] & 0x80 == 0 || p.kernel_configuration & 0x40 != 0 {
            return Transition::Finish(ctx.outcome(
                OutcomeKind::EndApplication,
                Reason::MagStripeNotSupported,
                ui(Message::TryAnotherCard, Status::NotReady, 1500),
            ));
        }
        let reads = if afl.is_empty() {
            Vec::new()
        } else {
            match parse_afl_oda(&afl) {
                Ok(r) => r,
                Err(AflError) => {
                    return Transition::Finish(ctx.end_application(Reason::BadData(t::AFL)));
                }
            }
        };
        for (tag, v) in gpo.iter() {
            if crate::tags::card_may_set(tag, 2) {
                ctx.data.insert(tag, v);
            }
        }
        // S3R1.17-20: ODA status CDA when the card (AIP byte 1 b1) and the terminal (Security
        // Capability b4) support it; otherwise "offline data authentication was not
        // performed".
        if !(aip[0] & 0x01 != 0 && p.security_capability & 0x08 != 0) {
            tvr::set_tvr(&mut ctx.data, tvr::ODA_NOT_PERFORMED);
        }
        c3::ReadRecords::start(reads, gpo, c3::AfterRecords::GenAc, ctx)
    }
}

/// Whether CDA is the ODA method of this transaction (set at GPO, cleared when a
/// prerequisite fails).
fn cda_status(ctx: &Ctx) -> bool {
    !tvr::tvr_has(&ctx.data, tvr::ODA_NOT_PERFORMED) && !tvr::tvr_has(&ctx.data, tvr::CDA_FAILED)
}

/// Whether the card and the kernel both support on-device cardholder verification (AIP byte
/// 1 b2, Kernel Configuration b6).
fn on_device_cvm(ctx: &Ctx, p: &EmvModeParams) -> bool {
    flavour(ctx) == Flavour::Mastercard
        && ctx.data.get(t::AIP).is_some_and(|a| a[0] & 0x02 != 0)
        && p.kernel_configuration & 0x20 != 0
}

fn amount(ctx: &Ctx) -> u64 {
    ctx.data
        .get(t::AMOUNT_AUTHORISED)
        .and_then(crate::util::parse_bcd_n)
        .unwrap_or(0)
}

/// After the last record: Book C-2 S456, up to the first GENERATE AC (or RECOVER AC).
pub(crate) fn after_records(ctx: &mut Ctx) -> Transition {
    let p = params(ctx);
    let amount = amount(ctx);
    let on_device = on_device_cvm(ctx, &p);
    let pre = ctx.selected_pre().cloned();
    // S456.14-15: the limit for this card (a higher one when it verifies the cardholder
    // itself): above it, Select Next.
    let limit = if on_device {
        p.on_device_cvm_txn_limit
            .or(pre.as_ref().and_then(|p| p.combo.contactless_txn_limit))
    } else {
        pre.as_ref().and_then(|p| p.combo.contactless_txn_limit)
    };
    if limit.is_some_and(|l| amount >= l) {
        let remaining = std::mem::take(&mut ctx.remaining);
        if remaining.is_empty() {
            return Transition::Finish(ctx.outcome(
                OutcomeKind::TryAnotherInterface,
                Reason::AmountNotAllowed,
                ui(Message::InsertOrSwipe, Status::ProcessingError, 2000),
            ));
        }
        return crate::entry::FinalSelect::next(remaining, ctx);
    }
    // S456.16-17: mandatory data (kernel 5: 8C, 57, 5F24, else Select Next).
    let fl = flavour(ctx);
    let mandatory: &[Tag] = if fl == Flavour::Jcb {
        &[t::CDOL1, t::TRACK2, t::EXPIRY]
    } else {
        &[t::EXPIRY, t::PAN, t::CDOL1]
    };
    for &tag in mandatory {
        if !ctx.data.contains(tag) {
            if fl == Flavour::Jcb && !ctx.remaining.is_empty() {
                let remaining = std::mem::take(&mut ctx.remaining);
                return crate::entry::FinalSelect::next(remaining, ctx);
            }
            return Transition::Finish(ctx.end_application(Reason::MissingData(tag)));
        }
    }
    let pan_ok = match ctx.data.get(t::PAN) {
        Some(pan) => crate::card::Pan::from_cn(pan).is_some(),
        None => ctx
            .data
            .get(t::TRACK2)
            .and_then(crate::card::Track2::parse)
            .is_some(),
    };
    if !pan_ok {
        return Transition::Finish(ctx.end_application(Reason::BadData(t::PAN)));
    }
    // S456.24-27: CDA prerequisites. A missing certificate or CA key is a CDA failure now;
    // an SDA Tag List naming anything but the AIP is a card data error.
    if let Some(list) = ctx.data.get(Tag::new(0x9F4A))
        && list != [0x82]
    {
        return Transition::Finish(ctx.end_application(Reason::BadData(Tag::new(0x9F4A))));
    }
    if cda_status(ctx) {
        let needed = [
            t::CA_PK_INDEX,
            t::ISSUER_PK_CERT,
            Tag::new(0x9F32),
            t::ICC_PK_CERT,
            Tag::new(0x9F47),
        ];
        if needed.iter().any(|&tag| !ctx.data.contains(tag)) {
            tvr::set_tvr(&mut ctx.data, tvr::ICC_DATA_MISSING);
            tvr::set_tvr(&mut ctx.data, tvr::CDA_FAILED);
        } else if ca_key(ctx).is_none() {
            tvr::set_tvr(&mut ctx.data, tvr::CDA_FAILED);
        }
    }
    // S456.30-33: Terminal Capabilities for this transaction.
    let cvm_required = pre
        .as_ref()
        .and_then(|p| p.combo.cvm_required_limit)
        .is_some_and(|l| amount > l);
    let caps = [
        p.card_data_input_capability,
        if cvm_required {
            p.cvm_capability_cvm_required
        } else {
            p.cvm_capability_no_cvm_required
        },
        p.security_capability,
    ];
    ctx.data.insert(t::TERMINAL_CAPABILITIES, caps.to_vec());
    if let Some(v) = p.app_version {
        ctx.data.insert(t::APP_VERSION_TERMINAL, v.to_vec());
    }
    // S456.35: processing restrictions (Book 3 §10.4).
    processing_restrictions(ctx);
    // S456.36: cardholder verification (kernel 5: the card decides, see 9F50 after
    // GENERATE AC).
    let cvm = if fl == Flavour::Jcb {
        Cvm::NoCvm
    } else {
        select_cvm(ctx, on_device, cvm_required)
    };
    // S456.37-38: terminal risk management, floor limit.
    if pre
        .as_ref()
        .and_then(|p| p.combo.floor_limit)
        .is_some_and(|l| amount > l)
    {
        tvr::set_tvr(&mut ctx.data, tvr::FLOOR_LIMIT_EXCEEDED);
    }
    // S456.39: terminal action analysis. (Refunds run it too: Kassa sends refunds online,
    // so an AAC-only refund flow is not used for any kernel.)
    let ac = terminal_action_analysis(ctx, &p);
    let ctx_cvm = cvm;
    // S456.43-48: a torn record for this card? Then RECOVER AC first.
    let drdol = ctx.data.get(torn::DRDOL).map(<[u8]>::to_vec);
    if fl == Flavour::Mastercard
        && p.torn_log_max > 0
        && drdol.as_ref().is_some_and(|d| !d.is_empty())
        && let Some(index) = find_torn(ctx)
        && let Some(record) = ctx.torn_log[index].data()
    {
        let drdol_data = record
            .get(torn::DRDOL_RELATED_DATA)
            .unwrap_or_default()
            .to_vec();
        return Transition::Send(
            State::C2RecoverAc(AwaitRecoverAc {
                index,
                ac,
                cvm: ctx_cvm,
            }),
            Command {
                cla: 0x80,
                ins: 0xD0,
                p1: 0x00,
                p2: 0x00,
                data: drdol_data,
                le: Some(0),
            },
        );
    }
    generate_ac(ctx, &p, ac, ctx_cvm, None)
}

fn find_torn(ctx: &Ctx) -> Option<usize> {
    let pan = ctx.data.get(t::PAN)?;
    let psn = ctx.data.get(t::PSN);
    ctx.torn_log.iter().position(|r| r.matches(pan, psn))
}

fn ca_key(ctx: &Ctx) -> Option<&oda::CaPublicKey> {
    let rid = ctx.selected.as_ref()?.adf_name.get(..5)?.to_vec();
    let index = *ctx.data.get(t::CA_PK_INDEX)?.first()?;
    ctx.capks
        .iter()
        .find(|k| k.rid[..] == rid[..] && k.index == index)
}

/// Book 3 §10.4 as kernel 2 applies it: application version, expiry and effective dates,
/// application usage control. Each failure sets its TVR bit; terminal action analysis decides.
fn processing_restrictions(ctx: &mut Ctx) {
    let d = &ctx.data;
    let version_mismatch = matches!(
        (d.get(t::APP_VERSION_CARD), d.get(t::APP_VERSION_TERMINAL)),
        (Some(c), Some(t)) if c != t
    );
    let today = ctx.today;
    let expired = d
        .get(t::EXPIRY)
        .and_then(Date::from_bcd)
        .is_none_or(|e| e < today);
    let not_effective = d
        .get(t::EFFECTIVE)
        .and_then(Date::from_bcd)
        .is_some_and(|e| e > today);
    // Application Usage Control (9F07): domestic when the issuer country is the terminal's.
    let auc_fails = match d.get(t::AUC) {
        Some(auc) if auc.len() >= 2 => {
            let domestic = d.get(t::ISSUER_COUNTRY).is_some()
                && d.get(t::ISSUER_COUNTRY) == d.get(t::TERMINAL_COUNTRY);
            let txn = d.get(t::TXN_TYPE).and_then(|v| v.first().copied());
            // b1 of byte 1: valid at terminals other than ATMs.
            let not_atm = auc[0] & 0x01 != 0;
            let ok = match txn {
                Some(0x01) => auc[0] & if domestic { 0x80 } else { 0x40 } != 0,
                Some(0x09) => {
                    auc[0] & if domestic { 0x30 } else { 0x0C } != 0
                        && auc[1] & if domestic { 0x80 } else { 0x40 } != 0
                }
                // Purchase and refund: goods or services.
                _ => auc[0] & if domestic { 0x30 } else { 0x0C } != 0,
            };
            !(ok && not_atm)
        }
        _ => false,
    };
    let d = &mut ctx.data;
    if version_mismatch {
        tvr::set_tvr(d, tvr::APP_VERSIONS_DIFFER);
    }
    if expired {
        tvr::set_tvr(d, tvr::EXPIRED_APPLICATION);
    }
    if not_effective {
        tvr::set_tvr(d, tvr::NOT_YET_EFFECTIVE);
    }
    if auc_fails {
        tvr::set_tvr(d, tvr::SERVICE_NOT_ALLOWED);
    }
}

/// Book C-2 S456.36 (CVM.1-CVM.x) and Book 3 §10.5: on-device CVM when card and kernel support
/// it, otherwise the card's CVM list against Terminal Capabilities byte 2. Sets CVM Results
/// (9F34) and the TVR bits.
fn select_cvm(ctx: &mut Ctx, on_device: bool, cvm_required: bool) -> Cvm {
    if on_device {
        return if cvm_required {
            ctx.data.insert(t::CVM_RESULTS, vec![0x01, 0x00, 0x02]);
            Cvm::ConsumerDevice
        } else {
            ctx.data.insert(t::CVM_RESULTS, vec![0x3F, 0x00, 0x02]);
            Cvm::NoCvm
        };
    }
    // AIP byte 1 b5: cardholder verification not supported.
    if ctx.data.get(t::AIP).is_some_and(|a| a[0] & 0x10 == 0) {
        ctx.data.insert(t::CVM_RESULTS, vec![0x3F, 0x00, 0x00]);
        return Cvm::NoCvm;
    }
    let list = ctx.data.get(t::CVM_LIST).map(<[u8]>::to_vec);
    let Some(list) = list.filter(|l| l.len() >= 10) else {
        ctx.data.insert(t::CVM_RESULTS, vec![0x3F, 0x00, 0x00]);
        tvr::set_tvr(&mut ctx.data, tvr::ICC_DATA_MISSING);
        return Cvm::NoCvm;
    };
    let (cvm, results, unrecognised) = process_cvm_list(&list, &ctx.data);
    ctx.data.insert(t::CVM_RESULTS, results.to_vec());
    if unrecognised {
        tvr::set_tvr(&mut ctx.data, tvr::UNRECOGNISED_CVM);
    }
    match cvm {
        Some(c) => c,
        None => {
            tvr::set_tvr(&mut ctx.data, tvr::CVM_NOT_SUCCESSFUL);
            Cvm::NoCvm
        }
    }
}

/// CVM list processing (Book 3 §10.5, Annex C3). Returns the CVM (`None` when cardholder
/// verification failed), the CVM Results and whether an unrecognised CVM was met.
pub(crate) fn process_cvm_list(list: &[u8], d: &TagStore) -> (Option<Cvm>, [u8; 3], bool) {
    let x = u32::from_be_bytes([list[0], list[1], list[2], list[3]]) as u64;
    let y = u32::from_be_bytes([list[4], list[5], list[6], list[7]]) as u64;
    let amount = d
        .get(t::AMOUNT_AUTHORISED)
        .and_then(crate::util::parse_bcd_n)
        .unwrap_or(0);
    let in_app_currency = d
        .get(t::APP_CURRENCY)
        .is_some_and(|c| Some(c) == d.get(t::TXN_CURRENCY));
    let txn = d
        .get(t::TXN_TYPE)
        .and_then(|v| v.first().copied())
        .unwrap_or(0);
    let unattended = d
        .get(t::TERMINAL_TYPE)
        .and_then(|v| v.first())
        .is_some_and(|&tt| matches!(tt & 0x0F, 4..=6));
    let supported = d
        .get(t::TERMINAL_CAPABILITIES)
        .and_then(|c| c.get(1).copied())
        .unwrap_or(0);
    // Terminal Capabilities byte 2 bit for each CVM code; None: not recognised.
    let support_bits = |code: u8| -> Option<u8> {
        match code {
            0x00 => Some(0x00),
            0x01 => Some(0x80),
            0x02 => Some(0x40),
            0x03 => Some(0x80 | 0x20),
            0x04 => Some(0x10),
            0x05 => Some(0x10 | 0x20),
            0x1E => Some(0x20),
            0x1F => Some(0x08),
            _ => None,
        }
    };
    let mut unrecognised = false;
    let mut last = [0x3F, 0x00, 0x01];
    for rule in list[8..].chunks_exact(2) {
        let (code, cond) = (rule[0] & 0x3F, rule[1]);
        let apply_next = rule[0] & 0x40 != 0;
        let satisfied = match cond {
            0x00 => true,
            0x01 => txn == 0x01 && unattended,
            0x02 => txn != 0x01 && txn != 0x09,
            0x03 => support_bits(code).is_some_and(|b| b != 0 && supported & b == b),
            0x04 => txn == 0x01 && !unattended,
            0x05 => txn == 0x09,
            0x06 => in_app_currency && amount < x,
            0x07 => in_app_currency && amount > x,
            0x08 => in_app_currency && amount < y,
            0x09 => in_app_currency && amount > y,
            _ => false,
        };
        if !satisfied {
            continue;
        }
        last = [rule[0], cond, 0x01];
        let Some(bits) = support_bits(code) else {
            unrecognised = true;
            if apply_next {
                continue;
            }
            return (None, last, unrecognised);
        };
        // Code 00: "fail CVM processing".
        if code == 0x00 {
            return (None, last, unrecognised);
        }
        if supported & bits != bits {
            if apply_next {
                continue;
            }
            return (None, last, unrecognised);
        }
        return match code {
            0x1F => (Some(Cvm::NoCvm), [rule[0], cond, 0x02], unrecognised),
            0x1E => (Some(Cvm::Signature), [rule[0], cond, 0x00], unrecognised),
            0x02 => (Some(Cvm::OnlinePin), [rule[0], cond, 0x00], unrecognised),
            // Offline PIN (plaintext or enciphered): a contactless reader has no way to send
            // it to the card in this kernel; treated as not performed.
            _ => {
                if apply_next {
                    continue;
                }
                (None, last, unrecognised)
            }
        };
    }
    (None, last, unrecognised)
}

/// Book 3 §10.7 as Book C-2 S456.39 applies it: denial codes, then by terminal type online
/// or default codes. Absent IACs count as all bits set (denial: none).
fn terminal_action_analysis(ctx: &Ctx, p: &EmvModeParams) -> u8 {
    let d = &ctx.data;
    let tvr: [u8; 5] = d
        .get(t::TVR)
        .and_then(|v| v.try_into().ok())
        .unwrap_or([0; 5]);
    let iac = |tag, absent: u8| -> [u8; 5] {
        d.get(tag)
            .and_then(|v| v.try_into().ok())
            .unwrap_or([absent; 5])
    };
    let hit = |a: [u8; 5], b: [u8; 5]| (0..5).any(|i| (a[i] | b[i]) & tvr[i] != 0);
    if hit(p.tac_denial, iac(t::IAC_DENIAL, 0x00)) {
        return AAC;
    }
    let terminal_type = d
        .get(t::TERMINAL_TYPE)
        .and_then(|v| v.first().copied())
        .unwrap_or(0x22);
    match terminal_type {
        0x11 | 0x21 | 0x14 | 0x24 | 0x34 => ARQC,
        0x23 | 0x26 | 0x36 | 0x13 | 0x16 => {
            if hit(p.tac_default, iac(t::IAC_DEFAULT, 0xFF)) {
                AAC
            } else {
                TC
            }
        }
        _ => {
            if hit(p.tac_online, iac(t::IAC_ONLINE, 0xFF)) {
                ARQC
            } else {
                TC
            }
        }
    }
}

/// Book C-2 GAC.20-27 and S9: GENERATE AC with CDOL1 data, asking for CDA unless the ODA
/// status is not CDA (then a card that verifies the cardholder itself gets an AAC request:
/// its verification cannot be trusted without CDA) or the request is an AAC.
fn generate_ac(
    ctx: &mut Ctx,
    p: &EmvModeParams,
    mut ac: u8,
    cvm: Cvm,
    superseded: Option<usize>,
) -> Transition {
    let cda = cda_status(ctx);
    if !cda && on_device_cvm(ctx, p) {
        ac = AAC;
    }
    let p1 = if cda && ac != AAC {
        ac | CDA_REQUESTED
    } else {
        ac
    };
    let Some(cdol1) = ctx.data.get(t::CDOL1).map(<[u8]>::to_vec) else {
        return Transition::Finish(ctx.end_application(Reason::MissingData(t::CDOL1)));
    };
    let entries = match dol::parse(&cdol1) {
        Ok(e) if dol::data_len(&e) <= 252 => e,
        _ => return Transition::Finish(ctx.end_application(Reason::BadData(t::CDOL1))),
    };
    let data = dol::build(&entries, |tag| ctx.data.get(tag));
    ctx.data.insert(torn::CDOL1_RELATED_DATA, data.clone());
    ctx.data.insert(torn::REFERENCE_CONTROL_PARAMETER, vec![p1]);
    // DRDOL Related Data, for a torn record should the card leave now.
    if let Some(drdol) = ctx.data.get(torn::DRDOL).map(<[u8]>::to_vec)
        && let Ok(e) = dol::parse(&drdol)
    {
        let dr = dol::build(&e, |tag| ctx.data.get(tag));
        ctx.data.insert(torn::DRDOL_RELATED_DATA, dr);
    }
    Transition::Send(
        State::C2GenAc(AwaitGenAc {
            p1,
            cvm,
            superseded,
            recovered: None,
        }),
        Command {
            cla: 0x80,
            ins: 0xAE,
            p1,
            p2: 0x00,
            data,
            le: Some(0),
        },
    )
}

/// RECOVER AC sent for the torn record at `index`.
#[derive(Debug)]
pub(crate) struct AwaitRecoverAc {
    index: usize,
    /// The AC type terminal action analysis chose, for the GENERATE AC if recovery fails.
    ac: u8,
    cvm: Cvm,
}

impl AwaitRecoverAc {
    /// Book C-2 S10: 9000 means the card returns the torn transaction's GENERATE AC
    /// response: the record's data replaces this transaction's (amounts, unpredictable
    /// number, PDOL and CDOL1 data, TVR, CVM Results) and the response is processed as that
    /// GENERATE AC's. Any other status: this card has no torn transaction to give back;
    /// GENERATE AC as planned, and the old record goes.
    pub(crate) fn on_response(self, resp: Response, ctx: &mut Ctx) -> Transition {
        let p = params(ctx);
        if resp.sw != 0x9000 {
            return generate_ac(ctx, &p, self.ac, self.cvm, Some(self.index));
        }
        let Some(record) = ctx.torn_log.get(self.index).and_then(TornRecord::data) else {
            return generate_ac(ctx, &p, self.ac, self.cvm, Some(self.index));
        };
        for (tag, v) in record.iter() {
            ctx.data.insert(tag, v);
        }
        let p1 = record
            .get(torn::REFERENCE_CONTROL_PARAMETER)
            .and_then(|v| v.first().copied())
            .unwrap_or(ARQC);
        // The recovered transaction's CVM follows its CVM Results.
        let cvm = match record.get(t::CVM_RESULTS).map(|r| r[0] & 0x3F) {
            Some(0x1E) => Cvm::Signature,
            Some(0x02) => Cvm::OnlinePin,
            Some(0x01)
                if record
                    .get(t::CVM_RESULTS)
                    .is_some_and(|r| r.get(2) == Some(&0x02)) =>
            {
                Cvm::ConsumerDevice
            }
            _ => Cvm::NoCvm,
        };
        AwaitGenAc {
            p1,
            cvm,
            superseded: None,
            recovered: Some(self.index),
        }
        .on_response(resp, ctx)
    }
}

/// GENERATE AC sent (or a RECOVER AC answered).
#[derive(Debug)]
pub(crate) struct AwaitGenAc {
    /// The reference control parameter sent.
    pub(crate) p1: u8,
    cvm: Cvm,
    /// A torn record this GENERATE AC supersedes (RECOVER AC failed): removed whatever the
    /// answer.
    pub(crate) superseded: Option<usize>,
    /// The torn record this response recovered.
    recovered: Option<usize>,
}

impl AwaitGenAc {
    /// Book C-2 S910: the response, CDA, and the outcome.
    pub(crate) fn on_response(self, resp: Response, ctx: &mut Ctx) -> Transition {
        let settled = self.recovered.or(self.superseded);
        let mut o = self.decide(resp, ctx);
        o.torn_done = settled;
        Transition::Finish(o)
    }

    fn decide(&self, resp: Response, ctx: &mut Ctx) -> Outcome {
        let end = |ctx: &Ctx, reason| {
            ctx.outcome(
                OutcomeKind::EndApplication,
                reason,
                ui(Message::TryAnotherCard, Status::NotReady, 1500),
            )
        };
        let fl = flavour(ctx);
        match (fl, resp.sw) {
            (_, 0x9000) => {}
            // Book C-5: the phone wants the cardholder: see phone, present again.
            (Flavour::Jcb, 0x6986) => {
                return ctx.outcome(
                    OutcomeKind::TryAgain,
                    Reason::StatusWord {
                        ins: 0xAE,
                        sw: resp.sw,
                    },
                    ui(Message::SeePhone, Status::NotReady, 1300),
                );
            }
            (Flavour::Jcb, 0x6984) => {
                return ctx.outcome(
                    OutcomeKind::TryAnotherInterface,
                    Reason::StatusWord {
                        ins: 0xAE,
                        sw: resp.sw,
                    },
                    ui(Message::InsertOrSwipe, Status::ProcessingError, 2000),
                );
            }
            (_, sw) => return end(ctx, Reason::StatusWord { ins: 0xAE, sw }),
        }
        // Format 1 (80): CID, ATC, AC, IAD. Format 2 (77): BER-TLV.
        let mut r = TagStore::new();
        let mut signed_objects = Vec::new();
        match tlv::parse(&resp.data).next() {
            Some(Ok(o)) if o.tag() == t::RESPONSE_FORMAT1 && o.encoded_len() == resp.data.len() => {
                let v = o.value();
                if v.len() < 11 {
                    return end(ctx, Reason::BadData(t::RESPONSE_FORMAT1));
                }
                r.insert(t::CID, v[..1].to_vec());
                r.insert(t::ATC, v[1..3].to_vec());
                r.insert(t::APPLICATION_CRYPTOGRAM, v[3..11].to_vec());
                if v.len() > 11 {
                    r.insert(t::IAD, v[11..].to_vec());
                }
            }
            _ => {
                let tpl = match tlv::expect_template(&resp.data, t::RESPONSE_FORMAT2) {
                    Ok(tpl) => tpl,
                    Err(e) => return end(ctx, Reason::MalformedResponse(e)),
                };
                if let Err(e) = r.absorb(tpl.value(), |_| false) {
                    return end(ctx, Reason::MalformedResponse(e));
                }
                // Book 2 §6.6.1: the hash covers the response's objects in order, 9F4B out.
                for o in tpl.children() {
                    match o {
                        Ok(o) if o.tag() == t::SDAD => {}
                        Ok(o) => {
                            let start = o.offset() - tpl.value_offset();
                            signed_objects
                                .extend_from_slice(&tpl.value()[start..start + o.encoded_len()]);
                        }
                        Err(e) => return end(ctx, Reason::MalformedResponse(e)),
                    }
                }
            }
        }
        let (Some(cid), Some(atc)) = (
            r.get(t::CID).and_then(|v| v.first().copied()),
            r.get(t::ATC).map(<[u8]>::to_vec),
        ) else {
            return end(
                ctx,
                Reason::MissingData(if r.contains(t::CID) { t::ATC } else { t::CID }),
            );
        };
        if atc.len() != 2 {
            return end(ctx, Reason::BadData(t::ATC));
        }
        let requested = self.p1 & 0xC0;
        let returned = cid & 0xC0;
        // Book 3 §9.3 / C-2 S910.x: the card may only lower the request (TC > ARQC > AAC).
        let rank = |ac| match ac {
            TC => 2,
            ARQC => 1,
            _ => 0,
        };
        if returned == 0xC0 || rank(returned) > rank(requested) {
            // Kernels 4 and 5 decline a cryptogram above the request; kernel 2 ends.
            if fl != Flavour::Mastercard && returned != 0xC0 {
                return ctx.outcome(
                    OutcomeKind::Declined,
                    Reason::WrongCryptogramType,
                    ui(Message::NotAuthorised, Status::CardReadSuccessfully, 1500),
                );
            }
            return end(ctx, Reason::WrongCryptogramType);
        }
        for (tag, v) in r.iter() {
            if tag != t::SDAD && crate::tags::card_may_set(tag, ctx.kernel().0) {
                ctx.data.insert(tag, v);
            }
        }
        let mut oda_result = Oda::NotPerformed;
        if self.p1 & CDA_REQUESTED != 0 && returned != AAC {
            // S910.34/37: CDA asked for, TC or ARQC returned: the signature must be there.
            let Some(sdad) = r.get(t::SDAD).map(<[u8]>::to_vec) else {
                if fl == Flavour::Jcb {
                    // Book C-5: CDA asked for, no signature: declined.
                    return ctx.outcome(
                        OutcomeKind::Declined,
                        Reason::MissingData(t::SDAD),
                        ui(Message::NotAuthorised, Status::CardReadSuccessfully, 1500),
                    );
                }
                return end(ctx, Reason::MissingData(t::SDAD));
            };
            match verify_cda(ctx, &sdad, cid, &signed_objects) {
                Ok(ac) => {
                    ctx.data.insert(t::APPLICATION_CRYPTOGRAM, ac.to_vec());
                    oda_result = Oda::Succeeded(OdaMethod::Cda);
                }
                Err(e) => {
                    // S910.7 / S11.46: CAM failed: TVR "CDA failed", End Application.
                    tvr::set_tvr(&mut ctx.data, tvr::CDA_FAILED);
                    let mut o = end(ctx, Reason::OdaFailed(e.to_string()));
                    o.oda = Oda::Failed(OdaMethod::Cda);
                    return o;
                }
            }
        } else if returned == AAC
            && !r.contains(t::APPLICATION_CRYPTOGRAM)
            && let Some(sdad) = r.get(t::SDAD).map(<[u8]>::to_vec)
        {
            // A card that signed its AAC: the AC is inside. The decline stands either way.
            match verify_cda(ctx, &sdad, cid, &signed_objects) {
                Ok(ac) => {
                    ctx.data.insert(t::APPLICATION_CRYPTOGRAM, ac.to_vec());
                    oda_result = Oda::Succeeded(OdaMethod::Cda);
                }
                Err(_) => {
                    tvr::set_tvr(&mut ctx.data, tvr::CDA_FAILED);
                    oda_result = Oda::Failed(OdaMethod::Cda);
                }
            }
        } else if tvr::tvr_has(&ctx.data, tvr::CDA_FAILED) {
            oda_result = Oda::Failed(OdaMethod::Cda);
        }
        if !ctx.data.contains(t::APPLICATION_CRYPTOGRAM) && returned != AAC {
            return end(ctx, Reason::MissingData(t::APPLICATION_CRYPTOGRAM));
        }
        let mut cvm = self.cvm;
        if fl == Flavour::Jcb && returned != AAC {
            match jcb_cvm(ctx) {
                Ok(c) => cvm = c,
                Err(reason) => {
                    return ctx.outcome(
                        OutcomeKind::Declined,
                        reason,
                        ui(Message::NotAuthorised, Status::CardReadSuccessfully, 1500),
                    );
                }
            }
        }
        let mut o = match returned {
            TC => {
                let mut o = ctx.outcome(
                    OutcomeKind::Approved,
                    Reason::None,
                    ui(
                        if cvm == Cvm::Signature {
                            Message::ApprovedSign
                        } else {
                            Message::Approved
                        },
                        Status::CardReadSuccessfully,
                        1500,
                    ),
                );
                o.online_data = online_data(&ctx.data);
                o
            }
            ARQC => {
                let mut o = ctx.outcome(
                    OutcomeKind::OnlineRequest,
                    Reason::None,
                    ui(
                        Message::AuthorisingPleaseWait,
                        Status::CardReadSuccessfully,
                        0,
                    ),
                );
                o.online_data = online_data(&ctx.data);
                o
            }
            _ => {
                // S910.74: an AAC for a purchase: another interface if the terminal has a
                // contact reader, otherwise declined.
                let contact = ctx
                    .data
                    .get(t::TERMINAL_CAPABILITIES)
                    .is_some_and(|c| c[0] & 0x20 != 0);
                let txn = ctx.data.get(t::TXN_TYPE).and_then(|v| v.first().copied());
                let purchase_like = matches!(
                    txn,
                    Some(c) if c == TxnType::Purchase.code()
                        || c == TxnType::Cash.code()
                        || c == TxnType::PurchaseWithCashback.code()
                );
                if purchase_like && contact {
                    ctx.outcome(
                        OutcomeKind::TryAnotherInterface,
                        Reason::CardDeclined,
                        ui(Message::InsertCard, Status::ProcessingError, 2000),
                    )
                } else {
                    let mut o = ctx.outcome(
                        OutcomeKind::Declined,
                        Reason::CardDeclined,
                        ui(Message::NotAuthorised, Status::CardReadSuccessfully, 1500),
                    );
                    o.online_data = online_data(&ctx.data);
                    o
                }
            }
        };
        o.cvm = cvm;
        o.oda = oda_result;
        if o.oda != Oda::NotPerformed {
            tvr::set_tsi(&mut o.data, tvr::TSI_ODA_PERFORMED);
        }
        if o.cvm != Cvm::NoCvm {
            tvr::set_tsi(&mut o.data, tvr::TSI_CVM_PERFORMED);
        }
        o
    }
}

/// Book C-5 (EMV mode): the CVM the card chose, from the Cardholder Verification Status
/// (9F50) it returned with GENERATE AC, checked against what the Terminal Interchange Profile
/// offered. Sets CVM Results.
fn jcb_cvm(ctx: &mut Ctx) -> Result<Cvm, Reason> {
    let tip = ctx
        .data
        .get(Tag::new(0x9F53))
        .and_then(|v| v.first().copied())
        .unwrap_or(0);
    let status = ctx
        .data
        .get(Tag::new(0x9F50))
        .and_then(|v| v.first().copied())
        .unwrap_or(0);
    let (cvm, results) = match status & 0xF0 {
        0x00 if tip & 0x80 != 0 => return Err(Reason::CvmNotPossible),
        0x00 => (Cvm::NoCvm, [0x3F, 0x00, 0x02]),
        0x10 if tip & 0x40 != 0 => (Cvm::Signature, [0x1E, 0x00, 0x00]),
        0x20 if tip & 0x20 != 0 => (Cvm::OnlinePin, [0x02, 0x00, 0x00]),
        0x30 if tip & 0x10 != 0 => (Cvm::ConsumerDevice, [0x01, 0x00, 0x02]),
        _ => return Err(Reason::CvmNotPossible),
    };
    ctx.data.insert(t::CVM_RESULTS, results.to_vec());
    Ok(cvm)
}

/// CDA verification (Book 2 §6.6.2) for this transaction: the ICC key from the records, the
/// signature over the unpredictable number, the CID, and the transaction data hash over the
/// PDOL data, the CDOL1 data and the response objects other than 9F4B. Returns the
/// Application Cryptogram from inside the signature.
fn verify_cda(ctx: &Ctx, sdad: &[u8], cid: u8, signed_objects: &[u8]) -> Result<[u8; 8], OdaError> {
    let icc = c3::icc_public_key(ctx)?;
    let d = &ctx.data;
    let mut input = d.get(torn::PDOL_RELATED_DATA).unwrap_or_default().to_vec();
    input.extend_from_slice(d.get(torn::CDOL1_RELATED_DATA).unwrap_or_default());
    input.extend_from_slice(signed_objects);
    let un = d.get(t::UNPREDICTABLE_NUMBER).unwrap_or_default();
    Ok(oda::verify_cda(&RustCrypto, &icc, sdad, un, cid, &input)?.cryptogram)
}

fn online_data(d: &TagStore) -> Vec<u8> {
    let mut out = Vec::new();
    for &tag in ONLINE_TAGS {
        if let Some(v) = d.get(tag) {
            tlv::encode(tag, v, &mut out);
        }
    }
    out
}

/// The card left while GENERATE AC was outstanding (Book C-2 S9.11-9.15): a torn record, when
/// the card has a DRDOL and torn recovery is on. `None` otherwise.
pub(crate) fn torn_record(ctx: &Ctx) -> Option<TornRecord> {
    if flavour(ctx) != Flavour::Mastercard {
        return None;
    }
    let p = params(ctx);
    let drdol = ctx.data.get(torn::DRDOL)?;
    if p.torn_log_max == 0 || drdol.is_empty() {
        return None;
    }
    Some(TornRecord::from_data(&ctx.data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::unhex;

    fn store(amount: u64, caps2: u8, txn: u8) -> TagStore {
        let mut d = TagStore::new();
        d.insert(t::AMOUNT_AUTHORISED, crate::util::bcd_n(amount, 6).unwrap());
        d.insert(t::TERMINAL_CAPABILITIES, vec![0x00, caps2, 0x08]);
        d.insert(t::TXN_TYPE, vec![txn]);
        d.insert(t::TXN_CURRENCY, vec![0x09, 0x78]);
        d.insert(t::APP_CURRENCY, vec![0x09, 0x78]);
        d.insert(t::TERMINAL_TYPE, vec![0x22]);
        d
    }

    fn list(s: &str) -> Vec<u8> {
        unhex(&s.replace(' ', "")).unwrap()
    }

    #[test]
    fn cvm_list_rules() {
        // Online PIN if supported (apply next), signature if supported, no CVM if supported.
        let l = list("00000000 00000000 4203 1E03 1F03");
        assert_eq!(
            process_cvm_list(&l, &store(100, 0x08, 0)),
            (Some(Cvm::NoCvm), [0x1F, 0x03, 0x02], false)
        );
        assert_eq!(
            process_cvm_list(&l, &store(100, 0x20, 0)),
            (Some(Cvm::Signature), [0x1E, 0x03, 0x00], false)
        );
        assert_eq!(
            process_cvm_list(&l, &store(100, 0x60, 0)),
            (Some(Cvm::OnlinePin), [0x42, 0x03, 0x00], false)
        );
        // Nothing supported: failed, CVM Results name the last rule tried.
        assert_eq!(
            process_cvm_list(&l, &store(100, 0x00, 0)),
            (None, [0x3F, 0x00, 0x01], false)
        );
        // Amount conditions against X (in the application currency): signature over 20.00,
        // otherwise no CVM.
        let l = list("000007D0 00000000 1E07 1F00");
        assert_eq!(
            process_cvm_list(&l, &store(2500, 0x28, 0)).0,
            Some(Cvm::Signature)
        );
        assert_eq!(
            process_cvm_list(&l, &store(1500, 0x28, 0)).0,
            Some(Cvm::NoCvm)
        );
        // "Fail CVM processing" and an unrecognised code without apply-next.
        assert_eq!(
            process_cvm_list(&list("00000000 00000000 0000"), &store(1, 0x28, 0)),
            (None, [0x00, 0x00, 0x01], false)
        );
        assert_eq!(
            process_cvm_list(&list("00000000 00000000 2500 1F00"), &store(1, 0x28, 0)),
            (None, [0x25, 0x00, 0x01], true)
        );
        // Condition 05 (purchase with cashback) is skipped for a purchase.
        assert_eq!(
            process_cvm_list(&list("00000000 00000000 1E05 1F00"), &store(1, 0x28, 0)).0,
            Some(Cvm::NoCvm)
        );
    }
}
