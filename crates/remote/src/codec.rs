//! Snappy block-format framing of remote storage bodies, with decode limits checked before any
//! allocation, and the protobuf decode of the request messages.
//!
//! Remote write and remote read use snappy's *block* format (`snap::raw`), not the framed
//! stream format: the body is a uvarint decoded length followed by snappy elements.

use prost::Message;

use crate::proto::{ReadRequest, WriteRequest};

/// Shared with the other HTTP roles; `remote::error_chain` for this crate's users.
pub use web::error_chain;

/// The most bytes one snappy element can expand to per byte it occupies: a 3-byte copy
/// element yields at most 64 bytes (21.3×); literals and 2-byte copies expand less. A header
/// claiming more than this ratio cannot be a valid block, whatever the limits are.
const MAX_SNAPPY_EXPANSION: usize = 22;

/// Why a remote storage body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("decode snappy block")]
    Snappy(#[source] snap::Error),
    #[error(
        "snappy header claims {claimed} decoded bytes, impossible for a {compressed}-byte body"
    )]
    ImpossibleLength { claimed: usize, compressed: usize },
    #[error("decoded body would be {claimed} bytes, over the limit of {limit}")]
    TooLarge { claimed: usize, limit: usize },
    #[error("decode {message} protobuf: {reason}")]
    Malformed {
        message: &'static str,
        reason: &'static str,
    },
    #[error("decode {message} protobuf")]
    Protobuf {
        message: &'static str,
        #[source]
        source: prost::DecodeError,
    },
}

impl DecodeError {
    /// True when the body was well-formed but too big (HTTP 413), false for a bad body (400).
    pub fn is_too_large(&self) -> bool {
        matches!(self, DecodeError::TooLarge { .. })
    }
}

