//! Vigil's time series database: an in-memory head of series with Prometheus-compatible XOR
//! chunks, a write-ahead log with checkpoints, full head chunks in memory-mapped files, and
//! persistent blocks cut from the head, compacted (Prometheus's leveled scheme, overlapping
//! blocks merged) and deleted by time and size retention. It implements
//! [`storage::Appendable`] and [`storage::Queryable`]; queries span head and blocks.
//!
//! On-disk formats are Prometheus's, so a data directory moves between vigil and Prometheus
//! and `promtool tsdb list|analyze|dump` reads it: see `docs/format/wal.md`,
//! `docs/format/head_chunks.md` and `docs/format/blocks.md`.
//!
//! This crate owns storage of samples only. It never scrapes, evaluates PromQL or serves HTTP.
//!
//! Units: timestamps are milliseconds since the epoch; query ranges are inclusive.

mod appender;
pub mod block;
pub mod chunkenc;
pub mod compact;
mod db;
pub mod encoding;
mod error;
pub mod failpoint;
mod head;
pub mod head_chunks;
mod merge;
mod metrics;
mod prefetch;
mod read;
mod readers;
mod replay;
mod stats;
pub mod tools;
mod trim;
pub mod ulid;
pub mod wal;

pub use db::{CompactStats, Db, Options, TruncateStats};
pub use error::TsdbError;
pub use head::GcStats;
pub use metrics::TsdbMetrics;
pub use replay::ReplayStats;
pub use stats::{HeadStats, Stat, TsdbStats};
pub use trim::limit_malloc_arenas;
