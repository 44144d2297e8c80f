//! Numeric kernels shared by aggregations and `*_over_time` functions.

/// One step of Kahan-Neumaier compensated summation: returns the new sum and compensation.
pub(crate) fn kahan_add(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        // An infinite sum makes the compensation meaningless (and would turn into NaN).
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// [`kahan_add`] without its infinity check: the same result whenever the new sum is finite.
/// Loops that use it check the final sum and redo the work with [`kahan_add`] when it is not
/// finite (a sum that became infinite or NaN never turns finite again).
#[inline(always)]
fn kahan_add_finite(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let (big, small) = if sum.abs() >= inc.abs() {
        (sum, inc)
    } else {
        (inc, sum)
    };
    (t, c + ((big - t) + small))
}

pub(crate) fn sum(vals: &[f64]) -> f64 {
    sum_of(vals.iter().copied())
}

/// [`sum`] of the values of a window.
pub(crate) fn sum_window(w: &[(i64, f64)]) -> f64 {
    sum_of(w.iter().map(|s| s.1))
}

fn sum_of(vals: impl Iterator<Item = f64> + Clone) -> f64 {
    let (mut s, mut c) = (0.0, 0.0);
    for v in vals.clone() {
        (s, c) = kahan_add_finite(v, s, c);
    }
    if s.is_finite() {
        return s + c;
    }
    let (mut s, mut c) = (0.0, 0.0);
    for v in vals {
        (s, c) = kahan_add(v, s, c);
    }
    s + c
}

/// The mean: a compensated sum divided by the count, switching to an incremental mean only if
/// the sum would overflow (so large finite inputs still give a finite mean).
pub(crate) fn mean(vals: &[f64]) -> f64 {
    mean_of(vals.iter().copied(), vals.len())
}

/// [`mean`] of the values of a window.
pub(crate) fn mean_window(w: &[(i64, f64)]) -> f64 {
    mean_of(w.iter().map(|s| s.1), w.len())
}

fn mean_of(vals: impl Iterator<Item = f64> + Clone, n: usize) -> f64 {
    // Fast path: while the compensated sum stays finite, the fold below computes exactly this
    // (an infinite or NaN sum never turns finite again, so checking the end is enough).
    let mut it = vals.clone();
    if let Some(first) = it.next() {
        let (mut s, mut c) = (first, 0.0);
        for v in it {
            (s, c) = kahan_add_finite(v, s, c);
        }
        if s.is_finite() {
            return (s + c) / n as f64;
        }
    }
    let mut acc = MeanAcc::default();
    for v in vals {
        acc.add(v);
    }
    acc.value()
}

/// [`mean`] one value at a time (aggregations fold their input series by series).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MeanAcc {
    n: u64,
    s: f64,
    c: f64,
    incremental: bool,
    m: f64,
    mc: f64,
}

impl MeanAcc {
    pub(crate) fn add(&mut self, v: f64) {
        self.n += 1;
        if self.n == 1 {
            self.s = v;
            return;
        }
        let n = self.n as f64;
        if !self.incremental {
            let (s2, c2) = kahan_add(v, self.s, self.c);
            if !s2.is_infinite() {
                (self.s, self.c) = (s2, c2);
                return;
            }
            self.incremental = true;
            self.m = self.s / (n - 1.0);
            self.mc = self.c / (n - 1.0);
        }
        if self.m.is_infinite() {
            if v.is_infinite() && (self.m > 0.0) == (v > 0.0) {
                return;
            }
            if v.is_finite() {
                return;
            }
        }
        let cur = self.m + self.mc;
        (self.m, self.mc) = kahan_add(v / n - cur / n, self.m, self.mc);
    }

    pub(crate) fn value(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else if self.incremental {
            self.m + self.mc
        } else {
            (self.s + self.c) / self.n as f64
        }
    }
}

/// Population variance (Welford's method with compensated sums).
pub(crate) fn variance(vals: &[f64]) -> f64 {
    let mut acc = VarAcc::default();
    for &v in vals {
        acc.add(v);
    }
    acc.value()
}

/// [`variance`] one value at a time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct VarAcc {
    n: f64,
    m: f64,
    mc: f64,
    aux: f64,
    ac: f64,
}

