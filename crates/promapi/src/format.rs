//! `/api/v1/format_query`: a parsed expression printed back as Prometheus 2.42's `String()`
//! prints it (`sum by (job) (rate(x[5m]))`, sorted matchers, Go number formatting). Prometheus
//! breaks expressions longer than 100 characters over several lines; this prints them on one.

use std::fmt::Write;

use promql::ast::{
    AggOp, At, Binary, Cardinality, DurationExpr, Expr, Grouping, MatrixSelector, VectorSelector,
};

/// Go's `%q` for the strings PromQL prints (label values, string literals).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `fmt.Sprint(float64)`: shortest digits, `%e` form below 1e-4 and from 1e6.
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

fn duration(ms: i64) -> String {
    model::format_duration(std::time::Duration::from_millis(ms.unsigned_abs()))
}

fn duration_or_expr(ms: i64, e: &Option<DurationExpr>) -> String {
    match e {
        Some(e) => e.to_string(),
        None => duration(ms),
    }
}

fn at_and_offset(
    out: &mut String,
    at: &Option<At>,
    offset: i64,
    offset_expr: &Option<DurationExpr>,
) {
    match at {
        Some(At::Timestamp(t)) => {
            let _ = write!(out, " @ {:.3}", *t as f64 / 1000.0);
        }
        Some(At::Start) => out.push_str(" @ start()"),
        Some(At::End) => out.push_str(" @ end()"),
        None => {}
    }
    if let Some(e) = offset_expr {
        let _ = write!(out, " offset {e}");
    } else if offset > 0 {
        let _ = write!(out, " offset {}", duration(offset));
    } else if offset < 0 {
        let _ = write!(out, " offset -{}", duration(offset));
    }
}

fn selector(out: &mut String, vs: &VectorSelector) {
    if let Some(n) = &vs.name {
        out.push_str(n);
    }
    let mut ms: Vec<String> = vs
        .matchers
        .iter()
        .filter(|m| {
            !(vs.name.is_some() && m.name == "__name__" && m.kind == model::MatchType::Equal)
        })
        .map(|m| format!("{}{}{}", m.name, m.kind.as_str(), go_quote(&m.value)))
        .collect();
    if !ms.is_empty() {
        ms.sort();
        let _ = write!(out, "{{{}}}", ms.join(","));
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

fn binary(out: &mut String, b: &Binary) {
    write_expr(out, &b.lhs);
    let _ = write!(out, " {}", b.op.as_str());
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
    out.push(' ');
    write_expr(out, &b.rhs);
}

fn write_expr(out: &mut String, e: &Expr) {
    match e {
        Expr::NumberLiteral(v) => out.push_str(&go_float(*v)),
        Expr::StringLiteral(s) => out.push_str(&go_quote(s)),
        Expr::VectorSelector(vs) => {
            selector(out, vs);
            at_and_offset(out, &vs.at, vs.offset, &vs.offset_expr);
        }
        Expr::MatrixSelector(MatrixSelector {
            vs,
            range,
            range_expr,
        }) => {
            selector(out, vs);
            let _ = write!(out, "[{}]", duration_or_expr(*range, range_expr));
            at_and_offset(out, &vs.at, vs.offset, &vs.offset_expr);
        }
        Expr::Subquery(s) => {
            write_expr(out, &s.expr);
            let step = match (&s.step_expr, s.step) {
                (Some(e), _) => e.to_string(),
                (None, Some(st)) if st != 0 => duration(st),
                _ => String::new(),
            };
            let _ = write!(out, "[{}:{step}]", duration_or_expr(s.range, &s.range_expr));
            at_and_offset(out, &s.at, s.offset, &s.offset_expr);
        }
        Expr::Call(c) => {
            let _ = write!(out, "{}(", c.func);
            for (i, a) in c.args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, a);
            }
            out.push(')');
        }
        Expr::Aggregate(a) => {
            out.push_str(agg_name(a.op));
            match &a.grouping {
                Grouping::Without(ls) => {
                    let _ = write!(out, " without ({}) ", ls.join(", "));
                }
                Grouping::By(ls) if !ls.is_empty() => {
                    let _ = write!(out, " by ({}) ", ls.join(", "));
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
        Expr::Binary(b) => binary(out, b),
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

/// `expr` as Prometheus 2.42 prints it.
pub fn format_expr(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(q: &str) -> String {
        format_expr(&promql::parse(q).unwrap())
    }

    #[test]
    fn prints_like_prometheus_2_42() {
        // Answers of Prometheus 2.42's /api/v1/format_query.
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
    }
}
