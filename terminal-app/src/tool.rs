//! `kassa tool`: decoders for people debugging a terminal (TLV trees, APDUs, DOLs).
//!
//! Every malformation is one line on stderr with the byte offset, exit code 2.

use std::io::Read;

use emv::apdu::{Command, Response};
use emv::explain::{self, Decoded, Node, Options};
use emv::util::hex;
use serde_json::{Value, json};

/// Bad input for a tool: the one-line message.
#[derive(Debug)]
pub struct ToolError(pub String);

/// Reads hex from the argument, or from stdin when it is `-`. Whitespace is ignored.
pub fn read_hex(arg: &str, what: &str) -> Result<Vec<u8>, ToolError> {
    let text = if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| ToolError(format!("{what}: reading stdin: {e}")))?;
        s
    } else {
        arg.to_string()
    };
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(ToolError(format!("{what}: no hex given")));
    }
    emv::util::unhex(&compact).map_err(|at| {
        if at >= compact.len() {
            ToolError(format!(
                "{what}: odd number of hex digits ({})",
                compact.len()
            ))
        } else {
            let c = compact[at..].chars().next().unwrap_or('?');
            ToolError(format!(
                "{what}: invalid hex character {c:?} at digit {at} (byte {})",
                at / 2
            ))
        }
    })
}

fn decoded_json(d: &Decoded) -> Value {
    match d {
        Decoded::Text(t) => json!({ "kind": "text", "text": t }),
        Decoded::Bits { bits, values } => json!({
            "kind": "bits",
            "bits": bits.iter().map(|b| json!({
                "byte": b.byte, "bit": b.bit, "set": b.set, "meaning": b.meaning
            })).collect::<Vec<_>>(),
            "values": values,
        }),
        Decoded::Dol(items) => json!({
            "kind": "dol",
            "entries": items.iter().map(|i| json!({
                "tag": i.tag.to_string(), "length": i.len, "name": i.name
            })).collect::<Vec<_>>(),
        }),
        Decoded::Lines(l) => json!({ "kind": "lines", "lines": l }),
        Decoded::Invalid(r) => json!({ "kind": "invalid", "reason": r }),
    }
}

fn node_json(n: &Node) -> Value {
    json!({
        "tag": n.tag.to_string(),
        "name": n.name,
        "format": n.format.map(|f| f.name()),
        "offset": n.offset,
        "length": n.len,
        "constructed": n.tag.is_constructed(),
        "value": if n.tag.is_constructed() || n.masked { Value::Null } else { json!(hex(&n.value)) },
        "masked": n.masked,
        "decoded": n.decoded.as_ref().map(decoded_json),
        "children": n.children.iter().map(node_json).collect::<Vec<_>>(),
    })
}

fn decoded_lines(d: &Decoded, indent: &str, out: &mut Vec<String>) {
    match d {
        Decoded::Text(t) => out.push(format!("{indent}= {t}")),
        Decoded::Bits { bits, values } => {
            for b in bits {
                let mark = if b.set { "x" } else { " " };
                out.push(format!(
                    "{indent}[{mark}] byte {} bit {}: {}",
                    b.byte, b.bit, b.meaning
                ));
            }
            for v in values {
                out.push(format!("{indent}{v}"));
            }
        }
        Decoded::Dol(items) => {
            for i in items {
                out.push(format!(
                    "{indent}{:<6} {:>3}  {}",
                    i.tag.to_string(),
                    i.len,
                    i.name.unwrap_or("(unknown)")
                ));
            }
        }
        Decoded::Lines(l) => out.extend(l.iter().map(|x| format!("{indent}{x}"))),
        Decoded::Invalid(r) => out.push(format!("{indent}! {r}")),
    }
}

fn tree_lines(nodes: &[Node], depth: usize, out: &mut Vec<String>) {
    for n in nodes {
        let indent = "  ".repeat(depth);
        let name = n.name.unwrap_or("(unknown tag)");
        if n.tag.is_constructed() {
            out.push(format!("{indent}{} {name} [{}]", n.tag, n.len));
            tree_lines(&n.children, depth + 1, out);
        } else {
            let value = if n.masked {
                String::new()
            } else {
                format!(" {}", hex(&n.value))
            };
            out.push(format!("{indent}{} {name} [{}]{value}", n.tag, n.len));
            if let Some(d) = &n.decoded {
                decoded_lines(d, &format!("{indent}    "), out);
            }
        }
    }
}

