//! The `vigil alertmanager` role: loads alertmanager.yml, receives alerts over API v2, groups
//! them by route, inhibits and silences them, and notifies receivers, deduplicating against a
//! notification log. Silences and the notification log are snapshotted under `--storage.path`
//! and replicated across an HA cluster (`gossip`: the `cluster` crate's protocol, compatible
//! with Alertmanager 0.25), where each node waits its position × `--cluster.peer-timeout` and
//! consults the replicated log before sending.
//!
//! Never used by the other roles (`server`, `query`); the wire protocol lives in `cluster`.

pub mod alert;
mod api;
mod api_v1;
mod app;
pub mod cluster_tls;
pub mod config;
pub mod core;
pub mod dispatch;
pub mod flags;
pub mod gojson;
pub mod gossip;
pub mod inflight;
pub mod inhibit;
pub mod matcher;
pub mod metrics;
pub mod nflog;
pub mod notify;
pub mod proto;
pub mod receivers;
pub mod route;
pub mod silence;
pub mod strfmt;
pub mod time;
pub mod timeinterval;
pub mod tmpl;

pub use app::{AlertmanagerError, App};
pub use config::{Config, ConfigError};
pub use flags::AlertmanagerFlags;
