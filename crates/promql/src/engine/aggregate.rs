//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, `count_values`, ...), grouped by
//! `by`/`without`.

use std::collections::HashMap;

use model::Labels;
use model::labels::METRIC_NAME;

use super::{Builder, Ev, RSeries, Rng, StepWalker, Val, unwrap_parens};
use crate::ast::{AggOp, Aggregate, Expr, Grouping};
use crate::error::{Result, eval_err};
use crate::functions::{format_go_float, quantile, stats};

/// The labels that identify `l`'s group.
pub(crate) fn group_labels(l: &Labels, g: &Grouping) -> Labels {
    let mut b = l.builder();
    match g {
        Grouping::By(names) => b.retain(|n, _| names.iter().any(|x| x == n)),
        Grouping::Without(names) => {
            b.retain(|n, _| n != METRIC_NAME && !names.iter().any(|x| x == n))
        }
    };
    b.labels()
}

enum Param {
    None,
    Scalars(Vec<f64>),
    Label(String),
}

impl Ev<'_> {
    pub(crate) fn aggregate(&mut self, a: &Aggregate, r: Rng) -> Result<Val> {
        let param = match (&a.param, a.op) {
            (Some(p), AggOp::CountValues) => Param::Label(self.eval_string(p, r)?),
            (Some(p), _) => Param::Scalars(self.eval_scalar(p, r)?),
            (None, _) => Param::None,
        };
        if let Param::Label(l) = &param
            && !valid_label_name(l)
        {
            return eval_err(format!("invalid label name {l:?}"));
        }
        // `sum(rate(x[5m]))` and the like: the range function folds each batch of its output
        // into the groups' per-step state as it is produced, in the same series order, so the
        // rate series of a large select are never all held at once. The result is what
        // `fold_by_series` (or `simple`, which computes the same values) gives over the whole
        // input.
        if param_free_fold(a.op) && a.param.is_none() && fusable_arg(&a.expr) {
            self.fold = Some(Box::new(Fold::new(a.op, a.grouping.clone(), r)));
        }
        let input = self.eval_vector(&a.expr, r);
        let fold = self.fold.take();
        let input = input?;
        if let Some(f) = fold
            && f.used
        {
            #[cfg(test)]
            FUSED.with(|c| c.set(c.get() + 1));
            self.release(&input);
            self.budget.release(f.held);
            let out = f.finish();
            self.budget.add(super::points_in(&out))?;
            return Ok(Val::Vector(out));
        }
        // Group membership is per series, so it is computed once, not per step.
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut groups: Vec<(Labels, bool)> = Vec::new();
        let member: Vec<usize> = input
            .iter()
            .map(|s| {
                let key = group_labels(&s.labels, &a.grouping);
                let g = *index.entry(key.clone()).or_insert_with(|| {
                    groups.push((key, false));
                    groups.len() - 1
                });
                groups[g].1 |= s.drop_name;
                g
            })
            .collect();
        let out = match a.op {
            AggOp::Topk | AggOp::Bottomk => {
                self.top_k(a.op, &input, &member, groups.len(), &param, r)?
            }
            AggOp::Limitk | AggOp::LimitRatio => {
                let Param::Scalars(p) = &param else {
                    return eval_err("limitk and limit_ratio need a parameter");
                };
                self.limit(a.op, &input, &member, groups.len(), p, r)?
            }
            // Reducing aggregations fold each input series into its group's per-step state, so
            // the input is read series by series (in order, so the result is the same as
            // step by step) instead of visiting every series at every step. The state costs
            // more per cell than a point, hence only when the output is much smaller.
            op @ (AggOp::Sum
            | AggOp::Avg
            | AggOp::Count
            | AggOp::Group
            | AggOp::Min
            | AggOp::Max
            | AggOp::Stddev
            | AggOp::Stdvar)
                if groups.len() * 4 <= input.len() =>
            {
                self.fold_by_series(op, &input, &member, &groups, r)?
            }
            _ => self.simple(a.op, &input, &member, &groups, &param, r)?,
        };
        self.release(&input);
        self.budget.add(super::points_in(&out))?;
        Ok(Val::Vector(out))
    }

    fn simple(
        &mut self,
        op: AggOp,
        input: &[RSeries],
        member: &[usize],
        groups: &[(Labels, bool)],
        param: &Param,
        r: Rng,
    ) -> Result<Vec<RSeries>> {
        let mut out = Builder::new();
        let mut walker = StepWalker::new(input);
        let mut step = Vec::new();
        let mut vals: Vec<Vec<f64>> = vec![Vec::new(); groups.len()];
        let mut order: Vec<usize> = Vec::new();
        for k in 0..r.len() {
            self.tick()?;
            let t = r.ts(k);
            walker.step(t, &mut step);
            order.clear();
            for &(i, v) in &step {
                let g = member[i];
                if vals[g].is_empty() {
                    order.push(g);
                }
                vals[g].push(v);
            }
            if op == AggOp::Quantile
                && let Param::Scalars(q) = param
                && !(0.0..=1.0).contains(&q[k])
                && !order.is_empty()
            {
                self.warnings.push(format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {}",
                    format_go_float(q[k])
                ));
            }
            for &g in &order {
                let (labels, drop) = &groups[g];
                if let Param::Label(name) = param {
                    let mut counts: Vec<(String, f64)> = Vec::new();
                    for v in &vals[g] {
                        let s = format_go_float(*v);
                        match counts.iter_mut().find(|c| c.0 == s) {
                            Some(c) => c.1 += 1.0,
                            None => counts.push((s, 1.0)),
                        }
                    }
                    for (s, n) in counts {
                        let mut b = labels.builder();
                        b.set(name.clone(), s);
                        out.push(&b.labels(), *drop, t, n)?;
                    }
                } else {
                    let p = match param {
                        Param::Scalars(p) => p[k],
                        _ => f64::NAN,
                    };
                    out.push(labels, *drop, t, aggregate_values(op, &vals[g], p))?;
                }
                vals[g].clear();
            }
        }
        Ok(out.out)
    }

    /// `sum`, `avg`, `count`, `group`, `min`, `max`, `stddev`, `stdvar` with one pass over the
    /// input series. Groups come out in the order a step-by-step walk creates them (by first
    /// step with a value, then by first input series).
    fn fold_by_series(
        &mut self,
        op: AggOp,
        input: &[RSeries],
        member: &[usize],
        groups: &[(Labels, bool)],
        r: Rng,
    ) -> Result<Vec<RSeries>> {
        let n = r.len();
        let mut accs: Vec<Vec<Acc>> = vec![Vec::new(); groups.len()];
        let mut first = vec![(usize::MAX, usize::MAX); groups.len()];
        for (i, s) in input.iter().enumerate() {
            self.tick()?;
            let g = member[i];
            let acc = &mut accs[g];
            if acc.is_empty() {
                acc.resize(n, Acc::Empty);
            }
            for &(t, v) in &s.points {
                let k = r.index(t);
                let Some(cell) = acc.get_mut(k) else {
                    return eval_err("internal error: aggregation input off the evaluation steps");
                };
                if k < first[g].0 {
                    first[g] = (k, i);
                }
                cell.add(op, v);
            }
        }
        let mut order: Vec<usize> = (0..groups.len())
            .filter(|&g| first[g].0 != usize::MAX)
            .collect();
        order.sort_unstable_by_key(|&g| first[g]);
        let mut out = Vec::with_capacity(order.len());
        for g in order {
            let acc = std::mem::take(&mut accs[g]);
            let points = acc
                .iter()
                .enumerate()
                .filter_map(|(k, a)| a.value(op).map(|v| (r.ts(k), v)))
                .collect();
            out.push(RSeries {
                labels: groups[g].0.clone(),
                drop_name: groups[g].1,
                points,
            });
        }
        Ok(out)
    }

    fn top_k(
        &mut self,
        op: AggOp,
        input: &[RSeries],
        member: &[usize],
        ngroups: usize,
        param: &Param,
        r: Rng,
    ) -> Result<Vec<RSeries>> {
        let Param::Scalars(ks) = param else {
            return eval_err("topk needs a parameter");
        };
        let mut out = Builder::new();
        let mut walker = StepWalker::new(input);
        let mut step = Vec::new();
        let mut by_group: Vec<Vec<(usize, f64)>> = vec![Vec::new(); ngroups];
        let mut order = Vec::new();
        for (k, &kf) in ks.iter().enumerate().take(r.len()) {
            self.tick()?;
            let t = r.ts(k);
            // Prometheus 2.42: a parameter that does not convert to int64 (NaN and beyond
            // ±2^63) fails, and the conversion of 2^63 itself wraps below 1.
            if !(-TWO_63..=TWO_63).contains(&kf) {
                return eval_err(format!("Scalar value {} overflows int64", go_v_float(kf)));
            }
            let n = if (1.0..TWO_63).contains(&kf) {
                kf as usize
            } else {
                0
            };
            walker.step(t, &mut step);
            order.clear();
            for &(i, v) in &step {
                let g = member[i];
                if by_group[g].is_empty() {
                    order.push(g);
                }
                by_group[g].push((i, v));
            }
            for &g in &order {
                let items = &mut by_group[g];
                // NaN sorts last for both, so it is only returned when nothing else is left;
                // equal values keep input order (the index breaks ties), so picking the first
                // `n` and sorting only those gives what a stable sort of all would.
                let cmp = |a: &(usize, f64), b: &(usize, f64)| {
                    let (x, y) = (a.1, b.1);
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if op == AggOp::Topk => y.total_cmp(&x),
                        _ => x.total_cmp(&y),
                    }
                    .then(a.0.cmp(&b.0))
                };
                if n == 0 {
                    items.clear();
                    continue;
                }
                if n < items.len() {
                    items.select_nth_unstable_by(n - 1, cmp);
                    items.truncate(n);
                }
                items.sort_unstable_by(cmp);
                for &(i, v) in items.iter() {
                    out.push(&input[i].labels, input[i].drop_name, t, v)?;
                }
                items.clear();
            }
        }
        Ok(out.out)
    }
}

