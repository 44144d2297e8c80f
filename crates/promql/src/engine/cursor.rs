//! A forward-only view of a sample iterator for selectors whose reference time never decreases.
//! Samples are read many steps ahead at a time ([`SampleIterator::next_until`]), not one call
//! per sample.

use storage::SampleIterator;

/// How far past the reference time a cursor reads ahead, in steps: one storage call per this
/// many steps (a chunk's worth at the usual 15 s data / 60 s step) instead of one per step.
const AHEAD_STEPS: i64 = 32;
/// Most a cursor reads ahead, unless one step is longer (then one step): what one series
/// buffers stays a few hours of samples.
const AHEAD_MAX_MS: i64 = 2 * 3600 * 1000;

pub(crate) struct Cursor<'a> {
    it: &'a mut dyn SampleIterator,
    /// Where to seek before the first read.
    lo: i64,
    /// How far past the requested time a read from `it` goes.
    ahead: i64,
    started: bool,
    /// The latest sample returned so far.
    cur: Option<(i64, f64)>,
    /// Samples read ahead: `buf[pos..]` are not returned yet.
    buf: Vec<(i64, f64)>,
    pos: usize,
    /// The first sample after `buf` (read from `it`, not returned yet); `None` at the end.
    pending: Option<(i64, f64)>,
}

impl<'a> Cursor<'a> {
    /// A cursor over `it` from `lo` for reference times `step` apart (any positive value
    /// when they are not evenly spaced; it only sets how far reads go ahead).
    pub fn new(it: &'a mut dyn SampleIterator, lo: i64, step: i64) -> Self {
        Cursor {
            it,
            lo,
            ahead: read_ahead(step),
            started: false,
            cur: None,
            buf: Vec::new(),
            pos: 0,
            pending: None,
        }
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.pending = self.it.seek(self.lo);
        }
    }

    /// The latest sample with timestamp `<= t`.
    pub fn at_or_before(&mut self, t: i64) -> Option<(i64, f64)> {
        self.start();
        loop {
            let rest = &self.buf[self.pos..];
            let k = rest.iter().position(|s| s.0 > t).unwrap_or(rest.len());
            if k > 0 {
                self.pos += k;
                self.cur = Some(self.buf[self.pos - 1]);
            }
            if self.pos < self.buf.len() {
                break;
            }
            // All read-ahead samples are passed: read on from the storage if there is more up
            // to `t` (at most once per call: the read covers `t`).
            match self.pending {
                Some(s) if s.0 <= t => {
                    self.buf.clear();
                    self.pos = 0;
                    self.buf.push(s);
                    self.pending = self
                        .it
                        .next_until(t.saturating_add(self.ahead), &mut self.buf);
                }
                _ => break,
            }
        }
        self.cur
    }
}

/// How far past time `t` a read covers for reference times `step` apart (see [`AHEAD_STEPS`]).
pub(crate) fn read_ahead(step: i64) -> i64 {
    let step = step.max(1);
    step.saturating_mul(AHEAD_STEPS).min(step.max(AHEAD_MAX_MS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::SliceIter;

    #[test]
    fn cursor_walks_forward() {
        let s = [(10, 1.0), (20, 2.0), (30, 3.0)];
        let mut it = SliceIter::new(&s);
        let mut c = Cursor::new(&mut it, 15, 10);
        assert_eq!(c.at_or_before(15), None);
        assert_eq!(c.at_or_before(25), Some((20, 2.0)));
        assert_eq!(c.at_or_before(25), Some((20, 2.0)));
        assert_eq!(c.at_or_before(29), Some((20, 2.0)));
        assert_eq!(c.at_or_before(30), Some((30, 3.0)));
        assert_eq!(c.at_or_before(100), Some((30, 3.0)));
    }

    #[test]
    fn reading_ahead_finds_the_latest_sample_at_every_step() {
        let s: Vec<(i64, f64)> = (0..1000).map(|i| (i * 7, i as f64)).collect();
        for step in [1, 5, 13, 100, 10_000] {
            let mut it = SliceIter::new(&s);
            let mut c = Cursor::new(&mut it, 20, step);
            for k in 0..=7000 / step + 1 {
                let t = k * step;
                let want = s.iter().rev().find(|p| p.0 <= t && p.0 >= 20).copied();
                assert_eq!(c.at_or_before(t), want, "step {step} t {t}");
            }
        }
    }
}
