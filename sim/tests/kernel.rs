//! Kernels 3 and 7 driven through Entry Point with the virtual cards: the transaction cases of
//! Book C-3/C-7, and cards that misbehave (out of order, wrong lengths, duplicated or missing
//! data, unexpected status words, removed mid-transaction) reaching a defined outcome.

use drivers::VirtualCard;
use emv::card::KernelId;
use emv::config::{Combination, TerminalConfig, TxnInput};
use emv::entry::{EntryPoint, Step};
use emv::outcome::{Cvm, Message, Oda, OdaMethod, Outcome, OutcomeKind, Reason};
use emv::tags as t;
use sim::card::{EmvCard, parse_profile};

/// A terminal with Visa (kernel 3) and UnionPay (kernel 7), the Kassa test CAs, a floor limit
/// of `floor` minor units, CVM limit 50.00, contactless limit 1000.00.
fn terminal(floor: u64) -> TerminalConfig {
    let (mut config, _) = emv::testdata::terminal_and_input(0);
    let combo = |aid: &[u8], kernel, ttq| Combination {
        aid: aid.to_vec(),
        kernel,
        partial_match: true,
        contactless_txn_limit: Some(100_000),
        floor_limit: Some(floor),
        cvm_required_limit: Some(5_000),
        ttq: Some(ttq),
        zero_amount_allowed: false,
        status_check: false,
        extended_selection: true,
        emv_mode: Default::default(),
    };
    config.combinations = vec![
        combo(
            &[0xA0, 0, 0, 0, 3, 0x10, 0x10],
            KernelId::C3,
            [0x22, 0x00, 0x40, 0x00],
        ),
        combo(
            &[0xA0, 0, 0, 3, 0x33, 1, 1],
            KernelId::C7,
            [0x22, 0x00, 0x40, 0x80],
        ),
    ];
    config.capks = sim::emvpki::ca_public_keys();
    config
}

fn input(amount: u64) -> TxnInput {
    emv::testdata::terminal_and_input(amount).1
}

fn run(config: &TerminalConfig, amount: u64, card: &mut dyn VirtualCard) -> Outcome {
    let mut txn = EntryPoint::new(config).start(input(amount)).unwrap();
    let mut step = txn.begin();
    for _ in 0..100 {
        match step {
            // As the reader does: a card that has left the field answers nothing more.
            Step::Transmit(_) if !card.present() => step = txn.on_card_lost(),
            Step::Transmit(cmd) => step = txn.on_response(&card.process(&cmd.to_bytes().unwrap())),
            Step::Outcome(o) => return *o,
        }
    }
    panic!("the kernel did not finish");
}

/// A built-in card with its profile text edited.
fn card(name: &str, edit: impl Fn(String) -> String) -> EmvCard {
    let text = edit(sim::card::builtin_profile_text(name).unwrap().to_string());
    EmvCard::from_profile(&parse_profile(name, &text).unwrap()).unwrap()
}

fn same(s: String) -> String {
    s
}

#[test]
fn online_under_and_over_the_cvm_limit() {
    let cfg = terminal(0);
    for name in ["visa", "unionpay"] {
        let o = run(&cfg, 1234, &mut card(name, same));
        assert_eq!(o.kind, OutcomeKind::OnlineRequest, "{name}: {}", o.reason);
        assert_eq!(o.cvm, Cvm::NoCvm, "{name}");
        assert_eq!(o.ui.message, Message::AuthorisingPleaseWait);
        // Book A §7.1: the request carries the card's preferred language (5F2D).
        let lang = o.ui.language.map(|l| l.to_string());
        assert_eq!(
            lang.as_deref(),
            Some(if name == "visa" { "en" } else { "zh" })
        );
        // Over the CVM limit: the card's CTQ (online PIN or signature) and a reader without
        // online PIN give a signature.
        let o = run(&cfg, 6000, &mut card(name, same));
        assert_eq!(
            (o.kind, o.cvm),
            (OutcomeKind::OnlineRequest, Cvm::Signature),
            "{name}"
        );
        assert_eq!(
            o.card.as_ref().unwrap().kernel,
            if name == "visa" {
                KernelId::C3
            } else {
                KernelId::C7
            }
        );
    }
}

#[test]
fn consumer_device_cvm_on_a_phone() {
    let o = run(&terminal(0), 8000, &mut card("wallet", same));
    assert_eq!(
        (o.kind, o.cvm),
        (OutcomeKind::OnlineRequest, Cvm::ConsumerDevice)
    );
    // A reader that does not support CDCVM (TTQ byte 3 bit 7 clear) cannot use it, and the
    // wallet asks for nothing else: declined.
    let mut cfg = terminal(0);
    cfg.combinations[0].ttq = Some([0x22, 0x00, 0x00, 0x00]);
    let o = run(&cfg, 8000, &mut card("wallet", same));
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::Declined, Reason::CvmNotPossible)
    );
    // TVR byte 3 b8 "cardholder verification was not successful".
    assert_eq!(o.data.get(t::TVR), Some(&[0, 0, 0x80, 0, 0][..]));
}

