//! Receipts on a serial ESC/POS printer: `kassa pay` prints on the simulated printer over a
//! real pseudo-terminal pair; paper out leaves the transaction as it was, says so, and the
//! receipt is printed again from the journal once paper is loaded.

use std::path::Path;
use std::process::{Command, Output};

use drivers::escpos::{self, Encoding, Printed};
use serde_json::Value;
use sim::printer::PrinterPty;

const KASSA: &str = env!("CARGO_BIN_EXE_kassa");

fn kassa(dir: &Path, port: &Path, args: &[&str]) -> Output {
    let cfg = dir.join("kassa.toml");
    std::fs::write(
        &cfg,
        format!(
            "[ui]\nlanguage = \"zh_CN\"\n\n[printer]\nkind = \"serial\"\nport = \"{}\"\nbaud = 9600\npaper = 80\nencoding = \"gb18030\"\ne_receipt_url = \"https://receipts.example/r/{{reference}}\"\n",
            port.display()
        ),
    )
    .unwrap();
    Command::new(KASSA)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .output()
        .unwrap()
}

async fn run(dir: &Path, port: &Path, args: &[&str]) -> Output {
    let (dir, port) = (dir.to_path_buf(), port.to_path_buf());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        kassa(&dir, &port, &a)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_prints_on_the_serial_printer_and_survives_paper_out() {
    let dir = tempfile::tempdir().unwrap();
    let printer = PrinterPty::spawn().unwrap();
    // A UnionPay card: the customer copy in Chinese, on an 80 mm GB18030 printer.
    let o = run(
        dir.path(),
        &printer.path,
        &["pay", "--amount", "88.00", "--card", "unionpay", "--json"],
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcome"], "approved");
    assert_eq!(v["printer"]["printed"], true, "{v}");
    assert!(
        v["printer"]["device"]
            .as_str()
            .unwrap()
            .starts_with("serial:/dev/pts/")
    );
    let paper = escpos::decode(&printer.handle.printed(), Encoding::Gb18030).unwrap();
    let text = drivers::printer::text_of(&paper);
    for want in [
        "交易成功",
        "持卡人存根",
        "625094******0016",
        "EUR 88.00",
        "[QR https://receipts.example/r/KASSA001-001-000001]",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    assert_eq!(paper.last(), Some(&Printed::Cut));

    // Out of paper: the sale is approved all the same, the receipt waits in the journal.
    printer.handle.set_paper_out(true);
    let before = printer.handle.printed().len();
    let o = run(
        dir.path(),
        &printer.path,
        &["pay", "--amount", "5.00", "--card", "visa", "--json"],
    )
    .await;
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcome"], "approved");
    assert_eq!(v["printer"]["printed"], false);
    assert_eq!(v["printer"]["reason"], "paper_out");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("kassa journal reprint 2"), "{err}");
    assert_eq!(printer.handle.printed().len(), before);
    let o = run(
        dir.path(),
        &printer.path,
        &["journal", "show", "2", "--json"],
    )
    .await;
    let row: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(row["printed_at"].is_null(), "{row}");

    // Paper loaded: the reprint goes out, marked as a duplicate, and is recorded.
    printer.handle.set_paper_out(false);
    let o = run(dir.path(), &printer.path, &["journal", "reprint", "2"]).await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let paper = escpos::decode(&printer.handle.printed()[before..], Encoding::Gb18030).unwrap();
    let text = drivers::printer::text_of(&paper);
    // The mark in the merchant's language (zh_CN here).
    assert!(text.contains("*** 副本 ***"), "{text}");
    assert!(text.contains("476173******0119"), "{text}");
    let o = run(
        dir.path(),
        &printer.path,
        &["journal", "show", "2", "--json"],
    )
    .await;
    let row: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!row["printed_at"].is_null(), "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_printer_does_not_stop_the_sale() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        dir.path(),
        Path::new("/dev/ttyKASSA-no-printer"),
        &["pay", "--amount", "1.00", "--card", "visa", "--json"],
    )
    .await;
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outcome"], "approved");
    assert_eq!(v["printer"]["reason"], "printer_not_connected");
}
