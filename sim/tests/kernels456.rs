//! Kernels 4 (American Express), 5 (JCB) and 6 (Discover D-PAS) with their virtual cards:
//! approved online, declined by the card, CDA failure, over the limit, and each kernel's own
//! rules (C-4 reader capabilities, C-5 card-chosen CVM, C-6 signed offline approval).

use drivers::VirtualCard;
use emv::card::KernelId;
use emv::config::{Combination, TerminalConfig};
use emv::entry::{EntryPoint, Step};
use emv::outcome::{Cvm, Message, Oda, OdaMethod, Outcome, OutcomeKind, Reason};
use emv::tags as t;
use emv::tlv::Tag;
use sim::card::{EmvCard, parse_profile};
use sim::host::{IssuerDecision, IssuerKey, issuer_decide};

/// A terminal with Amex (C-4), JCB (C-5) and Discover (C-6), floor limit `floor`, CVM limit
/// 50.00, contactless limit 1000.00.
fn terminal(floor: u64) -> TerminalConfig {
    let (mut config, _) = emv::testdata::terminal_and_input(0);
    let combo = |aid: &[u8], kernel, ttq| Combination {
        aid: aid.to_vec(),
        kernel,
        partial_match: true,
        contactless_txn_limit: Some(100_000),
        floor_limit: Some(floor),
        cvm_required_limit: Some(5_000),
        ttq,
        zero_amount_allowed: false,
        status_check: false,
        extended_selection: true,
        emv_mode: Default::default(),
    };
    config.combinations = vec![
        combo(&[0xA0, 0, 0, 0, 0x25, 0x01], KernelId::C4, None),
        combo(&[0xA0, 0, 0, 0, 0x65, 0x10, 0x10], KernelId::C5, None),
        combo(
            &[0xA0, 0, 0, 1, 0x52, 0x30, 0x10],
            KernelId::C6,
            Some([0x22, 0x00, 0x40, 0x00]),
        ),
    ];
    config.capks = sim::emvpki::ca_public_keys();
    config
}

/// Runs one tap, recording the instruction bytes sent.
fn tap(config: &TerminalConfig, amount: u64, card: &mut dyn VirtualCard) -> (Outcome, Vec<u8>) {
    let mut input = emv::testdata::terminal_and_input(amount).1;
    input.unpredictable_number = [0x0A, 0x0B, 0x0C, 0x0D];
    let mut txn = EntryPoint::new(config).start(input).unwrap();
    let mut step = txn.begin();
    let mut sent = Vec::new();
    for _ in 0..100 {
        match step {
            Step::Transmit(cmd) => {
                let bytes = cmd.to_bytes().unwrap();
                sent.push(bytes[1]);
                step = txn.on_response(&card.process(&bytes));
            }
            Step::Outcome(o) => return (*o, sent),
        }
    }
    panic!("the kernel did not finish");
}

fn run(config: &TerminalConfig, amount: u64, card: &mut dyn VirtualCard) -> Outcome {
    tap(config, amount, card).0
}

fn card(name: &str, edit: impl Fn(String) -> String) -> EmvCard {
    let text = edit(sim::card::builtin_profile_text(name).unwrap().to_string());
    EmvCard::from_profile(&parse_profile(name, &text).unwrap()).unwrap()
}

fn same(s: String) -> String {
    s
}

fn with(field: &'static str) -> impl Fn(String) -> String {
    move |s: String| s.replace("[keys]", &format!("{field}\n\n[keys]"))
}

fn issuer_approves(o: &Outcome, pan: &str, amount: u64) -> bool {
    let issuers = IssuerKey::from_profiles(&sim::card::builtin_profiles());
    let mut icc = emv::tlv::TagStore::new();
    icc.absorb(&o.online_data, |_| false).unwrap();
    matches!(
        issuer_decide(&issuers, pan, 1, &icc, amount),
        IssuerDecision::Approve { .. }
    )
}

const AMEX_PAN: &str = "374245000000009";
const JCB_PAN: &str = "3540110000000016";
const DISCOVER_PAN: &str = "6011000000000012";

