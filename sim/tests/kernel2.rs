//! Kernel 2 (Mastercard M/Chip) driven through Entry Point with the virtual Mastercard: online
//! and offline approval with CDA, the CVM list, a card that declines (AAC), CDA failure, a
//! torn transaction recovered on the second tap, limits, and misbehaving cards.

use drivers::VirtualCard;
use emv::card::KernelId;
use emv::config::{Combination, TerminalConfig, TxnInput};
use emv::entry::{EntryPoint, Step};
use emv::outcome::{Cvm, Message, Oda, OdaMethod, Outcome, OutcomeKind, Reason};
use emv::tags as t;
use emv::torn::TornRecord;
use sim::card::{EmvCard, parse_profile};
use sim::host::{IssuerDecision, IssuerKey, issuer_decide};

const MC_AID: &[u8] = &[0xA0, 0, 0, 0, 4, 0x10, 0x10];

/// A terminal with Mastercard on kernel 2 (and Visa on kernel 3), the Kassa test CAs, a
/// floor limit of `floor`, CVM limit 50.00, contactless limit 1000.00.
fn terminal(floor: u64) -> TerminalConfig {
    let (mut config, _) = emv::testdata::terminal_and_input(0);
    let combo = |aid: &[u8], kernel| Combination {
        aid: aid.to_vec(),
        kernel,
        partial_match: true,
        contactless_txn_limit: Some(100_000),
        floor_limit: Some(floor),
        cvm_required_limit: Some(5_000),
        ttq: (kernel == KernelId::C3).then_some([0x22, 0x00, 0x40, 0x00]),
        zero_amount_allowed: false,
        status_check: false,
        extended_selection: true,
        emv_mode: Default::default(),
    };
    config.combinations = vec![
        combo(&[0xA0, 0, 0, 0, 3, 0x10, 0x10], KernelId::C3),
        combo(MC_AID, KernelId::C2),
    ];
    config.capks = sim::emvpki::ca_public_keys();
    config
}

fn input(amount: u64, un: [u8; 4], torn_log: Vec<TornRecord>) -> TxnInput {
    let mut i = emv::testdata::terminal_and_input(amount).1;
    i.unpredictable_number = un;
    i.torn_log = torn_log;
    i
}

/// Runs one tap: a card that leaves the field (or answers nothing) is reported lost.
fn tap(config: &TerminalConfig, input: TxnInput, card: &mut dyn VirtualCard) -> (Outcome, Vec<u8>) {
    let mut txn = EntryPoint::new(config).start(input).unwrap();
    let mut step = txn.begin();
    let mut instructions = Vec::new();
    for _ in 0..100 {
        match step {
            Step::Transmit(_) if !card.present() => step = txn.on_card_lost(),
            Step::Transmit(cmd) => {
                let bytes = cmd.to_bytes().unwrap();
                instructions.push(bytes[1]);
                let r = card.process(&bytes);
                step = if r.is_empty() {
                    txn.on_card_lost()
                } else {
                    txn.on_response(&r)
                };
            }
            Step::Outcome(o) => return (*o, instructions),
        }
    }
    panic!("the kernel did not finish");
}

fn run(config: &TerminalConfig, amount: u64, card: &mut dyn VirtualCard) -> Outcome {
    tap(
        config,
        input(amount, [0x12, 0x34, 0x56, 0x78], Vec::new()),
        card,
    )
    .0
}

fn card(edit: impl Fn(String) -> String) -> EmvCard {
    let text = edit(
        sim::card::builtin_profile_text("mastercard")
            .unwrap()
            .to_string(),
    );
    EmvCard::from_profile(&parse_profile("mastercard", &text).unwrap()).unwrap()
}

fn same(s: String) -> String {
    s
}

fn with(field: &'static str) -> impl Fn(String) -> String {
    move |s: String| s.replace("[keys]", &format!("{field}\n\n[keys]"))
}

