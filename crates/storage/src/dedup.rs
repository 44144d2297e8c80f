//! Deduplication of replica series: N copies of one series (the same target scraped by HA
//! replicas) merged into one sample stream with no gaps and no double counting.
//!
//! The merge is streaming: it holds one look-ahead sample per replica and a few numbers, never
//! the series. Its rules:
//! - it **learns the scrape interval** of the series from the replicas' own sample spacing (the
//!   lower median of the last [`DELTAS`] spacings recorded; once learned, only every 4th spacing
//!   of an on-time stretch is recorded), so nothing has to be configured;
//! - it **follows one replica** and emits its samples while they come at most 1.5 intervals
//!   apart;
//! - it **switches as soon as the followed replica has a gap another can fill**: when the
//!   followed replica's next sample is more than 1.5 intervals after the last output, the replica
//!   with the earliest sample inside the gap takes over (and is then followed);
//! - it **prefers real samples over staleness markers**: a staleness marker of the followed
//!   replica (a failed scrape) is emitted only when no other replica has a real sample within an
//!   interval of it;
//! - it **never emits two samples closer than half the interval** (and never two at one
//!   timestamp), so nothing is counted twice;
//! - for counters (opt-in, e.g. by metric name) it **keeps the output monotonic across a
//!   switch**: if the new replica's value is below the last output although that replica did not
//!   reset itself, its values are shifted by an offset so the output continues from the last
//!   value by the new replica's own increase — instead of showing a fake counter reset.

use std::marker::PhantomData;

use model::{Timestamp, is_stale_nan};

use crate::SampleIterator;

/// How many recent sample spacings the interval estimate is the median of.
pub const DELTAS: usize = 16;

/// How many intervals before the point a lagging replica must reach it jumps to (see
/// `skip_close`): enough to walk past at least one real sample of a regularly scraped series.
const JUMP_BACK: i64 = 3;

/// One stretch of the output served by one replica (for `dedup=explain`).
#[derive(Debug, Clone, PartialEq)]
pub struct Stretch {
    /// Index of the replica in the merge's inputs.
    pub replica: usize,
    pub first: Timestamp,
    pub last: Timestamp,
    pub samples: usize,
}

struct Input<I> {
    it: I,
    head: Option<(Timestamp, f64)>,
    /// The sample after the head, read ahead once at the start so every replica's spacing is
    /// known before the first decision.
    pending: Option<(Timestamp, f64)>,
    prev_t: Option<Timestamp>,
    /// Last real (non-stale) raw sample seen of this replica, emitted or skipped.
    prev_real: Option<(Timestamp, f64)>,
    offset: f64,
}

impl<I: SampleIterator> Input<I> {
    /// Moves past the head, remembering it. Returns the spacing to the previous sample.
    fn advance(&mut self) -> Option<i64> {
        let mut delta = None;
        if let Some((t, v)) = self.head {
            if let Some(p) = self.prev_t {
                delta = Some(t - p);
            }
            self.prev_t = Some(t);
            if !is_stale_nan(v) {
                self.prev_real = Some((t, v));
            }
        }
        self.head = match self.pending.take() {
            Some(s) => Some(s),
            None => self.it.next(),
        };
        delta
    }

    /// Moves the head to the first sample at or after `t` by seeking, so the samples between
    /// are never decoded. Their spacing is not learned; the last real sample before the new
    /// head is known again once the caller has advanced past one.
    fn jump(&mut self, t: Timestamp) {
        self.head = match self.pending.take() {
            Some(p) if p.0 >= t => Some(p),
            _ => self.it.seek(t),
        };
        self.prev_t = None;
        self.prev_real = None;
    }
}

/// Every boxed iterator is one, so merges over iterators of different types work.
impl<T: SampleIterator + ?Sized> SampleIterator for Box<T> {
    #[inline]
    fn next(&mut self) -> Option<(Timestamp, f64)> {
        (**self).next()
    }