/// `kassa tool tlv`.
pub fn tlv(input: &str, json_out: bool, opts: Options) -> Result<String, ToolError> {
    let bytes = read_hex(input, "tlv")?;
    let nodes = explain::tree(&bytes, opts).map_err(|e| ToolError(format!("tlv: {e}")))?;
    if json_out {
        let v: Vec<Value> = nodes.iter().map(node_json).collect();
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    let mut out = Vec::new();
    tree_lines(&nodes, 0, &mut out);
    Ok(out.join("\n"))
}

/// `kassa tool apdu`.
pub fn apdu(
    capdu: &str,
    rapdu: Option<&str>,
    json_out: bool,
    opts: Options,
) -> Result<String, ToolError> {
    let cbytes = read_hex(capdu, "C-APDU")?;
    let cmd = Command::parse(&cbytes).map_err(|e| ToolError(format!("C-APDU: {e}")))?;
    let (name, params) = explain::describe_command(&cmd);
    let resp = match rapdu {
        Some(r) => {
            let rbytes = read_hex(r, "R-APDU")?;
            Some(Response::parse(&rbytes).map_err(|e| ToolError(format!("R-APDU: {e}")))?)
        }
        None => None,
    };
    // Response data: a TLV tree when it parses, otherwise raw bytes.
    let tree = resp
        .as_ref()
        .filter(|r| !r.data.is_empty())
        .map(|r| explain::tree(&r.data, opts));
    if json_out {
        let mut v = json!({
            "command": {
                "name": name,
                "cla": format!("{:02X}", cmd.cla),
                "ins": format!("{:02X}", cmd.ins),
                "p1": format!("{:02X}", cmd.p1),
                "p2": format!("{:02X}", cmd.p2),
                "lc": if cmd.data.is_empty() { Value::Null } else { json!(cmd.data.len()) },
                "le": cmd.le,
                "data": if cmd.ins == 0x20 { Value::Null } else { json!(hex(&cmd.data)) },
                "details": params,
            }
        });
        if let Some(r) = &resp {
            let data = match &tree {
                Some(Ok(nodes)) => {
                    json!({ "tlv": nodes.iter().map(node_json).collect::<Vec<_>>() })
                }
                Some(Err(e)) => {
                    json!({ "raw": raw_hex(&r.data, opts), "tlv_error": e.to_string() })
                }
                None => Value::Null,
            };
            v["response"] = json!({
                "sw": format!("{:04X}", r.sw),
                "status": explain::status_word(r.sw),
                "length": r.data.len(),
                "data": data,
            });
        }
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    let mut out = vec![format!("C-APDU: {name}")];
    let le = cmd.le.map(|l| format!(" Le {l:02X}")).unwrap_or_default();
    let lc = if cmd.data.is_empty() {
        String::new()
    } else {
        format!(" Lc {:02X}", cmd.data.len())
    };
    out.push(format!(
        "  CLA {:02X} INS {:02X} P1 {:02X} P2 {:02X}{lc}{le}",
        cmd.cla, cmd.ins, cmd.p1, cmd.p2
    ));
    out.extend(params.iter().map(|p| format!("  {p}")));
    if let Some(r) = &resp {
        out.push(format!(
            "R-APDU: SW {:04X} {}, {} data bytes",
            r.sw,
            explain::status_word(r.sw),
            r.data.len()
        ));
        match &tree {
            Some(Ok(nodes)) => {
                let mut lines = Vec::new();
                tree_lines(nodes, 1, &mut lines);
                out.extend(lines);
            }
            Some(Err(e)) => {
                out.push(format!(
                    "  not BER-TLV ({e}); raw: {}",
                    raw_hex(&r.data, opts)
                ));
            }
            None => {}
        }
    }
    Ok(out.join("\n"))
}

/// Data that did not decode, in hex: nobody knows where a PAN might sit in it, so unless
/// `--reveal` every run of 12 or more digits is masked (476173******0119).
fn raw_hex(data: &[u8], opts: Options) -> String {
    if opts.reveal {
        hex(data)
    } else {
        emv::util::mask_digit_runs(&hex(data))
    }
}

/// `kassa tool dol`.
pub fn dol(input: &str, json_out: bool, kernel: u8) -> Result<String, ToolError> {
    let bytes = read_hex(input, "dol")?;
    let entries = emv::dol::parse(&bytes).map_err(|e| ToolError(format!("dol: {e}")))?;
    let total = emv::dol::data_len(&entries);
    let name = |t| emv::tags::lookup(t, kernel, None).map(|i| i.name);
    if json_out {
        let v = json!({
            "entries": entries.iter().map(|e| json!({
                "tag": e.tag.to_string(),
                "length": e.len,
                "name": name(e.tag),
                "format": emv::tags::lookup(e.tag, kernel, None).map(|i| i.format.name()),
            })).collect::<Vec<_>>(),
            "data_length": total,
        });
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    let mut out: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{:<6} {:>3}  {}",
                e.tag.to_string(),
                e.len,
                name(e.tag).unwrap_or("(unknown)")
            )
        })
        .collect();
    out.push(format!("{} entries, {total} bytes of data", entries.len()));
    Ok(out.join("\n"))
}

/// The meaning of an ISO 8583:1987 MTI.
pub fn mti_name(mti: u16) -> &'static str {
    match mti {
        100 => "authorization request",
        110 => "authorization response",
        200 => "financial request",
        210 => "financial response",
        220 => "advice",
        221 => "advice repeat",
        230 => "advice response",
        400 => "reversal request",
        401 => "reversal repeat",
        410 => "reversal response",
        411 => "reversal repeat response",
        500 => "reconciliation request",
        510 => "reconciliation response",
        800 => "network management request",
        810 => "network management response",
        _ => "unknown message type",
    }
}

