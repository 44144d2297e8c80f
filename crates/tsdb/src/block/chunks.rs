//! Block chunk segment files (`chunks/000001`, …; Prometheus's `docs/format/chunks.md`):
//! an 8-byte header (magic `0x85BD40DD`, version 1, 3 bytes padding), then chunks of
//! `len <uvarint> | encoding <1b> | data | CRC32C(encoding, data) <4b BE>`. A chunk ref is
//! `segment index (0-based) << 32 | offset`; segments are closed before they pass 512 MiB.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::encoding::{put_uvarint, uvarint};
use crate::error::{IoContext, TsdbError};
use crate::head_chunks::mmap::MappedFile;

pub const MAGIC_CHUNKS: u32 = 0x85BD_40DD;
pub const CHUNKS_FORMAT_V1: u8 = 1;
pub const SEGMENT_HEADER_SIZE: usize = 8;
/// Prometheus's `DefaultChunkSegmentSize`.
pub const DEFAULT_SEGMENT_SIZE: u64 = 512 * 1024 * 1024;
/// The XOR encoding byte.
pub const ENCODING_XOR: u8 = 1;

pub fn segment_name(index: usize) -> String {
    format!("{:06}", index + 1)
}

/// Writes chunks into segment files under `dir` (created).
pub struct ChunkWriter {
    dir: PathBuf,
    segment_size: u64,
    cur: Option<BufWriter<File>>,
    index: usize,
    offset: u64,
    files: Vec<PathBuf>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    pub fn new(dir: &Path, segment_size: u64) -> Result<Self, TsdbError> {
        fs::create_dir_all(dir).ctx(|| format!("create chunks directory {}", dir.display()))?;
        Ok(ChunkWriter {
            dir: dir.to_path_buf(),
            segment_size,
            cur: None,
            index: 0,
            offset: 0,
            files: Vec::new(),
            buf: Vec::new(),
        })
    }

    fn cut(&mut self) -> Result<(), TsdbError> {
        self.finish_segment()?;
        let index = self.files.len();
        let path = self.dir.join(segment_name(index));
        let f = File::create(&path).ctx(|| format!("create chunk segment {}", path.display()))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let mut hdr = [0u8; SEGMENT_HEADER_SIZE];
        hdr[..4].copy_from_slice(&MAGIC_CHUNKS.to_be_bytes());
        hdr[4] = CHUNKS_FORMAT_V1;
        w.write_all(&hdr)
            .ctx(|| format!("write chunk segment {}", path.display()))?;
        self.cur = Some(w);
        self.index = index;
        self.offset = SEGMENT_HEADER_SIZE as u64;
        self.files.push(path);
        Ok(())
    }

    /// Appends one chunk; returns its ref.
    pub fn write(&mut self, encoding: u8, data: &[u8]) -> Result<u64, TsdbError> {
        self.buf.clear();
        put_uvarint(&mut self.buf, data.len() as u64);
        let crc_start = self.buf.len();
        self.buf.push(encoding);
        self.buf.extend_from_slice(data);
        let crc = crc32c::crc32c(&self.buf[crc_start..]);
        self.buf.extend_from_slice(&crc.to_be_bytes());
        let n = self.buf.len() as u64;
        if self.cur.is_none() || self.offset + n > self.segment_size {
            self.cut()?;
        }
        let r = ((self.index as u64) << 32) | self.offset;
        let path = &self.files[self.index];
        self.cur
            .as_mut()
            .expect("BUG: cut() opened a segment")
            .write_all(&self.buf)
            .ctx(|| format!("write chunk segment {}", path.display()))?;
        self.offset += n;
        Ok(r)
    }

    fn finish_segment(&mut self) -> Result<(), TsdbError> {
        if let Some(w) = self.cur.take() {
            let path = &self.files[self.index];
            let f = w
                .into_inner()
                .map_err(|e| e.into_error())
                .ctx(|| format!("flush chunk segment {}", path.display()))?;
            f.sync_all()
                .ctx(|| format!("fsync chunk segment {}", path.display()))?;
        }
        Ok(())
    }

    /// Flushes and fsyncs the last segment.
    pub fn finish(mut self) -> Result<(), TsdbError> {
        self.finish_segment()?;
        crate::block::sync_dir(&self.dir)
    }
}

/// Read-only, memory-mapped chunk segments of one block.
pub struct ChunkReader {
    dir: PathBuf,
    segments: Vec<MappedFile>,
    size: u64,
}

fn corrupt(path: &Path, off: usize, reason: impl Into<String>) -> TsdbError {
    TsdbError::corruption(path, off as u64, reason)
}

