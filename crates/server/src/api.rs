//! `/api/v1/*` handlers of `vigil server` (series, labels, targets, status, metadata) and the
//! lifecycle endpoints. Envelopes and status codes come from `web::api`.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header as header_name};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use storage::SelectHints;
use web::api::{ApiError, ApiResult, ok};

use crate::app::App;
use crate::http_compat::FormBody;
use crate::params::Params;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

/// `GET|POST /api/v1/series`
pub async fn series(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    FormBody(body): FormBody,
) -> ApiResult<Vec<model::Labels>> {
    let p = Params::parse(q.as_deref(), &body);
    if p.all("match[]").is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = p.time_range()?;
    // compat: only `/series` names the parameter in match[] errors (Prometheus 2.42).
    let sets = p
        .matchers()
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {}", e.msg)))?;
    let app2 = app.clone();
    let res = tokio::task::spawn_blocking(move || -> Result<Vec<model::Labels>, ApiError> {
        let q = app2.queryable().querier(start, end).map_err(internal)?;
        let hints = SelectHints {
            start,
            end,
            labels_only: true,
            ..Default::default()
        };
        let mut out = BTreeSet::new();
        for ms in &sets {
            for s in q.select(true, &hints, ms).map_err(internal)? {
                out.insert(s.labels().clone());
            }
        }
        Ok(out.into_iter().collect())
    })
    .await
    .map_err(internal)??;
    // compat: Prometheus 2.42 has no `limit` parameter on the series and label endpoints.
    ok(res)
}

/// `GET|POST /api/v1/labels`
pub async fn label_names(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    FormBody(body): FormBody,
) -> ApiResult<Vec<String>> {
    let p = Params::parse(q.as_deref(), &body);
    let (start, end) = p.time_range()?;
    let sets = p.matchers()?;
    let res = tokio::task::spawn_blocking(move || -> Result<Vec<String>, ApiError> {
        let q = app.queryable().querier(start, end).map_err(internal)?;
        if sets.is_empty() {
            return q.label_names(&[]).map_err(internal);
        }
        let mut out = BTreeSet::new();
        for ms in &sets {
            out.extend(q.label_names(ms).map_err(internal)?);
        }
        Ok(out.into_iter().collect())
    })
    .await
    .map_err(internal)??;
    ok(res)
}