    fn seek(&mut self, t: Timestamp) -> Option<(Timestamp, f64)> {
        (**self).seek(t)
    }

    fn max_time_hint(&self) -> Option<Timestamp> {
        (**self).max_time_hint()
    }
}

/// The merged iterator over replica iterators. See the module docs for its rules.
///
/// Generic over the replicas' iterator type so the per-sample calls into the followed
/// replica are direct (and inlined) when all replicas have one concrete type; boxed
/// iterators (the default) mix types.
pub struct DedupIter<'a, I: SampleIterator + 'a = Box<dyn SampleIterator + 'a>> {
    inputs: Vec<Input<I>>,
    cur: usize,
    /// Last output sample (value after offset correction).
    last: Option<(Timestamp, f64)>,
    /// Last real output value.
    last_real: Option<(Timestamp, f64)>,
    deltas: [i64; DELTAS],
    /// `deltas[..n_deltas.min(DELTAS)]` in ascending order, kept up to date with every spacing
    /// (one removal and one insertion) so no estimate sorts.
    sorted: [i64; DELTAS],
    n_deltas: usize,
    /// The interval estimate, updated with every new spacing.
    ival: Option<i64>,
    counter: bool,
    explain: Option<Vec<Stretch>>,
    /// Samples emitted by the fast path since its spacing was last recorded.
    fast_unrecorded: u32,
    _inputs: PhantomData<&'a ()>,
}

/// Once the interval is learned, the fast path (the followed replica on time) records only
/// every this many spacings: they are normal by definition there, and the estimate moves
/// slowly. Spacings outside the fast path are all recorded.
const FAST_RECORD_EVERY: u32 = 4;

