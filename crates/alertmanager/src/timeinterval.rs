//! `time_intervals:` — named sets of weekly/monthly/yearly windows in a time zone, used by
//! routes' `mute_time_intervals` and `active_time_intervals`.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// One `time_intervals[].time_intervals[]` entry, as written in YAML.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeInterval {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<RawTimeRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weekdays: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days_of_month: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub months: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub years: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeRange {
    #[serde(default)]
    pub start_time: String,
    #[serde(default)]
    pub end_time: String,
}

/// A validated interval: each non-empty list must contain the instant for it to match.
#[derive(Debug, Clone)]
pub struct TimeInterval {
    /// Minutes of the day, `[start, end)`.
    times: Vec<(u32, u32)>,
    /// 0 = Sunday.
    weekdays: Vec<(i64, i64)>,
    days_of_month: Vec<(i64, i64)>,
    months: Vec<(i64, i64)>,
    years: Vec<(i64, i64)>,
    tz: TimeZone,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// `HH:MM` (00:00 to 24:00) as minutes of the day, with Alertmanager's messages.
fn parse_hhmm(s: &str) -> Result<u32, String> {
    let bad = || format!("couldn't parse timestamp {s}, invalid format");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let two_digits = |x: &str| x.len() == 2 && x.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !((h < 24 && m < 60) || (h == 24 && m == 0)) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Which list a range belongs to; decides how members parse and which checks apply.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Weekday,
    DayOfMonth,
    Month,
    Year,
}

/// Go's `strconv.Atoi` error text.
fn atoi(s: &str) -> Result<i64, String> {
    s.parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: invalid syntax"))
}

fn member(kind: Kind, s: &str) -> Result<i64, String> {
    match kind {
        Kind::Weekday => WEEKDAYS
            .iter()
            .position(|n| *n == s)
            .map(|i| i as i64)
            .ok_or_else(|| format!("{s} is not a valid weekday")),
        Kind::Month => match MONTHS.iter().position(|n| *n == s) {
            Some(i) => Ok(i as i64 + 1),
            None => s
                .parse::<i64>()
                .map_err(|_| format!("{s} is not a valid month")),
        },
        Kind::DayOfMonth | Kind::Year => atoi(s),
    }
}

/// One `a:b` or `a` item, checked as Alertmanager 0.25's unmarshalers do.
fn parse_range(kind: Kind, item: &str) -> Result<(i64, i64), String> {
    let lower = item.to_lowercase();
    let (begin, end) = if lower.contains(':') {
        let parts: Vec<&str> = lower.split(':').collect();
        if parts.len() != 2 {
            return Err(format!("couldn't parse range {lower}, invalid format"));
        }
        (member(kind, parts[0])?, member(kind, parts[1])?)
    } else {
        let v = member(kind, &lower)?;
        (v, v)
    };
    match kind {
        Kind::Weekday if begin > end => {
            return Err("start day cannot be before end day".to_string());
        }
        Kind::DayOfMonth => {
            for d in [begin, end] {
                if d == 0 || !(-31..=31).contains(&d) {
                    return Err(format!("{d} is not a valid day of the month: out of range"));
                }
            }
            if begin < 0 && end > 0 {
                return Err("end day must be negative if start day is negative".to_string());
            }
            let check = |d: i64| if d < 0 { 28 + d } else { d };
            if check(begin) > check(end) {
                return Err(format!("end day {end} is always before start day {begin}"));
            }
        }
        Kind::Month if begin > end => {
            let name = |m: i64| {
                usize::try_from(m - 1)
                    .ok()
                    .and_then(|i| MONTHS.get(i))
                    .copied()
                    .unwrap_or("")
            };
            return Err(format!(
                "end month {} is before start month {}",
                name(end),
                name(begin)
            ));
        }
        Kind::Year if begin > end => {
            return Err(format!("end year {end} is before start year {begin}"));
        }
        _ => {}
    }
    Ok((begin, end))
}

fn parse_ranges(kind: Kind, items: &[String]) -> Result<Vec<(i64, i64)>, String> {
    items.iter().map(|i| parse_range(kind, i)).collect()
}

impl TimeInterval {
    pub fn from_raw(r: &RawTimeInterval) -> Result<TimeInterval, String> {
        let mut times = Vec::with_capacity(r.times.len());
        for t in &r.times {
            if t.start_time.is_empty() || t.end_time.is_empty() {
                return Err("both start and end times must be provided".to_string());
            }
            let (s, e) = (parse_hhmm(&t.start_time)?, parse_hhmm(&t.end_time)?);
            if s >= e {
                return Err("start time cannot be equal or greater than end time".to_string());
            }
            times.push((s, e));
        }
        let weekdays = parse_ranges(Kind::Weekday, &r.weekdays)?;
        let days_of_month = parse_ranges(Kind::DayOfMonth, &r.days_of_month)?;
        let months = parse_ranges(Kind::Month, &r.months)?;
        let years = parse_ranges(Kind::Year, &r.years)?;
        let tz = match r.location.as_deref() {
            None | Some("") | Some("UTC") => TimeZone::UTC,
            Some("Local") => TimeZone::system(),
            Some(name) => TimeZone::get(name).map_err(|_| format!("unknown time zone {name}"))?,
        };
        Ok(TimeInterval {
            times,
            weekdays,
            days_of_month,
            months,
            years,
            tz,
        })
    }

