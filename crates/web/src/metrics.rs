//! A writer of the text exposition format (0.0.4) for a role's own `/metrics`, rendered from
//! its counters at scrape time (no registry, no process-wide state).

use std::fmt::Write;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

/// The Content-Type of text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A `/metrics` answer: `body` in text format 0.0.4.
pub fn response(body: String) -> Response {
    ([(CONTENT_TYPE, TEXT_CONTENT_TYPE)], body).into_response()
}

/// One exposition being written: families, each a `# HELP`/`# TYPE` pair and its samples.
#[derive(Default)]
pub struct Out {
    buf: String,
}

impl Out {
    /// Starts a family with its HELP and TYPE lines (`help` written as given).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.buf, "# HELP {name} {help}");
        let _ = writeln!(self.buf, "# TYPE {name} {kind}");
        self
    }

    /// One sample line. Label values are escaped; a whole value below 1e15 is written as an
    /// integer (`3`, not `3.0`), anything else as Rust's shortest round-trip form.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) -> &mut Self {
        write_series(&mut self.buf, name, labels);
        if v.fract() == 0.0 && v.abs() < 1e15 {
            let _ = writeln!(self.buf, " {}", v as i64);
        } else {
            let _ = writeln!(self.buf, " {v}");
        }
        self
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: &str, help: &str, v: f64) -> &mut Self {
        self.family(name, kind, help).sample(name, &[], v)
    }

    pub fn finish(self) -> String {
        self.buf
    }
}

/// Writes the series part of a sample line, `name{k="v",…}` (just `name` without labels),
/// with label values escaped (backslash, double quote and newline).
pub fn write_series(out: &mut String, name: &str, labels: &[(&str, &str)]) {
    out.push_str(name);
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let esc = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(out, "{k}=\"{esc}\"");
    }
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_is_text_format() {
        let r = response("a 1\n".to_string());
        assert_eq!(r.status(), axum::http::StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_TYPE], TEXT_CONTENT_TYPE);
    }

    #[test]
    fn writes_families_and_samples() {
        let mut o = Out::default();
        o.family("a_total", "counter", "Things done.")
            .sample("a_total", &[("k", "x\"y\\z\nw"), ("j", "")], 3.0)
            .sample("a_total", &[], 0.5);
        o.single("g", "gauge", "A gauge.", 1e15);
        o.single("n", "gauge", "Not a number.", f64::NAN);
        o.single("m", "gauge", "Minus.", -2.0);
        assert_eq!(
            o.finish(),
            "# HELP a_total Things done.\n# TYPE a_total counter\n\
             a_total{k=\"x\\\"y\\\\z\\nw\",j=\"\"} 3\na_total 0.5\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 1000000000000000\n\
             # HELP n Not a number.\n# TYPE n gauge\nn NaN\n\
             # HELP m Minus.\n# TYPE m gauge\nm -2\n"
        );
    }
}
