//! Online PIN end to end: the virtual UnionPay debit card above the CVM limit asks for a PIN,
//! the cardholder types it (on stdin, `--card-pin-stdin`), the terminal enciphers it as an
//! ISO 9564 format 4 block under the next AES DUKPT key, and the host simulator derives the
//! same key from its BDK and checks it against the card: right PIN approved, wrong PIN 55,
//! cancel ends the transaction with nothing sent. Each `kassa` run is its own process, so the
//! KSNs the host saw prove the counter survives restarts.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const KASSA: &str = env!("CARGO_BIN_EXE_kassa");

/// `kassa --data-dir DATA ARGS...` with piped standard streams and no inherited config.
fn kassa_cmd(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(KASSA);
    c.arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("KASSA_CONFIG")
        .env_remove("KASSA_TEST_PAUSE_AT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs `kassa` with `stdin` as its whole input.
fn kassa(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = kassa_cmd(data, args).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The arguments of a UnionPay debit sale of 300.00 (over the 50.00 CVM limit) whose PIN
/// comes from stdin.
const PIN_SALE: [&str; 7] = [
    "pay",
    "--json",
    "--card",
    "unionpay-debit",
    "--amount",
    "300.00",
    "--card-pin-stdin",
];

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// A PIN sale, the cardholder typing `pin_line`.
fn pay_with_pin(data: &Path, pin_line: &str) -> (Option<i32>, Value, String) {
    let o = kassa(data, &PIN_SALE, pin_line);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    (o.status.code(), json(&o), stderr)
}

fn ledger(data: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(data.join("host-ledger.json")).unwrap_or("[]".into());
    serde_json::from_str(&text).unwrap()
}

#[test]
fn right_pin_approved_wrong_pin_55_cancel_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let o = kassa(data, &["keys", "load", "--test", "--json"], "");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(json(&o)["initial_key_id"], "4B41535341000001");

    // The right PIN.
    let (code, j, err) = pay_with_pin(data, "2468\n");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(j["outcome"], "approved", "{j:#}");
    assert_eq!(j["card"]["cvm"], "online_pin");
    assert_eq!(j["card"]["scheme"], "unionpay");
    assert_eq!(j["host"]["response_code"], "00");
    // The receipt, in the card's language (5F2D "zh"), says how the cardholder was verified.
    assert!(
        j["receipt"].as_str().unwrap().contains("密码已联机验证"),
        "{}",
        j["receipt"]
    );

    // A wrong PIN: the issuer answers 55.
    let (code, j, err) = pay_with_pin(data, "1357\n");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(j["outcome"], "declined");
    assert_eq!(j["host"]["response_code"], "55");

    // Cancel (an empty line): nothing goes to the host, the journal says why.
    let before = ledger(data).len();
    let (code, j, err) = pay_with_pin(data, "\n");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(j["outcome"], "cancelled");
    assert_eq!(j["reason"], "pin_cancelled");
    assert_eq!(ledger(data).len(), before);
    let id = j["journal"]["id"].as_i64().unwrap();
    let row = json(&kassa(
        data,
        &["journal", "show", &id.to_string(), "--json"],
        "",
    ));
    assert_eq!(row["state"], "cancelled");
    assert_eq!(row["reason"], "pin_cancelled");

    // Not a PIN (three digits): a defined end, nothing sent.
    let (_, j, _) = pay_with_pin(data, "123\n");
    assert_eq!(j["outcome"], "cancelled");
    assert_eq!(j["reason"], "pin_invalid");
    assert_eq!(ledger(data).len(), before);

    // Right again after a wrong one: approved (the count of wrong PINs starts over).
    let (_, j, _) = pay_with_pin(data, "2468\n");
    assert_eq!(j["outcome"], "approved");

    // Every PIN the host saw came under its own KSN, across four processes; the host
    // verified the right ones; and the terminal's counter says how many were used.
    let all = ledger(data);
    let entries: Vec<&Value> = all.iter().filter(|e| e["pin_ksn"].is_string()).collect();
    let ksns: Vec<&str> = entries
        .iter()
        .map(|e| e["pin_ksn"].as_str().unwrap())
        .collect();
    assert_eq!(
        ksns,
        [
            "4B4153534100000100000001",
            "4B4153534100000100000002",
            "4B4153534100000100000003"
        ]
    );
    let verified: Vec<Value> = entries.iter().map(|e| e["pin_verified"].clone()).collect();
    assert_eq!(
        verified,
        vec![Value::Bool(true), Value::Bool(false), Value::Bool(true)]
    );
    let status = json(&kassa(data, &["keys", "status", "--json"], ""));
    assert_eq!(status["counter"], 3);
    assert_eq!(status["next_ksn"], "4B4153534100000100000004");

    // No PIN and no full PAN in the ledger, the journal export or the JSON output.
    let export = kassa(data, &["journal", "export", "--json"], "");
    for text in [
        std::fs::read_to_string(data.join("host-ledger.json")).unwrap(),
        String::from_utf8_lossy(&export.stdout).into_owned(),
        j.to_string(),
    ] {
        assert!(!text.contains("6250946000000024"), "full PAN in {text}");
        assert!(!text.contains("2468"), "PIN in {text}");
    }
}

#[test]
fn without_a_pin_key_the_terminal_does_not_offer_online_pin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // No key loaded: TTQ byte 1 bit 3 stays clear, the card cannot have online PIN; this
    // debit card allows no other CVM above the limit.
    let (code, j, err) = pay_with_pin(data, "2468\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("no usable PIN key"), "{err}");
    assert_ne!(j["card"]["cvm"], "online_pin", "{j:#}");
    assert_ne!(j["outcome"], "approved", "{j:#}");
    assert!(ledger(data).iter().all(|e| e["pin_ksn"].is_null()));
    // Under the CVM limit no PIN is asked and none is needed.
    let o = kassa(
        data,
        &[
            "pay",
            "--json",
            "--card",
            "unionpay-debit",
            "--amount",
            "20.00",
        ],
        "",
    );
    let j = json(&o);
    assert_eq!(j["outcome"], "approved");
    assert_eq!(j["card"]["cvm"], "no_cvm");
}

#[test]
fn a_tdes_terminal_sends_format_0_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let o = kassa(data, &["keys", "load", "--test", "--tdes", "--json"], "");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = json(&o);
    assert_eq!(s["scheme"], "tdes");
    assert_eq!(s["next_ksn"], "FFFF4B41535341E00001");
    let (_, j, err) = pay_with_pin(data, "2468\n");
    assert_eq!(j["outcome"], "approved", "{j:#} {err}");
    let (_, j, _) = pay_with_pin(data, "8642\n");
    assert_eq!(j["host"]["response_code"], "55");
    let ksns: Vec<String> = ledger(data)
        .iter()
        .filter_map(|e| e["pin_ksn"].as_str().map(String::from))
        .collect();
    assert_eq!(ksns, ["FFFF4B41535341E00001", "FFFF4B41535341E00002"]);
}

#[test]
fn a_pin_never_typed_times_out_and_nothing_leaks_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let cfg = data.join("kassa.toml");
    std::fs::write(&cfg, "[ui]\npin_timeout_s = 5\n").unwrap();
    assert_eq!(
        kassa(data, &["keys", "load", "--test"], "").status.code(),
        Some(0)
    );
    // The cardholder never types: stdin stays open and silent.
    let mut args = vec!["--config", cfg.to_str().unwrap()];
    args.extend(PIN_SALE);
    let mut child = kassa_cmd(data, &args).spawn().unwrap();
    // Held open (not dropped) until kassa has ended by itself.
    let _stdin = child.stdin.take();
    let o = child.wait_with_output().unwrap();
    let j = json(&o);
    assert_eq!(j["outcome"], "cancelled", "{j:#}");
    assert_eq!(j["reason"], "pin_timeout");
    assert!(ledger(data).is_empty(), "nothing was sent");

    // A PIN sale with every log at trace level: no PIN, no full PAN, no key on stderr.
    let mut child = kassa_cmd(data, &PIN_SALE)
        .env("KASSA_LOG", "trace")
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"2468\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(json(&o)["outcome"], "approved");
    let logs = String::from_utf8_lossy(&o.stderr);
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "trace logs: {logs}"
    );
    for secret in [
        "2468",
        "6250946000000024",
        "FEDCBA9876543210",
        "fedcba9876543210",
    ] {
        assert!(!logs.contains(secret), "{secret} in the trace logs");
    }
}

#[test]
fn the_test_key_is_never_used_with_a_real_acquirer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let cfg = data.join("kassa.toml");
    // An acquirer outside the process (nobody listens on port 9 of loopback).
    std::fs::write(
        &cfg,
        "[acquirer]\nsimulator = false\naddress = \"127.0.0.1:9\"\n",
    )
    .unwrap();
    let o = kassa(data, &["keys", "load", "--test", "--json"], "");
    assert_eq!(json(&o)["test"], true);
    let mut args = vec!["--config", cfg.to_str().unwrap()];
    args.extend(PIN_SALE);
    let o = kassa(data, &args, "2468\n");
    let j = json(&o);
    // No PIN pad offered to the card: it cannot choose online PIN, and no PIN is asked.
    assert_ne!(j["card"]["cvm"], "online_pin", "{j:#}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("test key"), "{stderr}");
    let status = json(&kassa(data, &["keys", "status", "--json"], ""));
    assert_eq!(status["counter"], 0, "no KSN was spent");
}
