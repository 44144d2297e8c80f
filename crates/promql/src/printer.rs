//! Prints a parsed PromQL expression the way Prometheus's `Expr.String()` does — for rule
//! queries in `/api/v1/rules`, alerts' `generatorURL` and `/api/v1/format_query`:
//! `sum by (job) (rate(x{a="b"}[5m]))`, `a > on (x) group_left () b`, sorted matchers, Go
//! number formatting. Prometheus's `format_query` breaks expressions longer than 100
//! characters over several lines; this prints them on one.

use std::fmt::Write;
use std::time::Duration;

use crate::ast::*;
use model::labels::{METRIC_NAME, quote_go};
use model::{MatchType, Matcher};

/// `expr` in Prometheus's canonical form.
pub fn print(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr);
    out
}

fn dur(ms: i64) -> String {
    model::format_duration(Duration::from_millis(ms.unsigned_abs()))
}

/// compat: Go's `fmt.Sprint(float64)`: shortest digits, `%e` form below 1e-4 and from 1e6.
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{v:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    format!("{v}")
}

fn at_offset(out: &mut String, at: Option<At>, offset: i64, offset_expr: Option<&DurationExpr>) {
    match at {
        Some(At::Timestamp(t)) => {
            let _ = write!(out, " @ {:.3}", t as f64 / 1000.0);
        }
        Some(At::Start) => out.push_str(" @ start()"),
        Some(At::End) => out.push_str(" @ end()"),
        None => {}
    }
    if let Some(d) = offset_expr {
        let _ = write!(out, " offset ({d})");
        return;
    }
    match offset {
        o if o > 0 => {
            let _ = write!(out, " offset {}", dur(o));
        }
        o if o < 0 => {
            let _ = write!(out, " offset -{}", dur(o));
        }
        _ => {}
    }
}

fn modifier(out: &mut String, m: Option<RangeModifier>) {
    match m {
        Some(RangeModifier::Anchored) => out.push_str(" anchored"),
        Some(RangeModifier::Smoothed) => out.push_str(" smoothed"),
        None => {}
    }
}

fn selector_body(out: &mut String, vs: &VectorSelector) {
    let name = vs.name.as_deref().unwrap_or("");
    let mut ms: Vec<String> = vs
        .matchers
        .iter()
        .filter(|m| !(m.name == METRIC_NAME && m.kind == MatchType::Equal && m.value == name))
        .map(matcher)
        .collect();
    out.push_str(name);
    if !ms.is_empty() {
        ms.sort();
        out.push('{');
        out.push_str(&ms.join(","));
        out.push('}');
    }
}

fn matcher(m: &Matcher) -> String {
    format!("{}{}{}", m.name, m.kind, quote_go(&m.value))
}

fn write_expr(out: &mut String, e: &Expr) {
    match e {
        Expr::NumberLiteral(v) => out.push_str(&go_float(*v)),
        Expr::StringLiteral(s) => out.push_str(&quote_go(s)),
        Expr::VectorSelector(vs) => {
            selector_body(out, vs);
            at_offset(out, vs.at, vs.offset, vs.offset_expr.as_ref());
            modifier(out, vs.modifier);
        }
        Expr::MatrixSelector(m) => {
            selector_body(out, &m.vs);
            match &m.range_expr {
                Some(d) => {
                    let _ = write!(out, "[{d}]");
                }
                None => {
                    let _ = write!(out, "[{}]", dur(m.range));
                }
            }
            at_offset(out, m.vs.at, m.vs.offset, m.vs.offset_expr.as_ref());
            modifier(out, m.vs.modifier);
        }
        Expr::Subquery(s) => {
            write_expr(out, &s.expr);
            let step = match &s.step_expr {
                Some(d) => d.to_string(),
                None => s.step.filter(|st| *st != 0).map(dur).unwrap_or_default(),
            };
            let range = s
                .range_expr
                .as_ref()
                .map_or_else(|| dur(s.range), |d| d.to_string());
            let _ = write!(out, "[{range}:{step}]");
            at_offset(out, s.at, s.offset, s.offset_expr.as_ref());
        }
        Expr::Call(c) => {
            out.push_str(&c.func);
            out.push('(');
            write_list(out, &c.args);
            out.push(')');
        }
        Expr::Aggregate(a) => {
            out.push_str(agg_name(a.op));
            match &a.grouping {
                Grouping::Without(l) => {
                    let _ = write!(out, " without ({}) ", l.join(", "));
                }
                Grouping::By(l) if !l.is_empty() => {
                    let _ = write!(out, " by ({}) ", l.join(", "));
                }
                Grouping::By(_) => {}
            }
            out.push('(');
            if let Some(p) = &a.param {
                write_expr(out, p);
                out.push_str(", ");
            }
            write_expr(out, &a.expr);
            out.push(')');
        }
        Expr::Binary(b) => {
            write_expr(out, &b.lhs);
            out.push(' ');
            out.push_str(b.op.as_str());
            if b.return_bool {
                out.push_str(" bool");
            }
            if let Some(vm) = &b.matching
                && (vm.on || !vm.labels.is_empty())
            {
                let tag = if vm.on { "on" } else { "ignoring" };
                let _ = write!(out, " {tag} ({})", vm.labels.join(", "));
                match vm.card {
                    Cardinality::ManyToOne => {
                        let _ = write!(out, " group_left ({})", vm.include.join(", "));
                    }
                    Cardinality::OneToMany => {
                        let _ = write!(out, " group_right ({})", vm.include.join(", "));
                    }
                    _ => {}
                }
            }
            for (name, v) in [("fill_left", b.fill_left), ("fill_right", b.fill_right)] {
                if let Some(v) = v {
                    let _ = write!(out, " {name}({})", go_float(v));
                }
            }
            out.push(' ');
            write_expr(out, &b.rhs);
        }
        Expr::Neg(e) => {
            out.push('-');
            write_expr(out, e);
        }
        Expr::Paren(e) => {
            out.push('(');
            write_expr(out, e);
            out.push(')');
        }
    }
}

