//! Terminal management input from the network: configuration bundles (`kassa tms apply`, a
//! poll) and HTTP answers and requests (`kassa tms poll`, `kassa tms serve`). The first byte
//! picks which; the rest is the input. Nothing may panic: a bundle is parsed, checked against
//! a trusted key and merged over the defaults, or refused with a typed error; an answer or a
//! request head gets an answer or a typed error.
//!
//! The modules live in the `kassa` binary crate; they are compiled here from their source
//! files, as the config target does.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, clippy::all)]
#[path = "../../terminal-app/src/config.rs"]
mod config;
#[allow(dead_code, clippy::all)]
#[path = "../../terminal-app/src/tms.rs"]
mod tms;
#[allow(dead_code, clippy::all)]
#[path = "../../terminal-app/src/tms_http.rs"]
mod tms_http;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(b) = tms::parse(rest) {
                let key = config::TrustedKey {
                    id: "ops".into(),
                    public_key: [7; 32],
                    not_after: None,
                };
                let _ = b.verify(&[key], chrono::NaiveDate::MIN);
                let _ = b.config_over(None);
            }
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = tms::parse_payload(text);
            }
        }
        1 => {
            let _ = tms_http::read_answer(rest);
        }
        _ => {
            // A request head to `tms serve` over an empty folder, and a heartbeat body.
            let root = std::env::temp_dir().join("kassa-fuzz-tms-empty");
            let _ = tms_http::answer(&root, rest);
            let _ = tms_http::store_heartbeat(&root, "/health/../x", rest);
        }
    }
});
