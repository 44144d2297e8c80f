//! The PromQL lexer. It follows Prometheus's lexer state by state (braces, brackets, strings,
//! numbers, durations) so that bad input fails with the same message at the same position.
//!
//! Inside brackets it also lexes the experimental duration expressions of Prometheus 3
//! (`[5m+1m]`, `[step()]`): numbers, operators, parentheses and identifiers.

/// What a token is. Keywords are recognised case-insensitively, as Prometheus does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Eof,
    Ident,
    MetricIdent,
    Number,
    Str,
    Duration,
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Colon,
    /// `=`.
    Assign,
    /// Operators: `+ - * / % ^ == != < <= > >= =~ !~ @` and the word operators.
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    EqlC,
    Neq,
    Lss,
    Lte,
    Gtr,
    Gte,
    EqlRegex,
    NeqRegex,
    At,
    And,
    Or,
    Unless,
    Atan2,
    /// An aggregation operator keyword (`sum`, `topk`, ...).
    Aggr,
    /// `bool by without on ignoring group_left group_right offset`, and the modifiers of
    /// Prometheus 3 that are keywords here (`smoothed`, `anchored`, `fill*`).
    Keyword,
    /// `start` and `end` (only special after `@`).
    Preproc,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the first character.
    pub pos: usize,
    pub val: String,
}

impl Token {
    pub fn end(&self) -> usize {
        self.pos + self.val.len()
    }

    /// How Prometheus describes a token in "unexpected ..." messages.
    pub fn desc(&self) -> String {
        match self.tok {
            Tok::Eof => "end of input".into(),
            Tok::Ident => format!("identifier {:?}", self.val),
            Tok::MetricIdent => format!("metric identifier {:?}", self.val),
            Tok::Number => format!("number {}", go_short_quote(&self.val)),
            Tok::Str => format!("string {}", go_short_quote(&self.val)),
            Tok::Duration => format!("duration {}", go_short_quote(&self.val)),
            Tok::Keyword => format!("<{}>", self.val),
            Tok::Aggr => format!("<aggr:{}>", self.val),
            // compat: Prometheus 2.42 has no description for `@` and prints the token number.
            Tok::At => "\"<Item 57385>\" <op:@>".into(),
            Tok::Preproc => format!("{:?}", self.val),
            t if is_operator(t) => format!("<op:{}>", self.val),
            _ => format!("{:?}", self.val),
        }
    }
}

pub(crate) fn is_operator(t: Tok) -> bool {
    use Tok::*;
    matches!(
        t,
        Add | Sub
            | Mul
            | Div
            | Mod
            | Pow
            | EqlC
            | Neq
            | Lss
            | Lte
            | Gtr
            | Gte
            | EqlRegex
            | NeqRegex
            | At
            | And
            | Or
            | Unless
            | Atan2
    )
}

/// Go's `%.10q...` for long values, `%q` otherwise.
fn go_short_quote(s: &str) -> String {
    if s.chars().count() > 10 {
        let head: String = s.chars().take(10).collect();
        format!("{}...", go_quote(&head))
    } else {
        go_quote(s)
    }
}

