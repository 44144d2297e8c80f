//! Prometheus's template functions (alerting-rule annotations and labels, console templates),
//! with Prometheus's exact outputs: `humanize(1234567)` is `1.235M`, `humanizeDuration(3661)`
//! is `1h 1m 1s`.
//!
//! Prometheus executes these templates with `missingkey=zero`; so should callers.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::builtins::query_escape;
use crate::funcs::{Arity, FuncMap};
use crate::gofmt::format_float;
use crate::time::{Duration, Time};
use crate::value::{Value, args};

/// One sample of a query result, as templates see it: `.Labels` and `.Value`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl QuerySample {
    pub fn to_value(&self) -> Value {
        Value::map([
            ("Labels", Value::from(self.labels.clone())),
            ("Value", Value::Float(self.value)),
        ])
    }
}

/// Runs an instant query at the evaluation time of the template.
pub type QueryFn = Arc<dyn Fn(&str) -> Result<Vec<QuerySample>, String> + Send + Sync>;

/// What Prometheus's functions need from the caller.
#[derive(Clone, Default)]
pub struct PrometheusOptions {
    /// `--web.external-url`; `pathPrefix` is its path.
    pub external_url: String,
    /// The `query` function; without it, `query` returns an error.
    pub query: Option<QueryFn>,
}

/// A query result value: a list of samples.
pub fn query_result(samples: &[QuerySample]) -> Value {
    Value::list(samples.iter().map(QuerySample::to_value))
}

/// Prometheus's functions: `query`, `first`, `label`, `value`, `strvalue`, `sortByLabel`,
/// `args`, `reReplaceAll`, `safeHtml`, `match`, `title`, `toUpper`, `toLower`, `graphLink`,
/// `tableLink`, the `humanize*` family, `toTime`, `toDuration`, `parseDuration`, `stripPort`,
/// `stripDomain`, `pathPrefix`, `externalURL` and `tmpl`.
pub fn prometheus_funcs(opts: PrometheusOptions) -> FuncMap {
    use Arity::Exact;
    let mut m = FuncMap::new();
    let query = opts.query.clone();
    m.insert_with_arity("query", Exact(1), move |a| {
        let q = args::string(&a[0])?;
        match &query {
            Some(f) => f(q).map(|s| query_result(&s)),
            None => Err("no query engine to run templates' queries".to_string()),
        }
    });
    m.insert_with_arity("first", Exact(1), |a| match a[0].resolved() {
        Value::List(l) => l
            .first()
            .cloned()
            .ok_or_else(|| "first() called on vector with no elements".to_string()),
        Value::Nil => Err("first() called on vector with no elements".to_string()),
        v => Err(wrong_type("template.queryResult", &v)),
    });
    m.insert_with_arity("label", Exact(2), |a| {
        let name = args::string(&a[0])?;
        Ok(Value::from(sample_label(&a[1], name)?))
    });
    m.insert_with_arity("value", Exact(1), |a| sample_field(&a[0], "Value"));
    m.insert_with_arity("strvalue", Exact(1), |a| {
        Ok(Value::from(sample_label(&a[0], "__value__")?))
    });
    m.insert_with_arity("sortByLabel", Exact(2), |a| {
        let name = args::string(&a[0])?;
        let Value::List(l) = a[1].resolved() else {
            return Err(wrong_type("template.queryResult", &a[1]));
        };
        let mut keyed: Vec<(String, Value)> = l
            .iter()
            .map(|s| Ok((sample_label(s, name)?, s.clone())))
            .collect::<Result<_, String>>()?;
        keyed.sort_by(|x, y| x.0.cmp(&y.0));
        Ok(Value::list(keyed.into_iter().map(|(_, v)| v)))
    });
    m.insert("args", |a| {
        Ok(Value::map(
            a.iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v.clone())),
        ))
    });
    m.insert_with_arity("reReplaceAll", Exact(3), re_replace_all);
    m.insert_with_arity("safeHtml", Exact(1), |a| {
        Ok(Value::from(args::string(&a[0])?))
    });
    m.insert_with_arity("match", Exact(2), re_match);
    m.insert_with_arity("title", Exact(1), |a| {
        Ok(Value::from(title(args::string(&a[0])?, false)))
    });
    m.insert_with_arity("toUpper", Exact(1), |a| {
        Ok(Value::from(args::string(&a[0])?.to_uppercase()))
    });
    m.insert_with_arity("toLower", Exact(1), |a| {
        Ok(Value::from(args::string(&a[0])?.to_lowercase()))
    });
    m.insert_with_arity("graphLink", Exact(1), |a| {
        Ok(Value::from(format!(
            "/graph?g0.expr={}&g0.tab=0",
            query_escape(args::string(&a[0])?)
        )))
    });
    m.insert_with_arity("tableLink", Exact(1), |a| {
        Ok(Value::from(format!(
            "/graph?g0.expr={}&g0.tab=1",
            query_escape(args::string(&a[0])?)
        )))
    });
    m.insert_with_arity("humanize", Exact(1), |a| {
        Ok(Value::from(humanize(to_float(&a[0])?)))
    });
    m.insert_with_arity("humanize1024", Exact(1), |a| {
        Ok(Value::from(humanize1024(to_float(&a[0])?)))
    });
    m.insert_with_arity("humanizeDuration", Exact(1), |a| {
        Ok(Value::from(humanize_duration(to_float(&a[0])?)))
    });
    m.insert_with_arity("humanizePercentage", Exact(1), |a| {
        Ok(Value::from(humanize_percentage(to_float(&a[0])?)))
    });
    m.insert_with_arity("humanizeTimestamp", Exact(1), |a| {
        Ok(Value::from(humanize_timestamp(to_float(&a[0])?)))
    });
    m.insert_with_arity("toTime", Exact(1), |a| {
        let v = to_float(&a[0])?;
        if v.is_nan() || v.is_infinite() {
            return Err(format!(
                "cannot convert {} to time.Time",
                format_float(v, 'g', 4)
            ));
        }
        Ok(Time::from_unix_f64(v).value())
    });
    m.insert_with_arity("toDuration", Exact(1), |a| {
        let v = to_float(&a[0])?;
        if v.is_nan() || v.is_infinite() {
            return Err(format!(
                "cannot convert {} to time.Duration",
                format_float(v, 'g', 4)
            ));
        }
        Ok(Duration((v * 1e9).round() as i64).value())
    });
    m.insert_with_arity("parseDuration", Exact(1), |a| {
        let d = model::duration::parse_duration(args::string(&a[0])?).map_err(|e| e.to_string())?;
        Ok(Value::Float(d.as_secs_f64()))
    });
    m.insert_with_arity("stripPort", Exact(1), |a| {
        Ok(Value::from(strip_port(args::string(&a[0])?)))
    });
    m.insert_with_arity("stripDomain", Exact(1), |a| {
        Ok(Value::from(strip_domain(args::string(&a[0])?)))
    });
    let prefix = url_path(&opts.external_url).to_string();
    m.insert_with_arity("pathPrefix", Exact(0), move |_| {
        Ok(Value::from(prefix.as_str()))
    });
    let url = opts.external_url.clone();
    m.insert_with_arity("externalURL", Exact(0), move |_| {
        Ok(Value::from(url.as_str()))
    });
    m.insert_template_caller("tmpl");
    m
}

