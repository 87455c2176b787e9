//! Every transaction type through `kassa` with virtual cards and the emulator's host simulator
//! (mutual TLS on loopback; its ledger kept in the data directory): sale, referenced and
//! supervisor-PIN refunds, void, pre-authorization and completion, tips, cancellation, and
//! the end-of-day close. Each refusal has its reason code in the journal.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

const KASSA: &str = env!("CARGO_BIN_EXE_kassa");

fn kassa_in(data: &Path, cfg: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(KASSA);
    c.arg("--data-dir").arg(data);
    if let Some(cfg) = cfg {
        c.arg("--config").arg(cfg);
    }
    c.args(args)
        .env_remove("KASSA_CONFIG")
        .env_remove("KASSA_TEST_PAUSE_AT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn pay(data: &Path, cfg: Option<&Path>, args: &[&str]) -> (Option<i32>, Value) {
    let mut a = vec!["pay", "--json"];
    a.extend_from_slice(args);
    let o = kassa_in(data, cfg, &a, None);
    (o.status.code(), json(&o))
}

fn row(data: &Path, id: i64) -> Value {
    json(&kassa_in(
        data,
        None,
        &["journal", "show", &id.to_string(), "--json"],
        None,
    ))
}

fn id_of(j: &Value) -> i64 {
    j["journal"]["id"].as_i64().unwrap()
}

#[test]
fn sale_refunds_void_and_end_of_day() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (code, sale) = pay(data, None, &["--card", "visa", "--amount", "40.00"]);
    assert_eq!(code, Some(0));
    assert_eq!(sale["outcome"], "approved");
    let sale_id = id_of(&sale);

    // A referenced refund: same card, at most what is left.
    let (_, r1) = pay(
        data,
        None,
        &[
            "--card",
            "visa",
            "--amount",
            "15.00",
            "--type",
            "refund",
            "--original",
            &sale_id.to_string(),
        ],
    );
    assert_eq!(r1["outcome"], "approved", "{r1}");
    assert_eq!(r1["transaction"]["original_id"], sale_id);
    let (code, r2) = pay(
        data,
        None,
        &[
            "--card",
            "visa",
            "--amount",
            "30.00",
            "--type",
            "refund",
            "--original",
            &sale_id.to_string(),
        ],
    );
    assert_eq!(code, Some(2));
    assert_eq!(r2["outcome"], "refused");
    assert_eq!(r2["error"]["code"], "refund_over_original");
    assert_eq!(row(data, id_of(&r2))["reason"], "refund_over_original");
    let (_, r3) = pay(
        data,
        None,
        &[
            "--card",
            "mastercard",
            "--amount",
            "5.00",
            "--type",
            "refund",
            "--original",
            &sale_id.to_string(),
        ],
    );
    assert_eq!(r3["error"]["code"], "refund_card_mismatch");
    assert_eq!(row(data, id_of(&r3))["state"], "refused");

    // A sale with refunds cannot be voided (the refund would be paid twice).
    let v = kassa_in(
        data,
        None,
        &["void", "--id", &sale_id.to_string(), "--json"],
        None,
    );
    assert_eq!(v.status.code(), Some(2));
    assert_eq!(json(&v)["error"]["code"], "refunded");
    // Unreferenced refunds need the supervisor PIN.
    let (code, r4) = pay(
        data,
        None,
        &["--card", "visa", "--amount", "5.00", "--type", "refund"],
    );
    assert_eq!(code, Some(2));
    assert_eq!(r4["error"]["code"], "supervisor_pin_not_set");
    let hash = kassa_in(data, None, &["tool", "pin-hash"], Some("2468\n"));
    assert_eq!(hash.status.code(), Some(0));
    let hash = String::from_utf8(hash.stdout).unwrap();
    assert!(hash.starts_with("pbkdf2-sha256$"), "{hash}");
    assert!(!hash.contains("2468"));
    let cfg = data.join("pin.toml");
    std::fs::write(
        &cfg,
        format!("[operator]\nsupervisor_pin = \"{}\"\n", hash.trim()),
    )
    .unwrap();
    let refund = |pin: &str| {
        let o = kassa_in(
            data,
            Some(&cfg),
            &[
                "pay",
                "--json",
                "--card",
                "visa",
                "--amount",
                "5.00",
                "--type",
                "refund",
                "--pin-stdin",
            ],
            Some(&format!("{pin}\n")),
        );
        json(&o)
    };
    let ok = refund("2468");
    assert_eq!(ok["outcome"], "approved", "{ok}");
    assert_eq!(refund("1111")["error"]["code"], "supervisor_pin_wrong");
    assert_eq!(refund("1111")["error"]["code"], "supervisor_pin_wrong");
    let locked = refund("1111");
    assert_eq!(locked["error"]["code"], "operator_locked");
    assert_eq!(row(data, id_of(&locked))["reason"], "operator_locked");
    // Locked: even the right PIN is refused now, and the lock survives a restart.
    assert_eq!(refund("2468")["error"]["code"], "operator_locked");

    // Void the last transaction (the PIN refund), then a chosen one.
    let (_, extra) = pay(data, None, &["--card", "visa", "--amount", "9.00"]);
    let v = json(&kassa_in(data, None, &["void", "--json"], None));
    assert_eq!(v["outcome"], "voided");
    assert_eq!(v["id"], id_of(&extra));
    let v = json(&kassa_in(
        data,
        None,
        &["void", "--id", &id_of(&ok).to_string(), "--json"],
        None,
    ));
    assert_eq!(v["outcome"], "voided", "{v}");
    let again = kassa_in(
        data,
        None,
        &["void", "--id", &id_of(&ok).to_string(), "--json"],
        None,
    );
    assert_eq!(again.status.code(), Some(2));
    assert_eq!(json(&again)["error"]["code"], "already_voided");

    // X report: 40.00 sold, 15.00 refunded, 9.00 and the 5.00 refund voided.
    let x = json(&kassa_in(data, None, &["report", "x", "--json"], None));
    assert_eq!(x["sales"]["amount_minor"], 4000);
    assert_eq!(x["refunds"]["amount_minor"], 1500);
    assert_eq!(x["voided"]["amount_minor"], 900 + 500);
    assert_eq!(x["net_minor"], 2500);
    assert_eq!(x["by_scheme"]["visa/sale"]["count"], 1);
    // Z: the host agrees, the batch closes; its transactions can no longer be voided.
    let z = kassa_in(data, None, &["report", "z", "--json"], None);
    assert_eq!(
        z.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&z.stderr)
    );
    let z = json(&z);
    assert_eq!(z["closed"], true);
    assert_eq!(z["response_code"], "00");
    let settled = kassa_in(
        data,
        None,
        &["void", "--id", &sale_id.to_string(), "--json"],
        None,
    );
    assert_eq!(settled.status.code(), Some(2));
    assert_eq!(json(&settled)["error"]["code"], "settled");
    let x = json(&kassa_in(data, None, &["report", "x", "--json"], None));
    assert_eq!(x["batch"], 2);
    assert_eq!(x["sales"]["count"], 0);
    // The export has every row, masked.
    let csv = kassa_in(data, None, &["journal", "export", "--csv"], None);
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(csv.starts_with("id,created_at,type,amount_minor"));
    assert!(csv.contains("476173******0119"));
    assert!(!csv.contains("4761739001010119"));
    assert!(csv.lines().count() > 10);
}

