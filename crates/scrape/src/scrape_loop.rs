//! One target's scrape loop: wait for the target's offset, then every interval fetch, parse,
//! append (one appender, one commit per scrape), report and track staleness.

use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant, SystemTime};

use expfmt::{Entry, Format, Parser};
use model::relabel::RelabelConfig;
use model::{Labels, Timestamp};
use reqwest::header::{
    ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, USER_AGENT,
};
use storage::{Appendable, Appender, StorageError};
use tokio_util::sync::CancellationToken;
use web::client::Auth;

use crate::cache::{CacheEntry, ScrapeCache, SeriesEntry, Stamp};
use crate::metrics::Metrics;
use crate::sample_labels::{LabelLimits, check_limits, sample_labels};
use crate::target::{TargetHealth, TargetShared, scrape_offset};

/// Samples further in the future than this are rejected as out of bounds
/// (compat: Prometheus's `maxAheadTime`).
const MAX_AHEAD_MS: i64 = 10 * 60 * 1000;
/// Scrape timestamps within this of the ideal tick are moved onto it, so a series' timestamps
/// are evenly spaced and compress to almost nothing (compat: Prometheus's
/// `ScrapeTimestampTolerance` of 2ms, used when the interval is over 100× that).
const TIMESTAMP_TOLERANCE: Duration = Duration::from_millis(2);

/// What a stopped loop does next.
pub(crate) const RUNNING: u8 = 0;
/// The target went away: write staleness markers after two intervals.
pub(crate) const STOP_STALE: u8 = 1;
/// The pool is reloading: hand the cache to the loop that replaces this one.
pub(crate) const STOP_RELOAD: u8 = 2;

/// Settings shared by the loops of one pool.
pub(crate) struct LoopConfig {
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub sample_limit: usize,
    pub label_limits: LabelLimits,
    /// Bytes of the decompressed body; 0 for no limit.
    pub body_size_limit: usize,
    pub metric_relabel: Vec<RelabelConfig>,
    pub client: reqwest::Client,
    pub auth: Auth,
}

impl LoopConfig {
    /// Whether a cache built under `self` is valid under `other` (the target being the same).
    pub(crate) fn cache_compatible(&self, other: &LoopConfig) -> bool {
        self.honor_labels == other.honor_labels
            && self.metric_relabel == other.metric_relabel
            && self.label_limits == other.label_limits
    }
}

/// What every loop needs from the manager.
pub(crate) struct LoopDeps {
    pub appendable: Arc<dyn Appendable>,
    pub metrics: Arc<Metrics>,
    pub offset_seed: u64,
    pub user_agent: HeaderValue,
}

/// Why a scrape produced no samples.
enum Failure {
    BodySizeLimit,
    Other(String),
}

impl Failure {
    fn message(&self) -> String {
        match self {
            Failure::BodySizeLimit => "body size limit exceeded".to_string(),
            Failure::Other(m) => m.clone(),
        }
    }
}

/// Counts of one scrape, for the report series.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    total: u64,
    added: u64,
    series_added: u64,
    out_of_order: u64,
    duplicate: u64,
    out_of_bounds: u64,
}

pub(crate) struct ScrapeLoop {
    pub shared: Arc<TargetShared>,
    pub cfg: Arc<LoopConfig>,
    pub deps: Arc<LoopDeps>,
    pub cache: ScrapeCache,
    url: Result<reqwest::Url, String>,
    timeout_header: HeaderValue,
    body: Vec<u8>,
    unzipped: Vec<u8>,
}

impl ScrapeLoop {
    pub(crate) fn new(
        shared: Arc<TargetShared>,
        cfg: Arc<LoopConfig>,
        deps: Arc<LoopDeps>,
        cache: Option<ScrapeCache>,
    ) -> Self {
        let t = &shared.target;
        let url = reqwest::Url::parse(&t.url).map_err(|e| format!("parse {:?}: {e}", t.url));
        let secs = t.timeout.as_secs_f64();
        let timeout_header =
            HeaderValue::from_str(&format!("{secs}")).unwrap_or(HeaderValue::from_static("10"));
        let cache = cache.unwrap_or_else(|| ScrapeCache::new(&t.public));
        ScrapeLoop {
            shared,
            cfg,
            deps,
            cache,
            url,
            timeout_header,
            body: Vec::new(),
            unzipped: Vec::new(),
        }
    }

