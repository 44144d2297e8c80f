//! Request parameters as Prometheus reads them: from the query string and, for POST, from a
//! form-encoded body; repeated keys such as `match[]` are kept in order.

use model::{Matcher, Timestamp};
use web::api::ApiError;

/// The smallest and largest timestamps the API accepts, Prometheus's `minTime`/`maxTime`
/// (`math.MinInt64/1000 + 62135596801` seconds and its mirror), in ms.
pub const MIN_TIME: Timestamp = (i64::MIN / 1000 + 62_135_596_801) * 1000;
pub const MAX_TIME: Timestamp = (i64::MAX / 1000 - 62_135_596_801) * 1000;

/// The largest form body read for parameters (Go's `maxFormSize`, 10 MB); a larger one is
/// ignored as Prometheus ignores it.
pub const MAX_FORM_BODY: usize = 10 << 20;

/// Parsed parameters of one request.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(query: Option<&str>, body: &[u8]) -> Params {
        // compat: Go's `r.FormValue` reads the form body before the URL query, so a POST body
        // value wins over the same key in the URL (and comes first in repeated keys).
        // compat: Go's ParseForm refuses bodies over 10 MB, and FormValue then ignores the body.
        let body = if body.len() > MAX_FORM_BODY {
            b""
        } else {
            body
        };
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Params { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All values of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A timestamp parameter, or `default` when absent or empty.
    pub fn time(&self, key: &str, default: Timestamp) -> Result<Timestamp, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(default),
            // compat: Prometheus's `parseTimeParam` wraps the error with the parameter's name.
            Some(s) => parse_time(s).map_err(|_| {
                ApiError::bad_data(format!(
                    "invalid parameter {key:?}: Invalid time value for '{key}': cannot parse {s:?} to a valid timestamp"
                ))
            }),
        }
    }

    /// `start`/`end` with Prometheus's defaults (the whole time range). An end before the
    /// start is no error (Prometheus 2.42 answers with an empty result).
    pub fn time_range(&self) -> Result<(Timestamp, Timestamp), ApiError> {
        let start = self.time("start", MIN_TIME)?;
        let end = self.time("end", MAX_TIME)?;
        Ok((start, end))
    }

    /// `match[]` selectors, parsed like Prometheus's `parseMatchersParam`: each a metric
    /// selector, and each with at least one matcher that does not match the empty string.
    /// Errors carry no parameter prefix (the label endpoints print none; `/series` adds one).
    pub fn matchers(&self) -> Result<Vec<Vec<Matcher>>, ApiError> {
        let sets = self.selectors()?;
        if sets.iter().any(|ms| ms.iter().all(|m| m.matches_empty())) {
            return Err(ApiError::bad_data(
                "match[] must contain at least one non-empty matcher",
            ));
        }
        Ok(sets)
    }

    /// `match[]` selectors without the non-empty check (`/federate` accepts `{a=~".*"}`).
    pub fn selectors(&self) -> Result<Vec<Vec<Matcher>>, ApiError> {
        self.all("match[]")
            .into_iter()
            .map(|s| promql::parse_metric_selector(s).map_err(|e| ApiError::bad_data(e.msg)))
            .collect()
    }

    /// `limit` (0 or absent = no limit).
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.get("limit") {
            None | Some("") => Ok(0),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(n as usize),
                _ => Err(ApiError::bad_data(format!(
                    "invalid parameter \"limit\": cannot parse {s:?} to a valid limit"
                ))),
            },
        }
    }
}

/// The form body of a POST as Go's `FormValue` reads it, as `application/x-www-form-urlencoded`
/// bytes for [`Params::parse`]: the body itself for that type, the non-file fields of a
/// `multipart/form-data` body re-encoded, and nothing for any other or a missing Content-Type.
pub fn form_body(content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let Some(ct) = content_type else {
        return Vec::new();
    };
    let mut params = ct.split(';');
    let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/x-www-form-urlencoded" => body.to_vec(),
        "multipart/form-data" => {
            let boundary = params.find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim().eq_ignore_ascii_case("boundary")).then(|| v.trim().trim_matches('"'))
            });
            let Some(b) = boundary.filter(|b| !b.is_empty()) else {
                return Vec::new();
            };
            let mut out = form_urlencoded::Serializer::new(String::new());
            for (name, value) in multipart_fields(body, b) {
                out.append_pair(&name, &String::from_utf8_lossy(value));
            }
            out.finish().into_bytes()
        }
        _ => Vec::new(),
    }
}

