//! The evaluator. Every node is evaluated over all steps of its range at once ("range
//! evaluation"), series by series: selectors walk sample iterators with a cursor or a sliding
//! window, so a node never holds more than its output plus one window per series.
//!
//! An instant query is a range evaluation with one step. Sample counts are tracked against
//! [`EngineOptions::max_samples`] as points are produced and windows filled.

mod aggregate;
mod binary;
mod cursor;
mod durations;
mod extended;
mod fill;
mod info;
mod limit;
mod parallel;
mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use model::{Labels, is_stale_nan};
use storage::{Querier, Queryable, SampleIterator, SelectHints, SliceIter};

use crate::ast::*;
use crate::error::{Error, Result, eval_err};
use crate::functions::stats::{FactorCache, RateWindow};
use crate::value::{QueryResult, Sample, Series, Value};

pub(crate) use cursor::Cursor;
pub use stats::{QueryStats, SampleStats, StatsLevel, Timings};

/// Engine settings; the defaults are Prometheus's.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back a selector looks for the latest sample (`--query.lookback-delta`, 5m).
    pub lookback_delta: Duration,
    /// Most samples one query may hold at once (`--query.max-samples`, 50,000,000).
    pub max_samples: usize,
    /// Wall-clock limit of one evaluation (`--query.timeout`, 2m).
    pub timeout: Duration,
    /// Step of subqueries written without one (`x[10m:]`); Prometheus uses the global
    /// evaluation interval, 1m by default.
    pub no_step_subquery_interval: Duration,
    /// Whether `stats=all` gets the samples per step (Prometheus's
    /// `--enable-feature=promql-per-step-stats`; off by default there too).
    pub per_step_stats: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            no_step_subquery_interval: Duration::from_secs(60),
            per_step_stats: false,
        }
    }
}

/// The PromQL engine: stateless apart from its options, so one can serve many queries at once.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

/// Per-query knobs beyond the engine's options.
#[derive(Debug, Default, Clone, Copy)]
pub struct QueryOpts<'a> {
    /// Set to true (from another thread) to stop the query with [`Error::Canceled`].
    pub cancel: Option<&'a AtomicBool>,
    /// Overrides [`EngineOptions::lookback_delta`] for this query.
    pub lookback_delta: Option<Duration>,
    /// A shorter wall-clock limit for this query (the API's `timeout` parameter); the
    /// engine's own timeout still applies when it is shorter.
    pub timeout: Option<Duration>,
    /// Statistics to gather and return in [`QueryResult::stats`].
    pub stats: StatsLevel,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Parses and evaluates `query` at `t` (ms).
    pub fn instant_query(&self, q: &dyn Queryable, query: &str, t: i64) -> Result<QueryResult> {
        let expr = crate::parser::parse(query)?;
        self.eval_instant(q, &expr, t, QueryOpts::default())
    }

    /// Parses and evaluates `query` from `start` to `end` (inclusive) every `step` ms.
    pub fn range_query(
        &self,
        q: &dyn Queryable,
        query: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<QueryResult> {
        let expr = crate::parser::parse(query)?;
        self.eval_range(q, &expr, start, end, step, QueryOpts::default())
    }

    /// Evaluates `expr` at one instant. Range vectors (`x[5m]`, `x[5m:1m]`) are allowed at the top
    /// and come back as a [`Value::Matrix`] of the raw samples in the window.
    pub fn eval_instant(
        &self,
        q: &dyn Queryable,
        expr: &Expr,
        t: i64,
        o: QueryOpts<'_>,
    ) -> Result<QueryResult> {
        let r = Rng {
            start: t,
            end: t,
            step: 1,
        };
        let clock = stats::Clock::start(o.stats);
        let resolved = durations::resolve(expr, 0, 0)?;
        let expr = resolved.as_ref().unwrap_or(expr);
        let mut ev = self.evaluator(q, expr, r, o)?;
        ev.qstep = 0;
        let clock = clock.prepared();
        let value = match unwrap_parens(expr) {
            e @ (Expr::MatrixSelector(_) | Expr::Subquery(_)) => {
                Value::Matrix(ev.range_vector_at(e, t)?)
            }
            _ => match ev.eval(expr, r)? {
                Val::Scalar(v) => Value::Scalar { t, v: v[0] },
                Val::Str(s) => Value::String { t, s },
                Val::Vector(v) => Value::Vector(finish_instant(v, t)?),
            },
        };
        let clock = clock.evaluated();
        Ok(ev.result(value, clock))
    }

    /// Evaluates `expr` over `[start, end]` every `step` ms; the result is a matrix sorted by
    /// labels (a scalar expression becomes one series without labels).
    pub fn eval_range(
        &self,
        q: &dyn Queryable,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
        o: QueryOpts<'_>,
    ) -> Result<QueryResult> {
        if step <= 0 {
            return eval_err(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            );
        }
        if end < start {
            return eval_err("end timestamp must not be before start time");
        }
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            t => {
                return eval_err(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    type_display(t)
                ));
            }
        }
        let r = Rng { start, end, step };
        let clock = stats::Clock::start(o.stats);
        let resolved = durations::resolve(expr, step, end - start)?;
        let expr = resolved.as_ref().unwrap_or(expr);
        let mut ev = self.evaluator(q, expr, r, o)?;
        ev.qstep = step;
        let clock = clock.prepared();
        let value = ev.eval(expr, r)?;
        let clock = clock.evaluated();
        let value = match value {
            Val::Scalar(v) => Value::Matrix(vec![Series {
                labels: Labels::empty(),
                points: (0..r.len()).map(|k| (r.ts(k), v[k])).collect(),
            }]),
            Val::Vector(v) => Value::Matrix(finish_range(v)?),
            Val::Str(_) => return eval_err("invalid expression type \"string\" for range query"),
        };
        Ok(ev.result(value, clock.sorted()))
    }

    fn evaluator<'q>(
        &'q self,
        q: &dyn Queryable,
        expr: &Expr,
        r: Rng,
        o: QueryOpts<'q>,
    ) -> Result<Ev<'q>> {
        let lookback = o
            .lookback_delta
            .unwrap_or(self.opts.lookback_delta)
            .as_millis() as i64;
        let mut ev = Ev {
            querier: None,
            lookback: lookback.max(1),
            subquery_step: (self.opts.no_step_subquery_interval.as_millis() as i64).max(1),
            qstart: r.start,
            qend: r.end,
            qstep: 0,
            budget: Budget {
                cur: 0,
                max: self.opts.max_samples,
            },
            deadline: Instant::now()
                + o.timeout
                    .map_or(self.opts.timeout, |t| t.min(self.opts.timeout)),
            cancel: o.cancel,
            ticks: 0,
            warnings: Vec::new(),
            infos: Vec::new(),
            fold: None,
            stats: (o.stats != StatsLevel::Off).then(|| {
                stats::Counter::new(
                    r,
                    o.stats == StatsLevel::PerStep && self.opts.per_step_stats,
                )
            }),
        };
        if let Some((mint, maxt)) = ev.bounds(expr, r) {
            ev.querier = Some(q.querier(mint, maxt).map_err(Error::Storage)?);
        }
        Ok(ev)
    }
}

