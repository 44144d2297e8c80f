//! The block `index` file, version 2 (Prometheus's `docs/format/index.md`): magic `0xBAAAD700`
//! and version 2, then the symbol table, the series (16-byte aligned; a series' ref is its
//! offset / 16), label indices, postings (the all-series list under the empty name and value
//! first), the label offset table, the postings offset table and the table of contents. Every
//! section carries a CRC32C over its bytes after the length field; integers in fixed widths are
//! big-endian.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use model::labels::LabelsBuf;
use model::{Labels, MatchType, Matcher};

use crate::encoding::{Decoder, put_uvarint, put_varint};
use crate::error::{IoContext, TsdbError};
use crate::head::postings::{intersect_all, union, without_all};
use crate::head_chunks::mmap::MappedFile;

pub const MAGIC_INDEX: u32 = 0xBAAA_D700;
pub const INDEX_VERSION_2: u8 = 2;
const TOC_LEN: usize = 6 * 8 + 4;

/// A chunk's place in a block: time range (inclusive) and ref into the chunk segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    pub mint: i64,
    pub maxt: i64,
    pub chunk_ref: u64,
}

/// Writes an index; series must be added in label order.
pub struct IndexWriter {
    path: PathBuf,
    w: BufWriter<File>,
    pos: u64,
    symbols: HashMap<String, u32>,
    /// (name symbol, value symbol) → series ids; sorting by symbol ids sorts by strings.
    postings: HashMap<(u32, u32), Vec<u32>>,
    all: Vec<u32>,
    last: Option<Labels>,
    buf: Vec<u8>,
    series_off: u64,
}

impl IndexWriter {
    /// Creates `path` and writes the header and the symbol table (`symbols` sorted, unique:
    /// every label name and value of the series to come).
    pub fn new(path: &Path, symbols: Vec<String>) -> Result<Self, TsdbError> {
        let f = File::create(path).ctx(|| format!("create index {}", path.display()))?;
        let mut w = IndexWriter {
            path: path.to_path_buf(),
            w: BufWriter::with_capacity(1 << 20, f),
            pos: 0,
            symbols: HashMap::with_capacity(symbols.len()),
            postings: HashMap::new(),
            all: Vec::new(),
            last: None,
            buf: Vec::new(),
            series_off: 0,
        };
        let mut hdr = MAGIC_INDEX.to_be_bytes().to_vec();
        hdr.push(INDEX_VERSION_2);
        w.write(&hdr)?;
        let mut body = Vec::new();
        body.extend_from_slice(&(symbols.len() as u32).to_be_bytes());
        for (i, s) in symbols.iter().enumerate() {
            if i > 0 && symbols[i - 1] >= *s {
                return Err(TsdbError::Unsupported(format!(
                    "index symbols not sorted and unique at {s:?}"
                )));
            }
            put_uvarint(&mut body, s.len() as u64);
            body.extend_from_slice(s.as_bytes());
        }
        w.write_section(&body)?;
        for (i, s) in symbols.into_iter().enumerate() {
            w.symbols.insert(s, i as u32);
        }
        w.pad(16)?;
        w.series_off = w.pos;
        Ok(w)
    }

    fn write(&mut self, b: &[u8]) -> Result<(), TsdbError> {
        self.w
            .write_all(b)
            .ctx(|| format!("write index {}", self.path.display()))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self, align: u64) -> Result<(), TsdbError> {
        let n = (align - self.pos % align) % align;
        self.write(&vec![0u8; n as usize])
    }

    /// `len <4b> | body | CRC32C(body) <4b>`.
    fn write_section(&mut self, body: &[u8]) -> Result<(), TsdbError> {
        let len = u32::try_from(body.len())
            .map_err(|_| TsdbError::Unsupported("index section larger than 4 GiB".into()))?;
        self.write(&len.to_be_bytes())?;
        self.write(body)?;
        self.write(&crc32c::crc32c(body).to_be_bytes())
    }

    fn sym(&self, s: &str) -> Result<u32, TsdbError> {
        self.symbols
            .get(s)
            .copied()
            .ok_or_else(|| TsdbError::Unsupported(format!("symbol {s:?} missing from the table")))
    }

    /// Adds a series with its chunks (sorted, not overlapping). Returns its id.
    pub fn add_series(&mut self, labels: &Labels, chunks: &[ChunkMeta]) -> Result<u32, TsdbError> {
        if self.last.as_ref().is_some_and(|l| l >= labels) {
            return Err(TsdbError::Unsupported(format!(
                "series {labels} added out of order"
            )));
        }
        self.pad(16)?;
        let id = u32::try_from(self.pos / 16)
            .map_err(|_| TsdbError::Unsupported("index series section too large".into()))?;
        let mut body = std::mem::take(&mut self.buf);
        body.clear();
        put_uvarint(&mut body, labels.len() as u64);
        for l in labels.iter() {
            let (n, v) = (self.sym(l.name)?, self.sym(l.value)?);
            put_uvarint(&mut body, u64::from(n));
            put_uvarint(&mut body, u64::from(v));
            self.postings.entry((n, v)).or_default().push(id);
        }
        put_uvarint(&mut body, chunks.len() as u64);
        let mut prev: Option<&ChunkMeta> = None;
        for c in chunks {
            if c.maxt < c.mint || prev.is_some_and(|p| c.mint <= p.maxt) {
                return Err(TsdbError::Unsupported(format!(
                    "chunks of {labels} overlap or are unsorted"
                )));
            }
            match prev {
                None => {
                    put_varint(&mut body, c.mint);
                    put_uvarint(&mut body, (c.maxt - c.mint) as u64);
                    put_uvarint(&mut body, c.chunk_ref);
                }
                Some(p) => {
                    put_uvarint(&mut body, (c.mint - p.maxt) as u64);
                    put_uvarint(&mut body, (c.maxt - c.mint) as u64);
                    put_varint(&mut body, c.chunk_ref.wrapping_sub(p.chunk_ref) as i64);
                }
            }
            prev = Some(c);
        }
        let mut entry = Vec::with_capacity(body.len() + 10);
        put_uvarint(&mut entry, body.len() as u64);
        entry.extend_from_slice(&body);
        entry.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        self.write(&entry)?;
        self.buf = body;
        self.all.push(id);
        self.last = Some(labels.clone());
        Ok(id)
    }

