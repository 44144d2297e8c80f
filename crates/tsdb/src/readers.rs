//! Queriers that may still read the head below its floor.
//!
//! A head compaction writes a block, adds it to the database's block list and then truncates
//! the head (raising its floor and dropping the chunks the block now holds). A querier made
//! before the block was added holds a block list without it and reads those samples from the
//! head, perhaps long after it was made (series are selected as a query streams them), so a
//! truncation in between would take them from under it. Each querier therefore registers
//! here before it reads the floor and leaves when dropped, and a truncation, after raising the
//! floor (queriers made from then on read the new block instead), waits until the ones
//! registered before that and reaching below the new floor are gone — as Prometheus waits for
//! the head's pending readers before truncating it. The wait is bounded: a querier kept far
//! longer than any query runs does not stop the head from being truncated forever.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use model::Timestamp;
use parking_lot::{Condvar, Mutex};

/// Longest a truncation waits for readers (a query's default timeout is 2 minutes).
pub(crate) const READER_WAIT: Duration = Duration::from_secs(150);

#[derive(Debug, Default)]
pub(crate) struct HeadReaders {
    state: Mutex<State>,
    left: Condvar,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    /// Registered readers: id (in registration order) → the start of their range.
    live: BTreeMap<u64, Timestamp>,
}

/// A registered reader; leaves when dropped.
#[derive(Debug)]
pub(crate) struct ReaderGuard {
    readers: Arc<HeadReaders>,
    id: u64,
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        let mut st = self.readers.state.lock();
        st.live.remove(&self.id);
        drop(st);
        self.readers.left.notify_all();
    }
}

impl HeadReaders {
    /// Registers a reader of the range starting at `mint`.
    pub(crate) fn register(self: &Arc<Self>, mint: Timestamp) -> ReaderGuard {
        let mut st = self.state.lock();
        let id = st.next;
        st.next += 1;
        st.live.insert(id, mint);
        ReaderGuard {
            readers: self.clone(),
            id,
        }
    }

    /// Waits until no reader registered before this call reaches below `floor`, at most
    /// `timeout`; returns how many were still there when it gave up (0: none left).
    pub(crate) fn wait_below(&self, floor: Timestamp, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock();
        let before = st.next;
        loop {
            let waiting = st
                .live
                .range(..before)
                .filter(|&(_, &mint)| mint < floor)
                .count();
            if waiting == 0 {
                return 0;
            }
            if self.left.wait_until(&mut st, deadline).timed_out() {
                return waiting;
            }
        }
    }

    /// Readers registered and not yet gone.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.state.lock().live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_earlier_readers_below_the_floor_only() {
        let r = Arc::new(HeadReaders::default());
        let low = r.register(0);
        let high = r.register(1_000);
        // A reader above the floor is not waited for; one below is, until it leaves.
        assert_eq!(r.wait_below(500, Duration::from_millis(20)), 1);
        let r2 = r.clone();
        let t = std::thread::spawn(move || r2.wait_below(500, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            !t.is_finished(),
            "returned while a reader below the floor was there"
        );
        // Readers registered after the wait began are not waited for.
        let later = r.register(0);
        drop(low);
        assert_eq!(t.join().expect("waiter"), 0);
        assert_eq!(r.live(), 2);
        drop((high, later));
        assert_eq!(r.live(), 0);
        assert_eq!(r.wait_below(i64::MAX, Duration::ZERO), 0);
    }
}