    /// Scrapes until `stop` fires, then either writes end-of-run staleness markers
    /// ([`STOP_STALE`]) or returns the cache for a replacement loop ([`STOP_RELOAD`]). When the
    /// manager shuts down (`shutdown`), no markers are written: a restart continues the series.
    pub(crate) async fn run(
        mut self,
        stop: CancellationToken,
        mode: Arc<AtomicU8>,
        shutdown: CancellationToken,
    ) -> Option<ScrapeCache> {
        let interval = self.shared.target.interval;
        let offset = scrape_offset(
            self.shared.target.hash,
            self.deps.offset_seed,
            interval,
            SystemTime::now(),
        );
        tokio::select! {
            _ = stop.cancelled() => {
                // A loop that inherited a cache on reload may be stopped before its first
                // scrape; the series of that cache still need their markers.
                let start = tokio::time::Instant::now() + interval;
                let ticker = tokio::time::interval_at(start, interval);
                return self.stopped(mode, ticker, shutdown).await;
            }
            _ = tokio::time::sleep(offset) => {}
        }
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut aligned = SystemTime::now();
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let scrape_time = align(SystemTime::now(), &mut aligned, interval);
            if !self.scrape_once(scrape_time, &stop).await {
                break;
            }
        }
        self.stopped(mode, ticker, shutdown).await
    }

    async fn stopped(
        mut self,
        mode: Arc<AtomicU8>,
        ticker: tokio::time::Interval,
        shutdown: CancellationToken,
    ) -> Option<ScrapeCache> {
        if shutdown.is_cancelled() {
            return None;
        }
        match mode.load(Ordering::SeqCst) {
            STOP_RELOAD => Some(self.cache),
            _ => {
                self.end_of_run_staleness(ticker, shutdown).await;
                None
            }
        }
    }

    /// compat: Prometheus waits until two more scrapes would have happened (plus 10%) before
    /// marking a removed target's series stale, so a target that merely moved to another pool
    /// or came back in the next discovery update does not get a gap; its newer samples make
    /// these markers out of order, and they are ignored. The markers carry the time of the
    /// first missed scrape.
    async fn end_of_run_staleness(
        &mut self,
        mut ticker: tokio::time::Interval,
        shutdown: CancellationToken,
    ) {
        if self.cache.iter == 0 {
            return;
        }
        let interval = self.shared.target.interval;
        let stale_time = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => SystemTime::now(),
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval / 10) => {}
        }
        let t = millis(stale_time);
        let mut app = self.deps.appendable.appender();
        self.cache.begin();
        self.cache.end_failure(&mut *app, t);
        self.cache.report_stale(&mut *app, t);
        if let Err(e) = app.commit() {
            tracing::warn!(scrape_url = %self.shared.target.url, "commit staleness markers: {e}");
        }
    }

    /// One scrape. Returns false when `stop` fired during the request.
    async fn scrape_once(&mut self, scrape_time: SystemTime, stop: &CancellationToken) -> bool {
        let start = Instant::now();
        let t = millis(scrape_time);
        let forced = self.shared.forced_error.lock().clone();
        let fetched = match forced {
            Some(msg) => Err(Failure::Other(msg)),
            None => {
                let shared = self.shared.clone();
                tokio::select! {
                    _ = stop.cancelled() => return false,
                    r = tokio::time::timeout(shared.target.timeout, self.fetch()) => match r {
                        Ok(r) => r,
                        Err(_) => Err(Failure::Other(format!("Get \"{}\": context deadline exceeded", shared.target.url))),
                    },
                }
            }
        };
        self.cache.begin();
        let mut app = self.deps.appendable.appender();
        let (stats, error) = match fetched {
            Ok(format) => {
                let body = if self.unzipped.is_empty() {
                    &self.body
                } else {
                    &self.unzipped
                };
                let target = &self.shared.target.public;
                let (stats, err) = append_body(
                    &mut self.cache,
                    &self.cfg,
                    &self.deps.metrics,
                    target,
                    &mut *app,
                    body,
                    format,
                    t,
                );
                match err {
                    None => {
                        self.cache.end_success(&mut *app, t);
                        (stats, None)
                    }
                    Some(msg) => {
                        app.rollback();
                        app = self.deps.appendable.appender();
                        self.cache.end_failure(&mut *app, t);
                        (stats, Some(msg))
                    }
                }
            }
            Err(f) => {
                if matches!(f, Failure::BodySizeLimit) {
                    self.deps.metrics.exceeded_body_size_limit.inc();
                }
                self.cache.end_failure(&mut *app, t);
                (Stats::default(), Some(f.message()))
            }
        };
        self.log_sample_errors(&stats);
        let duration = start.elapsed();
        let up = if error.is_none() { 1.0 } else { 0.0 };
        let values = [
            up,
            duration.as_secs_f64(),
            stats.total as f64,
            stats.added as f64,
            stats.series_added as f64,
        ];
        self.cache.append_report(&mut *app, t, values);
        if let Err(e) = app.commit() {
            tracing::warn!(scrape_url = %self.shared.target.url, "commit scrape: {e}");
        }
        self.shrink_buffers();
        if let Some(md) = self.cache.take_metadata_update() {
            *self.shared.metadata.lock() = md;
        }
        let mut st = self.shared.status.lock();
        st.health = if error.is_none() {
            TargetHealth::Up
        } else {
            TargetHealth::Down
        };
        if let Some(e) = &error {
            tracing::debug!(scrape_url = %self.shared.target.url, "scrape failed: {e}");
        }
        st.last_error = error.unwrap_or_default();
        st.last_scrape = Some(scrape_time);
        st.last_duration = duration;
        true
    }

    fn log_sample_errors(&self, s: &Stats) {
        let url = &self.shared.target.url;
        if s.out_of_order > 0 {
            tracing::warn!(scrape_url = %url, num_dropped = s.out_of_order, "error on ingesting out-of-order samples");
        }
        if s.duplicate > 0 {
            tracing::warn!(scrape_url = %url, num_dropped = s.duplicate, "error on ingesting samples with different value but same timestamp");
        }
        if s.out_of_bounds > 0 {
            tracing::warn!(scrape_url = %url, num_dropped = s.out_of_bounds, "error on ingesting samples that are too old or are too far into the future");
        }
    }

    /// GETs the target into `self.body` (and `self.unzipped` when gzip-encoded).
    async fn fetch(&mut self) -> Result<Format, Failure> {
        self.body.clear();
        self.unzipped.clear();
        let url = self.url.clone().map_err(Failure::Other)?;
        let req = self
            .cfg
            .client
            .get(url)
            .header(ACCEPT, expfmt::SCRAPE_ACCEPT_HEADER)
            .header(ACCEPT_ENCODING, "gzip")
            .header(USER_AGENT, self.deps.user_agent.clone())
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                self.timeout_header.clone(),
            );
        let req = self
            .cfg
            .auth
            .apply_auth(req)
            .map_err(|e| Failure::Other(error_chain(&e)))?;
        let get_err = |e: &reqwest::Error| {
            let why = go_dial_error(e, &self.shared.target.url).unwrap_or_else(|| error_chain(e));
            Failure::Other(format!("Get \"{}\": {why}", self.shared.target.url))
        };
        let mut resp = req.send().await.map_err(|e| get_err(&e))?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(Failure::Other(format!(
                "server returned HTTP status {}",
                resp.status()
            )));
        }
        let format = expfmt::format_from_content_type(
            resp.headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
        );
        let gzip = resp
            .headers()
            .get(CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let limit = self.cfg.body_size_limit;
        while let Some(chunk) = resp.chunk().await.map_err(|e| get_err(&e))? {
            // A compressed body larger than the limit decompresses to more than the limit.
            if limit > 0 && self.body.len() + chunk.len() > limit {
                return Err(Failure::BodySizeLimit);
            }
            self.body.extend_from_slice(&chunk);
        }
        if gzip {
            let mut dec = flate2::read::MultiGzDecoder::new(&self.body[..]);
            let cap = if limit > 0 {
                limit as u64 + 1
            } else {
                u64::MAX
            };
            (&mut dec)
                .take(cap)
                .read_to_end(&mut self.unzipped)
                .map_err(|e| Failure::Other(format!("gzip: {e}")))?;
            if limit > 0 && self.unzipped.len() > limit {
                return Err(Failure::BodySizeLimit);
            }
            if self.unzipped.is_empty() {
                // An empty decompressed body must not be mistaken for "not compressed".
                self.body.clear();
            }
        }
        Ok(format)
    }

    /// Gives back memory after an unusually large scrape.
    fn shrink_buffers(&mut self) {
        for b in [&mut self.body, &mut self.unzipped] {
            if b.capacity() > 8 << 20 && b.len() < b.capacity() / 4 {
                b.shrink_to(b.len() * 2);
            }
        }
    }
}

