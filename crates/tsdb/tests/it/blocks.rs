//! Blocks: head compaction, block compaction, querying across head and blocks, damaged blocks,
//! retention by time and size — and promtool reading what we wrote.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use storage::{Appendable, Queryable};
use tsdb::block::{Block, BlockWriter};
use tsdb::{Db, Options};

use super::{Dump, lbls, query_all};

const HOUR: i64 = 3_600_000;
const BASE: i64 = 1_700_028_000_000; // a multiple of 9h, so compaction ranges align

fn opts() -> Options {
    Options {
        min_block_duration: Duration::from_secs(3600),
        ..super::small_opts()
    }
}

/// `n` series, one sample every 15 s over `[from, to)`.
fn fill(db: &Db, n: usize, from: i64, to: i64) {
    let mut refs = vec![0u64; n];
    let mut t = from;
    while t < to {
        let mut app = db.appender();
        for (i, r) in refs.iter_mut().enumerate() {
            let l = lbls(&[("__name__", "m"), ("i", &i.to_string()), ("job", "blocks")]);
            *r = app
                .append(*r, &l, t, (t / 1000) as f64 * (i as f64 + 0.5))
                .unwrap();
        }
        app.commit().unwrap();
        t += 15_000;
    }
}

fn tmp_dirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect()
}

fn count(d: &Dump) -> usize {
    d.iter().map(|s| s.1.len()).sum()
}

#[test]
fn head_compaction_cuts_blocks_and_queries_span_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    fill(&db, 5, BASE, BASE + 5 * HOUR);
    let before = query_all(&db);
    assert_eq!(count(&before), 5 * 5 * 240);
    let st = db.compact().unwrap();
    // compat: cut while the head spans more than 1.5 ranges: 4 blocks, the head keeps < 1h.
    assert_eq!(st.head_blocks, 4, "{st:?}");
    assert!(db.head_min_time() >= BASE + 4 * HOUR);
    // The three older 1h blocks fill the 3h range [BASE, BASE+3h): one level-2 block.
    assert_eq!(st.compactions, 1, "{st:?}");
    let metas = db.blocks();
    assert_eq!(metas.len(), 2, "{metas:?}");
    assert_eq!(
        (metas[0].min_time, metas[0].max_time),
        (BASE, BASE + 3 * HOUR)
    );
    assert_eq!(metas[0].compaction.level, 2);
    assert_eq!(metas[0].compaction.parents.len(), 3);
    assert_eq!(metas[0].compaction.sources.len(), 3);
    assert_eq!(metas[0].stats.num_samples, 5 * 3 * 240);
    assert_eq!(
        (metas[1].min_time, metas[1].max_time),
        (BASE + 3 * HOUR, BASE + 4 * HOUR)
    );
    assert_eq!(metas[1].compaction.level, 1);
    assert_eq!(
        query_all(&db),
        before,
        "head + blocks read like the head did"
    );
    let m = db.metrics();
    assert_eq!(m.blocks_loaded, 2);
    assert!(m.storage_blocks_bytes > 0);
    assert_eq!(m.head_compactions_total, 4);
    assert_eq!(m.compactions_total, 1);

    // One more hour: [4h, 5h) is cut; the 9h range is neither complete nor older than the
    // newest block but one, so nothing is compacted (Prometheus's planner agrees).
    fill(&db, 5, BASE + 5 * HOUR, BASE + 6 * HOUR);
    let before = query_all(&db);
    let st = db.compact().unwrap();
    assert_eq!((st.head_blocks, st.compactions), (1, 0));
    assert_eq!(db.blocks().len(), 3);
    assert_eq!(query_all(&db), before);
    assert!(tmp_dirs(dir.path()).is_empty());
    db.close().unwrap();
    drop(db);

    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.blocks().len(), 3);
    assert_eq!(query_all(&db), before, "after reopening");
}

