//! ISO 8583 in both dialects: decoding any bytes never panics, and a decoded message that
//! encodes again decodes to the same message. The first byte picks the dialect.
#![no_main]

use acquirer::iso8583::{ASCII87, BCD87, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let dialect = if selector & 1 == 0 { &BCD87 } else { &ASCII87 };
    if let Ok(m) = Message::decode(body, dialect) {
        // Debug output of anything decoded is safe to print (masked fields).
        let _ = format!("{m:?}");
        if let Ok(again) = m.encode(dialect) {
            let back = Message::decode(&again, dialect).expect("an encoded message decodes");
            assert_eq!(back, m, "decode(encode(m)) == m");
        }
    }
});