#[test]
fn preauthorization_and_completion() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (_, pre) = pay(
        data,
        None,
        &[
            "--card",
            "mastercard",
            "--amount",
            "100.00",
            "--type",
            "preauth",
        ],
    );
    assert_eq!(pre["outcome"], "approved", "{pre}");
    assert_eq!(pre["transaction"]["type"], "preauth");
    let pre_id = id_of(&pre).to_string();
    let complete = |amount: &str| {
        let o = kassa_in(
            data,
            None,
            &["complete", "--id", &pre_id, "--amount", amount, "--json"],
            None,
        );
        (o.status.code(), json(&o))
    };
    // 15% tolerance by default: 115.01 is too much.
    let (code, over) = complete("115.01");
    assert_eq!(code, Some(2));
    assert_eq!(over["error"]["code"], "completion_over_preauth");
    let (code, done) = complete("112.00");
    assert_eq!(code, Some(0), "{done}");
    assert_eq!(done["outcome"], "approved");
    assert_eq!(done["transaction"]["type"], "completion");
    assert_eq!(done["transaction"]["original_id"], id_of(&pre));
    assert_eq!(done["host"]["response_code"], "00");
    assert_eq!(done["journal"]["advice"], "done");
    assert_eq!(done["card"], Value::Null, "no card at a completion");
    let (_, twice) = complete("50.00");
    assert_eq!(twice["error"]["code"], "already_completed");
    let v = kassa_in(data, None, &["void", "--id", &pre_id, "--json"], None);
    assert_eq!(json(&v)["error"]["code"], "preauth_completed");
    // The host released the hold and charged the completion.
    let ledger: Value =
        serde_json::from_slice(&std::fs::read(data.join("host-ledger.json")).unwrap()).unwrap();
    let held = ledger
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["preauth"] == true)
        .unwrap();
    assert_eq!(held["completed"], true);
    let z = json(&kassa_in(data, None, &["report", "z", "--json"], None));
    assert_eq!(z["closed"], true, "{z}");
    assert_eq!(z["completions"]["amount_minor"], 11200);
    assert_eq!(z["sales"]["amount_minor"], 0);

    // A card that would approve a pre-authorization offline (under a floor limit) is not
    // accepted: a pre-authorization must hold funds at the issuer.
    let floor = data.join("floor.toml");
    std::fs::write(
        &floor,
        "[[aids]]\naid = \"A0000000031010\"\nkernel = 3\nfloor_limit = \"20.00\"\n",
    )
    .unwrap();
    let (_, off) = pay(
        data,
        Some(&floor),
        &[
            "--card",
            "visa-offline",
            "--amount",
            "5.00",
            "--type",
            "preauth",
        ],
    );
    assert_eq!(off["outcome"], "declined", "{off}");
    assert_eq!(off["reason"], "offline_not_for_preauth");
    assert_eq!(off["journal"]["advice"], "none");

    // A second pre-authorization, voided before completion: the hold is released.
    let (_, pre2) = pay(
        data,
        None,
        &["--card", "visa", "--amount", "60.00", "--type", "preauth"],
    );
    // Open in the new batch (the first batch was closed by the Z above): the X report counts it.
    let x = json(&kassa_in(data, None, &["report", "x", "--json"], None));
    assert_eq!(x["open_preauths"]["count"], 1);
    assert_eq!(x["open_preauths"]["amount_minor"], 6000);
    let v = json(&kassa_in(
        data,
        None,
        &["void", "--id", &id_of(&pre2).to_string(), "--json"],
        None,
    ));
    assert_eq!(v["outcome"], "voided");
    let (code, late) = {
        let o = kassa_in(
            data,
            None,
            &[
                "complete",
                "--id",
                &id_of(&pre2).to_string(),
                "--amount",
                "60.00",
                "--json",
            ],
            None,
        );
        (o.status.code(), json(&o))
    };
    assert_eq!(code, Some(2));
    assert_eq!(late["error"]["code"], "not_completable");
}

