//! An in-memory storage implementing the `storage` contracts, for the receiver and read server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use model::{Labels, Matcher};
use storage::{
    Appendable, Appender, Querier, Queryable, SelectHints, Series, SeriesRef, StorageError,
    VecSeries,
};

type Data = BTreeMap<Labels, Vec<(i64, f64)>>;

/// Series by label set; samples must increase in time per series (else `OutOfOrder`).
#[derive(Default, Clone)]
pub struct MemStore(Arc<Mutex<Data>>);

impl MemStore {
    pub fn snapshot(&self) -> Data {
        self.0.lock().unwrap().clone()
    }

    pub fn insert(&self, l: Labels, samples: Vec<(i64, f64)>) {
        self.0.lock().unwrap().insert(l, samples);
    }
}

struct MemAppender {
    data: Arc<Mutex<Data>>,
    pending: Vec<(Labels, i64, f64)>,
}

impl Appendable for MemStore {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(MemAppender {
            data: self.0.clone(),
            pending: vec![],
        })
    }
}

impl Appender for MemAppender {
    fn append(&mut self, r: SeriesRef, l: &Labels, t: i64, v: f64) -> storage::Result<SeriesRef> {
        let last = self
            .pending
            .iter()
            .rev()
            .find(|p| &p.0 == l)
            .map(|p| p.1)
            .or_else(|| {
                let d = self.data.lock().unwrap();
                d.get(l).and_then(|s| s.last()).map(|s| s.0)
            });
        match last {
            Some(lt) if lt == t => return Err(StorageError::DuplicateSample),
            Some(lt) if lt > t => return Err(StorageError::OutOfOrder),
            _ => {}
        }
        self.pending.push((l.clone(), t, v));
        Ok(r)
    }

    fn commit(self: Box<Self>) -> storage::Result<()> {
        let mut d = self.data.lock().unwrap();
        for (l, t, v) in self.pending {
            d.entry(l).or_default().push((t, v));
        }
        Ok(())
    }

    fn rollback(self: Box<Self>) {}
}

impl Queryable for MemStore {
    fn querier(&self, mint: i64, maxt: i64) -> storage::Result<Box<dyn Querier>> {
        Ok(Box::new(MemQuerier {
            data: self.snapshot(),
            mint,
            maxt,
        }))
    }
}

struct MemQuerier {
    data: Data,
    mint: i64,
    maxt: i64,
}

impl Querier for MemQuerier {
    fn select(
        &self,
        _sorted: bool,
        _hints: &SelectHints,
        matchers: &[Matcher],
    ) -> storage::Result<Vec<Box<dyn Series>>> {
        Ok(self
            .data
            .iter()
            .filter(|(l, _)| model::matcher::matches_all(l, matchers))
            .map(|(l, s)| {
                let samples = s
                    .iter()
                    .copied()
                    .filter(|&(t, _)| t >= self.mint && t <= self.maxt)
                    .collect();
                Box::new(VecSeries {
                    labels: l.clone(),
                    samples,
                }) as Box<dyn Series>
            })
            .collect())
    }

    fn label_values(&self, name: &str, _: &[Matcher]) -> storage::Result<Vec<String>> {
        let mut v: Vec<String> = self
            .data
            .keys()
            .filter_map(|l| l.get(name).map(str::to_string))
            .collect();
        v.dedup();
        Ok(v)
    }

    fn label_names(&self, _: &[Matcher]) -> storage::Result<Vec<String>> {
        let mut v: Vec<String> = self
            .data
            .keys()
            .flat_map(|l| l.iter().map(|l| l.name.to_string()).collect::<Vec<_>>())
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }
}
