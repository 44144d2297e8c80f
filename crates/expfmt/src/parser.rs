//! The parser state, the entries it yields and the scanning steps both
//! grammars share. The grammars themselves live in `text.rs` and
//! `openmetrics.rs`.

use std::borrow::Cow;

use crate::error::{ParseError, ParseErrorKind};
use crate::scan::{self, ByteClass, LVALUE_STOP};
use crate::{Format, MetricType};

/// One parsed line of a scrape body.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'p> {
    /// `# HELP metric text`, with the text unescaped (`\\` and `\n`, and in
    /// OpenMetrics also `\"`).
    Help {
        metric: &'p str,
        text: Cow<'p, str>,
    },
    /// `# TYPE metric type`.
    Type {
        metric: &'p str,
        kind: MetricType,
    },
    /// `# UNIT metric unit` (OpenMetrics only).
    Unit {
        metric: &'p str,
        unit: &'p str,
    },
    Sample(Sample<'p>),
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'p> {
    /// The metric name as written, e.g. `http_requests_total`.
    pub name: &'p str,
    /// Label pairs in input order, values unescaped. A value borrows the
    /// input unless it contained an escape. The slice lives in a buffer the
    /// parser reuses for every sample.
    pub labels: &'p [(&'p str, Cow<'p, str>)],
    pub value: f64,
    /// Milliseconds since the epoch, if the line had a timestamp.
    pub timestamp_ms: Option<i64>,
    /// The raw name and label set as written: equal lines give equal bytes,
    /// so scrapers can key caches on it.
    pub series: &'p [u8],
}

/// A lending iterator over the entries of a scrape body.
///
/// ```
/// use expfmt::{Entry, Format, Parser};
/// let mut p = Parser::new(b"# TYPE up gauge\nup{job=\"node\"} 1\n", Format::Text);
/// let mut samples = 0;
/// while let Some(entry) = p.next_entry()? {
///     if let Entry::Sample(s) = entry {
///         assert_eq!((s.name, s.value), ("up", 1.0));
///         samples += 1;
///     }
/// }
/// assert_eq!(samples, 1);
/// # Ok::<(), expfmt::ParseError>(())
/// ```
pub struct Parser<'a> {
    pub(crate) buf: &'a [u8],
    /// The whole input as a `str` when it is valid UTF-8, which it nearly
    /// always is; slicing it is cheaper than validating each piece.
    utf8: Option<&'a str>,
    pub(crate) pos: usize,
    /// 1-based line of `pos`.
    pub(crate) line: usize,
    format: Format,
    done: bool,
    pub(crate) labels: Vec<(&'a str, Cow<'a, str>)>,
    /// Scratch space for the duplicate check of large label sets.
    names: Vec<&'a str>,
}

impl std::fmt::Debug for Parser<'_> {
    // The input can be megabytes: show where the parser is, not what it reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser")
            .field("format", &self.format)
            .field("line", &self.line)
            .field("pos", &self.pos)
            .field("len", &self.buf.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// What a grammar produces for one entry; borrows only the input, so the
/// label buffer can be attached afterwards.
pub(crate) enum Raw<'a> {
    Help {
        metric: &'a str,
        text: Cow<'a, str>,
    },
    Type {
        metric: &'a str,
        kind: MetricType,
    },
    Unit {
        metric: &'a str,
        unit: &'a str,
    },
    Sample {
        name: &'a str,
        value: f64,
        timestamp_ms: Option<i64>,
        series: &'a [u8],
    },
}

impl<'a> Parser<'a> {
    pub fn new(input: &'a [u8], format: Format) -> Self {
        Parser {
            buf: input,
            utf8: std::str::from_utf8(input).ok(),
            pos: 0,
            line: 1,
            format,
            done: false,
            labels: Vec::with_capacity(16),
            names: Vec::new(),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The 1-based line the parser has reached.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Returns the next entry; `Ok(None)` at the end. After an error the
    /// parser is finished and keeps returning `Ok(None)`.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'_>>, ParseError> {
        if self.done {
            return Ok(None);
        }
        self.labels.clear();
        let raw = match self.format {
            Format::Text => self.next_text(),
            Format::OpenMetrics => self.next_openmetrics(),
        };
        let raw = match raw {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                self.done = true;
                return Ok(None);
            }
            Err(e) => {
                self.done = true;
                self.labels.clear();
                return Err(e);
            }
        };
        Ok(Some(match raw {
            Raw::Help { metric, text } => Entry::Help { metric, text },
            Raw::Type { metric, kind } => Entry::Type { metric, kind },
            Raw::Unit { metric, unit } => Entry::Unit { metric, unit },
            Raw::Sample {
                name,
                value,
                timestamp_ms,
                series,
            } => Entry::Sample(Sample {
                name,
                labels: &self.labels,
                value,
                timestamp_ms,
                series,
            }),
        }))
    }