impl<'a, I: SampleIterator + 'a> DedupIter<'a, I> {
    /// Merges `inputs` (each in time order). `counter` turns on offset correction.
    pub fn new(inputs: Vec<I>, counter: bool) -> Self {
        let inputs: Vec<Input<I>> = inputs
            .into_iter()
            .map(|mut it| {
                let head = it.next();
                let pending = head.and_then(|_| it.next());
                Input {
                    head,
                    pending,
                    it,
                    prev_t: None,
                    prev_real: None,
                    offset: 0.0,
                }
            })
            .collect();
        let first_deltas: Vec<i64> = inputs
            .iter()
            .filter_map(|i| Some(i.pending?.0 - i.head?.0))
            .collect();
        let mut d = DedupIter {
            inputs,
            cur: 0,
            last: None,
            last_real: None,
            deltas: [0; DELTAS],
            sorted: [0; DELTAS],
            n_deltas: 0,
            ival: None,
            counter,
            explain: None,
            fast_unrecorded: 0,
            _inputs: PhantomData,
        };
        for delta in first_deltas {
            d.record_delta(Some(delta));
        }
        d
    }

    /// Records which replica served which stretch (see [`DedupIter::stretches`]).
    pub fn with_explain(mut self) -> Self {
        self.explain = Some(Vec::new());
        self
    }

    /// The stretches served so far, when built [`with_explain`](Self::with_explain).
    pub fn stretches(&self) -> &[Stretch] {
        self.explain.as_deref().unwrap_or(&[])
    }

    /// The learned scrape interval (ms), once two samples of a replica were seen.
    pub fn interval(&self) -> Option<i64> {
        self.ival
    }

    #[inline]
    fn record_delta(&mut self, d: Option<i64>) {
        let Some(d) = d.filter(|&d| d > 0) else {
            return;
        };
        let slot = self.n_deltas % DELTAS;
        let mut n = self.n_deltas.min(DELTAS);
        if self.n_deltas >= DELTAS {
            // The spacing that leaves the window leaves the sorted copy.
            let old = self.deltas[slot];
            if old != d {
                let at = self.sorted[..n].partition_point(|&x| x < old);
                self.sorted.copy_within(at + 1..n, at);
                n -= 1;
                let to = self.sorted[..n].partition_point(|&x| x < d);
                self.sorted.copy_within(to..n, to + 1);
                self.sorted[to] = d;
            }
        } else {
            let to = self.sorted[..n].partition_point(|&x| x < d);
            self.sorted.copy_within(to..n, to + 1);
            self.sorted[to] = d;
        }
        self.deltas[slot] = d;
        self.n_deltas += 1;
        // Re-estimated with every spacing while learning, then every 4th one (it moves slowly).
        if self.n_deltas > DELTAS && !self.n_deltas.is_multiple_of(4) {
            return;
        }
        let n = self.n_deltas.min(DELTAS);
        // The lower median: with two spacings, the smaller (the other may span an outage).
        self.ival = Some(self.sorted[(n - 1) / 2]);
    }

    fn advance(&mut self, i: usize) {
        let d = self.inputs[i].advance();
        self.record_delta(d);
    }

    /// Whether the followed replica has ended and no other can add a sample after the last
    /// output, known from their metadata alone: then they are never decoded to the end.
    fn others_done(&self) -> bool {
        let (Some((lt, _)), Some(ival)) = (self.last, self.ival) else {
            return false;
        };
        if self.inputs[self.cur].head.is_some() {
            return false;
        }
        let min_t = lt + (ival / 2).max(1);
        self.inputs.iter().all(|inp| {
            inp.head.is_none_or(|h| h.0 < min_t)
                && inp.pending.is_none_or(|p| p.0 < min_t)
                && inp.it.max_time_hint().is_some_and(|m| m < min_t)
        })
    }

    /// Drops every head that is too close to the last output.
    fn skip_close(&mut self) {
        let Some((lt, _)) = self.last else { return };
        let ival = self.interval().unwrap_or(0);
        let min_t = lt + (ival / 2).max(1);
        // A replica far behind (not followed for a while) jumps to a few intervals before
        // `min_t` instead of walking there: the last few samples are walked, so its last real
        // sample before the head (the counter offset's reference) is known as before.
        let near = min_t.saturating_sub(JUMP_BACK * ival.max(1));
        for i in 0..self.inputs.len() {
            if ival > 0 && self.inputs[i].head.is_some_and(|(t, _)| t < near) {
                self.inputs[i].jump(near);
            }
            while self.inputs[i].head.is_some_and(|(t, _)| t < min_t) {
                self.advance(i);
            }
        }
    }

    /// The replica whose head is the earliest, preferring real samples, among `pred`.
    fn earliest(&self, pred: impl Fn(usize, Timestamp, f64) -> bool) -> Option<usize> {
        let mut best: Option<(bool, Timestamp, usize)> = None;
        for (i, inp) in self.inputs.iter().enumerate() {
            let Some((t, v)) = inp.head else { continue };
            if !pred(i, t, v) {
                continue;
            }
            let key = (is_stale_nan(v), t, i);
            if best.is_none_or(|b| key < b) {
                best = Some(key);
            }
        }
        best.map(|b| b.2)
    }

    /// Another replica whose head is a staleness marker inside the window where the followed
    /// replica has a gap or a staleness marker: it may hide a real sample right behind it.
    fn hiding_stale(&self) -> Option<usize> {
        let (last, ival) = (self.last?, self.interval()?);
        let (tc, vc) = self.inputs[self.cur].head?;
        let until = if is_stale_nan(vc) {
            tc + ival
        } else if tc - last.0 > ival + ival / 2 {
            tc - ival / 2 - 1
        } else {
            return None;
        };
        self.inputs.iter().enumerate().position(|(i, inp)| {
            i != self.cur && inp.head.is_some_and(|(t, v)| is_stale_nan(v) && t <= until)
        })
    }

    fn choose(&self) -> Option<usize> {
        let cur = self.cur;
        let ival = self.interval();
        let Some(last) = self.last else {
            // Start with the earliest real sample.
            return self.earliest(|_, _, _| true);
        };
        let Some((tc, vc)) = self.inputs[cur].head else {
            return self.earliest(|_, _, _| true);
        };
        let Some(ival) = ival else { return Some(cur) };
        if is_stale_nan(vc) {
            // A staleness marker loses against another replica's real sample around it.
            let other = self.earliest(|i, t, v| i != cur && !is_stale_nan(v) && t <= tc + ival);
            return Some(other.unwrap_or(cur));
        }
        if tc - last.0 > ival + ival / 2 {
            // The followed replica has a gap: take the first real sample inside it.
            let other = self.earliest(|i, t, v| i != cur && !is_stale_nan(v) && t < tc - ival / 2);
            return Some(other.unwrap_or(cur));
        }
        Some(cur)
    }

    /// On a switch to replica `i` whose sample `(t, raw)` would make the counter dip although
    /// `i` did not reset itself, shifts `i` so the output continues from the last value.
    fn correct_offset(&mut self, i: usize, t: Timestamp, raw: f64) {
        let Some((lt, l)) = self.last_real else {
            return;
        };
        let inp = &mut self.inputs[i];
        if raw + inp.offset >= l {
            return;
        }
        inp.offset = match inp.prev_real {
            // Continue from the last output by this replica's own increase since then
            // (interpolated between its samples around the last output).
            Some((pt, p)) if p <= raw => {
                let f = if t > pt {
                    ((lt - pt) as f64 / (t - pt) as f64).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                l - (p + (raw - p) * f)
            }
            // No history here: continue flat.
            None => l - raw,
            // The replica itself reset: a real reset, shown as one.
            Some(_) => inp.offset,
        };
    }

    fn emit(&mut self, i: usize) -> Option<(Timestamp, f64)> {
        let (t, raw) = self.inputs[i].head?;
        let switched = i != self.cur || self.last.is_none();
        if self.counter && !is_stale_nan(raw) && switched {
            self.correct_offset(i, t, raw);
        }
        self.cur = i;
        let v = if is_stale_nan(raw) {
            raw
        } else {
            raw + self.inputs[i].offset
        };
        self.advance(i);
        self.last = Some((t, v));
        if !is_stale_nan(v) {
            self.last_real = Some((t, v));
        }
        self.note_explain(i, t);
        Some((t, v))
    }

    fn note_explain(&mut self, i: usize, t: Timestamp) {
        if let Some(ex) = &mut self.explain {
            match ex.last_mut() {
                Some(s) if s.replica == i => {
                    s.last = t;
                    s.samples += 1;
                }
                _ => ex.push(Stretch {
                    replica: i,
                    first: t,
                    last: t,
                    samples: 1,
                }),
            }
        }
    }
}