#[test]
fn promtool_reads_our_blocks() {
    let Some(promtool) = super::promtool::promtool() else {
        println!("SKIPPED promtool_reads_our_blocks: promtool not found");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    fill(&db, 7, BASE, BASE + 4 * HOUR);
    db.compact().unwrap();
    assert!(!db.blocks().is_empty());
    let want = query_all(&db);
    db.close().unwrap();
    drop(db);
    let run = |args: &[&str]| {
        let out = Command::new(&promtool)
            .args(args)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let list = run(&["tsdb", "list"]);
    let blocks = tsdb::Db::open(dir.path(), opts()).unwrap().blocks();
    for m in &blocks {
        assert!(list.contains(&m.ulid), "{list}");
    }
    let analyze = run(&["tsdb", "analyze"]);
    assert!(analyze.contains("Series: 7"), "{analyze}");
    let dump = super::promtool::parse_dump(&run(&["tsdb", "dump"]));
    let ours: std::collections::BTreeMap<String, Vec<(i64, u64)>> = want.into_iter().collect();
    let theirs: std::collections::BTreeMap<String, Vec<(i64, u64)>> = dump
        .into_iter()
        .map(|(l, s)| (l, s.into_iter().map(|(t, v)| (t, v.to_bits())).collect()))
        .collect();
    assert_eq!(theirs, ours);
}

#[test]
fn damaged_blocks_are_reported_and_not_loaded() {
    for file in ["chunks/000001", "index"] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), opts()).unwrap();
        fill(&db, 3, BASE, BASE + 2 * HOUR);
        db.compact().unwrap();
        let metas = db.blocks();
        assert_eq!(metas.len(), 1);
        db.close().unwrap();
        drop(db);
        let path = dir.path().join(&metas[0].ulid).join(file);
        let mut b = std::fs::read(&path).unwrap();
        let at = b.len() / 2;
        b[at] ^= 0x40;
        std::fs::write(&path, b).unwrap();
        let e = Block::open(&dir.path().join(&metas[0].ulid))
            .err()
            .expect(file);
        assert!(e.to_string().contains("checksum"), "{file}: {e}");
        let db = Db::open(dir.path(), opts()).unwrap();
        assert!(db.blocks().is_empty(), "{file}: damaged block not loaded");
        assert_eq!(db.metrics().blocks_corrupted_total, 1);
        // The rest of the data (the head) still reads.
        assert!(count(&query_all(&db)) > 0);
    }
}

fn write_block(dir: &Path, series: &[(&str, Vec<(i64, f64)>)], mint: i64, maxt: i64) {
    let mut syms: Vec<String> = vec!["__name__".into(), "m".into(), "i".into()];
    syms.extend(series.iter().map(|s| s.0.to_string()));
    syms.sort();
    syms.dedup();
    let mut w = BlockWriter::new(dir, tsdb::ulid::Ulid::now(), syms).unwrap();
    let mut sorted: Vec<_> = series.to_vec();
    sorted.sort_by(|a, b| {
        lbls(&[("__name__", "m"), ("i", a.0)]).cmp(&lbls(&[("__name__", "m"), ("i", b.0)]))
    });
    for (i, samples) in &sorted {
        let enc = tsdb::compact::encode_chunks(samples);
        let parts: Vec<(i64, i64, &[u8])> =
            enc.iter().map(|(a, b, v)| (*a, *b, v.as_slice())).collect();
        w.add_series(&lbls(&[("__name__", "m"), ("i", i)]), &parts)
            .unwrap();
    }
    let meta = tsdb::block::BlockMeta {
        ulid: String::new(),
        min_time: mint,
        max_time: maxt,
        stats: Default::default(),
        compaction: tsdb::block::BlockCompaction {
            level: 1,
            ..Default::default()
        },
        version: 1,
    };
    w.finish(meta, "none").unwrap();
}

#[test]
fn overlapping_blocks_merge_and_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let a: Vec<(i64, f64)> = (0..300).map(|k| (BASE + k * 10_000, k as f64)).collect();
    let b: Vec<(i64, f64)> = (150..450).map(|k| (BASE + k * 10_000, k as f64)).collect();
    write_block(
        dir.path(),
        &[("0", a.clone()), ("1", a.clone())],
        BASE,
        BASE + 3_000_000,
    );
    std::thread::sleep(Duration::from_millis(2));
    write_block(
        dir.path(),
        &[("0", b.clone()), ("2", b.clone())],
        BASE + 1_500_000,
        BASE + 4_500_000,
    );
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.blocks().len(), 2);
    let got = query_all(&db);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].1.len(), 450, "merged and deduplicated at query time");
    let st = db.compact().unwrap();
    assert_eq!(st.compactions, 1);
    let metas = db.blocks();
    assert_eq!(metas.len(), 1);
    assert_eq!(
        (metas[0].min_time, metas[0].max_time),
        (BASE, BASE + 4_500_000)
    );
    assert_eq!(metas[0].stats.num_samples, 450 + 300 + 300);
    assert_eq!(
        query_all(&db),
        got,
        "vertical compaction keeps every sample once"
    );
}

