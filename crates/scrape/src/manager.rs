//! The scrape manager: one pool per scrape config, reconciled on every config change, and the
//! snapshots the HTTP API reads (targets, metadata, counters).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::RwLock;
use reqwest::header::HeaderValue;
use storage::Appendable;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ScrapeConfig;
use crate::metrics::{Metrics, ScrapeMetrics};
use crate::pool::{Pool, PoolState};
use crate::scrape_loop::LoopDeps;
use crate::target::{ActiveTarget, DroppedTarget, MetricMetadata, TargetMetadata};

/// Settings of a [`ScrapeManager`] that do not come from the config file.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// How often file SD checks its files for changes (besides each config's
    /// `refresh_interval`).
    pub discovery_poll_interval: Duration,
    /// Mixed into every target's scrape offset. Servers with the same seed (e.g. HA replicas
    /// with equal external labels) scrape a target at the same phase; Prometheus derives it
    /// from the hostname and external labels.
    pub offset_seed: u64,
    /// The `User-Agent` of scrape requests.
    pub user_agent: String,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            discovery_poll_interval: Duration::from_secs(5),
            offset_seed: 0,
            user_agent: format!("Vigil/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

struct Inner {
    appendable: Arc<dyn Appendable>,
    opts: ManagerOptions,
    metrics: Arc<Metrics>,
    configs: watch::Sender<Arc<Vec<ScrapeConfig>>>,
    pools: RwLock<BTreeMap<String, Arc<PoolState>>>,
}

/// Scrapes the targets of a list of scrape configs into an [`Appendable`]. Cheap to clone;
/// [`ScrapeManager::run`] does the work, [`ScrapeManager::apply_config`] can be called before
/// or while it runs.
#[derive(Clone)]
pub struct ScrapeManager {
    inner: Arc<Inner>,
}

impl ScrapeManager {
    pub fn new(appendable: Arc<dyn Appendable>, opts: ManagerOptions) -> Self {
        let (configs, _) = watch::channel(Arc::new(Vec::new()));
        ScrapeManager {
            inner: Arc::new(Inner {
                appendable,
                opts,
                metrics: Arc::new(Metrics::default()),
                configs,
                pools: RwLock::new(BTreeMap::new()),
            }),
        }
    }

    /// Replaces the scrape configs (validated, defaults applied). Pools whose config is
    /// unchanged keep running untouched; changed ones reload; removed ones stop, and their
    /// targets get staleness markers two intervals later.
    pub fn apply_config(&self, configs: Vec<ScrapeConfig>) {
        self.inner.configs.send_replace(Arc::new(configs));
    }

    /// Runs the pools until `shutdown` fires, then waits for every loop to end. No staleness
    /// markers are written on shutdown, so a restarted server continues the series.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut rx = self.inner.configs.subscribe();
        let tracker = TaskTracker::new();
        let deps = Arc::new(LoopDeps {
            appendable: self.inner.appendable.clone(),
            metrics: self.inner.metrics.clone(),
            offset_seed: self.inner.opts.offset_seed,
            user_agent: HeaderValue::from_str(&self.inner.opts.user_agent)
                .unwrap_or_else(|_| HeaderValue::from_static("Vigil")),
        });
        let mut senders: HashMap<String, watch::Sender<Arc<ScrapeConfig>>> = HashMap::new();
        // Pools and loops stop with this token, never by dropping their config senders: a
        // dropped sender means "job removed" and triggers staleness markers.
        let stop_all = shutdown.child_token();
        loop {
            let configs = rx.borrow_and_update().clone();
            self.reconcile(&configs, &mut senders, &tracker, &deps, &stop_all);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = rx.changed() => if r.is_err() { break },
            }
        }
        stop_all.cancel();
        drop(senders);
        tracker.close();
        tracker.wait().await;
        self.inner.pools.write().clear();
    }

    fn reconcile(
        &self,
        configs: &[ScrapeConfig],
        senders: &mut HashMap<String, watch::Sender<Arc<ScrapeConfig>>>,
        tracker: &TaskTracker,
        deps: &Arc<LoopDeps>,
        shutdown: &CancellationToken,
    ) {
        let wanted: HashSet<&str> = configs.iter().map(|c| c.job_name.as_str()).collect();
        for cfg in configs {
            if let Some(tx) = senders.get(&cfg.job_name) {
                if **tx.borrow() != *cfg {
                    tx.send_replace(Arc::new(cfg.clone()));
                }
                continue;
            }
            let cfg = Arc::new(cfg.clone());
            let state = Arc::new(PoolState::default());
            let poll = self.inner.opts.discovery_poll_interval;
            match Pool::new(
                cfg.clone(),
                deps.clone(),
                state.clone(),
                tracker.clone(),
                shutdown.clone(),
                poll,
            ) {
                Ok(pool) => {
                    let name = cfg.job_name.clone();
                    let (tx, rx) = watch::channel(cfg);
                    tracker.spawn(pool.run(rx));
                    senders.insert(name.clone(), tx);
                    self.inner.pools.write().insert(name, state);
                }
                Err(e) => {
                    tracing::error!(scrape_pool = %cfg.job_name, "error creating new scrape pool: {e}")
                }
            }
        }
        senders.retain(|name, _| wanted.contains(name.as_str()));
        self.inner
            .pools
            .write()
            .retain(|name, _| wanted.contains(name.as_str()));
    }

    /// Active targets of all pools, by pool name then labels.
    pub fn targets_active(&self) -> Vec<ActiveTarget> {
        let pools = self.inner.pools.read();
        pools
            .values()
            .flat_map(|p| {
                p.active
                    .read()
                    .iter()
                    .map(|t| t.snapshot())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Targets dropped by relabelling, by pool name.
    pub fn targets_dropped(&self) -> Vec<DroppedTarget> {
        let pools = self.inner.pools.read();
        pools
            .values()
            .flat_map(|p| p.dropped.read().clone())
            .collect()
    }

    /// The names of the running pools (the job names).
    pub fn pools(&self) -> Vec<String> {
        self.inner.pools.read().keys().cloned().collect()
    }

    /// Metadata of every metric family of every active target, as `(metric, metadata)` pairs;
    /// one family appears once per target that exposes it (callers deduplicate).
    pub fn metadata(&self) -> Vec<(String, MetricMetadata)> {
        let mut out = Vec::new();
        for p in self.inner.pools.read().values() {
            for t in p.active.read().iter() {
                let md = t.metadata.lock().clone();
                out.extend(md.iter().cloned());
            }
        }
        out
    }

    /// Metadata per target, for `/api/v1/targets/metadata`.
    pub fn target_metadata(&self) -> Vec<TargetMetadata> {
        let mut out = Vec::new();
        for p in self.inner.pools.read().values() {
            for t in p.active.read().iter() {
                let md = t.metadata.lock().clone();
                out.extend(md.iter().map(|(metric, m)| TargetMetadata {
                    target: t.target.public.clone(),
                    metric: metric.clone(),
                    kind: m.kind.clone(),
                    help: m.help.clone(),
                    unit: m.unit.clone(),
                    scrape_pool: t.pool.clone(),
                }));
            }
        }
        out
    }

    /// The manager's counters and per-pool gauges.
    pub fn metrics(&self) -> ScrapeMetrics {
        let mut m = self.inner.metrics.snapshot();
        let pools = self.inner.pools.read();
        m.scrape_pools = pools.len() as u64;
        for (name, p) in pools.iter() {
            m.pool_targets
                .push((name.clone(), p.active.read().len() as u64));
            m.discovered_targets
                .push((name.clone(), p.discovered.load(Ordering::Relaxed)));
        }
        m
    }
}
