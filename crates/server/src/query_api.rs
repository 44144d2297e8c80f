//! `/api/v1/query` and `/api/v1/query_range`:
//! PromQL over the local storage, with Prometheus's parameters, limits and JSON shape.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use promql::{QueryOpts, QueryResult, Value};
use web::api::{ApiError, ErrorType};

use crate::app::App;
use crate::params::{Params, parse_time};

/// Prometheus's limit on points per series of a range query.
const MAX_POINTS: i64 = 11_000;

/// Sets the flag when dropped: a handler future dropped because the client went away cancels
/// the evaluation running on the blocking pool.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn api_error(e: &promql::Error) -> ApiError {
    let kind = match e.kind() {
        "bad_data" => ErrorType::BadData,
        "timeout" => ErrorType::Timeout,
        "canceled" => ErrorType::Canceled,
        _ => ErrorType::Execution,
    };
    ApiError::new(kind, e.to_string())
}

/// Prometheus's `parseDuration` for API parameters: float seconds or a duration string.
fn parse_param_duration(p: &Params, key: &str) -> Result<Option<Duration>, ApiError> {
    let Some(s) = p.get(key).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_data(format!(
            "invalid parameter {key:?}: cannot parse {s:?} to a valid duration"
        ))
    };
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        if !ms.is_finite() || ms >= i64::MAX as f64 || ms < 0.0 {
            return Err(bad());
        }
        return Ok(Some(Duration::from_millis(ms.round() as u64)));
    }
    model::parse_duration(s).map(Some).map_err(|_| bad())
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Runs one evaluation on the blocking pool under the concurrency limit.
async fn run_query<F>(app: &App, f: F) -> Result<QueryResult, ApiError>
where
    F: FnOnce(&dyn storage::Queryable, QueryOpts<'_>) -> Result<QueryResult, promql::Error>
        + Send
        + 'static,
{
    let _permit = app
        .query_semaphore()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::unavailable("server is shutting down"))?;
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let q = app.queryable();
    tokio::task::spawn_blocking(move || {
        let opts = QueryOpts {
            cancel: Some(&cancel),
            ..Default::default()
        };
        f(q.as_ref(), opts)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| api_error(&e))
}

/// `GET|POST /api/v1/query`
pub async fn query(State(app): State<App>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let p = Params::parse(q.as_deref(), &body);
    let res = async {
        let text = p.get("query").unwrap_or("").to_string();
        let t = match p.get("time") {
            None | Some("") => now_ms(),
            Some(s) => parse_time(s).map_err(|_| {
                ApiError::bad_data(format!(
                    "invalid parameter \"time\": cannot parse {s:?} to a valid timestamp"
                ))
            })?,
        };
        let timeout = parse_param_duration(&p, "timeout")?;
        let lookback = parse_param_duration(&p, "lookback_delta")?;
        let expr = promql::parse(&text)
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))?;
        let engine = app.engine().clone();
        run_query(&app, move |qb, mut o| {
            o.timeout = timeout;
            o.lookback_delta = lookback.or(o.lookback_delta);
            engine.eval_instant(qb, &expr, t, o)
        })
        .await
    }
    .await;
    respond(res)
}

/// `GET|POST /api/v1/query_range`
pub async fn query_range(State(app): State<App>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let p = Params::parse(q.as_deref(), &body);
    let res = async {
        let start = required_time(&p, "start")?;
        let end = required_time(&p, "end")?;
        if end < start {
            return Err(ApiError::bad_data("invalid parameter \"end\": end timestamp must not be before start time"));
        }
        let step = match parse_param_duration(&p, "step") {
            Ok(Some(d)) if !d.is_zero() => d.as_millis() as i64,
            Ok(_) => {
                return Err(ApiError::bad_data(
                    "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
                ));
            }
            Err(e) => return Err(e),
        };
        if (end - start) / step > MAX_POINTS {
            return Err(ApiError::bad_data(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        let timeout = parse_param_duration(&p, "timeout")?;
        let lookback = parse_param_duration(&p, "lookback_delta")?;
        let text = p.get("query").unwrap_or("").to_string();
        let expr = promql::parse(&text).map_err(|e| {
            ApiError::bad_data(format!("invalid parameter \"query\": {e}"))
        })?;
        let engine = app.engine().clone();
        run_query(&app, move |qb, mut o| {
            o.timeout = timeout;
            o.lookback_delta = lookback.or(o.lookback_delta);
            engine.eval_range(qb, &expr, start, end, step, o)
        })
        .await
    }
    .await;
    respond(res)
}

fn required_time(p: &Params, key: &str) -> Result<i64, ApiError> {
    match p.get(key) {
        None | Some("") => Err(ApiError::bad_data(format!(
            "invalid parameter {key:?}: cannot parse \"\" to a valid timestamp"
        ))),
        Some(s) => parse_time(s).map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter {key:?}: cannot parse {s:?} to a valid timestamp"
            ))
        }),
    }
}

