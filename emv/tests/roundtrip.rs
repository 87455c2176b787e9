//! Property tests: parse, emit, re-parse gives the same objects, and no input panics.

use emv::apdu::{Command, Response};
use emv::dol;
use emv::tlv::{self, Tag};
use proptest::prelude::*;

/// A valid EMV tag of one to three bytes, primitive or constructed.
fn tag() -> impl Strategy<Value = Tag> {
    prop_oneof![
        // One byte: low five bits not all ones; skip 00 and FF (padding bytes).
        (0x01u8..0xFF)
            .prop_filter("single-byte", |b| b & 0x1F != 0x1F)
            .prop_map(|b| Tag::new(b as u32)),
        // Two bytes: xx1F-style first byte, second byte < 0x80.
        (any::<u8>(), 0x01u8..0x80)
            .prop_map(|(f, s)| Tag::new((((f & 0xE0) | 0x1F) as u32) << 8 | s as u32)),
        // Three bytes.
        (any::<u8>(), 0x81u8..=0xFF, 0x00u8..0x80).prop_map(|(f, s, t)| Tag::new(
            (((f & 0xE0) | 0x1F) as u32) << 16 | (s as u32) << 8 | t as u32
        )),
    ]
}

#[derive(Debug, Clone)]
enum Node {
    Prim(Tag, Vec<u8>),
    Cons(Tag, Vec<Node>),
}

/// Sets or clears the constructed bit; `None` when the first byte would be 00 or FF, which
/// the parser treats as padding between objects.
fn shaped(t: Tag, constructed: bool) -> Option<Tag> {
    let shift = 8 * (t.len() - 1);
    let raw = if constructed {
        t.raw() | (0x20 << shift)
    } else {
        t.raw() & !(0x20 << shift)
    };
    let first = (raw >> shift) as u8;
    (first != 0x00 && first != 0xFF).then(|| Tag::new(raw))
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = (tag(), prop::collection::vec(any::<u8>(), 0..300))
        .prop_filter_map("padding byte", |(t, v)| {
            Some(Node::Prim(shaped(t, false)?, v))
        });
    leaf.prop_recursive(4, 40, 6, |inner| {
        (tag(), prop::collection::vec(inner, 0..6)).prop_filter_map("padding byte", |(t, kids)| {
            Some(Node::Cons(shaped(t, true)?, kids))
        })
    })
}

fn emit(n: &Node, out: &mut Vec<u8>) {
    match n {
        Node::Prim(t, v) => tlv::encode(*t, v, out),
        Node::Cons(t, kids) => {
            tlv::encode_constructed(*t, out, |o| kids.iter().for_each(|k| emit(k, o)))
        }
    }
}

fn collect(buf: &[u8]) -> Result<Vec<(usize, Tag, Vec<u8>)>, tlv::TlvError> {
    let mut v = Vec::new();
    tlv::walk(buf, |depth, o| v.push((depth, o.tag(), o.value().to_vec())))?;
    Ok(v)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_trees_round_trip(nodes in prop::collection::vec(node(), 1..5)) {
        let mut bytes = Vec::new();
        nodes.iter().for_each(|n| emit(n, &mut bytes));
        let objs = collect(&bytes).unwrap();
        // Re-emit the top level from the parsed view: identical bytes.
        let mut again = Vec::new();
        for o in tlv::parse(&bytes) {
            let o = o.unwrap();
            tlv::encode(o.tag(), o.value(), &mut again);
        }
        prop_assert_eq!(&again, &bytes);
        prop_assert_eq!(collect(&again).unwrap(), objs);
    }

    #[test]
    fn arbitrary_bytes_parse_emit_reparse(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        // Whatever parses must re-emit to something that parses to the same objects.
        if let Ok(objs) = collect(&bytes) {
            let mut again = Vec::new();
            for o in tlv::parse(&bytes) {
                let o = o.unwrap();
                tlv::encode(o.tag(), o.value(), &mut again);
            }
            prop_assert_eq!(collect(&again).unwrap(), objs);
        }
    }

    #[test]
    fn dol_parse_build_split(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(entries) = dol::parse(&bytes) {
            let data = dol::build(&entries, |_| Some(&[0x12, 0x34][..]));
            prop_assert_eq!(data.len(), dol::data_len(&entries));
            let parts = dol::split(&entries, &data).unwrap();
            prop_assert_eq!(parts.len(), entries.len());
        }
    }

    #[test]
    fn apdus_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..270)) {
        if let Ok(c) = Command::parse(&bytes) {
            let again = c.to_bytes().unwrap();
            prop_assert_eq!(Command::parse(&again).unwrap(), c);
        }
        if let Ok(r) = Response::parse(&bytes) {
            prop_assert_eq!(r.to_bytes(), bytes);
        }
    }
}
