//! A scrape pool: the targets of one scrape config. It follows its discovery (start loops for
//! new targets, stop loops of vanished ones with staleness markers) and its config (reload:
//! replace every loop, carrying each target's cache over so staleness tracking continues).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use web::client::{Auth, build_client};

use crate::cache::ScrapeCache;
use crate::config::ScrapeConfig;
use crate::discovery::{Discovery, TargetGroup, static_groups};
use crate::sample_labels::LabelLimits;
use crate::scrape_loop::{
    LoopConfig, LoopDeps, RUNNING, STOP_RELOAD, STOP_STALE, ScrapeLoop, error_chain,
};
use crate::target::{DroppedTarget, Populated, Target, TargetShared, populate};

/// What the API reads of a pool.
#[derive(Debug, Default)]
pub(crate) struct PoolState {
    pub active: RwLock<Vec<Arc<TargetShared>>>,
    pub dropped: RwLock<Vec<DroppedTarget>>,
    /// Targets in the last discovery update, before relabelling.
    pub discovered: AtomicU64,
}

struct LoopHandle {
    shared: Arc<TargetShared>,
    stop: CancellationToken,
    mode: Arc<AtomicU8>,
    join: JoinHandle<Option<ScrapeCache>>,
}

impl LoopHandle {
    fn stop(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
        self.stop.cancel();
    }
}

/// Builds the per-pool loop settings, including the HTTP client.
pub(crate) fn loop_config(cfg: &ScrapeConfig) -> Result<LoopConfig, String> {
    let http = cfg.http_client_config();
    let client = build_client(&http, None).map_err(|e| error_chain(&e))?;
    let auth = Auth::from_config(&http).map_err(|e| error_chain(&e))?;
    Ok(LoopConfig {
        honor_labels: cfg.honor_labels,
        honor_timestamps: cfg.honor_timestamps,
        sample_limit: usize::try_from(cfg.sample_limit).unwrap_or(usize::MAX),
        label_limits: LabelLimits {
            labels: usize::try_from(cfg.label_limit).unwrap_or(usize::MAX),
            name_length: usize::try_from(cfg.label_name_length_limit).unwrap_or(usize::MAX),
            value_length: usize::try_from(cfg.label_value_length_limit).unwrap_or(usize::MAX),
        },
        body_size_limit: usize::try_from(cfg.body_size_limit.0).unwrap_or(usize::MAX),
        metric_relabel: cfg.metric_relabel_configs.clone(),
        client,
        auth,
    })
}

pub(crate) struct Pool {
    name: String,
    cfg: Arc<ScrapeConfig>,
    loop_cfg: Arc<LoopConfig>,
    deps: Arc<LoopDeps>,
    state: Arc<PoolState>,
    loops: HashMap<u64, LoopHandle>,
    groups: Arc<Vec<TargetGroup>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    poll: Duration,
}

impl Pool {
    pub(crate) fn new(
        cfg: Arc<ScrapeConfig>,
        deps: Arc<LoopDeps>,
        state: Arc<PoolState>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
        poll: Duration,
    ) -> Result<Pool, String> {
        let loop_cfg = Arc::new(loop_config(&cfg)?);
        Ok(Pool {
            name: cfg.job_name.clone(),
            cfg,
            loop_cfg,
            deps,
            state,
            loops: HashMap::new(),
            groups: Arc::new(Vec::new()),
            tracker,
            shutdown,
            poll,
        })
    }

    fn start_discovery(&self) -> (watch::Receiver<Arc<Vec<TargetGroup>>>, CancellationToken) {
        let (tx, rx) = watch::channel(Arc::new(Vec::new()));
        let stop = self.shutdown.child_token();
        let d = Discovery::new(&self.cfg);
        self.tracker
            .spawn(d.run(self.poll, tx, self.deps.metrics.clone(), stop.clone()));
        (rx, stop)
    }

