//! Malformed bodies: each is rejected, on the right line, with the right
//! kind of error; and the edge cases of values, timestamps, escapes and
//! `# EOF` that must be accepted.

use std::borrow::Cow;

use expfmt::{Entry, Format, ParseErrorKind, Parser};

use crate::drain;

#[track_caller]
fn rejects(format: Format, body: &[u8], line: usize, kind: ParseErrorKind) {
    let err =
        drain(body, format).unwrap_or_else(|| panic!("{:?} parsed", String::from_utf8_lossy(body)));
    assert_eq!((err.line, err.kind), (line, kind), "{err}");
    assert!(
        err.to_string().starts_with(&format!("line {line}: ")),
        "{err}"
    );
}

#[test]
fn text_rejections() {
    use Format::Text as T;
    use ParseErrorKind::*;
    rejects(T, b"a 1\nb\n", 2, Syntax); // value missing
    rejects(T, b"a 1\n\n\nb{\n", 4, Syntax); // label set cut at line end
    rejects(T, b"a{b=\"c\"} 1 2 3\n", 1, Syntax);
    rejects(T, b"# ok\na 1 x\n", 2, Syntax); // timestamp not digits
    rejects(T, b"a 1 1.5\n", 1, Syntax); // float timestamp
    rejects(T, b"a 1 -1\n", 1, Syntax); // negative timestamp
    rejects(T, b"a 1 99999999999999999999\n", 1, InvalidNumber);
    rejects(T, b"a one\n", 1, InvalidNumber);
    rejects(T, b"a +nan\n", 1, InvalidNumber);
    rejects(T, b"a 1_000\n", 1, InvalidNumber);
    rejects(T, b"a 0x1p-2\n", 1, InvalidNumber);
    rejects(T, b"a\n# TYPE a bogus\n", 1, Syntax);
    rejects(T, b"a 1\n# TYPE a bogus\n", 2, InvalidType);
    rejects(T, b"a 1\n# TYPE a info\n", 2, InvalidType);
    rejects(T, b"a{b=\"c\",b=\"d\"} 1\n", 1, DuplicateLabel);
    rejects(T, b"a{b=\"c\" b=\"d\"} 1\n", 1, DuplicateLabel);
    rejects(T, b"a{b=\"\xc3\x28\"} 1\n", 1, InvalidUtf8);
    rejects(T, b"# HELP a \xe2\x82\n", 1, InvalidUtf8);
    rejects(T, b"a{b=\"x\ny\nz} 1\n", 1, Syntax); // unterminated: reported where it began
    rejects(T, b"a{b=\"x\ny\"} 1\nc d\n", 3, InvalidNumber);
    rejects(T, b"a{b=\"\\", 1, Syntax);
    rejects(T, b"a{b=\"c\"}} 1\n", 1, InvalidNumber); // value token "}"
    rejects(T, b"a{b=\"c\"}{d=\"e\"} 1\n", 1, Syntax);
    rejects(T, b"{__name__=\"a\"} 1\n", 1, Syntax); // quoted names came after 2.42
    rejects(T, b"a.b 1\n", 1, InvalidNumber); // "a" then value ".b"
    rejects(T, b"a-b 1\n", 1, InvalidNumber);
    rejects(T, b"\xff 1\n", 1, Syntax);
    rejects(T, b"a 1\n\x00\n", 2, Syntax);
}

#[test]
fn openmetrics_rejections() {
    use Format::OpenMetrics as O;
    use ParseErrorKind::*;
    rejects(O, b"a 1\n", 2, MissingEof);
    rejects(O, b"# TYPE a gauge\na 1\n", 3, MissingEof);
    rejects(O, b"a 1\n# EOF\nb 2\n", 3, DataAfterEof);
    rejects(O, b"a 1\n# EOF\n\n", 3, DataAfterEof);
    rejects(O, b"a 1\n\n# EOF\n", 2, Syntax);
    rejects(O, b"a 1\n# hello\n# EOF\n", 2, Syntax);
    rejects(O, b"a  1\n# EOF\n", 1, Syntax);
    rejects(O, b"a 1 \n# EOF\n", 1, Syntax);
    rejects(O, b"a{b=\"c\",} 1\n# EOF\n", 1, Syntax);
    rejects(O, b"a{b=\"c\" , d=\"e\"} 1\n# EOF\n", 1, Syntax);
    rejects(O, b"a{b=\"c\",b=\"d\"} 1\n# EOF\n", 1, DuplicateLabel);
    rejects(O, b"a 1 NaN\n# EOF\n", 1, InvalidNumber);
    rejects(O, b"a 1 -Inf\n# EOF\n", 1, InvalidNumber);
    rejects(O, b"a 1 1x\n# EOF\n", 1, InvalidNumber);
    rejects(O, b"# TYPE a untyped\n# EOF\n", 1, InvalidType);
    rejects(O, b"# UNIT a_seconds bytes\n# EOF\n", 1, Syntax);
    rejects(O, b"a_total 1 # {b=\"c\"}\n# EOF\n", 1, Syntax); // exemplar without value
    rejects(O, b"a_total 1 # {b=\"c\"} x\n# EOF\n", 1, InvalidNumber);
    rejects(O, b"a_total 1 # {b=\"c\"} 1 NaN\n# EOF\n", 1, InvalidNumber);
    rejects(O, b"a_total 1 # {b=c} 1\n# EOF\n", 1, Syntax);
    rejects(O, b"a_total 1 # {b=\"c\",} 1\n# EOF\n", 1, Syntax);
    rejects(O, b"a_total 1 # {b=\"\xff\"} 1\n# EOF\n", 1, InvalidUtf8);
    rejects(O, b"a_gauge 1 # {b=\"c\"} 1\n# EOF\n", 1, Syntax); // not _total/_bucket
    rejects(O, b"a{b=\"x\ny\"} 1\n# EOF\n", 1, Syntax); // no raw newlines in values
    rejects(O, b"# HELP a x\n# HELP a \xff\n# EOF\n", 2, InvalidUtf8);
}

