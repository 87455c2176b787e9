//! Writes the fuzz targets' seed corpora from the virtual cards and the simulators:
//! `fuzz/seeds/kernel/<card>` (each card's real answers to the kernel, as the `kernel` target
//! reads them: a 2-byte length before each), `fuzz/seeds/iso8583/` (authorization requests
//! with the cards' field 55 in both dialects), `fuzz/seeds/pn532/` (frames) and
//! `fuzz/seeds/qr/` (merchant-presented codes).
//!
//! Run: `cargo run -p kassa-sim --example fuzz_seeds`

use std::path::Path;

use acquirer::iso8583::{ASCII87, BCD87, Message};
use drivers::VirtualCard;
use emv::entry::{EntryPoint, Step};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("seed directory");
    std::fs::write(dir.join(name), bytes).expect("seed file");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
    for profile in sim::builtin_profiles() {
        let Ok(mut card) = sim::EmvCard::from_profile(&profile) else {
            continue;
        };
        // Above the CVM limit, so CVM processing runs too.
        let (config, input) = emv::testdata::every_kernel(60_00);
        let mut txn = EntryPoint::new(&config)
            .start(input)
            .expect("transaction starts");
        let mut answers = Vec::new();
        let mut step = txn.begin();
        let outcome = loop {
            match step {
                Step::Transmit(cmd) => {
                    let r = card.process(&cmd.to_bytes().expect("command encodes"));
                    answers.extend_from_slice(&(r.len() as u16).to_be_bytes());
                    answers.extend_from_slice(&r);
                    step = txn.on_response(&r);
                }
                Step::Outcome(o) => break o,
            }
        };
        write(&root.join("kernel"), &profile.name, &answers);
        // The card's request as the host would get it, in both dialects (first byte 0: BCD,
        // 1: ASCII), with a PIN block and KSN for the PIN fields.
        let mut m = Message::new(100);
        m.set_str(2, "4761739001010119")
            .set_str(3, "000000")
            .set_str(4, "000000006000")
            .set_str(11, "000001")
            .set_str(22, "071")
            .set_str(41, "KASSA001")
            .set_str(49, "978")
            .set(52, vec![0x5A; 16])
            .set(53, vec![0x4B; 12]);
        if !outcome.online_data.is_empty() {
            m.set(55, outcome.online_data.clone());
        }
        for (selector, dialect) in [(0u8, &BCD87), (1, &ASCII87)] {
            if let Ok(bytes) = m.encode(dialect) {
                let mut seed = vec![selector];
                seed.extend(bytes);
                write(
                    &root.join("iso8583"),
                    &format!("{}-{}", profile.name, dialect.name),
                    &seed,
                );
            }
        }
    }
    // PN532 frames: an ACK, a firmware version answer, an InListPassiveTarget answer, an error.
    let frames: [(&str, Vec<u8>); 4] = [
        ("ack", vec![0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00]),
        (
            "firmware",
            drivers::pn532::frame::encode(0xD5, &[0x03, 0x32, 0x01, 0x06, 0x07]).expect("frame"),
        ),
        (
            "target",
            drivers::pn532::frame::encode(
                0xD5,
                &[
                    0x4B, 0x01, 0x01, 0x00, 0x04, 0x20, 0x04, 0x08, 0x11, 0x22, 0x33, 0x44,
                ],
            )
            .expect("frame"),
        ),
        (
            "error",
            vec![0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00],
        ),
    ];
    for (name, f) in frames {
        write(&root.join("pn532"), name, &f);
    }
    // QR: the EMVCo specification's example (Chinese language template) and the BR Code.
    for (name, code) in [
        (
            "emvco-example",
            "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A",
        ),
        (
            "pix",
            "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D",
        ),
    ] {
        write(&root.join("qr"), name, code.as_bytes());
    }
    println!("seeds written under {}", root.display());
}
