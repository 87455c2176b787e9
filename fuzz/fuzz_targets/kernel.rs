//! The whole contactless flow (Entry Point and kernels 2-7) against a card that answers every
//! command with fuzzer bytes: it always reaches an outcome, in a bounded number of commands,
//! without panicking.
//!
//! Input: the card's answers, each a 2-byte big-endian length and that many bytes (the last
//! may be short). When the answers run out, the card has left the field (an empty answer).
//! Seeds (`fuzz/seeds/kernel/`) are the virtual cards' real answers
//! (`cargo run -p kassa-sim --example fuzz_seeds`).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Commands a transaction may send before it must have ended (Entry Point, a kernel, torn
/// recovery and ODA need a few dozen at most).
const MAX_COMMANDS: usize = 512;

fuzz_target!(|data: &[u8]| {
    assert!(
        emv::testdata::run_with_answers(60_00, data, MAX_COMMANDS).is_some(),
        "no outcome after {MAX_COMMANDS} commands"
    );
});
