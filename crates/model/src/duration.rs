//! Durations in Prometheus's format (`1h30m`, `5m`, `2w`, `1y`) and in Go's `time.ParseDuration`
//! format (`1.5h`, `300ms`, `-1s`), which some Prometheus and Alertmanager flags use.
//!
//! Prometheus's parser is `prometheus/common`'s `model.ParseDuration` (as shipped with
//! Prometheus 2.42): integer amounts only, units `y w d h m s ms` at most once each and in that
//! order, a year being 365 days, a week 7 days and a day 24 hours; the value must fit Go's
//! `time.Duration` (an i64 of nanoseconds, about 292 years).

use std::fmt;
use std::time::Duration;

use crate::labels::quote_go;

/// A duration string that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration string")]
    Empty,
    #[error("not a valid duration string: {}", quote_go(.0))]
    Invalid(String),
    #[error("duration out of range")]
    OutOfRange,
    /// Go's `time: invalid duration "…"`.
    #[error("time: invalid duration {}", quote_go_time(.0))]
    GoInvalid(String),
    #[error("time: missing unit in duration {}", quote_go_time(.0))]
    GoMissingUnit(String),
    #[error("time: unknown unit {} in duration {}", quote_go_time(.unit), quote_go_time(.input))]
    GoUnknownUnit { unit: String, input: String },
}

const MS: u128 = 1_000_000;
// Units from the largest; Prometheus accepts each at most once, in this order.
const PROM_UNITS: [(&str, u128); 7] = [
    ("y", 365 * 24 * 3600 * 1000 * MS),
    ("w", 7 * 24 * 3600 * 1000 * MS),
    ("d", 24 * 3600 * 1000 * MS),
    ("h", 3600 * 1000 * MS),
    ("m", 60 * 1000 * MS),
    ("s", 1000 * MS),
    ("ms", MS),
];
const MAX_GO_DURATION: u128 = i64::MAX as u128;

/// Parses a Prometheus duration such as `1h30m` or `2w`. `0` alone is allowed without a unit.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    match s {
        "0" => return Ok(Duration::ZERO),
        "" => return Err(DurationError::Empty),
        _ => {}
    }
    let invalid = || DurationError::Invalid(s.to_string());
    let mut rest = s;
    let mut next_unit = 0;
    let mut total: u128 = 0;
    let mut overflow = false;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let (number, after) = rest.split_at(digits);
        let unit_len = after.bytes().take_while(|b| !b.is_ascii_digit()).count();
        let (unit, after) = after.split_at(unit_len);
        let Some(i) = PROM_UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(invalid());
        };
        let mult = PROM_UNITS[next_unit + i].1;
        next_unit += i + 1;
        // compat: Go's Atoi saturates, so huge numbers are "out of range", not "invalid".
        match number.parse::<u128>() {
            Ok(n) if n <= MAX_GO_DURATION => total += n * mult,
            _ => overflow = true,
        }
        rest = after;
    }
    if overflow || total > MAX_GO_DURATION {
        return Err(DurationError::OutOfRange);
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Formats like Prometheus's `model.Duration.String`: largest units first, years and weeks only
/// when they divide the duration exactly (`90d`, not `12w6d`), below a millisecond `0s`.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (i, (unit, mult)) in PROM_UNITS.iter().enumerate() {
        let mult = mult / MS;
        let exact_only = i < 2;
        if exact_only && !ms.is_multiple_of(mult) {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&v.to_string());
            out.push_str(unit);
            ms -= v * mult;
        }
    }
    out
}

/// A [`Duration`] that (de)serialises in Prometheus's format, for config structs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PromDuration(pub Duration);

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl std::str::FromStr for PromDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, DurationError> {
        parse_duration(s).map(PromDuration)
    }
}

impl From<Duration> for PromDuration {
    fn from(d: Duration) -> Self {
        PromDuration(d)
    }
}

impl From<PromDuration> for Duration {
    fn from(d: PromDuration) -> Self {
        d.0
    }
}

impl serde::Serialize for PromDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_prom_duration::serialize(&self.0, s)
    }
}