fn type_display(t: ValueType) -> &'static str {
    match t {
        ValueType::Matrix => "range vector",
        ValueType::Vector => "instant vector",
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
    }
}

pub(crate) fn unwrap_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(i) => unwrap_parens(i),
        e => e,
    }
}

/// The steps of one evaluation: `start, start+step, ..., <= end`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rng {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Rng {
    pub fn len(&self) -> usize {
        ((self.end - self.start) / self.step + 1) as usize
    }

    pub fn ts(&self, k: usize) -> i64 {
        self.start + k as i64 * self.step
    }

    /// The step index of timestamp `t` (which must be one of the steps).
    pub fn index(&self, t: i64) -> usize {
        ((t - self.start) / self.step) as usize
    }
}

/// A series during evaluation: `drop_name` is Prometheus's delayed `__name__` removal — the name
/// stays for matching and grouping and goes when the query finishes.
#[derive(Debug, Clone)]
pub(crate) struct RSeries {
    pub labels: Labels,
    pub drop_name: bool,
    pub points: Vec<(i64, f64)>,
}

/// An evaluated node: a vector over the steps (one series per label set), a scalar per step, or
/// a string.
#[derive(Debug)]
pub(crate) enum Val {
    Vector(Vec<RSeries>),
    Scalar(Vec<f64>),
    Str(String),
}

/// Samples held by a query, against its limit.
#[derive(Debug)]
pub(crate) struct Budget {
    cur: usize,
    max: usize,
}

impl Budget {
    pub fn add(&mut self, n: usize) -> Result<()> {
        self.cur += n;
        if self.cur > self.max {
            return Err(Error::TooManySamples);
        }
        Ok(())
    }

    /// Checks that `n` more samples would fit without keeping them.
    pub fn peek(&self, n: usize) -> Result<()> {
        if self.cur + n > self.max {
            return Err(Error::TooManySamples);
        }
        Ok(())
    }

    pub fn release(&mut self, n: usize) {
        self.cur = self.cur.saturating_sub(n);
    }
}

fn points_in(v: &[RSeries]) -> usize {
    v.iter().map(|s| s.points.len()).sum()
}

/// Collects the output of one node step by step, one series per label set.
pub(crate) struct Builder {
    map: HashMap<Labels, usize>,
    pub out: Vec<RSeries>,
}

impl Builder {
    pub fn new() -> Self {
        Builder {
            map: HashMap::new(),
            out: Vec::new(),
        }
    }

    pub fn push(&mut self, labels: &Labels, drop_name: bool, t: i64, v: f64) -> Result<()> {
        match self.map.get(labels) {
            Some(&i) => {
                let s = &mut self.out[i];
                if s.points.last().is_some_and(|p| p.0 == t) {
                    return eval_err("vector cannot contain metrics with the same labelset");
                }
                s.drop_name |= drop_name;
                s.points.push((t, v));
            }
            None => {
                self.map.insert(labels.clone(), self.out.len());
                self.out.push(RSeries {
                    labels: labels.clone(),
                    drop_name,
                    points: vec![(t, v)],
                });
            }
        }
        Ok(())
    }
}

