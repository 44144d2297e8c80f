//! The remote write receiver: `POST /api/v1/write`, remote write 1.0 and 2.0 (chosen by the
//! `proto=` parameter of the Content-Type, as in Prometheus 3; 2.0 answers carry the
//! `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written` headers).
//!
//! Status codes follow Prometheus 2.42: 204 once every sample is committed; 400 for a body
//! that does not decode, for invalid labels and for sample errors (out of order, duplicate,
//! out of bounds — a 4xx tells the sender not to retry what can never succeed); 500 for
//! storage failures, which a sender retries. We add 413 for bodies over the limits and 415
//! for unknown `proto=` values.
//!
//! Labels, checked against Prometheus 2.42's receiver: unsorted labels are accepted and
//! sorted, and empty values dropped, as there. Where 2.42 differs, on purpose: duplicate
//! label names and a series with no labels get 400 here but 500 there (so its senders retry
//! them forever); an empty label name gets 400 here, while 2.42 stores it.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use model::Labels;
use storage::{Appendable, StorageError};

use crate::codec::{DecodeError, error_chain};
use crate::proto::{TimeSeries, WriteRequest};

/// Size limits of the receiver.
#[derive(Debug, Clone, Copy)]
pub struct WriteLimits {
    /// Largest compressed body accepted; bigger bodies get 413 before being read in full.
    pub max_body_bytes: usize,
    /// Largest decoded protobuf accepted; checked against the snappy header before allocating.
    pub max_decoded_bytes: usize,
}

impl Default for WriteLimits {
    /// 32 MiB compressed, 256 MiB decoded: Prometheus sends at most a few MiB per request
    /// (2,000 samples by default), so these only stop abuse.
    fn default() -> Self {
        WriteLimits {
            max_body_bytes: 32 << 20,
            max_decoded_bytes: 256 << 20,
        }
    }
}

/// What the write router needs: where samples go, and the limits.
#[derive(Clone)]
pub struct WriteState {
    pub appendable: Arc<dyn Appendable>,
    pub limits: WriteLimits,
    /// Series resolved by earlier requests (see [`crate::fastwrite`]).
    pub cache: Arc<crate::fastwrite::SeriesCache>,
}

impl WriteState {
    pub fn new(appendable: Arc<dyn Appendable>) -> Self {
        WriteState {
            appendable,
            limits: WriteLimits::default(),
            cache: Arc::default(),
        }
    }
}

