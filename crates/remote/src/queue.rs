//! An in-memory send queue for one remote write destination: samples fed in-process are
//! batched (up to `max_samples_per_send`, or after `batch_send_deadline`) and sent by a
//! [`WriteClient`]; recoverable failures are retried with exponential backoff between
//! `min_backoff` and `max_backoff` (or the server's `Retry-After`), others drop the batch
//! and are counted.
//!
//! Bounded: when `capacity` samples wait, [`QueueHandle::push`] waits too, so a stalled
//! receiver slows the feed instead of growing memory. This queue is not durable; the
//! WAL-tailing, disk-backed queue of issue 5 builds on its batching and retry policy.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use model::Labels;
use model::relabel::{self, RelabelConfig};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{SendError, WriteClient};
use crate::codec::error_chain;
use crate::proto::{Label, Sample, TimeSeries, WriteRequest};

/// `queue_config` settings used by this queue; the defaults are Prometheus 2.42's.
#[derive(Debug, Clone, Copy)]
pub struct QueueConfig {
    pub capacity: usize,
    pub max_samples_per_send: usize,
    pub batch_send_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 2500,
            max_samples_per_send: 500,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// One sample to send.
#[derive(Debug, Clone)]
pub struct QueuedSample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
}

/// Counters of one queue, named after Prometheus's `prometheus_remote_storage_*` metrics.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Samples sent successfully (`samples_total`).
    pub samples_sent: AtomicU64,
    /// Samples dropped after a non-recoverable error (`samples_failed_total`).
    pub samples_failed: AtomicU64,
    /// Samples dropped by `write_relabel_configs` (`samples_dropped_total`).
    pub samples_dropped: AtomicU64,
    /// Samples sent again after a recoverable error (`samples_retried_total`).
    pub samples_retried: AtomicU64,
    /// Samples accepted by the queue and not yet sent or dropped (`samples_pending`).
    pub samples_pending: AtomicI64,
    /// Highest timestamp sent successfully, ms (`queue_highest_sent_timestamp_seconds`).
    pub highest_sent_timestamp: AtomicI64,
}

/// The feeding side of a queue.
#[derive(Clone)]
pub struct QueueHandle {
    tx: mpsc::Sender<QueuedSample>,
    stats: Arc<QueueStats>,
    relabel: Arc<[RelabelConfig]>,
}

/// The queue was stopped.
#[derive(Debug, thiserror::Error)]
#[error("remote write queue is stopped")]
pub struct QueueClosed;

impl QueueHandle {
    /// Applies `write_relabel_configs` to every sample pushed from now on.
    pub fn with_relabel(mut self, cfgs: Vec<RelabelConfig>) -> Self {
        self.relabel = cfgs.into();
        self
    }

