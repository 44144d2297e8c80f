//! `/api/v1/query` and `/api/v1/query_range` over the local storage; parsing, evaluation and
//! the JSON shape live in `promapi`.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use promapi::{Params, parse_instant, parse_range, respond, run_query};

use crate::app::App;
use crate::http_compat::FormBody;

/// `GET|POST /api/v1/query`
pub async fn query(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    FormBody(body): FormBody,
) -> Response {
    let p = Params::parse(q.as_deref(), &body);
    let res = async {
        let req = parse_instant(&p)?;
        let engine = app.engine().clone();
        run_query(app.query_semaphore(), app.queryable(), move |qb, o| {
            req.eval(&engine, qb, o)
        })
        .await
    }
    .await;
    respond(res)
}

/// `GET|POST /api/v1/query_range`
pub async fn query_range(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    FormBody(body): FormBody,
) -> Response {
    let p = Params::parse(q.as_deref(), &body);
    let res = async {
        let req = parse_range(&p)?;
        let engine = app.engine().clone();
        run_query(app.query_semaphore(), app.queryable(), move |qb, o| {
            req.eval(&engine, qb, o)
        })
        .await
    }
    .await;
    respond(res)
}
