//! The TSDB admin API behind `--web.enable-admin-api`, like Prometheus's:
//! `POST /api/v1/admin/tsdb/snapshot?skip_head=`, `delete_series?match[]=&start=&end=` and
//! `clean_tombstones`. Disabled, each answers 500 `unavailable` "admin APIs disabled" like Prometheus 2.42.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use web::api::{ApiError, ok};

use crate::app::App;
use crate::http_compat::FormBody;
use crate::params::Params;

/// compat: Prometheus 2.42 answers a disabled admin API with errorType `unavailable` but
/// status 500 (its error-type switch has no case for `unavailable`).
fn disabled() -> Response {
    web::api::json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({"status": "error", "errorType": "unavailable", "error": "admin APIs disabled"}),
    )
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

/// compat: Prometheus names snapshots `20060102T150405Z0700-<16 hex digits>`.
fn snapshot_name() -> String {
    let now = jiff::Timestamp::now();
    let rand = u64::from_str_radix(&tsdb::ulid::Ulid::now().to_string()[10..], 32)
        .unwrap_or_else(|_| now.as_nanosecond() as u64);
    format!("{}-{:016x}", now.strftime("%Y%m%dT%H%M%SZ"), rand)
}

/// `POST /api/v1/admin/tsdb/snapshot`
pub async fn snapshot(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    FormBody(body): FormBody,
) -> Response {
    if !app.flags().enable_admin_api {
        return disabled();
    }
    let res = async {
        let p = Params::parse(q.as_deref(), &body);
        let skip_head = match p.get("skip_head") {
            None | Some("") => false,
            // compat: Go's strconv.ParseBool and Prometheus 2.42's message.
            Some("1" | "t" | "T" | "TRUE" | "true" | "True") => true,
            Some("0" | "f" | "F" | "FALSE" | "false" | "False") => false,
            Some(s) => {
                return Err(ApiError::bad_data(format!(
                    "invalid parameter \"skip_head\": unable to parse boolean: strconv.ParseBool: parsing {s:?}: invalid syntax"
                )));
            }
        };
        let name = snapshot_name();
        let dir = app.flags().data_path().join("snapshots").join(&name);
        let db = app.db().clone();
        tokio::task::spawn_blocking(move || db.snapshot(&dir, !skip_head))
            .await
            .map_err(internal)?
            .map_err(|e| ApiError::internal(format!("create snapshot: {e}")))?;
        ok(json!({ "name": name }))
    }
    .await;
    res.into_response()
}

/// `POST /api/v1/admin/tsdb/delete_series`: 204 on success.
pub async fn delete_series(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    FormBody(body): FormBody,
) -> Response {
    if !app.flags().enable_admin_api {
        return disabled();
    }
    let res: Result<(), ApiError> = async {
        let p = Params::parse(q.as_deref(), &body);
        if p.all("match[]").is_empty() {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        let (start, end) = p.time_range()?;
        let sets = p
            .selectors()
            .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {}", e.msg)))?;
        let db = app.db().clone();
        tokio::task::spawn_blocking(move || {
            for ms in &sets {
                db.delete_series(ms, start, end)?;
            }
            Ok::<_, tsdb::TsdbError>(())
        })
        .await
        .map_err(internal)?
        .map_err(internal)
    }
    .await;
    match res {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/v1/admin/tsdb/clean_tombstones`: 204 on success.
pub async fn clean_tombstones(State(app): State<App>) -> Response {
    if !app.flags().enable_admin_api {
        return disabled();
    }
    let res: Result<(), ApiError> = async {
        let db = app.db().clone();
        tokio::task::spawn_blocking(move || db.clean_tombstones())
            .await
            .map_err(internal)?
            .map(|_| ())
            .map_err(internal)
    }
    .await;
    match res {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}
