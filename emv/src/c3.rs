//! Kernel 3 (EMV Contactless Book C-3, Visa qVSDC) and kernel 7 (UnionPay qPBOC), which
//! shares its flow.
//!
//! GET PROCESSING OPTIONS carries the PDOL data (TTQ, amounts, date, unpredictable number...);
//! a qVSDC card computes its cryptogram during GPO and returns it with the AIP and AFL in a
//! format 2 template. The kernel then reads the records the AFL names and decides: online
//! for an ARQC, offline approval for a TC after processing restrictions and fDDA, decline for
//! an AAC. The checks it performs leave their TVR/TSI bits (Book 3 Annex C5/C6) in the data
//! and in field 55.
//!
//! Not yet here: issuer update processing, MSD.

use crate::apdu::{Command, Response};
use crate::card::{Pan, Track2};
use crate::dol;
use crate::entry::{Ctx, State, Transition};
use crate::outcome::{
    Cvm, Message, Oda, OdaMethod, Outcome, OutcomeKind, Reason, Status, UiRequest,
};
use crate::tags as t;
use crate::tlv::{self, Tag, TagStore};
use crate::tvr;

/// Tags sent to the issuer in ISO 8583 field 55 for a kernel 3 online request (Book C-3
/// Annex C "Online data", in this order), when present.
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
    t::AMOUNT_OTHER,
    t::TERMINAL_CAPABILITIES,
    t::TERMINAL_TYPE,
    t::DF_NAME,
    t::PSN,
    t::TTQ,
    t::FORM_FACTOR,
    t::CUSTOMER_EXCLUSIVE_DATA,
    t::CARD_AUTH_RELATED_DATA,
    // Available offline spending amount (C-3) and UnionPay electronic cash balance (C-7).
    t::AOSA,
    Tag::new(0x9F79),
];

/// Kernel activation (Book B §3.4 / Book C-3 §5.1): build the PDOL data and send GPO.
pub(crate) fn activate(ctx: &mut Ctx) -> Transition {
    let Some(pre) = ctx.selected_pre() else {
        return Transition::Finish(ctx.end_application(Reason::NoCommonApplication));
    };
    if let Some(ttq) = pre.ttq {
        ctx.data.insert(t::TTQ, ttq.to_vec());
    }
    // Book C-3 §5.2.2: a qVSDC card asks for the TTQ in its PDOL. Without a PDOL there is no
    // qVSDC path (the card would be MSD-only, which Kassa does not support).
    let Some(pdol) = ctx.data.get(t::PDOL).map(<[u8]>::to_vec) else {
        return Transition::Finish(ctx.end_application(Reason::MissingData(t::PDOL)));
    };
    let entries = match dol::parse(&pdol) {
        Ok(e) => e,
        Err(_) => return Transition::Finish(ctx.end_application(Reason::BadData(t::PDOL))),
    };
    if !entries.iter().any(|e| e.tag == t::TTQ) {
        return Transition::Finish(ctx.end_application(Reason::MissingData(t::TTQ)));
    }
    // Tag 83, its length and the PDOL data must fit a short command: 252 bytes of data at most
    // (83 81 FC ...), Book 3 §6.5.8.
    if dol::data_len(&entries) > 252 {
        return Transition::Finish(ctx.end_application(Reason::BadData(t::PDOL)));
    }
    let data = dol::build(&entries, |tag| {
        // Only terminal-sourced data goes into a PDOL.
        match t::info(tag) {
            Some(i) if i.source == t::Source::Card => None,
            _ => ctx.data.get(tag),
        }
    });
    // Kernel 6 signs offline approvals over the PDOL data and the GPO response.
    ctx.data
        .insert(crate::torn::PDOL_RELATED_DATA, data.clone());
    Transition::Send(
        State::C3Gpo(AwaitGpo),
        Command::get_processing_options(&data),
    )
}

/// GPO sent; waiting for the format 2 response.
#[derive(Debug)]
pub(crate) struct AwaitGpo;

