//! The HTTP API v1 read surface of `vigil query`: PromQL over the merged replicas (through
//! `promapi`), and `series`/`labels`/`label values`/`metadata`/`targets` fanned out to the
//! endpoints' own HTTP API and merged with the replica labels dropped. Plus the debug
//! endpoints `/api/v1/dedup/explain` and `/api/v1/endpoints`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use promapi::{InstantQuery, Params, RangeQuery, parse_instant, parse_range, respond, run_query};
use serde_json::{Value, json};
use storage::SelectHints;
use web::api::{ApiError, ApiResult, ApiSuccess, ok};

use crate::app::App;
use crate::fanout::{DedupMode, Fanout};
use crate::pushdown;

fn dedup_mode(p: &Params) -> Result<DedupMode, ApiError> {
    match p.get("dedup") {
        None | Some("") | Some("true") | Some("1") => Ok(DedupMode::On),
        Some("false") | Some("0") => Ok(DedupMode::Off),
        Some(s) => Err(ApiError::bad_data(format!(
            "invalid parameter \"dedup\": {s:?} (want true or false; see /api/v1/dedup/explain)"
        ))),
    }
}

fn partial(p: &Params) -> Result<Option<bool>, ApiError> {
    match p.get("partial_response") {
        None | Some("") => Ok(None),
        Some("true") | Some("1") => Ok(Some(true)),
        Some("false") | Some("0") => Ok(Some(false)),
        Some(s) => Err(ApiError::bad_data(format!(
            "invalid parameter \"partial_response\": {s:?}"
        ))),
    }
}

/// Runs a parsed query over a fresh fan-out and adds the fan-out's warnings.
async fn eval<F>(app: &App, p: &Params, f: F) -> Result<promql::QueryResult, ApiError>
where
    F: FnOnce(
            &promql::Engine,
            &dyn storage::Queryable,
            promql::QueryOpts<'_>,
        ) -> Result<promql::QueryResult, promql::Error>
        + Send
        + 'static,
{
    let fan = Arc::new(app.fanout(dedup_mode(p)?, partial(p)?));
    let engine = app.engine().clone();
    let qb: Arc<dyn storage::Queryable> = fan.clone();
    app.counters().queries.fetch_add(1, Ordering::Relaxed);
    let res = run_query(app.query_semaphore(), qb, move |q, o| f(&engine, q, o)).await;
    match res {
        Ok(mut r) => {
            let w = fan.warnings();
            if !w.is_empty() {
                app.counters()
                    .partial_responses
                    .fetch_add(1, Ordering::Relaxed);
            }
            r.warnings.extend(w);
            Ok(r)
        }
        Err(e) => {
            app.counters()
                .failed_queries
                .fetch_add(1, Ordering::Relaxed);
            Err(e)
        }
    }
}

/// `GET|POST /api/v1/query` (extra parameters: `dedup`, `partial_response`).
pub async fn query(State(app): State<App>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let p = Params::parse(q.as_deref(), &body);
    serve(&app, &p, parse_instant(&p).map(Request::Instant)).await
}

/// `GET|POST /api/v1/query_range` (extra parameters: `dedup`, `partial_response`).
pub async fn query_range(State(app): State<App>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let p = Params::parse(q.as_deref(), &body);
    serve(&app, &p, parse_range(&p).map(Request::Range)).await
}

/// A parsed request of either PromQL endpoint.
enum Request {
    Instant(InstantQuery),
    Range(RangeQuery),
}

impl Request {
    fn eval(
        &self,
        engine: &promql::Engine,
        q: &dyn storage::Queryable,
        o: promql::QueryOpts<'_>,
    ) -> Result<promql::QueryResult, promql::Error> {
        match self {
            Request::Instant(r) => r.eval(engine, q, o),
            Request::Range(r) => r.eval(engine, q, o),
        }
    }

    /// What to forward of it (`pushdown::try_forward`).
    fn forward(&self, app: &App, p: &Params) -> pushdown::Forward {
        let window = pushdown::window(|q| self.eval(app.engine(), q, Default::default()));
        let (fwd, expr) = match self {
            Request::Instant(r) => (
                pushdown::Forward::instant(p, r.time, lookback_ms(app, r.lookback)),
                &r.expr,
            ),
            Request::Range(r) => (
                pushdown::Forward::range(p, lookback_ms(app, r.lookback)),
                &r.expr,
            ),
        };
        fwd.reading(window, expr, app.replica_labels())
    }
}

