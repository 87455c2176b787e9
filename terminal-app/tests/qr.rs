//! QR payments end to end through the `kassa` binary in emulator mode: the dynamic EMVCo code
//! for the amount, the host simulator over mutual TLS, the simulated wallet, the journal on
//! disk and the receipt; a payment whose status never came, resolved by a later sync; the
//! customer's own code.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn kassa(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kassa"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("KASSA_CONFIG", data.join("kassa.toml"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .output()
        .expect("kassa runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stdout)))
}

/// Quick timeouts: the host answers in 1 s or not at all, the customer has 5 s.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kassa.toml"),
        "[acquirer]\nresponse_timeout_ms = 1000\n[qr]\npoll_ms = 250\ntimeout_s = 5\n\
         alt_language = \"ZH\"\nalt_name = \"卡萨演示店\"\nalt_city = \"柏林\"\n",
    )
    .unwrap();
    dir
}

#[test]
fn dynamic_qr_sale_paid_by_the_wallet_is_receipted_and_journaled() {
    let dir = setup();
    let o = kassa(dir.path(), &["pay", "--amount", "12.34", "--qr", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j = json(&o);
    assert_eq!(j["outcome"], "approved");
    assert_eq!(j["host"]["response_code"], "00");
    assert_eq!(j["card"], Value::Null);
    let qr = &j["qr"];
    assert_eq!(qr["mode"], "merchant_presented");
    assert_eq!(qr["wallet"], "UnionPay");
    assert!(qr["status_checks"].as_u64().unwrap() >= 1);
    let reference = qr["reference"].as_str().unwrap();
    assert_eq!(reference.len(), 21);
    assert!(reference.starts_with("KKASSA001"));
    // The code on the screen: a valid EMVCo payload for this amount and reference, with the
    // merchant's name in Chinese.
    let payload = qr["payload"].as_str().unwrap();
    let d = kassa(dir.path(), &["tool", "qr", "decode", payload, "--json"]);
    assert_eq!(d.status.code(), Some(0));
    let d = json(&d);
    assert_eq!(d["initiation"], "dynamic");
    assert_eq!(d["amount"], "12.34");
    assert_eq!(d["currency_alpha"], "EUR");
    assert_eq!(d["reference"], reference);
    let field = |tag: &str| {
        d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["tag"] == tag)
            .map(|f| f["value"].as_str().unwrap().to_string())
    };
    assert_eq!(field("26.00").as_deref(), Some("A000000333010101"));
    assert_eq!(field("64.01").as_deref(), Some("卡萨演示店"));
    assert_eq!(field("58").as_deref(), Some("DE"));
    // Receipt: the wallet, the reference and the host's approval.
    let receipt = j["receipt"].as_str().unwrap();
    assert!(receipt.contains("QR PAYMENT"), "{receipt}");
    assert!(receipt.contains("UnionPay"), "{receipt}");
    assert!(receipt.contains(reference), "{receipt}");
    assert!(receipt.contains("APPROVED"), "{receipt}");
    assert!(receipt.contains(j["transaction"]["auth_code"].as_str().unwrap()));
    // Journal: approved, with the reference and the wallet.
    let id = j["journal"]["id"].as_i64().unwrap().to_string();
    let row = json(&kassa(dir.path(), &["journal", "show", &id, "--json"]));
    assert_eq!(row["state"], "approved");
    assert_eq!(row["qr_ref"], reference);
    assert_eq!(row["scheme"], "UnionPay");
    assert_eq!(row["amount_minor"], 1234);
    assert!(
        row["history"]
            .as_str()
            .unwrap()
            .contains("authorising qr mp")
    );
}

#[test]
fn rejected_and_abandoned_qr_payments() {
    let dir = setup();
    let o = kassa(
        dir.path(),
        &[
            "pay", "--amount", "3.00", "--qr", "--wallet", "reject", "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j = json(&o);
    assert_eq!(j["outcome"], "declined");
    assert_eq!(j["reason"], "qr_declined_05");
    // The customer walks away: after [qr] timeout_s the order is cancelled at the host.
    let o = kassa(
        dir.path(),
        &[
            "pay", "--amount", "4.00", "--qr", "--wallet", "ignore", "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j = json(&o);
    assert_eq!(j["outcome"], "cancelled");
    assert_eq!(j["reason"], "qr_timeout");
    assert!(j["qr"]["status_checks"].as_u64().unwrap() >= 3);
    assert_eq!(j["journal"]["state"], "cancelled");
    // The host's ledger (kept in the data directory) has the order reversed.
    let ledger = std::fs::read_to_string(dir.path().join("host-ledger.json")).unwrap();
    let ledger: Value = serde_json::from_str(&ledger).unwrap();
    let order = ledger
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["qr_reference"] == j["qr"]["reference"] && e["mti"] == 200)
        .unwrap();
    assert_eq!(order["status"], "reversed");
}

#[test]
fn a_qr_payment_whose_status_never_came_is_resolved_by_a_later_sync() {
    let dir = setup();
    // The host registers the order, the wallet pays, then the host goes quiet: status
    // requests and the cancel get no answer.
    let rules = dir.path().join("quiet.toml");
    std::fs::write(
        &rules,
        "[[rules]]\nmti = \"0600\"\naction = \"silent\"\n[[rules]]\nmti = \"0400\"\naction = \"silent\"\n",
    )
    .unwrap();
    let o = kassa(
        dir.path(),
        &[
            "pay",
            "--amount",
            "7.50",
            "--qr",
            "--json",
            "--host-rules",
            rules.to_str().unwrap(),
        ],
    );
    // Never approved by guess: unknown, exit 3 (the host did not answer).
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let j = json(&o);
    assert_eq!(j["outcome"], "unknown");
    assert_eq!(j["error"]["code"], "qr_status_unknown");
    assert_eq!(j["journal"]["state"], "unknown");
    assert!(j["receipt"].as_str().unwrap().contains("RESULT UNKNOWN"));
    let id = j["journal"]["id"].as_i64().unwrap().to_string();
    // Later, the host answers again: the status check finds it paid.
    let s = kassa(dir.path(), &["sync", "--json"]);
    assert_eq!(s.status.code(), Some(0), "{}", text(&s.stderr));
    let s = json(&s);
    assert_eq!(s["qr"]["resolved"], 1);
    assert_eq!(s["qr"]["approved"], 1);
    assert_eq!(s["qr"]["unknown"], 0);
    let row = json(&kassa(dir.path(), &["journal", "show", &id, "--json"]));
    assert_eq!(row["state"], "approved");
    assert_eq!(row["response_code"], "00");
    assert!(row["auth_code"].as_str().is_some_and(|a| a.len() == 6));
    // The reprint says what is now known.
    let r = kassa(dir.path(), &["journal", "reprint", &id]);
    let receipt = text(&r.stdout);
    assert!(receipt.contains("APPROVED"), "{receipt}");
    assert!(!receipt.contains("RESULT UNKNOWN"), "{receipt}");
    // Nothing left to ask.
    let s = json(&kassa(dir.path(), &["sync", "--json"]));
    assert_eq!(s["qr"]["resolved"], 0);
}

#[test]
fn the_customers_code_is_paid_by_format_and_never_shown() {
    let dir = setup();
    let code = "281234567890123456";
    let o = kassa(
        dir.path(),
        &["pay", "--amount", "9.99", "--qr-code", code, "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(!text(&o.stdout).contains(code));
    assert!(!text(&o.stderr).contains(code));
    let j = json(&o);
    assert_eq!(j["outcome"], "approved");
    assert_eq!(j["qr"]["mode"], "consumer_presented");
    assert_eq!(j["qr"]["wallet"], "Alipay");
    assert_eq!(j["qr"]["payload"], Value::Null);
    // The journal on disk never holds the code in the clear.
    let db = std::fs::read(dir.path().join("journal.db")).unwrap();
    assert!(!db.windows(code.len()).any(|w| w == code.as_bytes()));
    // A scanner's noise is declined by the host, not approved.
    let o = kassa(
        dir.path(),
        &[
            "pay",
            "--amount",
            "9.99",
            "--qr-code",
            "%%noise%%",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j = json(&o);
    assert_eq!(j["outcome"], "declined");
    assert_eq!(j["reason"], "qr_declined_14");
    // Control characters are not a code at all.
    let o = kassa(
        dir.path(),
        &["pay", "--amount", "9.99", "--qr-code", "12\u{7}34"],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[tokio::test]
async fn the_customers_code_from_a_serial_scanner() {
    let dir = setup();
    let scanner = sim::scanner::ScannerPty::spawn().unwrap();
    let path = scanner.path.to_str().unwrap().to_string();
    let run = |args: Vec<String>| {
        let data = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            kassa(&data, &args)
        })
    };
    let args = |amount: &str| -> Vec<String> {
        [
            "pay",
            "--amount",
            amount,
            "--scan",
            "--scanner",
            &path,
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    // The customer shows their Alipay code; the scanner reads it once the terminal waits.
    let pay = run(args("5.00"));
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    scanner.handle.scan("281234567890123456");
    let o = pay.await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(!text(&o.stdout).contains("281234567890123456"));
    let j = json(&o);
    assert_eq!(j["outcome"], "approved");
    assert_eq!(j["qr"]["mode"], "consumer_presented");
    assert_eq!(j["qr"]["wallet"], "Alipay");
    // Noise on the line: no payment request at all, a card error with the reason.
    let pay = run(args("5.00"));
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    scanner.handle.send_raw(b"\x00\x13\xfe!\r\n");
    let o = pay.await.unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let j = json(&o);
    assert_eq!(j["outcome"], "card_error");
    assert_eq!(j["error"]["code"], "scanner_noise");
    assert_eq!(j["journal"]["state"], "card_error");
    // No scanner at all.
    let o = kassa(
        dir.path(),
        &[
            "pay",
            "--amount",
            "5.00",
            "--scan",
            "--scanner",
            "/dev/ttyNOPE9",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["error"]["code"], "no_scanner");
}