/// `(name, value)` of the fields (not files) of a multipart body with `boundary`.
fn multipart_fields<'a>(body: &'a [u8], boundary: &str) -> Vec<(String, &'a [u8])> {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let mut out = Vec::new();
    let mut starts = Vec::new();
    let mut i = 0;
    while i + d.len() <= body.len() {
        if &body[i..i + d.len()] == d && (i == 0 || body[..i].ends_with(b"\n")) {
            starts.push(i);
            i += d.len();
        } else {
            i += 1;
        }
    }
    for w in starts.windows(2) {
        let part = &body[w[0] + d.len()..w[1]];
        let part = part.strip_prefix(b"\r\n").unwrap_or(part);
        let Some(split) = part.windows(4).position(|x| x == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&part[..split]);
        let mut value = &part[split + 4..];
        value = value.strip_suffix(b"\r\n").unwrap_or(value);
        let Some(disp) = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
        else {
            continue;
        };
        let attr = |key: &str| {
            disp.split(';').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        if attr("filename").is_some() {
            continue;
        }
        if let Some(name) = attr("name") {
            out.push((name, value));
        }
    }
    out
}

/// A timestamp parameter that is neither Unix seconds nor RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTime;

impl std::fmt::Display for InvalidTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a valid timestamp")
    }
}

impl std::error::Error for InvalidTime {}

/// Prometheus's `parseTime`: float Unix seconds or RFC 3339, in ms.
pub fn parse_time(s: &str) -> Result<Timestamp, InvalidTime> {
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(InvalidTime);
        }
        let secs = f.trunc();
        // compat: Prometheus rounds the fraction to milliseconds.
        let ms = ((f - secs) * 1000.0).round();
        return Ok((secs as i64).saturating_mul(1000).saturating_add(ms as i64));
    }
    // compat: Prometheus also accepts its own formatted min/max times.
    match s {
        "-292273086-05-16T16:47:06Z" => return Ok(MIN_TIME),
        "292277025-08-18T07:12:54.999999999Z" => return Ok(MAX_TIME),
        _ => {}
    }
    let ts: jiff::Timestamp = s.parse().map_err(|_| InvalidTime)?;
    Ok(ts.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1"), Ok(1000));
        assert_eq!(parse_time("1.5"), Ok(1500));
        assert_eq!(parse_time("1435781451.781"), Ok(1_435_781_451_781));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51.781+02:00"),
            Ok(1_435_781_451_781)
        );
        assert!(parse_time("abc").is_err());
        assert!(parse_time("NaN").is_err());
    }

    #[test]
    fn repeated_params() {
        let p = Params::parse(
            Some("match[]=up&match[]=%7Bjob%3D%22a%22%7D&start=1"),
            b"end=2",
        );
        assert_eq!(p.all("match[]"), vec!["up", "{job=\"a\"}"]);
        assert_eq!(p.time_range().unwrap(), (1000, 2000));
    }

    #[test]
    fn body_wins_over_url_like_go_form_value() {
        let p = Params::parse(Some("query=2&time=1"), b"query=1");
        assert_eq!(p.get("query"), Some("1"));
        assert_eq!(p.get("time"), Some("1"));
    }

    #[test]
    fn form_bodies_as_go_reads_them() {
        let b = b"query=1&time=10";
        assert_eq!(form_body(None, b), b"");
        assert_eq!(form_body(Some("text/plain"), b), b"");
        assert_eq!(
            form_body(Some("application/x-www-form-urlencoded; charset=utf-8"), b),
            b
        );
        let mp =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nsum(up) by (a&b)\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\nfile\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"time\"\r\n\r\n10\r\n--XyZ--\r\n";
        let enc = form_body(Some("multipart/form-data; boundary=XyZ"), mp);
        let p = Params::parse(None, &enc);
        assert_eq!(p.get("query"), Some("sum(up) by (a&b)"));
        assert_eq!(p.get("time"), Some("10"));
        assert_eq!(p.get("f"), None);
    }

    #[test]
    fn match_params_as_prometheus() {
        let p = Params::parse(Some("match[]=%7Bjob%3D~%22.*%22%7D"), b"");
        assert_eq!(
            p.matchers().unwrap_err().msg,
            "match[] must contain at least one non-empty matcher"
        );
        assert_eq!(p.selectors().unwrap().len(), 1);
        let p = Params::parse(Some("match[]=up%7B"), b"");
        assert_eq!(
            p.matchers().unwrap_err().msg,
            "1:4: parse error: unexpected end of input inside braces"
        );
        let p = Params::parse(Some("start=abc"), b"");
        assert_eq!(
            p.time_range().unwrap_err().msg,
            "invalid parameter \"start\": Invalid time value for 'start': cannot parse \"abc\" to a valid timestamp"
        );
        let p = Params::parse(Some("start=20&end=10"), b"");
        assert_eq!(p.time_range().unwrap(), (20_000, 10_000));
    }
}
