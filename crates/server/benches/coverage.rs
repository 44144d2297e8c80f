//! The `/api/v1/vigil/coverage` answer for 1,000 targets × 24 h of `up` (15 s interval, 5.8M
//! samples): read from storage on every request ([`server::coverage::coverage`], as before the
//! summary) vs answered from the summary ([`server::coverage::CoverageCache`]).
//!
//! Setup: 23 one-hour blocks (as head compaction leaves them) and one hour in the head; every
//! 50th target fails one scrape an hour. Measured: the full read; the summary's first answer
//! (it is built then); and answers while the server runs: time moves on 15 s between answers and
//! a scrape of every target is written, so each answer reads the unsettled end from storage and
//! every fourth extends the summary. Then all again with 7.5% of the scrapes written 2–26 ms
//! after their tick (what a loaded machine showed): each such scrape costs the summary two runs.
//!
//! Run: `cargo bench -p server --bench coverage` (prints the median of each).

use std::time::{Duration, Instant};

use model::Labels;
use server::coverage::{CoverageCache, Kept, coverage};
use storage::Appendable;
use tsdb::block::{BlockCompaction, BlockMeta, BlockWriter};
use tsdb::{Db, Options};

const TARGETS: usize = 1_000;
const BLOCKS: i64 = 23;
const HOUR: i64 = 3_600_000;
const STEP: i64 = 15_000;
const BASE: i64 = 1_700_028_000_000;

fn labels(i: usize) -> Labels {
    Labels::from_pairs([
        ("__name__", "up"),
        ("instance", &format!("host-{i:04}:9100")),
        ("job", "node"),
    ])
}

fn value(i: usize, t: i64) -> f64 {
    if i.is_multiple_of(50) && (t / STEP) % 240 == (i as i64 % 240) {
        0.0
    } else {
        1.0
    }
}

/// When target `i` writes the scrape of tick `t`: on the tick, or with `jitter` for 7.5% of
/// scrapes 2–26 ms late (as measured on a loaded machine).
fn at(i: usize, t: i64, jitter: bool) -> i64 {
    let h = (i as u64 ^ (t as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_mul(0xff51_afd7_ed55_8ccd);
    let h = h ^ (h >> 33);
    if jitter && h % 1000 < 75 {
        t + 2 + (h >> 12) as i64 % 25
    } else {
        t
    }
}

fn setup(dir: &std::path::Path, jitter: bool) -> std::sync::Arc<Db> {
    let mut all: Vec<(Labels, usize)> = (0..TARGETS).map(|i| (labels(i), i)).collect();
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
    for b in 0..BLOCKS {
        let mint = BASE + b * HOUR;
        let mut w = BlockWriter::new(dir, tsdb::ulid::Ulid::now(), syms.clone()).expect("writer");
        for (l, i) in &all {
            let samples: Vec<(i64, f64)> = (0..HOUR / STEP)
                .map(|k| {
                    let t = mint + k * STEP;
                    (at(*i, t, jitter), value(*i, t))
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
            max_time: mint + HOUR,
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
    let head0 = BASE + BLOCKS * HOUR;
    for k in 0..HOUR / STEP {
        scrape(&db, head0 + k * STEP, jitter);
    }
    db
}

/// One scrape of every target at `t`.
fn scrape(db: &Db, t: i64, jitter: bool) {
    let mut app = db.appender();
    for i in 0..TARGETS {
        app.append(0, &labels(i), at(i, t, jitter), value(i, t))
            .expect("append");
    }
    app.commit().expect("commit");
}

fn kept() -> Kept {
    Kept {
        lowest: BASE,
        retention_ms: 10 * 365 * 24 * HOUR,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    for jitter in [false, true] {
        run(jitter);
    }
}

fn run(jitter: bool) {
    println!(
        "{}",
        if jitter {
            "7.5% of scrapes 2-26 ms off their tick:"
        } else {
            "scrapes on their tick:"
        }
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let db = setup(dir.path(), jitter);
    // The next scrape is due: the last one is settled.
    let mut now = BASE + (BLOCKS + 1) * HOUR;
    let day = 24 * HOUR;

    let mut full = Vec::new();
    let mut want = None;
    for _ in 0..5 {
        let t0 = Instant::now();
        let c = coverage(db.as_ref(), now - day, now, now).expect("coverage");
        full.push(t0.elapsed());
        want = Some(c);
    }
    let want = want.expect("answer");
    println!(
        "targets {}, imperfect {}, samples {}",
        want.targets,
        want.imperfect.len(),
        TARGETS as i64 * (BLOCKS + 1) * HOUR / STEP
    );
    println!("full read (before): median {:?}", median(full));

    let cache = CoverageCache::new();
    let t0 = Instant::now();
    let got = cache
        .coverage(db.as_ref(), kept(), now - day, now, now)
        .expect("cached");
    println!("summary, first answer (builds it): {:?}", t0.elapsed());
    assert_eq!(got, want, "the summary answers like storage");

    let mut steady = Vec::new();
    for _ in 0..40 {
        scrape(&db, now, jitter);
        now += STEP;
        let t0 = Instant::now();
        let got = cache
            .coverage(db.as_ref(), kept(), now - day, now, now)
            .expect("cached");
        steady.push(t0.elapsed());
        std::hint::black_box(got);
    }
    let want = coverage(db.as_ref(), now - day, now, now).expect("coverage");
    let got = cache
        .coverage(db.as_ref(), kept(), now - day, now, now)
        .expect("cached");
    assert_eq!(
        got, want,
        "the summary answers like storage after 40 scrapes"
    );
    println!(
        "summary, while running (after): median {:?} of {} answers",
        median(steady),
        40
    );
    println!(
        "summary size: {} runs for {TARGETS} targets ({} KiB of runs)",
        cache.runs(),
        cache.runs() * std::mem::size_of::<[i64; 2]>() / 1024
    );
}