fn respond(res: Result<QueryResult, ApiError>) -> Response {
    match res {
        Ok(r) => {
            let body = encode_result(&r);
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Writes a Prometheus timestamp: seconds with up to three decimals, exactly as
/// Prometheus's `jsonutil.MarshalTimestamp` does (trailing zeros of the fraction kept).
fn write_ts(out: &mut String, t: i64) {
    let (sign, t) = if t < 0 {
        ("-", t.unsigned_abs())
    } else {
        ("", t as u64)
    };
    let _ = write!(out, "{sign}{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

fn write_json_str(out: &mut String, s: &str) {
    // serde_json escapes exactly as JSON requires; strings never fail to serialise.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string()));
}

fn write_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_ts(out, t);
    out.push_str(",\"");
    out.push_str(&promql::format_go_float(v));
    out.push_str("\"]");
}

fn write_metric(out: &mut String, l: &model::Labels) {
    out.push_str("{\"metric\":{");
    for (i, lab) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, lab.name);
        out.push(':');
        write_json_str(out, lab.value);
    }
    out.push('}');
}

/// The success envelope with `resultType`/`result`, warnings and infos.
pub fn encode_result(r: &QueryResult) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"status\":\"success\",\"data\":{\"resultType\":\"");
    out.push_str(r.value.type_name());
    out.push_str("\",\"result\":");
    match &r.value {
        Value::Scalar { t, v } => write_point(&mut out, *t, *v),
        Value::String { t, s } => {
            out.push('[');
            write_ts(&mut out, *t);
            out.push(',');
            write_json_str(&mut out, s);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_metric(&mut out, &s.labels);
                out.push_str(",\"value\":");
                write_point(&mut out, s.t, s.v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_metric(&mut out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, (t, v)) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_point(&mut out, *t, *v);
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    for (key, list) in [("warnings", &r.warnings), ("infos", &r.infos)] {
        if !list.is_empty() {
            let _ = write!(out, ",\"{key}\":");
            out.push_str(&serde_json::to_string(list).unwrap_or_else(|_| "[]".into()));
        }
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::Labels;

    #[test]
    fn timestamps_like_prometheus() {
        let mut s = String::new();
        for t in [0, 1000, 1500, 1001, 1435781451781, -1500] {
            write_ts(&mut s, t);
            s.push(' ');
        }
        assert_eq!(s, "0 1 1.500 1.001 1435781451.781 -1.500 ");
    }

    #[test]
    fn vector_json() {
        let r = QueryResult {
            value: Value::Vector(vec![promql::Sample {
                labels: Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]),
                t: 1500,
                v: f64::NAN,
            }]),
            warnings: vec![],
            infos: vec![],
        };
        assert_eq!(
            encode_result(&r),
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b"},"value":[1.500,"NaN"]}]}}"#
        );
        let s = QueryResult {
            value: Value::Scalar {
                t: 2000,
                v: f64::INFINITY,
            },
            warnings: vec!["w".into()],
            infos: vec![],
        };
        assert_eq!(
            encode_result(&s),
            r#"{"status":"success","data":{"resultType":"scalar","result":[2,"+Inf"]},"warnings":["w"]}"#
        );
    }
}
