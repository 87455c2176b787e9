//! End to end through the `kassa` binary: virtual card, kernel, mutual TLS to the in-process
//! host simulator, journal on disk, receipt.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const PAN: &str = "4761739001010119";

fn kassa(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kassa"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("KASSA_CONFIG")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("kassa runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A config with a short response timeout so the silent-host case is quick.
fn quick_config(dir: &Path) -> String {
    let p = dir.join("kassa.toml");
    std::fs::write(&p, "[acquirer]\nresponse_timeout_ms = 1000\n").unwrap();
    p.display().to_string()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o.stdout)))
}

fn no_full_pan(o: &Output) {
    assert!(!text(&o.stdout).contains(PAN), "full PAN on stdout");
    assert!(!text(&o.stderr).contains(PAN), "full PAN on stderr");
}

#[test]
fn approved_payment_json() {
    let dir = tempfile::tempdir().unwrap();
    let o = kassa(
        dir.path(),
        &["pay", "--amount", "12.34", "--card", "visa", "--json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    no_full_pan(&o);
    let j = json(&o);
    assert_eq!(j["outcome"], "approved");
    assert_eq!(j["card"]["scheme"], "visa");
    assert_eq!(j["card"]["aid"], "A0000000031010");
    assert_eq!(j["card"]["pan"], "476173******0119");
    assert_eq!(j["card"]["kernel"], "C-3");
    assert_eq!(j["card"]["language"], "en");
    assert_eq!(j["kernel_ui"]["message_id"], "1B");
    assert_eq!(j["kernel_ui"]["status"], "card_read_successfully");
    assert_eq!(j["kernel_ui"]["language"], "en");
    assert_eq!(j["host"]["response_code"], "00");
    assert_eq!(j["host"]["tls_version"], "TLSv1.3");
    assert_eq!(j["transaction"]["amount_minor"], 1234);
    assert_eq!(j["transaction"]["auth_code"].as_str().unwrap().len(), 6);
    assert_eq!(j["transaction"]["rrn"].as_str().unwrap().len(), 12);
    assert_eq!(j["emv"]["cid"], "80");
    assert_eq!(j["emv"]["ac"].as_str().unwrap().len(), 16);
    for k in ["card", "host", "total"] {
        assert!(j["timing_ms"][k].is_u64(), "timing_ms.{k}");
    }
    let receipt = j["receipt"].as_str().unwrap();
    assert!(receipt.contains("APPROVED"));
    assert!(receipt.contains("476173******0119"));
    assert!(receipt.contains(j["transaction"]["auth_code"].as_str().unwrap()));
    assert_eq!(j["journal"]["state"], "approved");

    // The PKI was created on first start, with a private terminal key.
    assert!(dir.path().join("pki/terminal.key").is_file());
    // A second payment reuses it and gets the next STAN.
    let o2 = kassa(
        dir.path(),
        &["pay", "--amount", "1.00", "--card", "visa", "--json"],
    );
    assert_eq!(json(&o2)["transaction"]["stan"], 2);

    // The journal holds both, and no full PAN anywhere on disk.
    let list = kassa(dir.path(), &["journal", "list", "--json"]);
    let rows = json(&list);
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[1]["state"], "approved");
    assert_eq!(rows[1]["pan_masked"], "476173******0119");
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(PAN.len()).any(|w| w == PAN.as_bytes()),
                "full PAN in {}",
                path.display()
            );
        }
    }
}

