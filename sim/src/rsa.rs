//! RSA key material for the test PKI: deterministic key generation from a seed, the raw
//! private operation (with the Chinese remainder theorem) that signs EMV certificates and
//! dynamic data, and a TOML form for the key files under `sim/keys/`.
//!
//! These are test keys for virtual cards and the Kassa test CAs. Never use them for anything
//! else.

use std::fmt;

use num_bigint_dig::{BigUint, ModInverse};
use num_traits::{One, Zero};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An RSA key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaKey {
    /// Modulus.
    pub n: BigUint,
    /// Public exponent (3 or 65537 in EMV).
    pub e: BigUint,
    /// Private exponent.
    d: BigUint,
    /// First prime.
    p: BigUint,
    /// Second prime.
    q: BigUint,
}

impl fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RsaKey({} bits, e={}, private part hidden)",
            self.n.bits(),
            self.e
        )
    }
}

/// Errors loading a key file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A field is not hex.
    #[error("{0}: not hex")]
    Hex(&'static str),
    /// The numbers do not form an RSA key.
    #[error("inconsistent key: {0}")]
    Inconsistent(&'static str),
}

/// A deterministic byte stream: SHA-256 over seed || counter. Reproducible test keys.
struct Drbg {
    seed: Vec<u8>,
    counter: u64,
    buf: Vec<u8>,
}

impl Drbg {
    fn new(seed: &[u8]) -> Self {
        Drbg {
            seed: seed.to_vec(),
            counter: 0,
            buf: Vec::new(),
        }
    }

    fn fill(&mut self, out: &mut [u8]) {
        for b in out.iter_mut() {
            if self.buf.is_empty() {
                let mut h = Sha256::new();
                h.update(&self.seed);
                h.update(self.counter.to_be_bytes());
                self.counter += 1;
                self.buf = h.finalize().to_vec();
            }
            *b = self.buf.pop().expect("refilled above");
        }
    }

    fn biguint(&mut self, bits: usize) -> BigUint {
        let mut bytes = vec![0u8; bits.div_ceil(8)];
        self.fill(&mut bytes);
        let extra = bytes.len() * 8 - bits;
        bytes[0] &= 0xFF >> extra;
        BigUint::from_bytes_be(&bytes)
    }
}

const SMALL_PRIMES: &[u32] = &[
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181, 191, 193,
    197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257, 263, 269, 271, 277, 281, 283, 293, 307,
    311, 313, 317, 331, 337, 347, 349, 353, 359, 367, 373, 379, 383, 389, 397, 401, 409, 419, 421,
    431, 433, 439, 443, 449, 457, 461, 463, 467, 479, 487, 491, 499, 503, 509, 521, 523, 541, 547,
    557, 563, 569, 571, 577, 587, 593, 599, 601, 607, 613, 617, 619, 631, 641, 643, 647, 653, 659,
    661, 673, 677, 683, 691, 701, 709, 719, 727, 733, 739, 743, 751, 757, 761, 769, 773, 787, 797,
    809, 811, 821, 823, 827, 829, 839, 853, 857, 859, 863, 877, 881, 883, 887, 907, 911, 919, 929,
    937, 941, 947, 953, 967, 971, 977, 983, 991, 997,
];

/// Miller-Rabin with `rounds` bases drawn from `rng` (FIPS 186-4 C.3.1 style).
fn probably_prime(n: &BigUint, rounds: usize, rng: &mut Drbg) -> bool {
    let one = BigUint::one();
    let two = &one + &one;
    if *n < two {
        return false;
    }
    let n_minus_1 = n - &one;
    let mut d = n_minus_1.clone();
    let mut s = 0u32;
    while (&d & &one).is_zero() {
        d >>= 1;
        s += 1;
    }
    let bits = n.bits();
    'witness: for _ in 0..rounds {
        let a = loop {
            let a = rng.biguint(bits) % n;
            if a >= two && a < n_minus_1 {
                break a;
            }
        };
        let mut x = a.modpow(&d, n);
        if x == one || x == n_minus_1 {
            continue;
        }
        for _ in 1..s {
            x = x.modpow(&two, n);
            if x == n_minus_1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// A prime of exactly `bits` bits with its two top bits set (so two of them make a modulus of
/// exactly twice the size) and `gcd(e, p - 1) = 1`.
fn prime(bits: usize, e: u32, rng: &mut Drbg) -> BigUint {
    loop {
        let mut c = rng.biguint(bits);
        c |= BigUint::one() << (bits - 1);
        c |= BigUint::one() << (bits - 2);
        c |= BigUint::one();
        let small_factor = SMALL_PRIMES.iter().any(|&sp| (&c % sp).is_zero());
        if small_factor {
            continue;
        }
        // p - 1 must not be divisible by e (e is prime: 3 or 65537).
        if (&c % e).is_one() {
            continue;
        }
        if probably_prime(&c, 24, rng) {
            return c;
        }
    }
}

impl RsaKey {
    /// Generates a key of `bits` bits (a multiple of 16) with public exponent `e`,
    /// deterministically from `seed`: the same seed gives the same key.
    pub fn generate(bits: usize, e: u32, seed: &[u8]) -> Result<RsaKey, KeyError> {
        if !bits.is_multiple_of(16) || bits < 512 {
            return Err(KeyError::Inconsistent(
                "key size must be a multiple of 16 bits, at least 512",
            ));
        }
        if e != 3 && e != 65537 {
            return Err(KeyError::Inconsistent("EMV exponents are 3 and 65537"));
        }
        let mut rng = Drbg::new(seed);
        loop {
            let p = prime(bits / 2, e, &mut rng);
            let q = prime(bits / 2, e, &mut rng);
            if p == q {
                continue;
            }
            let n = &p * &q;
            if n.bits() != bits {
                continue;
            }
            let one = BigUint::one();
            let p1 = &p - &one;
            let q1 = &q - &one;
            let g = num_integer::Integer::gcd(&p1, &q1);
            let lambda = &p1 / &g * &q1;
            let e_big = BigUint::from(e);
            let Some(d) = e_big
                .clone()
                .mod_inverse(&lambda)
                .and_then(|d| d.to_biguint())
            else {
                continue;
            };
            return Ok(RsaKey {
                n,
                e: e_big,
                d,
                p,
                q,
            });
        }
    }

    /// Modulus length in bytes.
    pub fn len(&self) -> usize {
        self.n.bits().div_ceil(8)
    }

    /// Always false for a real key.
    pub fn is_empty(&self) -> bool {
        self.n.is_zero()
    }

    /// The modulus, big-endian, exactly [`len`](Self::len) bytes.
    pub fn modulus(&self) -> Vec<u8> {
        left_pad(self.n.to_bytes_be(), self.len())
    }

    /// The public exponent as EMV stores it (`03` or `010001`).
    pub fn exponent(&self) -> Vec<u8> {
        self.e.to_bytes_be()
    }

    /// The raw private operation `m^d mod n` on a block of exactly [`len`](Self::len) bytes,
    /// computed with the CRT. `m` must be smaller than the modulus.
    pub fn private_op(&self, m: &[u8]) -> Vec<u8> {
        let m = BigUint::from_bytes_be(m);
        let one = BigUint::one();
        let dp = &self.d % (&self.p - &one);
        let dq = &self.d % (&self.q - &one);
        let qinv = self
            .q
            .clone()
            .mod_inverse(&self.p)
            .and_then(|v| v.to_biguint())
            .expect("p and q are distinct primes");
        let m1 = (&m % &self.p).modpow(&dp, &self.p);
        let m2 = (&m % &self.q).modpow(&dq, &self.q);
        let diff = if m1 >= m2 {
            &m1 - &m2
        } else {
            &self.p - ((&m2 - &m1) % &self.p)
        };
        let h = (&qinv * diff) % &self.p;
        let s = m2 + h * &self.q;
        left_pad(s.to_bytes_be(), self.len())
    }

    /// The raw public operation `s^e mod n`.
    pub fn public_op(&self, s: &[u8]) -> Vec<u8> {
        let s = BigUint::from_bytes_be(s);
        left_pad(s.modpow(&self.e, &self.n).to_bytes_be(), self.len())
    }

    /// Checks that the numbers form a key: n = p q, e d = 1 mod lcm(p - 1, q - 1).
    pub fn check(&self) -> Result<(), KeyError> {
        if &self.p * &self.q != self.n {
            return Err(KeyError::Inconsistent("n is not p * q"));
        }
        let one = BigUint::one();
        let p1 = &self.p - &one;
        let q1 = &self.q - &one;
        let lambda = &p1 / num_integer::Integer::gcd(&p1, &q1) * &q1;
        if (&self.e * &self.d) % lambda != one {
            return Err(KeyError::Inconsistent("e * d is not 1 mod lambda"));
        }
        Ok(())
    }

    /// The key as its TOML file form.
    pub fn to_file(&self, name: &str, comment: &str) -> KeyFile {
        KeyFile {
            name: name.to_string(),
            comment: comment.to_string(),
            bits: self.n.bits(),
            e: self.e.to_str_radix(16).to_uppercase(),
            n: hexu(&self.n),
            d: hexu(&self.d),
            p: hexu(&self.p),
            q: hexu(&self.q),
        }
    }
}

fn hexu(v: &BigUint) -> String {
    v.to_str_radix(16).to_uppercase()
}

fn left_pad(mut v: Vec<u8>, len: usize) -> Vec<u8> {
    while v.len() < len {
        v.insert(0, 0);
    }
    v
}

/// A key file (`sim/keys/*.toml`). Test keys only.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// The key's name (the file stem).
    pub name: String,
    /// What it is for.
    pub comment: String,
    /// Modulus length in bits.
    pub bits: usize,
    /// Public exponent, hex.
    pub e: String,
    /// Modulus, hex.
    pub n: String,
    /// Private exponent, hex.
    pub d: String,
    /// First prime, hex.
    pub p: String,
    /// Second prime, hex.
    pub q: String,
}

impl KeyFile {
    /// The key, checked.
    pub fn key(&self) -> Result<RsaKey, KeyError> {
        let num = |s: &str, what| BigUint::parse_bytes(s.as_bytes(), 16).ok_or(KeyError::Hex(what));
        let k = RsaKey {
            n: num(&self.n, "n")?,
            e: num(&self.e, "e")?,
            d: num(&self.d, "d")?,
            p: num(&self.p, "p")?,
            q: num(&self.q, "q")?,
        };
        if k.n.bits() != self.bits {
            return Err(KeyError::Inconsistent("bits does not match n"));
        }
        k.check()?;
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify_and_are_reproducible() {
        let k = RsaKey::generate(512, 3, b"unit test key").unwrap();
        k.check().unwrap();
        assert_eq!(k.len(), 64);
        assert_eq!(k.exponent(), vec![3]);
        let mut m = vec![0x6A; 64];
        m[0] = 0x6A;
        let s = k.private_op(&m);
        assert_eq!(k.public_op(&s), m);
        let again = RsaKey::generate(512, 3, b"unit test key").unwrap();
        assert_eq!(again, k, "same seed, same key");
        let other = RsaKey::generate(512, 65537, b"another").unwrap();
        assert!(RsaKey::generate(520, 3, b"x").is_err());
        assert!(RsaKey::generate(512, 5, b"x").is_err());
        assert_ne!(other.n, k.n);
        assert_eq!(other.exponent(), vec![1, 0, 1]);
        let f = k.to_file("t", "test");
        assert_eq!(f.key().unwrap(), k);
        let mut broken = f.clone();
        broken.p = "3".into();
        assert!(broken.key().is_err());
        assert!(!format!("{k:?}").contains(&hexu(&k.d)));
    }
}
