//! Parser for Prometheus's `.test` script language (see `shared/peer-tests/README.md` §1).

use model::labels::METRIC_NAME;
use model::{Labels, STALE_NAN};

/// A script error with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct ScriptError {
    pub line: usize,
    pub msg: String,
}

fn err<T>(line: usize, msg: impl Into<String>) -> Result<T, ScriptError> {
    Err(ScriptError {
        line,
        msg: msg.into(),
    })
}

/// One slot of a value sequence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    /// `_`: no sample.
    Omitted,
    Float(f64),
    /// `{{...}}`: a native histogram (not evaluated by this runner).
    Histogram,
}

/// A series line: labels and expanded values.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesLine {
    pub labels: Labels,
    pub values: Vec<Slot>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EvalKind {
    Instant { at: i64 },
    Range { start: i64, end: i64, step: i64 },
}

/// How an expected failure is described.
#[derive(Debug, Clone, PartialEq)]
pub enum FailExpect {
    Any,
    Msg(String),
    Regex(String),
}

/// Expected annotations of one kind (warn or info).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnnotationExpect {
    /// `expect warn` (any) was given or some msg/regex lines.
    pub expected: bool,
    /// `expect no_warn`.
    pub none: bool,
    pub msgs: Vec<String>,
    pub regexes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Eval {
    pub line: usize,
    pub expr: String,
    pub kind: EvalKind,
    pub fail: Option<FailExpect>,
    pub warn: AnnotationExpect,
    pub info: AnnotationExpect,
    pub ordered: bool,
    /// `expect range vector from a to b step s`.
    pub range_vector: Option<(i64, i64, i64)>,
    pub string: Option<String>,
    pub scalar: Option<f64>,
    pub series: Vec<SeriesLine>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Clear,
    Load {
        line: usize,
        step: i64,
        with_nhcb: bool,
        series: Vec<SeriesLine>,
    },
    Eval(Box<Eval>),
}

/// A numbered (1-based) line of a block.
type Line<'a> = (usize, &'a str);

/// Parses a whole script.
pub fn parse_script(src: &str) -> Result<Vec<Command>, ScriptError> {
    let lines: Vec<&str> = src
        .lines()
        .map(|l| {
            let t = l.trim();
            if t.starts_with('#') { "" } else { t }
        })
        .collect();
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let word = l
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let start = i;
        i += 1;
        if word == "clear" {
            // `clear` is one line; the next line may start another command at once.
            cmds.push(Command::Clear);
            continue;
        }
        let mut body = Vec::new();
        while i < lines.len() && !lines[i].is_empty() {
            body.push((i + 1, lines[i]));
            i += 1;
        }
        if word.starts_with("load") {
            cmds.push(parse_load(start + 1, l, &body)?);
        } else if word.starts_with("eval") {
            let (eval, rest) = parse_eval(start + 1, l, &body)?;
            cmds.push(Command::Eval(Box::new(eval)));
            // A scalar line ends the block; anything after it starts a new command.
            if !rest.is_empty() {
                i = rest[0].0 - 1;
                while i < lines.len() && lines[i].is_empty() {
                    i += 1;
                }
            }
        } else {
            return err(start + 1, format!("invalid command {word:?}"));
        }
    }
    Ok(cmds)
}

fn parse_load(line: usize, header: &str, body: &[Line<'_>]) -> Result<Command, ScriptError> {
    let mut parts = header.split_whitespace();
    let word = parts.next().unwrap_or_default().to_ascii_lowercase();
    let with_nhcb = match word.as_str() {
        "load" => false,
        "load_with_nhcb" => true,
        _ => return err(line, format!("invalid command {word:?}")),
    };
    let Some(step) = parts.next() else {
        return err(line, "load needs a step");
    };
    let step = parse_time(step).map_err(|m| ScriptError { line, msg: m })?;
    let mut series = Vec::new();
    for &(ln, text) in body {
        if text
            .split_whitespace()
            .next()
            .is_some_and(|w| w.ends_with("@st"))
        {
            // Start timestamps are an experimental feature; files using them are skipped.
            continue;
        }
        series.push(parse_series_line(ln, text, true)?);
    }
    Ok(Command::Load {
        line,
        step,
        with_nhcb,
        series,
    })
}

/// `0`, `5m`, `1h30m`, `-10s`, `1.5` (seconds) as milliseconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let ms = match model::parse_duration(body) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => match body.parse::<f64>() {
            Ok(f) => (f * 1000.0).round() as i64,
            Err(_) => return Err(format!("invalid time {s:?}: {e}")),
        },
    };
    Ok(if neg { -ms } else { ms })
}