impl AwaitGpo {
    /// Book C-3 §5.2.3 (GPO response processing).
    pub(crate) fn on_response(self, resp: Response, ctx: &mut Ctx) -> Transition {
        match resp.sw {
            0x9000 => {}
            // Book C-3 / C-7: "6986" from a mobile device: the cardholder must act on the
            // phone (unlock, confirm); present it again.
            0x6986 => {
                return Transition::Finish(ctx.outcome(
                    OutcomeKind::TryAgain,
                    Reason::StatusWord {
                        ins: 0xA8,
                        sw: resp.sw,
                    },
                    UiRequest {
                        message: Message::SeePhone,
                        status: Status::NotReady,
                        hold_time_ms: 1300,
                        language: None,
                    },
                ));
            }
            // The card wants another interface (contact chip).
            0x6984 => {
                return Transition::Finish(ctx.outcome(
                    OutcomeKind::TryAnotherInterface,
                    Reason::StatusWord {
                        ins: 0xA8,
                        sw: resp.sw,
                    },
                    UiRequest {
                        message: Message::InsertOrSwipe,
                        status: Status::ProcessingError,
                        hold_time_ms: 2000,
                        language: None,
                    },
                ));
            }
            // Conditions of use not satisfied: Outcome Select Next. Book B §3.5.1.2: Entry Point
            // removes this candidate and selects the next one (Start C).
            0x6985 => {
                let remaining = std::mem::take(&mut ctx.remaining);
                return crate::entry::FinalSelect::next(remaining, ctx);
            }
            sw => {
                return Transition::Finish(
                    ctx.end_application(Reason::StatusWord { ins: 0xA8, sw }),
                );
            }
        }
        let template = match tlv::expect_template(&resp.data, t::RESPONSE_FORMAT2) {
            Ok(tpl) => tpl,
            // Format 1 (tag 80) is not a qVSDC response.
            Err(e) => return Transition::Finish(ctx.end_application(Reason::MalformedResponse(e))),
        };
        let mut gpo = TagStore::new();
        if let Err(e) = gpo.absorb(template.value(), |_| false) {
            return Transition::Finish(ctx.end_application(Reason::MalformedResponse(e)));
        }
        // Kernel 6 (D-PAS): an offline approval carries its AC inside the signature (9F4B)
        // instead of 9F26; the response objects other than 9F4B are what it signs.
        let dpas = ctx.kernel() == crate::card::KernelId::C6;
        let signed_tc = dpas && !gpo.contains(t::APPLICATION_CRYPTOGRAM) && gpo.contains(t::SDAD);
        for tag in [t::AIP, t::APPLICATION_CRYPTOGRAM, t::CID, t::ATC, t::IAD] {
            if tag == t::APPLICATION_CRYPTOGRAM && signed_tc {
                continue;
            }
            if !gpo.contains(tag) {
                return Transition::Finish(ctx.end_application(Reason::MissingData(tag)));
            }
        }
        if dpas {
            ctx.signed_objects.clear();
            for o in template.children().flatten().filter(|o| o.tag() != t::SDAD) {
                let start = o.offset() - template.value_offset();
                ctx.signed_objects
                    .extend_from_slice(&template.value()[start..start + o.encoded_len()]);
            }
        }
        if gpo.get(t::AIP).map(<[u8]>::len) != Some(2) {
            return Transition::Finish(ctx.end_application(Reason::BadData(t::AIP)));
        }
        if !signed_tc && gpo.get(t::APPLICATION_CRYPTOGRAM).map(<[u8]>::len) != Some(8) {
            return Transition::Finish(
                ctx.end_application(Reason::BadData(t::APPLICATION_CRYPTOGRAM)),
            );
        }
        // An absent or empty AFL means there are no records to read.
        let reads = match gpo
            .get(t::AFL)
            .filter(|a| !a.is_empty())
            .map(parse_afl_oda)
            .unwrap_or(Ok(Vec::new()))
        {
            Ok(r) => r,
            Err(AflError) => {
                return Transition::Finish(ctx.end_application(Reason::BadData(t::AFL)));
            }
        };
        let kernel = ctx.kernel().0;
        for (tag, v) in gpo.iter() {
            if crate::tags::card_may_set(tag, kernel) {
                ctx.data.insert(tag, v);
            }
        }
        ReadRecords::start(reads, gpo, AfterRecords::Qvsdc, ctx)
    }
}

/// An Application File Locator that breaks the rules of Book 3 §10.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid Application File Locator")]
pub struct AflError;

/// Parses an AFL like [`parse_afl`] and says which records take part in offline data
/// authentication (the first "ODA count" records of each entry).
pub fn parse_afl_oda(afl: &[u8]) -> Result<Vec<(u8, u8, bool)>, AflError> {
    parse_afl(afl)?;
    let mut reads = Vec::new();
    for e in afl.chunks(4) {
        let (sfi, first, last, oda) = (e[0] >> 3, e[1], e[2], e[3]);
        reads.extend((first..=last).map(|r| (sfi, r, (r - first) < oda)));
    }
    Ok(reads)
}