/// What both PromQL endpoints do with a request (its parse error first): refuse bad
/// `dedup`/`partial_response` values whichever path answers, pass the query down to one
/// replica when one can answer it alone, else evaluate it over the merged replicas.
async fn serve(app: &App, p: &Params, req: Result<Request, ApiError>) -> Response {
    let res = async {
        let req = req?;
        dedup_mode(p)?;
        partial(p)?;
        if let Some(r) = pushdown::try_forward(app, p, req.forward(app, p)).await {
            return Ok(Err(r));
        }
        eval(app, p, move |e, q, o| req.eval(e, q, o)).await.map(Ok)
    }
    .await;
    answer(res)
}

/// The lookback a query evaluates with: its `lookback_delta`, else the flag's.
fn lookback_ms(app: &App, given: Option<std::time::Duration>) -> i64 {
    given.unwrap_or(app.flags().lookback_delta).as_millis() as i64
}

/// A merged evaluation's result, or a replica's answer passed through.
fn answer(res: Result<Result<promql::QueryResult, Response>, ApiError>) -> Response {
    match res {
        Ok(Err(forwarded)) => forwarded,
        Ok(Ok(r)) => respond(Ok(r)),
        Err(e) => respond(Err(e)),
    }
}

/// The query string forwarded to endpoints: the listed keys, all their values.
fn forward(p: &Params, keys: &[&str]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for k in keys {
        for v in p.all(k) {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

/// GETs `path?query` from every endpoint that is up; returns each answer's `data` and all
/// warnings. Failures are warnings, or the error in strict mode; all failing is an error.
async fn fan_get(
    app: &App,
    p: &Params,
    path: &str,
    query: &str,
) -> Result<(Vec<Value>, Vec<String>), ApiError> {
    let strict = !partial(p)?.unwrap_or(app.flags().partial_response);
    let list = app.endpoints().list();
    let mut warnings = Vec::new();
    let mut asked = Vec::new();
    for e in list.iter() {
        if e.is_up() {
            asked.push(e.clone());
        } else {
            warnings.push(format!(
                "endpoint {} is down, skipped: {}",
                e.url,
                e.last_error()
            ));
        }
    }
    let http = app.endpoints().http();
    let calls = asked.iter().map(|e| async move {
        let url = format!("{}{path}?{query}", e.url);
        let r = http
            .get(&url)
            .send()
            .await
            .map_err(|err| format!("{url}: {}", remote::error_chain(&err)))?;
        let status = r.status();
        let text = r
            .text()
            .await
            .map_err(|err| format!("{url}: read body: {err}"))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|err| format!("{url}: HTTP {status}: not a JSON API answer: {err}"))?;
        if v["status"] != "success" {
            return Err(format!(
                "{url}: HTTP {status}: {}",
                v["error"].as_str().unwrap_or("error")
            ));
        }
        Ok(v)
    });
    let results = futures_util::future::join_all(calls).await;
    let mut data = Vec::new();
    for (e, r) in asked.iter().zip(results) {
        match r {
            Ok(mut v) => {
                if let Some(ws) = v["warnings"].as_array() {
                    warnings.extend(ws.iter().filter_map(|w| w.as_str().map(String::from)));
                }
                data.push(v["data"].take());
            }
            Err(msg) => {
                // A bad answer (500, garbage) does not mean the endpoint is down.
                if !msg.contains("HTTP") {
                    e.mark_down(&msg);
                }
                warnings.push(msg);
            }
        }
    }
    if strict && !warnings.is_empty() {
        return Err(ApiError::unavailable(format!(
            "partial response disabled: {}",
            warnings.join("; ")
        )));
    }
    if data.is_empty() && !list.is_empty() {
        return Err(ApiError::unavailable(format!(
            "no endpoint answered: {}",
            warnings.join("; ")
        )));
    }
    warnings.dedup();
    Ok((data, warnings))
}

fn with_warnings<T: serde::Serialize>(data: T, warnings: Vec<String>) -> ApiResult<T> {
    Ok(ApiSuccess::new(data).with_warnings(warnings))
}

fn limit_vec<T>(mut v: Vec<T>, limit: usize, warnings: &mut Vec<String>) -> Vec<T> {
    if limit > 0 && v.len() > limit {
        v.truncate(limit);
        warnings.push("results truncated due to limit".into());
    }
    v
}

fn is_replica(app: &App, p: &Params, name: &str) -> Result<bool, ApiError> {
    Ok(dedup_mode(p)? == DedupMode::On && app.replica_labels().iter().any(|r| r == name))
}

/// `GET|POST /api/v1/series`: the union of the endpoints' series, replica labels dropped.
pub async fn series(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Vec<BTreeMap<String, String>>> {
    let p = Params::parse(q.as_deref(), &body);
    if p.all("match[]").is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    p.matchers()?;
    let (data, mut warnings) = fan_get(
        &app,
        &p,
        "/api/v1/series",
        &forward(&p, &["match[]", "start", "end", "limit"]),
    )
    .await?;
    let mut out = BTreeSet::new();
    for d in data {
        for s in d.as_array().into_iter().flatten() {
            let Some(obj) = s.as_object() else { continue };
            let mut m = BTreeMap::new();
            for (k, v) in obj {
                if !is_replica(&app, &p, k)? {
                    m.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
            }
            out.insert(m);
        }
    }
    let v = limit_vec(out.into_iter().collect(), p.limit()?, &mut warnings);
    with_warnings(v, warnings)
}

/// `GET|POST /api/v1/labels`: the union of label names, replica labels dropped.
pub async fn label_names(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Vec<String>> {
    let p = Params::parse(q.as_deref(), &body);
    p.matchers()?;
    let (data, mut warnings) = fan_get(
        &app,
        &p,
        "/api/v1/labels",
        &forward(&p, &["match[]", "start", "end", "limit"]),
    )
    .await?;
    let mut out = BTreeSet::new();
    for d in data {
        for n in d.as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !is_replica(&app, &p, n)? {
                out.insert(n.to_string());
            }
        }
    }
    let v = limit_vec(out.into_iter().collect(), p.limit()?, &mut warnings);
    with_warnings(v, warnings)
}

/// `GET /api/v1/label/<name>/values`: the union of the endpoints' values.
pub async fn label_values(
    State(app): State<App>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Vec<String>> {
    let p = Params::parse(q.as_deref(), b"");
    p.matchers()?;
    let path = format!(
        "/api/v1/label/{}/values",
        form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
    );
    let (data, mut warnings) = fan_get(
        &app,
        &p,
        &path,
        &forward(&p, &["match[]", "start", "end", "limit"]),
    )
    .await?;
    let mut out = BTreeSet::new();
    for d in data {
        out.extend(
            d.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(String::from),
        );
    }
    let v = limit_vec(out.into_iter().collect(), p.limit()?, &mut warnings);
    with_warnings(v, warnings)
}

/// `GET /api/v1/metadata`: per metric, the union of the endpoints' entries.
pub async fn metadata(
    State(app): State<App>,
    RawQuery(q): RawQuery,
) -> ApiResult<BTreeMap<String, Vec<Value>>> {
    let p = Params::parse(q.as_deref(), b"");
    let (data, warnings) = fan_get(
        &app,
        &p,
        "/api/v1/metadata",
        &forward(&p, &["metric", "limit", "limit_per_metric"]),
    )
    .await?;
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for d in data {
        for (metric, entries) in d.as_object().into_iter().flatten() {
            let e = out.entry(metric.clone()).or_default();
            for entry in entries.as_array().into_iter().flatten() {
                if !e.contains(entry) {
                    e.push(entry.clone());
                }
            }
        }
    }
    if let Some(Ok(limit)) = p
        .get("limit")
        .filter(|s| !s.is_empty())
        .map(str::parse::<i64>)
        && limit >= 0
    {
        out = out.into_iter().take(limit as usize).collect();
    }
    with_warnings(out, warnings)
}

/// `GET /api/v1/targets`: every endpoint's targets; a target that several replicas scrape is
/// listed once, healthy copies first.
pub async fn targets(State(app): State<App>, RawQuery(q): RawQuery) -> ApiResult<Value> {
    let p = Params::parse(q.as_deref(), b"");
    let (data, warnings) = fan_get(
        &app,
        &p,
        "/api/v1/targets",
        &forward(&p, &["state", "scrapePool"]),
    )
    .await?;
    let mut out = serde_json::Map::new();
    for (key, id_fields) in [
        ("activeTargets", &["scrapePool", "scrapeUrl", "labels"][..]),
        ("droppedTargets", &["discoveredLabels"][..]),
    ] {
        let mut all: Vec<Value> = data
            .iter()
            .flat_map(|d| d[key].as_array().cloned().unwrap_or_default())
            .collect();
        // Healthy first, so the copy kept for a target is a healthy one.
        all.sort_by_key(|t| t["health"] != "up");
        let mut seen = BTreeSet::new();
        all.retain(|t| {
            seen.insert(
                id_fields
                    .iter()
                    .map(|f| t[*f].to_string())
                    .collect::<Vec<_>>(),
            )
        });
        out.insert(key.to_string(), Value::Array(all));
    }
    with_warnings(Value::Object(out), warnings)
}

/// `GET|POST /api/v1/query_exemplars`: the endpoints' exemplars, concatenated.
pub async fn query_exemplars(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Vec<Value>> {
    let p = Params::parse(q.as_deref(), &body);
    let (data, warnings) = fan_get(
        &app,
        &p,
        "/api/v1/query_exemplars",
        &forward(&p, &["query", "start", "end"]),
    )
    .await?;
    let mut out: Vec<Value> = Vec::new();
    for d in data {
        for e in d.as_array().into_iter().flatten() {
            if !out.contains(e) {
                out.push(e.clone());
            }
        }
    }
    with_warnings(out, warnings)
}

/// `GET /api/v1/rules`: the endpoints' rule groups; a group that several replicas evaluate
/// (same file and name) is listed once.
pub async fn rules(State(app): State<App>, RawQuery(q): RawQuery) -> ApiResult<Value> {
    let p = Params::parse(q.as_deref(), b"");
    let (data, warnings) = fan_get(
        &app,
        &p,
        "/api/v1/rules",
        &forward(&p, &["type", "rule_name[]", "rule_group[]", "file[]"]),
    )
    .await?;
    let mut seen = BTreeSet::new();
    let mut groups = Vec::new();
    for d in data {
        for g in d["groups"].as_array().into_iter().flatten() {
            if seen.insert((g["file"].to_string(), g["name"].to_string())) {
                groups.push(g.clone());
            }
        }
    }
    with_warnings(json!({ "groups": groups }), warnings)
}

/// `GET /api/v1/alerts`: the endpoints' active alerts; an alert that several replicas fire
/// (same labels) is listed once.
pub async fn alerts(State(app): State<App>, RawQuery(q): RawQuery) -> ApiResult<Value> {
    let p = Params::parse(q.as_deref(), b"");
    let (data, warnings) = fan_get(&app, &p, "/api/v1/alerts", "").await?;
    let mut seen = BTreeSet::new();
    let mut alerts = Vec::new();
    for d in data {
        for a in d["alerts"].as_array().into_iter().flatten() {
            if seen.insert(a["labels"].to_string()) {
                alerts.push(a.clone());
            }
        }
    }
    with_warnings(json!({ "alerts": alerts }), warnings)
}

/// `GET /api/v1/status/buildinfo`
pub async fn status_buildinfo() -> ApiResult<Value> {
    ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": option_env!("VIGIL_GIT_REVISION").unwrap_or("unknown"),
        "branch": "main",
        "buildUser": "vigil",
        "buildDate": "",
        "goVersion": "rust",
    }))
}

/// `GET /api/v1/status/flags`
pub async fn status_flags(State(app): State<App>) -> ApiResult<BTreeMap<String, String>> {
    let f = app.flags();
    let mut m = BTreeMap::new();
    m.insert("web.listen-address".into(), f.listen_address.to_string());
    m.insert("endpoint".into(), f.endpoints.join(","));
    m.insert("query.replica-label".into(), f.replica_labels.join(","));
    m.insert(
        "query.partial-response".into(),
        f.partial_response.to_string(),
    );
    m.insert("query.push-down".into(), f.push_down.to_string());
    m.insert(
        "endpoint.timeout".into(),
        model::format_duration(f.endpoint_timeout),
    );
    m.insert(
        "query.lookback-delta".into(),
        model::format_duration(f.lookback_delta),
    );
    m.insert(
        "query.timeout".into(),
        model::format_duration(f.query_timeout),
    );
    ok(m)
}

/// `GET /api/v1/endpoints`: the endpoints and their health.
pub async fn endpoints(State(app): State<App>) -> ApiResult<Vec<Value>> {
    ok(app
        .endpoints()
        .list()
        .iter()
        .map(|e| {
            json!({
                "url": e.url,
                "health": if e.is_up() { "up" } else { "down" },
                "lastError": e.last_error(),
                "lastCheckMs": e.last_check_ms(),
            })
        })
        .collect())
}

/// `GET|POST /api/v1/dedup/explain?match[]=…&start=…&end=…`: for each merged series, which
/// replica served which stretch of time (default range: the last hour).
pub async fn explain(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Vec<Value>> {
    let p = Params::parse(q.as_deref(), &body);
    let sets = p.matchers()?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let now = jiff::Timestamp::now().as_millisecond();
    let end = p.time("end", now)?;
    let start = p.time("start", end - 3_600_000)?;
    let fan: Fanout = app.fanout(DedupMode::On, partial(&p)?);
    let (out, warnings) = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let hints = SelectHints {
            start,
            end,
            ..Default::default()
        };
        let mut out = Vec::new();
        for ms in &sets {
            let series = fan
                .select_merged(start, end, &hints, ms)
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            for s in series {
                let (ival, stretches, n) = s.explain();
                let origins = s.origins();
                let labels: BTreeMap<&str, &str> =
                    s.labels.iter().map(|l| (l.name, l.value)).collect();
                out.push(json!({
                    "labels": labels,
                    "replicas": origins,
                    "intervalMs": ival,
                    "samples": n,
                    "stretches": stretches.iter().map(|st| json!({
                        "replica": origins.get(st.replica),
                        "start": st.first as f64 / 1000.0,
                        "end": st.last as f64 / 1000.0,
                        "samples": st.samples,
                    })).collect::<Vec<_>>(),
                }));
            }
        }
        Ok((out, fan.warnings()))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    with_warnings(out, warnings)
}

/// `GET /metrics`: own metrics in text format 0.0.4.
pub async fn metrics(State(app): State<App>) -> Response {
    let mut o = web::metrics::Out::default();
    let c = app.counters();
    for (name, help, v) in [
        (
            "vigil_query_queries_total",
            "PromQL queries evaluated.",
            &c.queries,
        ),
        (
            "vigil_query_partial_responses_total",
            "Queries answered with endpoint warnings.",
            &c.partial_responses,
        ),
        (
            "vigil_query_failed_queries_total",
            "Queries that failed.",
            &c.failed_queries,
        ),
        (
            "vigil_query_pushed_down_queries_total",
            "Queries answered by one replica whose data was complete for them.",
            &c.pushed_down,
        ),
    ] {
        o.single(name, "counter", help, v.load(Ordering::Relaxed) as f64);
    }
    let up = "vigil_query_endpoint_up";
    o.family(
        up,
        "gauge",
        "Whether the endpoint passed its last health check.",
    );
    for e in app.endpoints().list().iter() {
        o.sample(up, &[("endpoint", &e.url)], f64::from(u8::from(e.is_up())));
    }
    o.single(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        app.start_time().as_second() as f64,
    );
    web::metrics::response(o.finish())
}

pub async fn healthy() -> &'static str {
    "Vigil Query is Healthy.\n"
}

pub async fn ready(State(app): State<App>) -> Response {
    if app.is_ready() {
        (StatusCode::OK, "Vigil Query is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
    }
}

/// `POST|PUT /-/quit`
pub async fn quit(State(app): State<App>) -> Response {
    app.shutdown_token().cancel();
    (StatusCode::OK, "Requesting termination... Goodbye!").into_response()
}

/// Any other `/api/v1/...` path.
pub async fn api_not_found() -> ApiError {
    ApiError::not_found("not found")
}
