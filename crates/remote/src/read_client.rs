//! The remote read client: sends one [`ReadRequest`] to a `/api/v1/read` endpoint, offering
//! `STREAMED_XOR_CHUNKS` first and `SAMPLES` second, and reads whichever the server chose (the
//! response's Content-Type tells). Servers that predate streaming (InfluxDB 1.x, old
//! Prometheus) answer with samples, so no second round trip is needed.
//!
//! Every read is bounded: a deadline over the whole exchange, a limit on one frame, on the
//! decoded size of a samples response, and on the samples of one read.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use model::{Labels, Matcher};
use prost::Message;
use reqwest::header::{self, HeaderValue};
use web::client::{Auth, ClientError, HttpClientConfig, build_client};

use crate::codec::{DecodeError, encode_snappy_message, snappy_decode};
use crate::proto::{
    ChunkEncoding, Label, LabelMatcher, MatcherType, Query, ReadHints, ReadRequest, ReadResponse,
    ResponseType,
};
use crate::read::{FrameError, STREAMED_CONTENT_TYPE, frame_bounds};
use crate::xor::XorError;

/// How much of an error response body goes into the error message.
const MAX_ERROR_BODY: usize = 256;

/// Limits of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadClientLimits {
    /// Largest streamed frame accepted.
    pub max_frame_bytes: usize,
    /// Largest decoded `SAMPLES` response.
    pub max_decoded_bytes: usize,
    /// Most samples one read may return (0 = no limit).
    pub max_samples: usize,
}

impl Default for ReadClientLimits {
    fn default() -> Self {
        ReadClientLimits {
            max_frame_bytes: 16 << 20,
            max_decoded_bytes: 256 << 20,
            max_samples: 50_000_000,
        }
    }
}

/// Settings of one remote read endpoint.
#[derive(Debug, Clone)]
pub struct ReadClientConfig {
    /// The full URL, e.g. `http://host:9090/api/v1/read`.
    pub url: String,
    /// Deadline of one whole read, body included.
    pub timeout: Duration,
    pub http: HttpClientConfig,
    pub limits: ReadClientLimits,
    /// Extra headers sent with every read (`remote_read: headers:`).
    pub headers: Vec<(String, String)>,
}

impl ReadClientConfig {
    pub fn new(url: impl Into<String>) -> Self {
        ReadClientConfig {
            url: url.into(),
            timeout: Duration::from_secs(60),
            http: HttpClientConfig::default(),
            limits: ReadClientLimits::default(),
            headers: Vec::new(),
        }
    }
}

/// Why a read failed. Every variant names the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ReadClientError {
    #[error("remote read from {url}")]
    Request {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("remote read from {url}: no answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("remote read from {url}: server returned HTTP status {status}: {body}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("remote read from {url}: decode samples response")]
    Decode {
        url: String,
        #[source]
        source: DecodeError,
    },
    #[error("remote read from {url}: streamed response")]
    Frame {
        url: String,
        #[source]
        source: FrameError,
    },
    #[error("remote read from {url}: series {labels}")]
    Chunk {
        url: String,
        labels: String,
        #[source]
        source: XorError,
    },
    #[error("remote read from {url}: {msg}")]
    Protocol { url: String, msg: String },
    #[error("remote read from {url}: more than {limit} samples")]
    TooManySamples { url: String, limit: usize },
}

/// Which response type the server chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Samples,
    StreamedXorChunks,
}

/// One series of a read, its samples in time order and within the read's range.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadSeries {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// The answer to one query.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub mode: ReadMode,
    pub series: Vec<ReadSeries>,
}

/// One series of a read as it arrived: streamed XOR chunks stay encoded and are decoded only
/// while iterated ([`LazySeries::iter`]), so samples nobody reads are never decoded.
#[derive(Debug, Clone)]
pub struct LazySeries {
    pub labels: Labels,
    data: LazyData,
}

#[derive(Debug, Clone)]
enum LazyData {
    Samples(Vec<(i64, f64)>),
    /// XOR chunks in strict time order (each starts after the previous one's end).
    Chunks(Vec<XorChunk>),
}

/// One XOR chunk of a streamed response; its bytes are shared with the frame it came in
/// (never copied out).
#[derive(Debug, Clone)]
pub(crate) struct XorChunk {
    pub min_time_ms: i64,
    pub max_time_ms: i64,
    /// `prometheus.Chunk.Encoding` as sent (checked by the reader).
    pub encoding: i32,
    pub data: Bytes,
}

/// The answer to one query, decoded lazily.
#[derive(Debug, Clone)]
pub struct LazyReadResult {
    pub mode: ReadMode,
    pub series: Vec<LazySeries>,
}

