//! Behaviours where the engine answers like Prometheus 2.42 beyond the upstream `.test`
//! scripts (found side by side by `crates/vigil/tests/it/promql_diff.rs`): 2.x function
//! names and the order of instant-vector results.

use model::{Labels, Matcher, Timestamp};
use promql::{Engine, Value};
use storage::{Querier, Queryable, SelectHints, Series, VecSeries};

const MIN: i64 = 60_000;

/// Series kept in insertion order; `select(sorted = true)` returns them in label order, as a
/// storage must.
struct Db(Vec<VecSeries>);

struct Q(Vec<VecSeries>);

impl Queryable for Db {
    fn querier(&self, _: Timestamp, _: Timestamp) -> storage::Result<Box<dyn Querier>> {
        Ok(Box::new(Q(self.0.clone())))
    }
}

impl Querier for Q {
    fn select(
        &self,
        sorted: bool,
        _: &SelectHints,
        ms: &[Matcher],
    ) -> storage::Result<Vec<Box<dyn Series>>> {
        let mut out: Vec<VecSeries> = self
            .0
            .iter()
            .filter(|s| model::matcher::matches_all(&s.labels, ms))
            .cloned()
            .collect();
        if sorted {
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        Ok(out
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn Series>)
            .collect())
    }
    fn label_values(&self, _: &str, _: &[Matcher]) -> storage::Result<Vec<String>> {
        Ok(vec![])
    }
    fn label_names(&self, _: &[Matcher]) -> storage::Result<Vec<String>> {
        Ok(vec![])
    }
}

fn series(labels: &[(&str, &str)], vals: &[f64]) -> VecSeries {
    VecSeries {
        labels: Labels::from_pairs(labels.iter().copied()),
        samples: vals
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * MIN, *v))
            .collect(),
    }
}

/// Inserted out of label order on purpose.
fn db() -> Db {
    Db(vec![
        series(
            &[("__name__", "t"), ("room", "kitchen"), ("floor", "1")],
            &[20.0, 21.0, 23.0, 22.0, 21.5],
        ),
        series(
            &[("__name__", "t"), ("room", "garage"), ("floor", "0")],
            &[-3.0, -4.0, -2.5, -1.0, -2.0],
        ),
        series(
            &[("__name__", "t"), ("room", "attic"), ("floor", "2")],
            &[30.0, 29.0, 31.0, 33.0, 30.5],
        ),
    ])
}

fn instant(q: &str, t: i64) -> Vec<(String, f64)> {
    match Engine::default().instant_query(&db(), q, t) {
        Ok(r) => match r.value {
            Value::Vector(v) => v.iter().map(|s| (s.labels.to_string(), s.v)).collect(),
            other => panic!("{q}: not a vector: {other:?}"),
        },
        Err(e) => panic!("{q}: {e}"),
    }
}

#[test]
fn holt_winters_is_double_exponential_smoothing() {
    let a = instant("holt_winters(t[5m], 0.3, 0.6)", 4 * MIN);
    let b = instant("double_exponential_smoothing(t[5m], 0.3, 0.6)", 4 * MIN);
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
    let e = Engine::default()
        .instant_query(&db(), "holt_winters(t[5m], 1, 0.5)", 4 * MIN)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000")
    );
    assert_eq!(
        promql::parse("holt_winters(t[5m], 0.3, 0.6)")
            .map(|e| promql::printer::print(&e))
            .ok()
            .as_deref(),
        Some("holt_winters(t[5m], 0.3, 0.6)")
    );
}

/// Instant vectors come in Prometheus's order: selectors in label order (its storage sorts
/// what it merges), aggregations by each group's first series, `topk` by value within a group.
#[test]
fn instant_vectors_in_prometheus_order() {
    let names = |q: &str| -> Vec<String> {
        instant(q, 4 * MIN)
            .into_iter()
            .map(|(l, v)| format!("{l} {v}"))
            .collect()
    };
    assert_eq!(
        names("t"),
        [
            r#"{__name__="t", floor="0", room="garage"} -2"#,
            r#"{__name__="t", floor="1", room="kitchen"} 21.5"#,
            r#"{__name__="t", floor="2", room="attic"} 30.5"#,
        ]
    );
    assert_eq!(
        names("topk by (floor) (1, t)"),
        [
            r#"{__name__="t", floor="0", room="garage"} -2"#,
            r#"{__name__="t", floor="1", room="kitchen"} 21.5"#,
            r#"{__name__="t", floor="2", room="attic"} 30.5"#,
        ]
    );
    assert_eq!(
        names("-t"),
        [
            r#"{floor="0", room="garage"} 2"#,
            r#"{floor="1", room="kitchen"} -21.5"#,
            r#"{floor="2", room="attic"} -30.5"#,
        ]
    );
    assert_eq!(
        names("topk(2, t)"),
        [
            r#"{__name__="t", floor="2", room="attic"} 30.5"#,
            r#"{__name__="t", floor="1", room="kitchen"} 21.5"#,
        ]
    );
}

/// `group_left(__name__)` copies the "one" side's name into the result, as Prometheus 2.42
/// does (the arithmetic drops the other side's name first).
#[test]
fn group_left_can_take_the_metric_name() {
    let db = Db(vec![
        series(&[("__name__", "a"), ("i", "1"), ("m", "x")], &[2.0]),
        series(&[("__name__", "a"), ("i", "1"), ("m", "y")], &[3.0]),
        series(&[("__name__", "b"), ("i", "1")], &[10.0]),
    ]);
    let run = |q: &str| -> Vec<String> {
        match Engine::default().instant_query(&db, q, 0) {
            Ok(r) => match r.value {
                Value::Vector(v) => v.iter().map(|s| format!("{} {}", s.labels, s.v)).collect(),
                other => panic!("{q}: {other:?}"),
            },
            Err(e) => panic!("{q}: {e}"),
        }
    };
    assert_eq!(
        run("a * on(i) group_left(__name__) b"),
        [
            r#"{__name__="b", i="1", m="x"} 20"#,
            r#"{__name__="b", i="1", m="y"} 30"#
        ]
    );
    assert_eq!(
        run("a * on(i) group_left(__name__) (b * 1)"),
        [r#"{i="1", m="x"} 20"#, r#"{i="1", m="y"} 30"#]
    );
    assert_eq!(
        run("a * on(i) group_left b"),
        [r#"{i="1", m="x"} 20"#, r#"{i="1", m="y"} 30"#]
    );
}
