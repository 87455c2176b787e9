//! Benchmarks only: `cargo bench -p kassa-compare` runs Kassa's TLV walk and RSA recovery
//! against OpenSSL's on the same inputs and prints the ratios (docs/PERFORMANCE.md).
#![forbid(unsafe_code)]
