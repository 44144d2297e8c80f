//! Recursive-descent PromQL parser producing a tree with positions, which `check` type-checks
//! and `lower` turns into our AST. Precedence, associativity and error wording follow
//! Prometheus's yacc grammar (`generated_parser.y`): `^` is right-associative, unary minus
//! binds like `*`, and `offset`, `@` and `[...]` bind tighter than any operator.

use model::{MatchType, Matcher};

use super::lexer::{LexError, Tok, Token, go_quote, lex, unquote};
use super::signatures::signature;
use crate::ast::{AggOp, At, BinOp, Cardinality, DurationExpr, Grouping, RangeModifier, ValueType};

/// An error with the byte range Prometheus attributes it to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PosError {
    pub pos: usize,
    pub msg: String,
}

/// A duration: a constant in ms, or an expression that needs the query's step or range.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Dur {
    Ms(i64),
    Expr(DurationExpr),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sel {
    pub name: Option<String>,
    pub matchers: Vec<Matcher>,
    pub offset: Option<Dur>,
    pub at: Option<At>,
    pub modifier: Option<RangeModifier>,
}

/// Binary matching as Prometheus's parser records it before type checking.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Matching {
    pub card: Cardinality,
    pub on: bool,
    pub labels: Vec<String>,
    pub include: Vec<String>,
    pub fill_left: Option<f64>,
    pub fill_right: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Number(f64),
    Str(Vec<u8>),
    Vector(Sel),
    Matrix {
        sel: Sel,
        range: Dur,
    },
    Subquery {
        expr: Box<Node>,
        range: Dur,
        step: Option<Dur>,
        offset: Option<Dur>,
        at: Option<At>,
    },
    Call {
        name: String,
        args: Vec<Node>,
    },
    Agg {
        op: AggOp,
        args: Vec<Node>,
        grouping: Grouping,
    },
    Binary {
        op: BinOp,
        /// Where the operator token starts.
        op_pos: usize,
        lhs: Box<Node>,
        rhs: Box<Node>,
        bool_mod: bool,
        matching: Matching,
    },
    Unary {
        neg: bool,
        expr: Box<Node>,
    },
    Paren(Box<Node>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

type PResult<T> = Result<T, PosError>;

pub(crate) struct Parser {
    toks: Vec<Token>,
    i: usize,
    lex_err: Option<LexError>,
    /// Errors found while parsing that do not stop it (unknown function, bad offset, ...),
    /// in the order Prometheus finds them.
    pub errs: Vec<PosError>,
    /// How deep `expr` recursion is.
    depth: usize,
}

/// The deepest expression tree accepted. Parsing, checking and evaluation recurse over the
/// tree, so a bound keeps a pathological query from exhausting the stack; real queries stay
/// far below it.
pub(crate) const MAX_DEPTH: usize = 128;

const PREC_OR: u8 = 1;
const PREC_POW: u8 = 6;

fn binop(t: &Token) -> Option<(BinOp, u8)> {
    Some(match t.tok {
        Tok::Or => (BinOp::Or, PREC_OR),
        Tok::And => (BinOp::And, 2),
        Tok::Unless => (BinOp::Unless, 2),
        Tok::EqlC => (BinOp::Eq, 3),
        Tok::Neq => (BinOp::Ne, 3),
        Tok::Lss => (BinOp::Lt, 3),
        Tok::Lte => (BinOp::Le, 3),
        Tok::Gtr => (BinOp::Gt, 3),
        Tok::Gte => (BinOp::Ge, 3),
        Tok::Add => (BinOp::Add, 4),
        Tok::Sub => (BinOp::Sub, 4),
        Tok::Mul => (BinOp::Mul, 5),
        Tok::Div => (BinOp::Div, 5),
        Tok::Mod => (BinOp::Mod, 5),
        Tok::Atan2 => (BinOp::Atan2, 5),
        Tok::Pow => (BinOp::Pow, PREC_POW),
        _ => return None,
    })
}

fn is_kw(t: &Token, w: &str) -> bool {
    t.tok == Tok::Keyword && t.val.eq_ignore_ascii_case(w)
}

/// Tokens usable as a metric name (Prometheus's `metric_identifier`).
fn is_metric_ident(t: &Token) -> bool {
    match t.tok {
        Tok::Ident | Tok::MetricIdent | Tok::Aggr | Tok::And | Tok::Or | Tok::Unless => true,
        Tok::Preproc => true,
        Tok::Keyword => [
            "by",
            "without",
            "offset",
            "smoothed",
            "anchored",
            "fill",
            "fill_left",
            "fill_right",
        ]
        .iter()
        .any(|w| t.val.eq_ignore_ascii_case(w)),
        _ => false,
    }
}

/// Tokens usable as a label in grouping clauses (Prometheus's `maybe_label`).
fn is_maybe_label(t: &Token) -> bool {
    matches!(
        t.tok,
        Tok::Ident
            | Tok::MetricIdent
            | Tok::Aggr
            | Tok::Keyword
            | Tok::And
            | Tok::Or
            | Tok::Unless
            | Tok::Atan2
            | Tok::Preproc
    )
}

fn is_label_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && cs.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Prometheus's `model.ParseDuration`: `1y2w3d4h5m6s7ms`, each unit once and in this order.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let bad = || format!("not a valid duration string: {}", go_quote(s));
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut rest = s;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| "duration out of range".to_string())?;
        rest = &rest[digits..];
        let unit_len = if rest.starts_with("ms") {
            2
        } else {
            rest.chars().next().map_or(0, char::len_utf8)
        };
        let unit = &rest[..unit_len];
        let Some(k) = UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(bad());
        };
        let (_, mult) = UNITS[next_unit + k];
        next_unit += k + 1;
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| "duration out of range".to_string())?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Go's `strconv.ParseInt(s, 0, 64)` then `ParseFloat(s, 64)`, as Prometheus reads numbers.
pub(crate) fn parse_number(s: &str) -> Result<f64, String> {
    let lower = s.to_ascii_lowercase();
    if lower == "inf" {
        return Ok(f64::INFINITY);
    }
    if lower == "nan" {
        return Ok(f64::NAN);
    }
    let int = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()
    } else {
        lower.parse::<i64>().ok()
    };
    if let Some(i) = int {
        return Ok(i as f64);
    }
    let syntax = || {
        format!(
            "error parsing number: strconv.ParseFloat: parsing {}: invalid syntax",
            go_quote(s)
        )
    };
    if lower.starts_with("0x") || lower.ends_with(['e', '+', '-']) {
        return Err(syntax());
    }
    match lower.parse::<f64>() {
        Ok(f) if f.is_infinite() => Err(format!(
            "error parsing number: strconv.ParseFloat: parsing {}: value out of range",
            go_quote(s)
        )),
        Ok(f) => Ok(f),
        Err(_) => Err(syntax()),
    }
}

