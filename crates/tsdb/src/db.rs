//! The database: opening a data directory, the life cycle, truncation and retention.
//!
//! ```text
//! DIR/lock              flock'ed while open
//! DIR/wal/00000000…     WAL segments       (docs/format/wal.md)
//! DIR/wal/checkpoint.N  WAL checkpoint
//! DIR/chunks_head/000001…  full head chunks (docs/format/head_chunks.md)
//! DIR/<ulid>/           persistent blocks (docs/format/blocks.md): meta.json, index,
//!                       chunks/000001…, tombstones
//! ```

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use model::Timestamp;
use parking_lot::{Mutex, RwLock};
use storage::{Appendable, Appender, Querier, Queryable};

use crate::appender::DbAppender;
use crate::block::querier::BlockQuerier;
use crate::block::{self as blockmod, Block, BlockMeta};
use crate::compact;
use crate::error::{IoContext, TsdbError};
use crate::head::querier::HeadQuerier;
use crate::head::{GcStats, Head};
use crate::head_chunks::{ChunkDiskMapper, DEFAULT_MAX_FILE_SIZE};
use crate::merge::MergeQuerier;
use crate::metrics::{Metrics, TsdbMetrics};
use crate::replay::{self, ReplayStats};
use crate::stats::{self, TsdbStats};
use crate::wal::checkpoint::{self, CheckpointStats, Keep};
use crate::wal::record::{RefSample, Tombstone};
use crate::wal::{self, DEFAULT_SEGMENT_SIZE, Wal};

/// Database options. Defaults follow Prometheus's flags.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--storage.tsdb.retention.time`: data older than this is dropped (default 15d).
    pub retention: Duration,
    /// Size at which a WAL segment is closed (default 128 MiB).
    pub wal_segment_size: usize,
    /// The chunk range (default 2h): head chunks never cross a multiple of it, and retention
    /// truncates the head at most once per this duration.
    pub min_block_duration: Duration,
    /// Size at which a head chunk file is closed (default 128 MiB).
    pub head_chunk_file_size: usize,
    /// Take `DIR/lock` (Prometheus's `--storage.tsdb.no-lockfile` negated).
    pub lockfile: bool,
    /// The largest block compaction produces (`--storage.tsdb.max-block-duration`); `None`:
    /// Prometheus's default, 10% of the retention time capped at 31 days.
    pub max_block_duration: Option<Duration>,
    /// `--storage.tsdb.retention.size` in bytes: blocks are deleted, oldest first, while blocks,
    /// WAL and head chunks together exceed it. 0 disables.
    pub retention_size: u64,
    /// prometheus.yml `storage.tsdb.out_of_order_time_window`: samples this much older than
    /// the head's newest are still accepted (0 disables). Changeable at run time.
    pub out_of_order_time_window: Duration,
    /// `--storage.tsdb.wal-compression` (on by default, as in Prometheus 2.42): WAL and WBL
    /// records are snappy-compressed.
    pub wal_compression: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            retention: Duration::from_secs(15 * 24 * 3600),
            wal_segment_size: DEFAULT_SEGMENT_SIZE,
            min_block_duration: Duration::from_secs(2 * 3600),
            head_chunk_file_size: DEFAULT_MAX_FILE_SIZE,
            lockfile: true,
            max_block_duration: None,
            retention_size: 0,
            out_of_order_time_window: Duration::ZERO,
            wal_compression: true,
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Options {
    /// Block ranges compaction builds (ms): min-block ×3, ×9, … up to the max block duration.
    pub fn block_ranges(&self) -> Vec<i64> {
        let max = self
            .max_block_duration
            .unwrap_or_else(|| (self.retention / 10).min(Duration::from_secs(31 * 24 * 3600)));
        compact::block_ranges(millis(self.min_block_duration), millis(max))
    }

    fn validate(&self) -> Result<(), TsdbError> {
        if self.min_block_duration.as_millis() == 0 {
            return Err(TsdbError::InvalidOption {
                name: "min_block_duration",
                reason: "must be positive".into(),
            });
        }
        if self.retention.as_millis() == 0 {
            return Err(TsdbError::InvalidOption {
                name: "retention",
                reason: "must be positive".into(),
            });
        }
        if self.wal_segment_size < wal::PAGE_SIZE {
            return Err(TsdbError::InvalidOption {
                name: "wal_segment_size",
                reason: format!("must be at least one page ({} bytes)", wal::PAGE_SIZE),
            });
        }
        Ok(())
    }
}

/// What a truncation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TruncateStats {
    pub mint: i64,
    pub gc: GcStats,
    pub chunk_files_removed: usize,
    pub checkpoint: Option<CheckpointStats>,
    pub wal_segments_removed: usize,
}