fn parse_eval<'a>(
    line: usize,
    header: &str,
    body: &'a [Line<'a>],
) -> Result<(Eval, &'a [Line<'a>]), ScriptError> {
    let (word, rest) = split_word(header);
    let word = word.to_ascii_lowercase();
    let mut fail = None;
    let mut ordered = false;
    let mut warn = AnnotationExpect::default();
    let mut info = AnnotationExpect::default();
    match word.as_str() {
        "eval" => {}
        "eval_fail" => fail = Some(FailExpect::Any),
        "eval_ordered" => ordered = true,
        "eval_warn" => warn.expected = true,
        "eval_info" => info.expected = true,
        _ => return err(line, format!("invalid command {word:?}")),
    }
    let (mode, rest) = split_word(rest);
    let (kind, expr) = match mode {
        "instant" => {
            let (at_kw, rest) = split_word(rest);
            if at_kw != "at" {
                return err(line, "expected \"at\" after \"instant\"");
            }
            let (t, expr) = split_word(rest);
            (
                EvalKind::Instant {
                    at: parse_time(t).map_err(|m| ScriptError { line, msg: m })?,
                },
                expr,
            )
        }
        "range" => {
            let words: Vec<&str> = rest
                .splitn(7, char::is_whitespace)
                .filter(|w| !w.is_empty())
                .collect();
            let mut it = rest;
            let mut fields = Vec::new();
            for kw in ["from", "to", "step"] {
                let (k, r) = split_word(it);
                if k != kw {
                    return err(
                        line,
                        format!("expected {kw:?} in range eval, got {words:?}"),
                    );
                }
                let (v, r) = split_word(r);
                fields.push(parse_time(v).map_err(|m| ScriptError { line, msg: m })?);
                it = r;
            }
            if fields[1] < fields[0] {
                return err(line, "end timestamp must not be before start time");
            }
            (
                EvalKind::Range {
                    start: fields[0],
                    end: fields[1],
                    step: fields[2],
                },
                it,
            )
        }
        _ => {
            return err(
                line,
                format!("expected \"instant\" or \"range\", got {mode:?}"),
            );
        }
    };
    let mut e = Eval {
        line,
        expr: expr.trim().to_string(),
        kind,
        fail,
        warn,
        info,
        ordered,
        range_vector: None,
        string: None,
        scalar: None,
        series: Vec::new(),
    };
    for (idx, &(ln, text)) in body.iter().enumerate() {
        if let Some(x) = text.strip_prefix("expect ") {
            parse_expect(ln, x.trim(), &mut e)?;
            continue;
        }
        if let Some(v) = parse_number(text) {
            e.scalar = Some(v);
            return Ok((e, &body[idx + 1..]));
        }
        e.series.push(parse_series_line(ln, text, false)?);
    }
    Ok((e, &[]))
}