#[test]
fn each_scheme_is_approved_online_by_its_issuer() {
    let cfg = terminal(0);
    for (name, kernel, pan) in [
        ("amex", KernelId::C4, AMEX_PAN),
        ("jcb", KernelId::C5, JCB_PAN),
        ("discover", KernelId::C6, DISCOVER_PAN),
    ] {
        let o = run(&cfg, 1234, &mut card(name, same));
        assert_eq!(o.kind, OutcomeKind::OnlineRequest, "{name}: {}", o.reason);
        assert_eq!(o.card.as_ref().unwrap().kernel, kernel, "{name}");
        assert_eq!(o.cvm, Cvm::NoCvm, "{name}");
        assert!(issuer_approves(&o, pan, 1234), "{name}: ARQC verified");
    }
    // Kernels 4 and 5 verify CDA on the ARQC; kernel 6 signs only offline approvals.
    assert_eq!(
        run(&cfg, 1234, &mut card("amex", same)).oda,
        Oda::Succeeded(OdaMethod::Cda)
    );
    assert_eq!(
        run(&cfg, 1234, &mut card("jcb", same)).oda,
        Oda::Succeeded(OdaMethod::Cda)
    );
    assert_eq!(
        run(&cfg, 1234, &mut card("discover", same)).oda,
        Oda::NotPerformed
    );
}

#[test]
fn each_card_declining_with_an_aac_is_declined() {
    let cfg = terminal(0);
    for name in ["amex", "jcb", "discover"] {
        let o = run(&cfg, 1234, &mut card(name, with("decline = true")));
        assert_eq!(
            (o.kind, o.reason),
            (OutcomeKind::Declined, Reason::CardDeclined),
            "{name}"
        );
        assert_eq!(o.data.get(t::CID), Some(&[0x00][..]), "{name}");
        assert_eq!(o.ui.message, Message::NotAuthorised);
    }
}

#[test]
fn cda_failures() {
    // Kernels 4 and 5: a bad CDA signature on the ARQC ends the application, TVR "CDA failed".
    for name in ["amex", "jcb"] {
        let o = run(
            &terminal(0),
            1234,
            &mut card(name, with("defect = \"wrong-signature\"")),
        );
        assert_eq!(o.kind, OutcomeKind::EndApplication, "{name}: {}", o.reason);
        assert_eq!(o.oda, Oda::Failed(OdaMethod::Cda), "{name}");
        assert_eq!(o.data.get(t::TVR).unwrap()[0] & 0x04, 0x04, "{name}");
    }
    // Kernel 6: an offline approval with a bad signature is declined.
    let o = run(
        &terminal(2000),
        1234,
        &mut card(
            "discover",
            with("offline = true\ndefect = \"wrong-signature\""),
        ),
    );
    assert_eq!(o.kind, OutcomeKind::Declined, "{}", o.reason);
    assert_eq!(o.oda, Oda::Failed(OdaMethod::Cda));
    assert_eq!(o.data.get(t::TVR).unwrap()[0] & 0x04, 0x04);
}

#[test]
fn over_the_contactless_limit_tries_another_interface() {
    for name in ["amex", "jcb", "discover"] {
        let mut c = card(name, same);
        let o = run(&terminal(0), 100_000, &mut c);
        assert_eq!(
            (o.kind, o.reason),
            (OutcomeKind::TryAnotherInterface, Reason::AmountNotAllowed),
            "{name}"
        );
        assert_eq!(c.atc(), 1, "{name}: no GPO was sent");
    }
}

#[test]
fn amex_sends_its_reader_capabilities_and_declines_an_unasked_tc() {
    let cfg = terminal(0);
    // Over the CVM limit: 9F6E byte 3 b7 "CVM required"; the CVM list gives a signature.
    let o = run(&cfg, 6000, &mut card("amex", same));
    assert_eq!(
        o.data.get(Tag::new(0x9F6E)),
        Some(&[0x10, 0x20, 0x40, 0x03][..])
    );
    assert_eq!(o.data.get(Tag::new(0x9F6D)), Some(&[0xC8][..]));
    assert_eq!(
        (o.kind, o.cvm),
        (OutcomeKind::OnlineRequest, Cvm::Signature)
    );
    let o = run(&cfg, 1234, &mut card("amex", same));
    assert_eq!(
        o.data.get(Tag::new(0x9F6E)),
        Some(&[0x10, 0x20, 0x00, 0x03][..])
    );
    // Floor limit 0 asks for an ARQC; a card answering TC is declined (C-4), where kernel 2
    // would end the application.
    struct Tc(EmvCard);
    impl VirtualCard for Tc {
        fn uid(&self) -> Vec<u8> {
            self.0.uid()
        }
        fn process(&mut self, c: &[u8]) -> Vec<u8> {
            let mut r = self.0.process(c);
            if c[1] == 0xAE
                && let Some(i) = r.windows(3).position(|w| w == [0x9F, 0x27, 0x01])
            {
                r[i + 3] = 0x40;
            }
            r
        }
    }
    let o = run(&cfg, 1234, &mut Tc(card("amex", same)));
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::Declined, Reason::WrongCryptogramType)
    );
}

