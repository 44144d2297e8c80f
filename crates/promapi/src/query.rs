//! `/api/v1/query` and `/api/v1/query_range`: Prometheus's parameters, limits and JSON shape,
//! evaluated with a `promql::Engine` over whatever `storage::Queryable` the caller passes.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::header;
use axum::response::{IntoResponse, Response};
use promql::ast::{Expr, ValueType};
use promql::{QueryOpts, QueryResult, QueryStats, StatsLevel, Value};
use web::api::{ApiError, ErrorType};

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

/// Prometheus's `parseDuration` for API parameters: float seconds (negative ones too) or a
/// duration string, in ms.
fn parse_signed_duration(key: &str, s: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::bad_data(format!(
            "invalid parameter {key:?}: cannot parse {s:?} to a valid duration"
        ))
    };
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        if !ms.is_finite() {
            return Err(bad());
        }
        if ms >= i64::MAX as f64 / 1e6 || ms <= i64::MIN as f64 / 1e6 {
            return Err(ApiError::bad_data(format!(
                "invalid parameter {key:?}: cannot parse {s:?} to a valid duration. It overflows int64"
            )));
        }
        return Ok(ms.round() as i64);
    }
    model::parse_duration(s)
        .map(|d| d.as_millis() as i64)
        .map_err(|_| bad())
}

/// Prometheus's `parseDuration` for optional API parameters (`timeout`, `lookback_delta`):
/// `None` when absent or empty; a negative value reads as zero.
pub fn parse_param_duration(p: &Params, key: &str) -> Result<Option<Duration>, ApiError> {
    let Some(s) = p.get(key).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let ms = parse_signed_duration(key, s)?;
    Ok(Some(Duration::from_millis(ms.max(0) as u64)))
}

/// `timeout`: a zero or negative one has expired before the query starts, which Prometheus
/// reports as a timeout (its context deadline has passed).
fn parse_timeout(p: &Params) -> Result<Option<Duration>, ApiError> {
    let t = parse_param_duration(p, "timeout")?;
    if t.is_some_and(|d| d.is_zero()) {
        return Err(ApiError::new(
            ErrorType::Timeout,
            "query timed out in query execution",
        ));
    }
    Ok(t)
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A parsed `/api/v1/query` request.
pub struct InstantQuery {
    pub expr: Expr,
    pub time: i64,
    pub timeout: Option<Duration>,
    pub lookback: Option<Duration>,
    pub stats: StatsLevel,
}

/// A parsed `/api/v1/query_range` request.
pub struct RangeQuery {
    pub expr: Expr,
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub timeout: Option<Duration>,
    pub lookback: Option<Duration>,
    pub stats: StatsLevel,
}

/// The `stats` parameter: compat: Prometheus returns statistics for any non-empty value and
/// adds the per-step samples for `all`.
pub fn parse_stats(p: &Params) -> StatsLevel {
    match p.get("stats") {
        None | Some("") => StatsLevel::Off,
        Some("all") => StatsLevel::PerStep,
        Some(_) => StatsLevel::Summary,
    }
}

fn parse_expr(p: &Params) -> Result<Expr, ApiError> {
    let text = p.get("query").unwrap_or("");
    promql::parse(text).map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))
}

/// Prometheus's `DocumentedType` names of value types.
fn documented(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
    }
}

/// The query of a range query: Prometheus 2.42 reports its parse errors, and an expression
/// that is neither a scalar nor an instant vector, as bad data without a parameter prefix.
fn parse_range_expr(p: &Params) -> Result<Expr, ApiError> {
    let text = p.get("query").unwrap_or("");
    let expr = promql::parse(text).map_err(|e| ApiError::bad_data(e.to_string()))?;
    let t = expr.value_type();
    if !matches!(t, ValueType::Scalar | ValueType::Vector) {
        return Err(ApiError::bad_data(format!(
            "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
            documented(t)
        )));
    }
    Ok(expr)
}

/// Reads the parameters of `/api/v1/query`.
pub fn parse_instant(p: &Params) -> Result<InstantQuery, ApiError> {
    let time = match p.get("time") {
        None | Some("") => now_ms(),
        Some(s) => parse_time(s).map_err(|_| {
            ApiError::bad_data(format!(
                "invalid parameter \"time\": Invalid time value for 'time': cannot parse {s:?} to a valid timestamp"
            ))
        })?,
    };
    let timeout = parse_timeout(p)?;
    let lookback = parse_param_duration(p, "lookback_delta")?;
    let expr = parse_expr(p)?;
    Ok(InstantQuery {
        expr,
        time,
        timeout,
        lookback,
        stats: parse_stats(p),
    })
}

