//! Full head chunks on disk, in Prometheus's `chunks_head/` format (`docs/format/head_chunks.md`):
//! files `000001`, `000002`, … each starting with an 8-byte header, then chunks that carry their
//! series ref and time range so they can be matched to series again on restart.
//!
//! The head keeps only a chunk's reference (file << 32 | offset) and time range in memory and
//! reads the bytes back through a memory map; that is what keeps a series' resident size small.

pub(crate) mod mmap;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::thread::JoinHandle;

use parking_lot::{Mutex, RwLock};

use crate::chunkenc::Encoding;
use crate::encoding::{put_uvarint, uvarint};
use crate::error::{IoContext, TsdbError};
use mmap::MappedFile;

/// compat: Prometheus's `MagicHeadChunks`. (Its `head_chunks.md` shows the block chunk magic
/// 0x85BD40DD, but head chunk files written by Prometheus start with this value.)
pub const MAGIC: u32 = 0x0130_BC91;
pub const FORMAT_V1: u8 = 1;
/// magic (4) + version (1) + padding (3).
pub const FILE_HEADER_SIZE: usize = 8;
pub const DEFAULT_MAX_FILE_SIZE: usize = 128 * 1024 * 1024;
/// series ref (8) + mint (8) + maxt (8).
const CHUNK_PREFIX: usize = 24;
const MAX_LEN_FIELD: usize = 5;
const CRC_SIZE: usize = 4;
/// The most bytes a chunk takes besides its data.
pub const MAX_CHUNK_META: usize = CHUNK_PREFIX + 1 + MAX_LEN_FIELD + CRC_SIZE;

/// Where a chunk lives: file sequence number in the upper 32 bits, byte offset of the chunk's
/// series ref field in the lower 32 (Prometheus's `ChunkDiskMapperRef`).
pub type ChunkRef = u64;

pub fn pack_ref(seq: u32, offset: u32) -> ChunkRef {
    (u64::from(seq) << 32) | u64::from(offset)
}

pub fn unpack_ref(r: ChunkRef) -> (u32, u32) {
    ((r >> 32) as u32, r as u32)
}

/// The file name of chunk file `seq`: six decimal digits.
pub fn file_name(seq: u32) -> String {
    format!("{seq:06}")
}

/// A chunk found in the files at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedChunk {
    pub series_ref: u64,
    pub chunk_ref: ChunkRef,
    pub mint: i64,
    pub maxt: i64,
    pub num_samples: u16,
}

pub(crate) struct ChunkFile {
    map: MappedFile,
    maxt: AtomicI64,
}

/// The encoded bytes of one chunk, borrowed from its mapped file (kept mapped while held).
#[derive(Clone)]
pub struct ChunkBytes {
    file: Arc<ChunkFile>,
    start: usize,
    len: usize,
}

impl ChunkBytes {
    pub fn as_slice(&self) -> &[u8] {
        // The range was validated against the published prefix when this was created, and the
        // prefix only grows.
        self.file.map.get(self.start, self.len).unwrap_or(&[])
    }
}

impl std::fmt::Debug for ChunkBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkBytes")
            .field("start", &self.start)
            .field("len", &self.len)
            .finish()
    }
}

struct Current {
    seq: u32,
    file: File,
    chunk_file: Arc<ChunkFile>,
    cap: usize,
    size: usize,
}

struct WriterState {
    cur: Option<Current>,
    next_seq: u32,
    scratch: Vec<u8>,
    syncing: Vec<JoinHandle<()>>,
    closed: bool,
}

/// Writes full head chunks to files and reads them back. Thread-safe.
pub struct ChunkDiskMapper {
    dir: PathBuf,
    max_file_size: usize,
    writer: Mutex<WriterState>,
    files: RwLock<BTreeMap<u32, Arc<ChunkFile>>>,
}

fn list_files(dir: &Path) -> Result<Vec<(u32, PathBuf)>, TsdbError> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).ctx(|| format!("list head chunks directory {}", dir.display()))? {
        let e = e.ctx(|| format!("list head chunks directory {}", dir.display()))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(seq) = name.parse::<u32>() {
            out.push((seq, e.path()));
        }
    }
    out.sort_by_key(|f| f.0);
    Ok(out)
}