fn write_list(out: &mut String, args: &[Expr]) {
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_expr(out, a);
    }
}

fn agg_name(op: AggOp) -> &'static str {
    match op {
        AggOp::Sum => "sum",
        AggOp::Avg => "avg",
        AggOp::Count => "count",
        AggOp::Min => "min",
        AggOp::Max => "max",
        AggOp::Group => "group",
        AggOp::Stddev => "stddev",
        AggOp::Stdvar => "stdvar",
        AggOp::Topk => "topk",
        AggOp::Bottomk => "bottomk",
        AggOp::CountValues => "count_values",
        AggOp::Quantile => "quantile",
        AggOp::Limitk => "limitk",
        AggOp::LimitRatio => "limit_ratio",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (as written, as Prometheus 2.42 prints it)
    const CASES: &[(&str, &str)] = &[
        ("up", "up"),
        (
            "up{job='a', instance=~\"x.*\"}",
            "up{instance=~\"x.*\",job=\"a\"}",
        ),
        ("{__name__=\"up\"}", "{__name__=\"up\"}"),
        ("sum by(job)(rate(x[5m]))", "sum by (job) (rate(x[5m]))"),
        ("sum without(a,b) (x)", "sum without (a, b) (x)"),
        ("topk(5, x)", "topk(5, x)"),
        (
            "count_values by (a) (\"v\", x)",
            "count_values by (a) (\"v\", x)",
        ),
        ("a>on()b", "a > on () b"),
        (
            "a * ignoring(x) group_left(y) b",
            "a * ignoring (x) group_left (y) b",
        ),
        ("a / on(x) group_right b", "a / on (x) group_right () b"),
        ("a > bool 1", "a > bool 1"),
        ("x offset 5m", "x offset 5m"),
        ("x[1h30m] offset -1m", "x[1h30m] offset -1m"),
        ("rate(x[5m:1m])", "rate(x[5m:1m])"),
        ("max_over_time(x[10m:])", "max_over_time(x[10m:])"),
        ("x @ 100", "x @ 100.000"),
        ("-x", "-x"),
        ("(a + b) * 2", "(a + b) * 2"),
        ("1e6", "1e+06"),
        ("0.5", "0.5"),
        (
            "vector(1) unless on() (vector(time() % 10) > 3)",
            "vector(1) unless on () (vector(time() % 10) > 3)",
        ),
        (
            "label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\")",
            "label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\")",
        ),
        // Prometheus 3's experimental syntax prints so that it parses back.
        ("a + fill(0) b", "a + fill_left(0) fill_right(0) b"),
        (
            "x[step()+1] offset -step()",
            "x[(step() + 1)] offset (-(step()))",
        ),
        ("x[5m+1m]", "x[6m]"),
        ("rate(x[1m] anchored)", "rate(x[1m] anchored)"),
        ("x offset 1m smoothed", "x offset 1m smoothed"),
    ];

    #[test]
    fn prints_like_prometheus() {
        for (input, want) in CASES {
            let e = crate::parse(input).unwrap();
            assert_eq!(print(&e), *want, "{input}");
            // And the printed form is a fixed point.
            assert_eq!(print(&crate::parse(want).unwrap()), *want);
        }
    }

    #[test]
    fn format_query_like_prometheus_2_42() {
        // Answers of Prometheus 2.42's /api/v1/format_query.
        let f = |q: &str| print(&crate::parse(q).unwrap());
        assert_eq!(
            f("topk(5, x @ start()) + count_values(\"v\", y) + 0.5 + 1.5e-7 + Inf + 0x10 + NaN"),
            "topk(5, x @ start()) + count_values(\"v\", y) + 0.5 + 1.5e-07 + +Inf + 16 + NaN"
        );
        assert_eq!(f("sum(up)by(job)"), "sum by (job) (up)");
    }

    #[test]
    fn go_floats() {
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(-2.5), "-2.5");
        assert_eq!(go_float(-0.0), "-0");
        assert_eq!(go_float(f64::NEG_INFINITY), "-Inf");
    }
}