    /// Writes the label indices, postings, offset tables and TOC; flushes and fsyncs.
    pub fn finish(mut self) -> Result<u64, TsdbError> {
        let mut names: Vec<String> = vec![String::new(); self.symbols.len()];
        for (s, &i) in &self.symbols {
            names[i as usize] = s.clone();
        }
        let mut keys: Vec<(u32, u32)> = self.postings.keys().copied().collect();
        keys.sort_unstable();
        let symbols_off = 5u64;
        let series_off = if self.all.is_empty() {
            0
        } else {
            self.series_off
        };

        // Label indices: one per name, its values' symbol refs.
        self.pad(4)?;
        let label_indices_off = self.pos;
        let mut label_offsets: Vec<(u32, u64)> = Vec::new();
        let mut i = 0;
        while i < keys.len() {
            let name = keys[i].0;
            let mut j = i;
            let mut body = Vec::new();
            body.extend_from_slice(&1u32.to_be_bytes());
            body.extend_from_slice(&0u32.to_be_bytes());
            while j < keys.len() && keys[j].0 == name {
                body.extend_from_slice(&keys[j].1.to_be_bytes());
                j += 1;
            }
            body[4..8].copy_from_slice(&((j - i) as u32).to_be_bytes());
            self.pad(4)?;
            label_offsets.push((name, self.pos));
            self.write_section(&body)?;
            i = j;
        }

        // Postings: all series first, then every label pair in order.
        let mut postings_offsets: Vec<(String, String, u64)> = Vec::with_capacity(keys.len() + 1);
        self.pad(4)?;
        let postings_off = self.pos;
        let all = std::mem::take(&mut self.all);
        postings_offsets.push((String::new(), String::new(), self.pos));
        self.write_postings(&all)?;
        let mut postings = std::mem::take(&mut self.postings);
        for k in &keys {
            let list = postings.remove(k).unwrap_or_default();
            self.pad(4)?;
            postings_offsets.push((
                names[k.0 as usize].clone(),
                names[k.1 as usize].clone(),
                self.pos,
            ));
            self.write_postings(&list)?;
        }

        let label_table_off = self.pos;
        let mut body = (label_offsets.len() as u32).to_be_bytes().to_vec();
        for (n, off) in &label_offsets {
            body.push(1);
            let s = &names[*n as usize];
            put_uvarint(&mut body, s.len() as u64);
            body.extend_from_slice(s.as_bytes());
            put_uvarint(&mut body, *off);
        }
        self.write_section(&body)?;

        let postings_table_off = self.pos;
        let mut body = (postings_offsets.len() as u32).to_be_bytes().to_vec();
        for (n, v, off) in &postings_offsets {
            body.push(2);
            put_uvarint(&mut body, n.len() as u64);
            body.extend_from_slice(n.as_bytes());
            put_uvarint(&mut body, v.len() as u64);
            body.extend_from_slice(v.as_bytes());
            put_uvarint(&mut body, *off);
        }
        self.write_section(&body)?;

        let mut toc = Vec::with_capacity(TOC_LEN);
        for off in [
            symbols_off,
            series_off,
            if label_offsets.is_empty() {
                0
            } else {
                label_indices_off
            },
            label_table_off,
            postings_off,
            postings_table_off,
        ] {
            toc.extend_from_slice(&off.to_be_bytes());
        }
        let crc = crc32c::crc32c(&toc);
        toc.extend_from_slice(&crc.to_be_bytes());
        self.write(&toc)?;
        let size = self.pos;
        let f = self
            .w
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx(|| format!("flush index {}", self.path.display()))?;
        f.sync_all()
            .ctx(|| format!("fsync index {}", self.path.display()))?;
        Ok(size)
    }

    fn write_postings(&mut self, ids: &[u32]) -> Result<(), TsdbError> {
        let mut body = Vec::with_capacity(4 + 4 * ids.len());
        body.extend_from_slice(&(ids.len() as u32).to_be_bytes());
        for id in ids {
            body.extend_from_slice(&id.to_be_bytes());
        }
        self.write_section(&body)
    }
}

#[derive(Debug, Clone, Copy)]
struct Toc {
    symbols: u64,
    series: u64,
    label_table: u64,
    postings_table: u64,
}

/// Every how many entries the symbol and postings offset tables are sampled in memory (as
/// Prometheus does): a lookup starts at the nearest sample and reads at most this many entries
/// on from the mapped file.
const SAMPLE_EVERY: usize = 32;

/// The postings table entries of one label name, sampled: the file offset of the value string
/// of entries 0, 32, 64, … (each entry is `value | postings offset`, then the next entry's
/// `0x02 | name`), and how many entries the name has.
#[derive(Debug)]
struct NameEntries {
    sampled: Vec<u32>,
    len: u32,
}

const SYMBOL_CACHE_SLOTS: usize = 64;

/// Label positions whose last value lookup is remembered (see [`SymbolCache`]).
const SYMBOL_CURSORS: usize = 16;

/// Recently looked-up symbols (direct-mapped by symbol number) for a reader of
/// many series, so the label names and common values are not looked up again for each one;
/// and for each label position the last value looked up: series come in label order, so a
/// value missing from the cache (one per series, like a pod name) is usually a few symbols
/// after the previous series' value, and the lookup scans on from there instead of from the
/// sampled offset (up to 31 symbols). (64 × 24 + 16 × 24 bytes.)
pub struct SymbolCache {
    /// (symbol number + 1, where its bytes lie); 0 = empty.
    slots: [(u64, SymbolSpan); SYMBOL_CACHE_SLOTS],
    cursors: [(u64, SymbolSpan); SYMBOL_CURSORS],
}

