//! Go's `time.Time` and `time.Duration` as template objects: printing, `Format` with Go's
//! reference-time layouts, and the methods templates call on them (`.StartsAt.Format`,
//! `.StartsAt.Unix`, `(since .StartsAt).Seconds`).

use std::any::Any;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::value::{Object, Value, args};

/// Go's `time.Time.String()` layout.
pub const DEFAULT_LAYOUT: &str = "2006-01-02 15:04:05.999999999 -0700 MST";
/// Go's `time.RFC3339Nano`, which `encoding/json` uses.
pub const RFC3339_NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";

/// An instant in a time zone, printed and formatted as Go does.
#[derive(Clone, Debug, PartialEq)]
pub struct Time {
    ts: Timestamp,
    tz: TimeZone,
}

impl Time {
    /// An instant shown in UTC.
    pub fn new(ts: Timestamp) -> Time {
        Time {
            ts,
            tz: TimeZone::UTC,
        }
    }

    pub fn with_zone(ts: Timestamp, tz: TimeZone) -> Time {
        Time { ts, tz }
    }

    /// Go's zero `time.Time`: January 1, year 1, 00:00:00 UTC (the `EndsAt` of alerts that
    /// have none).
    pub fn zero() -> Time {
        Time::new(Timestamp::from_second(ZERO_UNIX).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    /// From Unix seconds with a fraction, truncated to nanoseconds; out-of-range values clamp.
    pub fn from_unix_f64(secs: f64) -> Time {
        let nanos = (secs * 1e9) as i128;
        let ts = Timestamp::from_nanosecond(nanos).unwrap_or(if nanos < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        });
        Time::new(ts)
    }

    pub fn timestamp(&self) -> Timestamp {
        self.ts
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The same instant in another zone (Go's `t.In(loc)`).
    pub fn in_zone(&self, tz: TimeZone) -> Time {
        Time { ts: self.ts, tz }
    }

    pub fn is_zero(&self) -> bool {
        self.ts.as_second() == ZERO_UNIX && self.ts.subsec_nanosecond() == 0
    }

    pub fn value(self) -> Value {
        Value::object(self)
    }

    /// Go's `t.Format(layout)`.
    pub fn format(&self, layout: &str) -> String {
        format_layout(self, layout)
    }

    fn unix_nanos(&self) -> i128 {
        self.ts.as_nanosecond()
    }
}

const ZERO_UNIX: i64 = -62_135_596_800;

/// Go's `time.Duration`: signed nanoseconds, printed like `1h2m3.5s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub i64);

impl Duration {
    pub fn value(self) -> Value {
        Value::object(self)
    }

    pub fn seconds(self) -> f64 {
        let (s, ns) = (self.0 / 1_000_000_000, self.0 % 1_000_000_000);
        s as f64 + ns as f64 / 1e9
    }
}

impl Object for Duration {
    fn type_name(&self) -> &str {
        "time.Duration"
    }

    fn method(&self, name: &str, argv: &[Value]) -> Option<Result<Value, String>> {
        let d = self.0;
        let r = match name {
            "String" => Value::from(model::duration::format_go_duration(d)),
            "Seconds" => Value::Float(self.seconds()),
            "Minutes" => {
                Value::Float((d / 60_000_000_000) as f64 + (d % 60_000_000_000) as f64 / 6e10)
            }
            "Hours" => Value::Float(
                (d / 3_600_000_000_000) as f64 + (d % 3_600_000_000_000) as f64 / 3.6e12,
            ),
            "Milliseconds" => Value::Int(d / 1_000_000),
            "Microseconds" => Value::Int(d / 1_000),
            "Nanoseconds" => Value::Int(d),
            "Abs" => Duration(d.checked_abs().unwrap_or(i64::MAX)).value(),
            "Round" | "Truncate" => {
                let m = match argv.first().map(duration_arg) {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => return Some(Err(e)),
                    None => {
                        return Some(Err(format!(
                            "wrong number of args for {name}: want 1 got 0"
                        )));
                    }
                };
                if m <= 0 {
                    return Some(Ok(self.value()));
                }
                let t = d - d % m;
                let r = if name == "Round" && (d % m).abs().saturating_mul(2) >= m {
                    t.saturating_add(if d < 0 { -m } else { m })
                } else {
                    t
                };
                Duration(r).value()
            }
            _ => return None,
        };
        Some(Ok(r))
    }

    fn underlying(&self) -> Option<Value> {
        Some(Value::Int(self.0))
    }

    fn display(&self) -> Option<String> {
        Some(model::duration::format_go_duration(self.0))
    }

    fn json(&self) -> Option<Value> {
        Some(Value::Int(self.0))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A duration argument: a `time.Duration` or an integer of nanoseconds.
pub(crate) fn duration_arg(v: &Value) -> Result<i64, String> {
    if let Some(d) = v.downcast_ref::<Duration>() {
        return Ok(d.0);
    }
    args::int(v).map_err(|_| {
        format!(
            "wrong type for value; expected time.Duration; got {}",
            v.type_name()
        )
    })
}

/// A `time.Time` argument.
pub(crate) fn time_arg(v: &Value) -> Result<&Time, String> {
    v.downcast_ref::<Time>().ok_or_else(|| {
        format!(
            "wrong type for value; expected time.Time; got {}",
            v.type_name()
        )
    })
}

impl Object for Time {
    fn type_name(&self) -> &str {
        "time.Time"
    }

    fn method(&self, name: &str, argv: &[Value]) -> Option<Result<Value, String>> {
        let civil = || self.ts.to_zoned_datetime(self.tz.clone());
        let r = match name {
            "Format" => match argv {
                [layout] => match args::string(layout) {
                    Ok(l) => Value::from(self.format(l)),
                    Err(e) => return Some(Err(e)),
                },
                _ => {
                    return Some(Err(format!(
                        "wrong number of args for Format: want 1 got {}",
                        argv.len()
                    )));
                }
            },
            "String" => Value::from(self.format(DEFAULT_LAYOUT)),
            "Unix" => Value::Int(self.ts.as_second()),
            "UnixMilli" => Value::Int(self.ts.as_millisecond()),
            "UnixMicro" => Value::Int(self.ts.as_microsecond()),
            "UnixNano" => Value::Int(i64::try_from(self.unix_nanos()).unwrap_or(i64::MIN)),
            "UTC" => self.in_zone(TimeZone::UTC).value(),
            "Local" => self.in_zone(TimeZone::system()).value(),
            "IsZero" => Value::Bool(self.is_zero()),
            "Year" => Value::Int(civil().year().into()),
            "Month" => Value::from(MONTHS[(civil().month() - 1) as usize]),
            "Day" => Value::Int(civil().day().into()),
            "Hour" => Value::Int(civil().hour().into()),
            "Minute" => Value::Int(civil().minute().into()),
            "Second" => Value::Int(civil().second().into()),
            "Nanosecond" => Value::Int(civil().subsec_nanosecond().into()),
            "YearDay" => Value::Int(civil().day_of_year().into()),
            "Weekday" => Value::from(DAYS[civil().weekday().to_sunday_zero_offset() as usize]),
            "Before" | "After" | "Equal" | "Sub" => {
                let other = match argv.first().map(time_arg) {
                    Some(Ok(t)) => t,
                    Some(Err(e)) => return Some(Err(e)),
                    None => {
                        return Some(Err(format!(
                            "wrong number of args for {name}: want 1 got 0"
                        )));
                    }
                };
                let (a, b) = (self.unix_nanos(), other.unix_nanos());
                match name {
                    "Before" => Value::Bool(a < b),
                    "After" => Value::Bool(a > b),
                    "Equal" => Value::Bool(a == b),
                    _ => Duration(clamp_i64(a - b)).value(),
                }
            }
            "Add" => {
                let d = match argv.first().map(duration_arg) {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => return Some(Err(e)),
                    None => {
                        return Some(Err("wrong number of args for Add: want 1 got 0".to_string()));
                    }
                };
                let nanos = self.unix_nanos() + i128::from(d);
                let ts = Timestamp::from_nanosecond(nanos).unwrap_or(self.ts);
                Time {
                    ts,
                    tz: self.tz.clone(),
                }
                .value()
            }
            _ => return None,
        };
        Some(Ok(r))
    }

    fn display(&self) -> Option<String> {
        Some(self.format(DEFAULT_LAYOUT))
    }

    fn json(&self) -> Option<Value> {
        Some(Value::from(self.format(RFC3339_NANO)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

fn clamp_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

struct Fields {
    year: i64,
    month: usize,
    day: i64,
    yday: i64,
    hour: i64,
    min: i64,
    sec: i64,
    nanos: i64,
    weekday: usize,
    offset: i64,
    abbrev: String,
}

fn fields(t: &Time) -> Fields {
    let z = t.ts.to_zoned_datetime(t.tz.clone());
    let info = t.tz.to_offset_info(t.ts);
    Fields {
        year: z.year().into(),
        month: (z.month() - 1) as usize,
        day: z.day().into(),
        yday: z.day_of_year().into(),
        hour: z.hour().into(),
        min: z.minute().into(),
        sec: z.second().into(),
        nanos: z.subsec_nanosecond().into(),
        weekday: z.weekday().to_sunday_zero_offset() as usize,
        offset: info.offset().seconds().into(),
        // compat: Go's fixed zones without a name (times parsed with a numeric offset) print
        // the offset as -0700 where the layout says MST.
        abbrev: if t.tz.iana_name().is_none() && info.offset().seconds() != 0 {
            String::new()
        } else {
            info.abbreviation().to_string()
        },
    }
}

fn pad(out: &mut String, v: i64, width: usize) {
    if v < 0 {
        out.push('-');
    }
    out.push_str(&format!("{:0width$}", v.unsigned_abs()));
}

/// Writes a zone offset: `Z` for UTC when `z`, else the sign, hours and (per `colon`/`mins`/
/// `secs`) minutes and seconds.
fn zone(out: &mut String, offset: i64, z: bool, colon: bool, mins: bool, secs: bool) {
    if z && offset == 0 {
        out.push('Z');
        return;
    }
    let (sign, o) = if offset < 0 {
        ('-', -offset)
    } else {
        ('+', offset)
    };
    out.push(sign);
    pad(out, o / 3600, 2);
    if mins {
        if colon {
            out.push(':');
        }
        pad(out, o / 60 % 60, 2);
    }
    if secs {
        if colon {
            out.push(':');
        }
        pad(out, o % 60, 2);
    }
}

fn starts_lower(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
}

/// Go's `Time.Format`: the layout is the reference time `Mon Jan 2 15:04:05 MST 2006`.
fn format_layout(t: &Time, layout: &str) -> String {
    let f = fields(t);
    let mut out = String::with_capacity(layout.len() + 10);
    let mut i = 0;
    while i < layout.len() {
        let rest = &layout[i..];
        let take = |s: &str| rest.starts_with(s);
        let n = if take("January") {
            out.push_str(MONTHS[f.month]);
            7
        } else if take("Jan") && !starts_lower(&rest[3..]) {
            out.push_str(&MONTHS[f.month][..3]);
            3
        } else if take("Monday") {
            out.push_str(DAYS[f.weekday]);
            6
        } else if take("Mon") && !starts_lower(&rest[3..]) {
            out.push_str(&DAYS[f.weekday][..3]);
            3
        } else if take("MST") {
            if f.abbrev.is_empty() {
                zone(&mut out, f.offset, false, false, true, false);
            } else {
                out.push_str(&f.abbrev);
            }
            3
        } else if take("2006") {
            pad(&mut out, f.year, 4);
            4
        } else if take("_2006") {
            out.push('_');
            pad(&mut out, f.year, 4);
            5
        } else if take("002") {
            pad(&mut out, f.yday, 3);
            3
        } else if take("__2") {
            out.push_str(&format!("{:>3}", f.yday));
            3
        } else if take("_2") {
            out.push_str(&format!("{:>2}", f.day));
            2
        } else if take("01") {
            pad(&mut out, f.month as i64 + 1, 2);
            2
        } else if take("02") {
            pad(&mut out, f.day, 2);
            2
        } else if take("03") {
            pad(&mut out, hour12(f.hour), 2);
            2
        } else if take("04") {
            pad(&mut out, f.min, 2);
            2
        } else if take("05") {
            pad(&mut out, f.sec, 2);
            2
        } else if take("06") {
            pad(&mut out, f.year.rem_euclid(100), 2);
            2
        } else if take("15") {
            pad(&mut out, f.hour, 2);
            2
        } else if take("1") {
            out.push_str(&(f.month + 1).to_string());
            1
        } else if take("2") {
            out.push_str(&f.day.to_string());
            1
        } else if take("3") {
            out.push_str(&hour12(f.hour).to_string());
            1
        } else if take("4") {
            out.push_str(&f.min.to_string());
            1
        } else if take("5") {
            out.push_str(&f.sec.to_string());
            1
        } else if take("PM") {
            out.push_str(if f.hour >= 12 { "PM" } else { "AM" });
            2
        } else if take("pm") {
            out.push_str(if f.hour >= 12 { "pm" } else { "am" });
            2
        } else if let Some(n) = zone_chunk(&mut out, rest, f.offset) {
            n
        } else if let Some(n) = fraction_chunk(&mut out, rest, f.nanos) {
            n
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            c.len_utf8()
        };
        i += n;
    }
    out
}

fn hour12(h: i64) -> i64 {
    match h % 12 {
        0 => 12,
        h => h,
    }
}

fn zone_chunk(out: &mut String, rest: &str, offset: i64) -> Option<usize> {
    // Longest first, as Go matches them.
    const CHUNKS: [(&str, bool, bool, bool); 5] = [
        ("070000", false, true, true),
        ("07:00:00", true, true, true),
        ("0700", false, true, false),
        ("07:00", true, true, false),
        ("07", false, false, false),
    ];
    let (z, body) = if let Some(b) = rest.strip_prefix('Z') {
        (true, b)
    } else if let Some(b) = rest.strip_prefix('-') {
        (false, b)
    } else {
        return None;
    };
    for (chunk, colon, mins, secs) in CHUNKS {
        if body.starts_with(chunk) {
            zone(out, offset, z, colon, mins, secs);
            return Some(1 + chunk.len());
        }
    }
    None
}

fn fraction_chunk(out: &mut String, rest: &str, nanos: i64) -> Option<usize> {
    let b = rest.as_bytes();
    if b.len() < 2 || !(b[0] == b'.' || b[0] == b',') || !(b[1] == b'0' || b[1] == b'9') {
        return None;
    }
    let digit = b[1];
    let n = b[1..].iter().take_while(|&&c| c == digit).count();
    if b.get(1 + n).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let digits = format!("{nanos:09}");
    let mut frac = &digits[..n.min(9)];
    if digit == b'9' {
        frac = frac.trim_end_matches('0');
        if frac.is_empty() {
            return Some(1 + n);
        }
    }
    out.push(b[0] as char);
    out.push_str(frac);
    for _ in 9..n {
        if digit == b'0' {
            out.push('0');
        }
    }
    Some(1 + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let ts: Timestamp = "2015-06-23T13:19:44.128Z".parse().unwrap();
        let t = Time::new(ts);
        #[track_caller]
        fn check(t: &Time, layout: &str, want: &str) {
            assert_eq!(t.format(layout), want, "{layout}");
        }
        check(&t, DEFAULT_LAYOUT, "2015-06-23 13:19:44.128 +0000 UTC");
        check(&t, RFC3339_NANO, "2015-06-23T13:19:44.128Z");
        check(&t, "2006-01-02T15:04:05Z07:00", "2015-06-23T13:19:44Z");
        check(&t, "Mon Jan _2 3:04:05 PM 06", "Tue Jun 23 1:19:44 PM 15");
        check(
            &t,
            "Monday, 02-January-2006 .000 ,999999 __2 002",
            "Tuesday, 23-June-2015 .128 ,128 174 174",
        );
        check(&t, "15:04 MST -07:00 Z0700", "13:19 UTC +00:00 Z");
        let fixed = Time::with_zone(
            t.timestamp(),
            TimeZone::fixed(jiff::tz::Offset::from_seconds(7200).unwrap()),
        );
        check(
            &fixed,
            DEFAULT_LAYOUT,
            "2015-06-23 15:19:44.128 +0200 +0200",
        );
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        check(
            &t.in_zone(berlin),
            "2006-01-02 15:04:05 -0700 MST",
            "2015-06-23 15:19:44 +0200 CEST",
        );
        check(
            &Time::zero(),
            DEFAULT_LAYOUT,
            "0001-01-01 00:00:00 +0000 UTC",
        );
        assert!(Time::zero().is_zero());
    }

    #[test]
    fn durations() {
        assert_eq!(Duration(3_723_500_000_000).display().unwrap(), "1h2m3.5s");
        assert_eq!(Duration(1_500_000_000).seconds(), 1.5);
    }
}
