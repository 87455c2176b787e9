//! The hostile card suite (issue 16): every virtual card's answers, mutated one at a time.
//!
//! For each built-in card the suite first records a clean transaction through a terminal with
//! every kernel (Entry Point, Book B; kernels 2-7). It then replays the transaction once per
//! mutation of one answer:
//!
//! - each data object of the answer removed (missing data), doubled (duplicate data), emptied,
//!   one byte longer or shorter (lengths), grown to 4000 bytes (a huge record), renamed to a
//!   terminal-sourced tag or an unknown one (tag rewrites), and, for a certificate or a signature
//!   (90, 9F46, 93, 9F4B), one bit flipped (Book 2 §5-§6: recovery must fail);
//! - the whole answer: another status word (errors, warnings, 61xx/6Cxx), truncated, with
//!   trailing garbage, nested 300 templates deep, with a length field larger than the data, or
//!   lost (the card removed at that command, Book A §9.3 / Book B §3.5.1.2).
//!
//! Every mutated transaction must end in an outcome within the command budget, with well-formed
//! online data, the terminal's own amount and unpredictable number, no offline approval without
//! offline data authentication having succeeded, and never ODA success after a flipped
//! signature bit. Slow answers against the reader timeout are the engine's part
//! (`terminal-app/tests/hostile_engine.rs`), as this crate's kernels know no clock.
//!
//! `cargo test -p kassa-sim --test hostile` runs a deterministic sample (every whole-answer
//! mutation and signature flip, a sixth of the other per-object edits); `KASSA_HOSTILE=full` runs all of them
//! (docs/SECURITY.md records the counts).

use drivers::VirtualCard;
use emv::config::{TerminalConfig, TxnInput};
use emv::entry::{EntryPoint, Step};
use emv::outcome::{Oda, Outcome, OutcomeKind};
use emv::tags as t;
use emv::tlv::{self, Tag};
use sim::card::EmvCard;

/// Commands a transaction may take before the suite calls it a hang. A clean transaction takes
/// at most 14 (PPSE, SELECT, GPO, records, GENERATE AC).
const BUDGET: usize = 64;

fn terminal(amount: u64) -> (TerminalConfig, TxnInput) {
    let (mut config, mut input) = emv::testdata::every_kernel(amount);
    for c in &mut config.combinations {
        c.floor_limit = Some(50_00);
    }
    config.capks = sim::emvpki::ca_public_keys();
    input.unpredictable_number = [0x0A, 0x0B, 0x0C, 0x0D];
    (config, input)
}

/// One BER-TLV data object of an answer, as a tree.
#[derive(Clone, Debug)]
enum Node {
    Primitive(Tag, Vec<u8>),
    Constructed(Tag, Vec<Node>),
}

fn tree(buf: &[u8]) -> Option<Vec<Node>> {
    let mut nodes = Vec::new();
    for item in tlv::parse(buf) {
        let o = item.ok()?;
        nodes.push(if o.is_constructed() {
            Node::Constructed(o.tag(), tree(o.value())?)
        } else {
            Node::Primitive(o.tag(), o.value().to_vec())
        });
    }
    Some(nodes)
}

fn encode(nodes: &[Node], out: &mut Vec<u8>) {
    for n in nodes {
        match n {
            Node::Primitive(tag, v) => tlv::encode(*tag, v, out),
            Node::Constructed(tag, kids) => tlv::encode_constructed(*tag, out, |b| encode(kids, b)),
        }
    }
}

/// The paths (child indices) of every primitive object.
fn primitives(nodes: &[Node], prefix: &mut Vec<usize>, out: &mut Vec<(Vec<usize>, Tag)>) {
    for (i, n) in nodes.iter().enumerate() {
        prefix.push(i);
        match n {
            Node::Primitive(tag, _) => out.push((prefix.clone(), *tag)),
            Node::Constructed(_, kids) => primitives(kids, prefix, out),
        }
        prefix.pop();
    }
}

