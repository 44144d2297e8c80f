//! Reading many blocks plus the head, as a long-range query does.
//!
//! Setup: 24 one-hour blocks (written with `BlockWriter`, like head compaction leaves them) of
//! 1,000 series at 15 s (240 samples per block and series), and one more hour in the head.
//! Measured: a full read of every series over the whole range (`next` to the end), and a
//! step-wise read as a range query's instant steps do it (`seek` every 60 s).
//!
//! `select_1650_of_5000_6_blocks`: series selection alone, the query thread's work before any
//! sample is decoded. Six 4-hour blocks of 5,000 series at 60 s plus an hour in the head; a
//! 24 h select of 1,650 of them reads labels and chunk metas (which series have data in range)
//! and merges the seven sources, and no chunk is decoded.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use model::{Labels, MatchType, Matcher};
use storage::{Appendable, Queryable, SelectHints};
use tsdb::block::{BlockCompaction, BlockMeta, BlockWriter};
use tsdb::{Db, Options};

const BLOCKS: i64 = 24;
const SERIES: usize = 1_000;
const HOUR: i64 = 3_600_000;
const STEP: i64 = 15_000;
const BASE: i64 = 1_700_028_000_000;

fn labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "bench_metric"),
        ("instance", &format!("host-{:03}:9100", i / 10)),
        ("job", "node"),
        ("series", &format!("{i:05}")),
    ])
}

fn value(i: usize, t: i64) -> f64 {
    // Counters growing by a few per step, some float gauges.
    if i.is_multiple_of(2) {
        ((t - BASE) / STEP * (i as i64 % 7 + 1)) as f64
    } else {
        ((t / STEP) % 97) as f64 / 8.0
    }
}

/// A database of `blocks` blocks of `block_len` ms and one `block_len` (at most an hour) in
/// the head, each series sampled every `step` ms.
#[derive(Clone, Copy)]
struct Shape {
    series: usize,
    blocks: i64,
    block_len: i64,
    step: i64,
    labels: fn(usize) -> Labels,
}

const READ: Shape = Shape {
    series: SERIES,
    blocks: BLOCKS,
    block_len: HOUR,
    step: STEP,
    labels,
};

/// 5,000 series, a third of them (1,650) with `tier="a"`.
fn select_labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "bench_metric"),
        ("instance", &format!("host-{:03}:9100", i / 10)),
        ("job", "node"),
        ("series", &format!("{i:05}")),
        ("tier", if i % 100 < 33 { "a" } else { "b" }),
    ])
}

const SELECT: Shape = Shape {
    series: 5_000,
    blocks: 6,
    block_len: 4 * HOUR,
    step: 60_000,
    labels: select_labels,
};

fn setup(dir: &std::path::Path, shape: &Shape) -> std::sync::Arc<Db> {
    let Shape {
        series,
        blocks,
        block_len,
        step,
        labels,
    } = *shape;
    let mut all: Vec<(Labels, usize)> = (0..series).map(|i| (labels(i), i)).collect();
    all.sort();
    let mut syms: Vec<String> = all
        .iter()
        .flat_map(|(l, _)| {
            l.iter()
                .flat_map(|p| [p.name.to_string(), p.value.to_string()])
                .collect::<Vec<_>>()
        })
        .collect();
    syms.sort();
    syms.dedup();
    for b in 0..blocks {
        let mint = BASE + b * block_len;
        let mut w = BlockWriter::new(dir, tsdb::ulid::Ulid::now(), syms.clone()).expect("writer");
        for (l, i) in &all {
            let samples: Vec<(i64, f64)> = (0..block_len / step)
                .map(|k| {
                    let t = mint + k * step;
                    (t, value(*i, t))
                })
                .collect();
            let enc = tsdb::compact::encode_chunks(&samples);
            let parts: Vec<(i64, i64, &[u8])> =
                enc.iter().map(|(a, b, v)| (*a, *b, v.as_slice())).collect();
            w.add_series(l, &parts).expect("add series");
        }
        let meta = BlockMeta {
            ulid: String::new(),
            min_time: mint,
            max_time: mint + block_len,
            stats: Default::default(),
            compaction: BlockCompaction {
                level: 1,
                ..Default::default()
            },
            version: 1,
        };
        w.finish(meta, "none").expect("finish block");
        std::thread::sleep(Duration::from_millis(2));
    }
    let db = Db::open(
        dir,
        Options {
            retention: Duration::from_secs(10 * 365 * 24 * 3600),
            ..Options::default()
        },
    )
    .expect("open");
    let head0 = BASE + blocks * block_len;
    let mut refs = vec![0u64; series];
    for k in 0..block_len.min(HOUR) / step {
        let t = head0 + k * step;
        let mut app = db.appender();
        for (i, r) in refs.iter_mut().enumerate() {
            *r = app.append(*r, &labels(i), t, value(i, t)).expect("append");
        }
        app.commit().expect("commit");
    }
    db
}

