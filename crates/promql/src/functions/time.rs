//! Date functions (`hour()`, `day_of_week()`, ...): UTC calendar fields of sample values read
//! as Unix seconds.

use model::Labels;

use super::arg;
use crate::ast::Call;
use crate::engine::{Ev, RSeries, Rng, Val};
use crate::error::{Result, eval_err};

// Go's time package (which Prometheus's date functions use) counts seconds from an "absolute"
// epoch in year -292277022399 in a uint64, with wrapping arithmetic; the constants and the
// calendar below follow its definitions so that values beyond the representable range
// (NaN, ±Inf, ±1e19, which Go's int64 conversion turns into the minimum int64) give the same
// fields as Prometheus.
const SECONDS_PER_DAY: u64 = 86_400;
const DAYS_PER_400_YEARS: u64 = 365 * 400 + 97;
const DAYS_PER_100_YEARS: u64 = 365 * 100 + 24;
const DAYS_PER_4_YEARS: u64 = 365 * 4 + 1;
const ABSOLUTE_ZERO_YEAR: i64 = -292_277_022_399;
/// (ABSOLUTE_ZERO_YEAR - 1) * 365.2425 days, in seconds.
const ABSOLUTE_TO_INTERNAL: i64 = -9_223_371_966_579_724_800;
const UNIX_TO_INTERNAL: i64 = (1969 * 365 + 1969 / 4 - 1969 / 100 + 1969 / 400) * 86_400;
const UNIX_TO_ABSOLUTE: i64 = UNIX_TO_INTERNAL - ABSOLUTE_TO_INTERNAL;
/// Days before each month of a non-leap year (index 12: the whole year).
const DAYS_BEFORE: [u64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

/// Go's `int64(v)` on amd64: truncation toward zero, and the minimum int64 for NaN and
/// values out of range.
fn go_int64(v: f64) -> i64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if !(-TWO_63..TWO_63).contains(&v) {
        i64::MIN
    } else {
        v as i64
    }
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

/// Year, month (1-12), day (1-31) and day of the year (0-based) of absolute seconds `abs`.
fn abs_date(abs: u64) -> (i64, u64, u64, u64) {
    let mut d = abs / SECONDS_PER_DAY;
    let mut n = d / DAYS_PER_400_YEARS;
    let mut y = n.wrapping_mul(400);
    d -= DAYS_PER_400_YEARS * n;
    n = d / DAYS_PER_100_YEARS;
    n -= n >> 2;
    y = y.wrapping_add(100 * n);
    d -= DAYS_PER_100_YEARS * n;
    n = d / DAYS_PER_4_YEARS;
    y = y.wrapping_add(4 * n);
    d -= DAYS_PER_4_YEARS * n;
    n = d / 365;
    n -= n >> 2;
    y = y.wrapping_add(n);
    d -= 365 * n;
    let year = (y as i64).wrapping_add(ABSOLUTE_ZERO_YEAR);
    let yday = d;
    let mut day = yday;
    if is_leap(year) {
        if day == 31 + 29 - 1 {
            return (year, 2, 29, yday);
        }
        if day > 31 + 29 - 1 {
            day -= 1;
        }
    }
    let mut month = day / 31;
    let end = DAYS_BEFORE[month as usize + 1];
    let begin = if day >= end {
        month += 1;
        end
    } else {
        DAYS_BEFORE[month as usize]
    };
    (year, month + 1, day - begin + 1, yday)
}

/// Absolute days from Go's absolute epoch to January 1st of `year`.
fn days_since_epoch(year: i64) -> u64 {
    let mut y = year.wrapping_sub(ABSOLUTE_ZERO_YEAR) as u64;
    let mut n = y / 400;
    y -= 400 * n;
    let mut d = DAYS_PER_400_YEARS.wrapping_mul(n);
    n = y / 100;
    y -= 100 * n;
    d = d.wrapping_add(DAYS_PER_100_YEARS * n);
    n = y / 4;
    y -= 4 * n;
    d = d.wrapping_add(DAYS_PER_4_YEARS * n);
    d.wrapping_add(365 * y)
}

/// The calendar field `name` of Unix time `secs`, as Go's `time.Unix(int64(secs), 0).UTC()`
/// gives it.
pub(crate) fn date_field(name: &str, secs: f64) -> f64 {
    let abs = go_int64(secs).wrapping_add(UNIX_TO_ABSOLUTE) as u64;
    let (year, month, day, yday) = abs_date(abs);
    match name {
        "year" => year as f64,
        "month" => month as f64,
        "day_of_month" => day as f64,
        "day_of_week" => {
            // Absolute day 0 is a Monday.
            (abs.wrapping_add(SECONDS_PER_DAY) % (7 * SECONDS_PER_DAY) / SECONDS_PER_DAY) as f64
        }
        "day_of_year" => (yday + 1) as f64,
        "days_in_month" => {
            // Prometheus: 32 - time.Date(year, month, 32).Day().
            let mut d = days_since_epoch(year).wrapping_add(DAYS_BEFORE[month as usize - 1]);
            if is_leap(year) && month >= 3 {
                d = d.wrapping_add(1);
            }
            let d = d.wrapping_add(31);
            (32 - abs_date(d.wrapping_mul(SECONDS_PER_DAY)).2) as f64
        }
        "hour" => (abs % SECONDS_PER_DAY / 3600) as f64,
        "minute" => (abs % 3600 / 60) as f64,
        _ => f64::NAN,
    }
}

pub(crate) fn date_func(ev: &mut Ev<'_>, c: &Call, r: Rng) -> Result<Val> {
    let name = c.func.as_str();
    if !matches!(
        name,
        "year"
            | "month"
            | "day_of_month"
            | "day_of_week"
            | "day_of_year"
            | "days_in_month"
            | "hour"
            | "minute"
    ) {
        return eval_err(format!("function {name:?} is not supported"));
    }
    if c.args.is_empty() {
        let points = (0..r.len())
            .map(|k| (r.ts(k), date_field(name, r.ts(k) as f64 / 1000.0)))
            .collect();
        return Ok(Val::Vector(vec![RSeries {
            labels: Labels::empty(),
            drop_name: false,
            points,
        }]));
    }
    let mut v = ev.eval_vector(arg(c, 0)?, r)?;
    for s in &mut v {
        s.drop_name = true;
        s.points
            .iter_mut()
            .for_each(|p| p.1 = date_field(name, p.1));
    }
    Ok(Val::Vector(v))
}
