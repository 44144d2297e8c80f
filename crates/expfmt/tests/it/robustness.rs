//! Garbage in, error out: truncated fixtures at every byte, single-byte
//! corruptions and random bytes never panic, and every error names a line
//! inside the body.

use expfmt::{Format, Parser};
use proptest::prelude::*;

use crate::{drain, fixture};

fn lines_in(body: &[u8]) -> usize {
    body.iter().filter(|&&b| b == b'\n').count() + 1
}

#[track_caller]
fn check_no_panic(body: &[u8], format: Format) {
    if let Some(err) = drain(body, format) {
        assert!(
            err.line >= 1 && err.line <= lines_in(body),
            "line {} outside a body of {} lines: {err}",
            err.line,
            lines_in(body)
        );
    }
}

#[test]
fn every_prefix_of_every_fixture() {
    for (name, format) in [
        ("alltypes.5mfs.om.txt", Format::OpenMetrics),
        ("1histogram.om.txt", Format::OpenMetrics),
        ("alltypes.5mfs.om.txt", Format::Text),
    ] {
        let body = fixture(name);
        for cut in 0..=body.len() {
            check_no_panic(&body[..cut], format);
        }
    }
    // The 190 kB fixture: every prefix would be quadratic, so every prefix
    // of its first 4 KiB and then a spread of cuts through the rest.
    let body = fixture("alltypes.237mfs.prom.txt");
    for cut in (0..4096).chain((4096..=body.len()).step_by(211)) {
        check_no_panic(&body[..cut], Format::Text);
        check_no_panic(&body[..cut], Format::OpenMetrics);
    }
}

#[test]
fn om_prefixes_fail_until_eof() {
    // An OpenMetrics body cut anywhere before its `# EOF` is an error.
    let body = fixture("alltypes.5mfs.om.txt");
    let eof = body.len() - b"# EOF\n".len();
    // Up to and including "# EO"; "# EOF" without its newline is complete.
    for cut in 0..eof + 5 {
        assert!(
            drain(&body[..cut], Format::OpenMetrics).is_some(),
            "cut at {cut}"
        );
    }
    assert!(drain(&body[..body.len() - 1], Format::OpenMetrics).is_none());
    assert!(drain(&body, Format::OpenMetrics).is_none());
}

#[test]
fn every_single_byte_corruption_of_a_small_body() {
    let body = b"# HELP a_total x\\n\n# TYPE a_total counter\na_total{b=\"c\\\"\",d=\"e\"} 1.5 17 # {t=\"1\"} 2\n# EOF\n";
    let interesting = [
        0u8, b'\n', b' ', b'\t', b'"', b'\\', b'{', b'}', b',', b'=', b'#', 0xff, b'x', b'1',
    ];
    for i in 0..body.len() {
        for &b in &interesting {
            let mut corrupt = body.to_vec();
            corrupt[i] = b;
            check_no_panic(&corrupt, Format::OpenMetrics);
            check_no_panic(&corrupt, Format::Text);
        }
        let mut deleted = body.to_vec();
        deleted.remove(i);
        check_no_panic(&deleted, Format::OpenMetrics);
        check_no_panic(&deleted, Format::Text);
    }
}

/// Bytes drawn mostly from the exposition alphabet, so random input gets
/// past the first token often enough to exercise the deeper states.
fn exposition_bytes() -> impl Strategy<Value = Vec<u8>> {
    let alphabet =
        prop::sample::select(b"ab_:01.e+-\" \t\n{}=,#\\HELPTYPEUNITEOFNaInf\xff\xc3\x00".to_vec());
    prop::collection::vec(prop_oneof![4 => alphabet, 1 => any::<u8>()], 0..200)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..300)) {
        check_no_panic(&body, Format::Text);
        check_no_panic(&body, Format::OpenMetrics);
    }

    #[test]
    fn exposition_like_bytes_never_panic(body in exposition_bytes()) {
        check_no_panic(&body, Format::Text);
        check_no_panic(&body, Format::OpenMetrics);
    }

    #[test]
    fn garbage_appended_to_a_valid_body(tail in exposition_bytes()) {
        let mut body = fixture("1histogram.om.txt");
        body.extend_from_slice(&tail);
        check_no_panic(&body, Format::Text);
        check_no_panic(&body, Format::OpenMetrics);
    }
}

#[test]
fn samples_expose_the_input_they_came_from() {
    // `series` is a sub-slice of the input: scrapers use it as a cache key.
    let body = fixture("alltypes.237mfs.prom.txt");
    let mut p = Parser::new(&body, Format::Text);
    let range = body.as_ptr_range();
    while let Some(e) = p.next_entry().unwrap() {
        if let expfmt::Entry::Sample(s) = e {
            let r = s.series.as_ptr_range();
            assert!(range.start <= r.start && r.end <= range.end);
            assert!(s.series.starts_with(s.name.as_bytes()));
        }
    }
}
