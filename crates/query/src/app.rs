//! The `vigil query` application: endpoints and their health loop, the PromQL engine and the
//! HTTP server. Same life cycle as the other roles: `App::new` → `run` until the token is
//! cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::endpoints::{EndpointError, Endpoints};
use crate::fanout::{DedupMode, Fanout, FanoutOpts};
use crate::flags::QueryFlags;

/// Why `vigil query` could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Endpoints(#[from] EndpointError),
    #[error("listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serve HTTP")]
    Serve(#[source] std::io::Error),
}

/// The default subquery step (Prometheus's default evaluation interval).
const SUBQUERY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub queries: AtomicU64,
    pub partial_responses: AtomicU64,
    pub failed_queries: AtomicU64,
    /// Queries answered by one replica (`crate::pushdown`).
    pub pushed_down: AtomicU64,
}

struct Inner {
    flags: QueryFlags,
    endpoints: Endpoints,
    replica_labels: Arc<Vec<String>>,
    engine: promql::Engine,
    sem: Arc<tokio::sync::Semaphore>,
    shutdown: CancellationToken,
    listener: parking_lot::Mutex<Option<tokio::net::TcpListener>>,
    local_addr: SocketAddr,
    ready: AtomicBool,
    counters: Counters,
    start_time: jiff::Timestamp,
    /// The endpoint the last pushed-down query went to.
    last_pushdown: parking_lot::Mutex<Option<String>>,
}

/// The `vigil query` role; cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

impl App {
    /// Validates the endpoints, binds the listen address and builds the engine.
    pub async fn new(flags: QueryFlags, shutdown: CancellationToken) -> Result<App, QueryError> {
        let endpoints = Endpoints::new(
            &flags.endpoints,
            &flags.endpoint_files,
            flags.endpoint_timeout,
        )?;
        let listener = tokio::net::TcpListener::bind(flags.listen_address)
            .await
            .map_err(|source| QueryError::Listen {
                addr: flags.listen_address,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(QueryError::Serve)?;
        let engine = promql::Engine::new(promql::EngineOptions {
            lookback_delta: flags.lookback_delta,
            max_samples: flags.query_max_samples as usize,
            timeout: flags.query_timeout,
            no_step_subquery_interval: SUBQUERY_INTERVAL,
            // `stats=all` always gets the per-step samples here (no feature flag to ask).
            per_step_stats: true,
        });
        let sem = Arc::new(tokio::sync::Semaphore::new(
            flags.query_max_concurrency.max(1) as usize,
        ));
        let replica_labels = Arc::new(flags.replica_labels.clone());
        Ok(App {
            inner: Arc::new(Inner {
                flags,
                endpoints,
                replica_labels,
                engine,
                sem,
                shutdown,
                listener: parking_lot::Mutex::new(Some(listener)),
                local_addr,
                ready: AtomicBool::new(false),
                counters: Counters::default(),
                start_time: jiff::Timestamp::now(),
                last_pushdown: parking_lot::Mutex::new(None),
            }),
        })
    }

    /// The address the HTTP server listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Serves until the shutdown token is cancelled; checks endpoint health meanwhile.
    pub async fn run(&self) -> Result<(), QueryError> {
        let Some(listener) = self.inner.listener.lock().take() else {
            return Err(QueryError::Serve(std::io::Error::other(
                "query already running",
            )));
        };
        let health = tokio::spawn(self.clone().health_loop());
        let router = self.router();
        tracing::info!(address = %self.inner.local_addr, endpoints = self.inner.endpoints.list().len(), "listening");
        self.inner.ready.store(true, Ordering::SeqCst);
        let token = self.inner.shutdown.clone();
        let served =
            web::serve_nodelay(listener, router, async move { token.cancelled().await }).await;
        self.inner.ready.store(false, Ordering::SeqCst);
        self.inner.shutdown.cancel();
        health.abort();
        served.map_err(QueryError::Serve)
    }

    async fn health_loop(self) {
        let every = self.inner.flags.health_interval;
        loop {
            if let Err(e) = self.inner.endpoints.refresh(false) {
                tracing::error!("reload endpoint files: {e}");
            }
            self.inner
                .endpoints
                .check_health(every.min(self.inner.flags.endpoint_timeout))
                .await;
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    fn router(&self) -> Router {
        let v1 = Router::new()
            .route("/query", get(api::query).post(api::query))
            .route("/query_range", get(api::query_range).post(api::query_range))
            .route("/series", get(api::series).post(api::series))
            .route("/labels", get(api::label_names).post(api::label_names))
            .route("/label/{name}/values", get(api::label_values))
            .route("/metadata", get(api::metadata))
            .route("/targets", get(api::targets))
            .route(
                "/query_exemplars",
                get(api::query_exemplars).post(api::query_exemplars),
            )
            .route("/rules", get(api::rules))
            .route("/alerts", get(api::alerts))
            .route("/status/buildinfo", get(api::status_buildinfo))
            .route("/status/flags", get(api::status_flags))
            .route("/endpoints", get(api::endpoints))
            .route("/dedup/explain", get(api::explain).post(api::explain))
            .fallback(api::api_not_found);
        Router::new()
            .nest("/api/v1", v1)
            .route("/metrics", get(api::metrics))
            .route("/-/healthy", get(api::healthy).head(api::healthy))
            .route("/-/ready", get(api::ready).head(api::ready))
            .route("/-/quit", post(api::quit).put(api::quit))
            .with_state(self.clone())
    }

    /// A fan-out for one request. `dedup` and `partial` override the defaults when given.
    pub fn fanout(&self, dedup: DedupMode, partial: Option<bool>) -> Fanout {
        Fanout::new(
            self.inner.endpoints.list(),
            FanoutOpts {
                replica_labels: self.inner.replica_labels.clone(),
                dedup,
                partial_response: partial.unwrap_or(self.inner.flags.partial_response),
            },
        )
    }

    pub fn flags(&self) -> &QueryFlags {
        &self.inner.flags
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.inner.endpoints
    }

    pub fn replica_labels(&self) -> &[String] {
        &self.inner.replica_labels
    }

    pub fn engine(&self) -> &promql::Engine {
        &self.inner.engine
    }

    /// The engine's default subquery step in ms (a replica must use the same to be pushed
    /// down to).
    pub fn engine_subquery_interval_ms(&self) -> i64 {
        SUBQUERY_INTERVAL.as_millis() as i64
    }

    /// The endpoint (URL) the last pushed-down query went to.
    pub fn last_pushdown(&self) -> Option<String> {
        self.inner.last_pushdown.lock().clone()
    }

    pub fn set_last_pushdown(&self, url: Option<String>) {
        *self.inner.last_pushdown.lock() = url;
    }

    pub fn query_semaphore(&self) -> Arc<tokio::sync::Semaphore> {
        self.inner.sem.clone()
    }

    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    pub fn start_time(&self) -> jiff::Timestamp {
        self.inner.start_time
    }
}