/// `kassa tool iso8583`: a message field by field, field 55 as a TLV tree.
pub fn iso8583(
    input: &str,
    dialect: &str,
    framed: bool,
    json_out: bool,
    opts: Options,
) -> Result<String, ToolError> {
    let d = acquirer::iso8583::dialect(dialect).ok_or_else(|| {
        ToolError(format!(
            "iso8583: unknown dialect {dialect:?} (bcd87, ascii87)"
        ))
    })?;
    let mut bytes = read_hex(input, "iso8583")?;
    if framed {
        if bytes.len() < 2 {
            return Err(ToolError(
                "iso8583: frame shorter than its 2-byte length".into(),
            ));
        }
        let len = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
        if len != bytes.len() - 2 {
            return Err(ToolError(format!(
                "iso8583: frame length {len} but {} bytes follow",
                bytes.len() - 2
            )));
        }
        bytes.drain(..2);
    }
    let m = acquirer::Message::decode(&bytes, d).map_err(|e| ToolError(format!("iso8583: {e}")))?;
    let shown = |n: u8, v: &[u8]| -> (String, bool) {
        let spec = d.fields[n as usize];
        let sensitive = spec.is_some_and(|s| s.sensitive);
        if n == 2 && !opts.reveal {
            return (acquirer::iso8583::mask(&String::from_utf8_lossy(v)), true);
        }
        if sensitive && !opts.reveal {
            return (
                format!("<{} characters hidden; --reveal shows them>", v.len()),
                true,
            );
        }
        match spec.map(|s| s.kind) {
            Some(acquirer::iso8583::Kind::B) => (hex(v), false),
            _ => (String::from_utf8_lossy(v).into_owned(), false),
        }
    };
    let icc = m.get(55).map(|v| explain::tree(v, opts));
    if json_out {
        let fields: Vec<Value> = m
            .field_numbers()
            .map(|n| {
                let v = m.get(n).unwrap_or_default();
                let (value, masked) = shown(n, v);
                json!({
                    "field": n,
                    "name": d.fields[n as usize].map(|s| s.name),
                    "value": value,
                    "masked": masked,
                })
            })
            .collect();
        let icc_json = match &icc {
            Some(Ok(nodes)) => json!(nodes.iter().map(node_json).collect::<Vec<_>>()),
            Some(Err(e)) => json!({ "error": e.to_string() }),
            None => Value::Null,
        };
        return Ok(serde_json::to_string_pretty(&json!({
            "mti": m.mti_str(),
            "mti_name": mti_name(m.mti),
            "dialect": d.name,
            "fields": fields,
            "icc": icc_json,
        }))
        .unwrap_or_default());
    }
    let mut out = vec![format!(
        "MTI {} ({}), dialect {}",
        m.mti_str(),
        mti_name(m.mti),
        d.name
    )];
    for n in m.field_numbers() {
        let v = m.get(n).unwrap_or_default();
        let name = d.fields[n as usize].map(|s| s.name).unwrap_or("?");
        let (value, _) = shown(n, v);
        out.push(format!("{n:>4} {name:<42} {value}"));
        if n == 55 {
            match &icc {
                Some(Ok(nodes)) => tree_lines(nodes, 3, &mut out),
                Some(Err(e)) => out.push(format!("      not BER-TLV: {e}")),
                None => {}
            }
        }
    }
    Ok(out.join("\n"))
}

/// Arguments of `kassa tool oda`.
#[derive(Debug)]
pub struct OdaArgs<'a> {
    /// The card's data objects, TLV hex.
    pub tlv: &'a str,
    /// RID of the CA key (default: from the AID 4F/84/9F06 in the TLV).
    pub rid: Option<&'a str>,
    /// CA key index (default: 8F in the TLV).
    pub index: Option<&'a str>,
    /// CA modulus, when the key is not in the configuration.
    pub modulus: Option<&'a str>,
    /// CA exponent with `modulus`.
    pub exponent: Option<&'a str>,
    /// Static data to be authenticated, hex.
    pub static_data: Option<&'a str>,
    /// Terminal dynamic data for the signature hash, hex.
    pub dynamic: Option<&'a str>,
    /// Date for expiry checks (YYYY-MM-DD), default today.
    pub date: Option<&'a str>,
    /// CA keys known to the terminal.
    pub capks: Vec<emv::oda::CaPublicKey>,
}

fn describe_recovered(label: &str, r: &[u8], out: &mut Vec<String>) {
    let hx = |a: usize, b: usize| r.get(a..b).map(hex).unwrap_or_default();
    out.push(format!("  {label}: {} bytes recovered", r.len()));
    out.push(format!(
        "    header {} format {} trailer {}",
        hx(0, 1),
        hx(1, 2),
        hx(r.len() - 1, r.len())
    ));
    match r.get(1) {
        Some(0x02) => {
            out.push(format!(
                "    issuer identifier {}  expiry (MMYY) {}  serial {}",
                hx(2, 6),
                hx(6, 8),
                hx(8, 11)
            ));
            out.push(format!(
                "    hash algorithm {}  key algorithm {}  issuer key length {}  exponent length {}",
                hx(11, 12),
                hx(12, 13),
                r.get(13).copied().unwrap_or(0),
                r.get(14).copied().unwrap_or(0)
            ));
        }
        Some(0x04) => {
            out.push(format!(
                "    application PAN {}  expiry (MMYY) {}  serial {}",
                hx(2, 12),
                hx(12, 14),
                hx(14, 17)
            ));
            out.push(format!(
                "    hash algorithm {}  key algorithm {}  ICC key length {}  exponent length {}",
                hx(17, 18),
                hx(18, 19),
                r.get(19).copied().unwrap_or(0),
                r.get(20).copied().unwrap_or(0)
            ));
        }
        Some(0x03) => out.push(format!(
            "    hash algorithm {}  data authentication code {}",
            hx(2, 3),
            hx(3, 5)
        )),
        Some(0x05 | 0x95) => {
            let ldd = r.get(3).copied().unwrap_or(0) as usize;
            out.push(format!(
                "    hash algorithm {}  ICC dynamic data ({ldd} bytes) {}",
                hx(2, 3),
                hx(4, 4 + ldd)
            ));
            if let Some(&n) = r.get(4) {
                out.push(format!("    ICC dynamic number {}", hx(5, 5 + n as usize)));
            }
        }
        _ => {}
    }
    if r.len() > 21 {
        out.push(format!("    hash {}", hx(r.len() - 21, r.len() - 1)));
    }
}

