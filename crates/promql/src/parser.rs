//! Our PromQL parser: a lexer and a recursive-descent parser that follow Prometheus's grammar
//! (`promql/parser/lex.go`, `generated_parser.y`) and its error messages with positions
//! (`1:5: parse error: unexpected <op:*>`, worded as Prometheus 2.42 prints them), then its type
//! checks, then the lowering into our AST. It also reads what Prometheus 3 added: quoted UTF-8
//! metric and label names, durations as numbers, `@` with durations, and the experimental
//! duration expressions (`[5m+step()]`, `offset -(1m*2)`).
//!
//! Regex matchers are compiled with our Go-RE2 front end, so `=~` behaves as in Prometheus.

use crate::ast::*;

mod check;
mod lexer;
mod parse;
mod signatures;

/// Parses a PromQL expression into our AST.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let mut p = parse::Parser::new(input);
    let node = p.parse_top();
    let first = |e: parse::PosError| ParseError::at(input, e.pos, e.msg);
    if let Some(e) = p.errs.first() {
        return Err(first(e.clone()));
    }
    let node = node.map_err(first)?;
    let mut c = check::Checker { errs: Vec::new() };
    c.check(&node);
    if let Some(e) = c.errs.into_iter().next() {
        return Err(first(e));
    }
    let e = check::lower(node).map_err(first)?;
    // The signature table lists only functions the engine evaluates; this keeps the two in step.
    crate::functions::check_call_args(&e).map_err(|msg| ParseError::at(input, 0, msg))?;
    Ok(e)
}

/// Parses one metric selector such as a `match[]` parameter (`up{job="a"}`, `{__name__=~"x.*"}`)
/// into its matchers, with Prometheus 2.42's `ParseMetricSelector` errors
/// (`1:3: parse error: unexpected "["`). Unlike [`parse`], an all-empty-matching selector is
/// accepted; callers that forbid it check themselves.
pub fn parse_metric_selector(input: &str) -> Result<Vec<model::Matcher>, ParseError> {
    let mut p = parse::Parser::new(input);
    let res = p.parse_metric_selector();
    let first = |e: parse::PosError| ParseError::at(input, e.pos, e.msg);
    if let Some(e) = p.errs.first() {
        return Err(first(e.clone()));
    }
    res.map_err(first)
}

/// Invalid PromQL. `msg` is the whole text as Prometheus prints it:
/// `line:column: parse error: what`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct ParseError {
    pub msg: String,
}

impl ParseError {
    /// An error at byte `pos` of `input`, prefixed `line:column: ` as Prometheus prints it
    /// (the column counts bytes from 1).
    fn at(input: &str, pos: usize, msg: String) -> Self {
        let pos = pos.min(input.len());
        let before = &input.as_bytes()[..pos];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let col = pos
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        ParseError {
            msg: format!("{line}:{col}: parse error: {msg}"),
        }
    }
}

#[cfg(test)]
mod native_tests;
