//! The durable remote write queue of one destination.
//!
//! Samples come in from a reader of the write-ahead log (the [`Feeder`]), tagged with the WAL
//! position of the record they were read from. They are hashed by series into *lanes*,
//! batched per lane, and sent by a pool of *shards* (concurrent senders). While the
//! destination answers, batches wait in memory. As soon as a send fails with a retryable error
//! (or the memory buffer of a lane is full), the lane switches to its on-disk backlog
//! ([`crate::spool::Spool`]): the batch being retried and everything behind it go to disk, in
//! order, and stay there until they are acknowledged — across restarts, and regardless of how
//! far the WAL has been truncated. The backlog is bounded by `max_disk_usage`; what the quota
//! drops is counted, never silent.
//!
//! Progress: the WAL position up to which every sample is either acknowledged or durably in a
//! backlog is written to `progress.json` (after fsyncing the backlogs), together with each
//! backlog's read cursor. A restart resumes reading the WAL there; samples between that position
//! and the crash may be sent twice, which receivers treat as duplicates.
//!
//! Shards: like Prometheus's queue manager, the shard count follows the load — every
//! `shard_update_interval` (10 s) the time one sample takes to send, times the incoming rate
//! plus 5 % of the samples pending, gives the shards wanted ([`desired_shards`]); the count
//! changes when that is more than 30 % away ([`next_shard_count`]), within `min_shards` and
//! `max_shards`. Unlike Prometheus, resharding never moves a series: the lane count stays fixed
//! (at most [`MAX_LANES`], and as written while a backlog exists) and a shard takes whichever
//! lane is free, so "draining before redistributing" is per request — a lane is never sent by
//! two shards at once. The lanes therefore cap the shards.
//!
//! Order (the default): a lane sends its backlog before newer data, so every series reaches the
//! receiver in time order — required by receivers that reject out-of-order samples (Prometheus
//! 2.42 answers 400 and drops the whole request; vigil). After an outage, lanes without a
//! backlog send new data at once and the others catch up in parallel; a series is current at
//! the receiver once its lane's backlog is through. `live_first` (a config switch, off by
//! default) sends every lane's new batches first and its backlog beside them, oldest first:
//! dashboards are current at once, but only receivers that accept out-of-order samples keep
//! the backlog (VictoriaMetrics, InfluxDB, Prometheus with an `out_of_order_time_window` longer
//! than the outage).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use model::Labels;
use model::relabel::{self, RelabelConfig};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::client::{SendError, WriteClient};
use crate::codec::{error_chain, snappy_encode};
use crate::queue::QueueConfig;
use crate::spool::{Cursor, Spool};

/// A position in the source log (segment, byte offset), ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
pub struct SourcePos {
    pub segment: u32,
    pub offset: u64,
}

/// Settings of one destination's durable queue.
#[derive(Debug, Clone)]
pub struct DurableConfig {
    pub queue: QueueConfig,
    /// Shards (concurrent senders) at least and at most; the count in between follows the
    /// backlog and the send latency.
    pub min_shards: usize,
    pub max_shards: usize,
    /// How often the shard count is reconsidered (Prometheus: 10s).
    pub shard_update_interval: Duration,
    /// Send new samples before the disk backlog. Only for receivers that accept out-of-order
    /// samples: a Prometheus receiver without an out-of-order window refuses whole requests.
    pub live_first: bool,
    /// Upper bound of the on-disk backlog, bytes, over all shards.
    pub max_disk_usage: u64,
    /// The destination's own directory (backlogs and progress).
    pub dir: PathBuf,
    /// How often progress is made durable.
    pub flush_interval: Duration,
    pub relabel: Vec<RelabelConfig>,
    /// Appended to every series unless it has the label already (Prometheus's external labels).
    pub external_labels: Labels,
}