    /// Runs until shutdown, or until the manager drops the config sender (the job was removed
    /// from the config), in which case every target stops with staleness markers.
    pub(crate) async fn run(mut self, mut cfg_rx: watch::Receiver<Arc<ScrapeConfig>>) {
        let (mut groups_rx, mut disc_stop) = self.start_discovery();
        let mut discovery_alive = true;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                r = cfg_rx.changed() => {
                    if r.is_err() {
                        disc_stop.cancel();
                        for (_, h) in self.loops.drain() {
                            h.stop(STOP_STALE);
                        }
                        return;
                    }
                    let new = cfg_rx.borrow_and_update().clone();
                    if !new.same_discovery(&self.cfg) {
                        disc_stop.cancel();
                        if new.file_sd_configs.is_empty() {
                            // Known now; avoids restarting targets that are about to go away.
                            self.groups = Arc::new(static_groups(&new.static_configs));
                        }
                        self.cfg = new.clone();
                        (groups_rx, disc_stop) = self.start_discovery();
                        discovery_alive = true;
                    }
                    self.reload(new).await;
                }
                r = groups_rx.changed(), if discovery_alive => {
                    if r.is_err() {
                        discovery_alive = false;
                        continue;
                    }
                    self.groups = groups_rx.borrow_and_update().clone();
                    self.sync();
                }
            }
        }
    }

    /// The targets of the current groups under the current config.
    fn targets(&self) -> (Vec<Target>, Vec<DroppedTarget>) {
        let mut active = Vec::new();
        let mut dropped = Vec::new();
        let mut seen = HashSet::new();
        let mut discovered = 0;
        for g in self.groups.iter() {
            for (i, t) in g.targets.iter().enumerate() {
                discovered += 1;
                match populate(t, &g.labels, &self.cfg) {
                    Ok(Populated::Active(t)) => {
                        if seen.insert(t.hash) {
                            active.push(t);
                        }
                    }
                    Ok(Populated::Dropped(labels)) => dropped.push(DroppedTarget {
                        discovered_labels: labels,
                        scrape_pool: self.name.clone(),
                    }),
                    Err(e) => {
                        self.deps.metrics.target_sync_failed.inc();
                        tracing::error!(scrape_pool = %self.name, "creating target failed: instance {i} in group {}: {e}", g.source);
                    }
                }
            }
        }
        self.state.discovered.store(discovered, Ordering::Relaxed);
        (active, dropped)
    }

    fn spawn_loop(
        &self,
        target: Target,
        cache: Option<ScrapeCache>,
        forced: &Option<String>,
    ) -> LoopHandle {
        let shared = Arc::new(TargetShared::new(target, &self.name));
        // Set before the loop starts, so a target over the limit is never scraped.
        *shared.forced_error.lock() = forced.clone();
        let stop = self.shutdown.child_token();
        let mode = Arc::new(AtomicU8::new(RUNNING));
        let l = ScrapeLoop::new(
            shared.clone(),
            self.loop_cfg.clone(),
            self.deps.clone(),
            cache,
        );
        let join = self
            .tracker
            .spawn(l.run(stop.clone(), mode.clone(), self.shutdown.clone()));
        LoopHandle {
            shared,
            stop,
            mode,
            join,
        }
    }

    /// Applies a new discovery update.
    fn sync(&mut self) {
        let (targets, dropped) = self.targets();
        let forced = self.limit_error(targets.len());
        let mut loops = HashMap::with_capacity(targets.len());
        for t in targets {
            let hash = t.hash;
            match self.loops.remove(&hash) {
                Some(h) => {
                    *h.shared.discovered.lock() = t.discovered.clone();
                    loops.insert(hash, h);
                }
                None => {
                    loops.insert(hash, self.spawn_loop(t, None, &forced));
                }
            }
        }
        for (_, h) in self.loops.drain() {
            h.stop(STOP_STALE);
        }
        self.loops = loops;
        self.publish(dropped, forced);
    }

    /// Applies a changed config: every loop is replaced (interval, client or limits may have
    /// changed); a target that stays keeps its cache when the cached labels are still valid.
    async fn reload(&mut self, new: Arc<ScrapeConfig>) {
        self.deps.metrics.pool_reloads.inc();
        let loop_cfg = match loop_config(&new) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                self.deps.metrics.pool_reloads_failed.inc();
                tracing::error!(scrape_pool = %self.name, "reloading scrape pool failed, keeping the old settings: {e}");
                return;
            }
        };
        let reuse = loop_cfg.cache_compatible(&self.loop_cfg);
        self.cfg = new;
        self.loop_cfg = loop_cfg;
        let (targets, dropped) = self.targets();
        let forced = self.limit_error(targets.len());
        let keep: HashSet<u64> = targets.iter().map(|t| t.hash).collect();
        let old: Vec<(u64, LoopHandle)> = self.loops.drain().collect();
        for (hash, h) in &old {
            h.stop(if keep.contains(hash) {
                STOP_RELOAD
            } else {
                STOP_STALE
            });
        }
        let mut caches = HashMap::new();
        for (hash, h) in old {
            if keep.contains(&hash)
                && let Ok(Some(cache)) = h.join.await
            {
                caches.insert(hash, cache);
            }
        }
        for t in targets {
            let hash = t.hash;
            let cache = if reuse { caches.remove(&hash) } else { None };
            let h = self.spawn_loop(t, cache, &forced);
            self.loops.insert(hash, h);
        }
        self.publish(dropped, forced);
    }

    /// The error every target of the pool reports when there are more than `target_limit`.
    fn limit_error(&self, n: usize) -> Option<String> {
        let limit = self.cfg.target_limit;
        let n = n as u64;
        if limit > 0 && n > limit {
            self.deps.metrics.exceeded_target_limit.inc();
            return Some(format!(
                "target_limit exceeded (number of targets: {n}, limit: {limit})"
            ));
        }
        None
    }

    /// Applies the target limit error and publishes the targets for the API.
    fn publish(&mut self, dropped: Vec<DroppedTarget>, forced: Option<String>) {
        for h in self.loops.values() {
            *h.shared.forced_error.lock() = forced.clone();
        }
        let mut active: Vec<Arc<TargetShared>> =
            self.loops.values().map(|h| h.shared.clone()).collect();
        active.sort_by(|a, b| {
            a.target
                .public
                .cmp(&b.target.public)
                .then_with(|| a.target.url.cmp(&b.target.url))
        });
        *self.state.active.write() = active;
        *self.state.dropped.write() = dropped;
    }
}