impl<'de> serde::Deserialize<'de> for PromDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_prom_duration::deserialize(d).map(PromDuration)
    }
}

struct PromDurationVisitor;

impl serde::de::Visitor<'_> for PromDurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 30s or 1h30m")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }

    // compat: YAML reads `0` (or `5`) as an integer; Go's YAML library hands Prometheus the
    // text, so `0` works and `5` fails with the usual message.
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
        self.visit_str(&v.to_string())
    }
}

/// `#[serde(with = "model::duration::serde_prom_duration")]` for a [`Duration`] field.
pub mod serde_prom_duration {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(super::PromDurationVisitor)
    }
}

/// `#[serde(default, with = "model::duration::serde_opt_prom_duration")]` for an
/// `Option<Duration>` field; a missing field or YAML null is `None`.
pub mod serde_opt_prom_duration {
    use std::fmt;
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serde_prom_duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        struct OptVisitor;
        impl<'de> serde::de::Visitor<'de> for OptVisitor {
            type Value = Option<Duration>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 30s or 1h30m, or null")
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Self::Value, D::Error> {
                super::serde_prom_duration::deserialize(d).map(Some)
            }
        }
        d.deserialize_option(OptVisitor)
    }
}

// ---------------------------------------------------------------------------------------------
// Go's time.ParseDuration and Duration.String.