impl VarAcc {
    pub(crate) fn add(&mut self, v: f64) {
        self.n += 1.0;
        let delta = v - (self.m + self.mc);
        (self.m, self.mc) = kahan_add(delta / self.n, self.m, self.mc);
        (self.aux, self.ac) = kahan_add(delta * (v - (self.m + self.mc)), self.aux, self.ac);
    }

    pub(crate) fn value(&self) -> f64 {
        (self.aux + self.ac) / self.n
    }
}

/// Minimum where a NaN is replaced by any later value (Prometheus's `min`).
pub(crate) fn min(vals: &[f64]) -> f64 {
    let mut out = vals.first().copied().unwrap_or(f64::NAN);
    for &v in vals.iter().skip(1) {
        if v < out || out.is_nan() {
            out = v;
        }
    }
    out
}

pub(crate) fn max(vals: &[f64]) -> f64 {
    let mut out = vals.first().copied().unwrap_or(f64::NAN);
    for &v in vals.iter().skip(1) {
        if v > out || out.is_nan() {
            out = v;
        }
    }
    out
}

/// The φ-quantile with linear interpolation between closest ranks; -Inf/+Inf outside [0, 1].
/// Sorts `vals` in place.
pub fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // compat: Go's sort.Float64s puts NaN first.
    vals.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = vals.len();
    let rank = q * (n - 1) as f64;
    let lower = rank.floor().max(0.0) as usize;
    let upper = (lower + 1).min(n - 1);
    let weight = rank - rank.floor();
    vals[lower] * (1.0 - weight) + vals[upper] * weight
}

/// Median absolute deviation.
pub(crate) fn mad(vals: &[f64]) -> f64 {
    if vals.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let mut v = vals.to_vec();
    let median = quantile(0.5, &mut v);
    let mut dev: Vec<f64> = vals.iter().map(|x| (x - median).abs()).collect();
    quantile(0.5, &mut dev)
}

/// Timestamp (seconds) of the first sample that is extreme by `better`.
pub(crate) fn ts_of_extreme(w: &[(i64, f64)], better: impl Fn(f64, f64) -> bool) -> f64 {
    let mut best = w[0];
    for &s in &w[1..] {
        if better(s.1, best.1) || best.1.is_nan() && !s.1.is_nan() {
            best = s;
        }
    }
    best.0 as f64 / 1000.0
}

/// `rate`, `increase` and `delta`: the change over the window, corrected for counter resets
/// when `counter`, extrapolated towards the window's edges (`(start, end]`, ms) as Prometheus
/// does, and divided by the range in seconds when `per_second`. `resets` is the number of
/// decreasing adjacent pairs in `w` (the window keeps count); with none, the scan for them is
/// skipped.
pub(crate) fn extrapolated_rate(
    w: &[(i64, f64)],
    start: i64,
    end: i64,
    resets: usize,
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    let win = RateWindow::of(w, resets, counter)?;
    Some(win.extrapolate(start, end, counter, per_second))
}

/// What [`extrapolated_rate`] needs of a window: its first sample, last timestamp, length and
/// reset-corrected change.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RateWindow {
    pub first: (i64, f64),
    pub last_t: i64,
    /// Samples in the window (at least 2).
    pub n: usize,
    /// The change over the window, reset-corrected for counters.
    pub result: f64,
}

impl RateWindow {
    /// `None` for fewer than two samples.
    #[inline]
    pub(crate) fn of(w: &[(i64, f64)], resets: usize, counter: bool) -> Option<RateWindow> {
        if w.len() < 2 {
            return None;
        }
        let (first, last) = (w[0], w[w.len() - 1]);
        let mut result = last.1 - first.1;
        if counter && resets > 0 {
            for pair in w.windows(2) {
                if pair[1].1 < pair[0].1 {
                    result += pair[0].1;
                }
            }
        }
        Some(RateWindow {
            first,
            last_t: last.0,
            n: w.len(),
            result,
        })
    }

