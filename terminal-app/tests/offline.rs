//! Store-and-forward: with the host simulator stopped, offline-capable sales are approved and
//! stored; when it is started again, their advices arrive exactly once. And a scan of the
//! journal, the logs and the traces for the test PANs in clear.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn offline_approvals_are_forwarded_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path());
    let ledger_file = dir.path().join("ledger.json");
    let host = Host::start(&certs, &ledger_file, "127.0.0.1:0", None);
    let data = dir.path().join("taxi");
    // A taxi: store-and-forward on by default; at most 3 offline approvals of at most 40.00.
    let extra = "[terminal]\nmode = \"taxi\"\n[offline]\nmax_amount = \"40.00\"\nmax_count = 3\n";
    let cfg = config(dir.path(), &certs, &host.addr, extra);
    let online = kassa_json(&data, &cfg, &["pay", "--card", "visa", "--amount", "18.00"]);
    assert_eq!(online["outcome"], "approved");
    assert!(online["transaction"]["offline"].is_null());

    // Into the dead zone.
    host.stop();
    let mut offline_ids = Vec::new();
    for (card, fare) in [
        ("visa", "20.00"),
        ("mastercard", "30.00"),
        ("visa-ja", "12.00"),
    ] {
        let j = kassa_json(
            &data,
            &cfg,
            &["pay", "--card", card, "--amount", fare, "--tip", "10%"],
        );
        assert_eq!(j["outcome"], "approved", "{j}");
        assert_eq!(j["transaction"]["offline"], "Y3");
        assert_eq!(j["journal"]["state"], "offline_approved");
        assert_eq!(j["journal"]["advice"], "pending");
        assert!(
            j["transaction"]["auth_code"]
                .as_str()
                .unwrap()
                .starts_with("Y3")
        );
        // The customer receipt speaks the cardholder's language.
        let receipt = j["receipt"].as_str().unwrap();
        let offline_words = if card == "visa-ja" {
            "オフライン承認"
        } else {
            "APPROVED OFFLINE"
        };
        assert!(receipt.contains(offline_words), "{receipt}");
        offline_ids.push(j["journal"]["id"].as_i64().unwrap());
    }
    // The caps hold: a fourth offline approval, a fare over 40.00, and any refund are refused
    // (host unreachable, exit 3, nothing approved).
    for args in [
        vec!["pay", "--card", "visa", "--amount", "5.00"],
        vec!["pay", "--card", "visa", "--amount", "45.00"],
    ] {
        let o = kassa(&data, &cfg, &args);
        assert_eq!(o.status.code(), Some(3), "{args:?}");
    }
    let o = kassa(
        &data,
        &cfg,
        &[
            "pay",
            "--card",
            "visa",
            "--amount",
            "5.00",
            "--type",
            "refund",
            "--original",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("offline_not_for_refund"));
    // The operator sees the queue.
    let queue = kassa_json(&data, &cfg, &["journal", "queue"]);
    let queued: Vec<i64> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_i64().unwrap())
        .collect();
    assert_eq!(queued, offline_ids);
    assert!(
        queue
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["owed"] == "advice")
    );
    // Sync with the host still down: nothing is lost, exit 3.
    assert_eq!(kassa(&data, &cfg, &["sync"]).status.code(), Some(3));

    // Back in coverage: the simulator restarts with its ledger; the advices go once.
    let host = Host::start(&certs, &ledger_file, "127.0.0.1:0", None);
    let cfg = config(dir.path(), &certs, &host.addr, extra);
    let s = kassa_json(&data, &cfg, &["sync"]);
    assert_eq!(s["advices"]["acknowledged"], 3, "{s}");
    assert_eq!(s["advices"]["pending"], 0);
    let again = kassa_json(&data, &cfg, &["sync"]);
    assert_eq!(again["advices"]["acknowledged"], 0, "nothing sent twice");
    assert_eq!(
        kassa_json(&data, &cfg, &["journal", "queue"]),
        serde_json::json!([])
    );
    let ledger = ledger(&ledger_file);
    let rows = journal(&data, &cfg);
    for id in &offline_ids {
        let row = rows.iter().find(|r| r["id"] == *id).unwrap();
        let stan = format!("{:06}", row["stan"].as_u64().unwrap());
        let advices: Vec<_> = ledger
            .iter()
            .filter(|e| e["stan"] == stan.as_str() && matches!(e["mti"].as_u64(), Some(220 | 221)))
            .collect();
        assert_eq!(
            advices.len(),
            1,
            "advice of row {id} arrived once: {advices:?}"
        );
        assert_eq!(advices[0]["amount_minor"], row["amount_minor"]);
        assert_eq!(row["advice"], "done");
        let (tip, total) = (
            row["tip_minor"].as_u64().unwrap(),
            row["amount_minor"].as_u64().unwrap(),
        );
        assert_eq!(tip * 10, total - tip, "a 10% tip on the fare");
    }
    assert_agree(&rows, &ledger);
    let z = kassa_json(&data, &cfg, &["report", "z"]);
    assert_eq!(z["closed"], true, "{z}");
    assert_eq!(z["sales"]["count"], 4);
    assert_eq!(z["sales"]["amount_minor"], 1800 + 2200 + 3300 + 1320);
    assert_eq!(z["tips"]["amount_minor"], 200 + 300 + 120);
    host.stop();
}

/// The decimal digits of every built-in test card's PAN.
fn test_pans() -> Vec<String> {
    sim::builtin_profiles()
        .iter()
        .map(|p| p.card.pan.clone())
        .collect()
}

