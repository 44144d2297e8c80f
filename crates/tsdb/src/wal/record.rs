//! WAL record payloads, as Prometheus's `tsdb/record` encodes them (see `docs/format/wal.md`).
//!
//! Every record starts with a type byte. Fixed-width integers are big endian; "varint" is Go's
//! zig-zag `binary.PutVarint`, "uvarint" its `binary.PutUvarint`.

use model::Labels;

use crate::encoding::{Decoder, put_uvarint, put_varint};

/// Record type bytes (Prometheus's `record.Type`).
pub const SERIES: u8 = 1;
pub const SAMPLES: u8 = 2;
pub const TOMBSTONES: u8 = 3;

/// A series definition: the ref samples use, and its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct RefSeries {
    pub series_ref: u64,
    pub labels: Labels,
}

/// One float sample of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefSample {
    pub series_ref: u64,
    pub t: i64,
    pub v: f64,
}

/// A deleted interval `[mint, maxt]` of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tombstone {
    pub series_ref: u64,
    pub mint: i64,
    pub maxt: i64,
}

/// A record that does not decode; the caller adds where it was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} record: {reason}")]
pub struct RecordError {
    pub kind: &'static str,
    pub reason: &'static str,
}

fn err(kind: &'static str, reason: &'static str) -> RecordError {
    RecordError { kind, reason }
}

/// The type byte of a record, 0 for an empty one.
pub fn record_type(rec: &[u8]) -> u8 {
    rec.first().copied().unwrap_or(0)
}

/// Appends a series record. Labels are written in their (sorted) order.
pub fn encode_series<'a>(series: impl IntoIterator<Item = (u64, &'a Labels)>, out: &mut Vec<u8>) {
    out.push(SERIES);
    for (r, labels) in series {
        out.extend_from_slice(&r.to_be_bytes());
        put_uvarint(out, labels.len() as u64);
        for l in labels.iter() {
            put_uvarint(out, l.name.len() as u64);
            out.extend_from_slice(l.name.as_bytes());
            put_uvarint(out, l.value.len() as u64);
            out.extend_from_slice(l.value.as_bytes());
        }
    }
}

/// Appends a samples record: the first sample's ref and time in full, then every sample (the
/// first included) as varint deltas against them plus the raw value bits.
pub fn encode_samples(samples: impl IntoIterator<Item = RefSample>, out: &mut Vec<u8>) {
    out.push(SAMPLES);
    let mut base: Option<(u64, i64)> = None;
    for s in samples {
        let (bref, bt) = *base.get_or_insert_with(|| {
            out.extend_from_slice(&s.series_ref.to_be_bytes());
            out.extend_from_slice(&s.t.to_be_bytes());
            (s.series_ref, s.t)
        });
        put_varint(out, (s.series_ref as i64).wrapping_sub(bref as i64));
        put_varint(out, s.t.wrapping_sub(bt));
        out.extend_from_slice(&s.v.to_bits().to_be_bytes());
    }
}

/// Appends a tombstones record, one entry per interval.
pub fn encode_tombstones(tombstones: &[Tombstone], out: &mut Vec<u8>) {
    out.push(TOMBSTONES);
    for ts in tombstones {
        out.extend_from_slice(&ts.series_ref.to_be_bytes());
        put_varint(out, ts.mint);
        put_varint(out, ts.maxt);
    }
}

fn body<'a>(rec: &'a [u8], want: u8, kind: &'static str) -> Result<Decoder<'a>, RecordError> {
    match rec.split_first() {
        Some((&t, rest)) if t == want => Ok(Decoder::new(rest)),
        _ => Err(err(kind, "wrong record type")),
    }
}

/// Decodes a series record, appending to `out`.
pub fn decode_series(rec: &[u8], out: &mut Vec<RefSeries>) -> Result<(), RecordError> {
    const K: &str = "series";
    let mut d = body(rec, SERIES, K)?;
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    while !d.is_empty() {
        let series_ref = d.be_u64().ok_or_else(|| err(K, "truncated ref"))?;
        let n = d.uvarint().ok_or_else(|| err(K, "truncated label count"))?;
        pairs.clear();
        for _ in 0..n {
            let name = d
                .uvarint_str()
                .ok_or_else(|| err(K, "truncated or non-UTF-8 label name"))?;
            let value = d
                .uvarint_str()
                .ok_or_else(|| err(K, "truncated or non-UTF-8 label value"))?;
            pairs.push((name, value));
        }
        out.push(RefSeries {
            series_ref,
            labels: Labels::from_pairs(pairs.iter().copied()),
        });
    }
    Ok(())
}

/// Decodes a samples record, appending to `out`.
pub fn decode_samples(rec: &[u8], out: &mut Vec<RefSample>) -> Result<(), RecordError> {
    const K: &str = "samples";
    let mut d = body(rec, SAMPLES, K)?;
    if d.is_empty() {
        return Ok(());
    }
    let base_ref = d.be_u64().ok_or_else(|| err(K, "truncated base ref"))?;
    let base_t = d.be_u64().ok_or_else(|| err(K, "truncated base time"))? as i64;
    while !d.is_empty() {
        let dref = d.varint().ok_or_else(|| err(K, "truncated ref delta"))?;
        let dt = d.varint().ok_or_else(|| err(K, "truncated time delta"))?;
        let v = d.be_u64().ok_or_else(|| err(K, "truncated value"))?;
        out.push(RefSample {
            series_ref: (base_ref as i64).wrapping_add(dref) as u64,
            t: base_t.wrapping_add(dt),
            v: f64::from_bits(v),
        });
    }
    Ok(())
}

