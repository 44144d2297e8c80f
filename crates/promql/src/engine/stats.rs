//! Query statistics as Prometheus reports them for the API's `stats` parameter: how many
//! samples the evaluation looked at (in total and, on request, per step), the most samples it
//! held at once, and where the time went.
//!
//! Counting happens only when a query asks for it ([`QueryOpts::stats`](super::QueryOpts));
//! otherwise the engine carries a `None` and each hook is one untaken branch per selector.
//!
//! compat: what counts is Prometheus 2.42's `totalQueryableSamples`: one per point an
//! instant-vector selector yields, the samples in every non-empty window a range function
//! looks at (at the window's step), and for a subquery only the windows over its output when
//! it is a function argument, or everything its inner expression counted (at the last step)
//! when it is the query's result.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use super::{RSeries, Rng, WinInfo};
use crate::error::Result;

/// How much of the statistics a query asks for (the API's `stats` parameter: any value turns
/// them on, `all` adds the per-step counts).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum StatsLevel {
    #[default]
    Off,
    /// Timings, total and peak samples.
    Summary,
    /// Also the samples per step (honoured when [`EngineOptions::per_step_stats`] is set,
    /// Prometheus's `--enable-feature=promql-per-step-stats`).
    ///
    /// [`EngineOptions::per_step_stats`]: super::EngineOptions::per_step_stats
    PerStep,
}

/// Where one query's time went (Prometheus's `stats.timings`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Timings {
    /// The whole evaluation: preparation, inner evaluation and result sorting.
    pub eval_total: Duration,
    /// Sorting a range query's result.
    pub result_sort: Duration,
    /// Resolving the expression and opening the storage querier.
    pub query_preparation: Duration,
    /// Evaluating the expression tree.
    pub inner_eval: Duration,
    /// Waiting for a slot under `--query.max-concurrency` (set by the API layer).
    pub exec_queue: Duration,
    /// Queue wait plus evaluation (set by the API layer).
    pub exec_total: Duration,
}

/// The samples of one query (Prometheus's `stats.samples`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SampleStats {
    /// Samples looked at (`totalQueryableSamples`).
    pub total: i64,
    /// Most samples held at once, as counted against `--query.max-samples` (`peakSamples`).
    pub peak: usize,
    /// `(step timestamp in ms, samples)` per step of the query, when asked for
    /// (`totalQueryableSamplesPerStep`).
    pub per_step: Option<Vec<(i64, i64)>>,
}

/// Statistics of one successful query.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct QueryStats {
    pub timings: Timings,
    pub samples: SampleStats,
}

/// The stopwatch of one evaluation: reads the clock only when statistics are on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Option<Instant>,
    prepared: Option<Instant>,
    evaluated: Option<Instant>,
    sorted: Option<Instant>,
}

impl Clock {
    pub fn start(level: StatsLevel) -> Self {
        Clock {
            start: (level != StatsLevel::Off).then(Instant::now),
            prepared: None,
            evaluated: None,
            sorted: None,
        }
    }

    fn now(&self) -> Option<Instant> {
        self.start.map(|_| Instant::now())
    }

    /// The expression is resolved and the querier open.
    pub fn prepared(self) -> Self {
        Clock {
            prepared: self.now(),
            ..self
        }
    }

    /// The expression tree is evaluated.
    pub fn evaluated(self) -> Self {
        Clock {
            evaluated: self.now(),
            ..self
        }
    }

    /// A range query's result is sorted.
    pub fn sorted(self) -> Self {
        Clock {
            sorted: self.now(),
            ..self
        }
    }

    pub fn timings(&self) -> Timings {
        let span = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        };
        let end = self.sorted.or(self.evaluated);
        Timings {
            eval_total: span(self.start, end),
            result_sort: span(self.evaluated, self.sorted),
            query_preparation: span(self.start, self.prepared),
            inner_eval: span(self.prepared, self.evaluated),
            ..Timings::default()
        }
    }
}

/// The counter an evaluation carries while statistics are on.
#[derive(Debug)]
pub(crate) struct Counter {
    /// The query's steps (one step for an instant query).
    steps: Rng,
    total: i64,
    per_step: Option<Vec<i64>>,
    peak: usize,
    /// Subqueries being evaluated: their samples go to `inner`, not to the query's counts.
    depth: u32,
    inner: i64,
    /// What the last finished subquery's inner expression counted.
    pub last_subquery: i64,
}

impl Counter {
    pub fn new(steps: Rng, per_step: bool) -> Box<Self> {
        Box::new(Counter {
            steps,
            total: 0,
            per_step: per_step.then(|| vec![0; steps.len()]),
            peak: 0,
            depth: 0,
            inner: 0,
            last_subquery: 0,
        })
    }

    /// Counts `n` samples looked at for the step at `ts`.
    pub fn add(&mut self, ts: i64, n: i64) {
        if self.depth > 0 {
            self.inner += n;
            return;
        }
        self.total += n;
        if let Some(p) = &mut self.per_step
            && ts >= self.steps.start
            && ts <= self.steps.end
        {
            p[self.steps.index(ts)] += n;
        }
    }

    /// Counts the points of an instant-vector selector's output, each at its step.
    pub fn add_points(&mut self, v: &[RSeries]) {
        if self.per_step.is_none() || self.depth > 0 {
            self.add(0, super::points_in(v) as i64);
            return;
        }
        for s in v {
            for &(ts, _) in &s.points {
                self.add(ts, 1);
            }
        }
    }

    /// Notes the samples held right now (called before they are released and at the end).
    pub fn held(&mut self, n: usize) {
        self.peak = self.peak.max(n);
    }

