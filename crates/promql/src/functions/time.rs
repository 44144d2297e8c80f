//! Date functions (`hour()`, `day_of_week()`, ...): UTC calendar fields of sample values read
//! as Unix seconds.

use model::Labels;

use super::arg;
use crate::ast::Call;
use crate::engine::{Ev, RSeries, Rng, Val};
use crate::error::{Result, eval_err};

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01 (proleptic Gregorian).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The calendar field `name` of Unix time `secs`.
pub(crate) fn date_field(name: &str, secs: f64) -> f64 {
    // compat: Go converts with int64(v), truncating toward zero.
    let s = secs as i64;
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let v = match name {
        "year" => y,
        "month" => i64::from(m),
        "day_of_month" => i64::from(d),
        "day_of_week" => (days + 4).rem_euclid(7),
        "day_of_year" => {
            let before: u32 = (1..m).map(|mm| days_in_month(y, mm)).sum();
            i64::from(before + d)
        }
        "days_in_month" => i64::from(days_in_month(y, m)),
        "hour" => sod / 3600,
        "minute" => sod % 3600 / 60,
        _ => return f64::NAN,
    };
    v as f64
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
