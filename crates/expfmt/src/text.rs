//! Prometheus text format 0.0.4, accepting what Prometheus 2.42's
//! `PromParser` accepts.
//!
//! ```text
//! # HELP name text          help, `\\` and `\n` escaped
//! # TYPE name counter       counter|gauge|histogram|summary|untyped
//! # anything else           comment
//! name{l="v",...} 1.5 1700000000000
//! ```
//!
//! Spaces and tabs may surround every token; blank lines are skipped; the last
//! line needs no newline. Timestamps are integer milliseconds.

use crate::error::ParseErrorKind;
use crate::parser::{Parser, Raw};
use crate::scan::{LABEL_CONT, LABEL_START, METRIC_CONT, METRIC_START};
use crate::{MetricType, ParseError, float};

#[derive(Clone, Copy)]
enum Meta {
    Help,
    Type,
}

/// Bytes that end a sample value token: `[^{ \t\n]` (NUL too, which
/// Prometheus's lexer cannot match either).
const VALUE_STOP: [bool; 256] = {
    let mut t = [false; 256];
    t[b' ' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'{' as usize] = true;
    t[0] = true;
    t
};

impl<'a> Parser<'a> {
    pub(crate) fn next_text(&mut self) -> Result<Option<Raw<'a>>, ParseError> {
        loop {
            self.skip_blanks();
            let Some(b) = self.peek() else {
                return Ok(None);
            };
            match b {
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                }
                b'#' => {
                    if let Some(meta) = self.text_comment()? {
                        return Ok(Some(meta));
                    }
                }
                b if METRIC_START[b as usize] => return self.text_sample().map(Some),
                // compat: Prometheus's lexer stops silently at a NUL byte
                // here, dropping the rest of the body; we report it instead.
                _ => return Err(self.syntax("a metric name, '#' or end of line")),
            }
        }
    }

    /// Handles a line starting with `#`: a HELP or TYPE line gives an entry,
    /// anything else is a comment and is skipped.
    fn text_comment(&mut self) -> Result<Option<Raw<'a>>, ParseError> {
        self.pos += 1;
        // compat: `#HELP` without a blank after `#`, or `# HELP` without a
        // blank after the keyword, is just a comment.
        if self.skip_blanks() > 0 {
            let rest = &self.buf[self.pos..];
            let meta = if rest.starts_with(b"HELP") {
                Some(Meta::Help)
            } else if rest.starts_with(b"TYPE") {
                Some(Meta::Type)
            } else {
                None
            };
            if let Some(meta) = meta
                && matches!(rest.get(4), Some(b' ' | b'\t'))
            {
                self.pos += 4;
                self.skip_blanks();
                return self.text_meta(meta).map(Some);
            }
        }
        let end = self.line_end();
        self.finish_line(end);
        Ok(None)
    }

    fn text_meta(&mut self, meta: Meta) -> Result<Raw<'a>, ParseError> {
        let keyword = match meta {
            Meta::Help => "HELP",
            Meta::Type => "TYPE",
        };
        if !self.peek().is_some_and(|b| METRIC_START[b as usize]) {
            return Err(self.syntax(&format!("a metric name after {keyword}")));
        }
        let metric = self.take_name(&METRIC_CONT);
        let end = self.line_end();
        // compat: Prometheus drops exactly one byte between the name and the
        // text (whatever it is), and a rest of only blanks is empty text.
        let rest = &self.buf[self.pos..end];
        let start = if rest.iter().all(|&b| b == b' ' || b == b'\t') {
            end
        } else {
            self.pos + 1
        };
        let raw = match meta {
            Meta::Type => {
                let word = &self.buf[start..end];
                let kind = MetricType::from_text(word).ok_or_else(|| {
                    let msg = format!("invalid metric type \"{}\"", word.escape_ascii());
                    self.error(ParseErrorKind::InvalidType, msg)
                })?;
                Raw::Type { metric, kind }
            }
            Meta::Help => Raw::Help {
                metric,
                text: self.help_text(start, end, false)?,
            },
        };
        self.finish_line(end);
        Ok(raw)
    }

    fn text_sample(&mut self) -> Result<Raw<'a>, ParseError> {
        let start = self.pos;
        let name = self.take_name(&METRIC_CONT);
        let mut series_end = self.pos;
        self.skip_blanks();
        if self.peek() == Some(b'{') {
            self.pos += 1;
            self.text_labels()?;
            series_end = self.pos;
            self.skip_blanks();
        }
        let value_start = self.pos;
        self.pos += self.buf[value_start..]
            .iter()
            .position(|&b| VALUE_STOP[b as usize])
            .unwrap_or(self.buf.len() - value_start);
        if self.pos == value_start {
            return Err(self.syntax("a value after the metric"));
        }
        let token = &self.buf[value_start..self.pos];
        let value = float::parse_float(token).ok_or_else(|| self.bad_number("value", token))?;
        self.skip_blanks();
        let timestamp_ms = match self.peek() {
            None | Some(b'\n') => None,
            Some(b'0'..=b'9') => {
                let ts = self.text_timestamp()?;
                self.skip_blanks();
                if !matches!(self.peek(), None | Some(b'\n')) {
                    return Err(self.syntax("end of line after the timestamp"));
                }
                Some(ts)
            }
            Some(_) => return Err(self.syntax("a timestamp or end of line")),
        };
        let end = self.pos;
        self.finish_line(end);
        Ok(Raw::Sample {
            name,
            value,
            timestamp_ms,
            series: &self.buf[start..series_end],
        })
    }

    /// Label pairs after `{`, up to and including `}`.
    fn text_labels(&mut self) -> Result<(), ParseError> {
        loop {
            self.skip_blanks();
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                Some(b) if LABEL_START[b as usize] => {}
                _ => return Err(self.syntax("a label name or '}'")),
            }
            let label = self.take_name(&LABEL_CONT);
            self.skip_blanks();
            if self.peek() != Some(b'=') {
                return Err(self.syntax(&format!("'=' after label name \"{label}\"")));
            }
            self.pos += 1;
            self.skip_blanks();
            if self.peek() != Some(b'"') {
                return Err(self.syntax(&format!("a quoted value for label \"{label}\"")));
            }
            let value = self.label_value(true)?;
            self.labels.push((label, value));
            self.skip_blanks();
            // compat: Prometheus 2.42 takes the comma between pairs as
            // optional, so `{a="1" b="2"}` and `{a="1",}` both parse.
            if self.peek() == Some(b',') {
                self.pos += 1;
            }
        }
        self.check_duplicate_labels()
    }

    /// An integer millisecond timestamp. compat: digits only, so negative
    /// timestamps are rejected, as by Prometheus.
    fn text_timestamp(&mut self) -> Result<i64, ParseError> {
        let start = self.pos;
        self.pos += self.buf[start..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(self.buf.len() - start);
        let token = &self.buf[start..self.pos];
        token
            .iter()
            .try_fold(0i64, |n, d| {
                n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
            })
            .ok_or_else(|| self.bad_number("timestamp", token))
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use crate::{Entry, Format, MetricType, ParseErrorKind, Parser};

    /// Parses `input` and renders every entry on one line, or the error.
    fn render(input: &str) -> Vec<String> {
        let mut p = Parser::new(input.as_bytes(), Format::Text);
        let mut out = Vec::new();
        loop {
            match p.next_entry() {
                Ok(None) => return out,
                Ok(Some(Entry::Help { metric, text })) => {
                    out.push(format!("help {metric} {text:?}"))
                }
                Ok(Some(Entry::Type { metric, kind })) => out.push(format!("type {metric} {kind}")),
                Ok(Some(Entry::Unit { metric, unit })) => out.push(format!("unit {metric} {unit}")),
                Ok(Some(Entry::Sample(s))) => {
                    let labels: Vec<String> =
                        s.labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
                    out.push(format!(
                        "{} {{{}}} {:?} {:?} {:?}",
                        s.name,
                        labels.join(","),
                        s.value,
                        s.timestamp_ms,
                        String::from_utf8_lossy(s.series)
                    ));
                }
                Err(e) => {
                    out.push(format!("error {e}"));
                    return out;
                }
            }
        }
    }

    #[track_caller]
    fn check(input: &str, want: &[&str]) {
        assert_eq!(render(input), want, "input {input:?}");
    }

    #[test]
    fn samples() {
        check("a 1\n", &[r#"a {} 1.0 None "a""#]);
        check("a 1", &[r#"a {} 1.0 None "a""#]);
        check(
            "a{b=\"c\",d=\"e\"} 2 3\n",
            &[r#"a {b="c",d="e"} 2.0 Some(3) "a{b=\"c\",d=\"e\"}""#],
        );
        check(
            " \t a \t{ b = \"c\" , } \t -1.5e3 \t 17 \t\n",
            &[r#"a {b="c"} -1500.0 Some(17) "a \t{ b = \"c\" , }""#],
        );
        check("a{} 1", &[r#"a {} 1.0 None "a{}""#]);
        check("a{b=\"c\"}1", &[r#"a {b="c"} 1.0 None "a{b=\"c\"}""#]);
        check(
            "a{b=\"c\" d=\"e\"} 1",
            &[r#"a {b="c",d="e"} 1.0 None "a{b=\"c\" d=\"e\"}""#],
        );
        check("a:b:c_1 1\n", &[r#"a:b:c_1 {} 1.0 None "a:b:c_1""#]);
        check("a 1 0\n", &[r#"a {} 1.0 Some(0) "a""#]);
        check(
            "a 1 9223372036854775807\n",
            &[r#"a {} 1.0 Some(9223372036854775807) "a""#],
        );
    }

    #[test]
    fn special_values() {
        check(
            "a NaN\nb +Inf\nc -Inf\nd inf\ne Infinity\n",
            &[
                r#"a {} NaN None "a""#,
                r#"b {} inf None "b""#,
                r#"c {} -inf None "c""#,
                r#"d {} inf None "d""#,
                r#"e {} inf None "e""#,
            ],
        );
    }

    #[test]
    fn escapes() {
        check(
            r#"a{b="x\\y\"z\nw\t"} 1"#,
            &[r#"a {b="x\\y\"z\nw\\t"} 1.0 None "a{b=\"x\\\\y\\\"z\\nw\\t\"}""#],
        );
        check("# HELP a x\\\\y\\nz\\\"\n", &[r#"help a "x\\y\nz\\\"""#]);
        let mut p = Parser::new(br#"a{b="plain",c="e\"s"} 1"#, Format::Text);
        let Some(Entry::Sample(s)) = p.next_entry().unwrap() else {
            panic!("want sample")
        };
        assert!(matches!(s.labels[0].1, Cow::Borrowed("plain")));
        assert!(matches!(&s.labels[1].1, Cow::Owned(v) if v == "e\"s"));
    }

    #[test]
    fn raw_newline_in_label_value() {
        check(
            "a{b=\"x\ny\"} 1\nc 2 oops\n",
            &[
                r#"a {b="x\ny"} 1.0 None "a{b=\"x\ny\"}""#,
                r#"error line 3: expected a timestamp or end of line, got "oops""#,
            ],
        );
    }

    #[test]
    fn metadata_and_comments() {
        check(
            "# HELP a  two  spaces \n# TYPE a counter\n#HELP x y\n# HELPER x\n# random\n#\n# EOF\n\n",
            &[r#"help a " two  spaces ""#, "type a counter"],
        );
        check(
            "# HELP a\n# HELP b \t \n# HELP c{x\n",
            &[r#"help a """#, r#"help b """#, r#"help c "x""#],
        );
        check(
            "  # TYPE a\tuntyped\n#\tTYPE b summary",
            &["type a unknown", "type b summary"],
        );
        check(
            "# TYPE a histogram\n# TYPE a gauge",
            &["type a histogram", "type a gauge"],
        );
        check("# HELP\n# TYPE\n", &[]);
        let mut p = Parser::new(b"# TYPE a untyped\n", Format::Text);
        assert_eq!(
            p.next_entry().unwrap(),
            Some(Entry::Type {
                metric: "a",
                kind: MetricType::Unknown
            })
        );
    }

    #[test]
    fn errors() {
        #[track_caller]
        fn fails(input: &[u8], line: usize, kind: ParseErrorKind, msg: &str) {
            let mut p = Parser::new(input, Format::Text);
            let err = loop {
                match p.next_entry() {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("{input:?} parsed"),
                    Err(e) => break e,
                }
            };
            assert_eq!(
                (err.line, err.kind, err.msg.as_str()),
                (line, kind, msg),
                "{input:?}"
            );
        }
        use ParseErrorKind::*;
        fails(
            b"a\n",
            1,
            Syntax,
            "expected a value after the metric, got end of line",
        );
        fails(
            b"a",
            1,
            Syntax,
            "expected a value after the metric, got end of input",
        );
        fails(
            b"a 1\nb{c=\"d\"\n",
            2,
            Syntax,
            "expected a label name or '}', got end of line",
        );
        fails(
            b"a{c=d} 1",
            1,
            Syntax,
            "expected a quoted value for label \"c\", got \"d}\"",
        );
        fails(
            b"a{c} 1",
            1,
            Syntax,
            "expected '=' after label name \"c\", got \"}\"",
        );
        fails(
            b"a{,} 1",
            1,
            Syntax,
            "expected a label name or '}', got \",}\"",
        );
        fails(
            b"a{1=\"x\"} 1",
            1,
            Syntax,
            "expected a label name or '}', got \"1=\\\"x\\\"}\"",
        );
        fails(
            b"a{b=\"x} 1\n",
            1,
            Syntax,
            "expected '\"' to close the label value, got end of input",
        );
        fails(
            b"a{b=\"x\\\n\"} 1\n",
            1,
            Syntax,
            "expected an escaped character after '\\' in label value, got end of line",
        );
        fails(
            b"a{b=\"1\",b=\"2\"} 1",
            1,
            DuplicateLabel,
            "duplicate label name \"b\"",
        );
        fails(b"a 1x", 1, InvalidNumber, "invalid value \"1x\"");
        fails(b"a 0x1p3", 1, InvalidNumber, "invalid value \"0x1p3\"");
        fails(b"a 1e999", 1, InvalidNumber, "invalid value \"1e999\"");
        fails(
            b"a 1 2 3",
            1,
            Syntax,
            "expected end of line after the timestamp, got \"3\"",
        );
        fails(
            b"a 1 -2",
            1,
            Syntax,
            "expected a timestamp or end of line, got \"-2\"",
        );
        fails(
            b"a 1 2.5",
            1,
            Syntax,
            "expected end of line after the timestamp, got \".5\"",
        );
        fails(
            b"a 1 99999999999999999999",
            1,
            InvalidNumber,
            "invalid timestamp \"99999999999999999999\"",
        );
        fails(
            b"a 1 {",
            1,
            Syntax,
            "expected a timestamp or end of line, got \"{\"",
        );
        fails(
            b"a{b=\"c\"} {",
            1,
            Syntax,
            "expected a value after the metric, got \"{\"",
        );
        fails(
            b"\n\n{b=\"c\"} 1",
            3,
            Syntax,
            "expected a metric name, '#' or end of line, got \"{b=\\\"c\\\"}\"",
        );
        fails(
            b"1a 1",
            1,
            Syntax,
            "expected a metric name, '#' or end of line, got \"1a\"",
        );
        fails(b"a 1\r\n", 1, InvalidNumber, "invalid value \"1\\r\"");
        fails(
            b"\0",
            1,
            Syntax,
            "expected a metric name, '#' or end of line, got \"\\x00\"",
        );
        fails(
            b"# TYPE a gaugehistogram\n",
            1,
            InvalidType,
            "invalid metric type \"gaugehistogram\"",
        );
        fails(
            b"# TYPE a counter \n",
            1,
            InvalidType,
            "invalid metric type \"counter \"",
        );
        fails(b"# TYPE a\n", 1, InvalidType, "invalid metric type \"\"");
        fails(
            b"# HELP 1 x\n",
            1,
            Syntax,
            "expected a metric name after HELP, got \"1\"",
        );
        fails(
            b"# HELP a \xff\n",
            1,
            InvalidUtf8,
            "help text is not valid UTF-8",
        );
        fails(
            b"a{b=\"\xff\"} 1\n",
            1,
            InvalidUtf8,
            "label value is not valid UTF-8",
        );
    }

    #[test]
    fn invalid_utf8_in_comments_is_fine() {
        let mut p = Parser::new(b"# \xff\xfe comment\na 1\n", Format::Text);
        assert!(matches!(p.next_entry(), Ok(Some(Entry::Sample(_)))));
        assert_eq!(p.next_entry(), Ok(None));
    }
}
