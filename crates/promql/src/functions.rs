//! PromQL functions over floats: the table of names and types, and their evaluation.

use std::cmp::Ordering;

use model::labels::METRIC_NAME;
use model::{GoRegex, Labels};

use crate::ast::{Call, Expr, ValueType};
use crate::engine::{Builder, Ev, RSeries, Rng, StepWalker, Track, Val, WinInfo, unwrap_parens};
use crate::error::{Result, eval_err};

pub(crate) mod stats;
mod time;

pub(crate) use stats::quantile;

/// Functions over range vectors that only look at each window.
const RANGE_FUNCS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "predict_linear",
    "resets",
    "changes",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "first_over_time",
    "present_over_time",
    "mad_over_time",
    "ts_of_min_over_time",
    "ts_of_max_over_time",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "double_exponential_smoothing",
    // Prometheus 2.x's name of double_exponential_smoothing.
    "holt_winters",
];

/// Functions over instant vectors that map each value on its own and drop the metric name.
fn math_func(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "sgn" => |v: f64| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

const OTHER_FUNCS: &[&str] = &[
    "time",
    "start",
    "end",
    "range",
    "step",
    "min_of",
    "max_of",
    "info",
    "pi",
    "vector",
    "scalar",
    "timestamp",
    "round",
    "clamp",
    "clamp_min",
    "clamp_max",
    "sort",
    "sort_desc",
    "sort_by_label",
    "sort_by_label_desc",
    "label_replace",
    "label_join",
    "absent",
    "absent_over_time",
    "histogram_quantile",
    "histogram_quantiles",
    "histogram_count",
    "histogram_sum",
    "histogram_avg",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_fraction",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
];

/// What a call to `name` returns.
pub(crate) fn return_type(name: &str) -> ValueType {
    match name {
        "time" | "pi" | "scalar" | "start" | "end" | "range" | "step" | "min_of" | "max_of" => {
            ValueType::Scalar
        }
        _ => ValueType::Vector,
    }
}

pub(crate) fn supported(name: &str) -> bool {
    math_func(name).is_some() || RANGE_FUNCS.contains(&name) || OTHER_FUNCS.contains(&name)
}

/// Rejects calls to functions the engine does not implement (the parser knows more names, e.g.
/// experimental ones).
pub(crate) fn check_call_args(e: &Expr) -> std::result::Result<(), String> {
    let mut bad = None;
    e.walk(&mut |n| {
        if let Expr::Call(c) = n
            && !supported(&c.func)
            && bad.is_none()
        {
            bad = Some(format!("unknown function with name {:?}", c.func));
        }
    });
    bad.map_or(Ok(()), Err)
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`, as `count_values` and messages print numbers.
pub fn format_go_float(v: f64) -> String {
    let mut s = String::new();
    write_go_float(&mut s, v);
    s
}

/// Writes `v` as Go's `strconv.FormatFloat(v, 'f', -1, 64)` (what Prometheus puts into JSON;
/// [`format_go_float`] into a buffer): the shortest digits that read back as `v`,
/// never an exponent. Integers go straight to digits; other values take ryu's shortest digits,
/// whose exponent form is spelled out here.
pub fn write_go_float(out: &mut String, v: f64) {
    if !v.is_finite() {
        out.push_str(if v.is_nan() {
            "NaN"
        } else if v > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        });
        return;
    }
    if v.is_sign_negative() {
        out.push('-');
    }
    let a = v.abs();
    if a < 1e15 && a.fract() == 0.0 {
        let mut n = a as u64;
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        // ASCII digits.
        out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
        return;
    }
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(a);
    let Some((mant, exp)) = s.split_once('e') else {
        out.push_str(s.strip_suffix(".0").unwrap_or(s));
        return;
    };
    // `d[.ddd]e[-]x`: digits with the point after the first one, times 10^x.
    let exp: i32 = exp.parse().unwrap_or(0);
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let digits = || int.chars().chain(frac.chars());
    let n = (int.len() + frac.len()) as i32;
    let point = int.len() as i32 + exp; // digits before the decimal point
    if point <= 0 {
        out.push_str("0.");
        (0..-point).for_each(|_| out.push('0'));
        digits().for_each(|c| out.push(c));
    } else if point >= n {
        digits().for_each(|c| out.push(c));
        (0..point - n).for_each(|_| out.push('0'));
    } else {
        for (i, c) in digits().enumerate() {
            if i as i32 == point {
                out.push('.');
            }
            out.push(c);
        }
    }
}

fn arg(c: &Call, i: usize) -> Result<&Expr> {
    match c.args.get(i) {
        Some(a) => Ok(a),
        None => eval_err(format!("missing argument {} in call to {}", i + 1, c.func)),
    }
}

pub(crate) fn eval_call(ev: &mut Ev<'_>, c: &Call, r: Rng) -> Result<Val> {
    let name = c.func.as_str();
    if let Some(f) = math_func(name) {
        let mut v = ev.eval_vector(arg(c, 0)?, r)?;
        for s in &mut v {
            s.drop_name = true;
            s.points.iter_mut().for_each(|p| p.1 = f(p.1));
        }
        return Ok(Val::Vector(v));
    }
    if RANGE_FUNCS.contains(&name) {
        return range_func(ev, c, r).map(Val::Vector);
    }
    match name {
        "time" => Ok(Val::Scalar(
            (0..r.len()).map(|k| r.ts(k) as f64 / 1000.0).collect(),
        )),
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; r.len()])),
        "start" => Ok(Val::Scalar(vec![ev.qstart as f64 / 1000.0; r.len()])),
        "end" => Ok(Val::Scalar(vec![ev.qend as f64 / 1000.0; r.len()])),
        "range" => Ok(Val::Scalar(vec![
            (ev.qend - ev.qstart) as f64 / 1000.0;
            r.len()
        ])),
        "step" => Ok(Val::Scalar(vec![ev.qstep as f64 / 1000.0; r.len()])),
        "info" => ev.info(c, r).map(Val::Vector),
        "min_of" | "max_of" => {
            let f = if name == "min_of" { go_min } else { go_max };
            let a = ev.eval_scalar(arg(c, 0)?, r)?;
            let b = ev.eval_scalar(arg(c, 1)?, r)?;
            Ok(Val::Scalar(
                a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect(),
            ))
        }
        "vector" => {
            let s = ev.eval_scalar(arg(c, 0)?, r)?;
            let points = (0..r.len()).map(|k| (r.ts(k), s[k])).collect();
            Ok(Val::Vector(vec![RSeries {
                labels: Labels::empty(),
                drop_name: false,
                points,
            }]))
        }
        "scalar" => {
            let v = ev.eval_vector(arg(c, 0)?, r)?;
            let mut out = vec![f64::NAN; r.len()];
            let mut count = vec![0u32; r.len()];
            for s in &v {
                for &(t, x) in &s.points {
                    let k = r.index(t);
                    count[k] += 1;
                    out[k] = if count[k] == 1 { x } else { f64::NAN };
                }
            }
            ev.release(&v);
            Ok(Val::Scalar(out))
        }
        "timestamp" => {
            let a = unwrap_parens(arg(c, 0)?);
            let mut v = match a {
                Expr::VectorSelector(vs) => ev.vector_selector(vs, r, true)?,
                _ => {
                    let mut v = ev.eval_vector(a, r)?;
                    v.iter_mut()
                        .for_each(|s| s.points.iter_mut().for_each(|p| p.1 = p.0 as f64 / 1000.0));
                    v
                }
            };
            v.iter_mut().for_each(|s| s.drop_name = true);
            Ok(Val::Vector(v))
        }
        "round" => {
            let mut v = ev.eval_vector(arg(c, 0)?, r)?;
            let to = match c.args.get(1) {
                Some(a) => ev.eval_scalar(a, r)?,
                None => vec![1.0; r.len()],
            };
            for s in &mut v {
                s.drop_name = true;
                for p in &mut s.points {
                    // compat: Prometheus rounds half up via the inverse of the step.
                    let inv = 1.0 / to[r.index(p.0)];
                    p.1 = (p.1 * inv + 0.5).floor() / inv;
                }
            }
            Ok(Val::Vector(v))
        }
        "clamp" | "clamp_min" | "clamp_max" => clamp(ev, c, r),
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => sort(ev, c, r),
        "label_replace" => label_replace(ev, c, r),
        "label_join" => label_join(ev, c, r),
        "absent" => absent(ev, c, r),
        "absent_over_time" => absent_over_time(ev, c, r),
        "histogram_quantile" => histogram_quantile(ev, c, r),
        "histogram_fraction" => histogram_fraction(ev, c, r),
        "histogram_quantiles" => histogram_quantiles(ev, c, r),
        // Native-histogram functions ignore float samples.
        n if n.starts_with("histogram_") => {
            let v = ev.eval_vector(arg(c, 0)?, r)?;
            ev.release(&v);
            Ok(Val::Vector(Vec::new()))
        }
        _ => time::date_func(ev, c, r),
    }
}

fn clamp(ev: &mut Ev<'_>, c: &Call, r: Rng) -> Result<Val> {
    let mut v = ev.eval_vector(arg(c, 0)?, r)?;
    let a = ev.eval_scalar(arg(c, 1)?, r)?;
    let b = match c.args.get(2) {
        Some(e) => ev.eval_scalar(e, r)?,
        None => vec![f64::NAN; r.len()],
    };
    for s in &mut v {
        s.drop_name = true;
        s.points.retain_mut(|p| {
            let k = r.index(p.0);
            match c.func.as_str() {
                "clamp_min" => p.1 = go_max(p.1, a[k]),
                "clamp_max" => p.1 = go_min(p.1, a[k]),
                _ => {
                    if b[k] < a[k] {
                        return false;
                    }
                    p.1 = go_max(a[k], go_min(b[k], p.1));
                }
            }
            true
        });
    }
    v.retain(|s| !s.points.is_empty());
    Ok(Val::Vector(v))
}

/// Go's `math.Max`: +Inf wins over NaN, otherwise NaN wins.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: -Inf wins over NaN, otherwise NaN wins.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else {
        a.min(b)
    }
}

fn sort(ev: &mut Ev<'_>, c: &Call, r: Rng) -> Result<Val> {
    let mut v = ev.eval_vector(arg(c, 0)?, r)?;
    let mut names = Vec::new();
    for a in &c.args[1..] {
        names.push(ev.eval_string(a, r)?);
    }
    // Order only means something for instant queries; range results are sorted by labels.
    if ev.qstep != 0 {
        ev.warnings.push(
            "PromQL warning: sort is ineffective for range queries since results are always ordered by labels".to_string(),
        );
    }
    if r.len() != 1 {
        return Ok(Val::Vector(v));
    }
    let value = |s: &RSeries| s.points[0].1;
    match c.func.as_str() {
        // compat: NaN sorts last in both directions.
        "sort" => v.sort_by(|a, b| cmp_nan_last(value(a), value(b), false)),
        "sort_desc" => v.sort_by(|a, b| cmp_nan_last(value(a), value(b), true)),
        f => {
            let desc = f == "sort_by_label_desc";
            v.sort_by(|a, b| {
                let o = names
                    .iter()
                    .map(|n| natural_cmp(a.labels.get_or_empty(n), b.labels.get_or_empty(n)))
                    .find(|o| o.is_ne())
                    .unwrap_or_else(|| a.labels.cmp(&b.labels));
                if desc { o.reverse() } else { o }
            });
        }
    }
    Ok(Val::Vector(v))
}

fn cmp_nan_last(a: f64, b: f64, desc: bool) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ if desc => b.total_cmp(&a),
        _ => a.total_cmp(&b),
    }
}

/// Compares strings with runs of digits compared as numbers ("a2" < "a10").
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let dx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let dy = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let nx = trim_zeros(&x[..dx]);
                let ny = trim_zeros(&y[..dy]);
                let o = nx
                    .len()
                    .cmp(&ny.len())
                    .then_with(|| nx.cmp(ny))
                    .then_with(|| dx.cmp(&dy));
                if o.is_ne() {
                    return o;
                }
                x = &x[dx..];
                y = &y[dy..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

/// Re-keys the series of `v` by new label sets, merging series that end up equal (an error if
/// two have a value at the same step).
fn relabel(v: Vec<RSeries>, mut f: impl FnMut(&RSeries) -> (Labels, bool)) -> Result<Vec<RSeries>> {
    let mut out = Builder::new();
    let mut points: Vec<(i64, Labels, bool, f64)> = Vec::new();
    for s in &v {
        let (labels, drop) = f(s);
        for &(t, x) in &s.points {
            points.push((t, labels.clone(), drop, x));
        }
    }
    // The builder wants each series' points in time order; a stable sort by time keeps series order.
    points.sort_by_key(|p| p.0);
    for (t, l, d, x) in points {
        out.push(&l, d, t, x)?;
    }
    Ok(out.out)
}

fn label_replace(ev: &mut Ev<'_>, c: &Call, r: Rng) -> Result<Val> {
    let v = ev.eval_vector(arg(c, 0)?, r)?;
    let dst = ev.eval_string(arg(c, 1)?, r)?;
    let repl = ev.eval_string(arg(c, 2)?, r)?;
    let src = ev.eval_string(arg(c, 3)?, r)?;
    let re_src = ev.eval_string(arg(c, 4)?, r)?;
    let Ok(re) = GoRegex::new(&re_src) else {
        return eval_err(format!(
            "invalid regular expression in label_replace(): {re_src}"
        ));
    };
    if dst.is_empty() {
        return eval_err(format!(
            "invalid destination label name in label_replace(): {dst}"
        ));
    }
    let out = relabel(v, |s| match re.captures(s.labels.get_or_empty(&src)) {
        Some(caps) => {
            let mut b = s.labels.builder();
            b.set(dst.clone(), caps.expand(&repl));
            (b.labels(), s.drop_name && dst != METRIC_NAME)
        }
        None => (s.labels.clone(), s.drop_name),
    })?;
    Ok(Val::Vector(out))
}

fn label_join(ev: &mut Ev<'_>, c: &Call, r: Rng) -> Result<Val> {
    let v = ev.eval_vector(arg(c, 0)?, r)?;
    let dst = ev.eval_string(arg(c, 1)?, r)?;
    let sep = ev.eval_string(arg(c, 2)?, r)?;
    let mut srcs = Vec::new();
    for a in c.args.iter().skip(3) {
        srcs.push(ev.eval_string(a, r)?);
    }
    if dst.is_empty() {
        return eval_err(format!(
            "invalid destination label name in label_join(): {dst}"
        ));
    }
    let out = relabel(v, |s| {
        let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get_or_empty(n)).collect();
        let mut b = s.labels.builder();
        b.set(dst.clone(), joined.join(&sep));
        (b.labels(), s.drop_name && dst != METRIC_NAME)
    })?;
    Ok(Val::Vector(out))
}

/// The labels `absent()` reports: those of the selector's equality matchers.
fn absent_labels(e: &Expr) -> Labels {
    let vs = match unwrap_parens(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let mut b = model::LabelsBuilder::new();
    let mut seen: Vec<&str> = Vec::new();
    for m in &vs.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.kind == model::MatchType::Equal && !seen.contains(&m.name.as_str()) {
            b.set(m.name.clone(), m.value.clone());
            seen.push(&m.name);
        } else {
            b.del(&m.name);
        }
    }
    b.labels()
}

fn absent_points(present: &[bool], r: Rng) -> Vec<(i64, f64)> {
    (0..r.len())
        .filter(|&k| !present[k])
        .map(|k| (r.ts(k), 1.0))
        .collect()
}

fn absent(ev: &mut Ev<'_>, c: &Call, r: Rng) -> Result<Val> {
    let a = arg(c, 0)?;
    let v = ev.eval_vector(a, r)?;
    let mut present = vec![false; r.len()];
    for s in &v {
        for &(t, _) in &s.points {
            present[r.index(t)] = true;
        }
    }
    ev.release(&v);
    let points = absent_points(&present, r);
    if points.is_empty() {
        return Ok(Val::Vector(Vec::new()));
    }
    Ok(Val::Vector(vec![RSeries {
        labels: absent_labels(a),
        drop_name: false,
        points,
    }]))
}

fn absent_over_time(ev: &mut Ev<'_>, c: &Call, r: Rng) -> Result<Val> {
    let a = arg(c, 0)?;
    let mut present = vec![false; r.len()];
    let mark = |k: usize, _: i64, _: i64, _: &[(i64, f64)], _: WinInfo| {
        present[k] = true;
        Ok(None)
    };
    let v = match ev.stats.as_ref().map(|c| c.windows(r)) {
        None => ev.map_windows(a, r, false, mark)?,
        Some(counts) => {
            let v = ev.map_windows(a, r, false, counts.wrap(mark))?;
            ev.count_windows(counts);
            v
        }
    };
    ev.release(&v);
    let points = absent_points(&present, r);
    if points.is_empty() {
        return Ok(Val::Vector(Vec::new()));
    }
    Ok(Val::Vector(vec![RSeries {
        labels: absent_labels(a),
        drop_name: false,
        points,
    }]))
}

fn range_func(ev: &mut Ev<'_>, c: &Call, r: Rng) -> Result<Vec<RSeries>> {
    let name = c.func.as_str();
    // The range argument's position and the scalar arguments around it.
    let (range_arg, scalars) = match name {
        "quantile_over_time" => (arg(c, 1)?, vec![ev.eval_scalar(arg(c, 0)?, r)?]),
        "predict_linear" => (arg(c, 0)?, vec![ev.eval_scalar(arg(c, 1)?, r)?]),
        "double_exponential_smoothing" | "holt_winters" => (
            arg(c, 0)?,
            vec![
                ev.eval_scalar(arg(c, 1)?, r)?,
                ev.eval_scalar(arg(c, 2)?, r)?,
            ],
        ),
        _ => (arg(c, 0)?, vec![]),
    };
    if let Some(out) = ev.extended_range(name, range_arg, r)? {
        return Ok(out);
    }
    if matches!(name, "double_exponential_smoothing" | "holt_winters") {
        // Prometheus 2.42's holt_winters prints the factor with Go's `%f`.
        let show = |v: f64| {
            if name == "holt_winters" && v.is_finite() {
                format!("{v:.6}")
            } else {
                format_go_float(v)
            }
        };
        for (&sf, &tf) in scalars[0].iter().zip(&scalars[1]) {
            if !(sf > 0.0 && sf < 1.0) {
                return eval_err(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                    show(sf)
                ));
            }
            if !(tf > 0.0 && tf < 1.0) {
                return eval_err(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                    show(tf)
                ));
            }
        }
    }
    let keep_name = matches!(name, "last_over_time" | "first_over_time");
    let warn_q = std::sync::atomic::AtomicBool::new(false);
    // Many series run on several threads, each with its own copy of the window function.
    let (scalars_ref, warn_ref) = (&scalars, &warn_q);
    // The function is resolved once, not compared by name at every window.
    let Some(func) = RangeFn::from_name(name) else {
        return eval_err(format!("unknown function {name:?}"));
    };
    let make = || {
        // One buffer for the windows' values, reused at every step (no allocation per window).
        let mut scratch: Vec<f64> = Vec::new();
        move |k: usize, t: i64, range: i64, w: &[(i64, f64)], info: WinInfo| {
            let resets = info.resets;
            let p = |i: usize| scalars_ref[i][k];
            let buf = &mut scratch;
            Ok(match func {
                RangeFn::Rate => stats::extrapolated_rate(w, t - range, t, resets, true, true),
                RangeFn::Increase => stats::extrapolated_rate(w, t - range, t, resets, true, false),
                RangeFn::Delta => stats::extrapolated_rate(w, t - range, t, 0, false, false),
                RangeFn::Irate => stats::instant_value(w, true),
                RangeFn::Idelta => stats::instant_value(w, false),
                RangeFn::Deriv => (w.len() >= 2).then(|| stats::linear_regression(w, w[0].0).0),
                RangeFn::PredictLinear => (w.len() >= 2).then(|| {
                    let (slope, intercept) = stats::linear_regression(w, r.ts(k));
                    slope * p(0) + intercept
                }),
                RangeFn::Resets => Some(resets as f64),
                RangeFn::Changes => Some(
                    w.windows(2)
                        .filter(|x| x[1].1 != x[0].1 && !(x[1].1.is_nan() && x[0].1.is_nan()))
                        .count() as f64,
                ),
                RangeFn::AvgOverTime => Some(match info.exact_sum {
                    Some(s) => s / w.len() as f64,
                    None => stats::mean_window(w),
                }),
                RangeFn::MinOverTime => Some(stats::min(values(buf, w))),
                RangeFn::MaxOverTime => Some(stats::max(values(buf, w))),
                RangeFn::SumOverTime => {
                    Some(info.exact_sum.unwrap_or_else(|| stats::sum_window(w)))
                }
                RangeFn::CountOverTime => Some(w.len() as f64),
                RangeFn::QuantileOverTime => {
                    if !(0.0..=1.0).contains(&p(0)) {
                        warn_ref.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    Some(quantile(p(0), values(buf, w)))
                }
                RangeFn::StddevOverTime => Some(stats::variance(values(buf, w)).sqrt()),
                RangeFn::StdvarOverTime => Some(stats::variance(values(buf, w))),
                RangeFn::LastOverTime => w.last().map(|s| s.1),
                RangeFn::FirstOverTime => w.first().map(|s| s.1),
                RangeFn::PresentOverTime => Some(1.0),
                RangeFn::MadOverTime => Some(stats::mad(values(buf, w))),
                RangeFn::TsOfMinOverTime => Some(stats::ts_of_extreme(w, |a, b| a < b)),
                RangeFn::TsOfMaxOverTime => Some(stats::ts_of_extreme(w, |a, b| a > b)),
                RangeFn::TsOfFirstOverTime => w.first().map(|s| s.0 as f64 / 1000.0),
                RangeFn::TsOfLastOverTime => w.last().map(|s| s.0 as f64 / 1000.0),
                RangeFn::DoubleExponentialSmoothing => {
                    stats::double_exponential_smoothing(w, p(0), p(1))
                }
            })
        }
    };
    // sum_over_time and avg_over_time use the window's running sum when it is exact.
    // rate, increase and resets need the window's counter resets.
    let track = Track {
        sum: matches!(func, RangeFn::AvgOverTime | RangeFn::SumOverTime),
        resets: matches!(func, RangeFn::Rate | RangeFn::Increase | RangeFn::Resets),
        rate: None,
    };
    // With statistics on, each window's samples are counted (`engine/stats.rs`).
    let out = match ev.stats.as_ref().map(|c| c.windows(r)) {
        None => {
            // rate, increase and delta are computed by the window itself (see
            // `engine::slide_rate`) when nothing needs to see each window.
            let rate = match func {
                RangeFn::Rate => Some((true, true)),
                RangeFn::Increase => Some((true, false)),
                RangeFn::Delta => Some((false, false)),
                _ => None,
            };
            ev.map_windows_par(range_arg, r, keep_name, Track { rate, ..track }, make)?
        }
        Some(counts) => {
            let wrapped = || counts.wrap(make());
            let out = ev.map_windows_par(range_arg, r, keep_name, track, wrapped)?;
            ev.count_windows(counts);
            out
        }
    };
    if warn_q.into_inner()
        && let Some(q) = scalars
            .first()
            .and_then(|q| q.iter().find(|q| !(0.0..=1.0).contains(*q)))
    {
        ev.warnings.push(format!(
            "PromQL warning: quantile value should be between 0 and 1, got {}",
            format_go_float(*q)
        ));
    }
    Ok(out)
}

/// The range functions [`range_func`] evaluates itself.
#[derive(Debug, Clone, Copy)]
enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    Resets,
    Changes,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    SumOverTime,
    CountOverTime,
    QuantileOverTime,
    StddevOverTime,
    StdvarOverTime,
    LastOverTime,
    FirstOverTime,
    PresentOverTime,
    MadOverTime,
    TsOfMinOverTime,
    TsOfMaxOverTime,
    TsOfFirstOverTime,
    TsOfLastOverTime,
    DoubleExponentialSmoothing,
}

impl RangeFn {
    fn from_name(name: &str) -> Option<RangeFn> {
        Some(match name {
            "rate" => RangeFn::Rate,
            "increase" => RangeFn::Increase,
            "delta" => RangeFn::Delta,
            "irate" => RangeFn::Irate,
            "idelta" => RangeFn::Idelta,
            "deriv" => RangeFn::Deriv,
            "predict_linear" => RangeFn::PredictLinear,
            "resets" => RangeFn::Resets,
            "changes" => RangeFn::Changes,
            "avg_over_time" => RangeFn::AvgOverTime,
            "min_over_time" => RangeFn::MinOverTime,
            "max_over_time" => RangeFn::MaxOverTime,
            "sum_over_time" => RangeFn::SumOverTime,
            "count_over_time" => RangeFn::CountOverTime,
            "quantile_over_time" => RangeFn::QuantileOverTime,
            "stddev_over_time" => RangeFn::StddevOverTime,
            "stdvar_over_time" => RangeFn::StdvarOverTime,
            "last_over_time" => RangeFn::LastOverTime,
            "first_over_time" => RangeFn::FirstOverTime,
            "present_over_time" => RangeFn::PresentOverTime,
            "mad_over_time" => RangeFn::MadOverTime,
            "ts_of_min_over_time" => RangeFn::TsOfMinOverTime,
            "ts_of_max_over_time" => RangeFn::TsOfMaxOverTime,
            "ts_of_first_over_time" => RangeFn::TsOfFirstOverTime,
            "ts_of_last_over_time" => RangeFn::TsOfLastOverTime,
            "double_exponential_smoothing" | "holt_winters" => RangeFn::DoubleExponentialSmoothing,
            _ => return None,
        })
    }
}

/// The values of window `w`, in `buf`.
fn values<'a>(buf: &'a mut Vec<f64>, w: &[(i64, f64)]) -> &'a mut [f64] {
    buf.clear();
    buf.extend(w.iter().map(|s| s.1));
    buf
}

fn histogram_quantile(ev: &mut Ev<'_>, c: &Call, r: Rng) -> Result<Val> {
    let q = ev.eval_scalar(arg(c, 0)?, r)?;
    warn_quantiles(ev, q.iter());
    let v = ev.eval_vector(arg(c, 1)?, r)?;
    classic_buckets(ev, v, r, None, |k, b| {
        let (value, forced) = stats::bucket_quantile(q[k], b);
        (vec![(None, value)], forced)
    })
}

fn histogram_quantiles(ev: &mut Ev<'_>, c: &Call, r: Rng) -> Result<Val> {
    let v = ev.eval_vector(arg(c, 0)?, r)?;
    let label = ev.eval_string(arg(c, 1)?, r)?;
    let mut qs = Vec::new();
    for a in c.args.iter().skip(2) {
        qs.push(ev.eval_scalar(a, r)?);
    }
    warn_quantiles(ev, qs.iter().flatten());
    classic_buckets(ev, v, r, Some(&label), |k, b| {
        let mut forced = false;
        let out = qs
            .iter()
            .map(|q| {
                let (value, f) = stats::bucket_quantile(q[k], &mut b.clone());
                forced |= f;
                (Some(format_label_float(q[k])), value)
            })
            .collect();
        (out, forced)
    })
}

fn histogram_fraction(ev: &mut Ev<'_>, c: &Call, r: Rng) -> Result<Val> {
    let lower = ev.eval_scalar(arg(c, 0)?, r)?;
    let upper = ev.eval_scalar(arg(c, 1)?, r)?;
    let v = ev.eval_vector(arg(c, 2)?, r)?;
    classic_buckets(ev, v, r, None, |k, b| {
        let (value, forced) = stats::bucket_fraction(lower[k], upper[k], b);
        (vec![(None, value)], forced)
    })
}

fn warn_quantiles<'a>(ev: &mut Ev<'_>, mut qs: impl Iterator<Item = &'a f64>) {
    if let Some(q) = qs.find(|q| !(0.0..=1.0).contains(*q)) {
        ev.warnings.push(format!(
            "PromQL warning: quantile value should be between 0 and 1, got {}",
            format_go_float(*q)
        ));
    }
}

/// A float as Prometheus writes it into `le` and `quantile` labels: integers get a `.0`.
pub(crate) fn format_label_float(v: f64) -> String {
    let s = format_go_float(v);
    if v.is_finite() && !s.contains(['.', 'e']) {
        format!("{s}.0")
    } else {
        s
    }
}

/// Groups classic histogram buckets (series that differ only in `le`) and calls `f` with each
/// group's `(upper bound, count)` buckets per step. `f` returns the outputs (with a value for
/// `label` when given) and whether the buckets had to be made monotonic.
fn classic_buckets(
    ev: &mut Ev<'_>,
    v: Vec<RSeries>,
    r: Rng,
    label: Option<&str>,
    mut f: impl FnMut(usize, &mut Vec<(f64, f64)>) -> (Vec<(Option<String>, f64)>, bool),
) -> Result<Val> {
    // Per input series: its bucket bound and group (the labels without `le`), computed once.
    let mut groups: Vec<Labels> = Vec::new();
    let mut index = std::collections::HashMap::new();
    let mut member: Vec<Option<(usize, f64)>> = Vec::with_capacity(v.len());
    for s in &v {
        let le = s.labels.get_or_empty(model::labels::BUCKET_LABEL);
        let Some(bound) = parse_go_float(le) else {
            ev.warnings.push(format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {:?}",
                s.labels.get_or_empty(METRIC_NAME)
            ));
            member.push(None);
            continue;
        };
        let mut b = s.labels.builder();
        b.del(model::labels::BUCKET_LABEL);
        let key = b.labels();
        let g = *index.entry(key.clone()).or_insert_with(|| {
            groups.push(key);
            groups.len() - 1
        });
        member.push(Some((g, bound)));
    }
    let mut out = Builder::new();
    let mut walker = StepWalker::new(&v);
    let mut step = Vec::new();
    let mut buckets: Vec<Vec<(f64, f64)>> = vec![Vec::new(); groups.len()];
    for k in 0..r.len() {
        let t = r.ts(k);
        walker.step(t, &mut step);
        let mut order = Vec::new();
        for &(i, x) in &step {
            if let Some((g, bound)) = member[i] {
                if buckets[g].is_empty() {
                    order.push(g);
                }
                buckets[g].push((bound, x));
            }
        }
        for g in order {
            let (values, forced) = f(k, &mut buckets[g]);
            if forced {
                ev.infos.push(format!(
                    "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {:?}",
                    groups[g].get_or_empty(METRIC_NAME)
                ));
            }
            for (lv, value) in values {
                match (label, lv) {
                    (Some(l), Some(lv)) => {
                        let mut b = groups[g].builder();
                        b.set(l, lv);
                        out.push(&b.labels(), true, t, value)?;
                    }
                    _ => out.push(&groups[g], true, t, value)?,
                }
            }
            buckets[g].clear();
        }
    }
    ev.release(&v);
    Ok(Val::Vector(out.out))
}

/// Go's `strconv.ParseFloat` for the spellings Prometheus writes (`+Inf`, `1e3`, `0.5`).
pub fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => {
            return Some(if t.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if let Some(hex) = lower
        .strip_prefix("0x")
        .or_else(|| lower.strip_prefix("+0x"))
    {
        return i64::from_str_radix(hex, 16).ok().map(|v| v as f64);
    }
    if let Some(hex) = lower.strip_prefix("-0x") {
        return i64::from_str_radix(hex, 16).ok().map(|v| -(v as f64));
    }
    if t.is_empty() || t.contains(['i', 'I', 'n', 'N']) {
        return None;
    }
    t.parse::<f64>().ok()
}

#[cfg(test)]
mod tests;
