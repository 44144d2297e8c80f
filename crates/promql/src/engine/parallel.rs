//! Range functions and instant selectors over many series on several threads: the selected
//! series are split into contiguous shares, each thread decodes its share (and slides the
//! windows with its own copy of the window function), and the shares' outputs are concatenated
//! in order — the same series in the same order as one thread gives.

use std::sync::atomic::Ordering;
use std::time::Instant;

use std::ops::Range;

use storage::{SampleIterator, Series};

use super::aggregate::{Acc, Fold};
use super::{Budget, Ev, RSeries, Rng, Track, WinInfo, slide, unwrap_parens, windows};
use crate::ast::AggOp;
use crate::ast::Expr;
use crate::error::{Error, Result};

/// Below this many series one thread does it all.
const MIN_SERIES: usize = 16;
/// Below this many output cells (series x steps) one thread does it all: a thread costs tens
/// of microseconds to start, a cell (decoding the samples behind it, one window function call)
/// tens of nanoseconds. Long ranges over a few hundred series (e.g. a day of `_sum` and
/// `_count` rates per job) are worth splitting too, not only selects of thousands of series.
const MIN_CELLS: usize = 65_536;

/// Whether `series` series over `steps` steps are worth splitting across threads. A series
/// costs at least a chunk's decoding (~64 cells' worth) even for one step.
fn worth_splitting(series: usize, steps: usize) -> bool {
    series >= MIN_SERIES && series.saturating_mul(steps.max(64)) >= MIN_CELLS
}

/// The threads to use: the machine's cores, at most 4.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

