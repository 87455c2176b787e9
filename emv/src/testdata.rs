//! A ready-made terminal configuration for examples, tests and the emulator's defaults.

use crate::card::KernelId;
use crate::config::{Combination, TerminalConfig, TxnInput, TxnType};
use crate::util::{Date, Time};

/// Visa credit/debit AID.
pub const VISA_AID: &[u8] = &[0xA0, 0x00, 0x00, 0x00, 0x03, 0x10, 0x10];

/// A countertop terminal in Germany taking Visa by kernel 3, and a purchase of `amount`
/// euro cents on 2026-11-29 at 12:00:00 with unpredictable number `DEADBEEF`.
///
/// Limits: contactless transaction limit 1000.00, floor limit 0 (always online), CVM required
/// limit 50.00 (the German no-CVM limit). TTQ `22 00 40 00`: qVSDC, signature, consumer device
/// CVM.
pub fn terminal_and_input(amount: u64) -> (TerminalConfig, TxnInput) {
    let config = TerminalConfig {
        country: 276,
        terminal_type: 0x22,
        capabilities: [0x60, 0x28, 0xC8],
        additional_capabilities: [0x60, 0x00, 0xF0, 0xA0, 0x01],
        merchant_category_code: 5999,
        terminal_id: "KASSA001".into(),
        combinations: vec![Combination {
            aid: VISA_AID.to_vec(),
            kernel: KernelId::C3,
            partial_match: true,
            contactless_txn_limit: Some(100_000),
            floor_limit: Some(0),
            cvm_required_limit: Some(5_000),
            ttq: Some([0x22, 0x00, 0x40, 0x00]),
            zero_amount_allowed: false,
            status_check: false,
            extended_selection: true,
            emv_mode: Default::default(),
        }],
        capks: Vec::new(),
    };
    let input = TxnInput {
        amount,
        amount_other: 0,
        currency: 978,
        currency_exponent: 2,
        txn_type: TxnType::Purchase,
        date: Date {
            year: 2026,
            month: 11,
            day: 29,
        },
        time: Time {
            hour: 12,
            minute: 0,
            second: 0,
        },
        unpredictable_number: [0xDE, 0xAD, 0xBE, 0xEF],
        torn_log: Vec::new(),
    };
    (config, input)
}

/// [`terminal_and_input`] with a combination for every kernel: Visa (3), Mastercard (2), Amex
/// (4), JCB (5), Discover (6, TTQ `22004000`) and UnionPay (7, TTQ `26004080`: online PIN
/// and fDDA). For the fuzz targets and the tools that make their seeds from the virtual cards.
pub fn every_kernel(amount: u64) -> (TerminalConfig, TxnInput) {
    let (mut config, input) = terminal_and_input(amount);
    let base = config.combinations[0].clone();
    for (aid, kernel, ttq) in [
        (&[0xA0, 0, 0, 0, 0x04, 0x10, 0x10][..], KernelId::C2, None),
        (&[0xA0, 0, 0, 0, 0x25, 0x01][..], KernelId::C4, None),
        (&[0xA0, 0, 0, 0, 0x65, 0x10, 0x10][..], KernelId::C5, None),
        (
            &[0xA0, 0, 0, 0x01, 0x52, 0x30, 0x10][..],
            KernelId::C6,
            Some([0x22, 0, 0x40, 0]),
        ),
        (
            &[0xA0, 0, 0, 0x03, 0x33, 0x01, 0x01][..],
            KernelId::C7,
            Some([0x26, 0, 0x40, 0x80]),
        ),
    ] {
        let mut c = base.clone();
        c.aid = aid.to_vec();
        c.kernel = kernel;
        c.ttq = ttq;
        config.combinations.push(c);
    }
    (config, input)
}

/// Runs [`every_kernel`] at `amount` against a card whose answers are `answers`, each a
/// 2-byte big-endian length and that many bytes (the last may be short); once they run out
/// the card has left the field (empty answers). The format of the `kernel` fuzz target and of
/// the regression tests made from its findings. `None` when no outcome came within
/// `max_commands` commands.
pub fn run_with_answers(
    amount: u64,
    answers: &[u8],
    max_commands: usize,
) -> Option<crate::outcome::Outcome> {
    use crate::entry::{EntryPoint, Step};
    let (config, input) = every_kernel(amount);
    let mut txn = EntryPoint::new(&config).start(input).ok()?;
    let mut rest = answers;
    let mut step = txn.begin();
    for _ in 0..max_commands {
        match step {
            Step::Transmit(_) => {
                let answer: &[u8] = match rest {
                    [hi, lo, tail @ ..] => {
                        let n = (usize::from(*hi) << 8 | usize::from(*lo)).min(tail.len());
                        let (a, r) = tail.split_at(n);
                        rest = r;
                        a
                    }
                    _ => {
                        rest = &[];
                        &[]
                    }
                };
                step = txn.on_response(answer);
            }
            Step::Outcome(o) => return Some(*o),
        }
    }
    None
}
