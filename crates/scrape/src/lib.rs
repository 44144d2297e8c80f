//! Scraping: service discovery (static and file), target label population and relabelling,
//! per-target scrape loops with staleness markers and report series, and the snapshots the HTTP
//! API shows (`/api/v1/targets`, `/api/v1/metadata`).
//!
//! This crate writes samples through [`storage::Appendable`] and never knows the TSDB; it never
//! serves HTTP itself. Behaviour follows Prometheus 2.42; deliberate copies of its quirks are
//! tagged `compat:`.
//!
//! Use: parse [`ScrapeConfig`]s (the server does, with `apply_defaults` and `validate`), create
//! a [`ScrapeManager`] over an appendable, `apply_config`, and `run` it until shutdown.

mod cache;
pub mod config;
pub mod discovery;
mod manager;
mod metrics;
mod pool;
mod sample_labels;
mod scrape_loop;
pub mod target;

pub use config::{ByteSize, ConfigError, FileSdConfig, ScrapeConfig, StaticConfig};
pub use discovery::{DiscoveryError, TargetGroup, read_file_groups, static_groups};
pub use manager::{ManagerOptions, ScrapeManager};
pub use metrics::ScrapeMetrics;
pub use target::{ActiveTarget, DroppedTarget, MetricMetadata, TargetHealth, TargetMetadata};
