//! The head through the public API: appends, rejections, selection, label queries, stats.

use model::MatchType::{self, *};
use storage::{Appendable, Queryable, SelectHints, StorageError};

use super::{append, lbls, matcher, open, query, query_all};

#[test]
fn append_commit_query() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let a = lbls(&[("__name__", "up"), ("job", "a")]);
    let b = lbls(&[("__name__", "up"), ("job", "b")]);
    let mut app = db.appender();
    let ra = app.append(0, &a, 1000, 1.0).unwrap();
    let rb = app.append(0, &b, 1000, 0.0).unwrap();
    assert_ne!(ra, rb);
    assert_eq!(
        app.append(ra, &model::Labels::empty(), 2000, 1.0).unwrap(),
        ra,
        "cached ref"
    );
    assert_eq!(query_all(&db), vec![], "nothing visible before commit");
    app.commit().unwrap();
    let got = query(&db, 0, 10_000, &[matcher("__name__", Equal, "up")]);
    assert_eq!(
        got,
        vec![
            (
                a.to_string(),
                vec![(1000, 1f64.to_bits()), (2000, 1f64.to_bits())]
            ),
            (b.to_string(), vec![(1000, 0f64.to_bits())]),
        ]
    );
    assert_eq!(
        query(&db, 1500, 10_000, &[matcher("job", Equal, "b")]),
        vec![],
        "no chunk in range"
    );
    assert_eq!(
        (db.head_min_time(), db.head_max_time(), db.num_series()),
        (1000, 2000, 2)
    );
}

#[test]
fn rollback_and_drop_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let l = lbls(&[("__name__", "x")]);
    let mut app = db.appender();
    app.append(0, &l, 1, 1.0).unwrap();
    app.rollback();
    let mut app = db.appender();
    app.append(0, &l, 2, 1.0).unwrap();
    drop(app);
    assert_eq!(query_all(&db), vec![]);
    // The series may exist (as in Prometheus) but has no samples; a later append works.
    append(&db, &l, &[(3, 3.0)]);
    assert_eq!(
        query_all(&db),
        vec![(l.to_string(), vec![(3, 3f64.to_bits())])]
    );
}

#[test]
fn out_of_order_duplicates_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let l = lbls(&[("__name__", "x")]);
    append(&db, &l, &[(10_000, 1.0)]);
    let mut app = db.appender();
    assert!(matches!(
        app.append(0, &l, 9_999, 1.0),
        Err(StorageError::OutOfOrder)
    ));
    assert!(matches!(
        app.append(0, &l, 10_000, 2.0),
        Err(StorageError::DuplicateSample)
    ));
    // Same timestamp, same value: accepted, stored once.
    app.append(0, &l, 10_000, 1.0).unwrap();
    // Stale markers are values like any other.
    app.append(0, &l, 11_000, model::STALE_NAN).unwrap();
    app.commit().unwrap();
    let got = query_all(&db);
    assert_eq!(
        got[0].1,
        vec![(10_000, 1f64.to_bits()), (11_000, model::STALE_NAN_BITS)]
    );
    let m = db.metrics();
    assert_eq!(
        (m.out_of_order_samples_total, m.duplicate_samples_total),
        (1, 1)
    );

    // compat: older than head max time minus half the chunk range (1h) is out of bounds.
    let far = 10 * 3600 * 1000;
    append(&db, &lbls(&[("__name__", "y")]), &[(far, 1.0)]);
    let mut app = db.appender();
    assert!(matches!(
        app.append(0, &lbls(&[("__name__", "z")]), far - 3600 * 1000 - 1, 1.0),
        Err(StorageError::OutOfBounds)
    ));
    app.append(0, &lbls(&[("__name__", "z")]), far - 3600 * 1000 + 1, 1.0)
        .unwrap();
    app.commit().unwrap();
    // After truncation, anything before the truncation point is out of bounds too.
    db.truncate(far).unwrap();
    let mut app = db.appender();
    assert!(matches!(
        app.append(0, &lbls(&[("__name__", "w")]), far - 1, 1.0),
        Err(StorageError::OutOfBounds)
    ));
    assert!(db.metrics().out_of_bounds_samples_total >= 2);
}