/// compat: Prometheus 2 compiles `^(?:value)$`, so Go's error quotes that wrapped text where
/// it blames the whole pattern or the rest of it.
fn go_wrapped_regex_error(r: &model::RegexError, value: &str) -> String {
    use model::regex::ErrorCode;
    match r.code() {
        ErrorCode::MissingParen | ErrorCode::UnexpectedParen | ErrorCode::TrailingBackslash => {
            let code = if r.code() == ErrorCode::UnexpectedParen {
                ErrorCode::UnexpectedParen
            } else {
                ErrorCode::MissingParen
            };
            format!("error parsing regexp: {code}: `^(?:{value})$`")
        }
        ErrorCode::MissingBracket => {
            format!("error parsing regexp: {}: `{})$`", r.code(), r.expr())
        }
        _ => r.to_string(),
    }
}

fn e_regex(e: &model::matcher::MatcherError) -> Option<&model::RegexError> {
    match e {
        model::matcher::MatcherError::Regex { source, .. } => Some(source),
    }
}

fn go_float_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v:.6}")
    }
}

impl Parser {
    pub(crate) fn new(src: &str) -> Self {
        let (mut toks, lex_err) = lex(src);
        if let Some(e) = &lex_err {
            // The lexer stops at its error; the parser sees end of input there.
            toks.push(Token {
                tok: Tok::Eof,
                pos: e.pos,
                val: String::new(),
            });
        }
        Parser {
            toks,
            i: 0,
            lex_err,
            errs: Vec::new(),
            depth: 0,
        }
    }

    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Token {
        &self.toks[(self.i + n).min(self.toks.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    /// A syntax error at the current token; a lexer error wins when the parser ran into it.
    fn unexpected(&self, context: &str, expected: &str) -> PosError {
        let t = self.peek();
        if t.tok == Tok::Eof
            && let Some(e) = &self.lex_err
        {
            return PosError {
                pos: e.pos,
                msg: e.msg.clone(),
            };
        }
        let mut msg = format!("unexpected {}", t.desc());
        if !context.is_empty() {
            msg.push_str(" in ");
            msg.push_str(context);
        }
        if !expected.is_empty() {
            msg.push_str(", expected ");
            msg.push_str(expected);
        }
        PosError { pos: t.pos, msg }
    }

    fn semantic(&mut self, pos: usize, msg: impl Into<String>) {
        self.errs.push(PosError {
            pos,
            msg: msg.into(),
        });
    }

    /// The whole input as one expression.
    pub(crate) fn parse_top(&mut self) -> PResult<Node> {
        if self.peek().tok == Tok::Eof && self.lex_err.is_none() {
            return Err(PosError {
                pos: 0,
                msg: "no expression found in input".into(),
            });
        }
        let e = self.expr(0)?;
        if self.peek().tok != Tok::Eof {
            return Err(self.unexpected("", ""));
        }
        if tree_depth(&e) > MAX_DEPTH {
            return Err(too_deep(e.start));
        }
        if let Some(e) = &self.lex_err {
            return Err(PosError {
                pos: e.pos,
                msg: e.msg.clone(),
            });
        }
        Ok(e)
    }

    /// The whole input as one vector selector without modifiers (Prometheus's
    /// `ParseMetricSelector`, used for `match[]`): no type checks, so `{a=~".*"}` is accepted.
    pub(crate) fn parse_metric_selector(&mut self) -> PResult<Vec<Matcher>> {
        let t = self.peek().clone();
        let node = match t.tok {
            Tok::LBrace => self.vector_selector(None, t.pos)?,
            _ if is_metric_ident(&t) => {
                self.bump();
                self.vector_selector(Some(t.val.clone()), t.pos)?
            }
            _ => return Err(self.unexpected("", "")),
        };
        if self.peek().tok != Tok::Eof {
            return Err(self.unexpected("", ""));
        }
        if let Some(e) = &self.lex_err {
            return Err(PosError {
                pos: e.pos,
                msg: e.msg.clone(),
            });
        }
        match node.kind {
            Kind::Vector(sel) => Ok(sel.matchers),
            _ => Err(PosError {
                pos: t.pos,
                msg: "expected a vector selector".into(),
            }),
        }
    }

    fn expr(&mut self, min_prec: u8) -> PResult<Node> {
        self.depth += 1;
        let r = if self.depth > MAX_DEPTH {
            Err(too_deep(self.peek().pos))
        } else {
            self.expr_inner(min_prec)
        };
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, min_prec: u8) -> PResult<Node> {
        let mut lhs = self.unary()?;
        let mut chain = 0;
        loop {
            let t = self.peek().clone();
            let Some((op, prec)) = binop(&t) else {
                return Ok(lhs);
            };
            if prec < min_prec {
                return Ok(lhs);
            }
            // Each operator of a left-associative chain deepens the tree by one.
            chain += 1;
            if self.depth + chain > MAX_DEPTH {
                return Err(too_deep(t.pos));
            }
            self.bump();
            let (bool_mod, matching) = self.bin_modifiers(op)?;
            let next = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.expr(next)?;
            lhs = Node {
                start: lhs.start,
                end: rhs.end,
                kind: Kind::Binary {
                    op,
                    op_pos: t.pos,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                    bool_mod,
                    matching,
                },
            };
        }
    }

    fn unary(&mut self) -> PResult<Node> {
        let t = self.peek().clone();
        if matches!(t.tok, Tok::Add | Tok::Sub) {
            self.bump();
            // compat: Prometheus gives unary minus the precedence of `*`, so `-a^b` is `-(a^b)`.
            let e = self.expr(PREC_POW)?;
            let end = e.end;
            if let Kind::Number(v) = e.kind {
                let v = if t.tok == Tok::Sub { -v } else { v };
                return Ok(Node {
                    kind: Kind::Number(v),
                    start: t.pos,
                    end,
                });
            }
            return Ok(Node {
                kind: Kind::Unary {
                    neg: t.tok == Tok::Sub,
                    expr: Box::new(e),
                },
                start: t.pos,
                end,
            });
        }
        let e = self.primary()?;
        self.postfix(e)
    }

    /// `[range]`, `[range:step]`, `offset`, `@`, `anchored`/`smoothed` after an expression.
    fn postfix(&mut self, mut e: Node) -> PResult<Node> {
        loop {
            let t = self.peek().clone();
            e = match t.tok {
                Tok::LBracket => self.range_or_subquery(e)?,
                Tok::Keyword if is_kw(&t, "offset") => self.offset(e)?,
                Tok::At => self.at(e)?,
                Tok::Keyword if is_kw(&t, "anchored") || is_kw(&t, "smoothed") => {
                    self.bump();
                    let word = t.val.to_ascii_lowercase();
                    let m = if word == "anchored" {
                        RangeModifier::Anchored
                    } else {
                        RangeModifier::Smoothed
                    };
                    match &mut e.kind {
                        Kind::Matrix { sel, .. } if sel.modifier.is_none() => {
                            sel.modifier = Some(m);
                            e.end = t.end();
                        }
                        Kind::Vector(sel)
                            if sel.modifier.is_none() && m == RangeModifier::Smoothed =>
                        {
                            sel.modifier = Some(m);
                            e.end = t.end();
                        }
                        _ => {
                            self.semantic(
                                e.start,
                                format!("{word} modifier must be preceded by a vector selector"),
                            );
                        }
                    }
                    e
                }
                _ => return Ok(e),
            };
        }
    }

    fn primary(&mut self) -> PResult<Node> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Number => {
                self.bump();
                let v = parse_number(&t.val).unwrap_or_else(|m| {
                    self.semantic(t.pos, m);
                    0.0
                });
                Ok(Node {
                    kind: Kind::Number(v),
                    start: t.pos,
                    end: t.end(),
                })
            }
            Tok::Duration => {
                // Prometheus 3: a duration where a number is expected means its seconds.
                self.bump();
                let ms = parse_duration(&t.val).map_err(|msg| PosError { pos: t.pos, msg })?;
                Ok(Node {
                    kind: Kind::Number(ms as f64 / 1000.0),
                    start: t.pos,
                    end: t.end(),
                })
            }
            Tok::Str => {
                self.bump();
                Ok(Node {
                    kind: Kind::Str(unquote(&t.val)),
                    start: t.pos,
                    end: t.end(),
                })
            }
            Tok::LParen => {
                self.bump();
                let e = self.expr(0)?;
                if self.peek().tok != Tok::RParen {
                    return Err(self.unexpected("", ""));
                }
                let close = self.bump();
                Ok(Node {
                    kind: Kind::Paren(Box::new(e)),
                    start: t.pos,
                    end: close.end(),
                })
            }
            Tok::LBrace => self.vector_selector(None, t.pos),
            Tok::Aggr if self.starts_aggregation() => self.aggregation(),
            Tok::Ident | Tok::Preproc if self.peek_at(1).tok == Tok::LParen => self.call(),
            _ if is_metric_ident(&t) => {
                self.bump();
                self.vector_selector(Some(t.val.clone()), t.pos)
            }
            _ => Err(self.unexpected("", "")),
        }
    }

    fn starts_aggregation(&self) -> bool {
        let n = self.peek_at(1);
        n.tok == Tok::LParen || is_kw(n, "by") || is_kw(n, "without")
    }

    fn call(&mut self) -> PResult<Node> {
        let name = self.bump();
        let (args, end) = self.call_body("")?;
        // Prometheus finds this when it reduces the call, after the closing parenthesis.
        if signature(&name.val).is_none() {
            self.semantic(
                name.pos,
                format!("unknown function with name {}", go_quote(&name.val)),
            );
        }
        Ok(Node {
            kind: Kind::Call {
                name: name.val,
                args,
            },
            start: name.pos,
            end,
        })
    }

    /// `( args )`; returns the arguments and the end of `)`.
    fn call_body(&mut self, context: &str) -> PResult<(Vec<Node>, usize)> {
        if self.peek().tok != Tok::LParen {
            return Err(self.unexpected(context, ""));
        }
        self.bump();
        let mut args = Vec::new();
        if self.peek().tok == Tok::RParen {
            return Ok((args, self.bump().end()));
        }
        loop {
            args.push(self.expr(0)?);
            match self.peek().tok {
                Tok::RParen => return Ok((args, self.bump().end())),
                Tok::Comma => {
                    let comma = self.bump();
                    if self.peek().tok == Tok::RParen {
                        self.semantic(
                            comma.pos,
                            "trailing commas not allowed in function call args",
                        );
                        return Ok((args, self.bump().end()));
                    }
                }
                _ => return Err(self.unexpected(context, "")),
            }
        }
    }

    fn aggregation(&mut self) -> PResult<Node> {
        let op_tok = self.bump();
        let op = AggOp::from_name(&op_tok.val.to_ascii_lowercase())
            .ok_or_else(|| self.unexpected("aggregation", ""))?;
        let mut grouping = None;
        if is_kw(self.peek(), "by") || is_kw(self.peek(), "without") {
            grouping = Some(self.grouping_clause()?);
        }
        let (args, mut end) = self.call_body("aggregation")?;
        if grouping.is_none() && (is_kw(self.peek(), "by") || is_kw(self.peek(), "without")) {
            grouping = Some(self.grouping_clause()?);
            end = self.toks[self.i.saturating_sub(1)].end();
        }
        let want = if matches!(
            op,
            AggOp::Topk
                | AggOp::Bottomk
                | AggOp::CountValues
                | AggOp::Quantile
                | AggOp::Limitk
                | AggOp::LimitRatio
        ) {
            2
        } else {
            1
        };
        if args.is_empty() {
            self.semantic(op_tok.pos, "no arguments for aggregate expression provided");
        } else if args.len() != want {
            self.semantic(
                op_tok.pos,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected {want}, got {}",
                    args.len()
                ),
            );
        }
        Ok(Node {
            kind: Kind::Agg {
                op,
                args,
                grouping: grouping.unwrap_or(Grouping::By(vec![])),
            },
            start: op_tok.pos,
            end,
        })
    }

