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
