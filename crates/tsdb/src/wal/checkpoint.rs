//! WAL checkpoints, laid out as Prometheus's: `wal/checkpoint.NNNNNNNN/` is itself a WAL (segments
//! `00000000`, …) holding the series and samples of the previous checkpoint and of segments up to
//! `NNNNNNNN` that are still needed. Written to `checkpoint.NNNNNNNN.tmp`, fsynced, then renamed,
//! so a crash leaves either the old or the new checkpoint, never half of one.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{IoContext, TsdbError};
use crate::wal::record::{self, RefSample, RefSeries, Tombstone};
use crate::wal::{
    DEFAULT_SEGMENT_SIZE, ReadError, Reader, Wal, WalMetrics, list_segments, sync_dir,
};

const PREFIX: &str = "checkpoint.";
const TMP_SUFFIX: &str = ".tmp";
/// Output records are batched to about this size, like Prometheus's checkpoint does.
const BATCH_BYTES: usize = 1 << 20;

/// The directory name of checkpoint `index`.
pub fn checkpoint_name(index: u32) -> String {
    format!("{PREFIX}{index:08}")
}

/// Finished checkpoints in `wal_dir`, sorted by index.
pub fn list_checkpoints(wal_dir: &Path) -> Result<Vec<(u32, PathBuf)>, TsdbError> {
    let mut out = Vec::new();
    let entries =
        fs::read_dir(wal_dir).ctx(|| format!("list WAL directory {}", wal_dir.display()))?;
    for e in entries {
        let e = e.ctx(|| format!("list WAL directory {}", wal_dir.display()))?;
        let name = e.file_name();
        let Some(digits) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(idx) = digits.parse::<u32>()
            && e.file_type().is_ok_and(|t| t.is_dir())
        {
            out.push((idx, e.path()));
        }
    }
    out.sort_by_key(|c| c.0);
    Ok(out)
}

/// The newest checkpoint, if any.
pub fn last_checkpoint(wal_dir: &Path) -> Result<Option<(u32, PathBuf)>, TsdbError> {
    Ok(list_checkpoints(wal_dir)?.pop())
}

/// Deletes checkpoints older than `index` and leftover temporary ones.
pub fn delete_checkpoints_before(wal_dir: &Path, index: u32) -> Result<(), TsdbError> {
    for (i, path) in list_checkpoints(wal_dir)? {
        if i < index {
            fs::remove_dir_all(&path).ctx(|| format!("delete checkpoint {}", path.display()))?;
        }
    }
    remove_tmp(wal_dir)
}

