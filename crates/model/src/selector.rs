//! Series selectors as written in `match[]` API parameters and test files:
//! `metric`, `metric{a="b",c=~"d"}`, `{__name__="x"}`. Full PromQL lives in the `promql` crate;
//! this is the small, dependency-free subset needed to select series.

use crate::labels::METRIC_NAME;
use crate::matcher::{MatchType, Matcher};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct SelectorError {
    pub msg: String,
}

fn err<T>(msg: impl Into<String>) -> Result<T, SelectorError> {
    Err(SelectorError { msg: msg.into() })
}

/// Parses a series selector into matchers. At least one matcher must not match the empty
/// string, as Prometheus requires.
pub fn parse_selector(input: &str) -> Result<Vec<Matcher>, SelectorError> {
    let mut p = P {
        s: input.as_bytes(),
        i: 0,
        src: input,
    };
    let ms = p.selector()?;
    p.ws();
    if p.i != p.s.len() {
        return err(format!(
            "1:{}: parse error: unexpected character after selector",
            p.i + 1
        ));
    }
    if ms.iter().all(Matcher::matches_empty) {
        return err("vector selector must contain at least one non-empty matcher");
    }
    Ok(ms)
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
    src: &'a str,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ident(&mut self, allow_colon: bool) -> Option<&str> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic()
                || c == b'_'
                || (allow_colon && c == b':')
                || (self.i > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then(|| &self.src[start..self.i])
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, SelectorError> {
        self.ws();
        let mut ms = Vec::new();
        let name = self.ident(true).map(str::to_string);
        if let Some(n) = &name {
            ms.push(Matcher::equal(METRIC_NAME, n.clone()));
        }
        self.ws();
        if self.peek() == Some(b'{') {
            self.i += 1;
            loop {
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    break;
                }
                let lname = match self.peek() {
                    Some(b'"') | Some(b'\'') | Some(b'`') => self.string()?,
                    _ => match self.ident(false) {
                        Some(l) => l.to_string(),
                        None => {
                            return err(format!(
                                "1:{}: parse error: expected label name",
                                self.i + 1
                            ));
                        }
                    },
                };
                self.ws();
                let op = self.op()?;
                self.ws();
                let value = self.string()?;
                if lname == METRIC_NAME && name.is_some() {
                    return err(format!(
                        "metric name must not be set twice: {:?} or {:?}",
                        name.as_deref().unwrap_or(""),
                        value
                    ));
                }
                let m = Matcher::new(op, lname, value).map_err(|e| SelectorError {
                    msg: format!("1:{}: parse error: {e}", self.i + 1),
                })?;
                ms.push(m);
                self.ws();
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b'}') => {}
                    _ => {
                        return err(format!(
                            "1:{}: parse error: unexpected character in label matching",
                            self.i + 1
                        ));
                    }
                }
            }
        } else if name.is_none() {
            return err("1:1: parse error: unexpected end of input, expected selector");
        }
        Ok(ms)
    }

    fn op(&mut self) -> Result<MatchType, SelectorError> {
        let two = self.s.get(self.i..self.i + 2);
        let (op, n) = match two {
            Some(b"=~") => (MatchType::RegexMatch, 2),
            Some(b"!~") => (MatchType::RegexNoMatch, 2),
            Some(b"!=") => (MatchType::NotEqual, 2),
            _ if self.peek() == Some(b'=') => (MatchType::Equal, 1),
            _ => {
                return err(format!(
                    "1:{}: parse error: expected label matching operator",
                    self.i + 1
                ));
            }
        };
        self.i += n;
        Ok(op)
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        let q = match self.peek() {
            Some(q @ (b'"' | b'\'' | b'`')) => q,
            _ => return err(format!("1:{}: parse error: expected string", self.i + 1)),
        };
        let start = self.i + 1;
        let mut j = start;
        while j < self.s.len() {
            match self.s[j] {
                b'\\' if q != b'`' => j += 2,
                c if c == q => {
                    let raw = &self.src[start..j];
                    self.i = j + 1;
                    if q == b'`' {
                        return Ok(raw.to_string());
                    }
                    return unquote_go(raw, q as char).map_err(|m| SelectorError {
                        msg: format!("1:{}: parse error: {m}", start),
                    });
                }
                _ => j += 1,
            }
        }
        err(format!(
            "1:{}: parse error: unterminated quoted string",
            start
        ))
    }
}

/// Interprets Go/PromQL escape sequences in the body of a quoted string.
pub fn unquote_go(raw: &str, quote: char) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut it = raw.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = it.next() else {
            return Err("invalid escape at end of string".into());
        };
        let hex =
            |it: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| -> Result<u32, String> {
                let s: String = (0..n).filter_map(|_| it.next()).collect();
                if s.len() != n {
                    return Err("invalid escape sequence".into());
                }
                u32::from_str_radix(&s, 16).map_err(|_| format!("invalid escape sequence \\{e}{s}"))
            };
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' | '\'' if e == quote => out.push(e),
            'x' => {
                // compat: Go's \x yields a byte; non-ASCII bytes make invalid UTF-8, rejected here.
                let v = hex(&mut it, 2)?;
                out.push(
                    char::from_u32(v)
                        .filter(|c| c.is_ascii())
                        .ok_or("invalid UTF-8 escape")?,
                );
            }
            'u' => out.push(char::from_u32(hex(&mut it, 4)?).ok_or("invalid unicode escape")?),
            'U' => out.push(char::from_u32(hex(&mut it, 8)?).ok_or("invalid unicode escape")?),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match it.next().and_then(|d| d.to_digit(8)) {
                        Some(d) => v = v * 8 + d,
                        None => return Err("invalid octal escape".into()),
                    }
                }
                out.push(
                    char::from_u32(v)
                        .filter(|c| c.is_ascii())
                        .ok_or("invalid UTF-8 escape")?,
                );
            }
            other => return Err(format!("unknown escape sequence \\{other}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn ok(s: &str, want: &str) {
        let ms = parse_selector(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let got: Vec<String> = ms.iter().map(|m| m.to_string()).collect();
        assert_eq!(got.join(","), want, "{s}");
    }

    #[test]
    fn selectors() {
        ok("up", "__name__=\"up\"");
        ok(
            "up{job=\"a\", x=~'b.*',}",
            "__name__=\"up\",job=\"a\",x=~\"b.*\"",
        );
        ok("{__name__=~\"node_.+\"}", "__name__=~\"node_.+\"");
        ok("a:b:c { l != `x\\y` }", "__name__=\"a:b:c\",l!=\"x\\\\y\"");
        ok("{a=\"\\n\\u00e9\"}", "a=\"\\né\"");
    }

    #[test]
    fn errors() {
        for bad in [
            "",
            "{}",
            "{a=\"\"}",
            "up{",
            "up{a}",
            "up{a=\"b\"",
            "up{a=b}",
            "up x",
            "{a=~\"(\"}",
            "up{__name__=\"x\"}",
        ] {
            assert!(parse_selector(bad).is_err(), "{bad:?} should fail");
        }
    }
}