impl LazySeries {
    /// The samples in `[start, end]` in time order. A damaged chunk ends the iteration early
    /// (logged): its frame's checksum held, so this is a server bug, not a transport error.
    pub fn iter(&self, start: i64, end: i64) -> LazyIter<'_> {
        let (samples, chunks): (&[(i64, f64)], &[XorChunk]) = match &self.data {
            LazyData::Samples(s) => (s, &[]),
            LazyData::Chunks(c) => (&[], c),
        };
        LazyIter {
            samples,
            chunks,
            next_chunk: 0,
            cur: None,
            buf: Vec::new(),
            pos: 0,
            start,
            end,
            last: None,
        }
    }

    /// Decodes every sample in `[start, end]`.
    pub fn decode(&self, start: i64, end: i64) -> Vec<(i64, f64)> {
        let mut it = self.iter(start, end);
        let mut out = Vec::new();
        while let Some(s) = storage::SampleIterator::next(&mut it) {
            out.push(s);
        }
        out
    }

    /// Whether the series may have samples in `[start, end]` (chunks are whole, so one that
    /// overlaps the range may still have none inside it).
    fn may_overlap(&self, start: i64, end: i64) -> bool {
        match &self.data {
            LazyData::Samples(s) => s.iter().any(|x| x.0 >= start && x.0 <= end),
            LazyData::Chunks(c) => c
                .iter()
                .any(|c| c.max_time_ms >= start && c.min_time_ms <= end),
        }
    }
}

/// Samples decoded at a time by [`LazyIter`].
const LAZY_BATCH: usize = 32;

/// Iterates a [`LazySeries`], decoding a batch of samples at a time into a buffer (a tight loop
/// is cheaper than a per-sample state machine) and skipping whole chunks on seek.
pub struct LazyIter<'a> {
    samples: &'a [(i64, f64)],
    chunks: &'a [XorChunk],
    next_chunk: usize,
    /// The chunk being decoded, a batch at a time.
    cur: Option<crate::xor::XorIter<'a>>,
    /// The current batch of samples (chunk mode only).
    buf: Vec<(i64, f64)>,
    /// Position in `samples` or `buf`.
    pos: usize,
    start: i64,
    end: i64,
    last: Option<(i64, f64)>,
}

impl LazyIter<'_> {
    #[inline]
    fn cur(&self) -> &[(i64, f64)] {
        if self.chunks.is_empty() {
            self.samples
        } else {
            &self.buf
        }
    }

    /// Decodes the next batch into `buf` (from the current chunk or the next one); false at
    /// the end. Batches are small so a replica the merge only peeks at is barely decoded.
    fn load_next_chunk(&mut self) -> bool {
        self.buf.clear();
        if self.buf.capacity() == 0 {
            // Once, at its final size (growing it by doubling costs four reallocations).
            self.buf.reserve_exact(LAZY_BATCH);
        }
        self.pos = 0;
        loop {
            if let Some(it) = self.cur.as_mut() {
                if it.fill(&mut self.buf, LAZY_BATCH) > 0 {
                    return true;
                }
                if let Some(e) = it.err() {
                    tracing::warn!(error = %e, "remote read chunk ended early");
                }
                self.cur = None;
            }
            let Some(c) = self.chunks.get(self.next_chunk) else {
                return false;
            };
            self.next_chunk += 1;
            self.cur = Some(crate::xor::XorIter::new(&c.data));
        }
    }

    /// Ends the iteration: nothing after the range is decoded.
    fn exhaust(&mut self) {
        self.next_chunk = self.chunks.len();
        self.cur = None;
        self.pos = self.cur().len();
    }
}

impl storage::SampleIterator for LazyIter<'_> {
    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        loop {
            let s = match self.cur().get(self.pos) {
                Some(&s) => s,
                None => {
                    if self.chunks.is_empty() || !self.load_next_chunk() {
                        return None;
                    }
                    continue;
                }
            };
            self.pos += 1;
            if s.0 < self.start || self.last.is_some_and(|l| s.0 <= l.0) {
                continue;
            }
            if s.0 > self.end {
                self.exhaust();
                return None;
            }
            self.last = Some(s);
            return Some(s);
        }
    }

    fn max_time_hint(&self) -> Option<i64> {
        let last = match self.chunks.last() {
            Some(c) => c.max_time_ms,
            None => self.samples.last()?.0,
        };
        Some(last.min(self.end))
    }

    fn seek(&mut self, t: i64) -> Option<(i64, f64)> {
        if let Some(l) = self.last.filter(|l| l.0 >= t) {
            return Some(l);
        }
        if !self.chunks.is_empty()
            && self.buf[self.pos.min(self.buf.len())..]
                .last()
                .is_none_or(|l| l.0 < t)
        {
            // The rest of the current chunk is skipped when it ends before `t`, and whole
            // chunks after it without decoding them.
            let open_ends_before = self
                .next_chunk
                .checked_sub(1)
                .and_then(|i| self.chunks.get(i))
                .is_some_and(|c| c.max_time_ms < t);
            if open_ends_before {
                self.cur = None;
            }
            if self.cur.is_none() {
                while self
                    .chunks
                    .get(self.next_chunk)
                    .is_some_and(|c| c.max_time_ms < t)
                {
                    self.next_chunk += 1;
                }
            }
            // Batches before `t` are decoded and dropped.
            loop {
                if !self.load_next_chunk() {
                    self.exhaust();
                    return None;
                }
                if self.buf.last().is_some_and(|l| l.0 >= t) {
                    break;
                }
            }
        }
        let cur = self.cur();
        let from = self.pos.min(cur.len());
        self.pos = from + cur[from..].partition_point(|x| x.0 < t);
        storage::SampleIterator::next(self)
    }
}

