//! The `vigil alertmanager` role: loads alertmanager.yml, receives alerts over API v2, groups
//! them by route, inhibits and silences them, and notifies receivers, deduplicating against a
//! notification log. Silences and the notification log are snapshotted under `--storage.path`
//! and expose `encode`/`merge` so a gossip cluster can replicate them.
//!
//! Never used by the other roles (`server`, `query`); never gossips by itself.

pub mod alert;
pub mod config;
pub mod matcher;
pub mod route;
pub mod time;
pub mod timeinterval;
