//! `GET /federate`: the latest sample of every series matching any `match[]` selector, within
//! the lookback window, in text format 0.0.4 — as Prometheus 2.42 writes it: families sorted by
//! metric name, each introduced by `# TYPE <name> untyped`, labels with empty values left out,
//! the external labels (and an empty `instance`) appended when the series lacks them, sample
//! timestamps included, staleness markers dropped; or as length-delimited protobuf
//! `MetricFamily` messages when the Accept header prefers them.

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

/// The Content-Type of protobuf-delimited federation answers.
pub const PROTO_DELIMITED: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Whether `accept` asks for protobuf-delimited `MetricFamily` messages before text, as
/// Prometheus's `expfmt.Negotiate` decides (highest q first; text otherwise).
pub fn wants_protobuf(accept: &str) -> bool {
    let mut best: Option<(f64, bool)> = None;
    for part in accept.split(',') {
        let mut params = part.split(';');
        let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let (mut q, mut proto, mut encoding, mut version) = (1.0, "", "", "");
        for p in params {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            match k.trim() {
                "q" => q = v.trim().parse().unwrap_or(0.0),
                "proto" => proto = v.trim(),
                "encoding" => encoding = v.trim(),
                "version" => version = v.trim(),
                _ => {}
            }
        }
        let pick = match media.as_str() {
            "application/vnd.google.protobuf"
                if proto == "io.prometheus.client.MetricFamily" && encoding == "delimited" =>
            {
                Some(true)
            }
            "text/plain" if version.is_empty() || version == "0.0.4" => Some(false),
            _ => None,
        };
        if let Some(proto) = pick
            && q > 0.0
            && best.is_none_or(|(bq, _)| q > bq)
        {
            best = Some((q, proto));
        }
    }
    best.is_some_and(|(_, proto)| proto)
}

fn pb_varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn pb_bytes(field: u64, b: &[u8], out: &mut Vec<u8>) {
    pb_varint(field << 3 | 2, out);
    pb_varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

/// Writes samples as [`write_federation`] does, as length-delimited `io.prometheus.client.
/// MetricFamily` messages (untyped metrics with timestamps), Prometheus's protobuf format.
pub fn write_federation_proto(
    samples: &mut [(Labels, Timestamp, f64)],
    external: &Labels,
) -> Vec<u8> {
    let ext = external_pairs(external);
    samples.sort_by(|a, b| a.0.metric_name().cmp(&b.0.metric_name()));
    let mut out = Vec::new();
    let mut family: Option<(String, Vec<u8>)> = None;
    let flush = |fam: Option<(String, Vec<u8>)>, out: &mut Vec<u8>| {
        if let Some((name, metrics)) = fam {
            let mut mf = Vec::new();
            pb_bytes(1, name.as_bytes(), &mut mf);
            // type: UNTYPED (3)
            mf.extend_from_slice(&[0x18, 3]);
            mf.extend_from_slice(&metrics);
            pb_varint(mf.len() as u64, out);
            out.extend_from_slice(&mf);
        }
    };
    for (labels, t, v) in samples.iter() {
        let Some(name) = labels.metric_name() else {
            tracing::warn!(metric = %labels, "Ignoring nameless metric during federation");
            continue;
        };
        if family.as_ref().is_none_or(|(n, _)| n != name) {
            flush(family.take(), &mut out);
            family = Some((name.to_string(), Vec::new()));
        }
        let mut m = Vec::new();
        for (n, val) in federated_pairs(labels, &ext) {
            let mut lp = Vec::new();
            pb_bytes(1, n.as_bytes(), &mut lp);
            pb_bytes(2, val.as_bytes(), &mut lp);
            pb_bytes(1, &lp, &mut m);
        }
        let mut untyped = vec![0x09];
        untyped.extend_from_slice(&v.to_le_bytes());
        pb_bytes(5, &untyped, &mut m);
        pb_varint(6 << 3, &mut m);
        pb_varint(*t as u64, &mut m);
        if let Some((_, metrics)) = family.as_mut() {
            pb_bytes(4, &m, metrics);
        }
    }
    flush(family, &mut out);
    out
}

/// The external labels federation attaches, with an empty `instance` unless one is set.
fn external_pairs(external: &Labels) -> Vec<(String, String)> {
    // compat: Prometheus always attaches an empty `instance` unless an external label sets it.
    let mut ext: Vec<(String, String)> = external.to_pairs();
    if !ext.iter().any(|(n, _)| n == "instance") {
        ext.push(("instance".into(), String::new()));
        ext.sort();
    }
    ext
}

/// A series' labels as federation writes them: without the name and empty values, then the
/// external labels it lacks.
fn federated_pairs<'a>(labels: &'a Labels, ext: &'a [(String, String)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs: Vec<(&str, &str)> = labels
        .iter()
        .filter(|l| l.name != "__name__" && !l.value.is_empty())
        .map(|l| (l.name, l.value))
        .collect();
    for (n, val) in ext {
        if labels.get(n).is_none_or(|x| x.is_empty()) {
            pairs.push((n, val));
        }
    }
    pairs
}

