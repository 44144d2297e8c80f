//! The alertmanager's own metrics (named like Alertmanager 0.25's), kept in atomics owned by the
//! App and rendered in text format 0.0.4 at scrape time. No process-wide registry.

use std::sync::atomic::{AtomicU64, Ordering};

/// Integrations Alertmanager 0.25 pre-initialises its per-integration counters for.
pub const INTEGRATIONS: [&str; 10] = [
    "email",
    "opsgenie",
    "pagerduty",
    "pushover",
    "slack",
    "sns",
    "telegram",
    "victorops",
    "webhook",
    "wechat",
];

/// Buckets of `alertmanager_notification_latency_seconds`.
pub const LATENCY_BUCKETS: [f64; 5] = [1.0, 5.0, 10.0, 15.0, 20.0];

/// Counters of one integration.
#[derive(Default)]
pub struct IntegrationCounters {
    pub notifications: AtomicU64,
    pub failed: AtomicU64,
    pub requests: AtomicU64,
    pub requests_failed: AtomicU64,
    /// Sum of notification latencies in microseconds, and their count.
    pub latency_us_sum: AtomicU64,
    pub latency_count: AtomicU64,
    /// Cumulative counts per [`LATENCY_BUCKETS`] bound.
    pub latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
}

impl IntegrationCounters {
    /// Records one notification attempt's latency.
    pub fn observe_latency(&self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.latency_us_sum.fetch_add(us, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let secs = d.as_secs_f64();
        for (b, c) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Every counter the role keeps.
#[derive(Default)]
pub struct Metrics {
    pub alerts_received_firing: AtomicU64,
    pub alerts_received_resolved: AtomicU64,
    pub alerts_invalid: AtomicU64,
    /// The same two counts for alerts received on API v1.
    pub alerts_received_v1_firing: AtomicU64,
    pub alerts_received_v1_resolved: AtomicU64,
    pub alerts_invalid_v1: AtomicU64,
    pub integrations: [IntegrationCounters; INTEGRATIONS.len()],
    pub nflog_queries: AtomicU64,
    /// nflog queries that found no entry (Alertmanager counts those as errors).
    pub nflog_query_errors: AtomicU64,
    pub silences_queries: AtomicU64,
    /// Time spent routing received alerts into groups, in nanoseconds, and how many.
    pub dispatch_ns: AtomicU64,
    pub dispatch_count: AtomicU64,
    /// Flushes not sent because a peer's nflog entry for them arrived during our wait.
    pub peer_dedup: AtomicU64,
    pub nflog_snapshot_size: AtomicU64,
    pub silences_snapshot_size: AtomicU64,
    pub silences_gc: AtomicU64,
    pub nflog_gc: AtomicU64,
    pub config_hash: AtomicU64,
    pub reload_ok: AtomicU64,
    pub reload_success_seconds: AtomicU64,
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics::default();
        m.reload_ok.store(1, Ordering::Relaxed);
        m
    }

    pub fn integration(&self, name: &str) -> &IntegrationCounters {
        let i = INTEGRATIONS
            .iter()
            .position(|n| *n == name)
            .unwrap_or(INTEGRATIONS.len() - 2);
        &self.integrations[i]
    }
}

pub use web::metrics::Out;

/// One family with a sample per integration.
pub fn per_integration(
    o: &mut Out,
    name: &str,
    kind: &str,
    help: &str,
    m: &Metrics,
    f: impl Fn(&IntegrationCounters) -> f64,
) {
    o.family(name, kind, help);
    for (n, c) in INTEGRATIONS.iter().zip(&m.integrations) {
        o.sample(name, &[("integration", n)], f(c));
    }
}

pub fn load(a: &AtomicU64) -> f64 {
    a.load(Ordering::Relaxed) as f64
}
