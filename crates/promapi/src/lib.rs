//! The reusable part of Prometheus's HTTP API v1 read surface: request parameters as
//! Prometheus reads them, `/api/v1/query` and `/api/v1/query_range` parsing and evaluation over
//! any `storage::Queryable`, and the fast JSON encoder of query results.
//!
//! Shared by the roles that answer PromQL over HTTP (`vigil server`, `vigil query`); it owns no
//! routes and no state of its own.

pub mod params;
pub mod query;

pub use params::{MAX_TIME, MIN_TIME, Params, parse_time};
pub use query::{
    InstantQuery, RangeQuery, encode_result, parse_instant, parse_param_duration, parse_range,
    respond, run_query,
};
