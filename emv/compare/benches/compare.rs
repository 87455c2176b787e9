//! Kassa against OpenSSL (libcrypto, C) on the same inputs, in one run, as ratios:
//!
//! - TLV: walking one transaction's card data (every object, into every template) with
//!   `emv::tlv::walk`, and with OpenSSL's BER header parser `ASN1_get_object` doing the same
//!   walk;
//! - RSA recovery (the public-key operation of offline data authentication, Book 2 §5.3):
//!   `emv::oda::RustCrypto` (num-bigint-dig) against `RSA_public_decrypt` without padding, for
//!   a 1984-bit CA key and a 1024-bit ICC key, exponent 3 and 65537.
//!
//! Run: `cargo bench -p kassa-compare` (docs/PERFORMANCE.md has the figures).

use std::hint::black_box;
use std::time::{Duration, Instant};

use emv::oda::Crypto;
use openssl::bn::BigNum;
use openssl::rsa::{Padding, Rsa};
// Links libcrypto for ASN1_get_object.
use openssl_sys as _;

#[path = "../../benches/common/mod.rs"]
mod common;

/// Median time per call of `f` over batches filling about 300 ms.
fn time(mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    let mut calls = 0u32;
    while t.elapsed() < Duration::from_millis(30) {
        f();
        calls += 1;
    }
    let per_batch = calls.max(1);
    let mut samples: Vec<Duration> = (0..11)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed() / per_batch
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

#[allow(unsafe_code)]
unsafe extern "C" {
    /// libcrypto's BER header parser (crypto/asn1/asn1_lib.c).
    fn ASN1_get_object(
        pp: *mut *const u8,
        plength: *mut std::os::raw::c_long,
        ptag: *mut std::os::raw::c_int,
        pclass: *mut std::os::raw::c_int,
        omax: std::os::raw::c_long,
    ) -> std::os::raw::c_int;
}

/// Counts objects the way `tlv::walk` visits them, with OpenSSL parsing each header.
#[allow(unsafe_code)]
fn openssl_walk(mut data: &[u8], n: &mut usize) -> bool {
    use std::os::raw::{c_int, c_long};
    while !data.is_empty() {
        // Padding between objects (Book 3 §5.4).
        if data[0] == 0x00 || data[0] == 0xFF {
            data = &data[1..];
            continue;
        }
        let mut p = data.as_ptr();
        let (mut len, mut tag, mut class): (c_long, c_int, c_int) = (0, 0, 0);
        // SAFETY: `p` points into `data` and OpenSSL reads at most `data.len()` bytes; it
        // writes only through the four pointers, which point to live locals.
        let ret = unsafe {
            ASN1_get_object(&mut p, &mut len, &mut tag, &mut class, data.len() as c_long)
        };
        if ret & 0x80 != 0 {
            return false;
        }
        let header = p as usize - data.as_ptr() as usize;
        let end = header + len as usize;
        if end > data.len() {
            return false;
        }
        *n += 1;
        if ret & 0x20 != 0 && !openssl_walk(&data[header..end], n) {
            return false;
        }
        data = &data[end..];
    }
    true
}

fn main() {
    println!(
        "Kassa against OpenSSL {} (C), same inputs",
        openssl::version::version()
    );
    // TLV.
    let data = common::card_data();
    let bytes: usize = data.iter().map(Vec::len).sum();
    let (mut a, mut b) = (0usize, 0usize);
    for r in &data {
        emv::tlv::walk(r, |_, _| a += 1).expect("valid");
        assert!(openssl_walk(r, &mut b));
    }
    assert_eq!(a, b, "both walks see the same objects");
    let kassa = time(|| {
        let mut n = 0usize;
        for r in &data {
            emv::tlv::walk(black_box(r), |_, _| n += 1).ok();
        }
        black_box(n);
    });
    let c = time(|| {
        let mut n = 0usize;
        for r in &data {
            openssl_walk(black_box(r), &mut n);
        }
        black_box(n);
    });
    println!(
        "tlv walk, {bytes} bytes, {a} objects: kassa {:.2} us, openssl {:.2} us, kassa/openssl {:.2}",
        kassa.as_secs_f64() * 1e6,
        c.as_secs_f64() * 1e6,
        kassa.as_secs_f64() / c.as_secs_f64()
    );
    // RSA recovery.
    for (bits, e) in [(1984u32, 3u32), (1984, 65537), (1024, 3), (1024, 65537)] {
        let key = Rsa::generate_with_e(bits, &BigNum::from_u32(e).expect("e")).expect("key");
        let n = key.n().to_vec();
        let ex = key.e().to_vec();
        // An input below the modulus, as a certificate is.
        let mut input = vec![0x6Au8; n.len()];
        input[0] = 0x6A.min(n[0].saturating_sub(1));
        let public = Rsa::from_public_components(
            BigNum::from_slice(&n).expect("n"),
            BigNum::from_slice(&ex).expect("e"),
        )
        .expect("public key");
        let mut out = vec![0u8; n.len()];
        let got = public
            .public_decrypt(&input, &mut out, Padding::NONE)
            .expect("raw RSA");
        assert_eq!(
            emv::oda::RustCrypto.rsa_public(&n, &ex, &input),
            out[..got].to_vec(),
            "both recover the same bytes"
        );
        let kassa = time(|| {
            black_box(emv::oda::RustCrypto.rsa_public(&n, &ex, black_box(&input)));
        });
        let c = time(|| {
            public
                .public_decrypt(black_box(&input), &mut out, Padding::NONE)
                .ok();
            black_box(&out);
        });
        println!(
            "rsa recovery, {bits}-bit modulus, e = {e}: kassa {:.1} us, openssl {:.1} us, kassa/openssl {:.2}",
            kassa.as_secs_f64() * 1e6,
            c.as_secs_f64() * 1e6,
            kassa.as_secs_f64() / c.as_secs_f64()
        );
    }
}