/// Go's `%q` of a string.
pub(crate) fn go_quote(s: &str) -> String {
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
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` of a rune: `'a'`, `'\n'`, `'\''`.
pub(crate) fn go_quote_rune(c: char) -> String {
    match c {
        '\'' => "'\\''".into(),
        '"' => "'\"'".into(),
        c => {
            let q = go_quote(&c.to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

/// Go's `%#U` of a rune: `U+0071 'q'`.
fn go_unicode(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

/// A lexer error: its message and the byte offset Prometheus reports.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LexError {
    pub pos: usize,
    pub msg: String,
}

fn keyword(word: &str) -> Option<Tok> {
    let w = word.to_ascii_lowercase();
    Some(match w.as_str() {
        "and" => Tok::And,
        "or" => Tok::Or,
        "unless" => Tok::Unless,
        "atan2" => Tok::Atan2,
        "sum" | "avg" | "count" | "min" | "max" | "group" | "stddev" | "stdvar" | "topk"
        | "bottomk" | "count_values" | "quantile" | "limitk" | "limit_ratio" => Tok::Aggr,
        "offset" | "by" | "without" | "on" | "ignoring" | "group_left" | "group_right" | "bool"
        | "smoothed" | "anchored" | "fill" | "fill_left" | "fill_right" => Tok::Keyword,
        "start" | "end" => Tok::Preproc,
        "inf" | "nan" => Tok::Number,
        _ => return None,
    })
}

fn is_alpha(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}

fn is_alnum(c: char) -> bool {
    is_alpha(c) || c.is_ascii_digit()
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    start: usize,
    out: Vec<Token>,
    paren_depth: i32,
    brace_open: bool,
    bracket_open: bool,
    /// Parenthesis depth inside the current brackets (duration expressions).
    bracket_parens: i32,
    got_colon: bool,
}

/// Splits `src` into tokens, ending with `Eof`; or the first lexer error and the tokens before
/// it (the parser reports the error when it reaches it, as Prometheus's does).
pub(crate) fn lex(src: &str) -> (Vec<Token>, Option<LexError>) {
    let mut l = Lexer {
        src,
        pos: 0,
        start: 0,
        out: Vec::new(),
        paren_depth: 0,
        brace_open: false,
        bracket_open: false,
        bracket_parens: 0,
        got_colon: false,
    };
    match l.run() {
        Ok(()) => (l.out, None),
        Err(e) => (l.out, Some(e)),
    }
}

type LResult = Result<(), LexError>;

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn accept(&mut self, set: &str) -> bool {
        match self.peek() {
            Some(c) if set.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, set: &str) {
        while self.accept(set) {}
    }

    fn emit(&mut self, tok: Tok) {
        self.out.push(Token {
            tok,
            pos: self.start,
            val: self.src[self.start..self.pos].to_string(),
        });
        self.start = self.pos;
    }

    fn err(&self, msg: impl Into<String>) -> LResult {
        Err(LexError {
            pos: self.start,
            msg: msg.into(),
        })
    }

    fn run(&mut self) -> LResult {
        loop {
            self.start = self.pos;
            if self.src[self.pos..].starts_with('#') {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.next();
                }
                self.start = self.pos;
                continue;
            }
            if self.brace_open {
                self.inside_braces()?;
                continue;
            }
            let Some(c) = self.next() else {
                if self.paren_depth != 0 {
                    return self.err("unclosed left parenthesis");
                }
                if self.bracket_open {
                    return self.err("unclosed left bracket");
                }
                self.emit(Tok::Eof);
                return Ok(());
            };
            self.statement(c)?;
        }
    }

    fn statement(&mut self, c: char) -> LResult {
        match c {
            ',' => self.emit(Tok::Comma),
            c if is_space(c) => {
                while self.peek().is_some_and(is_space) {
                    self.next();
                }
            }
            '*' => self.emit(Tok::Mul),
            '/' => self.emit(Tok::Div),
            '%' => self.emit(Tok::Mod),
            '+' => self.emit(Tok::Add),
            '-' => self.emit(Tok::Sub),
            '^' => self.emit(Tok::Pow),
            '=' => match self.peek() {
                Some('=') => {
                    self.next();
                    self.emit(Tok::EqlC)
                }
                Some('~') => return self.err("unexpected character after '=': '~'"),
                _ => self.emit(Tok::Assign),
            },
            '!' => match self.next() {
                Some('=') => self.emit(Tok::Neq),
                t => {
                    return self.err(format!(
                        "unexpected character after '!': {}",
                        t.map_or("U+FFFFFFFF".into(), go_quote_rune)
                    ));
                }
            },
            '<' => {
                if self.accept("=") {
                    self.emit(Tok::Lte)
                } else {
                    self.emit(Tok::Lss)
                }
            }
            '>' => {
                if self.accept("=") {
                    self.emit(Tok::Gte)
                } else {
                    self.emit(Tok::Gtr)
                }
            }
            c if c.is_ascii_digit()
                || (c == '.' && self.peek().is_some_and(|d| d.is_ascii_digit())) =>
            {
                self.pos = self.start;
                self.number_or_duration()?
            }
            '"' | '\'' => self.string(c)?,
            '`' => self.raw_string()?,
            ':' if self.bracket_open => {
                if self.got_colon {
                    return self.err("unexpected colon ':'");
                }
                self.emit(Tok::Colon);
                self.got_colon = true;
            }
            c if is_alpha(c) || c == ':' => {
                self.pos = self.start;
                self.keyword_or_identifier();
            }
            '(' => {
                self.emit(Tok::LParen);
                self.paren_depth += 1;
                if self.bracket_open {
                    self.bracket_parens += 1;
                }
            }
            ')' => {
                self.emit(Tok::RParen);
                self.paren_depth -= 1;
                if self.bracket_open {
                    self.bracket_parens -= 1;
                }
                if self.paren_depth < 0 {
                    // compat: Prometheus's error replaces the token just emitted, at its end.
                    self.out.pop();
                    return self.err("unexpected right parenthesis ')'");
                }
            }
            '{' => {
                self.emit(Tok::LBrace);
                self.brace_open = true;
            }
            '[' => {
                if self.bracket_open {
                    return self.err("unexpected left bracket '['");
                }
                self.got_colon = false;
                self.emit(Tok::LBracket);
                self.bracket_open = true;
                self.bracket_parens = 0;
                self.duration_start()?;
            }
            ']' => {
                if !self.bracket_open {
                    return self.err("unexpected right bracket ']'");
                }
                self.emit(Tok::RBracket);
                self.bracket_open = false;
            }
            '@' => self.emit(Tok::At),
            c => return self.err(format!("unexpected character: {}", go_quote_rune(c))),
        }
        Ok(())
    }

    /// Right after `[`: Prometheus 2 requires a duration here; we also allow the start of a
    /// duration expression (a number, `(`, `-`, `+`, a function such as `step()`).
    fn duration_start(&mut self) -> LResult {
        // compat: Prometheus 2.42 skips spaces after `[` and then needs a duration, so input
        // ending there is a duration error, not an unclosed bracket.
        let after = self.src[self.pos..].trim_start_matches(is_space);
        if after.is_empty() {
            self.pos = self.src.len();
            self.start = self.pos;
            return self.err("missing unit character in duration");
        }
        self.start = self.pos;
        match self.peek() {
            Some(c) if c.is_ascii_digit() || c == '.' => {
                let start = self.pos;
                self.number_or_duration()?;
                // compat: a bare number ending the input (`foo[5`) is 2.42's missing unit.
                if self.pos == self.src.len()
                    && self.out.last().is_some_and(|t| t.tok == Tok::Number)
                {
                    return Err(LexError {
                        pos: start,
                        msg: "missing unit character in duration".into(),
                    });
                }
                Ok(())
            }
            // compat: Prometheus reports `foo[]` and `foo[x]` from its duration lexer.
            Some(']' | ':') => self.err("missing unit character in duration"),
            _ => Ok(()),
        }
    }

    /// Go's `scanNumber`: digits (hex after `0x`), fraction, exponent; true if what follows
    /// cannot continue a word.
    fn scan_number(&mut self) -> bool {
        let mut digits = "0123456789";
        if self.accept("0") && self.accept("xX") {
            digits = "0123456789abcdefABCDEF";
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789");
        }
        !self.peek().is_some_and(is_alnum)
    }

    fn accept_remaining_duration(&mut self) -> bool {
        if !self.accept("smhdwy") {
            return false;
        }
        self.accept("s");
        while self.accept("0123456789") {
            self.accept_run("0123456789");
            if !self.accept("smhdw") {
                return false;
            }
            self.accept("s");
        }
        !self.peek().is_some_and(is_alnum)
    }

    fn number_or_duration(&mut self) -> LResult {
        if self.scan_number() {
            self.emit(Tok::Number);
            return Ok(());
        }
        let number_end = self.pos;
        if self.accept_remaining_duration() {
            self.emit(Tok::Duration);
            return Ok(());
        }
        // compat: the message quotes what was scanned when the unit check failed.
        let scanned = &self.src[self.start..self.pos.max(number_end)];
        if self.bracket_open {
            return self.err(format!("bad duration syntax: {}", go_quote(scanned)));
        }
        self.err(format!(
            "bad number or duration syntax: {}",
            go_quote(scanned)
        ))
    }

    fn keyword_or_identifier(&mut self) {
        while self.peek().is_some_and(|c| is_alnum(c) || c == ':') {
            self.next();
        }
        let word = &self.src[self.start..self.pos];
        match keyword(word) {
            Some(t) => self.emit(t),
            None if !word.contains(':') => self.emit(Tok::Ident),
            None => self.emit(Tok::MetricIdent),
        }
    }

    fn inside_braces(&mut self) -> LResult {
        let Some(c) = self.next() else {
            return self.err("unexpected end of input inside braces");
        };
        match c {
            c if is_space(c) => {
                while self.peek().is_some_and(is_space) {
                    self.next();
                }
            }
            c if is_alpha(c) => {
                while self.peek().is_some_and(is_alnum) {
                    self.next();
                }
                self.emit(Tok::Ident);
            }
            ',' => self.emit(Tok::Comma),
            '"' | '\'' => self.string(c)?,
            '`' => self.raw_string()?,
            '=' => {
                if self.accept("~") {
                    self.emit(Tok::EqlRegex)
                } else {
                    self.emit(Tok::Assign)
                }
            }
            '!' => match self.next() {
                Some('~') => self.emit(Tok::NeqRegex),
                Some('=') => self.emit(Tok::Neq),
                t => {
                    return self.err(format!(
                        "unexpected character after '!' inside braces: {}",
                        t.map_or("U+FFFFFFFF".into(), go_quote_rune)
                    ));
                }
            },
            '{' => return self.err("unexpected left brace '{'"),
            '}' => {
                self.emit(Tok::RBrace);
                self.brace_open = false;
            }
            c => {
                return self.err(format!(
                    "unexpected character inside braces: {}",
                    go_quote_rune(c)
                ));
            }
        }
        Ok(())
    }

    fn string(&mut self, quote: char) -> LResult {
        loop {
            match self.next() {
                Some('\\') => self.escape(quote)?,
                None | Some('\n') => return self.err("unterminated quoted string"),
                Some(c) if c == quote => break,
                Some(_) => {}
            }
        }
        self.emit(Tok::Str);
        Ok(())
    }

    fn escape(&mut self, quote: char) -> LResult {
        let Some(c) = self.next() else {
            return self.err("escape sequence not terminated");
        };
        let (n, base, max) = match c {
            'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' => return Ok(()),
            c if c == quote => return Ok(()),
            '0'..='7' => {
                self.pos -= 1;
                (3, 8, 255)
            }
            'x' => (2, 16, 255),
            'u' => (4, 16, 0x10_FFFF),
            'U' => (8, 16, 0x10_FFFF),
            c => return self.err(format!("unknown escape sequence {}", go_unicode(c))),
        };
        let mut x: u32 = 0;
        for _ in 0..n {
            let Some(ch) = self.next() else {
                return self.err("escape sequence not terminated");
            };
            match ch.to_digit(16).filter(|&d| d < base) {
                Some(d) => x = x.saturating_mul(base).saturating_add(d),
                None => {
                    return self.err(format!(
                        "illegal character {} in escape sequence",
                        go_unicode(ch)
                    ));
                }
            }
        }
        if x > max || (0xD800..0xE000).contains(&x) {
            return self.err("escape sequence is an invalid Unicode code point");
        }
        Ok(())
    }

    fn raw_string(&mut self) -> LResult {
        loop {
            match self.next() {
                None => return self.err("unterminated raw string"),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(Tok::Str);
        Ok(())
    }
}

/// Decodes a string token (with its quotes) as Go's `strconv.Unquote` does. Escapes were
/// checked by the lexer. Returns the bytes, which may not be UTF-8 (`"\xff"`).
pub(crate) fn unquote(tok: &str) -> Vec<u8> {
    let quote = tok.chars().next().unwrap_or('"');
    let body = &tok[1..tok.len().saturating_sub(1).max(1)];
    if quote == '`' {
        return body.replace('\r', "").into_bytes();
    }
    let mut out = Vec::with_capacity(body.len());
    let mut it = body.chars().peekable();
    let mut buf = [0u8; 4];
    while let Some(c) = it.next() {
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some(e) = it.next() else { break };
        let mut hex = |n: usize, radix: u32| -> u32 {
            let mut v = 0u32;
            for _ in 0..n {
                if let Some(d) = it.next().and_then(|d| d.to_digit(radix)) {
                    v = v.wrapping_mul(radix).wrapping_add(d);
                }
            }
            v
        };
        match e {
            'a' => out.push(7),
            'b' => out.push(8),
            'f' => out.push(12),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(11),
            'x' => out.push(hex(2, 16) as u8),
            '0'..='7' => {
                let rest = hex(2, 8);
                out.push((e.to_digit(8).unwrap_or(0) * 64 + rest) as u8);
            }
            'u' | 'U' => {
                let v = hex(if e == 'u' { 4 } else { 8 }, 16);
                let ch = char::from_u32(v).unwrap_or('\u{FFFD}');
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            other => out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<(Tok, String)> {
        let (t, e) = lex(s);
        assert_eq!(e, None, "{s}");
        t.into_iter().map(|t| (t.tok, t.val)).collect()
    }

    #[track_caller]
    fn lex_err(s: &str, pos: usize, msg: &str) {
        let (_, e) = lex(s);
        assert_eq!(
            e,
            Some(LexError {
                pos,
                msg: msg.into()
            }),
            "{s}"
        );
    }

    #[test]
    fn tokens() {
        assert_eq!(
            toks("sum by(a) (rate(x{a=~'b'}[5m:1m]))"),
            vec![
                (Tok::Aggr, "sum".into()),
                (Tok::Keyword, "by".into()),
                (Tok::LParen, "(".into()),
                (Tok::Ident, "a".into()),
                (Tok::RParen, ")".into()),
                (Tok::LParen, "(".into()),
                (Tok::Ident, "rate".into()),
                (Tok::LParen, "(".into()),
                (Tok::Ident, "x".into()),
                (Tok::LBrace, "{".into()),
                (Tok::Ident, "a".into()),
                (Tok::EqlRegex, "=~".into()),
                (Tok::Str, "'b'".into()),
                (Tok::RBrace, "}".into()),
                (Tok::LBracket, "[".into()),
                (Tok::Duration, "5m".into()),
                (Tok::Colon, ":".into()),
                (Tok::Duration, "1m".into()),
                (Tok::RBracket, "]".into()),
                (Tok::RParen, ")".into()),
                (Tok::RParen, ")".into()),
                (Tok::Eof, "".into()),
            ]
        );
        assert_eq!(toks("a:b # c")[0], (Tok::MetricIdent, "a:b".into()));
        assert_eq!(toks("0x1F")[0], (Tok::Number, "0x1F".into()));
        assert_eq!(toks("1h30m")[0], (Tok::Duration, "1h30m".into()));
    }

    #[test]
    fn errors_at_prometheus_positions() {
        lex_err(")", 1, "unexpected right parenthesis ')'");
        lex_err("foo(", 4, "unclosed left parenthesis");
        lex_err("foo{", 4, "unexpected end of input inside braces");
        lex_err("1a", 0, "bad number or duration syntax: \"1\"");
        lex_err("foo[5x]", 4, "bad duration syntax: \"5\"");
        lex_err("foo{a=\"\\q\"}", 6, "unknown escape sequence U+0071 'q'");
        lex_err(
            "\"\\x4\"",
            0,
            "illegal character U+0022 '\"' in escape sequence",
        );
        lex_err("foo ! bar", 4, "unexpected character after '!': ' '");
    }

    #[test]
    fn unquotes_like_go() {
        assert_eq!(unquote(r#""a\tb\x41\101\u00e9""#), "a\tbAAé".as_bytes());
        assert_eq!(unquote(r#""\xff""#), vec![0xff]);
        assert_eq!(unquote("`a\\n`"), b"a\\n".to_vec());
        assert_eq!(unquote(r#"'\''"#), b"'".to_vec());
    }
}