/// Walks a vector step by step: `step(k)` yields `(series index, value)` for step `k`.
pub(crate) struct StepWalker<'a> {
    series: &'a [RSeries],
    pos: Vec<usize>,
}

impl<'a> StepWalker<'a> {
    pub fn new(series: &'a [RSeries]) -> Self {
        StepWalker {
            series,
            pos: vec![0; series.len()],
        }
    }

    pub fn step(&mut self, t: i64, out: &mut Vec<(usize, f64)>) {
        out.clear();
        for (i, s) in self.series.iter().enumerate() {
            if let Some(&(pt, v)) = s.points.get(self.pos[i])
                && pt == t
            {
                out.push((i, v));
                self.pos[i] += 1;
            }
        }
    }
}

/// One query's evaluation state.
pub(crate) struct Ev<'q> {
    querier: Option<Box<dyn Querier>>,
    pub lookback: i64,
    subquery_step: i64,
    /// The query's own start and end, which `@ start()` and `@ end()` refer to at any depth.
    pub qstart: i64,
    pub qend: i64,
    /// The query's step in ms; 0 for instant queries.
    pub qstep: i64,
    pub budget: Budget,
    deadline: Instant,
    cancel: Option<&'q AtomicBool>,
    ticks: u32,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
    /// Set by an aggregation whose argument is a range function over a matrix selector
    /// ([`aggregate::Fold`]): the range function folds each batch of output series into it
    /// instead of returning them.
    pub(crate) fold: Option<Box<aggregate::Fold>>,
    /// Sample statistics, when the query asked for them.
    pub(crate) stats: Option<Box<stats::Counter>>,
}