    fn grouping_clause(&mut self) -> PResult<Grouping> {
        let kw = self.bump();
        let labels = self.grouping_labels()?;
        Ok(if kw.val.eq_ignore_ascii_case("by") {
            Grouping::By(labels)
        } else {
            Grouping::Without(labels)
        })
    }

    /// `(a, b, ...)` in `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    fn grouping_labels(&mut self) -> PResult<Vec<String>> {
        if self.peek().tok != Tok::LParen {
            return Err(self.unexpected("grouping opts", "\"(\""));
        }
        self.bump();
        let mut labels = Vec::new();
        loop {
            let t = self.peek().clone();
            if t.tok == Tok::RParen {
                self.bump();
                return Ok(labels);
            }
            if is_maybe_label(&t) && is_label_name(&t.val) {
                labels.push(t.val.clone());
            } else if t.tok == Tok::Str {
                // Prometheus 3: quoted (UTF-8) label names.
                labels.push(self.utf8_string(&t)?);
            } else {
                return Err(self.unexpected("grouping opts", "label"));
            }
            self.bump();
            match self.peek().tok {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {}
                _ => return Err(self.unexpected("grouping opts", "\",\" or \")\"")),
            }
        }
    }

    fn utf8_string(&mut self, t: &Token) -> PResult<String> {
        String::from_utf8(unquote(&t.val)).map_err(|_| PosError {
            pos: t.pos,
            msg: format!("invalid UTF-8 in {}", t.val),
        })
    }

    fn bin_modifiers(&mut self, op: BinOp) -> PResult<(bool, Matching)> {
        let mut m = Matching {
            card: Cardinality::OneToOne,
            on: false,
            labels: vec![],
            include: vec![],
            fill_left: None,
            fill_right: None,
        };
        let mut bool_mod = false;
        if is_kw(self.peek(), "bool") {
            self.bump();
            bool_mod = true;
        }
        if is_kw(self.peek(), "on") || is_kw(self.peek(), "ignoring") {
            m.on = self.bump().val.eq_ignore_ascii_case("on");
            m.labels = self.grouping_labels()?;
            if is_kw(self.peek(), "group_left") || is_kw(self.peek(), "group_right") {
                let g = self.bump();
                m.card = if g.val.eq_ignore_ascii_case("group_left") {
                    Cardinality::ManyToOne
                } else {
                    Cardinality::OneToMany
                };
                match self.peek().tok {
                    Tok::LParen => m.include = self.grouping_labels()?,
                    // compat: Prometheus's grammar expects labels when the input ends here.
                    Tok::Eof => return Err(self.unexpected("grouping opts", "\"(\"")),
                    _ => {}
                }
            }
        }
        let _ = op;
        loop {
            let t = self.peek().clone();
            if self.peek_at(1).tok != Tok::LParen {
                break;
            }
            let side = if is_kw(&t, "fill") {
                (true, true)
            } else if is_kw(&t, "fill_left") {
                (true, false)
            } else if is_kw(&t, "fill_right") {
                (false, true)
            } else {
                break;
            };
            self.bump();
            let v = self.fill_value()?;
            if side.0 {
                m.fill_left = Some(v);
            }
            if side.1 {
                m.fill_right = Some(v);
            }
        }
        Ok((bool_mod, m))
    }

    /// `(number)` after `fill`, `fill_left`, `fill_right`.
    fn fill_value(&mut self) -> PResult<f64> {
        if self.peek().tok != Tok::LParen {
            return Err(self.unexpected("fill modifier", "\"(\""));
        }
        self.bump();
        let neg = match self.peek().tok {
            Tok::Sub => {
                self.bump();
                true
            }
            Tok::Add => {
                self.bump();
                false
            }
            _ => false,
        };
        let t = self.peek().clone();
        if t.tok != Tok::Number {
            return Err(self.unexpected("fill modifier", "number"));
        }
        self.bump();
        let v = parse_number(&t.val).map_err(|msg| PosError { pos: t.pos, msg })?;
        if self.peek().tok != Tok::RParen {
            return Err(self.unexpected("fill modifier", "\")\""));
        }
        self.bump();
        Ok(if neg { -v } else { v })
    }

    fn vector_selector(&mut self, name: Option<String>, start: usize) -> PResult<Node> {
        let mut sel = Sel {
            name,
            matchers: Vec::new(),
            offset: None,
            at: None,
            modifier: None,
        };
        let mut end = start + sel.name.as_ref().map_or(0, String::len);
        if self.peek().tok == Tok::LBrace {
            self.bump();
            end = self.label_matchers(&mut sel)?;
        }
        if let Some(n) = &sel.name {
            sel.matchers
                .push(Matcher::equal(model::labels::METRIC_NAME, n.clone()));
        }
        Ok(Node {
            kind: Kind::Vector(sel),
            start,
            end,
        })
    }

    /// After `{`: matchers up to and including `}`; returns the end of `}`.
    fn label_matchers(&mut self, sel: &mut Sel) -> PResult<usize> {
        let mut first = true;
        loop {
            let t = self.peek().clone();
            if t.tok == Tok::RBrace {
                self.bump();
                return Ok(t.end());
            }
            if !first {
                // The previous matcher was followed by a comma.
            }
            first = false;
            match t.tok {
                Tok::Ident => {
                    self.bump();
                    self.label_matcher(sel, t.val.clone(), t.pos)?;
                }
                Tok::Str => {
                    self.bump();
                    let name = self.utf8_string(&t)?;
                    if matches!(
                        self.peek().tok,
                        Tok::Assign | Tok::Neq | Tok::EqlRegex | Tok::NeqRegex
                    ) {
                        self.label_matcher(sel, name, t.pos)?;
                    } else if sel.name.is_some() {
                        // Prometheus 3: a lone quoted string in braces names the metric.
                        self.semantic(
                            t.pos,
                            format!(
                                "metric name must not be set twice: {} or {}",
                                go_quote(sel.name.as_deref().unwrap_or_default()),
                                go_quote(&name)
                            ),
                        );
                    } else {
                        sel.name = Some(name);
                    }
                }
                _ => return Err(self.unexpected("label matching", "identifier or \"}\"")),
            }
            match self.peek().tok {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RBrace => {}
                _ => return Err(self.unexpected("label matching", "\",\" or \"}\"")),
            }
        }
    }

    fn label_matcher(&mut self, sel: &mut Sel, name: String, start: usize) -> PResult<()> {
        let kind = match self.peek().tok {
            Tok::Assign => MatchType::Equal,
            Tok::Neq => MatchType::NotEqual,
            Tok::EqlRegex => MatchType::RegexMatch,
            Tok::NeqRegex => MatchType::RegexNoMatch,
            _ => {
                return Err(self.unexpected("label matching", "label matching operator"));
            }
        };
        self.bump();
        let v = self.peek().clone();
        if v.tok != Tok::Str {
            return Err(self.unexpected("label matching", "string"));
        }
        self.bump();
        let bytes = unquote(&v.val);
        let value = String::from_utf8_lossy(&bytes).into_owned();
        let regex = matches!(kind, MatchType::RegexMatch | MatchType::RegexNoMatch);
        if regex && let Err(e) = std::str::from_utf8(&bytes) {
            // compat: Go compiles `^(?:value)$` and blames the rest from the bad byte.
            let rest = String::from_utf8_lossy(&bytes[e.valid_up_to()..]);
            self.semantic(
                start,
                format!("error parsing regexp: invalid UTF-8: `{rest})$`"),
            );
            return Ok(());
        }
        match Matcher::new(kind, name, value.clone()) {
            Ok(m) => sel.matchers.push(m),
            Err(e) => {
                let msg = match e_regex(&e) {
                    Some(r) => go_wrapped_regex_error(r, &value),
                    None => e.to_string(),
                };
                self.semantic(start, msg);
            }
        }
        Ok(())
    }

    fn range_or_subquery(&mut self, e: Node) -> PResult<Node> {
        let open = self.bump();
        if self.peek().tok == Tok::Colon || self.peek().tok == Tok::RBracket {
            return Err(self.unexpected("subquery selector", "duration"));
        }
        if self.lone_negation() {
            return Err(PosError {
                pos: self.peek().pos,
                msg: "missing unit character in duration".into(),
            });
        }
        let range = self.duration_expr("subquery selector", "duration", true)?;
        match self.peek().tok {
            Tok::RBracket => {
                let close = self.bump();
                self.positive(&range, open.pos + 1);
                let msg = match &e.kind {
                    Kind::Vector(s) if s.modifier.is_some() => {
                        Some("no modifiers allowed before range")
                    }
                    Kind::Vector(s) if s.offset.is_some() => {
                        Some("no offset modifiers allowed before range")
                    }
                    Kind::Vector(s) if s.at.is_some() => {
                        Some("no @ modifiers allowed before range")
                    }
                    Kind::Vector(_) => None,
                    _ => Some("ranges only allowed for vector selectors"),
                };
                if let Some(m) = msg {
                    self.semantic(open.pos, m);
                    return Ok(e);
                }
                let Kind::Vector(sel) = e.kind else {
                    return Ok(e);
                };
                Ok(Node {
                    kind: Kind::Matrix { sel, range },
                    start: e.start,
                    end: close.end(),
                })
            }
            Tok::Colon => {
                self.bump();
                let step = if self.peek().tok == Tok::RBracket {
                    None
                } else {
                    if self.lone_negation() {
                        return Err(self.unexpected("subquery selector", "duration or \"]\""));
                    }
                    let step_pos = self.peek().pos;
                    let s = self.duration_expr("subquery selector", "duration or \"]\"", true)?;
                    self.positive(&s, step_pos);
                    Some(s)
                };
                if self.peek().tok != Tok::RBracket {
                    return Err(self.unexpected("subquery selector", "\"]\""));
                }
                let close = self.bump();
                self.positive(&range, open.pos + 1);
                Ok(Node {
                    start: e.start,
                    end: close.end(),
                    kind: Kind::Subquery {
                        expr: Box::new(e),
                        range,
                        step,
                        offset: None,
                        at: None,
                    },
                })
            }
            _ => Err(self.unexpected("subquery or range", "\":\" or \"]\"")),
        }
    }

    /// Whether a range or subquery step is just a negated duration (`[-5m]`, `[5m:-1m]`),
    /// which Prometheus 2.42 rejects where the minus stands; with more after it
    /// (`[-5m+35m]`) it is a 3.x duration expression.
    fn lone_negation(&self) -> bool {
        let tok = |k: usize| self.toks.get(self.i + k).map(|t| &t.tok);
        tok(0) == Some(&Tok::Sub)
            && tok(1) == Some(&Tok::Duration)
            && matches!(tok(2), Some(Tok::RBracket | Tok::Colon))
    }

    fn positive(&mut self, d: &Dur, pos: usize) {
        if let Dur::Ms(ms) = d
            && *ms <= 0
        {
            self.semantic(pos, "duration must be greater than 0");
        }
    }

    fn offset(&mut self, mut e: Node) -> PResult<Node> {
        self.bump();
        let dur_pos = self.peek().pos;
        let d = self.duration_atom("offset", "duration")?;
        if d == Dur::Ms(0) && !matches!(self.toks[self.i - 1].tok, Tok::RParen) {
            self.semantic(dur_pos, "duration must be greater than 0");
        }
        let end = self.toks[self.i - 1].end();
        let slot = match &mut e.kind {
            Kind::Vector(s) | Kind::Matrix { sel: s, .. } => Some(&mut s.offset),
            Kind::Subquery { offset, .. } => Some(offset),
            _ => None,
        };
        match slot {
            None => self.semantic(
                e.start,
                "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
            ),
            Some(Some(_)) => self.semantic(e.start, "offset may not be set multiple times"),
            Some(slot) => {
                *slot = Some(d);
                e.end = end;
            }
        }
        Ok(e)
    }

    fn at(&mut self, mut e: Node) -> PResult<Node> {
        self.bump();
        let t = self.peek().clone();
        let at = match t.tok {
            Tok::Preproc => {
                self.bump();
                if self.peek().tok != Tok::LParen {
                    return Err(self.unexpected("@", "timestamp"));
                }
                self.bump();
                if self.peek().tok != Tok::RParen {
                    return Err(self.unexpected("@", "timestamp"));
                }
                self.bump();
                if t.val.eq_ignore_ascii_case("start") {
                    At::Start
                } else {
                    At::End
                }
            }
            Tok::Number | Tok::Duration | Tok::Add | Tok::Sub => {
                let neg = match t.tok {
                    Tok::Number | Tok::Duration => false,
                    _ => {
                        self.bump();
                        t.tok == Tok::Sub
                    }
                };
                let n = self.peek().clone();
                let mut v = match n.tok {
                    Tok::Number => parse_number(&n.val),
                    // Prometheus 3 also takes a duration since the epoch: `@ 1m40s`.
                    Tok::Duration => parse_duration(&n.val).map(|ms| ms as f64 / 1000.0),
                    _ => return Err(self.unexpected("@", "timestamp")),
                }
                .map_err(|msg| PosError { pos: n.pos, msg })?;
                self.bump();
                if neg {
                    v = -v;
                }
                if !v.is_finite() || v >= i64::MAX as f64 || v <= i64::MIN as f64 {
                    self.semantic(
                        e.start,
                        format!("timestamp out of bounds for @ modifier: {}", go_float_f(v)),
                    );
                }
                At::Timestamp((v * 1000.0).round() as i64)
            }
            _ => return Err(self.unexpected("@", "timestamp")),
        };
        let end = self.toks[self.i - 1].end();
        let slot = match &mut e.kind {
            Kind::Vector(s) | Kind::Matrix { sel: s, .. } => Some(&mut s.at),
            Kind::Subquery { at, .. } => Some(at),
            _ => None,
        };
        match slot {
            None => self.semantic(
                e.start,
                "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery",
            ),
            Some(Some(_)) => self.semantic(e.start, "@ <timestamp> may not be set multiple times"),
            Some(slot) => {
                *slot = Some(at);
                e.end = end;
            }
        }
        Ok(e)
    }

    // Duration expressions (Prometheus 3, experimental): inside brackets a full arithmetic
    // expression; after `offset` one signed atom (a literal, a call or a parenthesised
    // expression), so `x offset 1m + 2` adds 2 to the selector.

    fn duration_expr(&mut self, context: &str, expected: &str, full: bool) -> PResult<Dur> {
        let e = if full {
            self.dur_binary(0, context, expected)?
        } else {
            self.dur_unary(context, expected, false)?
        };
        Ok(fold(e))
    }

    fn duration_atom(&mut self, context: &str, expected: &str) -> PResult<Dur> {
        self.duration_expr(context, expected, false)
    }

    fn dur_binary(&mut self, min_prec: u8, context: &str, expected: &str) -> PResult<DurationExpr> {
        self.depth += 1;
        let r = if self.depth > MAX_DEPTH {
            Err(too_deep(self.peek().pos))
        } else {
            self.dur_binary_inner(min_prec, context, expected)
        };
        self.depth -= 1;
        r
    }

    fn dur_binary_inner(
        &mut self,
        min_prec: u8,
        context: &str,
        expected: &str,
    ) -> PResult<DurationExpr> {
        let mut lhs = self.dur_unary(context, expected, true)?;
        let mut chain = 0;
        loop {
            let t = self.peek().clone();
            let Some((op, prec)) = binop(&t) else {
                return Ok(lhs);
            };
            if prec < 4 || prec < min_prec || op == BinOp::Atan2 {
                return Ok(lhs);
            }
            chain += 1;
            if self.depth + chain > MAX_DEPTH {
                return Err(too_deep(t.pos));
            }
            self.bump();
            let next = if op == BinOp::Pow { prec } else { prec + 1 };
            let rhs = self.dur_binary(next, context, expected)?;
            lhs = DurationExpr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
    }

    fn dur_unary(&mut self, context: &str, expected: &str, full: bool) -> PResult<DurationExpr> {
        let t = self.peek().clone();
        if matches!(t.tok, Tok::Add | Tok::Sub) {
            self.bump();
            let e = if full {
                self.dur_binary(PREC_POW, context, expected)?
            } else {
                self.dur_unary(context, expected, false)?
            };
            return Ok(if t.tok == Tok::Sub {
                DurationExpr::Neg(Box::new(e))
            } else {
                e
            });
        }
        self.dur_primary(context, expected)
    }

    fn dur_primary(&mut self, context: &str, expected: &str) -> PResult<DurationExpr> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Duration => {
                self.bump();
                match parse_duration(&t.val) {
                    Ok(ms) => Ok(DurationExpr::Seconds(ms as f64 / 1000.0)),
                    Err(msg) => {
                        self.semantic(t.pos, msg);
                        Ok(DurationExpr::Seconds(1.0))
                    }
                }
            }
            Tok::Number => {
                self.bump();
                let v = parse_number(&t.val).map_err(|msg| PosError { pos: t.pos, msg })?;
                Ok(DurationExpr::Seconds(v))
            }
            Tok::LParen => {
                self.bump();
                let e = self.dur_binary(0, context, expected)?;
                if self.peek().tok != Tok::RParen {
                    return Err(self.unexpected(context, "\")\""));
                }
                self.bump();
                Ok(e)
            }
            Tok::Ident | Tok::Preproc if self.peek_at(1).tok == Tok::LParen => {
                let name = t.val.to_ascii_lowercase();
                let arity = match name.as_str() {
                    "step" | "range" => 0,
                    "min_of" | "max_of" => 2,
                    _ => return Err(self.unexpected(context, expected)),
                };
                self.bump();
                self.bump();
                let mut args = Vec::new();
                while args.len() < arity {
                    args.push(self.dur_binary(0, context, expected)?);
                    if args.len() < arity {
                        if self.peek().tok != Tok::Comma {
                            return Err(self.unexpected(context, "\",\""));
                        }
                        self.bump();
                    }
                }
                if self.peek().tok != Tok::RParen {
                    return Err(self.unexpected(context, "\")\""));
                }
                self.bump();
                let mut args = args.into_iter().map(Box::new);
                Ok(match (name.as_str(), args.next(), args.next()) {
                    ("step", _, _) => DurationExpr::Step,
                    ("range", _, _) => DurationExpr::Range,
                    ("min_of", Some(a), Some(b)) => DurationExpr::MinOf(a, b),
                    (_, Some(a), Some(b)) => DurationExpr::MaxOf(a, b),
                    _ => return Err(self.unexpected(context, expected)),
                })
            }
            _ => Err(self.unexpected(context, expected)),
        }
    }
}