/// The list that holds the object at `path`, and its index there.
fn parent<'a>(nodes: &'a mut Vec<Node>, path: &[usize]) -> (&'a mut Vec<Node>, usize) {
    let (last, up) = path.split_last().expect("a non-empty path");
    let mut list = nodes;
    for &i in up {
        list = match &mut list[i] {
            Node::Constructed(_, kids) => kids,
            Node::Primitive(..) => unreachable!("paths go through constructed objects"),
        };
    }
    (list, *last)
}

/// Certificates and signatures: a flipped bit must make offline data authentication fail.
const SIGNED: [Tag; 4] = [t::ISSUER_PK_CERT, t::ICC_PK_CERT, t::SSAD, t::SDAD];

/// Tags a hostile card might try to set: the terminal's own (amount, unpredictable number,
/// TTQ, TVR) and one no kernel knows.
const REWRITES: [Tag; 5] = [
    t::AMOUNT_AUTHORISED,
    t::UNPREDICTABLE_NUMBER,
    t::TTQ,
    t::TVR,
    Tag::new(0xDF7F),
];

#[derive(Clone, Debug)]
enum ObjectEdit {
    Remove,
    Duplicate,
    Empty,
    Longer,
    Shorter,
    Huge,
    Rename(Tag),
    FlipBit,
}

#[derive(Clone, Debug)]
enum Mutation {
    Object(Vec<usize>, #[allow(dead_code)] Tag, ObjectEdit),
    StatusWord([u8; 2]),
    OnlyStatus,
    Truncate,
    DropLastDataByte,
    TrailingGarbage,
    DeepNesting,
    LengthBeyondData,
    Removed,
}

impl Mutation {
    /// The mutated answer; `None` for a card that left the field.
    fn apply(&self, answer: &[u8]) -> Option<Vec<u8>> {
        let (data, sw) = answer.split_at(answer.len().saturating_sub(2));
        let with_sw = |d: &[u8]| [d, sw].concat();
        Some(match self {
            Mutation::Object(path, _, edit) => {
                let mut nodes = tree(data).expect("the path came from this answer");
                let (list, i) = parent(&mut nodes, path);
                let Node::Primitive(tag, value) = list[i].clone() else {
                    unreachable!("paths lead to primitives")
                };
                match edit {
                    ObjectEdit::Remove => {
                        list.remove(i);
                    }
                    ObjectEdit::Duplicate => list.insert(i, Node::Primitive(tag, value)),
                    ObjectEdit::Empty => list[i] = Node::Primitive(tag, Vec::new()),
                    ObjectEdit::Longer => {
                        list[i] = Node::Primitive(tag, [&value[..], &[0x5A]].concat())
                    }
                    ObjectEdit::Shorter => {
                        list[i] =
                            Node::Primitive(tag, value[..value.len().saturating_sub(1)].into())
                    }
                    ObjectEdit::Huge => list[i] = Node::Primitive(tag, vec![0xA5; 4000]),
                    ObjectEdit::Rename(to) => list[i] = Node::Primitive(*to, value),
                    ObjectEdit::FlipBit => {
                        let mut v = value;
                        let mid = v.len() / 2;
                        if let Some(b) = v.get_mut(mid) {
                            *b ^= 0x01;
                        }
                        list[i] = Node::Primitive(tag, v);
                    }
                }
                let mut out = Vec::new();
                encode(&nodes, &mut out);
                with_sw(&out)
            }
            Mutation::StatusWord(w) => [data, &w[..]].concat(),
            Mutation::OnlyStatus => sw.to_vec(),
            Mutation::Truncate => with_sw(&data[..data.len() / 2]),
            Mutation::DropLastDataByte => with_sw(&data[..data.len().saturating_sub(1)]),
            Mutation::TrailingGarbage => with_sw(&[data, &[0x9F, 0x99, 0x05, 0x01]].concat()),
            Mutation::DeepNesting => {
                let mut body = data.to_vec();
                for _ in 0..300 {
                    let mut outer = Vec::new();
                    tlv::encode(Tag::new(0x70), &body, &mut outer);
                    body = outer;
                }
                with_sw(&body)
            }
            Mutation::LengthBeyondData => {
                let mut d = vec![
                    data.first().copied().unwrap_or(0x77),
                    0x84,
                    0x7F,
                    0xFF,
                    0xFF,
                ];
                d.extend_from_slice(data.get(2..).unwrap_or(&[]));
                with_sw(&d)
            }
            Mutation::Removed => return None,
        })
    }