/// Parses an AFL (Book 3 §10.2) into (SFI, record) reads. Each 4-byte entry: SFI in bits 8-4 of
/// byte 1 (1-30), first record (not 0), last record (not below the first), records for offline
/// data authentication (not more than the range).
pub fn parse_afl(afl: &[u8]) -> Result<Vec<(u8, u8)>, AflError> {
    if afl.is_empty() || !afl.len().is_multiple_of(4) {
        return Err(AflError);
    }
    let mut reads = Vec::new();
    for e in afl.chunks(4) {
        let sfi = e[0] >> 3;
        let (first, last, oda) = (e[1], e[2], e[3]);
        if e[0] & 0x07 != 0 || !(1..=30).contains(&sfi) || first == 0 || last < first {
            return Err(AflError);
        }
        if oda as u16 > (last - first) as u16 + 1 {
            return Err(AflError);
        }
        reads.extend((first..=last).map(|r| (sfi, r)));
    }
    Ok(reads)
}

/// What follows the last record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterRecords {
    /// Kernels 3 and 7: the cryptogram came with GPO; decide now.
    Qvsdc,
    /// Kernels 2, 4 and 5: terminal checks, then GENERATE AC.
    GenAc,
}

/// Reading the records the AFL lists (Book 3 §10.2; Book C-2 S4, C-3 §5.3).
#[derive(Debug)]
pub(crate) struct ReadRecords {
    reads: Vec<(u8, u8, bool)>,
    done: usize,
    /// Primitive objects the card has sent so far (GPO and records), to find redundant ones.
    from_card: TagStore,
    after: AfterRecords,
}

impl ReadRecords {
    /// Starts reading `reads` ((SFI, record, for ODA)); `gpo` holds the GPO response's
    /// objects.
    pub(crate) fn start(
        reads: Vec<(u8, u8, bool)>,
        gpo: TagStore,
        after: AfterRecords,
        ctx: &mut Ctx,
    ) -> Transition {
        ReadRecords {
            reads,
            done: 0,
            from_card: gpo,
            after,
        }
        .next(ctx)
    }

    fn next(self, ctx: &mut Ctx) -> Transition {
        match self.reads.get(self.done).copied() {
            Some((sfi, rec, _)) => {
                Transition::Send(State::C3Records(self), Command::read_record(sfi, rec))
            }
            None => match self.after {
                AfterRecords::Qvsdc => Transition::Finish(complete(ctx)),
                AfterRecords::GenAc => crate::c2::after_records(ctx),
            },
        }
    }

    pub(crate) fn on_response(mut self, resp: Response, ctx: &mut Ctx) -> Transition {
        if !resp.is_ok() {
            return Transition::Finish(ctx.end_application(Reason::StatusWord {
                ins: 0xB2,
                sw: resp.sw,
            }));
        }
        let (sfi, _, for_oda) = self.reads[self.done];
        // Book 3 §10.2: records in SFIs 1-10 are template 70; others are proprietary.
        let body = match tlv::expect_template(&resp.data, t::RECORD_TEMPLATE) {
            Ok(tpl) => tpl.value(),
            Err(e) if sfi <= 10 => {
                return Transition::Finish(ctx.end_application(Reason::MalformedResponse(e)));
            }
            Err(_) => {
                // Book 3 §10.3: a record of SFI 11-30 for ODA is taken whole.
                if for_oda {
                    ctx.oda_records.extend_from_slice(&resp.data);
                }
                self.done += 1;
                return self.next(ctx);
            }
        };
        // Book 3 §10.3: from SFIs 1-10, the value of template 70 (tag and length excluded).
        if for_oda {
            ctx.oda_records.extend_from_slice(body);
        }
        let mut rec = TagStore::new();
        if let Err(e) = rec.absorb(body, |_| false) {
            return Transition::Finish(ctx.end_application(Reason::MalformedResponse(e)));
        }
        let kernel = ctx.kernel().0;
        for (tag, v) in rec.iter() {
            // Book 3 §10.2: a redundant primitive object from the card ends the transaction.
            if self.from_card.contains(tag) {
                return Transition::Finish(ctx.end_application(Reason::BadData(tag)));
            }
            self.from_card.insert(tag, v);
            // The terminal's own objects are not the card's to set (tags::card_may_set).
            if crate::tags::card_may_set(tag, kernel) {
                ctx.data.insert(tag, v);
            }
        }
        self.done += 1;
        self.next(ctx)
    }
}

