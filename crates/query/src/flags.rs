//! `vigil query` command-line flags, named like Thanos Query's where they mean the same.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

fn parse_dur(s: &str) -> Result<Duration, String> {
    model::parse_duration(s).map_err(|e| e.to_string())
}

/// Flags of `vigil query`.
#[derive(Debug, Clone, Args)]
pub struct QueryFlags {
    /// Address to listen on for the HTTP API and telemetry (Thanos Query's HTTP port, so it
    /// can run next to a server on 9090).
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:10902")]
    pub listen_address: SocketAddr,

    /// Base URL of a Prometheus-compatible server (vigil server, Prometheus, ...): remote read
    /// at `<URL>/api/v1/read`, HTTP API at `<URL>/api/v1/...`. Repeatable.
    #[arg(long = "endpoint", value_name = "URL")]
    pub endpoints: Vec<String>,

    /// YAML file of endpoint groups (`- targets: [URL, ...]`), re-read when it changes.
    #[arg(long = "endpoint.file", value_name = "FILE")]
    pub endpoint_files: Vec<PathBuf>,

    /// Deadline of one request to one endpoint.
    #[arg(long = "endpoint.timeout", default_value = "30s", value_parser = parse_dur)]
    pub endpoint_timeout: Duration,

    /// How often endpoints are health-checked (`/-/ready`) and endpoint files re-read.
    #[arg(long = "endpoint.health-interval", default_value = "5s", value_parser = parse_dur)]
    pub health_interval: Duration,

    /// Label naming the replica of a series (usually an external label); series equal once
    /// these labels are removed are merged. Repeatable.
    #[arg(long = "query.replica-label", value_name = "NAME")]
    pub replica_labels: Vec<String>,

    /// Answer with the data of the endpoints that did answer, plus warnings, when some fail;
    /// `--query.partial-response=false` makes any endpoint failure an error.
    #[arg(
        long = "query.partial-response",
        default_value_t = true,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub partial_response: bool,

    /// Answer a query from one replica alone when that replica's data is known complete for
    /// everything the query reads (vigil servers only; see `crates/query/src/pushdown.rs`);
    /// `=false` always merges every replica's samples.
    #[arg(
        long = "query.push-down",
        default_value_t = true,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub push_down: bool,

    /// How far back a sample is looked for when evaluating an instant vector selector.
    #[arg(long = "query.lookback-delta", default_value = "5m", value_parser = parse_dur)]
    pub lookback_delta: Duration,

    /// Maximum time a query may take.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = parse_dur)]
    pub query_timeout: Duration,

    /// Maximum number of samples one query may load into memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    pub query_max_samples: u64,

    /// Maximum number of queries evaluated at once.
    #[arg(long = "query.max-concurrency", default_value_t = 20)]
    pub query_max_concurrency: u32,

    /// Only log messages at or above this level (debug, info, warn, error).
    #[arg(long = "log.level", default_value = "info")]
    pub log_level: String,

    /// Log format: logfmt or json.
    #[arg(long = "log.format", default_value = "logfmt")]
    pub log_format: String,
}

impl QueryFlags {
    /// Flags for tests and embedding: listen on a free loopback port, given endpoints.
    pub fn for_endpoints(endpoints: Vec<String>, replica_labels: Vec<String>) -> Self {
        QueryFlags {
            listen_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            endpoints,
            endpoint_files: vec![],
            endpoint_timeout: Duration::from_secs(30),
            health_interval: Duration::from_secs(5),
            replica_labels,
            partial_response: true,
            push_down: true,
            lookback_delta: Duration::from_secs(300),
            query_timeout: Duration::from_secs(120),
            query_max_samples: 50_000_000,
            query_max_concurrency: 20,
            log_level: "info".into(),
            log_format: "logfmt".into(),
        }
    }
}