#[test]
fn offline_approval_and_fdda_failure() {
    let cfg = terminal(2000);
    let o = run(&cfg, 1234, &mut card("visa-offline", same));
    assert_eq!(
        (o.kind, o.oda),
        (OutcomeKind::Approved, Oda::Succeeded(OdaMethod::Fdda)),
        "{}",
        o.reason
    );
    assert_eq!(o.data.get(t::CID), Some(&[0x40][..]));
    // Book 3 Annex C5/C6: TVR clean, TSI "offline data authentication was performed".
    assert_eq!(o.data.get(t::TVR), Some(&[0u8; 5][..]));
    assert_eq!(o.data.get(t::TSI), Some(&[0x80, 0][..]));
    // Bad signature, CTQ without "go online" or "switch interface": declined.
    let o = run(&cfg, 1234, &mut card("visa-badsig", same));
    assert_eq!(
        (o.kind, o.oda),
        (OutcomeKind::Declined, Oda::Failed(OdaMethod::Fdda))
    );
    assert!(matches!(o.reason, Reason::OdaFailed(_)), "{}", o.reason);
    // TVR byte 1 b4 "DDA failed".
    assert_eq!(o.data.get(t::TVR), Some(&[0x08, 0, 0, 0, 0][..]));
    assert_eq!(o.data.get(t::TSI), Some(&[0x80, 0][..]));
    // CTQ byte 1 bit 6 "go online if ODA fails": online request instead.
    let o = run(
        &cfg,
        1234,
        &mut card("visa-badsig", |s| {
            s.replace("ctq = \"C000\"", "ctq = \"E000\"")
        }),
    );
    assert_eq!(
        (o.kind, o.oda),
        (OutcomeKind::OnlineRequest, Oda::Failed(OdaMethod::Fdda))
    );
    // The terminal records "DDA failed"; field 55 keeps the TVR the card's cryptogram
    // covered (all zeros in the PDOL data), or the issuer could not verify it.
    assert_eq!(o.data.get(t::TVR), Some(&[0x08, 0, 0, 0, 0][..]));
    let f55 = &o.online_data;
    assert!(
        f55.windows(7).any(|w| w == [0x95, 0x05, 0, 0, 0, 0, 0]),
        "{}",
        emv::util::hex(f55)
    );
    // CTQ byte 1 bit 5 "switch interface" with a reader that has contact chip (TTQ b5).
    let mut contact = terminal(2000);
    contact.combinations[0].ttq = Some([0x32, 0x00, 0x40, 0x00]);
    let o = run(
        &contact,
        1234,
        &mut card("visa-badsig", |s| {
            s.replace("ctq = \"C000\"", "ctq = \"D000\"")
        }),
    );
    assert_eq!(o.kind, OutcomeKind::TryAnotherInterface);
    // Without the CA key the signature cannot be checked: that is an fDDA failure too.
    let mut no_keys = terminal(2000);
    no_keys.capks.clear();
    let o = run(&no_keys, 1234, &mut card("visa-offline", same));
    assert_eq!(
        (o.kind, o.oda),
        (OutcomeKind::Declined, Oda::Failed(OdaMethod::Fdda))
    );
    assert!(
        o.reason.to_string().contains("no CA public key"),
        "{}",
        o.reason
    );
    // A TC without Signed Dynamic Application Data: ICC data missing and DDA failed.
    let o = run(
        &cfg,
        1234,
        &mut card("visa-offline", |s| {
            s.replace("oda = \"fdda\"", "oda = \"none\"")
        }),
    );
    assert_eq!(
        (o.kind, o.oda),
        (OutcomeKind::Declined, Oda::Failed(OdaMethod::Fdda))
    );
    assert_eq!(o.data.get(t::TVR), Some(&[0x28, 0, 0, 0, 0][..]));
    // UnionPay offline with fDDA version 01.
    let o = run(
        &cfg,
        1234,
        &mut card("unionpay", |s| {
            s.replace("oda = \"fdda\"", "oda = \"fdda\"\noffline = true")
        }),
    );
    assert_eq!(
        (o.kind, o.oda),
        (OutcomeKind::Approved, Oda::Succeeded(OdaMethod::Fdda)),
        "{}",
        o.reason
    );
}