/// After the last record: the outcome, with the TVR and TSI bits of the checks made (Book 3
/// Annex C5/C6): expired application, fDDA (DDA failed, ICC data missing, TSI "offline data
/// authentication was performed") and a CVM that could not be satisfied.
///
/// These bits are the terminal's record (journal, receipt, `kassa pay --json`). Field 55
/// keeps the TVR as it was at GET PROCESSING OPTIONS: a qVSDC/qPBOC card computes its
/// cryptogram during GPO over the TVR it received in the PDOL data (Book C-3 §5.2, Annex C),
/// and the issuer recomputes the cryptogram over the TVR in field 55, so a TVR changed after
/// GPO would make a genuine cryptogram fail.
fn complete(ctx: &Ctx) -> Outcome {
    let mut o = if ctx.kernel() == crate::card::KernelId::C6 {
        decide_dpas(ctx)
    } else {
        decide(ctx)
    };
    if o.reason == Reason::Expired {
        tvr::set_tvr(&mut o.data, tvr::EXPIRED_APPLICATION);
    }
    if o.reason == Reason::CvmNotPossible {
        tvr::set_tvr(&mut o.data, tvr::CVM_NOT_SUCCESSFUL);
    }
    if o.oda != Oda::NotPerformed {
        tvr::set_tsi(&mut o.data, tvr::TSI_ODA_PERFORMED);
    }
    match o.oda {
        Oda::Failed(OdaMethod::Cda) => tvr::set_tvr(&mut o.data, tvr::CDA_FAILED),
        Oda::Failed(_) => tvr::set_tvr(&mut o.data, tvr::DDA_FAILED),
        _ => {}
    }
    o
}

/// Kernel 6 (Book C-6, Discover D-PAS) after the last record. The card decided in GPO: an
/// AAC is a decline; an ARQC goes online with the CVM the Card Processing Requirements (9F71,
/// byte 1: b8 online PIN, b7 signature) and the TTQ allow; a TC must come signed (CDA format,
/// Book 2 §6.6, over the PDOL data and the GPO response objects other than 9F4B), within its
/// expiry date, and only when the reader did not require an online cryptogram.
///
/// Written from public descriptions of C-6 (the requirement text was not available): D-PAS
/// consumer device CVM and the CPR's "go online / switch interface if CDA failed" bits are not
/// interpreted; a failed signature declines.
fn decide_dpas(ctx: &Ctx) -> Outcome {
    let d = &ctx.data;
    let Some(cid) = d.get(t::CID).and_then(|v| v.first().copied()) else {
        return ctx.end_application(Reason::MissingData(t::CID));
    };
    let ui = |message, status, hold_time_ms| UiRequest {
        message,
        status,
        hold_time_ms,
        language: None,
    };
    let declined = |reason, oda| {
        let mut o = ctx.outcome(
            OutcomeKind::Declined,
            reason,
            ui(Message::NotAuthorised, Status::CardReadSuccessfully, 1500),
        );
        o.oda = oda;
        o
    };
    // The CPR's first byte plays the CTQ's part in the CVM choice.
    let cpr = d
        .get(Tag::new(0x9F71))
        .and_then(|v| v.first().copied())
        .unwrap_or(0);
    let cvm = choose_cvm_with(ctx, Some(&[cpr, 0x00]), cid & 0xC0 == 0x80);
    match cid & 0xC0 {
        0x80 => match cvm {
            Some(cvm) => {
                let mut o = ctx.outcome(
                    OutcomeKind::OnlineRequest,
                    Reason::None,
                    ui(
                        Message::AuthorisingPleaseWait,
                        Status::CardReadSuccessfully,
                        0,
                    ),
                );
                o.cvm = cvm;
                o.online_data = online_data(d);
                o
            }
            None => declined(Reason::CvmNotPossible, Oda::NotPerformed),
        },
        0x40 => {
            let online_required = ttq_of(d)[1] & 0x80 != 0;
            if online_required {
                return declined(Reason::WrongCryptogramType, Oda::NotPerformed);
            }
            if expired_card(ctx) {
                return declined(Reason::Expired, Oda::NotPerformed);
            }
            let Some(sdad) = d.get(t::SDAD) else {
                return declined(
                    Reason::OdaFailed("offline approval without a signature".into()),
                    Oda::Failed(OdaMethod::Cda),
                );
            };
            let verified = icc_public_key(ctx).and_then(|icc| {
                let mut input = d
                    .get(crate::torn::PDOL_RELATED_DATA)
                    .unwrap_or_default()
                    .to_vec();
                input.extend_from_slice(&ctx.signed_objects);
                let un = d.get(t::UNPREDICTABLE_NUMBER).unwrap_or_default();
                crate::oda::verify_cda(&crate::oda::RustCrypto, &icc, sdad, un, cid, &input)
            });
            match verified {
                Ok(r) => match cvm {
                    Some(cvm) => {
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
                        o.data
                            .insert(t::APPLICATION_CRYPTOGRAM, r.cryptogram.to_vec());
                        o.cvm = cvm;
                        o.oda = Oda::Succeeded(OdaMethod::Cda);
                        o.online_data = online_data(&o.data);
                        o
                    }
                    None => declined(Reason::CvmNotPossible, Oda::Succeeded(OdaMethod::Cda)),
                },
                Err(e) => declined(
                    Reason::OdaFailed(e.to_string()),
                    Oda::Failed(OdaMethod::Cda),
                ),
            }
        }
        0x00 => declined(Reason::CardDeclined, Oda::NotPerformed),
        _ => ctx.end_application(Reason::BadData(t::CID)),
    }
}