/// `GET /api/v1/label/<name>/values`
pub async fn label_values(
    State(app): State<App>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Vec<String>> {
    let p = Params::parse(q.as_deref(), b"");
    // compat: Prometheus accepts UTF-8 names written as U__ escapes only in 3.x; 2.42 requires a
    // legacy label name here.
    if !crate::config::is_valid_label_name(&name) {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let (start, end) = p.time_range()?;
    let sets = p.matchers()?;
    let res = tokio::task::spawn_blocking(move || -> Result<Vec<String>, ApiError> {
        let q = app.queryable().querier(start, end).map_err(internal)?;
        if sets.is_empty() {
            return q.label_values(&name, &[]).map_err(internal);
        }
        let mut out = BTreeSet::new();
        for ms in &sets {
            out.extend(q.label_values(&name, ms).map_err(internal)?);
        }
        Ok(out.into_iter().collect())
    })
    .await
    .map_err(internal)??;
    ok(res)
}

/// `GET /api/v1/targets?state=active|dropped|any&scrapePool=…`
pub async fn targets(
    State(app): State<App>,
    RawQuery(q): RawQuery,
) -> ApiResult<serde_json::Value> {
    let p = Params::parse(q.as_deref(), b"");
    let state = p.get("state").unwrap_or("any").to_ascii_lowercase();
    let pool = p
        .get("scrapePool")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let (show_active, show_dropped) = match state.as_str() {
        "" | "any" => (true, true),
        "active" => (true, false),
        "dropped" => (false, true),
        // compat: Prometheus 2.42 shows neither list for an unknown state.
        _ => (false, false),
    };
    let sm = app.scrape_manager();
    let external = crate::alerting::external_url(app.flags());
    let own_port = app.flags().listen_address.port();
    let in_pool = |p: &str| pool.as_deref().is_none_or(|want| want == p);
    let active: Vec<_> = if show_active {
        sm.targets_active()
            .into_iter()
            .filter(|t| in_pool(&t.scrape_pool))
            .map(|mut t| {
                t.global_url = global_url(&t.scrape_url, &external, own_port);
                t
            })
            .collect()
    } else {
        Vec::new()
    };
    let dropped: Vec<_> = if show_dropped {
        sm.targets_dropped()
            .into_iter()
            .filter(|t| in_pool(&t.scrape_pool))
            .collect()
    } else {
        Vec::new()
    };
    ok(json!({ "activeTargets": active, "droppedTargets": dropped }))
}

/// Prometheus's `getGlobalURL`: a target on localhost is not reachable from elsewhere, so its
/// host becomes the external URL's; when it is this server itself, scheme and host:port too.
fn global_url(scrape_url: &str, external: &str, own_port: u16) -> String {
    let Some((scheme, rest)) = scrape_url.split_once("://") else {
        return scrape_url.to_string();
    };
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return scrape_url.to_string();
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if !["127.0.0.1", "localhost", "::1"].contains(&host) {
        return scrape_url.to_string();
    }
    let (ext_scheme, ext_rest) = external.split_once("://").unwrap_or(("http", external));
    let ext_hostport = &ext_rest[..ext_rest.find('/').unwrap_or(ext_rest.len())];
    if port == own_port.to_string() {
        return format!("{ext_scheme}://{ext_hostport}{path}");
    }
    let ext_host = ext_hostport
        .rsplit_once(':')
        .map_or(ext_hostport, |(h, _)| h);
    format!("{scheme}://{ext_host}:{port}{path}")
}

/// `GET /api/v1/metadata?metric=&limit=&limit_per_metric=`
pub async fn metadata(
    State(app): State<App>,
    RawQuery(q): RawQuery,
) -> ApiResult<BTreeMap<String, Vec<scrape::MetricMetadata>>> {
    let p = Params::parse(q.as_deref(), b"");
    // compat: Prometheus 2.42's wording; it has no `limit_per_metric` yet, so that is ignored.
    let limit = match p.get("limit") {
        None | Some("") => -1,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| ApiError::bad_data("limit must be a number"))?,
    };
    let metric = p.get("metric").filter(|s| !s.is_empty());
    let mut out: BTreeMap<String, Vec<scrape::MetricMetadata>> = BTreeMap::new();
    for (name, md) in app.scrape_manager().metadata() {
        if metric.is_some_and(|m| m != name) {
            continue;
        }
        let e = out.entry(name).or_default();
        if !e.contains(&md) {
            e.push(md);
        }
    }
    if limit >= 0 {
        // compat: Prometheus returns at most `limit` metrics (0 means none).
        out = out.into_iter().take(limit as usize).collect();
    }
    ok(out)
}

/// `GET /api/v1/status/config`
pub async fn status_config(State(app): State<App>) -> ApiResult<serde_json::Value> {
    ok(json!({ "yaml": app.config().to_yaml() }))
}

/// `GET /api/v1/status/flags`
pub async fn status_flags(State(app): State<App>) -> ApiResult<BTreeMap<String, String>> {
    ok(app.flags().to_map())
}

/// `GET /api/v1/status/buildinfo`
pub async fn status_buildinfo() -> ApiResult<serde_json::Value> {
    ok(build_info())
}

/// `GET /api/v1/status/runtimeinfo`
pub async fn status_runtimeinfo(State(app): State<App>) -> ApiResult<serde_json::Value> {
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let rt = app.runtime_info();
    ok(json!({
        "startTime": rt.start_time,
        "CWD": cwd,
        "reloadConfigSuccess": rt.reload_ok,
        "lastConfigTime": rt.last_config_time,
        "corruptionCount": rt.corruption_count,
        "goroutineCount": rt.tasks,
        "GOMAXPROCS": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": model::format_duration(app.flags().retention()),
    }))
}

/// `GET /api/v1/status/tsdb?limit=`
pub async fn status_tsdb(
    State(app): State<App>,
    RawQuery(q): RawQuery,
) -> ApiResult<tsdb::TsdbStats> {
    // compat: Prometheus 2.42 always lists the top 10 (its `limit` parameter came later).
    let _ = q;
    ok(app.db().stats(10))
}

/// `GET /metrics`: the server's own metrics in text format 0.0.4.
pub async fn metrics(State(app): State<App>) -> Response {
    web::metrics::response(crate::metrics::render(&app))
}

pub async fn healthy() -> &'static str {
    "Prometheus Server is Healthy.\n"
}

pub async fn ready(State(app): State<App>) -> Response {
    if app.is_ready() {
        (StatusCode::OK, "Prometheus Server is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
    }
}

fn lifecycle_disabled() -> Response {
    (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response()
}

/// `POST|PUT /-/reload`
pub async fn reload(State(app): State<App>) -> Response {
    if !app.flags().enable_lifecycle {
        return lifecycle_disabled();
    }
    match app.reload() {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}"),
        )
            .into_response(),
    }
}

/// `POST|PUT /-/quit`
pub async fn quit(State(app): State<App>) -> Response {
    if !app.flags().enable_lifecycle {
        return lifecycle_disabled();
    }
    app.shutdown_token().cancel();
    (StatusCode::OK, "Requesting termination... Goodbye!").into_response()
}

