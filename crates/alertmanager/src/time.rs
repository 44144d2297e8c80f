//! Timestamps as Alertmanager shows them: Go's `time.Time` keeps the UTC offset it was parsed
//! with, the webhook payload prints RFC 3339 with trimmed nanoseconds (`RFC3339Nano`), and API v2
//! prints milliseconds (`strfmt.DateTime`). Go's zero time is modelled as `None` by callers.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};

/// What Go prints for its zero `time.Time`.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// An instant with the UTC offset it should be printed in. Ordering and equality ignore the
/// offset, like Go's `Before`/`After`/`Equal`.
#[derive(Debug, Clone, Copy)]
pub struct Time {
    ts: Timestamp,
    offset_s: i32,
}

impl PartialEq for Time {
    fn eq(&self, o: &Self) -> bool {
        self.ts == o.ts
    }
}
impl Eq for Time {}
impl PartialOrd for Time {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Time {
    fn cmp(&self, o: &Self) -> Ordering {
        self.ts.cmp(&o.ts)
    }
}

/// A timestamp string that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parsing time {input:?}: not an RFC 3339 timestamp")]
pub struct TimeError {
    pub input: String,
}

impl Time {
    pub fn from_timestamp(ts: Timestamp) -> Time {
        Time { ts, offset_s: 0 }
    }

    /// An instant to be printed with this UTC offset (seconds east).
    pub fn from_timestamp_offset(ts: Timestamp, offset_s: i32) -> Time {
        Time { ts, offset_s }
    }

    pub fn from_unix_nanos(n: i128) -> Time {
        Time::from_timestamp(Timestamp::from_nanosecond(n).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    pub fn timestamp(&self) -> Timestamp {
        self.ts
    }

    pub fn unix_nanos(&self) -> i128 {
        self.ts.as_nanosecond()
    }

    pub fn unix_seconds(&self) -> i64 {
        self.ts.as_second()
    }

    /// `self + d`, saturating at jiff's range.
    pub fn add(&self, d: Duration) -> Time {
        let n = self
            .unix_nanos()
            .saturating_add(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
        Time {
            ts: Timestamp::from_nanosecond(n).unwrap_or(Timestamp::MAX),
            offset_s: self.offset_s,
        }
    }

    /// `self - d`, saturating at jiff's range.
    pub fn sub(&self, d: Duration) -> Time {
        let n = self
            .unix_nanos()
            .saturating_sub(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
        Time {
            ts: Timestamp::from_nanosecond(n).unwrap_or(Timestamp::MIN),
            offset_s: self.offset_s,
        }
    }

    /// `self - earlier`, zero when `earlier` is later.
    pub fn since(&self, earlier: Time) -> Duration {
        let n = self.unix_nanos() - earlier.unix_nanos();
        Duration::from_nanos(u64::try_from(n.max(0)).unwrap_or(u64::MAX))
    }

    /// The same instant printed in UTC.
    pub fn utc(&self) -> Time {
        Time::from_timestamp(self.ts)
    }

    /// Parses RFC 3339 (`2006-01-02T15:04:05.999999999Z07:00`), keeping the offset.
    pub fn parse(s: &str) -> Result<Time, TimeError> {
        parse_rfc3339(s).ok_or_else(|| TimeError {
            input: s.to_string(),
        })
    }

    /// Go's `time.RFC3339Nano`: fraction without trailing zeros, `Z` for UTC.
    pub fn to_rfc3339_nano(&self) -> String {
        self.format(None)
    }

    /// go-openapi's `strfmt.DateTime`: always three fractional digits.
    pub fn to_rfc3339_millis(&self) -> String {
        self.format(Some(3))
    }

    fn format(&self, fixed_digits: Option<usize>) -> String {
        let offset = Offset::from_seconds(self.offset_s).unwrap_or(Offset::UTC);
        let dt = TimeZone::fixed(offset).to_datetime(self.ts);
        let mut out = String::with_capacity(35);
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        );
        let nanos = dt.subsec_nanosecond();
        match fixed_digits {
            Some(d) => {
                let frac = format!("{nanos:09}");
                out.push('.');
                out.push_str(&frac[..d]);
            }
            None if nanos != 0 => {
                let frac = format!("{nanos:09}");
                out.push('.');
                out.push_str(frac.trim_end_matches('0'));
            }
            None => {}
        }
        if self.offset_s == 0 {
            out.push('Z');
        } else {
            let sign = if self.offset_s < 0 { '-' } else { '+' };
            let a = self.offset_s.unsigned_abs();
            let _ = write!(out, "{sign}{:02}:{:02}", a / 3600, (a / 60) % 60);
        }
        out
    }
}

/// RFC3339Nano of an optional time, Go's zero time for `None`.
pub fn format_opt_nano(t: Option<Time>) -> String {
    t.map_or_else(|| GO_ZERO_TIME.to_string(), |t| t.to_rfc3339_nano())
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let s = b.get(at..at + n)?;
    if !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')))
}

fn parse_rfc3339(s: &str) -> Option<Time> {
    let b = s.as_bytes();
    let year = digits(b, 0, 4)?;
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let second = digits(b, 17, 2)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = &s[start..i];
        if frac.is_empty() {
            return None;
        }
        let mut padded = frac.chars().take(9).collect::<String>();
        while padded.len() < 9 {
            padded.push('0');
        }
        nanos = padded.parse().ok()?;
    }
    let offset_s: i32 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let h = digits(b, i + 1, 2)?;
            let m = digits(b, i + 4, 2)?;
            let v = i32::try_from(h * 3600 + m * 60).ok()?;
            if *c == b'-' { -v } else { v }
        }
        _ => return None,
    };
    let dt = jiff::civil::DateTime::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
        i8::try_from(hour).ok()?,
        i8::try_from(minute).ok()?,
        i8::try_from(second.min(59)).ok()?,
        i32::try_from(nanos).ok()?,
    )
    .ok()?;
    let offset = Offset::from_seconds(offset_s).ok()?;
    let ts = offset.to_timestamp(dt).ok()?;
    Some(Time { ts, offset_s })
}