/// The decision of Book C-3 §5.4-§5.7 (see [`complete`]).
fn decide(ctx: &Ctx) -> Outcome {
    let d = &ctx.data;
    // Track 2 Equivalent Data is mandatory for qVSDC.
    let Some(track2) = d.get(t::TRACK2) else {
        return ctx.end_application(Reason::MissingData(t::TRACK2));
    };
    let Some(track2) = Track2::parse(track2) else {
        return ctx.end_application(Reason::BadData(t::TRACK2));
    };
    if let Some(pan) = d.get(t::PAN) {
        match Pan::from_cn(pan) {
            Some(p) if p == track2.pan() => {}
            _ => return ctx.end_application(Reason::BadData(t::PAN)),
        }
    }
    // Book C-3 §5.4: without a CID, the cryptogram type is IAD byte 5 bits 6-5 (Visa IAD
    // formats 0/1/3: CVR byte 2), moved to bits 8-7.
    let cid = match d.get(t::CID).and_then(|v| v.first().copied()) {
        Some(c) => c,
        None => match d.get(t::IAD).and_then(|iad| iad.get(4).copied()) {
            Some(b) => (b & 0x30) << 2,
            None => return ctx.end_application(Reason::MissingData(t::CID)),
        },
    };
    let ttq = ttq_of(d);
    let ctq = d.get(t::CTQ).filter(|c| c.len() >= 2).map(<[u8]>::to_vec);
    let ctq_bit = |byte: usize, mask: u8| ctq.as_ref().is_some_and(|c| c[byte] & mask != 0);
    let online_capable = ttq[0] & 0x08 == 0; // TTQ byte 1 bit 4: offline-only reader.
    let decline = |reason: Reason, oda: Oda| {
        let mut o = ctx.outcome(
            OutcomeKind::Declined,
            reason,
            UiRequest {
                message: Message::NotAuthorised,
                status: Status::CardReadSuccessfully,
                hold_time_ms: 1500,
                language: None,
            },
        );
        o.oda = oda;
        o
    };
    let online = |cvm: Cvm, oda: Oda, reason: Reason| {
        let mut o = ctx.outcome(
            OutcomeKind::OnlineRequest,
            reason,
            UiRequest {
                message: Message::AuthorisingPleaseWait,
                status: Status::CardReadSuccessfully,
                hold_time_ms: 0,
                language: None,
            },
        );
        o.cvm = cvm;
        o.oda = oda;
        o.online_data = online_data(d);
        o
    };

    match cid & 0xC0 {
        // AAC (or the RFU value): declined.
        0x00 => decline(Reason::CardDeclined, Oda::NotPerformed),
        0xC0 => decline(Reason::BadData(t::CID), Oda::NotPerformed),
        // ARQC: online (with Visa's ODA for online authorisations below). Kernel 7
        // checks the expiry date for every cryptogram type: an expired card goes online only
        // when the card asks for it.
        0x80 if ctx.kernel() == crate::card::KernelId::C7
            && expired_card(ctx)
            && !ctq_bit(0, 0x08) =>
        {
            decline(Reason::Expired, Oda::NotPerformed)
        }
        0x80 => {
            // Visa "ODA for Online Authorisations" (TTQ byte 1 bit 1, Book C-3 Annex A;
            // VCPS): a reader that sets it verifies the fDDA signature a card returns next
            // to its ARQC, and declines when it fails rather than sending a card that
            // failed authentication to the issuer. Other kernels here (C-6, C-7) and
            // readers without the bit leave a 9F4B next to an ARQC unverified.
            let mut oda = Oda::NotPerformed;
            if ctx.kernel() == crate::card::KernelId::C3 && ttq[0] & 0x01 != 0 {
                match fdda(ctx) {
                    Ok(Some(())) => oda = Oda::Succeeded(OdaMethod::Fdda),
                    Ok(None) => {}
                    Err(e) => {
                        return decline(
                            Reason::OdaFailed(e.to_string()),
                            Oda::Failed(OdaMethod::Fdda),
                        );
                    }
                }
            }
            match choose_cvm(ctx, true) {
                Some(cvm) => online(cvm, oda, Reason::None),
                None => decline(Reason::CvmNotPossible, oda),
            }
        }
        // TC: offline approval, if processing restrictions and fDDA allow it.
        _ => {
            // Book C-3 §5.5 (processing restrictions, for a TC): an expired or absent
            // expiry date sends the transaction online if the card asks for it (CTQ byte 1
            // bit 4), else declines.
            if expired_card(ctx) {
                return if ctq_bit(0, 0x08) && online_capable {
                    online(
                        choose_cvm(ctx, true).unwrap_or(Cvm::NoCvm),
                        Oda::NotPerformed,
                        Reason::Expired,
                    )
                } else {
                    decline(Reason::Expired, Oda::NotPerformed)
                };
            }
            // Book C-3 §5.8: fDDA. A card offering a TC without a signature fails it too.
            let oda_result = match fdda(ctx) {
                Ok(Some(())) => Ok(()),
                Ok(None) => Err(crate::oda::OdaError::Missing(t::SDAD)),
                Err(e) => Err(e),
            };
            if let Err(e) = oda_result {
                let missing = matches!(e, crate::oda::OdaError::Missing(_));
                let reason = Reason::OdaFailed(e.to_string());
                let mut o = if ctq_bit(0, 0x20) && online_capable {
                    online(
                        choose_cvm(ctx, true).unwrap_or(Cvm::NoCvm),
                        Oda::Failed(OdaMethod::Fdda),
                        reason,
                    )
                } else if ctq_bit(0, 0x10) && ttq[0] & 0x10 != 0 {
                    let mut o = ctx.outcome(
                        OutcomeKind::TryAnotherInterface,
                        reason,
                        UiRequest {
                            message: Message::InsertCard,
                            status: Status::ProcessingError,
                            hold_time_ms: 2000,
                            language: None,
                        },
                    );
                    o.oda = Oda::Failed(OdaMethod::Fdda);
                    o
                } else {
                    decline(reason, Oda::Failed(OdaMethod::Fdda))
                };
                if missing {
                    tvr::set_tvr(&mut o.data, tvr::ICC_DATA_MISSING);
                }
                return o;
            }
            match choose_cvm(ctx, false) {
                Some(cvm) => {
                    let mut o = ctx.outcome(
                        OutcomeKind::Approved,
                        Reason::None,
                        UiRequest {
                            message: if cvm == Cvm::Signature {
                                Message::ApprovedSign
                            } else {
                                Message::Approved
                            },
                            status: Status::CardReadSuccessfully,
                            hold_time_ms: 1500,
                            language: None,
                        },
                    );
                    o.cvm = cvm;
                    o.oda = Oda::Succeeded(OdaMethod::Fdda);
                    // The clearing record of an offline approval carries the same data.
                    o.online_data = online_data(d);
                    o
                }
                None => decline(Reason::CvmNotPossible, Oda::Succeeded(OdaMethod::Fdda)),
            }
        }
    }
}