/// The issuer's verdict on the outcome's field 55 (the host simulator's check).
fn issuer_approves(o: &Outcome, amount: u64) -> bool {
    let profiles = sim::card::builtin_profiles();
    let issuers = IssuerKey::from_profiles(&profiles);
    let mut icc = emv::tlv::TagStore::new();
    icc.absorb(&o.online_data, |_| false).unwrap();
    matches!(
        issuer_decide(&issuers, "5413330089010012", 1, &icc, amount),
        IssuerDecision::Approve { .. }
    )
}

#[test]
fn online_approval_with_cda_and_the_cvm_list() {
    let cfg = terminal(0);
    let o = run(&cfg, 1234, &mut card(same));
    assert_eq!(o.kind, OutcomeKind::OnlineRequest, "{}", o.reason);
    assert_eq!(o.card.as_ref().unwrap().kernel, KernelId::C2);
    assert_eq!(o.oda, Oda::Succeeded(OdaMethod::Cda));
    assert_eq!(o.oda.name(), "cda_ok");
    // Under the CVM limit, 9F33 byte 2 is "no CVM required" only: the list's 42 03 and
    // 1E 03 are skipped, 1F 03 (no CVM, if supported) succeeds.
    assert_eq!(o.cvm, Cvm::NoCvm);
    assert_eq!(o.data.get(t::CVM_RESULTS), Some(&[0x1F, 0x03, 0x02][..]));
    assert_eq!(
        o.data.get(t::TERMINAL_CAPABILITIES),
        Some(&[0x00, 0x08, 0x08][..])
    );
    // Floor limit 0: TVR byte 4 b8, which the IAC-online F45084800C sends online.
    assert_eq!(
        o.data.get(t::TVR),
        Some(&[0x00, 0x00, 0x00, 0x80, 0x00][..])
    );
    assert_eq!(o.data.get(t::TSI), Some(&[0x80, 0x00][..]));
    // The AC came out of the CDA signature, and the issuer verifies it.
    assert_eq!(
        o.data.get(t::APPLICATION_CRYPTOGRAM).map(<[u8]>::len),
        Some(8)
    );
    assert!(issuer_approves(&o, 1234));
    assert_eq!(o.ui.message, Message::AuthorisingPleaseWait);

    // Over the CVM limit: "CVM required" capabilities (signature): 1E 03 succeeds.
    let o = run(&cfg, 6000, &mut card(same));
    assert_eq!(
        (o.kind, o.cvm),
        (OutcomeKind::OnlineRequest, Cvm::Signature)
    );
    assert_eq!(o.data.get(t::CVM_RESULTS), Some(&[0x1E, 0x03, 0x00][..]));
    assert_eq!(
        o.data.get(t::TERMINAL_CAPABILITIES),
        Some(&[0x00, 0x20, 0x08][..])
    );
}

#[test]
fn offline_approval_with_cda() {
    let cfg = terminal(2000);
    let o = run(&cfg, 1234, &mut card(with("offline = true")));
    assert_eq!(o.kind, OutcomeKind::Approved, "{}", o.reason);
    assert_eq!(o.oda, Oda::Succeeded(OdaMethod::Cda));
    assert_eq!(o.data.get(t::CID), Some(&[0x40][..]));
    assert_eq!(o.data.get(t::TVR), Some(&[0u8; 5][..]));
    // The card would approve offline, but above the floor limit the terminal asks ARQC.
    let o = run(&cfg, 3000, &mut card(with("offline = true")));
    assert_eq!(o.kind, OutcomeKind::OnlineRequest);
}