    /// A subquery's inner expression starts: what it counts is kept apart.
    pub fn enter_subquery(&mut self) -> i64 {
        self.depth += 1;
        std::mem::take(&mut self.inner)
    }

    /// The subquery ends; `saved` is what [`Counter::enter_subquery`] returned. Its count is
    /// left in [`Counter::last_subquery`] (Prometheus drops it for a function argument).
    pub fn leave_subquery(&mut self, saved: i64) {
        self.depth -= 1;
        self.last_subquery = std::mem::replace(&mut self.inner, saved);
    }

    /// Window counts of one range function over `r` (see [`WindowCounts`]).
    pub fn windows(&self, r: Rng) -> WindowCounts {
        let per_step = self.per_step.is_some() && self.depth == 0;
        WindowCounts {
            r,
            total: AtomicI64::new(0),
            largest: AtomicI64::new(0),
            steps: if per_step {
                (0..r.len()).map(|_| AtomicI64::new(0)).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Adds what a range function's windows held; `held` is the budget's count now. Each
    /// window was checked against the sample limit on top of what was held (`Budget::peek`),
    /// so the largest one counts towards the peak, as Prometheus's buffered window does.
    pub fn add_windows(&mut self, w: WindowCounts, held: usize) {
        self.held(held + w.largest.into_inner() as usize);
        if w.steps.is_empty() {
            self.add(0, w.total.into_inner());
            return;
        }
        for (k, n) in w.steps.into_iter().enumerate() {
            self.add(w.r.ts(k), n.into_inner());
        }
    }

    pub fn finish(self, timings: Timings) -> QueryStats {
        let steps = self.steps;
        QueryStats {
            timings,
            samples: SampleStats {
                total: self.total,
                peak: self.peak,
                per_step: self.per_step.map(|p| {
                    p.into_iter()
                        .enumerate()
                        .map(|(k, n)| (steps.ts(k), n))
                        .collect()
                }),
            },
        }
    }
}

/// The window sizes a range function saw, counted from every thread that slides windows
/// (the window function is wrapped by [`WindowCounts::wrap`]).
#[derive(Debug)]
pub(crate) struct WindowCounts {
    r: Rng,
    total: AtomicI64,
    /// The most samples one window held.
    largest: AtomicI64,
    /// Per step of `r`, or empty when only the total is wanted.
    steps: Vec<AtomicI64>,
}

impl WindowCounts {
    /// `f` counting the samples of each window it is given: counted in the wrapper (one per
    /// thread) and added to the shared counts when it is dropped, so threads do not contend
    /// for them at every window. A window path that computes a function without calling `f`
    /// must count its windows itself when statistics are on (guarded by the test
    /// `query_stats_same_on_every_evaluation_path`).
    #[allow(clippy::type_complexity)] // the window function's signature, spelled out
    pub fn wrap<'a, F>(
        &'a self,
        mut f: F,
    ) -> impl FnMut(usize, i64, i64, &[(i64, f64)], WinInfo) -> Result<Option<f64>> + 'a
    where
        F: FnMut(usize, i64, i64, &[(i64, f64)], WinInfo) -> Result<Option<f64>> + 'a,
    {
        let mut local = Local {
            shared: self,
            total: 0,
            largest: 0,
            steps: vec![0; self.steps.len()],
        };
        move |k, t, range, w, info| {
            let n = w.len() as i64;
            local.largest = local.largest.max(n);
            match local.steps.get_mut(k) {
                Some(c) => *c += n,
                None => local.total += n,
            }
            f(k, t, range, w, info)
        }
    }
}

/// One wrapper's counts, added to [`WindowCounts`] when the wrapper is dropped.
struct Local<'a> {
    shared: &'a WindowCounts,
    total: i64,
    largest: i64,
    steps: Vec<i64>,
}

impl Drop for Local<'_> {
    fn drop(&mut self) {
        self.shared.total.fetch_add(self.total, Ordering::Relaxed);
        self.shared
            .largest
            .fetch_max(self.largest, Ordering::Relaxed);
        for (c, &n) in self.shared.steps.iter().zip(&self.steps) {
            if n != 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(start: i64, end: i64, step: i64) -> Rng {
        Rng { start, end, step }
    }

    #[test]
    fn per_step_counts_land_on_their_steps() {
        let mut c = Counter::new(rng(0, 20, 10), true);
        c.add(10, 2);
        c.add(20, 1);
        let w = c.windows(rng(0, 20, 10));
        let mut f = w.wrap(|_, _, _, _, _| Ok(None));
        f(0, 0, 5, &[(1, 1.0), (2, 2.0)], WinInfo::default()).unwrap();
        drop(f);
        c.add_windows(w, 4);
        assert_eq!(c.peak, 6, "held plus the largest window");
        c.held(7);
        c.held(3);
        let s = c.finish(Timings::default()).samples;
        assert_eq!(s.total, 5);
        assert_eq!(s.peak, 7);
        assert_eq!(s.per_step, Some(vec![(0, 2), (10, 2), (20, 1)]));
    }

    #[test]
    fn subquery_counts_are_kept_apart() {
        let mut c = Counter::new(rng(0, 0, 1), false);
        let saved = c.enter_subquery();
        c.add(0, 4);
        let inner = c.enter_subquery();
        c.add(0, 100);
        c.leave_subquery(inner);
        assert_eq!(c.last_subquery, 100);
        c.leave_subquery(saved);
        assert_eq!(c.last_subquery, 4);
        c.add(0, 1);
        let s = c.finish(Timings::default()).samples;
        assert_eq!((s.total, s.per_step), (1, None));
    }
}