pub(crate) struct Inner {
    dir: PathBuf,
    opts: Options,
    pub(crate) head: Arc<Head>,
    pub(crate) wal: Wal,
    metrics: Arc<Metrics>,
    /// Serialises "which series records are missing" + the WAL write of a commit; holds a
    /// reusable buffer for the series record.
    pub(crate) log_lock: Mutex<Vec<u8>>,
    /// Queries see nothing older than this (now − retention at the last retention run).
    visible_mint: AtomicI64,
    truncate_lock: Mutex<()>,
    last_retention_slot: Mutex<Option<i64>>,
    closed: AtomicBool,
    replay: ReplayStats,
    /// Loaded blocks, sorted by min time.
    pub(crate) blocks: RwLock<Vec<Arc<Block>>>,
    /// Out-of-order window in ms (0: disabled).
    pub(crate) ooo_window: AtomicI64,
    /// The write-behind log of out-of-order samples (`wbl/`), opened on first use.
    wbl: std::sync::OnceLock<Wal>,
    /// WBL segments before this hold only samples already written to blocks (see flush_ooo).
    wbl_flushed_before: Mutex<u32>,
    compact_lock: Mutex<()>,
    /// Series and sample iterators of queries not yet dropped.
    pub(crate) query_live: Arc<crate::read::QueryLive>,
    /// Queriers that may read the head below its floor (see `crate::readers`).
    head_readers: Arc<crate::readers::HeadReaders>,
    _lock: Option<File>,
}

impl Inner {
    /// The WBL, opened (creating `wbl/`) on first use. Callers hold `log_lock`.
    pub(crate) fn wbl(&self) -> Result<&Wal, TsdbError> {
        if let Some(w) = self.wbl.get() {
            return Ok(w);
        }
        let w = Wal::open(
            &self.dir.join("wbl"),
            self.opts.wal_segment_size,
            self.metrics.wal.clone(),
        )?;
        w.set_compression(self.opts.wal_compression);
        Ok(self.wbl.get_or_init(|| w))
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn close(&self) -> Result<(), TsdbError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Wait for commits in flight to finish their WAL write.
        let _g = self.log_lock.lock();
        let wal = self.wal.close();
        let wbl = self.wbl.get().map_or(Ok(()), Wal::close);
        let chunks = self.head.chunks.close();
        wal.and(wbl).and(chunks)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "close TSDB");
        }
    }
}

/// A Prometheus-compatible head-only time series database. Share it as `Arc<Db>`: appenders
/// and queriers may be used from many threads at once.
pub struct Db {
    inner: Arc<Inner>,
}

fn take_lock(dir: &Path) -> Result<File, TsdbError> {
    let path = dir.join("lock");
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("open lock file {}", path.display()))?;
    // A process being spawned holds a copy of every descriptor between fork and exec, lock
    // included (it is close-on-exec): a lock just released can look held for a moment.
    let mut tries = 0;
    let res = loop {
        match f.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(25));
            }
            other => break other,
        }
    };
    match res {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(TsdbError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(TsdbError::Io {
            context: format!("lock {}", path.display()),
            source: e,
        }),
    }
}