#[test]
fn card_declines_with_an_aac() {
    let o = run(&terminal(0), 1234, &mut card(with("decline = true")));
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::Declined, Reason::CardDeclined)
    );
    assert_eq!(o.data.get(t::CID), Some(&[0x00][..]));
    assert_eq!(o.ui.message, Message::NotAuthorised);
    // A terminal with a contact reader sends the cardholder there instead (C-2 S910.74).
    let mut contact = terminal(0);
    contact.combinations[1].emv_mode.card_data_input_capability = 0x20;
    let o = run(&contact, 1234, &mut card(with("decline = true")));
    assert_eq!(o.kind, OutcomeKind::TryAnotherInterface);
}

#[test]
fn cda_failure_ends_the_application() {
    let o = run(
        &terminal(0),
        1234,
        &mut card(with("defect = \"wrong-signature\"")),
    );
    assert_eq!(o.kind, OutcomeKind::EndApplication, "{}", o.reason);
    assert_eq!(o.oda, Oda::Failed(OdaMethod::Cda));
    assert_eq!(o.oda.name(), "cda_failed");
    // TVR byte 1 b3 "CDA failed".
    assert_eq!(o.data.get(t::TVR).unwrap()[0] & 0x04, 0x04);
    assert!(o.online_data.is_empty(), "nothing goes online");
    // Without the CA key: CDA failed before GENERATE AC, no CDA requested, the IAC-online
    // sends it online unverified (TVR shows it).
    let mut no_keys = terminal(0);
    no_keys.capks.clear();
    let o = run(&no_keys, 1234, &mut card(same));
    assert_eq!(o.kind, OutcomeKind::OnlineRequest);
    assert_eq!(o.oda, Oda::Failed(OdaMethod::Cda));
    assert_eq!(o.data.get(t::TVR).unwrap()[0], 0x04);
}

#[test]
fn torn_transaction_is_recovered_on_the_second_tap() {
    let cfg = terminal(0);
    let mut c = card(with("drdol = \"9F3704\"\ndefect = \"torn-after-gac\""));
    // First tap: GENERATE AC goes out, the card leaves before answering.
    let (o, ins) = tap(&cfg, input(1234, [1, 2, 3, 4], Vec::new()), &mut c);
    assert_eq!(*ins.last().unwrap(), 0xAE);
    assert_eq!(
        (o.kind, o.reason, o.ui.message),
        (
            OutcomeKind::TryAgain,
            Reason::CardLost,
            Message::PresentCardAgain
        )
    );
    let record = o.torn_new.expect("a torn record");
    assert!(format!("{record:?}").contains("541333******0012"));
    let atc_torn = c.atc();
    // Second tap, new unpredictable number: RECOVER AC with the torn one's DRDOL data gets
    // the cryptogram the card already counted.
    c.reinsert();
    let (o, ins) = tap(&cfg, input(1234, [9, 9, 9, 9], vec![record]), &mut c);
    assert!(ins.contains(&0xD0), "RECOVER AC sent");
    assert!(!ins.contains(&0xAE), "no second GENERATE AC");
    assert_eq!(o.kind, OutcomeKind::OnlineRequest, "{}", o.reason);
    assert_eq!(o.torn_done, Some(0), "the record is settled");
    assert!(o.torn_new.is_none());
    assert_eq!(o.oda, Oda::Succeeded(OdaMethod::Cda));
    // The recovered cryptogram is the torn transaction's: its UN and ATC.
    assert_eq!(o.data.get(t::UNPREDICTABLE_NUMBER), Some(&[1, 2, 3, 4][..]));
    assert_eq!(o.data.get(t::ATC), Some(&(atc_torn).to_be_bytes()[..]));
    assert!(issuer_approves(&o, 1234));
}

