//! The hardware reader path end to end: `kassa pay --reader pn532-uart:PATH` against
//! `kassa reader-sim`, a PN532 simulator with a virtual card on a real pseudo-terminal, at
//! the UART's real byte rate, with faults injected.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::ReaderSim;

use serde_json::Value;

const KASSA: &str = common::KASSA;

fn config(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("kassa.toml");
    std::fs::write(
        &p,
        "[reader]\ncard_timeout_ms = 2500\napdu_timeout_ms = 500\nmax_presentations = 3\n",
    )
    .unwrap();
    p
}

fn kassa(dir: &Path, args: &[&str]) -> Output {
    Command::new(KASSA)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(config(dir))
        .args(args)
        .env_remove("KASSA_TEST_PAUSE_AT")
        .output()
        .unwrap()
}

fn pay(dir: &Path, reader: &str) -> (Option<i32>, Value) {
    let o = kassa(
        dir,
        &["pay", "--amount", "12.34", "--reader", reader, "--json"],
    );
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code(), v)
}

#[test]
fn a_sale_through_the_pn532_uart_driver_approves() {
    let dir = tempfile::tempdir().unwrap();
    let sim = ReaderSim::start("visa", &[]);
    let (code, v) = pay(dir.path(), &sim.spec);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["outcome"], "approved", "{v}");
    assert_eq!(v["card"]["pan"], "476173******0119");
    assert_eq!(v["presentations"], 1);
    assert!(v["timing_ms"]["card"].as_u64().unwrap() > 0);
    // The journal has it, with the masked PAN only.
    let o = kassa(dir.path(), &["journal", "list", "--json"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("476173******0119"), "{text}");
    assert!(!text.contains("4761739001010119"));
    // A Mastercard on the same reader, in a second transaction.
    drop(sim);
    let sim = ReaderSim::start("mastercard", &[]);
    let (code, v) = pay(dir.path(), &sim.spec);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["outcome"], "approved", "{v}");
}

#[test]
fn line_noise_is_recovered_without_the_cardholder_noticing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = ReaderSim::start("visa", &["bad-checksum", "garbage"]);
    let (code, v) = pay(dir.path(), &sim.spec);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["outcome"], "approved", "{v}");
    assert_eq!(v["presentations"], 1);
}

#[test]
fn a_card_lost_mid_transaction_is_presented_again_and_approves() {
    let dir = tempfile::tempdir().unwrap();
    let sim = ReaderSim::start("visa", &["card-lost:3"]);
    let (code, v) = pay(dir.path(), &sim.spec);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["outcome"], "approved", "{v}");
    assert_eq!(v["presentations"], 2, "{v}");
}

#[test]
fn a_reader_reset_mid_apdu_recovers_and_approves() {
    let dir = tempfile::tempdir().unwrap();
    let sim = ReaderSim::start("visa", &["reset:2"]);
    let (code, v) = pay(dir.path(), &sim.spec);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["outcome"], "approved", "{v}");
    assert_eq!(v["presentations"], 2, "{v}");
}

#[test]
fn a_silent_reader_ends_with_no_answer_within_the_card_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let sim = ReaderSim::start("visa", &["no-answer:20000"]);
    let t = std::time::Instant::now();
    let (code, v) = pay(dir.path(), &sim.spec);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["outcome"], "card_error", "{v}");
    assert_eq!(v["error"]["code"], "no_answer", "{v}");
    // The card timeout (2.5 s) plus one last re-initialisation attempt.
    assert!(t.elapsed().as_secs() < 10, "{:?}", t.elapsed());
}

#[test]
fn a_missing_device_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let o = kassa(
        dir.path(),
        &[
            "pay",
            "--amount",
            "1.00",
            "--reader",
            "pn532-uart:/dev/ttyKASSA-missing",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no_reader"), "{err}");
    assert!(
        err.contains("/dev/ttyKASSA-missing does not exist"),
        "{err}"
    );
    let o = kassa(
        dir.path(),
        &["pay", "--amount", "1.00", "--reader", "nfc:x"],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn readers_lists_and_probes() {
    let dir = tempfile::tempdir().unwrap();
    let o = kassa(dir.path(), &["readers", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["configured"], "sim");
    assert!(
        v["features"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "pn532-uart")
    );
    assert!(v["readers"].is_array());
    let sim = ReaderSim::start("visa", &[]);
    let o = kassa(dir.path(), &["readers", "--json", "--probe", &sim.spec]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["firmware"], "PN532 v1.6");
    drop(sim);
    let o = kassa(
        dir.path(),
        &[
            "readers",
            "--json",
            "--probe",
            "pn532-uart:/dev/ttyKASSA-missing",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["reason"], "no_reader");
}