impl<'a, I: SampleIterator + 'a> SampleIterator for DedupIter<'a, I> {
    fn next(&mut self) -> Option<(Timestamp, f64)> {
        // Fast path, the common case: the followed replica's next sample is real and on time.
        // The other replicas' heads are dropped lazily by the slow path.
        if let (Some((lt, _)), Some(ival), Some((tc, vc))) =
            (self.last, self.ival, self.inputs[self.cur].head)
            && !is_stale_nan(vc)
            && tc >= lt + (ival / 2).max(1)
            && tc - lt <= ival + ival / 2
        {
            // `emit` without the switch and staleness checks that cannot apply here.
            let cur = self.cur;
            let inp = &mut self.inputs[cur];
            let v = vc + inp.offset;
            let d = inp.advance();
            self.fast_unrecorded += 1;
            if self.n_deltas < DELTAS || self.fast_unrecorded >= FAST_RECORD_EVERY {
                self.fast_unrecorded = 0;
                self.record_delta(d);
            }
            self.last = Some((tc, v));
            self.last_real = self.last;
            if self.explain.is_some() {
                self.note_explain(cur, tc);
            }
            return self.last;
        }
        if self.others_done() {
            return None;
        }
        self.skip_close();
        while let Some(i) = self.hiding_stale() {
            self.advance(i);
        }
        let i = self.choose()?;
        self.emit(i)
    }

    fn seek(&mut self, t: Timestamp) -> Option<(Timestamp, f64)> {
        if let Some(l) = self.last.filter(|l| l.0 >= t) {
            return Some(l);
        }
        // Walk forward so the interval estimate and counter offsets stay right.
        loop {
            let s = self.next()?;
            if s.0 >= t {
                return Some(s);
            }
        }
    }
}

