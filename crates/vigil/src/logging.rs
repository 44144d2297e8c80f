//! Log output in Prometheus's two formats: logfmt (`ts=… level=info msg="…" k=v`) and JSON.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber. `level` is debug|info|warn|error, `format` logfmt|json.
pub fn init(level: &str, format: &str) {
    let filter = EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},hyper=warn,reqwest=warn,h2=warn,rustls=warn"
        ))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let res = if format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.event_format(Logfmt).try_init()
    };
    // A second init (tests) is harmless.
    let _ = res;
}

struct Logfmt;

fn level_str(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "debug",
    }
}

/// Quotes a logfmt value when it contains spaces, quotes or `=`.
fn logfmt_value(v: &str) -> String {
    if v.is_empty()
        || v.chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c.is_control())
    {
        format!("{v:?}")
    } else {
        v.to_string()
    }
}

struct Fields {
    msg: String,
    rest: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_string();
        } else {
            self.rest
                .push((field.name().to_string(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let v = format!("{value:?}");
        if field.name() == "message" {
            self.msg = v;
        } else {
            self.rest.push((field.name().to_string(), v));
        }
    }
}

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut f = Fields {
            msg: String::new(),
            rest: Vec::new(),
        };
        event.record(&mut f);
        let ts = jiff::Timestamp::now();
        write!(
            w,
            "ts={} caller={} level={} msg={}",
            ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ"),
            logfmt_value(meta.module_path().unwrap_or(meta.target())),
            level_str(meta.level()),
            logfmt_value(&f.msg)
        )?;
        for (k, v) in &f.rest {
            write!(w, " {k}={}", logfmt_value(v))?;
        }
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(logfmt_value("abc"), "abc");
        assert_eq!(logfmt_value("a b"), "\"a b\"");
        assert_eq!(logfmt_value(""), "\"\"");
    }
}