/// Result of scanning one file: the chunks, the file's max time, and where valid data ends if a
/// bad chunk was found (with the reason).
struct Scan {
    chunks: Vec<LoadedChunk>,
    maxt: i64,
    bad: Option<(usize, String)>,
}

fn scan_file(seq: u32, b: &[u8]) -> Scan {
    let mut s = Scan {
        chunks: Vec::new(),
        maxt: i64::MIN,
        bad: None,
    };
    if b.len() < FILE_HEADER_SIZE {
        s.bad = Some((0, "file shorter than its header".into()));
        return s;
    }
    let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if magic != MAGIC || b[4] != FORMAT_V1 {
        s.bad = Some((0, format!("invalid magic {magic:#x} or version {}", b[4])));
        return s;
    }
    let mut idx = FILE_HEADER_SIZE;
    while idx < b.len() {
        if b.len() - idx < MAX_CHUNK_META && b[idx..].iter().all(|&x| x == 0) {
            break;
        }
        match parse_chunk(b, idx) {
            Ok(None) => break,
            Ok(Some((c, end))) => {
                s.maxt = s.maxt.max(c.maxt);
                s.chunks.push(LoadedChunk {
                    chunk_ref: pack_ref(seq, idx as u32),
                    ..c
                });
                idx = end;
            }
            Err(reason) => {
                s.bad = Some((idx, reason.into()));
                break;
            }
        }
    }
    s
}

/// Parses the chunk at `idx`: its description and the offset after it, `None` at zero padding.
fn parse_chunk(b: &[u8], idx: usize) -> Result<Option<(LoadedChunk, usize)>, &'static str> {
    let be64 = |at: usize| {
        b.get(at..at + 8)
            .map(|s| u64::from_be_bytes(s.try_into().unwrap_or([0; 8])))
    };
    let (Some(series_ref), Some(mint), Some(maxt)) = (be64(idx), be64(idx + 8), be64(idx + 16))
    else {
        return Err("chunk header cut short");
    };
    // compat: Prometheus treats a zero series ref and time range as the end of the data
    // (refs start at 1), which covers preallocated files.
    if series_ref == 0 && mint == 0 && maxt == 0 {
        return Ok(None);
    }
    let enc_at = idx + CHUNK_PREFIX;
    let enc = *b.get(enc_at).ok_or("chunk header cut short")?;
    let len_field = &b[(enc_at + 1).min(b.len())..(enc_at + 1 + MAX_LEN_FIELD).min(b.len())];
    let (data_len, n) = uvarint(len_field).ok_or("invalid chunk length")?;
    let data_start = enc_at + 1 + n;
    let data_end = usize::try_from(data_len)
        .ok()
        .and_then(|l| data_start.checked_add(l))
        .ok_or("invalid chunk length")?;
    if data_end + CRC_SIZE > b.len() {
        return Err("chunk extends past the end of the file");
    }
    let want = u32::from_be_bytes(
        b[data_end..data_end + CRC_SIZE]
            .try_into()
            .unwrap_or([0; 4]),
    );
    if crc32c::crc32c(&b[idx..data_end]) != want {
        return Err("chunk checksum mismatch");
    }
    let data = &b[data_start..data_end];
    let num_samples = if data.len() >= 2 && enc == Encoding::Xor as u8 {
        u16::from_be_bytes([data[0], data[1]])
    } else {
        0
    };
    let c = LoadedChunk {
        series_ref,
        chunk_ref: 0,
        mint: mint as i64,
        maxt: maxt as i64,
        num_samples,
    };
    Ok(Some((c, data_end + CRC_SIZE)))
}

