//! `/api/v1/query` and `/api/v1/query_range` over the local storage; parsing, evaluation and
//! the JSON shape live in `promapi`. [`answer`] also serves the push-down variants of
//! `crate::pushdown`, which differ only in the storage view they read.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use promapi::{Params, parse_instant, parse_range, respond, run_query};
use storage::Queryable;
use web::api::ApiError;

use crate::app::App;
use crate::http_compat::FormBody;

/// Which of the two query endpoints a request came to.
#[derive(Clone, Copy)]
pub(crate) enum Endpoint {
    /// `/api/v1/query`
    Instant,
    /// `/api/v1/query_range`
    Range,
}

/// Parses a query request, evaluates it over `queryable` (or answers its error, checked
/// before the parameters) under the server's concurrency limit, and writes the answer.
pub(crate) async fn answer(
    app: &App,
    p: &Params,
    endpoint: Endpoint,
    queryable: Result<Arc<dyn Queryable>, ApiError>,
) -> Response {
    let res = async {
        let queryable = queryable?;
        let engine = app.engine().clone();
        let sem = app.query_semaphore();
        match endpoint {
            Endpoint::Instant => {
                let req = parse_instant(p)?;
                run_query(sem, queryable, move |qb, o| req.eval(&engine, qb, o)).await
            }
            Endpoint::Range => {
                let req = parse_range(p)?;
                run_query(sem, queryable, move |qb, o| req.eval(&engine, qb, o)).await
            }
        }
    }
    .await;
    respond(res)
}

/// `GET|POST /api/v1/query`
pub async fn query(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    FormBody(body): FormBody,
) -> Response {
    let p = Params::parse(q.as_deref(), &body);
    answer(&app, &p, Endpoint::Instant, Ok(app.queryable())).await
}

/// `GET|POST /api/v1/query_range`
pub async fn query_range(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    FormBody(body): FormBody,
) -> Response {
    let p = Params::parse(q.as_deref(), &body);
    answer(&app, &p, Endpoint::Range, Ok(app.queryable())).await
}
