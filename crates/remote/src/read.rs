//! The remote read server: `POST /api/v1/read`.
//!
//! A [`ReadRequest`] holds queries (matchers and an inclusive time range). The answer is, as
//! the request prefers among the types it accepts:
//! - `SAMPLES`: one snappy-compressed [`ReadResponse`] with every sample, refused with 400 once
//!   a query exceeds the sample limit (`--storage.remote.read-sample-limit`);
//! - `STREAMED_XOR_CHUNKS`: a stream of frames, each `uvarint(len) ‖ CRC32C(data) as u32 BE ‖
//!   data`, where data is a [`ChunkedReadResponse`] for one query holding XOR chunks of at most
//!   120 samples; frames stay near `--storage.remote.read-max-bytes-in-frame`. Memory stays
//!   bounded, so no sample limit applies (compat: as in Prometheus).
//!
//! At most `--storage.remote.read-concurrent-limit` requests run at once; others wait.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::{BufMut, Bytes, BytesMut};
use model::{Labels, LabelsBuilder, MatchType, Matcher, MatcherError};
use prost::Message;
use storage::{Queryable, SelectHints, Series, StorageError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::codec::{DecodeError, decode_read_request, encode_snappy_message, error_chain};
use crate::proto::{
    ChunkEncoding, ChunkedReadResponse, Label, LabelMatcher, MatcherType, Query, QueryResult,
    ReadResponse, ResponseType, Sample, TimeSeries,
};
use crate::xor::{SAMPLES_PER_CHUNK, XorEncoder};

/// Content-Type of a `STREAMED_XOR_CHUNKS` response.
pub const STREAMED_CONTENT_TYPE: &str =
    "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse";

/// Limits of the read server; the defaults are Prometheus's flag defaults.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Most samples one query may return in a `SAMPLES` response; 0 means no limit.
    pub sample_limit: usize,
    /// Most requests served at once; 0 means no limit.
    pub concurrent_limit: usize,
    /// Target size of one streamed frame.
    pub max_bytes_in_frame: usize,
    /// Largest compressed request body.
    pub max_body_bytes: usize,
    /// Largest decoded request.
    pub max_decoded_bytes: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            sample_limit: 50_000_000,
            concurrent_limit: 10,
            max_bytes_in_frame: 1 << 20,
            max_body_bytes: 4 << 20,
            max_decoded_bytes: 32 << 20,
        }
    }
}

/// What the read router needs: the storage to read, the limits and the concurrency gate.
#[derive(Clone)]
pub struct ReadState {
    queryable: Arc<dyn Queryable>,
    limits: ReadLimits,
    gate: Arc<Semaphore>,
    external_labels: Labels,
}

impl ReadState {
    pub fn new(queryable: Arc<dyn Queryable>, limits: ReadLimits) -> Self {
        let permits = match limits.concurrent_limit {
            0 => Semaphore::MAX_PERMITS,
            n => n,
        };
        ReadState {
            queryable,
            limits,
            gate: Arc::new(Semaphore::new(permits)),
            external_labels: Labels::empty(),
        }
    }

    /// The server's `global.external_labels`: equality matchers on them that hold are dropped
    /// from queries (stored series do not carry them), and they are added to every series
    /// returned, unless the series has a label of the same name (compat: as Prometheus does).
    pub fn with_external_labels(mut self, labels: Labels) -> Self {
        self.external_labels = labels;
        self
    }
}

/// Why a read request failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("query {query}: unknown label matcher type {kind}")]
    MatcherType { query: usize, kind: i32 },
    #[error("query {query}: build label matcher")]
    Matcher {
        query: usize,
        #[source]
        source: MatcherError,
    },
    #[error("query {query}: exceeded sample limit ({limit})")]
    SampleLimit { query: usize, limit: usize },
    #[error("query {query}: select series")]
    Select {
        query: usize,
        #[source]
        source: StorageError,
    },
    #[error("read task: {0}")]
    Task(String),
}

