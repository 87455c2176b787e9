//! BER-TLV: parse, emit, re-parse must agree; the decoder and the tag store must not panic.
#![no_main]

use emv::explain::{self, Options};
use emv::tlv::{self, TagStore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut first = Vec::new();
    if tlv::walk(data, |d, o| first.push((d, o.tag(), o.value().to_vec()))).is_ok() {
        let mut again = Vec::new();
        for o in tlv::parse(data) {
            let o = o.expect("walk accepted it");
            tlv::encode(o.tag(), o.value(), &mut again);
        }
        let mut second = Vec::new();
        tlv::walk(&again, |d, o| second.push((d, o.tag(), o.value().to_vec())))
            .expect("re-emitted TLV parses");
        assert_eq!(first, second, "parse-emit-reparse differs");
    }
    let _ = explain::tree(
        data,
        Options {
            kernel: 2,
            reveal: false,
        },
    );
    let _ = explain::tree(
        data,
        Options {
            kernel: 3,
            reveal: true,
        },
    );
    let mut store = TagStore::new();
    let _ = store.absorb(data, |_| true);
});
