//! PN532 frames as a serial line delivers them: any bytes, in any chunking, never panic the
//! decoder, every count it returns stays inside the buffer, and the target list parser
//! refuses what it cannot read.
#![no_main]

use drivers::pn532::frame::{Decoded, decode};
use drivers::pn532::{FrameBuffer, parse_targets};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Decoded::Frame(_, used) | Decoded::Bad(_, used) => assert!(used <= data.len()),
        Decoded::Incomplete { skip } => assert!(skip <= data.len()),
    }
    // The same bytes arriving a few at a time: the buffer only ever shrinks what it holds.
    let chunk = usize::from(data.first().copied().unwrap_or(1) % 16) + 1;
    let mut buf = FrameBuffer::new();
    for part in data.chunks(chunk) {
        buf.push(part);
        let mut frames = 0;
        while buf.next_frame().is_some() {
            frames += 1;
            assert!(frames <= data.len(), "the frame buffer makes no progress");
        }
    }
    assert!(buf.pending().len() <= data.len());
    let _ = parse_targets(data, false);
    let _ = parse_targets(data, true);
});
