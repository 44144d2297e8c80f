//! XOR chunks against an independent implementation: rusty-chunkenc parses Prometheus chunks
//! and also encodes them, so agreement in both directions cross-checks our bit layout.

use proptest::prelude::*;
use rusty_chunkenc::XORSample;
use rusty_chunkenc::xor::{XORChunk, read_xor_chunk_data};
use tsdb::chunkenc::{XorAppender, XorIterator, decode_xor};

fn ours(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut a = XorAppender::new();
    for &(t, v) in samples {
        assert!(a.append(t, v));
    }
    a.into_bytes()
}

fn oracle_decode(bytes: &[u8]) -> Vec<(i64, u64)> {
    let (_, chunk) = read_xor_chunk_data(bytes).expect("rusty-chunkenc parses our chunk");
    chunk
        .samples()
        .iter()
        .map(|s| (s.timestamp, s.value.to_bits()))
        .collect()
}

fn oracle_encode(samples: &[(i64, f64)]) -> Vec<u8> {
    let chunk = XORChunk::new(
        samples
            .iter()
            .map(|&(t, v)| XORSample {
                timestamp: t,
                value: v,
            })
            .collect(),
    );
    let mut out = Vec::new();
    chunk.write(&mut out).expect("rusty-chunkenc encodes");
    out
}

fn bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
    samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
}

#[test]
fn oracle_reads_a_scrape_like_series() {
    let samples: Vec<(i64, f64)> = (0..120)
        .map(|i| {
            (
                1_700_000_000_000 + i * 15_000 + (i % 3),
                (i * i) as f64 / 3.0,
            )
        })
        .collect();
    let b = ours(&samples);
    assert_eq!(oracle_decode(&b), bits(&samples));
    assert_eq!(
        b,
        oracle_encode(&samples),
        "both encoders produce the same bytes"
    );
}

#[test]
fn oracle_bytes_decode_with_ours() {
    let samples = [
        (7_200_000, 12000.0),
        (7_201_000, 12001.0),
        (7_202_000, 12001.0),
        (7_203_500, -1.5),
    ];
    let theirs = oracle_encode(&samples);
    let got: Vec<_> = XorIterator::new(&theirs)
        .unwrap()
        .map(|(t, v)| (t, v.to_bits()))
        .collect();
    assert_eq!(got, bits(&samples));
}

fn series() -> impl Strategy<Value = Vec<(i64, f64)>> {
    (
        -(1i64 << 45)..(1i64 << 45),
        prop::collection::vec(
            prop_oneof![Just(15_000i64), 1i64..70_000, 1i64..(1 << 33)],
            0..150,
        ),
        prop::collection::vec(
            prop_oneof![
                (0i64..1_000_000).prop_map(|i| i as f64 / 8.0),
                any::<f64>().prop_filter("finite", |v| v.is_finite())
            ],
            151,
        ),
    )
        .prop_map(|(start, gaps, vals)| {
            let mut t = start;
            let mut out = vec![(t, vals[0])];
            for (i, g) in gaps.into_iter().enumerate() {
                t += g;
                out.push((t, vals[i + 1]));
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn oracle_agrees(samples in series()) {
        let b = ours(&samples);
        prop_assert_eq!(oracle_decode(&b), bits(&samples));
    }

    #[test]
    fn whole_chunk_decoding_reads_oracle_chunks(samples in series()) {
        let theirs = oracle_encode(&samples);
        let mut got = Vec::new();
        decode_xor(&theirs, &mut got).expect("decodes");
        prop_assert_eq!(bits(&got), bits(&samples));
    }
}

#[test]
fn seek_over_chunks_through_the_db() {
    // Iterator seek across several head chunks (full ones on disk, the open one in memory).
    let dir = tempfile::tempdir().unwrap();
    let db = super::open(dir.path());
    let l = super::lbls(&[("__name__", "x")]);
    let samples: Vec<(i64, f64)> = (0..1000).map(|i| (i * 10_000, i as f64)).collect();
    super::append(&db, &l, &samples);
    assert!(db.metrics().head_chunks > 3);
    use storage::Queryable;
    let q = db.querier(0, i64::MAX).unwrap();
    let set = q
        .select(
            false,
            &storage::SelectHints::default(),
            &[model::Matcher::equal("__name__", "x")],
        )
        .unwrap();
    let mut it = set[0].iter();
    assert_eq!(it.seek(5), Some((10_000, 1.0)));
    assert_eq!(
        it.seek(10_000),
        Some((10_000, 1.0)),
        "seek to the current sample returns it again"
    );
    assert_eq!(it.next(), Some((20_000, 2.0)));
    assert_eq!(it.seek(5_000_001), Some((5_010_000, 501.0)));
    assert_eq!(it.seek(9_990_000), Some((9_990_000, 999.0)));
    assert_eq!(it.seek(9_990_001), None);
    // A range query window: samples outside [mint, maxt] never show, seek or not.
    let q = db.querier(100_000, 200_000).unwrap();
    let set = q
        .select(
            false,
            &storage::SelectHints::default(),
            &[model::Matcher::equal("__name__", "x")],
        )
        .unwrap();
    let mut it = set[0].iter();
    assert_eq!(it.seek(0), Some((100_000, 10.0)));
    assert_eq!(it.seek(200_001), None);
}