/// Appends samples of one scrape to one appender and counts them.
struct Batch<'a> {
    app: &'a mut dyn Appender,
    cfg: &'a LoopConfig,
    metrics: &'a Metrics,
    stats: Stats,
    iter: Stamp,
    sample_limit_hit: bool,
    max_t: Timestamp,
}

impl Batch<'_> {
    /// Appends one sample of a cached series. Errors fail the whole scrape.
    fn push(
        &mut self,
        entry: &mut CacheEntry,
        ts: Timestamp,
        tracked: bool,
        v: f64,
    ) -> Result<(), String> {
        let se = match entry {
            CacheEntry::Dropped => return Ok(()),
            CacheEntry::Series(se) => se,
        };
        self.stats.added += 1;
        if self.cfg.sample_limit > 0 && self.stats.added > self.cfg.sample_limit as u64 {
            // Keep parsing so the report counts every sample of the body.
            self.sample_limit_hit = true;
            return Ok(());
        }
        let res = if ts > self.max_t {
            Err(StorageError::OutOfBounds)
        } else {
            self.app.append(se.series_ref, &se.labels, ts, v)
        };
        match res {
            Ok(r) => {
                se.series_ref = r;
                if tracked && se.live != self.iter {
                    se.prev_live = se.live;
                    se.live = self.iter;
                }
            }
            Err(StorageError::OutOfOrder) => {
                self.stats.out_of_order += 1;
                self.metrics.sample_out_of_order.inc();
            }
            Err(StorageError::DuplicateSample) => {
                self.stats.duplicate += 1;
                self.metrics.sample_duplicate_timestamp.inc();
            }
            Err(StorageError::OutOfBounds) => {
                self.stats.out_of_bounds += 1;
                self.metrics.sample_out_of_bounds.inc();
            }
            Err(e) => return Err(format!("append sample: {e}")),
        }
        Ok(())
    }

    /// The cache entry for a series seen for the first time: its final labels, checked.
    fn new_entry(&mut self, s: &expfmt::Sample<'_>, target: &Labels) -> Result<CacheEntry, String> {
        let cfg = self.cfg;
        let Some(labels) = sample_labels(
            s.name,
            s.labels,
            target,
            cfg.honor_labels,
            &cfg.metric_relabel,
        ) else {
            return Ok(CacheEntry::Dropped);
        };
        if labels.metric_name().is_none_or(str::is_empty) {
            return Err("missing metric name (__name__ label)".to_string());
        }
        if let Err(e) = check_limits(&labels, &cfg.label_limits) {
            self.metrics.exceeded_label_limits.inc();
            return Err(e);
        }
        if !self.sample_limit_hit {
            self.stats.series_added += 1;
        }
        let hash = labels.stable_hash();
        Ok(CacheEntry::Series(SeriesEntry {
            series_ref: 0,
            labels,
            hash,
            live: 0,
            prev_live: 0,
        }))
    }
}