#[test]
fn jcb_card_chooses_the_cvm() {
    let cfg = terminal(0);
    // Under the CVM limit: TIP byte 1 without "CVM required"; the card answers 9F50 = 00.
    let o = run(&cfg, 1234, &mut card("jcb", same));
    assert_eq!(o.data.get(Tag::new(0x9F53)).unwrap()[0] & 0x80, 0);
    assert_eq!(o.data.get(Tag::new(0x9F50)), Some(&[0x00][..]));
    assert_eq!(o.cvm, Cvm::NoCvm);
    // Over it: TIP "CVM required" + "signature"; the card answers 10: signature.
    let o = run(&cfg, 6000, &mut card("jcb", same));
    assert_eq!(o.data.get(Tag::new(0x9F53)).unwrap()[0] & 0xC0, 0xC0);
    assert_eq!(o.data.get(Tag::new(0x9F50)), Some(&[0x10][..]));
    assert_eq!(
        (o.kind, o.cvm),
        (OutcomeKind::OnlineRequest, Cvm::Signature)
    );
    assert_eq!(o.data.get(t::CVM_RESULTS), Some(&[0x1E, 0x00, 0x00][..]));
    // A reader that takes no signature: the card can offer nothing: declined.
    let mut no_sig = cfg.clone();
    no_sig.combinations[1].emv_mode.cvm_capability_cvm_required = 0x00;
    let o = run(&no_sig, 6000, &mut card("jcb", same));
    assert_eq!(
        (o.kind, o.reason),
        (OutcomeKind::Declined, Reason::CvmNotPossible)
    );
    // A phone asking to be looked at (6986): see phone, present again.
    struct SeePhone(EmvCard);
    impl VirtualCard for SeePhone {
        fn uid(&self) -> Vec<u8> {
            self.0.uid()
        }
        fn process(&mut self, c: &[u8]) -> Vec<u8> {
            let r = self.0.process(c);
            if c[1] == 0xAE { vec![0x69, 0x86] } else { r }
        }
    }
    let o = run(&cfg, 1234, &mut SeePhone(card("jcb", same)));
    assert_eq!(
        (o.kind, o.ui.message),
        (OutcomeKind::TryAgain, Message::SeePhone)
    );
    // Japanese first: the UI request speaks it.
    assert_eq!(o.ui.language.map(|l| l.to_string()).as_deref(), Some("ja"));
}

#[test]
fn discover_signs_its_offline_approvals() {
    // Under the floor limit the card approves offline: the AC comes out of the signature.
    let o = run(
        &terminal(2000),
        1234,
        &mut card("discover", with("offline = true")),
    );
    assert_eq!(o.kind, OutcomeKind::Approved, "{}", o.reason);
    assert_eq!(o.oda, Oda::Succeeded(OdaMethod::Cda));
    assert_eq!(
        o.data.get(t::APPLICATION_CRYPTOGRAM).map(<[u8]>::len),
        Some(8)
    );
    assert_eq!(o.data.get(t::TSI), Some(&[0x80, 0x00][..]));
    // Over the floor limit (TTQ "online cryptogram required") it goes online.
    let o = run(
        &terminal(2000),
        3000,
        &mut card("discover", with("offline = true")),
    );
    assert_eq!(o.kind, OutcomeKind::OnlineRequest);
    // Over the CVM limit, CPR "signature": signature.
    let o = run(&terminal(0), 6000, &mut card("discover", same));
    assert_eq!(
        (o.kind, o.cvm),
        (OutcomeKind::OnlineRequest, Cvm::Signature)
    );
    // Without the CA key an offline approval cannot be trusted: declined.
    let mut no_keys = terminal(2000);
    no_keys.capks.clear();
    let o = run(
        &no_keys,
        1234,
        &mut card("discover", with("offline = true")),
    );
    assert_eq!(
        (o.kind, o.oda),
        (OutcomeKind::Declined, Oda::Failed(OdaMethod::Cda))
    );
}