/// `kassa tool oda`: recovers each certificate and signature and names the first check that
/// fails. Returns the text and whether every check passed.
pub fn oda(a: &OdaArgs<'_>) -> Result<(String, bool), ToolError> {
    use emv::oda::{self, CaPublicKey, CertData, RustCrypto};
    use emv::tags as t;
    let bad = |m: String| ToolError(format!("oda: {m}"));
    let bytes = read_hex(a.tlv, "oda")?;
    let mut d = emv::tlv::TagStore::new();
    d.absorb(&bytes, |_| true).map_err(|e| bad(e.to_string()))?;
    let hexarg = |name: &str, v: Option<&str>| -> Result<Option<Vec<u8>>, ToolError> {
        v.map(|s| {
            emv::util::unhex(s).map_err(|at| bad(format!("{name}: invalid hex at digit {at}")))
        })
        .transpose()
    };
    let today = match a.date {
        Some(s) => {
            let p: Vec<u16> = s.split('-').filter_map(|x| x.parse().ok()).collect();
            match p.as_slice() {
                [y, m, dd] => emv::util::Date {
                    year: *y,
                    month: *m as u8,
                    day: *dd as u8,
                },
                _ => return Err(bad("--date must be YYYY-MM-DD".into())),
            }
        }
        None => {
            use chrono::Datelike;
            let n = chrono::Local::now();
            emv::util::Date {
                year: n.year() as u16,
                month: n.month() as u8,
                day: n.day() as u8,
            }
        }
    };
    let rid: [u8; 5] = match hexarg("--rid", a.rid)? {
        Some(r) => r
            .try_into()
            .map_err(|_| bad("--rid must be 5 bytes".into()))?,
        None => [t::AID_CARD, t::DF_NAME, t::AID_TERMINAL]
            .iter()
            .find_map(|tag| {
                d.get(*tag)
                    .and_then(|v| v.get(..5))
                    .and_then(|v| v.try_into().ok())
            })
            .ok_or_else(|| bad("no RID: give --rid or an AID (4F, 84, 9F06) in the TLV".into()))?,
    };
    let index = match hexarg("--index", a.index)? {
        Some(i) if i.len() == 1 => i[0],
        Some(_) => return Err(bad("--index must be 1 byte".into())),
        None => *d
            .get(t::CA_PK_INDEX)
            .and_then(|v| v.first())
            .ok_or_else(|| bad("no CA key index: give --index or 8F".into()))?,
    };
    let ca = match (
        hexarg("--modulus", a.modulus)?,
        hexarg("--exponent", a.exponent)?,
    ) {
        (Some(modulus), exponent) => CaPublicKey {
            rid,
            index,
            modulus,
            exponent: exponent.unwrap_or(vec![3]),
            checksum: None,
            expiry: None,
        },
        (None, _) => a
            .capks
            .iter()
            .find(|k| k.rid == rid && k.index == index)
            .cloned()
            .ok_or_else(|| {
                bad(format!(
                    "no CA key {} {index:02X} configured: give --modulus and --exponent",
                    hex(&rid)
                ))
            })?,
    };
    let pan = d.get(t::PAN).and_then(emv::card::Pan::from_cn).or_else(|| {
        d.get(t::TRACK2)
            .and_then(emv::card::Track2::parse)
            .map(|t2| t2.pan())
    });
    let pan_digits = pan
        .as_ref()
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    let static_data = hexarg("--static", a.static_data)?.unwrap_or_default();
    let mut out = vec![format!(
        "CA key {} {:02X}: {} bits, exponent {}, check sum {}",
        hex(&rid),
        index,
        ca.modulus.len() * 8,
        hex(&ca.exponent),
        hex(&ca.compute_checksum(&RustCrypto))
    )];
    let fail = |mut out: Vec<String>,
                step: &str,
                e: &dyn std::fmt::Display|
     -> Result<(String, bool), ToolError> {
        out.push(format!("FAILED at {step}: {e}"));
        Ok((out.join("\n"), false))
    };
    let Some(icert) = d.get(t::ISSUER_PK_CERT) else {
        return fail(out, "issuer certificate", &"no 90 in the data");
    };
    if let Some(r) = oda::recover_raw(&RustCrypto, &ca.modulus, &ca.exponent, icert) {
        describe_recovered("issuer public key certificate (90)", &r, &mut out);
    }
    let ipk = match oda::recover_issuer_key(
        &RustCrypto,
        &ca,
        CertData {
            cert: icert,
            remainder: d.get(t::ISSUER_PK_REMAINDER).unwrap_or_default(),
            exponent: d.get(emv::tlv::Tag::new(0x9F32)).unwrap_or(&[3]),
        },
        &pan_digits,
        today,
    ) {
        Ok(k) => k,
        Err(e) => return fail(out, "issuer certificate", &e),
    };
    out.push(format!("  OK: issuer key {} bits", ipk.modulus.len() * 8));
    if let Some(ssad) = d.get(t::SSAD) {
        if let Some(r) = oda::recover_raw(&RustCrypto, &ipk.modulus, &ipk.exponent, ssad) {
            describe_recovered("signed static application data (93)", &r, &mut out);
        }
        match oda::verify_ssad(&RustCrypto, &ipk, ssad, &static_data) {
            Ok(dac) => out.push(format!("  OK: SDA, data authentication code {}", hex(&dac))),
            Err(e) => return fail(out, "SDA", &e),
        }
    }
    let Some(ccert) = d.get(t::ICC_PK_CERT) else {
        out.push("no ICC certificate (9F46): SDA only".into());
        return Ok((out.join("\n"), true));
    };
    if let Some(r) = oda::recover_raw(&RustCrypto, &ipk.modulus, &ipk.exponent, ccert) {
        describe_recovered("ICC public key certificate (9F46)", &r, &mut out);
    }
    let icc = match oda::recover_icc_key(
        &RustCrypto,
        &ipk,
        CertData {
            cert: ccert,
            remainder: d.get(emv::tlv::Tag::new(0x9F48)).unwrap_or_default(),
            exponent: d.get(emv::tlv::Tag::new(0x9F47)).unwrap_or(&[3]),
        },
        &static_data,
        &pan_digits,
        today,
    ) {
        Ok(k) => k,
        Err(e) => return fail(out, "ICC certificate", &e),
    };
    out.push(format!("  OK: ICC key {} bits", icc.modulus.len() * 8));
    if let Some(sdad) = d.get(t::SDAD) {
        let dynamic = match hexarg("--dynamic", a.dynamic)? {
            Some(v) => v,
            None => {
                // fDDA version 01 from the TLV: UN || amount || currency || 9F69.
                let mut v = d.get(t::UNPREDICTABLE_NUMBER).unwrap_or_default().to_vec();
                if let Some(car) = d
                    .get(t::CARD_AUTH_RELATED_DATA)
                    .filter(|c| c.first() == Some(&1))
                {
                    v.extend_from_slice(d.get(t::AMOUNT_AUTHORISED).unwrap_or_default());
                    v.extend_from_slice(d.get(t::TXN_CURRENCY).unwrap_or_default());
                    v.extend_from_slice(car);
                }
                v
            }
        };
        if let Some(r) = oda::recover_raw(&RustCrypto, &icc.modulus, &icc.exponent, sdad) {
            describe_recovered("signed dynamic application data (9F4B)", &r, &mut out);
        }
        match oda::verify_fdda(&RustCrypto, &icc, sdad, &dynamic) {
            Ok(dd) => out.push(format!(
                "  OK: dynamic signature, ICC dynamic data {}",
                hex(&dd)
            )),
            Err(e) => return fail(out, "dynamic signature", &e),
        }
    }
    out.push("all checks passed".into());
    Ok((out.join("\n"), true))
}