#[test]
fn retention_deletes_whole_blocks_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    fill(&db, 3, BASE, BASE + 6 * HOUR);
    db.compact().unwrap();
    let metas = db.blocks();
    assert!(metas.len() >= 2, "{metas:?}");
    drop(db);
    // By time: retention 2h at now = end of data: blocks ending at or before now-2h go.
    let mut o = opts();
    o.retention = Duration::from_secs(2 * 3600);
    let db = Db::open(dir.path(), o).unwrap();
    let now = BASE + 6 * HOUR;
    db.run_retention(now).unwrap();
    let left = db.blocks();
    assert!(left.len() < metas.len());
    assert!(left.iter().all(|m| m.max_time > now - 2 * HOUR), "{left:?}");
    for m in &metas {
        let kept = left.iter().any(|l| l.ulid == m.ulid);
        assert_eq!(kept, m.max_time > now - 2 * HOUR, "{m:?}");
        assert_eq!(dir.path().join(&m.ulid).exists(), kept);
    }
    assert_eq!(db.metrics().time_retentions_total, 1);
    drop(db);
}

#[test]
fn size_retention_deletes_oldest_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    fill(&db, 60, BASE, BASE + 3 * HOUR);
    db.compact().unwrap();
    assert_eq!(db.blocks().len(), 2);
    drop(db);
    // A limit a bit above the newest block (plus WAL and head chunks) keeps only it.
    let db = Db::open(dir.path(), opts()).unwrap();
    let blocks = db.blocks();
    assert!(!blocks.is_empty());
    drop(db);
    let mut o = opts();
    let newest = tsdb::block::dir_size(&dir.path().join(&blocks.last().unwrap().ulid));
    let other = tsdb::block::dir_size(&dir.path().join("wal"))
        + tsdb::block::dir_size(&dir.path().join("chunks_head"));
    o.retention_size = newest + other + 1024;
    let db = Db::open(dir.path(), o).unwrap();
    db.run_retention(BASE + 6 * HOUR).unwrap();
    let left = db.blocks();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].ulid, blocks.last().unwrap().ulid);
    assert_eq!(db.metrics().size_retentions_total, 1);
}

const CRASH_DIR: &str = "VIGIL_TSDB_BLOCK_CRASH_DIR";

fn crash_opts() -> Options {
    Options {
        min_block_duration: Duration::from_secs(600),
        out_of_order_time_window: Duration::from_secs(2 * 3600),
        ..super::small_opts()
    }
}

/// The child: appends 10 series every 10 s of sample time, acknowledging each commit, and
/// compacts every 10 minutes of data until a failpoint aborts it.
#[test]
#[ignore = "run by blocks::kill_at_compaction_failpoints as a child process"]
fn block_crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR) else {
        return;
    };
    let db = Db::open(Path::new(&dir), crash_opts()).expect("child open");
    let mut refs = [0u64; 10];
    for k in 1..2000i64 {
        let t = BASE + k * 10_000;
        let mut app = db.appender();
        for (i, r) in refs.iter_mut().enumerate() {
            let l = lbls(&[("__name__", "c"), ("i", &i.to_string())]);
            *r = app.append(*r, &l, t, k as f64).expect("child append");
        }
        app.commit().expect("child commit");
        println!("committed {t}");
        if k % 60 == 0 {
            db.compact().expect("child compact");
        }
        if k % 60 == 30 && k > 150 {
            // Out of order, into a range already in a block: an out-of-order block next.
            let late = t - 40 * 60_000 + 5_000;
            let mut app = db.appender();
            for (i, r) in refs.iter_mut().enumerate() {
                let l = lbls(&[("__name__", "c"), ("i", &i.to_string())]);
                *r = app.append(*r, &l, late, -1.0).expect("child ooo append");
            }
            app.commit().expect("child ooo commit");
            println!("committed {late}");
        }
    }
}