impl ChunkDiskMapper {
    /// Opens `dir`, scanning existing files. A torn chunk at the end of the last file (a write
    /// cut short by a crash) is truncated away; a bad chunk in an earlier file drops that file and
    /// all later ones, as Prometheus does. Returns the valid chunks found, in file order.
    pub fn open(
        dir: &Path,
        max_file_size: usize,
    ) -> Result<(ChunkDiskMapper, Vec<LoadedChunk>), TsdbError> {
        fs::create_dir_all(dir)
            .ctx(|| format!("create head chunks directory {}", dir.display()))?;
        let mut files = list_files(dir)?;
        // A crash right after creating a file can leave it empty.
        if let Some((_, path)) = files.last()
            && fs::metadata(path).is_ok_and(|m| m.len() == 0)
        {
            fs::remove_file(path)
                .ctx(|| format!("delete empty head chunk file {}", path.display()))?;
            files.pop();
        }
        let mut loaded = Vec::new();
        let mut mapped = BTreeMap::new();
        let mut drop_from: Option<usize> = None;
        for (i, (seq, path)) in files.iter().enumerate() {
            if i > 0 && *seq != files[i - 1].0 + 1 {
                tracing::error!(file = %path.display(), "head chunk files are not sequential; dropping this and later files");
                drop_from = Some(i);
                break;
            }
            let is_last = i + 1 == files.len();
            let file = OpenOptions::new()
                .read(true)
                .write(is_last)
                .open(path)
                .ctx(|| format!("open head chunk file {}", path.display()))?;
            let len = file
                .metadata()
                .ctx(|| format!("stat head chunk file {}", path.display()))?
                .len() as usize;
            let map = MappedFile::map(&file, len, len)
                .ctx(|| format!("mmap head chunk file {}", path.display()))?;
            let scan = scan_file(*seq, map.get(0, len).unwrap_or(&[]));
            let mut chunk_file = ChunkFile {
                map,
                maxt: AtomicI64::new(scan.maxt),
            };
            if let Some((at, reason)) = scan.bad {
                if !is_last || at < FILE_HEADER_SIZE {
                    tracing::error!(file = %path.display(), offset = at, reason, "corrupt head chunk file; dropping this and later files");
                    drop_from = Some(i);
                    break;
                }
                tracing::warn!(file = %path.display(), offset = at, reason, "truncating torn head chunk file tail");
                file.set_len(at as u64)
                    .ctx(|| format!("truncate head chunk file {}", path.display()))?;
                drop(chunk_file);
                let map = MappedFile::map(&file, at, at)
                    .ctx(|| format!("mmap head chunk file {}", path.display()))?;
                chunk_file = ChunkFile {
                    map,
                    maxt: AtomicI64::new(scan.maxt),
                };
            }
            loaded.extend(scan.chunks);
            mapped.insert(*seq, Arc::new(chunk_file));
        }
        if let Some(from) = drop_from {
            for (_, path) in &files[from..] {
                fs::remove_file(path)
                    .ctx(|| format!("delete corrupt head chunk file {}", path.display()))?;
            }
            files.truncate(from);
        }
        let next_seq = files.last().map_or(1, |f| f.0 + 1);
        let m = ChunkDiskMapper {
            dir: dir.to_path_buf(),
            max_file_size: max_file_size.max(FILE_HEADER_SIZE + MAX_CHUNK_META + 2),
            writer: Mutex::new(WriterState {
                cur: None,
                next_seq,
                scratch: Vec::new(),
                syncing: Vec::new(),
                closed: false,
            }),
            files: RwLock::new(mapped),
        };
        Ok((m, loaded))
    }

    /// Appends a chunk and returns its reference. The bytes reach the OS before this returns.
    pub fn write_chunk(
        &self,
        series_ref: u64,
        mint: i64,
        maxt: i64,
        data: &[u8],
    ) -> Result<ChunkRef, TsdbError> {
        let mut w = self.writer.lock();
        if w.closed {
            return Err(TsdbError::Closed);
        }
        let need = data.len() + MAX_CHUNK_META;
        if w.cur.as_ref().is_none_or(|c| c.size + need > c.cap) {
            self.cut(&mut w, need)?;
        }
        let WriterState { cur, scratch, .. } = &mut *w;
        let cur = cur.as_mut().ok_or(TsdbError::Closed)?;
        scratch.clear();
        scratch.extend_from_slice(&series_ref.to_be_bytes());
        scratch.extend_from_slice(&mint.to_be_bytes());
        scratch.extend_from_slice(&maxt.to_be_bytes());
        scratch.push(Encoding::Xor as u8);
        put_uvarint(scratch, data.len() as u64);
        scratch.extend_from_slice(data);
        let crc = crc32c::crc32c(scratch);
        scratch.extend_from_slice(&crc.to_be_bytes());
        let offset = cur.size;
        if let Err(e) = cur.file.write_all(scratch) {
            // Drop a partial write so the next chunk starts at a known offset.
            let _ = cur.file.set_len(offset as u64);
            return Err(TsdbError::Io {
                context: format!("write head chunk file {}", file_name(cur.seq)),
                source: e,
            });
        }
        cur.size += scratch.len();
        cur.chunk_file.map.publish(cur.size);
        cur.chunk_file.maxt.fetch_max(maxt, Ordering::Relaxed);
        Ok(pack_ref(cur.seq, offset as u32))
    }