/// Processing restrictions (Book C-3 §5.5): the application expired before today, or has
/// no expiry date.
fn expired_card(ctx: &Ctx) -> bool {
    match ctx
        .data
        .get(t::EXPIRY)
        .and_then(crate::util::Date::from_bcd)
    {
        Some(exp) => exp < ctx.today,
        None => true,
    }
}

/// Field 55 for kernel 3: the [`ONLINE_TAGS`] present, with the Form Factor Indicator's byte
/// 4 low nibble cleared (Book C-3 Annex A: reserved for the reader).
fn online_data(d: &TagStore) -> Vec<u8> {
    let mut out = Vec::new();
    for &tag in ONLINE_TAGS {
        if let Some(v) = d.get(tag) {
            if tag == t::FORM_FACTOR && v.len() >= 4 {
                let mut ff = v.to_vec();
                ff[3] &= 0xF0;
                tlv::encode(tag, &ff, &mut out);
            } else {
                tlv::encode(tag, v, &mut out);
            }
        }
    }
    out
}

/// fDDA (Book C-3 §5.8 and Annex C; Book 2 §6): when the card returned Signed Dynamic
/// Application Data (9F4B), recover the issuer and ICC public keys and verify the signature
/// over the terminal's dynamic data. `Ok(None)` when the card did not ask for fDDA.
fn fdda(ctx: &Ctx) -> Result<Option<()>, crate::oda::OdaError> {
    use crate::oda::{self, OdaError, RustCrypto};
    let d = &ctx.data;
    let Some(sdad) = d.get(t::SDAD) else {
        return Ok(None);
    };
    let icc = icc_public_key(ctx)?;
    // Terminal dynamic data (Book C-3 Table C-1): for fDDA version 01, UN || Amount,
    // Authorised || Transaction Currency Code || Card Authentication Related Data; for the
    // legacy version 00, the UN alone.
    let mut tdata = d.get(t::UNPREDICTABLE_NUMBER).unwrap_or_default().to_vec();
    match d.get(t::CARD_AUTH_RELATED_DATA) {
        Some(car) if car.first() == Some(&0x01) => {
            tdata.extend_from_slice(d.get(t::AMOUNT_AUTHORISED).unwrap_or_default());
            tdata.extend_from_slice(d.get(t::TXN_CURRENCY).unwrap_or_default());
            tdata.extend_from_slice(car);
        }
        Some(car) if car.first() == Some(&0x00) => {}
        Some(_) => return Err(OdaError::Inconsistent("unsupported fDDA version in 9F69")),
        None => {}
    }
    let dyn_data = oda::verify_fdda(&RustCrypto, &icc, sdad, &tdata)?;
    // The ICC dynamic number of qVSDC is the ATC.
    if let (Some(atc), Some(&n)) = (d.get(t::ATC), dyn_data.first())
        && n as usize == atc.len()
        && dyn_data.get(1..1 + n as usize) != Some(atc)
    {
        return Err(OdaError::Inconsistent("ICC dynamic number is not the ATC"));
    }
    Ok(Some(()))
}