/// Parses `body` and appends every sample. Returns the counts and, if the scrape must fail
/// (parse error, a limit, a storage failure), why; the caller then rolls the appender back.
#[allow(clippy::too_many_arguments)]
fn append_body(
    cache: &mut ScrapeCache,
    cfg: &LoopConfig,
    metrics: &Metrics,
    target: &Labels,
    app: &mut dyn Appender,
    body: &[u8],
    format: Format,
    t: Timestamp,
) -> (Stats, Option<String>) {
    let mut b = Batch {
        app,
        cfg,
        metrics,
        stats: Stats::default(),
        iter: cache.stamp(),
        sample_limit_hit: false,
        max_t: t + MAX_AHEAD_MS,
    };
    let mut parser = Parser::new(body, format);
    loop {
        let entry = match parser.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => return (b.stats, Some(e.to_string())),
        };
        let s = match entry {
            Entry::Sample(s) => s,
            Entry::Help { metric, text } => {
                cache.set_help(metric, &text);
                continue;
            }
            Entry::Type { metric, kind } => {
                cache.set_type(metric, kind.as_str());
                continue;
            }
            Entry::Unit { metric, unit } => {
                cache.set_unit(metric, unit);
                continue;
            }
        };
        b.stats.total += 1;
        let (ts, tracked) = match s.timestamp_ms {
            Some(explicit) if cfg.honor_timestamps => (explicit, false),
            _ => (t, true),
        };
        // Steady state: one hash of the raw series bytes, compared with the next cache slot; no
        // allocation.
        let key = cache.key(s.series);
        let res = match cache.get_mut(key) {
            Some(e) => b.push(e, ts, tracked, s.value),
            None => match b.new_entry(&s, target) {
                Ok(e) => {
                    let e = cache.insert(key, e);
                    b.push(e, ts, tracked, s.value)
                }
                Err(msg) => Err(msg),
            },
        };
        if let Err(msg) = res {
            return (b.stats, Some(msg));
        }
    }
    if b.sample_limit_hit {
        metrics.exceeded_sample_limit.inc();
        return (b.stats, Some("sample limit exceeded".to_string()));
    }
    (b.stats, None)
}

