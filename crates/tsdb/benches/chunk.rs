//! XOR chunk decoding, per sample: the sample iterator (`XorIterator`, one call per sample)
//! against whole-chunk decoding into a buffer (`decode_xor`, what the read path uses).
//!
//! Data: 1,000 chunks of 120 samples at 15 s (Prometheus's usual chunk), in three shapes —
//! float counters like bench/promql.py's (a non-integer slope per series: wide XOR windows),
//! integer counters with scrape jitter of a few ms (small windows, non-zero delta-of-deltas),
//! gauges that often repeat a value, and classic histogram buckets like bench/promql.py's
//! (integer counters that grow by a few units at irregular scrapes and stay the same at the
//! others: the value's control bits change unpredictably). Throughput is in samples, so ns/sample is
//! 1e9 / (elements per second).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tsdb::chunkenc::{XorAppender, XorIterator, decode_xor};

const CHUNKS: usize = 1_000;
const PER_CHUNK: i64 = 120;
const BASE: i64 = 1_700_000_000_000;

fn chunk(f: impl Fn(i64) -> (i64, f64)) -> Vec<u8> {
    let mut a = XorAppender::new();
    for k in 0..PER_CHUNK {
        let (t, v) = f(k);
        assert!(a.append(t, v));
    }
    a.into_bytes()
}

fn shapes() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let float_counters = (0..CHUNKS as i64)
        .map(|s| {
            let (a, b) = (6 + s % 5, 1 + s % 6);
            chunk(|k| {
                let v = (k * a + (k * b) % 7 + s % 100) as f64 + (k * s) as f64 / 131_072.0;
                (BASE + k * 15_000, v)
            })
        })
        .collect();
    let int_counters = (0..CHUNKS as i64)
        .map(|s| {
            chunk(|k| {
                let jitter = (k * 7 + s) % 5 - 2;
                (BASE + k * 15_000 + jitter, (k * (3 + s % 40) + s) as f64)
            })
        })
        .collect();
    let gauges = (0..CHUNKS as i64)
        .map(|s| {
            chunk(|k| {
                let v = ((s * 13 + k / 4 * 7) % 100) as f64 + ((k / 4) % 5) as f64 * 0.5;
                (BASE + k * 15_000, v)
            })
        })
        .collect();
    let buckets = (0..CHUNKS as i64)
        .map(|s| {
            let (a, b, j) = (6 + s % 5, 1 + s % 6, s % 11);
            chunk(|k| {
                let count = k * a + (k * b) % 7;
                let v = (count * (j + 1) * (j + 2) / 132) as f64;
                (BASE + k * 15_000, v)
            })
        })
        .collect();
    vec![
        ("float_counter", float_counters),
        ("histogram_bucket", buckets),
        ("int_counter_jitter", int_counters),
        ("gauge", gauges),
    ]
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("xor_decode");
    g.throughput(Throughput::Elements(CHUNKS as u64 * PER_CHUNK as u64));
    for (name, chunks) in shapes() {
        g.bench_function(format!("{name}/iterator"), |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for c in &chunks {
                    for (_, v) in XorIterator::new(c).expect("chunk") {
                        sum += v;
                    }
                }
                sum
            })
        });
        let mut buf = Vec::with_capacity(PER_CHUNK as usize);
        g.bench_function(format!("{name}/decode_xor"), |b| {
            b.iter(|| {
                let mut sum = 0.0;
                for c in &chunks {
                    buf.clear();
                    decode_xor(c, &mut buf).expect("chunk");
                    sum += buf[buf.len() - 1].1;
                }
                sum
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