impl Default for SymbolCache {
    fn default() -> Self {
        let none = (0, SymbolSpan { start: 0, end: 0 });
        SymbolCache {
            slots: [none; SYMBOL_CACHE_SLOTS],
            cursors: [none; SYMBOL_CURSORS],
        }
    }
}

/// Where a symbol's bytes lie in the index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SymbolSpan {
    start: usize,
    end: usize,
}

/// A label of a series as the spans of its name and value symbols.
pub(crate) type LabelSpans = [SymbolSpan; 2];

/// A memory-mapped index, every section checked at open. What stays in memory per block does
/// not grow with its series: every 32nd symbol offset and every 32nd postings table entry.
pub struct IndexReader {
    path: PathBuf,
    map: MappedFile,
    /// Offset of the length field of symbols 0, 32, 64, …
    symbols: Vec<u32>,
    num_symbols: u64,
    /// Label name → its sampled postings table entries; the empty name holds all series.
    postings: BTreeMap<Box<str>, NameEntries>,
    toc: Toc,
}

impl IndexReader {
    pub fn open(path: &Path) -> Result<Self, TsdbError> {
        let f = File::open(path).ctx(|| format!("open index {}", path.display()))?;
        let len = f
            .metadata()
            .ctx(|| format!("stat index {}", path.display()))?
            .len() as usize;
        let map = MappedFile::map(&f, len, len).ctx(|| format!("map index {}", path.display()))?;
        let mut r = IndexReader {
            path: path.to_path_buf(),
            map,
            symbols: Vec::new(),
            num_symbols: 0,
            postings: BTreeMap::new(),
            toc: Toc {
                symbols: 0,
                series: 0,
                label_table: 0,
                postings_table: 0,
            },
        };
        r.load()?;
        Ok(r)
    }

    pub fn size(&self) -> u64 {
        self.map.len() as u64
    }

    fn bytes(&self) -> &[u8] {
        self.map.get(0, self.map.len()).unwrap_or(&[])
    }

    fn bad(&self, off: u64, why: impl Into<String>) -> TsdbError {
        TsdbError::corruption(&self.path, off, why)
    }

    /// The body of the section at `off` (`len <4b> | body | crc <4b>`), its CRC checked.
    fn section(&self, off: u64) -> Result<&[u8], TsdbError> {
        let b = self.bytes();
        let o = usize::try_from(off).unwrap_or(usize::MAX);
        let len = b
            .get(o..o.saturating_add(4))
            .map(|x| u32::from_be_bytes(x.try_into().expect("BUG: 4 bytes")) as usize)
            .ok_or_else(|| self.bad(off, "section offset out of range"))?;
        let body = b
            .get(o + 4..o + 4 + len)
            .ok_or_else(|| self.bad(off, "section runs past the end of the file"))?;
        let crc = b
            .get(o + 4 + len..o + 8 + len)
            .map(|x| u32::from_be_bytes(x.try_into().expect("BUG: 4 bytes")))
            .ok_or_else(|| self.bad(off, "section checksum missing"))?;
        if crc32c::crc32c(body) != crc {
            return Err(self.bad(off, "section checksum mismatch"));
        }
        Ok(body)
    }

    fn load(&mut self) -> Result<(), TsdbError> {
        let b = self.bytes();
        if b.len() < 5 + TOC_LEN || u32::from_be_bytes([b[0], b[1], b[2], b[3]]) != MAGIC_INDEX {
            return Err(self.bad(0, "invalid index header"));
        }
        if b[4] != INDEX_VERSION_2 {
            return Err(TsdbError::Unsupported(format!(
                "index {} has format version {} (only 2 is read)",
                self.path.display(),
                b[4]
            )));
        }
        let t = &b[b.len() - TOC_LEN..];
        if crc32c::crc32c(&t[..48]) != u32::from_be_bytes(t[48..52].try_into().expect("BUG")) {
            return Err(self.bad((b.len() - TOC_LEN) as u64, "TOC checksum mismatch"));
        }
        let at = |i: usize| u64::from_be_bytes(t[i * 8..i * 8 + 8].try_into().expect("BUG"));
        self.toc = Toc {
            symbols: at(0),
            series: at(1),
            label_table: at(3),
            postings_table: at(5),
        };
        let mut symbols = Vec::new();
        if self.toc.symbols != 0 {
            let body = self.section(self.toc.symbols)?;
            let base = self.toc.symbols as usize + 4;
            let mut d = Decoder::new(body);
            let n = d
                .be_u32()
                .ok_or_else(|| self.bad(self.toc.symbols, "bad symbol count"))?;
            symbols.reserve((n as usize).div_ceil(SAMPLE_EVERY));
            for i in 0..n as usize {
                let off = base + body.len() - d.remaining();
                d.uvarint_str()
                    .ok_or_else(|| self.bad(off as u64, "bad symbol"))?;
                if i % SAMPLE_EVERY == 0 {
                    symbols.push(
                        u32::try_from(off)
                            .map_err(|_| self.bad(off as u64, "symbols beyond 4 GiB"))?,
                    );
                }
            }
            self.num_symbols = u64::from(n);
        }
        let mut postings: BTreeMap<Box<str>, NameEntries> = BTreeMap::new();
        if self.toc.postings_table != 0 {
            let body = self.section(self.toc.postings_table)?;
            let base = self.toc.postings_table as usize + 4;
            let mut d = Decoder::new(body);
            let n = d
                .be_u32()
                .ok_or_else(|| self.bad(self.toc.postings_table, "bad postings table"))?;
            let mut prev: Option<(&str, &str)> = None;
            for _ in 0..n {
                let mut value_at = 0;
                let e = (|| {
                    if d.u8()? != 2 {
                        return None;
                    }
                    let name = d.uvarint_str()?;
                    value_at = base + body.len() - d.remaining();
                    Some((name, d.uvarint_str()?, d.uvarint()?))
                })()
                .ok_or_else(|| self.bad(self.toc.postings_table, "bad postings table entry"))?;
                if prev.is_some_and(|p| p >= (e.0, e.1)) {
                    return Err(self.bad(self.toc.postings_table, "postings table not sorted"));
                }
                prev = Some((e.0, e.1));
                let at = u32::try_from(value_at)
                    .map_err(|_| self.bad(self.toc.postings_table, "index larger than 4 GiB"))?;
                let entries = match postings.get_mut(e.0) {
                    Some(v) => v,
                    None => postings.entry(Box::from(e.0)).or_insert(NameEntries {
                        sampled: Vec::new(),
                        len: 0,
                    }),
                };
                if (entries.len as usize).is_multiple_of(SAMPLE_EVERY) {
                    entries.sampled.push(at);
                }
                entries.len += 1;
            }
        }
        self.symbols = symbols;
        self.postings = postings;
        Ok(())
    }

