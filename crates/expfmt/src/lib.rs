//! Exposition formats: parsing the Prometheus text format 0.0.4 and the
//! OpenMetrics 1.0 text format that targets answer scrapes with, writing the
//! text format, and undoing the gzip transfer encoding of a scrape body.
//!
//! The parser is a hand-written byte scanner tuned for scrape bodies: it
//! borrows names and label values from the input, reuses one label buffer for
//! every sample and only allocates when a label value or help text contains an
//! escape. Its accept/reject decisions follow Prometheus 2.42's `textparse`
//! package; deliberate copies of its quirks are tagged `compat:`.
//!
//! This crate never does I/O beyond the `std::io::Write` it is handed, never
//! stores samples and knows nothing of targets, relabelling or the TSDB: it
//! turns bytes into entries and entries into bytes.

mod body;
mod error;
mod float;
mod openmetrics;
mod parser;
mod scan;
mod text;
mod writer;

pub use body::{BodyError, decode_body};
pub use error::{ParseError, ParseErrorKind};
pub use float::{format_float, parse_float};
pub use parser::{Entry, Parser, Sample};
pub use writer::TextWriter;

/// The `Accept` header Prometheus 2.42 sends when scraping.
pub const SCRAPE_ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The `Content-Type` of a body written by [`TextWriter`].
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which grammar [`Parser`] applies to a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text format.
    OpenMetrics,
}

/// Picks the parser for a scrape response from its `Content-Type` header.
///
/// compat: like Prometheus 2.42, only the media type is looked at
/// (case-insensitively, parameters ignored): `application/openmetrics-text`
/// selects OpenMetrics, anything else — a missing header, an unknown or
/// malformed type, `text/plain; version=0.0.4` — falls back to the text
/// format. (Prometheus also falls back to text when the header's parameters
/// do not parse; we ignore parameters altogether.)
pub fn format_from_content_type(ct: Option<&str>) -> Format {
    let Some(ct) = ct else {
        return Format::Text;
    };
    let media_type = ct.split(';').next().unwrap_or("").trim();
    if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// The type of a metric family, as declared by a `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// `unknown` in OpenMetrics, `untyped` in the text format.
    Unknown,
}

impl MetricType {
    /// The name Prometheus uses for this type in its APIs
    /// (`/api/v1/metadata`), which is also its OpenMetrics spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::StateSet => "stateset",
            MetricType::Unknown => "unknown",
        }
    }

    /// The spelling of a `# TYPE` line in text format 0.0.4. That format has
    /// only five types; the OpenMetrics-only ones are written as `untyped`.
    pub fn text_name(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::GaugeHistogram
            | MetricType::Info
            | MetricType::StateSet
            | MetricType::Unknown => "untyped",
        }
    }

    /// Parses the type word of a text-format `# TYPE` line.
    pub(crate) fn from_text(word: &[u8]) -> Option<MetricType> {
        Some(match word {
            b"counter" => MetricType::Counter,
            b"gauge" => MetricType::Gauge,
            b"histogram" => MetricType::Histogram,
            b"summary" => MetricType::Summary,
            b"untyped" => MetricType::Unknown,
            _ => return None,
        })
    }

    /// Parses the type word of an OpenMetrics `# TYPE` line.
    pub(crate) fn from_openmetrics(word: &[u8]) -> Option<MetricType> {
        Some(match word {
            b"counter" => MetricType::Counter,
            b"gauge" => MetricType::Gauge,
            b"histogram" => MetricType::Histogram,
            b"gaugehistogram" => MetricType::GaugeHistogram,
            b"summary" => MetricType::Summary,
            b"info" => MetricType::Info,
            b"stateset" => MetricType::StateSet,
            b"unknown" => MetricType::Unknown,
            _ => return None,
        })
    }
}

impl std::fmt::Display for MetricType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_selects_parser() {
        #[track_caller]
        fn check(ct: Option<&str>, want: Format) {
            assert_eq!(format_from_content_type(ct), want, "{ct:?}");
        }
        check(None, Format::Text);
        check(Some(""), Format::Text);
        check(Some("text/plain; version=0.0.4"), Format::Text);
        check(Some("text/plain"), Format::Text);
        check(Some("application/json"), Format::Text);
        check(Some(";;;"), Format::Text);
        check(
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            Format::OpenMetrics,
        );
        check(Some("application/openmetrics-text"), Format::OpenMetrics);
        check(
            Some(" Application/OpenMetrics-Text ;version=0.0.1"),
            Format::OpenMetrics,
        );
        check(Some("application/openmetrics-textx"), Format::Text);
    }

    #[test]
    fn type_names() {
        let all = [
            MetricType::Counter,
            MetricType::Gauge,
            MetricType::Histogram,
            MetricType::GaugeHistogram,
            MetricType::Summary,
            MetricType::Info,
            MetricType::StateSet,
            MetricType::Unknown,
        ];
        for t in all {
            assert_eq!(MetricType::from_openmetrics(t.as_str().as_bytes()), Some(t));
            let back = MetricType::from_text(t.text_name().as_bytes()).unwrap();
            assert_eq!(back.text_name(), t.text_name());
        }
        assert_eq!(MetricType::from_text(b"unknown"), None);
        assert_eq!(MetricType::from_openmetrics(b"untyped"), None);
        assert_eq!(MetricType::StateSet.to_string(), "stateset");
    }
}
