//! EMVCo merchant-presented QR payloads: checking and decoding any text never panics, and a
//! decoded code that encodes again decodes to the same code.
#![no_main]

use emv::qr::{MerchantQr, Payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Payload::new_checked(text) {
        let _ = p.objects().len();
    }
    if let Ok(q) = MerchantQr::decode(text) {
        let _ = q.fields();
        if let Ok(encoded) = q.encode() {
            let again = MerchantQr::decode(&encoded).expect("an encoded code decodes");
            assert_eq!(again.encode().ok(), Some(encoded), "encode is stable");
        }
    }
});