fn bench_read(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = setup(dir.path(), &READ);
    let end = BASE + (BLOCKS + 1) * HOUR;
    let ms = [Matcher::new(MatchType::Equal, "__name__", "bench_metric").expect("matcher")];
    let samples = SERIES as u64 * ((BLOCKS + 1) * HOUR / STEP) as u64;
    let mut g = c.benchmark_group("read");
    g.sample_size(10);
    g.throughput(Throughput::Elements(samples));
    g.bench_function("all_samples_25_blocks", |b| {
        b.iter(|| {
            let q = db.querier(BASE, end).expect("querier");
            let set = q
                .select(false, &SelectHints::default(), &ms)
                .expect("select");
            let mut n = 0u64;
            let mut sum = 0.0;
            for s in &set {
                let mut it = s.iter();
                while let Some((_, v)) = it.next() {
                    n += 1;
                    sum += v;
                }
            }
            assert_eq!(n, samples);
            sum
        })
    });
    // Per-series overhead: the series stream and one sample of each (in elements: series).
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("select_iter_first_sample_25_blocks", |b| {
        b.iter(|| {
            let q = db.querier(BASE, end).expect("querier");
            let mut n = 0;
            for s in q
                .select_iter(false, &SelectHints::default(), &ms)
                .expect("select")
            {
                let s = s.expect("series");
                n += s.labels().len();
                if let Some((t, _)) = s.iter().next() {
                    n += t as usize & 1;
                }
            }
            n
        })
    });
    g.throughput(Throughput::Elements(
        SERIES as u64 * ((BLOCKS + 1) * HOUR / 60_000) as u64,
    ));
    g.bench_function("seek_60s_steps_25_blocks", |b| {
        b.iter(|| {
            let q = db.querier(BASE, end).expect("querier");
            let set = q
                .select(false, &SelectHints::default(), &ms)
                .expect("select");
            let mut sum = 0.0;
            for s in &set {
                let mut it = s.iter();
                let mut t = BASE;
                while t < end {
                    if let Some((_, v)) = it.seek(t) {
                        sum += v;
                    }
                    t += 60_000;
                }
            }
            sum
        })
    });
    g.finish();
}

fn bench_select(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = setup(dir.path(), &SELECT);
    let (start, end) = (BASE + HOUR, BASE + 25 * HOUR);
    let ms = [
        Matcher::new(MatchType::Equal, "__name__", "bench_metric").expect("matcher"),
        Matcher::new(MatchType::Equal, "tier", "a").expect("matcher"),
    ];
    let hints = SelectHints {
        start,
        end,
        ..SelectHints::default()
    };
    let mut g = c.benchmark_group("read");
    g.sample_size(20);
    // In elements: selected series.
    g.throughput(Throughput::Elements(1_650));
    g.bench_function("select_1650_of_5000_6_blocks", |b| {
        b.iter(|| {
            let q = db.querier(start, end).expect("querier");
            let mut n = 0;
            for s in q.select_iter(false, &hints, &ms).expect("select") {
                n += s.expect("series").labels().len();
            }
            assert_eq!(n, 1_650 * 5);
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench_read, bench_select);
criterion_main!(benches);
