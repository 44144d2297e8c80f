//! The adapter from `promql-parser`'s syntax tree to ours. Nothing else in Vigil imports that crate,
//! so replacing it with our own parser later touches only this file.
//!
//! The library compiles regexes with Rust semantics; we rebuild every matcher with our Go-RE2
//! front end so `=~` behaves as in Prometheus.

use std::time::{Duration, SystemTime};

use model::{MatchType, Matcher};
use promql_parser::label::{MatchOp, Matchers as PMatchers};
use promql_parser::parser as p;

use crate::ast::*;

/// Invalid PromQL. Displays like Prometheus's parse errors (`parse error: ...`); the library
/// gives no positions, so none are shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error: {msg}")]
pub struct ParseError {
    pub msg: String,
}

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError { msg: msg.into() })
}

/// Parses a PromQL expression into our AST.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    if input.trim().is_empty() {
        return err("no expression found in input");
    }
    let e = p::parse(input).map_err(|msg| ParseError { msg: reword(msg) })?;
    let e = convert(&e)?;
    crate::functions::check_call_args(&e).map_err(|msg| ParseError { msg })?;
    Ok(e)
}

// The library's catch-all message says nothing; Prometheus says "unexpected ...". Keep the
// library's text but make the generic one read like Prometheus's.
fn reword(msg: String) -> String {
    if msg == "invalid promql query" {
        "unexpected input in expression".to_string()
    } else {
        msg
    }
}

fn duration_ms(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(o: &Option<p::Offset>) -> i64 {
    match o {
        None => 0,
        Some(p::Offset::Pos(d)) => duration_ms(d),
        Some(p::Offset::Neg(d)) => -duration_ms(d),
    }
}

fn at(a: &Option<p::AtModifier>) -> Option<At> {
    a.as_ref().map(|a| match a {
        p::AtModifier::Start => At::Start,
        p::AtModifier::End => At::End,
        p::AtModifier::At(t) => At::Timestamp(system_time_ms(t)),
    })
}

fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => -duration_ms(&e.duration()),
    }
}

fn matchers(ms: &PMatchers, name: &Option<String>) -> Result<Vec<Matcher>, ParseError> {
    if !ms.or_matchers.is_empty() {
        return err("unexpected \"or\" in label matching");
    }
    let mut out = Vec::with_capacity(ms.matchers.len() + 1);
    if let Some(n) = name {
        out.push(Matcher::equal(model::labels::METRIC_NAME, n.clone()));
    }
    for m in &ms.matchers {
        let kind = match m.op {
            MatchOp::Equal => MatchType::Equal,
            MatchOp::NotEqual => MatchType::NotEqual,
            MatchOp::Re(_) => MatchType::RegexMatch,
            MatchOp::NotRe(_) => MatchType::RegexNoMatch,
        };
        if name.is_some() && m.name == model::labels::METRIC_NAME {
            return err(format!(
                "metric name must not be set twice: {:?} or {:?}",
                name.as_deref().unwrap_or_default(),
                m.value
            ));
        }
        let mm = Matcher::new(kind, m.name.clone(), m.value.clone()).map_err(|e| ParseError {
            msg: format!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            ),
        })?;
        out.push(mm);
    }
    if out.iter().all(Matcher::matches_empty) {
        return err("vector selector must contain at least one non-empty matcher");
    }
    Ok(out)
}

fn vector_selector(vs: &p::VectorSelector) -> Result<VectorSelector, ParseError> {
    Ok(VectorSelector {
        name: vs.name.clone(),
        matchers: matchers(&vs.matchers, &vs.name)?,
        offset: offset_ms(&vs.offset),
        at: at(&vs.at),
    })
}

fn bin_op(t: p::token::TokenType) -> Result<BinOp, ParseError> {
    Ok(match t.to_string().as_str() {
        "+" => BinOp::Add,
        "-" => BinOp::Sub,
        "*" => BinOp::Mul,
        "/" => BinOp::Div,
        "%" => BinOp::Mod,
        "^" => BinOp::Pow,
        "atan2" => BinOp::Atan2,
        "==" => BinOp::Eq,
        "!=" => BinOp::Ne,
        ">" => BinOp::Gt,
        "<" => BinOp::Lt,
        ">=" => BinOp::Ge,
        "<=" => BinOp::Le,
        "and" => BinOp::And,
        "or" => BinOp::Or,
        "unless" => BinOp::Unless,
        other => return err(format!("unknown binary operator {other:?}")),
    })
}

