//! Append throughput for 100k series, and resident bytes per series.
//!
//! Setup (reported once, not by criterion): 100k series with 8 labels each get 300 samples at a
//! 1 s interval, appended in scrape-sized batches of 1,000 with cached refs, as scrape loops do.
//! RSS (from /proc/self/statm) is read before and after; the difference divided by the series
//! count is the resident cost per series (labels, index, chunk refs, open chunk).
//! Criterion then measures one more round of 100k samples (one sample per series).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use model::Labels;
use storage::{Appendable, SeriesRef};
use tsdb::{Db, Options};

/// Counts live heap bytes, to tell data from allocator overhead and fragmentation in the RSS.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator unchanged; only counts sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SERIES: usize = 100_000;
const SAMPLES: i64 = 300;
const BATCH: usize = 1_000;
const INTERVAL_MS: i64 = 1_000;

fn labels_for(i: usize) -> Labels {
    let name = format!("metric_{:03}_total", i % 200);
    let job = format!("job_{}", i % 10);
    let instance = format!("host-{:04}.example.internal:9100", i / 100);
    let env = if i.is_multiple_of(3) {
        "staging"
    } else {
        "production"
    };
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

/// Deterministic values. By default shaped like an exporter's: a quarter each of constant
/// gauges, integer counters (+0..15 per sample), gauges moving among four values, and float
/// counters (+0.000..1.023, like CPU seconds) — about 2.9 bytes/sample, heavier than the
/// ~1.3-1.5 Prometheus reports for typical data. `VIGIL_BENCH_VALUES=counters` makes every
/// series an integer counter with +0..31 steps instead (~2.2 bytes/sample).
struct Values {
    state: u64,
    random: bool,
}

impl Values {
    fn next(&mut self, i: usize, prev: f64) -> f64 {
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = self.state;
        if self.random {
            return prev + (r >> 59) as f64;
        }
        match i % 4 {
            0 => 1.0 + (i % 7) as f64,
            1 => prev + (r >> 60) as f64,
            2 => 1_000_000_000.0 + (r >> 62) as f64 * 4096.0,
            _ => prev + (r >> 54) as f64 / 1000.0,
        }
    }
}

/// Appends one sample to every series at time `t`, in batches.
fn round(db: &Db, refs: &mut [SeriesRef], vals: &mut [f64], rng: &mut Values, t: i64) {
    for (b, chunk) in refs.chunks_mut(BATCH).enumerate() {
        let mut app = db.appender();
        for (j, r) in chunk.iter_mut().enumerate() {
            let i = b * BATCH + j;
            let labels = if *r == 0 {
                labels_for(i)
            } else {
                Labels::empty()
            };
            vals[i] = rng.next(i, vals[i]);
            // Exact intervals: Prometheus aligns scrape timestamps within a 2 ms tolerance.
            *r = app.append(*r, &labels, t, vals[i]).expect("append");
        }
        app.commit().expect("commit");
    }
}

fn bench_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), Options::default()).expect("open");
    let mut refs: Vec<SeriesRef> = vec![0; SERIES];
    let mut vals: Vec<f64> = vec![0.0; SERIES];
    let random = std::env::var("VIGIL_BENCH_VALUES").is_ok_and(|v| v == "counters");
    let mut rng = Values { state: 42, random };
    let before = rss_bytes();
    let live_before = LIVE.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut t = 1_700_000_000_000i64;
    for k in 0..SAMPLES {
        round(&db, &mut refs, &mut vals, &mut rng, t);
        t += INTERVAL_MS;
        if k == 0
            && let (Some(b), Some(a)) = (before, rss_bytes())
        {
            let live = LIVE.load(Ordering::Relaxed) - live_before;
            println!(
                "after 1 sample/series: {:.0} bytes/series resident, {:.0} live",
                (a - b) as f64 / SERIES as f64,
                live as f64 / SERIES as f64
            );
        }
    }
    let elapsed = start.elapsed();
    let after = rss_bytes();
    let live = LIVE.load(Ordering::Relaxed) - live_before;
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
    println!(
        "live heap: {:.0} bytes/series (requested sizes, before allocator overhead)",
        live as f64 / SERIES as f64
    );
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for l in status.lines().filter(|l| l.starts_with("Rss")) {
            println!("{l}");
        }
    }
    let m = db.metrics();
    println!(
        "values: {}, ~{:.2} bytes/sample in chunk files (headers included)",
        if random {
            "random counters"
        } else {
            "exporter-like mix"
        },
        m.head_chunk_bytes as f64
            / (m.head_chunks_created_total.saturating_sub(SERIES as u64) as f64 * 116.0)
    );
    println!(
        "head chunks: {}, chunk files: {} ({} MiB)",
        m.head_chunks,
        m.head_chunk_files,
        m.head_chunk_bytes >> 20
    );

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