impl Ev<'_> {
    /// [`Ev::map_windows`] with a window function built per thread by `make`. Matrix selectors
    /// with many series run on several threads; anything else runs as `map_windows` does.
    pub(crate) fn map_windows_par<F>(
        &mut self,
        arg: &Expr,
        r: Rng,
        keep_name: bool,
        track: Track,
        make: impl Fn() -> F + Sync,
    ) -> Result<Vec<RSeries>>
    where
        F: FnMut(usize, i64, i64, &[(i64, f64)], WinInfo) -> Result<Option<f64>>,
    {
        let n = threads();
        // An aggregation waiting for this function's output (`sum(rate(x[5m]))`) takes each
        // batch's series as they come; only a matrix selector's batches are handed over.
        let mut fold = self.fold.take();
        let Expr::MatrixSelector(ms) = unwrap_parens(arg) else {
            return self.map_windows(arg, r, keep_name, make());
        };
        let fixed = self.at_time(ms.vs.at);
        let rt = |ts: i64| fixed.unwrap_or(ts) - ms.vs.offset;
        let lo = rt(r.start) - ms.range + 1;
        // The series come from the storage in batches, so the raw series behind a range
        // function over many series are not all held at once; each batch runs as a whole
        // select did before (on several threads when worth it), outputs in stream order.
        let mut out = Vec::new();
        let size = if fold.is_some() {
            super::FOLD_BATCH
        } else {
            super::SELECT_BATCH
        };
        self.select_batches(&ms.vs, (lo, rt(r.end), r.step), size, |ev, batch| {
            if let Some(f) = fold.as_mut() {
                return ev.fold_batch(batch, r, &rt, (ms.range, track), keep_name, n, &make, f);
            }
            let part =
                ev.windows_batch(batch, lo, r, &rt, (ms.range, track), keep_name, n, &make)?;
            out.extend(part);
            Ok(())
        })?;
        if let Some(mut f) = fold {
            f.used = true;
            self.fold = Some(f);
        }
        Ok(out)
    }

    /// One batch of [`Ev::map_windows_par`] folded straight into the aggregation `fold`: the
    /// window function's value at each step goes into its group's state at that step, with
    /// no output series in between. Many cells are split by steps, not by series: each of the
    /// `n` threads slides every series' window over its own share of the steps, in input
    /// order, so each step's values are folded in the same order (and with the same
    /// arithmetic) as one thread folds them.
    #[allow(clippy::too_many_arguments)]
    fn fold_batch<F>(
        &mut self,
        series: Vec<Box<dyn Series>>,
        r: Rng,
        rt: &(dyn Fn(i64) -> i64 + Sync),
        (range, track): (i64, Track),
        keep_name: bool,
        n: usize,
        make: &(impl Fn() -> F + Sync),
        fold: &mut Fold,
    ) -> Result<()>
    where
        F: FnMut(usize, i64, i64, &[(i64, f64)], WinInfo) -> Result<Option<f64>>,
    {
        self.tick()?;
        let member: Vec<usize> = series
            .iter()
            .map(|s| fold.group_of(s.labels(), !keep_name))
            .collect();
        let base = fold.take_indices(series.len());
        let steps = r.len();
        let n = if n >= 2 && worth_splitting(series.len(), steps) {
            n.min(steps)
        } else {
            1
        };
        let per = steps.div_ceil(n);
        let ranges: Vec<Range<usize>> = (0..n)
            .map(|j| (j * per).min(steps)..((j + 1) * per).min(steps))
            .filter(|ks| !ks.is_empty())
            .collect();
        // Each share checks what it holds against what is left of the limit; the outputs
        // are added up (and checked) once the shares are done.
        let left = self.budget.max.saturating_sub(self.budget.cur);
        let stop = (self.deadline, self.cancel);
        let op = fold.op();
        let ngroups = fold.groups_len();
        let shares = fold.step_shares(&ranges);
        let job = FoldJob {
            member: &member,
            base,
            ngroups,
            op,
            r,
            rt,
            range,
            track,
            left,
            stop,
        };
        let results: Vec<Result<FoldOut>> = if ranges.len() == 1 {
            let accs = shares.into_iter().next().unwrap_or_default();
            let its = series.iter().map(|s| s.iter());
            vec![job.run(its, ranges[0].clone(), accs, &mut make())]
        } else {
            // The iterators are made here (a series is not shared between threads; its
            // iterators are) and each thread drops one as soon as it is done with it.
            let its: Vec<Vec<Box<dyn storage::SampleIterator + '_>>> = ranges
                .iter()
                .map(|_| series.iter().map(|s| s.iter()).collect())
                .collect();
            let job = &job;
            std::thread::scope(|scope| {
                let handles: Vec<_> = its
                    .into_iter()
                    .zip(shares)
                    .zip(ranges.iter().cloned())
                    .map(|((its, accs), ks)| {
                        scope.spawn(move || job.run(its.into_iter(), ks, accs, &mut make()))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            crate::error::eval_err("a query worker thread panicked")
                        })
                    })
                    .collect()
            })
        };
        let mut points = 0;
        for res in results {
            let o = res?;
            points += o.points;
            for (g, first) in o.first.into_iter().enumerate() {
                fold.note_first(g, first);
            }
        }
        // Still counted against the sample limit (released when the aggregation finishes),
        // as if the range function's output were held.
        self.budget.add(points)?;
        fold.held += points;
        Ok(())
    }

    /// One batch of [`Ev::map_windows_par`]: the windows of `series`, on `n` threads when
    /// worth it.
    #[allow(clippy::too_many_arguments)]
    fn windows_batch<F>(
        &mut self,
        series: Vec<Box<dyn Series>>,
        lo: i64,
        r: Rng,
        rt: &(dyn Fn(i64) -> i64 + Sync),
        (range, track): (i64, Track),
        keep_name: bool,
        n: usize,
        make: &(impl Fn() -> F + Sync),
    ) -> Result<Vec<RSeries>>
    where
        F: FnMut(usize, i64, i64, &[(i64, f64)], WinInfo) -> Result<Option<f64>>,
    {
        if n < 2 || !worth_splitting(series.len(), r.len()) {
            return self.windows_of(series, lo, r, rt, (range, track), keep_name, make());
        }
        // Each thread checks the samples it holds against what is left of the limit; the
        // outputs are added up (and checked) once the threads are done.
        let left = self.budget.max.saturating_sub(self.budget.cur);
        let (deadline, cancel) = (self.deadline, self.cancel);
        let per = series.len().div_ceil(n);
        let mut shares: Vec<Vec<Box<dyn Series>>> = Vec::with_capacity(n);
        let mut rest = series.into_iter();
        for _ in 0..n {
            shares.push(rest.by_ref().take(per).collect());
        }
        let results: Vec<Result<Vec<RSeries>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .into_iter()
                .map(|share| {
                    scope.spawn(move || -> Result<Vec<RSeries>> {
                        let mut f = make();
                        let mut budget = Budget { cur: 0, max: left };
                        let mut out = Vec::new();
                        for (i, s) in share.iter().enumerate() {
                            if i % 64 == 0 {
                                if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                                    return Err(Error::Canceled);
                                }
                                if Instant::now() > deadline {
                                    return Err(Error::Timeout);
                                }
                            }
                            let mut it = s.iter();
                            let pts =
                                windows(&mut *it, lo, r, rt, range, track, &mut budget, &mut f)?;
                            if !pts.is_empty() {
                                out.push(RSeries {
                                    labels: s.labels().clone(),
                                    drop_name: !keep_name,
                                    points: pts,
                                });
                            }
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        crate::error::eval_err("a query worker thread panicked")
                    })
                })
                .collect()
        });
        let mut out = Vec::new();
        for res in results {
            out.extend(res?);
        }
        // `windows` counted each output against its thread's budget; count them here.
        self.budget.add(super::points_in(&out))?;
        Ok(out)
    }

    /// `per_series` over every selected series, on several threads when there are many
    /// (contiguous shares, outputs concatenated in order). `per_series` counts what it keeps
    /// against the budget it is given; the total is counted against the query's after the join.
    pub(crate) fn map_series_par(
        &mut self,
        series: Vec<Box<dyn Series>>,
        steps: usize,
        per_series: impl Fn(&dyn Series, &mut Budget) -> Result<Option<RSeries>> + Sync,
    ) -> Result<Vec<RSeries>> {
        let n = threads();
        if n < 2 || !worth_splitting(series.len(), steps) {
            let mut out = Vec::with_capacity(series.len());
            for s in &series {
                self.tick()?;
                if let Some(o) = per_series(s.as_ref(), &mut self.budget)? {
                    out.push(o);
                }
            }
            return Ok(out);
        }
        let left = self.budget.max.saturating_sub(self.budget.cur);
        let (deadline, cancel) = (self.deadline, self.cancel);
        let per = series.len().div_ceil(n);
        let mut shares: Vec<Vec<Box<dyn Series>>> = Vec::with_capacity(n);
        let mut rest = series.into_iter();
        for _ in 0..n {
            shares.push(rest.by_ref().take(per).collect());
        }
        let per_series = &per_series;
        let results: Vec<Result<Vec<RSeries>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .into_iter()
                .map(|share| {
                    scope.spawn(move || -> Result<Vec<RSeries>> {
                        let mut budget = Budget { cur: 0, max: left };
                        let mut out = Vec::with_capacity(share.len());
                        for (i, s) in share.iter().enumerate() {
                            if i % 64 == 0 {
                                if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                                    return Err(Error::Canceled);
                                }
                                if Instant::now() > deadline {
                                    return Err(Error::Timeout);
                                }
                            }
                            if let Some(o) = per_series(s.as_ref(), &mut budget)? {
                                out.push(o);
                            }
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        crate::error::eval_err("a query worker thread panicked")
                    })
                })
                .collect()
        });
        let mut out = Vec::new();
        for res in results {
            out.extend(res?);
        }
        self.budget.add(super::points_in(&out))?;
        Ok(out)
    }

    /// The matrix-selector half of [`Ev::map_windows`] over already selected series.
    #[allow(clippy::too_many_arguments)]
    fn windows_of(
        &mut self,
        series: Vec<Box<dyn Series>>,
        lo: i64,
        r: Rng,
        rt: &dyn Fn(i64) -> i64,
        (range, track): (i64, Track),
        keep_name: bool,
        mut f: impl FnMut(usize, i64, i64, &[(i64, f64)], WinInfo) -> Result<Option<f64>>,
    ) -> Result<Vec<RSeries>> {
        let mut out = Vec::new();
        for s in &series {
            self.tick()?;
            let mut it = s.iter();
            let pts = windows(&mut *it, lo, r, rt, range, track, &mut self.budget, &mut f)?;
            if !pts.is_empty() {
                out.push(RSeries {
                    labels: s.labels().clone(),
                    drop_name: !keep_name,
                    points: pts,
                });
            }
        }
        Ok(out)
    }
}

