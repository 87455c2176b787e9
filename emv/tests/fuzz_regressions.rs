//! Inputs the fuzzers found (fuzz/), kept as regression tests. Each file under
//! `tests/fuzz-regressions/` named `kernel-*` is a card's answers in the `kernel` fuzz
//! target's format (a 2-byte length before each answer): the transaction must reach an outcome
//! without panicking, as the target requires.

use emv::outcome::Outcome;
use emv::tags as t;

/// Drives the every-kernel terminal with `answers` as the fuzz target does.
fn run(answers: &[u8]) -> Outcome {
    emv::testdata::run_with_answers(60_00, answers, 512).expect("an outcome within 512 commands")
}

#[test]
fn every_kernel_input_the_fuzzer_found_reaches_an_outcome() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("kernel-")
        {
            let o = run(&std::fs::read(&path).unwrap());
            let _ = o.kind;
            n += 1;
        }
    }
    assert!(n >= 1, "no kernel regressions in {}", dir.display());
}

/// The fuzzer's first kernel finding: a Visa card whose GPO response carries an empty TTQ
/// (9F66, the reader's own object) overwrote the terminal's, and CVM selection indexed into
/// it. The card may not set the terminal's objects: the TTQ stays what the reader sent.
#[test]
fn a_card_cannot_overwrite_the_terminals_ttq() {
    let bytes = include_bytes!("fuzz-regressions/kernel-card-sets-ttq.bin");
    let o = run(bytes);
    let ttq = o.data.get(t::TTQ).expect("the reader's TTQ");
    assert_eq!(ttq.len(), 4);
    assert_eq!(ttq[0], 0x22, "{ttq:02X?}");
    // The card's malformed amount (9F02 of 7 bytes) did not replace the terminal's either.
    assert_eq!(
        o.data.get(t::AMOUNT_AUTHORISED),
        Some(&[0, 0, 0, 0, 0x60, 0x00][..])
    );
}