/// True when `hay` holds `pan` as text or as packed BCD (how EMV and ISO 8583 carry it).
fn holds_pan(hay: &[u8], pan: &str) -> bool {
    let text = pan.as_bytes();
    let mut bcd: Vec<u8> = pan
        .as_bytes()
        .chunks(2)
        .map(|c| ((c[0] - b'0') << 4) | c.get(1).map(|d| d - b'0').unwrap_or(0xF))
        .collect();
    if pan.len() % 2 == 1 {
        bcd.pop();
    }
    hay.windows(text.len()).any(|w| w == text) || hay.windows(bcd.len()).any(|w| w == bcd)
}

fn scan(path: &Path, pans: &[String], found: &mut Vec<String>) {
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            scan(&e.unwrap().path(), pans, found);
        }
        return;
    }
    let bytes = std::fs::read(path).unwrap();
    for pan in pans {
        if holds_pan(&bytes, pan) {
            found.push(format!("{} holds {pan}", path.display()));
        }
    }
}

#[test]
fn no_test_pan_in_clear_in_journal_logs_or_traces() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    let traces = dir.path().join("traces");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(&traces).unwrap();
    let cfg = dir.path().join("kassa.toml");
    // A short answer limit for the silent host. Taxi mode with a floor limit: online approvals, offline approvals with advices owed,
    // and (with the host down) store-and-forward, so every kind of sealed record is on disk.
    std::fs::write(
        &cfg,
        "[terminal]\nmode = \"taxi\"\n[acquirer]\nresponse_timeout_ms = 2000\n\
         [[aids]]\naid = \"A0000000031010\"\nkernel = 3\nfloor_limit = \"20.00\"\n\
         [[aids]]\naid = \"A0000003330101\"\nkernel = 7\nttq = \"22004080\"\n\
         [[aids]]\naid = \"A0000000041010\"\nkernel = 2\n\
         [[aids]]\naid = \"A00000002501\"\nkernel = 4\n\
         [[aids]]\naid = \"A0000000651010\"\nkernel = 5\n\
         [[aids]]\naid = \"A0000001523010\"\nkernel = 6\nttq = \"22004000\"\n",
    )
    .unwrap();
    let mut n = 0;
    let mut run = |args: &[&str]| {
        n += 1;
        let o = Command::new(KASSA)
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&cfg)
            .arg("-vv")
            .args(args)
            .env("KASSA_LOG", "debug")
            .output()
            .unwrap();
        let mut log = o.stderr.clone();
        log.extend_from_slice(&o.stdout);
        std::fs::write(logs.join(format!("{n}.log")), log).unwrap();
        o
    };
    for card in sim::builtin_profiles().iter().map(|p| p.name.clone()) {
        let t = traces.join(format!("{card}.trace"));
        run(&[
            "pay",
            "--card",
            &card,
            "--amount",
            "25.00",
            "--trace",
            t.to_str().unwrap(),
        ]);
    }
    // Offline approvals by the card (owed advices), store-and-forward with the host down,
    // pending reversals from a silent host, a pre-authorization kept for its completion.
    let state = |o: std::process::Output| -> String {
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        j["journal"]["state"].as_str().unwrap().to_string()
    };
    assert_eq!(
        state(run(&[
            "pay",
            "--card",
            "visa-offline",
            "--amount",
            "5.00",
            "--json"
        ])),
        "offline_approved"
    );
    assert_eq!(
        state(run(&[
            "pay",
            "--card",
            "visa",
            "--amount",
            "30.00",
            "--fault",
            "host-down",
            "--json",
        ])),
        "offline_approved"
    );
    assert_eq!(
        state(run(&[
            "pay",
            "--card",
            "visa",
            "--amount",
            "31.00",
            "--fault",
            "host-silent",
            "--json",
        ])),
        "reversal_pending"
    );
    assert_eq!(
        state(run(&[
            "pay", "--card", "visa", "--amount", "80.00", "--type", "preauth", "--json",
        ])),
        "approved"
    );
    run(&["journal", "list", "--json"]);
    run(&["journal", "export", "--csv"]);
    run(&["journal", "queue"]);
    run(&["report", "x", "--json"]);
    for id in 1..=5 {
        run(&["journal", "show", &id.to_string()]);
    }
    let pans = test_pans();
    assert!(pans.len() >= 20);
    // The scan itself must find a PAN where there is one.
    assert!(holds_pan(b"xx4761739001010119yy", "4761739001010119"));
    assert!(holds_pan(
        &[0x5A, 0x08, 0x47, 0x61, 0x73, 0x90, 0x01, 0x01, 0x01, 0x19],
        "4761739001010119"
    ));
    let mut found = Vec::new();
    scan(&data, &pans, &mut found);
    scan(&logs, &pans, &mut found);
    scan(&traces, &pans, &mut found);
    assert!(
        found.is_empty(),
        "card numbers in clear:\n{}",
        found.join("\n")
    );
    // The sealed records really are there (the scan looked at something).
    let wal_or_db = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("journal.db"))
        .count();
    assert!(wal_or_db >= 1);
    assert!(std::fs::read_dir(&traces).unwrap().count() >= 20);
    // Every scheme's card was read (masked PANs of all six in the journal).
    let list = run(&["journal", "list", "--limit", "1000", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    for scheme in ["visa", "mastercard", "amex", "jcb", "discover", "unionpay"] {
        assert!(
            rows.as_array()
                .unwrap()
                .iter()
                .any(|r| r["scheme"] == scheme),
            "no {scheme} card read"
        );
    }
}