#[test]
fn accepted_edge_cases() {
    #[track_caller]
    fn sample(format: Format, body: &[u8], want_value: f64, want_ts: Option<i64>) {
        let mut p = Parser::new(body, format);
        let s = loop {
            match p.next_entry().unwrap() {
                Some(Entry::Sample(s)) => break s.clone(),
                Some(_) => continue,
                None => panic!("no sample in {:?}", String::from_utf8_lossy(body)),
            }
        };
        if want_value.is_nan() {
            assert!(s.value.is_nan());
        } else {
            assert_eq!(s.value.to_bits(), want_value.to_bits(), "{s:?}");
        }
        assert_eq!(s.timestamp_ms, want_ts);
    }
    use Format::{OpenMetrics as O, Text as T};
    sample(T, b"a NaN", f64::NAN, None);
    sample(T, b"a nan", f64::NAN, None);
    sample(T, b"a +Inf", f64::INFINITY, None);
    sample(T, b"a -inf", f64::NEG_INFINITY, None);
    sample(T, b"a +infinity", f64::INFINITY, None);
    sample(T, b"a -0", -0.0, None);
    sample(T, b"a 1e-400", 0.0, None);
    sample(T, b"a 1 0", 1.0, Some(0));
    sample(T, b"a 1 1700000000123\n", 1.0, Some(1_700_000_000_123));
    sample(T, b"a 1 007", 1.0, Some(7));
    sample(T, b"# EOF\na 1\n# EOF\n", 1.0, None);
    sample(O, b"a NaN\n# EOF", f64::NAN, None);
    sample(O, b"a +Inf 0\n# EOF\n", f64::INFINITY, Some(0));
    sample(
        O,
        b"a 1 1700000000.123456\n# EOF\n",
        1.0,
        Some(1_700_000_000_123),
    );
    sample(O, b"a 1 -0.5\n# EOF\n", 1.0, Some(-500));
    sample(O, b"a 1 1e9\n# EOF\n", 1.0, Some(1_000_000_000_000));
    sample(
        O,
        b"a_bucket{le=\"1\"} 1 5 # {} 1 5\n# EOF\n",
        1.0,
        Some(5000),
    );
}

#[test]
fn escapes_in_both_formats() {
    for (format, body) in [
        (Format::Text, &b"a{x=\"1\\\\2\\\"3\\n4\\t\"} 1\n"[..]),
        (
            Format::OpenMetrics,
            &b"a{x=\"1\\\\2\\\"3\\n4\\t\"} 1\n# EOF\n"[..],
        ),
    ] {
        let mut p = Parser::new(body, format);
        let Some(Entry::Sample(s)) = p.next_entry().unwrap() else {
            panic!("want a sample");
        };
        assert_eq!(s.labels, [("x", Cow::Owned::<str>("1\\2\"3\n4\\t".into()))]);
    }
    // HELP: `\"` is an escape only in OpenMetrics.
    for (format, body, want) in [
        (Format::Text, &b"# HELP a q\\\"\\\\\\n\n"[..], "q\\\"\\\n"),
        (
            Format::OpenMetrics,
            &b"# HELP a q\\\"\\\\\\n\n# EOF\n"[..],
            "q\"\\\n",
        ),
    ] {
        let mut p = Parser::new(body, format);
        let Some(Entry::Help { metric, text }) = p.next_entry().unwrap() else {
            panic!("want help");
        };
        assert_eq!((metric, &*text), ("a", want));
    }
}

#[test]
fn labels_are_borrowed_without_escapes() {
    let body = b"a{b=\"c\",d=\"\"} 1\n";
    let mut p = Parser::new(body, Format::Text);
    let Some(Entry::Sample(s)) = p.next_entry().unwrap() else {
        panic!("want a sample");
    };
    assert!(s.labels.iter().all(|(_, v)| matches!(v, Cow::Borrowed(_))));
    assert_eq!(s.labels[1].1, "");
}