/// Whether `op` folds series by series ([`Acc`]).
fn param_free_fold(op: AggOp) -> bool {
    matches!(
        op,
        AggOp::Sum
            | AggOp::Avg
            | AggOp::Count
            | AggOp::Group
            | AggOp::Min
            | AggOp::Max
            | AggOp::Stddev
            | AggOp::Stdvar
    )
}

#[cfg(test)]
thread_local! {
    /// Turns the streamed fold off, so tests can compare it with the materialised path.
    pub(crate) static NO_FUSE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Aggregations evaluated with the streamed fold on this thread.
    pub(crate) static FUSED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Whether an aggregation over `e` can take its input batch by batch: a one-argument range
/// function (no scalar parameter) over a plain matrix selector, whose output
/// [`Ev::map_windows_par`] produces in the storage's series order.
fn fusable_arg(e: &Expr) -> bool {
    #[cfg(test)]
    if NO_FUSE.with(|c| c.get()) {
        return false;
    }
    let Expr::Call(c) = unwrap_parens(e) else {
        return false;
    };
    let [arg] = c.args.as_slice() else {
        return false;
    };
    matches!(
        c.func.as_str(),
        "rate"
            | "increase"
            | "delta"
            | "irate"
            | "idelta"
            | "deriv"
            | "resets"
            | "changes"
            | "avg_over_time"
            | "min_over_time"
            | "max_over_time"
            | "sum_over_time"
            | "count_over_time"
            | "stddev_over_time"
            | "stdvar_over_time"
            | "last_over_time"
            | "present_over_time"
    ) && matches!(unwrap_parens(arg), Expr::MatrixSelector(ms) if ms.vs.modifier.is_none())
}

/// [`Ev::fold_by_series`] fed one series at a time: groups are found as series arrive, so the
/// input need not be held. Gives the same groups, order and values as `fold_by_series` over
/// the same series in the same order.
pub(crate) struct Fold {
    op: AggOp,
    grouping: Grouping,
    r: Rng,
    index: HashMap<Labels, usize>,
    groups: Vec<(Labels, bool)>,
    accs: Vec<Vec<Acc>>,
    first: Vec<(usize, usize)>,
    /// Series added so far (the input index of the next one).
    seen: usize,
    /// Whether a range function fed this fold (so its own output is empty).
    pub used: bool,
    /// Points of the range function's output folded so far. They stay counted against the
    /// query's sample limit until the aggregation is done, as if they had been held (Prometheus
    /// counts a range function's whole output), so folding batch by batch never lets a query
    /// pass the limit that the materialised evaluation would have hit.
    pub held: usize,
}

impl Fold {
    fn new(op: AggOp, grouping: Grouping, r: Rng) -> Self {
        Fold {
            op,
            grouping,
            r,
            index: HashMap::new(),
            groups: Vec::new(),
            accs: Vec::new(),
            first: Vec::new(),
            seen: 0,
            used: false,
            held: 0,
        }
    }

    /// The group of a series with labels `labels` (created, with a state for every step, at
    /// the first series of the group); `drop_name` is whether the series' name goes.
    pub fn group_of(&mut self, labels: &Labels, drop_name: bool) -> usize {
        let key = group_labels(labels, &self.grouping);
        let g = match self.index.get(&key) {
            Some(&g) => g,
            None => {
                self.index.insert(key.clone(), self.groups.len());
                self.groups.push((key, false));
                self.accs.push(vec![Acc::Empty; self.r.len()]);
                self.first.push((usize::MAX, usize::MAX));
                self.groups.len() - 1
            }
        };
        self.groups[g].1 |= drop_name;
        g
    }

    /// Numbers the next `n` input series: returns the first one's index.
    pub fn take_indices(&mut self, n: usize) -> usize {
        let i = self.seen;
        self.seen += n;
        i
    }

    pub fn op(&self) -> AggOp {
        self.op
    }

    pub fn groups_len(&self) -> usize {
        self.groups.len()
    }

    /// Every group's states split into the step ranges `ranges` (contiguous, from step 0):
    /// `out[j][g]` is group `g`'s states at the steps of `ranges[j]`, so each range can be
    /// folded on its own thread. Folding a step's values in input order gives the same
    /// result whichever thread folds which step.
    pub fn step_shares(&mut self, ranges: &[std::ops::Range<usize>]) -> Vec<Vec<&mut [Acc]>> {
        let mut out: Vec<Vec<&mut [Acc]>> = ranges
            .iter()
            .map(|_| Vec::with_capacity(self.accs.len()))
            .collect();
        for acc in &mut self.accs {
            let mut rest: &mut [Acc] = acc;
            for (j, ks) in ranges.iter().enumerate() {
                let (part, tail) = rest.split_at_mut(ks.len().min(rest.len()));
                out[j].push(part);
                rest = tail;
            }
        }
        out
    }

    /// Records that input series `i` of group `g` has a value at step `k`: groups come out
    /// ordered by their first step with a value, then by the first input series there.
    pub fn note_first(&mut self, g: usize, first: (usize, usize)) {
        if let Some(f) = self.first.get_mut(g)
            && first < *f
        {
            *f = first;
        }
    }

    fn finish(mut self) -> Vec<RSeries> {
        let mut order: Vec<usize> = (0..self.groups.len())
            .filter(|&g| self.first[g].0 != usize::MAX)
            .collect();
        order.sort_unstable_by_key(|&g| self.first[g]);
        let mut out = Vec::with_capacity(order.len());
        for g in order {
            let acc = std::mem::take(&mut self.accs[g]);
            let points = acc
                .iter()
                .enumerate()
                .filter_map(|(k, a)| a.value(self.op).map(|v| (self.r.ts(k), v)))
                .collect();
            out.push(RSeries {
                labels: self.groups[g].0.clone(),
                drop_name: self.groups[g].1,
                points,
            });
        }
        out
    }
}

/// One group's state at one step in [`Ev::fold_by_series`]; the same arithmetic, in the same
/// order, as [`aggregate_values`] over the step's values.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Acc {
    Empty,
    Sum(f64, f64),
    Mean(stats::MeanAcc),
    /// The variance so far and whether more than one value was added (see
    /// [`group_variance`]).
    Var(stats::VarAcc, bool),
    Count(f64),
    Extreme(f64),
}

