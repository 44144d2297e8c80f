//! OpenMetrics 1.0 text format, accepting what Prometheus 2.42's
//! `OpenMetricsParser` accepts.
//!
//! ```text
//! # HELP name text                   `\\`, `\"` and `\n` escaped
//! # TYPE name counter                any OpenMetrics type
//! # UNIT name seconds                must be a `_`-suffix of the name
//! name{l="v",...} 1.5 1700000000.25 # {trace_id="x"} 0.5 1700000000.1
//! # EOF
//! ```
//!
//! Tokens are separated by exactly one space; there are no blank lines and
//! no free comments; timestamps are float seconds; the body must end with
//! `# EOF` and an optional newline. Exemplars are validated and dropped.

use crate::error::ParseErrorKind;
use crate::parser::{Parser, Raw};
use crate::scan::{LABEL_CONT, LABEL_START, METRIC_CONT, METRIC_START};
use crate::{MetricType, ParseError, float};

#[derive(Clone, Copy)]
enum Meta {
    Help,
    Type,
    Unit,
}

impl Meta {
    fn keyword(self) -> &'static str {
        match self {
            Meta::Help => "HELP",
            Meta::Type => "TYPE",
            Meta::Unit => "UNIT",
        }
    }
}

/// Where parsed labels go: into the sample, or nowhere (exemplars).
#[derive(Clone, Copy, PartialEq)]
enum Labels {
    Keep,
    Discard,
}

const EXEMPLAR_START: &[u8] = b" # {";

