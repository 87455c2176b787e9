//! Kernel 3 (EMV Contactless Book C-3, Visa qVSDC), online path.
//!
//! GET PROCESSING OPTIONS carries the PDOL data (TTQ, amounts, date, unpredictable number...);
//! a qVSDC card computes its cryptogram during GPO and returns it with the AIP and AFL in a
//! format 2 template. The kernel then reads the records the AFL names and decides.
//!
//! Not yet here: fDDA (offline data authentication) and therefore offline approval, issuer
//! update processing, MSD. A card that offers a TC is declined with
//! [`Reason::OfflineNotSupported`].

use crate::apdu::{Command, Response};
use crate::card::{Pan, Track2};
use crate::dol;
use crate::entry::{Ctx, State, Transition};
use crate::outcome::{Cvm, Message, Outcome, OutcomeKind, Reason, Status, UiRequest};
use crate::tags as t;
use crate::tlv::{self, Tag, TagStore};

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
            // The card wants another interface (contact chip).
            0x6984 | 0x6986 => {
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
                    },
                ));
            }
            // Conditions of use not satisfied: try the next application.
            0x6985 => {
                return Transition::Finish(ctx.outcome(
                    OutcomeKind::SelectNext,
                    Reason::StatusWord {
                        ins: 0xA8,
                        sw: resp.sw,
                    },
                    UiRequest {
                        message: Message::Processing,
                        status: Status::Processing,
                        hold_time_ms: 0,
                    },
                ));
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
        for tag in [t::AIP, t::APPLICATION_CRYPTOGRAM, t::CID, t::ATC, t::IAD] {
            if !gpo.contains(tag) {
                return Transition::Finish(ctx.end_application(Reason::MissingData(tag)));
            }
        }
        if gpo.get(t::AIP).map(<[u8]>::len) != Some(2) {
            return Transition::Finish(ctx.end_application(Reason::BadData(t::AIP)));
        }
        if gpo.get(t::APPLICATION_CRYPTOGRAM).map(<[u8]>::len) != Some(8) {
            return Transition::Finish(
                ctx.end_application(Reason::BadData(t::APPLICATION_CRYPTOGRAM)),
            );
        }
        // An absent or empty AFL means there are no records to read.
        let reads = match gpo
            .get(t::AFL)
            .filter(|a| !a.is_empty())
            .map(parse_afl)
            .unwrap_or(Ok(Vec::new()))
        {
            Ok(r) => r,
            Err(AflError) => {
                return Transition::Finish(ctx.end_application(Reason::BadData(t::AFL)));
            }
        };
        for (tag, v) in gpo.iter() {
            ctx.data.insert(tag, v);
        }
        ReadRecords::next(
            ReadRecords {
                reads,
                done: 0,
                from_card: gpo,
            },
            ctx,
        )
    }
}

/// An Application File Locator that breaks the rules of Book 3 §10.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid Application File Locator")]
pub struct AflError;

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

/// Reading the records the AFL lists.
#[derive(Debug)]
pub(crate) struct ReadRecords {
    reads: Vec<(u8, u8)>,
    done: usize,
    /// Primitive objects the card has sent so far (GPO and records), to find redundant ones.
    from_card: TagStore,
}

impl ReadRecords {
    fn next(self, ctx: &mut Ctx) -> Transition {
        match self.reads.get(self.done).copied() {
            Some((sfi, rec)) => {
                Transition::Send(State::C3Records(self), Command::read_record(sfi, rec))
            }
            None => Transition::Finish(complete(ctx)),
        }
    }