    /// [`RateWindow::extrapolate`] reusing the factor of an earlier window of the same shape
    /// (the same distances from the window's start to its first sample and from its first to
    /// its last, the same number of samples, the same range): with regular scrapes almost
    /// every window has the shape of the one before, and the factor's four divisions are most
    /// of a window's cost. The factor is only reused, and only kept, when the counter-at-zero
    /// limit surely does not apply (it depends on the values, not on the shape): bit for bit
    /// what [`RateWindow::extrapolate`] gives.
    #[inline(always)]
    pub(crate) fn extrapolate_cached(
        &self,
        start: i64,
        end: i64,
        counter: bool,
        per_second: bool,
        cache: &mut FactorCache,
    ) -> f64 {
        let (first, result) = (self.first, self.result);
        let span = self.last_t - first.0;
        if counter && result > 0.0 && first.1 >= 0.0 {
            // The limit moves the start to where the counter would reach zero,
            // `span * first / result`, when that is before the extrapolated start, which is at
            // most `max(first - start, span)` (half an average gap is less than the span).
            // Both sides as products with a factor 2 to spare for rounding; anything not
            // clearly on the safe side is computed in full.
            let bound = 2.0 * (first.0 - start).max(span) as f64 * result;
            let zero = first.1 * span as f64;
            if !(bound.is_normal() && zero.is_finite() && zero >= bound) {
                return self.extrapolate(start, end, counter, per_second);
            }
        }
        let shape = (first.0 - start, span, self.n, end - start);
        if cache.shape != Some(shape) {
            cache.factor = self.factor(start, end, false, per_second);
            cache.shape = Some(shape);
        }
        result * cache.factor
    }

    #[inline(always)]
    pub(crate) fn extrapolate(&self, start: i64, end: i64, counter: bool, per_second: bool) -> f64 {
        self.result * self.factor(start, end, counter, per_second)
    }

    /// What the window's change is multiplied by: the extrapolation to the window's edges,
    /// per second when `per_second`; `counter` limits the extrapolation at the start to where
    /// the counter would reach zero.
    #[inline(always)]
    fn factor(&self, start: i64, end: i64, counter: bool, per_second: bool) -> f64 {
        let (first, result) = (self.first, self.result);
        let sampled = (self.last_t - first.0) as f64 / 1000.0;
        let avg_gap = sampled / (self.n - 1) as f64;
        let mut to_start = (first.0 - start) as f64 / 1000.0;
        let mut to_end = (end - self.last_t) as f64 / 1000.0;
        // Extrapolate to an edge only if the series seems to continue there: the gap to the
        // edge is within 110% of the average gap between samples; otherwise assume the series
        // starts or ends half an average gap beyond its outermost sample.
        let threshold = avg_gap * 1.1;
        if to_start >= threshold {
            to_start = avg_gap / 2.0;
        }
        if counter && result > 0.0 && first.1 >= 0.0 {
            // A counter cannot go below zero: do not extrapolate past the point where it would.
            let to_zero = sampled * (first.1 / result);
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
        if to_end >= threshold {
            to_end = avg_gap / 2.0;
        }
        let mut factor = (sampled + to_start + to_end) / sampled;
        if per_second {
            factor /= (end - start) as f64 / 1000.0;
        }
        factor
    }
}

/// The extrapolation factor of the last window of a slide and its shape (see
/// [`RateWindow::extrapolate_cached`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FactorCache {
    /// (first sample - window start, last - first sample, samples, range), ms.
    shape: Option<(i64, i64, usize, i64)>,
    factor: f64,
}

/// `irate` (`per_second`) and `idelta`: from the last two samples.
pub(crate) fn instant_value(w: &[(i64, f64)], per_second: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (prev, last) = (w[w.len() - 2], w[w.len() - 1]);
    let mut v = last.1 - prev.1;
    if per_second {
        if last.1 < prev.1 {
            // A counter reset: the counter restarted from zero.
            v = last.1;
        }
        let dt = (last.0 - prev.0) as f64 / 1000.0;
        if dt == 0.0 {
            return None;
        }
        v /= dt;
    }
    Some(v)
}