/// A client for one remote read endpoint.
pub struct ReadClient {
    url: String,
    timeout: Duration,
    limits: ReadClientLimits,
    client: reqwest::Client,
    auth: Auth,
    headers: reqwest::header::HeaderMap,
}

/// Converts our matchers into the wire's.
pub fn to_wire_matchers(ms: &[Matcher]) -> Vec<LabelMatcher> {
    ms.iter()
        .map(|m| LabelMatcher {
            r#type: match m.kind {
                model::MatchType::Equal => MatcherType::Eq,
                model::MatchType::NotEqual => MatcherType::Neq,
                model::MatchType::RegexMatch => MatcherType::Re,
                model::MatchType::RegexNoMatch => MatcherType::Nre,
            } as i32,
            name: m.name.to_string(),
            value: m.value.to_string(),
        })
        .collect()
}

fn to_labels(ls: &[Label]) -> Labels {
    Labels::from_pairs(ls.iter().map(|l| (l.name.as_str(), l.value.as_str())))
}

impl ReadClient {
    pub fn new(cfg: &ReadClientConfig) -> Result<Self, ClientError> {
        // The deadline is ours (tokio), so a stalled body is cut too.
        let client = build_client(&cfg.http, None)?;
        let auth = Auth::from_config(&cfg.http)?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (k, v) in &cfg.headers {
            let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| ClientError::Invalid(format!("invalid header name {k:?}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| ClientError::Invalid(format!("invalid value of header {k:?}")))?;
            headers.insert(name, value);
        }
        Ok(ReadClient {
            url: cfg.url.clone(),
            timeout: cfg.timeout,
            limits: cfg.limits,
            client,
            auth,
            headers,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Reads series matching `matchers` in `[start, end]` (ms, inclusive).
    pub async fn read(
        &self,
        start: i64,
        end: i64,
        matchers: &[Matcher],
        hints: Option<ReadHints>,
    ) -> Result<ReadResult, ReadClientError> {
        let r = self.read_lazy(start, end, matchers, hints).await?;
        Ok(ReadResult {
            mode: r.mode,
            series: r
                .series
                .into_iter()
                .map(|s| ReadSeries {
                    samples: s.decode(start, end),
                    labels: s.labels,
                })
                .collect(),
        })
    }

    /// Like [`ReadClient::read`], but streamed chunks stay encoded until iterated.
    pub async fn read_lazy(
        &self,
        start: i64,
        end: i64,
        matchers: &[Matcher],
        hints: Option<ReadHints>,
    ) -> Result<LazyReadResult, ReadClientError> {
        let req = ReadRequest {
            queries: vec![Query {
                start_timestamp_ms: start,
                end_timestamp_ms: end,
                matchers: to_wire_matchers(matchers),
                hints,
            }],
            accepted_response_types: vec![
                ResponseType::StreamedXorChunks as i32,
                ResponseType::Samples as i32,
            ],
        };
        match tokio::time::timeout(self.timeout, self.exchange(&req)).await {
            Ok(Ok(mut r)) => {
                // Streamed chunks hold whole chunks, which may reach outside the range; they
                // are trimmed while iterating.
                r.series.retain(|s| s.may_overlap(start, end));
                Ok(r)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ReadClientError::Timeout {
                url: self.url.clone(),
                timeout: self.timeout,
            }),
        }
    }

    fn req_err(&self, e: impl std::error::Error + Send + Sync + 'static) -> ReadClientError {
        ReadClientError::Request {
            url: self.url.clone(),
            source: Box::new(e),
        }
    }

    async fn exchange(&self, req: &ReadRequest) -> Result<LazyReadResult, ReadClientError> {
        let body = encode_snappy_message(req);
        let rb = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"))
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            )
            .header(
                "X-Prometheus-Remote-Read-Version",
                HeaderValue::from_static("0.1.0"),
            )
            .header(
                header::USER_AGENT,
                HeaderValue::from_static(concat!("Vigil/", env!("CARGO_PKG_VERSION"))),
            )
            .body(body);
        let rb = self.auth.apply_auth(rb).map_err(|e| self.req_err(e))?;
        let resp = rb.send().await.map_err(|e| self.req_err(e))?;
        let status = resp.status();
        if !status.is_success() {
            let mut text = resp.text().await.unwrap_or_default();
            if text.len() > MAX_ERROR_BODY {
                let cut = (0..=MAX_ERROR_BODY)
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                text.truncate(cut);
            }
            return Err(ReadClientError::Status {
                url: self.url.clone(),
                status,
                body: text.trim_end().to_string(),
            });
        }
        let ctype = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if ctype.starts_with(STREAMED_CONTENT_TYPE.split(';').next().unwrap_or_default()) {
            self.read_stream(resp).await
        } else {
            self.read_samples(resp).await
        }
    }

    async fn read_samples(
        &self,
        resp: reqwest::Response,
    ) -> Result<LazyReadResult, ReadClientError> {
        let mut buf = BytesMut::new();
        let mut stream = resp.bytes_stream();
        // The compressed body cannot be larger than what it decodes to, plus framing.
        let max_body = self.limits.max_decoded_bytes.saturating_add(1024);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.req_err(e))?;
            if buf.len() + chunk.len() > max_body {
                return Err(ReadClientError::Decode {
                    url: self.url.clone(),
                    source: DecodeError::TooLarge {
                        claimed: buf.len() + chunk.len(),
                        limit: max_body,
                    },
                });
            }
            buf.extend_from_slice(&chunk);
        }
        let raw = snappy_decode(&buf, self.limits.max_decoded_bytes).map_err(|source| {
            ReadClientError::Decode {
                url: self.url.clone(),
                source,
            }
        })?;
        let msg =
            ReadResponse::decode(raw.as_slice()).map_err(|source| ReadClientError::Decode {
                url: self.url.clone(),
                source: DecodeError::Protobuf {
                    message: "ReadResponse",
                    source,
                },
            })?;
        let mut total = 0usize;
        let mut series = Vec::new();
        for r in msg.results {
            for ts in r.timeseries {
                total += ts.samples.len();
                self.check_samples(total)?;
                let mut samples: Vec<(i64, f64)> =
                    ts.samples.iter().map(|s| (s.timestamp, s.value)).collect();
                if !samples.is_sorted_by(|a, b| a.0 < b.0) {
                    samples.sort_by_key(|s| s.0);
                    samples.dedup_by_key(|s| s.0);
                }
                series.push(LazySeries {
                    labels: to_labels(&ts.labels),
                    data: LazyData::Samples(samples),
                });
            }
        }
        Ok(LazyReadResult {
            mode: ReadMode::Samples,
            series,
        })
    }

    fn check_samples(&self, total: usize) -> Result<(), ReadClientError> {
        if self.limits.max_samples > 0 && total > self.limits.max_samples {
            return Err(ReadClientError::TooManySamples {
                url: self.url.clone(),
                limit: self.limits.max_samples,
            });
        }
        Ok(())
    }

    async fn read_stream(
        &self,
        resp: reqwest::Response,
    ) -> Result<LazyReadResult, ReadClientError> {
        let mut buf = BytesMut::new();
        let mut stream = resp.bytes_stream();
        let mut series: Vec<(Labels, Vec<XorChunk>)> = Vec::new();
        let mut decoded = Vec::new();
        let mut total = 0usize;
        let mut ended = false;
        loop {
            // Drain every whole frame in the buffer. Each frame's bytes are kept (shared) by
            // the chunks decoded from it.
            while let Some((range, used)) = frame_bounds(&buf, self.limits.max_frame_bytes)
                .map_err(|source| ReadClientError::Frame {
                    url: self.url.clone(),
                    source,
                })?
            {
                let frame = buf.split_to(used).freeze();
                let query_index = decode_chunked(&frame, range, &mut decoded).map_err(|msg| {
                    ReadClientError::Frame {
                        url: self.url.clone(),
                        source: FrameError::Protobuf(msg),
                    }
                })?;
                if query_index != 0 {
                    return Err(ReadClientError::Protocol {
                        url: self.url.clone(),
                        msg: format!("frame for query {query_index} of a one-query read"),
                    });
                }
                for (labels, chunks) in decoded.drain(..) {
                    for c in &chunks {
                        if c.encoding != ChunkEncoding::Xor as i32 {
                            return Err(ReadClientError::Protocol {
                                url: self.url.clone(),
                                msg: format!("unsupported chunk encoding {}", c.encoding),
                            });
                        }
                        // The header's sample count bounds the read without decoding.
                        if c.data.len() < 2 {
                            return Err(ReadClientError::Chunk {
                                url: self.url.clone(),
                                labels: labels.to_string(),
                                source: XorError::Truncated(0),
                            });
                        }
                        total += usize::from(u16::from_be_bytes([c.data[0], c.data[1]]));
                        self.check_samples(total)?;
                    }
                    // A series whose chunks did not fit one frame continues in the next.
                    match series.last_mut() {
                        Some(last) if last.0 == labels => last.1.extend(chunks),
                        _ => series.push((labels, chunks)),
                    }
                }
            }
            if ended {
                break;
            }
            match stream.next().await {
                Some(chunk) => buf.extend_from_slice(&chunk.map_err(|e| self.req_err(e))?),
                None => ended = true,
            }
        }
        if !buf.is_empty() {
            return Err(ReadClientError::Protocol {
                url: self.url.clone(),
                msg: format!("stream ended inside a frame ({} bytes left)", buf.len()),
            });
        }
        let series = series
            .into_iter()
            .map(|(labels, chunks)| self.lazy_series(labels, chunks))
            .collect::<Result<_, _>>()?;
        Ok(LazyReadResult {
            mode: ReadMode::StreamedXorChunks,
            series,
        })
    }

    /// Keeps chunks encoded when they come in strict time order (as servers send them);
    /// otherwise decodes, sorts and deduplicates the samples at once.
    fn lazy_series(
        &self,
        labels: Labels,
        chunks: Vec<XorChunk>,
    ) -> Result<LazySeries, ReadClientError> {
        let ordered = chunks.iter().all(|c| c.min_time_ms <= c.max_time_ms)
            && chunks
                .windows(2)
                .all(|w| w[0].max_time_ms < w[1].min_time_ms);
        if ordered {
            return Ok(LazySeries {
                labels,
                data: LazyData::Chunks(chunks),
            });
        }
        let mut samples = Vec::new();
        for c in &chunks {
            crate::xor::decode_into(&c.data, &mut samples).map_err(|source| {
                ReadClientError::Chunk {
                    url: self.url.clone(),
                    labels: labels.to_string(),
                    source,
                }
            })?;
        }
        samples.sort_by_key(|x| x.0);
        samples.dedup_by_key(|x| x.0);
        Ok(LazySeries {
            labels,
            data: LazyData::Samples(samples),
        })
    }
}

/// A protobuf wire reader over `b[pos..]` (positions stay absolute in `b`).
struct Wire<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Wire<'a> {
    fn more(&self) -> bool {
        self.pos < self.b.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.b.get(self.pos) else {
                return Err("truncated varint".into());
            };
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err("varint overflows 64 bits".into());
            }
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(v);
            }
        }
        Err("varint overflows 64 bits".into())
    }

    /// The next field's number and wire type.
    fn key(&mut self) -> Result<(u64, u8), String> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }

    /// A length-delimited field's bytes, as a range of `b`.
    fn len_delimited(&mut self) -> Result<std::ops::Range<usize>, String> {
        let len = self.varint()?;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| self.pos.checked_add(l))
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("field of {len} bytes runs past its message"))?;
        let r = self.pos..end;
        self.pos = end;
        Ok(r)
    }

    fn skip(&mut self, wire_type: u8) -> Result<(), String> {
        let n = match wire_type {
            0 => return self.varint().map(drop),
            1 => 8,
            2 => return self.len_delimited().map(drop),
            5 => 4,
            t => return Err(format!("unsupported wire type {t}")),
        };
        if self.pos + n > self.b.len() {
            return Err("truncated fixed-size field".into());
        }
        self.pos += n;
        Ok(())
    }

    fn str_at(&self, r: std::ops::Range<usize>) -> Result<&'a str, String> {
        std::str::from_utf8(&self.b[r]).map_err(|_| "label is not valid UTF-8".to_string())
    }
}

