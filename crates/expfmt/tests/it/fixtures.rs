//! The upstream textparse benchmark inputs parse, with the sample and family
//! counts listed in `peer-tests/README.md` §2.2.

use std::borrow::Cow;

use expfmt::{Entry, Format, MetricType, Parser};

use crate::{Counts, count, fixture};

#[track_caller]
fn check(name: &str, format: Format, samples: usize, types: usize) {
    let c = count(&fixture(name), format).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!((c.samples, c.types), (samples, types), "{name}: {c:?}");
}

#[test]
fn counts_match_the_readme() {
    check("alltypes.237mfs.prom.txt", Format::Text, 1857, 237);
    check("alltypes.237mfs.nometa.prom.txt", Format::Text, 1857, 0);
    check("alltypes.5mfs.om.txt", Format::OpenMetrics, 53, 5);
    check("1histogram.om.txt", Format::OpenMetrics, 42, 1);
}

#[test]
fn om_fixtures_also_read_as_text_except_exemplars() {
    // The text grammar is looser except for what follows a value: the
    // exemplar comment is not allowed there.
    let c = count(&fixture("1histogram.om.txt"), Format::Text).unwrap();
    assert_eq!(
        c,
        Counts {
            samples: 42,
            types: 1,
            helps: 1,
            units: 0
        }
    );
    let err = count(&fixture("alltypes.5mfs.om.txt"), Format::Text).unwrap_err();
    assert_eq!(err.line, 19, "{err}");
}

#[test]
fn text_fixture_as_openmetrics() {
    // The 0.0.4 fixture happens to be valid OpenMetrics too: single spaces,
    // no blank lines, no free comments, and it ends in `# EOF`.
    let body = fixture("alltypes.237mfs.prom.txt");
    let om = count(&body, Format::OpenMetrics).unwrap();
    assert_eq!((om.samples, om.types), (1857, 237));
}

#[test]
fn sample_details_of_237mfs() {
    let body = fixture("alltypes.237mfs.prom.txt");
    let mut p = Parser::new(&body, Format::Text);
    let mut seen_summary_quantile = false;
    let mut last_type = None;
    let mut seen_requests = false;
    while let Some(e) = p.next_entry().unwrap() {
        match e {
            Entry::Type { metric, kind } => last_type = Some((metric.to_owned(), kind)),
            Entry::Sample(s) if s.name == "go_gc_duration_seconds" => {
                assert_eq!(
                    last_type,
                    Some(("go_gc_duration_seconds".to_owned(), MetricType::Summary))
                );
                if s.labels == [("quantile", Cow::Borrowed("0.25"))] {
                    assert_eq!(s.value, 0.00010188);
                    assert_eq!(s.series, &b"go_gc_duration_seconds{quantile=\"0.25\"}"[..]);
                    assert_eq!(s.timestamp_ms, None);
                    seen_summary_quantile = true;
                }
            }
            Entry::Sample(s)
                if s.name == "promhttp_metric_handler_requests_total" && s.labels[0].1 == "200" =>
            {
                assert_eq!(s.value, 4.059092e6);
                seen_requests = true;
            }
            _ => {}
        }
    }
    assert!(seen_summary_quantile && seen_requests);
}

#[test]
fn sample_details_of_5mfs_om() {
    let body = fixture("alltypes.5mfs.om.txt");
    let mut p = Parser::new(&body, Format::OpenMetrics);
    let mut created = 0;
    let mut buckets_with_le = 0;
    while let Some(e) = p.next_entry().unwrap() {
        if let Entry::Sample(s) = e {
            if s.name.ends_with("_created") {
                created += 1;
                assert!(s.value > 1.7e9, "{s:?}");
            }
            if s.name == "rpc_durations_histogram_seconds_bucket" {
                assert_eq!(s.labels.len(), 1);
                assert_eq!(s.labels[0].0, "le");
                buckets_with_le += 1;
            }
            assert_eq!(s.timestamp_ms, None);
        }
    }
    // compat: Prometheus 2.42 ingests `_created` lines as ordinary series.
    assert_eq!(created, 9);
    assert_eq!(buckets_with_le, 21);
}

#[test]
fn fixtures_without_escapes_borrow_everything() {
    // No backslash in any fixture, so no label value or help text may be
    // copied: the steady state of a scrape allocates nothing per sample.
    for (name, format) in [
        ("alltypes.237mfs.prom.txt", Format::Text),
        ("alltypes.5mfs.om.txt", Format::OpenMetrics),
    ] {
        let body = fixture(name);
        assert!(!body.contains(&b'\\'));
        let mut p = Parser::new(&body, format);
        while let Some(e) = p.next_entry().unwrap() {
            match e {
                Entry::Help { text, .. } => assert!(matches!(text, Cow::Borrowed(_))),
                Entry::Sample(s) => {
                    assert!(s.labels.iter().all(|(_, v)| matches!(v, Cow::Borrowed(_))));
                }
                _ => {}
            }
        }
    }
}