fn too_deep(pos: usize) -> PosError {
    PosError {
        pos,
        msg: format!("expression nests too deeply (more than {MAX_DEPTH} levels)"),
    }
}

/// The depth of the tree, computed without recursion (a long `a + b + c ...` chain is deep).
fn tree_depth(root: &Node) -> usize {
    let mut max = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((n, d)) = stack.pop() {
        max = max.max(d);
        match &n.kind {
            Kind::Subquery { expr, .. } | Kind::Unary { expr, .. } | Kind::Paren(expr) => {
                stack.push((expr, d + 1));
            }
            Kind::Call { args, .. } | Kind::Agg { args, .. } => {
                stack.extend(args.iter().map(|a| (a, d + 1)));
            }
            Kind::Binary { lhs, rhs, .. } => {
                stack.push((lhs, d + 1));
                stack.push((rhs, d + 1));
            }
            Kind::Number(_) | Kind::Str(_) | Kind::Vector(_) | Kind::Matrix { .. } => {}
        }
    }
    max
}

/// A constant duration expression becomes milliseconds; one that uses `step()` or `range()`
/// stays an expression for the engine.
fn fold(e: DurationExpr) -> Dur {
    match e.eval(None) {
        Some(secs) => Dur::Ms(crate::ast::duration_secs_to_ms(secs)),
        None => Dur::Expr(e),
    }
}

/// Go's `%s` of a value type in type errors (`instant vector`, `range vector`, ...).
pub(crate) fn documented(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
    }
}