const GO_UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // micro sign
    ("\u{3bc}s", 1_000), // Greek small letter mu
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Quotes like Go's `time` package does in its errors: non-ASCII and control bytes as `\xNN`.
fn quote_go_time(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if !c.is_ascii() || c < ' ' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Parses Go's `time.ParseDuration` syntax (`1.5h`, `2h45m`, `300ms`, `-1s`, `1µs`) into signed
/// nanoseconds (Go's `time.Duration`).
pub fn parse_go_duration(s: &str) -> Result<i64, DurationError> {
    const LIMIT: u64 = 1 << 63;
    let invalid = || DurationError::GoInvalid(s.to_string());
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let b = rest.as_bytes()[0];
        if !(b == b'.' || b.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let mut v: u64 = 0;
        for d in rest[..int_len].bytes() {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(d - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
        }
        rest = &rest[int_len..];
        let (mut frac, mut scale, mut frac_len) = (0u64, 1f64, 0usize);
        if let Some(after_dot) = rest.strip_prefix('.') {
            rest = after_dot;
            frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflowed = false;
            for d in rest[..frac_len].bytes() {
                // Past u64 precision, further digits are ignored, as Go does.
                if overflowed || frac > (LIMIT - 1) / 10 {
                    overflowed = true;
                    continue;
                }
                let next = frac * 10 + u64::from(d - b'0');
                if next > LIMIT {
                    overflowed = true;
                    continue;
                }
                frac = next;
                scale *= 10.0;
            }
            rest = &rest[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return Err(invalid());
        }
        let unit_len = rest
            .bytes()
            .take_while(|&b| b != b'.' && !b.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(DurationError::GoMissingUnit(s.to_string()));
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(&(_, mult)) = GO_UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(DurationError::GoUnknownUnit {
                unit: unit.to_string(),
                input: s.to_string(),
            });
        };
        if v > LIMIT / mult {
            return Err(invalid());
        }
        v *= mult;
        if frac > 0 {
            // compat: Go computes the fraction in float64, accurate to the nanosecond for hours.
            v += (frac as f64 * (mult as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total += v;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// Formats signed nanoseconds like Go's `time.Duration.String`: `1h30m0s`, `1.5s`, `300ms`,
/// `1µs`, `0s`.
pub fn format_go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if nanos < 0 {
        out.push('-');
    }
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "\u{b5}s"),
            _ => (6, "ms"),
        };
        out.push_str(&format_fraction(u, prec));
        out.push_str(unit);
        return out;
    }
    let secs_frac = format_fraction(u % 60_000_000_000, 9);
    u /= 60_000_000_000;
    let mut parts = String::new();
    if u > 0 {
        let minutes = u % 60;
        let hours = u / 60;
        if hours > 0 {
            parts.push_str(&format!("{hours}h"));
        }
        parts.push_str(&format!("{minutes}m"));
    }
    out.push_str(&parts);
    out.push_str(&secs_frac);
    out.push('s');
    out
}

/// `v / 10^prec` in decimal, without trailing zeros in the fraction.
fn format_fraction(v: u64, prec: u32) -> String {
    let div = 10u64.pow(prec);
    let (int, frac) = (v / div, v % div);
    if frac == 0 {
        return int.to_string();
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    format!("{int}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1;
    const MIN: u64 = 60;
    const H: u64 = 3600;
    const D: u64 = 24 * H;

    #[test]
    fn parse_prometheus() {
        #[track_caller]
        fn ok(s: &str, want: Duration) {
            assert_eq!(parse_duration(s), Ok(want), "{s}");
        }
        ok("0", Duration::ZERO);
        ok("0s", Duration::ZERO);
        ok("5m", Duration::from_secs(5 * MIN));
        ok("1h30m", Duration::from_secs(H + 30 * MIN));
        ok("1d", Duration::from_secs(D));
        ok("2w", Duration::from_secs(14 * D));
        ok("1y", Duration::from_secs(365 * D));
        ok(
            "1y2w3d4h5m6s7ms",
            Duration::from_millis(((((365 + 14 + 3) * 24 + 4) * 60 + 5) * 60 + 6) * 1000 + 7),
        );
        ok("1500ms", Duration::from_millis(1500));
        ok("01m", Duration::from_secs(MIN));
        ok("292y", Duration::from_secs(292 * 365 * D));
        ok("15s", Duration::from_secs(15 * S));
    }

    #[test]
    fn parse_prometheus_errors() {
        #[track_caller]
        fn bad(s: &str, want: &str) {
            assert_eq!(parse_duration(s).unwrap_err().to_string(), want, "{s}");
        }
        bad("", "empty duration string");
        bad("5x", r#"not a valid duration string: "5x""#);
        bad("1m1h", r#"not a valid duration string: "1m1h""#);
        bad("1m1m", r#"not a valid duration string: "1m1m""#);
        bad("1.5h", r#"not a valid duration string: "1.5h""#);
        bad("-1s", r#"not a valid duration string: "-1s""#);
        bad("1h ", r#"not a valid duration string: "1h ""#);
        bad("5", r#"not a valid duration string: "5""#);
        bad("00", r#"not a valid duration string: "00""#);
        bad("h", r#"not a valid duration string: "h""#);
        bad("293y", "duration out of range");
        bad("106751d23h47m16s855ms", "duration out of range");
        bad(
            "99999999999999999999999999999999999999999999s",
            "duration out of range",
        );
        assert_eq!(
            parse_duration("106751d23h47m16s854ms"),
            Ok(Duration::from_millis(9_223_372_036_854))
        );
    }

    #[test]
    fn format_prometheus() {
        #[track_caller]
        fn f(d: Duration, want: &str) {
            assert_eq!(format_duration(d), want);
        }
        f(Duration::ZERO, "0s");
        f(Duration::from_micros(999), "0s");
        f(Duration::from_secs(90), "1m30s");
        f(Duration::from_millis(1500), "1s500ms");
        f(Duration::from_secs(D), "1d");
        f(Duration::from_secs(7 * D), "1w");
        f(Duration::from_secs(90 * D), "90d");
        f(Duration::from_secs(365 * D), "1y");
        f(Duration::from_secs(366 * D), "366d");
        f(Duration::from_secs(730 * D), "2y");
        f(Duration::from_secs(14 * D + H), "14d1h");
        f(Duration::from_secs(H + 30 * MIN), "1h30m");
        for s in ["1y", "2w", "1d2h3m4s5ms", "15s", "5m", "90d", "1h30m"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }

    #[test]
    fn parse_go() {
        #[track_caller]
        fn ok(s: &str, want: i64) {
            assert_eq!(parse_go_duration(s), Ok(want), "{s}");
        }
        ok("0", 0);
        ok("-0", 0);
        ok("1.5h", 5_400_000_000_000);
        ok("2h45m", 9_900_000_000_000);
        ok("300ms", 300_000_000);
        ok("-1s", -1_000_000_000);
        ok("+1s", 1_000_000_000);
        ok("1µs", 1_000);
        ok("1μs", 1_000);
        ok("1us", 1_000);
        ok("1ns", 1);
        ok(".5s", 500_000_000);
        ok("1.s", 1_000_000_000);
        ok("1h1h", 7_200_000_000_000);
        ok("1.0000000001s", 1_000_000_000);
        ok("9223372036854775807ns", i64::MAX);
        ok("-9223372036854775808ns", i64::MIN);
    }

    #[test]
    fn parse_go_errors() {
        #[track_caller]
        fn bad(s: &str, want: &str) {
            assert_eq!(parse_go_duration(s).unwrap_err().to_string(), want, "{s}");
        }
        bad("", r#"time: invalid duration """#);
        bad("-", r#"time: invalid duration "-""#);
        bad("1", r#"time: missing unit in duration "1""#);
        bad("1d", r#"time: unknown unit "d" in duration "1d""#);
        bad(".s", r#"time: invalid duration ".s""#);
        bad("s", r#"time: invalid duration "s""#);
        bad(
            "1é",
            r#"time: unknown unit "\xc3\xa9" in duration "1\xc3\xa9""#,
        );
        bad(
            "9223372036854775808ns",
            r#"time: invalid duration "9223372036854775808ns""#,
        );
        bad("3000000h", r#"time: invalid duration "3000000h""#);
    }

    #[test]
    fn format_go() {
        #[track_caller]
        fn f(ns: i64, want: &str) {
            assert_eq!(format_go_duration(ns), want);
        }
        f(0, "0s");
        f(1, "1ns");
        f(1_100, "1.1µs");
        f(2_200_000, "2.2ms");
        f(1_500_000_000, "1.5s");
        f(60_000_000_000, "1m0s");
        f(3_600_000_000_000, "1h0m0s");
        f(5_400_000_000_000, "1h30m0s");
        f(-1_000_000_000, "-1s");
        f(i64::MIN, "-2562047h47m16.854775808s");
        f(i64::MAX, "2562047h47m16.854775807s");
    }

    #[test]
    fn serde_helpers() {
        #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
        struct C {
            #[serde(with = "serde_prom_duration")]
            a: Duration,
            #[serde(default, with = "serde_opt_prom_duration")]
            b: Option<Duration>,
            c: Option<PromDuration>,
        }
        let c: C = serde_json::from_str(r#"{"a":"1m30s","b":"1d","c":"5m"}"#).unwrap();
        assert_eq!(c.a, Duration::from_secs(90));
        assert_eq!(c.b, Some(Duration::from_secs(D)));
        assert_eq!(c.c, Some(PromDuration(Duration::from_secs(300))));
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"a":"1m30s","b":"1d","c":"5m"}"#
        );
        let c: C = serde_json::from_str(r#"{"a":0,"b":null,"c":null}"#).unwrap();
        assert_eq!((c.a, c.b, c.c), (Duration::ZERO, None, None));
        let c: C = serde_json::from_str(r#"{"a":"0s"}"#).unwrap();
        assert_eq!(c.b, None);
        let err = serde_json::from_str::<C>(r#"{"a":"5x"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r#"not a valid duration string: "5x""#),
            "{err}"
        );

        let c: C = serde_saphyr::from_str("a: 0\nb: 1h30m\nc: 2w").unwrap();
        assert_eq!(c.a, Duration::ZERO);
        assert_eq!(c.b, Some(Duration::from_secs(H + 30 * MIN)));
        assert_eq!(c.c, Some(PromDuration(Duration::from_secs(14 * D))));
        let c: C = serde_saphyr::from_str("a: 5m\nb:\n").unwrap();
        assert_eq!(c.b, None);
        let err = serde_saphyr::from_str::<C>("a: 15")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r#"not a valid duration string: "15""#),
            "{err}"
        );
    }
}
