//! The `vigil server` role as an embeddable runtime: `App::new` → `run` (until the shutdown
//! token fires) with `reload` at any time. The binary only adds flags and signals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::flags::ServerFlags;
use crate::{admin, api, query_api};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("error loading config from {path}")]
    Config {
        path: String,
        #[source]
        source: ConfigError,
    },
    #[error("opening storage at {path}")]
    Storage {
        path: String,
        #[source]
        source: tsdb::TsdbError,
    },
    #[error("listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serve HTTP")]
    Serve(#[source] std::io::Error),
}

/// What `/api/v1/status/runtimeinfo` reports.
pub struct RuntimeInfo {
    pub start_time: String,
    pub reload_ok: bool,
    pub last_config_time: String,
    pub corruption_count: u64,
    pub tasks: usize,
}

struct Inner {
    flags: ServerFlags,
    config: ArcSwap<Config>,
    db: Arc<tsdb::Db>,
    scrape: scrape::ScrapeManager,
    engine: promql::Engine,
    query_sem: Arc<tokio::sync::Semaphore>,
    shutdown: CancellationToken,
    ready: AtomicBool,
    reload_ok: AtomicBool,
    last_reload_success_s: AtomicI64,
    start_time: jiff::Timestamp,
    reload_lock: parking_lot::Mutex<()>,
    listener: parking_lot::Mutex<Option<tokio::net::TcpListener>>,
    local_addr: SocketAddr,
    alerting: crate::alerting::Alerting,
    remote_writers: crate::remote_write::RemoteWriters,
    /// `remote_read:` endpoints, merged into queries by [`App::queryable`].
    remote_reads: ArcSwap<Vec<remote::read_merge::RemoteReadEndpoint>>,
    /// First and last WAL segment found at start-up (`/api/v1/status/walreplay`).
    wal_replay: (u64, u64),
    /// `--web.cors.origin` and the rest of the HTTP compatibility layer.
    http_compat: Arc<crate::http_compat::Compat>,
    /// Summary of the `up` series for `/api/v1/vigil/coverage`.
    coverage: Arc<crate::coverage::CoverageCache>,
}

/// The lowest and highest numbered WAL segment in `data/wal` (0, 0 when there is none).
fn wal_segments(data: &std::path::Path) -> (u64, u64) {
    let Ok(rd) = std::fs::read_dir(data.join("wal")) else {
        return (0, 0);
    };
    let nums: Vec<u64> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .collect();
    (
        nums.iter().copied().min().unwrap_or(0),
        nums.iter().copied().max().unwrap_or(0),
    )
}

/// Clients for the `remote_read:` entries; an entry whose client cannot be built is logged
/// and left out.
fn remote_read_endpoints(cfg: &Config) -> Vec<remote::read_merge::RemoteReadEndpoint> {
    cfg.remote_read
        .iter()
        .filter_map(|r| match remote::read_merge::RemoteReadEndpoint::new(r) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::error!(url = %r.url, error = %e, "remote read endpoint not usable");
                None
            }
        })
        .collect()
}

/// A running (or ready to run) server. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