impl ReadError {
    pub fn status(&self) -> StatusCode {
        match self {
            ReadError::Decode(e) if e.is_too_large() => StatusCode::PAYLOAD_TOO_LARGE,
            ReadError::Decode(_)
            | ReadError::MatcherType { .. }
            | ReadError::Matcher { .. }
            | ReadError::SampleLimit { .. } => StatusCode::BAD_REQUEST,
            ReadError::Select { .. } | ReadError::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ReadError {
    fn into_response(self) -> Response {
        let msg = error_chain(&self);
        tracing::warn!(error = %msg, "remote read request failed");
        (self.status(), msg).into_response()
    }
}

/// A router serving `POST /api/v1/read`.
pub fn read_router(state: ReadState) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/api/v1/read", post(read_handler))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// One query of a request, with its matchers rebuilt (regexes with Go semantics).
struct PreparedQuery {
    external: Labels,
    start: i64,
    end: i64,
    hints: SelectHints,
    matchers: Vec<Matcher>,
}

async fn read_handler(
    State(state): State<ReadState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(r) => {
            return crate::write::body_rejection(r, state.limits.max_body_bytes).into_response();
        }
    };
    let permit = match state.gate.clone().acquire_owned().await {
        Ok(p) => p,
        Err(_) => return ReadError::Task("read gate closed".into()).into_response(),
    };
    match serve(state, permit, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn serve(
    state: ReadState,
    permit: OwnedSemaphorePermit,
    body: Bytes,
) -> Result<Response, ReadError> {
    let req = decode_read_request(&body, state.limits.max_decoded_bytes)?;
    let queries = req
        .queries
        .iter()
        .enumerate()
        .map(|(i, q)| prepare(i, q, &state.external_labels))
        .collect::<Result<Vec<_>, _>>()?;
    if negotiate(&req.accepted_response_types) == ResponseType::StreamedXorChunks {
        return Ok(stream_chunks(state, permit, queries));
    }
    let encoded = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let resp = read_samples(
            state.queryable.as_ref(),
            &queries,
            state.limits.sample_limit,
        )?;
        Ok::<_, ReadError>(encode_snappy_message(&resp))
    })
    .await
    .map_err(|e| ReadError::Task(e.to_string()))??;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-protobuf"),
            (header::CONTENT_ENCODING, "snappy"),
        ],
        encoded,
    )
        .into_response())
}

/// The first accepted response type we support; `SAMPLES` when none is given.
fn negotiate(accepted: &[i32]) -> ResponseType {
    accepted
        .iter()
        .find_map(|&t| ResponseType::try_from(t).ok())
        .unwrap_or(ResponseType::Samples)
}