    /// True for the per-object edits that the sample thins out (all but the signature flips).
    fn sampled(&self) -> bool {
        matches!(self, Mutation::Object(..)) && !self.flips_a_signature()
    }

    fn flips_a_signature(&self) -> bool {
        matches!(self, Mutation::Object(_, _, ObjectEdit::FlipBit))
    }
}

/// Every mutation of `answer`.
fn mutations(answer: &[u8]) -> Vec<Mutation> {
    let data = &answer[..answer.len().saturating_sub(2)];
    let mut list = Vec::new();
    if let Some(nodes) = tree(data) {
        let mut paths = Vec::new();
        primitives(&nodes, &mut Vec::new(), &mut paths);
        for (path, tag) in paths {
            let mut edits = vec![
                ObjectEdit::Remove,
                ObjectEdit::Duplicate,
                ObjectEdit::Empty,
                ObjectEdit::Longer,
                ObjectEdit::Shorter,
                ObjectEdit::Huge,
            ];
            edits.extend(
                REWRITES
                    .iter()
                    .filter(|&&r| r != tag)
                    .map(|&r| ObjectEdit::Rename(r)),
            );
            if SIGNED.contains(&tag) {
                edits.push(ObjectEdit::FlipBit);
            }
            list.extend(
                edits
                    .into_iter()
                    .map(|e| Mutation::Object(path.clone(), tag, e)),
            );
        }
    }
    for sw in [
        [0x6A, 0x82],
        [0x69, 0x85],
        [0x69, 0x84],
        [0x6A, 0x81],
        [0x62, 0x83],
        [0x63, 0xC2],
        [0x6D, 0x00],
        [0x6F, 0x00],
        [0x61, 0x10],
        [0x6C, 0x10],
    ] {
        list.push(Mutation::StatusWord(sw));
    }
    list.extend([
        Mutation::OnlyStatus,
        Mutation::Truncate,
        Mutation::DropLastDataByte,
        Mutation::TrailingGarbage,
        Mutation::DeepNesting,
        Mutation::LengthBeyondData,
        Mutation::Removed,
    ]);
    list
}

/// Runs one transaction; the answer to command `at` goes through `mutation`. The outcome, and
/// each answer the card gave (unmutated).
fn run(
    config: &TerminalConfig,
    input: &TxnInput,
    card: &mut EmvCard,
    mutation: Option<(usize, &Mutation)>,
) -> Result<(Outcome, Vec<Vec<u8>>), String> {
    let mut txn = EntryPoint::new(config)
        .start(input.clone())
        .map_err(|e| format!("start: {e}"))?;
    let mut answers = Vec::new();
    let mut step = txn.begin();
    for n in 0..BUDGET {
        match step {
            Step::Transmit(cmd) => {
                let bytes = cmd.to_bytes().map_err(|e| format!("command {n}: {e}"))?;
                let answer = card.process(&bytes);
                answers.push(answer.clone());
                let given = match mutation {
                    Some((at, m)) if at == n => m.apply(&answer),
                    _ => Some(answer),
                };
                step = match given {
                    Some(a) => txn.on_response(&a),
                    None => txn.on_card_lost(),
                };
            }
            Step::Outcome(o) => return Ok((*o, answers)),
        }
    }
    Err(format!("no outcome within {BUDGET} commands"))
}

/// A cheap deterministic hash for the sample.
fn pick(card: &str, at: usize, i: usize) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in card.bytes().chain(at.to_le_bytes()).chain(i.to_le_bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h.is_multiple_of(6)
}

/// The transactions each card is mutated in: as its profile has it at 12.34 (under the CVM
/// limit), and made offline-capable (`offline = true`, so offline data authentication decides
/// an approval) at 12.34 and at 60.00 (above the CVM limit of 50.00: CVM selection runs).
const VARIANTS: [(bool, u64); 3] = [(false, 12_34), (true, 12_34), (true, 60_00)];

#[test]
fn every_card_under_every_mutation_reaches_a_defined_outcome() {
    let full = std::env::var("KASSA_HOSTILE").is_ok_and(|v| v == "full");
    let profiles = sim::card::builtin_profiles();
    assert!(profiles.len() >= 22, "{} profiles", profiles.len());
    let mut runs = 0usize;
    let mut flips = 0usize;
    let mut by_kind = std::collections::BTreeMap::<&str, usize>::new();
    let mut failures = Vec::new();
    for profile in &profiles {
        for (offline, amount) in VARIANTS {
            let mut p = profile.clone();
            p.application.offline |= offline;
            let (config, input) = terminal(amount);
            let name = format!(
                "{}{} at {amount}",
                p.name,
                if offline { " (offline)" } else { "" }
            );
            let fresh = EmvCard::from_profile(&p).unwrap_or_else(|e| panic!("{e}"));
            let (clean, answers) = run(&config, &input, &mut fresh.clone(), None)
                .unwrap_or_else(|e| panic!("{name} unmutated: {e}"));
            eprintln!(
                "{name}: {} answers, clean outcome {} {:?}",
                answers.len(),
                clean.kind.name(),
                clean.oda
            );
            let offline_without_oda =
                clean.kind == OutcomeKind::Approved && !matches!(clean.oda, Oda::Succeeded(_));
            for (at, answer) in answers.iter().enumerate() {
                for (i, m) in mutations(answer).iter().enumerate() {
                    if !full && m.sampled() && !pick(&name, at, i) {
                        continue;
                    }
                    runs += 1;
                    flips += usize::from(m.flips_a_signature());
                    let what = format!("{name}, answer {at}, {m:?}");
                    let o = match run(&config, &input, &mut fresh.clone(), Some((at, m))) {
                        Ok((o, _)) => o,
                        Err(e) => {
                            failures.push(format!("{what}: {e}"));
                            continue;
                        }
                    };
                    *by_kind.entry(o.kind.name()).or_default() += 1;
                    if let Err(e) = check(&o, amount, m, offline_without_oda) {
                        failures.push(format!("{what}: {e}"));
                    }
                }
            }
        }
    }
    eprintln!(
        "hostile cards: {runs} mutated transactions ({}; {flips} signature bit flips), outcomes {by_kind:?}",
        if full { "full" } else { "sample" }
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(runs > if full { 25_000 } else { 9_000 }, "{runs} runs");
    assert!(flips > 20, "{flips} signature flips");
    assert!(
        by_kind.get("approved").copied().unwrap_or(0) > 100,
        "{by_kind:?}"
    );
}

/// What every mutated outcome must hold.
fn check(o: &Outcome, amount: u64, m: &Mutation, offline_without_oda: bool) -> Result<(), String> {
    let mut online = tlv::TagStore::new();
    online
        .absorb(&o.online_data, |_| false)
        .map_err(|e| format!("online data is not TLV: {e}"))?;
    if let Some(a) = o.data.get(t::AMOUNT_AUTHORISED)
        && emv::util::bcd_n(amount, 6).as_deref() != Some(a)
    {
        return Err(format!("amount became {a:02X?}"));
    }
    if let Some(un) = o.data.get(t::UNPREDICTABLE_NUMBER)
        && un != [0x0A, 0x0B, 0x0C, 0x0D]
    {
        return Err(format!("unpredictable number became {un:02X?}"));
    }
    if o.kind == OutcomeKind::Approved
        && !matches!(o.oda, Oda::Succeeded(_))
        && !offline_without_oda
    {
        return Err(format!("approved offline with {:?}", o.oda));
    }
    if let Mutation::Object(_, _, ObjectEdit::FlipBit) = m {
        if matches!(o.oda, Oda::Succeeded(_)) {
            return Err(format!("ODA succeeded over a flipped bit ({:?})", o.kind));
        }
        if o.kind == OutcomeKind::Approved {
            return Err("approved offline over a flipped bit".into());
        }
    }
    Ok(())
}