#[test]
fn taxi_tips() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (code, j) = pay(
        data,
        None,
        &["--card", "visa", "--amount", "20.00", "--tip", "10%"],
    );
    assert_eq!(code, Some(2));
    assert_eq!(j["error"]["code"], "tips_disabled");
    let cfg = data.join("taxi.toml");
    std::fs::write(&cfg, "[terminal]\nmode = \"taxi\"\n").unwrap();
    let (_, j) = pay(
        data,
        Some(&cfg),
        &["--card", "visa", "--amount", "23.40", "--tip", "15%"],
    );
    assert_eq!(j["outcome"], "approved");
    // 15% of 23.40 is 3.51.
    assert_eq!(j["transaction"]["tip_minor"], 351);
    assert_eq!(j["transaction"]["amount_minor"], 2340 + 351);
    let receipt = j["receipt"].as_str().unwrap();
    assert!(receipt.contains("FARE") && receipt.contains("3.51") && receipt.contains("26.91"));
    let (_, j) = pay(
        data,
        Some(&cfg),
        &["--card", "visa", "--amount", "10.00", "--tip", "2.50"],
    );
    assert_eq!(j["transaction"]["amount_minor"], 1250);
    let o = kassa_in(
        data,
        Some(&cfg),
        &[
            "pay", "--card", "visa", "--amount", "10.00", "--tip", "lots",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let x = json(&kassa_in(
        data,
        Some(&cfg),
        &["report", "x", "--json"],
        None,
    ));
    assert_eq!(x["tips"]["amount_minor"], 351 + 250);
}

/// Sends SIGINT (the operator's Ctrl-C) to a running `kassa pay` after `after`.
fn interrupt_after(mut cmd: Command, after: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    child.wait_with_output().unwrap()
}

#[test]
fn operator_cancels_while_waiting_for_the_card_and_while_authorising() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // Warm up (PKI created) so that the timings below are about the transaction.
    let (_, j) = pay(data, None, &["--card", "visa", "--amount", "1.00"]);
    assert_eq!(j["outcome"], "approved");
    let mut c = Command::new(KASSA);
    c.arg("--data-dir").arg(data).args([
        "pay",
        "--json",
        "--card",
        "visa",
        "--amount",
        "12.00",
        "--tap-delay-ms",
        "20000",
    ]);
    let o = interrupt_after(c, Duration::from_millis(1500));
    let j = json(&o);
    assert_eq!(j["outcome"], "cancelled", "{j}");
    assert_eq!(j["journal"]["state"], "cancelled");

    // The host takes 4 s to answer; the operator cancels after the request left: it is
    // reversed, and the host's ledger shows it reversed.
    let rules = data.join("slow.toml");
    std::fs::write(&rules, "[[rules]]\nmti = \"0100\"\ndelay_ms = 4000\n").unwrap();
    let mut c = Command::new(KASSA);
    c.arg("--data-dir").arg(data).args([
        "pay",
        "--json",
        "--card",
        "visa",
        "--amount",
        "13.00",
        "--host-rules",
        rules.to_str().unwrap(),
    ]);
    let o = interrupt_after(c, Duration::from_millis(2000));
    let j = json(&o);
    assert_eq!(j["outcome"], "cancelled", "{j}");
    assert_eq!(j["error"]["code"], "operator_cancelled");
    let r = row(data, id_of(&j));
    assert_eq!(r["state"], "reversed", "{r}");
    let stan = format!("{:06}", r["stan"].as_u64().unwrap());
    let ledger: Value =
        serde_json::from_slice(&std::fs::read(data.join("host-ledger.json")).unwrap()).unwrap();
    let entry = ledger
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["stan"] == stan.as_str() && e["mti"] == 100)
        .unwrap();
    assert_eq!(entry["status"], "reversed");
}