#[test]
fn expired_cards() {
    // Online (ARQC) on kernel 3: the issuer decides.
    let o = run(&terminal(0), 1234, &mut card("visa-expired", same));
    assert_eq!(o.kind, OutcomeKind::OnlineRequest);
    // Offline (TC): declined, or online when the card's CTQ says "go online if expired".
    let offline = |s: String| s.replace("oda = \"none\"", "oda = \"none\"\noffline = true");
    let o = run(&terminal(2000), 1234, &mut card("visa-expired", offline));
    assert_eq!((o.kind, o.reason), (OutcomeKind::Declined, Reason::Expired));
    // TVR byte 2 b7 "expired application".
    assert_eq!(o.data.get(t::TVR), Some(&[0, 0x40, 0, 0, 0][..]));
    let go_online = |s: String| offline(s).replace("ctq = \"C000\"", "ctq = \"C800\"");
    let o = run(&terminal(2000), 1234, &mut card("visa-expired", go_online));
    assert_eq!(o.kind, OutcomeKind::OnlineRequest);
    // Kernel 7 checks the expiry date whatever the cryptogram: an expired UnionPay card is
    // declined even with an ARQC.
    let o = run(
        &terminal(0),
        1234,
        &mut card("unionpay", |s| {
            s.replace("expiry = \"301231\"", "expiry = \"240131\"")
        }),
    );
    assert_eq!((o.kind, o.reason), (OutcomeKind::Declined, Reason::Expired));
}

#[test]
fn blocked_over_the_limit_zero_amount_torn() {
    let cfg = terminal(0);
    let o = run(&cfg, 1234, &mut card("visa-blocked", same));
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::EndApplication, Reason::NoCommonApplication)
    );
    // At the contactless limit: Try Another Interface before any command.
    let mut c = card("visa", same);
    let o = run(&cfg, 100_000, &mut c);
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::TryAnotherInterface, Reason::AmountNotAllowed)
    );
    assert_eq!(c.atc(), 1, "no GPO was sent");
    // Zero amount: not allowed by default; allowed, it goes online.
    let o = run(&cfg, 0, &mut card("visa", same));
    assert_eq!(o.kind, OutcomeKind::TryAnotherInterface);
    let mut zero = terminal(0);
    zero.combinations[0].zero_amount_allowed = true;
    let o = run(&zero, 0, &mut card("visa", same));
    assert_eq!(o.kind, OutcomeKind::OnlineRequest);
    assert_eq!(
        o.data.get(t::TTQ).unwrap()[1] & 0x80,
        0x80,
        "online cryptogram required"
    );
    // Torn after GPO: Try Again, "Present card again", ready to read.
    let o = run(&cfg, 1234, &mut card("visa-torn", same));
    assert_eq!(
        (o.kind, o.reason, o.ui.message, o.ui.status),
        (
            OutcomeKind::TryAgain,
            Reason::CardLost,
            Message::PresentCardAgain,
            emv::outcome::Status::ReadyToRead
        )
    );
}

#[test]
fn unionpay_blocked_over_the_limit_zero_amount_torn() {
    let cfg = terminal(0);
    let blocked = |s: String| s.replace("[keys]", "status = \"blocked\"\n\n[keys]");
    let o = run(&cfg, 1234, &mut card("unionpay", blocked));
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::EndApplication, Reason::NoCommonApplication)
    );
    let mut c = card("unionpay", same);
    let o = run(&cfg, 100_000, &mut c);
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::TryAnotherInterface, Reason::AmountNotAllowed)
    );
    assert_eq!(c.atc(), 1, "no GPO was sent");
    let o = run(&cfg, 0, &mut card("unionpay", same));
    assert_eq!(o.kind, OutcomeKind::TryAnotherInterface);
    let mut zero = terminal(0);
    zero.combinations[1].zero_amount_allowed = true;
    let o = run(&zero, 0, &mut card("unionpay", same));
    assert_eq!(o.kind, OutcomeKind::OnlineRequest, "{}", o.reason);
    assert_eq!(o.card.as_ref().unwrap().kernel, KernelId::C7);
    let torn = |s: String| s.replace("[keys]", "defect = \"torn-after-gpo\"\n\n[keys]");
    let o = run(&cfg, 1234, &mut card("unionpay", torn));
    assert_eq!(
        (o.kind, o.reason, o.ui.message),
        (
            OutcomeKind::TryAgain,
            Reason::CardLost,
            Message::PresentCardAgain
        )
    );
}

/// A card whose responses a test may rewrite: (command, response) -> response.
struct Mangled<F: FnMut(&[u8], Vec<u8>) -> Vec<u8> + Send> {
    inner: EmvCard,
    f: F,
}

impl<F: FnMut(&[u8], Vec<u8>) -> Vec<u8> + Send> VirtualCard for Mangled<F> {
    fn uid(&self) -> Vec<u8> {
        self.inner.uid()
    }
    fn process(&mut self, capdu: &[u8]) -> Vec<u8> {
        let r = self.inner.process(capdu);
        (self.f)(capdu, r)
    }
}

