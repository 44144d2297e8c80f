//! Append throughput for 100k series, and resident bytes per series.
//!
//! Setup (reported once, not by criterion): 100k series with 8 labels each get 300 samples at a
//! 1 s interval, appended in scrape-sized batches of 1,000 with cached refs, as scrape loops do.
//! RSS (from /proc/self/statm) is read before and after; the difference divided by the series
//! count is the resident cost per series (labels, index, chunk refs, open chunk).
//! Criterion then measures one more round of 100k samples (one sample per series).

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use model::Labels;
use storage::{Appendable, SeriesRef};
use tsdb::{Db, Options};

const SERIES: usize = 100_000;
const SAMPLES: i64 = 300;
const BATCH: usize = 1_000;
const INTERVAL_MS: i64 = 1_000;

fn labels_for(i: usize) -> Labels {
    let name = format!("metric_{:03}_total", i % 200);
    let job = format!("job_{}", i % 10);
    let instance = format!("host-{:04}.example.internal:9100", i / 100);
    let env = if i % 3 == 0 { "staging" } else { "production" };
    let region = format!("region-{}", i % 5);
    let pod = format!("pod-{i:06}");
    let container = format!("container-{}", i % 20);
    Labels::from_pairs([
        ("__name__", name.as_str()),
        ("job", &job),
        ("instance", &instance),
        ("env", env),
        ("region", &region),
        ("pod", &pod),
        ("container", &container),
        ("path", "/api/v1/query"),
    ])
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// A deterministic counter-like value stream.
struct Values(u64);

impl Values {
    fn next(&mut self, prev: f64) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        prev + ((self.0 >> 59) as f64)
    }
}

/// Appends one sample to every series at time `t`, in batches.
fn round(db: &Db, refs: &mut [SeriesRef], vals: &mut [f64], rng: &mut Values, t: i64) {
    for (b, chunk) in refs.chunks_mut(BATCH).enumerate() {
        let mut app = db.appender();
        for (j, r) in chunk.iter_mut().enumerate() {
            let i = b * BATCH + j;
            let labels = if *r == 0 { labels_for(i) } else { Labels::empty() };
            vals[i] = rng.next(vals[i]);
            // A few ms of scrape jitter, as real targets show.
            let jitter = (rng.0 >> 61) as i64;
            *r = app.append(*r, &labels, t + jitter, vals[i]).expect("append");
        }
        app.commit().expect("commit");
    }
}

fn bench_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Options::default()).expect("open");
    let mut refs: Vec<SeriesRef> = vec![0; SERIES];
    let mut vals: Vec<f64> = vec![0.0; SERIES];
    let mut rng = Values(42);
    let before = rss_bytes();
    let start = Instant::now();
    let mut t = 1_700_000_000_000i64;
    for _ in 0..SAMPLES {
        round(&db, &mut refs, &mut vals, &mut rng, t);
        t += INTERVAL_MS;
    }
    let elapsed = start.elapsed();
    let after = rss_bytes();
    let total = SERIES as f64 * SAMPLES as f64;
    println!(
        "setup: {} series x {} samples in {:.2?}: {:.0} samples/s",
        SERIES,
        SAMPLES,
        elapsed,
        total / elapsed.as_secs_f64()
    );
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "resident memory: {:.1} MiB for {} series = {:.0} bytes/series",
            (a - b) as f64 / (1 << 20) as f64,
            SERIES,
            (a - b) as f64 / SERIES as f64
        );
    }
    let m = db.metrics();
    println!("head chunks: {}, chunk files: {} ({} MiB)", m.head_chunks, m.head_chunk_files, m.head_chunk_bytes >> 20);

    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("100k_series_1k_batches", |b| {
        b.iter(|| {
            round(&db, &mut refs, &mut vals, &mut rng, t);
            t += INTERVAL_MS;
        })
    });
    g.finish();
    db.close().expect("close");
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