    /// Checks every postings list and every series entry (and so their checksums).
    pub fn verify(&self) -> Result<u64, TsdbError> {
        if self.toc.label_table != 0 {
            // Label indices are not used for reads (like Prometheus with index v2), but a
            // damaged one still means a damaged file.
            let body = self.section(self.toc.label_table)?;
            let mut d = Decoder::new(body);
            let n = d
                .be_u32()
                .ok_or_else(|| self.bad(self.toc.label_table, "bad label table"))?;
            for _ in 0..n {
                let off = (|| {
                    if d.u8()? != 1 {
                        return None;
                    }
                    d.uvarint_str()?;
                    d.uvarint()
                })()
                .ok_or_else(|| self.bad(self.toc.label_table, "bad label table entry"))?;
                self.section(off)?;
            }
        }
        for name in self.postings.keys() {
            for (_, off) in self.entries(name) {
                self.decode_postings(off)?;
            }
        }
        let all = self.all_postings()?;
        let res = all.iter().try_for_each(|&id| self.series(id).map(|_| ()));
        // The scan touched the whole file; only the parts queries use should stay resident.
        self.map.drop_resident();
        res.map(|()| all.len() as u64)
    }

    /// The string at `pos` (validated when the postings table was loaded).
    fn str_at(&self, pos: u32) -> &str {
        self.bytes()
            .get(pos as usize..)
            .and_then(|b| Decoder::new(b).uvarint_str())
            .unwrap_or_default()
    }

    /// The postings table entry whose value string is at `pos`: (value, postings offset,
    /// position of the next entry's value string). Validated when the table was loaded.
    fn entry_at(&self, pos: usize) -> Option<(&str, u64, usize)> {
        let b = self.bytes().get(pos..)?;
        let mut d = Decoder::new(b);
        let value = d.uvarint_str()?;
        let off = d.uvarint()?;
        let after_value = b.len() - d.remaining();
        // The next entry: 0x02, its name, then its value. After the table's last entry come
        // other bytes; callers never read past an entry count, so any position will do there.
        let next = (|| {
            d.u8()?;
            let n = usize::try_from(d.uvarint()?).ok()?;
            d.bytes(n)?;
            Some(b.len() - d.remaining())
        })()
        .unwrap_or(after_value);
        Some((value, off, pos + next))
    }

