//! Configuration files (`kassa.toml`): any text is either refused with a typed error naming
//! the file (and the key, for a value that parses but could not work) or accepted as a
//! configuration whose derived settings (EMV terminal configuration, printer, reader, RF
//! timing, amounts) can all be computed without a panic.
//!
//! The parser lives in the `kassa` binary crate; the module is compiled here from its source
//! file, as it is self-contained (it depends only on the library crates).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, clippy::all)]
#[path = "../../terminal-app/src/config.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    match config::Config::parse(path, text) {
        Ok(cfg) => {
            // What `check` accepted must work everywhere it is used.
            cfg.terminal_config()
                .expect("a checked configuration gives a terminal configuration");
            let _ = cfg.escpos();
            let _ = cfg.reader_spec();
            let _ = cfg.rf_timing();
            let _ = cfg.offline_enabled();
            let _ = cfg.tips_enabled();
            let max = cfg.max_amount_minor();
            let _ = cfg.amount("12.34");
            let _ = cfg.offline_amount("1.00");
            let _ = cfg.e_receipt_url(1, 1, 1);
            if cfg.qr.enabled {
                config::merchant_code(&cfg, max.max(1), "K0000000000000000000")
                    .expect("check proved the largest code encodes");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
