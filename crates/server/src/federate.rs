//! `GET /federate`: the latest sample of every series matching any `match[]` selector, within
//! the lookback window, in text format 0.0.4 — as Prometheus 2.42 writes it: families sorted by
//! metric name, each introduced by `# TYPE <name> untyped`, labels with empty values left out,
//! the external labels (and an empty `instance`) appended when the series lacks them, sample
//! timestamps included, staleness markers dropped.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use expfmt::{MetricType, TextWriter};
use model::{Labels, Matcher, Timestamp, is_stale_nan};
use storage::{Queryable, SelectHints};

use crate::app::App;
use crate::params::Params;

/// Why a federation request failed.
#[derive(Debug, thiserror::Error)]
pub enum FederateError {
    #[error("{0}")]
    BadMatcher(String),
    #[error("federation: {0}")]
    Storage(#[from] storage::StorageError),
}

/// The latest non-stale sample of each series matching any of `sets` in `[maxt - lookback,
/// maxt]`, merged across sets, in label order.
pub fn latest_samples(
    q: &dyn Queryable,
    sets: &[Vec<Matcher>],
    maxt: Timestamp,
    lookback_ms: i64,
) -> Result<Vec<(Labels, Timestamp, f64)>, FederateError> {
    let mint = maxt - lookback_ms;
    let querier = q.querier(mint, maxt)?;
    let hints = SelectHints {
        start: mint,
        end: maxt,
        ..Default::default()
    };
    let mut latest: BTreeMap<Labels, (Timestamp, f64)> = BTreeMap::new();
    for ms in sets {
        for s in querier.select(true, &hints, ms)? {
            let mut it = s.iter();
            let mut last = None;
            let mut cur = it.seek(mint);
            while let Some((t, v)) = cur {
                if t > maxt {
                    break;
                }
                last = Some((t, v));
                cur = it.next();
            }
            if let Some((t, v)) = last {
                // The exposition formats cannot carry staleness markers.
                if !is_stale_nan(v) {
                    latest.insert(s.labels().clone(), (t, v));
                }
            }
        }
    }
    Ok(latest.into_iter().map(|(l, (t, v))| (l, t, v)).collect())
}

/// Writes samples as Prometheus's federation does. Series without a name, or whose names
/// the text format cannot carry, are skipped with a log line.
pub fn write_federation(samples: &mut [(Labels, Timestamp, f64)], external: &Labels) -> Vec<u8> {
    // compat: Prometheus always attaches an empty `instance` unless an external label sets it.
    let mut ext: Vec<(String, String)> = external.to_pairs();
    if !ext.iter().any(|(n, _)| n == "instance") {
        ext.push(("instance".into(), String::new()));
        ext.sort();
    }
    samples.sort_by(|a, b| a.0.metric_name().cmp(&b.0.metric_name()));
    let mut w = TextWriter::new(Vec::new());
    let mut family: Option<String> = None;
    for (labels, t, v) in samples.iter() {
        let Some(name) = labels.metric_name() else {
            tracing::warn!(metric = %labels, "Ignoring nameless metric during federation");
            continue;
        };
        let mut pairs: Vec<(&str, &str)> = labels
            .iter()
            .filter(|l| l.name != "__name__" && !l.value.is_empty())
            .map(|l| (l.name, l.value))
            .collect();
        for (n, val) in &ext {
            if labels.get(n).is_none_or(|x| x.is_empty()) {
                pairs.push((n, val));
            }
        }
        if family.as_deref() != Some(name) {
            if let Err(e) = w.type_(name, MetricType::Unknown) {
                tracing::warn!(metric = %labels, "skipping series in federation: {e}");
                continue;
            }
            family = Some(name.to_string());
        }
        if let Err(e) = w.sample(name, &pairs, *v, Some(*t)) {
            tracing::warn!(metric = %labels, "skipping series in federation: {e}");
        }
    }
    w.into_inner()
}

/// `GET /federate?match[]=…`
pub async fn federate(State(app): State<App>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref(), b"");
    let sets: Result<Vec<Vec<Matcher>>, FederateError> = p
        .all("match[]")
        .into_iter()
        // compat: Prometheus's ParseMetricSelector, so errors read like its and `{a=~".*"}` is
        // accepted.
        .map(|s| promql::parse_metric_selector(s).map_err(|e| FederateError::BadMatcher(e.msg)))
        .collect();
    let sets = match sets {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let lookback = app.flags().lookback_delta.as_millis() as i64;
    let external = app.config().external_labels();
    let queryable = app.queryable();
    let now = jiff::Timestamp::now().as_millisecond();
    let res = tokio::task::spawn_blocking(move || {
        let mut samples = latest_samples(queryable.as_ref(), &sets, now, lookback)?;
        Ok::<_, FederateError>(write_federation(&mut samples, &external))
    })
    .await;
    match res {
        Ok(Ok(body)) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("federation task: {e}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use storage::{Querier, Series, VecSeries};

    use super::*;

    struct Fixed(Vec<VecSeries>);

    impl Queryable for Fixed {
        fn querier(&self, _: i64, _: i64) -> storage::Result<Box<dyn Querier>> {
            Ok(Box::new(FixedQ(self.0.clone())))
        }
    }

    struct FixedQ(Vec<VecSeries>);

    impl Querier for FixedQ {
        fn select(
            &self,
            _: bool,
            _: &SelectHints,
            ms: &[Matcher],
        ) -> storage::Result<Vec<Box<dyn Series>>> {
            Ok(self
                .0
                .iter()
                .filter(|s| ms.iter().all(|m| m.matches(s.labels.get_or_empty(&m.name))))
                .map(|s| Box::new(s.clone()) as Box<dyn Series>)
                .collect())
        }
        fn label_values(&self, _: &str, _: &[Matcher]) -> storage::Result<Vec<String>> {
            Ok(vec![])
        }
        fn label_names(&self, _: &[Matcher]) -> storage::Result<Vec<String>> {
            Ok(vec![])
        }
    }

    fn s(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> VecSeries {
        VecSeries {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: samples.to_vec(),
        }
    }

    #[test]
    fn like_prometheus() {
        let q = Fixed(vec![
            s(
                &[("__name__", "b"), ("job", "x")],
                &[(1000, 1.0), (2000, 2.0)],
            ),
            s(
                &[("__name__", "a"), ("job", "x"), ("zone", "")],
                &[(1500, 3.5)],
            ),
            s(
                &[("__name__", "a"), ("job", "y"), ("instance", "i")],
                &[(1500, f64::INFINITY)],
            ),
            s(
                &[("__name__", "c"), ("job", "x")],
                &[(1000, 1.0), (1900, model::STALE_NAN)],
            ),
            s(&[("__name__", "old"), ("job", "x")], &[(100, 1.0)]),
            s(&[("__name__", "future"), ("job", "x")], &[(5000, 1.0)]),
        ]);
        let sets = vec![
            model::parse_selector("{job=\"x\"}").unwrap(),
            model::parse_selector("a").unwrap(),
        ];
        let mut got = latest_samples(&q, &sets, 2000, 1000).unwrap();
        let ext = Labels::from_pairs([("replica", "r1"), ("job", "global")]);
        let text = String::from_utf8(write_federation(&mut got, &ext)).unwrap();
        assert_eq!(
            text,
            "# TYPE a untyped\n\
             a{instance=\"i\",job=\"y\",replica=\"r1\"} +Inf 1500\n\
             a{job=\"x\",instance=\"\",replica=\"r1\"} 3.5 1500\n\
             # TYPE b untyped\n\
             b{job=\"x\",instance=\"\",replica=\"r1\"} 2 2000\n"
        );
    }
}
