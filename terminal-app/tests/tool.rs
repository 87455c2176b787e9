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

/// Published vectors (pyemv's HSM-checked tests): IMK 0123456789ABCDEFFEDCBA9876543210,
/// PAN 1234567890123456, PSN 00.
#[test]
fn arqc_reproduces_published_vectors() {
    let base = |amount: &str, tvr: &str, date: &str, ttype: &str, un: &str| {
        vec![
            format!("9F02={amount}"),
            "9F03=000000000000".into(),
            "9F1A=0124".into(),
            format!("95={tvr}"),
            "5F2A=0124".into(),
            format!("9A={date}"),
            format!("9C={ttype}"),
            format!("9F37={un}"),
            "82=1800".into(),
            "9F36=001C".into(),
        ]
    };
    let cases = [
        (
            "visa-10",
            "06010A03A06010",
            "000000004000",
            "8000048000",
            "191105",
            "01",
            "52BF4585",
            "29CCA15AE665FA2E",
            Some(("00", "28993816AFAE4AEB")),
        ),
        (
            "visa-18",
            "06011203A0B800",
            "000000004000",
            "8000048000",
            "191105",
            "01",
            "52BF4585",
            "7A788EA6B8A3E733",
            None,
        ),
        (
            "mastercard-16",
            "0110A00003220000000000000000000322FF",
            "000000009999",
            "8000000000",
            "209906",
            "00",
            "ABCDEF12",
            "24CCF3DEE3158C70",
            Some(("0010", "73F6BBF389A6586C")),
        ),
        (
            "mastercard-17",
            "0110A00003220000000000000000000322FF",
            "000000009999",
            "8000000000",
            "209906",
            "00",
            "ABCDEF12",
            "EAE8A620A75648D8",
            Some(("0010", "29CF11FBDB9CA650")),
        ),
        (
            "mastercard-20",
            "0110A00003220000000000000000000322FF",
            "000000009999",
            "8000000000",
            "209906",
            "00",
            "ABCDEF12",
            "CD29615D6452E70E",
            Some(("0010", "DFD0956606B68D64")),
        ),
        (
            "mastercard-21",
            "0110A00003220000000000000000000322FF",
            "000000009999",
            "8000000000",
            "209906",
            "00",
            "ABCDEF12",
            "C30E54BE496CF5E5",
            Some(("0010", "4F51F9CC63CE8B3C")),
        ),
    ];
    for (cvn, iad, amount, tvr, date, ttype, un, arqc, arpc) in cases {
        let mut args: Vec<String> = [
            "tool",
            "arqc",
            "--cvn",
            cvn,
            "--imk",
            "0123456789ABCDEFFEDCBA9876543210",
            "--pan",
            "1234567890123456",
            "--psn",
            "0",
            "--verify",
            arqc,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some((arc, _)) = arpc {
            args.push("--arpc".into());
            args.push(arc.into());
        }
        args.extend(base(amount, tvr, date, ttype, un));
        args.push(format!("9F10={iad}"));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ok(&kassa(&refs, None));
        assert!(
            out.contains(&format!("ARQC                   {arqc}")),
            "{cvn}: {out}"
        );
        assert!(out.contains("MATCHES"), "{cvn}");
        if let Some((_, expected)) = arpc {
            assert!(
                out.contains(&format!("ARPC                   {expected}")),
                "{cvn}: {out}"
            );
        }
        if cvn != "visa-10" {
            assert!(out.contains("session key (SK-AC)"), "{cvn}");
        }
    }
    // A wrong cryptogram: exit 1; a missing data object: exit 2 naming it.
    let mut args: Vec<String> = [
        "tool",
        "arqc",
        "--cvn",
        "visa-10",
        "--imk",
        "0123456789ABCDEFFEDCBA9876543210",
        "--pan",
        "1234567890123456",
        "--verify",
        "0000000000000000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(base(
        "000000004000",
        "8000048000",
        "191105",
        "01",
        "52BF4585",
    ));
    args.push("9F10=06010A03A06010".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = kassa(&refs, None);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("DOES NOT MATCH"));
    let refs: Vec<&str> = refs
        .iter()
        .copied()
        .filter(|a| !a.starts_with("9F36"))
        .collect();
    let e = bad(&kassa(&refs, None));
    assert!(e.contains("9F36"), "{e}");
}