#[test]
fn labels_are_validated_and_empty_values_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut app = db.appender();
    assert!(matches!(
        app.append(0, &model::Labels::empty(), 1, 1.0),
        Err(StorageError::InvalidLabels(_))
    ));
    app.append(0, &lbls(&[("__name__", "x"), ("a", "")]), 1, 1.0)
        .unwrap();
    app.commit().unwrap();
    assert_eq!(query_all(&db)[0].0, r#"{__name__="x"}"#);
}

fn matcher_fixture() -> (tempfile::TempDir, std::sync::Arc<tsdb::Db>) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    for (i, ls) in [
        vec![("n", "1")],
        vec![("n", "1"), ("a", "b")],
        vec![("n", "1"), ("a", "c")],
        vec![("n", "2")],
        vec![("n", "2"), ("a", "b")],
    ]
    .iter()
    .enumerate()
    {
        append(&db, &lbls(ls), &[(i as i64, 1.0)]);
    }
    (dir, db)
}

#[track_caller]
fn check(db: &tsdb::Db, ms: &[(&str, MatchType, &str)], want: &[&str]) {
    let ms: Vec<_> = ms.iter().map(|&(n, k, v)| matcher(n, k, v)).collect();
    let got: Vec<String> = query(db, i64::MIN, i64::MAX, &ms)
        .into_iter()
        .map(|s| s.0)
        .collect();
    assert_eq!(got, want, "{ms:?}");
}

