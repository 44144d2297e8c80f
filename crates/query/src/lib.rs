//! The `vigil query` role: an HA front end over N Prometheus-compatible endpoints (vigil
//! servers, Prometheus 2.x, anything serving remote read). It reads every endpoint through
//! remote read, merges replica copies of each series without gaps (`storage::dedup`), runs
//! PromQL on the merged data with the same engine as `vigil server`, and fans the metadata
//! endpoints out over the endpoints' HTTP API. Partial responses carry warnings. When one vigil
//! server's data is known complete for everything a query reads, the whole query is pushed
//! down to it instead (`pushdown`).
//!
//! Never used by the other roles (`server`, `alertmanager`).

mod api;
mod app;
pub mod endpoints;
pub mod fanout;
pub mod flags;
pub mod pushdown;

pub use app::{App, QueryError};
pub use flags::QueryFlags;