impl<'a> Parser<'a> {
    pub(crate) fn next_openmetrics(&mut self) -> Result<Option<Raw<'a>>, ParseError> {
        match self.peek() {
            None => Err(self.error(ParseErrorKind::MissingEof, "data does not end with # EOF")),
            Some(b'#') => self.om_descriptor(),
            Some(b) if METRIC_START[b as usize] => self.om_sample().map(Some),
            Some(b'\n') => Err(self.error(
                ParseErrorKind::Syntax,
                "blank lines are not allowed in OpenMetrics",
            )),
            Some(_) => Err(self.syntax("a metric name or '#'")),
        }
    }

    /// A line starting with `#`: HELP, TYPE, UNIT or EOF; OpenMetrics has
    /// no other comments.
    fn om_descriptor(&mut self) -> Result<Option<Raw<'a>>, ParseError> {
        let rest = &self.buf[self.pos..];
        if rest.starts_with(b"# EOF") {
            self.pos += 5;
            if self.peek() == Some(b'\n') {
                self.pos += 1;
                self.line += 1;
            }
            if self.pos < self.buf.len() {
                return Err(self.error(ParseErrorKind::DataAfterEof, "unexpected data after # EOF"));
            }
            return Ok(None);
        }
        let meta = match rest.get(..7) {
            Some(b"# HELP ") => Meta::Help,
            Some(b"# TYPE ") => Meta::Type,
            Some(b"# UNIT ") => Meta::Unit,
            _ => return Err(self.syntax("'# HELP ', '# TYPE ', '# UNIT ' or '# EOF'")),
        };
        self.pos += 7;
        if !self.peek().is_some_and(|b| METRIC_START[b as usize]) {
            return Err(self.syntax(&format!("a metric name after {}", meta.keyword())));
        }
        let metric = self.take_name(&METRIC_CONT);
        if self.peek() != Some(b' ') {
            return Err(self.syntax(&format!(
                "a space after the metric name in {}",
                meta.keyword()
            )));
        }
        self.pos += 1;
        let end = self.line_end();
        if end == self.buf.len() {
            self.pos = end;
            return Err(self.error(ParseErrorKind::MissingEof, "data does not end with # EOF"));
        }
        let (start, word) = (self.pos, &self.buf[self.pos..end]);
        let raw = match meta {
            Meta::Help => Raw::Help {
                metric,
                text: self.help_text(start, end, true)?,
            },
            Meta::Type => {
                let kind = MetricType::from_openmetrics(word).ok_or_else(|| {
                    let msg = format!("invalid metric type \"{}\"", word.escape_ascii());
                    self.error(ParseErrorKind::InvalidType, msg)
                })?;
                Raw::Type { metric, kind }
            }
            Meta::Unit => Raw::Unit {
                metric,
                unit: self.om_unit(metric, word)?,
            },
        };
        self.finish_line(end);
        Ok(Some(raw))
    }

    /// A unit must be empty or end the metric name after a `_`. Being a
    /// piece of the name, it is then known to be ASCII.
    fn om_unit(&self, metric: &'a str, unit: &[u8]) -> Result<&'a str, ParseError> {
        if unit.is_empty() {
            return Ok("");
        }
        let name = metric.as_bytes();
        if name.len() > unit.len()
            && name.ends_with(unit)
            && name[name.len() - unit.len() - 1] == b'_'
        {
            return Ok(&metric[metric.len() - unit.len()..]);
        }
        let msg = format!(
            "unit \"{}\" is not a suffix of metric \"{metric}\"",
            unit.escape_ascii()
        );
        Err(self.error(ParseErrorKind::Syntax, msg))
    }

    fn om_sample(&mut self) -> Result<Raw<'a>, ParseError> {
        let start = self.pos;
        let name = self.take_name(&METRIC_CONT);
        if self.peek() == Some(b'{') {
            self.pos += 1;
            self.om_labels(Labels::Keep)?;
        }
        let series = &self.buf[start..self.pos];
        let (value, _) = self.om_number("a value after the metric", "value")?;
        let mut timestamp_ms = None;
        if self.at_space_before_timestamp() {
            let ts = self.om_timestamp("a timestamp", "timestamp")?;
            // compat: Prometheus truncates seconds * 1000 toward zero (so
            // 1.001 becomes 1000 ms), and Rust's cast saturates where Go's
            // is undefined for timestamps beyond ±292 million years.
            timestamp_ms = Some((ts * 1000.0) as i64);
        }
        if self.buf[self.pos..].starts_with(EXEMPLAR_START) {
            self.om_exemplar(name)?;
        }
        self.om_end_of_line("end of line or an exemplar")?;
        Ok(Raw::Sample {
            name,
            value,
            timestamp_ms,
            series,
        })
    }

    /// True if a space follows that starts a timestamp rather than an
    /// exemplar.
    fn at_space_before_timestamp(&self) -> bool {
        self.peek() == Some(b' ') && !self.buf[self.pos..].starts_with(EXEMPLAR_START)
    }

    /// Consumes the line's newline, or fails.
    fn om_end_of_line(&mut self, expected: &str) -> Result<(), ParseError> {
        match self.peek() {
            Some(b'\n') => {
                self.pos += 1;
                self.line += 1;
                Ok(())
            }
            None => Err(self.error(ParseErrorKind::MissingEof, "data does not end with # EOF")),
            Some(_) => Err(self.syntax(expected)),
        }
    }

    /// A space, then a number token running to the next space or newline.
    fn om_number(&mut self, expected: &str, what: &str) -> Result<(f64, &'a [u8]), ParseError> {
        if self.peek() != Some(b' ') {
            return Err(self.syntax(expected));
        }
        let start = self.pos + 1;
        let len = self.buf[start..]
            .iter()
            .position(|&b| b == b' ' || b == b'\n')
            .unwrap_or(self.buf.len() - start);
        if len == 0 {
            self.pos = start;
            return Err(self.syntax(expected));
        }
        self.pos = start + len;
        let token = &self.buf[start..self.pos];
        let value = float::parse_float(token).ok_or_else(|| self.bad_number(what, token))?;
        Ok((value, token))
    }

    /// Like `om_number`, for timestamps in seconds, which must be finite.
    fn om_timestamp(&mut self, expected: &str, what: &str) -> Result<f64, ParseError> {
        let (ts, token) = self.om_number(expected, what)?;
        if ts.is_finite() {
            Ok(ts)
        } else {
            Err(self.bad_number(what, token))
        }
    }

    /// ` # {labels} value [timestamp]` after a sample, checked and dropped.
    fn om_exemplar(&mut self, metric: &str) -> Result<(), ParseError> {
        // compat: Prometheus allows exemplars only on counters' `_total` and
        // histograms' `_bucket` samples.
        if !(metric.ends_with("_total") || metric.ends_with("_bucket")) {
            let msg = format!("metric name \"{metric}\" does not support exemplars");
            return Err(self.error(ParseErrorKind::Syntax, msg));
        }
        self.pos += EXEMPLAR_START.len();
        self.om_labels(Labels::Discard)?;
        self.om_number("a value after the exemplar labels", "exemplar value")?;
        if self.at_space_before_timestamp() {
            self.om_timestamp("an exemplar timestamp", "exemplar timestamp")?;
        }
        match self.peek() {
            Some(b'\n') | None => Ok(()),
            Some(_) => Err(self.syntax("end of line after the exemplar")),
        }
    }

    /// Label pairs after `{`, up to and including `}`: `}` or
    /// `name="value"` pairs separated by single commas, no blanks.
    fn om_labels(&mut self, dest: Labels) -> Result<(), ParseError> {
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        let mut expected = "a label name or '}'";
        loop {
            if !self.peek().is_some_and(|b| LABEL_START[b as usize]) {
                return Err(self.syntax(expected));
            }
            let label = self.take_name(&LABEL_CONT);
            if self.peek() != Some(b'=') {
                return Err(self.syntax(&format!("'=' after label name \"{label}\"")));
            }
            self.pos += 1;
            if self.peek() != Some(b'"') {
                return Err(self.syntax(&format!("a quoted value for label \"{label}\"")));
            }
            match dest {
                Labels::Keep => {
                    let value = self.label_value(false)?;
                    self.labels.push((label, value));
                }
                Labels::Discard => {
                    let (start, end, _) = self.scan_label_value(false)?;
                    if self.str_of(start, end).is_none() {
                        let msg = "exemplar label value is not valid UTF-8";
                        return Err(self.error(ParseErrorKind::InvalidUtf8, msg));
                    }
                }
            }
            match self.peek() {
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                // compat: unlike the text format, a trailing comma is an
                // error, as in Prometheus's OpenMetrics parser.
                Some(b',') => {
                    self.pos += 1;
                    expected = "a label name after ','";
                }
                _ => return Err(self.syntax("',' or '}' after a label value")),
            }
        }
        if dest == Labels::Keep {
            self.check_duplicate_labels()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Entry, Format, MetricType, ParseErrorKind, Parser};

    fn render(input: &[u8]) -> Vec<String> {
        let mut p = Parser::new(input, Format::OpenMetrics);
        let mut out = Vec::new();
        loop {
            match p.next_entry() {
                Ok(None) => return out,
                Ok(Some(Entry::Help { metric, text })) => {
                    out.push(format!("help {metric} {text:?}"))
                }
                Ok(Some(Entry::Type { metric, kind })) => out.push(format!("type {metric} {kind}")),
                Ok(Some(Entry::Unit { metric, unit })) => {
                    out.push(format!("unit {metric} {unit:?}"))
                }
                Ok(Some(Entry::Sample(s))) => {
                    let labels: Vec<String> =
                        s.labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
                    out.push(format!(
                        "{} {{{}}} {:?} {:?}",
                        s.name,
                        labels.join(","),
                        s.value,
                        s.timestamp_ms
                    ));
                }
                Err(e) => {
                    out.push(format!("error {e} ({:?})", e.kind));
                    return out;
                }
            }
        }
    }

    #[track_caller]
    fn check(input: &str, want: &[&str]) {
        assert_eq!(render(input.as_bytes()), want, "input {input:?}");
    }

    #[test]
    fn families_and_samples() {
        check(
            "# HELP a_seconds Some \\\"help\\\"\\n.\n# TYPE a_seconds histogram\n# UNIT a_seconds seconds\n\
             a_seconds_bucket{le=\"+Inf\"} 1 # {id=\"x\"} 0.5 1.5\na_seconds_count 1\n\
             a_seconds_created 1.7e9\n# EOF\n",
            &[
                r#"help a_seconds "Some \"help\"\n.""#,
                "type a_seconds histogram",
                r#"unit a_seconds "seconds""#,
                r#"a_seconds_bucket {le="+Inf"} 1.0 None"#,
                "a_seconds_count {} 1.0 None",
                "a_seconds_created {} 1700000000.0 None",
            ],
        );
        check("# EOF", &[]);
        check(
            "# TYPE a gaugehistogram\n# TYPE b info\n# TYPE c stateset\n# TYPE d unknown\n# EOF",
            &[
                "type a gaugehistogram",
                "type b info",
                "type c stateset",
                "type d unknown",
            ],
        );
        check(
            "# HELP a \n# UNIT a \n# EOF\n",
            &[r#"help a """#, r#"unit a """#],
        );
        check("# HELP a  x\n# EOF\n", &[r#"help a " x""#]);
    }

    #[test]
    fn timestamps_are_seconds() {
        check(
            "a 1 1.5\nb 2 1700000000\nc 3 -1.5\nd 4 1.001\ne 5 1e3\n# EOF\n",
            &[
                "a {} 1.0 Some(1500)",
                "b {} 2.0 Some(1700000000000)",
                "c {} 3.0 Some(-1500)",
                "d {} 4.0 Some(1000)",
                "e {} 5.0 Some(1000000)",
            ],
        );
    }

    #[test]
    fn exemplars() {
        check(
            "a_total 1 # {} 1\n\
             a_total 1 2 # {t=\"x\",u=\"y\"} 1 2\n\
             a_total{b=\"c\"} 1 # {t=\"\\\"\"} NaN\n# EOF\n",
            &[
                "a_total {} 1.0 None",
                "a_total {} 1.0 Some(2000)",
                r#"a_total {b="c"} 1.0 None"#,
            ],
        );
    }

    #[test]
    fn errors() {
        #[track_caller]
        fn fails(input: &[u8], line: usize, kind: ParseErrorKind, msg: &str) {
            let mut p = Parser::new(input, Format::OpenMetrics);
            let err = loop {
                match p.next_entry() {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("{:?} parsed", input.escape_ascii().to_string()),
                    Err(e) => break e,
                }
            };
            assert_eq!(
                (err.line, err.kind, err.msg.as_str()),
                (line, kind, msg),
                "{:?}",
                input.escape_ascii().to_string()
            );
        }
        use ParseErrorKind::*;
        fails(b"", 1, MissingEof, "data does not end with # EOF");
        fails(b"a 1\n", 2, MissingEof, "data does not end with # EOF");
        fails(b"a 1", 1, MissingEof, "data does not end with # EOF");
        fails(b"a 1 2", 1, MissingEof, "data does not end with # EOF");
        fails(b"# HELP a x", 1, MissingEof, "data does not end with # EOF");
        fails(b"# EOF\n\n", 2, DataAfterEof, "unexpected data after # EOF");
        fails(
            b"# EOF\na 1\n",
            2,
            DataAfterEof,
            "unexpected data after # EOF",
        );
        fails(b"# EOF ", 1, DataAfterEof, "unexpected data after # EOF");
        fails(
            b"a 1\n\n# EOF\n",
            2,
            Syntax,
            "blank lines are not allowed in OpenMetrics",
        );
        fails(
            b"# comment\n# EOF\n",
            1,
            Syntax,
            "expected '# HELP ', '# TYPE ', '# UNIT ' or '# EOF', got \"#\"",
        );
        fails(
            b"#EOF\n",
            1,
            Syntax,
            "expected '# HELP ', '# TYPE ', '# UNIT ' or '# EOF', got \"#EOF\"",
        );
        fails(
            b"a  1\n# EOF\n",
            1,
            Syntax,
            "expected a value after the metric, got \" 1\"",
        );
        fails(
            b"a\t1\n# EOF\n",
            1,
            Syntax,
            "expected a value after the metric, got \"\\t1\"",
        );
        fails(
            b"a 1 \n# EOF\n",
            1,
            Syntax,
            "expected a timestamp, got end of line",
        );
        fails(
            b" a 1\n# EOF\n",
            1,
            Syntax,
            "expected a metric name or '#', got \" a\"",
        );
        fails(
            b"a{b=\"c\",} 1\n# EOF\n",
            1,
            Syntax,
            "expected a label name after ',', got \"}\"",
        );
        fails(
            b"a{,b=\"c\"} 1\n# EOF\n",
            1,
            Syntax,
            "expected a label name or '}', got \",b=\\\"c\\\"}\"",
        );
        fails(
            b"a{b=\"c\" d=\"e\"} 1\n# EOF\n",
            1,
            Syntax,
            "expected ',' or '}' after a label value, got \" d=\\\"e\\\"}\"",
        );
        fails(
            b"a{b = \"c\"} 1\n# EOF\n",
            1,
            Syntax,
            "expected '=' after label name \"b\", got \" =\"",
        );
        fails(
            b"a{b=\"c\nd\"} 1\n# EOF\n",
            1,
            Syntax,
            "expected '\"' to close the label value, got end of line",
        );
        fails(
            b"a{b=\"c\",b=\"d\"} 1\n# EOF\n",
            1,
            DuplicateLabel,
            "duplicate label name \"b\"",
        );
        fails(
            b"a 1 NaN\n# EOF\n",
            1,
            InvalidNumber,
            "invalid timestamp \"NaN\"",
        );
        fails(
            b"a 1 +Inf\n# EOF\n",
            1,
            InvalidNumber,
            "invalid timestamp \"+Inf\"",
        );
        fails(
            b"a 1 2 3\n# EOF\n",
            1,
            Syntax,
            "expected end of line or an exemplar, got \" 3\"",
        );
        fails(b"a x\n# EOF\n", 1, InvalidNumber, "invalid value \"x\"");
        fails(
            b"a 1 # {} 1\n# EOF\n",
            1,
            Syntax,
            "metric name \"a\" does not support exemplars",
        );
        fails(
            b"a_total 1 # {} 1 2 3\n# EOF\n",
            1,
            Syntax,
            "expected end of line after the exemplar, got \" 3\"",
        );
        fails(
            b"a_total 1 # {} \n# EOF\n",
            1,
            Syntax,
            "expected a value after the exemplar labels, got end of line",
        );
        fails(
            b"a_total 1 # {a=\"\xff\"} 1\n# EOF\n",
            1,
            InvalidUtf8,
            "exemplar label value is not valid UTF-8",
        );
        fails(
            b"a_total 1 # {} 1 Inf\n# EOF\n",
            1,
            InvalidNumber,
            "invalid exemplar timestamp \"Inf\"",
        );
        fails(
            b"a_total 1 # {} 1",
            1,
            MissingEof,
            "data does not end with # EOF",
        );
        fails(
            b"a_total 1 #{} 1\n# EOF\n",
            1,
            InvalidNumber,
            "invalid timestamp \"#{}\"",
        );
        fails(
            b"# TYPE a untyped\n# EOF\n",
            1,
            InvalidType,
            "invalid metric type \"untyped\"",
        );
        fails(
            b"# TYPE a\n# EOF\n",
            1,
            Syntax,
            "expected a space after the metric name in TYPE, got end of line",
        );
        fails(
            b"# TYPE  a gauge\n# EOF\n",
            1,
            Syntax,
            "expected a metric name after TYPE, got \" a\"",
        );
        fails(
            b"# UNIT a_bytes seconds\n# EOF\n",
            1,
            Syntax,
            "unit \"seconds\" is not a suffix of metric \"a_bytes\"",
        );
        fails(
            b"# UNIT seconds seconds\n# EOF\n",
            1,
            Syntax,
            "unit \"seconds\" is not a suffix of metric \"seconds\"",
        );
        fails(
            b"# UNIT aseconds seconds\n# EOF\n",
            1,
            Syntax,
            "unit \"seconds\" is not a suffix of metric \"aseconds\"",
        );
        fails(
            b"# HELP a \xff\n# EOF\n",
            1,
            InvalidUtf8,
            "help text is not valid UTF-8",
        );
        fails(
            b"a 1\r\n# EOF\n",
            1,
            InvalidNumber,
            "invalid value \"1\\r\"",
        );
    }

    #[test]
    fn unit_entry() {
        let mut p = Parser::new(b"# UNIT a_bytes bytes\n# EOF\n", Format::OpenMetrics);
        assert_eq!(
            p.next_entry().unwrap(),
            Some(Entry::Unit {
                metric: "a_bytes",
                unit: "bytes"
            })
        );
        assert_eq!(p.next_entry().unwrap(), None);
        let mut p = Parser::new(b"# TYPE a_info info\n# EOF\n", Format::OpenMetrics);
        assert_eq!(
            p.next_entry().unwrap(),
            Some(Entry::Type {
                metric: "a_info",
                kind: MetricType::Info
            })
        );
    }
}
