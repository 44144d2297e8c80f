//! The `vigil alertmanager` role as an embeddable runtime: `App::new` → `run` (until the
//! shutdown token fires), `reload` at any time. The binary only adds flags and signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::core::Core;
use crate::flags::AlertmanagerFlags;
use crate::metrics::{Metrics, Out, load, per_integration};
use crate::nflog::{Nflog, NflogError};
use crate::notify::{NotifyError, Shared};
use crate::silence::{SilenceError, Silences};
use crate::time::{Clock, Time};
use crate::{api, api_v1};

/// Why the alertmanager could not start, reload or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AlertmanagerError {
    #[error("loading configuration file {path}")]
    Config {
        path: String,
        #[source]
        source: ConfigError,
    },
    #[error("set up receivers")]
    Notify(#[from] NotifyError),
    #[error("create storage directory {path}")]
    Storage {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("load silences")]
    Silences(#[from] SilenceError),
    #[error("load notification log")]
    Nflog(#[from] NflogError),
    #[error("start cluster")]
    Cluster(#[from] crate::gossip::GossipError),
    #[error("invalid --web.external-url {0:?}")]
    ExternalUrl(String),
    #[error("listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("serve HTTP")]
    Serve(#[source] std::io::Error),
}

struct Inner {
    flags: AlertmanagerFlags,
    core: Core,
    shutdown: CancellationToken,
    listener: parking_lot::Mutex<Option<tokio::net::TcpListener>>,
    local_addr: SocketAddr,
    start_time: Time,
    external_url: String,
    route_prefix: String,
    ready: AtomicBool,
    reload_lock: parking_lot::Mutex<()>,
    cluster: Option<cluster::Peer>,
    /// The TLS transport's counters, in `--cluster.tls-config` mode.
    cluster_tls: Option<Arc<cluster::TlsTransport>>,
    cluster_token: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cluster_token.cancel();
    }
}

/// A running (or ready to run) alertmanager. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The external URL without a trailing slash and the route prefix (`/` or `/path`).
fn external_url(
    flags: &AlertmanagerFlags,
    addr: SocketAddr,
) -> Result<(String, String), AlertmanagerError> {
    let raw = if flags.external_url.is_empty() {
        format!("http://{}:{}/", hostname(), addr.port())
    } else {
        flags.external_url.clone()
    };
    let url = reqwest::Url::parse(&raw).map_err(|_| AlertmanagerError::ExternalUrl(raw.clone()))?;
    let ext = raw.trim_end_matches('/').to_string();
    let prefix = if flags.route_prefix.is_empty() {
        url.path().to_string()
    } else {
        flags.route_prefix.clone()
    };
    let prefix = format!("/{}", prefix.trim_matches('/'));
    Ok((ext, prefix))
}

impl App {
    /// Loads the configuration and the silences/nflog snapshots and binds the listener.
    pub async fn new(
        flags: AlertmanagerFlags,
        shutdown: CancellationToken,
    ) -> Result<App, AlertmanagerError> {
        Self::with_clock(flags, shutdown, Clock::System).await
    }

    /// Like [`App::new`] with a given clock for silences and the nflog.
    pub async fn with_clock(
        flags: AlertmanagerFlags,
        shutdown: CancellationToken,
        clock: Clock,
    ) -> Result<App, AlertmanagerError> {
        let config =
            Config::load_file(&flags.config_file).map_err(|source| AlertmanagerError::Config {
                path: flags.config_file.display().to_string(),
                source,
            })?;
        tracing::info!(file = %flags.config_file.display(), "Loading configuration file");
        std::fs::create_dir_all(&flags.storage_path).map_err(|source| {
            AlertmanagerError::Storage {
                path: flags.storage_path.display().to_string(),
                source,
            }
        })?;
        let silences = Arc::new(Silences::new(clock.clone(), flags.retention));
        let n = silences.load(&flags.storage_path.join("silences"))?;
        let nflog = Arc::new(Nflog::new(clock.clone(), flags.retention));
        let m = nflog.load(&flags.storage_path.join("nflog"))?;
        tracing::debug!(silences = n, nflog = m, "loaded snapshots");
        // Its own token: on shutdown the peer first leaves the cluster, then stops.
        let cluster_token = CancellationToken::new();
        let gossip =
            crate::gossip::start(&flags, &silences, &nflog, &clock, cluster_token.clone()).await?;
        let (cluster, inflight, cluster_tls) = match gossip {
            Some(g) => (Some(g.peer), Some(g.inflight), g.tls),
            None => (None, None, None),
        };
        let peer_wait: crate::notify::PeerWait = match &cluster {
            Some(c) => {
                let (c, timeout) = (c.clone(), flags.cluster_peer_timeout);
                Arc::new(move || timeout * c.position() as u32)
            }
            None => Arc::new(|| Duration::ZERO),
        };

        let bind = flags.bind_address();
        let listener = tokio::net::TcpListener::bind(&bind)
            .await
            .map_err(|source| AlertmanagerError::Listen {
                addr: bind.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(AlertmanagerError::Serve)?;
        let (external_url, route_prefix) = external_url(&flags, local_addr)?;

        let shared = Shared {
            silences,
            nflog,
            metrics: Arc::new(Metrics::new()),
            clock: clock.clone(),
            external_url: external_url.clone(),
            peer_wait,
            cluster: cluster.clone(),
            inflight,
            min_timeout: flags.notify_min_timeout,
            initial_backoff: flags.notify_initial_backoff,
        };
        let core = Core::new(
            Arc::new(config),
            shared,
            shutdown.child_token(),
            flags.dispatch_maintenance_interval,
        )?;
        core.metrics
            .reload_success_seconds
            .store(clock.now().unix_seconds().max(0) as u64, Ordering::Relaxed);
        Ok(App {
            inner: Arc::new(Inner {
                start_time: clock.now(),
                flags,
                core,
                shutdown,
                listener: parking_lot::Mutex::new(Some(listener)),
                local_addr,
                external_url,
                route_prefix,
                ready: AtomicBool::new(false),
                reload_lock: parking_lot::Mutex::new(()),
                cluster,
                cluster_tls,
                cluster_token,
            }),
        })
    }

    /// The address the HTTP server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The URL notifications link to.
    pub fn external_url(&self) -> &str {
        &self.inner.external_url
    }

    pub fn core(&self) -> &Core {
        &self.inner.core
    }

    /// The gossip peer, when clustering is on.
    pub fn cluster(&self) -> Option<&cluster::Peer> {
        self.inner.cluster.as_ref()
    }

    pub fn flags(&self) -> &AlertmanagerFlags {
        &self.inner.flags
    }

    pub fn start_time(&self) -> Time {
        self.inner.start_time
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    fn snapshot_paths(&self) -> (PathBuf, PathBuf) {
        let p = &self.inner.flags.storage_path;
        (p.join("silences"), p.join("nflog"))
    }

    /// Writes the silences and nflog snapshots now.
    pub fn snapshot(&self) {
        let (s, n) = self.snapshot_paths();
        let core = &self.inner.core;
        match core.silences.snapshot(&s) {
            Ok(size) => core
                .metrics
                .silences_snapshot_size
                .store(size as u64, Ordering::Relaxed),
            Err(e) => tracing::error!("{e}: {}", e.source_string()),
        }
        match core.nflog.snapshot(&n) {
            Ok(size) => core
                .metrics
                .nflog_snapshot_size
                .store(size as u64, Ordering::Relaxed),
            Err(e) => tracing::error!("{e}: {}", e.source_string()),
        }
    }

    /// Serves HTTP and runs maintenance until the shutdown token is cancelled; then stops the
    /// dispatcher and writes the snapshots.
    pub async fn run(&self) -> Result<(), AlertmanagerError> {
        let Some(listener) = self.inner.listener.lock().take() else {
            return Err(AlertmanagerError::Serve(std::io::Error::other(
                "alertmanager already running",
            )));
        };
        let maint = tokio::spawn(self.clone().maintenance());
        tracing::info!(address = %self.inner.local_addr, "Listening");
        self.inner.ready.store(true, Ordering::SeqCst);
        let token = self.inner.shutdown.clone();
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
        self.inner.ready.store(false, Ordering::SeqCst);
        self.inner.shutdown.cancel();
        maint.abort();
        self.inner.core.stop();
        if let Some(c) = &self.inner.cluster {
            c.leave().await;
        }
        self.inner.cluster_token.cancel();
        self.snapshot();
        tracing::info!("See you next time!");
        served.map_err(AlertmanagerError::Serve)
    }

    async fn maintenance(self) {
        let gc = self.inner.flags.gc_interval.max(Duration::from_millis(10));
        let snap = self
            .inner
            .flags
            .data_maintenance_interval
            .max(Duration::from_millis(10));
        let mut gc_tick = tokio::time::interval_at(tokio::time::Instant::now() + gc, gc);
        let mut snap_tick = tokio::time::interval_at(tokio::time::Instant::now() + snap, snap);
        loop {
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = gc_tick.tick() => self.inner.core.gc(),
                _ = snap_tick.tick() => {
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.snapshot()).await;
                }
            }
        }
    }

    /// The HTTP routes, under the route prefix.
    pub fn router(&self) -> Router {
        let v2 = Router::new()
            .route(
                "/alerts",
                get(api::get_alerts)
                    .post(api::post_alerts)
                    .fallback(api::method_not_allowed("GET,POST")),
            )
            .route(
                "/alerts/groups",
                get(api::get_alert_groups).fallback(api::method_not_allowed("GET")),
            )
            .route(
                "/silences",
                get(api::get_silences)
                    .post(api::post_silences)
                    .fallback(api::method_not_allowed("GET,POST")),
            )
            .route(
                "/silence/{id}",
                get(api::get_silence)
                    .delete(api::delete_silence)
                    .fallback(api::method_not_allowed("GET,DELETE")),
            )
            .route(
                "/receivers",
                get(api::get_receivers).fallback(api::method_not_allowed("GET")),
            )
            .route(
                "/status",
                get(api::get_status).fallback(api::method_not_allowed("GET")),
            )
            .fallback(api::not_found);
        let v1 = Router::new()
            .route(
                "/alerts",
                get(api_v1::get_alerts)
                    .post(api_v1::post_alerts)
                    .options(api_v1::options),
            )
            .route(
                "/silences",
                get(api_v1::get_silences)
                    .post(api_v1::post_silences)
                    .options(api_v1::options),
            )
            .route(
                "/silence/{id}",
                get(api_v1::get_silence)
                    .delete(api_v1::delete_silence)
                    .options(api_v1::options),
            )
            .route(
                "/receivers",
                get(api_v1::get_receivers).options(api_v1::options),
            )
            .route("/status", get(api_v1::get_status).options(api_v1::options));
        let routes = Router::new()
            .nest("/api/v1", v1)
            .nest("/api/v2", v2)
            .route("/metrics", get(api::metrics))
            .route("/-/healthy", get(api::healthy).head(api::healthy))
            .route("/-/ready", get(api::ready).head(api::ready))
            .route("/-/reload", post(api::reload))
            .with_state(self.clone());
        if self.inner.route_prefix == "/" {
            routes
        } else {
            Router::new().nest(&self.inner.route_prefix, routes)
        }
    }

    /// Re-reads the configuration file; a bad file keeps the running configuration.
    pub fn reload(&self) -> Result<(), AlertmanagerError> {
        let _serialised = self.inner.reload_lock.lock();
        let m = &self.inner.core.metrics;
        let res = Config::load_file(&self.inner.flags.config_file)
            .map_err(|source| AlertmanagerError::Config {
                path: self.inner.flags.config_file.display().to_string(),
                source,
            })
            .and_then(|cfg| {
                self.inner
                    .core
                    .apply_config(Arc::new(cfg))
                    .map_err(Into::into)
            });
        match &res {
            Ok(()) => {
                m.reload_ok.store(1, Ordering::Relaxed);
                m.reload_success_seconds.store(
                    self.inner.core.clock.now().unix_seconds().max(0) as u64,
                    Ordering::Relaxed,
                );
                tracing::info!(file = %self.inner.flags.config_file.display(), "Completed loading of configuration file");
            }
            Err(e) => {
                m.reload_ok.store(0, Ordering::Relaxed);
                tracing::error!(
                    "error reloading configuration, keeping the old one: {e}: {}",
                    e.source_string()
                );
            }
        }
        res
    }

    /// `/metrics` in text format.
    pub fn render_metrics(&self) -> String {
        let core = &self.inner.core;
        let m = &core.metrics;
        let now = core.clock.now();
        let rt = core.runtime();
        let mut o = Out::default();
        o.family("alertmanager_build_info", "gauge", "A metric with a constant '1' value labeled by version, revision, branch, and goversion from which alertmanager was built.")
            .sample("alertmanager_build_info", &[("branch", "main"), ("goversion", "rust"), ("revision", "unknown"), ("version", env!("CARGO_PKG_VERSION"))], 1.0);
        let (mut active, mut suppressed) = (0u64, 0u64);
        for a in core.alerts() {
            if a.resolved_at(now) {
                continue;
            }
            if core.silences.mutes(&a.labels).is_empty()
                && rt.inhibitor.mutes(&a.labels, now).is_none()
            {
                active += 1;
            } else {
                suppressed += 1;
            }
        }
        o.family("alertmanager_alerts", "gauge", "How many alerts by state.");
        o.sample("alertmanager_alerts", &[("state", "active")], active as f64);
        o.sample(
            "alertmanager_alerts",
            &[("state", "suppressed")],
            suppressed as f64,
        );
        o.sample("alertmanager_alerts", &[("state", "unprocessed")], 0.0);
        // Every alert the store still holds, resolved ones too, as the marker keeps them.
        let (mut m_active, mut m_suppressed) = (0u64, 0u64);
        for a in core.alerts() {
            if core.silences.mutes(&a.labels).is_empty()
                && rt.inhibitor.mutes(&a.labels, now).is_none()
            {
                m_active += 1;
            } else {
                m_suppressed += 1;
            }
        }
        o.family(
            "alertmanager_marked_alerts",
            "gauge",
            "How many alerts by state are currently marked in the Alertmanager regardless of their expiry.",
        );
        o.sample(
            "alertmanager_marked_alerts",
            &[("state", "active")],
            m_active as f64,
        );
        o.sample(
            "alertmanager_marked_alerts",
            &[("state", "suppressed")],
            m_suppressed as f64,
        );
        o.sample(
            "alertmanager_marked_alerts",
            &[("state", "unprocessed")],
            0.0,
        );
        o.family(
            "alertmanager_alerts_received_total",
            "counter",
            "The total number of received alerts.",
        );
        for (status, version, v) in [
            ("firing", "v1", &m.alerts_received_v1_firing),
            ("firing", "v2", &m.alerts_received_firing),
            ("resolved", "v1", &m.alerts_received_v1_resolved),
            ("resolved", "v2", &m.alerts_received_resolved),
        ] {
            o.sample(
                "alertmanager_alerts_received_total",
                &[("status", status), ("version", version)],
                load(v),
            );
        }
        o.family(
            "alertmanager_alerts_invalid_total",
            "counter",
            "The total number of received alerts that were invalid.",
        );
        for (version, v) in [("v1", &m.alerts_invalid_v1), ("v2", &m.alerts_invalid)] {
            o.sample(
                "alertmanager_alerts_invalid_total",
                &[("version", version)],
                load(v),
            );
        }
        o.single(
            "alertmanager_cluster_enabled",
            "gauge",
            "Indicates whether the clustering is enabled or not.",
            if self.inner.cluster.is_some() {
                1.0
            } else {
                0.0
            },
        );
        if let Some(c) = &self.inner.cluster {
            cluster_metrics(&mut o, c);
            if let Some(t) = &self.inner.cluster_tls {
                tls_transport_metrics(&mut o, t.stats());
            }
            o.single(
                "alertmanager_cluster_duplicates_avoided_total",
                "counter",
                "Notifications not sent because a peer sent them first (its nflog entry arrived while this node waited its turn).",
                load(&m.peer_dedup),
            );
        }
        o.single(
            "alertmanager_config_hash",
            "gauge",
            "Hash of the currently loaded alertmanager configuration.",
            (xxhash_rust::xxh64::xxh64(rt.config.original.as_bytes(), 0) >> 11) as f64,
        );
        o.single(
            "alertmanager_config_last_reload_successful",
            "gauge",
            "Whether the last configuration reload attempt was successful.",
            load(&m.reload_ok),
        );
        o.single(
            "alertmanager_config_last_reload_success_timestamp_seconds",
            "gauge",
            "Timestamp of the last successful configuration reload.",
            load(&m.reload_success_seconds),
        );
        o.single(
            "alertmanager_dispatcher_aggregation_groups",
            "gauge",
            "Number of active aggregation groups",
            rt.dispatcher.len() as f64,
        );
        per_integration(
            &mut o,
            "alertmanager_notifications_total",
            "counter",
            "The total number of attempted notifications.",
            m,
            |c| load(&c.notifications),
        );
        per_integration(
            &mut o,
            "alertmanager_notifications_failed_total",
            "counter",
            "The total number of failed notifications.",
            m,
            |c| load(&c.failed),
        );
        per_integration(
            &mut o,
            "alertmanager_notification_requests_total",
            "counter",
            "The total number of attempted notification requests.",
            m,
            |c| load(&c.requests),
        );
        per_integration(
            &mut o,
            "alertmanager_notification_requests_failed_total",
            "counter",
            "The total number of failed notification requests.",
            m,
            |c| load(&c.requests_failed),
        );
        o.family(
            "alertmanager_notification_latency_seconds",
            "histogram",
            "The latency of notifications in seconds.",
        );
        for (n, c) in crate::metrics::INTEGRATIONS.iter().zip(&m.integrations) {
            for (b, count) in crate::metrics::LATENCY_BUCKETS
                .iter()
                .zip(&c.latency_buckets)
            {
                o.sample(
                    "alertmanager_notification_latency_seconds_bucket",
                    &[("integration", n), ("le", &b.to_string())],
                    load(count),
                );
            }
            o.sample(
                "alertmanager_notification_latency_seconds_bucket",
                &[("integration", n), ("le", "+Inf")],
                load(&c.latency_count),
            );
            o.sample(
                "alertmanager_notification_latency_seconds_sum",
                &[("integration", n)],
                load(&c.latency_us_sum) / 1e6,
            );
            o.sample(
                "alertmanager_notification_latency_seconds_count",
                &[("integration", n)],
                load(&c.latency_count),
            );
        }
        o.single(
            "alertmanager_nflog_query_errors_total",
            "counter",
            "Number notification log received queries that failed.",
            load(&m.nflog_query_errors),
        );
        o.single(
            "alertmanager_silences_queries_total",
            "counter",
            "How many silence queries were received.",
            load(&m.silences_queries),
        );
        o.single(
            "alertmanager_silences_query_errors_total",
            "counter",
            "How many silence received queries did not succeed.",
            0.0,
        );
        o.family(
            "alertmanager_dispatcher_alert_processing_duration_seconds",
            "summary",
            "Summary of latencies for the processing of alerts.",
        );
        o.sample(
            "alertmanager_dispatcher_alert_processing_duration_seconds_sum",
            &[],
            load(&m.dispatch_ns) / 1e9,
        );
        o.sample(
            "alertmanager_dispatcher_alert_processing_duration_seconds_count",
            &[],
            load(&m.dispatch_count),
        );
        let cfg = &rt.config;
        o.single(
            "alertmanager_receivers",
            "gauge",
            "Number of configured receivers.",
            cfg.receivers.len() as f64,
        );
        o.single(
            "alertmanager_integrations",
            "gauge",
            "Number of configured integrations.",
            cfg.receivers
                .iter()
                .map(|r| r.webhooks.len() + r.slack.len() + r.email.len() + r.pagerduty.len())
                .sum::<usize>() as f64,
        );
        o.single(
            "alertmanager_nflog_queries_total",
            "counter",
            "Number of notification log queries were received.",
            load(&m.nflog_queries),
        );
        o.single(
            "alertmanager_nflog_snapshot_size_bytes",
            "gauge",
            "Size of the last notification log snapshot in bytes.",
            load(&m.nflog_snapshot_size),
        );
        o.single(
            "alertmanager_nflog_entries",
            "gauge",
            "Number of entries in the notification log.",
            core.nflog.len() as f64,
        );
        let propagated = |key: &str| {
            self.inner.cluster.as_ref().map_or(0.0, |c| {
                c.stats().propagated.lock().get(key).copied().unwrap_or(0) as f64
            })
        };
        o.single(
            "alertmanager_nflog_gossip_messages_propagated_total",
            "counter",
            "Number of received gossip messages that have been further gossiped.",
            propagated("nfl"),
        );
        o.single(
            "alertmanager_silences_gossip_messages_propagated_total",
            "counter",
            "Number of received gossip messages that have been further gossiped.",
            propagated("sil"),
        );
        o.single(
            "alertmanager_nflog_gc_deleted_total",
            "counter",
            "Number of notification log entries removed by garbage collection.",
            load(&m.nflog_gc),
        );
        o.family(
            "alertmanager_silences",
            "gauge",
            "How many silences by state.",
        );
        for (st, n) in core.silences.counts() {
            o.sample("alertmanager_silences", &[("state", st.as_str())], n as f64);
        }
        o.single(
            "alertmanager_silences_snapshot_size_bytes",
            "gauge",
            "Size of the last silence snapshot in bytes.",
            load(&m.silences_snapshot_size),
        );
        o.single(
            "alertmanager_silences_gc_deleted_total",
            "counter",
            "Number of silences removed by garbage collection.",
            load(&m.silences_gc),
        );
        o.finish()
    }
}

/// Alertmanager's `alertmanager_cluster_*`, `alertmanager_peer_position` and oversized gossip
/// families (names, labels, types and help as Alertmanager 0.25 exports them), plus vigil's
/// dropped-message and packet byte counters.
fn cluster_metrics(o: &mut Out, c: &cluster::Peer) {
    let st = c.stats();
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    let name = "alertmanager_cluster_alive_messages_total";
    o.family(name, "counter", "Total number of received alive messages.");
    for (peer, n) in st.alive_by_peer.lock().iter() {
        o.sample(name, &[("peer", peer)], *n as f64);
    }
    o.single(
        "alertmanager_cluster_failed_peers",
        "gauge",
        "Number indicating the current number of failed peers in the cluster.",
        c.failed_peers() as f64,
    );
    o.single(
        "alertmanager_cluster_health_score",
        "gauge",
        "Health score of the cluster. Lower values are better and zero means 'totally healthy'.",
        c.health_score() as f64,
    );
    o.single(
        "alertmanager_cluster_members",
        "gauge",
        "Number indicating current number of members in cluster.",
        c.cluster_size() as f64,
    );
    o.single(
        "alertmanager_cluster_messages_dropped_total",
        "counter",
        "Total number of malformed or rejected cluster messages dropped.",
        l(&st.dropped),
    );
    o.single(
        "alertmanager_cluster_messages_pruned_total",
        "counter",
        "Total number of cluster messages pruned.",
        l(&st.pruned),
    );
    o.single(
        "alertmanager_cluster_messages_queued",
        "gauge",
        "Number of cluster messages which are queued.",
        c.queued() as f64,
    );
    let families = [
        (
            "alertmanager_cluster_messages_received_size_total",
            "Total size of cluster messages received.",
            [&st.full_state_received_bytes, &st.update_received_bytes],
        ),
        (
            "alertmanager_cluster_messages_received_total",
            "Total number of cluster messages received.",
            [&st.full_state_received, &st.update_received],
        ),
        (
            "alertmanager_cluster_messages_sent_size_total",
            "Total size of cluster messages sent.",
            [&st.full_state_sent_bytes, &st.update_sent_bytes],
        ),
        (
            "alertmanager_cluster_messages_sent_total",
            "Total number of cluster messages sent.",
            [&st.full_state_sent, &st.update_sent],
        ),
    ];
    for (name, help, [full, update]) in families {
        o.family(name, "counter", help);
        o.sample(name, &[("msg_type", "full_state")], l(full));
        o.sample(name, &[("msg_type", "update")], l(update));
    }
    o.single(
        "alertmanager_cluster_packet_bytes_received_total",
        "counter",
        "Total bytes of gossip packets received.",
        l(&st.packet_bytes_received),
    );
    o.single(
        "alertmanager_cluster_packet_bytes_sent_total",
        "counter",
        "Total bytes of gossip packets sent.",
        l(&st.packet_bytes_sent),
    );
    o.family(
        "alertmanager_cluster_peer_info",
        "gauge",
        "A metric with a constant '1' value labeled by peer name.",
    )
    .sample("alertmanager_cluster_peer_info", &[("peer", c.name())], 1.0);
    for (name, help, v) in [
        (
            "alertmanager_cluster_peers_joined_total",
            "A counter of the number of peers that have joined.",
            &st.peers_joined,
        ),
        (
            "alertmanager_cluster_peers_left_total",
            "A counter of the number of peers that have left.",
            &st.peers_left,
        ),
        (
            "alertmanager_cluster_peers_update_total",
            "A counter of the number of peers that have updated metadata.",
            &st.peers_updated,
        ),
    ] {
        o.single(name, "counter", help, l(v));
    }
    let name = "alertmanager_cluster_pings_seconds";
    o.family(
        name,
        "histogram",
        "Histogram of latencies for ping messages.",
    );
    for (peer, h) in st.pings.lock().iter() {
        histogram(o, name, ("peer", peer), &cluster::PING_BUCKETS, h);
    }
    for (name, help, v) in [
        (
            "alertmanager_cluster_reconnections_failed_total",
            "A counter of the number of failed cluster peer reconnection attempts.",
            &st.reconnections_failed,
        ),
        (
            "alertmanager_cluster_reconnections_total",
            "A counter of the number of cluster peer reconnections.",
            &st.reconnections,
        ),
        (
            "alertmanager_cluster_refresh_join_failed_total",
            "A counter of the number of failed cluster peer joined attempts via refresh.",
            &st.refresh_join_failed,
        ),
        (
            "alertmanager_cluster_refresh_join_total",
            "A counter of the number of cluster peer joined via refresh.",
            &st.refresh_join,
        ),
    ] {
        o.single(name, "counter", help, l(v));
    }
    let oversized = st.oversized.lock().clone();
    let keys = ["nfl", "sil"];
    let get = |k: &str| oversized.get(k).cloned().unwrap_or_default();
    let name = "alertmanager_oversize_gossip_message_duration_seconds";
    o.family(
        name,
        "histogram",
        "Duration of oversized gossip message requests.",
    );
    for k in keys {
        histogram(
            o,
            name,
            ("key", k),
            &cluster::DEFAULT_BUCKETS,
            &get(k).duration,
        );
    }
    for (name, help, f) in [
        (
            "alertmanager_oversized_gossip_message_dropped_total",
            "Number of oversized gossip messages that were dropped due to a full message queue.",
            (|x: &cluster::Oversized| x.dropped) as fn(&cluster::Oversized) -> u64,
        ),
        (
            "alertmanager_oversized_gossip_message_failure_total",
            "Number of oversized gossip message sends that failed.",
            |x: &cluster::Oversized| x.failed,
        ),
        (
            "alertmanager_oversized_gossip_message_sent_total",
            "Number of oversized gossip message sent.",
            |x: &cluster::Oversized| x.sent,
        ),
    ] {
        o.family(name, "counter", help);
        for k in keys {
            o.sample(name, &[("key", k)], f(&get(k)) as f64);
        }
    }
    o.single(
        "alertmanager_peer_position",
        "gauge",
        "Position the Alertmanager instance believes it's in. The position determines a peer's behavior in the cluster.",
        c.position() as f64,
    );
}

/// One labelled series of a histogram (`_bucket`, `_sum`, `_count`).
fn histogram(o: &mut Out, name: &str, label: (&str, &str), bounds: &[f64], h: &cluster::Histogram) {
    let bucket = format!("{name}_bucket");
    for (i, b) in bounds.iter().enumerate() {
        let le = b.to_string();
        let n = h.buckets.get(i).copied().unwrap_or(0);
        o.sample(&bucket, &[label, ("le", &le)], n as f64);
    }
    o.sample(&bucket, &[label, ("le", "+Inf")], h.count as f64);
    o.sample(&format!("{name}_sum"), &[label], h.sum);
    o.sample(&format!("{name}_count"), &[label], h.count as f64);
}

/// Alertmanager's `alertmanager_tls_transport_*` (TLS mode only).
fn tls_transport_metrics(o: &mut Out, st: &cluster::tls::TlsStats) {
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    for (name, help, v) in [
        (
            "alertmanager_tls_transport_packet_bytes_received_total",
            "The number of packet bytes received from incoming connections (excluding internal metadata).",
            &st.packet_bytes_received,
        ),
        (
            "alertmanager_tls_transport_packet_bytes_sent_total",
            "The number of packet bytes sent to outgoing connections (excluding internal metadata).",
            &st.packet_bytes_sent,
        ),
        (
            "alertmanager_tls_transport_read_errors_total",
            "The number of errors encountered while reading from incoming connections.",
            &st.read_errors,
        ),
        (
            "alertmanager_tls_transport_stream_connections_received_total",
            "The number of stream connections received.",
            &st.streams_received,
        ),
        (
            "alertmanager_tls_transport_stream_connections_sent_total",
            "The number of stream connections sent.",
            &st.streams_sent,
        ),
    ] {
        o.single(name, "counter", help, l(v));
    }
    let name = "alertmanager_tls_transport_write_errors_total";
    o.family(
        name,
        "counter",
        "The number of errors encountered while writing to outgoing connections.",
    );
    o.sample(
        name,
        &[("connection_type", "packet")],
        l(&st.write_errors_packet),
    );
    o.sample(
        name,
        &[("connection_type", "stream")],
        l(&st.write_errors_stream),
    );
}

trait SourceString {
    fn source_string(&self) -> String;
}

impl<E: std::error::Error> SourceString for E {
    fn source_string(&self) -> String {
        let mut s = String::new();
        let mut cur = self.source();
        while let Some(c) = cur {
            if !s.is_empty() {
                s.push_str(": ");
            }
            s.push_str(&c.to_string());
            cur = c.source();
        }
        s
    }
}
