//! The terminal's own CPU time for one contactless transaction: Entry Point and the kernel
//! driven against a virtual card's recorded answers, so the card's work (cryptograms, RSA
//! signatures) is not counted. Offline data authentication (fDDA, CDA: two certificate
//! recoveries and a signature, RSA public operations) dominates where it runs.
//!
//! `cargo bench -p kassa-sim --bench kernel`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use drivers::VirtualCard;
use emv::card::KernelId;
use emv::config::{Combination, TerminalConfig};
use emv::entry::{EntryPoint, Step};
use emv::outcome::{Outcome, OutcomeKind};
use sim::card::{EmvCard, parse_profile};

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
            [0x22, 0, 0x40, 0],
        ),
        combo(
            &[0xA0, 0, 0, 3, 0x33, 1, 1],
            KernelId::C7,
            [0x22, 0, 0x40, 0x80],
        ),
        combo(&[0xA0, 0, 0, 0, 4, 0x10, 0x10], KernelId::C2, [0, 0, 0, 0]),
        combo(
            &[0xA0, 0, 0, 1, 0x52, 0x30, 0x10],
            KernelId::C6,
            [0x22, 0, 0x40, 0],
        ),
    ];
    // Kernel 2 has no TTQ.
    config.combinations[2].ttq = None;
    config.capks = sim::emvpki::ca_public_keys();
    config
}

fn card(name: &str, offline: bool) -> EmvCard {
    let mut text = sim::card::builtin_profile_text(name).unwrap().to_string();
    if offline && !text.contains("offline = true") {
        text = text.replace("oda = \"fdda\"", "oda = \"fdda\"\noffline = true");
    }
    EmvCard::from_profile(&parse_profile(name, &text).unwrap()).unwrap()
}

/// Runs one transaction against `card`.
fn run(config: &TerminalConfig, card: &mut dyn FnMut(&[u8]) -> Vec<u8>) -> Outcome {
    let input = emv::testdata::terminal_and_input(1234).1;
    let mut txn = EntryPoint::new(config).start(input).unwrap();
    let mut step = txn.begin();
    loop {
        match step {
            Step::Transmit(cmd) => step = txn.on_response(&card(&cmd.to_bytes().unwrap())),
            Step::Outcome(o) => return *o,
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernel");
    for (label, name, floor, offline, expect) in [
        ("visa_online", "visa", 0, false, OutcomeKind::OnlineRequest),
        (
            "visa_offline_fdda",
            "visa-offline",
            2000,
            true,
            OutcomeKind::Approved,
        ),
        (
            "unionpay_online",
            "unionpay",
            0,
            false,
            OutcomeKind::OnlineRequest,
        ),
        (
            "unionpay_offline_fdda",
            "unionpay",
            2000,
            true,
            OutcomeKind::Approved,
        ),
        (
            "mastercard_online_cda",
            "mastercard",
            0,
            false,
            OutcomeKind::OnlineRequest,
        ),
        (
            "discover_online",
            "discover",
            0,
            false,
            OutcomeKind::OnlineRequest,
        ),
    ] {
        let config = terminal(floor);
        // Record the card's answers once: the terminal side is then timed alone.
        let mut live = card(name, offline);
        let mut script = Vec::new();
        let o = run(&config, &mut |c| {
            let r = live.process(c);
            script.push(r.clone());
            r
        });
        assert_eq!(o.kind, expect, "{label}: {}", o.reason);
        g.bench_function(format!("{label}/terminal"), |b| {
            b.iter(|| {
                let mut answers = script.iter();
                black_box(run(&config, &mut |_| answers.next().unwrap().clone()))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