/// Why the queue could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("remote write queue in {dir}: {source}")]
pub struct DurableError {
    pub dir: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Counters and gauges of a destination (`prometheus_remote_storage_*` and vigil's
/// data-at-risk gauges).
#[derive(Debug, Default)]
pub struct DurableStats {
    pub samples_in: AtomicU64,
    pub samples_sent: AtomicU64,
    pub samples_failed: AtomicU64,
    pub samples_retried: AtomicU64,
    /// Dropped by `write_relabel_configs`.
    pub samples_dropped: AtomicU64,
    /// Dropped because the backlog hit `max_disk_usage`.
    pub samples_dropped_quota: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub highest_sent_timestamp: AtomicI64,
    pub highest_read_timestamp: AtomicI64,
    pub backlog_bytes: AtomicU64,
    pub backlog_samples: AtomicU64,
    pub memory_samples: AtomicU64,
    pub batches_spooled: AtomicU64,
    /// Samples handed to the lanes (after relabelling): the incoming rate for resharding.
    pub samples_queued: AtomicU64,
    /// Time spent in sends, all shards together, nanoseconds.
    pub send_nanos: AtomicU64,
    /// Milliseconds after the destination opened of the last successful send (0: none yet).
    pub last_success_ms: AtomicU64,
    /// `f64` bits of the last computed desired shard count.
    pub shards_desired: AtomicU64,
}

#[derive(Debug, Serialize, Deserialize, Default)]
struct ProgressFile {
    wal: Option<SourcePos>,
    spools: Vec<Cursor>,
}

/// A series as it goes out: its final labels (external labels and relabelling applied),
/// already encoded as the `Label` fields of a `TimeSeries` message, and its shard.
struct OutSeries {
    labels_pb: Box<[u8]>,
    lane: usize,
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Field 1 (`labels`) of `TimeSeries`, once per label, each a `Label{name=1, value=2}`.
fn encode_labels(labels: &Labels) -> Box<[u8]> {
    let mut out = Vec::new();
    let mut msg = Vec::new();
    for l in labels.iter() {
        msg.clear();
        msg.push(0x0a);
        put_uvarint(&mut msg, l.name.len() as u64);
        msg.extend_from_slice(l.name.as_bytes());
        msg.push(0x12);
        put_uvarint(&mut msg, l.value.len() as u64);
        msg.extend_from_slice(l.value.as_bytes());
        out.push(0x0a);
        put_uvarint(&mut out, msg.len() as u64);
        out.extend_from_slice(&msg);
    }
    out.into_boxed_slice()
}

struct Batch {
    seq: u64,
    samples: Vec<(Arc<OutSeries>, i64, f64)>,
    created: Instant,
}

impl Batch {
    /// The snappy-compressed `WriteRequest`: one `TimeSeries` per sample, as Prometheus sends.
    fn encode(&self) -> (Bytes, u32, i64, i64) {
        let mut pb = Vec::with_capacity(self.samples.len() * 128);
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        for (s, t, v) in &self.samples {
            min_t = min_t.min(*t);
            max_t = max_t.max(*t);
            // Sample{value=1 (fixed64), timestamp=2 (varint)}.
            let mut sample = [0u8; 1 + 8 + 1 + 10];
            sample[0] = 0x09;
            sample[1..9].copy_from_slice(&v.to_bits().to_le_bytes());
            sample[9] = 0x10;
            let mut n = 10;
            let mut x = *t as u64;
            while x >= 0x80 {
                sample[n] = (x as u8) | 0x80;
                x >>= 7;
                n += 1;
            }
            sample[n] = x as u8;
            n += 1;
            let ts_len = s.labels_pb.len() + 1 + 1 + n;
            pb.push(0x0a);
            put_uvarint(&mut pb, ts_len as u64);
            pb.extend_from_slice(&s.labels_pb);
            pb.push(0x12);
            pb.push(n as u8);
            pb.extend_from_slice(&sample[..n]);
        }
        if self.samples.is_empty() {
            (min_t, max_t) = (0, 0);
        }
        (
            Bytes::from(snappy_encode(&pb)),
            self.samples.len() as u32,
            min_t,
            max_t,
        )
    }
}

/// One lane: the unit of order. A series always maps to the same lane (by label hash over the
/// lane count, fixed while a backlog exists), and a lane's data goes out one request at a time
/// — except in `live_first` mode, where its live batches and its backlog are two streams.
struct LaneState {
    mem: VecDeque<Batch>,
    mem_samples: usize,
    spool: Spool,
    /// A memory batch of this lane is being sent.
    live_busy: bool,
    /// The backlog head of this lane is being sent.
    disk_busy: bool,
    /// Memory went over capacity while a memory batch was in flight; spilling then would put
    /// newer batches on disk before the one in flight, so the spill waits for it.
    overflow: bool,
}

struct Lane {
    state: Mutex<LaneState>,
    /// Timestamp of the oldest sample not yet acknowledged (`i64::MAX` when idle).
    oldest: AtomicI64,
}

/// Batches not yet acknowledged or spooled, by sequence number, with the WAL position their
/// first sample came from.
#[derive(Default)]
struct Progress {
    pending: BTreeMap<u64, SourcePos>,
    /// Everything before this position has been handed to the queue.
    read: Option<SourcePos>,
    next_seq: u64,
}

impl Progress {
    fn committed(&self) -> Option<SourcePos> {
        match self.pending.first_key_value() {
            Some((_, p)) => Some(*p),
            None => self.read,
        }
    }
}

/// One remote write destination.
pub struct Destination {
    client: WriteClient,
    cfg: DurableConfig,
    lanes: Vec<Lane>,
    progress: Mutex<Progress>,
    stats: Arc<DurableStats>,
    /// The WAL position to resume from, as loaded.
    resume: Option<SourcePos>,
    /// Shards (concurrent senders) wanted now; senders with a higher id stop.
    target_shards: AtomicUsize,
    /// Woken when a batch is queued.
    work: Notify,
    /// Reference point of `last_success_ms`.
    born: Instant,
}

fn lane_of(labels: &Labels, n: usize) -> usize {
    (labels.stable_hash() % n as u64) as usize
}

/// Upper bound of lanes for a new destination: the lanes bound how many shards can send at
/// once, and each lane costs an open batch and a backlog directory.
pub const MAX_LANES: usize = 16;

impl Destination {
    /// Opens the destination's directory: its backlogs and saved progress.
    pub fn open(client: WriteClient, cfg: DurableConfig) -> Result<Arc<Destination>, DurableError> {
        let err = |source| DurableError {
            dir: cfg.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&cfg.dir).map_err(err)?;
        let saved: ProgressFile = match std::fs::read(cfg.dir.join("progress.json")) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!(dir = %cfg.dir.display(), error = %e, "ignoring unreadable remote write progress");
                ProgressFile::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ProgressFile::default(),
            Err(e) => return Err(err(e)),
        };
        // While a backlog exists, keep the lane count it was written with: series are mapped
        // to lanes by count, and a new mapping could send a series' newer samples (new lane)
        // before its backlog (old lane), which receivers refuse as out of order.
        let mut existing = 0;
        while cfg.dir.join(format!("shard-{existing}")).is_dir() {
            existing += 1;
        }
        let backlog = (0..existing).any(|i| {
            std::fs::read_dir(cfg.dir.join(format!("shard-{i}")))
                .map(|d| d.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
                .unwrap_or(false)
        });
        let n = if backlog {
            existing
        } else {
            cfg.max_shards.min(MAX_LANES).max(cfg.min_shards).max(1)
        };
        let per_lane_quota = (cfg.max_disk_usage / n as u64).max(1 << 20);
        let stats = Arc::new(DurableStats::default());
        let mut lanes = Vec::with_capacity(n);
        for i in 0..n {
            let spool = Spool::open(
                &cfg.dir.join(format!("shard-{i}")),
                per_lane_quota,
                saved.spools.get(i).copied(),
            )
            .map_err(err)?;
            stats
                .backlog_samples
                .fetch_add(spool.samples(), Ordering::Relaxed);
            stats
                .backlog_bytes
                .fetch_add(spool.bytes(), Ordering::Relaxed);
            lanes.push(Lane {
                state: Mutex::new(LaneState {
                    mem: VecDeque::new(),
                    mem_samples: 0,
                    spool,
                    live_busy: false,
                    disk_busy: false,
                    overflow: false,
                }),
                oldest: AtomicI64::new(i64::MAX),
            });
        }
        stats
            .highest_sent_timestamp
            .store(i64::MIN, Ordering::Relaxed);
        let start = cfg.min_shards.clamp(1, n);
        stats
            .shards_desired
            .store((start as f64).to_bits(), Ordering::Relaxed);
        Ok(Arc::new(Destination {
            client,
            cfg,
            lanes,
            progress: Mutex::new(Progress::default()),
            stats,
            resume: saved.wal,
            target_shards: AtomicUsize::new(start),
            work: Notify::new(),
            born: Instant::now(),
        }))
    }

    /// Where the WAL reader should start: the saved progress, or `None` for "from now on".
    pub fn resume_position(&self) -> Option<SourcePos> {
        self.resume
    }

    pub fn stats(&self) -> &Arc<DurableStats> {
        &self.stats
    }

    /// Lanes (units of per-series order); the most shards that can send at once.
    pub fn lane_count(&self) -> usize {
        self.lanes.len()
    }

    /// Shards (concurrent senders) running now.
    pub fn shard_count(&self) -> usize {
        self.target_shards.load(Ordering::Relaxed)
    }

    /// The highest shard count allowed: `max_shards`, but never more than the lanes.
    fn max_shards(&self) -> usize {
        self.cfg.max_shards.min(self.lanes.len()).max(1)
    }

    fn min_shards(&self) -> usize {
        self.cfg.min_shards.clamp(1, self.max_shards())
    }

    /// Age of the oldest sample not yet acknowledged, relative to `now_ms`, in seconds (0 when
    /// everything is sent).
    pub fn oldest_unsent_age(&self, now_ms: i64) -> f64 {
        let oldest = self.oldest_unsent();
        if oldest == i64::MAX {
            0.0
        } else {
            ((now_ms - oldest).max(0)) as f64 / 1000.0
        }
    }

    fn oldest_unsent(&self) -> i64 {
        self.lanes
            .iter()
            .map(|s| s.oldest.load(Ordering::Relaxed))
            .min()
            .unwrap_or(i64::MAX)
    }

    /// The feeding side; one per destination.
    pub fn feeder(self: &Arc<Self>) -> Feeder {
        let n = self.lanes.len();
        Feeder {
            dest: self.clone(),
            open: (0..n).map(|_| None).collect(),
            series: HashMap::new(),
        }
    }

    /// Queues a closed batch on its lane: in memory while the lane is healthy, else on disk.
    fn enqueue(&self, lane: usize, batch: Batch) {
        let sh = &self.lanes[lane];
        if let Some(min_t) = batch.samples.iter().map(|s| s.1).min() {
            sh.oldest.fetch_min(min_t, Ordering::Relaxed);
        }
        let n = batch.samples.len();
        self.stats
            .samples_queued
            .fetch_add(n as u64, Ordering::Relaxed);
        let mut st = sh.state.lock();
        let capacity = self
            .cfg
            .queue
            .capacity
            .max(self.cfg.queue.max_samples_per_send);
        let over = st.mem_samples + n > capacity;
        // Ordered mode: once a lane has a backlog, everything newer goes behind it.
        let behind = !self.cfg.live_first && !st.spool.is_empty();
        if (over || behind) && !st.live_busy {
            // The lane is behind: keep order by spilling everything in memory first.
            let mut seqs = self.spill_mem(&mut st);
            self.spool_batch(&mut st, &batch);
            seqs.push(batch.seq);
            drop(st);
            self.forget(seqs);
        } else {
            st.overflow |= over;
            st.mem_samples += n;
            st.mem.push_back(batch);
            drop(st);
        }
        self.update_gauges();
        self.work.notify_one();
    }

    /// Writes every memory batch of the lane to its backlog, oldest first; their sequence
    /// numbers.
    fn spill_mem(&self, st: &mut LaneState) -> Vec<u64> {
        let mut seqs = Vec::with_capacity(st.mem.len());
        while let Some(b) = st.mem.pop_front() {
            st.mem_samples -= b.samples.len();
            self.spool_batch(st, &b);
            seqs.push(b.seq);
        }
        st.overflow = false;
        seqs
    }

    /// Batches now durable in a backlog no longer hold back the WAL progress.
    fn forget(&self, seqs: Vec<u64>) {
        let mut p = self.progress.lock();
        for s in seqs {
            p.pending.remove(&s);
        }
    }

    fn spool_batch(&self, st: &mut LaneState, b: &Batch) {
        let (body, count, min_t, max_t) = b.encode();
        match st.spool.append(&body, count, min_t, max_t) {
            Ok(dropped) => {
                self.stats.batches_spooled.fetch_add(1, Ordering::Relaxed);
                if dropped > 0 {
                    tracing::error!(
                        samples = dropped,
                        "remote write backlog over max_disk_usage: oldest samples dropped"
                    );
                    self.stats
                        .samples_dropped_quota
                        .fetch_add(dropped, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, samples = count, "remote write backlog write failed; samples dropped");
                self.stats
                    .samples_failed
                    .fetch_add(u64::from(count), Ordering::Relaxed);
            }
        }
    }

    fn update_gauges(&self) {
        let (mut bytes, mut samples, mut mem) = (0, 0, 0);
        for sh in &self.lanes {
            let st = sh.state.lock();
            bytes += st.spool.bytes();
            samples += st.spool.samples();
            mem += st.mem_samples as u64;
        }
        self.stats.backlog_bytes.store(bytes, Ordering::Relaxed);
        self.stats.backlog_samples.store(samples, Ordering::Relaxed);
        self.stats.memory_samples.store(mem, Ordering::Relaxed);
    }

    /// Fsyncs the backlogs and writes the progress file.
    pub fn persist(&self) -> std::io::Result<()> {
        let mut cursors = Vec::with_capacity(self.lanes.len());
        for sh in &self.lanes {
            let mut st = sh.state.lock();
            st.spool.sync()?;
            cursors.push(st.spool.cursor());
        }
        let wal = self.progress.lock().committed().or(self.resume);
        let file = ProgressFile {
            wal,
            spools: cursors,
        };
        let tmp = self.cfg.dir.join("progress.json.tmp");
        let body = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_data()?;
        }
        std::fs::rename(&tmp, self.cfg.dir.join("progress.json"))?;
        Ok(())
    }

    /// Runs the shards, the resharding loop and the progress flusher until `shutdown`. On
    /// shutdown, batches still in memory are written to the backlog, so a restart sends them.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tasks = tokio::task::JoinSet::new();
        // Sender ids alive, by task id.
        let mut alive: HashMap<tokio::task::Id, usize> = HashMap::new();
        let mut tick = tokio::time::interval(self.cfg.flush_interval);
        let mut reshard = tokio::time::interval(self.cfg.shard_update_interval);
        reshard.tick().await;
        let mut rates = RateTracker::default();
        loop {
            // Start senders up to the target; those above it stop by themselves.
            let target = self.target_shards.load(Ordering::Relaxed);
            for id in 0..target {
                if !alive.values().any(|&a| a == id) {
                    let d = self.clone();
                    let sd = shutdown.clone();
                    let h = tasks.spawn(async move { d.shard_loop(id, sd).await });
                    alive.insert(h.id(), id);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    let d = self.clone();
                    let res = tokio::task::spawn_blocking(move || d.persist()).await;
                    if let Ok(Err(e)) = res {
                        tracing::error!(error = %e, dir = %self.cfg.dir.display(), "remote write progress not saved");
                    }
                    self.update_gauges();
                }
                _ = reshard.tick() => self.update_shards(&mut rates),
                Some(done) = tasks.join_next_with_id() => {
                    // A sender above the target stopped (or failed: it is started again).
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => e.id(),
                    };
                    alive.remove(&id);
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        self.spill_all();
        if let Err(e) = self.persist() {
            tracing::error!(error = %e, "remote write progress not saved at shutdown");
        }
    }

    /// One resharding decision (Prometheus's `calculateDesiredShards` and `shouldReshard`).
    fn update_shards(&self, rates: &mut RateTracker) {
        let interval = self.cfg.shard_update_interval.as_secs_f64().max(1e-3);
        let st = &self.stats;
        rates.tick(
            st.samples_queued.load(Ordering::Relaxed),
            st.samples_sent.load(Ordering::Relaxed) + st.samples_failed.load(Ordering::Relaxed),
            st.send_nanos.load(Ordering::Relaxed),
            interval,
        );
        let pending =
            st.memory_samples.load(Ordering::Relaxed) + st.backlog_samples.load(Ordering::Relaxed);
        let oldest = self.oldest_unsent();
        let highest = st.highest_read_timestamp.load(Ordering::Relaxed);
        let delay_s = if oldest == i64::MAX || highest == 0 {
            0.0
        } else {
            ((highest - oldest).max(0)) as f64 / 1000.0
        };
        let inputs = ShardInputs {
            in_rate: rates.data_in.rate,
            out_rate: rates.data_out.rate,
            out_duration_rate: rates.out_duration.rate,
            pending: pending as f64,
        };
        let Some(desired) = desired_shards(&inputs) else {
            return;
        };
        st.shards_desired
            .store(desired.to_bits(), Ordering::Relaxed);
        let current = self.target_shards.load(Ordering::Relaxed);
        let next = next_shard_count(
            current,
            desired,
            delay_s,
            self.min_shards(),
            self.max_shards(),
        );
        if next == current {
            return;
        }
        // compat: Prometheus keeps its shards while sends fail (the receiver is down, more
        // shards would not help).
        let last_ok = st.last_success_ms.load(Ordering::Relaxed);
        let now = self.born.elapsed().as_millis() as u64;
        let threshold = 2 * self.cfg.queue.batch_send_deadline.as_millis() as u64;
        if last_ok == 0
            || now.saturating_sub(last_ok)
                > threshold.max(self.cfg.shard_update_interval.as_millis() as u64)
        {
            tracing::debug!("skipping resharding: no successful send recently");
            return;
        }
        tracing::info!(
            from = current,
            to = next,
            desired,
            pending,
            "remote write resharding"
        );
        self.target_shards.store(next, Ordering::Relaxed);
        // Senders above the new target notice it after their current request.
        self.work.notify_waiters();
    }

    /// Moves every in-memory batch to the backlogs (shutdown).
    fn spill_all(&self) {
        let mut done = Vec::new();
        for sh in &self.lanes {
            let mut st = sh.state.lock();
            done.extend(self.spill_mem(&mut st));
        }
        self.forget(done);
        self.update_gauges();
    }

    /// Takes the next thing to send from a lane nobody else is sending for, starting the
    /// search at lane `from`. Ordered mode: a lane's backlog, then its memory. `live_first`:
    /// memory batches of every lane first, then backlogs (oldest first within a lane).
    fn take(&self, from: usize) -> Option<(usize, Item)> {
        let n = self.lanes.len();
        let passes: &[bool] = if self.cfg.live_first {
            &[true, false]
        } else {
            &[false]
        };
        for &live_pass in passes {
            for k in 0..n {
                let i = (from + k) % n;
                let lane = &self.lanes[i];
                let mut st = lane.state.lock();
                if !self.cfg.live_first && (st.live_busy || st.disk_busy) {
                    continue;
                }
                let mut spool_empty = st.spool.is_empty();
                let want_disk = !live_pass && !spool_empty && !st.disk_busy;
                if want_disk {
                    match st.spool.peek() {
                        Ok(Some(rec)) => {
                            st.disk_busy = true;
                            lane.oldest.store(rec.min_t, Ordering::Relaxed);
                            return Some((i, Item::Disk(rec)));
                        }
                        // Only finished files were left (now deleted): nothing to send.
                        Ok(None) => spool_empty = true,
                        Err(e) => {
                            tracing::error!(error = %e, "remote write backlog unreadable");
                        }
                    }
                }
                let mem_allowed = self.cfg.live_first || spool_empty;
                if mem_allowed
                    && !st.live_busy
                    && (live_pass || !self.cfg.live_first)
                    && let Some(b) = st.mem.pop_front()
                {
                    st.mem_samples -= b.samples.len();
                    st.live_busy = true;
                    if spool_empty && let Some(t) = b.samples.iter().map(|s| s.1).min() {
                        lane.oldest.store(t, Ordering::Relaxed);
                    }
                    return Some((i, Item::Mem(b)));
                }
                if spool_empty && st.mem.is_empty() && !st.live_busy && !st.disk_busy {
                    lane.oldest.store(i64::MAX, Ordering::Relaxed);
                }
            }
        }
        None
    }

    /// A sender: takes items from free lanes and sends them until its id is at or above the
    /// target shard count, or shutdown.
    async fn shard_loop(&self, id: usize, shutdown: CancellationToken) {
        let max_backoff = self.cfg.queue.max_backoff;
        let mut backoff = self.cfg.queue.min_backoff;
        let mut from = id;
        loop {
            if shutdown.is_cancelled() || id >= self.target_shards.load(Ordering::Relaxed) {
                return;
            }
            let Some((lane, item)) = self.take(from) else {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.work.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                continue;
            };
            from = lane + 1;
            let (body, count, _min_t, max_t) = match &item {
                Item::Disk(r) => (r.body.clone(), r.samples, r.min_t, r.max_t),
                Item::Mem(b) => b.encode(),
            };
            let begin = Instant::now();
            let res = tokio::select! {
                r = self.client.send(body.clone()) => r,
                _ = shutdown.cancelled() => {
                    self.release(lane, item, Outcome::Interrupted);
                    return;
                }
            };
            self.stats
                .send_nanos
                .fetch_add(begin.elapsed().as_nanos() as u64, Ordering::Relaxed);
            match res {
                Ok(()) => {
                    backoff = self.cfg.queue.min_backoff;
                    self.stats
                        .samples_sent
                        .fetch_add(u64::from(count), Ordering::Relaxed);
                    self.stats
                        .bytes_sent
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    self.stats
                        .highest_sent_timestamp
                        .fetch_max(max_t, Ordering::Relaxed);
                    self.stats.last_success_ms.store(
                        self.born.elapsed().as_millis().max(1) as u64,
                        Ordering::Relaxed,
                    );
                    self.release(lane, item, Outcome::Done(count));
                }
                Err(e @ SendError::NonRecoverable { .. }) => {
                    tracing::error!(samples = count, error = %error_chain(&e), "remote write batch rejected; dropped");
                    self.stats
                        .samples_failed
                        .fetch_add(u64::from(count), Ordering::Relaxed);
                    self.release(lane, item, Outcome::Done(count));
                }
                Err(SendError::Recoverable {
                    retry_after,
                    source,
                    ..
                }) => {
                    self.stats
                        .samples_retried
                        .fetch_add(u64::from(count), Ordering::Relaxed);
                    if matches!(item, Item::Mem(_)) {
                        tracing::warn!(error = %source, "remote write failing; buffering on disk");
                    }
                    self.release(lane, item, Outcome::Retry);
                    let wait = retry_after.unwrap_or(backoff).min(max_backoff.max(backoff));
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
    }

    /// Gives a lane back after sending `item`.
    fn release(&self, lane: usize, item: Item, outcome: Outcome) {
        let sh = &self.lanes[lane];
        let mut st = sh.state.lock();
        let mut forget = Vec::new();
        match (item, outcome) {
            (Item::Disk(rec), Outcome::Done(count)) => {
                st.spool.advance(rec.next, count);
                st.disk_busy = false;
            }
            (Item::Disk(_), _) => st.disk_busy = false,
            (Item::Mem(b), Outcome::Done(_)) => {
                forget.push(b.seq);
                st.live_busy = false;
            }
            (Item::Mem(b), Outcome::Retry) => {
                // First failure: the batch goes to the backlog, and what waits behind it too
                // (ordered mode); the lane now works from its backlog.
                self.spool_batch(&mut st, &b);
                forget.push(b.seq);
                if !self.cfg.live_first {
                    forget.extend(self.spill_mem(&mut st));
                }
                st.live_busy = false;
            }
            (Item::Mem(b), Outcome::Interrupted) => {
                st.mem_samples += b.samples.len();
                st.mem.push_front(b);
                st.live_busy = false;
            }
        }
        if st.overflow && !st.live_busy {
            forget.extend(self.spill_mem(&mut st));
        }
        drop(st);
        if !forget.is_empty() {
            self.forget(forget);
        }
        self.update_gauges();
        self.work.notify_one();
    }
}

/// How sending an item ended.
enum Outcome {
    /// Acknowledged, or rejected for good (dropped and counted): `n` samples are done.
    Done(u32),
    /// A retryable failure.
    Retry,
    /// Shutdown during the send: the item is kept as it was.
    Interrupted,
}

/// What a shard is sending: a backlog record or a batch from memory.
enum Item {
    Disk(crate::spool::SpoolRecord),
    Mem(Batch),
}

/// An exponentially weighted rate, updated once per interval (Prometheus's `ewmaRate`).
#[derive(Default)]
struct Ewma {
    rate: f64,
    init: bool,
}

/// compat: Prometheus weighs each new interval 0.2.
const EWMA_WEIGHT: f64 = 0.2;

impl Ewma {
    fn tick(&mut self, count: f64, secs: f64) {
        let instant = count / secs;
        if self.init {
            self.rate += EWMA_WEIGHT * (instant - self.rate);
        } else if count > 0.0 {
            self.rate = instant;
            self.init = true;
        }
    }
}

/// The rates resharding works from, from the destination's counters.
#[derive(Default)]
struct RateTracker {
    data_in: Ewma,
    data_out: Ewma,
    /// Seconds spent sending per second.
    out_duration: Ewma,
    last: (u64, u64, u64),
}

impl RateTracker {
    fn tick(&mut self, queued: u64, out: u64, nanos: u64, secs: f64) {
        let (q0, o0, n0) = self.last;
        self.data_in.tick(queued.saturating_sub(q0) as f64, secs);
        self.data_out.tick(out.saturating_sub(o0) as f64, secs);
        self.out_duration
            .tick(nanos.saturating_sub(n0) as f64 / 1e9, secs);
        self.last = (queued, out, nanos);
    }
}

/// What one resharding decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct ShardInputs {
    /// Samples queued per second (after relabelling).
    pub in_rate: f64,
    /// Samples sent (or dropped for good) per second.
    pub out_rate: f64,
    /// Seconds spent in sends per second, over all shards.
    pub out_duration_rate: f64,
    /// Samples waiting: in memory and in the disk backlog.
    pub pending: f64,
}

/// Share of the backlog to catch up per second (Prometheus: 5 %).
const BACKLOG_CATCHUP: f64 = 0.05;
/// A new shard count is only taken when it differs from the current one by more than this.
const SHARD_TOLERANCE: f64 = 0.3;
/// No fewer shards while the oldest unsent sample is further behind than this, seconds.
const NO_DOWNSHARD_DELAY_S: f64 = 10.0;

/// Shards needed to send the incoming rate plus 5 % of the backlog per second, from the time
/// one sample takes to send (Prometheus's `calculateDesiredShards`). Prometheus estimates the
/// backlog as delay × incoming rate; vigil knows it exactly. `None` when nothing was sent.
pub fn desired_shards(i: &ShardInputs) -> Option<f64> {
    if i.out_rate <= 0.0 {
        return None;
    }
    let time_per_sample = i.out_duration_rate / i.out_rate;
    Some(time_per_sample * (i.in_rate + BACKLOG_CATCHUP * i.pending))
}

/// The shard count to run: `current` unless `desired` (rounded up) is more than 30 % away;
/// never fewer while more than 10 s behind; within `[min, max]`.
pub fn next_shard_count(
    current: usize,
    desired: f64,
    delay_s: f64,
    min: usize,
    max: usize,
) -> usize {
    let desired = desired.ceil();
    let lower = current as f64 * (1.0 - SHARD_TOLERANCE);
    let upper = current as f64 * (1.0 + SHARD_TOLERANCE);
    let mut n = if (lower..=upper).contains(&desired) {
        current
    } else {
        desired.max(0.0) as usize
    };
    if n < current && delay_s > NO_DOWNSHARD_DELAY_S {
        n = current;
    }
    n.clamp(min.max(1), max.max(min).max(1))
}

/// Series the feeder has prepared, by source ref: `None` when relabelling drops the series.
/// Refs are never reused, so entries stay valid; the map is cleared when it grows too big.
const SERIES_CACHE_MAX: usize = 4 << 20;

/// The feeding side of a destination: relabels, shards and batches samples read from the WAL.
pub struct Feeder {
    dest: Arc<Destination>,
    open: Vec<Option<Batch>>,
    series: HashMap<u64, Option<Arc<OutSeries>>>,
}

impl Feeder {
    /// The outgoing form of series `labels`, or `None` when relabelling drops it.
    fn prepare(&self, labels: &Labels) -> Option<Arc<OutSeries>> {
        let d = &self.dest;
        let mut labels = labels.clone();
        if !d.cfg.external_labels.is_empty() {
            let mut b = labels.builder();
            for l in d.cfg.external_labels.iter() {
                if labels.get(l.name).is_none() {
                    b.set(l.name, l.value);
                }
            }
            labels = b.labels();
        }
        if !d.cfg.relabel.is_empty() {
            match relabel::process(&labels, &d.cfg.relabel) {
                Some(l) if !l.is_empty() => labels = l,
                _ => return None,
            }
        }
        Some(Arc::new(OutSeries {
            labels_pb: encode_labels(&labels),
            lane: lane_of(&labels, self.open.len()),
        }))
    }

    /// Adds one sample of series `series_ref` (labels `labels`) read from the record at `pos`.
    pub fn push(&mut self, pos: SourcePos, series_ref: u64, labels: &Labels, t: i64, v: f64) {
        self.push_with(pos, series_ref, || Some(labels.clone()), t, v);
    }

    /// Like [`Feeder::push`], asking for the labels only for a series not seen before
    /// (`None`: unknown series, counted as dropped).
    pub fn push_with(
        &mut self,
        pos: SourcePos,
        series_ref: u64,
        labels: impl FnOnce() -> Option<Labels>,
        t: i64,
        v: f64,
    ) {
        let out = match self.series.get(&series_ref) {
            Some(o) => o.clone(),
            None => {
                let Some(l) = labels() else {
                    self.dest
                        .stats
                        .samples_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let o = self.prepare(&l);
                if self.series.len() >= SERIES_CACHE_MAX {
                    self.series.clear();
                }
                self.series.insert(series_ref, o.clone());
                o
            }
        };
        let d = &self.dest;
        let Some(out) = out else {
            d.stats.samples_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let lane = out.lane;
        let slot = &mut self.open[lane];
        let batch = slot.get_or_insert_with(|| {
            let mut p = d.progress.lock();
            let seq = p.next_seq;
            p.next_seq += 1;
            p.pending.insert(seq, pos);
            Batch {
                seq,
                samples: Vec::with_capacity(d.cfg.queue.max_samples_per_send),
                created: Instant::now(),
            }
        });
        batch.samples.push((out, t, v));
        if batch.samples.len() >= d.cfg.queue.max_samples_per_send.max(1)
            && let Some(b) = slot.take()
        {
            d.enqueue(lane, b);
        }
    }

    /// Counts samples read from the source (once per record, not per sample).
    pub fn count_read(&mut self, samples: u64, highest_t: i64) {
        let st = &self.dest.stats;
        st.samples_in.fetch_add(samples, Ordering::Relaxed);
        st.highest_read_timestamp
            .fetch_max(highest_t, Ordering::Relaxed);
    }

    /// Everything before `next` has been pushed.
    pub fn read_up_to(&mut self, next: SourcePos) {
        self.dest.progress.lock().read = Some(next);
    }

    /// Closes batches older than `batch_send_deadline` (call when the source is idle, and
    /// regularly); `all` closes every open batch.
    pub fn flush(&mut self, all: bool) {
        let deadline = self.dest.cfg.queue.batch_send_deadline;
        for (i, slot) in self.open.iter_mut().enumerate() {
            if slot
                .as_ref()
                .is_some_and(|b| all || b.created.elapsed() >= deadline)
                && let Some(b) = slot.take()
            {
                self.dest.enqueue(i, b);
            }
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.flush(true);
    }
}

/// Renders the destination's metrics in the text format, under Prometheus's names where one
/// exists. `labels` is `remote_name="…",url="…"`.
pub fn render_metrics(out: &mut String, dests: &[(String, String, Arc<Destination>)], now_ms: i64) {
    type Getter = fn(&Destination, i64) -> f64;
    let families: [(&str, &str, &str, Getter); 17] = [
        (
            "prometheus_remote_storage_samples_total",
            "counter",
            "Total number of samples sent to remote storage.",
            |d, _| d.stats.samples_sent.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_samples_failed_total",
            "counter",
            "Total number of samples which failed on send to remote storage, non-recoverable errors.",
            |d, _| d.stats.samples_failed.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_samples_retried_total",
            "counter",
            "Total number of samples which failed on send to remote storage but were retried because the send error was recoverable.",
            |d, _| d.stats.samples_retried.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_samples_dropped_total",
            "counter",
            "Total number of samples which were dropped after being read from the WAL before being sent via remote write, either via relabelling or unintentionally because of an unknown reference ID.",
            |d, _| d.stats.samples_dropped.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_samples_in_total",
            "counter",
            "Samples in to remote storage, compare to samples out for queue managers.",
            |d, _| d.stats.samples_in.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_samples_pending",
            "gauge",
            "The number of samples pending in the queues shards to be sent to the remote storage.",
            |d, _| {
                (d.stats.memory_samples.load(Ordering::Relaxed)
                    + d.stats.backlog_samples.load(Ordering::Relaxed)) as f64
            },
        ),
        (
            "prometheus_remote_storage_bytes_total",
            "counter",
            "The total number of bytes of data (not metadata) sent by the queue after compression.",
            |d, _| d.stats.bytes_sent.load(Ordering::Relaxed) as f64,
        ),
        (
            "prometheus_remote_storage_queue_highest_sent_timestamp_seconds",
            "gauge",
            "Timestamp from a WAL sample, the highest timestamp successfully sent by this queue, in seconds since epoch.",
            |d, _| {
                let t = d.stats.highest_sent_timestamp.load(Ordering::Relaxed);
                if t == i64::MIN {
                    0.0
                } else {
                    t as f64 / 1000.0
                }
            },
        ),
        (
            "prometheus_remote_storage_shards",
            "gauge",
            "The number of shards used for parallel sending to the remote storage.",
            |d, _| d.shard_count() as f64,
        ),
        (
            "prometheus_remote_storage_shards_min",
            "gauge",
            "The minimum number of shards that the queue is allowed to run.",
            |d, _| d.min_shards() as f64,
        ),
        (
            "prometheus_remote_storage_shards_max",
            "gauge",
            "The maximum number of shards that the queue is allowed to run.",
            |d, _| d.max_shards() as f64,
        ),
        (
            "prometheus_remote_storage_shards_desired",
            "gauge",
            "The number of shards that the queues shard calculation wants to run based on the rate of samples in vs. samples out.",
            |d, _| f64::from_bits(d.stats.shards_desired.load(Ordering::Relaxed)),
        ),
        (
            "vigil_remote_storage_lanes",
            "gauge",
            "Lanes of this destination: series keep their order within a lane, and at most this many shards send at once.",
            |d, _| d.lane_count() as f64,
        ),
        (
            "vigil_remote_storage_backlog_bytes",
            "gauge",
            "Bytes of unsent samples buffered on disk for this destination (bounded by queue_config.max_disk_usage).",
            |d, _| d.stats.backlog_bytes.load(Ordering::Relaxed) as f64,
        ),
        (
            "vigil_remote_storage_backlog_samples",
            "gauge",
            "Unsent samples buffered on disk for this destination.",
            |d, _| d.stats.backlog_samples.load(Ordering::Relaxed) as f64,
        ),
        (
            "vigil_remote_storage_oldest_unsent_sample_age_seconds",
            "gauge",
            "Age of the oldest sample not yet acknowledged by this destination: the data at risk.",
            |d, now| d.oldest_unsent_age(now),
        ),
        (
            "vigil_remote_storage_samples_dropped_by_quota_total",
            "counter",
            "Unsent samples deleted from the disk backlog because it reached queue_config.max_disk_usage.",
            |d, _| d.stats.samples_dropped_quota.load(Ordering::Relaxed) as f64,
        ),
    ];
    if dests.is_empty() {
        return;
    }
    let mut o = web::metrics::Out::default();
    for (name, typ, help, get) in families {
        o.family(name, typ, help);
        for (remote_name, url, d) in dests {
            let labels = [("remote_name", remote_name.as_str()), ("url", url.as_str())];
            o.sample(name, &labels, get(d, now_ms));
        }
    }
    let highest = dests
        .iter()
        .map(|d| d.2.stats.highest_read_timestamp.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0)
        .max(0);
    o.single(
        "prometheus_remote_storage_highest_timestamp_in_seconds",
        "gauge",
        "Highest timestamp that has come into the remote storage via the Appender interface, in seconds since epoch.",
        highest as f64 / 1000.0,
    );
    out.push_str(&o.finish());
}

/// The directory of a destination under the server's data directory: stable across restarts
/// for the same name and URL.
pub fn destination_dir(base: &Path, name: &str, url: &str) -> PathBuf {
    let h = model::Labels::from_pairs([("name", name), ("url", url)]).stable_hash();
    base.join(format!("{h:016x}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use axum::Router;
    use axum::body::Bytes as AxBytes;
    use axum::routing::post;

    use super::*;
    use crate::client::WriteClientConfig;
    use crate::codec::decode_write_request;

    /// A receiver that answers 503 while `down`, else records every sample (series → ts list).
    #[derive(Default)]
    struct Sink {
        down: AtomicBool,
        got: parking_lot::Mutex<HashMap<String, Vec<i64>>>,
        /// Every sample in arrival order, with its series.
        arrivals: parking_lot::Mutex<Vec<(String, i64)>>,
        /// Each request takes this long.
        delay_ms: AtomicU64,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
    }

    async fn start() -> (String, Arc<Sink>) {
        let sink = Arc::new(Sink::default());
        let s2 = sink.clone();
        let app = Router::new().route(
            "/w",
            post(move |body: AxBytes| {
                let sink = s2.clone();
                async move {
                    if sink.down.load(Ordering::Relaxed) {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let now = sink.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    sink.max_in_flight.fetch_max(now, Ordering::SeqCst);
                    let delay = sink.delay_ms.load(Ordering::Relaxed);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    sink.in_flight.fetch_sub(1, Ordering::SeqCst);
                    let req = decode_write_request(&body, 1 << 24).unwrap();
                    let mut arrivals = sink.arrivals.lock();
                    let mut g = sink.got.lock();
                    for ts in req.timeseries {
                        let key = ts
                            .labels
                            .iter()
                            .map(|l| format!("{}={}", l.name, l.value))
                            .collect::<Vec<_>>()
                            .join(",");
                        arrivals.extend(ts.samples.iter().map(|s| (key.clone(), s.timestamp)));
                        g.entry(key)
                            .or_default()
                            .extend(ts.samples.iter().map(|s| s.timestamp));
                    }
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/w", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        (url, sink)
    }

    fn cfg(dir: &Path) -> DurableConfig {
        DurableConfig {
            queue: QueueConfig {
                capacity: 50,
                max_samples_per_send: 10,
                batch_send_deadline: Duration::from_millis(20),
                min_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(20),
            },
            min_shards: 2,
            max_shards: 2,
            shard_update_interval: Duration::from_millis(100),
            live_first: false,
            max_disk_usage: 1 << 30,
            dir: dir.to_path_buf(),
            flush_interval: Duration::from_millis(50),
            relabel: vec![],
            external_labels: Labels::from_pairs([("replica", "a")]),
        }
    }

    async fn until(mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "condition not met in time");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn feed(f: &mut Feeder, ts: std::ops::Range<i64>) {
        for t in ts {
            for s in 0..5 {
                let l = Labels::from_pairs([("__name__", "m"), ("s", &s.to_string())]);
                let pos = SourcePos {
                    segment: 0,
                    offset: t as u64,
                };
                f.push(pos, s as u64, &l, t, t as f64);
            }
            f.read_up_to(SourcePos {
                segment: 0,
                offset: t as u64 + 1,
            });
        }
        f.flush(true);
    }

    /// Like [`feed`], with `series` series.
    fn feed_n(f: &mut Feeder, ts: std::ops::Range<i64>, series: usize) {
        for t in ts {
            for s in 0..series {
                let l = Labels::from_pairs([("__name__", "m"), ("s", &s.to_string())]);
                let pos = SourcePos {
                    segment: 0,
                    offset: t as u64,
                };
                f.push(pos, s as u64, &l, t, t as f64);
            }
            f.read_up_to(SourcePos {
                segment: 0,
                offset: t as u64 + 1,
            });
        }
        f.flush(true);
    }

    /// Every series has every timestamp of `0..n`, in order (duplicates allowed).
    fn check_in_order(sink: &Sink, series: usize, n: i64) {
        let g = sink.got.lock();
        assert_eq!(g.len(), series);
        for (k, ts) in g.iter() {
            let mut dedup = ts.clone();
            dedup.dedup();
            assert_eq!(
                dedup,
                (0..n).collect::<Vec<_>>(),
                "series {k} out of order or gaps"
            );
        }
    }

    #[test]
    fn desired_shards_like_prometheus() {
        #[track_caller]
        fn check(in_rate: f64, out_rate: f64, dur: f64, pending: f64, want: Option<f64>) {
            let got = desired_shards(&ShardInputs {
                in_rate,
                out_rate,
                out_duration_rate: dur,
                pending,
            });
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "{g} != {w}"),
                (g, w) => assert_eq!(g, w),
            }
        }
        // Nothing sent: no opinion.
        check(1000.0, 0.0, 0.0, 0.0, None);
        // 1000 samples/s in and out, each shard busy 100% of the time: one shard.
        check(1000.0, 1000.0, 1.0, 0.0, Some(1.0));
        // Sends take 3 shard-seconds per second: three shards.
        check(1000.0, 1000.0, 3.0, 0.0, Some(3.0));
        // A backlog of 100k samples adds 5%/s of it: 1ms per sample × (1000 + 5000) = 6.
        check(1000.0, 1000.0, 1.0, 100_000.0, Some(6.0));

        #[track_caller]
        fn next(cur: usize, desired: f64, delay: f64, want: usize) {
            assert_eq!(next_shard_count(cur, desired, delay, 1, 10), want);
        }
        next(4, 4.9, 0.0, 4); // within 30%: unchanged
        next(4, 5.3, 0.0, 6); // rounded up, beyond 30%
        next(4, 2.0, 0.0, 2);
        next(4, 2.0, 30.0, 4); // far behind: never fewer
        next(4, 50.0, 0.0, 10); // max
        next(4, 0.1, 0.0, 1); // min
    }

    /// A slow receiver and a backlog: the shard count rises above min_shards, more requests
    /// run at once, and every series still arrives complete and in order.
    #[tokio::test]
    async fn shards_scale_with_backlog_and_keep_order() {
        let dir = tempfile::tempdir().unwrap();
        let (url, sink) = start().await;
        sink.down.store(true, Ordering::Relaxed);
        sink.delay_ms.store(20, Ordering::Relaxed);
        let client = WriteClient::new(&WriteClientConfig::new(url)).unwrap();
        let mut c = cfg(dir.path());
        c.min_shards = 1;
        c.max_shards = 8;
        let d = Destination::open(client, c).unwrap();
        assert_eq!((d.lane_count(), d.shard_count()), (8, 1));
        let stop = CancellationToken::new();
        let task = tokio::spawn(d.clone().run(stop.clone()));
        let mut f = d.feeder();
        feed_n(&mut f, 0..300, 20);
        let st = d.stats().clone();
        until(|| st.backlog_samples.load(Ordering::Relaxed) == 6000).await;
        sink.down.store(false, Ordering::Relaxed);
        let mut most = 1;
        until(|| {
            most = most.max(d.shard_count());
            st.samples_sent.load(Ordering::Relaxed) >= 6000
        })
        .await;
        assert!(most > 1, "never resharded");
        assert!(sink.max_in_flight.load(Ordering::SeqCst) > 1);
        let desired = f64::from_bits(st.shards_desired.load(Ordering::Relaxed));
        assert!(desired > 0.0);
        check_in_order(&sink, 20, 300);
        assert_eq!(st.samples_failed.load(Ordering::Relaxed), 0);
        stop.cancel();
        task.await.unwrap();
    }

    /// Runs an outage, then new samples while the backlog drains; returns the sink and how
    /// many backlog samples arrived after the first new sample of the same series.
    async fn outage_then_live(live_first: bool) -> (Arc<Sink>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let (url, sink) = start().await;
        sink.down.store(true, Ordering::Relaxed);
        sink.delay_ms.store(5, Ordering::Relaxed);
        let client = WriteClient::new(&WriteClientConfig::new(url)).unwrap();
        let mut c = cfg(dir.path());
        c.live_first = live_first;
        let d = Destination::open(client, c).unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(d.clone().run(stop.clone()));
        let mut f = d.feeder();
        feed(&mut f, 0..200);
        let st = d.stats().clone();
        until(|| st.backlog_samples.load(Ordering::Relaxed) == 1000).await;
        sink.down.store(false, Ordering::Relaxed);
        // New data arrives while the backlog (100 requests of 5 ms per lane) drains.
        tokio::time::sleep(Duration::from_millis(20)).await;
        feed(&mut f, 200..210);
        until(|| st.samples_sent.load(Ordering::Relaxed) >= 1050).await;
        until(|| st.backlog_samples.load(Ordering::Relaxed) == 0).await;
        stop.cancel();
        task.await.unwrap();
        let arrivals = sink.arrivals.lock().clone();
        let mut live_seen = std::collections::HashSet::new();
        let mut backlog_after = 0;
        for (k, t) in arrivals {
            if t >= 200 {
                live_seen.insert(k);
            } else if live_seen.contains(&k) {
                backlog_after += 1;
            }
        }
        (sink, backlog_after)
    }

    /// Default: a series' backlog goes before its new samples, every series in time order.
    #[tokio::test]
    async fn ordered_mode_sends_backlog_before_new_data() {
        let (sink, backlog_after) = outage_then_live(false).await;
        assert_eq!(backlog_after, 0);
        check_complete(&sink, 210);
    }

    /// `live_first`: new samples reach the receiver while most of the backlog is still queued,
    /// and nothing is lost.
    #[tokio::test]
    async fn live_first_sends_new_data_before_the_backlog_drains() {
        let (sink, backlog_after) = outage_then_live(true).await;
        assert!(
            backlog_after > 300,
            "only {backlog_after} backlog samples after live data"
        );
        let g = sink.got.lock();
        assert_eq!(g.len(), 5);
        for (k, ts) in g.iter() {
            let mut all = ts.clone();
            all.sort_unstable();
            all.dedup();
            assert_eq!(all, (0..210).collect::<Vec<_>>(), "series {k} has gaps");
        }
    }

    fn check_complete(sink: &Sink, n: i64) {
        let g = sink.got.lock();
        assert_eq!(g.len(), 5, "series: {:?}", g.keys().collect::<Vec<_>>());
        for (k, ts) in g.iter() {
            assert!(k.contains("replica=a"), "external label missing: {k}");
            let mut dedup = ts.clone();
            dedup.dedup();
            assert_eq!(
                dedup,
                (0..n).collect::<Vec<_>>(),
                "series {k} out of order or gaps"
            );
        }
    }

    /// The hand-written encoding decodes to the request prost would build.
    #[test]
    fn batch_encoding_is_a_write_request() {
        let a = Arc::new(OutSeries {
            labels_pb: encode_labels(&Labels::from_pairs([("__name__", "up"), ("job", "é")])),
            lane: 0,
        });
        let b = Arc::new(OutSeries {
            labels_pb: encode_labels(&Labels::from_pairs([("x", "y".repeat(200))])),
            lane: 0,
        });
        let batch = Batch {
            seq: 0,
            samples: vec![
                (a.clone(), -5, 1.5),
                (b, i64::MAX, f64::NAN),
                (a, 1_700_000_000_000, -0.0),
            ],
            created: Instant::now(),
        };
        let (body, n, min_t, max_t) = batch.encode();
        assert_eq!((n, min_t, max_t), (3, -5, i64::MAX));
        let req = crate::codec::decode_write_request(&body, 1 << 20).unwrap();
        assert_eq!(req.timeseries.len(), 3);
        let ts = &req.timeseries[0];
        assert_eq!(ts.labels[1].value, "é");
        assert_eq!((ts.samples[0].timestamp, ts.samples[0].value), (-5, 1.5));
        assert_eq!(req.timeseries[1].labels[0].value.len(), 200);
        assert!(req.timeseries[1].samples[0].value.is_nan());
        assert_eq!(req.timeseries[2].samples[0].timestamp, 1_700_000_000_000);
    }

    /// An outage: samples go to the disk backlog, whose gauges rise, and drain in order after.
    #[tokio::test]
    async fn outage_spools_and_drains_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (url, sink) = start().await;
        let client = WriteClient::new(&WriteClientConfig::new(url)).unwrap();
        let d = Destination::open(client, cfg(dir.path())).unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(d.clone().run(stop.clone()));
        let mut f = d.feeder();
        feed(&mut f, 0..20);
        let st = d.stats().clone();
        until(|| st.samples_sent.load(Ordering::Relaxed) == 100).await;
        sink.down.store(true, Ordering::Relaxed);
        feed(&mut f, 20..200);
        until(|| st.backlog_samples.load(Ordering::Relaxed) > 500).await;
        assert!(d.oldest_unsent_age(1_000_000) > 0.0);
        sink.down.store(false, Ordering::Relaxed);
        until(|| st.samples_sent.load(Ordering::Relaxed) >= 1000).await;
        until(|| st.backlog_samples.load(Ordering::Relaxed) == 0).await;
        check_complete(&sink, 200);
        assert_eq!(st.samples_failed.load(Ordering::Relaxed), 0);
        stop.cancel();
        task.await.unwrap();
    }

    /// A restart during an outage loses nothing: memory batches are spooled at shutdown and
    /// the backlog is sent by the next process.
    #[tokio::test]
    async fn restart_during_outage_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (url, sink) = start().await;
        sink.down.store(true, Ordering::Relaxed);
        {
            let client = WriteClient::new(&WriteClientConfig::new(url.clone())).unwrap();
            let d = Destination::open(client, cfg(dir.path())).unwrap();
            let stop = CancellationToken::new();
            let task = tokio::spawn(d.clone().run(stop.clone()));
            let mut f = d.feeder();
            feed(&mut f, 0..100);
            drop(f);
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.cancel();
            task.await.unwrap();
            let saved: ProgressFile =
                serde_json::from_slice(&std::fs::read(dir.path().join("progress.json")).unwrap())
                    .unwrap();
            assert_eq!(
                saved.wal,
                Some(SourcePos {
                    segment: 0,
                    offset: 100
                })
            );
        }
        sink.down.store(false, Ordering::Relaxed);
        let client = WriteClient::new(&WriteClientConfig::new(url)).unwrap();
        let d = Destination::open(client, cfg(dir.path())).unwrap();
        assert_eq!(
            d.resume_position(),
            Some(SourcePos {
                segment: 0,
                offset: 100
            })
        );
        let stop = CancellationToken::new();
        let task = tokio::spawn(d.clone().run(stop.clone()));
        let st = d.stats().clone();
        until(|| st.samples_sent.load(Ordering::Relaxed) >= 500).await;
        check_complete(&sink, 100);
        stop.cancel();
        task.await.unwrap();
    }

    /// The quota drops the oldest backlog and counts it.
    #[tokio::test]
    async fn quota_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (url, sink) = start().await;
        sink.down.store(true, Ordering::Relaxed);
        let client = WriteClient::new(&WriteClientConfig::new(url)).unwrap();
        let mut c = cfg(dir.path());
        c.max_disk_usage = 2 << 20;
        c.min_shards = 1;
        c.max_shards = 1;
        let d = Destination::open(client, c).unwrap();
        let mut f = d.feeder();
        // Incompressible label values make each batch large.
        for t in 0..10_000i64 {
            let mut x = (t as u64 + 1).wrapping_mul(0x9e3779b97f4a7c15);
            let v: String = (0..40)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{x:016x}")
                })
                .collect();
            let l = Labels::from_pairs([("__name__", "m"), ("x", &v)]);
            f.push(SourcePos::default(), t as u64, &l, t, 0.0);
        }
        f.flush(true);
        let st = d.stats();
        assert!(st.samples_dropped_quota.load(Ordering::Relaxed) > 0);
        assert!(st.backlog_bytes.load(Ordering::Relaxed) <= 3 << 20);
    }

    /// Each family once, a sample per destination (label values escaped), the highest
    /// timestamp over all of them; nothing without destinations.
    #[test]
    fn metrics_name_each_destination() {
        let dir = tempfile::tempdir().unwrap();
        let open = |sub: &str| {
            let client =
                WriteClient::new(&WriteClientConfig::new("http://127.0.0.1:9/write")).unwrap();
            Destination::open(client, cfg(&dir.path().join(sub))).unwrap()
        };
        let (a, b) = (open("a"), open("b"));
        a.stats().samples_sent.store(7, Ordering::Relaxed);
        a.stats()
            .highest_read_timestamp
            .store(1_500, Ordering::Relaxed);
        b.stats()
            .highest_read_timestamp
            .store(2_250, Ordering::Relaxed);
        let dests = [
            ("a".to_string(), "http://a/w".to_string(), a),
            ("b\"q".to_string(), "http://b/w".to_string(), b),
        ];
        let mut out = String::new();
        render_metrics(&mut out, &dests, 0);
        let name = "prometheus_remote_storage_samples_total";
        assert!(
            out.contains(&format!(
                "# HELP {name} Total number of samples sent to remote storage.\n\
                 # TYPE {name} counter\n\
                 {name}{{remote_name=\"a\",url=\"http://a/w\"}} 7\n\
                 {name}{{remote_name=\"b\\\"q\",url=\"http://b/w\"}} 0\n"
            )),
            "{out}"
        );
        assert_eq!(out.matches("# TYPE ").count(), 18, "{out}");
        assert!(
            out.ends_with(
                "# TYPE prometheus_remote_storage_highest_timestamp_in_seconds gauge\n\
                 prometheus_remote_storage_highest_timestamp_in_seconds 2.25\n"
            ),
            "{out}"
        );
        let mut none = String::new();
        render_metrics(&mut none, &[], 0);
        assert_eq!(none, "");
    }
}