    /// The postings table entries of `name` from the `from`-th on: (value, postings offset).
    fn entries_from(&self, name: &str, from: usize) -> impl Iterator<Item = (&str, u64)> + '_ {
        let (start, n) = match self.postings.get(name) {
            Some(e) if from < e.len as usize => (
                e.sampled[from / SAMPLE_EVERY] as usize,
                e.len as usize - from / SAMPLE_EVERY * SAMPLE_EVERY,
            ),
            _ => (0, 0),
        };
        let skip = from % SAMPLE_EVERY;
        let mut pos = start;
        (0..n)
            .map_while(move |_| {
                let (v, off, next) = self.entry_at(pos)?;
                pos = next;
                Some((v, off))
            })
            .skip(skip)
    }

    /// Every postings table entry of `name`, in value order.
    fn entries(&self, name: &str) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.entries_from(name, 0)
    }

    /// The postings offset of `name`=`value`: a binary search among the sampled entries, then
    /// at most [`SAMPLE_EVERY`] entries read on.
    fn postings_offset(&self, name: &str, value: &str) -> Option<u64> {
        let e = self.postings.get(name)?;
        let k = e
            .sampled
            .partition_point(|&p| self.str_at(p) <= value)
            .checked_sub(1)?;
        self.entries_from(name, k * SAMPLE_EVERY)
            .take(SAMPLE_EVERY)
            .take_while(|(v, _)| *v <= value)
            .find(|(v, _)| *v == value)
            .map(|(_, off)| off)
    }

    pub fn symbol(&self, i: u64) -> Result<&str, TsdbError> {
        let off = self.symbol_pos(i)?;
        self.symbol_str(off)
    }

    /// The offset of symbol `i`'s length field.
    fn symbol_pos(&self, i: u64) -> Result<usize, TsdbError> {
        self.symbol_pos_from(i, (0, 0))
    }

    /// [`IndexReader::symbol_pos`], scanning from `from` (symbol number + 1 and its offset, as
    /// an earlier lookup found it) when that is closer than the sampled offset.
    fn symbol_pos_from(&self, i: u64, from: (u64, usize)) -> Result<usize, TsdbError> {
        let idx = usize::try_from(i)
            .ok()
            .filter(|_| i < self.num_symbols)
            .ok_or_else(|| self.bad(i, "symbol ref out of range"))?;
        let mut off = self.symbols[idx / SAMPLE_EVERY] as usize;
        let mut skip = idx % SAMPLE_EVERY;
        if let Some(j) = from.0.checked_sub(1)
            && j <= i
            && ((i - j) as usize) < skip
        {
            off = from.1;
            skip = (i - j) as usize;
        }
        let b = self.bytes();
        // Skip the symbols between the start and the one wanted (validated at load).
        for _ in 0..skip {
            let (n, w) = crate::encoding::uvarint(b.get(off..).unwrap_or_default())
                .ok_or_else(|| self.bad(off as u64, "bad symbol"))?;
            off += w + n as usize;
        }
        Ok(off)
    }

    fn symbol_str(&self, off: usize) -> Result<&str, TsdbError> {
        self.bytes()
            .get(off..)
            .and_then(|b| Decoder::new(b).uvarint_str())
            .ok_or_else(|| self.bad(off as u64, "bad symbol"))
    }

    /// Symbols in order.
    pub fn symbols(&self) -> impl Iterator<Item = Result<&str, TsdbError>> {
        (0..self.num_symbols).map(|i| self.symbol(i))
    }

    fn decode_postings(&self, off: u64) -> Result<Vec<u64>, TsdbError> {
        let body = self.section(off)?;
        let mut d = Decoder::new(body);
        let n = d.be_u32().ok_or_else(|| self.bad(off, "bad postings"))? as usize;
        if d.remaining() != 4 * n {
            return Err(self.bad(off, "postings length mismatch"));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(u64::from(d.be_u32().expect("BUG: length checked")));
        }
        Ok(out)
    }

    /// Sorted series ids with label `name`=`value`.
    pub fn postings(&self, name: &str, value: &str) -> Result<Vec<u64>, TsdbError> {
        match self.postings_offset(name, value) {
            Some(off) => self.decode_postings(off),
            None => Ok(Vec::new()),
        }
    }

    pub fn all_postings(&self) -> Result<Vec<u64>, TsdbError> {
        self.postings("", "")
    }

    /// Sorted label names.
    pub fn label_names(&self) -> Vec<String> {
        self.postings
            .keys()
            .filter(|k| !k.is_empty())
            .map(|k| k.to_string())
            .collect()
    }

    /// Sorted values of label `name`.
    pub fn label_values(&self, name: &str) -> Vec<&str> {
        if name.is_empty() {
            return Vec::new();
        }
        self.entries(name).map(|(v, _)| v).collect()
    }

    /// Number of series in each label pair list, for `analyze` and the stats endpoint.
    pub fn postings_len(&self, name: &str, value: &str) -> Result<usize, TsdbError> {
        Ok(self.postings(name, value)?.len())
    }

    /// The labels and chunk metas of series `id`, the entry's checksum verified.
    pub fn series(&self, id: u64) -> Result<(Labels, Vec<ChunkMeta>), TsdbError> {
        self.series_at(id, &mut SymbolCache::default(), true)
    }

    /// [`IndexReader::series`] with symbols looked up through `cache` (series read one after
    /// another share most of their symbols), for compaction.
    pub fn series_with(
        &self,
        id: u64,
        cache: &mut SymbolCache,
    ) -> Result<(Labels, Vec<ChunkMeta>), TsdbError> {
        self.series_at(id, cache, true)
    }

    fn series_at(
        &self,
        id: u64,
        cache: &mut SymbolCache,
        check: bool,
    ) -> Result<(Labels, Vec<ChunkMeta>), TsdbError> {
        let (off, mut d) = self.series_entry(id, check)?;
        let mut buf = LabelsBuf::new();
        self.decode_labels(off, &mut d, cache, &mut buf)?;
        let chunks = self.decode_chunk_metas(off, &mut d)?;
        Ok((buf.finish(), chunks))
    }

    /// For queries: the labels of series `id` when one of its chunks satisfies `keep`, else
    /// `None` — without collecting its chunk metas, and with the label set built in `buf`
    /// (one allocation, and none for a series that is left out). The entry's checksum is not
    /// checked again: every entry was checked when the block was opened
    /// ([`IndexReader::verify`]) and the file is immutable; bounds are always checked.
    pub fn series_if(
        &self,
        id: u64,
        cache: &mut SymbolCache,
        buf: &mut LabelsBuf,
        keep: impl FnMut(&ChunkMeta) -> bool,
    ) -> Result<Option<Labels>, TsdbError> {
        let mut pairs = Vec::new();
        if !self.series_refs_if(id, cache, &mut pairs, keep)? {
            return Ok(None);
        }
        self.labels_at(&pairs, buf).map(Some)
    }

    /// [`IndexReader::series_if`] without building the label set: where the label names and
    /// values of series `id` lie in the file go to `pairs` (cleared first), for comparing
    /// series of several blocks by [`IndexReader::symbol_bytes`] before any label set is
    /// built ([`IndexReader::labels_at`]). False when no chunk satisfies `keep`.
    pub(crate) fn series_refs_if(
        &self,
        id: u64,
        cache: &mut SymbolCache,
        pairs: &mut Vec<LabelSpans>,
        mut keep: impl FnMut(&ChunkMeta) -> bool,
    ) -> Result<bool, TsdbError> {
        let (off, mut d) = self.series_entry(id, false)?;
        let bad = || self.bad(off, "bad series entry");
        let nl = d.uvarint().ok_or_else(bad)?;
        pairs.clear();
        for k in 0..nl as usize {
            let n = self.cached_symbol_span(d.uvarint().ok_or_else(bad)?, cache)?;
            let v = self.cached_value_span(d.uvarint().ok_or_else(bad)?, k, cache)?;
            pairs.push([n, v]);
        }
        let mut any = false;
        self.visit_chunk_metas(off, &mut d, |c| {
            any = keep(&c);
            !any
        })?;
        Ok(any)
    }

    /// The label set of `pairs` (from [`IndexReader::series_refs_if`]), built in `buf`.
    pub(crate) fn labels_at(
        &self,
        pairs: &[LabelSpans],
        buf: &mut LabelsBuf,
    ) -> Result<Labels, TsdbError> {
        buf.clear();
        for &[n, v] in pairs {
            buf.push(self.span_str(n)?, self.span_str(v)?);
        }
        Ok(buf.finish())
    }

    /// The bytes of a symbol (UTF-8: every symbol was checked when the index was opened).
    pub(crate) fn symbol_bytes(&self, s: SymbolSpan) -> &[u8] {
        self.bytes().get(s.start..s.end).unwrap_or_default()
    }

    fn span_str(&self, s: SymbolSpan) -> Result<&str, TsdbError> {
        std::str::from_utf8(self.symbol_bytes(s))
            .map_err(|_| self.bad(s.start as u64, "bad symbol"))
    }

    /// Where the bytes of the symbol whose length field is at `off` lie.
    fn symbol_span(&self, off: usize) -> Result<SymbolSpan, TsdbError> {
        let b = self.bytes();
        let bad = || self.bad(off as u64, "bad symbol");
        let (n, w) = crate::encoding::uvarint(b.get(off..).unwrap_or_default()).ok_or_else(bad)?;
        let start = off + w;
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| start.checked_add(n))
            .filter(|&e| e <= b.len())
            .ok_or_else(bad)?;
        Ok(SymbolSpan { start, end })
    }

    /// Decodes the label refs at the front of a series entry into `buf` (cleared first).
    fn decode_labels(
        &self,
        off: u64,
        d: &mut Decoder<'_>,
        cache: &mut SymbolCache,
        buf: &mut LabelsBuf,
    ) -> Result<(), TsdbError> {
        let bad = || self.bad(off, "bad series entry");
        let nl = d.uvarint().ok_or_else(bad)?;
        buf.clear();
        for k in 0..nl as usize {
            let n = self.span_str(self.cached_symbol_span(d.uvarint().ok_or_else(bad)?, cache)?)?;
            let v =
                self.span_str(self.cached_value_span(d.uvarint().ok_or_else(bad)?, k, cache)?)?;
            buf.push(n, v);
        }
        Ok(())
    }

    /// The chunk metas of series `id`, without building its labels (for queries: the
    /// checksum is not checked again, as in [`IndexReader::series_if`]).
    pub fn chunk_metas(&self, id: u64) -> Result<Vec<ChunkMeta>, TsdbError> {
        self.chunk_metas_where(id, |_| true)
    }

    /// [`IndexReader::chunk_metas`], only those for which `keep` holds.
    pub fn chunk_metas_where(
        &self,
        id: u64,
        mut keep: impl FnMut(&ChunkMeta) -> bool,
    ) -> Result<Vec<ChunkMeta>, TsdbError> {
        let (off, mut d) = self.series_entry(id, false)?;
        let bad = || self.bad(off, "bad series entry");
        let nl = d.uvarint().ok_or_else(bad)?;
        for _ in 0..2 * nl {
            d.uvarint().ok_or_else(bad)?;
        }
        let mut chunks = Vec::new();
        self.visit_chunk_metas(off, &mut d, |c| {
            if keep(&c) {
                chunks.push(c);
            }
            true
        })?;
        Ok(chunks)
    }

    /// Where value symbol `i` of the `k`-th label of a series lies, through `cache`.
    fn cached_value_span(
        &self,
        i: u64,
        k: usize,
        cache: &mut SymbolCache,
    ) -> Result<SymbolSpan, TsdbError> {
        let slot = (i as usize) % SYMBOL_CACHE_SLOTS;
        if cache.slots[slot].0 != i + 1 {
            // The symbol after the cursor's starts where the cursor's ends.
            let from = match cache.cursors.get(k) {
                Some(&(j, s)) if j != 0 => (j + 1, s.end),
                _ => (0, 0),
            };
            let pos = self.symbol_pos_from(i, from)?;
            cache.slots[slot] = (i + 1, self.symbol_span(pos)?);
        }
        if let Some(c) = cache.cursors.get_mut(k) {
            *c = cache.slots[slot];
        }
        Ok(cache.slots[slot].1)
    }

    fn cached_symbol_span(&self, i: u64, cache: &mut SymbolCache) -> Result<SymbolSpan, TsdbError> {
        let slot = &mut cache.slots[(i as usize) % SYMBOL_CACHE_SLOTS];
        if slot.0 != i + 1 {
            *slot = (i + 1, self.symbol_span(self.symbol_pos(i)?)?);
        }
        Ok(slot.1)
    }

    /// The body of series `id`'s entry, its checksum verified when `check`, and the entry's
    /// file offset.
    fn series_entry(&self, id: u64, check: bool) -> Result<(u64, Decoder<'_>), TsdbError> {
        let b = self.bytes();
        let off = id.checked_mul(16).filter(|&o| o >= self.toc.series.max(1));
        let Some(off) = off
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o < b.len())
        else {
            return Err(self.bad(id, "series ref out of range"));
        };
        let mut d = Decoder::new(&b[off..]);
        let len = d
            .uvarint()
            .ok_or_else(|| self.bad(off as u64, "bad series length"))? as usize;
        let body = d
            .bytes(len)
            .ok_or_else(|| self.bad(off as u64, "series runs past the end"))?;
        let crc = d
            .be_u32()
            .ok_or_else(|| self.bad(off as u64, "series checksum missing"))?;
        if check && crc32c::crc32c(body) != crc {
            return Err(self.bad(off as u64, "series checksum mismatch"));
        }
        Ok((off as u64, Decoder::new(body)))
    }

    fn decode_chunk_metas(
        &self,
        off: u64,
        d: &mut Decoder<'_>,
    ) -> Result<Vec<ChunkMeta>, TsdbError> {
        let n = d.clone().uvarint().unwrap_or(0);
        let mut chunks: Vec<ChunkMeta> = Vec::with_capacity(n.min(1 << 16) as usize);
        self.visit_chunk_metas(off, d, |c| {
            chunks.push(c);
            true
        })?;
        Ok(chunks)
    }

    /// Decodes the chunk metas at `d` (the rest of a series entry), handing each to `f` until
    /// it returns false; returns whether all were handed.
    fn visit_chunk_metas(
        &self,
        off: u64,
        d: &mut Decoder<'_>,
        mut f: impl FnMut(ChunkMeta) -> bool,
    ) -> Result<bool, TsdbError> {
        let bad = || self.bad(off, "bad series entry");
        let nc = d.uvarint().ok_or_else(bad)?;
        let mut prev: Option<ChunkMeta> = None;
        for _ in 0..nc {
            let c = match prev {
                None => {
                    let mint = d.varint().ok_or_else(bad)?;
                    let maxt = mint.wrapping_add(d.uvarint().ok_or_else(bad)? as i64);
                    let r = d.uvarint().ok_or_else(bad)?;
                    ChunkMeta {
                        mint,
                        maxt,
                        chunk_ref: r,
                    }
                }
                Some(p) => {
                    let mint = p.maxt.wrapping_add(d.uvarint().ok_or_else(bad)? as i64);
                    let maxt = mint.wrapping_add(d.uvarint().ok_or_else(bad)? as i64);
                    let r = p.chunk_ref.wrapping_add(d.varint().ok_or_else(bad)? as u64);
                    ChunkMeta {
                        mint,
                        maxt,
                        chunk_ref: r,
                    }
                }
            };
            if !f(c) {
                return Ok(false);
            }
            prev = Some(c);
        }
        Ok(true)
    }

    /// Union of the lists of values of `name` for which `pred` holds.
    fn union_where(&self, name: &str, pred: impl Fn(&str) -> bool) -> Result<Vec<u64>, TsdbError> {
        if name.is_empty() {
            return Ok(Vec::new());
        }
        let mut lists = Vec::new();
        for (v, off) in self.entries(name) {
            if pred(v) {
                lists.push(self.decode_postings(off)?);
            }
        }
        let refs: Vec<&[u64]> = lists.iter().map(Vec::as_slice).collect();
        Ok(union(&refs))
    }

    /// The postings table entries of `name` whose value starts with `prefix`: a binary search
    /// among the sampled entries for the first one that can, then a scan while they do.
    fn entries_with_prefix<'s>(
        &'s self,
        name: &str,
        prefix: &'s str,
    ) -> impl Iterator<Item = (&'s str, u64)> + 's {
        let k = self.postings.get(name).map_or(0, |e| {
            e.sampled
                .partition_point(|&p| self.str_at(p) < prefix)
                .saturating_sub(1)
        });
        self.entries_from(name, k * SAMPLE_EVERY)
            .skip_while(move |(v, _)| *v < prefix)
            .take_while(move |(v, _)| v.starts_with(prefix))
    }

    fn postings_for_matcher(&self, m: &Matcher) -> Result<Vec<u64>, TsdbError> {
        if let Some(prefixes) = m.prefix_matches()
            && !m.name.is_empty()
        {
            let mut lists = Vec::new();
            for p in prefixes {
                for (_, off) in self.entries_with_prefix(&m.name, p) {
                    lists.push(self.decode_postings(off)?);
                }
            }
            let refs: Vec<&[u64]> = lists.iter().map(Vec::as_slice).collect();
            return Ok(union(&refs));
        }
        if let Some(set) = m.set_matches() {
            let mut lists = Vec::new();
            for v in &set {
                lists.push(self.postings(&m.name, v)?);
            }
            let refs: Vec<&[u64]> = lists.iter().map(Vec::as_slice).collect();
            return Ok(union(&refs));
        }
        self.union_where(&m.name, |v| m.matches(v))
    }

    /// Sorted ids of the series matching all `matchers`, with Prometheus's semantics (a matcher
    /// that matches the empty string also selects series without the label); the same algebra
    /// as the head's postings.
    pub fn for_matchers(&self, matchers: &[Matcher]) -> Result<Vec<u64>, TsdbError> {
        let must_be_set = |name: &str| {
            matchers
                .iter()
                .any(|m| m.name == name && !m.matches_empty())
        };
        let mut its: Vec<Vec<u64>> = Vec::new();
        let mut not_its: Vec<Vec<u64>> = Vec::new();
        for m in matchers {
            let negative = matches!(m.kind, MatchType::NotEqual | MatchType::RegexNoMatch);
            if must_be_set(&m.name) {
                let it = if negative && m.matches_empty() {
                    not_its.push(self.union_where(&m.name, |v| !m.matches(v))?);
                    continue;
                } else if negative {
                    self.union_where(&m.name, |v| m.matches(v))?
                } else {
                    self.postings_for_matcher(m)?
                };
                if it.is_empty() {
                    return Ok(Vec::new());
                }
                its.push(it);
            } else if m.kind == MatchType::NotEqual {
                not_its.push(self.postings(&m.name, &m.value)?);
            } else {
                not_its.push(self.union_where(&m.name, |v| !m.matches(v))?);
            }
        }
        let out = match intersect_all(its) {
            Some(out) => out,
            None => self.all_postings()?,
        };
        Ok(without_all(out, &not_its))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::labels;

    fn write(dir: &Path, series: &[(Labels, Vec<ChunkMeta>)]) -> PathBuf {
        let mut syms = std::collections::BTreeSet::new();
        for (l, _) in series {
            for p in l.iter() {
                syms.insert(p.name.to_string());
                syms.insert(p.value.to_string());
            }
        }
        let path = dir.join("index");
        let mut w = IndexWriter::new(&path, syms.into_iter().collect()).unwrap();
        for (l, c) in series {
            w.add_series(l, c).unwrap();
        }
        w.finish().unwrap();
        path
    }

    #[test]
    fn round_trip_matchers_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let cm = |mint, maxt, r| ChunkMeta {
            mint,
            maxt,
            chunk_ref: r,
        };
        let mut series = vec![
            (
                labels! {"__name__" => "up", "job" => "a"},
                vec![cm(-5, 10, 8), cm(11, 20, 30)],
            ),
            (
                labels! {"__name__" => "up", "job" => "b"},
                vec![cm(0, 0, 50)],
            ),
            (
                labels! {"__name__" => "x", "job" => "b", "z" => ""},
                vec![cm(100, 200, 1 << 32 | 8)],
            ),
        ];
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let path = write(dir.path(), &series);
        let r = IndexReader::open(&path).unwrap();
        assert_eq!(r.verify().unwrap(), 3);
        let all = r.all_postings().unwrap();
        let got: Vec<_> = all.iter().map(|&id| r.series(id).unwrap()).collect();
        assert_eq!(got, series);
        assert_eq!(r.label_names(), ["__name__", "job", "z"]);
        assert_eq!(r.label_values("job"), ["a", "b"]);
        let q = |ms: &[Matcher]| -> Vec<Labels> {
            r.for_matchers(ms)
                .unwrap()
                .iter()
                .map(|&id| r.series(id).unwrap().0)
                .collect()
        };
        assert_eq!(q(&[Matcher::equal("job", "b")]).len(), 2);
        let ne = Matcher::new(MatchType::NotEqual, "job", "a").unwrap();
        assert_eq!(
            q(&[Matcher::equal("__name__", "up"), ne.clone()]),
            [series[1].0.clone()]
        );
        let re = Matcher::new(MatchType::RegexMatch, "__name__", "u.|x").unwrap();
        assert_eq!(q(&[re]).len(), 3);
        assert_eq!(q(&[Matcher::equal("nope", "")]).len(), 3);
        assert!(q(&[Matcher::equal("job", "c")]).is_empty());
        drop(r);

        // Any flipped byte past the header is caught at open or by verify, never a panic.
        let orig = std::fs::read(&path).unwrap();
        for i in (5..orig.len()).step_by(3) {
            let mut b = orig.clone();
            b[i] ^= 0x5a;
            std::fs::write(&path, &b).unwrap();
            let res = IndexReader::open(&path).and_then(|r| r.verify());
            // Padding bytes are not covered by checksums; everything else is.
            if res.is_ok() {
                assert_eq!(orig[i], 0, "byte {i} changed undetected");
            }
        }
        for n in 0..orig.len() {
            std::fs::write(&path, &orig[..n]).unwrap();
            assert!(IndexReader::open(&path).and_then(|r| r.verify()).is_err());
        }
    }

    #[test]
    fn sampled_tables_find_every_symbol_and_value() {
        let dir = tempfile::tempdir().unwrap();
        // 1,000 values of "i" (many sample intervals), 3 of "job", 70 of "k": lookups land
        // on samples, between them and past the last one.
        let mut series: Vec<(Labels, Vec<ChunkMeta>)> = (0..1000)
            .map(|n| {
                let l = Labels::from_pairs([
                    ("__name__", "m"),
                    ("i", format!("{n:04}").as_str()),
                    ("job", ["a", "b", "c"][n % 3]),
                    ("k", format!("k{:02}", n % 70).as_str()),
                ]);
                let c = vec![ChunkMeta {
                    mint: n as i64,
                    maxt: n as i64 + 5,
                    chunk_ref: 8 + 16 * n as u64,
                }];
                (l, c)
            })
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        let path = write(dir.path(), &series);
        let r = IndexReader::open(&path).unwrap();
        assert_eq!(r.verify().unwrap(), 1000);
        assert!(r.symbols.len() <= (r.num_symbols as usize).div_ceil(SAMPLE_EVERY));
        let syms: Vec<&str> = r.symbols().map(Result::unwrap).collect();
        assert_eq!(syms.len() as u64, r.num_symbols);
        assert!(syms.windows(2).all(|w| w[0] < w[1]), "symbols in order");
        assert!(r.symbol(r.num_symbols).is_err());
        let all = r.all_postings().unwrap();
        let got: Vec<_> = all.iter().map(|&id| r.series(id).unwrap()).collect();
        assert_eq!(got, series);
        // The query path: one symbol cache and label buffer over all series, forwards (the
        // cursors scan on from the previous series' values), then backwards and strided.
        let (mut cache, mut buf) = (SymbolCache::default(), LabelsBuf::new());
        let order: Vec<usize> = (0..1000)
            .chain((0..1000).rev())
            .chain((0..1000).step_by(37))
            .collect();
        for i in order {
            let got = r.series_if(all[i], &mut cache, &mut buf, |_| true).unwrap();
            assert_eq!(got.as_ref(), Some(&series[i].0), "series {i}");
            assert_eq!(r.chunk_metas(all[i]).unwrap(), series[i].1);
        }
        let none = r.series_if(all[5], &mut cache, &mut buf, |c| c.mint > 10_000);
        assert_eq!(none.unwrap(), None, "no chunk kept, no series");
        let values: Vec<String> = (0..1000).map(|n| format!("{n:04}")).collect();
        assert_eq!(r.label_values("i"), values);
        for (n, v) in values.iter().enumerate() {
            let ids = r.postings("i", v).unwrap();
            assert_eq!(ids.len(), 1, "value {v}");
            assert_eq!(r.series(ids[0]).unwrap().0.get("i"), Some(v.as_str()));
            assert_eq!(
                r.postings("k", &format!("k{:02}", n % 70)).unwrap().len(),
                if n % 70 < 1000 % 70 { 15 } else { 14 }
            );
        }
        for missing in ["", "0", "00005", "0031x", "0500a", "1000", "zzz"] {
            assert!(r.postings("i", missing).unwrap().is_empty(), "{missing}");
        }
        assert_eq!(r.postings("job", "b").unwrap().len(), 333);
        assert!(r.postings("nope", "a").unwrap().is_empty());
        let re = Matcher::new(MatchType::RegexMatch, "i", "00[0-4].|0999").unwrap();
        assert_eq!(r.for_matchers(&[re]).unwrap().len(), 51);
        // Prefix regexes seek in the sorted values; the same ids as testing every value.
        for (pattern, n) in [
            ("0.*", 1000),
            ("00.*", 100),
            ("003.*", 10),
            ("0999.*", 1),
            ("0031.*", 1),
            ("1.*", 0),
            ("(001|05|0999).*", 10 + 100 + 1),
            ("k6.*", 10 * 14),
            (".*", 1000),
        ] {
            let name = if pattern.starts_with('k') { "k" } else { "i" };
            let m = Matcher::new(MatchType::RegexMatch, name, pattern).unwrap();
            assert!(m.prefix_matches().is_some(), "{pattern}");
            let got = r.for_matchers(std::slice::from_ref(&m)).unwrap();
            let mut want: Vec<u64> = all
                .iter()
                .copied()
                .filter(|&id| m.matches(r.series(id).unwrap().0.get_or_empty(name)))
                .collect();
            want.sort_unstable();
            assert_eq!(got, want, "{pattern}");
            assert_eq!(got.len(), n, "{pattern}");
        }
    }
}
