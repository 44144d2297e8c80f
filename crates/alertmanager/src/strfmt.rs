//! API v2 timestamps as go-openapi's `strfmt.DateTime` reads them (Alertmanager 0.25): each of
//! its layouts is tried with Go's `time.Parse` rules, and a value no layout takes is reported with
//! Go's error for the last layout (`parsing time "x" as "2006-01-02 15:04:05": cannot parse "x"
//! as "2006"`). An empty string is the Unix epoch, as `strfmt.NewDateTime` makes it.

use jiff::tz::Offset;

use crate::time::Time;

/// One piece of a Go layout.
#[derive(Clone, Copy, PartialEq)]
enum Elem {
    Lit(&'static str),
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    /// `.000…`: exactly this many digits.
    Frac(usize),
    /// `Z07:00`
    TzColon,
    /// `Z0700`
    Tz,
}

impl Elem {
    fn layout_text(self) -> &'static str {
        match self {
            Elem::Lit(s) => s,
            Elem::Year => "2006",
            Elem::Month => "01",
            Elem::Day => "02",
            Elem::Hour => "15",
            Elem::Minute => "04",
            Elem::Second => "05",
            Elem::Frac(3) => ".000",
            Elem::Frac(_) => ".000000",
            Elem::TzColon => "Z07:00",
            Elem::Tz => "Z0700",
        }
    }
}

use Elem::*;

const DATE: [Elem; 5] = [Year, Lit("-"), Month, Lit("-"), Day];

/// strfmt v0.21's `DateTimeFormats`, in its order, with their Go spelling.
fn layouts() -> Vec<(&'static str, Vec<Elem>)> {
    let with = |rest: &[Elem]| -> Vec<Elem> {
        let mut v = DATE.to_vec();
        v.extend_from_slice(rest);
        v
    };
    let hms = [Lit("T"), Hour, Lit(":"), Minute, Lit(":"), Second];
    let cat = |a: &[Elem], b: &[Elem]| -> Vec<Elem> { with(&[a, b].concat()) };
    vec![
        (
            "2006-01-02T15:04:05.000000Z07:00",
            cat(&hms, &[Frac(6), TzColon]),
        ),
        ("2006-01-02T15:04:05.000000Z0700", cat(&hms, &[Frac(6), Tz])),
        (
            "2006-01-02T15:04:05.000Z07:00",
            cat(&hms, &[Frac(3), TzColon]),
        ),
        ("2006-01-02T15:04:05.000Z0700", cat(&hms, &[Frac(3), Tz])),
        ("2006-01-02T15:04:05Z07:00", cat(&hms, &[TzColon])),
        // time.RFC3339Nano reads like RFC3339 (`.999999999` is optional).
        ("2006-01-02T15:04:05.999999999Z07:00", cat(&hms, &[TzColon])),
        ("2006-01-02T15:04:05", with(&hms)),
        (
            "2006-01-02T15:04Z",
            with(&[Lit("T"), Hour, Lit(":"), Minute, Lit("Z")]),
        ),
        (
            "2006-01-02T15:04",
            with(&[Lit("T"), Hour, Lit(":"), Minute]),
        ),
        (
            "2006-01-02 15:04:05",
            with(&[Lit(" "), Hour, Lit(":"), Minute, Lit(":"), Second]),
        ),
    ]
}