fn wrong_type(want: &str, v: &Value) -> String {
    format!(
        "wrong type for value; expected {want}; got {}",
        v.type_name()
    )
}

/// A field of a sample (`.Labels`, `.Value`), from a map or an object.
fn sample_field(s: &Value, name: &str) -> Result<Value, String> {
    match s {
        Value::Map(m) => Ok(m.get(name).cloned().unwrap_or_default()),
        Value::Object(o) => Ok(o.field(name).unwrap_or_default()),
        v => Err(wrong_type("*template.sample", v)),
    }
}

fn sample_label(s: &Value, name: &str) -> Result<String, String> {
    Ok(match sample_field(s, "Labels")? {
        Value::StrMap(m) => m.get(name).cloned().unwrap_or_default(),
        Value::Map(m) => m
            .get(name)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        _ => String::new(),
    })
}

pub(crate) fn re_match(a: &[Value]) -> Result<Value, String> {
    let re = crate::regex::Search::new(args::string(&a[0])?)?;
    Ok(Value::Bool(re.is_match(args::string(&a[1])?)))
}

pub(crate) fn re_replace_all(a: &[Value]) -> Result<Value, String> {
    // compat: Go's MustCompile panics on a bad pattern and the template reports the panic;
    // we report the compile error.
    let re = crate::regex::Search::new(args::string(&a[0])?)?;
    Ok(Value::from(
        re.replace_all(args::string(&a[2])?, args::string(&a[1])?),
    ))
}

/// Prometheus's `convertToFloat`: numbers, numeric strings and durations (in seconds).
pub fn to_float(v: &Value) -> Result<f64, String> {
    if let Some(d) = v.downcast_ref::<Duration>() {
        return Ok(d.seconds());
    }
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::String(s) => parse_go_float(s),
        v => Err(format!("can't convert {} to float", v.type_name())),
    }
}

/// Go's `strconv.ParseFloat(s, 64)`, closely enough.
fn parse_go_float(s: &str) -> Result<f64, String> {
    let invalid = || {
        format!(
            "strconv.ParseFloat: parsing {}: invalid syntax",
            crate::gofmt::quote(s)
        )
    };
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    let special = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    if !special
        && !lower
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-' | b'_'))
    {
        return Err(invalid());
    }
    s.replace('_', "").parse::<f64>().map_err(|_| invalid())
}

fn fmt4g(v: f64) -> String {
    crate::gofmt::sprintf("%.4g", &[Value::Float(v)])
}

/// `humanize`: SI prefixes, four significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return fmt4g(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", fmt4g(v))
}