/// Writes samples as Prometheus's federation does. Series without a name, or whose names
/// the text format cannot carry, are skipped with a log line.
pub fn write_federation(samples: &mut [(Labels, Timestamp, f64)], external: &Labels) -> Vec<u8> {
    let ext = external_pairs(external);
    samples.sort_by(|a, b| a.0.metric_name().cmp(&b.0.metric_name()));
    let mut w = TextWriter::new(Vec::new());
    let mut family: Option<String> = None;
    for (labels, t, v) in samples.iter() {
        let Some(name) = labels.metric_name() else {
            tracing::warn!(metric = %labels, "Ignoring nameless metric during federation");
            continue;
        };
        let pairs = federated_pairs(labels, &ext);
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
pub async fn federate(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    headers: axum::http::HeaderMap,
) -> Response {
    let proto = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(wants_protobuf);
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
        Ok::<_, FederateError>(if proto {
            write_federation_proto(&mut samples, &external)
        } else {
            write_federation(&mut samples, &external)
        })
    })
    .await;
    let content_type = if proto {
        PROTO_DELIMITED
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    match res {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
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
    use storage::{VecQueryable, VecSeries};

    use super::*;

    fn s(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> VecSeries {
        VecSeries {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: samples.to_vec(),
        }
    }

    #[test]
    fn like_prometheus() {
        let q = VecQueryable(vec![
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

    #[test]
    fn negotiates_like_expfmt() {
        let pb = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
        assert!(wants_protobuf(pb));
        assert!(wants_protobuf(&format!(
            "{pb};q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1"
        )));
        assert!(!wants_protobuf(&format!("{pb};q=0.2,text/plain;q=0.5")));
        assert!(!wants_protobuf(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        ));
        assert!(!wants_protobuf(""));
    }

    #[test]
    fn protobuf_delimited_families() {
        let mut samples = vec![
            (
                Labels::from_pairs([("__name__", "b"), ("job", "j")]),
                5,
                2.0,
            ),
            (
                Labels::from_pairs([("__name__", "a"), ("instance", "i")]),
                1_000,
                1.5,
            ),
        ];
        let ext = Labels::from_pairs([("site", "x")]);
        let out = write_federation_proto(&mut samples, &ext);
        // Family "a": name, type UNTYPED, one metric with instance="i", site="x", 1.5 @ 1000.
        let mut want_a = vec![0x0a, 1, b'a', 0x18, 3];
        let mut metric = Vec::new();
        for (n, v) in [("instance", "i"), ("site", "x")] {
            let mut lp = Vec::new();
            pb_bytes(1, n.as_bytes(), &mut lp);
            pb_bytes(2, v.as_bytes(), &mut lp);
            pb_bytes(1, &lp, &mut metric);
        }
        let mut untyped = vec![0x09];
        untyped.extend_from_slice(&1.5f64.to_le_bytes());
        pb_bytes(5, &untyped, &mut metric);
        metric.extend_from_slice(&[0x30, 0xe8, 0x07]);
        pb_bytes(4, &metric, &mut want_a);
        assert_eq!(out[0] as usize, want_a.len());
        assert_eq!(&out[1..1 + want_a.len()], want_a.as_slice());
        // Family "b" follows, with an empty instance attached as text federation does.
        let rest = &out[1 + want_a.len()..];
        assert_eq!(rest[0] as usize, rest.len() - 1);
        assert_eq!(&rest[1..4], &[0x0a, 1, b'b']);
        assert!(rest.windows(8).any(|w| w == b"instance"));
    }
}