#[test]
fn text_output_and_cards() {
    let dir = tempfile::tempdir().unwrap();
    let o = kassa(dir.path(), &["pay", "--amount", "60", "--card", "visa"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.starts_with("APPROVED  EUR 60.00  visa 476173******0119"),
        "{out}"
    );
    // Above the 50.00 CVM limit the card asks for a signature.
    assert!(out.contains("SIGNATURE REQUIRED"), "{out}");
    let o = kassa(dir.path(), &["cards", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let cards = json(&o);
    assert_eq!(cards[0]["name"], "visa");
    assert_eq!(cards[0]["pan"], "476173******0119");
}

#[test]
fn tampered_card_key_is_declined_by_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let o = kassa(
        dir.path(),
        &[
            "pay",
            "--amount",
            "12.34",
            "--card",
            "visa",
            "--json",
            "--fault",
            "card-wrong-key",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "a decline is an outcome: {}",
        text(&o.stderr)
    );
    let j = json(&o);
    assert_eq!(j["outcome"], "declined");
    assert_eq!(j["host"]["response_code"], "05");
    assert!(j["transaction"]["auth_code"].is_null());
    assert_eq!(j["journal"]["state"], "declined");
}

#[test]
fn bad_input_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["pay", "--amount", "-1", "--card", "visa"], "negative"),
        (
            &["pay", "--amount", "12.345", "--card", "visa"],
            "more than 2 decimals",
        ),
        (
            &["pay", "--amount", "12,34", "--card", "visa"],
            "not a number",
        ),
        (
            &["pay", "--amount", "1", "--card", "nosuchcard"],
            "unknown card \"nosuchcard\"",
        ),
        (&["pay", "--card", "visa"], "--amount"),
        (&["nosuchcommand"], "nosuchcommand"),
    ];
    for (args, needle) in cases {
        let o = kassa(dir.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = text(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // Nothing was started, so nothing was journalled.
    assert!(!dir.path().join("journal.db").exists());
    // An amount over the maximum is refused by the terminal's rules: exit 2, and the
    // refusal is journalled with its reason code.
    let o = kassa(
        dir.path(),
        &["pay", "--amount", "5000.01", "--card", "visa", "--json"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("over the configured maximum"));
    let j = json(&o);
    assert_eq!(j["outcome"], "refused");
    assert_eq!(j["error"]["code"], "amount_over_maximum");
    let o = kassa(dir.path(), &["journal", "list", "--json"]);
    let rows = json(&o);
    assert_eq!(rows[0]["state"], "refused");
    assert_eq!(rows[0]["reason"], "amount_over_maximum");
    std::fs::remove_dir_all(dir.path()).unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();

    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[terminal]\nmax_amount = \"10.00\"\nmerchent = \"x\"\n",
    )
    .unwrap();
    let o = kassa(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "pay",
            "--amount",
            "1",
            "--card",
            "visa",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("merchent") && err.contains("line 3"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn silent_host_times_out_and_owes_a_reversal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = quick_config(dir.path());
    let o = kassa(
        dir.path(),
        &[
            "--config",
            &cfg,
            "pay",
            "--amount",
            "12.34",
            "--card",
            "visa",
            "--json",
            "--fault",
            "host-silent",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    no_full_pan(&o);
    let err = text(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("response_timeout") && err.contains("reversal pending"),
        "{err}"
    );
    let j = json(&o);
    assert_eq!(j["outcome"], "reversal_pending");
    assert_eq!(j["error"]["code"], "response_timeout");
    assert_eq!(j["journal"]["reversal"], "pending");
    let id = j["journal"]["id"].as_i64().unwrap().to_string();
    let row = json(&kassa(dir.path(), &["journal", "show", &id, "--json"]));
    assert_eq!(row["state"], "reversal_pending");
    assert_eq!(row["reversal"], "pending");
    assert!(row["history"].as_str().unwrap().contains("authorising"));
}

#[test]
fn host_refusing_the_terminal_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let o = kassa(
        dir.path(),
        &[
            "pay",
            "--amount",
            "12.34",
            "--card",
            "visa",
            "--json",
            "--fault",
            "host-rejects-terminal",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    let err = text(&o.stderr);
    assert!(err.contains("client_certificate_rejected"), "{err}");
    assert!(err.contains("nothing to reverse"), "{err}");
    let j = json(&o);
    assert_eq!(j["journal"]["state"], "host_unreachable");
    assert_eq!(j["journal"]["reversal"], "none");
}

#[test]
fn host_with_a_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = kassa(
        dir.path(),
        &[
            "pay",
            "--amount",
            "12.34",
            "--card",
            "visa",
            "--json",
            "--fault",
            "host-untrusted-ca",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stderr).contains("host_certificate_rejected"));
    assert_eq!(json(&o)["error"]["code"], "host_certificate_rejected");
}

#[test]
fn host_down_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = kassa(
        dir.path(),
        &[
            "pay",
            "--amount",
            "12.34",
            "--card",
            "visa",
            "--fault",
            "host-down",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(text(&o.stderr).contains("refused"), "{}", text(&o.stderr));
}

#[test]
fn emulator_without_display_names_kassa_pay() {
    let dir = tempfile::tempdir().unwrap();
    let o = kassa(dir.path(), &["emulator"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("no display") && err.contains("kassa pay"),
        "{err}"
    );
}

#[test]
fn trace_record_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("visa.trace");
    let t = trace.to_str().unwrap();
    let paid = json(&kassa(
        dir.path(),
        &[
            "pay",
            "--amount",
            "12.34",
            "--card",
            "visa",
            "--json",
            "--trace",
            t,
            "--unmasked",
        ],
    ));
    assert_eq!(paid["outcome"], "approved");
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.starts_with("# kassa trace v1\n"), "{text}");
    assert!(text.contains("# 9F02=000000001234"));
    let o = kassa(dir.path(), &["replay", t, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o.stderr));
    let replayed = json(&o);
    assert_eq!(replayed["outcome"], "approved");
    assert_eq!(replayed["emv"]["ac"], paid["emv"]["ac"], "same cryptogram");
    assert_eq!(
        replayed["emv"]["un"], paid["emv"]["un"],
        "same unpredictable number"
    );
    assert_eq!(replayed["transaction"]["amount_minor"], 1234);

    // A masked trace holds no PAN; the host cannot verify a masked card.
    let masked = dir.path().join("masked.trace");
    let m = masked.to_str().unwrap();
    let o = kassa(
        dir.path(),
        &[
            "pay", "--amount", "12.34", "--card", "visa", "--trace", m, "--mask",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let text = std::fs::read_to_string(&masked).unwrap();
    assert!(
        !text.contains(PAN) && !text.contains("4761739001"),
        "{text}"
    );
    assert!(text.contains("# masked: yes"));
    // Masking is the default: a plain --trace holds no PAN either.
    let plain = dir.path().join("plain.trace");
    let o = kassa(
        dir.path(),
        &[
            "pay",
            "--amount",
            "12.34",
            "--card",
            "visa",
            "--trace",
            plain.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let plain_text = std::fs::read_to_string(&plain).unwrap();
    assert!(
        !plain_text.contains("4761739001") && plain_text.contains("# masked: yes"),
        "{plain_text}"
    );
    let r = json(&kassa(dir.path(), &["replay", m, "--json"]));
    assert_eq!(r["card"]["pan"], "999999******9999");
    assert_eq!(r["outcome"], "declined");

    // A command the trace does not hold: a card error naming the line.
    let edited = text_of(&std::fs::read(&trace).unwrap()).replace("> 00B2011400", "> 00B2021400");
    let bad = dir.path().join("edited.trace");
    std::fs::write(&bad, edited).unwrap();
    let o = kassa(dir.path(), &["replay", bad.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j = json(&o);
    assert_eq!(j["outcome"], "card_error");
    assert_eq!(j["error"]["code"], "protocol");
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("trace line"),
        "{j}"
    );

    // Malformed traces are bad input.
    let broken = dir.path().join("broken.trace");
    std::fs::write(&broken, "# 9F02=000000000100\n> 00A4040000\n< 9G00\n").unwrap();
    let o = kassa(dir.path(), &["replay", broken.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text_of(&o.stderr).contains("trace line 3"),
        "{}",
        text_of(&o.stderr)
    );
    let o = kassa(
        dir.path(),
        &["pay", "--amount", "1", "--card", "visa", "--mask"],
    );
    assert_eq!(o.status.code(), Some(2));
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The emulator window opens on an X server (Xvfb) and reaches the idle screen.
#[test]
fn emulator_window_opens_under_xvfb() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x900x24"])
        .arg(env!("CARGO_BIN_EXE_kassa"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["emulator", "--quit-after-ms", "1500"])
        .env_remove("KASSA_CONFIG")
        .output()
        .expect("xvfb-run (scripts/install-deps installs it)");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("idle screen shown"));
}

/// `kassa run` (the device's screen, here on Xvfb): tells systemd READY over $NOTIFY_SOCKET;
/// a configuration that does not load is shown on the screen and the process stays up
/// instead of crash-looping.
#[test]
fn device_screen_reports_ready_and_shows_a_bad_config() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let bad = dir.path().join("kassa.toml");
    std::fs::write(&bad, "[reader]\nkind = \"pn532-usb\"\n").unwrap();
    let o = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x900x24"])
        .arg(env!("CARGO_BIN_EXE_kassa"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&bad)
        .args(["run", "--quit-after-ms", "1000"])
        .env("NOTIFY_SOCKET", &sock_path)
        .output()
        .expect("xvfb-run (scripts/install-deps installs it)");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("reader.kind"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("screen shown"));
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(n) = sock.recv(&mut buf) {
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let stop = msg == "STOPPING=1";
        got.push(msg);
        if stop {
            break;
        }
    }
    assert!(
        got.iter()
            .any(|m| m.starts_with("STATUS=configuration error")),
        "{got:?}"
    );
    assert!(got.iter().any(|m| m == "READY=1"), "{got:?}");
}

/// `kassa tool screenshot`: the idle screen drawn off-screen (no display) into a PNG with text.
#[test]
fn the_idle_screen_renders_headless_to_png() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("idle.png");
    let o = kassa(
        dir.path(),
        &[
            "tool",
            "screenshot",
            "--out",
            png.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text_of(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(480), Some(800))
    );
    assert!(v["drawn_pixels"].as_u64().unwrap() > 5000, "{v}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}