#[test]
fn kill_at_compaction_failpoints() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    for point in [
        tsdb::compact::FP_HEAD_BEFORE_RENAME,
        tsdb::compact::FP_HEAD_AFTER_RENAME,
        tsdb::compact::FP_COMPACT_BEFORE_RENAME,
        tsdb::compact::FP_COMPACT_AFTER_RENAME,
        tsdb::compact::FP_OOO_BEFORE_RENAME,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "blocks::block_crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_DIR, dir.path())
            .env(tsdb::failpoint::ENV, point)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child")
            .wait_with_output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(6),
            "{point}: the child aborted there"
        );
        let mut committed: Vec<i64> = BufReader::new(&out.stdout[..])
            .lines()
            .map_while(Result::ok)
            // The first line shares its line with libtest's "test … ... ".
            .filter_map(|l| l.split("committed ").nth(1).map(|t| t.parse().unwrap()))
            .collect();
        committed.sort_unstable();
        assert!(committed.len() > 60, "{point}");
        let db = Db::open(dir.path(), crash_opts()).expect("reopen");
        assert!(
            tmp_dirs(dir.path()).is_empty(),
            "{point}: temporary dirs removed"
        );
        assert_eq!(db.metrics().blocks_corrupted_total, 0, "{point}");
        let got = query_all(&db);
        assert_eq!(got.len(), 10, "{point}");
        for (name, samples) in &got {
            let ts: Vec<i64> = samples.iter().map(|s| s.0).collect();
            assert_eq!(
                ts, committed,
                "{point}: {name} has every acknowledged sample once"
            );
        }
        // And the database carries on: compaction completes after the restart (merging
        // blocks a crash left overlapping, e.g. an out-of-order block and its neighbour).
        db.compact().unwrap();
        assert_eq!(query_all(&db), got, "{point}");
        let metas = db.blocks();
        assert!(
            metas.windows(2).all(|w| w[0].max_time <= w[1].min_time),
            "{point}: no overlapping blocks left: {metas:?}"
        );
    }
}

#[test]
fn delete_series_clean_tombstones_and_snapshot() {
    use model::MatchType;
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    fill(&db, 3, BASE, BASE + 2 * HOUR + 20 * 60_000);
    db.compact().unwrap();
    assert_eq!(db.blocks().len(), 1);
    let before = query_all(&db);
    let (from, to) = (BASE + 30 * 60_000, BASE + 2 * HOUR + 10 * 60_000);
    let ms = [super::matcher("i", MatchType::Equal, "1")];
    db.delete_series(&ms, from, to).unwrap();
    let check = |db: &Db, what: &str| {
        let got = query_all(db);
        assert_eq!(got.len(), 3, "{what}");
        for ((name, s), (_, b)) in got.iter().zip(&before) {
            if name.contains("i=\"1\"") {
                let want: Vec<_> = b
                    .iter()
                    .filter(|x| x.0 < from || x.0 > to)
                    .cloned()
                    .collect();
                assert_eq!(s, &want, "{what}: deleted range gone from block and head");
            } else {
                assert_eq!(s, b, "{what}: other series untouched");
            }
        }
    };
    check(&db, "after delete");
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    check(&db, "after reopen");
    let old = db.blocks()[0].ulid.clone();
    assert_eq!(db.clean_tombstones().unwrap(), 1);
    let metas = db.blocks();
    assert_eq!(metas.len(), 1);
    assert_ne!(metas[0].ulid, old, "block rewritten");
    assert!(!dir.path().join(&old).exists());
    check(&db, "after clean_tombstones");

    let snap = tempfile::tempdir().unwrap();
    db.snapshot(&snap.path().join("s"), true).unwrap();
    let want = query_all(&db);
    drop(db);
    let s = Db::open(&snap.path().join("s"), opts()).unwrap();
    assert_eq!(s.blocks().len(), 2, "the block and the head as a block");
    assert_eq!(query_all(&s), want, "snapshot holds everything");
}