fn mangled(
    f: impl FnMut(&[u8], Vec<u8>) -> Vec<u8> + Send,
) -> Mangled<impl FnMut(&[u8], Vec<u8>) -> Vec<u8> + Send> {
    Mangled {
        inner: card("visa", same),
        f,
    }
}

#[test]
fn misbehaving_cards_reach_defined_outcomes() {
    let cfg = terminal(0);
    let ins = |c: &[u8]| c[1];
    // An unexpected status word to READ RECORD.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, r| if ins(c) == 0xB2 { vec![0x6A, 0x83] } else { r }),
    );
    assert_eq!(
        (o.kind, o.reason),
        (
            OutcomeKind::EndApplication,
            Reason::StatusWord {
                ins: 0xB2,
                sw: 0x6A83
            }
        )
    );
    // A GPO response with a length that runs past the data.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, mut r| {
            if ins(c) == 0xA8 {
                r[1] = r[1].wrapping_add(9);
            }
            r
        }),
    );
    assert_eq!(o.kind, OutcomeKind::EndApplication);
    assert!(
        matches!(o.reason, Reason::MalformedResponse(_)),
        "{}",
        o.reason
    );
    // A GPO response without the AIP: missing mandatory data.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, r| {
            if ins(c) != 0xA8 {
                return r;
            }
            let mut store = emv::tlv::TagStore::new();
            store.absorb(&r[..r.len() - 2], |_| true).unwrap();
            store.remove(t::AIP);
            let body: Vec<u8> = store
                .iter()
                .flat_map(|(t, v)| {
                    let mut o = Vec::new();
                    emv::tlv::encode(t, v, &mut o);
                    o
                })
                .collect();
            let mut out = Vec::new();
            emv::tlv::encode(t::RESPONSE_FORMAT2, &body, &mut out);
            out.extend_from_slice(&[0x90, 0x00]);
            out
        }),
    );
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::EndApplication, Reason::MissingData(t::AIP))
    );
    // The same data object in two records: redundant data ends the transaction.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, r| {
            if ins(c) == 0xB2 && c[2] == 1 && c[3] == 0x14 {
                // Record 1 of SFI 2 answers with SFI 1 record 1's content (track 2 again).
                let mut again = card("visa", same);
                again.process(&[
                    0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0, 0, 0, 3, 0x10, 0x10, 0,
                ]);
                return again.process(&[0x00, 0xB2, 0x01, 0x0C, 0x00]);
            }
            r
        }),
    );
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::EndApplication, Reason::BadData(t::TRACK2))
    );
    // Out of order: a record where the GPO response should be.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, r| {
            if ins(c) == 0xA8 {
                let mut again = card("visa", same);
                again.process(&[
                    0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0, 0, 0, 3, 0x10, 0x10, 0,
                ]);
                return again.process(&[0x00, 0xB2, 0x01, 0x0C, 0x00]);
            }
            r
        }),
    );
    assert_eq!(o.kind, OutcomeKind::EndApplication);
    // A response of one byte.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, r| if ins(c) == 0xB2 { vec![0x90] } else { r }),
    );
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::EndApplication, Reason::MalformedApdu)
    );
    // GPO 6985: Select Next; the only candidate is gone, so End Application.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, r| if ins(c) == 0xA8 { vec![0x69, 0x85] } else { r }),
    );
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::EndApplication, Reason::NoCommonApplication)
    );
    // GPO 6986 from a phone: try again, see phone.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, r| if ins(c) == 0xA8 { vec![0x69, 0x86] } else { r }),
    );
    assert_eq!(
        (o.kind, o.ui.message),
        (OutcomeKind::TryAgain, Message::SeePhone)
    );
    // A card that answers everything with 61 01 forever ends, bounded.
    let o = run(&cfg, 1234, &mut mangled(|_, _| vec![0x61, 0x01]));
    assert_eq!(o.kind, OutcomeKind::EndApplication);
}

#[test]
fn unionpay_cdcvm_and_fdda_failure() {
    let cdcvm = |s: String| s.replace("ctq = \"C000\"", "ctq = \"0080\"");
    let o = run(&terminal(0), 8000, &mut card("unionpay", cdcvm));
    assert_eq!(
        (o.kind, o.cvm),
        (OutcomeKind::OnlineRequest, Cvm::ConsumerDevice)
    );
    let bad = |s: String| {
        s.replace(
            "oda = \"fdda\"",
            "oda = \"fdda\"\noffline = true\ndefect = \"wrong-signature\"",
        )
    };
    let o = run(&terminal(2000), 1234, &mut card("unionpay", bad));
    assert_eq!(
        (o.kind, o.oda),
        (OutcomeKind::Declined, Oda::Failed(OdaMethod::Fdda))
    );
}