/// Why a write request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(
        "unsupported remote write message {0:?} (prometheus.WriteRequest or io.prometheus.write.v2.Request)"
    )]
    UnsupportedProto(String),
    #[error("invalid remote write 2.0 request: {0}")]
    Symbols(#[from] crate::v2::SymbolError),
    #[error("unsupported Content-Encoding {0:?} (only snappy)")]
    UnsupportedEncoding(String),
    #[error("invalid series {series}: {reason}")]
    InvalidLabels { series: String, reason: String },
    #[error("series {series} has native histogram samples, which are not supported yet")]
    Histograms { series: String },
    #[error("append sample to series {series} at {timestamp}")]
    Append {
        series: String,
        timestamp: i64,
        #[source]
        source: StorageError,
    },
    #[error("commit appended samples")]
    Commit(#[source] StorageError),
}

impl WriteError {
    /// The HTTP status a sender should see for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            WriteError::Decode(e) if e.is_too_large() => StatusCode::PAYLOAD_TOO_LARGE,
            WriteError::Decode(_)
            | WriteError::Symbols(_)
            | WriteError::InvalidLabels { .. }
            | WriteError::Histograms { .. } => StatusCode::BAD_REQUEST,
            WriteError::UnsupportedProto(_) | WriteError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            // compat: Prometheus answers 400 for out-of-order, duplicate and out-of-bounds
            // samples so that the sender drops the batch instead of retrying it forever.
            WriteError::Append { source, .. } if source.is_sample_error() => {
                StatusCode::BAD_REQUEST
            }
            WriteError::Append { .. } | WriteError::Commit(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Counts of what one request wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub series: usize,
    pub samples: usize,
}

/// A router serving `POST /api/v1/write`.
pub fn write_router(state: WriteState) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/api/v1/write", post(write_handler))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn write_handler(
    State(state): State<WriteState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let version = match check_headers(&headers) {
        Ok(v) => v,
        Err(e) => return (e.status(), error_chain(&e)).into_response(),
    };
    let body = match body {
        Ok(b) => b,
        Err(r) => return body_rejection(r, state.limits.max_body_bytes).into_response(),
    };
    // Decoding and appending are CPU work, kept off the async threads.
    let res = tokio::task::spawn_blocking(move || {
        let limit = state.limits.max_decoded_bytes;
        match version {
            Version::V1 => {
                let raw = crate::codec::snappy_decode(&body, limit)?;
                drop(body);
                crate::fastwrite::append_raw(state.appendable.as_ref(), &state.cache, &raw)
            }
            Version::V2 => {
                let req = crate::v2::decode_request(&body, limit)?;
                drop(body);
                append_request_v2(state.appendable.as_ref(), &req)
            }
        }
    })
    .await;
    let written = |n: usize| {
        [
            ("X-Prometheus-Remote-Write-Samples-Written", n.to_string()),
            ("X-Prometheus-Remote-Write-Histograms-Written", "0".into()),
            ("X-Prometheus-Remote-Write-Exemplars-Written", "0".into()),
        ]
    };
    match res {
        Ok(Ok(stats)) if version == Version::V2 => {
            (StatusCode::NO_CONTENT, written(stats.samples)).into_response()
        }
        Ok(Ok(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => {
            let msg = error_chain(&e);
            tracing::warn!(error = %msg, "remote write request refused");
            if version == Version::V2 {
                (e.status(), written(0), msg).into_response()
            } else {
                (e.status(), v1_error_text(&e, msg)).into_response()
            }
        }
        Err(join) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("remote write task: {join}"),
        )
            .into_response(),
    }
}

/// The body of a 1.0 error answer: like Prometheus 2.42's `http.Error`, a sample refused by
/// the storage is named by the bare storage error (`out of order sample`), and every text ends
/// with a newline.
fn v1_error_text(e: &WriteError, chain: String) -> String {
    match e {
        WriteError::Append { source, .. } if source.is_sample_error() => format!("{source}\n"),
        _ => format!("{chain}\n"),
    }
}

/// Remote write protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// Appends a 2.0 request: float samples; native histograms are refused (400), like 1.0's.
pub fn append_request_v2(
    appendable: &dyn Appendable,
    req: &crate::v2::Request,
) -> Result<WriteStats, WriteError> {
    if let Some(i) = req.timeseries.iter().position(|t| !t.histograms.is_empty()) {
        return Err(WriteError::Histograms {
            series: crate::v2::labels_of(req, i)
                .map(|l| l.to_string())
                .unwrap_or_default(),
        });
    }
    let v1 = crate::v2::to_v1(req)?;
    append_request(appendable, &v1)
}

/// The answer to a body that could not be read: 413 with the limit when it was too big.
pub(crate) fn body_rejection(r: BytesRejection, limit: usize) -> (StatusCode, String) {
    let status = r.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return (
            status,
            format!("request body is over the limit of {limit} bytes"),
        );
    }
    (status, format!("read request body: {}", r.body_text()))
}

/// Refuses remote write 2.0 and unknown encodings. A missing or different Content-Type is
/// accepted, as Prometheus 2.42 does (it never looks at the header).
fn check_headers(headers: &HeaderMap) -> Result<Version, WriteError> {
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let enc = String::from_utf8_lossy(enc.as_bytes()).trim().to_string();
        if !enc.eq_ignore_ascii_case("snappy") {
            return Err(WriteError::UnsupportedEncoding(enc));
        }
    }
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Version::V1);
    };
    let ct = String::from_utf8_lossy(ct.as_bytes());
    let mut parts = ct.split(';');
    if !parts
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-protobuf"))
    {
        return Ok(Version::V1);
    }
    for p in parts {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("proto")
        {
            let v = v.trim().trim_matches('"');
            return match v {
                crate::v2::PROTO_V1 => Ok(Version::V1),
                crate::v2::PROTO_V2 => Ok(Version::V2),
                _ => Err(WriteError::UnsupportedProto(v.to_string())),
            };
        }
    }
    Ok(Version::V1)
}

/// Appends every sample of `req` in one appender and commits; on the first error nothing of
/// the request is kept (compat: Prometheus rolls the whole request back too).
pub fn append_request(
    appendable: &dyn Appendable,
    req: &WriteRequest,
) -> Result<WriteStats, WriteError> {
    let mut app = appendable.appender();
    let mut stats = WriteStats::default();
    for ts in &req.timeseries {
        let labels = match series_labels(ts) {
            Ok(l) => l,
            Err(e) => {
                app.rollback();
                return Err(e);
            }
        };
        let mut sref = 0;
        for s in &ts.samples {
            match app.append(sref, &labels, s.timestamp, s.value) {
                Ok(r) => sref = r,
                Err(source) => {
                    app.rollback();
                    return Err(WriteError::Append {
                        series: labels.to_string(),
                        timestamp: s.timestamp,
                        source,
                    });
                }
            }
        }
        stats.series += 1;
        stats.samples += ts.samples.len();
    }
    app.commit().map_err(WriteError::Commit)?;
    Ok(stats)
}