/// Whether a metric name marks a counter by convention (`_total`, `_count`, `_sum`,
/// `_bucket`): the series that get offset correction when remote read carries no type.
pub fn counter_like(name: &str) -> bool {
    ["_total", "_count", "_sum", "_bucket"]
        .iter()
        .any(|s| name.ends_with(s))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use model::STALE_NAN;

    use super::*;
    use crate::SliceIter;

    fn merge(inputs: &[Vec<(i64, f64)>], counter: bool) -> Vec<(i64, f64)> {
        let its: Vec<Box<dyn SampleIterator + '_>> = inputs
            .iter()
            .map(|s| Box::new(SliceIter::new(s)) as Box<dyn SampleIterator>)
            .collect();
        let mut d = DedupIter::new(its, counter);
        let mut out = Vec::new();
        while let Some(s) = d.next() {
            out.push(s);
        }
        out
    }

    fn grid(from: i64, to: i64, step: i64, phase: i64, f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
        (from..=to)
            .step_by(step as usize)
            .map(|t| (t + phase, f(t + phase)))
            .collect()
    }

    fn ts(s: &[(i64, f64)]) -> Vec<i64> {
        s.iter().map(|x| x.0).collect()
    }

    #[test]
    fn table() {
        let a = grid(0, 100, 10, 0, |t| t as f64);
        let b = grid(0, 100, 10, 4, |t| t as f64);
        // (name, inputs, expected timestamps)
        let mut a_gap = a.clone();
        a_gap.retain(|s| !(30..=60).contains(&s.0));
        let mut a_stale = a.clone();
        a_stale[4].1 = STALE_NAN; // t=40
        type Case = (&'static str, Vec<Vec<(i64, f64)>>, Vec<i64>);
        let cases: Vec<Case> = vec![
            ("one replica", vec![a.clone()], ts(&a)),
            ("identical", vec![a.clone(), a.clone()], ts(&a)),
            (
                "phase shifted follows the first",
                vec![a.clone(), b.clone()],
                ts(&a),
            ),
            (
                "gap filled from b at once",
                vec![a_gap.clone(), b.clone()],
                vec![0, 10, 20, 34, 44, 54, 64, 74, 84, 94, 104],
            ),
            (
                "stale marker of a loses to b",
                vec![a_stale.clone(), b.clone()],
                vec![0, 10, 20, 30, 44, 54, 64, 74, 84, 94, 104],
            ),
            ("b empty", vec![vec![], a.clone()], ts(&a)),
            ("both empty", vec![vec![], vec![]], vec![]),
        ];
        for (name, inputs, want) in cases {
            let got = merge(&inputs, false);
            assert_eq!(ts(&got), want, "{name}");
            assert!(got.iter().all(|s| !is_stale_nan(s.1)), "{name}: {got:?}");
        }
    }

    #[test]
    fn stale_kept_when_no_replica_has_data() {
        let mut a = grid(0, 50, 10, 0, |_| 1.0);
        a.push((60, STALE_NAN));
        let mut b = grid(0, 50, 10, 3, |_| 1.0);
        b.push((63, STALE_NAN));
        let got = merge(&[a, b], false);
        assert_eq!(ts(&got), vec![0, 10, 20, 30, 40, 50, 60]);
        assert!(is_stale_nan(got[6].1));
    }

    #[test]
    fn counter_offset_instead_of_reset() {
        // Replica b's counter runs 1000 below a's (it started later); a dies at 50.
        let a = grid(0, 50, 10, 0, |t| 1000.0 + t as f64);
        let b = grid(0, 120, 10, 5, |t| t as f64);
        let got = merge(&[a, b.clone()], true);
        assert!(got.windows(2).all(|w| w[1].1 >= w[0].1), "{got:?}");
        // After the switch the output grows by b's own increase (1 per ms) from a's last value.
        let last = got.last().unwrap();
        assert_eq!(*last, (125, 1050.0 + 75.0));
        // Without the counter hint, values are b's own (a gauge must not be shifted).
        let got = merge(&[grid(0, 50, 10, 0, |t| 1000.0 + t as f64), b], false);
        assert_eq!(got.last().unwrap().1, 125.0);
    }

    /// An iterator that knows where it ends and counts what it was asked for.
    struct Hinted<'a>(SliceIter<'a>, i64, &'a AtomicUsize);

    impl SampleIterator for Hinted<'_> {
        fn next(&mut self) -> Option<(i64, f64)> {
            self.2.fetch_add(1, Ordering::Relaxed);
            self.0.next()
        }
        fn seek(&mut self, t: i64) -> Option<(i64, f64)> {
            self.2.fetch_add(1, Ordering::Relaxed);
            self.0.seek(t)
        }
        fn max_time_hint(&self) -> Option<i64> {
            Some(self.1)
        }
    }

    #[test]
    fn ended_replicas_not_read_to_the_end() {
        let a = grid(0, 1000, 10, 0, |t| t as f64);
        let b = grid(0, 1000, 10, 4, |t| t as f64);
        let (na, nb) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let its: Vec<Box<dyn SampleIterator>> = vec![
            Box::new(Hinted(SliceIter::new(&a), 1000, &na)),
            Box::new(Hinted(SliceIter::new(&b), 1004, &nb)),
        ];
        let mut d = DedupIter::new(its, false);
        let mut out = vec![];
        while let Some(s) = d.next() {
            out.push(s.0);
        }
        assert_eq!(out, ts(&a));
        let nb_reads = nb.load(Ordering::Relaxed);
        assert!(nb_reads <= 3, "b read {nb_reads} times");
        // When b does reach past a's end, its samples there are merged as before.
        let b = grid(0, 1100, 10, 4, |t| t as f64);
        let its: Vec<Box<dyn SampleIterator>> = vec![
            Box::new(Hinted(SliceIter::new(&a), 1000, &na)),
            Box::new(Hinted(SliceIter::new(&b), 1104, &nb)),
        ];
        let mut d = DedupIter::new(its, false);
        let mut last = None;
        while let Some(s) = d.next() {
            last = Some(s.0);
        }
        assert_eq!(last, Some(1104));
    }

    /// The interval estimate follows a series whose spacing shrinks within the on-time range
    /// (where only every few spacings are recorded), and the merge then still fills a gap.
    #[test]
    fn interval_follows_a_change_on_the_fast_path() {
        let mut a = grid(0, 99_000, 1000, 0, |t| t as f64);
        a.extend(grid(99_800, 99_800 + 199 * 800, 800, 0, |t| t as f64));
        let end = a.last().unwrap().0;
        let its: Vec<Box<dyn SampleIterator>> = vec![Box::new(SliceIter::new(&a))];
        let mut d = DedupIter::new(its, false);
        while d.next().is_some() {}
        assert_eq!(d.interval(), Some(800));
        // b fills a 4-interval hole of a at once (1.5 x 800 after the last output).
        let mut a2 = a.clone();
        a2.retain(|s| !(end - 20 * 800..end - 16 * 800).contains(&s.0));
        let b = grid(end - 40 * 800, end, 800, 300, |t| t as f64);
        let got = merge(&[a2, b], false);
        assert!(got.windows(2).all(|w| w[1].0 - w[0].0 <= 1200), "gap left");
    }

    #[test]
    fn real_reset_kept() {
        let a = vec![(0, 5.0), (10, 6.0), (20, 1.0), (30, 2.0)];
        let got = merge(&[a.clone(), a], true);
        assert_eq!(got, vec![(0, 5.0), (10, 6.0), (20, 1.0), (30, 2.0)]);
    }

    #[test]
    fn explain_and_seek() {
        let mut a = grid(0, 100, 10, 0, |t| t as f64);
        a.retain(|s| s.0 < 50);
        let b = grid(0, 100, 10, 5, |t| t as f64);
        let its: Vec<Box<dyn SampleIterator>> =
            vec![Box::new(SliceIter::new(&a)), Box::new(SliceIter::new(&b))];
        let mut d = DedupIter::new(its, false).with_explain();
        assert_eq!(d.seek(35), Some((40, 40.0)));
        assert_eq!(d.seek(35), Some((40, 40.0)));
        while d.next().is_some() {}
        assert_eq!(
            d.stretches(),
            &[
                Stretch {
                    replica: 0,
                    first: 0,
                    last: 40,
                    samples: 5
                },
                Stretch {
                    replica: 1,
                    first: 45,
                    last: 105,
                    samples: 7
                },
            ]
        );
        assert_eq!(d.interval(), Some(10));
    }

    /// Deterministic pseudo-random numbers for the property test (no extra dependency).
    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    /// Two or three replicas scrape one counter at different phases with random outages and
    /// failed scrapes: the output is strictly increasing in time with spacing >= half the
    /// interval, has no gap longer than 1.5 intervals where some replica had a real sample
    /// inside, has no staleness marker while another replica had data, and never decreases.
    #[test]
    fn property_random_outages() {
        const IVAL: i64 = 1000;
        for seed0 in 0..300u64 {
            let mut seed = seed0 + 1;
            let n = 2 + (lcg(&mut seed) % 2) as usize;
            let rate = 1.0 + (lcg(&mut seed) % 10) as f64;
            let mut inputs = Vec::new();
            for _ in 0..n {
                let phase = (lcg(&mut seed) % IVAL as u64) as i64;
                let down_from = (lcg(&mut seed) % 200) as i64 * IVAL;
                let down_len = (lcg(&mut seed) % 40) as i64 * IVAL;
                let mut s = Vec::new();
                for k in 0..200 {
                    let t = k * IVAL + phase + (lcg(&mut seed) % 20) as i64;
                    if t >= down_from && t < down_from + down_len {
                        continue;
                    }
                    let v = if lcg(&mut seed).is_multiple_of(25) {
                        STALE_NAN
                    } else {
                        t as f64 * rate
                    };
                    s.push((t, v));
                }
                inputs.push(s);
            }
            let out = merge(&inputs, true);
            for w in out.windows(2) {
                assert!(w[1].0 - w[0].0 >= IVAL / 2 - 20, "seed {seed0}: {w:?}");
                let (a, b) = (w[0], w[1]);
                if !is_stale_nan(a.1) && !is_stale_nan(b.1) {
                    assert!(b.1 >= a.1, "seed {seed0}: counter dipped {w:?}");
                }
                if b.0 - a.0 > IVAL * 3 / 2 + 40 {
                    // A gap: no replica may have had a real sample well inside it.
                    for inp in &inputs {
                        let near: Vec<_> = inp
                            .iter()
                            .filter(|s| s.0 > a.0 - 3000 && s.0 < b.0 + 1000)
                            .collect();
                        assert!(
                            !inp.iter().any(|&(t, v)| !is_stale_nan(v)
                                && t > a.0 + IVAL / 2 + 40
                                && t < b.0 - IVAL / 2 - 40),
                            "seed {seed0}: gap {w:?} fillable {near:?}"
                        );
                    }
                }
            }
            // Same underlying counter: values equal the truth (no offsets were needed).
            for &(t, v) in &out {
                if !is_stale_nan(v) {
                    assert_eq!(v, t as f64 * rate, "seed {seed0} at {t}");
                }
            }
            // Never more samples than the densest possible single replica.
            assert!(out.len() <= 200 * 2, "seed {seed0}");
        }
    }
}