/// Arguments of `kassa tool arqc`.
#[derive(Debug)]
pub struct ArqcArgs<'a> {
    /// Cryptogram version name.
    pub cvn: &'a str,
    /// Issuer master key, hex.
    pub imk: &'a str,
    /// PAN digits.
    pub pan: &'a str,
    /// PAN sequence number.
    pub psn: u8,
    /// TAG=HEX data objects.
    pub data: &'a [String],
    /// A cryptogram to verify.
    pub verify: Option<&'a str>,
    /// An authorization response code for the ARPC ("00", or 4 hex digits).
    pub arpc: Option<&'a str>,
}

/// `kassa tool arqc`: derives the card key (and session key), computes the ARQC, verifies
/// one, computes the ARPC. Returns the text and whether a `--verify` matched.
pub fn arqc(a: &ArqcArgs<'_>) -> Result<(String, bool), ToolError> {
    use emv::crypto::{self, AcData, Cvn, Key16};
    let bad = |m: String| ToolError(format!("arqc: {m}"));
    let cvn = Cvn::from_name(a.cvn).ok_or_else(|| {
        bad(format!(
            "unknown cryptogram version {:?} (visa-10, visa-18, mastercard-16, mastercard-17, mastercard-20, mastercard-21)",
            a.cvn
        ))
    })?;
    let imk = Key16::from_hex(a.imk).ok_or_else(|| bad("--imk must be 32 hex digits".into()))?;
    if !a.pan.bytes().all(|c| c.is_ascii_digit()) || a.pan.len() < 8 || a.pan.len() > 19 {
        return Err(bad("--pan must be 8-19 digits".into()));
    }
    if a.psn > 99 {
        return Err(bad("--psn must be 0-99".into()));
    }
    let mut store = emv::tlv::TagStore::new();
    for item in a.data {
        let (tag, value) = item
            .split_once('=')
            .ok_or_else(|| bad(format!("{item:?} is not TAG=HEX")))?;
        let raw =
            u32::from_str_radix(tag, 16).map_err(|_| bad(format!("{tag:?} is not a hex tag")))?;
        let v = emv::util::unhex(value)
            .map_err(|at| bad(format!("{tag}: invalid hex at digit {at}")))?;
        store.insert(emv::tlv::Tag::new(raw), v);
    }
    let data =
        AcData::from_store(&store).map_err(|t| bad(format!("missing or wrongly sized {t}")))?;
    if data.mac_input(cvn).is_none() {
        return Err(bad(format!("9F10 is too short for {}", cvn.name())));
    }
    let mk = crypto::derive_icc_master_key(&imk, a.pan, a.psn)
        .ok_or_else(|| bad("cannot derive the card key".into()))?;
    let ac = crypto::application_cryptogram(cvn, &mk, &data)
        .ok_or_else(|| bad("cannot compute".into()))?;
    let key_line =
        |label: &str, k: &Key16| format!("{label:<22} {} (KCV {})", hex(k.expose()), hex(&k.kcv()));
    let mut out = vec![
        format!(
            "cryptogram version     {} (CVN {:02X})",
            cvn.name(),
            cvn.id()
        ),
        key_line("ICC master key (MK-AC)", &mk),
    ];
    let sk = crypto::ac_key(cvn, &mk, &data);
    if cvn != Cvn::Visa10 {
        out.push(key_line("session key (SK-AC)", &sk));
    }
    out.push(format!(
        "MAC input              {}",
        hex(&data.mac_input(cvn).unwrap_or_default())
    ));
    out.push(format!("ARQC                   {}", hex(&ac)));
    let mut matched = true;
    if let Some(v) = a.verify {
        let given = emv::util::unhex(v)
            .map_err(|at| bad(format!("--verify: invalid hex at digit {at}")))?;
        matched = given == ac;
        out.push(format!(
            "verify                 {} {}",
            hex(&given),
            if matched { "MATCHES" } else { "DOES NOT MATCH" }
        ));
    }
    if let Some(arc) = a.arpc {
        let arc: [u8; 2] = if arc.len() == 2 {
            [arc.as_bytes()[0], arc.as_bytes()[1]]
        } else {
            emv::util::unhex(arc)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| bad("--arpc takes a 2-character ARC (00) or 4 hex digits".into()))?
        };
        let iad = crypto::issuer_authentication_data(cvn, &mk, &data, ac, arc);
        out.push(format!("issuer auth data (91)  {}", hex(&iad)));
        let arpc_len = if cvn == Cvn::Visa18 { 4 } else { 8 };
        out.push(format!("ARPC                   {}", hex(&iad[..arpc_len])));
    }
    Ok((out.join("\n"), matched))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_errors_name_the_position() {
        assert_eq!(read_hex("9F 02\n06", "t").unwrap(), vec![0x9F, 0x02, 0x06]);
        assert_eq!(
            read_hex("9F0", "t").unwrap_err().0,
            "t: odd number of hex digits (3)"
        );
        assert_eq!(
            read_hex("9F0G", "t").unwrap_err().0,
            "t: invalid hex character 'G' at digit 3 (byte 1)"
        );
        assert!(read_hex("  ", "t").is_err());
    }
}

