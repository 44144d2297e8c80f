//! Tests of the parser: error wording and positions exactly as Prometheus 2.42 prints them
//! (`testdata/parse_errors.txt`, recorded from a live Prometheus), and the trees of valid input.

use super::parse;
use crate::ast::*;

/// `(query, error)` pairs of the golden file.
fn golden() -> Vec<(&'static str, &'static str)> {
    include_str!("../../testdata/parse_errors.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split_once('\t'))
        .collect()
}

#[test]
fn errors_match_prometheus_golden_file() {
    let cases = golden();
    assert!(cases.len() >= 200, "{}", cases.len());
    let mut wrong = Vec::new();
    for (q, want) in cases {
        match parse(q) {
            Ok(e) => wrong.push(format!("{q:?}: parsed as {e:?}, want {want:?}")),
            Err(e) if e.msg != want => wrong.push(format!("{q:?}: got {:?}, want {want:?}", e.msg)),
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[track_caller]
fn err(q: &str, want: &str) {
    match parse(q) {
        Ok(e) => panic!("{q:?} parsed as {e:?}"),
        Err(e) => assert_eq!(e.msg, want, "{q:?}"),
    }
}

#[test]
fn error_positions_count_lines_and_bytes() {
    err("", "1:1: parse error: no expression found in input");
    err(
        "# only a comment",
        "1:1: parse error: no expression found in input",
    );
    err(
        "foo +\n bar[5x]",
        "2:6: parse error: bad duration syntax: \"5\"",
    );
    err(
        "foo\n  offset -",
        "2:11: parse error: unexpected end of input in offset, expected duration",
    );
    err(
        "a\n+\n)",
        "3:2: parse error: unexpected right parenthesis ')'",
    );
    err(
        "\"é\" + )",
        "1:9: parse error: unexpected right parenthesis ')'",
    );
}

#[test]
fn strings_that_are_not_utf8_are_rejected() {
    err(
        r#"label_replace(x, "\xff", "", "src", "(.*)")"#,
        "1:18: parse error: invalid UTF-8 in string literal: \"\u{fffd}\"",
    );
    // As a regex Go blames the bad byte.
    err(
        r#"foo{a=~"\xff"}"#,
        "1:5: parse error: error parsing regexp: invalid UTF-8: `\u{fffd})$`",
    );
}

fn vs(e: &Expr) -> &VectorSelector {
    match e {
        Expr::VectorSelector(v) => v,
        Expr::MatrixSelector(m) => &m.vs,
        other => panic!("not a selector: {other:?}"),
    }
}

#[test]
fn selectors_with_go_regex_offsets_and_at() {
    let e = parse(r#"foo{a=~"\\d+"} offset -5m @ 10"#).unwrap();
    let v = vs(&e);
    assert_eq!(v.offset, -300_000);
    assert_eq!(v.at, Some(At::Timestamp(10_000)));
    assert_eq!(v.matchers.len(), 2);
    assert_eq!(v.matchers[0].name, "__name__");
    assert!(v.matchers[1].matches("12"));
    assert!(!v.matchers[1].matches("x12"));
    let e = parse("foo[1h30m] @ start() offset 1m").unwrap();
    let Expr::MatrixSelector(m) = &e else {
        panic!()
    };
    assert_eq!(m.range, 5_400_000);
    assert_eq!(m.vs.at, Some(At::Start));
    assert_eq!(m.vs.offset, 60_000);
    assert_eq!(vs(&parse("x @ end()").unwrap()).at, Some(At::End));
    assert_eq!(
        vs(&parse("x @ 1m40s").unwrap()).at,
        Some(At::Timestamp(100_000))
    );
    assert_eq!(
        vs(&parse("x @ -1.5").unwrap()).at,
        Some(At::Timestamp(-1500))
    );
}

#[test]
fn quoted_names_as_prometheus_3() {
    let e = parse(r#"{"my.metric", "a.b"="c"}"#).unwrap();
    let v = vs(&e);
    assert_eq!(v.name.as_deref(), Some("my.metric"));
    assert_eq!(v.matchers.len(), 2);
    let e = parse(r#"sum by ("a.b", c) (x)"#).unwrap();
    let Expr::Aggregate(a) = e else { panic!() };
    assert_eq!(a.grouping, Grouping::By(vec!["a.b".into(), "c".into()]));
}

#[test]
fn string_literals_decode_go_escapes() {
    let s = |q: &str| match parse(q).unwrap() {
        Expr::StringLiteral(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(s(r#""a\tb\x41\101\u00e9\U0001F600\"""#), "a\tbAAé😀\"");
    assert_eq!(s(r"'it\'s'"), "it's");
    assert_eq!(s(r"`raw\n`"), "raw\\n");
}

#[test]
fn numbers_as_go_reads_them() {
    let n = |q: &str| match parse(q).unwrap() {
        Expr::NumberLiteral(v) => v,
        other => panic!("{other:?}"),
    };
    assert_eq!(n("0x1F"), 31.0);
    assert_eq!(n("017"), 15.0); // compat: Go's ParseInt with base 0 reads a leading 0 as octal
    assert_eq!(n("08"), 8.0);
    assert_eq!(n("1e3"), 1000.0);
    assert_eq!(n(".5"), 0.5);
    assert_eq!(n("5."), 5.0);
    assert_eq!(n("-Inf"), f64::NEG_INFINITY);
    assert!(n("nan").is_nan());
    assert_eq!(n("- - 1"), 1.0);
    assert_eq!(n("1m30s"), 90.0);
}

fn bin(e: &Expr) -> (&Binary, BinOp) {
    match e {
        Expr::Binary(b) => (b, b.op),
        other => panic!("not binary: {other:?}"),
    }
}

#[test]
fn precedence_and_associativity() {
    // `^` is right-associative: 2 ^ (3 ^ 2).
    let e = parse("2 ^ 3 ^ 2").unwrap();
    let (b, op) = bin(&e);
    assert_eq!(op, BinOp::Pow);
    assert_eq!(*b.lhs, Expr::NumberLiteral(2.0));
    assert_eq!(bin(&b.rhs).1, BinOp::Pow);
    // `-` is left-associative: (1 - 2) - 3.
    let e = parse("1 - 2 - 3").unwrap();
    assert_eq!(bin(&bin(&e).0.lhs).1, BinOp::Sub);
    // Unary minus binds looser than `^`: -(x ^ 2).
    let e = parse("-x ^ 2").unwrap();
    let Expr::Neg(inner) = e else { panic!("{e:?}") };
    assert_eq!(bin(&inner).1, BinOp::Pow);
    // ... and like `*` otherwise: (-x) * 2.
    let e = parse("-x * 2").unwrap();
    assert!(matches!(*bin(&e).0.lhs, Expr::Neg(_)));
    // or < and/unless < comparisons < +- < */% atan2 < ^.
    let e = parse("a or b and c == d + e * f ^ g").unwrap();
    let (b1, op1) = bin(&e);
    assert_eq!(op1, BinOp::Or);
    let (b2, op2) = bin(&b1.rhs);
    assert_eq!(op2, BinOp::And);
    let (b3, op3) = bin(&b2.rhs);
    assert_eq!(op3, BinOp::Eq);
    let (b4, op4) = bin(&b3.rhs);
    assert_eq!(op4, BinOp::Add);
    let (b5, op5) = bin(&b4.rhs);
    assert_eq!(op5, BinOp::Mul);
    assert_eq!(bin(&b5.rhs).1, BinOp::Pow);
    let e = parse("a atan2 b * c").unwrap();
    assert_eq!(bin(&bin(&e).0.lhs).1, BinOp::Atan2);
}

#[test]
fn binary_matching_and_modifiers() {
    let e = parse("a * on(x) group_left(y) b").unwrap();
    let m = bin(&e).0.matching.clone().unwrap();
    assert_eq!(m.card, Cardinality::ManyToOne);
    assert!(m.on);
    assert_eq!(m.labels, vec!["x"]);
    assert_eq!(m.include, vec!["y"]);
    let e = parse("a / ignoring(x) group_right b").unwrap();
    let m = bin(&e).0.matching.clone().unwrap();
    assert_eq!((m.card, m.on), (Cardinality::OneToMany, false));
    let e = parse("a and b").unwrap();
    assert_eq!(
        bin(&e).0.matching.as_ref().unwrap().card,
        Cardinality::ManyToMany
    );
    let e = parse("a > bool 1").unwrap();
    assert!(bin(&e).0.return_bool);
    assert!(bin(&e).0.matching.is_none());
    // Keywords are case-insensitive and may name metrics.
    let e = parse("SUM BY (a) (offset) AND by").unwrap();
    assert_eq!(bin(&e).1, BinOp::And);
}

#[test]
fn aggregations_subqueries_and_comments() {
    let e = parse("topk(3, x) without (a) # trailing comment").unwrap();
    let Expr::Aggregate(a) = e else { panic!() };
    assert_eq!(a.op, AggOp::Topk);
    assert_eq!(*a.param.unwrap(), Expr::NumberLiteral(3.0));
    assert_eq!(a.grouping, Grouping::Without(vec!["a".into()]));
    let e = parse("max_over_time(rate(x[5m])[30m:1m] offset -1m)").unwrap();
    let Expr::Call(c) = e else { panic!() };
    let Expr::Subquery(s) = &c.args[0] else {
        panic!()
    };
    assert_eq!(
        (s.range, s.step, s.offset),
        (1_800_000, Some(60_000), -60_000)
    );
    let e = parse("x[5m:]").unwrap();
    let Expr::Subquery(s) = e else { panic!() };
    assert_eq!(s.step, None);
    // A metric named like an aggregation.
    assert!(matches!(parse("sum").unwrap(), Expr::VectorSelector(_)));
    assert!(matches!(
        parse(r#"{__name__=~"a.+"}"#).unwrap(),
        Expr::VectorSelector(_)
    ));
}

#[test]
fn duration_expressions() {
    let range = |q: &str| match parse(q).unwrap() {
        Expr::Call(c) => match &c.args[0] {
            Expr::MatrixSelector(m) => (m.range, m.range_expr.clone()),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    };
    assert_eq!(range("rate(x[26m+4m])"), (1_800_000, None));
    assert_eq!(range("rate(x[1800])"), (1_800_000, None));
    assert_eq!(range("rate(x[2m*(10+5)])"), (1_800_000, None));
    assert_eq!(range("rate(x[1h30m % 1h])"), (1_800_000, None));
    assert_eq!(range("rate(x[30m1s-30m1s % 1m])"), (1_800_000, None));
    assert_eq!(range("rate(x[-5m+35m])"), (1_800_000, None));
    let (_, d) = range("rate(x[min_of(STEP()+1, 1h)])");
    assert_eq!(d.unwrap().eval(Some((10_000, 0))), Some(11.0));
    // After `offset` one signed term: the `+ 2` belongs to the outer expression.
    let e = parse("x offset 100 + 2").unwrap();
    assert_eq!(vs(&bin(&e).0.lhs).offset, 100_000);
    assert_eq!(vs(&parse("x offset (100 + 2)").unwrap()).offset, 102_000);
    assert_eq!(vs(&parse("x offset (-2 ^ 2)").unwrap()).offset, -4_000);
    let e = parse("x offset -step()*2").unwrap();
    let d = vs(&bin(&e).0.lhs).offset_expr.clone().unwrap();
    assert_eq!(d.eval(Some((5000, 0))), Some(-5.0));
    err(
        "x[5m-5m]",
        "1:3: parse error: duration must be greater than 0",
    );
}

/// Every prefix of every golden query and of some valid ones parses or fails without a panic,
/// and so do inputs with stray bytes spliced in.
#[test]
fn truncated_and_garbled_input_never_panics() {
    let valid = [
        r#"sum by (job) (rate(x{a=~"b.*", c!="d"}[5m:1m] offset -1h30m @ 100)) > bool on(a) group_left(b) fill(0) y"#,
        r#"label_replace(x, "a\u00e9\x41", '$1', `src`, "(.*)") # comment"#,
        "count_over_time(x[min_of(step()+1, 1h)] anchored) ^ -2 ^ 0x1F atan2 Inf",
        r#"{"my.metric", "a.b"="c"} smoothed unless rate(x[-(5m*2)+30m] offset (1s % 2))"#,
    ];
    let mut inputs: Vec<String> = golden().iter().map(|(q, _)| q.to_string()).collect();
    inputs.extend(valid.iter().map(|s| s.to_string()));
    for q in &inputs {
        for (i, _) in q.char_indices().chain([(q.len(), ' ')]) {
            let _ = parse(&q[..i]);
            for junk in [
                "\\", "\"", "`", "[", "{", "(", "é", "@", "0x", "1e", "offset",
            ] {
                let _ = parse(&format!("{}{junk}{}", &q[..i], &q[i..]));
            }
        }
    }
    for v in valid {
        assert!(parse(v).is_ok(), "{v}: {:?}", parse(v));
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = |open: &str, mid: &str, close: &str, n: usize| {
        format!("{}{mid}{}", open.repeat(n), close.repeat(n))
    };
    let msg = "expression nests too deeply (more than 128 levels)";
    for q in [
        deep("(", "x", ")", 100_000),
        deep("-", "1", "", 100_000),
        deep("abs(", "x", ")", 10_000),
        format!("x{}", " + x".repeat(100_000)),
        format!("2{}", " ^ 2".repeat(100_000)),
        format!("x[{}]", deep("(", "1m", ")", 100_000)),
        format!("x[1m{}]", " + 1s".repeat(100_000)),
    ] {
        let e = parse(&q).unwrap_err();
        assert!(e.msg.ends_with(msg), "{}", e.msg);
    }
    assert!(parse(&deep("(", "x", ")", 120)).is_ok());
    assert!(parse(&format!("x{}", " + x".repeat(120))).is_ok());
}

#[test]
fn metric_selectors_as_prometheus_2_42_match_params() {
    // Errors recorded from Prometheus 2.42's /api/v1/series?match[]=…
    let cases = [
        ("", "1:1: parse error: unexpected end of input"),
        ("  ", "1:3: parse error: unexpected end of input"),
        ("sum(up)", "1:4: parse error: unexpected \"(\""),
        ("up[5m]", "1:3: parse error: unexpected \"[\""),
        ("up offset 5m", "1:4: parse error: unexpected <offset>"),
        ("1", "1:1: parse error: unexpected number \"1\""),
        ("up + up", "1:4: parse error: unexpected <op:+>"),
        (
            "up{",
            "1:4: parse error: unexpected end of input inside braces",
        ),
        (
            "up{job=~\"(\"}",
            "1:4: parse error: error parsing regexp: missing closing ): `^(?:()$`",
        ),
        (
            "up{job=\"a\" or}",
            "1:12: parse error: unexpected identifier \"or\" in label matching, expected \",\" or \"}\"",
        ),
    ];
    for (q, want) in cases {
        match crate::parse_metric_selector(q) {
            Ok(m) => panic!("{q:?} parsed as {m:?}"),
            Err(e) => assert_eq!(e.msg, want, "{q:?}"),
        }
    }
    let ms = crate::parse_metric_selector("up{job=~\".*\"}").unwrap();
    assert_eq!(ms.len(), 2);
    assert_eq!(
        crate::parse_metric_selector("{a=~\".*\"}").unwrap().len(),
        1
    );
    let ms = crate::parse_metric_selector("sum").unwrap();
    assert_eq!(ms[0].value, "sum");
}

#[test]
fn input_ending_inside_a_range_as_prometheus_2_42() {
    // Errors recorded from Prometheus 2.42's /api/v1/query.
    err(
        "up[",
        "1:4: parse error: missing unit character in duration",
    );
    err(
        "up[ ",
        "1:5: parse error: missing unit character in duration",
    );
    err(
        "up[5",
        "1:4: parse error: missing unit character in duration",
    );
    err(
        "rate(up[",
        "1:9: parse error: missing unit character in duration",
    );
    err("up[5m", "1:6: parse error: unclosed left bracket");
}
