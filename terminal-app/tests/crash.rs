//! The crash test: `kassa` is killed with SIGKILL at every engine state during a series of
//! transactions against a separate `kassa host-sim` (mutual TLS on loopback, ledger on disk),
//! restarted each time, and at the end the terminal's journal and the simulator's ledger
//! agree exactly: no approved sale lost, none charged twice, every timed-out authorization
//! reversed, and the batch closes in balance.

mod common;

use common::*;

#[test]
fn killed_at_every_step_the_money_still_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path());
    let ledger_file = dir.path().join("ledger.json");
    // The first request above 7000.00 gets no answer at all: a timeout to reverse.
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rules]]\nmti = \"0100\"\namount_above = 700000\naction = \"silent\"\nonce = true\n",
    )
    .unwrap();
    let host = Host::start(&certs, &ledger_file, "127.0.0.1:0", Some(&rules));
    let data = dir.path().join("terminal");
    // Floor limit 20.00 on Visa: the visa-offline card approves offline (an advice is owed).
    let cfg = config(
        dir.path(),
        &certs,
        &host.addr,
        "[terminal]\nmax_amount = \"10000.00\"\n\
         [[aids]]\naid = \"A0000000031010\"\nkernel = 3\nfloor_limit = \"20.00\"\ncontactless_limit = \"9000.00\"\n",
    );
    let pay = |amount: &str, point: Option<&str>| {
        let args = ["pay", "--card", "visa", "--amount", amount];
        match point {
            Some(p) => kill_at(&data, &cfg, &args, p),
            None => {
                let o = kassa(&data, &cfg, &args);
                assert_eq!(
                    o.status.code(),
                    Some(0),
                    "{}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
    };

    // Every engine state of a card transaction: amount taken, card read, request about to
    // leave, answer received but not recorded, approved but no receipt, receipt stored but
    // not printed.
    pay("21.00", Some("started"));
    pay("22.00", Some("card_read"));
    pay("23.00", Some("authorising"));
    pay("24.00", Some("answered"));
    pay("25.00", Some("approved"));
    pay("26.00", Some("receipt_stored"));
    // Restarted: the interrupted rows are recovered and the owed reversals go first.
    pay("27.00", None);
    let rows = journal(&data, &cfg);
    let by_amount = |a: u64| {
        rows.iter()
            .find(|r| r["amount_minor"] == a)
            .unwrap_or_else(|| panic!("no row of {a}"))
            .clone()
    };
    assert_eq!(by_amount(2100)["state"], "ended");
    assert_eq!(by_amount(2100)["reason"], "interrupted");
    assert_eq!(by_amount(2200)["state"], "ended");
    assert_eq!(by_amount(2300)["state"], "reversed");
    assert_eq!(
        by_amount(2400)["state"],
        "reversed",
        "approved at the host, reversed"
    );
    assert_eq!(by_amount(2500)["state"], "approved");
    assert_eq!(by_amount(2600)["state"], "approved");
    assert_eq!(by_amount(2700)["state"], "approved");

    // The receipts the crashes never printed can be reprinted.
    let sync = kassa_json(&data, &cfg, &["sync"]);
    let unprinted: Vec<i64> = sync["unprinted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let id25 = by_amount(2500)["id"].as_i64().unwrap();
    let id26 = by_amount(2600)["id"].as_i64().unwrap();
    assert_eq!(unprinted, vec![id25, id26]);
    for id in [id25, id26] {
        let o = kassa(&data, &cfg, &["journal", "reprint", &id.to_string()]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("DUPLICATE") && text.contains("APPROVED"),
            "{text}"
        );
    }
    assert_eq!(
        kassa_json(&data, &cfg, &["sync"])["unprinted"],
        serde_json::json!([])
    );

    // A reversal that reached the host, killed before the acknowledgement was recorded.
    pay("28.00", Some("answered"));
    kill_at(&data, &cfg, &["sync"], "reversal_sent");
    assert_eq!(kassa(&data, &cfg, &["sync"]).status.code(), Some(0));

    // An offline approval killed right after it was recorded, then its advice killed in
    // flight: the advice arrives exactly once.
    kill_at(
        &data,
        &cfg,
        &["pay", "--card", "visa-offline", "--amount", "5.00"],
        "offline_approved",
    );
    kill_at(&data, &cfg, &["sync"], "advice_sent");
    assert_eq!(kassa(&data, &cfg, &["sync"]).status.code(), Some(0));

    // A pre-authorization, its completion killed once queued, then forwarded.
    let pre = kassa_json(
        &data,
        &cfg,
        &[
            "pay", "--card", "visa", "--amount", "100.00", "--type", "preauth",
        ],
    );
    assert_eq!(pre["outcome"], "approved");
    let pre_id = pre["journal"]["id"].as_i64().unwrap().to_string();
    kill_at(
        &data,
        &cfg,
        &["complete", "--id", &pre_id, "--amount", "90.00"],
        "completion_queued",
    );
    assert_eq!(kassa(&data, &cfg, &["sync"]).status.code(), Some(0));

    // A void killed between arming its reversal and the host's acknowledgement.
    let sale = kassa_json(&data, &cfg, &["pay", "--card", "visa", "--amount", "30.00"]);
    let sale_id = sale["journal"]["id"].as_i64().unwrap().to_string();
    kill_at(&data, &cfg, &["void", "--id", &sale_id], "void_armed");
    // A referenced refund of the 27.00 sale, killed with the answer in flight.
    let id27 = by_amount(2700)["id"].as_i64().unwrap().to_string();
    kill_at(
        &data,
        &cfg,
        &[
            "pay",
            "--card",
            "visa",
            "--amount",
            "21.00",
            "--type",
            "refund",
            "--original",
            &id27,
        ],
        "answered",
    );
    // A request the host never answers: timeout, reversal pending, then reversed.
    let t = kassa_json(
        &data,
        &cfg,
        &["pay", "--card", "visa", "--amount", "7500.00"],
    );
    assert_eq!(t["outcome"], "reversal_pending");
    assert_eq!(kassa(&data, &cfg, &["sync"]).status.code(), Some(0));

    let rows = journal(&data, &cfg);
    let state_of = |id: &str| {
        rows.iter()
            .find(|r| r["id"].as_i64().unwrap().to_string() == id)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state_of(&sale_id), "voided");
    assert!(
        rows.iter()
            .any(|r| r["txn_type"] == "completion" && r["state"] == "approved"),
        "the completion went through"
    );
    assert!(
        rows.iter()
            .any(|r| r["amount_minor"] == 750000 && r["state"] == "reversed")
    );
    assert_agree(&rows, &ledger(&ledger_file));

    // End of day: the host's totals equal the terminal's.
    let z = kassa_json(&data, &cfg, &["report", "z"]);
    assert_eq!(z["response_code"], "00", "{z}");
    assert_eq!(z["closed"], true);
    // 25 + 26 + 27 approved online, 5.00 offline, 90.00 completed; the refund reversed.
    assert_eq!(z["sales"]["amount_minor"], 2500 + 2600 + 2700 + 500);
    assert_eq!(z["completions"]["amount_minor"], 9000);
    assert_eq!(z["refunds"]["amount_minor"], 0);
    host.stop();
}

/// A second process that opens the journal while a transaction is in flight (an operator's
/// `kassa journal list` while the payment screen authorises) must not "recover" the live row:
/// readers never recover, and a writer recovers only when it holds the journal's lock. A dead
/// process's lock is gone, so the next writer recovers its rows.
#[test]
fn a_reader_leaves_a_live_transaction_alone_and_recovers_a_dead_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("kassa.toml");
    std::fs::write(&cfg, "").unwrap();
    let mut live = pause_at(
        &data,
        &cfg,
        &["pay", "--card", "visa", "--amount", "5.00"],
        "authorising",
    );
    let state = || {
        let rows = journal(&data, &cfg);
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows[0]["state"].as_str().unwrap().to_string()
    };
    // While it is alive, readers see it in flight and leave it so.
    assert_eq!(state(), "authorising");
    assert_eq!(state(), "authorising");
    live.kill().unwrap();
    let _ = live.wait();
    // Dead: readers still show it as it was left; the next writer (here an X report)
    // recovers it (the request may have left: a reversal is owed).
    assert_eq!(state(), "authorising");
    let o = kassa(&data, &cfg, &["report", "x"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(state(), "reversal_pending");
}