    // ---- errors ----

    pub(crate) fn error(&self, kind: ParseErrorKind, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.line, kind, msg)
    }

    pub(crate) fn syntax(&self, expected: &str) -> ParseError {
        let got = scan::describe(self.buf, self.pos);
        self.error(
            ParseErrorKind::Syntax,
            format!("expected {expected}, got {got}"),
        )
    }

    pub(crate) fn bad_number(&self, what: &str, token: &[u8]) -> ParseError {
        let msg = format!("invalid {what} \"{}\"", token.escape_ascii());
        self.error(ParseErrorKind::InvalidNumber, msg)
    }

    // ---- cursor ----

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Skips spaces and tabs; returns how many.
    #[inline]
    pub(crate) fn skip_blanks(&mut self) -> usize {
        let n = self.buf[self.pos..]
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(self.buf.len() - self.pos);
        self.pos += n;
        n
    }

    /// End of the current line: the position of its `\n` or of the input end.
    pub(crate) fn line_end(&self) -> usize {
        scan::find_byte(&self.buf[self.pos..], b'\n').map_or(self.buf.len(), |i| self.pos + i)
    }

    /// Moves to the start of the next line, given the end found by `line_end`.
    pub(crate) fn finish_line(&mut self, end: usize) {
        if end < self.buf.len() {
            self.pos = end + 1;
            self.line += 1;
        } else {
            self.pos = end;
        }
    }

    /// Consumes a run of `class` bytes and returns it as text; the caller
    /// picks a class of ASCII bytes.
    #[inline]
    pub(crate) fn take_name(&mut self, class: &ByteClass) -> &'a str {
        let start = self.pos;
        self.pos += scan::run(&self.buf[start..], class);
        self.str_of(start, self.pos)
            .expect("BUG: names are scanned from ASCII classes")
    }

    /// `buf[start..end]` as text, if it is UTF-8.
    #[inline]
    pub(crate) fn str_of(&self, start: usize, end: usize) -> Option<&'a str> {
        match self.utf8 {
            // Fails only if a bound splits a character, i.e. not UTF-8 either.
            Some(all) => all.get(start..end),
            None => std::str::from_utf8(&self.buf[start..end]).ok(),
        }
    }

    /// Text of a help line, validated and unescaped.
    pub(crate) fn help_text(
        &self,
        start: usize,
        end: usize,
        unescape_quote: bool,
    ) -> Result<Cow<'a, str>, ParseError> {
        let text = self.str_of(start, end).ok_or_else(|| {
            self.error(ParseErrorKind::InvalidUtf8, "help text is not valid UTF-8")
        })?;
        Ok(if text.as_bytes().contains(&b'\\') {
            Cow::Owned(unescape(text, unescape_quote))
        } else {
            Cow::Borrowed(text)
        })
    }

    // ---- labels ----

    /// Scans a quoted label value with `pos` on its opening quote and leaves
    /// `pos` after the closing one. Returns the value's bounds and whether it
    /// has escapes. `multiline` lets a raw newline be part of the value.
    pub(crate) fn scan_label_value(
        &mut self,
        multiline: bool,
    ) -> Result<(usize, usize, bool), ParseError> {
        let start = self.pos + 1;
        let start_line = self.line;
        let mut i = start;
        let mut escaped = false;
        loop {
            i += scan::run(&self.buf[i..], &NOT_LVALUE_STOP);
            match self.buf.get(i) {
                Some(b'"') => break,
                Some(b'\\') => match self.buf.get(i + 1) {
                    Some(b'\n') | None => {
                        self.pos = i + 1;
                        return Err(self.syntax("an escaped character after '\\' in label value"));
                    }
                    Some(_) => {
                        escaped = true;
                        i += 2;
                    }
                },
                Some(_) if multiline => {
                    // compat: Prometheus's text lexer lets a raw newline
                    // into a quoted label value.
                    self.line += 1;
                    i += 1;
                }
                _ => {
                    // An unterminated value is reported where it started.
                    if i == self.buf.len() {
                        self.line = start_line;
                    }
                    self.pos = i;
                    return Err(self.syntax("'\"' to close the label value"));
                }
            }
        }
        self.pos = i + 1;
        Ok((start, i, escaped))
    }

    /// Reads a label value as `scan_label_value` does, then validates and
    /// unescapes it.
    pub(crate) fn label_value(&mut self, multiline: bool) -> Result<Cow<'a, str>, ParseError> {
        let (start, end, escaped) = self.scan_label_value(multiline)?;
        let value = self.str_of(start, end).ok_or_else(|| {
            self.error(
                ParseErrorKind::InvalidUtf8,
                "label value is not valid UTF-8",
            )
        })?;
        Ok(if escaped {
            Cow::Owned(unescape(value, true))
        } else {
            Cow::Borrowed(value)
        })
    }

    /// Fails if a label name occurs twice in the current label set.
    pub(crate) fn check_duplicate_labels(&mut self) -> Result<(), ParseError> {
        let labels = &self.labels;
        let dup = if labels.len() <= 16 {
            (1..labels.len()).find_map(|i| {
                labels[..i]
                    .iter()
                    .any(|(n, _)| *n == labels[i].0)
                    .then_some(labels[i].0)
            })
        } else {
            self.names.clear();
            self.names.extend(labels.iter().map(|(n, _)| *n));
            self.names.sort_unstable();
            self.names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
        };
        match dup {
            Some(name) => Err(self.error(
                ParseErrorKind::DuplicateLabel,
                format!("duplicate label name \"{name}\""),
            )),
            None => Ok(()),
        }
    }
}