#[test]
fn out_of_order_samples_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.out_of_order_time_window = Duration::from_secs(2 * 3600);
    let db = Db::open(dir.path(), o.clone()).unwrap();
    let l = lbls(&[("__name__", "ooo"), ("k", "v")]);
    let inorder: Vec<(i64, f64)> = (0..480).map(|k| (BASE + k * 15_000, k as f64)).collect();
    super::append(&db, &l, &inorder);
    let end = BASE + 480 * 15_000;
    // Between the in-order samples of the last half hour.
    let late: Vec<(i64, f64)> = (0..100)
        .map(|k| (end - 1_700_000 + k * 15_000 + 7_000, -(k as f64)))
        .collect();
    let mut app = db.appender();
    for &(t, v) in &late {
        app.append(0, &l, t, v).unwrap();
    }
    assert!(
        app.append(0, &l, end - 3 * HOUR, 1.0).is_err(),
        "older than the window"
    );
    app.commit().unwrap();
    let mut app = db.appender();
    assert!(matches!(
        app.append(0, &l, late[3].0, 42.0),
        Err(storage::StorageError::DuplicateSample)
    ));
    app.append(0, &l, late[3].0, late[3].1).unwrap();
    app.commit().unwrap();
    assert_eq!(db.metrics().out_of_order_samples_appended_total, 100);

    let bits = |v: &[(i64, f64)]| -> Vec<(i64, u64)> {
        let mut w: Vec<(i64, u64)> = v.iter().map(|&(t, x)| (t, x.to_bits())).collect();
        w.sort();
        w
    };
    let mut all: Vec<(i64, f64)> = inorder.iter().chain(&late).copied().collect();
    let got = query_all(&db);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, bits(&all), "merged in time order");
    db.close().unwrap();
    drop(db);

    // The write-behind log brings them back.
    let db = Db::open(dir.path(), o.clone()).unwrap();
    assert_eq!(query_all(&db)[0].1, bits(&all), "after reopening");
    let st = db.compact().unwrap();
    assert_eq!(st.head_blocks, 1, "{st:?}");
    assert_eq!(query_all(&db)[0].1, bits(&all), "after head compaction");

    // Samples for the range already in a block: an out-of-order block, merged vertically.
    let older: Vec<(i64, f64)> = (0..40)
        .map(|k| (BASE + 600_000 + k * 15_000 + 3_000, 1000.0 + k as f64))
        .collect();
    super::append(&db, &l, &older);
    all.extend(&older);
    assert_eq!(query_all(&db)[0].1, bits(&all), "head and block merged");
    let st = db.compact().unwrap();
    assert!(st.ooo_blocks == 1 && st.compactions == 1, "{st:?}");
    let metas = db.blocks();
    assert!(
        metas.windows(2).all(|w| w[0].max_time <= w[1].min_time),
        "overlaps compacted away: {metas:?}"
    );
    assert_eq!(query_all(&db), vec![(l.to_string(), bits(&all))]);
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), o).unwrap();
    assert_eq!(
        query_all(&db)[0].1,
        bits(&all),
        "after compaction and reopening"
    );
    db.compact().unwrap();
    assert_eq!(
        query_all(&db)[0].1,
        bits(&all),
        "another compaction changes nothing"
    );
}