impl Acc {
    #[inline]
    pub(crate) fn add(&mut self, op: AggOp, v: f64) {
        match self {
            Acc::Empty => {
                *self = match op {
                    AggOp::Sum => {
                        let (s, c) = stats::kahan_add(v, 0.0, 0.0);
                        Acc::Sum(s, c)
                    }
                    AggOp::Avg => {
                        let mut m = stats::MeanAcc::default();
                        m.add(v);
                        Acc::Mean(m)
                    }
                    AggOp::Stddev | AggOp::Stdvar => {
                        let mut m = stats::VarAcc::default();
                        m.add(v);
                        Acc::Var(m, false)
                    }
                    AggOp::Min | AggOp::Max => Acc::Extreme(v),
                    _ => Acc::Count(1.0),
                }
            }
            Acc::Sum(s, c) => (*s, *c) = stats::kahan_add(v, *s, *c),
            Acc::Mean(m) => m.add(v),
            Acc::Var(m, many) => {
                m.add(v);
                *many = true;
            }
            Acc::Count(n) => *n += 1.0,
            Acc::Extreme(x) => {
                let better = if op == AggOp::Min { v < *x } else { v > *x };
                if better || x.is_nan() {
                    *x = v;
                }
            }
        }
    }

    fn value(&self, op: AggOp) -> Option<f64> {
        Some(match self {
            Acc::Empty => return None,
            Acc::Sum(s, c) => s + c,
            Acc::Mean(m) => m.value(),
            Acc::Var(_, false) => 0.0,
            Acc::Var(m, _) if op == AggOp::Stddev => m.value().sqrt(),
            Acc::Var(m, _) => m.value(),
            Acc::Count(_) if op == AggOp::Group => 1.0,
            Acc::Count(n) => *n,
            Acc::Extreme(x) => *x,
        })
    }
}