/// Parses like `strfmt.ParseDateTime`; the error is Go's text.
pub fn parse_date_time(s: &str) -> Result<Time, String> {
    if s.is_empty() {
        return Ok(Time::from_unix_nanos(0));
    }
    let mut last = String::new();
    for (name, elems) in layouts() {
        match go_parse(name, &elems, s) {
            Ok(t) => return Ok(t),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Go's `time.Time.UnmarshalJSON` (1.19) of the JSON string `s` (given without its quotes):
/// `time.Parse` with the layout `"2006-01-02T15:04:05Z07:00"`, quotes included.
pub fn parse_json_time(s: &str) -> Result<Time, String> {
    let elems = [
        Lit("\""),
        Year,
        Lit("-"),
        Month,
        Lit("-"),
        Day,
        Lit("T"),
        Hour,
        Lit(":"),
        Minute,
        Lit(":"),
        Second,
        TzColon,
        Lit("\""),
    ];
    go_parse("\"2006-01-02T15:04:05Z07:00\"", &elems, &format!("\"{s}\""))
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn is_digit(s: &[u8], i: usize) -> bool {
    s.get(i).is_some_and(u8::is_ascii_digit)
}

/// Go's `getnum`: one or two digits (two when `fixed`).
fn getnum(s: &[u8], fixed: bool) -> Option<(i64, usize)> {
    if !is_digit(s, 0) {
        return None;
    }
    if !is_digit(s, 1) {
        return if fixed {
            None
        } else {
            Some((i64::from(s[0] - b'0'), 1))
        };
    }
    Some((i64::from(s[0] - b'0') * 10 + i64::from(s[1] - b'0'), 2))
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn go_parse(layout: &str, elems: &[Elem], value: &str) -> Result<Time, String> {
    let cannot = |elem: &str, rest: &[u8]| {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            quote(value),
            quote(layout),
            quote(&String::from_utf8_lossy(rest)),
            quote(elem)
        )
    };
    let message = |m: &str| format!("parsing time {}{m}", quote(value));
    let (mut year, mut month, mut day, mut hour, mut minute, mut second) = (0, 1, 1, 0, 0, 0);
    let mut nanos = 0i64;
    let mut offset: i32 = 0;
    let mut v = value.as_bytes();
    for (i, &e) in elems.iter().enumerate() {
        let hold = v;
        let mut range_err = "";
        let ok = match e {
            Lit(lit) => {
                let mut p = lit.as_bytes();
                let mut good = true;
                while !p.is_empty() {
                    if p[0] == b' ' {
                        if !v.is_empty() && v[0] != b' ' {
                            good = false;
                            break;
                        }
                        p = trim_spaces(p);
                        v = trim_spaces(v);
                        continue;
                    }
                    if v.is_empty() || v[0] != p[0] {
                        good = false;
                        break;
                    }
                    p = &p[1..];
                    v = &v[1..];
                }
                if !good {
                    return Err(cannot(lit, v));
                }
                true
            }
            Year => {
                if v.len() < 4 || !v[..4].iter().all(u8::is_ascii_digit) {
                    false
                } else {
                    year = v[..4]
                        .iter()
                        .fold(0i64, |a, d| a * 10 + i64::from(d - b'0'));
                    v = &v[4..];
                    true
                }
            }
            Month | Day | Hour | Minute | Second => match getnum(v, e != Hour) {
                None => false,
                Some((n, len)) => {
                    v = &v[len..];
                    match e {
                        Month => {
                            month = n;
                            if !(1..=12).contains(&n) {
                                range_err = "month";
                            }
                        }
                        Day => day = n,
                        Hour => {
                            hour = n;
                            if n >= 24 {
                                range_err = "hour";
                            }
                        }
                        Minute => {
                            minute = n;
                            if n >= 60 {
                                range_err = "minute";
                            }
                        }
                        _ => {
                            second = n;
                            if n >= 60 {
                                range_err = "second";
                            } else if v.len() >= 2
                                && matches!(v[0], b'.' | b',')
                                && is_digit(v, 1)
                                && !matches!(elems.get(i + 1), Some(Frac(_)))
                            {
                                let mut n = 2;
                                while is_digit(v, n) {
                                    n += 1;
                                }
                                nanos = frac_nanos(&v[1..n]);
                                v = &v[n..];
                            }
                        }
                    }
                    true
                }
            },
            Frac(n) => {
                let need = n + 1;
                if v.len() < need
                    || !matches!(v[0], b'.' | b',')
                    || !v[1..need].iter().all(u8::is_ascii_digit)
                {
                    false
                } else {
                    nanos = frac_nanos(&v[1..need]);
                    v = &v[need..];
                    true
                }
            }
            TzColon | Tz => {
                if v.first() == Some(&b'Z') {
                    v = &v[1..];
                    offset = 0;
                    true
                } else {
                    let parts = if e == TzColon {
                        (v.len() >= 6 && v[3] == b':').then(|| (&v[1..3], &v[4..6], 6))
                    } else {
                        (v.len() >= 5).then(|| (&v[1..3], &v[3..5], 5))
                    };
                    match parts {
                        Some((h, m, len)) => match (getnum(h, true), getnum(m, true), v[0]) {
                            (Some((h, _)), Some((m, _)), sign @ (b'+' | b'-')) => {
                                if h > 24 {
                                    range_err = "time zone offset hour";
                                }
                                if m > 60 {
                                    range_err = "time zone offset minute";
                                }
                                let s = i32::try_from(h * 3600 + m * 60).unwrap_or(0);
                                offset = if sign == b'-' { -s } else { s };
                                v = &v[len..];
                                true
                            }
                            _ => false,
                        },
                        None => false,
                    }
                }
            }
        };
        if !range_err.is_empty() {
            return Err(message(&format!(": {range_err} out of range")));
        }
        if !ok {
            return Err(cannot(e.layout_text(), hold));
        }
    }
    if !v.is_empty() {
        return Err(message(&format!(
            ": extra text: {}",
            quote(&String::from_utf8_lossy(v))
        )));
    }
    if day < 1 || day > days_in(month, year) {
        return Err(message(": day out of range"));
    }
    let civil = jiff::civil::DateTime::new(
        i16::try_from(year).map_err(|e| message(&format!(": {e}")))?,
        i8::try_from(month).unwrap_or(1),
        i8::try_from(day).unwrap_or(1),
        i8::try_from(hour).unwrap_or(0),
        i8::try_from(minute).unwrap_or(0),
        i8::try_from(second).unwrap_or(0),
        i32::try_from(nanos).unwrap_or(0),
    )
    .map_err(|e| message(&format!(": {e}")))?;
    let off = Offset::from_seconds(offset).map_err(|e| message(&format!(": {e}")))?;
    let ts = off
        .to_timestamp(civil)
        .map_err(|e| message(&format!(": {e}")))?;
    Ok(Time::from_timestamp_offset(ts, offset))
}

fn trim_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b' ').count();
    &s[n..]
}

/// Nanoseconds of the digits after the decimal point (more than nine are cut).
fn frac_nanos(d: &[u8]) -> i64 {
    let mut n = 0i64;
    for i in 0..9 {
        n = n * 10 + d.get(i).map_or(0, |c| i64::from(c - b'0'));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str, want: &str) {
        let t = parse_date_time(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(t.to_rfc3339_nano(), want, "{s}");
    }

    fn bad(s: &str, want: &str) {
        assert_eq!(parse_date_time(s).unwrap_err(), want, "{s}");
    }

    #[test]
    fn reads_every_strfmt_layout() {
        ok("2026-11-24T20:00:00Z", "2026-11-24T20:00:00Z");
        ok("2026-11-24T20:00:00.5+02:00", "2026-11-24T20:00:00.5+02:00");
        ok(
            "2026-11-24T20:00:00.123456-0130",
            "2026-11-24T20:00:00.123456-01:30",
        );
        ok("2026-11-24T20:00:00.123+0000", "2026-11-24T20:00:00.123Z");
        ok("2026-11-24T20:00:00", "2026-11-24T20:00:00Z");
        ok("2026-11-24T20:00:00.25", "2026-11-24T20:00:00.25Z");
        ok("2026-11-24T20:01Z", "2026-11-24T20:01:00Z");
        ok("2026-11-24T20:01", "2026-11-24T20:01:00Z");
        ok("2026-11-24 20:00:00", "2026-11-24T20:00:00Z");
        ok("2026-11-24T2:00:00Z", "2026-11-24T02:00:00Z");
        ok("", "1970-01-01T00:00:00Z");
    }

    #[test]
    fn json_time_like_go() {
        let t = parse_json_time("2026-11-24T20:00:00.5+01:00").unwrap();
        assert_eq!(t.to_rfc3339_nano(), "2026-11-24T20:00:00.5+01:00");
        // As Alertmanager 0.25's API v1 answers.
        assert_eq!(
            parse_json_time("bad").unwrap_err(),
            r#"parsing time "\"bad\"" as "\"2006-01-02T15:04:05Z07:00\"": cannot parse "bad\"" as "2006""#
        );
    }

    #[test]
    fn errors_like_go() {
        // As Alertmanager 0.25 answers (checked against Debian's build).
        bad(
            "bad",
            r#"parsing time "bad" as "2006-01-02 15:04:05": cannot parse "bad" as "2006""#,
        );
        bad(
            "2026-13-24T20:00:00Z",
            r#"parsing time "2026-13-24T20:00:00Z": month out of range"#,
        );
        bad(
            "2026-11-24T20:00:00Zjunk",
            r#"parsing time "2026-11-24T20:00:00Zjunk" as "2006-01-02 15:04:05": cannot parse "T20:00:00Zjunk" as " ""#,
        );
        bad(
            "2026-11-24 20:00:00x",
            r#"parsing time "2026-11-24 20:00:00x": extra text: "x""#,
        );
        bad(
            "2026-02-30 20:00:00",
            r#"parsing time "2026-02-30 20:00:00": day out of range"#,
        );
        bad(
            "2026-11-24 20:61:00",
            r#"parsing time "2026-11-24 20:61:00": minute out of range"#,
        );
    }
}