/// Decodes one snappy block, refusing before allocating when the decoded length in its header
/// is over `limit` or impossible for the body's size.
pub fn snappy_decode(body: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let claimed = snap::raw::decompress_len(body).map_err(DecodeError::Snappy)?;
    if claimed > body.len().saturating_mul(MAX_SNAPPY_EXPANSION) {
        return Err(DecodeError::ImpossibleLength {
            claimed,
            compressed: body.len(),
        });
    }
    if claimed > limit {
        return Err(DecodeError::TooLarge { claimed, limit });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(DecodeError::Snappy)
}

/// Compresses `data` as one snappy block.
pub fn snappy_encode(data: &[u8]) -> Vec<u8> {
    // Only fails for inputs over ~4 GiB, which no message of ours reaches.
    snap::raw::Encoder::new()
        .compress_vec(data)
        .expect("BUG: snappy input over the block format's 4 GiB limit")
}

/// Decodes a snappy-compressed [`WriteRequest`] body.
pub fn decode_write_request(body: &[u8], limit: usize) -> Result<WriteRequest, DecodeError> {
    let raw = snappy_decode(body, limit)?;
    WriteRequest::decode(raw.as_slice()).map_err(|source| DecodeError::Protobuf {
        message: "WriteRequest",
        source,
    })
}

/// Decodes a snappy-compressed [`ReadRequest`] body.
pub fn decode_read_request(body: &[u8], limit: usize) -> Result<ReadRequest, DecodeError> {
    let raw = snappy_decode(body, limit)?;
    ReadRequest::decode(raw.as_slice()).map_err(|source| DecodeError::Protobuf {
        message: "ReadRequest",
        source,
    })
}

/// Encodes a message as a snappy-compressed body, as senders and the SAMPLES response do.
pub fn encode_snappy_message(m: &impl Message) -> Vec<u8> {
    snappy_encode(&m.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::proto::*;

    const LIMIT: usize = 1 << 20;

    fn arb_label() -> impl Strategy<Value = Label> {
        ("[a-z_]{0,8}", "\\PC{0,8}").prop_map(|(n, v)| Label::new(n, v))
    }

    fn arb_series() -> impl Strategy<Value = TimeSeries> {
        (
            prop::collection::vec(arb_label(), 0..5),
            prop::collection::vec(
                (any::<f64>(), any::<i64>())
                    .prop_map(|(value, timestamp)| Sample { value, timestamp }),
                0..8,
            ),
        )
            .prop_map(|(labels, samples)| TimeSeries {
                labels,
                samples,
                ..Default::default()
            })
    }

    fn arb_matcher() -> impl Strategy<Value = LabelMatcher> {
        (0..4i32, "[a-z_]{0,8}", "\\PC{0,8}").prop_map(|(t, name, value)| LabelMatcher {
            r#type: t,
            name,
            value,
        })
    }

    fn arb_query() -> impl Strategy<Value = Query> {
        (
            any::<i64>(),
            any::<i64>(),
            prop::collection::vec(arb_matcher(), 0..4),
            any::<bool>(),
        )
            .prop_map(|(s, e, matchers, hints)| Query {
                start_timestamp_ms: s,
                end_timestamp_ms: e,
                matchers,
                hints: hints.then(|| ReadHints {
                    step_ms: 15_000,
                    func: "rate".into(),
                    start_ms: s,
                    end_ms: e,
                    grouping: vec!["job".into()],
                    by: true,
                    range_ms: 60_000,
                }),
            })
    }

    /// Bitwise float comparison so NaNs (staleness markers included) round-trip exactly; but
    /// -0.0 comes back as 0.0, because proto3 omits a field equal to its default (Go does too).
    fn same_series(a: &[TimeSeries], b: &[TimeSeries]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.labels == y.labels
                    && x.samples.len() == y.samples.len()
                    && x.samples.iter().zip(&y.samples).all(|(p, q)| {
                        p.timestamp == q.timestamp
                            && (p.value.to_bits() == q.value.to_bits() || p.value == q.value)
                    })
            })
    }

    proptest! {
        #[test]
        fn write_request_round_trips(ts in prop::collection::vec(arb_series(), 0..6)) {
            let req = WriteRequest {
                timeseries: ts,
                metadata: vec![MetricMetadata {
                    r#type: MetricType::Counter as i32,
                    metric_family_name: "x_total".into(),
                    help: "help".into(),
                    unit: String::new(),
                }],
            };
            let got = decode_write_request(&encode_snappy_message(&req), LIMIT).unwrap();
            prop_assert!(same_series(&got.timeseries, &req.timeseries));
            prop_assert_eq!(&got.metadata, &req.metadata);
        }

        #[test]
        fn read_request_round_trips(
            queries in prop::collection::vec(arb_query(), 0..4),
            types in prop::collection::vec(0..2i32, 0..3),
        ) {
            let req = ReadRequest { queries, accepted_response_types: types };
            let got = decode_read_request(&encode_snappy_message(&req), LIMIT).unwrap();
            prop_assert_eq!(got, req);
        }

        #[test]
        fn chunked_read_response_round_trips(
            labels in prop::collection::vec(arb_label(), 0..4),
            data in prop::collection::vec(any::<u8>(), 0..64),
            idx in any::<i64>(),
        ) {
            let m = ChunkedReadResponse {
                chunked_series: vec![ChunkedSeries {
                    labels,
                    chunks: vec![Chunk {
                        min_time_ms: 1,
                        max_time_ms: 2,
                        r#type: ChunkEncoding::Xor as i32,
                        data,
                    }],
                }],
                query_index: idx,
            };
            prop_assert_eq!(ChunkedReadResponse::decode(m.encode_to_vec().as_slice()).unwrap(), m);
        }

        #[test]
        fn garbage_never_panics(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_write_request(&body, LIMIT);
            let _ = decode_read_request(&body, LIMIT);
        }

        #[test]
        fn truncated_bodies_are_errors(ts in prop::collection::vec(arb_series(), 1..4), cut in 1usize..64) {
            let req = WriteRequest { timeseries: ts, metadata: vec![] };
            let body = encode_snappy_message(&req);
            let cut = cut.min(body.len());
            prop_assert!(decode_write_request(&body[..body.len() - cut], LIMIT).is_err());
        }
    }

    #[test]
    fn known_bad_bodies() {
        #[track_caller]
        fn check(body: &[u8], want: &str) {
            let e = decode_write_request(body, LIMIT).unwrap_err();
            let msg = error_chain(&e);
            assert!(msg.contains(want), "{msg:?} does not contain {want:?}");
        }
        check(b"", "decode snappy block");
        check(&[0xff; 11], "decode snappy block");
        // Header says 4 GiB - 1 for a 5-byte body.
        check(
            &[0xff, 0xff, 0xff, 0xff, 0x0f],
            "impossible for a 5-byte body",
        );
        // A valid block whose content is not a protobuf message.
        check(
            &snappy_encode(b"\xff\xff\xff"),
            "decode WriteRequest protobuf",
        );
        // A label name that is not UTF-8.
        let mut bad = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label::new("ab", "x")],
                ..Default::default()
            }],
            metadata: vec![],
        }
        .encode_to_vec();
        let at = bad.windows(2).position(|w| w == b"ab").unwrap();
        bad[at] = 0xc3;
        check(&snappy_encode(&bad), "decode WriteRequest protobuf");
    }

    #[test]
    fn over_limit_is_too_large_before_decoding() {
        let body = snappy_encode(&vec![0u8; 10_000]);
        let e = snappy_decode(&body, 1000).unwrap_err();
        assert!(e.is_too_large(), "{e}");
        assert_eq!(snappy_decode(&body, 10_000).unwrap().len(), 10_000);
    }
}