    /// Starts a new file; the finished one is fsynced in the background.
    fn cut(&self, w: &mut WriterState, need: usize) -> Result<(), TsdbError> {
        if let Some(old) = w.cur.take() {
            w.syncing.retain(|h| !h.is_finished());
            w.syncing.push(std::thread::spawn(move || {
                if let Err(e) = old.file.sync_all() {
                    tracing::error!(file = old.seq, error = %e, "fsync head chunk file");
                }
            }));
        }
        let seq = w.next_seq;
        let path = self.dir.join(file_name(seq));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx(|| format!("create head chunk file {}", path.display()))?;
        w.next_seq += 1;
        let mut header = [0u8; FILE_HEADER_SIZE];
        header[..4].copy_from_slice(&MAGIC.to_be_bytes());
        header[4] = FORMAT_V1;
        file.write_all(&header)
            .ctx(|| format!("write head chunk file header {}", path.display()))?;
        let cap = self.max_file_size.max(FILE_HEADER_SIZE + need);
        let map = MappedFile::map(&file, cap, FILE_HEADER_SIZE)
            .ctx(|| format!("mmap head chunk file {}", path.display()))?;
        let chunk_file = Arc::new(ChunkFile {
            map,
            maxt: AtomicI64::new(i64::MIN),
        });
        self.files.write().insert(seq, chunk_file.clone());
        w.cur = Some(Current {
            seq,
            file,
            chunk_file,
            cap,
            size: FILE_HEADER_SIZE,
        });
        Ok(())
    }

    /// The bytes of chunk `r`, checked against its CRC.
    pub fn chunk(&self, r: ChunkRef) -> Result<ChunkBytes, TsdbError> {
        let (seq, off) = unpack_ref(r);
        let path = || self.dir.join(file_name(seq));
        let file = self.files.read().get(&seq).cloned().ok_or_else(|| {
            TsdbError::corruption(path(), u64::from(off), "head chunk file does not exist")
        })?;
        let b = file.map.get(0, file.map.len()).unwrap_or(&[]);
        match parse_chunk(b, off as usize) {
            Ok(Some((_, end))) => {
                let enc_at = off as usize + CHUNK_PREFIX;
                let (len, n) = uvarint(&b[enc_at + 1..]).unwrap_or((0, 0));
                let start = enc_at + 1 + n;
                debug_assert_eq!(start + len as usize + CRC_SIZE, end);
                Ok(ChunkBytes {
                    file,
                    start,
                    len: len as usize,
                })
            }
            Ok(None) => Err(TsdbError::corruption(
                path(),
                u64::from(off),
                "no chunk at offset",
            )),
            Err(reason) => Err(TsdbError::corruption(path(), u64::from(off), reason)),
        }
    }

    /// Drops the resident pages of every mapped file (after a one-off read of many chunks, such
    /// as head compaction), so they stop counting as this process's memory; queries fault in
    /// what they read again.
    pub fn drop_resident(&self) {
        for f in self.files.read().values() {
            f.map.drop_resident();
        }
    }

    /// Deletes the oldest files whose chunks all end before `mint` (never the one being written),
    /// after first starting a new file so the current one can go next time. Returns how many.
    pub fn truncate(&self, mint: i64) -> Result<usize, TsdbError> {
        let mut w = self.writer.lock();
        if w.cur.as_ref().is_some_and(|c| c.size > FILE_HEADER_SIZE) {
            self.cut(&mut w, 0)?;
        }
        let current = w.cur.as_ref().map(|c| c.seq);
        let mut removed = Vec::new();
        {
            let mut files = self.files.write();
            // Only a prefix, so the remaining files stay sequential.
            while let Some((&seq, f)) = files.first_key_value() {
                if Some(seq) == current || f.maxt.load(Ordering::Relaxed) >= mint {
                    break;
                }
                files.remove(&seq);
                removed.push(seq);
            }
        }
        drop(w);
        for seq in &removed {
            let path = self.dir.join(file_name(*seq));
            fs::remove_file(&path).ctx(|| format!("delete head chunk file {}", path.display()))?;
        }
        Ok(removed.len())
    }

