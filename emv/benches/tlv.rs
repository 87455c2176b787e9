//! TLV decoding throughput on a typical contactless card's data: the PPSE and ADF FCIs, the
//! GPO response and six records with certificates (about 1.2 KB).
//!
//! Run: `cargo bench -p kassa-emv --bench tlv`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use emv::tlv::{self, TagStore};

mod common;
use common::card_data;

fn bench(c: &mut Criterion) {
    let data = card_data();
    let total: usize = data.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("tlv");
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_with_input(BenchmarkId::new("walk", total), &data, |b, data| {
        b.iter(|| {
            let mut n = 0usize;
            for r in data {
                tlv::walk(std::hint::black_box(r), |_, _| n += 1).unwrap();
            }
            n
        })
    });
    g.bench_with_input(
        BenchmarkId::new("absorb_into_store", total),
        &data,
        |b, data| {
            b.iter(|| {
                let mut store = TagStore::new();
                for r in data {
                    store.absorb(std::hint::black_box(r), |_| true).unwrap();
                }
                store.len()
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