    pub(crate) fn on_response(mut self, resp: Response, ctx: &mut Ctx) -> Transition {
        if !resp.is_ok() {
            return Transition::Finish(ctx.end_application(Reason::StatusWord {
                ins: 0xB2,
                sw: resp.sw,
            }));
        }
        let (sfi, _) = self.reads[self.done];
        // Book 3 §10.2: records in SFIs 1-10 are template 70; others are proprietary.
        let body = match tlv::expect_template(&resp.data, t::RECORD_TEMPLATE) {
            Ok(tpl) => tpl.value(),
            Err(e) if sfi <= 10 => {
                return Transition::Finish(ctx.end_application(Reason::MalformedResponse(e)));
            }
            Err(_) => {
                self.done += 1;
                return self.next(ctx);
            }
        };
        let mut rec = TagStore::new();
        if let Err(e) = rec.absorb(body, |_| false) {
            return Transition::Finish(ctx.end_application(Reason::MalformedResponse(e)));
        }
        for (tag, v) in rec.iter() {
            // Book 3 §10.2: a redundant primitive object from the card ends the transaction.
            if self.from_card.contains(tag) {
                return Transition::Finish(ctx.end_application(Reason::BadData(tag)));
            }
            self.from_card.insert(tag, v);
            ctx.data.insert(tag, v);
        }
        self.done += 1;
        self.next(ctx)
    }
}

/// After the last record: check the data, choose the CVM, and give the outcome (Book C-3
/// §5.4-§5.7).
fn complete(ctx: &Ctx) -> Outcome {
    let d = &ctx.data;
    // Track 2 Equivalent Data is mandatory for an online qVSDC transaction.
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
    let cid = d
        .get(t::CID)
        .and_then(|v| v.first().copied())
        .unwrap_or(0xFF);
    let cvm = match choose_cvm(ctx) {
        Some(c) => c,
        None => {
            let mut o = ctx.outcome(
                OutcomeKind::Declined,
                Reason::BadData(t::CTQ),
                UiRequest {
                    message: Message::NotAuthorised,
                    status: Status::ProcessingError,
                    hold_time_ms: 1500,
                },
            );
            o.online_data = d.encode_tags(ONLINE_TAGS);
            return o;
        }
    };
    let mut o = match cid & 0xC0 {
        // ARQC: go online.
        0x80 => ctx.outcome(
            OutcomeKind::OnlineRequest,
            Reason::None,
            UiRequest {
                message: Message::CardReadOk,
                status: Status::CardReadSuccessfully,
                hold_time_ms: 0,
            },
        ),
        // TC: an offline approval needs fDDA, which this kernel does not yet perform.
        0x40 => ctx.outcome(
            OutcomeKind::Declined,
            Reason::OfflineNotSupported,
            UiRequest {
                message: Message::NotAuthorised,
                status: Status::CardReadSuccessfully,
                hold_time_ms: 1500,
            },
        ),
        0x00 => ctx.outcome(
            OutcomeKind::Declined,
            Reason::CardDeclined,
            UiRequest {
                message: Message::NotAuthorised,
                status: Status::CardReadSuccessfully,
                hold_time_ms: 1500,
            },
        ),
        _ => return ctx.end_application(Reason::BadData(t::CID)),
    };
    o.cvm = cvm;
    o.online_data = d.encode_tags(ONLINE_TAGS);
    o
}

/// Book C-3 §5.7 (Cardholder Verification): from the TTQ the reader sent and the CTQ the card
/// returned. `None` when a CVM is required and none can be done.
fn choose_cvm(ctx: &Ctx) -> Option<Cvm> {
    let d = &ctx.data;
    let ttq = d.get(t::TTQ).unwrap_or(&[0, 0, 0, 0]);
    let ctq = d.get(t::CTQ).filter(|v| v.len() >= 2);
    let cvm_required = ctx.selected_pre().is_some_and(|p| p.cvm_required)
        || ttq.get(1).is_some_and(|b| b & 0x40 != 0);
    let online_pin_supported = ttq[0] & 0x04 != 0;
    let signature_supported = ttq[0] & 0x02 != 0;
    let cdcvm_supported = ttq.get(2).is_some_and(|b| b & 0x40 != 0);
    match ctq {
        Some(ctq) => {
            // CTQ byte 2 bit 8: consumer device CVM performed.
            if ctq[1] & 0x80 != 0 && cdcvm_supported {
                return Some(Cvm::ConsumerDevice);
            }
            if !cvm_required {
                return Some(Cvm::NoCvm);
            }
            // CTQ byte 1 bit 8: online PIN required; bit 7: signature required.
            if ctq[0] & 0x80 != 0 && online_pin_supported {
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