impl ChunkReader {
    /// Maps every segment in `dir` and checks each header.
    pub fn open(dir: &Path) -> Result<Self, TsdbError> {
        let mut names: Vec<(u32, PathBuf)> = Vec::new();
        for e in fs::read_dir(dir).ctx(|| format!("list chunks directory {}", dir.display()))? {
            let e = e.ctx(|| format!("list chunks directory {}", dir.display()))?;
            let name = e.file_name();
            if let Some(n) = name.to_str().and_then(|s| s.parse::<u32>().ok()) {
                names.push((n, e.path()));
            }
        }
        names.sort();
        let mut segments = Vec::with_capacity(names.len());
        let mut size = 0;
        for (i, (n, path)) in names.iter().enumerate() {
            if *n as usize != i + 1 {
                return Err(corrupt(path, 0, "chunk segments are not numbered 000001…"));
            }
            let f = File::open(path).ctx(|| format!("open chunk segment {}", path.display()))?;
            let len = f
                .metadata()
                .ctx(|| format!("stat chunk segment {}", path.display()))?
                .len() as usize;
            let map = MappedFile::map(&f, len, len)
                .ctx(|| format!("map chunk segment {}", path.display()))?;
            let b = map.get(0, len).unwrap_or(&[]);
            if b.len() < SEGMENT_HEADER_SIZE
                || u32::from_be_bytes([b[0], b[1], b[2], b[3]]) != MAGIC_CHUNKS
            {
                return Err(corrupt(path, 0, "invalid chunk segment header"));
            }
            if b[4] != CHUNKS_FORMAT_V1 {
                return Err(corrupt(path, 4, format!("unknown chunk format {}", b[4])));
            }
            size += len as u64;
            segments.push(map);
        }
        Ok(ChunkReader {
            dir: dir.to_path_buf(),
            segments,
            size,
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    fn seg_bytes(&self, i: usize) -> &[u8] {
        let m = &self.segments[i];
        m.get(0, m.len()).unwrap_or(&[])
    }

    fn path(&self, i: usize) -> PathBuf {
        self.dir.join(segment_name(i))
    }

    /// Parses the chunk at `off` of segment `i`: (encoding, data, end offset), its CRC checked
    /// when `check`.
    fn parse_at(&self, i: usize, off: usize, check: bool) -> Result<(u8, &[u8], usize), TsdbError> {
        let b = self.seg_bytes(i);
        if off < SEGMENT_HEADER_SIZE || off >= b.len() {
            return Err(corrupt(&self.path(i), off, "chunk offset out of range"));
        }
        let (len, n) =
            uvarint(&b[off..]).ok_or_else(|| corrupt(&self.path(i), off, "bad chunk length"))?;
        let start = off + n;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(1 + l + 4))
            .filter(|&e| e <= b.len())
            .ok_or_else(|| corrupt(&self.path(i), off, "chunk runs past the end of its segment"))?;
        let body = &b[start..end - 4];
        let want = u32::from_be_bytes(b[end - 4..end].try_into().expect("BUG: 4 bytes"));
        if check && crc32c::crc32c(body) != want {
            return Err(corrupt(&self.path(i), off, "chunk checksum mismatch"));
        }
        Ok((body[0], &body[1..], end))
    }

    /// The encoding and data of the chunk `r`. Its checksum is not checked again: every chunk
    /// was checked when the block was opened ([`ChunkReader::verify`]) and the segments are
    /// immutable (Prometheus does not check it on reads either); a query reading each chunk
    /// would spend ~3 % of its time on it. Bounds are always checked.
    pub fn chunk(&self, r: u64) -> Result<(u8, &[u8]), TsdbError> {
        self.chunk_at(r, false)
    }

    /// [`ChunkReader::chunk`] with its checksum verified.
    pub fn chunk_checked(&self, r: u64) -> Result<(u8, &[u8]), TsdbError> {
        self.chunk_at(r, true)
    }

    fn chunk_at(&self, r: u64, check: bool) -> Result<(u8, &[u8]), TsdbError> {
        let i = (r >> 32) as usize;
        let off = (r & 0xffff_ffff) as usize;
        if i >= self.segments.len() {
            return Err(corrupt(
                &self.path(i),
                off,
                "chunk ref names a missing segment",
            ));
        }
        self.parse_at(i, off, check).map(|(e, d, _)| (e, d))
    }

    /// Reads every chunk of every segment and checks its checksum. The pages read are released
    /// afterwards, so a scan at open does not stay in the process's resident memory.
    pub fn verify(&self) -> Result<u64, TsdbError> {
        let mut n = 0;
        for i in 0..self.segments.len() {
            let len = self.seg_bytes(i).len();
            let mut off = SEGMENT_HEADER_SIZE;
            let res = (|| {
                while off < len {
                    off = self.parse_at(i, off, true)?.2;
                    n += 1;
                }
                Ok(())
            })();
            self.segments[i].drop_resident();
            res?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("chunks");
        let mut w = ChunkWriter::new(&cdir, 64).unwrap();
        let refs: Vec<u64> = (0..10u8)
            .map(|i| w.write(ENCODING_XOR, &[i; 20]).unwrap())
            .collect();
        w.finish().unwrap();
        assert!(refs.iter().any(|r| r >> 32 > 0), "segments were cut");
        let r = ChunkReader::open(&cdir).unwrap();
        assert_eq!(r.verify().unwrap(), 10);
        for (i, cr) in refs.iter().enumerate() {
            assert_eq!(r.chunk(*cr).unwrap(), (ENCODING_XOR, &[i as u8; 20][..]));
        }
        assert!(r.chunk(1 << 40).is_err());
        assert!(r.chunk(3).is_err());
        drop(r);
        // Flip a data byte of the first chunk.
        let p = cdir.join("000001");
        let mut b = fs::read(&p).unwrap();
        b[SEGMENT_HEADER_SIZE + 3] ^= 0xff;
        fs::write(&p, b).unwrap();
        let r = ChunkReader::open(&cdir).unwrap();
        let e = r.verify().unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        assert!(r.chunk_checked(refs[0]).is_err());
        assert_eq!(
            r.chunk(refs[0]).unwrap().1.len(),
            20,
            "reads skip the checksum"
        );
    }
}