/// `humanize1024`: binary prefixes, four significant digits.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return fmt4g(v);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", fmt4g(v))
}

/// `humanizeDuration`: seconds as `1d 2h 3m 4s`, or with SI prefixes below a second.
pub fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return fmt4g(v);
    }
    if v == 0.0 {
        return format!("{}s", fmt4g(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let secs = v as i64;
        let (s, m, h, d) = (secs % 60, secs / 60 % 60, secs / 3600 % 24, secs / 86400);
        return if d != 0 {
            format!("{sign}{d}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", fmt4g(v))
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", fmt4g(v))
}

pub fn humanize_percentage(v: f64) -> String {
    format!("{}%", fmt4g(v * 100.0))
}

/// `humanizeTimestamp`: Unix seconds as Go prints a UTC time.
pub fn humanize_timestamp(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return fmt4g(v);
    }
    Time::from_unix_f64(v).format(crate::time::DEFAULT_LAYOUT)
}

/// Go's `strings.Title` (`alertmanager` = false: the rest of each word is kept) or
/// `cases.Title` (true: the rest is lowered).
pub(crate) fn title(s: &str, lower_rest: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        // compat: strings.Title starts a word after an apostrophe ("It'S"); cases.Title does not.
        let is_word = c.is_alphanumeric() || c == '_' || (lower_rest && c == '\'');
        if prev_sep && is_word {
            out.extend(c.to_uppercase());
        } else if lower_rest && is_word {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_sep = !is_word;
    }
    out
}

/// Go's `net.SplitHostPort`, returning the host; `None` when it is not host:port.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        let port = rest[end + 1..].strip_prefix(':')?;
        if port.contains(':') {
            return None;
        }
        return Some((host, port));
    }
    let i = s.rfind(':')?;
    let (host, port) = (&s[..i], &s[i + 1..]);
    if host.contains(':') {
        return None; // too many colons
    }
    Some((host, port))
}

pub fn strip_port(host_port: &str) -> String {
    match split_host_port(host_port) {
        Some((host, _)) => host.to_string(),
        None => host_port.to_string(),
    }
}

pub fn strip_domain(host_port: &str) -> String {
    let (host, port) = split_host_port(host_port).unwrap_or((host_port, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return host_port.to_string();
    }
    let short = host.split('.').next().unwrap_or(host);
    if port.is_empty() {
        return short.to_string();
    }
    format!("{short}:{port}")
}

/// The path of a URL (`http://host:9090/prom` → `/prom`).
fn url_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    path.split(['?', '#']).next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanizers_match_prometheus() {
        #[track_caller]
        fn check(got: String, want: &str) {
            assert_eq!(got, want);
        }
        check(humanize(0.0), "0");
        check(humanize(1234567.0), "1.235M");
        check(humanize(12345.0), "12.35k");
        check(humanize(1.0), "1");
        check(humanize(0.00123), "1.23m");
        check(humanize(-1234567.0), "-1.235M");
        check(humanize(1e30), "1e+06Y");
        check(humanize(f64::NAN), "NaN");
        check(humanize(f64::INFINITY), "+Inf");
        check(humanize(f64::NEG_INFINITY), "-Inf");
        check(humanize1024(1024.0), "1ki");
        check(humanize1024(1048576.0), "1Mi");
        check(humanize1024(0.5), "0.5");
        check(humanize1024(1e27), "827.2Yi");
        check(humanize_duration(3661.0), "1h 1m 1s");
        check(humanize_duration(90061.0), "1d 1h 1m 1s");
        check(humanize_duration(60.0), "1m 0s");
        check(humanize_duration(1.5), "1.5s");
        check(humanize_duration(0.0), "0s");
        check(humanize_duration(0.001234), "1.234ms");
        check(humanize_duration(-3661.0), "-1h 1m 1s");
        check(humanize_duration(f64::NAN), "NaN");
        check(humanize_percentage(0.1234), "12.34%");
        check(humanize_percentage(1.0), "100%");
        check(
            humanize_timestamp(1435065584.128),
            "2015-06-23 13:19:44.128 +0000 UTC",
        );
        check(humanize_timestamp(0.0), "1970-01-01 00:00:00 +0000 UTC");
    }

    #[test]
    fn hosts() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[2001:db8::1]:9090"), "2001:db8::1");
        assert_eq!(strip_port("2001:db8::1"), "2001:db8::1");
        assert_eq!(strip_domain("foo.example.com:8080"), "foo:8080");
        assert_eq!(strip_domain("foo.example.com"), "foo");
        assert_eq!(strip_domain("192.168.0.1:9090"), "192.168.0.1:9090");
        assert_eq!(url_path("http://host:9090/prom/"), "/prom/");
        assert_eq!(url_path("http://host:9090"), "");
        assert_eq!(title("hello wORLD foo-bar", false), "Hello WORLD Foo-Bar");
        assert_eq!(title("hello wORLD", true), "Hello World");
        assert_eq!(title("it's", false), "It'S");
        assert_eq!(title("it's", true), "It's");
    }
}