fn millis(t: SystemTime) -> Timestamp {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Moves `now` onto the ideal tick when it is within the tolerance of it.
fn align(now: SystemTime, aligned: &mut SystemTime, interval: Duration) -> SystemTime {
    if interval <= TIMESTAMP_TOLERANCE * 100 {
        return now;
    }
    // A skipped tick moves the ideal time on by whole intervals.
    while now.duration_since(*aligned).is_ok_and(|d| d >= interval) {
        *aligned += interval;
    }
    match now.duration_since(*aligned) {
        Ok(d) if d <= TIMESTAMP_TOLERANCE => *aligned,
        _ => now,
    }
}

/// An error and its sources, joined by ": " like Go's wrapped errors print.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_snaps_within_tolerance_only() {
        let iv = Duration::from_secs(1);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut aligned = t0;
        assert_eq!(
            align(t0 + iv + Duration::from_millis(1), &mut aligned, iv),
            t0 + iv
        );
        let late = t0 + 2 * iv + Duration::from_millis(30);
        assert_eq!(align(late, &mut aligned, iv), late);
        assert_eq!(
            align(t0 + 5 * iv, &mut aligned, iv),
            t0 + 5 * iv,
            "skipped ticks advance the ideal time"
        );
        let mut a = t0;
        let small = Duration::from_millis(100);
        assert_eq!(
            align(t0 + small + Duration::from_millis(1), &mut a, small),
            t0 + small + Duration::from_millis(1)
        );
    }
}

#[cfg(test)]
mod perf {
    use super::*;

    struct Nop(u64);

    impl Appender for Nop {
        fn append(
            &mut self,
            r: storage::SeriesRef,
            _l: &Labels,
            _t: Timestamp,
            v: f64,
        ) -> storage::Result<storage::SeriesRef> {
            self.0 += v as u64;
            Ok(if r == 0 { self.0 + 1 } else { r })
        }
        fn commit(self: Box<Self>) -> storage::Result<()> {
            Ok(())
        }
        fn rollback(self: Box<Self>) {}
    }

    /// Many scrapes of the same body go through the cache: every sample is appended each
    /// round and no entry is re-created. (Speed is measured by `bench/`, not here.)
    #[test]
    fn steady_state_uses_cache() {
        let mut body = String::new();
        for i in 0..1000 {
            body.push_str(&format!(
                "http_requests_total{{method=\"GET\",code=\"200\",handler=\"/api/v1/h{i}\"}} {}\n",
                i * 7
            ));
        }
        let cfg = LoopConfig {
            honor_labels: false,
            honor_timestamps: true,
            sample_limit: 0,
            label_limits: LabelLimits::default(),
            body_size_limit: 0,
            metric_relabel: Vec::new(),
            client: reqwest::Client::new(),
            auth: Auth::None,
        };
        let metrics = Metrics::default();
        let target = model::labels! {"job" => "j", "instance" => "h:1"};
        let mut cache = ScrapeCache::new(&target);
        let mut app = Nop(0);
        let rounds = 50;
        for r in 0..rounds {
            cache.begin();
            let (stats, err) = append_body(
                &mut cache,
                &cfg,
                &metrics,
                &target,
                &mut app,
                body.as_bytes(),
                Format::Text,
                r,
            );
            assert!(err.is_none() && stats.total == 1000);
            cache.end_success(&mut app, r);
            assert_eq!(cache.len(), 1000, "one cache entry per series, every round");
        }
    }
}

/// Go's wording for a refused connection (`dial tcp 127.0.0.1:9100: connect: connection
/// refused`), which Prometheus shows as the target's last error; `None` for other errors.
fn go_dial_error(e: &reqwest::Error, url: &str) -> Option<String> {
    if !e.is_connect() {
        return None;
    }
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            let u = reqwest::Url::parse(url).ok()?;
            let host = match u.host_str()? {
                "localhost" => "127.0.0.1",
                h => h,
            };
            let port = u.port_or_known_default()?;
            return Some(format!(
                "dial tcp {host}:{port}: connect: connection refused"
            ));
        }
        cur = c.source();
    }
    None
}