    /// Whether the instant falls inside this interval.
    pub fn contains(&self, t: Timestamp) -> bool {
        let dt = self.tz.to_datetime(t);
        let minute =
            u32::try_from(dt.hour()).unwrap_or(0) * 60 + u32::try_from(dt.minute()).unwrap_or(0);
        if !self.times.is_empty() && !self.times.iter().any(|&(s, e)| s <= minute && minute < e) {
            return false;
        }
        let in_ranges = |ranges: &[(i64, i64)], v: i64| {
            ranges.is_empty() || ranges.iter().any(|&(a, b)| a <= v && v <= b)
        };
        let weekday = i64::from(dt.weekday().to_sunday_zero_offset());
        if !in_ranges(&self.weekdays, weekday) {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let days = i64::from(dt.date().days_in_month());
            let resolve = |d: i64| if d < 0 { days + d + 1 } else { d };
            let day = i64::from(dt.day());
            // A range starting after the end of this month matches nothing in it; the rest
            // is clamped to the month, as Alertmanager does.
            if !self.days_of_month.iter().any(|&(a, b)| {
                let (a, b) = (resolve(a), resolve(b));
                a <= days && a.clamp(-days, days) <= day && day <= b.clamp(-days, days)
            }) {
                return false;
            }
        }
        in_ranges(&self.months, i64::from(dt.month()))
            && in_ranges(&self.years, i64::from(dt.year()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ti(yaml: &str) -> TimeInterval {
        let raw: RawTimeInterval = serde_saphyr::from_str(yaml).unwrap();
        TimeInterval::from_raw(&raw).unwrap()
    }

    #[test]
    fn weekday_business_hours() {
        let t =
            ti("times: [{start_time: '09:00', end_time: '17:00'}]\nweekdays: ['monday:friday']\n");
        // 2024-06-19 is a Wednesday.
        assert!(t.contains("2024-06-19T10:00:00Z".parse().unwrap()));
        assert!(!t.contains("2024-06-19T17:00:00Z".parse().unwrap()));
        assert!(!t.contains("2024-06-22T10:00:00Z".parse().unwrap()));
    }

    #[test]
    fn negative_days_and_months_and_location() {
        let t = ti("days_of_month: ['-1']\nmonths: ['february']\n");
        assert!(t.contains("2024-02-29T10:00:00Z".parse().unwrap()));
        assert!(!t.contains("2024-02-28T10:00:00Z".parse().unwrap()));
        let t = ti("times: [{start_time: '00:00', end_time: '01:00'}]\nlocation: Europe/Berlin\n");
        assert!(t.contains("2024-01-01T23:30:00Z".parse().unwrap()));
    }

    #[test]
    fn rejects_bad_ranges_like_alertmanager() {
        // `amtool check-config` (0.25) on the same intervals.
        for (y, want) in [
            (
                "times: [{start_time: '10:00', end_time: '09:00'}]",
                "start time cannot be equal or greater than end time",
            ),
            (
                "times: [{start_time: '1:00', end_time: '09:00'}]",
                "couldn't parse timestamp 1:00, invalid format",
            ),
            (
                "times: [{start_time: '10:00'}]",
                "both start and end times must be provided",
            ),
            (
                "weekdays: ['monday:sunday']",
                "start day cannot be before end day",
            ),
            ("weekdays: [funday]", "funday is not a valid weekday"),
            ("weekdays: ['1']", "1 is not a valid weekday"),
            (
                "months: ['march:january']",
                "end month january is before start month march",
            ),
            ("months: ['foo']", "foo is not a valid month"),
            (
                "days_of_month: ['0']",
                "0 is not a valid day of the month: out of range",
            ),
            (
                "days_of_month: ['-3:5']",
                "end day must be negative if start day is negative",
            ),
            (
                "days_of_month: ['20:3']",
                "end day 3 is always before start day 20",
            ),
            (
                "days_of_month: ['x']",
                "strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                "days_of_month: ['1:2:3']",
                "couldn't parse range 1:2:3, invalid format",
            ),
            (
                "years: ['2020:2019']",
                "end year 2019 is before start year 2020",
            ),
            ("location: Foo/Bar", "unknown time zone Foo/Bar"),
        ] {
            let raw: RawTimeInterval = serde_saphyr::from_str(y).unwrap();
            assert_eq!(TimeInterval::from_raw(&raw).unwrap_err(), want, "{y}");
        }
        // Accepted by 0.25: a numeric month past December, 24:00.
        ti("months: ['13']\ntimes: [{start_time: '10:00', end_time: '24:00'}]\n");
    }

    #[test]
    fn day_past_the_end_of_the_month_matches_nothing() {
        let t = ti("days_of_month: ['31']\n");
        assert!(!t.contains("2024-04-30T10:00:00Z".parse().unwrap()));
        assert!(t.contains("2024-05-31T10:00:00Z".parse().unwrap()));
        let t = ti("days_of_month: ['25:31']\n");
        assert!(t.contains("2024-04-30T10:00:00Z".parse().unwrap()));
    }
}