#[test]
fn inspection_tools_list_analyze_dump() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    fill(&db, 4, BASE, BASE + 2 * HOUR);
    db.compact().unwrap();
    let metas = db.blocks();
    assert_eq!(metas.len(), 1);
    let want = query_all(&db);
    db.close().unwrap();
    drop(db);

    let list = tsdb::tools::list(dir.path(), false).unwrap();
    assert!(list.starts_with("BLOCK ULID"), "{list}");
    assert!(list.contains(&metas[0].ulid), "{list}");
    assert!(
        list.contains(&format!("{}", metas[0].stats.num_samples)),
        "{list}"
    );
    let human = tsdb::tools::list(dir.path(), true).unwrap();
    assert!(human.contains("1h"), "{human}");

    let a = tsdb::tools::analyze(dir.path(), None, 3).unwrap();
    assert!(a.contains(&format!("Block ID: {}", metas[0].ulid)), "{a}");
    assert!(a.contains("Series: 4"), "{a}");
    assert!(a.contains("Label names: 3"), "{a}");
    assert!(a.contains("4 __name__=m"), "{a}");
    assert!(tsdb::tools::analyze(dir.path(), Some("nope"), 3).is_err());

    let mut out = Vec::new();
    let n = tsdb::tools::dump(dir.path(), i64::MIN, i64::MAX, None, &mut out).unwrap();
    assert_eq!(n as usize, count(&want));
    let text = String::from_utf8(out).unwrap();
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "{{__name__=\"m\", i=\"0\", job=\"blocks\"}} {} {BASE}",
            tsdb::tools::go_g((BASE / 1000) as f64 * 0.5)
        )
    );
    let mut out = Vec::new();
    let n =
        tsdb::tools::dump(dir.path(), BASE, BASE + 60_000, Some("{i=\"1\"}"), &mut out).unwrap();
    assert_eq!(n, 5, "one series, 5 samples in the minute");
    assert!(tsdb::tools::dump(dir.path(), 0, 1, Some("{"), &mut Vec::new()).is_err());
}

/// Every file path and size under `dir`.
fn tree(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            out.push((p.display().to_string(), p.metadata().unwrap().len()));
        }
    }
    out.sort();
    out
}

/// `dump` works on a directory a running database holds (its lock taken, head in the WAL
/// only) and leaves it exactly as it was, as promtool's read-only open does.
#[test]
fn dump_reads_a_live_directory_without_touching_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    fill(&db, 3, BASE, BASE + 3 * HOUR);
    db.compact().unwrap();
    fill(&db, 3, BASE + 3 * HOUR, BASE + 3 * HOUR + 10 * 60_000);
    assert!(!db.blocks().is_empty());
    let want = query_all(&db);
    let before = tree(dir.path());
    let mut out = Vec::new();
    let n = tsdb::tools::dump(dir.path(), i64::MIN, i64::MAX, None, &mut out).unwrap();
    assert_eq!(n as usize, count(&want), "blocks and head");
    assert_eq!(tree(dir.path()), before, "the data directory is untouched");
    assert!(
        tsdb::tools::dump(&dir.path().join("missing"), 0, 1, None, &mut Vec::new()).is_err(),
        "a missing directory is an error, not created"
    );
    db.close().unwrap();
}

