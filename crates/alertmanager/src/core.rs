//! The state shared by the API and the notification side: the alert store, silences, nflog,
//! and the running configuration (routes, inhibitor, dispatcher, pipeline), swapped as a whole
//! on reload.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::alert::Alert;
use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::inhibit::Inhibitor;
use crate::metrics::Metrics;
use crate::nflog::Nflog;
use crate::notify::{NotifyError, Pipeline, Shared};
use crate::silence::Silences;
use crate::time::{Clock, Time};

/// What one configuration runs.
pub struct Runtime {
    pub config: Arc<Config>,
    pub inhibitor: Arc<Inhibitor>,
    pub dispatcher: Arc<Dispatcher>,
}

/// Alerts, silences, nflog and the current runtime.
pub struct Core {
    pub clock: Clock,
    alerts: Mutex<HashMap<u64, Alert>>,
    pub silences: Arc<Silences>,
    pub nflog: Arc<Nflog>,
    pub metrics: Arc<Metrics>,
    shared: Shared,
    runtime: ArcSwap<Runtime>,
    token: CancellationToken,
    maintenance_interval: Duration,
}

fn end_or_max(t: Option<Time>) -> Time {
    t.unwrap_or_else(|| Time::from_timestamp(jiff::Timestamp::MAX))
}

impl Core {
    /// Builds the runtime of `config`. Must be called inside a tokio runtime.
    pub fn new(
        config: Arc<Config>,
        shared: Shared,
        token: CancellationToken,
        maintenance_interval: Duration,
    ) -> Result<Core, NotifyError> {
        let runtime = Self::build(&config, &shared, &token, maintenance_interval)?;
        Ok(Core {
            clock: shared.clock.clone(),
            alerts: Mutex::new(HashMap::new()),
            silences: shared.silences.clone(),
            nflog: shared.nflog.clone(),
            metrics: shared.metrics.clone(),
            runtime: ArcSwap::from_pointee(runtime),
            shared,
            token,
            maintenance_interval,
        })
    }

    fn build(
        config: &Arc<Config>,
        shared: &Shared,
        token: &CancellationToken,
        maintenance_interval: Duration,
    ) -> Result<Runtime, NotifyError> {
        let inhibitor = Arc::new(Inhibitor::new(&config.inhibit_rules));
        let pipeline = Arc::new(Pipeline::new(config, inhibitor.clone(), shared.clone())?);
        let dispatcher = Arc::new(Dispatcher::new(
            config.route.clone(),
            pipeline,
            shared.clock.clone(),
            token.child_token(),
        ));
        tokio::spawn(dispatcher.clone().run_maintenance(maintenance_interval));
        Ok(Runtime {
            config: config.clone(),
            inhibitor,
            dispatcher,
        })
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    pub fn config(&self) -> Arc<Config> {
        self.runtime.load().config.clone()
    }

    /// Replaces the configuration: new groups are built from the stored alerts (their timers
    /// start again; the nflog keeps them from re-notifying what was already sent).
    pub fn apply_config(&self, config: Arc<Config>) -> Result<(), NotifyError> {
        let store = self.alerts.lock();
        let rt = Self::build(
            &config,
            &self.shared,
            &self.token,
            self.maintenance_interval,
        )?;
        for a in store.values() {
            rt.inhibitor.observe(a);
            rt.dispatcher.process(a);
        }
        let old = self.runtime.swap(Arc::new(rt));
        old.dispatcher.stop();
        Ok(())
    }

    /// Stores validated alerts (merging with a stored version whose activity overlaps) and
    /// hands them to the inhibitor and the dispatcher.
    pub fn put(&self, alerts: Vec<Alert>) {
        let now = self.clock.now();
        let mut store = self.alerts.lock();
        let rt = self.runtime.load();
        for mut a in alerts {
            let fp = a.fingerprint();
            if let Some(old) = store.get(&fp) {
                let (a_end, old_end) = (end_or_max(a.ends_at), end_or_max(old.ends_at));
                let overlaps = (a_end > old.starts_at && a_end < old_end)
                    || (a.starts_at > old.starts_at && a.starts_at < old_end);
                if overlaps {
                    a = old.merge(&a, now);
                }
            }
            rt.inhibitor.observe(&a);
            let started = std::time::Instant::now();
            rt.dispatcher.process(&a);
            let m = &self.metrics;
            m.dispatch_ns.fetch_add(
                u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
                std::sync::atomic::Ordering::Relaxed,
            );
            m.dispatch_count
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            store.insert(fp, a);
        }
    }

    /// All stored alerts.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.lock().values().cloned().collect()
    }

    pub fn alert_count(&self) -> usize {
        self.alerts.lock().len()
    }

    /// Drops resolved alerts, expired silences and nflog entries.
    pub fn gc(&self) {
        let now = self.clock.now();
        self.alerts.lock().retain(|_, a| !a.resolved_at(now));
        self.runtime.load().inhibitor.gc(now);
        let s = self.silences.gc();
        let n = self.nflog.gc();
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics.silences_gc.fetch_add(s as u64, Relaxed);
        self.metrics.nflog_gc.fetch_add(n as u64, Relaxed);
    }

    pub fn stop(&self) {
        self.runtime.load().dispatcher.stop();
    }
}
