//! Table tests of operators, aggregations and functions beyond the upstream scripts: NaN,
//! empty vectors, mismatched label sets and the error paths. One line per case.

use model::{Labels, Matcher, STALE_NAN, Timestamp};
use storage::{Querier, Queryable, SelectHints, Series, VecSeries};

use crate::{Engine, EngineOptions, Value, format_go_float};

const MIN: i64 = 60_000;

struct Db(Vec<VecSeries>);

struct Q(Vec<VecSeries>, Timestamp, Timestamp);

impl Queryable for Db {
    fn querier(&self, mint: Timestamp, maxt: Timestamp) -> storage::Result<Box<dyn Querier>> {
        Ok(Box::new(Q(self.0.clone(), mint, maxt)))
    }
}

impl Querier for Q {
    fn select(
        &self,
        _: bool,
        _: &SelectHints,
        ms: &[Matcher],
    ) -> storage::Result<Vec<Box<dyn Series>>> {
        Ok(self
            .0
            .iter()
            .filter(|s| model::matcher::matches_all(&s.labels, ms))
            .map(|s| {
                let samples = s
                    .samples
                    .iter()
                    .copied()
                    .filter(|p| p.0 >= self.1 && p.0 <= self.2)
                    .collect();
                Box::new(VecSeries {
                    labels: s.labels.clone(),
                    samples,
                }) as Box<dyn Series>
            })
            .collect())
    }
    fn label_values(&self, _: &str, _: &[Matcher]) -> storage::Result<Vec<String>> {
        Ok(vec![])
    }
    fn label_names(&self, _: &[Matcher]) -> storage::Result<Vec<String>> {
        Ok(vec![])
    }
}

fn series(labels: &[(&str, &str)], vals: impl IntoIterator<Item = f64>) -> VecSeries {
    VecSeries {
        labels: Labels::from_pairs(labels.iter().copied()),
        samples: vals
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * MIN, v))
            .collect(),
    }
}

/// Samples every minute from 0 to 10m.
fn db() -> Db {
    let k = |f: fn(f64) -> f64| (0..=10).map(move |i| f(i as f64));
    Db(vec![
        series(&[("__name__", "up"), ("job", "a"), ("inst", "1")], k(|i| i)),
        series(
            &[("__name__", "up"), ("job", "a"), ("inst", "2")],
            k(|i| 2.0 * i),
        ),
        series(
            &[("__name__", "up"), ("job", "b"), ("inst", "1")],
            k(|_| f64::NAN),
        ),
        series(
            &[("__name__", "c_total"), ("job", "a")],
            [0., 10., 20., 30., 40., 5., 15., 25., 35., 45., 55.],
        ),
        series(&[("__name__", "l"), ("x", "1")], k(|_| 1.0)),
        series(&[("__name__", "r"), ("x", "1"), ("y", "1")], k(|_| 10.0)),
        series(&[("__name__", "r"), ("x", "1"), ("y", "2")], k(|_| 20.0)),
        series(&[("__name__", "b_bucket"), ("le", "1")], k(|i| i)),
        series(&[("__name__", "b_bucket"), ("le", "2")], k(|i| 2.0 * i)),
        series(&[("__name__", "b_bucket"), ("le", "+Inf")], k(|i| 2.0 * i)),
        series(&[("__name__", "stale")], [1.0, STALE_NAN]),
        series(&[("__name__", "neg")], k(|i| -i - 0.5)),
    ])
}

/// `name{a="b"}` like the test scripts write series.
fn series_name(l: &Labels) -> String {
    match l.metric_name() {
        Some(n) if l.len() == 1 => n.to_string(),
        Some(n) => format!("{n}{}", l.without_metric_name()),
        None => l.to_string(),
    }
}