/// What every share of [`Ev::fold_batch`] needs to know.
struct FoldJob<'a> {
    /// The group of each series of the batch.
    member: &'a [usize],
    /// The input index of the batch's first series.
    base: usize,
    ngroups: usize,
    op: AggOp,
    r: Rng,
    rt: &'a (dyn Fn(i64) -> i64 + Sync),
    range: i64,
    track: Track,
    /// What is left of the query's sample limit.
    left: usize,
    stop: (Instant, Option<&'a std::sync::atomic::AtomicBool>),
}

/// What one share of [`Ev::fold_batch`] produced.
struct FoldOut {
    /// Values folded (the range function's output points).
    points: usize,
    /// Per group, the first `(step, input series)` with a value in this share.
    first: Vec<(usize, usize)>,
}

impl FoldJob<'_> {
    /// Slides the window of every series (`its`, in input order) over steps `ks` and folds
    /// each value into `accs[group][k - ks.start]`.
    fn run<'s, F>(
        &self,
        its: impl Iterator<Item = Box<dyn SampleIterator + 's>>,
        ks: Range<usize>,
        mut accs: Vec<&mut [Acc]>,
        f: &mut F,
    ) -> Result<FoldOut>
    where
        F: FnMut(usize, i64, i64, &[(i64, f64)], WinInfo) -> Result<Option<f64>>,
    {
        let mut budget = Budget {
            cur: 0,
            max: self.left,
        };
        let mut first = vec![(usize::MAX, usize::MAX); self.ngroups];
        let lo = (self.rt)(self.r.ts(ks.start)) - self.range + 1;
        let (deadline, cancel) = self.stop;
        let op = self.op;
        let mut buf = Vec::new();
        for (i, mut it) in its.enumerate() {
            if i % 64 == 0 {
                if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                    return Err(Error::Canceled);
                }
                if Instant::now() > deadline {
                    return Err(Error::Timeout);
                }
            }
            let g = self.member[i];
            let Some(acc) = accs.get_mut(g) else {
                return crate::error::eval_err("internal error: aggregation group out of range");
            };
            let (mut count, mut k0) = (0usize, usize::MAX);
            let start = ks.start;
            slide(
                (&mut *it, &mut buf),
                lo,
                (self.r, ks.clone()),
                self.rt,
                (self.range, self.track),
                &budget,
                f,
                |k, v| {
                    if let Some(cell) = acc.get_mut(k - start) {
                        cell.add(op, v);
                    }
                    k0 = k0.min(k);
                    count += 1;
                },
            )?;
            budget.add(count)?;
            if k0 != usize::MAX {
                let at = (k0, self.base + i);
                if at < first[g] {
                    first[g] = at;
                }
            }
        }
        Ok(FoldOut {
            points: budget.cur,
            first,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::worth_splitting;

    #[test]
    fn split_by_work_not_only_series_count() {
        // A day at 60 s over 150 series (`_sum` rates per job) is split; an hour at 15 s
        // over the same series or a handful of series is not.
        assert!(worth_splitting(150, 1441));
        assert!(!worth_splitting(150, 241));
        assert!(!worth_splitting(8, 100_000));
        // Instant queries: many series still count (each costs a chunk decode).
        assert!(worth_splitting(1200, 1));
        assert!(!worth_splitting(500, 1));
    }
}