/// Reads a QR payload from the argument, or from stdin when it is `-` (the trailing
/// newline is dropped; nothing else is touched: spaces are part of a payload).
fn read_payload(arg: &str) -> Result<String, ToolError> {
    if arg != "-" {
        return Ok(arg.to_string());
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| ToolError(format!("qr decode: reading stdin: {e}")))?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

/// `kassa tool qr decode`: every field with its name, the CRC checked. Returns the text
/// and whether the payload is valid (an invalid one is exit code 1, with the tag and rule).
pub fn qr_decode(arg: &str, json_out: bool) -> Result<(String, bool), ToolError> {
    use emv::qr::MerchantQr;
    let payload = read_payload(arg)?;
    let qr = match MerchantQr::decode(&payload) {
        Ok(qr) => qr,
        Err(e) => {
            let text = if json_out {
                serde_json::to_string_pretty(&json!({
                    "valid": false,
                    "error": {
                        "tag": e.tag.to_string(),
                        "rule": e.rule.code(),
                        "message": e.to_string(),
                    },
                }))
                .unwrap_or_default()
            } else {
                format!("invalid: {e}")
            };
            return Ok((text, false));
        }
    };
    let crc = &payload[payload.len() - 4..];
    let currency = qr
        .currency
        .parse::<u16>()
        .ok()
        .and_then(emv::codes::currency);
    if json_out {
        let v = json!({
            "valid": true,
            "initiation": qr.initiation.map(|i| match i {
                emv::qr::Initiation::Static => "static",
                emv::qr::Initiation::Dynamic => "dynamic",
            }),
            "merchant_name": qr.merchant_name,
            "merchant_city": qr.merchant_city,
            "amount": qr.amount,
            "currency": qr.currency,
            "currency_alpha": currency.map(|c| c.alpha),
            "reference": qr.reference(),
            "crc": crc.to_ascii_uppercase(),
            "fields": qr.fields().iter().map(|f| json!({
                "tag": f.tag, "name": f.name, "value": f.value,
            })).collect::<Vec<_>>(),
        });
        return Ok((serde_json::to_string_pretty(&v).unwrap_or_default(), true));
    }
    let mut out: Vec<String> = qr
        .fields()
        .iter()
        .map(|f| {
            let extra = match f.tag.as_str() {
                "01" if f.value == "11" => " (static)",
                "01" => " (dynamic)",
                "53" => currency.map(|c| c.alpha).unwrap_or(""),
                _ => "",
            };
            let extra = if f.tag == "53" && !extra.is_empty() {
                format!(" ({extra})")
            } else {
                extra.to_string()
            };
            format!("{:<6} {:<56} {}{extra}", f.tag, f.name, f.value)
        })
        .collect();
    out.push(format!("{:<6} {:<56} {} (valid)", "63", "CRC", crc));
    Ok((out.join("\n"), true))
}

/// What `kassa tool qr encode` puts in a code.
#[derive(Debug, Default)]
pub struct QrEncodeArgs<'a> {
    /// 59.
    pub merchant_name: &'a str,
    /// 60.
    pub city: &'a str,
    /// 52.
    pub mcc: &'a str,
    /// 53: numeric or alphabetic ISO 4217.
    pub currency: &'a str,
    /// 58.
    pub country: &'a str,
    /// 54 in major units ("12.34"); makes the code dynamic unless `static_code`.
    pub amount: Option<&'a str>,
    /// 01 = 11 even with an amount.
    pub static_code: bool,
    /// 26.. templates: "GUI,ID=VALUE,...".
    pub accounts: &'a [String],
    /// 02-25: "ID=VALUE".
    pub schemes: &'a [String],
    /// 62.05.
    pub reference: Option<&'a str>,
    /// 62.07.
    pub terminal_label: Option<&'a str>,
    /// 62.01.
    pub bill_number: Option<&'a str>,
    /// 61.
    pub postal_code: Option<&'a str>,
    /// 55-57: prompt, fixed:AMOUNT, percent:P.
    pub tip: Option<&'a str>,
    /// 64.00.
    pub alt_language: Option<&'a str>,
    /// 64.01.
    pub alt_name: Option<&'a str>,
    /// 64.02.
    pub alt_city: Option<&'a str>,
}