#[test]
fn torn_record_for_another_transaction_is_superseded() {
    let cfg = terminal(0);
    // A card that was torn, then presented somewhere else: it no longer has the answer.
    let mut c = card(with("drdol = \"9F3704\"\ndefect = \"torn-after-gac\""));
    let (o, _) = tap(&cfg, input(1234, [1, 2, 3, 4], Vec::new()), &mut c);
    let record = o.torn_new.unwrap();
    let mut fresh = card(with("drdol = \"9F3704\""));
    let (o, ins) = tap(&cfg, input(1234, [5, 5, 5, 5], vec![record]), &mut fresh);
    assert!(ins.contains(&0xD0) && ins.contains(&0xAE));
    assert_eq!(o.kind, OutcomeKind::OnlineRequest);
    assert_eq!(o.torn_done, Some(0));
    assert_eq!(o.data.get(t::UNPREDICTABLE_NUMBER), Some(&[5, 5, 5, 5][..]));
    // A card without a DRDOL leaves no torn record.
    let mut plain = card(with("defect = \"torn-after-gac\""));
    let (o, _) = tap(&cfg, input(1234, [1, 2, 3, 4], Vec::new()), &mut plain);
    assert_eq!(o.kind, OutcomeKind::TryAgain);
    assert!(o.torn_new.is_none());
    // Torn recovery switched off (DF811D = 0): no record either.
    let mut off = terminal(0);
    off.combinations[1].emv_mode.torn_log_max = 0;
    let mut c = card(with("drdol = \"9F3704\"\ndefect = \"torn-after-gac\""));
    let (o, _) = tap(&off, input(1234, [1, 2, 3, 4], Vec::new()), &mut c);
    assert!(o.torn_new.is_none());
}

#[test]
fn over_the_limit_tries_another_interface() {
    let mut c = card(same);
    let o = run(&terminal(0), 100_000, &mut c);
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::TryAnotherInterface, Reason::AmountNotAllowed)
    );
    assert_eq!(c.atc(), 1, "no GPO was sent");
}

#[test]
fn processing_restrictions_set_their_tvr_bits() {
    // Expired (a card without CDA: its certificates would have expired too): TVR byte 2
    // b7, which the IAC-online (F4 50 ...: byte 2 0x50) sends online though the card would
    // approve offline.
    let o = run(
        &terminal(2000),
        1234,
        &mut card(|s| {
            with("offline = true")(s)
                .replace("expiry = \"301231\"", "expiry = \"240131\"")
                .replace("oda = \"cda\"", "oda = \"none\"")
                .replace("aip = \"1980\"", "aip = \"1880\"")
        }),
    );
    assert_eq!(o.data.get(t::TVR), Some(&[0x80, 0x40, 0, 0, 0][..]));
    assert_eq!(o.kind, OutcomeKind::OnlineRequest);
    assert_eq!(o.oda, Oda::NotPerformed);
    // Not valid for international services (AUC 0000): byte 2 b5.
    let o = run(
        &terminal(0),
        1234,
        &mut card(|s| s.replace("oda = \"cda\"", "oda = \"cda\"\nauc = \"0000\"")),
    );
    assert_eq!(o.data.get(t::TVR).unwrap()[1] & 0x10, 0x10);
}

/// A card whose responses a test rewrites.
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
        inner: card(same),
        f,
    }
}

