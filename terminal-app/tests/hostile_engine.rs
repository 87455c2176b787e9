//! The hostile card suite's engine half (issue 16; the kernel half is
//! `sim/tests/hostile.rs`): what only a clock and a real reader driver can show. Through
//! `kassa pay --reader pn532-uart:PTY` against `kassa reader-sim`:
//!
//! - the card removed before it answers each APDU of the transaction in turn: the terminal
//!   asks for the card again and approves once, never twice (Book A §9.3);
//! - a card that answers slowly but within `[reader] apdu_timeout_ms` is approved;
//! - a card slower than the timeout is a communication error: the terminal asks for the card
//!   again; one slow at every presentation ends (try again, with the timeout as its reason)
//!   within the timeouts, and the late answers do not confuse the next transaction.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::ReaderSim;

use serde_json::Value;

const KASSA: &str = common::KASSA;

/// The APDU timeout the terminal runs with here.
const APDU_TIMEOUT_MS: u64 = 500;

fn kassa(dir: &Path, args: &[&str]) -> Output {
    let cfg = dir.join("kassa.toml");
    std::fs::write(
        &cfg,
        format!(
            "[reader]\ncard_timeout_ms = 2500\napdu_timeout_ms = {APDU_TIMEOUT_MS}\nmax_presentations = 3\n"
        ),
    )
    .unwrap();
    Command::new(KASSA)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .env_remove("KASSA_TEST_PAUSE_AT")
        .output()
        .unwrap()
}

fn pay(dir: &Path, reader: &str) -> (Option<i32>, Value, Duration) {
    let t = Instant::now();
    let o = kassa(
        dir,
        &["pay", "--amount", "12.34", "--reader", reader, "--json"],
    );
    let took = t.elapsed();
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code(), v, took)
}

/// The journal's transactions, oldest first.
fn journal(dir: &Path) -> Vec<Value> {
    let o = kassa(dir, &["journal", "list", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut list = v.as_array().cloned().unwrap_or_default();
    list.reverse();
    list
}

#[test]
fn removal_before_each_apdu_is_presented_again_and_approved_once() {
    // A clean Visa tap takes 7 APDUs (PPSE, SELECT, GPO, 4 records) and a Mastercard tap 8
    // (PPSE, SELECT, GPO, 4 records, GENERATE AC: the removal there is a torn transaction,
    // Book C-2 §3.8, recovered on the next tap).
    for (card, apdus) in [("visa", 7), ("mastercard", 8)] {
        for n in 1..=apdus {
            let dir = tempfile::tempdir().unwrap();
            let sim = ReaderSim::start(card, &[&format!("card-lost:{n}")]);
            let (code, v, _) = pay(dir.path(), &sim.spec);
            let what = format!("{card}, card removed at APDU {n}");
            assert_eq!(code, Some(0), "{what}: {v}");
            assert_eq!(v["outcome"], "approved", "{what}: {v}");
            assert_eq!(v["presentations"], 2, "{what}: {v}");
            let txns = journal(dir.path());
            let approved: Vec<_> = txns.iter().filter(|t| t["state"] == "approved").collect();
            assert_eq!(approved.len(), 1, "{what}: {txns:?}");
            assert_eq!(approved[0]["amount_minor"], 1234, "{what}");
        }
    }
}

#[test]
fn a_slow_card_within_the_apdu_timeout_is_approved() {
    let dir = tempfile::tempdir().unwrap();
    // GET PROCESSING OPTIONS (the 3rd APDU) takes 300 ms more: under the 500 ms limit.
    let sim = ReaderSim::start("visa", &["slow:3:300"]);
    let (code, v, _) = pay(dir.path(), &sim.spec);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["outcome"], "approved", "{v}");
    assert_eq!(v["presentations"], 1, "{v}");
}

#[test]
fn a_card_slower_than_the_apdu_timeout_is_asked_for_again() {
    let dir = tempfile::tempdir().unwrap();
    // The first record (the 4th APDU) takes 3 s, six times the APDU timeout, once: a
    // communication error (Book A §9.3), so the terminal asks for the card again.
    let sim = ReaderSim::start("visa", &["slow:4:3000"]);
    let (code, v, took) = pay(dir.path(), &sim.spec);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["outcome"], "approved", "{v}");
    assert_eq!(v["presentations"], 2, "{v}");
    // The late answer was discarded, not taken for the next command's.
    assert!(took < Duration::from_secs(8), "{took:?}");
    let txns = journal(dir.path());
    assert_eq!(txns.len(), 1, "{txns:?}");
}

#[test]
fn a_card_always_slower_than_the_apdu_timeout_ends_with_the_reason_within_the_timeouts() {
    let dir = tempfile::tempdir().unwrap();
    // Slow at the first record of each of the three presentations (4 APDUs each).
    let sim = ReaderSim::start("visa", &["slow:4:3000", "slow:8:3000", "slow:12:3000"]);
    let (code, v, took) = pay(dir.path(), &sim.spec);
    // `kassa pay` presents the card twice (`--taps`): both time out, and the transaction
    // ends asking for the card once more, with the timeout as its reason.
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["outcome"], "try_again", "{v}");
    assert_eq!(v["presentations"], 2, "{v}");
    let reason = v["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("card_lost"), "{v}");
    assert!(
        reason.contains(&format!("within {APDU_TIMEOUT_MS} ms")),
        "{v}"
    );
    assert_eq!(v["journal"]["state"], "ended", "{v}");
    // Not a hang: two APDU timeouts and the wait for the card between them.
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(
        journal(dir.path()).iter().all(|t| t["state"] != "approved"),
        "nothing was approved"
    );
    // The reader is usable for the next transaction: the late answers were discarded.
    let (code, v, _) = pay(dir.path(), &sim.spec);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["outcome"], "approved", "{v}");
}
