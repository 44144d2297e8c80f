//! The scrape manager's own counters. They are plain atomics read into a [`ScrapeMetrics`]
//! snapshot; the server renders them under Prometheus's metric names.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub exceeded_sample_limit: Counter,
    pub exceeded_body_size_limit: Counter,
    pub exceeded_label_limits: Counter,
    pub exceeded_target_limit: Counter,
    pub sample_out_of_order: Counter,
    pub sample_duplicate_timestamp: Counter,
    pub sample_out_of_bounds: Counter,
    pub file_sd_read_errors: Counter,
    pub pool_reloads: Counter,
    pub pool_reloads_failed: Counter,
    pub target_sync_failed: Counter,
    pub cache_flush_forced: Counter,
}

/// A snapshot of the scrape metrics; names give the Prometheus metric each field is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScrapeMetrics {
    /// `prometheus_target_scrapes_exceeded_sample_limit_total`
    pub exceeded_sample_limit_total: u64,
    /// `prometheus_target_scrapes_exceeded_body_size_limit_total`
    pub exceeded_body_size_limit_total: u64,
    /// `prometheus_target_scrape_pool_exceeded_label_limits_total`
    pub exceeded_label_limits_total: u64,
    /// `prometheus_target_scrape_pool_exceeded_target_limit_total`
    pub exceeded_target_limit_total: u64,
    /// `prometheus_target_scrapes_sample_out_of_order_total`
    pub sample_out_of_order_total: u64,
    /// `prometheus_target_scrapes_sample_duplicate_timestamp_total`
    pub sample_duplicate_timestamp_total: u64,
    /// `prometheus_target_scrapes_sample_out_of_bounds_total`
    pub sample_out_of_bounds_total: u64,
    /// `prometheus_sd_file_read_errors_total`
    pub file_sd_read_errors_total: u64,
    /// `prometheus_target_scrape_pool_reloads_total`
    pub scrape_pool_reloads_total: u64,
    /// `prometheus_target_scrape_pool_reloads_failed_total`
    pub scrape_pool_reloads_failed_total: u64,
    /// `prometheus_target_sync_failed_total` (targets whose labels could not be populated)
    pub target_sync_failed_total: u64,
    /// `prometheus_target_scrape_cache_flush_forced_total`
    pub cache_flush_forced_total: u64,
    /// `prometheus_target_scrape_pools_total`: pools currently running.
    pub scrape_pools: u64,
    /// `prometheus_target_scrape_pool_targets{scrape_job}`: active targets per pool, by name.
    pub pool_targets: Vec<(String, u64)>,
    /// `prometheus_sd_discovered_targets{config}`: targets discovered per pool (active and dropped).
    pub discovered_targets: Vec<(String, u64)>,
}

impl Metrics {
    pub(crate) fn snapshot(&self) -> ScrapeMetrics {
        ScrapeMetrics {
            exceeded_sample_limit_total: self.exceeded_sample_limit.get(),
            exceeded_body_size_limit_total: self.exceeded_body_size_limit.get(),
            exceeded_label_limits_total: self.exceeded_label_limits.get(),
            exceeded_target_limit_total: self.exceeded_target_limit.get(),
            sample_out_of_order_total: self.sample_out_of_order.get(),
            sample_duplicate_timestamp_total: self.sample_duplicate_timestamp.get(),
            sample_out_of_bounds_total: self.sample_out_of_bounds.get(),
            file_sd_read_errors_total: self.file_sd_read_errors.get(),
            scrape_pool_reloads_total: self.pool_reloads.get(),
            scrape_pool_reloads_failed_total: self.pool_reloads_failed.get(),
            target_sync_failed_total: self.target_sync_failed.get(),
            cache_flush_forced_total: self.cache_flush_forced.get(),
            ..Default::default()
        }
    }
}