impl App {
    /// Loads the config, opens (and replays) the storage and binds the listener.
    pub async fn new(flags: ServerFlags, shutdown: CancellationToken) -> Result<App, ServerError> {
        let config =
            Config::load_file(&flags.config_file).map_err(|source| ServerError::Config {
                path: flags.config_file.display().to_string(),
                source,
            })?;
        tracing::info!(file = %flags.config_file.display(), "loaded configuration file");
        // compat: like Prometheus, a bad rule file stops the server from starting.
        crate::alerting::check_rule_files(&config).map_err(|source| ServerError::Config {
            path: flags.config_file.display().to_string(),
            source,
        })?;

        let opts = tsdb::Options {
            retention: flags.retention(),
            wal_segment_size: flags.wal_segment_size as usize,
            wal_compression: !flags.no_wal_compression,
            min_block_duration: flags.min_block_duration,
            max_block_duration: Some(flags.max_block_duration()),
            retention_size: flags.retention_size.unwrap_or(0),
            out_of_order_time_window: ooo_window(&config),
            lockfile: !flags.no_lockfile,
            ..Default::default()
        };
        if flags.agent_mode() {
            crate::agent::check_config(&config).map_err(|source| ServerError::Config {
                path: flags.config_file.display().to_string(),
                source,
            })?;
            tracing::info!("running in agent mode: scrape, WAL and remote write only");
        }
        for f in &flags.enable_feature {
            if !matches!(f.trim(), "agent" | "promql-per-step-stats") {
                tracing::warn!(feature = %f, "unknown option for --enable-feature, ignored");
            }
        }
        let http_compat = crate::http_compat::Compat::new(&flags.cors_origin).map_err(|e| {
            ServerError::Serve(std::io::Error::other(format!(
                "could not compile CORS regex string {:?}: {e}",
                flags.cors_origin
            )))
        })?;
        let wal_replay = wal_segments(flags.data_path());
        let path = flags.data_path().to_path_buf();
        let db = tokio::task::spawn_blocking(move || tsdb::Db::open(&path, opts))
            .await
            .map_err(|e| ServerError::Serve(std::io::Error::other(e)))?
            .map_err(|source| ServerError::Storage {
                path: flags.data_path().display().to_string(),
                source,
            })?;
        tracing::info!(series = db.num_series(), "TSDB started");
        // Apply retention at once: the truncation point is not persisted, so data older than
        // the retention window that the WAL still holds must not become visible again.
        let db2 = db.clone();
        let now = jiff::Timestamp::now().as_millisecond();
        match tokio::task::spawn_blocking(move || db2.run_retention(now)).await {
            Ok(Err(e)) => tracing::error!("initial storage retention: {e}"),
            Err(e) => tracing::error!("initial storage retention task: {e}"),
            Ok(Ok(_)) => {}
        }

        let listener = tokio::net::TcpListener::bind(flags.listen_address)
            .await
            .map_err(|source| ServerError::Listen {
                addr: flags.listen_address,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(ServerError::Serve)?;

        let scrape_opts = scrape::ManagerOptions {
            discovery_poll_interval: flags.discovery_poll_interval,
            offset_seed: config.external_labels().stable_hash(),
            ..Default::default()
        };
        let appendable: Arc<dyn storage::Appendable> = db.clone();
        let scrape = scrape::ScrapeManager::new(appendable, scrape_opts);
        let rw_scrape = scrape.clone();

        let engine = promql::Engine::new(promql::EngineOptions {
            lookback_delta: flags.lookback_delta,
            max_samples: flags.query_max_samples as usize,
            timeout: flags.query_timeout,
            no_step_subquery_interval: config.global.evaluation_interval,
            per_step_stats: flags.has_feature("promql-per-step-stats"),
        });
        let query_sem = Arc::new(tokio::sync::Semaphore::new(
            flags.query_max_concurrency.max(1) as usize,
        ));
        let flags_tsdb_path = flags.data_path().to_path_buf();
        let remote_reads = remote_read_endpoints(&config);
        let alerting =
            crate::alerting::Alerting::new(&flags, engine.clone(), db.clone(), shutdown.clone());
        let inner = Inner {
            alerting,
            engine,
            query_sem,
            flags,
            config: ArcSwap::from_pointee(config),
            db,
            scrape,
            shutdown,
            ready: AtomicBool::new(false),
            reload_ok: AtomicBool::new(true),
            last_reload_success_s: AtomicI64::new(jiff::Timestamp::now().as_second()),
            start_time: jiff::Timestamp::now(),
            reload_lock: parking_lot::Mutex::new(()),
            listener: parking_lot::Mutex::new(Some(listener)),
            local_addr,
            remote_writers: crate::remote_write::RemoteWriters::new(&flags_tsdb_path, rw_scrape),
            remote_reads: ArcSwap::from_pointee(remote_reads),
            wal_replay,
            http_compat: Arc::new(http_compat),
            coverage: Arc::new(crate::coverage::CoverageCache::new()),
        };
        Ok(App {
            inner: Arc::new(inner),
        })
    }

    /// The address the HTTP server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Runs scraping, maintenance and the HTTP server until the shutdown token is cancelled,
    /// then stops scraping and closes the storage.
    pub async fn run(&self) -> Result<(), ServerError> {
        let Some(listener) = self.inner.listener.lock().take() else {
            return Err(ServerError::Serve(std::io::Error::other(
                "server already running",
            )));
        };
        let cfg = self.inner.config.load_full();
        // Remote write first, as Prometheus does: a destination without saved progress starts
        // at the WAL's end, so anything scraped or evaluated before its reader opened would
        // never be sent (one destination got the first scrape, the next one did not).
        self.inner
            .remote_writers
            .apply(&cfg.remote_write, &cfg.external_labels())
            .await;
        self.inner.scrape.apply_config(cfg.scrape_configs.clone());
        let scrape_task = tokio::spawn(
            self.inner
                .scrape
                .clone()
                .run(self.inner.shutdown.child_token()),
        );
        let maint = tokio::spawn(self.clone().maintenance());
        if let Err(e) = self
            .inner
            .alerting
            .start(&cfg, self.inner.shutdown.child_token())
        {
            tracing::error!("starting rules and notifier: {e}");
        }

        let router = self.router();
        tracing::info!(address = %self.inner.local_addr, "listening");
        self.inner.ready.store(true, Ordering::SeqCst);
        tracing::info!("server is ready to receive web requests");
        let token = self.inner.shutdown.clone();
        let served =
            web::serve_nodelay(listener, router, async move { token.cancelled().await }).await;
        self.inner.ready.store(false, Ordering::SeqCst);
        self.inner.shutdown.cancel();
        tracing::info!("stopping scrape manager");
        let _ = scrape_task.await;
        maint.abort();
        tracing::info!("stopping remote write");
        self.inner.remote_writers.stop_all().await;
        let db = self.inner.db.clone();
        let _ = tokio::task::spawn_blocking(move || db.close()).await;
        tracing::info!("see you next time!");
        served.map_err(ServerError::Serve)
    }

    /// Periodic storage upkeep: compaction, retention and WAL truncation.
    async fn maintenance(self) {
        // A quarter block range (1 s at least, a minute at most): short test ranges compact
        // promptly, like Prometheus's minute-by-minute compaction check at 2h ranges.
        let every = Duration::from_secs(60)
            .min((self.inner.flags.min_block_duration / 4).max(Duration::from_secs(1)));
        loop {
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let db = self.inner.db.clone();
            match tokio::task::spawn_blocking(move || db.compact()).await {
                Ok(Err(e)) => tracing::error!("storage compaction: {e}"),
                Err(e) => tracing::error!("storage compaction task: {e}"),
                Ok(Ok(st)) if st != tsdb::CompactStats::default() => {
                    tracing::info!(?st, "storage compacted")
                }
                Ok(Ok(_)) => {}
            }
            let db = self.inner.db.clone();
            let now = jiff::Timestamp::now().as_millisecond();
            match tokio::task::spawn_blocking(move || db.run_retention(now)).await {
                Ok(Err(e)) => tracing::error!("storage maintenance: {e}"),
                Err(e) => tracing::error!("storage maintenance task: {e}"),
                Ok(Ok(Some(st))) => tracing::debug!(?st, "storage retention applied"),
                Ok(Ok(None)) => {}
            }
        }
    }

    fn router(&self) -> Router {
        let v1 = Router::new()
            .route("/query", get(query_api::query).post(query_api::query))
            .route(
                "/query_range",
                get(query_api::query_range).post(query_api::query_range),
            )
            .route(
                "/series",
                get(api::series).post(api::series).delete(api::drop_series),
            )
            .route("/labels", get(api::label_names).post(api::label_names))
            .route("/label/{name}/values", get(api::label_values))
            .route("/targets", get(api::targets))
            .route("/metadata", get(api::metadata))
            .route("/status/config", get(api::status_config))
            .route("/status/flags", get(api::status_flags))
            .route("/status/buildinfo", get(api::status_buildinfo))
            .route("/status/runtimeinfo", get(api::status_runtimeinfo))
            .route("/status/tsdb", get(api::status_tsdb))
            .route("/status/walreplay", get(api::status_walreplay))
            .route(
                "/format_query",
                get(api::format_query).post(api::format_query),
            )
            .route("/targets/metadata", get(api::targets_metadata))
            .route(
                "/query_exemplars",
                get(api::query_exemplars).post(api::query_exemplars),
            )
            .route(
                "/admin/tsdb/snapshot",
                post(admin::snapshot).put(admin::snapshot),
            )
            .route(
                "/admin/tsdb/delete_series",
                // Forgets the coverage summary around the admin API's delete.
                post(crate::pushdown::delete_series).put(crate::pushdown::delete_series),
            )
            .route(
                "/admin/tsdb/clean_tombstones",
                post(admin::clean_tombstones).put(admin::clean_tombstones),
            )
            .route("/rules", get(crate::alerting::rules_api))
            .route("/alerts", get(crate::alerting::alerts_api))
            .route("/alertmanagers", get(crate::alerting::alertmanagers_api))
            // For `vigil query`'s push-down (crates/server/src/pushdown.rs).
            .route("/vigil/coverage", get(crate::pushdown::coverage_api))
            .route(
                "/vigil/query",
                get(crate::pushdown::query).post(crate::pushdown::query),
            )
            .route(
                "/vigil/query_range",
                get(crate::pushdown::query_range).post(crate::pushdown::query_range),
            )
            .fallback(crate::http_compat::not_found)
            // compat: a form body over 10 MB is ignored rather than refused (see Params).
            .layer(axum::extract::DefaultBodyLimit::max(
                4 * promapi::params::MAX_FORM_BODY,
            ))
            .with_state(self.clone());
        let v1 = if self.inner.flags.enable_remote_write_receiver {
            v1
        } else {
            v1.route("/write", post(api::remote_write_disabled))
        };
        let f = &self.inner.flags;
        let read = remote::ReadState::new(
            self.inner.db.clone(),
            remote::ReadLimits {
                sample_limit: f.remote_read_sample_limit,
                concurrent_limit: f.remote_read_concurrent_limit,
                max_bytes_in_frame: f.remote_read_max_bytes_in_frame,
                ..Default::default()
            },
        )
        .with_external_labels(self.config().external_labels());
        let mut extra = remote::read_router(read);
        if f.enable_remote_write_receiver {
            let appendable: Arc<dyn storage::Appendable> = self.inner.db.clone();
            extra = extra.merge(remote::write_router(remote::WriteState::new(appendable)));
        }
        let routes = Router::new()
            .nest("/api/v1", v1)
            .route("/version", get(api::version))
            .route("/metrics", get(api::metrics))
            .route("/federate", get(crate::federate::federate))
            .route("/-/healthy", get(api::healthy).head(api::healthy))
            .route("/-/ready", get(api::ready).head(api::ready))
            .route("/-/reload", post(api::reload).put(api::reload))
            .route("/-/quit", post(api::quit).put(api::quit))
            .with_state(self.clone())
            .merge(extra)
            .fallback(crate::http_compat::not_found)
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                crate::agent::guard,
            ))
            .layer(axum::middleware::from_fn_with_state(
                self.inner.http_compat.clone(),
                crate::http_compat::layer,
            ));
        // compat: like Prometheus, everything lives under the route prefix (the path of
        // --web.external-url unless --web.route-prefix says otherwise); `/` redirects there.
        let prefix = self.inner.flags.route_prefix();
        let redirect = |status: axum::http::StatusCode, to: String| {
            get(move || async move { (status, [(axum::http::header::LOCATION, to.clone())]) })
        };
        // compat: Debian's Prometheus 2.42 sends its home page to the classic UI (which vigil
        // does not have; the redirect is kept so clients see the same answers).
        let home = format!("{}/classic/graph", prefix.trim_end_matches('/'));
        if prefix == "/" {
            return routes.route("/", redirect(axum::http::StatusCode::FOUND, home));
        }
        Router::new()
            .nest(&prefix, routes)
            .route("/", redirect(axum::http::StatusCode::FOUND, prefix.clone()))
            .route(
                &prefix,
                redirect(
                    axum::http::StatusCode::MOVED_PERMANENTLY,
                    format!("{prefix}/"),
                ),
            )
            .route(
                &format!("{prefix}/"),
                redirect(axum::http::StatusCode::FOUND, home),
            )
            .fallback(crate::http_compat::not_found)
    }