/// Where "now" comes from. Tests use a manual clock to step silences and nflog entries through
/// their states without sleeping.
#[derive(Clone, Default)]
pub enum Clock {
    #[default]
    System,
    /// A clock that only moves when told to.
    Manual(std::sync::Arc<parking_lot::Mutex<Time>>),
}

impl Clock {
    pub fn manual(start: Time) -> Clock {
        Clock::Manual(std::sync::Arc::new(parking_lot::Mutex::new(start)))
    }

    pub fn now(&self) -> Time {
        match self {
            Clock::System => Time::from_timestamp(Timestamp::now()),
            Clock::Manual(t) => *t.lock(),
        }
    }

    /// Moves a manual clock forward; does nothing to the system clock.
    pub fn advance(&self, d: Duration) {
        if let Clock::Manual(t) = self {
            let mut g = t.lock();
            *g = g.add(d);
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Clock::System => f.write_str("Clock::System"),
            Clock::Manual(t) => write!(f, "Clock::Manual({})", t.lock().to_rfc3339_nano()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_like_go() {
        #[track_caller]
        fn check(input: &str, nano: &str, millis: &str) {
            let t = Time::parse(input).unwrap();
            assert_eq!(t.to_rfc3339_nano(), nano);
            assert_eq!(t.to_rfc3339_millis(), millis);
        }
        check(
            "2020-01-01T00:00:00.5+01:00",
            "2020-01-01T00:00:00.5+01:00",
            "2020-01-01T00:00:00.500+01:00",
        );
        check(
            "2026-11-24T12:19:41.402429093Z",
            "2026-11-24T12:19:41.402429093Z",
            "2026-11-24T12:19:41.402Z",
        );
        check(
            "2030-01-01T00:00:00Z",
            "2030-01-01T00:00:00Z",
            "2030-01-01T00:00:00.000Z",
        );
        check(
            "2030-01-01T00:00:00-05:30",
            "2030-01-01T00:00:00-05:30",
            "2030-01-01T00:00:00.000-05:30",
        );
    }

    #[test]
    fn offsets_compare_by_instant() {
        let a = Time::parse("2020-01-01T01:00:00+01:00").unwrap();
        let b = Time::parse("2020-01-01T00:00:00Z").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "bad",
            "2020-01-01",
            "2020-01-01T00:00:00",
            "2020-13-01T00:00:00Z",
        ] {
            assert!(Time::parse(s).is_err(), "{s}");
        }
    }
}