/// Reads the parameters of `/api/v1/query_range`, with Prometheus's checks and messages.
pub fn parse_range(p: &Params) -> Result<RangeQuery, ApiError> {
    let start = required_time(p, "start")?;
    let end = required_time(p, "end")?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = parse_signed_duration("step", p.get("step").unwrap_or(""))?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let timeout = parse_timeout(p)?;
    let lookback = parse_param_duration(p, "lookback_delta")?;
    let expr = parse_range_expr(p)?;
    Ok(RangeQuery {
        expr,
        start,
        end,
        step,
        timeout,
        lookback,
        stats: parse_stats(p),
    })
}

impl InstantQuery {
    /// Evaluates on the calling thread (use from the blocking pool, see [`run_query`]).
    pub fn eval(
        &self,
        engine: &promql::Engine,
        q: &dyn storage::Queryable,
        mut o: QueryOpts<'_>,
    ) -> Result<QueryResult, promql::Error> {
        o.timeout = self.timeout;
        o.lookback_delta = self.lookback.or(o.lookback_delta);
        o.stats = self.stats;
        engine.eval_instant(q, &self.expr, self.time, o)
    }
}

impl RangeQuery {
    /// Evaluates on the calling thread (use from the blocking pool, see [`run_query`]).
    pub fn eval(
        &self,
        engine: &promql::Engine,
        q: &dyn storage::Queryable,
        mut o: QueryOpts<'_>,
    ) -> Result<QueryResult, promql::Error> {
        o.timeout = self.timeout;
        o.lookback_delta = self.lookback.or(o.lookback_delta);
        o.stats = self.stats;
        engine.eval_range(q, &self.expr, self.start, self.end, self.step, o)
    }
}

