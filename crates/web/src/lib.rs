//! Shared HTTP plumbing: the Prometheus API v1 response envelope and error types (mapped to
//! HTTP status codes here and nowhere else), lifecycle endpoints helpers, and the HTTP client
//! configuration used by scraping, remote write and the notifier (basic auth, authorization,
//! TLS), and the text-format writer the roles render their own `/metrics` with.
//!
//! This crate never knows about storage, scraping or PromQL; roles plug their handlers in.

pub mod api;
pub mod client;
pub mod metrics;