#[test]
fn iso8583_decodes_field_by_field() {
    let msg = "0100 7020000020800200 16 4761739001010119 000000 000000001234 000042 \
               34 4761739001010119D30122011234567899 4B41535341303031 0011 9F26081122334455667788";
    let out = ok(&kassa(&["tool", "iso8583", msg], None));
    assert!(
        out.starts_with("MTI 0100 (authorization request), dialect bcd87"),
        "{out}"
    );
    assert!(
        out.contains("   2 Primary account number                     476173******0119"),
        "{out}"
    );
    assert!(!out.contains("4761739001010119"), "{out}");
    assert!(
        out.contains("9F26 Application Cryptogram [8] 1122334455667788"),
        "{out}"
    );
    let j: Value = serde_json::from_str(&ok(&kassa(
        &["tool", "iso8583", "--json", "--reveal", msg],
        None,
    )))
    .unwrap();
    assert_eq!(j["fields"][0]["value"], "4761739001010119");
    assert_eq!(j["icc"][0]["tag"], "9F26");
    // ascii87 with a secondary bitmap, framed with the 2-byte length.
    let ascii = b"040080200000008000000000004000000000000042KASSA001010000004211291200000000000000000000000000";
    let mut framed = (ascii.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(ascii);
    let hexed: String = framed.iter().map(|b| format!("{b:02X}")).collect();
    let out = ok(&kassa(
        &[
            "tool",
            "iso8583",
            "--dialect",
            "ascii87",
            "--framed",
            &hexed,
        ],
        None,
    ));
    assert!(
        out.starts_with("MTI 0400 (reversal request), dialect ascii87"),
        "{out}"
    );
    assert!(out.contains("  90 Original data elements"), "{out}");
    // Errors name the field and the offset.
    let e = bad(&kassa(
        &["tool", "iso8583", "0100 2000000000000000 00000A"],
        None,
    ));
    assert!(e.contains("field 3") && e.contains("byte 10"), "{e}");
    let e = bad(&kassa(
        &["tool", "iso8583", "--dialect", "xml", "0100"],
        None,
    ));
    assert!(e.contains("unknown dialect"), "{e}");
}

/// `kassa tool oda` on a virtual card's real data: every check passes; with one byte of the
/// static data changed, the ICC certificate check is named.
#[test]
fn oda_tool_walks_the_chain() {
    use drivers::VirtualCard;
    let mut card = sim::builtin_card("visa").unwrap().unwrap();
    let h = |s: &str| emv::util::unhex(s).unwrap();
    let data = |r: Vec<u8>| r[..r.len() - 2].to_vec();
    card.process(&h("00A4040007A000000003101000"));
    // TTQ with "ODA for online authorisations" so the card signs.
    let gpo = data(
        card.process(&h(
            "80A8000023832123004000000000001234000000000000027600000000000978261129 00DEADBEEF00"
                .replace(' ', "")
                .as_str(),
        )),
    );
    let mut tlv: Vec<u8> = Vec::new();
    let inner = |r: &[u8]| {
        emv::tlv::expect_template(r, emv::tags::RECORD_TEMPLATE)
            .unwrap()
            .value()
            .to_vec()
    };
    let rec2 = data(card.process(&h("00B2011400")));
    for cmd in ["00B2011C00", "00B2021C00"] {
        tlv.extend(inner(&data(card.process(&h(cmd)))));
    }
    tlv.extend(inner(&rec2));
    tlv.extend(
        emv::tlv::expect_template(&gpo, emv::tags::RESPONSE_FORMAT2)
            .unwrap()
            .value(),
    );
    tlv.extend(h(
        "4F07A0000000031010 9F3704DEADBEEF 9F0206000000001234 5F2A020978"
            .replace(' ', "")
            .as_str(),
    ));
    let mut static_data = inner(&rec2);
    static_data.extend(h("2000"));
    let hx = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    let out = ok(&kassa(
        &[
            "tool",
            "oda",
            "--date",
            "2026-11-29",
            "--static",
            &hx(&static_data),
            &hx(&tlv),
        ],
        None,
    ));
    assert!(out.contains("CA key A000000003 A1: 1984 bits"), "{out}");
    assert!(out.contains("issuer identifier 476173FF"), "{out}");
    assert!(
        out.contains("application PAN 4761739001010119FFFF"),
        "{out}"
    );
    assert!(
        out.contains("OK: dynamic signature, ICC dynamic data 020002"),
        "{out}"
    );
    assert!(out.ends_with("all checks passed\n"), "{out}");
    static_data[3] ^= 1;
    let o = kassa(
        &[
            "tool",
            "oda",
            "--date",
            "2026-11-29",
            "--static",
            &hx(&static_data),
            &hx(&tlv),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("FAILED at ICC certificate: ICC public key certificate: hash mismatch"),
        "{out}"
    );
}

const EMVCO_EXAMPLE: &str = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A";

#[test]
fn qr_decode_names_every_field() {
    let out = ok(&kassa(&["tool", "qr", "decode", EMVCO_EXAMPLE], None));
    assert!(out.contains("54     Transaction Amount"), "{out}");
    assert!(out.contains("53     Transaction Currency"), "{out}");
    assert!(out.contains("156 (CNY)"), "{out}");
    assert!(
        out.contains("64.01  Merchant Name—Alternate Language"),
        "{out}"
    );
    assert!(out.contains("最佳运输"), "{out}");
    assert!(out.trim_end().ends_with("A13A (valid)"), "{out}");
    // The same from stdin, as JSON.
    let j: Value = serde_json::from_str(&ok(&kassa(
        &["tool", "qr", "decode", "-", "--json"],
        Some(&format!("{EMVCO_EXAMPLE}\n")),
    )))
    .unwrap();
    assert_eq!(j["valid"], true);
    assert_eq!(j["amount"], "23.72");
    assert_eq!(j["currency_alpha"], "CNY");
    assert_eq!(j["crc"], "A13A");
    let fields = j["fields"].as_array().unwrap();
    let f = |tag: &str| {
        fields
            .iter()
            .find(|f| f["tag"] == tag)
            .map(|f| f["value"].as_str().unwrap().to_string())
    };
    assert_eq!(f("29.00").as_deref(), Some("D15600000000"));
    assert_eq!(f("62.07").as_deref(), Some("A6008667"));
    assert_eq!(f("64.02").as_deref(), Some("北京"));
    assert_eq!(f("91.00").as_deref(), Some("A011223344998877"));
}

#[test]
fn qr_decode_reports_tag_and_rule() {
    let bad_crc = EMVCO_EXAMPLE.replace("6304A13A", "6304A13B");
    let o = kassa(&["tool", "qr", "decode", &bad_crc, "--json"], None);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["valid"], false);
    assert_eq!(j["error"]["tag"], "63");
    assert_eq!(j["error"]["rule"], "crc_mismatch");
    let o = kassa(&["tool", "qr", "decode", "000201599"], None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "invalid: QR tag 59: the length is not two digits"
    );
}

#[test]
fn qr_encode_writes_a_scannable_png() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("code.png");
    let out = ok(&kassa(
        &[
            "tool",
            "qr",
            "encode",
            "--merchant-name",
            "GOLDEN DRAGON",
            "--city",
            "SHANGHAI",
            "--currency",
            "CNY",
            "--country",
            "CN",
            "--amount",
            "88",
            "--account",
            "A000000333010101,01=KASSA0001",
            "--reference",
            "K42",
            "--alt-language",
            "ZH",
            "--alt-name",
            "金龙酒家",
            "--png",
            png.to_str().unwrap(),
            "--json",
        ],
        None,
    ));
    let j: Value = serde_json::from_str(&out).unwrap();
    let payload = j["payload"].as_str().unwrap();
    let body = "00020101021226330016A0000003330101010109KASSA0001520459995303156540588.005802CN\
                5913GOLDEN DRAGON6008SHANGHAI62070503K4264140002ZH0104金龙酒家6304";
    assert_eq!(payload, format!("{body}{}", j["crc"].as_str().unwrap()));
    // The CRC is the one `decode` checks.
    ok(&kassa(&["tool", "qr", "decode", payload], None));
    // The PNG holds exactly the payload.
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, payload);
    // A name too long for ID 59 is refused with the tag.
    let e = bad(&kassa(
        &[
            "tool",
            "qr",
            "encode",
            "--merchant-name",
            "A NAME THAT IS MUCH TOO LONG FOR A QR",
            "--city",
            "X",
            "--currency",
            "978",
            "--country",
            "DE",
            "--scheme",
            "02=4000123412341234",
        ],
        None,
    ));
    assert!(
        e.contains("QR tag 59: is 37 characters, at most 25 allowed"),
        "{e}"
    );
}