/// Removes `checkpoint.*.tmp` directories a crash may have left behind.
pub fn remove_tmp(wal_dir: &Path) -> Result<(), TsdbError> {
    let entries =
        fs::read_dir(wal_dir).ctx(|| format!("list WAL directory {}", wal_dir.display()))?;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(PREFIX) && name.ends_with(TMP_SUFFIX) {
            fs::remove_dir_all(e.path())
                .ctx(|| format!("delete temporary checkpoint {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// What a checkpoint kept and dropped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckpointStats {
    pub index: u32,
    pub series_kept: u64,
    pub series_dropped: u64,
    pub samples_kept: u64,
    pub samples_dropped: u64,
    pub tombstones_kept: u64,
    pub tombstones_dropped: u64,
    /// Records of other types (exemplars, metadata, histograms), which are not carried over.
    pub other_dropped: u64,
}

/// Decides what a checkpoint keeps.
pub trait Keep {
    fn series(&self, series_ref: u64) -> bool;
    fn sample(&self, series_ref: u64, t: i64) -> bool;
    /// Tombstones are kept for live series while they can still cover data.
    fn tombstone(&self, ts: &Tombstone) -> bool;
}

/// Writes `checkpoint.{to}` from the previous checkpoint and the segments after it up to `to`.
pub fn create(wal_dir: &Path, to: u32, keep: &dyn Keep) -> Result<CheckpointStats, TsdbError> {
    let mut sources = Vec::new();
    let mut from = 0;
    if let Some((idx, dir)) = last_checkpoint(wal_dir)? {
        sources.extend(list_segments(&dir)?);
        from = idx + 1;
    }
    let segs: Vec<_> = list_segments(wal_dir)?
        .into_iter()
        .filter(|s| s.0 >= from && s.0 <= to)
        .collect();
    if let Some(first) = segs.first()
        && from > 0
        && first.0 != from
    {
        return Err(TsdbError::corruption(
            wal_dir,
            0,
            format!("gap between checkpoint and segment {}", first.0),
        ));
    }
    sources.extend(segs);

    let final_dir = wal_dir.join(checkpoint_name(to));
    let tmp_dir = wal_dir.join(format!("{}{TMP_SUFFIX}", checkpoint_name(to)));
    if tmp_dir.exists() {
        fs::remove_dir_all(&tmp_dir)
            .ctx(|| format!("delete stale checkpoint {}", tmp_dir.display()))?;
    }
    let out = Wal::open(
        &tmp_dir,
        DEFAULT_SEGMENT_SIZE,
        Arc::new(WalMetrics::default()),
    )?;
    let mut stats = CheckpointStats {
        index: to,
        ..Default::default()
    };
    let mut batch = Batch::default();
    let mut reader = Reader::new(sources);
    loop {
        let rec = match reader.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => break,
            Err(ReadError::Io { path, source }) => {
                return Err(TsdbError::Io {
                    context: format!("read {} for checkpoint", path.display()),
                    source,
                });
            }
            Err(e) => {
                let path = match &e {
                    ReadError::Corruption { path, .. } | ReadError::Compressed { path } => {
                        path.clone()
                    }
                    ReadError::Io { path, .. } => path.clone(),
                };
                return Err(TsdbError::corruption(
                    path,
                    reader.position().offset,
                    e.to_string(),
                ));
            }
        };
        batch.add(rec, keep, &mut stats).map_err(|e| {
            TsdbError::corruption(
                wal_dir,
                reader.position().offset,
                format!("segment {}: {e}", reader.position().segment),
            )
        })?;
        if batch.bytes >= BATCH_BYTES {
            batch.flush(&out)?;
        }
    }
    batch.flush(&out)?;
    out.close()?;
    sync_dir(&tmp_dir)?;
    if final_dir.exists() {
        fs::remove_dir_all(&final_dir)
            .ctx(|| format!("replace checkpoint {}", final_dir.display()))?;
    }
    fs::rename(&tmp_dir, &final_dir)
        .ctx(|| format!("rename checkpoint to {}", final_dir.display()))?;
    sync_dir(wal_dir)?;
    Ok(stats)
}

#[derive(Default)]
struct Batch {
    series: Vec<RefSeries>,
    samples: Vec<RefSample>,
    tombstones: Vec<Tombstone>,
    bytes: usize,
    scratch_series: Vec<RefSeries>,
    scratch_samples: Vec<RefSample>,
    scratch_tombstones: Vec<Tombstone>,
}

impl Batch {
    fn add(
        &mut self,
        rec: &[u8],
        keep: &dyn Keep,
        stats: &mut CheckpointStats,
    ) -> Result<(), record::RecordError> {
        match record::record_type(rec) {
            record::SERIES => {
                self.scratch_series.clear();
                record::decode_series(rec, &mut self.scratch_series)?;
                for s in self.scratch_series.drain(..) {
                    if keep.series(s.series_ref) {
                        self.bytes += 16 + s.labels.byte_size();
                        self.series.push(s);
                        stats.series_kept += 1;
                    } else {
                        stats.series_dropped += 1;
                    }
                }
            }
            record::SAMPLES => {
                self.scratch_samples.clear();
                record::decode_samples(rec, &mut self.scratch_samples)?;
                for s in self.scratch_samples.drain(..) {
                    if keep.sample(s.series_ref, s.t) {
                        self.bytes += 14;
                        self.samples.push(s);
                        stats.samples_kept += 1;
                    } else {
                        stats.samples_dropped += 1;
                    }
                }
            }
            record::TOMBSTONES => {
                self.scratch_tombstones.clear();
                record::decode_tombstones(rec, &mut self.scratch_tombstones)?;
                for t in self.scratch_tombstones.drain(..) {
                    if keep.tombstone(&t) {
                        self.bytes += 16;
                        self.tombstones.push(t);
                        stats.tombstones_kept += 1;
                    } else {
                        stats.tombstones_dropped += 1;
                    }
                }
            }
            _ => stats.other_dropped += 1,
        }
        Ok(())
    }

    /// Series first, so every sample's series precedes it in the checkpoint as in the source.
    fn flush(&mut self, out: &Wal) -> Result<(), TsdbError> {
        let mut recs: Vec<Vec<u8>> = Vec::new();
        if !self.series.is_empty() {
            let mut b = Vec::with_capacity(self.bytes);
            record::encode_series(
                self.series.iter().map(|s| (s.series_ref, &s.labels)),
                &mut b,
            );
            recs.push(b);
        }
        if !self.samples.is_empty() {
            let mut b = Vec::with_capacity(self.samples.len() * 14 + 17);
            record::encode_samples(self.samples.iter().copied(), &mut b);
            recs.push(b);
        }
        if !self.tombstones.is_empty() {
            let mut b = Vec::new();
            record::encode_tombstones(&self.tombstones, &mut b);
            recs.push(b);
        }
        if !recs.is_empty() {
            let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
            out.log(&refs)?;
        }
        self.series.clear();
        self.samples.clear();
        self.tombstones.clear();
        self.bytes = 0;
        Ok(())
    }
}
