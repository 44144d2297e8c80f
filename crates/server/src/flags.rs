//! `vigil server` command-line flags, named like Prometheus's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

fn parse_dur(s: &str) -> Result<Duration, String> {
    model::parse_duration(s).map_err(|e| e.to_string())
}

/// Flags of `vigil server`.
#[derive(Debug, Clone, Args)]
pub struct ServerFlags {
    /// Prometheus configuration file path.
    #[arg(long = "config.file", default_value = "prometheus.yml")]
    pub config_file: PathBuf,

    /// Address to listen on for the UI, API and telemetry.
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:9090")]
    pub listen_address: SocketAddr,

    /// The URL under which Vigil is externally reachable.
    #[arg(long = "web.external-url", default_value = "")]
    pub external_url: String,

    /// Prefix for the internal routes of web endpoints. Defaults to the path of
    /// --web.external-url.
    #[arg(long = "web.route-prefix", default_value = "")]
    pub route_prefix: String,

    /// Regex for CORS origin. It is fully anchored. Example: 'https?://(domain1|domain2)\.com'
    #[arg(long = "web.cors.origin", default_value = ".*")]
    pub cors_origin: String,

    /// Enable shutdown and reload via HTTP request.
    #[arg(long = "web.enable-lifecycle")]
    pub enable_lifecycle: bool,

    /// Enable the API endpoint accepting remote write requests (`/api/v1/write`).
    #[arg(long = "web.enable-remote-write-receiver")]
    pub enable_remote_write_receiver: bool,

    /// Maximum overall number of samples to return via the remote read interface, in a single
    /// query (0 means no limit; ignored for streamed responses).
    #[arg(
        long = "storage.remote.read-sample-limit",
        default_value_t = 50_000_000
    )]
    pub remote_read_sample_limit: usize,

    /// Maximum number of concurrent remote read calls (0 means no limit).
    #[arg(long = "storage.remote.read-concurrent-limit", default_value_t = 10)]
    pub remote_read_concurrent_limit: usize,

    /// Maximum number of bytes in a single frame for streaming remote read responses.
    #[arg(
        long = "storage.remote.read-max-bytes-in-frame",
        default_value_t = 1_048_576
    )]
    pub remote_read_max_bytes_in_frame: usize,

    /// Base path for metrics storage.
    #[arg(long = "storage.tsdb.path", default_value = "data/")]
    pub tsdb_path: PathBuf,

    /// How long to retain samples in storage (0 means the default, 15d).
    #[arg(long = "storage.tsdb.retention.time", value_parser = parse_dur)]
    pub retention_time: Option<Duration>,

    /// Maximum number of bytes that can be stored for blocks (units: B, KB, MB, GB, TB, PB,
    /// EB; base 2). Blocks are deleted oldest first beyond it.
    #[arg(long = "storage.tsdb.retention.size", value_parser = model::parse_byte_size)]
    pub retention_size: Option<u64>,

    /// Enable API endpoints for admin control actions (snapshot, delete_series,
    /// clean_tombstones).
    #[arg(long = "web.enable-admin-api")]
    pub enable_admin_api: bool,

    /// Minimum duration of a data block before being persisted.
    #[arg(long = "storage.tsdb.min-block-duration", default_value = "2h", value_parser = parse_dur, hide = true)]
    pub min_block_duration: Duration,

    /// Maximum duration compacted blocks may span.
    #[arg(long = "storage.tsdb.max-block-duration", value_parser = parse_dur, hide = true)]
    pub max_block_duration: Option<Duration>,

    /// Size of a WAL segment file.
    #[arg(long = "storage.tsdb.wal-segment-size", default_value = "128MB", value_parser = model::parse_byte_size, hide = true)]
    pub wal_segment_size: u64,

    /// Do not create a lockfile in the data directory.
    #[arg(long = "storage.tsdb.no-lockfile")]
    pub no_lockfile: bool,

    /// Compress the WAL with snappy (the default, as in Prometheus 2.42).
    #[arg(
        long = "storage.tsdb.wal-compression",
        overrides_with = "no_wal_compression"
    )]
    pub wal_compression: bool,

    /// Do not compress the WAL.
    #[arg(
        long = "no-storage.tsdb.wal-compression",
        overrides_with = "wal_compression"
    )]
    pub no_wal_compression: bool,

    /// Run in agent mode: scrape, WAL and remote write only; no local queries, no rules.
    #[arg(long = "agent")]
    pub agent: bool,

    /// Comma-separated feature names to enable. `agent` is the same as `--agent` (Prometheus
    /// 2.x's spelling); other names are accepted and ignored with a warning.
    #[arg(long = "enable-feature", value_delimiter = ',')]
    pub enable_feature: Vec<String>,

    /// Base path for the agent's data (agent mode only).
    #[arg(long = "storage.agent.path", default_value = "data-agent/")]
    pub agent_path: PathBuf,

    /// How long the agent keeps data it has sent (agent mode only; default 4h).
    #[arg(long = "storage.agent.retention.max-time", value_parser = parse_dur)]
    pub agent_retention_max: Option<Duration>,

    /// The maximum lookback duration for retrieving metrics during expression evaluations.
    #[arg(long = "query.lookback-delta", default_value = "5m", value_parser = parse_dur)]
    pub lookback_delta: Duration,

    /// Maximum time a query may take before being aborted.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = parse_dur)]
    pub query_timeout: Duration,

    /// Maximum number of samples a single query can load into memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    pub query_max_samples: u64,

    /// Maximum number of queries executed concurrently.
    #[arg(long = "query.max-concurrency", default_value_t = 20)]
    pub query_max_concurrency: u32,

    /// How often file-based service discovery checks its files for changes.
    #[arg(long = "scrape.discovery-poll-interval", default_value = "5s", value_parser = parse_dur, hide = true)]
    pub discovery_poll_interval: Duration,

    /// Max time to tolerate Prometheus outage for restoring "for" state of alert.
    #[arg(long = "rules.alert.for-outage-tolerance", default_value = "1h", value_parser = parse_dur)]
    pub for_outage_tolerance: Duration,

    /// Minimum duration between alert and restored "for" state. This is maintained only for
    /// alerts with configured "for" time greater than grace period.
    #[arg(long = "rules.alert.for-grace-period", default_value = "10m", value_parser = parse_dur)]
    pub for_grace_period: Duration,

    /// Minimum amount of time to wait before resending an alert to Alertmanager.
    #[arg(long = "rules.alert.resend-delay", default_value = "1m", value_parser = parse_dur)]
    pub resend_delay: Duration,

    /// The capacity of the queue for pending Alertmanager notifications.
    #[arg(
        long = "alertmanager.notification-queue-capacity",
        default_value_t = 10_000
    )]
    pub notification_queue_capacity: usize,

    /// Only log messages with the given severity or above: debug, info, warn, error.
    #[arg(long = "log.level", default_value = "info", value_parser = ["debug", "info", "warn", "error"])]
    pub log_level: String,

    /// Output format of log messages: logfmt, json.
    #[arg(long = "log.format", default_value = "logfmt", value_parser = ["logfmt", "json"])]
    pub log_format: String,
}