/// Decodes one `ChunkedReadResponse` (the bytes `msg` of `frame`) without an intermediate
/// message: labels go straight into [`Labels`] (one allocation per series) and chunk data
/// stays in the frame (`Bytes` slices). Appends the series to `out`; returns the query index.
fn decode_chunked(
    frame: &Bytes,
    msg: std::ops::Range<usize>,
    out: &mut Vec<(Labels, Vec<XorChunk>)>,
) -> Result<i64, String> {
    let mut w = Wire {
        b: &frame[..msg.end],
        pos: msg.start,
    };
    let mut query_index = 0i64;
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    while w.more() {
        match w.key()? {
            (1, 2) => {
                let r = w.len_delimited()?;
                pairs.clear();
                let mut chunks = Vec::new();
                let mut s = Wire {
                    b: &frame[..r.end],
                    pos: r.start,
                };
                while s.more() {
                    match s.key()? {
                        (1, 2) => {
                            let lr = s.len_delimited()?;
                            let mut l = Wire {
                                b: &frame[..lr.end],
                                pos: lr.start,
                            };
                            let (mut name, mut value) = ("", "");
                            while l.more() {
                                match l.key()? {
                                    (1, 2) => {
                                        let r = l.len_delimited()?;
                                        name = s.str_at(r)?;
                                    }
                                    (2, 2) => {
                                        let r = l.len_delimited()?;
                                        value = s.str_at(r)?;
                                    }
                                    (_, t) => l.skip(t)?,
                                }
                            }
                            pairs.push((name, value));
                        }
                        (2, 2) => {
                            let cr = s.len_delimited()?;
                            let mut c = Wire {
                                b: &frame[..cr.end],
                                pos: cr.start,
                            };
                            let mut chunk = XorChunk {
                                min_time_ms: 0,
                                max_time_ms: 0,
                                encoding: 0,
                                data: Bytes::new(),
                            };
                            while c.more() {
                                match c.key()? {
                                    (1, 0) => chunk.min_time_ms = c.varint()? as i64,
                                    (2, 0) => chunk.max_time_ms = c.varint()? as i64,
                                    (3, 0) => chunk.encoding = c.varint()? as i32,
                                    (4, 2) => chunk.data = frame.slice(c.len_delimited()?),
                                    (_, t) => c.skip(t)?,
                                }
                            }
                            chunks.push(chunk);
                        }
                        (_, t) => s.skip(t)?,
                    }
                }
                // Servers send labels sorted by name; anything else is sorted here.
                let labels = if pairs.windows(2).all(|p| p[0].0 < p[1].0) {
                    Labels::from_sorted(pairs.iter().copied())
                } else {
                    Labels::from_pairs(pairs.iter().copied())
                };
                out.push((labels, chunks));
            }
            (2, 0) => query_index = w.varint()? as i64,
            (_, t) => w.skip(t)?,
        }
    }
    Ok(query_index)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::Router;
    use axum::routing::post;
    use model::MatchType;
    use storage::{Querier, Queryable, VecQueryable, VecSeries};

    use super::*;
    use crate::read::{ReadLimits, ReadState, read_router};

    /// A remote endpoint's storage: like [`VecQueryable`], with samples cut to the range.
    struct Fixed(Vec<VecSeries>);

    impl Queryable for Fixed {
        fn querier(&self, mint: i64, maxt: i64) -> storage::Result<Box<dyn Querier>> {
            let s = self
                .0
                .iter()
                .map(|s| VecSeries {
                    labels: s.labels.clone(),
                    samples: s
                        .samples
                        .iter()
                        .copied()
                        .filter(|x| x.0 >= mint && x.0 <= maxt)
                        .collect(),
                })
                .collect();
            Ok(Box::new(VecQueryable(s)))
        }
    }

    async fn serve(app: Router) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/v1/read", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        url
    }

    fn data() -> Fixed {
        // 300 samples: more than two XOR chunks, so a series spans chunks.
        let samples: Vec<(i64, f64)> = (0..300).map(|i| (i * 1000, i as f64 * 1.5)).collect();
        Fixed(vec![
            VecSeries {
                labels: Labels::from_pairs([("__name__", "x"), ("a", "1")]),
                samples: samples.clone(),
            },
            VecSeries {
                labels: Labels::from_pairs([("__name__", "x"), ("a", "2")]),
                samples: samples[..10].to_vec(),
            },
            VecSeries {
                labels: Labels::from_pairs([("__name__", "y")]),
                samples,
            },
        ])
    }

    fn x() -> Vec<Matcher> {
        vec![Matcher::new(MatchType::Equal, "__name__", "x").unwrap()]
    }

    /// Configured headers go out with every read.
    #[tokio::test]
    async fn sends_configured_headers() {
        let state = ReadState::new(Arc::new(data()), ReadLimits::default());
        let seen: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
        let s2 = seen.clone();
        let inner = read_router(state);
        let app = Router::new().fallback(move |req: axum::extract::Request| {
            let seen = s2.clone();
            let inner = inner.clone();
            async move {
                let v = req
                    .headers()
                    .get("x-scope-orgid")
                    .map(|v| v.to_str().unwrap().to_string());
                *seen.lock().unwrap() = v;
                tower::ServiceExt::oneshot(inner, req).await.unwrap()
            }
        });
        let url = serve(app).await;
        let mut cfg = ReadClientConfig::new(url);
        cfg.headers = vec![("X-Scope-OrgID".into(), "tenant-1".into())];
        let r = ReadClient::new(&cfg)
            .unwrap()
            .read(0, 10_000, &x(), None)
            .await
            .unwrap();
        assert_eq!(r.series.len(), 2);
        assert_eq!(seen.lock().unwrap().as_deref(), Some("tenant-1"));
    }

    #[tokio::test]
    async fn streamed_chunks_from_our_server() {
        let state = ReadState::new(
            Arc::new(data()),
            ReadLimits {
                // Small frames: series continue across frames.
                max_bytes_in_frame: 64,
                ..Default::default()
            },
        )
        .with_external_labels(Labels::from_pairs([("replica", "r")]));
        let url = serve(read_router(state)).await;
        let c = ReadClient::new(&ReadClientConfig::new(url)).unwrap();
        let r = c.read(5_000, 250_000, &x(), None).await.unwrap();
        assert_eq!(r.mode, ReadMode::StreamedXorChunks);
        assert_eq!(r.series.len(), 2);
        assert_eq!(r.series[0].labels.get("replica"), Some("r"));
        // In order, and trimmed to the range even where whole chunks were sent.
        let s0 = &r.series[0].samples;
        assert!(s0.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(s0.first().map(|s| s.0), Some(5_000));
        assert_eq!(s0.last().map(|s| s.0), Some(250_000));
        assert_eq!(s0.len(), 246);
        assert_eq!(r.series[1].samples.len(), 5);
    }

    /// Lazily decoded chunks: trimmed to the range, and seek skips whole chunks.
    #[test]
    fn lazy_series_seek_and_trim() {
        use storage::SampleIterator;
        let samples: Vec<(i64, f64)> = (0..300).map(|i| (i * 1000, i as f64)).collect();
        let chunks = samples
            .chunks(120)
            .map(|c| {
                let mut e = crate::xor::XorEncoder::new();
                for &(t, v) in c {
                    e.append(t, v);
                }
                XorChunk {
                    min_time_ms: c[0].0,
                    max_time_ms: c[c.len() - 1].0,
                    encoding: ChunkEncoding::Xor as i32,
                    data: e.finish().into(),
                }
            })
            .collect();
        let s = LazySeries {
            labels: Labels::from_pairs([("__name__", "x")]),
            data: LazyData::Chunks(chunks),
        };
        let got = s.decode(5_000, 250_000);
        assert_eq!(got, samples[5..=250].to_vec());
        let mut it = s.iter(0, 290_000);
        assert_eq!(it.seek(200_500), Some((201_000, 201.0)));
        assert_eq!(it.seek(100_000), Some((201_000, 201.0)));
        assert_eq!(it.next(), Some((202_000, 202.0)));
        assert_eq!(it.seek(295_000), None);
        assert!(!s.may_overlap(300_000, 400_000));
    }

    /// The hand-written frame decoder reads what prost writes: labels (sorted or not), chunk
    /// fields, the query index, and skips fields it does not know; bad input is an error.
    #[test]
    fn decode_chunked_matches_prost() {
        use crate::proto::{ChunkedReadResponse, ChunkedSeries};
        let chunk = |min, max, data: &[u8]| crate::proto::Chunk {
            min_time_ms: min,
            max_time_ms: max,
            r#type: ChunkEncoding::Xor as i32,
            data: data.to_vec(),
        };
        let msg = ChunkedReadResponse {
            chunked_series: vec![
                ChunkedSeries {
                    labels: vec![Label::new("__name__", "x"), Label::new("a", "é")],
                    chunks: vec![chunk(-5, 10, &[0, 1, 2]), chunk(11, 20, &[0, 2, 9, 9])],
                },
                ChunkedSeries {
                    labels: vec![Label::new("z", "1"), Label::new("__name__", "y")],
                    chunks: vec![],
                },
            ],
            query_index: 3,
        };
        let mut bytes = msg.encode_to_vec();
        // An unknown varint field (15) and an unknown length-delimited one (14).
        bytes.extend_from_slice(&[15 << 3, 7, (14 << 3) | 2, 2, b'h', b'i']);
        let frame = Bytes::from(bytes);
        let mut out = Vec::new();
        let qi = decode_chunked(&frame, 0..frame.len(), &mut out).unwrap();
        assert_eq!(qi, 3);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].0,
            Labels::from_pairs([("__name__", "x"), ("a", "é")])
        );
        assert_eq!(
            out[1].0,
            Labels::from_pairs([("__name__", "y"), ("z", "1")])
        );
        let c = &out[0].1;
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].min_time_ms, c[0].max_time_ms), (-5, 10));
        assert_eq!(&c[0].data[..], &[0, 1, 2]);
        assert_eq!((c[1].min_time_ms, c[1].max_time_ms), (11, 20));
        assert_eq!(&c[1].data[..], &[0, 2, 9, 9]);
        assert_eq!(c[1].encoding, ChunkEncoding::Xor as i32);
        assert!(out[1].1.is_empty());
        // Truncated messages and invalid UTF-8 are errors, never panics.
        for cut in 1..frame.len() - 6 {
            let f = frame.slice(..cut);
            let _ = decode_chunked(&f, 0..cut, &mut Vec::new());
        }
        let bad = ChunkedReadResponse {
            chunked_series: vec![ChunkedSeries {
                labels: vec![Label::new("a", "b")],
                chunks: vec![],
            }],
            query_index: 0,
        };
        let mut b = bad.encode_to_vec();
        let at = b.iter().rposition(|&x| x == b'b').unwrap();
        b[at] = 0xff;
        let b = Bytes::from(b);
        assert!(decode_chunked(&b, 0..b.len(), &mut Vec::new()).is_err());
    }

    #[tokio::test]
    async fn samples_when_the_server_does_not_stream() {
        // An old server: answers every read with a SAMPLES response.
        let app = Router::new().route(
            "/api/v1/read",
            post(|| async {
                let resp = ReadResponse {
                    results: vec![crate::proto::QueryResult {
                        timeseries: vec![crate::proto::TimeSeries {
                            labels: vec![Label::new("__name__", "x")],
                            samples: vec![
                                crate::proto::Sample {
                                    value: 2.0,
                                    timestamp: 2000,
                                },
                                crate::proto::Sample {
                                    value: 1.0,
                                    timestamp: 1000,
                                },
                            ],
                            ..Default::default()
                        }],
                    }],
                };
                (
                    [("Content-Type", "application/x-protobuf")],
                    encode_snappy_message(&resp),
                )
            }),
        );
        let url = serve(app).await;
        let c = ReadClient::new(&ReadClientConfig::new(url)).unwrap();
        let r = c.read(0, 10_000, &x(), None).await.unwrap();
        assert_eq!(r.mode, ReadMode::Samples);
        assert_eq!(r.series[0].samples, vec![(1000, 1.0), (2000, 2.0)]);
    }

    #[tokio::test]
    async fn errors_name_the_endpoint() {
        let app = Router::new()
            .route(
                "/api/v1/read",
                post(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            )
            .route(
                "/garbage/api/v1/read",
                post(|| async {
                    (
                        [("Content-Type", STREAMED_CONTENT_TYPE)],
                        "\u{1}\u{0}\u{0}\u{0}\u{0}x",
                    )
                }),
            )
            .route(
                "/hang/api/v1/read",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            );
        let url = serve(app).await;
        let base = url.trim_end_matches("/api/v1/read").to_string();
        let c = ReadClient::new(&ReadClientConfig::new(url.clone())).unwrap();
        let e = c.read(0, 1, &x(), None).await.unwrap_err();
        assert!(matches!(e, ReadClientError::Status { .. }), "{e:?}");
        assert!(
            e.to_string().contains(&url) && e.to_string().contains("boom"),
            "{e}"
        );

        let c = ReadClient::new(&ReadClientConfig::new(format!(
            "{base}/garbage/api/v1/read"
        )))
        .unwrap();
        let e = c.read(0, 1, &x(), None).await.unwrap_err();
        assert!(matches!(e, ReadClientError::Frame { .. }), "{e:?}");

        let mut cfg = ReadClientConfig::new(format!("{base}/hang/api/v1/read"));
        cfg.timeout = Duration::from_millis(200);
        let t0 = std::time::Instant::now();
        let e = ReadClient::new(&cfg)
            .unwrap()
            .read(0, 1, &x(), None)
            .await
            .unwrap_err();
        assert!(matches!(e, ReadClientError::Timeout { .. }), "{e:?}");
        assert!(t0.elapsed() < Duration::from_secs(2));

        let mut cfg = ReadClientConfig::new(format!("{base}/api/v1/read"));
        cfg.limits.max_samples = 1;
        let state = ReadState::new(Arc::new(data()), ReadLimits::default());
        let url2 = serve(read_router(state)).await;
        cfg.url = url2;
        let e = ReadClient::new(&cfg)
            .unwrap()
            .read(0, 10_000, &x(), None)
            .await
            .unwrap_err();
        assert!(matches!(e, ReadClientError::TooManySamples { .. }), "{e:?}");
    }
}
