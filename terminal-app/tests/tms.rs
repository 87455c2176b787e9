//! Terminal management end to end (issue 17), through the `kassa` binary: an operator key,
//! signed bundles, verification and refusal, and polling `kassa tms serve` over mutual TLS
//! with validators (the second poll transfers nothing).

mod common;

use std::path::Path;
use std::process::{Child, Command};

use common::{KASSA, certs};
use serde_json::Value;

use common::{json_of as json, kassa_with as kassa};

/// Writes payload `version` (a merchant name and a receipt header line of its own) and signs
/// it with `key` into `out`.
fn bundle(dir: &Path, key: &Path, id: &str, version: u64, out: &Path) -> Value {
    let payload = dir.join(format!("payload-{version}.toml"));
    std::fs::write(
        &payload,
        format!(
            "[bundle]\nversion = {version}\ncreated = \"2026-11-30T10:00:00Z\"\n\
             description = \"shop name v{version}\"\n\n[terminal]\nmerchant_name = \"Fleet Shop v{version}\"\n"
        ),
    )
    .unwrap();
    let o = kassa(
        dir,
        None,
        &[
            "tms",
            "sign",
            payload.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--id",
            id,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    json(&o)
}

struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start(folder: &Path, certs: &Path) -> Serve {
        let (child, addr) = common::spawn_announcing(Command::new(KASSA).args([
            "tms",
            "serve",
            folder.to_str().unwrap(),
            "--certs",
            certs.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--for-secs",
            "60",
        ]));
        Serve { child, addr }
    }

    /// Stops it (SIGINT would print the counters; the test reads them from the polls).
    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sign_verify_inspect_apply_and_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("terminal");
    let key = d.join("ops.key");
    let o = kassa(
        d,
        None,
        &[
            "tms",
            "keygen",
            "--out",
            key.to_str().unwrap(),
            "--id",
            "ops-2026",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let public = json(&o)["public_key"].as_str().unwrap().to_string();
    assert_eq!(public.len(), 64);
    // Never overwritten.
    let o = kassa(d, None, &["tms", "keygen", "--out", key.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let cfg = d.join("kassa.toml");
    std::fs::write(
        &cfg,
        format!("[terminal]\nmerchant_name = \"Local\"\n\n[[tms.keys]]\nid = \"ops-2026\"\npublic_key = \"{public}\"\n"),
    )
    .unwrap();
    let v2 = d.join("v2.bundle");
    assert_eq!(bundle(d, &key, "ops-2026", 2, &v2)["version"], 2);

    // Verify with the configured keys and with an explicit one; inspect without verifying.
    let o = kassa(
        &data,
        Some(&cfg),
        &["tms", "verify", v2.to_str().unwrap(), "--json"],
    );
    assert_eq!(json(&o)["valid"], true, "{o:?}");
    assert_eq!(json(&o)["signed_by"], "ops-2026");
    let explicit = format!("ops-2026={public}");
    let o = kassa(
        d,
        None,
        &[
            "tms",
            "verify",
            v2.to_str().unwrap(),
            "--public-key",
            &explicit,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = kassa(d, None, &["tms", "inspect", v2.to_str().unwrap(), "--json"]);
    let i = json(&o);
    assert_eq!(i["version"], 2);
    assert_eq!(i["verified"], false);
    assert_eq!(i["sections"], serde_json::json!(["bundle", "terminal"]));

    // A tampered copy fails verification and is not applied.
    let tampered = d.join("tampered.bundle");
    std::fs::write(
        &tampered,
        std::fs::read_to_string(&v2)
            .unwrap()
            .replace("Fleet Shop v2", "Evil Shop v2"),
    )
    .unwrap();
    let o = kassa(
        &data,
        Some(&cfg),
        &["tms", "verify", tampered.to_str().unwrap(), "--json"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["reason"], "signature_invalid");
    let o = kassa(
        &data,
        Some(&cfg),
        &["tms", "apply", tampered.to_str().unwrap(), "--json"],
    );
    assert_eq!(o.status.code(), Some(1));

    // Applied: the next transaction's receipt carries the bundle's shop name.
    let o = kassa(
        &data,
        Some(&cfg),
        &["tms", "apply", v2.to_str().unwrap(), "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(json(&o)["version"], 2);
    let o = kassa(
        &data,
        Some(&cfg),
        &["pay", "--card", "visa", "--amount", "3.00", "--json"],
    );
    let pay = json(&o);
    assert_eq!(pay["outcome"], "approved", "{pay}");
    assert!(
        pay["receipt"].as_str().unwrap().contains("Fleet Shop v2"),
        "{pay}"
    );

    // A rollback to version 1 is refused; version 2 stays, and status says why.
    let v1 = d.join("v1.bundle");
    bundle(d, &key, "ops-2026", 1, &v1);
    let o = kassa(
        &data,
        Some(&cfg),
        &["tms", "apply", v1.to_str().unwrap(), "--json"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["reason"], "rollback");
    let s = json(&kassa(&data, Some(&cfg), &["tms", "status", "--json"]));
    assert_eq!(s["version"], 2, "{s}");
    assert_eq!(s["signed_by"], "ops-2026");
    assert_eq!(s["last_error"]["reason"], "rollback", "{s}");
    assert_eq!(s["trusted_keys"], serde_json::json!(["ops-2026"]));
}

#[test]
fn polling_tms_serve_over_mutual_tls_with_etags() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pki = certs(d);
    let folder = d.join("www");
    std::fs::create_dir_all(&folder).unwrap();
    let key = d.join("ops.key");
    let o = kassa(
        d,
        None,
        &["tms", "keygen", "--out", key.to_str().unwrap(), "--json"],
    );
    let public = json(&o)["public_key"].as_str().unwrap().to_string();
    let published = folder.join("KASSA001.bundle");
    bundle(d, &key, "ops", 5, &published);
    let serve = Serve::start(&folder, &pki);
    let c = |f: &str| pki.join(f).display().to_string();
    let cfg = d.join("kassa.toml");
    std::fs::write(
        &cfg,
        format!(
            "[tms]\nurl = \"https://{}/KASSA001.bundle\"\nserver_name = \"127.0.0.1\"\n\
             ca = \"{}\"\ncertificate = \"{}\"\nkey = \"{}\"\n\n\
             [[tms.keys]]\nid = \"ops\"\npublic_key = \"{public}\"\n",
            serve.addr,
            c("ca.pem"),
            c("terminal.pem"),
            c("terminal.key")
        ),
    )
    .unwrap();
    let data = d.join("terminal");
    let poll = || {
        let o = kassa(&data, Some(&cfg), &["tms", "poll", "--json"]);
        (o.status.code(), json(&o))
    };
    // First poll: the whole bundle, applied.
    let (code, v) = poll();
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["result"], "applied", "{v}");
    assert_eq!(v["version"], 5);
    let size = std::fs::metadata(&published).unwrap().len();
    assert_eq!(v["bytes"], size, "{v}");
    // Second poll: If-None-Match matches, 304, nothing transferred.
    let (code, v) = poll();
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["result"], "not_modified", "{v}");
    assert_eq!(v["bytes"], 0);
    let s = json(&kassa(&data, Some(&cfg), &["tms", "status", "--json"]));
    assert!(s["etag"].as_str().unwrap().starts_with('"'), "{s}");
    assert!(s["last_poll"].is_string(), "{s}");
    // The operator publishes version 6: the next poll takes it.
    bundle(d, &key, "ops", 6, &published);
    let (_, v) = poll();
    assert_eq!(
        (v["result"].as_str(), v["version"].as_u64()),
        (Some("applied"), Some(6)),
        "{v}"
    );
    // A file cut short on the server (a half-finished upload) is refused; 6 stays.
    let bytes = std::fs::read(&published).unwrap();
    bundle(d, &key, "ops", 7, &published);
    let seven = std::fs::read(&published).unwrap();
    std::fs::write(&published, &seven[..seven.len() / 2]).unwrap();
    let (code, v) = poll();
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["result"], "refused", "{v}");
    assert_eq!(v["reason"], "bundle_malformed", "{v}");
    assert_eq!(v["version"], 6);
    // Polled again unchanged, the refused file is not downloaded again.
    let (code, v) = poll();
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(
        (v["result"].as_str(), v["bytes"].as_u64()),
        (Some("not_modified"), Some(0)),
        "{v}"
    );
    // Version 6 put back: the same bytes as the bundle in force, so 304.
    std::fs::write(&published, &bytes).unwrap();
    let (_, v) = poll();
    assert_eq!(v["result"], "not_modified", "{v}");
    // An older version published by mistake (or by an attacker) is a rollback.
    bundle(d, &key, "ops", 4, &published);
    let (code, v) = poll();
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["reason"], "rollback", "{v}");
    assert_eq!(v["version"], 6);
    // A terminal without a client certificate the server trusts gets nothing.
    let other = d.join("other-pki");
    let other = certs(&other);
    let cfg2 = d.join("stranger.toml");
    std::fs::write(
        &cfg2,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace(
                &c("terminal.pem"),
                &other.join("terminal.pem").display().to_string(),
            )
            .replace(
                &c("terminal.key"),
                &other.join("terminal.key").display().to_string(),
            ),
    )
    .unwrap();
    let o = kassa(&d.join("stranger"), Some(&cfg2), &["tms", "poll", "--json"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let v = json(&o);
    assert_eq!(v["result"], "failed", "{v}");
    assert_eq!(v["version"], 0);
    // The heartbeat: the health report, posted to the same server over mutual TLS.
    let with_heartbeat = d.join("heartbeat.toml");
    std::fs::write(
        &with_heartbeat,
        format!(
            "{}\n",
            std::fs::read_to_string(&cfg).unwrap().replace(
                "[tms]\n",
                &format!(
                    "[tms]\nheartbeat_url = \"https://{}/health/KASSA001\"\n",
                    serve.addr
                )
            )
        ),
    )
    .unwrap();
    let o = kassa(
        &data,
        Some(&with_heartbeat),
        &["tms", "heartbeat", "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let sent = json(&o);
    assert_eq!(sent["status"], 204, "{sent}");
    let kept: Value =
        serde_json::from_slice(&std::fs::read(folder.join("health/KASSA001.json")).unwrap())
            .unwrap();
    assert_eq!(kept["terminal_id"], "KASSA001", "{kept}");
    assert_eq!(kept["bundle_version"], 6, "{kept}");
    assert_eq!(kept["reader"]["status"], "ok", "{kept}");
    assert_eq!(kept["queue"]["reversals"], 0, "{kept}");
    // The last refusal (the rollback) is the last error the fleet sees.
    assert_eq!(kept["last_error"]["reason"], "rollback", "{kept}");
    assert_eq!(kept, {
        let mut local = json(&kassa(&data, Some(&with_heartbeat), &["status", "--json"]));
        local["time"] = kept["time"].clone();
        local
    });
    serve.stop();
    // Nothing listening: a reason, exit 3, and the bundle in force stays.
    let (code, v) = poll();
    assert_eq!(code, Some(3), "{v}");
    assert_eq!(v["reason"], "tms_unreachable", "{v}");
    assert_eq!(v["version"], 6);
}

#[test]
fn the_update_gate_opens_only_in_the_window_on_battery_with_nothing_owed_and_idle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("terminal");
    let battery = d.join("capacity");
    std::fs::write(&battery, "80\n").unwrap();
    let cfg = d.join("kassa.toml");
    std::fs::write(
        &cfg,
        format!(
            "[acquirer]\nresponse_timeout_ms = 1000\n\n[update]\nwindow = \"23:30-04:00\"\nmin_battery_pct = 30\nbattery = \"{}\"\n\
             url = \"https://updates.example.com/kassa.raucb\"\n",
            battery.display()
        ),
    )
    .unwrap();
    let check = |at: &str| {
        let o = kassa(
            &data,
            Some(&cfg),
            &["update", "check", "--at", at, "--json"],
        );
        (o.status.code(), json(&o))
    };
    let (code, v) = check("01:00");
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["allowed"], true);
    assert_eq!(v["battery_pct"], 80);
    assert_eq!(v["url"], "https://updates.example.com/kassa.raucb");
    let (code, v) = check("12:00");
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["blocked_by"], serde_json::json!(["outside_window"]));
    std::fs::write(&battery, "12\n").unwrap();
    assert_eq!(
        check("01:00").1["blocked_by"],
        serde_json::json!(["battery_low"])
    );
    std::fs::remove_file(&battery).unwrap();
    assert_eq!(
        check("01:00").1["blocked_by"],
        serde_json::json!(["battery_unknown"])
    );
    std::fs::write(&battery, "95\n").unwrap();
    // A request whose answer never came: a reversal is owed.
    let o = kassa(
        &data,
        Some(&cfg),
        &[
            "pay",
            "--card",
            "visa",
            "--amount",
            "4.00",
            "--fault",
            "host-silent",
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let v = check("01:00").1;
    assert_eq!(
        v["blocked_by"],
        serde_json::json!(["queue_not_empty"]),
        "{v}"
    );
    assert_eq!(kassa(&data, Some(&cfg), &["sync"]).status.code(), Some(0));
    assert_eq!(check("01:00").1["allowed"], true);
    // From here on, the window is around now: `--hold` judges now only.
    let o = kassa(
        &data,
        Some(&cfg),
        &["update", "check", "--at", "01:00", "--hold"],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let now = chrono::Local::now().time();
    let around = format!(
        "{}-{}",
        (now - chrono::Duration::hours(2)).format("%H:%M"),
        (now + chrono::Duration::hours(2)).format("%H:%M")
    );
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).unwrap().replace(
            "window = \"23:30-04:00\"",
            &format!("window = \"{around}\""),
        ),
    )
    .unwrap();
    let hold = || {
        let o = kassa(&data, Some(&cfg), &["update", "check", "--hold", "--json"]);
        (o.status.code(), json(&o))
    };
    // A payment in progress in another process: no hold.
    let mut live = common::pause_at(
        &data,
        &cfg,
        &["pay", "--card", "visa", "--amount", "5.00"],
        "card_read",
    );
    let (code, v) = hold();
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["held"], false);
    assert_eq!(
        v["blocked_by"],
        serde_json::json!(["transaction_in_progress"]),
        "{v}"
    );
    live.kill().unwrap();
    let _ = live.wait();
    // Once that process is gone, its row still counts until a writer recovers it (the
    // payment screen's restart; here a sync), then the gate opens.
    assert_eq!(
        hold().1["blocked_by"],
        serde_json::json!(["transaction_in_progress"])
    );
    assert_eq!(kassa(&data, Some(&cfg), &["sync"]).status.code(), Some(0));
    // The updater holds the terminal before it reboots: no payment starts meanwhile.
    let (code, v) = hold();
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["held"], true);
    let pay = |args: &[&str]| {
        let mut a = vec!["pay", "--amount", "6.00", "--json"];
        a.extend_from_slice(args);
        json(&kassa(&data, Some(&cfg), &a))
    };
    let v = pay(&["--card", "visa"]);
    assert_eq!(v["outcome"], "refused", "{v}");
    assert_eq!(v["error"]["code"], "updating", "{v}");
    let v = pay(&["--qr"]);
    assert_eq!(v["error"]["code"], "updating", "{v}");
    // Released (the update did not go ahead): payments again.
    assert_eq!(
        kassa(&data, Some(&cfg), &["update", "release"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(pay(&["--card", "visa"])["outcome"], "approved");
}