fn render(v: &Value) -> String {
    let f = |x: f64| format_go_float((x * 1e9).round() / 1e9);
    match v {
        Value::Scalar { v, .. } => f(*v),
        Value::String { s, .. } => format!("{s:?}"),
        Value::Vector(s) => {
            let mut items: Vec<String> = s
                .iter()
                .map(|s| format!("{} {}", series_name(&s.labels), f(s.v)))
                .collect();
            items.sort();
            items.join("; ")
        }
        Value::Matrix(m) => m
            .iter()
            .map(|s| {
                let pts: Vec<String> = s
                    .points
                    .iter()
                    .map(|p| format!("{}@{}", f(p.1), p.0 / 1000))
                    .collect();
                format!("{} [{}]", series_name(&s.labels), pts.join(" "))
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Evaluates `q` at 10m and compares the rendered result (or `error: ...`).
#[track_caller]
fn check(q: &str, want: &str) {
    check_at(q, 10 * MIN, want);
}

#[track_caller]
fn check_at(q: &str, t: i64, want: &str) {
    let got = match Engine::default().instant_query(&db(), q, t) {
        Ok(r) => render(&r.value),
        Err(e) => format!("error: {e}"),
    };
    assert_eq!(got, want, "query: {q}");
}

#[test]
fn arithmetic_and_comparison() {
    check(
        "up{inst=\"1\"} + 1",
        r#"{inst="1", job="a"} 11; {inst="1", job="b"} NaN"#,
    );
    check(
        "1 - up{job=\"a\"}",
        r#"{inst="1", job="a"} -9; {inst="2", job="a"} -19"#,
    );
    check(
        "up{job=\"a\"} * up{job=\"a\"}",
        r#"{inst="1", job="a"} 100; {inst="2", job="a"} 400"#,
    );
    check(
        "up{job=\"a\"} / 0",
        r#"{inst="1", job="a"} +Inf; {inst="2", job="a"} +Inf"#,
    );
    check(
        "up{job=\"a\"} % 3",
        r#"{inst="1", job="a"} 1; {inst="2", job="a"} 2"#,
    );
    check(
        "up{job=\"a\"} ^ 2",
        r#"{inst="1", job="a"} 100; {inst="2", job="a"} 400"#,
    );
    check(
        "up{inst=\"2\"} atan2 up{inst=\"2\"}",
        r#"{inst="2", job="a"} 0.785398163"#,
    );
    check("-up{inst=\"2\"}", r#"{inst="2", job="a"} -20"#);
    check("up > 15", r#"up{inst="2", job="a"} 20"#);
    check("15 < up", r#"up{inst="2", job="a"} 20"#);
    check(
        "up > bool 15",
        r#"{inst="1", job="a"} 0; {inst="1", job="b"} 0; {inst="2", job="a"} 1"#,
    );
    check("up{job=\"b\"} == up{job=\"b\"}", "");
    check(
        "up{job=\"b\"} != bool up{job=\"b\"}",
        r#"{inst="1", job="b"} 1"#,
    );
    check("2 > bool 1", "1");
    check("2 ^ 10 % 7 - 1", "1");
    check("empty + 1", "");
    check("up + l", "");
}

#[test]
fn vector_matching() {
    check(
        "r * on(x) group_left l",
        r#"{x="1", y="1"} 10; {x="1", y="2"} 20"#,
    );
    check(
        "l * on(x) group_right r",
        r#"{x="1", y="1"} 10; {x="1", y="2"} 20"#,
    );
    check(
        "r / ignoring(y) group_left l",
        r#"{x="1", y="1"} 10; {x="1", y="2"} 20"#,
    );
    check(
        "l + on(x) r",
        "error: found duplicate series for the match group {x=\"1\"} on the right hand-side of the operation: [{__name__=\"r\", x=\"1\", y=\"1\"}, {__name__=\"r\", x=\"1\", y=\"2\"}];many-to-many matching not allowed: matching labels must be unique on one side",
    );
    check(
        "r + on(x) l",
        "error: multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
    );
    check(
        "r * on(x) group_left(z) l",
        r#"{x="1", y="1"} 10; {x="1", y="2"} 20"#,
    );
    check(
        "r * on() group_left(y) vector(1)",
        "error: multiple matches for labels: grouping labels must ensure unique matches",
    );
    check(
        "r > on(x) group_left l",
        r#"r{x="1", y="1"} 10; r{x="1", y="2"} 20"#,
    );
}

#[test]
fn set_operators() {
    check(
        "up and up{inst=\"1\"}",
        r#"up{inst="1", job="a"} 10; up{inst="1", job="b"} NaN"#,
    );
    check("up and on(job) l", "");
    check(
        "up{job=\"a\"} or l",
        r#"l{x="1"} 1; up{inst="1", job="a"} 10; up{inst="2", job="a"} 20"#,
    );
    check("up unless up{job=\"a\"}", r#"up{inst="1", job="b"} NaN"#);
    check(
        "up unless on(inst) up{job=\"b\"}",
        r#"up{inst="2", job="a"} 20"#,
    );
    check("empty or l", r#"l{x="1"} 1"#);
    check("l and empty", "");
}

#[test]
fn aggregations() {
    check("sum(up{job=\"a\"})", "{} 30");
    check("sum(up)", "{} NaN");
    check("sum by (job) (up)", r#"{job="a"} 30; {job="b"} NaN"#);
    check("sum without (inst) (up)", r#"{job="a"} 30; {job="b"} NaN"#);
    check("avg(up{job=\"a\"})", "{} 15");
    check("min(up)", "{} 10");
    check("max(up)", "{} 20");
    check("count(up)", "{} 3");
    check("group by (job) (up)", r#"{job="a"} 1; {job="b"} 1"#);
    check("stddev(up{job=\"a\"})", "{} 5");
    check("stdvar(up{job=\"a\"})", "{} 25");
    check("topk(1, up)", r#"up{inst="2", job="a"} 20"#);
    check("bottomk(1, up)", r#"up{inst="1", job="a"} 10"#);
    check("topk(5, up{job=\"b\"})", r#"up{inst="1", job="b"} NaN"#);
    check("topk(0, up)", "");
    check("topk(NaN, up)", "error: Scalar value NaN overflows int64");
    check(
        "bottomk(-1e20, up)",
        "error: Scalar value -1e+20 overflows int64",
    );
    check("quantile(0.5, up{job=\"a\"})", "{} 15");
    check("quantile(2, up{job=\"a\"})", "{} +Inf");
    check(
        "count_values(\"v\", up{job=\"a\"})",
        r#"{v="10"} 1; {v="20"} 1"#,
    );
    check("sum(empty)", "");
    check("count(empty)", "");
    check("sum by (__name__) (up{job=\"a\"})", r#"up 30"#);
}

#[test]
fn range_functions() {
    // (0, 10m] holds 1m..10m: 85 of increase over 9m, extrapolated by 1m to the window start.
    check("rate(c_total[10m])", r#"{job="a"} 0.157407407"#);
    check("increase(c_total[10m])", r#"{job="a"} 94.444444444"#);
    check(
        "delta(up{inst=\"1\"}[10m])",
        r#"{inst="1", job="a"} 10; {inst="1", job="b"} NaN"#,
    );
    check("irate(c_total[5m])", r#"{job="a"} 0.166666667"#);
    check("idelta(c_total[5m])", r#"{job="a"} 10"#);
    check(
        "deriv(up{inst=\"2\"}[5m])",
        r#"{inst="2", job="a"} 0.033333333"#,
    );
    check(
        "predict_linear(up{inst=\"2\"}[5m], 60)",
        r#"{inst="2", job="a"} 22"#,
    );
    check("resets(c_total[10m])", r#"{job="a"} 1"#);
    check("changes(c_total[10m])", r#"{job="a"} 9"#);
    check("changes(up{job=\"b\"}[10m])", r#"{inst="1", job="b"} 0"#);
    check(
        "avg_over_time(up{inst=\"2\"}[3m])",
        r#"{inst="2", job="a"} 18"#,
    );
    check("min_over_time(c_total[10m])", r#"{job="a"} 5"#);
    check("max_over_time(c_total[10m])", r#"{job="a"} 55"#);
    check("sum_over_time(l[3m])", r#"{x="1"} 3"#);
    check("count_over_time(l[3m])", r#"{x="1"} 3"#);
    check("quantile_over_time(0.5, c_total[10m])", r#"{job="a"} 27.5"#);
    check("stddev_over_time(l[5m])", r#"{x="1"} 0"#);
    check(
        "stdvar_over_time(up{job=\"a\", inst=\"1\"}[2m])",
        r#"{inst="1", job="a"} 0.25"#,
    );
    check("last_over_time(l[1m])", r#"l{x="1"} 1"#);
    check(
        "first_over_time(up{job=\"a\", inst=\"1\"}[3m])",
        r#"up{inst="1", job="a"} 8"#,
    );
    check("present_over_time(l[1m])", r#"{x="1"} 1"#);
    check(
        "mad_over_time(up{job=\"a\", inst=\"1\"}[3m])",
        r#"{inst="1", job="a"} 1"#,
    );
    check("ts_of_max_over_time(c_total[10m])", r#"{job="a"} 600"#);
    check("absent_over_time(l[1m])", "");
    check("absent_over_time(nope{a=\"b\"}[1m])", r#"{a="b"} 1"#);
    check(
        "double_exponential_smoothing(up{job=\"a\", inst=\"1\"}[5m], 0.5, 0.5)",
        r#"{inst="1", job="a"} 10"#,
    );
    check(
        "double_exponential_smoothing(l[5m], 1, 0.5)",
        "error: invalid smoothing factor. Expected: 0 < sf < 1, got: 1",
    );
    check("rate(empty[5m])", "");
    check(
        "max_over_time(up{job=\"b\"}[5m])",
        r#"{inst="1", job="b"} NaN"#,
    );
    check("sum_over_time(l[3m:1m])", r#"{x="1"} 3"#);
    check("rate(c_total[10m] offset 5m)", r#"{job="a"} 0.075"#);
    check_at("rate(c_total[10m] @ 600)", 0, r#"{job="a"} 0.157407407"#);
}

#[test]
fn instant_functions() {
    check("abs(neg)", "{} 10.5");
    check("ceil(neg)", "{} -10");
    check("floor(neg)", "{} -11");
    check("round(neg)", "{} -10");
    check(
        "round(up{inst=\"1\"}, 3)",
        r#"{inst="1", job="a"} 9; {inst="1", job="b"} NaN"#,
    );
    check("exp(l - 1)", r#"{x="1"} 1"#);
    check("ln(l)", r#"{x="1"} 0"#);
    check("log2(up{inst=\"2\"} / 5)", r#"{inst="2", job="a"} 2"#);
    check(
        "log10(up{inst=\"1\"})",
        r#"{inst="1", job="a"} 1; {inst="1", job="b"} NaN"#,
    );
    check("sqrt(neg)", "{} NaN");
    check("sgn(neg)", "{} -1");
    check("sgn(up{job=\"b\"})", r#"{inst="1", job="b"} NaN"#);
    check("sin(l - 1)", r#"{x="1"} 0"#);
    check("cos(l - 1)", r#"{x="1"} 1"#);
    check("tan(l - 1)", r#"{x="1"} 0"#);
    check("asin(l)", r#"{x="1"} 1.570796327"#);
    check("acos(l)", r#"{x="1"} 0"#);
    check("atan(l - 1)", r#"{x="1"} 0"#);
    check("sinh(l - 1)", r#"{x="1"} 0"#);
    check("cosh(l - 1)", r#"{x="1"} 1"#);
    check("tanh(l - 1)", r#"{x="1"} 0"#);
    check("asinh(l - 1)", r#"{x="1"} 0"#);
    check("acosh(l)", r#"{x="1"} 0"#);
    check("atanh(l - 1)", r#"{x="1"} 0"#);
    check("deg(l * pi())", r#"{x="1"} 180"#);
    check("rad(l * 180)", r#"{x="1"} 3.141592654"#);
    check(
        "clamp(up{job=\"a\"}, 12, 15)",
        r#"{inst="1", job="a"} 12; {inst="2", job="a"} 15"#,
    );
    check("clamp(up{job=\"a\"}, 15, 12)", "");
    check("clamp_min(up{job=\"b\"}, 1)", r#"{inst="1", job="b"} NaN"#);
    check(
        "clamp_max(up{job=\"a\"}, 11)",
        r#"{inst="1", job="a"} 10; {inst="2", job="a"} 11"#,
    );
    check("vector(1)", "{} 1");
    check("scalar(l)", "1");
    check("scalar(up)", "NaN");
    check("scalar(empty)", "NaN");
    check("time()", "600");
    check("pi()", "3.141592654");
    check("timestamp(l)", r#"{x="1"} 600"#);
    check_at("timestamp(stale)", 30_000, "{} 0");
    check_at("stale", 90_000, "");
    check("absent(empty{a=\"b\", c=~\"d\"})", r#"{a="b"} 1"#);
    check("absent(l)", "");
    check("absent(sum(empty))", "{} 1");
    check(
        "label_replace(l, \"y\", \"v$1\", \"x\", \"(.*)\")",
        r#"l{x="1", y="v1"} 1"#,
    );
    check(
        "label_replace(l, \"y\", \"v$1\", \"x\", \"(\")",
        "error: invalid regular expression in label_replace(): (",
    );
    check(
        "label_replace(r, \"y\", \"\", \"y\", \".*\")",
        "error: vector cannot contain metrics with the same labelset",
    );
    check(
        "label_join(r, \"z\", \"-\", \"x\", \"y\")",
        r#"r{x="1", y="1", z="1-1"} 10; r{x="1", y="2", z="1-2"} 20"#,
    );
    check("histogram_quantile(0.5, b_bucket)", "{} 1");
    check("histogram_quantile(0.75, b_bucket)", "{} 1.5");
    check("histogram_quantile(0.5, empty)", "");
    check("histogram_fraction(0, 1.5, b_bucket)", "{} 0.75");
    check("year(l * 0)", r#"{x="1"} 1970"#);
    check("month()", "{} 1");
    check("day_of_week(vector(86400 * 3))", "{} 0");
    check("days_in_month(vector(86400 * 40))", "{} 28");
    check("day_of_year(vector(86400 * 40))", "{} 41");
    check("hour(vector(7200))", "{} 2");
    check("minute(vector(7260))", "{} 1");
    check("day_of_month(vector(86400 * 40))", "{} 10");
}

#[test]
fn sorting_and_results() {
    let r = Engine::default()
        .instant_query(&db(), "sort_desc(up{job=\"a\"})", 10 * MIN)
        .unwrap();
    let Value::Vector(v) = r.value else { panic!() };
    assert_eq!(v[0].v, 20.0);
    let r = Engine::default()
        .instant_query(&db(), "sort(up)", 10 * MIN)
        .unwrap();
    let Value::Vector(v) = r.value else { panic!() };
    assert!(v[2].v.is_nan(), "NaN sorts last");
    check("\"str\"", "\"str\"");
    check("l[2m]", r#"l{x="1"} [1@540 1@600]"#);
    check("l[2m:1m]", r#"l{x="1"} [1@540 1@600]"#);
    check("ceil({__name__=~\"l|neg\"})", r#"{x="1"} 1; {} -10"#);
    check(
        "ceil({__name__=~\"up\", inst=\"1\"}) or ceil({__name__=\"c_total\"})",
        r#"{inst="1", job="a"} 10; {inst="1", job="b"} NaN; {job="a"} 55"#,
    );
}

#[test]
fn range_queries() {
    let e = Engine::default();
    let r = e.range_query(&db(), "l * 2", 0, 2 * MIN, MIN).unwrap();
    assert_eq!(render(&r.value), r#"{x="1"} [2@0 2@60 2@120]"#);
    let r = e.range_query(&db(), "time()", 0, MIN, MIN).unwrap();
    assert_eq!(render(&r.value), "{} [0@0 60@60]");
    let r = e.range_query(&db(), "stale", 0, 2 * MIN, MIN).unwrap();
    assert_eq!(render(&r.value), r#"stale [1@0]"#);
    assert!(e.range_query(&db(), "l[1m]", 0, MIN, MIN).is_err());
    assert!(e.range_query(&db(), "\"s\"", 0, MIN, MIN).is_err());
    assert!(e.range_query(&db(), "l", MIN, 0, MIN).is_err());
    assert!(e.range_query(&db(), "l", 0, MIN, 0).is_err());
}

#[test]
fn limits_and_errors() {
    let small = Engine::new(EngineOptions {
        max_samples: 5,
        ..EngineOptions::default()
    });
    let err = small
        .range_query(&db(), "up", 0, 10 * MIN, MIN)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
    assert_eq!(err.kind(), "execution");
    assert!(small.instant_query(&db(), "up", 0).is_ok());
    let err = Engine::default()
        .instant_query(&db(), "sum(", 0)
        .unwrap_err();
    assert_eq!(err.kind(), "bad_data");
    assert_eq!(
        err.to_string(),
        "1:5: parse error: unclosed left parenthesis"
    );
    let cancel = std::sync::atomic::AtomicBool::new(true);
    let expr = crate::parse("up").unwrap();
    let opts = crate::QueryOpts {
        cancel: Some(&cancel),
        ..Default::default()
    };
    // Cancellation is checked every few dozen nodes/series; a long range query hits a check.
    let r = Engine::default().eval_range(&db(), &expr, 0, 1000 * MIN, MIN, opts);
    assert!(r.is_ok() || matches!(r, Err(crate::Error::Canceled)));
}

/// 1,200 counters in 5 groups: enough series for the multi-threaded range functions and the
/// series-by-series aggregation folds. Every series is also evaluated on its own (one thread,
/// no fold) and must give bit-for-bit the same values, in the same order.
#[test]
fn many_series_paths_equal_single_series() {
    let n = 1200;
    let db = Db((0..n)
        .map(|i| {
            let (g, s) = ((i % 5).to_string(), i.to_string());
            let vals = (0..=30).map(move |k| {
                // A reset in every 7th series, a NaN now and then, uneven slopes.
                let base = if i % 7 == 0 && k >= 12 { k - 12 } else { k } as f64;
                if i % 97 == 0 && k == 20 {
                    f64::NAN
                } else {
                    base * (1.0 + i as f64 / 3.0)
                }
            });
            series(&[("__name__", "x"), ("g", &g), ("s", &s)], vals)
        })
        .collect());
    let e = Engine::default();
    let (start, end) = (5 * MIN, 30 * MIN);
    for f in [
        "rate",
        "increase",
        "avg_over_time",
        "resets",
        "stddev_over_time",
    ] {
        let all = e
            .range_query(&db, &format!("{f}(x[5m])"), start, end, MIN)
            .unwrap();
        let Value::Matrix(all) = all.value else {
            panic!("matrix expected")
        };
        assert_eq!(all.len(), n, "{f}");
        for s in all.iter().step_by(37) {
            let one = e
                .range_query(
                    &db,
                    &format!("{f}(x{{s=\"{}\"}}[5m])", s.labels.get_or_empty("s")),
                    start,
                    end,
                    MIN,
                )
                .unwrap();
            let Value::Matrix(one) = one.value else {
                panic!("matrix expected")
            };
            let bits =
                |p: &[(i64, f64)]| p.iter().map(|x| (x.0, x.1.to_bits())).collect::<Vec<_>>();
            assert_eq!(bits(&one[0].points), bits(&s.points), "{f} {}", s.labels);
        }
    }
    // Plain selectors (threaded too) against one series at a time.
    for q in ["x", "timestamp(x)"] {
        let all = e.range_query(&db, q, start, end, MIN).unwrap();
        let Value::Matrix(all) = all.value else {
            panic!("matrix expected")
        };
        assert_eq!(all.len(), n, "{q}");
        for s in all.iter().step_by(37) {
            let sel = format!("x{{s=\"{}\"}}", s.labels.get_or_empty("s"));
            let one = e
                .range_query(&db, &q.replace('x', &sel), start, end, MIN)
                .unwrap();
            let Value::Matrix(one) = one.value else {
                panic!("matrix expected")
            };
            assert_eq!(one[0].points.len(), s.points.len(), "{q} {}", s.labels);
            for (a, b) in one[0].points.iter().zip(&s.points) {
                assert!(
                    a.0 == b.0 && (a.1 == b.1 || (a.1.is_nan() && b.1.is_nan())),
                    "{q}"
                );
            }
        }
    }
    // Folded aggregations against the same arithmetic over each group's values at each step.
    let rates = e.range_query(&db, "rate(x[5m])", start, end, MIN).unwrap();
    let Value::Matrix(mut rates) = rates.value else {
        panic!("matrix expected")
    };
    // The engine folds in selection order (the database's), not in the sorted output order.
    rates.sort_by_key(|s| s.labels.get_or_empty("s").parse::<usize>().unwrap());
    for (op, f) in [
        ("sum", crate::functions::stats::sum as fn(&[f64]) -> f64),
        ("avg", crate::functions::stats::mean),
        ("max", crate::functions::stats::max),
        ("stdvar", crate::functions::stats::variance),
    ] {
        let got = e
            .range_query(&db, &format!("{op} by (g) (rate(x[5m]))"), start, end, MIN)
            .unwrap();
        let Value::Matrix(got) = got.value else {
            panic!("matrix expected")
        };
        assert_eq!(got.len(), 5, "{op}");
        for gs in &got {
            let g = gs.labels.get_or_empty("g");
            for &(t, v) in &gs.points {
                let vals: Vec<f64> = rates
                    .iter()
                    .filter(|s| s.labels.get_or_empty("g") == g)
                    .filter_map(|s| s.points.iter().find(|p| p.0 == t).map(|p| p.1))
                    .collect();
                let want = f(&vals);
                assert!(
                    want.to_bits() == v.to_bits() || (want.is_nan() && v.is_nan()),
                    "{op} g={g} @{t}: {v} != {want}"
                );
            }
        }
    }
}

/// `sum_over_time` and `avg_over_time` take the window's running sum when every value in it is
/// exactly summable; each output must still be bit for bit the compensated fold over the
/// window's values, across windows that mix in fractions, NaN, infinities, huge values, signed
/// zeros and staleness markers.
#[test]
fn over_time_sums_equal_the_fold_over_each_window() {
    let pattern = |s: usize, k: usize| -> f64 {
        match (s, k % 23) {
            (0, _) => (k % 7) as f64 * 0.5 - 1.5,
            (1, 5) => 0.1,
            (1, _) => k as f64,
            (2, 3) => f64::NAN,
            (2, 9) => f64::INFINITY,
            (2, _) => 3.0,
            (3, 4) => 1e30,
            (3, 6) => -1e30,
            (3, _) => 1.0,
            (4, _) if k.is_multiple_of(2) => -0.0,
            (4, _) => 0.0,
            (5, 7) => STALE_NAN,
            (5, _) => (k % 3) as f64 - 1.0,
            (_, _) => (1u64 << 30) as f64 + k as f64,
        }
    };
    let n = 200;
    let db = Db((0..7)
        .map(|s| {
            series(
                &[("__name__", "g"), ("s", &s.to_string())],
                (0..n).map(|k| pattern(s, k)),
            )
        })
        .collect());
    let e = Engine::default();
    for (f, fold) in [
        (
            "sum_over_time",
            crate::functions::stats::sum as fn(&[f64]) -> f64,
        ),
        ("avg_over_time", crate::functions::stats::mean),
    ] {
        for range in [1, 5, 17] {
            let q = format!("{f}(g[{range}m])");
            let res = e
                .range_query(&db, &q, 0, (n as i64 - 1) * MIN, MIN)
                .unwrap();
            let Value::Matrix(m) = res.value else {
                panic!("matrix expected")
            };
            for s in &m {
                let id: usize = s.labels.get_or_empty("s").parse().unwrap();
                for &(t, v) in &s.points {
                    let k = (t / MIN) as usize;
                    let w: Vec<f64> = (k.saturating_sub(range - 1)..=k)
                        .map(|j| pattern(id, j))
                        .filter(|v| !model::is_stale_nan(*v))
                        .collect();
                    let want = fold(&w);
                    let bits = |x: f64| if x.is_nan() { u64::MAX } else { x.to_bits() };
                    assert_eq!(bits(v), bits(want), "{q} s={id} t={k}: {w:?}");
                }
            }
        }
    }
}

#[test]
fn selectors_over_more_series_than_one_batch() {
    // More series than `SELECT_BATCH` (two full batches and a partial one): every batch is
    // evaluated and the outputs are all kept, in order.
    let n = 2 * super::SELECT_BATCH + 808;
    let db = Db((0..n)
        .map(|i| {
            let id = i.to_string();
            let per_min = (i % 3 + 1) as f64;
            series(
                &[("__name__", "c"), ("i", id.as_str())],
                (0..=10).map(move |j| j as f64 * per_min),
            )
        })
        .collect());
    let third = (n / 3) as f64;
    let cases = [
        ("count(c)", n as f64),
        ("sum(c)", 10.0 * 6.0 * third),
        ("count(rate(c[2m]))", n as f64),
        ("sum(rate(c[2m]))", 6.0 * third / 60.0),
        ("max(rate(c[2m]))", 3.0 / 60.0),
        ("count(last_over_time(c[1m] offset 1m))", n as f64),
    ];
    for (q, want) in cases {
        let res = Engine::default()
            .range_query(&db, q, 10 * MIN, 10 * MIN, MIN)
            .unwrap_or_else(|e| panic!("{q}: {e}"));
        let Value::Matrix(m) = res.value else {
            panic!("{q}: not a matrix");
        };
        assert_eq!(m.len(), 1, "{q}");
        assert_eq!(m[0].points.len(), 1, "{q}");
        let got = m[0].points[0].1;
        assert!(
            (got - want).abs() <= want * 1e-12,
            "{q}: got {got}, want {want}"
        );
    }
    // Without aggregation every series comes back once.
    let res = Engine::default()
        .range_query(&db, "rate(c[2m])", 5 * MIN, 10 * MIN, MIN)
        .expect("rate");
    let Value::Matrix(m) = res.value else {
        panic!("not a matrix");
    };
    assert_eq!(m.len(), n);
    assert!(m.iter().all(|s| s.points.len() == 6));
    // A range vector result (one thread, `map_windows`): every series' raw samples.
    let res = Engine::default()
        .instant_query(&db, "c[2m]", 10 * MIN)
        .expect("range vector");
    let Value::Matrix(m) = res.value else {
        panic!("not a matrix");
    };
    assert_eq!(m.len(), n);
    assert!(m.iter().all(|s| s.points.len() == 2));
}

#[test]
fn sliding_windows_match_a_direct_filter() {
    // Irregular samples with staleness markers and gaps longer than the range, read ahead
    // over many steps: every window is exactly the non-stale samples in (t - range, t], and
    // the counted resets are those of the window.
    let mut samples = Vec::new();
    let mut ts = 0i64;
    for i in 0..3000i64 {
        ts += 1 + (i * 7919) % 23;
        if i % 400 == 399 {
            ts += 700;
        }
        let v = if i % 97 == 5 {
            STALE_NAN
        } else {
            ((i * 31) % 17) as f64
        };
        samples.push((ts, v));
    }
    let live: Vec<(i64, f64)> = samples
        .iter()
        .copied()
        .filter(|s| !model::is_stale_nan(s.1))
        .collect();
    for (step, range) in [(1, 5), (7, 50), (60, 200), (500, 100), (5000, 3000)] {
        let r = super::Rng {
            start: 100,
            end: ts + 50,
            step,
        };
        let lo = r.start - range + 1;
        let mut it = storage::SliceIter::new(&samples);
        let mut budget = super::Budget {
            cur: 0,
            max: usize::MAX,
        };
        let mut seen = 0usize;
        let pts = super::windows(
            &mut it,
            lo,
            r,
            &|t| t,
            range,
            super::Track::RESETS,
            &mut budget,
            &mut |k, t, _, w, info| {
                let want: Vec<(i64, f64)> = live
                    .iter()
                    .copied()
                    .filter(|s| s.0 > t - range && s.0 <= t)
                    .collect();
                assert_eq!(t, r.ts(k));
                assert_eq!(w, want.as_slice(), "step {step} range {range} t {t}");
                let resets = w.windows(2).filter(|p| p[1].1 < p[0].1).count();
                assert_eq!(info.resets, resets, "step {step} range {range} t {t}");
                seen += 1;
                Ok(Some(w.len() as f64))
            },
        )
        .expect("windows");
        assert_eq!(pts.len(), seen);
        let nonempty = (0..r.len())
            .filter(|&k| {
                let t = r.ts(k);
                live.iter().any(|s| s.0 > t - range && s.0 <= t)
            })
            .count();
        assert_eq!(seen, nonempty, "step {step} range {range}");
    }
}

/// Every result value bit for bit, in result order, with labels.
fn exact(v: &Value) -> String {
    match v {
        Value::Matrix(m) => m
            .iter()
            .map(|s| {
                let pts: Vec<String> = s
                    .points
                    .iter()
                    .map(|p| format!("{:x}@{}", p.1.to_bits(), p.0))
                    .collect();
                format!("{} [{}]", s.labels, pts.join(" "))
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Vector(s) => s
            .iter()
            .map(|s| format!("{} {:x}@{}", s.labels, s.v.to_bits(), s.t))
            .collect::<Vec<_>>()
            .join("\n"),
        other => format!("{other:?}"),
    }
}

#[test]
fn streamed_aggregation_of_range_functions_equals_the_materialised_one() {
    use super::aggregate::{FUSED, NO_FUSE};
    // Counters with resets, NaN, stale markers, gaps, huge and negative values, -0, and label
    // sets that differ (an extra label on some series, none on others); more series than one
    // batch so the fold is fed several batches (each on several threads).
    let build = |n: usize| {
        Db((0..n)
            .map(|i| {
                let (job, inst) = (format!("j{}", i % 7), format!("i{}", i % 97));
                let extra = format!("e{}", i % 3);
                let mut labels = vec![("__name__", "x"), ("job", job.as_str())];
                if i % 11 != 0 {
                    labels.push(("instance", inst.as_str()));
                }
                if i % 4 == 0 {
                    labels.push(("extra", extra.as_str()));
                }
                let mut s = series(
                    &labels,
                    (0..=30).map(move |j| {
                        let v = (j * (i % 5 + 1)) as f64 + (i as f64) * 0.1;
                        match (i + j) % 23 {
                            0 => f64::NAN,
                            5 => STALE_NAN,
                            7 => v / 3.0,
                            9 if i % 13 == 0 => 1e308,
                            11 if i % 17 == 0 => -0.0,
                            13 => -v,
                            _ => v,
                        }
                    }),
                );
                // Some series start late or stop early (steps without output).
                if i % 9 == 0 {
                    s.samples.retain(|p| p.0 >= 12 * MIN);
                }
                if i % 10 == 1 {
                    s.samples.retain(|p| p.0 <= 20 * MIN);
                }
                s
            })
            .collect())
    };
    let run = |db: &Db, q: &str, fuse: bool| {
        NO_FUSE.with(|c| c.set(!fuse));
        let before = FUSED.with(|c| c.get());
        let got = match Engine::default().range_query(db, q, 0, 30 * MIN, MIN) {
            Ok(r) => exact(&r.value),
            Err(e) => format!("error: {e}"),
        };
        let fused = FUSED.with(|c| c.get()) > before;
        NO_FUSE.with(|c| c.set(false));
        (got, fused)
    };
    let small = build(300);
    let ops = [
        "sum", "avg", "count", "min", "max", "group", "stddev", "stdvar",
    ];
    let groupings = [
        "",
        " by (job)",
        " by (job, instance)",
        " without (instance)",
        " by (extra)",
    ];
    let funcs = [
        "rate(x[5m])",
        "increase(x[3m])",
        "sum_over_time(x[4m])",
        "max_over_time((x[2m]))",
        "deriv(x[5m])",
        "changes(x[5m])",
        "last_over_time(x[2m] offset 1m)",
    ];
    for op in ops {
        for g in groupings {
            for f in funcs {
                let q = format!("{op}{g} ({f})");
                let (want, fused) = run(&small, &q, false);
                assert!(!fused, "{q}");
                let (got, fused) = run(&small, &q, true);
                assert!(fused, "{q}: not streamed");
                assert!(
                    !want.is_empty() && !want.starts_with("error"),
                    "{q}: {want}"
                );
                assert_eq!(got, want, "{q}");
            }
        }
    }
    let big = build(super::SELECT_BATCH + 300);
    for q in [
        "sum(rate(x[5m]))",
        "sum by (job, instance) (rate(x[5m]))",
        "avg without (instance) (increase(x[3m]))",
        "max by (extra) (rate(x[5m]))",
        "count by (job) (sum_over_time(x[5m] @ 600))",
    ] {
        let (want, _) = run(&big, q, false);
        let (got, fused) = run(&big, q, true);
        assert!(fused, "{q}: not streamed");
        assert_eq!(got, want, "{q}");
    }
    // Not streamed: a parameter, a subquery, an aggregation that keeps its input series.
    for q in [
        "sum(rate(x[5m:1m]))",
        "topk(2, rate(x[5m]))",
        "sum(quantile_over_time(0.5, x[5m]))",
    ] {
        let (_, fused) = run(&small, q, true);
        assert!(!fused, "{q}");
    }
}

/// A range function folded batch by batch into an aggregation still counts its whole output
/// against the sample limit (as Prometheus counts it), so `sum(rate(x[5m]))` fails exactly where
/// the materialised evaluation fails.
#[test]
fn streamed_aggregation_keeps_the_sample_limit() {
    use super::aggregate::{FUSED, NO_FUSE};
    let db = Db((0..(super::FOLD_BATCH * 3))
        .map(|i| {
            let inst = format!("i{i}");
            series(
                &[("__name__", "x"), ("instance", inst.as_str())],
                (0..=30).map(|j| j as f64),
            )
        })
        .collect());
    let q = "sum(rate(x[5m]))";
    for max_samples in [100_000, 60_000, 40_000, 10_000, 1_000] {
        let e = Engine::new(EngineOptions {
            max_samples,
            ..EngineOptions::default()
        });
        let mut answers = Vec::new();
        for fuse in [false, true] {
            NO_FUSE.with(|c| c.set(!fuse));
            let before = FUSED.with(|c| c.get());
            let r = e.range_query(&db, q, 0, 30 * MIN, MIN);
            let fused = FUSED.with(|c| c.get()) > before;
            NO_FUSE.with(|c| c.set(false));
            if fuse && r.is_ok() {
                assert!(fused, "{q}: not streamed");
            }
            answers.push(match r {
                Ok(r) => exact(&r.value),
                Err(e) => format!("error: {e}"),
            });
        }
        assert_eq!(answers[1], answers[0], "max_samples {max_samples}");
        if max_samples <= 40_000 {
            assert!(
                answers[0].starts_with("error"),
                "{max_samples}: {}",
                answers[0]
            );
        }
    }
}

/// `stats`: samples counted as Prometheus 2.42 counts `totalQueryableSamples` (selector
/// points, window sizes at their steps, a subquery's inner count only when it is the
/// result), the peak held, and nothing at all when not asked for.
#[test]
fn query_stats_count_samples() {
    use crate::{QueryOpts, StatsLevel};
    let e = Engine::new(EngineOptions {
        per_step_stats: true,
        ..EngineOptions::default()
    });
    let per_step = QueryOpts {
        stats: StatsLevel::PerStep,
        ..Default::default()
    };
    let instant = |q: &str, o: QueryOpts<'_>| {
        let expr = crate::parse(q).unwrap();
        let r = e.eval_instant(&db(), &expr, 10 * MIN, o).unwrap();
        r.stats.map(|s| s.samples)
    };
    let s = instant("up", per_step).unwrap();
    assert_eq!((s.total, s.peak), (3, 3));
    assert_eq!(s.per_step, Some(vec![(10 * MIN, 3)]));
    // (5m, 10m] holds 5 samples.
    assert_eq!(instant("rate(c_total[5m])", per_step).unwrap().total, 5);
    // A range vector result holds its raw samples.
    let s = instant("up[2m]", per_step).unwrap();
    assert_eq!((s.total, s.peak), (6, 6));
    // A function's subquery: the windows over its output (3 steps x 3 series), not its
    // inner selector; a subquery as the result: its inner count (2 samples x 4 windows: the
    // inner steps start at the window's start, 7m, which the window then leaves out).
    assert_eq!(
        instant("max_over_time(up[3m:1m])", per_step).unwrap().total,
        9
    );
    assert_eq!(
        instant("rate(c_total[2m])[3m:1m]", per_step).unwrap().total,
        8
    );
    assert_eq!(
        instant("absent_over_time(up[1m])", per_step).unwrap().total,
        3
    );
    assert!(instant("up", QueryOpts::default()).is_none());
    let summary = QueryOpts {
        stats: StatsLevel::Summary,
        ..Default::default()
    };
    assert_eq!(instant("up", summary).unwrap().per_step, None);

    let expr =
        crate::parse("rate(c_total[2m]) + on() group_left up{inst=\"1\",job=\"a\"}").unwrap();
    let r = e
        .eval_range(&db(), &expr, 8 * MIN, 10 * MIN, MIN, per_step)
        .unwrap();
    let s = r.stats.unwrap();
    assert_eq!(
        s.samples.per_step,
        Some(vec![(8 * MIN, 3), (9 * MIN, 3), (10 * MIN, 3)])
    );
    assert_eq!(s.samples.total, 9);
    assert!(s.timings.eval_total >= s.timings.inner_eval);
    // Without the engine's per-step option, `stats=all` gives the summary only.
    let r = Engine::default().eval_range(&db(), &expr, 8 * MIN, 10 * MIN, MIN, per_step);
    let s = r.unwrap().stats.unwrap().samples;
    assert_eq!((s.total, s.per_step), (9, None));
}

/// The streamed fold over many steps and few series is split across threads by steps (each
/// thread slides every series' window over its share of the steps): the result must be bit for
/// bit the materialised one over irregular samples with counter resets, NaN, staleness markers,
/// gaps longer than the range, windows of 0, 1 and 2 samples, offsets and `@`.
#[test]
fn fold_split_by_steps_equals_the_materialised_one() {
    use super::aggregate::{FUSED, NO_FUSE};
    const SEC: i64 = 1000;
    let db = Db((0..60)
        .map(|i: i64| {
            let job = format!("j{}", i % 4);
            let inst = format!("i{i}");
            let mut samples = Vec::new();
            let (mut t, mut v) = (i * 7 * SEC, (i * 3) as f64);
            for j in 0..3000i64 {
                // Uneven scrape gaps; every 500th sample a gap longer than any range.
                t += (10 + (j * 7 + i) % 13) * SEC + if j % 500 == 499 { 1800 * SEC } else { 0 };
                v = match (j + i) % 211 {
                    0 => 0.0,            // counter reset
                    17 => v / 2.0 + 0.1, // a reset to a fraction
                    _ => v + ((j * i) % 5) as f64 * 0.25,
                };
                let val = match (j * 31 + i) % 401 {
                    3 => f64::NAN,
                    7 => STALE_NAN,
                    11 if i % 5 == 0 => -0.0,
                    _ => v,
                };
                // Sparse series: windows with 0, 1 and 2 samples.
                if i % 6 == 5 && j % 9 != 0 {
                    continue;
                }
                samples.push((t, val));
            }
            VecSeries {
                labels: Labels::from_pairs([("__name__", "x"), ("job", &job), ("inst", &inst)]),
                samples,
            }
        })
        .collect());
    let run = |q: &str, fuse: bool| {
        NO_FUSE.with(|c| c.set(!fuse));
        let before = FUSED.with(|c| c.get());
        let got = match Engine::default().range_query(&db, q, 600 * SEC, 30_000 * SEC, 17 * SEC) {
            Ok(r) => exact(&r.value),
            Err(e) => format!("error: {e}"),
        };
        let fused = FUSED.with(|c| c.get()) > before;
        NO_FUSE.with(|c| c.set(false));
        (got, fused)
    };
    for q in [
        "sum by (job) (rate(x[1m]))",
        "sum(increase(x[5m] offset 3m))",
        "avg by (job) (avg_over_time(x[2m]))",
        "sum by (inst) (sum_over_time(x[45s]))",
        "max by (job) (resets(x[10m]))",
        "stddev (delta(x[30s]))",
        "min by (job) (irate(x[2m] @ 20000))",
        "count by (job) (count_over_time(x[20s]))",
        "group by (job) (last_over_time(x[1m]))",
        "stdvar by (job) (deriv(x[3m]))",
    ] {
        let (want, fused) = run(q, false);
        assert!(!fused, "{q}");
        assert!(
            !want.is_empty() && !want.starts_with("error"),
            "{q}: {want}"
        );
        let (got, fused) = run(q, true);
        assert!(fused, "{q}: not streamed");
        assert_eq!(got, want, "{q}");
    }
}

/// The bit test of `exact_summand` against its definition: a multiple of 2^-16 below 2^24 in
/// magnitude, NaN and infinities excluded.
#[test]
fn exact_summands_by_their_bits() {
    let by_definition = |v: f64| {
        let a = v * 65536.0;
        a.abs() < (1u64 << 40) as f64 && a.fract() == 0.0
    };
    let mut vals = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        2.5,
        0.1,
        1.0 / 65536.0,
        1.0 / 131072.0,
        3.0 / 131072.0,
        16_777_216.0,
        16_777_215.0,
        -16_777_215.5,
        16_777_216.0 - 1.0 / 65536.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        5e-324,
        1e300,
        STALE_NAN,
    ];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..200_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        vals.push(match i % 4 {
            0 => f64::from_bits(x),
            1 => (x % (1 << 44)) as f64 / 65536.0 - (1u64 << 27) as f64,
            2 => (x % 1_000_000) as f64 / 1024.0,
            _ => (x % 100_000) as f64 * 0.01,
        });
    }
    for v in vals {
        assert_eq!(
            super::exact_summand(v),
            by_definition(v),
            "{v:e} {:x}",
            v.to_bits()
        );
    }
}

/// The sample counts of `stats` do not depend on how a range function is evaluated: alone,
/// folded into an aggregation, or split across threads by series or by steps.
#[test]
fn query_stats_same_on_every_evaluation_path() {
    use super::aggregate::{FUSED, NO_FUSE};
    use crate::{QueryOpts, StatsLevel};
    let db = Db((0..40i64)
        .map(|i| VecSeries {
            labels: Labels::from_pairs([
                ("__name__", "x"),
                ("job", &format!("j{}", i % 4)),
                ("inst", &format!("i{i}")),
            ]),
            samples: (0..2000i64)
                .map(|j| (i * 7000 + j * 15_000, (j * (i % 3)) as f64))
                .collect(),
        })
        .collect());
    let e = Engine::new(EngineOptions {
        per_step_stats: true,
        ..EngineOptions::default()
    });
    let o = QueryOpts {
        stats: StatsLevel::PerStep,
        ..Default::default()
    };
    let run = |q: &str, fuse: bool| {
        NO_FUSE.with(|c| c.set(!fuse));
        let expr = crate::parse(q).unwrap();
        // 1,730 steps x 40 series: enough cells to run on several threads.
        let r = e.eval_range(&db, &expr, 600_000, 30_000_000, 17_000, o);
        NO_FUSE.with(|c| c.set(false));
        r.unwrap().stats.unwrap().samples
    };
    let alone = run("rate(x[5m])", true);
    // 20 samples in each 5m window of each series.
    assert_eq!(alone.total, 40 * 1730 * 20);
    for q in [
        "sum by(job)(rate(x[5m]))",
        "max(rate(x[5m]))",
        "rate(x[5m]) * 2",
    ] {
        for fuse in [false, true] {
            let before = FUSED.with(|c| c.get());
            let s = run(q, fuse);
            let fused = FUSED.with(|c| c.get()) > before;
            assert_eq!(fused, fuse && q != "rate(x[5m]) * 2", "{q}");
            assert_eq!(s.total, alone.total, "{q} fused: {fuse}");
            assert_eq!(s.per_step, alone.per_step, "{q} fused: {fuse}");
        }
    }
}

/// `rate`, `increase` and `delta` computed by the sliding window itself (`Track::rate`,
/// `slide_rate`) against the window function computing each window on its own, bit for bit,
/// over counters with resets (to zero and to fractions), NaN, staleness markers, gaps longer
/// than the range (windows of 0, 1 and 2 samples), negative values and shifted windows.
#[test]
fn rates_in_runs_equal_the_window_function() {
    let mut samples = Vec::new();
    let (mut ts, mut v) = (0i64, 5.0f64);
    for i in 0..4000i64 {
        ts += 1 + (i * 7919) % 29;
        if i % 300 == 299 {
            ts += 900;
        }
        v = match i % 53 {
            0 => 0.0,
            19 => v * 0.3,
            _ => v + ((i * 13) % 7) as f64 * 0.7,
        };
        let val = match i % 211 {
            5 => STALE_NAN,
            9 => f64::NAN,
            77 => -v,
            _ => v,
        };
        samples.push((ts, val));
    }
    // Regular scrapes (windows of the same shape reuse their extrapolation factor) of a
    // counter starting near zero, so the counter-at-zero limit applies to some windows and not
    // to others, with resets to zero and small fractions, and one missed scrape in 40.
    let mut regular = Vec::new();
    let mut c = 0.25f64;
    for i in 0..3000i64 {
        if i % 40 == 39 {
            continue;
        }
        c = match i % 97 {
            0 => 0.0,
            50 => 0.125,
            _ => c + ((i * 31) % 5) as f64 * 0.5,
        };
        regular.push((15 * i + 7, if i % 499 == 400 { STALE_NAN } else { c }));
    }
    let bits = |p: &[(i64, f64)]| p.iter().map(|x| (x.0, x.1.to_bits())).collect::<Vec<_>>();
    for (samples, (step, range, shift)) in [
        (&samples, (1, 5, 0)),
        (&samples, (7, 50, 3)),
        (&samples, (60, 200, -40)),
        (&samples, (500, 100, 0)),
        (&samples, (13, 2000, 11)),
        (&regular, (60, 300, 0)),
        (&regular, (15, 60, 1)),
        (&regular, (7, 45, 0)),
        (&regular, (3600, 1800, 2)),
    ] {
        let ts = samples.last().map_or(0, |s| s.0);
        let r = super::Rng {
            start: 50,
            end: ts + 100,
            step,
        };
        let rt = move |t: i64| t - shift;
        let lo = rt(r.start) - range + 1;
        for (counter, per_second) in [(true, true), (true, false), (false, false)] {
            let run = |track: super::Track| {
                let mut it = storage::SliceIter::new(samples);
                let mut budget = super::Budget {
                    cur: 0,
                    max: usize::MAX,
                };
                super::windows(
                    &mut it,
                    lo,
                    r,
                    &rt,
                    range,
                    track,
                    &mut budget,
                    &mut |_, t, range, w, info| {
                        Ok(crate::functions::stats::extrapolated_rate(
                            w,
                            t - range,
                            t,
                            if counter { info.resets } else { 0 },
                            counter,
                            per_second,
                        ))
                    },
                )
                .expect("windows")
            };
            let each = run(super::Track::RESETS);
            let runs = run(super::Track {
                rate: Some((counter, per_second)),
                ..super::Track::RESETS
            });
            assert!(each.len() > 10, "step {step} range {range}");
            assert_eq!(
                bits(&runs),
                bits(&each),
                "step {step} range {range} {counter} {per_second}"
            );
        }
    }
}