    /// First and last WAL segment found at start-up.
    pub fn wal_replay(&self) -> (u64, u64) {
        self.inner.wal_replay
    }

    /// Re-reads the config file. A bad file keeps the running config and is reported.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let _g = self.inner.reload_lock.lock();
        tracing::info!(file = %self.inner.flags.config_file.display(), "loading configuration file");
        let loaded = Config::load_file(&self.inner.flags.config_file).and_then(|cfg| {
            if self.inner.flags.agent_mode() {
                crate::agent::check_config(&cfg)?;
            }
            Ok(cfg)
        });
        match loaded {
            Ok(cfg) => {
                self.inner.scrape.apply_config(cfg.scrape_configs.clone());
                self.inner.db.set_out_of_order_time_window(ooo_window(&cfg));
                if let Err(e) = self.inner.alerting.apply(&cfg) {
                    self.inner.reload_ok.store(false, Ordering::SeqCst);
                    tracing::error!("error reloading rules, keeping the running ones: {e}");
                    return Err(e);
                }
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    let app = self.clone();
                    let (rw, ext) = (cfg.remote_write.clone(), cfg.external_labels());
                    rt.spawn(async move { app.inner.remote_writers.apply(&rw, &ext).await });
                }
                if cfg.remote_read != self.config().remote_read {
                    self.inner
                        .remote_reads
                        .store(Arc::new(remote_read_endpoints(&cfg)));
                }
                self.inner.config.store(Arc::new(cfg));
                self.inner.reload_ok.store(true, Ordering::SeqCst);
                self.inner
                    .last_reload_success_s
                    .store(jiff::Timestamp::now().as_second(), Ordering::SeqCst);
                tracing::info!("completed loading of configuration file");
                Ok(())
            }
            Err(e) => {
                self.inner.reload_ok.store(false, Ordering::SeqCst);
                tracing::error!("error reloading config, keeping the old one: {e}");
                Err(e)
            }
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.inner.config.load_full()
    }

    pub fn flags(&self) -> &ServerFlags {
        &self.inner.flags
    }

    pub fn db(&self) -> &Arc<tsdb::Db> {
        &self.inner.db
    }

    /// The summary of the `up` series that `/api/v1/vigil/coverage` answers from.
    pub(crate) fn coverage_cache(&self) -> &Arc<crate::coverage::CoverageCache> {
        &self.inner.coverage
    }

    /// What queries read: the local storage, plus the `remote_read:` endpoints when any are
    /// configured.
    pub fn queryable(&self) -> Arc<dyn storage::Queryable> {
        let remotes = self.inner.remote_reads.load_full();
        let rt = tokio::runtime::Handle::try_current();
        let (false, Ok(rt)) = (remotes.is_empty(), rt) else {
            return self.inner.db.clone();
        };
        let db = self.inner.db.clone();
        Arc::new(remote::read_merge::MergedQueryable {
            local: self.inner.db.clone(),
            remotes,
            external_labels: self.config().external_labels(),
            local_start: Arc::new(move || {
                let blocks = db.blocks().iter().map(|b| b.min_time).min();
                blocks.unwrap_or(i64::MAX).min(db.head_min_time())
            }),
            rt,
        })
    }

    pub fn engine(&self) -> &promql::Engine {
        &self.inner.engine
    }

    pub fn query_semaphore(&self) -> Arc<tokio::sync::Semaphore> {
        self.inner.query_sem.clone()
    }

    pub fn scrape_manager(&self) -> &scrape::ScrapeManager {
        &self.inner.scrape
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// The rule manager and the notifier.
    pub fn alerting(&self) -> &crate::alerting::Alerting {
        &self.inner.alerting
    }

    /// The remote write destinations (for /metrics).
    pub fn remote_writers(&self) -> &crate::remote_write::RemoteWriters {
        &self.inner.remote_writers
    }

    pub fn reload_successful(&self) -> bool {
        self.inner.reload_ok.load(Ordering::SeqCst)
    }

    pub fn last_reload_success_seconds(&self) -> i64 {
        self.inner.last_reload_success_s.load(Ordering::SeqCst)
    }

    pub fn start_time(&self) -> jiff::Timestamp {
        self.inner.start_time
    }

    pub fn runtime_info(&self) -> RuntimeInfo {
        let last = jiff::Timestamp::from_second(self.last_reload_success_seconds())
            .unwrap_or(self.inner.start_time);
        RuntimeInfo {
            start_time: self.inner.start_time.to_string(),
            reload_ok: self.reload_successful(),
            last_config_time: last.to_string(),
            corruption_count: self.inner.db.metrics().wal_corruptions_total,
            tasks: tokio::runtime::Handle::try_current()
                .map(|h| h.metrics().num_alive_tasks())
                .unwrap_or(0),
        }
    }
}

/// prometheus.yml `storage.tsdb.out_of_order_time_window` (zero when unset).
fn ooo_window(cfg: &Config) -> Duration {
    cfg.storage
        .as_ref()
        .and_then(|s| s.tsdb.as_ref())
        .and_then(|t| t.out_of_order_time_window)
        .unwrap_or_default()
}
