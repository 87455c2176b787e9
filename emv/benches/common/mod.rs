//! The card data both TLV benchmarks decode: the PPSE and ADF FCIs, the GPO response and six
//! records with certificates (about 1.2 KB), as a reader sees them in one transaction.

use emv::tlv::{self, Tag};

fn obj(tag: u32, value: &[u8], out: &mut Vec<u8>) {
    tlv::encode(Tag::new(tag), value, out);
}

fn template(tag: u32, body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    tlv::encode_constructed(Tag::new(tag), &mut out, body);
    out
}

/// The responses a reader sees for one transaction, concatenated.
pub fn card_data() -> Vec<Vec<u8>> {
    let filler =
        |n: usize, seed: u8| -> Vec<u8> { (0..n).map(|i| seed.wrapping_add(i as u8)).collect() };
    vec![
        template(0x6F, |o| {
            obj(0x84, b"2PAY.SYS.DDF01", o);
            tlv::encode_constructed(Tag::new(0xA5), o, |o| {
                tlv::encode_constructed(Tag::new(0xBF0C), o, |o| {
                    tlv::encode_constructed(Tag::new(0x61), o, |o| {
                        obj(0x4F, &[0xA0, 0, 0, 0, 3, 0x10, 0x10], o);
                        obj(0x50, b"VISA CREDIT", o);
                        obj(0x87, &[1], o);
                    });
                });
            });
        }),
        template(0x6F, |o| {
            obj(0x84, &[0xA0, 0, 0, 0, 3, 0x10, 0x10], o);
            tlv::encode_constructed(Tag::new(0xA5), o, |o| {
                obj(0x50, b"VISA CREDIT", o);
                obj(0x87, &[1], o);
                obj(
                    0x9F38,
                    &[
                        0x9F, 0x66, 4, 0x9F, 2, 6, 0x9F, 3, 6, 0x9F, 0x1A, 2, 0x95, 5, 0x5F, 0x2A,
                        2, 0x9A, 3, 0x9C, 1, 0x9F, 0x37, 4,
                    ],
                    o,
                );
                obj(0x5F2D, b"enfrde", o);
            });
        }),
        template(0x77, |o| {
            obj(0x82, &[0x20, 0x40], o);
            obj(0x94, &[0x10, 1, 3, 0, 0x18, 1, 3, 1], o);
            obj(0x9F36, &[0, 0x2A], o);
            obj(0x9F26, &filler(8, 1), o);
            obj(0x9F27, &[0x80], o);
            obj(0x9F10, &filler(32, 9), o);
            obj(0x9F6C, &[0x40, 0], o);
            obj(0x9F6E, &[0x20, 0x70, 0, 0], o);
            obj(0x9F4B, &filler(128, 3), o);
        }),
        template(0x70, |o| {
            obj(0x57, &filler(19, 0x47), o);
            obj(0x5F20, b"KASSA/TEST CARD", o);
            obj(0x9F1F, &filler(20, 0x30), o);
        }),
        template(0x70, |o| {
            obj(0x5A, &filler(8, 0x47), o);
            obj(0x5F24, &[0x30, 0x12, 0x31], o);
            obj(0x5F25, &[0x20, 0x01, 0x01], o);
            obj(0x5F28, &[0x08, 0x40], o);
            obj(0x5F34, &[0x01], o);
            obj(0x9F07, &[0xFF, 0], o);
            obj(0x8E, &filler(14, 0), o);
            obj(0x9F0D, &filler(5, 1), o);
            obj(0x9F0E, &filler(5, 2), o);
            obj(0x9F0F, &filler(5, 3), o);
        }),
        template(0x70, |o| {
            obj(0x8F, &[0x92], o);
            obj(0x90, &filler(176, 5), o);
            obj(0x9F32, &[3], o);
            obj(0x92, &filler(36, 7), o);
        }),
        template(0x70, |o| {
            obj(0x9F46, &filler(176, 11), o);
            obj(0x9F47, &[3], o);
            obj(0x9F48, &filler(42, 13), o);
            obj(0x9F69, &filler(7, 17), o);
        }),
        template(0x70, |o| {
            obj(0x9F08, &[0, 0x96], o);
            obj(0x9F42, &[0x09, 0x78], o);
            obj(0x9F4A, &[0x82], o);
            obj(0x8C, &filler(27, 21), o);
            obj(0x8D, &filler(12, 23), o);
        }),
    ]
}
