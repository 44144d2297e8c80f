//! What the writer writes, the parser reads back unchanged.

use std::collections::BTreeMap;

use expfmt::{Entry, Format, MetricType, Parser, TextWriter};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Family {
    name: String,
    help: String,
    kind: MetricType,
    samples: Vec<(BTreeMap<String, String>, f64, Option<i64>)>,
}

fn metric_type() -> impl Strategy<Value = MetricType> {
    prop::sample::select(vec![
        MetricType::Counter,
        MetricType::Gauge,
        MetricType::Histogram,
        MetricType::GaugeHistogram,
        MetricType::Summary,
        MetricType::Info,
        MetricType::StateSet,
        MetricType::Unknown,
    ])
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        (0u32..10_000_000).prop_map(f64::from),
    ]
}

fn family() -> impl Strategy<Value = Family> {
    let labels = prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", any::<String>(), 0..5);
    let sample = (labels, value(), prop::option::of(0i64..=i64::MAX));
    (
        "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        // A help text of only blanks reads back empty, as in Prometheus.
        any::<String>().prop_filter("not only blanks", |h| {
            h.is_empty() || !h.bytes().all(|b| b == b' ' || b == b'\t')
        }),
        metric_type(),
        prop::collection::vec(sample, 0..6),
    )
        .prop_map(|(name, help, kind, samples)| Family {
            name,
            help,
            kind,
            samples,
        })
}

fn write(families: &[Family]) -> Vec<u8> {
    let mut w = TextWriter::new(Vec::new());
    for f in families {
        w.help(&f.name, &f.help).unwrap();
        w.type_(&f.name, f.kind).unwrap();
        for (labels, v, ts) in &f.samples {
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            w.sample(&f.name, &pairs, *v, *ts).unwrap();
        }
    }
    w.into_inner()
}

fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn write_then_parse(families in prop::collection::vec(family(), 0..5)) {
        let body = write(&families);
        let mut p = Parser::new(&body, Format::Text);
        for f in &families {
            match p.next_entry().unwrap() {
                Some(Entry::Help { metric, text }) => {
                    prop_assert_eq!(metric, f.name.as_str());
                    prop_assert_eq!(&*text, f.help.as_str());
                }
                other => prop_assert!(false, "want help, got {:?}", other),
            }
            match p.next_entry().unwrap() {
                Some(Entry::Type { metric, kind }) => {
                    prop_assert_eq!(metric, f.name.as_str());
                    prop_assert_eq!(kind.text_name(), f.kind.text_name());
                }
                other => prop_assert!(false, "want type, got {:?}", other),
            }
            for (labels, v, ts) in &f.samples {
                match p.next_entry().unwrap() {
                    Some(Entry::Sample(s)) => {
                        prop_assert_eq!(s.name, f.name.as_str());
                        let got: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (*k, &**v)).collect();
                        let want: Vec<(&str, &str)> =
                            labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                        prop_assert_eq!(got, want);
                        prop_assert!(same_value(s.value, *v), "{} != {}", s.value, v);
                        prop_assert_eq!(s.timestamp_ms, *ts);
                    }
                    other => prop_assert!(false, "want sample, got {:?}", other),
                }
            }
        }
        prop_assert_eq!(p.next_entry().unwrap(), None);
    }

    #[test]
    fn format_float_reads_back(v in any::<f64>()) {
        let s = expfmt::format_float(v);
        let back = expfmt::parse_float(s.as_bytes()).unwrap();
        prop_assert!(same_value(back, v), "{} -> {} -> {}", v, s, back);
    }
}

#[test]
fn fixture_rewritten_reads_the_same() {
    // Parse the upstream fixture, write it back out, parse again: the same
    // entries come out, values bit for bit.
    let body = crate::fixture("alltypes.237mfs.prom.txt");
    let mut w = TextWriter::new(Vec::new());
    let mut first = Vec::new();
    let mut p = Parser::new(&body, Format::Text);
    while let Some(e) = p.next_entry().unwrap() {
        match e {
            Entry::Help { metric, text } => w.help(metric, &text).unwrap(),
            Entry::Type { metric, kind } => w.type_(metric, kind).unwrap(),
            Entry::Unit { .. } => unreachable!("text format has no units"),
            Entry::Sample(s) => {
                let pairs: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (*k, &**v)).collect();
                w.sample(s.name, &pairs, s.value, s.timestamp_ms).unwrap();
                first.push(format!("{s:?}"));
            }
        }
    }
    let rewritten = w.into_inner();
    let mut second = Vec::new();
    let mut p = Parser::new(&rewritten, Format::Text);
    while let Some(e) = p.next_entry().unwrap() {
        if let Entry::Sample(s) = e {
            second.push(format!("{s:?}"));
        }
    }
    assert_eq!(first.len(), 1857);
    assert_eq!(first, second);
}