fn parse_expect(ln: usize, x: &str, e: &mut Eval) -> Result<(), ScriptError> {
    let (word, rest) = split_word(x);
    match word {
        "fail" => {
            if e.fail.is_some() {
                return err(ln, "more than one \"expect fail\"");
            }
            e.fail = Some(if let Some(m) = rest.strip_prefix("msg:") {
                FailExpect::Msg(m.trim().to_string())
            } else if let Some(r) = rest.strip_prefix("regex:") {
                FailExpect::Regex(r.trim().to_string())
            } else {
                FailExpect::Any
            });
        }
        "warn" | "info" => {
            let a = if word == "warn" {
                &mut e.warn
            } else {
                &mut e.info
            };
            a.expected = true;
            if let Some(m) = rest.strip_prefix("msg:") {
                a.msgs.push(m.trim().to_string());
            } else if let Some(r) = rest.strip_prefix("regex:") {
                a.regexes.push(r.trim().to_string());
            }
        }
        "no_warn" => e.warn.none = true,
        "no_info" => e.info.none = true,
        "ordered" => e.ordered = true,
        "range" => {
            let w: Vec<&str> = rest.split_whitespace().collect();
            if w.len() != 7 || w[0] != "vector" || w[1] != "from" || w[3] != "to" || w[5] != "step"
            {
                return err(ln, format!("invalid \"expect range\" line: {x:?}"));
            }
            let t = |s: &str| parse_time(s).map_err(|m| ScriptError { line: ln, msg: m });
            e.range_vector = Some((t(w[2])?, t(w[4])?, t(w[6])?));
        }
        "string" => {
            let r = rest.trim();
            let q = r.chars().next().unwrap_or('"');
            if r.len() < 2 || !r.ends_with(q) || !matches!(q, '"' | '`' | '\'') {
                return err(ln, format!("invalid expected string {r:?}"));
            }
            let inner = &r[1..r.len() - 1];
            let s = if q == '`' {
                inner.to_string()
            } else {
                model::selector::unquote_go(inner, q)
                    .map_err(|m| ScriptError { line: ln, msg: m })?
            };
            e.string = Some(s);
        }
        _ => return err(ln, format!("unknown expect line {x:?}")),
    }
    Ok(())
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// A number as the scripts write one: Go float syntax, hex, or a duration (in seconds).
pub fn parse_number(s: &str) -> Option<f64> {
    // compat: series descriptions have no hex numbers; `0x59` means "0 repeated 59 times".
    if s.contains(['x', 'X']) {
        return None;
    }
    if let Some(v) = promql::parse_go_float(s) {
        return Some(v);
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if !body.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let d = model::parse_duration(body).ok()?;
    let v = d.as_secs_f64();
    Some(if neg { -v } else { v })
}

/// Parses `<selector> <values...>`.
pub fn parse_series_line(ln: usize, text: &str, load: bool) -> Result<SeriesLine, ScriptError> {
    let (labels, rest) = parse_series_desc(text).map_err(|m| ScriptError { line: ln, msg: m })?;
    let values = parse_values(rest, load).map_err(|m| ScriptError { line: ln, msg: m })?;
    Ok(SeriesLine { labels, values })
}

/// The label set of a series description and the text after it.
fn parse_series_desc(text: &str) -> Result<(Labels, &str), String> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut pairs: Vec<(String, String)> = Vec::new();
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
        i += 1;
    }
    if i > 0 {
        pairs.push((METRIC_NAME.to_string(), text[..i].to_string()));
    }
    if i < b.len() && b[i] == b'{' {
        i += 1;
        loop {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            match b.get(i) {
                None => return Err(format!("unterminated series description {text:?}")),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                Some(b',') => {
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let name = if matches!(b[i], b'"' | b'\'' | b'`') {
                let (s, n) = quoted(&text[i..])?;
                i += n;
                s
            } else {
                let st = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                if st == i {
                    return Err(format!("invalid label name in {text:?}"));
                }
                text[st..i].to_string()
            };
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if b.get(i) == Some(&b'=') {
                i += 1;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                let (v, n) = quoted(&text[i..])?;
                i += n;
                pairs.push((name, v));
            } else {
                // A quoted name on its own is the metric name.
                pairs.push((METRIC_NAME.to_string(), name));
            }
        }
    } else if i == 0 {
        return Err(format!("invalid series description {text:?}"));
    }
    Ok((Labels::from_pairs(pairs), &text[i..]))
}

/// A quoted string at the start of `s`: its value and the bytes consumed.
fn quoted(s: &str) -> Result<(String, usize), String> {
    let q = s.chars().next().ok_or("expected string")?;
    let b = s.as_bytes();
    let mut j = 1;
    while j < b.len() {
        if b[j] == b'\\' && q != '`' {
            j += 2;
            continue;
        }
        if b[j] == q as u8 {
            let inner = &s[1..j];
            let v = if q == '`' {
                inner.to_string()
            } else {
                model::selector::unquote_go(inner, q)?
            };
            return Ok((v, j + 1));
        }
        j += 1;
    }
    Err(format!("unterminated string in {s:?}"))
}

/// Expands a value sequence (`1 2 _ 3+1x4 stale {{...}}x2`).
fn parse_values(s: &str, load: bool) -> Result<Vec<Slot>, String> {
    let mut out = Vec::new();
    for tok in tokens(s) {
        if tok.starts_with("{{") {
            let n = match tok.rfind("}}x") {
                Some(i) => {
                    tok[i + 3..]
                        .parse::<usize>()
                        .map_err(|_| format!("invalid histogram repeat {tok:?}"))?
                        + 1
                }
                None => 1,
            };
            out.extend(std::iter::repeat_n(Slot::Histogram, n));
            continue;
        }
        match tok.as_str() {
            "_" => {
                out.push(Slot::Omitted);
                continue;
            }
            "stale" => {
                out.push(Slot::Float(STALE_NAN));
                continue;
            }
            _ => {}
        }
        if let Some(v) = parse_number(&tok) {
            out.push(Slot::Float(v));
            continue;
        }
        let Some((base, times)) = tok.rsplit_once('x') else {
            return Err(format!("invalid value {tok:?}"));
        };
        let n: usize = times
            .parse()
            .map_err(|_| format!("invalid value {tok:?}"))?;
        if base == "_" {
            out.extend(std::iter::repeat_n(Slot::Omitted, n));
            continue;
        }
        if let Some(v) = parse_number(base) {
            out.extend(std::iter::repeat_n(Slot::Float(v), n + 1));
            continue;
        }
        let (a, b, sign) = split_step(base).ok_or_else(|| format!("invalid value {tok:?}"))?;
        for k in 0..=n {
            out.push(Slot::Float(a + sign * b * k as f64));
        }
    }
    if !load
        && out
            .iter()
            .any(|s| matches!(s, Slot::Float(v) if model::is_stale_nan(*v)))
    {
        // Expected values may say `stale` too; keep them as the marker.
    }
    Ok(out)
}

/// `a+b` or `a-b` (each possibly signed or in exponent notation).
fn split_step(s: &str) -> Option<(f64, f64, f64)> {
    let b = s.as_bytes();
    for i in 1..b.len() {
        if (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E') {
            let a = parse_number(&s[..i])?;
            let step = parse_number(&s[i + 1..])?;
            return Some((a, step, if b[i] == b'+' { 1.0 } else { -1.0 }));
        }
    }
    None
}

/// Splits on whitespace, keeping `{{ ... }}` (with spaces inside) as one token.
fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' && chars.get(i + 1) == Some(&'{') {
            depth += 1;
            cur.push_str("{{");
            i += 2;
            continue;
        }
        if c == '}' && chars.get(i + 1) == Some(&'}') && depth > 0 {
            depth -= 1;
            cur.push_str("}}");
            i += 2;
            continue;
        }
        if c.is_whitespace() && depth == 0 {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
        i += 1;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(s: &str) -> Vec<Option<f64>> {
        parse_values(s, true)
            .unwrap()
            .into_iter()
            .map(|v| match v {
                Slot::Float(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn value_sequences() {
        assert_eq!(floats("1 2 3"), [Some(1.0), Some(2.0), Some(3.0)]);
        assert_eq!(floats("0+10x2"), [Some(0.0), Some(10.0), Some(20.0)]);
        assert_eq!(floats("5-1x2"), [Some(5.0), Some(4.0), Some(3.0)]);
        assert_eq!(floats("-2+-1x1"), [Some(-2.0), Some(-3.0)]);
        assert_eq!(floats("1x2"), [Some(1.0); 3]);
        assert_eq!(floats("_x2 1"), [None, None, Some(1.0)]);
        assert_eq!(floats("1m 0x1"), [Some(60.0), Some(0.0), Some(0.0)]);
        assert_eq!(
            floats("1e3 +5 Inf"),
            [Some(1000.0), Some(5.0), Some(f64::INFINITY)]
        );
        assert_eq!(
            parse_values("{{schema:0 sum:2}}x2 1", true).unwrap().len(),
            4
        );
        assert!(
            matches!(parse_values("stale", true).unwrap()[0], Slot::Float(v) if model::is_stale_nan(v))
        );
    }

    #[test]
    fn series_descriptions() {
        let (l, rest) = parse_series_desc(r#"foo{a="b", c="d\"e"} 1 2"#).unwrap();
        assert_eq!(l.to_string(), r#"{__name__="foo", a="b", c="d\"e"}"#);
        assert_eq!(rest.trim(), "1 2");
        let (l, _) = parse_series_desc("{} 1").unwrap();
        assert!(l.is_empty());
        let (l, _) = parse_series_desc(r#"{"my.metric", "a b"="c"} 1"#).unwrap();
        assert_eq!(l.get("__name__"), Some("my.metric"));
        assert_eq!(l.get("a b"), Some("c"));
    }

    #[test]
    fn script_blocks() {
        let s = "load 1m\n  x 1 2\n\n# comment\neval instant at 1m x\n  x 2\n\neval instant at 0 1\n  1\neval range from 0 to 1m step 30s x\n  expect fail\n";
        let cmds = parse_script(s).unwrap();
        assert_eq!(cmds.len(), 4);
        let Command::Eval(e) = &cmds[2] else { panic!() };
        assert_eq!(e.scalar, Some(1.0));
        let Command::Eval(e) = &cmds[3] else { panic!() };
        assert_eq!(
            e.kind,
            EvalKind::Range {
                start: 0,
                end: 60_000,
                step: 30_000
            }
        );
        assert_eq!(e.fail, Some(FailExpect::Any));
    }
}