/// One group's value for the aggregations that reduce to a single number.
fn aggregate_values(op: AggOp, vals: &[f64], p: f64) -> f64 {
    match op {
        AggOp::Sum => stats::sum(vals),
        AggOp::Avg => stats::mean(vals),
        AggOp::Count => vals.len() as f64,
        AggOp::Group => 1.0,
        AggOp::Min => stats::min(vals),
        AggOp::Max => stats::max(vals),
        AggOp::Stdvar => group_variance(vals),
        AggOp::Stddev => group_variance(vals).sqrt(),
        AggOp::Quantile => quantile(p, &mut vals.to_vec()),
        AggOp::Topk | AggOp::Bottomk | AggOp::CountValues | AggOp::Limitk | AggOp::LimitRatio => {
            f64::NAN
        }
    }
}

const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// Go's `%v` of a float64 in messages: the shortest digits, in exponent form (`1e+20`) when the
/// decimal exponent is below -4 or at least 6.
fn go_v_float(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return format_go_float(v);
    }
    let s = format!("{v:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&e) {
        return format_go_float(v);
    }
    format!("{mant}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// The `stdvar` aggregation of one group: a group of one series has variance 0 whatever its
/// value, NaN and ±Inf included, as in Prometheus (its first value only sets the mean), while
/// `stdvar_over_time` of a single NaN is NaN.
fn group_variance(vals: &[f64]) -> f64 {
    if vals.len() == 1 {
        0.0
    } else {
        stats::variance(vals)
    }
}

pub(crate) fn valid_label_name(s: &str) -> bool {
    // Prometheus 3 accepts any UTF-8 label name that is not empty.
    !s.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus 2.42 answers `stdvar`/`stddev` 0 for a group of one NaN or ±Inf series
    /// (checked side by side in `it::promql_diff`); more values follow the arithmetic.
    #[test]
    fn a_group_of_one_series_has_no_variance() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -3.5] {
            assert_eq!(group_variance(&[v]), 0.0, "{v}");
            for op in [AggOp::Stdvar, AggOp::Stddev] {
                let mut a = Acc::Empty;
                a.add(op, v);
                assert_eq!(a.value(op), Some(0.0), "{op:?} {v}");
            }
        }
        assert!(group_variance(&[f64::NAN, 1.0]).is_nan());
        assert!(group_variance(&[1.0, f64::INFINITY]).is_nan());
        assert_eq!(group_variance(&[1.0, 3.0]), 1.0);
        let mut a = Acc::Empty;
        for v in [1.0, 3.0] {
            a.add(AggOp::Stddev, v);
        }
        assert_eq!(a.value(AggOp::Stddev), Some(1.0));
        let mut a = Acc::Empty;
        for v in [f64::NAN, 3.0] {
            a.add(AggOp::Stdvar, v);
        }
        assert!(a.value(AggOp::Stdvar).is_some_and(f64::is_nan));
    }

    /// As Prometheus 2.42 words `topk(1e20, x)` and `topk(NaN, x)`.
    #[test]
    fn go_v_formatting() {
        for (v, want) in [
            (1e20, "1e+20"),
            (-1e20, "-1e+20"),
            (9.3e18, "9.3e+18"),
            (1234567.0, "1.234567e+06"),
            (123456.5, "123456.5"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(go_v_float(v), want);
        }
    }
}