/// Runs one evaluation over `queryable` on the blocking pool under the concurrency limit
/// `sem`; the evaluation is cancelled when the returned future is dropped. Statistics the
/// evaluation returns get the queue wait and the whole execution time.
pub async fn run_query<F>(
    sem: Arc<tokio::sync::Semaphore>,
    queryable: Arc<dyn storage::Queryable>,
    f: F,
) -> Result<QueryResult, ApiError>
where
    F: FnOnce(&dyn storage::Queryable, QueryOpts<'_>) -> Result<QueryResult, promql::Error>
        + Send
        + 'static,
{
    let queued = Instant::now();
    let _permit = sem
        .acquire_owned()
        .await
        .map_err(|_| ApiError::unavailable("server is shutting down"))?;
    let waited = queued.elapsed();
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let mut res = tokio::task::spawn_blocking(move || {
        let opts = QueryOpts {
            cancel: Some(&cancel),
            ..Default::default()
        };
        f(queryable.as_ref(), opts)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| api_error(&e))?;
    if let Some(s) = &mut res.stats {
        s.timings.exec_queue = waited;
        s.timings.exec_total = queued.elapsed();
    }
    Ok(res)
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

/// The HTTP response for an evaluation: the JSON result or the API error.
pub fn respond(res: Result<QueryResult, ApiError>) -> Response {
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
    if t < 0 {
        out.push('-');
    }
    let t = t.unsigned_abs();
    write_u64(out, t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        let digits = [
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        // ASCII digits.
        out.push_str(std::str::from_utf8(&digits).unwrap_or_default());
    }
}

fn write_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

fn write_json_str(out: &mut String, s: &str) {
    // Label names and values rarely need escaping: copy them as they are when nothing in them
    // does (JSON escapes '"', '\\' and control characters; serde_json nothing else).
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    // serde_json escapes exactly as JSON requires; strings never fail to serialise.
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string()));
}

fn write_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_ts(out, t);
    out.push_str(",\"");
    write_value(out, v);
    out.push_str("\"]");
}

/// A sample value as Prometheus's JSON writes it: Go's shortest `'f'` form, but below 1e-6 and
/// from 1e21 on (in magnitude, zero aside) the shortest `'e'` form (`1.5e-07`, `1e+21`).
fn write_value(out: &mut String, v: f64) {
    let a = v.abs();
    if !v.is_finite() || a == 0.0 || (1e-6..1e21).contains(&a) {
        promql::write_go_float(out, v);
        return;
    }
    // Rust's shortest exponent form is `1.5e-7`; Go's has a sign and at least two digits.
    let s = format!("{v:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    out.push_str(mant);
    out.push('e');
    out.push(sign);
    if digits.len() < 2 {
        out.push('0');
    }
    out.push_str(digits);
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

/// A float as Go's `encoding/json` writes it: the shortest text that reads back the same,
/// in exponent form below 1e-6 and from 1e21 on.
fn write_json_float(out: &mut String, v: f64) {
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let _ = write!(out, "{v:e}");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// `,"stats":{...}` inside `data`, with Prometheus 2.42's keys in its order
/// (`util/stats.BuiltinStats`): timings in seconds, then the samples, whose per-step
/// counts are `[seconds, count]` pairs, present only for `stats=all`.
fn write_stats(out: &mut String, s: &QueryStats) {
    let t = &s.timings;
    out.push_str(",\"stats\":{\"timings\":{");
    for (i, (key, d)) in [
        ("evalTotalTime", t.eval_total),
        ("resultSortTime", t.result_sort),
        ("queryPreparationTime", t.query_preparation),
        ("innerEvalTime", t.inner_eval),
        ("execQueueTime", t.exec_queue),
        ("execTotalTime", t.exec_total),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{key}\":");
        write_json_float(out, d.as_secs_f64());
    }
    out.push_str("},\"samples\":{");
    if let Some(steps) = s.samples.per_step.as_ref().filter(|p| !p.is_empty()) {
        out.push_str("\"totalQueryableSamplesPerStep\":[");
        for (i, (t, n)) in steps.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            write_json_float(out, *t as f64 / 1000.0);
            let _ = write!(out, ",{n}]");
        }
        out.push_str("],");
    }
    let _ = write!(
        out,
        "\"totalQueryableSamples\":{},\"peakSamples\":{}}}}}",
        s.samples.total, s.samples.peak
    );
}

/// The success envelope with `resultType`/`result`, `stats`, warnings and infos.
pub fn encode_result(r: &QueryResult) -> String {
    // Points take ~30 bytes each; reserving up front saves copying a large body while it grows.
    let points: usize = match &r.value {
        Value::Matrix(m) => m.iter().map(|s| s.points.len() + 8).sum(),
        Value::Vector(v) => v.len() * 3,
        _ => 0,
    };
    let mut out = String::with_capacity(256 + points * 32);
    out.push_str("{\"status\":\"success\",\"data\":{\"resultType\":\"");
    out.push_str(r.value.type_name());
    out.push_str("\",\"result\":");
    match &r.value {
        // Prometheus 2.42 writes scalars and strings with their own JSON marshallers: the
        // time as Go's shortest float (`1.5`, not the `1.500` of vector and matrix points)
        // and a scalar's value in Go's plain `'f'` form, never the exponent form.
        Value::Scalar { t, v } => {
            out.push('[');
            promql::write_go_float(&mut out, *t as f64 / 1000.0);
            out.push_str(",\"");
            promql::write_go_float(&mut out, *v);
            out.push_str("\"]");
        }
        Value::String { t, s } => {
            out.push('[');
            promql::write_go_float(&mut out, *t as f64 / 1000.0);
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
    if let Some(s) = &r.stats {
        write_stats(&mut out, s);
    }
    out.push('}');
    // Prometheus 2.42 answers no PromQL annotations (`PromQL warning: …`, `PromQL info: …`,
    // which 3.x added; the engine still reports them to `vigil promqltest`), only warnings of
    // the storage, such as an endpoint of `vigil query` that did not answer.
    let warnings: Vec<&String> = r
        .warnings
        .iter()
        .filter(|w| !w.starts_with("PromQL "))
        .collect();
    if !warnings.is_empty() {
        out.push_str(",\"warnings\":");
        out.push_str(&serde_json::to_string(&warnings).unwrap_or_else(|_| "[]".into()));
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
    fn range_params_checked() {
        let p = Params::parse(Some("query=up&start=10&end=0&step=1"), b"");
        assert!(parse_range(&p).is_err());
        let p = Params::parse(Some("query=up&start=0&end=100000&step=1"), b"");
        assert!(parse_range(&p).is_err());
        let p = Params::parse(Some("query=up&start=0&end=100&step=0"), b"");
        assert!(parse_range(&p).is_err());
        let p = Params::parse(Some("query=up&start=0&end=100&step=15s"), b"");
        let r = parse_range(&p).unwrap();
        assert_eq!((r.start, r.end, r.step), (0, 100_000, 15_000));
    }

    #[test]
    fn range_param_errors_as_prometheus_2_42() {
        let err = |q: &str| parse_range(&Params::parse(Some(q), b"")).err().unwrap();
        let e = err("query=1&start=1&end=2");
        assert_eq!(
            e.msg,
            "invalid parameter \"step\": cannot parse \"\" to a valid duration"
        );
        let e = err("query=1&start=1&end=2&step=-1");
        assert!(e.msg.contains("zero or negative"), "{}", e.msg);
        let e = err("query=sum(&start=1&end=2&step=1");
        assert_eq!(e.msg, "1:5: parse error: unclosed left parenthesis");
        let e = err("query=up[5m]&start=1&end=2&step=1");
        assert_eq!(e.kind, ErrorType::BadData);
        assert_eq!(
            e.msg,
            "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
        );
        let e = err("query=1&start=1&end=2&step=1&timeout=0");
        assert_eq!(e.kind, ErrorType::Timeout);
        let e = parse_instant(&Params::parse(Some("query=1&time=x"), b""))
            .err()
            .unwrap();
        assert_eq!(
            e.msg,
            "invalid parameter \"time\": Invalid time value for 'time': cannot parse \"x\" to a valid timestamp"
        );
    }

    #[test]
    fn timestamps_and_strings() {
        for t in [
            0,
            1,
            999,
            1000,
            1001,
            -1,
            -1500,
            1_795_550_782_123,
            i64::MIN + 1,
        ] {
            let mut s = String::new();
            write_ts(&mut s, t);
            let (sign, a) = if t < 0 {
                ("-", t.unsigned_abs())
            } else {
                ("", t as u64)
            };
            let want = if a % 1000 == 0 {
                format!("{sign}{}", a / 1000)
            } else {
                format!("{sign}{}.{:03}", a / 1000, a % 1000)
            };
            assert_eq!(s, want);
        }
        for v in ["plain", "", "a\"b", "back\\slash", "tab\tx", "\u{1}", "ünï"] {
            let mut s = String::new();
            write_json_str(&mut s, v);
            assert_eq!(s, serde_json::to_string(v).unwrap());
        }
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
            stats: None,
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
            stats: None,
        };
        assert_eq!(
            encode_result(&s),
            r#"{"status":"success","data":{"resultType":"scalar","result":[2,"+Inf"]},"warnings":["w"]}"#
        );
    }

    /// Values as Prometheus 2.42 answered them (`vector(v)` side by side in it::promql_diff).
    #[test]
    fn values_in_prometheus_float_format() {
        for (v, want) in [
            (1e21, "1e+21"),
            (1.2345e21, "1.2345e+21"),
            (9.99e20, "999000000000000000000"),
            (1e308, "1e+308"),
            (-1.7976931348623157e308, "-1.7976931348623157e+308"),
            (1.5e-7, "1.5e-07"),
            (1e-6, "0.000001"),
            (9.99e-7, "9.99e-07"),
            (5e-324, "5e-324"),
            (-2.5e-10, "-2.5e-10"),
            (1.568413511681964e58, "1.568413511681964e+58"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (123.456, "123.456"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            let mut s = String::new();
            write_value(&mut s, v);
            assert_eq!(s, want, "{v:e}");
        }
        // Scalars keep the plain form (`scalar(x)` side by side with Prometheus 2.42), and
        // their time is written as a plain float (`1.5`, vectors write `1.500`).
        let r = QueryResult {
            value: Value::Scalar {
                t: 1500,
                v: 1.2345e21,
            },
            warnings: vec![],
            infos: vec![],
            stats: None,
        };
        assert_eq!(
            encode_result(&r),
            r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"1234500000000000000000"]}}"#
        );
    }

    /// PromQL's annotations stay out of the answer, as in Prometheus 2.42 (found side by side
    /// by `it::promql_diff`: `quantile(1.5, x)`, `sort(x)` in a range query); storage warnings
    /// stay in.
    #[test]
    fn promql_annotations_are_not_answered() {
        let mut r = QueryResult {
            value: Value::Scalar { t: 1000, v: 1.0 },
            warnings: vec![
                "PromQL warning: quantile value should be between 0 and 1, got 1.5".into(),
            ],
            infos: vec!["PromQL info: metric might not be a counter".into()],
            stats: None,
        };
        assert_eq!(
            encode_result(&r),
            r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]}}"#
        );
        r.warnings.push("http://a:9090: connection refused".into());
        assert_eq!(
            encode_result(&r),
            r#"{"status":"success","data":{"resultType":"scalar","result":[1,"1"]},"warnings":["http://a:9090: connection refused"]}"#
        );
    }
}