#[test]
fn all_four_matcher_types_and_empty_matching() {
    let (_d, db) = matcher_fixture();
    let db = &*db;
    check(
        db,
        &[("a", Equal, "b")],
        &[r#"{a="b", n="1"}"#, r#"{a="b", n="2"}"#],
    );
    check(
        db,
        &[("n", Equal, "1"), ("a", NotEqual, "b")],
        &[r#"{a="c", n="1"}"#, r#"{n="1"}"#],
    );
    check(
        db,
        &[("n", RegexMatch, "1|2"), ("a", RegexMatch, "c")],
        &[r#"{a="c", n="1"}"#],
    );
    check(
        db,
        &[("n", Equal, "2"), ("a", RegexNoMatch, "b")],
        &[r#"{n="2"}"#],
    );
    // Matchers that match "" also select series without the label.
    check(db, &[("n", Equal, "1"), ("a", Equal, "")], &[r#"{n="1"}"#]);
    check(db, &[("a", Equal, "")], &[r#"{n="1"}"#, r#"{n="2"}"#]);
    check(
        db,
        &[("n", Equal, "1"), ("a", RegexNoMatch, ".+")],
        &[r#"{n="1"}"#],
    );
    check(
        db,
        &[("a", RegexMatch, "b|")],
        &[
            r#"{a="b", n="1"}"#,
            r#"{a="b", n="2"}"#,
            r#"{n="1"}"#,
            r#"{n="2"}"#,
        ],
    );
    check(
        db,
        &[("a", RegexMatch, ".+")],
        &[
            r#"{a="b", n="1"}"#,
            r#"{a="b", n="2"}"#,
            r#"{a="c", n="1"}"#,
        ],
    );
    check(
        db,
        &[("a", NotEqual, "")],
        &[
            r#"{a="b", n="1"}"#,
            r#"{a="b", n="2"}"#,
            r#"{a="c", n="1"}"#,
        ],
    );
    check(
        db,
        &[("n", RegexMatch, ".*"), ("a", NotEqual, "b")],
        &[r#"{a="c", n="1"}"#, r#"{n="1"}"#, r#"{n="2"}"#],
    );
    check(db, &[("missing", RegexMatch, ".+")], &[]);
}

#[test]
fn label_names_and_values() {
    let (_d, db) = matcher_fixture();
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    assert_eq!(q.label_names(&[]).unwrap(), vec!["a", "n"]);
    assert_eq!(q.label_values("n", &[]).unwrap(), vec!["1", "2"]);
    assert_eq!(
        q.label_values("a", &[matcher("n", Equal, "2")]).unwrap(),
        vec!["b"]
    );
    assert_eq!(
        q.label_names(&[matcher("a", Equal, "")]).unwrap(),
        vec!["n"]
    );
    assert_eq!(
        q.label_values("missing", &[]).unwrap(),
        Vec::<String>::new()
    );
    let outside = db.querier(1000, 2000).unwrap();
    assert_eq!(outside.label_names(&[]).unwrap(), Vec::<String>::new());
}

#[test]
fn select_hints_sorting_and_limit() {
    let (_d, db) = matcher_fixture();
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let hints = SelectHints {
        limit: 2,
        labels_only: true,
        ..Default::default()
    };
    let got = q
        .select(true, &hints, &[matcher("n", RegexMatch, ".+")])
        .unwrap();
    let names: Vec<String> = got.iter().map(|s| s.labels().to_string()).collect();
    assert_eq!(names, vec![r#"{a="b", n="1"}"#, r#"{a="b", n="2"}"#]);
    assert_eq!(got[0].iter().next(), None, "labels only");
}

#[test]
fn many_parallel_appenders() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    std::thread::scope(|s| {
        for w in 0..16 {
            let db = &db;
            s.spawn(move || {
                let mut refs = vec![0u64; 50];
                for t in 0..200i64 {
                    let mut app = db.appender();
                    for (i, r) in refs.iter_mut().enumerate() {
                        let l = lbls(&[
                            ("__name__", "m"),
                            ("w", &w.to_string()),
                            ("i", &i.to_string()),
                        ]);
                        *r = app.append(*r, &l, t * 1000, t as f64).unwrap();
                    }
                    app.commit().unwrap();
                }
            });
        }
    });
    assert_eq!(db.num_series(), 16 * 50);
    let all = query_all(&db);
    assert_eq!(all.len(), 800);
    assert!(all.iter().all(|s| s.1.len() == 200));
    assert_eq!(db.metrics().samples_appended_total, 800 * 200);
}

#[test]
fn stats_like_prometheus() {
    let (_d, db) = matcher_fixture();
    append(
        &db,
        &lbls(&[("__name__", "up"), ("job", "x")]),
        &[(10, 1.0)],
    );
    append(
        &db,
        &lbls(&[("__name__", "up"), ("job", "y")]),
        &[(10, 1.0)],
    );
    let s = db.stats(10);
    assert_eq!(s.head_stats.num_series, 7);
    assert_eq!((s.head_stats.min_time, s.head_stats.max_time), (0, 10));
    assert_eq!(s.head_stats.chunk_count, 7);
    assert_eq!(
        s.series_count_by_metric_name,
        vec![tsdb::Stat {
            name: "up".into(),
            value: 2
        }]
    );
    let json = serde_json::to_value(&s).unwrap();
    for key in [
        "headStats",
        "seriesCountByMetricName",
        "labelValueCountByLabelName",
        "memoryInBytesByLabelName",
        "seriesCountByLabelValuePair",
    ] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    assert!(json["headStats"].get("numLabelPairs").is_some());
    let pairs: Vec<(String, u64)> = s
        .series_count_by_label_value_pair
        .iter()
        .map(|p| (p.name.clone(), p.value))
        .collect();
    assert_eq!(pairs[0], ("n=1".to_string(), 3));
    let n_bytes = s
        .memory_in_bytes_by_label_name
        .iter()
        .find(|x| x.name == "n")
        .unwrap()
        .value;
    assert_eq!(n_bytes, 5, "one byte per series carrying n");
}

#[test]
fn retention_hides_then_deletes_old_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = super::small_opts();
    opts.retention = std::time::Duration::from_secs(3600);
    // A few chunks per file, so whole files fall behind the retention point.
    opts.head_chunk_file_size = 256;
    let db = tsdb::Db::open(dir.path(), opts).unwrap();
    let old = lbls(&[("__name__", "old")]);
    let new = lbls(&[("__name__", "new")]);
    let hour = 3600 * 1000;
    let mut app = db.appender();
    let mut ro = 0;
    let mut rn = 0;
    // "old" stops at 1.5h, "new" goes on to 5h.
    for t in (0..5 * hour).step_by(10_000) {
        if t < 3 * hour / 2 {
            ro = app.append(ro, &old, t, 1.0).unwrap();
        }
        rn = app.append(rn, &new, t, 2.0).unwrap();
    }
    app.commit().unwrap();
    let stats = db
        .run_retention(5 * hour)
        .unwrap()
        .expect("first run truncates");
    assert_eq!(stats.gc.series_removed, 1);
    assert!(stats.chunk_files_removed > 0, "{stats:?}");
    assert_eq!(db.num_series(), 1);
    let got = query(&db, 0, i64::MAX, &[matcher("__name__", RegexMatch, ".+")]);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].1.iter().all(|&(t, _)| t >= 4 * hour),
        "nothing older than now - retention is visible"
    );
    assert!(
        db.run_retention(5 * hour + 60_000).unwrap().is_none(),
        "at most one truncation per block duration"
    );
}