/// 60 small blocks plus the head, read through the streaming select: every sample comes back
/// once and in order, and the query never holds more than a few series and iterators per block
/// (not one per block and series, which a select collecting every block's series would).
#[test]
fn many_blocks_stream_with_bounded_memory() {
    const BLOCKS: i64 = 60;
    const SERIES: usize = 200;
    const SPAN: i64 = 600_000; // 10 minutes per block
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..SERIES).map(|i| format!("{i:03}")).collect();
    // expected[i]: every sample of series i across blocks and head.
    let mut expected: Vec<Vec<(i64, f64)>> = vec![Vec::new(); SERIES];
    for b in 0..BLOCKS {
        let mint = BASE + b * SPAN;
        let mut series = Vec::new();
        for (i, name) in names.iter().enumerate() {
            // Every 7th series is missing from every 5th block.
            if i % 7 == 0 && b % 5 == 0 {
                continue;
            }
            let samples: Vec<(i64, f64)> = (0..40)
                .map(|k| (mint + k * 15_000, (b * 1000 + k) as f64 + i as f64 / 1000.0))
                .collect();
            expected[i].extend(&samples);
            series.push((name.as_str(), samples));
        }
        write_block(dir.path(), &series, mint, mint + SPAN);
        std::thread::sleep(Duration::from_millis(2));
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.blocks().len(), BLOCKS as usize);
    let head_t = BASE + BLOCKS * SPAN;
    for (i, name) in names.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        let samples: Vec<(i64, f64)> = (0..30)
            .map(|k| (head_t + k * 15_000, -(k as f64)))
            .collect();
        super::append(&db, &lbls(&[("__name__", "m"), ("i", name)]), &samples);
        expected[i].extend(&samples);
    }

    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let ms = [super::matcher("__name__", model::MatchType::Equal, "m")];
    let mut set = q
        .select_iter(true, &storage::SelectHints::default(), &ms)
        .unwrap();
    let bound = 2 * (BLOCKS as usize + 1);
    let (mut max_series, mut max_iters, mut n) = (0, 0, 0);
    for s in set.by_ref() {
        let s = s.unwrap();
        let i: usize = s.labels().get("i").unwrap().parse().unwrap();
        assert_eq!(i, n, "series come in label order");
        let mut it = s.iter();
        let mut got = Vec::new();
        while let Some(x) = it.next() {
            got.push(x);
            let (ls, li) = db.live_query_objects();
            max_series = max_series.max(ls);
            max_iters = max_iters.max(li);
        }
        assert_eq!(got, expected[i], "series {i}");
        // Batched reads, one call per 7-minute step (crossing block boundaries and the head).
        let mut it = s.iter();
        let (mut batched, mut out) = (Vec::new(), Vec::new());
        let mut bound = BASE;
        loop {
            out.clear();
            let after = it.next_until(bound, &mut out);
            assert!(out.iter().all(|x| x.0 <= bound));
            batched.extend_from_slice(&out);
            match after {
                Some(x) => {
                    assert!(x.0 > bound);
                    batched.push(x);
                    bound = x.0 + 420_000;
                }
                None => break,
            }
        }
        assert_eq!(batched, expected[i], "batched series {i}");
        // Seeking across block boundaries finds the first sample at or after the bound.
        let mut it = s.iter();
        let probe = BASE + 17 * SPAN + 1;
        let want = expected[i].iter().find(|x| x.0 >= probe).copied();
        assert_eq!(it.seek(probe), want, "seek in series {i}");
        n += 1;
    }
    assert_eq!(n, SERIES);
    eprintln!("held at most {max_series} series and {max_iters} iterators");
    assert!(
        max_series <= bound,
        "{max_series} series held at once; bound {bound} (all would be {})",
        SERIES * BLOCKS as usize
    );
    assert!(max_iters <= 2, "{max_iters} part iterators open at once");
    assert!(max_series > 0 && max_iters > 0, "the counters count");
    drop(set);
    assert_eq!(db.live_query_objects(), (0, 0), "everything released");

    // The collecting select returns the same.
    let all = q
        .select(true, &storage::SelectHints::default(), &ms)
        .unwrap();
    assert_eq!(all.len(), SERIES);
    assert!(
        db.live_query_objects().0 >= SERIES,
        "select holds the result"
    );
}

/// A querier made before a head compaction (its block list without the new block) and used
/// after it still finds every sample: the truncation that follows the compaction waits for it
/// (`readers.rs`), so the samples stay in the head until it is dropped; queriers made while it
/// waits already read the new block.
#[test]
fn a_querier_from_before_a_head_compaction_sees_every_sample() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    fill(&db, 3, BASE, BASE + 5 * HOUR);
    let all = [super::matcher("__name__", model::MatchType::Equal, "m")];
    let early = db.querier(BASE, BASE + 5 * HOUR).unwrap();
    let compacting = {
        let db = db.clone();
        std::thread::spawn(move || db.compact().unwrap())
    };
    // The compaction writes its blocks, then waits in the truncation for `early`.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while db.blocks().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no block written");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(!compacting.is_finished(), "truncated under a live querier");
    // A querier made now reads the new blocks and the head above its raised floor.
    assert_eq!(
        count(&super::query(&db, BASE, BASE + 5 * HOUR, &all)),
        3 * 5 * 240
    );
    let got: usize = early
        .select(false, &storage::SelectHints::default(), &all)
        .unwrap()
        .iter()
        .map(|s| {
            let mut it = s.iter();
            std::iter::from_fn(move || it.next()).count()
        })
        .sum();
    assert_eq!(got, 3 * 5 * 240);
    drop(early);
    let st = compacting.join().unwrap();
    assert!(st.head_blocks >= 1, "{st:?}");
    assert!(db.head_min_time() >= BASE + 4 * HOUR);
    assert_eq!(count(&query_all(&db)), 3 * 5 * 240);
}