fn prepare(i: usize, q: &Query, external: &Labels) -> Result<PreparedQuery, ReadError> {
    let matchers = q
        .matchers
        .iter()
        .filter(|m| {
            !(m.r#type == MatcherType::Eq as i32 && external.get(&m.name) == Some(m.value.as_str()))
        })
        .map(|m| to_matcher(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let h = q.hints.clone().unwrap_or_default();
    let hints = SelectHints {
        start: q.start_timestamp_ms,
        end: q.end_timestamp_ms,
        step: h.step_ms,
        func: (!h.func.is_empty()).then_some(h.func),
        labels_only: false,
        limit: 0,
    };
    Ok(PreparedQuery {
        external: external.clone(),
        start: q.start_timestamp_ms,
        end: q.end_timestamp_ms,
        hints,
        matchers,
    })
}

/// Rebuilds a label matcher from the wire.
pub fn to_matcher(query: usize, m: &LabelMatcher) -> Result<Matcher, ReadError> {
    let kind = match MatcherType::try_from(m.r#type) {
        Ok(MatcherType::Eq) => MatchType::Equal,
        Ok(MatcherType::Neq) => MatchType::NotEqual,
        Ok(MatcherType::Re) => MatchType::RegexMatch,
        Ok(MatcherType::Nre) => MatchType::RegexNoMatch,
        Err(_) => {
            return Err(ReadError::MatcherType {
                query,
                kind: m.r#type,
            });
        }
    };
    Matcher::new(kind, m.name.clone(), m.value.clone())
        .map_err(|source| ReadError::Matcher { query, source })
}

fn select(
    queryable: &dyn Queryable,
    i: usize,
    q: &PreparedQuery,
) -> Result<Vec<Box<dyn Series>>, ReadError> {
    let err = |source| ReadError::Select { query: i, source };
    let querier = queryable.querier(q.start, q.end).map_err(err)?;
    querier.select(true, &q.hints, &q.matchers).map_err(err)
}

/// Calls `f` for each sample of `s` in `[start, end]`.
fn for_each_sample(s: &dyn Series, start: i64, end: i64, mut f: impl FnMut(i64, f64)) {
    let mut it = s.iter();
    let mut cur = it.seek(start);
    while let Some((t, v)) = cur {
        if t > end {
            break;
        }
        f(t, v);
        cur = it.next();
    }
}

/// The labels of a series with the external labels it lacks added.
fn proto_labels(l: &Labels, external: &Labels) -> Vec<Label> {
    if external.is_empty() {
        return l.iter().map(|l| Label::new(l.name, l.value)).collect();
    }
    let mut b = LabelsBuilder::from(l);
    for e in external {
        if !l.contains(e.name) {
            b.set(e.name, e.value);
        }
    }
    b.iter().map(|l| Label::new(l.name, l.value)).collect()
}

/// Runs every query and collects all samples (the `SAMPLES` response).
fn read_samples(
    queryable: &dyn Queryable,
    queries: &[PreparedQuery],
    sample_limit: usize,
) -> Result<ReadResponse, ReadError> {
    let limit = if sample_limit == 0 {
        usize::MAX
    } else {
        sample_limit
    };
    let mut resp = ReadResponse::default();
    for (i, q) in queries.iter().enumerate() {
        let mut result = QueryResult::default();
        let mut total = 0usize;
        for s in select(queryable, i, q)? {
            let mut samples = Vec::new();
            for_each_sample(s.as_ref(), q.start, q.end, |timestamp, value| {
                samples.push(Sample { value, timestamp });
            });
            total += samples.len();
            if total > limit {
                return Err(ReadError::SampleLimit { query: i, limit });
            }
            if !samples.is_empty() {
                result.timeseries.push(TimeSeries {
                    labels: proto_labels(s.labels(), &q.external),
                    samples,
                    ..Default::default()
                });
            }
        }
        resp.results.push(result);
    }
    Ok(resp)
}

type Frame = Result<Bytes, std::io::Error>;

fn stream_chunks(
    state: ReadState,
    permit: OwnedSemaphorePermit,
    queries: Vec<PreparedQuery>,
) -> Response {
    // A few frames in flight: the producer waits for a slow reader instead of buffering.
    let (tx, rx) = mpsc::channel::<Frame>(4);
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut w = FrameWriter {
            tx: &tx,
            max: state.limits.max_bytes_in_frame,
        };
        if let Err(e) = write_chunked(state.queryable.as_ref(), &queries, &mut w) {
            let msg = error_chain(&e);
            tracing::warn!(error = %msg, "remote read stream aborted");
            // The status is already sent; an error item makes the server cut the response.
            let _ = tx.blocking_send(Err(std::io::Error::other(msg)));
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    (
        [(header::CONTENT_TYPE, STREAMED_CONTENT_TYPE)],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Where chunked frames go; `false` from `send` means the client went away.
trait FrameSink {
    fn max_bytes(&self) -> usize;
    /// Sends one whole frame, header included.
    fn send(&mut self, frame: Bytes) -> bool;
}

struct FrameWriter<'a> {
    tx: &'a mpsc::Sender<Frame>,
    max: usize,
}

impl FrameSink for FrameWriter<'_> {
    fn max_bytes(&self) -> usize {
        self.max
    }

    fn send(&mut self, frame: Bytes) -> bool {
        self.tx.blocking_send(Ok(frame)).is_ok()
    }
}

/// Room before a frame's message for its header: the length uvarint (at most 10 bytes) and
/// the CRC.
const FRAME_HEAD: usize = 14;

fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_uvarint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push(v as u8 | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

/// A length-delimited field: key, length, bytes.
fn put_len_field(b: &mut Vec<u8>, key: u8, data: &[u8]) {
    b.push(key);
    put_uvarint(b, data.len() as u64);
    b.extend_from_slice(data);
}

/// One chunk to send, borrowed from the storage or encoded here.
struct OutChunk<'a> {
    mint: i64,
    maxt: i64,
    data: std::borrow::Cow<'a, [u8]>,
}

impl OutChunk<'_> {
    /// Length of the `prometheus.Chunk` message.
    fn msg_len(&self) -> usize {
        let n = self.data.len();
        4 + uvarint_len(self.mint as u64)
            + uvarint_len(self.maxt as u64)
            + uvarint_len(ChunkEncoding::Xor as u64)
            + uvarint_len(n as u64)
            + n
    }

    /// Length of the chunk as a field of `ChunkedSeries`.
    fn field_len(&self) -> usize {
        let m = self.msg_len();
        1 + uvarint_len(m as u64) + m
    }
}

/// Appends the `Label` fields of `l` plus the external labels it lacks, in name order.
fn put_labels(b: &mut Vec<u8>, l: &Labels, external: &Labels) {
    let mut put = |name: &str, value: &str| {
        b.push(0x0a);
        put_uvarint(
            b,
            (2 + uvarint_len(name.len() as u64)
                + name.len()
                + uvarint_len(value.len() as u64)
                + value.len()) as u64,
        );
        put_len_field(b, 0x0a, name.as_bytes());
        put_len_field(b, 0x12, value.as_bytes());
    };
    let mut ext = external.iter().peekable();
    for x in l.iter() {
        while let Some(e) = ext.next_if(|e| e.name <= x.name) {
            if e.name != x.name {
                put(e.name, e.value);
            }
        }
        put(x.name, x.value);
    }
    for e in ext {
        put(e.name, e.value);
    }
}

/// A `ChunkedReadResponse` encoded by hand straight into its frame (no intermediate message,
/// label strings or chunk copies); the header goes into the room left before it.
struct FrameBuilder {
    buf: Vec<u8>,
}

impl FrameBuilder {
    fn new() -> Self {
        FrameBuilder {
            buf: vec![0; FRAME_HEAD],
        }
    }

    /// Bytes of the message so far.
    fn len(&self) -> usize {
        self.buf.len() - FRAME_HEAD
    }

    /// Appends one `ChunkedSeries` of already encoded `labels` and `chunks`.
    fn push_series(&mut self, labels: &[u8], chunks: &[OutChunk<'_>]) {
        let len = labels.len() + chunks.iter().map(OutChunk::field_len).sum::<usize>();
        let b = &mut self.buf;
        b.reserve(len + 10);
        b.push(0x0a);
        put_uvarint(b, len as u64);
        b.extend_from_slice(labels);
        for c in chunks {
            b.push(0x12);
            put_uvarint(b, c.msg_len() as u64);
            b.push(0x08);
            put_uvarint(b, c.mint as u64);
            b.push(0x10);
            put_uvarint(b, c.maxt as u64);
            b.push(0x18);
            put_uvarint(b, ChunkEncoding::Xor as u64);
            put_len_field(b, 0x22, &c.data);
        }
    }

    /// The whole frame (`uvarint(len) ‖ CRC32C(data) BE ‖ data`) with `query_index`; the
    /// builder starts over.
    fn finish(&mut self, query_index: i64) -> Bytes {
        if query_index != 0 {
            self.buf.push(0x10);
            put_uvarint(&mut self.buf, query_index as u64);
        }
        let mut buf = std::mem::replace(&mut self.buf, vec![0; FRAME_HEAD]);
        let len = (buf.len() - FRAME_HEAD) as u64;
        let crc = crc32c::crc32c(&buf[FRAME_HEAD..]);
        let mut head = Vec::with_capacity(FRAME_HEAD);
        put_uvarint(&mut head, len);
        head.extend_from_slice(&crc.to_be_bytes());
        let start = FRAME_HEAD - head.len();
        buf[start..FRAME_HEAD].copy_from_slice(&head);
        Bytes::from(buf).slice(start..)
    }
}

/// One frame of a streamed response: `uvarint(len) ‖ CRC32C(data) BE ‖ data`.
pub fn encode_frame(msg: &ChunkedReadResponse) -> Bytes {
    let data = msg.encode_to_vec();
    let mut b = BytesMut::with_capacity(data.len() + 14);
    let mut len = data.len() as u64;
    while len >= 0x80 {
        b.put_u8(len as u8 | 0x80);
        len >>= 7;
    }
    b.put_u8(len as u8);
    b.put_u32(crc32c::crc32c(&data));
    b.put_slice(&data);
    b.freeze()
}

/// Why a streamed frame could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame length varint overflows 64 bits")]
    LengthOverflow,
    #[error("frame of {len} bytes is over the limit of {limit}")]
    TooLarge { len: u64, limit: usize },
    #[error("frame checksum mismatch: header {header:#010x}, data {data:#010x}")]
    Checksum { header: u32, data: u32 },
    #[error("decode ChunkedReadResponse protobuf: {0}")]
    Protobuf(String),
}

/// Reads one frame from the start of `buf`: `Ok(None)` when `buf` does not hold a whole frame
/// yet, else the message and the bytes it used. Frames over `limit` bytes are errors.
pub fn decode_frame(
    buf: &[u8],
    limit: usize,
) -> Result<Option<(ChunkedReadResponse, usize)>, FrameError> {
    let Some((data, used)) = frame_bounds(buf, limit)? else {
        return Ok(None);
    };
    let msg =
        ChunkedReadResponse::decode(&buf[data]).map_err(|e| FrameError::Protobuf(e.to_string()))?;
    Ok(Some((msg, used)))
}

/// Finds the frame at the start of `buf` and checks its checksum: `Ok(None)` when `buf` does
/// not hold a whole frame yet, else where its message is in `buf` and the bytes it used.
pub fn frame_bounds(
    buf: &[u8],
    limit: usize,
) -> Result<Option<(std::ops::Range<usize>, usize)>, FrameError> {
    let mut len = 0u64;
    let mut n = 0;
    loop {
        let Some(&b) = buf.get(n) else {
            return Ok(None);
        };
        if n == 9 && b > 1 {
            return Err(FrameError::LengthOverflow);
        }
        len |= u64::from(b & 0x7f) << (7 * n);
        n += 1;
        if b < 0x80 {
            break;
        }
    }
    if len > limit as u64 {
        return Err(FrameError::TooLarge { len, limit });
    }
    let len = len as usize;
    let Some(body) = buf.get(n..n + 4 + len) else {
        return Ok(None);
    };
    let header = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let sum = crc32c::crc32c(&body[4..]);
    if sum != header {
        return Err(FrameError::Checksum { header, data: sum });
    }
    Ok(Some((n + 4..n + 4 + len, n + 4 + len)))
}

/// Runs every query and sends its series as XOR chunks, in frames of about
/// `sink.max_bytes()`. A series whose chunks do not fit one frame continues in the next one
/// under the same labels.
fn write_chunked(
    queryable: &dyn Queryable,
    queries: &[PreparedQuery],
    sink: &mut dyn FrameSink,
) -> Result<(), ReadError> {
    let max = sink.max_bytes();
    let mut frame = FrameBuilder::new();
    let mut labels = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        for s in select(queryable, i, q)? {
            labels.clear();
            put_labels(&mut labels, s.labels(), &q.external);
            let chunks = stored_chunks(s.as_ref(), q.start, q.end)
                .unwrap_or_else(|| series_chunks(s.as_ref(), q.start, q.end));
            let (mut from, mut part) = (0, 0);
            for (k, c) in chunks.iter().enumerate() {
                part += c.field_len();
                if frame.len() + labels.len() + part + 8 >= max {
                    frame.push_series(&labels, &chunks[from..=k]);
                    if !sink.send(frame.finish(i as i64)) {
                        return Ok(());
                    }
                    (from, part) = (k + 1, 0);
                }
            }
            if from < chunks.len() {
                frame.push_series(&labels, &chunks[from..]);
            }
        }
        if frame.len() > 0 && !sink.send(frame.finish(i as i64)) {
            return Ok(());
        }
    }
    Ok(())
}

/// The stored chunks of `s` that overlap `[start, end]`, passed on unchanged (compat: like
/// Prometheus, whole chunks are sent, so they may hold samples outside the range; clients trim).
/// `None` when the storage cannot hand out its chunks, or they are not in strict time order.
fn stored_chunks(s: &dyn Series, start: i64, end: i64) -> Option<Vec<OutChunk<'_>>> {
    let raw = s.raw_chunks()?;
    let mut out = Vec::with_capacity(raw.len());
    let mut prev_maxt = i64::MIN;
    for c in raw {
        let Some(mint) = crate::xor::first_timestamp(c.data) else {
            continue;
        };
        if (prev_maxt != i64::MIN && prev_maxt >= mint) || mint > c.maxt {
            return None;
        }
        prev_maxt = c.maxt;
        if c.maxt < start || mint > end {
            continue;
        }
        out.push(OutChunk {
            mint,
            maxt: c.maxt,
            data: std::borrow::Cow::Borrowed(c.data),
        });
    }
    Some(out)
}

/// The samples of `s` in `[start, end]` as XOR chunks of at most 120 samples.
fn series_chunks(s: &dyn Series, start: i64, end: i64) -> Vec<OutChunk<'static>> {
    let mut out = Vec::new();
    let mut enc = XorEncoder::new();
    let (mut min_t, mut max_t) = (0, 0);
    let finish = |enc: XorEncoder, min_t, max_t, out: &mut Vec<OutChunk<'static>>| {
        out.push(OutChunk {
            mint: min_t,
            maxt: max_t,
            data: std::borrow::Cow::Owned(enc.finish()),
        })
    };
    for_each_sample(s, start, end, |t, v| {
        if enc.num_samples() == 0 {
            min_t = t;
        }
        enc.append(t, v);
        max_t = t;
        if enc.num_samples() == SAMPLES_PER_CHUNK {
            finish(std::mem::take(&mut enc), min_t, max_t, &mut out);
        }
    });
    if enc.num_samples() > 0 {
        finish(enc, min_t, max_t, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use storage::{Querier, VecQueryable, VecSeries};
    use tower::ServiceExt;

    use super::*;
    use crate::codec::snappy_decode;
    use crate::proto::{ReadHints, ReadRequest};

    fn store() -> Arc<VecQueryable> {
        let s = |job: &str, n: i64| VecSeries {
            labels: Labels::from_pairs([("__name__", "up"), ("job", job)]),
            samples: (0..n).map(|i| (i * 1000, i as f64)).collect(),
        };
        Arc::new(VecQueryable(vec![s("a", 300), s("b", 10), s("c1", 5)]))
    }

    fn matcher(t: MatcherType, n: &str, v: &str) -> LabelMatcher {
        LabelMatcher {
            r#type: t as i32,
            name: n.into(),
            value: v.into(),
        }
    }

    fn query(start: i64, end: i64, m: Vec<LabelMatcher>) -> Query {
        Query {
            start_timestamp_ms: start,
            end_timestamp_ms: end,
            matchers: m,
            hints: Some(ReadHints::default()),
        }
    }

    async fn call(limits: ReadLimits, req: &ReadRequest) -> (StatusCode, String, Bytes) {
        let r = Request::post("/api/v1/read")
            .body(Body::from(encode_snappy_message(req)))
            .unwrap();
        let resp = read_router(ReadState::new(store(), limits))
            .oneshot(r)
            .await
            .unwrap();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let status = resp.status();
        let b = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, ct, b)
    }

    fn up_re(v: &str) -> Vec<LabelMatcher> {
        vec![
            matcher(MatcherType::Eq, "__name__", "up"),
            matcher(MatcherType::Re, "job", v),
        ]
    }

    #[tokio::test]
    async fn samples_response() {
        let req = ReadRequest {
            queries: vec![query(2000, 4000, up_re("a|b")), query(0, 0, up_re("c\\d"))],
            accepted_response_types: vec![],
        };
        let (status, ct, body) = call(ReadLimits::default(), &req).await;
        assert_eq!(
            (status, ct.as_str()),
            (StatusCode::OK, "application/x-protobuf")
        );
        let resp = ReadResponse::decode(snappy_decode(&body, 1 << 20).unwrap().as_slice()).unwrap();
        assert_eq!(resp.results.len(), 2);
        let r0 = &resp.results[0].timeseries;
        assert_eq!(r0.len(), 2);
        assert_eq!(r0[1].labels[1], Label::new("job", "b"));
        let ts: Vec<i64> = r0[0].samples.iter().map(|s| s.timestamp).collect();
        assert_eq!(ts, [2000, 3000, 4000], "bounds are inclusive");
        assert_eq!(resp.results[1].timeseries[0].samples.len(), 1);
    }

    #[tokio::test]
    async fn errors() {
        #[track_caller]
        fn check(got: (StatusCode, String, Bytes), status: StatusCode, msg: &str) {
            let body = String::from_utf8_lossy(&got.2);
            assert_eq!(got.0, status, "{body}");
            assert!(body.contains(msg), "{body:?} does not contain {msg:?}");
        }
        let limits = ReadLimits {
            sample_limit: 100,
            ..Default::default()
        };
        let one = |q: Query| ReadRequest {
            queries: vec![q],
            accepted_response_types: vec![ResponseType::Samples as i32],
        };
        let bad = StatusCode::BAD_REQUEST;
        check(
            call(limits, &one(query(0, 1_000_000, up_re("a")))).await,
            bad,
            "exceeded sample limit (100)",
        );
        check(
            call(limits, &one(query(0, 50_000, up_re("a")))).await,
            StatusCode::OK,
            "",
        );
        check(
            call(limits, &one(query(0, 1, up_re("(")))).await,
            bad,
            "query 0: build label matcher",
        );
        let weird = vec![LabelMatcher {
            r#type: 9,
            ..Default::default()
        }];
        check(
            call(limits, &one(query(0, 1, weird))).await,
            bad,
            "unknown label matcher type 9",
        );
        let r = Request::post("/api/v1/read")
            .body(Body::from("nonsense"))
            .unwrap();
        let resp = read_router(ReadState::new(store(), limits))
            .oneshot(r)
            .await
            .unwrap();
        assert_eq!(resp.status(), bad);
    }

    #[tokio::test]
    async fn external_labels() {
        let state = ReadState::new(store(), ReadLimits::default())
            .with_external_labels(Labels::from_pairs([("replica", "x"), ("job", "ext")]));
        let run = |m: Vec<LabelMatcher>| {
            let state = state.clone();
            async move {
                let req = ReadRequest {
                    queries: vec![query(0, 0, m)],
                    accepted_response_types: vec![],
                };
                let r = Request::post("/api/v1/read")
                    .body(Body::from(encode_snappy_message(&req)))
                    .unwrap();
                let resp = read_router(state).oneshot(r).await.unwrap();
                let b = axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap();
                let resp = ReadResponse::decode(snappy_decode(&b, 1 << 20).unwrap().as_slice());
                resp.unwrap().results.remove(0).timeseries
            }
        };
        let mut m = up_re("a");
        m.push(matcher(MatcherType::Eq, "replica", "x"));
        let got = run(m).await;
        assert_eq!(got.len(), 1);
        let names: Vec<(&str, &str)> = got[0]
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(names, [("__name__", "up"), ("job", "a"), ("replica", "x")]);
        let mut m = up_re("a");
        m.push(matcher(MatcherType::Eq, "replica", "y"));
        assert!(run(m).await.is_empty());
    }

    /// The hand-written frames decode with prost: labels merged with the external ones in
    /// name order (the series' own value wins), chunk fields, query index, lengths.
    #[test]
    fn hand_encoded_frames_decode_with_prost() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut b = Vec::new();
            put_uvarint(&mut b, v);
            assert_eq!(b.len(), uvarint_len(v), "{v}");
        }
        let l = Labels::from_pairs([("__name__", "x"), ("job", "j"), ("zone", "")]);
        let ext = Labels::from_pairs([("a", "1"), ("job", "ext"), ("replica", "r")]);
        let mut labels = Vec::new();
        put_labels(&mut labels, &l, &ext);
        let data = vec![7u8; 300];
        let chunks = [
            OutChunk {
                mint: -1000,
                maxt: 5,
                data: std::borrow::Cow::Borrowed(&data[..]),
            },
            OutChunk {
                mint: 6,
                maxt: 9,
                data: std::borrow::Cow::Owned(vec![1, 2]),
            },
        ];
        let mut fb = FrameBuilder::new();
        fb.push_series(&labels, &chunks);
        fb.push_series(&labels, &chunks[1..]);
        let f = fb.finish(3);
        let (m, n) = decode_frame(&f, 1 << 20).unwrap().unwrap();
        assert_eq!(n, f.len());
        assert_eq!(m.query_index, 3);
        assert_eq!(m.chunked_series.len(), 2);
        let names: Vec<(&str, &str)> = m.chunked_series[0]
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("__name__", "x"),
                ("a", "1"),
                ("job", "j"),
                ("replica", "r"),
                ("zone", "")
            ]
        );
        let c = &m.chunked_series[0].chunks;
        assert_eq!((c[0].min_time_ms, c[0].max_time_ms), (-1000, 5));
        assert_eq!(c[0].data, data);
        assert_eq!(c[0].r#type, ChunkEncoding::Xor as i32);
        assert_eq!(c[1].data, vec![1, 2]);
        assert_eq!(m.chunked_series[1].chunks.len(), 1);
        // The builder starts over: an empty frame with index 0 is just a header.
        let (m, _) = decode_frame(&fb.finish(0), 1 << 20).unwrap().unwrap();
        assert!(m.chunked_series.is_empty());
    }

    fn frames(mut b: &[u8]) -> Vec<ChunkedReadResponse> {
        let mut out = vec![];
        while !b.is_empty() {
            let (m, n) = decode_frame(b, 1 << 20).unwrap().expect("whole frame");
            out.push(m);
            b = &b[n..];
        }
        out
    }

    #[tokio::test]
    async fn streamed_chunks() {
        let req = ReadRequest {
            queries: vec![
                query(1000, 299_000, up_re("a")),
                query(0, 9000, up_re("b|c1")),
            ],
            accepted_response_types: vec![
                ResponseType::StreamedXorChunks as i32,
                ResponseType::Samples as i32,
            ],
        };
        let limits = ReadLimits {
            max_bytes_in_frame: 100,
            ..Default::default()
        };
        let (status, ct, body) = call(limits, &req).await;
        assert_eq!(
            (status, ct.as_str()),
            (StatusCode::OK, STREAMED_CONTENT_TYPE)
        );
        let fr = frames(&body);
        assert!(fr.len() > 2, "small frames: {}", fr.len());
        let mut q0: Vec<(i64, f64)> = vec![];
        let mut q1_series = vec![];
        for f in &fr {
            for cs in &f.chunked_series {
                for c in &cs.chunks {
                    assert_eq!(c.r#type, ChunkEncoding::Xor as i32);
                    let s = crate::xor::decode(&c.data).unwrap();
                    assert!(s.len() <= SAMPLES_PER_CHUNK);
                    assert_eq!((s[0].0, s[s.len() - 1].0), (c.min_time_ms, c.max_time_ms));
                    if f.query_index == 0 {
                        q0.extend(s);
                    }
                }
                if f.query_index == 1 {
                    q1_series.push(cs.labels[1].value.clone());
                }
            }
        }
        let want: Vec<(i64, f64)> = (1..300).map(|i| (i * 1000, i as f64)).collect();
        assert_eq!(q0, want);
        q1_series.dedup();
        assert_eq!(q1_series, ["b", "c1"]);
    }

    /// A storage that hands out its chunks: two chunks of 100 samples each.
    struct Chunked(Vec<Vec<u8>>, Vec<(i64, f64)>);

    impl Series for Chunked {
        fn labels(&self) -> &Labels {
            static L: std::sync::OnceLock<Labels> = std::sync::OnceLock::new();
            L.get_or_init(|| Labels::from_pairs([("__name__", "up"), ("job", "raw")]))
        }
        fn iter(&self) -> Box<dyn storage::SampleIterator + '_> {
            Box::new(storage::SliceIter::new(&self.1))
        }
        fn raw_chunks(&self) -> Option<Vec<storage::RawChunk<'_>>> {
            Some(
                self.0
                    .iter()
                    .zip([99_000, 199_000])
                    .map(|(d, maxt)| storage::RawChunk { maxt, data: d })
                    .collect(),
            )
        }
    }

    struct ChunkedStore;

    impl Queryable for ChunkedStore {
        fn querier(&self, _: i64, _: i64) -> storage::Result<Box<dyn Querier>> {
            Ok(Box::new(ChunkedStore))
        }
    }

    impl Querier for ChunkedStore {
        fn select(
            &self,
            _: bool,
            _: &SelectHints,
            _: &[Matcher],
        ) -> storage::Result<Vec<Box<dyn Series>>> {
            let samples: Vec<(i64, f64)> = (0..200).map(|i| (i * 1000, i as f64)).collect();
            let chunks = samples
                .chunks(100)
                .map(|c| {
                    let mut e = XorEncoder::new();
                    for &(t, v) in c {
                        e.append(t, v);
                    }
                    e.finish()
                })
                .collect();
            Ok(vec![Box::new(Chunked(chunks, samples))])
        }
        fn label_values(&self, _: &str, _: &[Matcher]) -> storage::Result<Vec<String>> {
            Ok(vec![])
        }
        fn label_names(&self, _: &[Matcher]) -> storage::Result<Vec<String>> {
            Ok(vec![])
        }
    }

    /// Stored chunks go out unchanged, whole, and only those overlapping the range.
    #[tokio::test]
    async fn stored_chunks_passed_through() {
        let req = ReadRequest {
            queries: vec![query(150_000, 160_000, up_re("raw"))],
            accepted_response_types: vec![ResponseType::StreamedXorChunks as i32],
        };
        let r = Request::post("/api/v1/read")
            .body(Body::from(encode_snappy_message(&req)))
            .unwrap();
        let resp = read_router(ReadState::new(
            Arc::new(ChunkedStore),
            ReadLimits::default(),
        ))
        .oneshot(r)
        .await
        .unwrap();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let fr = frames(&body);
        let chunks: Vec<&crate::proto::Chunk> = fr
            .iter()
            .flat_map(|f| &f.chunked_series)
            .flat_map(|cs| &cs.chunks)
            .collect();
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            (chunks[0].min_time_ms, chunks[0].max_time_ms),
            (100_000, 199_000)
        );
        let s = crate::xor::decode(&chunks[0].data).unwrap();
        assert_eq!(s.len(), 100, "the whole chunk, not re-encoded to the range");
    }

    #[test]
    fn bad_frames() {
        let m = ChunkedReadResponse {
            chunked_series: vec![],
            query_index: 3,
        };
        let f = encode_frame(&m);
        assert_eq!(decode_frame(&f, 100).unwrap().unwrap(), (m, f.len()));
        assert_eq!(decode_frame(&f[..f.len() - 1], 100), Ok(None));
        let mut bad = f.to_vec();
        bad[2] ^= 1;
        assert!(matches!(
            decode_frame(&bad, 100),
            Err(FrameError::Checksum { .. })
        ));
        let huge = [0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0];
        assert!(matches!(
            decode_frame(&huge, 100),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(
            decode_frame(&[0xff; 11], 100),
            Err(FrameError::LengthOverflow)
        );
    }
}