/// The label set of a received series. Labels may come in any order (they are sorted here);
/// empty or duplicate names are refused; empty values mean "no label", as everywhere in
/// Prometheus, and are dropped.
pub fn series_labels(ts: &TimeSeries) -> Result<Labels, WriteError> {
    let invalid = |reason: String| WriteError::InvalidLabels {
        series: proto_labels_string(ts),
        reason,
    };
    let mut pairs: Vec<(&str, &str)> = ts
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    pairs.sort_unstable();
    if pairs.first().is_some_and(|p| p.0.is_empty()) {
        return Err(invalid("empty label name".into()));
    }
    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(invalid(format!("duplicate label name {:?}", w[0].0)));
    }
    pairs.retain(|p| !p.1.is_empty());
    if pairs.is_empty() {
        return Err(invalid("no labels".into()));
    }
    if !ts.histograms.is_empty() {
        return Err(WriteError::Histograms {
            series: proto_labels_string(ts),
        });
    }
    Ok(Labels::from_sorted(pairs))
}

fn proto_labels_string(ts: &TimeSeries) -> String {
    let inner: Vec<String> = ts
        .labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::Request;
    use storage::{Appender, SeriesRef};
    use tower::ServiceExt;

    use super::*;
    use crate::codec::{encode_snappy_message, snappy_encode};
    use crate::proto::{Label, Sample};

    /// Keeps committed samples; refuses a sample not newer than the last one of its series.
    #[derive(Default)]
    struct Store(Arc<Mutex<Vec<(Labels, i64, f64)>>>);

    struct App {
        store: Arc<Mutex<Vec<(Labels, i64, f64)>>>,
        pending: Vec<(Labels, i64, f64)>,
    }

    impl Appendable for Store {
        fn appender(&self) -> Box<dyn Appender> {
            Box::new(App {
                store: self.0.clone(),
                pending: vec![],
            })
        }
    }

    impl Appender for App {
        fn append(&mut self, r: SeriesRef, l: &Labels, t: i64, v: f64) -> storage::Result<u64> {
            let store = self.store.lock().unwrap();
            let last = store.iter().chain(&self.pending).rfind(|s| &s.0 == l);
            if last.is_some_and(|s| s.1 >= t) {
                return Err(StorageError::OutOfOrder);
            }
            drop(store);
            self.pending.push((l.clone(), t, v));
            Ok(r.max(1))
        }
        fn commit(self: Box<Self>) -> storage::Result<()> {
            self.store.lock().unwrap().extend(self.pending);
            Ok(())
        }
        fn rollback(self: Box<Self>) {}
    }

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: labels.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
            ..Default::default()
        }
    }

    async fn post(state: WriteState, body: Vec<u8>, ct: &str) -> (StatusCode, String) {
        let req = Request::post("/api/v1/write")
            .header("Content-Type", ct)
            .header("Content-Encoding", "snappy")
            .body(Body::from(body))
            .unwrap();
        let resp = write_router(state).oneshot(req).await.unwrap();
        let status = resp.status();
        let b = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&b).into_owned())
    }

    fn req(ts: Vec<TimeSeries>) -> Vec<u8> {
        encode_snappy_message(&WriteRequest {
            timeseries: ts,
            metadata: vec![],
        })
    }

    const CT: &str = "application/x-protobuf";

    /// Remote write 2.0: symbols resolved, samples stored, the Written headers set; bad
    /// references and native histograms refused with 400.
    #[tokio::test]
    async fn accepts_v2() {
        let store = Store::default();
        let data = store.0.clone();
        let state = WriteState::new(Arc::new(store));
        let v1 = WriteRequest {
            timeseries: vec![series(
                &[("__name__", "up"), ("job", "a")],
                &[(1, 1.0), (2, 0.0)],
            )],
            metadata: vec![],
        };
        let body = encode_snappy_message(&crate::v2::from_v1(&v1));
        let call = |body: Vec<u8>| {
            let req = Request::post("/api/v1/write")
                .header(
                    "Content-Type",
                    "application/x-protobuf;proto=io.prometheus.write.v2.Request",
                )
                .header("Content-Encoding", "snappy")
                .body(Body::from(body))
                .unwrap();
            write_router(state.clone()).oneshot(req)
        };
        let resp = call(body).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            resp.headers()["X-Prometheus-Remote-Write-Samples-Written"],
            "2"
        );
        assert_eq!(data.lock().unwrap().len(), 2);
        assert_eq!(
            data.lock().unwrap()[0].0,
            Labels::from_pairs([("__name__", "up"), ("job", "a")])
        );
        let mut bad = crate::v2::from_v1(&v1);
        bad.timeseries[0].labels_refs[1] = 1000;
        let resp = call(encode_snappy_message(&bad)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let mut hist = crate::v2::from_v1(&v1);
        hist.timeseries[0]
            .histograms
            .push(crate::v2::Histogram { timestamp: 5 });
        let resp = call(encode_snappy_message(&hist)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(data.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn accepts_and_sorts_labels() {
        let store = Store::default();
        let data = store.0.clone();
        let state = WriteState::new(Arc::new(store));
        let body = req(vec![series(
            &[("job", "j"), ("__name__", "up"), ("empty", "")],
            &[(1000, 1.0), (2000, model::STALE_NAN)],
        )]);
        assert_eq!(
            post(state, body, CT).await,
            (StatusCode::NO_CONTENT, "".into())
        );
        let data = data.lock().unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data[0].0, model::labels! {"__name__" => "up", "job" => "j"});
        assert!(model::is_stale_nan(data[1].2));
    }

    #[tokio::test]
    async fn refusals() {
        #[track_caller]
        fn check(got: (StatusCode, String), status: StatusCode, msg: &str) {
            assert_eq!(got.0, status, "{}", got.1);
            assert!(got.1.contains(msg), "{:?} does not contain {msg:?}", got.1);
        }
        let store = Store::default();
        let data = store.0.clone();
        let state = WriteState::new(Arc::new(store));
        let up = [("__name__", "up")];
        let bad = StatusCode::BAD_REQUEST;
        let s = || state.clone();
        check(
            post(s(), b"\x05garbage".to_vec(), CT).await,
            bad,
            "decode snappy block",
        );
        check(
            post(s(), snappy_encode(b"\x0a\x05"), CT).await,
            bad,
            "decode WriteRequest protobuf",
        );
        check(
            post(s(), vec![0xff, 0xff, 0xff, 0xff, 0x0f], CT).await,
            bad,
            "impossible",
        );
        let dup = req(vec![series(&[("a", "1"), ("a", "2")], &[(1, 1.0)])]);
        check(post(s(), dup, CT).await, bad, r#"duplicate label name "a""#);
        let empty = req(vec![series(&[("", "1"), ("b", "2")], &[(1, 1.0)])]);
        check(post(s(), empty, CT).await, bad, "empty label name");
        let none = req(vec![series(&[("a", "")], &[(1, 1.0)])]);
        check(post(s(), none, CT).await, bad, "no labels");
        // The first series is fine, the second is out of order: nothing is kept.
        let ooo = req(vec![
            series(&[("__name__", "other")], &[(1, 1.0)]),
            series(&up, &[(5, 1.0), (4, 1.0)]),
        ]);
        check(post(s(), ooo, CT).await, bad, "out of order sample");
        assert!(data.lock().unwrap().is_empty());
        let unknown = "application/x-protobuf;proto=io.prometheus.write.v3.Request";
        let ok = req(vec![series(&up, &[(1, 1.0)])]);
        check(
            post(s(), ok.clone(), unknown).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "v3",
        );
        let v1 = "application/x-protobuf;proto=prometheus.WriteRequest";
        check(post(s(), ok, v1).await, StatusCode::NO_CONTENT, "");
        let small = WriteState {
            limits: WriteLimits {
                max_body_bytes: 100,
                max_decoded_bytes: 1000,
            },
            ..s()
        };
        let big = req(vec![series(&up, &[(2, 1.0); 200])]);
        check(
            post(small.clone(), big, CT).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        );
        let wide = req(vec![series(
            &[("__name__", &"x".repeat(2000))],
            &[(3, 1.0)],
        )]);
        let small = WriteState {
            limits: WriteLimits {
                max_body_bytes: 10_000,
                max_decoded_bytes: 1000,
            },
            ..s()
        };
        check(
            post(small, wide, CT).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "over the limit",
        );
    }
}