fn id_value(s: &str, what: &str) -> Result<(u8, String), ToolError> {
    let (id, v) = s
        .split_once('=')
        .ok_or_else(|| ToolError(format!("qr encode: {what} {s:?}: expected ID=VALUE")))?;
    let id: u8 = id
        .parse()
        .ok()
        .filter(|i: &u8| *i <= 99)
        .ok_or_else(|| ToolError(format!("qr encode: {what} {s:?}: the ID is 00 to 99")))?;
    Ok((id, v.to_string()))
}

/// Builds the code `kassa tool qr encode` describes.
pub fn qr_build(a: &QrEncodeArgs) -> Result<emv::qr::MerchantQr, ToolError> {
    use emv::qr::{AdditionalData, Initiation, MerchantAccount, MerchantLanguage, Template, Tip};
    let currency = match a.currency.parse::<u16>() {
        Ok(n) => emv::codes::currency(n),
        Err(_) => emv::codes::currency_by_alpha(a.currency),
    }
    .ok_or_else(|| ToolError(format!("qr encode: unknown currency {:?}", a.currency)))?;
    let amount = match a.amount {
        None => None,
        Some(t) => {
            let minor = emv::qr::amount_minor(t, currency.exponent).ok_or_else(|| {
                ToolError(format!(
                    "qr encode: amount {t:?} is not an amount in {} ({} decimals)",
                    currency.alpha, currency.exponent
                ))
            })?;
            Some(emv::qr::amount_text(minor, currency.exponent))
        }
    };
    let mut accounts = Vec::new();
    for s in a.schemes {
        let (id, value) = id_value(s, "--scheme")?;
        accounts.push(MerchantAccount::Scheme { id, value });
    }
    for (i, s) in a.accounts.iter().enumerate() {
        let mut parts = s.split(',');
        let gui = parts.next().unwrap_or("").to_string();
        let fields = parts
            .map(|p| id_value(p, "--account"))
            .collect::<Result<Vec<_>, _>>()?;
        accounts.push(MerchantAccount::Template(Template {
            id: 26 + i as u8,
            gui,
            fields,
        }));
    }
    if accounts.is_empty() {
        return Err(ToolError(
            "qr encode: give at least one --account GUI[,ID=VALUE...] or --scheme ID=VALUE".into(),
        ));
    }
    let tip = match a.tip {
        None => None,
        Some("prompt") => Some(Tip::Prompt),
        Some(t) => match t.split_once(':') {
            Some(("fixed", v)) => Some(Tip::Fixed(v.to_string())),
            Some(("percent", v)) => Some(Tip::Percentage(v.to_string())),
            _ => {
                return Err(ToolError(format!(
                    "qr encode: --tip {t:?}: expected prompt, fixed:AMOUNT or percent:P"
                )));
            }
        },
    };
    let additional = AdditionalData {
        reference_label: a.reference.map(str::to_string),
        terminal_label: a.terminal_label.map(str::to_string),
        bill_number: a.bill_number.map(str::to_string),
        ..AdditionalData::default()
    };
    let language = match (a.alt_language, a.alt_name) {
        (None, None) => None,
        (Some(l), Some(n)) => Some(MerchantLanguage {
            language: l.to_string(),
            name: n.to_string(),
            city: a.alt_city.map(str::to_string),
            rfu: vec![],
        }),
        _ => {
            return Err(ToolError(
                "qr encode: --alt-language and --alt-name go together".into(),
            ));
        }
    };
    Ok(emv::qr::MerchantQr {
        initiation: Some(if amount.is_some() && !a.static_code {
            Initiation::Dynamic
        } else {
            Initiation::Static
        }),
        accounts,
        mcc: a.mcc.to_string(),
        currency: format!("{:03}", currency.numeric),
        amount,
        tip,
        country: a.country.to_string(),
        merchant_name: a.merchant_name.to_string(),
        merchant_city: a.city.to_string(),
        postal_code: a.postal_code.map(str::to_string),
        additional: (additional != AdditionalData::default()).then_some(additional),
        language,
        rfu: vec![],
        unreserved: vec![],
    })
}

