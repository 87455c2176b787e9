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
                Some(Err(e)) => json!({ "raw": hex(&r.data), "tlv_error": e.to_string() }),
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
                out.push(format!("  not BER-TLV ({e}); raw: {}", hex(&r.data)));
            }
            None => {}
        }
    }
    Ok(out.join("\n"))
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