/// Every response of a transaction, mangled in turn (status word, truncation, a flipped byte,
/// no data, no answer), through every kernel: the kernel always reaches an outcome within its
/// command budget, and never approves offline without offline data authentication succeeding.
#[test]
fn every_mangled_response_reaches_an_outcome() {
    let mut cfg = terminal(2000);
    let (base, _) = emv::testdata::terminal_and_input(0);
    let mut extra = base.combinations.clone(); // Visa, kernel 3
    extra[0].floor_limit = Some(2000);
    cfg.combinations.extend(extra);
    cfg.combinations.push(Combination {
        aid: vec![0xA0, 0, 0, 0, 4, 0x10, 0x10],
        kernel: KernelId::C2,
        ttq: None,
        ..cfg.combinations[0].clone()
    });
    cfg.combinations.push(Combination {
        aid: vec![0xA0, 0, 0, 3, 0x33, 1, 1],
        kernel: KernelId::C7,
        ttq: Some([0x22, 0x00, 0x40, 0x80]),
        ..cfg.combinations[0].clone()
    });
    let offline = |s: String| {
        if s.contains("offline = true") {
            s
        } else {
            s.replace("[keys]", "offline = true\n\n[keys]")
        }
    };
    let mut runs = 0;
    for name in [
        "mastercard",
        "amex",
        "jcb",
        "discover",
        "visa-offline",
        "unionpay",
    ] {
        let (o, sent) = tap(&cfg, 1234, &mut card(name, offline));
        assert_eq!(
            o.kind,
            OutcomeKind::Approved,
            "{name} unmangled: {}",
            o.reason
        );
        for at in 0..sent.len() {
            for mutation in 0..7 {
                let mut n = 0;
                let mut c = Mutated {
                    inner: card(name, offline),
                    f: move |r: Vec<u8>| {
                        n += 1;
                        if n - 1 != at {
                            return r;
                        }
                        let (data, sw) = r.split_at(r.len() - 2);
                        match mutation {
                            0 => vec![0x6F, 0x00],
                            1 => [&data[..data.len() / 2], sw].concat(),
                            2 => vec![0x90, 0x00],
                            3..=5 if !data.is_empty() => {
                                let mut d = data.to_vec();
                                let i = [1, d.len() / 2, d.len() - 1][mutation - 3];
                                let last = d.len() - 1;
                                d[i.min(last)] ^= 0x5A;
                                [&d[..], sw].concat()
                            }
                            6 => Vec::new(),
                            _ => r,
                        }
                    },
                };
                let o = run_lossy(&cfg, 1234, &mut c);
                runs += 1;
                if o.kind == OutcomeKind::Approved {
                    assert!(
                        matches!(o.oda, Oda::Succeeded(_)),
                        "{name}: response {at} mutation {mutation} approved offline with {:?}",
                        o.oda
                    );
                }
            }
        }
    }
    assert!(runs > 150, "{runs}");
}

/// A card whose n-th response a test rewrites.
struct Mutated<F: FnMut(Vec<u8>) -> Vec<u8> + Send> {
    inner: EmvCard,
    f: F,
}

impl<F: FnMut(Vec<u8>) -> Vec<u8> + Send> VirtualCard for Mutated<F> {
    fn uid(&self) -> Vec<u8> {
        self.inner.uid()
    }
    fn process(&mut self, capdu: &[u8]) -> Vec<u8> {
        let r = self.inner.process(capdu);
        (self.f)(r)
    }
}

/// Like [`run`], with an empty answer reported as the card lost.
fn run_lossy(config: &TerminalConfig, amount: u64, card: &mut dyn VirtualCard) -> Outcome {
    let mut input = emv::testdata::terminal_and_input(amount).1;
    input.unpredictable_number = [0x0A, 0x0B, 0x0C, 0x0D];
    let mut txn = EntryPoint::new(config).start(input).unwrap();
    let mut step = txn.begin();
    for _ in 0..100 {
        match step {
            Step::Transmit(cmd) => {
                let r = card.process(&cmd.to_bytes().unwrap());
                step = if r.is_empty() {
                    txn.on_card_lost()
                } else {
                    txn.on_response(&r)
                };
            }
            Step::Outcome(o) => return *o,
        }
    }
    panic!("the kernel did not finish");
}