    /// Fsyncs the file being written and waits for background fsyncs of finished ones, so all
    /// chunks written so far are durable.
    pub fn sync(&self) -> Result<(), TsdbError> {
        let handles = {
            let mut w = self.writer.lock();
            if let Some(c) = &w.cur {
                c.file
                    .sync_data()
                    .ctx(|| format!("fsync head chunk file {}", file_name(c.seq)))?;
            }
            std::mem::take(&mut w.syncing)
        };
        for h in handles {
            let _ = h.join();
        }
        Ok(())
    }

    pub fn close(&self) -> Result<(), TsdbError> {
        self.sync()?;
        let mut w = self.writer.lock();
        w.closed = true;
        w.cur = None;
        Ok(())
    }

    /// Number of files and their total size in bytes.
    pub fn size(&self) -> (usize, u64) {
        let files = self.files.read();
        (
            files.len(),
            files.values().map(|f| f.map.len() as u64).sum(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (m, loaded) = ChunkDiskMapper::open(dir.path(), 200).unwrap();
        assert!(loaded.is_empty());
        let mut refs = Vec::new();
        for i in 0..10u64 {
            let data = vec![0, 3, i as u8, 1, 2, 3, 4, 5];
            refs.push((
                m.write_chunk(i + 1, i as i64 * 10, i as i64 * 10 + 9, &data)
                    .unwrap(),
                data,
            ));
        }
        for (r, data) in &refs {
            assert_eq!(m.chunk(*r).unwrap().as_slice(), &data[..]);
        }
        assert!(m.size().0 > 1, "small max size forces several files");
        m.close().unwrap();
        drop(m);

        let header = fs::read(dir.path().join("000001")).unwrap();
        assert_eq!(&header[..8], &[0x01, 0x30, 0xbc, 0x91, 1, 0, 0, 0]);

        let (m, loaded) = ChunkDiskMapper::open(dir.path(), 200).unwrap();
        assert_eq!(loaded.len(), 10);
        for (i, c) in loaded.iter().enumerate() {
            assert_eq!(
                (c.series_ref, c.mint, c.maxt, c.num_samples, c.chunk_ref),
                (i as u64 + 1, i as i64 * 10, i as i64 * 10 + 9, 3, refs[i].0)
            );
        }
        // New chunks go to a new file after the existing ones.
        let r = m.write_chunk(99, 1000, 1001, &[0, 1, 7]).unwrap();
        assert!(unpack_ref(r).0 > unpack_ref(refs[9].0).0);
    }

    #[test]
    fn torn_tail_truncated_and_middle_corruption_drops_later_files() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = ChunkDiskMapper::open(dir.path(), 100).unwrap();
        for i in 0..6u64 {
            m.write_chunk(i + 1, i as i64, i as i64, &[0, 1, 9, 9, 9, 9, 9, 9, 9, 9])
                .unwrap();
        }
        m.close().unwrap();
        drop(m);
        let files = list_files(dir.path()).unwrap();
        let last = &files.last().unwrap().1;
        let len = fs::metadata(last).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(last)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (m, loaded) = ChunkDiskMapper::open(dir.path(), 100).unwrap();
        assert_eq!(loaded.len(), 5, "torn last chunk dropped");
        drop(m);

        let first = &files[0].1;
        let mut b = fs::read(first).unwrap();
        b[FILE_HEADER_SIZE + 30] ^= 0xff;
        fs::write(first, b).unwrap();
        let (_, loaded) = ChunkDiskMapper::open(dir.path(), 100).unwrap();
        assert!(loaded.is_empty());
        assert!(list_files(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn truncate_deletes_old_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let (m, _) = ChunkDiskMapper::open(dir.path(), 120).unwrap();
        let mut refs = Vec::new();
        for i in 0..8i64 {
            refs.push(
                m.write_chunk(1, i * 100, i * 100 + 50, &[0, 1, 1, 2, 3, 4, 5, 6, 7, 8])
                    .unwrap(),
            );
        }
        let before = m.size().0;
        let removed = m.truncate(420).unwrap();
        assert!(removed > 0 && removed < before);
        assert!(m.chunk(refs[0]).is_err());
        assert!(m.chunk(refs[7]).is_ok());
        assert!(m.chunk(refs[4]).is_ok(), "chunk ending at 450 >= 420 stays");
    }
}