/// `GET /api/v1/targets/metadata?match_target=&metric=&limit=`, like Prometheus 2.42: the
/// metadata of each active target (pools by name), `limit` checked per target.
pub async fn targets_metadata(
    State(app): State<App>,
    RawQuery(q): RawQuery,
) -> ApiResult<Vec<serde_json::Value>> {
    let p = Params::parse(q.as_deref(), b"");
    let limit = match p.get("limit") {
        None | Some("") => -1,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| ApiError::bad_data("limit must be a number"))?,
    };
    let matchers = match p.get("match_target").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(promql::parse_metric_selector(s).map_err(|e| {
            ApiError::bad_data(format!("invalid parameter \"match_target\": {}", e.msg))
        })?),
    };
    let metric = p.get("metric").filter(|s| !s.is_empty());
    let mut all = app.scrape_manager().target_metadata();
    // One target's entries stay together and in their order; pools and targets sorted.
    all.sort_by(|a, b| (&a.scrape_pool, &a.target).cmp(&(&b.scrape_pool, &b.target)));
    let mut out = Vec::new();
    let mut last: Option<&model::Labels> = None;
    for md in &all {
        if last != Some(&md.target) {
            last = Some(&md.target);
            if limit >= 0 && out.len() as i64 >= limit {
                break;
            }
        }
        if matchers
            .as_ref()
            .is_some_and(|ms| !model::matcher::matches_all(&md.target, ms))
        {
            continue;
        }
        match metric {
            None => out.push(json!({
                "target": md.target, "metric": md.metric, "type": md.kind,
                "help": md.help, "unit": md.unit,
            })),
            Some(m) if m == md.metric => out.push(json!({
                "target": md.target, "type": md.kind, "help": md.help, "unit": md.unit,
            })),
            Some(_) => {}
        }
    }
    ok(out)
}

/// `GET|POST /api/v1/query_exemplars`: vigil stores no exemplars, so a valid request answers
/// an empty list; the query and times are checked as Prometheus 2.42 checks them.
pub async fn query_exemplars(RawQuery(q): RawQuery, FormBody(body): FormBody) -> Response {
    let p = Params::parse(q.as_deref(), &body);
    let res = (|| {
        let (start, end) = p.time_range()?;
        if end < start {
            return Err(ApiError::bad_data(
                "end timestamp must not be before start timestamp",
            ));
        }
        let expr = promql::parse(p.get("query").unwrap_or(""))
            .map_err(|e| ApiError::bad_data(e.to_string()))?;
        let mut selectors = 0;
        expr.walk(&mut |e| {
            if matches!(
                e,
                promql::ast::Expr::VectorSelector(_) | promql::ast::Expr::MatrixSelector(_)
            ) {
                selectors += 1;
            }
        });
        Ok(selectors)
    })();
    match res {
        // compat: without selectors Prometheus 2.42 answers 204 with no body.
        Ok(0) => StatusCode::NO_CONTENT.into_response(),
        Ok(_) => ok(Vec::<()>::new()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/v1/status/walreplay`: the WAL segments replayed at start-up.
pub async fn status_walreplay(State(app): State<App>) -> ApiResult<serde_json::Value> {
    let (min, max) = app.wal_replay();
    ok(json!({ "min": min, "max": max, "current": max }))
}

fn build_info() -> serde_json::Value {
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": option_env!("VIGIL_GIT_REVISION").unwrap_or("unknown"),
        "branch": "main",
        "buildUser": "vigil",
        "buildDate": "",
        "goVersion": "rust",
    })
}

/// `GET /version`: the build information as Prometheus serves it (JSON as text/plain).
pub async fn version() -> Response {
    (
        [(header_name::CONTENT_TYPE, "text/plain; charset=utf-8")],
        build_info().to_string(),
    )
        .into_response()
}

/// `POST /api/v1/write` without `--web.enable-remote-write-receiver`.
pub async fn remote_write_disabled() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header_name::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "remote write receiver needs to be enabled with --enable-feature=remote-write-receiver\n",
    )
        .into_response()
}

/// `DELETE /api/v1/series`: Prometheus 2.42 answers that it is not implemented.
pub async fn drop_series() -> ApiError {
    ApiError::internal("not implemented")
}

/// `GET|POST /api/v1/format_query`: the query printed back in Prometheus's canonical form.
pub async fn format_query(RawQuery(q): RawQuery, FormBody(body): FormBody) -> ApiResult<String> {
    let p = Params::parse(q.as_deref(), &body);
    let expr = promql::parse(p.get("query").unwrap_or(""))
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))?;
    ok(promql::printer::print(&expr))
}

#[cfg(test)]
mod tests {
    use super::global_url;

    #[test]
    fn global_urls_like_prometheus() {
        let ext = "http://vm:9090";
        assert_eq!(
            global_url("http://127.0.0.1:19109/metrics", ext, 9090),
            "http://vm:19109/metrics"
        );
        assert_eq!(
            global_url(
                "http://localhost:9090/metrics",
                "https://p.example/prom",
                9090
            ),
            "https://p.example/metrics"
        );
        assert_eq!(
            global_url("http://10.0.0.1:9100/metrics", ext, 9090),
            "http://10.0.0.1:9100/metrics"
        );
    }
}