#[test]
fn dukpt_and_pin_blocks_match_the_published_vectors() {
    // ANSI X9.24-3-2017 supplement: AES DUKPT, counter 1.
    let j: Value = serde_json::from_str(&ok(&kassa(
        &[
            "tool",
            "dukpt",
            "--aes",
            "--bdk",
            "FEDCBA9876543210F1F1F1F1F1F1F1F1",
            "--ksn",
            "123456789012345600000001",
            "--json",
        ],
        None,
    )))
    .unwrap();
    assert_eq!(j["initial_key"], "1273671EA26AC29AFA4D1084127652A1");
    assert_eq!(j["derivation_key"], "4F21B565BAD9835E112B6465635EAE44");
    assert_eq!(j["pin_key"], "AF8CB133A78F8DC2D1359F18527593FB");
    assert_eq!(j["mac_key"], "A2DC23DE6FDE0824A2BC321E08E4B8B7");
    assert_eq!(j["data_key"], "A35C412EFD41FDB98B69797C02DCD08F");
    // ANSI X9.24-1-2009 Annex A.4: TDES DUKPT, counter 1.
    let out = ok(&kassa(
        &[
            "tool",
            "dukpt",
            "--bdk",
            "0123456789ABCDEFFEDCBA9876543210",
            "--ksn",
            "FFFF9876543210E00001",
        ],
        None,
    ));
    assert!(
        out.contains("initial_key      6AC292FAA1315B4D858AB3A3D7D5933A"),
        "{out}"
    );
    assert!(
        out.contains("pin_key          042666B49184CF5C68DE9628D0397B36"),
        "{out}"
    );
    // ISO 9564 format 4 with the supplement's fill, and format 0 under the TDES PIN key.
    let out = ok(&kassa(
        &[
            "tool",
            "pinblock",
            "--format",
            "4",
            "--pin",
            "1234",
            "--pan",
            "4111111111111111",
            "--key",
            "AF8CB133A78F8DC2D1359F18527593FB",
            "--fill",
            "2F69ADDE2E9E7ACE",
        ],
        None,
    ));
    assert!(
        out.contains("pin_field    441234AAAAAAAAAA2F69ADDE2E9E7ACE"),
        "{out}"
    );
    assert!(
        out.contains("pan_field    44111111111111111000000000000000"),
        "{out}"
    );
    assert!(
        out.contains("block        A912150391AB65A67E52883D81CE2D15"),
        "{out}"
    );
    let out = ok(&kassa(
        &[
            "tool",
            "pinblock",
            "--format",
            "0",
            "--pin",
            "1234",
            "--pan",
            "4012345678909",
            "--key",
            "042666B49184CF5C68DE9628D0397B36",
        ],
        None,
    ));
    assert!(out.contains("clear_block  041274EDCBA9876F"), "{out}");
    assert!(out.contains("block        1B9C1845EB993A7A"), "{out}");
    // Bad input: exit 2 with the reason.
    let e = bad(&kassa(
        &[
            "tool",
            "pinblock",
            "--format",
            "4",
            "--pin",
            "123",
            "--pan",
            "4111111111111111",
        ],
        None,
    ));
    assert!(e.contains("a PIN is 4 to 12 digits"), "{e}");
    let e = bad(&kassa(
        &["tool", "dukpt", "--aes", "--bdk", "00", "--ksn", "00"],
        None,
    ));
    assert!(e.contains("32 hex digits"), "{e}");
}