impl Db {
    /// Opens (creating if needed) the data directory `dir`: takes its lock, loads head chunks,
    /// replays the WAL (repairing a corrupt tail) and starts a new WAL segment.
    pub fn open(dir: &Path, opts: Options) -> Result<Arc<Db>, TsdbError> {
        opts.validate()?;
        fs::create_dir_all(dir).ctx(|| format!("create data directory {}", dir.display()))?;
        let lock = if opts.lockfile {
            Some(take_lock(dir)?)
        } else {
            None
        };
        let metrics = Arc::new(Metrics::default());
        let blocks = load_blocks(dir, &metrics)?;
        let (chunks, loaded) =
            ChunkDiskMapper::open(&dir.join("chunks_head"), opts.head_chunk_file_size)?;
        let head = Arc::new(Head::new(
            chunks,
            millis(opts.min_block_duration),
            metrics.clone(),
        ));
        let wal_dir = dir.join("wal");
        fs::create_dir_all(&wal_dir)
            .ctx(|| format!("create WAL directory {}", wal_dir.display()))?;
        let started = std::time::Instant::now();
        let replay = replay::replay(&head, &wal_dir, loaded)?;
        tracing::info!(
            series = head.num_series(),
            samples = replay.samples,
            chunks = replay.chunks_loaded,
            checkpoint = ?replay.checkpoint,
            segments = replay.segments,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "replayed WAL"
        );
        let wal = Wal::open(&wal_dir, opts.wal_segment_size, metrics.wal.clone())?;
        wal.set_compression(opts.wal_compression);
        let wbl_dir = dir.join("wbl");
        let mut wbl_cell = std::sync::OnceLock::new();
        let mut wbl_flushed_before = 0;
        if wbl_dir.exists() {
            let n = replay::replay_wbl(&head, &wbl_dir)?;
            let w = Wal::open(&wbl_dir, opts.wal_segment_size, metrics.wal.clone())?;
            w.set_compression(opts.wal_compression);
            // Everything in the older segments is in memory now and goes into the next
            // out-of-order block; those segments can go after it.
            wbl_flushed_before = w.current_segment();
            wbl_cell = std::sync::OnceLock::from(w);
            if n > 0 {
                tracing::info!(samples = n, "replayed out-of-order samples (wbl)");
            }
        }
        // Series whose samples are all gone (only their record survived) would otherwise linger
        // until the first truncation.
        let gc = head.gc(i64::MIN, wal.current_segment());
        if gc.series_removed > 0 {
            tracing::info!(
                series = gc.series_removed,
                "removed series without samples after replay"
            );
        }
        if let Some(maxt) = blocks.iter().map(|b| b.meta().max_time).max() {
            // compat: like Prometheus, the head starts where the newest block ends; WAL samples
            // the blocks already hold (a crash between a head compaction and the truncation)
            // are dropped here, so nothing is read twice.
            head.min_valid_time.fetch_max(maxt, Ordering::AcqRel);
            let gc = head.gc(maxt, wal.current_segment());
            tracing::info!(
                blocks = blocks.len(),
                mint = maxt,
                chunks_removed = gc.chunks_removed,
                "head starts after the newest block"
            );
        }
        let ooo_window = millis(opts.out_of_order_time_window);
        let inner = Inner {
            dir: dir.to_path_buf(),
            opts,
            head,
            wal,
            metrics,
            log_lock: Mutex::new(Vec::new()),
            visible_mint: AtomicI64::new(i64::MIN),
            truncate_lock: Mutex::new(()),
            last_retention_slot: Mutex::new(None),
            closed: AtomicBool::new(false),
            replay,
            blocks: RwLock::new(blocks),
            ooo_window: AtomicI64::new(ooo_window),
            wbl: wbl_cell,
            wbl_flushed_before: Mutex::new(wbl_flushed_before),
            compact_lock: Mutex::new(()),
            query_live: Arc::default(),
            head_readers: Arc::default(),
            _lock: lock,
        };
        // The replay's read buffers and decoded records are gone now.
        inner.head.chunks.drop_resident();
        crate::trim::release_free_memory();
        Ok(Arc::new(Db {
            inner: Arc::new(inner),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    /// What the replay at open found.
    pub fn replay_stats(&self) -> &ReplayStats {
        &self.inner.replay
    }

    /// Writes out and fsyncs the WAL and the head chunk files; appends fail afterwards.
    pub fn close(&self) -> Result<(), TsdbError> {
        self.inner.close()
    }

    /// Oldest sample time in the head (ms), `i64::MAX` when empty.
    pub fn head_min_time(&self) -> Timestamp {
        self.inner.head.min_time()
    }

    /// Newest sample time in the head (ms), `i64::MIN` when empty.
    pub fn head_max_time(&self) -> Timestamp {
        self.inner.head.max_time()
    }

    /// Query objects alive now: (selected series, sample iterators). A streaming read over
    /// many blocks holds a few per block at a time, not one per block and matching series.
    pub fn live_query_objects(&self) -> (usize, usize) {
        let l = &self.inner.query_live;
        (l.series(), l.iters())
    }

    pub fn num_series(&self) -> u64 {
        self.inner.head.num_series()
    }

    pub fn metrics(&self) -> TsdbMetrics {
        let mut m = self
            .inner
            .metrics
            .snapshot(self.inner.head.num_series(), self.inner.head.chunks.size());
        let blocks = self.inner.blocks.read();
        m.blocks_loaded = blocks.len() as u64;
        m.storage_blocks_bytes = blocks.iter().map(|b| b.size()).sum();
        m.lowest_timestamp = blocks
            .first()
            .map_or(self.inner.head.min_time(), |b| b.meta().min_time);
        m
    }

    /// Sets the out-of-order time window (prometheus.yml `storage.tsdb.out_of_order_time_window`;
    /// zero disables). Applies to appenders created afterwards.
    pub fn set_out_of_order_time_window(&self, window: Duration) {
        self.inner
            .ooo_window
            .store(millis(window), Ordering::Relaxed);
    }

    /// The metas of the loaded blocks, oldest first.
    pub fn blocks(&self) -> Vec<BlockMeta> {
        self.inner
            .blocks
            .read()
            .iter()
            .map(|b| b.meta().clone())
            .collect()
    }

    /// Cardinality statistics (top `limit` of each list) for `/api/v1/status/tsdb`.
    pub fn stats(&self, limit: usize) -> TsdbStats {
        stats::compute(&self.inner.head, limit)
    }

    /// Applies retention at `now_ms`: data older than `now_ms − retention` disappears from
    /// queries at once and is deleted by a [`Db::truncate`], which runs at most once per
    /// `min_block_duration` (the first call after open always runs one). Returns what the
    /// truncation did, if one ran. Call it periodically (e.g. every minute).
    pub fn run_retention(&self, now_ms: Timestamp) -> Result<Option<TruncateStats>, TsdbError> {
        let cutoff = now_ms.saturating_sub(millis(self.inner.opts.retention));
        self.inner.visible_mint.fetch_max(cutoff, Ordering::AcqRel);
        self.block_retention(cutoff)?;
        let slot = now_ms.div_euclid(millis(self.inner.opts.min_block_duration));
        {
            let mut last = self.inner.last_retention_slot.lock();
            if last.is_some_and(|l| l >= slot) {
                return Ok(None);
            }
            *last = Some(slot);
        }
        self.truncate(cutoff).map(Some)
    }

    /// Drops everything older than `mint` from the head: chunks that end before it, series left
    /// empty, chunk files holding only such chunks; then checkpoints the older part of the WAL
    /// and deletes the segments the checkpoint replaces. Samples older than `mint` are refused
    /// from now on.
    pub fn truncate(&self, mint: Timestamp) -> Result<TruncateStats, TsdbError> {
        let res = self.truncate_inner(mint);
        let m = &self.inner.metrics;
        match &res {
            Ok(_) => m.truncations.fetch_add(1, Ordering::Relaxed),
            Err(_) => m.truncation_failures.fetch_add(1, Ordering::Relaxed),
        };
        res
    }

    fn truncate_inner(&self, mint: Timestamp) -> Result<TruncateStats, TsdbError> {
        let inner = &self.inner;
        if inner.is_closed() {
            return Err(TsdbError::Closed);
        }
        let _g = inner.truncate_lock.lock();
        let head = &inner.head;
        head.min_valid_time.fetch_max(mint, Ordering::AcqRel);
        // Queriers made from now on read from `mint` on; those made before may still read
        // below it (from the head, without the block that holds it now): let them finish.
        let waiting = inner
            .head_readers
            .wait_below(mint, crate::readers::READER_WAIT);
        if waiting > 0 {
            tracing::warn!(
                waiting,
                mint,
                "truncating the head while queriers started before still read it"
            );
        }
        if inner.is_closed() {
            // Closed while waiting: leave the files as they are.
            return Err(TsdbError::Closed);
        }
        let mut stats = TruncateStats {
            mint,
            ..Default::default()
        };
        stats.gc = head.gc(mint, inner.wal.current_segment());
        head.tombstones.write().map.retain(|_, ivs| {
            ivs.retain(|iv| iv.1 >= mint);
            !ivs.is_empty()
        });
        stats.chunk_files_removed = head.chunks.truncate(mint)?;
        match self.truncate_wal(mint) {
            Ok(Some((cp, removed))) => {
                stats.checkpoint = Some(cp);
                stats.wal_segments_removed = removed;
            }
            Ok(None) => {}
            Err(e) => {
                inner
                    .metrics
                    .checkpoint_failures
                    .fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
        tracing::info!(
            mint,
            series_removed = stats.gc.series_removed,
            chunks_removed = stats.gc.chunks_removed,
            "head truncated"
        );
        Ok(stats)
    }

    /// Checkpoints the oldest two thirds of the closed WAL segments (like Prometheus: the newest
    /// ones mostly hold samples of still-open chunks, which a checkpoint would only copy).
    fn truncate_wal(&self, mint: Timestamp) -> Result<Option<(CheckpointStats, usize)>, TsdbError> {
        let inner = &self.inner;
        let wal_dir = inner.wal.dir().to_path_buf();
        // A fresh segment, so even a quiet WAL gets closed segments to truncate.
        let current = inner.wal.next_segment()?;
        let after_cp = checkpoint::last_checkpoint(&wal_dir)?.map_or(0, |c| c.0 + 1);
        let Some(first) = wal::list_segments(&wal_dir)?
            .into_iter()
            .map(|s| s.0)
            .find(|&i| i >= after_cp)
        else {
            return Ok(None);
        };
        if current == 0 || current - 1 < first {
            return Ok(None);
        }
        let closed = current - first;
        let take = closed * 2 / 3;
        if take == 0 {
            return Ok(None);
        }
        let to = first + take - 1;

        let head = &inner.head;
        let live: HashMapI = head
            .all_series()
            .iter()
            .map(|s| (s.series_ref, s.state.lock().mmapped_maxt()))
            .collect();
        // Samples up to each series' last on-disk chunk are dropped from the checkpoint, so
        // those chunks must be durable first.
        head.chunks.sync()?;
        let keep = KeepLive {
            live,
            deleted: head.deleted.lock().clone().into_iter().collect(),
            aliases: head.aliases.lock().clone().into_iter().collect(),
            to,
            mint,
        };
        let cp = checkpoint::create(&wal_dir, to, &keep)?;
        inner
            .metrics
            .checkpoints_created
            .fetch_add(1, Ordering::Relaxed);
        inner.wal.wait_syncs();
        let removed = inner.wal.delete_segments_before(to + 1)?;
        checkpoint::delete_checkpoints_before(&wal_dir, to)?;
        head.deleted.lock().retain(|_, seg| *seg > to);
        tracing::info!(
            checkpoint = to,
            segments_removed = removed,
            samples_kept = cp.samples_kept,
            "WAL checkpoint created"
        );
        Ok(Some((cp, removed)))
    }
}

type HashMapI = std::collections::HashMap<u64, i64, foldhash::fast::RandomState>;
type HashMapU = std::collections::HashMap<u64, u64, foldhash::fast::RandomState>;

/// Checkpoint policy: records of live series (and of removed ones the remaining segments may
/// still name); samples newer than `mint` that are not yet in a chunk file.
struct KeepLive {
    /// Live series ref → max time already in chunk files.
    live: HashMapI,
    deleted: std::collections::HashMap<u64, u32, foldhash::fast::RandomState>,
    aliases: HashMapU,
    to: u32,
    mint: i64,
}

impl KeepLive {
    fn resolve(&self, r: u64) -> u64 {
        self.aliases.get(&r).copied().unwrap_or(r)
    }
}

impl Keep for KeepLive {
    fn series(&self, r: u64) -> bool {
        self.live.contains_key(&self.resolve(r))
            || self.deleted.get(&r).is_some_and(|&seg| seg > self.to)
    }

    fn sample(&self, r: u64, t: i64) -> bool {
        t >= self.mint
            && self
                .live
                .get(&self.resolve(r))
                .is_some_and(|&on_disk| t > on_disk)
    }

    fn tombstone(&self, ts: &Tombstone) -> bool {
        ts.maxt >= self.mint && self.live.contains_key(&self.resolve(ts.series_ref))
    }
}

impl Appendable for Db {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(DbAppender::new(self.inner.clone()))
    }
}

impl Queryable for Db {
    fn querier(&self, mint: Timestamp, maxt: Timestamp) -> storage::Result<Box<dyn Querier>> {
        if self.inner.is_closed() {
            return Err(storage::StorageError::Closed);
        }
        // Registered before the floor and the blocks are read: a head truncation from now
        // on waits for this querier (see `crate::readers`).
        let reader = self.inner.head_readers.register(mint);
        let visible = self.inner.visible_mint.load(Ordering::Acquire);
        let floor = visible.max(self.inner.head.min_valid_time.load(Ordering::Acquire));
        let live = &self.inner.query_live;
        let head = HeadQuerier {
            head: self.inner.head.clone(),
            mint: mint.max(floor),
            ooo_mint: mint.max(visible),
            maxt,
            live: live.clone(),
            _reader: reader,
        };
        let mint = mint.max(visible);
        let blocks: Vec<BlockQuerier> = self
            .inner
            .blocks
            .read()
            .iter()
            .filter(|b| b.meta().overlaps(mint, maxt))
            .map(|b| BlockQuerier {
                block: b.clone(),
                mint,
                maxt,
                live: live.clone(),
            })
            .collect();
        if blocks.is_empty() {
            return Ok(Box::new(head));
        }
        Ok(Box::new(MergeQuerier { blocks, head }))
    }
}

/// Opens the blocks under `dir`: removes leftovers of interrupted writes and deletions, skips
/// (and reports) blocks that fail their checksums, and deletes blocks another block names as a
/// parent (a compaction finished but the crash came before its sources were removed).
fn load_blocks(dir: &Path, metrics: &Metrics) -> Result<Vec<Arc<Block>>, TsdbError> {
    let mut blocks = Vec::new();
    for e in fs::read_dir(dir).ctx(|| format!("list data directory {}", dir.display()))? {
        let e = e.ctx(|| format!("list data directory {}", dir.display()))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = e.path();
        if name.ends_with(blockmod::TMP_CREATION_SUFFIX)
            || name.ends_with(blockmod::TMP_DELETION_SUFFIX)
        {
            tracing::info!(dir = %path.display(), "removing leftover temporary block directory");
            fs::remove_dir_all(&path).ctx(|| format!("remove {}", path.display()))?;
            continue;
        }
        if crate::ulid::Ulid::parse(name).is_none() || !path.is_dir() {
            continue;
        }
        match Block::open(&path) {
            Ok(b) => blocks.push(Arc::new(b)),
            Err(e) => {
                metrics.blocks_corrupted.fetch_add(1, Ordering::Relaxed);
                tracing::error!(block = %path.display(), error = %e, "not loading damaged block");
            }
        }
    }
    let parents: std::collections::HashSet<String> = blocks
        .iter()
        .flat_map(|b| b.meta().compaction.parents.iter().map(|p| p.ulid.clone()))
        .collect();
    let (gone, mut keep): (Vec<_>, Vec<_>) = blocks
        .into_iter()
        .partition(|b| parents.contains(&b.meta().ulid));
    for b in gone {
        tracing::info!(block = %b.dir().display(), "deleting block already compacted into another");
        delete_block_dir(b.dir())?;
    }
    keep.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
    Ok(keep)
}

/// Deletes a block directory: renamed first, so a crash never leaves half a block under its
/// ULID name.
fn delete_block_dir(dir: &Path) -> Result<(), TsdbError> {
    let mut tmp = dir.as_os_str().to_owned();
    tmp.push(blockmod::TMP_DELETION_SUFFIX);
    let tmp = PathBuf::from(tmp);
    fs::rename(dir, &tmp).ctx(|| format!("rename {} for deletion", dir.display()))?;
    fs::remove_dir_all(&tmp).ctx(|| format!("remove {}", tmp.display()))
}

/// What [`Db::compact`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CompactStats {
    /// Blocks cut from the head.
    pub head_blocks: usize,
    /// Block compactions run.
    pub compactions: usize,
    /// Blocks written from out-of-order samples.
    pub ooo_blocks: usize,
}

impl Db {
    /// Cuts the head into blocks while it spans more than 1.5 block ranges, then compacts
    /// blocks as Prometheus's leveled planner says. Runs on the calling thread; call it from a
    /// blocking task.
    pub fn compact(&self) -> Result<CompactStats, TsdbError> {
        let inner = &self.inner;
        if inner.is_closed() {
            return Err(TsdbError::Closed);
        }
        let _g = inner.compact_lock.lock();
        let mut stats = CompactStats::default();
        while self.head_compactable() {
            let res = self.compact_head();
            let m = &inner.metrics;
            match res {
                Ok(()) => {
                    m.head_compactions.fetch_add(1, Ordering::Relaxed);
                    stats.head_blocks += 1;
                }
                Err(e) => {
                    m.compactions_failed.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        let flush = stats.head_blocks > 0 || self.ooo_due();
        match if flush { self.flush_ooo() } else { Ok(0) } {
            Ok(n) => stats.ooo_blocks += n,
            Err(e) => {
                inner
                    .metrics
                    .compactions_failed
                    .fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
        loop {
            let blocks = inner.blocks.read().clone();
            let metas: Vec<BlockMeta> = blocks.iter().map(|b| b.meta().clone()).collect();
            let picked = compact::plan(&metas, &inner.opts.block_ranges());
            if picked.is_empty() {
                break;
            }
            let sources: Vec<Arc<Block>> = picked.iter().map(|&i| blocks[i].clone()).collect();
            if let Err(e) = self.compact_blocks(&sources) {
                inner
                    .metrics
                    .compactions_failed
                    .fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
            inner.metrics.compactions.fetch_add(1, Ordering::Relaxed);
            stats.compactions += 1;
        }
        if stats.head_blocks + stats.ooo_blocks + stats.compactions > 0 {
            // The compactions read every head chunk once and freed their working memory.
            inner.head.chunks.drop_resident();
            crate::trim::release_free_memory();
        }
        Ok(stats)
    }

    fn head_compactable(&self) -> bool {
        let head = &self.inner.head;
        !head.is_empty()
            && head.max_time().saturating_sub(head.min_time()) > head.chunk_range / 2 * 3
    }

    fn compact_head(&self) -> Result<(), TsdbError> {
        let inner = &self.inner;
        let head = &inner.head;
        let range = head.chunk_range;
        let mint = head.min_time();
        let maxt = compact::range_end(mint, range);
        let lo = mint
            .max(head.min_valid_time.load(Ordering::Acquire))
            .max(inner.visible_mint.load(Ordering::Acquire));
        let started = std::time::Instant::now();
        let mut ooo_taken = Vec::new();
        if lo < maxt
            && let Some(meta) =
                compact::write_head_block(&inner.dir, head, lo, maxt, &mut ooo_taken)?
        {
            // The out-of-order samples written are in the block now; any that arrived since
            // stay (below the new floor, they go out as an out-of-order block).
            for (r, samples) in &ooo_taken {
                head.ooo.remove(*r, samples);
            }
            crate::failpoint::hit(compact::FP_HEAD_AFTER_RENAME);
            let b = Block::open(&inner.dir.join(&meta.ulid))?;
            self.add_block(Arc::new(b));
            tracing::info!(
                ulid = %meta.ulid,
                mint = meta.min_time,
                maxt = meta.max_time,
                series = meta.stats.num_series,
                samples = meta.stats.num_samples,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "write block"
            );
        }
        self.truncate(maxt)?;
        Ok(())
    }

    fn add_block(&self, b: Arc<Block>) {
        let mut blocks = self.inner.blocks.write();
        blocks.push(b);
        blocks.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
    }

    fn compact_blocks(&self, sources: &[Arc<Block>]) -> Result<(), TsdbError> {
        let inner = &self.inner;
        let started = std::time::Instant::now();
        let made = compact::compact_blocks(&inner.dir, sources)?;
        let new = match made {
            Some((meta, dir)) => {
                crate::failpoint::hit(compact::FP_COMPACT_AFTER_RENAME);
                tracing::info!(
                    ulid = %meta.ulid,
                    mint = meta.min_time,
                    maxt = meta.max_time,
                    sources = sources.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "compact blocks"
                );
                Some(Arc::new(Block::open(&dir)?))
            }
            None => None,
        };
        let ids: std::collections::HashSet<&str> =
            sources.iter().map(|b| b.meta().ulid.as_str()).collect();
        {
            let mut blocks = inner.blocks.write();
            blocks.retain(|b| !ids.contains(b.meta().ulid.as_str()));
            if let Some(n) = new {
                blocks.push(n);
            }
            blocks.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
        }
        for b in sources {
            delete_block_dir(b.dir())?;
        }
        Ok(())
    }

    /// Deletes whole blocks beyond the retention: by time (every sample older than `cutoff`,
    /// or — compat — ending more than the retention before the newest block's end) and by size
    /// (oldest first while blocks, WAL and head chunks exceed the size limit).
    fn block_retention(&self, cutoff: Timestamp) -> Result<(), TsdbError> {
        let inner = &self.inner;
        let _g = inner.compact_lock.lock();
        let blocks = inner.blocks.read().clone();
        if blocks.is_empty() {
            return Ok(());
        }
        let retention = millis(inner.opts.retention);
        let newest = blocks.iter().map(|b| b.meta().max_time).max().unwrap_or(0);
        let mut doomed: Vec<Arc<Block>> = blocks
            .iter()
            .filter(|b| {
                let m = b.meta();
                m.max_time <= cutoff || newest.saturating_sub(m.max_time) > retention
            })
            .cloned()
            .collect();
        if !doomed.is_empty() {
            inner
                .metrics
                .time_retentions
                .fetch_add(1, Ordering::Relaxed);
        }
        if inner.opts.retention_size > 0 {
            let mut total = dir_bytes(&inner.dir.join("wal")) + inner.head.chunks.size().1;
            let mut by_size = false;
            // Newest first: once over the limit, this block and every older one go.
            for b in blocks.iter().rev() {
                total += b.size();
                if total > inner.opts.retention_size {
                    by_size = true;
                    if !doomed.iter().any(|d| Arc::ptr_eq(d, b)) {
                        doomed.push(b.clone());
                    }
                }
            }
            if by_size {
                inner
                    .metrics
                    .size_retentions
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        inner
            .blocks
            .write()
            .retain(|b| !doomed.iter().any(|d| Arc::ptr_eq(d, b)));
        for b in &doomed {
            tracing::info!(ulid = %b.meta().ulid, maxt = b.meta().max_time, "deleting block beyond retention");
            delete_block_dir(b.dir())?;
        }
        Ok(())
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    blockmod::dir_size(dir)
}

impl Db {
    /// Deletes the samples in `[mint, maxt]` of the series matching `matchers`: tombstones in
    /// the blocks (written to their `tombstones` files) and in the head (logged in the WAL).
    /// Queries stop returning them at once; `clean_tombstones` rewrites the blocks.
    pub fn delete_series(
        &self,
        matchers: &[model::Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Result<(), TsdbError> {
        let inner = &self.inner;
        if inner.is_closed() {
            return Err(TsdbError::Closed);
        }
        let _g = inner.compact_lock.lock();
        for b in inner.blocks.read().iter() {
            if !b.meta().overlaps(mint, maxt) {
                continue;
            }
            let mut t = (*b.tombstones()).clone();
            let mut changed = false;
            for id in b.index.for_matchers(matchers)? {
                let chunks = b.index.chunk_metas(id)?;
                if chunks.iter().any(|c| c.maxt >= mint && c.mint <= maxt) {
                    t.add(id, mint, maxt);
                    changed = true;
                }
            }
            if changed {
                b.set_tombstones(t)?;
            }
        }
        let head = &inner.head;
        let refs = head.postings.read().for_matchers(matchers);
        let stones: Vec<Tombstone> = refs
            .into_iter()
            .map(|r| Tombstone {
                series_ref: r,
                mint,
                maxt,
            })
            .collect();
        if !stones.is_empty() {
            let mut rec = Vec::new();
            crate::wal::record::encode_tombstones(&stones, &mut rec);
            {
                let _l = inner.log_lock.lock();
                inner.wal.log(&[&rec])?;
            }
            let mut t = head.tombstones.write();
            for s in &stones {
                t.add(s.series_ref, mint, maxt);
            }
        }
        Ok(())
    }

    /// Rewrites every block that has tombstones without the deleted samples (each block into
    /// one new block of the same range) and removes the old one.
    pub fn clean_tombstones(&self) -> Result<usize, TsdbError> {
        let inner = &self.inner;
        if inner.is_closed() {
            return Err(TsdbError::Closed);
        }
        let _g = inner.compact_lock.lock();
        let dirty: Vec<Arc<Block>> = inner
            .blocks
            .read()
            .iter()
            .filter(|b| !b.tombstones().is_empty())
            .cloned()
            .collect();
        for b in &dirty {
            self.compact_blocks(std::slice::from_ref(b))?;
        }
        Ok(dirty.len())
    }

    /// Writes a snapshot of the database into `dst` (created): every block hard-linked (copied
    /// if linking fails), and with `with_head` the head's data as one more block.
    pub fn snapshot(&self, dst: &Path, with_head: bool) -> Result<(), TsdbError> {
        let inner = &self.inner;
        fs::create_dir_all(dst).ctx(|| format!("create snapshot directory {}", dst.display()))?;
        let blocks = inner.blocks.read().clone();
        for b in &blocks {
            link_dir(b.dir(), &dst.join(&b.meta().ulid))?;
        }
        if with_head && !inner.head.is_empty() {
            let lo = inner
                .head
                .min_time()
                .max(inner.head.min_valid_time.load(Ordering::Acquire));
            let hi = inner.head.max_time().saturating_add(1);
            compact::write_head_block(dst, &inner.head, lo, hi, &mut Vec::new())?;
        }
        blockmod::sync_dir(dst)
    }
}

fn link_dir(src: &Path, dst: &Path) -> Result<(), TsdbError> {
    fs::create_dir_all(dst).ctx(|| format!("create {}", dst.display()))?;
    for e in fs::read_dir(src).ctx(|| format!("list {}", src.display()))? {
        let e = e.ctx(|| format!("list {}", src.display()))?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        if from.is_dir() {
            link_dir(&from, &to)?;
        } else if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).ctx(|| format!("copy {} to {}", from.display(), to.display()))?;
        }
    }
    Ok(())
}

impl Db {
    /// Whether some out-of-order samples lie before the head's in-order floor (in a range
    /// already cut into blocks): those are written out as blocks of their own.
    fn ooo_due(&self) -> bool {
        let head = &self.inner.head;
        if self.inner.wbl.get().is_none() {
            return false;
        }
        let bound = head.min_valid_time.load(Ordering::Acquire);
        head.ooo.oldest().is_some_and(|t| t < bound)
    }

    /// Writes the out-of-order samples older than the head's in-order floor to blocks and
    /// forgets them; the newer ones are carried over into a fresh WBL segment.
    fn flush_ooo(&self) -> Result<usize, TsdbError> {
        let inner = &self.inner;
        let Some(wbl) = inner.wbl.get() else {
            return Ok(0);
        };
        let head = &inner.head;
        type Flushed = (model::Labels, u64, Vec<(i64, f64)>);
        let mut series: Vec<Flushed> = Vec::new();
        // Only samples before the in-order floor: newer ones go out with the head's block, so
        // out-of-order blocks never reach into the head's range (whose floor, at open, is the
        // newest block's end). Those stay in memory and are carried over into the new WBL
        // segment, so the old segments can go.
        let floor = head.min_valid_time.load(Ordering::Acquire);
        let mut carry: Vec<RefSample> = Vec::new();
        let cut = {
            let _l = inner.log_lock.lock();
            // Copied out first: the series index is not locked while the store is.
            let all: Vec<(u64, Vec<(i64, f64)>)> = head
                .ooo
                .m
                .lock()
                .iter()
                .map(|(r, b)| (*r, b.clone()))
                .collect();
            for (r, b) in all {
                let Some(s) = head.get_by_ref(r) else {
                    continue;
                };
                let n = b.partition_point(|x| x.0 < floor);
                if n > 0 {
                    series.push((s.labels.clone(), r, b[..n].to_vec()));
                }
                carry.extend(b[n..].iter().map(|&(t, v)| RefSample {
                    series_ref: r,
                    t,
                    v,
                }));
            }
            if series.is_empty() && carry.is_empty() {
                return Ok(0);
            }
            let cut = wbl.next_segment()?;
            let mut rec = Vec::new();
            for part in carry.chunks(10_000) {
                rec.clear();
                crate::wal::record::encode_samples(part.iter().copied(), &mut rec);
                wbl.log(&[&rec])?;
            }
            cut
        };
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let tombstones = head.tombstones.read().clone();
        let data: Vec<(model::Labels, Vec<(i64, f64)>)> = series
            .iter()
            .map(|(l, r, s)| {
                let del = tombstones.get(*r);
                let kept = s
                    .iter()
                    .filter(|x| !blockmod::tombstones::is_deleted(del, x.0))
                    .copied()
                    .collect();
                (l.clone(), kept)
            })
            .filter(|(_, s): &(_, Vec<_>)| !s.is_empty())
            .collect();
        let dirs = compact::write_ooo_blocks(&inner.dir, &data, head.chunk_range)?;
        for d in &dirs {
            self.add_block(Arc::new(Block::open(d)?));
        }
        // Forget what was written; samples added meanwhile stay.
        for (_, r, flushed) in &series {
            head.ooo.remove(*r, flushed);
        }
        // A commit may have logged to an old segment before the cut and applied its samples
        // after the copy above: those go out (or are carried over) with the next flush, so the
        // segments before this cut are deleted one flush later.
        let mut before = inner.wbl_flushed_before.lock();
        wbl.delete_segments_before(*before)?;
        *before = cut;
        tracing::info!(
            blocks = dirs.len(),
            series = series.len(),
            "wrote out-of-order blocks"
        );
        Ok(dirs.len())
    }
}
