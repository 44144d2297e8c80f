//! A writer for text format 0.0.4, the format of `/federate` and of our own
//! `/metrics` when a scraper asks for plain text.

use std::io::{self, Write};

use crate::MetricType;
use crate::float::write_float;
use crate::scan::{self, LABEL_CONT, LABEL_START, METRIC_CONT, METRIC_START};

/// Writes text format 0.0.4 line by line. Each call writes one complete
/// line; the writer keeps one line buffer and does not allocate per sample.
///
/// Names are checked, so everything written parses again: an invalid metric
/// or label name, or a negative timestamp (Prometheus's text parser only
/// reads digits), is an `InvalidInput` error and nothing is written.
///
/// ```
/// use expfmt::{MetricType, TextWriter};
/// let mut w = TextWriter::new(Vec::new());
/// w.help("up", "1 if the target is up.")?;
/// w.type_("up", MetricType::Gauge)?;
/// w.sample("up", &[("job", "node")], 1.0, Some(1700000000000))?;
/// let out = w.into_inner();
/// assert_eq!(
///     String::from_utf8(out).unwrap(),
///     "# HELP up 1 if the target is up.\n# TYPE up gauge\nup{job=\"node\"} 1 1700000000000\n"
/// );
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct TextWriter<W: Write> {
    out: W,
    line: Vec<u8>,
}

impl<W: Write> TextWriter<W> {
    pub fn new(out: W) -> Self {
        TextWriter {
            out,
            line: Vec::with_capacity(256),
        }
    }

    /// `# HELP name text`, escaping `\` and newlines in the text.
    ///
    /// A text of only blanks reads back as empty, as in Prometheus.
    pub fn help(&mut self, metric: &str, text: &str) -> io::Result<()> {
        check_name(metric, &METRIC_START, &METRIC_CONT, "metric")?;
        self.line.clear();
        self.line.extend_from_slice(b"# HELP ");
        self.line.extend_from_slice(metric.as_bytes());
        self.line.push(b' ');
        escape_into(&mut self.line, text, false);
        self.flush_line()
    }

    /// `# TYPE name type`. The text format has no gauge histograms, info or
    /// state sets: those, like unknown, are written as `untyped`.
    pub fn type_(&mut self, metric: &str, kind: MetricType) -> io::Result<()> {
        check_name(metric, &METRIC_START, &METRIC_CONT, "metric")?;
        self.line.clear();
        self.line.extend_from_slice(b"# TYPE ");
        self.line.extend_from_slice(metric.as_bytes());
        self.line.push(b' ');
        self.line.extend_from_slice(kind.text_name().as_bytes());
        self.flush_line()
    }

    /// `name{label="value",...} value [timestamp]`, labels in the given
    /// order, the value as Go's `FormatFloat(v, 'g', -1, 64)` prints it.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: f64,
        timestamp_ms: Option<i64>,
    ) -> io::Result<()> {
        check_name(name, &METRIC_START, &METRIC_CONT, "metric")?;
        for (label, _) in labels {
            check_name(label, &LABEL_START, &LABEL_CONT, "label")?;
        }
        if let Some(ts) = timestamp_ms
            && ts < 0
        {
            return Err(invalid(format!(
                "timestamp {ts} is negative, which the text format cannot carry"
            )));
        }
        self.line.clear();
        self.line.extend_from_slice(name.as_bytes());
        if !labels.is_empty() {
            self.line.push(b'{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.line.push(b',');
                }
                self.line.extend_from_slice(label.as_bytes());
                self.line.extend_from_slice(b"=\"");
                escape_into(&mut self.line, v, true);
                self.line.push(b'"');
            }
            self.line.push(b'}');
        }
        self.line.push(b' ');
        write_float(&mut self.line, value);
        if let Some(ts) = timestamp_ms {
            self.line.push(b' ');
            // i64's Display does not allocate when writing into a Vec.
            write!(self.line, "{ts}")?;
        }
        self.flush_line()
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn get_ref(&self) -> &W {
        &self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn flush_line(&mut self) -> io::Result<()> {
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }
}

fn check_name(
    name: &str,
    start: &scan::ByteClass,
    cont: &scan::ByteClass,
    what: &str,
) -> io::Result<()> {
    let b = name.as_bytes();
    let ok = b.first().is_some_and(|&c| start[c as usize]) && scan::run(b, cont) == b.len();
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid {what} name \"{}\"",
            name.escape_default()
        )))
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Escapes `\` and newline, and `"` in label values.
fn escape_into(out: &mut Vec<u8>, s: &str, quote: bool) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if quote => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(f: impl FnOnce(&mut TextWriter<Vec<u8>>) -> io::Result<()>) -> String {
        let mut w = TextWriter::new(Vec::new());
        f(&mut w).unwrap();
        String::from_utf8(w.into_inner()).unwrap()
    }

    #[test]
    fn lines() {
        assert_eq!(
            written(|w| w.help("a", "x\\y\nz\"")),
            "# HELP a x\\\\y\\nz\"\n"
        );
        assert_eq!(
            written(|w| w.type_("a", MetricType::StateSet)),
            "# TYPE a untyped\n"
        );
        assert_eq!(
            written(|w| w.type_("a", MetricType::Histogram)),
            "# TYPE a histogram\n"
        );
        assert_eq!(
            written(|w| w.sample("a", &[("b", "q\"\\\n"), ("c", "")], 1e6, None)),
            "a{b=\"q\\\"\\\\\\n\",c=\"\"} 1e+06\n"
        );
        assert_eq!(
            written(|w| w.sample("a:b", &[], f64::NAN, Some(0))),
            "a:b NaN 0\n"
        );
        assert_eq!(
            written(|w| w.sample("a", &[], f64::NEG_INFINITY, Some(i64::MAX))),
            "a -Inf 9223372036854775807\n"
        );
    }

    #[test]
    fn rejects_what_would_not_parse() {
        let mut w = TextWriter::new(Vec::new());
        for (name, label, ts) in [
            ("", "a", None),
            ("1a", "a", None),
            ("a-b", "a", None),
            ("a", "a:b", None),
            ("a", "", None),
            ("a", "0", None),
            ("a", "a", Some(-1)),
        ] {
            let err = w.sample(name, &[(label, "v")], 1.0, ts).unwrap_err();
            assert_eq!(
                err.kind(),
                io::ErrorKind::InvalidInput,
                "{name} {label} {ts:?}"
            );
        }
        assert!(w.help("a b", "x").is_err());
        assert!(w.type_("", MetricType::Gauge).is_err());
        assert!(w.into_inner().is_empty());
    }
}