#[test]
fn misbehaving_cards_reach_defined_outcomes() {
    let cfg = terminal(0);
    // GENERATE AC answered with a status word.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, r| if c[1] == 0xAE { vec![0x69, 0x85] } else { r }),
    );
    assert_eq!(o.kind, OutcomeKind::EndApplication);
    assert_eq!(
        o.reason,
        Reason::StatusWord {
            ins: 0xAE,
            sw: 0x6985
        }
    );
    // A TC when the terminal asked for an ARQC.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, mut r| {
            if c[1] == 0xAE {
                // 77 L 9F27 01 80 -> 40
                let i = r.windows(3).position(|w| w == [0x9F, 0x27, 0x01]).unwrap();
                r[i + 3] = 0x40;
            }
            r
        }),
    );
    assert_eq!(o.kind, OutcomeKind::EndApplication);
    // CDA asked for, the signature missing: card data error.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, r| {
            if c[1] == 0xAE {
                strip(&r, t::RESPONSE_FORMAT2, t::SDAD)
            } else {
                r
            }
        }),
    );
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::EndApplication, Reason::MissingData(t::SDAD))
    );
    // GPO refused: Select Next, and with no other candidate, End Application.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, r| if c[1] == 0xA8 { vec![0x69, 0x85] } else { r }),
    );
    assert_eq!(o.kind, OutcomeKind::EndApplication);
    // Mag-stripe-only AIP (byte 2 b8 clear).
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, mut r| {
            if c[1] == 0xA8 {
                let i = r.windows(2).position(|w| w == [0x82, 0x02]).unwrap();
                r[i + 3] = 0x00;
            }
            r
        }),
    );
    assert_eq!(o.reason, Reason::MagStripeNotSupported);
    // The GENERATE AC response cut short.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, r| {
            if c[1] == 0xAE {
                let mut v = r[..10].to_vec();
                v.extend_from_slice(&[0x90, 0x00]);
                v
            } else {
                r
            }
        }),
    );
    assert_eq!(o.kind, OutcomeKind::EndApplication);
    // Records without the CDOL1 (8C): card data missing.
    let o = run(
        &cfg,
        1234,
        &mut mangled(|c, r| {
            if c[1] == 0xB2 {
                strip(&r, t::RECORD_TEMPLATE, t::CDOL1)
            } else {
                r
            }
        }),
    );
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::EndApplication, Reason::MissingData(t::CDOL1))
    );
}

/// Re-encodes a response template without `tag`.
fn strip(r: &[u8], template: emv::tlv::Tag, tag: emv::tlv::Tag) -> Vec<u8> {
    let Ok(tpl) = emv::tlv::expect_template(&r[..r.len() - 2], template) else {
        return r.to_vec();
    };
    let mut out = Vec::new();
    emv::tlv::encode_constructed(template, &mut out, |o| {
        for obj in tpl.children().flatten().filter(|o| o.tag() != tag) {
            emv::tlv::encode(obj.tag(), obj.value(), o);
        }
    });
    out.extend_from_slice(&r[r.len() - 2..]);
    out
}

#[test]
fn on_device_cvm_and_its_own_limit() {
    // A phone: AIP byte 1 b2 "on-device cardholder verification supported".
    let phone = |s: String| s.replace("aip = \"1980\"", "aip = \"1B80\"");
    let mut cfg = terminal(0);
    cfg.combinations[1].contactless_txn_limit = Some(5_000);
    cfg.combinations[1].emv_mode.on_device_cvm_txn_limit = Some(100_000);
    // Over the CVM limit: the phone verified the cardholder (CVM Results 01 00 02).
    let o = run(&cfg, 6_000, &mut card(phone));
    assert_eq!(
        (o.kind, o.cvm),
        (OutcomeKind::OnlineRequest, Cvm::ConsumerDevice),
        "{}",
        o.reason
    );
    assert_eq!(o.data.get(t::CVM_RESULTS), Some(&[0x01, 0x00, 0x02][..]));
    assert!(issuer_approves(&o, 6_000));
    // Under it: no CVM (3F 00 02).
    let o = run(&cfg, 1_000, &mut card(phone));
    assert_eq!(o.data.get(t::CVM_RESULTS), Some(&[0x3F, 0x00, 0x02][..]));
    // A plastic card over its own limit (50.00) but under the phone limit: the kernel ends it
    // after reading the card, there being no other application.
    let o = run(&cfg, 6_000, &mut card(same));
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::TryAnotherInterface, Reason::AmountNotAllowed)
    );
    // The kernel does not support on-device CVM: the phone is treated like a card.
    let mut no_odcvm = cfg.clone();
    no_odcvm.combinations[1].emv_mode.kernel_configuration = 0x80;
    let o = run(&no_odcvm, 6_000, &mut card(phone));
    assert_eq!(o.kind, OutcomeKind::TryAnotherInterface);
}