/// Book C-3 §5.7 (Cardholder Verification): from the TTQ the reader sent and the CTQ the card
/// returned. `None` when a CVM is required and none can be done (the transaction is declined).
/// `online` says whether the transaction goes online (online PIN needs it; a consumer device
/// CVM without 9F69 is accepted only online).
fn choose_cvm(ctx: &Ctx, online: bool) -> Option<Cvm> {
    choose_cvm_with(ctx, ctx.data.get(t::CTQ), online)
}

/// The TTQ the reader sent, as its four bytes (zeros where it is missing or short).
fn ttq_of(d: &TagStore) -> [u8; 4] {
    let mut q = [0u8; 4];
    if let Some(v) = d.get(t::TTQ) {
        for (o, b) in q.iter_mut().zip(v) {
            *o = *b;
        }
    }
    q
}

/// [`choose_cvm`] with the card's qualifiers given (the CTQ, or kernel 6's CPR).
fn choose_cvm_with(ctx: &Ctx, ctq: Option<&[u8]>, online: bool) -> Option<Cvm> {
    let d = &ctx.data;
    let ttq = ttq_of(d);
    let ctq = ctq.filter(|v| v.len() >= 2);
    let cvm_required = ctx.selected_pre().is_some_and(|p| p.cvm_required)
        || ttq.get(1).is_some_and(|b| b & 0x40 != 0);
    let online_pin_supported = ttq[0] & 0x04 != 0;
    let signature_supported = ttq[0] & 0x02 != 0;
    let cdcvm_supported = ttq.get(2).is_some_and(|b| b & 0x40 != 0);
    match ctq {
        Some(ctq) => {
            // CTQ byte 2 bit 8: consumer device CVM performed. The CTQ copy the card signed
            // into 9F69 (bytes 6-7) must agree; without 9F69 only an online transaction may
            // rely on it.
            if ctq[1] & 0x80 != 0 && cdcvm_supported {
                return match d.get(t::CARD_AUTH_RELATED_DATA) {
                    Some(car) if car.get(5..7) == Some(&ctq[..2]) => Some(Cvm::ConsumerDevice),
                    Some(_) => None,
                    None if online => Some(Cvm::ConsumerDevice),
                    None => None,
                };
            }
            if !cvm_required {
                return Some(Cvm::NoCvm);
            }
            // CTQ byte 1 bit 8: online PIN required; bit 7: signature required.
            if ctq[0] & 0x80 != 0 && online_pin_supported && online {
                Some(Cvm::OnlinePin)
            } else if ctq[0] & 0x40 != 0 && signature_supported {
                Some(Cvm::Signature)
            } else {
                None
            }
        }
        None if !cvm_required => Some(Cvm::NoCvm),
        None if signature_supported => Some(Cvm::Signature),
        None if online_pin_supported => Some(Cvm::OnlinePin),
        None => None,
    }
}

