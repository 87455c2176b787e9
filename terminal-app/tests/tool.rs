//! `kassa tool tlv|apdu|dol` through the binary.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn kassa(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kassa"))
        .args(args)
        .env("KASSA_CONFIG", "/nonexistent/kassa.toml")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn bad(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(o.stdout.is_empty());
    let e = String::from_utf8(o.stderr.clone()).unwrap();
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    e
}

/// The virtual Visa card's GPO response.
const GPO: &str = "77 34 82 02 0000 94 04 08010200 9F36 02 0002 9F27 01 80 9F26 08 42B213B52BE54C31 \
                   9F10 07 06010A03A00000 9F6C 02 4000 9F6E 04 20700000";

#[test]
fn decodes_a_gpo_response() {
    let out = ok(&kassa(&["tool", "tlv", "--kernel", "3", GPO], None));
    assert!(
        out.starts_with("77 Response Message Template Format 2 [52]"),
        "{out}"
    );
    assert!(out.contains("  94 Application File Locator (AFL) [4] 08010200\n      SFI 1, records 1-2, 0 for offline data authentication"), "{out}");
    assert!(
        out.contains("Cryptogram type (bits 8-7): ARQC (go online)"),
        "{out}"
    );
    assert!(
        out.contains("[x] byte 1 bit 7: Signature Required"),
        "{out}"
    );
    assert!(out.contains("9F6E Form Factor Indicator"), "{out}");
    // The same from stdin, with newlines.
    let piped = ok(&kassa(
        &["tool", "tlv", "--kernel", "3", "-"],
        Some(&GPO.replace(' ', "\n")),
    ));
    assert_eq!(piped, out);
    // Kernel 2 reads 9F6E as Third Party Data.
    let c2 = ok(&kassa(&["tool", "tlv", "--kernel", "2", GPO], None));
    assert!(c2.contains("9F6E Third Party Data"), "{c2}");
}

#[test]
fn decodes_a_record_with_long_lengths_and_masks_card_data() {
    let cert = "AB".repeat(176);
    let record =
        format!("70 81 C8 5A 08 4761739001010119 90 81 B0 {cert} 5F24 03 301231 5F28 02 0840");
    let out = ok(&kassa(&["tool", "tlv", &record], None));
    assert!(
        out.contains("70 READ RECORD Response Message Template [200]"),
        "{out}"
    );
    assert!(
        out.contains("90 Issuer Public Key Certificate [176]"),
        "{out}"
    );
    assert!(out.contains("= 476173******0119 (masked)"), "{out}");
    assert!(!out.contains("4761739001010119"), "{out}");
    assert!(out.contains("= 840 US (United States)"), "{out}");
    let shown = ok(&kassa(&["tool", "tlv", "--reveal", &record], None));
    assert!(shown.contains("4761739001010119"));
    assert!(shown.contains("= 2030-12-31"));
    // JSON: the masked value is null, the decoded text is there.
    let j: Value =
        serde_json::from_str(&ok(&kassa(&["tool", "tlv", "--json", &record], None))).unwrap();
    let pan = &j[0]["children"][0];
    assert_eq!(pan["tag"], "5A");
    assert_eq!(pan["value"], Value::Null);
    assert_eq!(pan["masked"], true);
    assert_eq!(j[0]["children"][1]["length"], 176);
    assert_eq!(j[0]["children"][1]["offset"], 13);
}

#[test]
fn tvr_bit_by_bit() {
    let out = ok(&kassa(&["tool", "tlv", "9505 8000048000"], None));
    let set: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("[x]"))
        .map(str::trim)
        .collect();
    assert_eq!(
        set,
        vec![
            "[x] byte 1 bit 8: Offline data authentication was not performed",
            "[x] byte 3 bit 3: Online CVM captured",
            "[x] byte 4 bit 8: Transaction exceeds floor limit",
        ]
    );
    assert_eq!(out.lines().filter(|l| l.contains("[ ]")).count(), 36);
    let j: Value = serde_json::from_str(&ok(&kassa(
        &["tool", "tlv", "--json", "9505 8000048000"],
        None,
    )))
    .unwrap();
    assert_eq!(j[0]["decoded"]["kind"], "bits");
    assert_eq!(j[0]["decoded"]["bits"][0]["set"], true);
}

#[test]
fn malformed_input_is_one_line_with_the_offset() {
    let e = bad(&kassa(
        &[
            "tool",
            "tlv",
            "9F26 08 1122334455667788 9F10 A1 07 06010A03A00000",
        ],
        None,
    ));
    assert_eq!(
        e.trim(),
        "kassa tool tlv: TLV error at byte 13: invalid length byte A1"
    );
    let e = bad(&kassa(&["tool", "tlv", "9F26081122"], None));
    assert!(e.contains("at byte 2") && e.contains("8 bytes"), "{e}");
    let e = bad(&kassa(&["tool", "tlv", "9F2"], None));
    assert!(e.contains("odd number of hex digits"), "{e}");
    let e = bad(&kassa(&["tool", "tlv", "9F2Z"], None));
    assert!(e.contains("'Z'") && e.contains("byte 1"), "{e}");
    let e = bad(&kassa(&["tool", "tlv", "5A 80"], None));
    assert!(e.contains("indefinite length"), "{e}");
    let e = bad(&kassa(&["tool", "apdu", "00A4"], None));
    assert!(e.contains("shorter than 4 bytes"), "{e}");
    let e = bad(&kassa(&["tool", "dol", "9F66 C1 04"], None));
    assert!(e.contains("byte 2") && e.contains("C1"), "{e}");
}

#[test]
fn apdu_and_dol() {
    let out = ok(&kassa(
        &[
            "tool",
            "apdu",
            "80AE80001E0000000012340000000000000002760000000000097826112900DEADBEEF00",
        ],
        None,
    ));
    assert!(out.starts_with("C-APDU: GENERATE AC"), "{out}");
    assert!(
        out.contains("reference control 80: ARQC requested"),
        "{out}"
    );
    let out = ok(&kassa(
        &[
            "tool",
            "apdu",
            "00A404000E325041592E5359532E444446303100",
            "6A82",
        ],
        None,
    ));
    assert!(
        out.contains("R-APDU: SW 6A82 file or application not found, 0 data bytes"),
        "{out}"
    );
    let gpo_response = format!("{GPO} 9000");
    let j: Value = serde_json::from_str(&ok(&kassa(
        &[
            "tool",
            "apdu",
            "--json",
            "80A800002383212200400000000000123400000000000002760000000000097826112900DEADBEEF00",
            &gpo_response,
        ],
        None,
    )))
    .unwrap();
    assert_eq!(j["command"]["name"], "GET PROCESSING OPTIONS");
    assert_eq!(j["response"]["sw"], "9000");
    assert_eq!(j["response"]["data"]["tlv"][0]["tag"], "77");
    let out = ok(&kassa(
        &[
            "tool",
            "dol",
            "9F66049F02069F03069F1A0295055F2A029A039C019F3704",
        ],
        None,
    ));
    assert!(out.ends_with("9 entries, 33 bytes of data\n"), "{out}");
    assert!(
        out.starts_with("9F66     4  Terminal Transaction Qualifiers (TTQ)"),
        "{out}"
    );
}