/// Least-squares fit of value over time (seconds relative to `t0` ms): `(slope, intercept)`.
pub(crate) fn linear_regression(w: &[(i64, f64)], t0: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let first = w[0].1;
    let mut constant = true;
    for &(t, v) in w {
        constant &= v == first;
        let x = (t - t0) as f64 / 1000.0;
        n += 1.0;
        (sx, cx) = kahan_add(x, sx, cx);
        (sy, cy) = kahan_add(v, sy, cy);
        (sxy, cxy) = kahan_add(x * v, sxy, cxy);
        (sx2, cx2) = kahan_add(x * x, sx2, cx2);
    }
    if constant && first.is_finite() {
        return (0.0, first);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    let intercept = sy / n - slope * sx / n;
    (slope, intercept)
}

/// Holt's linear trend smoothing; the smoothed value after the last sample.
pub(crate) fn double_exponential_smoothing(w: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let mut level = w[0].1;
    let mut trend = w[1].1 - w[0].1;
    let mut prev_level = 0.0;
    for (i, s) in w.iter().enumerate().skip(1) {
        if i > 1 {
            trend = tf * (level - prev_level) + (1.0 - tf) * trend;
        }
        prev_level = level;
        level = sf * s.1 + (1.0 - sf) * (level + trend);
    }
    Some(level)
}

/// `histogram_quantile` over classic buckets `(upper bound, cumulative count)`. Returns the
/// value and whether counts had to be made monotonic.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return (f64::NAN, false);
    }
    // Buckets with the same bound (e.g. "1" and "1.0") are one bucket.
    buckets.dedup_by(|cur, prev| {
        if cur.0 == prev.0 {
            prev.1 += cur.1;
            true
        } else {
            false
        }
    });
    let forced = make_monotonic(buckets);
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let total = buckets[buckets.len() - 1].1;
    if total == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * total;
    let b = go_search(buckets.len() - 1, |i| buckets[i].1 >= rank);
    if b == buckets.len() - 1 {
        return (buckets[buckets.len() - 2].0, forced);
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return (buckets[0].0, forced);
    }
    let end = buckets[b].0;
    let mut count = buckets[b].1;
    let mut start = 0.0;
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

/// `histogram_fraction` over classic buckets: the share of observations in `[lower, upper]`,
/// interpolating linearly inside finite buckets; inside a bucket of infinite width a bound snaps
/// to the bucket's finite edge.
pub(crate) fn bucket_fraction(
    lower: f64,
    upper: f64,
    buckets: &mut Vec<(f64, f64)>,
) -> (f64, bool) {
    if lower.is_nan() || upper.is_nan() {
        return (f64::NAN, false);
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return (f64::NAN, false);
    }
    buckets.dedup_by(|cur, prev| {
        if cur.0 == prev.0 {
            prev.1 += cur.1;
            true
        } else {
            false
        }
    });
    let forced = make_monotonic(buckets);
    let total = buckets[buckets.len() - 1].1;
    if total == 0.0 || total.is_nan() {
        return (f64::NAN, forced);
    }
    if lower >= upper {
        return (0.0, forced);
    }
    let rank = |x: f64| -> f64 {
        for (i, &(ub, count)) in buckets.iter().enumerate() {
            let (lb, prev) = match i {
                0 if ub > 0.0 => (0.0, 0.0),
                0 => (f64::NEG_INFINITY, 0.0),
                _ => buckets[i - 1],
            };
            if x <= lb {
                return prev;
            }
            if x >= ub {
                continue;
            }
            if lb.is_infinite() || ub.is_infinite() {
                // No interpolation in a bucket of infinite width: snap to its finite edge.
                return if lb.is_infinite() { count } else { prev };
            }
            return prev + (x - lb) / (ub - lb) * (count - prev);
        }
        total
    };
    let share = (rank(upper) - rank(lower)).max(0.0);
    (share / total, forced)
}

/// Raises counts that decrease to their predecessor; tiny differences (float noise, relative
/// 1e-12) are flattened without being reported.
/// Go's `sort.Search`: the first `i` in `0..n` for which `f(i)` holds, by its own bisection,
/// so that counts a NaN makes non-monotonic pick the same bucket as Prometheus
/// (`partition_point` bisects differently).
fn go_search(n: usize, f: impl Fn(usize) -> bool) -> usize {
    let (mut i, mut j) = (0, n);
    while i < j {
        let h = (i + j) / 2;
        if f(h) {
            j = h;
        } else {
            i = h + 1;
        }
    }
    i
}

fn make_monotonic(buckets: &mut [(f64, f64)]) -> bool {
    let mut forced = false;
    let Some(first) = buckets.first() else {
        return false;
    };
    let mut prev = first.1;
    for b in buckets.iter_mut().skip(1) {
        let cur = b.1;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) {
            b.1 = prev;
            continue;
        }
        if cur < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    forced
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || diff < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / (a.abs() + b.abs()).min(f64::MAX) < eps
}