fn binary(b: &p::BinaryExpr) -> Result<Expr, ParseError> {
    let op = bin_op(b.op)?;
    let lhs = convert(&b.lhs)?;
    let rhs = convert(&b.rhs)?;
    let both_vectors =
        lhs.value_type() == ValueType::Vector && rhs.value_type() == ValueType::Vector;
    let mut return_bool = false;
    let mut matching = None;
    if let Some(m) = &b.modifier {
        if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
            return err("fill modifiers are not supported");
        }
        return_bool = m.return_bool;
        if both_vectors {
            let (card, include) = match &m.card {
                p::VectorMatchCardinality::OneToOne => (Cardinality::OneToOne, vec![]),
                p::VectorMatchCardinality::ManyToOne(ls) => {
                    (Cardinality::ManyToOne, ls.labels.clone())
                }
                p::VectorMatchCardinality::OneToMany(ls) => {
                    (Cardinality::OneToMany, ls.labels.clone())
                }
                p::VectorMatchCardinality::ManyToMany => (Cardinality::ManyToMany, vec![]),
            };
            let (on, labels) = match &m.matching {
                Some(p::LabelModifier::Include(ls)) => (true, ls.labels.clone()),
                Some(p::LabelModifier::Exclude(ls)) => (false, ls.labels.clone()),
                None => (false, vec![]),
            };
            matching = Some(VectorMatching {
                card,
                on,
                labels,
                include,
            });
        }
    }
    if both_vectors && matching.is_none() {
        let card = if op.is_set() {
            Cardinality::ManyToMany
        } else {
            Cardinality::OneToOne
        };
        matching = Some(VectorMatching {
            card,
            on: false,
            labels: vec![],
            include: vec![],
        });
    }
    if let Some(m) = &mut matching
        && op.is_set()
    {
        m.card = Cardinality::ManyToMany;
    }
    Ok(Expr::Binary(Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
        return_bool,
        matching,
    }))
}

fn aggregate(a: &p::AggregateExpr) -> Result<Expr, ParseError> {
    let name = a.op.to_string();
    let Some(op) = AggOp::from_name(&name) else {
        return err(format!("unknown aggregation {name:?}"));
    };
    let grouping = match &a.modifier {
        None => Grouping::By(vec![]),
        Some(p::LabelModifier::Include(ls)) => Grouping::By(ls.labels.clone()),
        Some(p::LabelModifier::Exclude(ls)) => Grouping::Without(ls.labels.clone()),
    };
    let param = match &a.param {
        Some(p) => Some(Box::new(convert(p)?)),
        None => None,
    };
    Ok(Expr::Aggregate(Aggregate {
        op,
        expr: Box::new(convert(&a.expr)?),
        param,
        grouping,
    }))
}

fn convert(e: &p::Expr) -> Result<Expr, ParseError> {
    Ok(match e {
        p::Expr::NumberLiteral(n) => Expr::NumberLiteral(n.val),
        p::Expr::StringLiteral(s) => Expr::StringLiteral(s.val.clone()),
        p::Expr::VectorSelector(vs) => Expr::VectorSelector(vector_selector(vs)?),
        p::Expr::MatrixSelector(ms) => Expr::MatrixSelector(MatrixSelector {
            vs: vector_selector(&ms.vs)?,
            range: duration_ms(&ms.range),
        }),
        p::Expr::Subquery(s) => Expr::Subquery(Subquery {
            expr: Box::new(convert(&s.expr)?),
            range: duration_ms(&s.range),
            step: s.step.as_ref().map(duration_ms).filter(|&s| s > 0),
            offset: offset_ms(&s.offset),
            at: at(&s.at),
        }),
        p::Expr::Call(c) => Expr::Call(Call {
            func: c.func.name.to_string(),
            args: c
                .args
                .args
                .iter()
                .map(|a| convert(a))
                .collect::<Result<_, _>>()?,
        }),
        p::Expr::Aggregate(a) => aggregate(a)?,
        p::Expr::Binary(b) => binary(b)?,
        p::Expr::Unary(u) => Expr::Neg(Box::new(convert(&u.expr)?)),
        p::Expr::Paren(pe) => Expr::Paren(Box::new(convert(&pe.expr)?)),
        p::Expr::Extension(_) => return err("extension expressions are not supported"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_selectors_with_go_regex() {
        let e = parse(r#"foo{a=~"\\d+"} offset -5m @ 10"#).unwrap();
        let Expr::VectorSelector(vs) = e else {
            panic!("{e:?}")
        };
        assert_eq!(vs.offset, -300_000);
        assert_eq!(vs.at, Some(At::Timestamp(10_000)));
        assert_eq!(vs.matchers.len(), 2);
        assert!(vs.matchers[1].matches("12"));
    }

    #[test]
    fn converts_binary_matching() {
        let e = parse("a * on(x) group_left(y) b").unwrap();
        let Expr::Binary(b) = e else { panic!() };
        let m = b.matching.unwrap();
        assert_eq!(m.card, Cardinality::ManyToOne);
        assert!(m.on);
        assert_eq!(m.labels, vec!["x"]);
        assert_eq!(m.include, vec!["y"]);
    }

    #[test]
    fn errors() {
        assert!(parse("").is_err());
        assert!(parse("foo{").is_err());
        assert!(parse(r#"{a=~".*"}"#).is_err());
        assert!(parse("rate(foo)").is_err());
    }
}