    /// Queues a sample after relabelling, waiting while the queue is full. A sample whose
    /// series the relabelling drops is counted in `samples_dropped` and not queued.
    pub async fn push(&self, mut s: QueuedSample) -> Result<(), QueueClosed> {
        if !self.relabel.is_empty() {
            match relabel::process(&s.labels, &self.relabel) {
                Some(l) if !l.is_empty() => s.labels = l,
                _ => {
                    self.stats.samples_dropped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
            }
        }
        self.tx.send(s).await.map_err(|_| QueueClosed)?;
        self.stats.samples_pending.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }
}

/// The sending side of a queue; run it with [`QueueRunner::run`].
pub struct QueueRunner {
    rx: mpsc::Receiver<QueuedSample>,
    client: WriteClient,
    cfg: QueueConfig,
    stats: Arc<QueueStats>,
}

/// A queue sending to `client`.
pub fn queue(client: WriteClient, cfg: QueueConfig) -> (QueueHandle, QueueRunner) {
    let (tx, rx) = mpsc::channel(cfg.capacity.max(1));
    let stats = Arc::new(QueueStats::default());
    (
        QueueHandle {
            tx,
            stats: stats.clone(),
            relabel: Arc::from(Vec::new()),
        },
        QueueRunner {
            rx,
            client,
            cfg,
            stats,
        },
    )
}

impl QueueRunner {
    /// Sends batches until `shutdown`, then sends what is already queued once more, without
    /// retries, and returns. Also returns when every handle is dropped and the queue is empty.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let max = self.cfg.max_samples_per_send.max(1);
        let mut batch: Vec<QueuedSample> = Vec::with_capacity(max);
        loop {
            let deadline = Instant::now() + self.cfg.batch_send_deadline;
            let open = loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break false,
                    r = self.rx.recv() => match r {
                        Some(s) => {
                            batch.push(s);
                            if batch.len() >= max { break true; }
                        }
                        None => break false,
                    },
                    _ = tokio::time::sleep_until(deadline), if !batch.is_empty() => break true,
                }
            };
            if !open {
                break;
            }
            self.send_with_retries(&mut batch, &shutdown).await;
        }
        // Shutdown: one last attempt for what is queued.
        self.rx.close();
        while let Some(s) = self.rx.recv().await {
            batch.push(s);
        }
        for part in batch.chunks(max) {
            let result = self.client.write(&build_request(part)).await;
            self.account(part, result);
        }
    }

    async fn send_with_retries(&self, batch: &mut Vec<QueuedSample>, shutdown: &CancellationToken) {
        let req = build_request(batch);
        let mut backoff = self.cfg.min_backoff;
        loop {
            match self.client.write(&req).await {
                Ok(()) => {
                    self.account(batch, Ok(()));
                    break;
                }
                Err(SendError::Recoverable { retry_after, .. }) if !shutdown.is_cancelled() => {
                    let wait = retry_after.unwrap_or(backoff);
                    tracing::warn!(
                        samples = batch.len(),
                        ?wait,
                        "remote write failed, retrying"
                    );
                    self.stats
                        .samples_retried
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                    backoff = (backoff * 2).min(self.cfg.max_backoff);
                }
                Err(e) => {
                    self.account(batch, Err(e));
                    break;
                }
            }
        }
        batch.clear();
    }

    fn account(&self, batch: &[QueuedSample], result: Result<(), SendError>) {
        let n = batch.len() as u64;
        self.stats
            .samples_pending
            .fetch_sub(n as i64, Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.stats.samples_sent.fetch_add(n, Ordering::Relaxed);
                if let Some(max_t) = batch.iter().map(|s| s.t).max() {
                    self.stats
                        .highest_sent_timestamp
                        .fetch_max(max_t, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::error!(samples = n, error = %error_chain(&e), "remote write batch dropped");
                self.stats.samples_failed.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

/// Groups samples by series, keeping their order within each series.
pub fn build_request(samples: &[QueuedSample]) -> WriteRequest {
    let mut index: HashMap<&Labels, usize> = HashMap::new();
    let mut timeseries: Vec<TimeSeries> = Vec::new();
    for s in samples {
        let i = *index.entry(&s.labels).or_insert_with(|| {
            timeseries.push(TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|l| Label::new(l.name, l.value))
                    .collect(),
                ..Default::default()
            });
            timeseries.len() - 1
        });
        timeseries[i].samples.push(Sample {
            value: s.v,
            timestamp: s.t,
        });
    }
    WriteRequest {
        timeseries,
        metadata: vec![],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use axum::Router;
    use axum::body::Bytes;
    use axum::routing::post;

    use super::*;
    use crate::client::WriteClientConfig;
    use crate::codec::decode_write_request;

    #[derive(Default)]
    struct Server {
        /// Statuses to answer, in order; 204 once empty.
        script: Mutex<VecDeque<u16>>,
        /// Requests answered with 204.
        accepted: Mutex<Vec<WriteRequest>>,
    }

    async fn start(script: &[u16]) -> (String, Arc<Server>) {
        let srv = Arc::new(Server {
            script: Mutex::new(script.iter().copied().collect()),
            ..Default::default()
        });
        let s2 = srv.clone();
        let app = Router::new().route(
            "/w",
            post(move |body: Bytes| {
                let srv = s2.clone();
                async move {
                    let status = srv.script.lock().unwrap().pop_front().unwrap_or(204);
                    if status == 204 {
                        let req = decode_write_request(&body, 1 << 20).unwrap();
                        srv.accepted.lock().unwrap().push(req);
                    }
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/w", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        (url, srv)
    }

    fn cfg() -> QueueConfig {
        QueueConfig {
            capacity: 100,
            max_samples_per_send: 3,
            batch_send_deadline: Duration::from_millis(50),
            min_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
        }
    }

    fn sample(job: &str, t: i64) -> QueuedSample {
        QueuedSample {
            labels: Labels::from_pairs([("__name__", "m"), ("job", job)]),
            t,
            v: t as f64 / 2.0,
        }
    }

    async fn until(mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "condition not met in time");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Every sample arrives, in order per series, through 503s; the counters add up.
    #[tokio::test]
    async fn batches_and_retries() {
        let (url, srv) = start(&[503, 503, 500]).await;
        let client = WriteClient::new(&WriteClientConfig::new(url)).unwrap();
        let (h, runner) = queue(client, cfg());
        let stop = CancellationToken::new();
        let task = tokio::spawn(runner.run(stop.clone()));
        for t in 1..=7 {
            h.push(sample(if t % 2 == 0 { "a" } else { "b" }, t))
                .await
                .unwrap();
        }
        let st = h.stats().clone();
        until(|| st.samples_sent.load(Ordering::Relaxed) == 7).await;
        assert_eq!(st.samples_pending.load(Ordering::Relaxed), 0);
        assert!(st.samples_retried.load(Ordering::Relaxed) >= 3);
        assert_eq!(st.highest_sent_timestamp.load(Ordering::Relaxed), 7);
        let mut got: HashMap<String, Vec<i64>> = HashMap::new();
        for r in srv.accepted.lock().unwrap().iter() {
            assert!(r.timeseries.iter().map(|s| s.samples.len()).sum::<usize>() <= 3);
            for ts in &r.timeseries {
                let e = got.entry(ts.labels[1].value.clone()).or_default();
                e.extend(ts.samples.iter().map(|s| s.timestamp));
            }
        }
        assert_eq!(got["a"], [2, 4, 6]);
        assert_eq!(got["b"], [1, 3, 5, 7]);
        stop.cancel();
        task.await.unwrap();
    }

    /// A 400 drops the batch and counts it; the queue goes on with the next one.
    #[tokio::test]
    async fn non_recoverable_drops() {
        let (url, srv) = start(&[400]).await;
        let client = WriteClient::new(&WriteClientConfig::new(url)).unwrap();
        let (h, runner) = queue(client, cfg());
        let stop = CancellationToken::new();
        let task = tokio::spawn(runner.run(stop.clone()));
        for t in 1..=4 {
            h.push(sample("a", t)).await.unwrap();
        }
        let st = h.stats().clone();
        until(|| st.samples_sent.load(Ordering::Relaxed) == 1).await;
        assert_eq!(st.samples_failed.load(Ordering::Relaxed), 3);
        assert_eq!(
            srv.accepted.lock().unwrap()[0].timeseries[0].samples[0].timestamp,
            4
        );
        stop.cancel();
        task.await.unwrap();
    }

    /// `write_relabel_configs` rewrite or drop samples before they are queued.
    #[tokio::test]
    async fn relabels() {
        let (url, srv) = start(&[]).await;
        let client = WriteClient::new(&WriteClientConfig::new(url)).unwrap();
        let (h, runner) = queue(client, cfg());
        let rules: Vec<RelabelConfig> = serde_saphyr::from_str(
            "- {source_labels: [job], regex: b, action: drop}\n- {target_label: env, replacement: prod}\n",
        )
        .unwrap();
        let h = h.with_relabel(rules);
        let stop = CancellationToken::new();
        let task = tokio::spawn(runner.run(stop.clone()));
        for (job, t) in [("a", 1), ("b", 2), ("a", 3)] {
            h.push(sample(job, t)).await.unwrap();
        }
        let st = h.stats().clone();
        until(|| st.samples_sent.load(Ordering::Relaxed) == 2).await;
        assert_eq!(st.samples_dropped.load(Ordering::Relaxed), 1);
        let first = srv.accepted.lock().unwrap()[0].timeseries[0].clone();
        assert_eq!(first.labels[1], Label::new("env", "prod"));
        stop.cancel();
        task.await.unwrap();
    }

    /// A partial batch leaves after the deadline; shutdown sends what is still queued.
    #[tokio::test]
    async fn deadline_and_shutdown_flush() {
        let (url, srv) = start(&[]).await;
        let client = || WriteClient::new(&WriteClientConfig::new(&url)).unwrap();
        let (h, runner) = queue(client(), cfg());
        let stop = CancellationToken::new();
        let task = tokio::spawn(runner.run(stop.clone()));
        h.push(sample("a", 1)).await.unwrap();
        let st = h.stats().clone();
        until(|| st.samples_sent.load(Ordering::Relaxed) == 1).await;
        stop.cancel();
        task.await.unwrap();
        assert!(
            h.push(sample("a", 2)).await.is_err(),
            "closed after shutdown"
        );

        let mut c = cfg();
        c.batch_send_deadline = Duration::from_secs(3600);
        c.max_samples_per_send = 100;
        let (h, runner) = queue(client(), c);
        let stop = CancellationToken::new();
        let task = tokio::spawn(runner.run(stop.clone()));
        for t in 10..15 {
            h.push(sample("b", t)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(h.stats().samples_sent.load(Ordering::Relaxed), 0);
        stop.cancel();
        task.await.unwrap();
        assert_eq!(h.stats().samples_sent.load(Ordering::Relaxed), 5);
        let accepted = srv.accepted.lock().unwrap();
        assert_eq!(accepted.last().unwrap().timeseries[0].samples.len(), 5);
    }
}