fn kassa_in(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = vec!["--data-dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    kassa(&all, stdin)
}

#[test]
fn dukpt_keys_loaded_from_stdin_never_reuse_a_ksn() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing loaded yet.
    let o = kassa_in(dir.path(), &["keys", "status"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pin_key_missing"));
    // The X9.24-3 supplement's initial key and KSN, on stdin.
    let j: Value = serde_json::from_str(&ok(&kassa_in(
        dir.path(),
        &["keys", "load", "--json"],
        Some("1273671EA26AC29AFA4D1084127652A1\n123456789012345600000000\n"),
    )))
    .unwrap();
    assert_eq!(j["initial_key_id"], "1234567890123456");
    assert_eq!(j["next_ksn"], "123456789012345600000001");
    let mut ksns = Vec::new();
    for _ in 0..2 {
        // Each run is a new process: the counter lives in the journal on disk.
        let j: Value = serde_json::from_str(&ok(&kassa_in(
            dir.path(),
            &["keys", "encrypt", "--pan", "4111111111111111", "--json"],
            Some("1234\n"),
        )))
        .unwrap();
        assert_eq!(j["pin_block"].as_str().unwrap().len(), 32);
        ksns.push(j["ksn"].as_str().unwrap().to_string());
    }
    assert_eq!(
        ksns,
        vec!["123456789012345600000001", "123456789012345600000002"]
    );
    // The key is never printed, and the key file does not hold it in the clear.
    let status = ok(&kassa_in(dir.path(), &["keys", "status"], None));
    assert!(!status.contains("1273671E"), "{status}");
    assert!(
        status.contains("next KSN 123456789012345600000003"),
        "{status}"
    );
    let file = std::fs::read(dir.path().join("dukpt.sealed")).unwrap();
    let ik = emv::util::unhex("1273671EA26AC29AFA4D1084127652A1").unwrap();
    assert!(!file.windows(16).any(|w| w == &ik[..]));
    // A bad PIN spends no counter.
    let e = bad(&kassa_in(
        dir.path(),
        &["keys", "encrypt", "--pan", "4111111111111111"],
        Some("12\n"),
    ));
    assert!(e.contains("a PIN is 4 to 12 digits"), "{e}");
    let status = ok(&kassa_in(dir.path(), &["keys", "status"], None));
    assert!(status.contains("counter 2,"), "{status}");
}