/// Decodes a tombstones record, appending to `out`.
pub fn decode_tombstones(rec: &[u8], out: &mut Vec<Tombstone>) -> Result<(), RecordError> {
    const K: &str = "tombstones";
    let mut d = body(rec, TOMBSTONES, K)?;
    while !d.is_empty() {
        let series_ref = d.be_u64().ok_or_else(|| err(K, "truncated ref"))?;
        let mint = d.varint().ok_or_else(|| err(K, "truncated mint"))?;
        let maxt = d.varint().ok_or_else(|| err(K, "truncated maxt"))?;
        out.push(Tombstone {
            series_ref,
            mint,
            maxt,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::labels;
    use proptest::prelude::*;

    #[test]
    fn samples_layout() {
        let mut b = Vec::new();
        encode_samples(
            [
                RefSample {
                    series_ref: 10,
                    t: 1000,
                    v: 1.0,
                },
                RefSample {
                    series_ref: 9,
                    t: 1015,
                    v: 2.0,
                },
            ],
            &mut b,
        );
        let mut want = vec![SAMPLES];
        want.extend_from_slice(&10u64.to_be_bytes());
        want.extend_from_slice(&1000i64.to_be_bytes());
        want.extend_from_slice(&[0, 0]); // first sample: deltas 0, 0
        want.extend_from_slice(&1f64.to_bits().to_be_bytes());
        want.extend_from_slice(&[0x01, 0x1e]); // ref -1 and time +15, zig-zag
        want.extend_from_slice(&2f64.to_bits().to_be_bytes());
        assert_eq!(b, want);
    }

    #[test]
    fn series_layout() {
        let mut b = Vec::new();
        let l = labels! {"a" => "b"};
        encode_series([(1, &l)], &mut b);
        assert_eq!(b, [SERIES, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, b'a', 1, b'b']);
    }

    #[test]
    fn truncated_records_error() {
        let mut b = Vec::new();
        let l = labels! {"__name__" => "up", "job" => "x"};
        encode_series([(7, &l)], &mut b);
        for cut in 2..b.len() {
            assert!(
                decode_series(&b[..cut], &mut Vec::new()).is_err(),
                "cut {cut}"
            );
        }
        b.clear();
        encode_samples(
            [RefSample {
                series_ref: 1,
                t: 2,
                v: 3.0,
            }],
            &mut b,
        );
        // 17 bytes (type + base ref + base time) is a valid record without samples.
        for cut in (2..b.len()).filter(|&c| c != 17) {
            assert!(
                decode_samples(&b[..cut], &mut Vec::new()).is_err(),
                "cut {cut}"
            );
        }
        assert!(decode_samples(&[SERIES], &mut Vec::new()).is_err());
    }

    proptest! {
        #[test]
        fn round_trip(
            samples in prop::collection::vec((1u64..1 << 40, any::<i64>(), any::<u64>()), 0..50),
            series in prop::collection::vec((1u64..u64::MAX, prop::collection::btree_map("[a-z_]{1,8}", ".{0,12}", 0..5)), 0..10),
            stones in prop::collection::vec((any::<u64>(), any::<i64>(), any::<i64>()), 0..10),
        ) {
            let samples: Vec<_> = samples.into_iter().map(|(r, t, v)| RefSample { series_ref: r, t, v: f64::from_bits(v) }).collect();
            let mut b = Vec::new();
            encode_samples(samples.iter().copied(), &mut b);
            let mut got = Vec::new();
            decode_samples(&b, &mut got).unwrap();
            prop_assert_eq!(got.len(), samples.len());
            for (g, w) in got.iter().zip(&samples) {
                prop_assert_eq!((g.series_ref, g.t, g.v.to_bits()), (w.series_ref, w.t, w.v.to_bits()));
            }

            let series: Vec<_> = series.into_iter().map(|(r, m)| RefSeries { series_ref: r, labels: Labels::from_pairs(m) }).collect();
            b.clear();
            encode_series(series.iter().map(|s| (s.series_ref, &s.labels)), &mut b);
            let mut got = Vec::new();
            decode_series(&b, &mut got).unwrap();
            prop_assert_eq!(got, series);

            let stones: Vec<_> = stones.into_iter().map(|(r, a, z)| Tombstone { series_ref: r, mint: a, maxt: z }).collect();
            b.clear();
            encode_tombstones(&stones, &mut b);
            let mut got = Vec::new();
            decode_tombstones(&b, &mut got).unwrap();
            prop_assert_eq!(got, stones);
        }

        #[test]
        fn garbage_never_panics(b in prop::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode_series(&b, &mut Vec::new());
            let _ = decode_samples(&b, &mut Vec::new());
            let _ = decode_tombstones(&b, &mut Vec::new());
        }
    }
}