impl Ev<'_> {
    fn result(self, value: Value, clock: stats::Clock) -> QueryResult {
        let mut warnings = self.warnings;
        let mut infos = self.infos;
        warnings.dedup();
        infos.dedup();
        let stats = self.stats.map(|mut c| {
            c.held(self.budget.cur);
            Box::new(c.finish(clock.timings()))
        });
        QueryResult {
            value,
            warnings,
            infos,
            stats,
        }
    }

    /// Checks the timeout and cancellation; cheap enough to call per series.
    pub fn tick(&mut self) -> Result<()> {
        self.ticks = self.ticks.wrapping_add(1);
        if !self.ticks.is_multiple_of(64) {
            return Ok(());
        }
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::Canceled);
        }
        if Instant::now() > self.deadline {
            return Err(Error::Timeout);
        }
        Ok(())
    }

    pub fn at_time(&self, at: Option<At>) -> Option<i64> {
        at.map(|a| match a {
            At::Timestamp(t) => t,
            At::Start => self.qstart,
            At::End => self.qend,
        })
    }

    /// The time range of samples `expr` needs when evaluated over `r`, or `None` if it reads
    /// no series.
    fn bounds(&self, expr: &Expr, r: Rng) -> Option<(i64, i64)> {
        let merge = |a: Option<(i64, i64)>, b: Option<(i64, i64)>| match (a, b) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        };
        match expr {
            Expr::VectorSelector(vs) => {
                let (s, e) = self.ref_range(vs.at, vs.offset, r);
                // `smoothed` also reads the sample after each step.
                let ahead = if vs.modifier.is_some() {
                    self.lookback
                } else {
                    0
                };
                Some((s - self.lookback + 1, e + ahead))
            }
            Expr::MatrixSelector(ms) => {
                let (s, e) = self.ref_range(ms.vs.at, ms.vs.offset, r);
                // `anchored`/`smoothed` also read around the window's edges.
                if ms.vs.modifier.is_some() {
                    return Some((s - ms.range - self.lookback, e + self.lookback));
                }
                Some((s - ms.range + 1, e))
            }
            Expr::Subquery(sq) => {
                let (s, e) = self.ref_range(sq.at, sq.offset, r);
                let step = sq.step.unwrap_or(self.subquery_step);
                self.bounds(
                    &sq.expr,
                    Rng {
                        start: s - sq.range,
                        end: e,
                        step,
                    },
                )
            }
            // info()'s selector reads the info series at its first argument's times.
            Expr::Call(c) if c.func == "info" => c.args.first().and_then(|a| self.bounds(a, r)),
            Expr::Call(c) => c
                .args
                .iter()
                .fold(None, |acc, a| merge(acc, self.bounds(a, r))),
            Expr::Aggregate(a) => merge(
                a.param.as_ref().and_then(|p| self.bounds(p, r)),
                self.bounds(&a.expr, r),
            ),
            Expr::Binary(b) => merge(self.bounds(&b.lhs, r), self.bounds(&b.rhs, r)),
            Expr::Neg(e) | Expr::Paren(e) => self.bounds(e, r),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => None,
        }
    }

    /// First and last reference time of a selector with these modifiers over `r`.
    fn ref_range(&self, at: Option<At>, offset: i64, r: Rng) -> (i64, i64) {
        match self.at_time(at) {
            Some(t) => (t - offset, t - offset),
            None => (r.start - offset, r.end - offset),
        }
    }

    pub fn eval(&mut self, e: &Expr, r: Rng) -> Result<Val> {
        self.tick()?;
        match e {
            Expr::NumberLiteral(v) => Ok(Val::Scalar(vec![*v; r.len()])),
            Expr::StringLiteral(s) => Ok(Val::Str(s.clone())),
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.vector_selector(vs, r, false)?)),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => eval_err(
                "range vectors are only allowed as function arguments or at the top of an instant query",
            ),
            Expr::Call(c) => crate::functions::eval_call(self, c, r),
            Expr::Aggregate(a) => self.aggregate(a, r),
            Expr::Binary(b) => self.binary(b, r),
            Expr::Neg(inner) => Ok(match self.eval(inner, r)? {
                Val::Scalar(v) => Val::Scalar(v.into_iter().map(|x| -x).collect()),
                Val::Vector(mut v) => {
                    for s in &mut v {
                        s.drop_name = true;
                        s.points.iter_mut().for_each(|p| p.1 = -p.1);
                    }
                    Val::Vector(v)
                }
                Val::Str(_) => {
                    return eval_err(
                        "unary expression only allowed on expressions of type scalar or vector",
                    );
                }
            }),
            Expr::Paren(inner) => self.eval(inner, r),
        }
    }

    /// Evaluates an expression that must be an instant vector.
    pub fn eval_vector(&mut self, e: &Expr, r: Rng) -> Result<Vec<RSeries>> {
        match self.eval(e, r)? {
            Val::Vector(v) => Ok(v),
            _ => eval_err("expected instant vector"),
        }
    }

    /// Evaluates an expression that must be a scalar: one value per step.
    pub fn eval_scalar(&mut self, e: &Expr, r: Rng) -> Result<Vec<f64>> {
        match self.eval(e, r)? {
            Val::Scalar(v) => Ok(v),
            _ => eval_err("expected scalar"),
        }
    }

    pub fn eval_string(&mut self, e: &Expr, r: Rng) -> Result<String> {
        match self.eval(e, r)? {
            Val::Str(s) => Ok(s),
            _ => eval_err("expected string"),
        }
    }

    /// Adds a range function's window counts to the statistics (see `stats.rs`).
    pub(crate) fn count_windows(&mut self, counts: stats::WindowCounts) {
        if let Some(c) = &mut self.stats {
            c.add_windows(counts, self.budget.cur);
        }
    }

    pub fn release(&mut self, v: &[RSeries]) {
        if let Some(c) = &mut self.stats {
            c.held(self.budget.cur);
        }
        self.budget.release(points_in(v));
    }

    /// Whether selectors ask the storage for series in label order: for instant queries,
    /// whose vectors are answered in evaluation order, as Prometheus's storage always merges
    /// (and so sorts) what it selects; range query results are sorted at the end anyway.
    fn sorted_select(&self) -> bool {
        self.qstep == 0
    }

    fn select(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        step: i64,
    ) -> Result<Vec<Box<dyn storage::Series>>> {
        let Some(q) = &self.querier else {
            return Ok(Vec::new());
        };
        let hints = SelectHints {
            start: mint,
            end: maxt,
            step,
            ..SelectHints::default()
        };
        q.select(self.sorted_select(), &hints, &vs.matchers)
            .map_err(Error::Storage)
    }

    /// Streams the series of `vs` from the storage ([`Querier::select_iter`]) and hands them to
    /// `each` in batches of at most `size` series ([`SELECT_BATCH`], or [`FOLD_BATCH`] when
    /// an aggregation folds the output as it comes), in the storage's order, so a selector
    /// over many series never holds all of them at once. The querier is lent out meanwhile:
    /// `each` must not select.
    fn select_batches(
        &mut self,
        vs: &VectorSelector,
        (mint, maxt, step): (i64, i64, i64),
        size: usize,
        mut each: impl FnMut(&mut Self, Vec<Box<dyn storage::Series>>) -> Result<()>,
    ) -> Result<()> {
        let Some(q) = self.querier.take() else {
            return Ok(());
        };
        let res = self.stream_batches(&*q, vs, (mint, maxt, step), size, &mut each);
        self.querier = Some(q);
        res
    }

    fn stream_batches(
        &mut self,
        q: &dyn Querier,
        vs: &VectorSelector,
        (mint, maxt, step): (i64, i64, i64),
        size: usize,
        each: &mut impl FnMut(&mut Self, Vec<Box<dyn storage::Series>>) -> Result<()>,
    ) -> Result<()> {
        let hints = SelectHints {
            start: mint,
            end: maxt,
            step,
            ..SelectHints::default()
        };
        let mut set = q
            .select_iter(self.sorted_select(), &hints, &vs.matchers)
            .map_err(Error::Storage)?;
        loop {
            let batch = set
                .by_ref()
                .take(size)
                .collect::<storage::Result<Vec<_>>>()
                .map_err(Error::Storage)?;
            let last = batch.len() < size;
            if !batch.is_empty() {
                each(self, batch)?;
            }
            if last {
                return Ok(());
            }
        }
    }

    /// An instant-vector selector over `r`: at each step the latest sample within the lookback
    /// window (left-open), unless it is a staleness marker. With `want_ts` the value is the
    /// sample's timestamp in seconds (for `timestamp()`).
    pub fn vector_selector(
        &mut self,
        vs: &VectorSelector,
        r: Rng,
        want_ts: bool,
    ) -> Result<Vec<RSeries>> {
        if vs.modifier.is_some() && !want_ts {
            return self.smoothed_selector(vs, r);
        }
        let fixed = self.at_time(vs.at);
        let rt = |ts: i64| fixed.unwrap_or(ts) - vs.offset;
        let lo = rt(r.start) - self.lookback + 1;
        let lookback = self.lookback;
        let per_series = |s: &dyn storage::Series, budget: &mut Budget| {
            let mut it = s.iter();
            let mut cur = Cursor::new(&mut *it, lo, r.step);
            let mut points = Vec::new();
            for k in 0..r.len() {
                let ts = r.ts(k);
                let t = rt(ts);
                if let Some((st, v)) = cur.at_or_before(t)
                    && st > t - lookback
                    && !is_stale_nan(v)
                {
                    points.push((ts, if want_ts { st as f64 / 1000.0 } else { v }));
                }
            }
            budget.add(points.len())?;
            Ok((!points.is_empty()).then(|| RSeries {
                labels: s.labels().clone(),
                drop_name: false,
                points,
            }))
        };
        // Batches of series as the storage streams them; many series are read on several
        // threads (`parallel.rs`), in order.
        let mut out = Vec::new();
        self.select_batches(vs, (lo, rt(r.end), r.step), SELECT_BATCH, |ev, batch| {
            out.extend(ev.map_series_par(batch, r.len(), per_series)?);
            Ok(())
        })?;
        if let Some(c) = &mut self.stats {
            c.add_points(&out);
        }
        Ok(out)
    }

    /// Evaluates a subquery's inner expression over the steps its windows need.
    fn subquery(&mut self, sq: &Subquery, r: Rng) -> Result<Vec<RSeries>> {
        let step = sq.step.unwrap_or(self.subquery_step);
        let (s, e) = self.ref_range(sq.at, sq.offset, r);
        let first = s - sq.range;
        // compat: Prometheus aligns subquery steps to multiples of the step (Go's truncating
        // division), starting at the first one not before the window start.
        let mut start = step * (first / step);
        if start < first {
            start += step;
        }
        if start > e {
            return Ok(Vec::new());
        }
        let inner = Rng {
            start,
            end: e,
            step,
        };
        let saved = self.stats.as_mut().map(|c| c.enter_subquery());
        let res = self.eval(&sq.expr, inner);
        if let (Some(c), Some(saved)) = (&mut self.stats, saved) {
            c.leave_subquery(saved);
        }
        match res? {
            Val::Vector(v) => Ok(v),
            Val::Scalar(v) => {
                let points: Vec<_> = (0..inner.len()).map(|k| (inner.ts(k), v[k])).collect();
                Ok(vec![RSeries {
                    labels: Labels::empty(),
                    drop_name: false,
                    points,
                }])
            }
            Val::Str(_) => eval_err("subquery is only allowed on instant vector"),
        }
    }

    /// Applies `f` to the window of every series of a range argument (a matrix selector or a
    /// subquery) at every step. `f(step, window end, range, samples, info)` returns the step's
    /// value; `info` ([`WinInfo`]) carries what the window keeps up to date as it slides (the
    /// counter resets in `samples`, so `rate` need not scan long windows for them).
    /// With `keep_name` the output keeps the metric name (`last_over_time` and friends).
    pub fn map_windows(
        &mut self,
        arg: &Expr,
        r: Rng,
        keep_name: bool,
        mut f: impl FnMut(usize, i64, i64, &[(i64, f64)], WinInfo) -> Result<Option<f64>>,
    ) -> Result<Vec<RSeries>> {
        let mut out = Vec::new();
        match unwrap_parens(arg) {
            Expr::MatrixSelector(ms) => {
                let fixed = self.at_time(ms.vs.at);
                let rt = |ts: i64| fixed.unwrap_or(ts) - ms.vs.offset;
                let lo = rt(r.start) - ms.range + 1;
                let span = (lo, rt(r.end), r.step);
                self.select_batches(&ms.vs, span, SELECT_BATCH, |ev, batch| {
                    for s in &batch {
                        ev.tick()?;
                        let mut it = s.iter();
                        let pts = windows(
                            &mut *it,
                            lo,
                            r,
                            &rt,
                            ms.range,
                            Track::RESETS,
                            &mut ev.budget,
                            &mut f,
                        )?;
                        if !pts.is_empty() {
                            out.push(RSeries {
                                labels: s.labels().clone(),
                                drop_name: !keep_name,
                                points: pts,
                            });
                        }
                    }
                    Ok(())
                })?;
            }
            Expr::Subquery(sq) => {
                let inner = self.subquery(sq, r)?;
                let fixed = self.at_time(sq.at);
                let rt = |ts: i64| fixed.unwrap_or(ts) - sq.offset;
                for s in &inner {
                    self.tick()?;
                    let mut it = SliceIter::new(&s.points);
                    let pts = windows(
                        &mut it,
                        i64::MIN,
                        r,
                        &rt,
                        sq.range,
                        Track::RESETS,
                        &mut self.budget,
                        &mut f,
                    )?;
                    if !pts.is_empty() {
                        out.push(RSeries {
                            labels: s.labels.clone(),
                            drop_name: s.drop_name || !keep_name,
                            points: pts,
                        });
                    }
                }
                self.release(&inner);
            }
            _ => return eval_err("expected type range vector in call to function"),
        }
        Ok(out)
    }

    /// The raw samples of a range vector at `t`, for an instant query whose result is a range
    /// vector.
    fn range_vector_at(&mut self, e: &Expr, t: i64) -> Result<Vec<Series>> {
        let r = Rng {
            start: t,
            end: t,
            step: 1,
        };
        let mut windows_out: Vec<Vec<(i64, f64)>> = Vec::new();
        let keep = |_: usize, _: i64, _: i64, w: &[(i64, f64)], _: WinInfo| {
            windows_out.push(w.to_vec());
            Ok(Some(windows_out.len() as f64 - 1.0))
        };
        // compat: Prometheus counts a matrix selector's windows, and for a subquery what its
        // inner expression counted.
        let v = match (self.stats.as_ref(), unwrap_parens(e)) {
            (Some(c), Expr::MatrixSelector(_)) => {
                let counts = c.windows(r);
                let v = self.map_windows(e, r, true, counts.wrap(keep))?;
                if let Some(c) = &mut self.stats {
                    c.add_windows(counts, self.budget.cur);
                }
                v
            }
            _ => {
                let v = self.map_windows(e, r, true, keep)?;
                if let Some(c) = &mut self.stats {
                    let n = c.last_subquery;
                    c.add(t, n);
                }
                v
            }
        };
        // The raw samples are the result and are held as such (each window was counted as
        // one output point), as Prometheus counts them against its sample limit.
        let raw: usize = windows_out.iter().map(Vec::len).sum();
        self.budget.add(raw.saturating_sub(v.len()))?;
        let mut out: Vec<Series> = v
            .into_iter()
            .map(|s| {
                let labels = if s.drop_name {
                    s.labels.without_metric_name()
                } else {
                    s.labels
                };
                Series {
                    labels,
                    points: std::mem::take(&mut windows_out[s.points[0].1 as usize]),
                }
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

/// Most series a selector evaluates at once (see [`Ev::select_batches`]): enough to keep
/// every thread of `parallel.rs` busy, few enough that the raw series of a selector over
/// hundreds of thousands of series are not all in memory together.
const SELECT_BATCH: usize = 4096;

/// Series per batch when an aggregation folds a range function's values as they are
/// produced (`sum(rate(x[5m]))`): no output series are held, only the batch's series and one
/// idle iterator per series and thread, so a batch can be large; each batch is one start and
/// join of the threads (`Ev::fold_batch`), so fewer batches leave the threads idle less.
const FOLD_BATCH: usize = 2048;

/// What a sliding window keeps up to date as it slides (see [`WinInfo`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Track {
    /// The exact running sum ([`WinInfo::exact_sum`]).
    pub sum: bool,
    /// The counter resets ([`WinInfo::resets`]).
    pub resets: bool,
    /// `Some((counter, per_second))`: the window computes `rate` (`(true, true)`), `increase`
    /// (`(true, false)`) or `delta` (`(false, false)`) itself instead of calling the window
    /// function (which then must compute the same; see [`slide_rate`]).
    pub rate: Option<(bool, bool)>,
}

impl Track {
    /// Resets only: what any window function may use except the running sum.
    pub const RESETS: Track = Track {
        sum: false,
        resets: true,
        rate: None,
    };
}

/// What a sliding window knows about its samples besides the samples themselves.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct WinInfo {
    /// Adjacent pairs in the window whose value decreases.
    pub resets: usize,
    /// The window's sum, when the window keeps one (`track_sum` of [`windows`]) and it is
    /// exact: every value is a multiple of 2^-16 below 2^24 in magnitude, so any sum of up to
    /// [`EXACT_SUM_MAX`] of them is exact in any order and equals the compensated sum bit for
    /// bit. `None` when it is zero (a running sum cannot tell -0 from 0).
    pub exact_sum: Option<f64>,
}

/// Most values a window may hold for [`WinInfo::exact_sum`] (2^13 x 2^40 units stays below
/// 2^53, the integers a float holds exactly).
const EXACT_SUM_MAX: usize = 8192;

/// Whether `v` takes part in an exact running sum (see [`WinInfo::exact_sum`]).
#[inline]
fn exact_summand(v: f64) -> bool {
    // Read off the bits (two float-integer conversions cost more than the rest of a window
    // step): `v = 1.m x 2^e` is a multiple of 2^-16 below 2^24 when -16 <= e < 24 and the
    // mantissa bits worth less than 2^-16 (the lowest 36 - e) are zero. NaN and infinities
    // (e = 1024) and subnormals fail; zeros of either sign pass.
    let bits = v.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    if !(-16..24).contains(&e) {
        return bits << 1 == 0;
    }
    bits & ((1u64 << (36 - e)) - 1) == 0
}

/// The sliding window of one series: at each step the samples in `(rt - range, rt]`, staleness
/// markers left out, as the points `(step time, value)` of `f`'s non-empty results (counted
/// against `budget`). See [`slide`].
#[allow(clippy::too_many_arguments)]
fn windows<F>(
    it: &mut dyn SampleIterator,
    lo: i64,
    r: Rng,
    rt: &dyn Fn(i64) -> i64,
    range: i64,
    track: Track,
    budget: &mut Budget,
    f: &mut F,
) -> Result<Vec<(i64, f64)>>
where
    F: FnMut(usize, i64, i64, &[(i64, f64)], WinInfo) -> Result<Option<f64>> + ?Sized,
{
    let mut out = Vec::new();
    let steps = 0..r.len();
    slide(
        (it, &mut Vec::new()),
        lo,
        (r, steps),
        rt,
        (range, track),
        budget,
        f,
        |k, v| out.push((r.ts(k), v)),
    )?;
    budget.add(out.len())?;
    Ok(out)
}

/// Slides the window of one series over steps `ks` of `r` (the iterator positioned at or
/// before `lo`, the first window's start; `buf` is scratch space, reused across series): at step `k` the samples in `(rt - range, rt]`,
/// staleness markers left out, go to `f`, and a value it returns goes to `sink(k, value)`.
/// Each window is checked against `budget` (its samples are held while `f` looks at them).
/// `track` says what the window keeps up to date besides its samples ([`WinInfo`]): the exact
/// sum of [`WinInfo::exact_sum`] (for `sum_over_time` and `avg_over_time`: one add and one
/// subtract per sample instead of a compensated sum over every window) and the counter resets
/// (for `rate`, `increase` and `resets`; otherwise [`WinInfo::resets`] stays 0).
#[allow(clippy::too_many_arguments)]
fn slide<F, S>(
    (it, buf): (&mut dyn SampleIterator, &mut Vec<(i64, f64)>),
    lo: i64,
    (r, ks): (Rng, std::ops::Range<usize>),
    rt: &dyn Fn(i64) -> i64,
    (range, track): (i64, Track),
    budget: &Budget,
    f: &mut F,
    mut sink: S,
) -> Result<()>
where
    F: FnMut(usize, i64, i64, &[(i64, f64)], WinInfo) -> Result<Option<f64>> + ?Sized,
    S: FnMut(usize, f64),
{
    if let Some(how) = track.rate {
        return slide_rate((it, buf), lo, (r, ks), rt, range, how, budget, sink);
    }
    // Every sample read so far that is no staleness marker, in order: the window is
    // `buf[head..end]`, `buf[end..]` is read ahead (many steps per storage call, see
    // `cursor::read_ahead`). A Vec with a moving start stays contiguous for `f` (a ring buffer
    // would have to be rotated at almost every step once it wraps); the dead prefix is
    // dropped when it outgrows the rest.
    let ahead = cursor::read_ahead(r.step);
    buf.clear();
    let (mut head, mut end) = (0usize, 0usize);
    // The first sample after `buf`, read from `it`; `None` at the end.
    let mut pending = it.seek(lo);
    // Adjacent pairs in the window whose value decreases.
    let mut resets = 0usize;
    // The sum of the window's exact summands and the number of other values in it.
    let (mut exact, mut inexact) = (0.0f64, 0usize);
    let (mut track_sum, track_resets) = (track.sum, track.resets);
    for k in ks {
        let ts = r.ts(k);
        let t = rt(ts);
        let lower = t - range;
        while head < end && buf[head].0 <= lower {
            let gone = buf[head].1;
            head += 1;
            if track_sum {
                if exact_summand(gone) {
                    exact -= gone;
                } else {
                    inexact -= 1;
                }
            }
            if track_resets && head < end && buf[head].1 < gone {
                resets -= 1;
            }
        }
        if head > 64 && head * 2 > buf.len() {
            buf.drain(..head);
            end -= head;
            head = 0;
        }
        loop {
            // Samples up to `t` not yet in the window; those at or before the window's start
            // (after a gap longer than the range) are passed over.
            while end < buf.len() && buf[end].0 <= t {
                let s = buf[end];
                end += 1;
                if s.0 <= lower {
                    head = end;
                    continue;
                }
                if track_resets && end - 1 > head && s.1 < buf[end - 2].1 {
                    resets += 1;
                }
                if track_sum {
                    if exact_summand(s.1) {
                        exact += s.1;
                    } else {
                        inexact += 1;
                    }
                }
            }
            if end < buf.len() {
                break;
            }
            // Read on (past `t`, so at most once per step), leaving staleness markers out.
            match pending {
                Some(s) if s.0 <= t => {
                    pending = read_on(it, s, t.saturating_add(ahead), buf);
                }
                _ => break,
            }
        }
        // Past this many values the running sum could round: stop keeping it for this series.
        track_sum &= end - head <= EXACT_SUM_MAX;
        if end == head {
            continue;
        }
        budget.peek(end - head)?;
        let info = WinInfo {
            resets,
            exact_sum: (track_sum && inexact == 0 && exact != 0.0).then_some(exact),
        };
        if let Some(v) = f(k, t, range, &buf[head..end], info)? {
            sink(k, v);
        }
    }
    Ok(())
}

/// Appends `next` (the sample read last from `it`) and every later sample up to `upto` to
/// `buf`, staleness markers left out; returns the first sample after them (`None` at the end).
fn read_on(
    it: &mut dyn SampleIterator,
    next: (i64, f64),
    upto: i64,
    buf: &mut Vec<(i64, f64)>,
) -> Option<(i64, f64)> {
    let first = buf.len();
    buf.push(next);
    let pending = it.next_until(upto, buf);
    // Most reads hold no marker: look before moving anything.
    if let Some(at) = buf[first..].iter().position(|s| is_stale_nan(s.1)) {
        let mut keep = first + at;
        for j in keep + 1..buf.len() {
            if !is_stale_nan(buf[j].1) {
                buf[keep] = buf[j];
                keep += 1;
            }
        }
        buf.truncate(keep);
    }
    pending
}

/// [`slide`] for `rate`, `increase` and `delta` ([`Track::rate`]): only a window's first and
/// last sample, its length and its counter resets matter, so the window is two indices into
/// the samples read so far, and the resets come from a running count kept per sample as it
/// is read (`resets_to[i]`: decreasing adjacent pairs up to sample `i`) — nothing is done per
/// sample as the window slides. Windows shaped like the one before (regular scrapes) reuse
/// its extrapolation factor ([`FactorCache`]), so most windows need no division.
#[allow(clippy::too_many_arguments)]
fn slide_rate<S: FnMut(usize, f64)>(
    (it, buf): (&mut dyn SampleIterator, &mut Vec<(i64, f64)>),
    lo: i64,
    (r, ks): (Rng, std::ops::Range<usize>),
    rt: &dyn Fn(i64) -> i64,
    range: i64,
    (counter, per_second): (bool, bool),
    budget: &Budget,
    mut sink: S,
) -> Result<()> {
    let ahead = cursor::read_ahead(r.step);
    buf.clear();
    // Samples read so far, staleness markers left out: the window is `buf[head..end]`,
    // `buf[end..]` is read ahead; the dead prefix is dropped when it outgrows the rest.
    let (mut head, mut end) = (0usize, 0usize);
    let mut resets_to: Vec<u32> = Vec::new();
    let mut pending = it.seek(lo);
    let mut cache = FactorCache::default();
    for k in ks {
        let t = rt(r.ts(k));
        let lower = t - range;
        // Every sample up to `t` into `buf` (reading past `t`, so at most once per step).
        while let Some(s) = pending.filter(|s| s.0 <= t) {
            let first = buf.len();
            pending = read_on(it, s, t.saturating_add(ahead), buf);
            if counter {
                let mut n = resets_to.last().copied().unwrap_or(0);
                let mut prev = first.checked_sub(1).map_or(f64::NAN, |j| buf[j].1);
                resets_to.extend(buf[first..].iter().map(|s| {
                    n += u32::from(s.1 < prev);
                    prev = s.1;
                    n
                }));
            }
        }
        while end < buf.len() && buf[end].0 <= t {
            end += 1;
        }
        while head < end && buf[head].0 <= lower {
            head += 1;
        }
        if head > 64 && head * 2 > buf.len() {
            buf.drain(..head);
            if counter {
                resets_to.drain(..head);
            }
            end -= head;
            head = 0;
        }
        if end == head {
            continue;
        }
        budget.peek(end - head)?;
        let resets = if counter {
            (resets_to[end - 1] - resets_to[head]) as usize
        } else {
            0
        };
        if let Some(w) = RateWindow::of(&buf[head..end], resets, counter) {
            sink(
                k,
                w.extrapolate_cached(t - range, t, counter, per_second, &mut cache),
            );
        }
    }
    Ok(())
}

/// Removes names marked for removal and checks the instant vector has no duplicate label sets.
fn finish_instant(v: Vec<RSeries>, t: i64) -> Result<Vec<Sample>> {
    let mut out = Vec::with_capacity(v.len());
    let mut seen = std::collections::HashSet::new();
    for s in v {
        let labels = if s.drop_name {
            s.labels.without_metric_name()
        } else {
            s.labels
        };
        for (_, val) in s.points {
            if !seen.insert(labels.clone()) {
                return eval_err("vector cannot contain metrics with the same labelset");
            }
            out.push(Sample {
                labels: labels.clone(),
                t,
                v: val,
            });
        }
    }
    Ok(out)
}

/// Removes names marked for removal, merges series that became equal (an error if they overlap
/// in time) and sorts by labels.
fn finish_range(v: Vec<RSeries>) -> Result<Vec<Series>> {
    let mut map: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::with_capacity(v.len());
    for s in v {
        let labels = if s.drop_name {
            s.labels.without_metric_name()
        } else {
            s.labels
        };
        match map.get(&labels) {
            Some(&i) => {
                let merged = merge_points(&out[i].points, &s.points)?;
                out[i].points = merged;
            }
            None => {
                map.insert(labels.clone(), out.len());
                out.push(Series {
                    labels,
                    points: s.points,
                });
            }
        }
    }
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

fn merge_points(a: &[(i64, f64)], b: &[(i64, f64)]) -> Result<Vec<(i64, f64)>> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                return eval_err("vector cannot contain metrics with the same labelset");
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.push(*x);
                i += 1;
            }
            (Some(_), Some(y)) => {
                out.push(*y);
                j += 1;
            }
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (None, Some(y)) => {
                out.push(*y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