/// Recovers the ICC public key for dynamic signatures (Book 2 §6.2-§6.4): the CA key by RID
/// and index (9F22... 8F) from the configured CAPKs, the issuer key from 90/92/9F32, then the
/// ICC key from 9F46/9F48/9F47 over the static data to be authenticated (the AFL's ODA records,
/// plus the AIP when 9F4A asks for it). Shared by fDDA (kernels 3, 6, 7) and CDA (kernels 2,
/// 4, 5).
pub(crate) fn icc_public_key(ctx: &Ctx) -> Result<crate::oda::IccPublicKey, crate::oda::OdaError> {
    use crate::oda::{self, CertData, OdaError, RustCrypto};
    let d = &ctx.data;
    let missing = |tag| OdaError::Missing(tag);
    let aid = ctx
        .selected
        .as_ref()
        .map(|c| c.adf_name.clone())
        .unwrap_or_default();
    let rid: [u8; 5] = aid
        .get(..5)
        .and_then(|r| r.try_into().ok())
        .ok_or(missing(t::DF_NAME))?;
    let index = *d
        .get(t::CA_PK_INDEX)
        .and_then(|v| v.first())
        .ok_or(missing(t::CA_PK_INDEX))?;
    let capk = ctx
        .capks
        .iter()
        .find(|k| k.rid == rid && k.index == index)
        .ok_or(OdaError::CaKeyMissing {
            rid: crate::util::hex(&rid),
            index,
        })?;
    if capk.expiry.is_some_and(|e| e < ctx.today) {
        return Err(OdaError::Expired("CA"));
    }
    let pan = d
        .get(t::PAN)
        .and_then(crate::card::Pan::from_cn)
        .or_else(|| d.get(t::TRACK2).and_then(Track2::parse).map(|t2| t2.pan()))
        .ok_or(missing(t::PAN))?;
    let issuer = oda::recover_issuer_key(
        &RustCrypto,
        capk,
        CertData {
            cert: d.get(t::ISSUER_PK_CERT).ok_or(missing(t::ISSUER_PK_CERT))?,
            remainder: d.get(t::ISSUER_PK_REMAINDER).unwrap_or_default(),
            exponent: d.get(Tag::new(0x9F32)).ok_or(missing(Tag::new(0x9F32)))?,
        },
        pan.expose(),
        ctx.today,
    )?;
    let mut static_data = ctx.oda_records.clone();
    if let Some(list) = d.get(Tag::new(0x9F4A)) {
        if list != [0x82] {
            return Err(OdaError::Inconsistent(
                "SDA tag list names something other than the AIP",
            ));
        }
        static_data.extend_from_slice(d.get(t::AIP).unwrap_or_default());
    }
    let icc = oda::recover_icc_key(
        &RustCrypto,
        &issuer,
        CertData {
            cert: d.get(t::ICC_PK_CERT).ok_or(missing(t::ICC_PK_CERT))?,
            remainder: d.get(Tag::new(0x9F48)).unwrap_or_default(),
            exponent: d.get(Tag::new(0x9F47)).ok_or(missing(Tag::new(0x9F47)))?,
        },
        &static_data,
        pan.expose(),
        ctx.today,
    )?;
    Ok(icc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn afl_rules() {
        assert_eq!(parse_afl(&[0x08, 1, 2, 0]), Ok(vec![(1, 1), (1, 2)]));
        assert_eq!(
            parse_afl(&[0x08, 1, 1, 1, 0x10, 2, 3, 0]),
            Ok(vec![(1, 1), (2, 2), (2, 3)])
        );
        assert_eq!(parse_afl(&[0x08, 0, 1, 0]), Err(AflError), "record 0");
        assert_eq!(parse_afl(&[0x08, 2, 1, 0]), Err(AflError), "last < first");
        assert_eq!(
            parse_afl(&[0x08, 1, 1, 2]),
            Err(AflError),
            "ODA count beyond range"
        );
        assert_eq!(parse_afl(&[0x00, 1, 1, 0]), Err(AflError), "SFI 0");
        assert_eq!(parse_afl(&[0xF8, 1, 1, 0]), Err(AflError), "SFI 31");
        assert_eq!(parse_afl(&[0x09, 1, 1, 0]), Err(AflError), "low bits set");
        assert_eq!(
            parse_afl(&[0x08, 1, 1]),
            Err(AflError),
            "not a multiple of 4"
        );
    }
}