impl ServerFlags {
    /// Whether `--enable-feature` lists `name`.
    pub fn has_feature(&self, name: &str) -> bool {
        self.enable_feature.iter().any(|f| f.trim() == name)
    }

    /// Whether the server runs as an agent (`--agent` or `--enable-feature=agent`).
    pub fn agent_mode(&self) -> bool {
        self.agent || self.enable_feature.iter().any(|f| f.trim() == "agent")
    }

    /// The data directory: `--storage.agent.path` in agent mode, else `--storage.tsdb.path`.
    pub fn data_path(&self) -> &std::path::Path {
        if self.agent_mode() {
            &self.agent_path
        } else {
            &self.tsdb_path
        }
    }

    /// The effective retention: Prometheus's default is 15d when neither time nor size is set;
    /// an agent keeps 4h unless told otherwise.
    pub fn retention(&self) -> Duration {
        if self.agent_mode() {
            return self
                .agent_retention_max
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(4 * 3600));
        }
        match self.retention_time {
            Some(d) if !d.is_zero() => d,
            // compat: with only a size limit there is no time limit.
            _ if self.retention_size.is_some_and(|s| s > 0) => {
                Duration::from_secs(100 * 365 * 24 * 3600)
            }
            _ => Duration::from_secs(15 * 24 * 3600),
        }
    }

    /// The effective max block duration: the flag, or 10% of the retention capped at 31d.
    pub fn max_block_duration(&self) -> Duration {
        self.max_block_duration
            .unwrap_or_else(|| (self.retention() / 10).min(Duration::from_secs(31 * 24 * 3600)))
    }

    /// The route prefix as Prometheus derives it: `--web.route-prefix`, else the path of
    /// `--web.external-url`, without a trailing slash; `/` when empty.
    pub fn route_prefix(&self) -> String {
        let raw = if self.route_prefix.is_empty() {
            // The path of the external URL: what follows scheme://host[:port].
            let u = self.external_url.as_str();
            let after_scheme = u.split_once("://").map_or(u, |(_, rest)| rest);
            after_scheme.find('/').map_or("", |i| &after_scheme[i..])
        } else {
            self.route_prefix.as_str()
        };
        let p = raw.trim_end_matches('/');
        if p.is_empty() {
            "/".to_string()
        } else if p.starts_with('/') {
            p.to_string()
        } else {
            format!("/{p}")
        }
    }

    /// Flag names and values as `/api/v1/status/flags` shows them.
    pub fn to_map(&self) -> std::collections::BTreeMap<String, String> {
        let d = model::format_duration;
        let mut m = std::collections::BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put("config.file", self.config_file.display().to_string());
        put("web.listen-address", self.listen_address.to_string());
        put("web.external-url", self.external_url.clone());
        put("web.route-prefix", self.route_prefix());
        put("web.cors.origin", self.cors_origin.clone());
        put("web.enable-lifecycle", self.enable_lifecycle.to_string());
        put(
            "web.enable-remote-write-receiver",
            self.enable_remote_write_receiver.to_string(),
        );
        put(
            "storage.remote.read-sample-limit",
            self.remote_read_sample_limit.to_string(),
        );
        put(
            "storage.remote.read-concurrent-limit",
            self.remote_read_concurrent_limit.to_string(),
        );
        put(
            "storage.remote.read-max-bytes-in-frame",
            self.remote_read_max_bytes_in_frame.to_string(),
        );
        put("storage.tsdb.path", self.tsdb_path.display().to_string());
        // compat: Prometheus shows the flag as given ("0s" when unset), not the effective value.
        let given = d(self.retention_time.unwrap_or(Duration::ZERO));
        put("storage.tsdb.retention.time", given.clone());
        put("storage.tsdb.retention", given);
        put(
            "storage.tsdb.min-block-duration",
            d(self.min_block_duration),
        );
        put(
            "storage.tsdb.max-block-duration",
            d(self.max_block_duration()),
        );
        put(
            "storage.tsdb.retention.size",
            format!("{}B", self.retention_size.unwrap_or(0)),
        );
        put("web.enable-admin-api", self.enable_admin_api.to_string());
        // compat: Prometheus 2.42 lists --storage.tsdb.no-lockfile under this name.
        put("storage.tsdb.use-lockfile", self.no_lockfile.to_string());
        put(
            "storage.tsdb.wal-compression",
            (!self.no_wal_compression).to_string(),
        );
        if self.agent_mode() {
            put("agent", "true".to_string());
        }
        put("enable-feature", self.enable_feature.join(","));
        put("storage.agent.path", self.agent_path.display().to_string());
        put("query.lookback-delta", d(self.lookback_delta));
        put("query.timeout", d(self.query_timeout));
        put("query.max-samples", self.query_max_samples.to_string());
        put(
            "query.max-concurrency",
            self.query_max_concurrency.to_string(),
        );
        put(
            "rules.alert.for-outage-tolerance",
            d(self.for_outage_tolerance),
        );
        put("rules.alert.for-grace-period", d(self.for_grace_period));
        put("rules.alert.resend-delay", d(self.resend_delay));
        put(
            "alertmanager.notification-queue-capacity",
            self.notification_queue_capacity.to_string(),
        );
        put("log.level", self.log_level.clone());
        put("log.format", self.log_format.clone());
        // Prometheus 2.42 flags vigil has no use for, with the values 2.42 shows by default, so
        // tools that read /api/v1/status/flags find every key.
        for (k, v) in [
            ("alertmanager.timeout", ""),
            ("scrape.adjust-timestamps", "true"),
            ("scrape.discovery-reload-interval", "5s"),
            ("scrape.timestamp-tolerance", "2ms"),
            ("storage.agent.retention.max-time", "0s"),
            ("storage.agent.retention.min-time", "0s"),
            ("storage.agent.use-lockfile", "false"),
            ("storage.agent.wal-compression", "true"),
            ("storage.agent.wal-segment-size", "0B"),
            ("storage.agent.wal-truncate-frequency", "0s"),
            ("storage.remote.flush-deadline", "1m"),
            ("storage.tsdb.allow-overlapping-blocks", "true"),
            ("storage.tsdb.head-chunks-write-queue-size", "0"),
            ("storage.tsdb.max-block-chunk-segment-size", "0B"),
            ("storage.tsdb.wal-segment-size", "0B"),
            ("web.config.file", ""),
            ("web.console.libraries", "console_libraries"),
            ("web.console.templates", "consoles"),
            ("web.local-assets", ""),
            ("web.max-connections", "512"),
            (
                "web.page-title",
                "Prometheus Time Series Collection and Processing Server",
            ),
            ("web.read-timeout", "5m"),
            ("web.user-assets", ""),
        ] {
            m.entry(k.to_string()).or_insert_with(|| v.to_string());
        }
        m
    }
}

impl ServerFlags {
    /// Default flags (as if none were given) with the three settings an embedding needs.
    pub fn for_embedding(
        config_file: PathBuf,
        tsdb_path: PathBuf,
        listen_address: SocketAddr,
    ) -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            flags: ServerFlags,
        }
        let mut f = <Wrapper as clap::Parser>::parse_from(["vigil"]).flags;
        f.config_file = config_file;
        f.tsdb_path = tsdb_path;
        f.listen_address = listen_address;
        f.enable_lifecycle = true;
        f
    }
}
