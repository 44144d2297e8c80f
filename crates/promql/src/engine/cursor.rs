//! A forward-only view of a sample iterator for selectors whose reference time never decreases.

use storage::SampleIterator;

pub(crate) struct Cursor<'a> {
    it: &'a mut dyn SampleIterator,
    /// Where to seek before the first read.
    lo: i64,
    started: bool,
    /// The latest sample returned so far.
    cur: Option<(i64, f64)>,
    /// The first sample not yet returned.
    next: Option<(i64, f64)>,
}

impl<'a> Cursor<'a> {
    pub fn new(it: &'a mut dyn SampleIterator, lo: i64) -> Self {
        Cursor {
            it,
            lo,
            started: false,
            cur: None,
            next: None,
        }
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.next = self.it.seek(self.lo);
        }
    }

    /// The next unseen sample if its timestamp is `<= t`.
    pub fn next_up_to(&mut self, t: i64) -> Option<(i64, f64)> {
        self.start();
        match self.next {
            Some(s) if s.0 <= t => {
                self.cur = Some(s);
                self.next = self.it.next();
                Some(s)
            }
            _ => None,
        }
    }

    /// The latest sample with timestamp `<= t`.
    pub fn at_or_before(&mut self, t: i64) -> Option<(i64, f64)> {
        while self.next_up_to(t).is_some() {}
        self.cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::SliceIter;

    #[test]
    fn cursor_walks_forward() {
        let s = [(10, 1.0), (20, 2.0), (30, 3.0)];
        let mut it = SliceIter::new(&s);
        let mut c = Cursor::new(&mut it, 15);
        assert_eq!(c.at_or_before(15), None);
        assert_eq!(c.at_or_before(25), Some((20, 2.0)));
        assert_eq!(c.at_or_before(25), Some((20, 2.0)));
        assert_eq!(c.next_up_to(29), None);
        assert_eq!(c.next_up_to(30), Some((30, 3.0)));
        assert_eq!(c.at_or_before(100), Some((30, 3.0)));
    }
}