/// `kassa tool qr encode`: the payload (and a PNG of the code with `png`).
pub fn qr_encode(
    a: &QrEncodeArgs,
    png: Option<&std::path::Path>,
    json_out: bool,
) -> Result<String, ToolError> {
    let qr = qr_build(a)?;
    let payload = qr
        .encode()
        .map_err(|e| ToolError(format!("qr encode: {e}")))?;
    if let Some(path) = png {
        let raster = drivers::escpos::qr_raster(&payload, 8)
            .ok_or_else(|| ToolError("qr encode: the payload does not fit a QR code".into()))?;
        crate::paper::save_png(&raster, path)
            .map_err(|e| ToolError(format!("qr encode: {}: {e}", path.display())))?;
    }
    if json_out {
        let v = json!({
            "payload": payload,
            "crc": &payload[payload.len() - 4..],
            "characters": payload.chars().count(),
            "png": png.map(|p| p.display().to_string()),
        });
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    Ok(payload)
}

fn key16(hex_text: &str, what: &str) -> Result<acquirer::pin::Key16, ToolError> {
    let b = zeroize::Zeroizing::new(read_hex(hex_text, what)?);
    acquirer::pin::Key16::from_slice(&b)
        .map_err(|_| ToolError(format!("{what}: a key is 32 hex digits")))
}

/// `kassa tool dukpt`: the keys of one KSN, in hex (an engineer's tool: keys are printed).
pub fn dukpt(bdk: &str, ksn: &str, aes: bool, json_out: bool) -> Result<String, ToolError> {
    use acquirer::pin::{aes_dukpt, tdes_dukpt};
    let bdk = key16(bdk, "dukpt --bdk")?;
    let ksn_bytes = read_hex(ksn, "dukpt --ksn")?;
    let err = |e: acquirer::pin::PinError| ToolError(format!("dukpt: {e}"));
    let rows: Vec<(&str, String)> = if aes {
        let k = aes_dukpt::Ksn::from_slice(&ksn_bytes).map_err(err)?;
        let ik = aes_dukpt::initial_key(&bdk, &k.initial_key_id);
        let dk = aes_dukpt::derivation_key(&ik, &k).map_err(err)?;
        let w = |u| aes_dukpt::working_key(&ik, &k, u).map(|k| hex(&k.0));
        vec![
            ("initial_key_id", hex(&k.initial_key_id)),
            ("counter", format!("{:08X}", k.counter)),
            ("initial_key", hex(&ik.0)),
            ("derivation_key", hex(&dk.0)),
            ("pin_key", w(aes_dukpt::Usage::PinEncryption).map_err(err)?),
            ("mac_key", w(aes_dukpt::Usage::MacGeneration).map_err(err)?),
            (
                "data_key",
                w(aes_dukpt::Usage::DataEncryption).map_err(err)?,
            ),
        ]
    } else {
        let k: [u8; 10] = ksn_bytes
            .as_slice()
            .try_into()
            .map_err(|_| ToolError("dukpt --ksn: a TDES KSN is 20 hex digits".into()))?;
        let ipek = tdes_dukpt::ipek(&bdk, &k);
        let tk = tdes_dukpt::transaction_key(&ipek, &k).map_err(err)?;
        let variant = |mask: [u8; 16]| {
            let mut v = tk.0;
            for (a, m) in v.iter_mut().zip(mask) {
                *a ^= m;
            }
            hex(&v)
        };
        let pin = [0, 0, 0, 0, 0, 0, 0, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0xFF];
        let mac = [0, 0, 0, 0, 0, 0, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0];
        vec![
            (
                "counter",
                format!("{:06X}", u32::from_be_bytes([0, k[7] & 0x1F, k[8], k[9]])),
            ),
            ("initial_key", hex(&ipek.0)),
            ("transaction_key", hex(&tk.0)),
            ("pin_key", variant(pin)),
            ("mac_key", variant(mac)),
        ]
    };
    if json_out {
        let mut m = serde_json::Map::new();
        m.insert("scheme".into(), json!(if aes { "aes128" } else { "tdes" }));
        for (k, v) in rows {
            m.insert(k.into(), json!(v));
        }
        return Ok(serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_default());
    }
    Ok(rows
        .iter()
        .map(|(k, v)| format!("{k:<16} {v}"))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// `kassa tool pinblock`: the clear fields and, with a key, the enciphered block.
pub fn pinblock(
    format: u8,
    pin: &str,
    pan: &str,
    key: Option<&str>,
    fill: Option<&str>,
    json_out: bool,
) -> Result<String, ToolError> {
    use acquirer::pin;
    let err = |e: pin::PinError| ToolError(format!("pinblock: {e}"));
    let mut rows: Vec<(&str, String)> = Vec::new();
    match format {
        0 => {
            if fill.is_some() {
                return Err(ToolError("pinblock: --fill is for format 4".into()));
            }
            rows.push((
                "clear_block",
                hex(&*pin::format0_clear(pin, pan).map_err(err)?),
            ));
            if let Some(k) = key {
                let k = key16(k, "pinblock --key")?;
                rows.push(("block", hex(&pin::format0(pin, pan, &k).map_err(err)?)));
            }
        }
        4 => {
            let fill: [u8; 8] = match fill {
                Some(f) => read_hex(f, "pinblock --fill")?
                    .try_into()
                    .map_err(|_| ToolError("pinblock --fill: 16 hex digits".into()))?,
                None => {
                    let mut f = [0u8; 8];
                    getrandom::fill(&mut f)
                        .map_err(|e| ToolError(format!("pinblock: no randomness: {e}")))?;
                    f
                }
            };
            rows.push((
                "pin_field",
                hex(&*pin::format4_pin_field(pin, &fill).map_err(err)?),
            ));
            rows.push(("pan_field", hex(&pin::format4_pan_field(pan).map_err(err)?)));
            if let Some(k) = key {
                let k = key16(k, "pinblock --key")?;
                rows.push((
                    "block",
                    hex(&pin::format4(pin, pan, &k, &fill).map_err(err)?),
                ));
            }
        }
        other => {
            return Err(ToolError(format!(
                "pinblock: format {other} is not supported (0 or 4)"
            )));
        }
    }
    if json_out {
        let mut m = serde_json::Map::new();
        m.insert("format".into(), json!(format));
        for (k, v) in rows {
            m.insert(k.into(), json!(v));
        }
        return Ok(serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_default());
    }
    Ok(rows
        .iter()
        .map(|(k, v)| format!("{k:<12} {v}"))
        .collect::<Vec<_>>()
        .join("\n"))
}