const NOT_LVALUE_STOP: ByteClass = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = !LVALUE_STOP[i];
        i += 1;
    }
    t
};

/// Replaces `\\` and `\n` (and `\"` if asked) by what they stand for.
/// Any other backslash pair is kept as written, as Prometheus does.
fn unescape(s: &str, quote: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.as_bytes().first() {
            Some(b'\\') => out.push('\\'),
            Some(b'n') => out.push('\n'),
            Some(b'"') if quote => out.push('"'),
            _ => {
                out.push('\\');
                rest = after;
                continue;
            }
        }
        rest = &after[1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_like_prometheus() {
        #[track_caller]
        fn check(s: &str, quote: bool, want: &str) {
            assert_eq!(unescape(s, quote), want, "{s:?}");
        }
        check(r"a\\b", true, r"a\b");
        check(r"a\nb", true, "a\nb");
        check(r#"a\"b"#, true, "a\"b");
        check(r#"a\"b"#, false, r#"a\"b"#);
        check(r"\t\x", true, r"\t\x");
        check(r"\\n", true, r"\n");
        check(r"\\\n", true, "\\\n");
        check(r"é\\", true, r"é\");
        check("\\", true, "\\");
        check(r"\é", true, r"\é");
    }

    #[test]
    fn next_entry_after_error_is_none() {
        let mut p = Parser::new(b"a{\n", Format::Text);
        assert!(p.next_entry().is_err());
        assert_eq!(p.next_entry(), Ok(None));
    }

    #[test]
    fn label_buffer_is_reused() {
        let body = b"a{b=\"1\",c=\"2\"} 1\nd{e=\"3\"} 2\nf 3\n".repeat(100);
        let mut p = Parser::new(&body, Format::Text);
        let cap = p.labels.capacity();
        let mut n = 0;
        while let Some(e) = p.next_entry().unwrap() {
            assert!(matches!(e, Entry::Sample(_)));
            n += 1;
        }
        assert_eq!((n, p.labels.capacity()), (300, cap));
    }

    #[test]
    fn duplicate_check_large_sets() {
        let mut body = String::from("m{");
        for i in 0..40 {
            body.push_str(&format!("l{i}=\"v\","));
        }
        let ok = format!("{body}}} 1\n");
        let mut p = Parser::new(ok.as_bytes(), Format::Text);
        assert!(matches!(p.next_entry(), Ok(Some(Entry::Sample(s))) if s.labels.len() == 40));
        let dup = format!("{body}l7=\"w\"}} 1\n");
        let mut p = Parser::new(dup.as_bytes(), Format::Text);
        let e = p.next_entry().unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::DuplicateLabel);
        assert!(e.msg.contains("\"l7\""), "{e}");
    }
}
