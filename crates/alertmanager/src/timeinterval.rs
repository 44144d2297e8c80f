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
    pub start_time: String,
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

fn parse_hhmm(s: &str) -> Result<u32, String> {
    let bad = || format!("couldn't parse timestamp {s}, invalid format");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(format!("timestamp {s} out of range"));
    }
    Ok(h * 60 + m)
}

fn parse_value(s: &str, names: &[&str], offset: i64) -> Option<i64> {
    let lower = s.trim().to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Some(i as i64 + offset);
    }
    lower.parse().ok()
}

fn parse_ranges(
    what: &str,
    items: &[String],
    names: &[&str],
    name_offset: i64,
    valid: impl Fn(i64) -> bool,
) -> Result<Vec<(i64, i64)>, String> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let (a, b) = item
            .split_once(':')
            .unwrap_or((item.as_str(), item.as_str()));
        let parse = |v: &str| {
            parse_value(v, names, name_offset)
                .filter(|n| valid(*n))
                .ok_or_else(|| format!("{item:?} is not a valid {what}"))
        };
        let (start, end) = (parse(a)?, parse(b)?);
        // Negative days of month count from the end; they are compared after resolution.
        if (start >= 0) == (end >= 0) && start > end {
            return Err(format!("start {what} cannot be after end {what}: {item}"));
        }
        out.push((start, end));
    }
    Ok(out)
}

impl TimeInterval {
    pub fn from_raw(r: &RawTimeInterval) -> Result<TimeInterval, String> {
        let mut times = Vec::with_capacity(r.times.len());
        for t in &r.times {
            let (s, e) = (parse_hhmm(&t.start_time)?, parse_hhmm(&t.end_time)?);
            if s >= e {
                return Err("start time cannot be equal or greater than end time".to_string());
            }
            times.push((s, e));
        }
        let tz = match r.location.as_deref() {
            None | Some("") | Some("UTC") => TimeZone::UTC,
            Some("Local") => TimeZone::system(),
            Some(name) => {
                TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}"))?
            }
        };
        Ok(TimeInterval {
            times,
            weekdays: parse_ranges("weekday", &r.weekdays, &WEEKDAYS, 0, |n| {
                (0..=6).contains(&n)
            })?,
            days_of_month: parse_ranges("day of month", &r.days_of_month, &[], 0, |n| {
                n != 0 && (-31..=31).contains(&n)
            })?,
            months: parse_ranges("month", &r.months, &MONTHS, 1, |n| (1..=12).contains(&n))?,
            years: parse_ranges("year", &r.years, &[], 0, |n| n > 0)?,
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
            let resolve = |d: i64| {
                if d < 0 {
                    (days + d + 1).max(1)
                } else {
                    d.min(days)
                }
            };
            let day = i64::from(dt.day());
            if !self
                .days_of_month
                .iter()
                .any(|&(a, b)| resolve(a) <= day && day <= resolve(b))
            {
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
    fn rejects_bad_ranges() {
        for y in [
            "times: [{start_time: '10:00', end_time: '09:00'}]",
            "weekdays: [funday]",
            "months: ['13']",
            "days_of_month: ['0']",
            "times: [{start_time: '25:00', end_time: '26:00'}]",
        ] {
            let raw: RawTimeInterval = serde_saphyr::from_str(y).unwrap();
            assert!(TimeInterval::from_raw(&raw).is_err(), "{y}");
        }
    }
}
