//! The `vigil server` role: loads prometheus.yml, wires storage, scraping and the HTTP API, and
//! handles reloads. Exposes an embeddable [`App`]; the binary only parses flags and signals.
//!
//! Never used by the other roles (`alertmanager`, `query`).

mod admin;
mod agent;
mod alerting;
mod api;
mod app;
pub mod config;
pub mod coverage;
pub mod federate;
pub mod flags;
mod http_compat;
mod metrics;
mod metrics_components;
mod params;
mod pushdown;
mod query_api;
mod remote_write;

pub use app::{App, RuntimeInfo, ServerError};
pub use flags::ServerFlags;
