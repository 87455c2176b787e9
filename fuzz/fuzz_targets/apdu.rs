//! APDUs: command parse-emit-reparse, response split, transport assembler, command naming.
#![no_main]

use emv::apdu::{Assembler, Command, Response, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Command::parse(data) {
        let bytes = c.to_bytes().expect("parsed commands re-encode");
        assert_eq!(Command::parse(&bytes).expect("re-parse"), c);
        let _ = emv::explain::describe_command(&c);
    }
    if let Ok(r) = Response::parse(data) {
        assert_eq!(r.to_bytes(), data);
        let _ = emv::explain::status_word(r.sw);
        // Feed the response through the transport layer a few times: it must end.
        let mut a = Assembler::default();
        a.sent(&Command::read_record(1, 1));
        let mut done = false;
        for _ in 0..=emv::apdu::MAX_TRANSPORT_ROUNDS as usize + 1 {
            if let Transport::Done(_) = a.receive(r.clone()) {
                done = true;
                break;
            }
        }
        assert!(done, "transport rounds are bounded");
    }
});
