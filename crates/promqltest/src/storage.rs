//! An in-memory [`Queryable`] for test scripts: series sorted by labels, each a sorted sample
//! vector. Series that held native histograms in the script are kept (without those samples)
//! and flagged, so the runner can tell when a query touched one and skip it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use model::matcher::matches_all;
use model::{Labels, Matcher, Timestamp};
use storage::{Querier, Queryable, Result, SelectHints, Series, StorageError, VecSeries};

#[derive(Debug, Clone)]
struct MemSeries {
    labels: Labels,
    samples: Vec<(Timestamp, f64)>,
    /// The script gave this series native-histogram samples, which we do not store.
    histograms: bool,
}

/// Series in memory. Appends keep each series sorted by time (later duplicates win).
#[derive(Debug, Default)]
pub struct MemStorage {
    series: Arc<Vec<MemSeries>>,
    touched_histograms: Arc<AtomicBool>,
}

impl MemStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Drops all data.
    pub fn clear(&mut self) {
        self.series = Arc::default();
    }

    fn entry(&mut self, labels: &Labels) -> &mut MemSeries {
        let series = Arc::make_mut(&mut self.series);
        let i = match series.binary_search_by(|s| s.labels.cmp(labels)) {
            Ok(i) => i,
            Err(i) => {
                series.insert(
                    i,
                    MemSeries {
                        labels: labels.clone(),
                        samples: Vec::new(),
                        histograms: false,
                    },
                );
                i
            }
        };
        &mut series[i]
    }

    /// Adds float samples to the series `labels`.
    pub fn add(&mut self, labels: &Labels, samples: &[(Timestamp, f64)]) {
        let s = self.entry(labels);
        s.samples.extend_from_slice(samples);
        s.samples.sort_by_key(|p| p.0);
        // Keep the last value written for a timestamp.
        let mut out: Vec<(Timestamp, f64)> = Vec::with_capacity(s.samples.len());
        for p in s.samples.drain(..) {
            match out.last_mut() {
                Some(last) if last.0 == p.0 => *last = p,
                _ => out.push(p),
            }
        }
        s.samples = out;
    }

    /// Marks `labels` as a series with native-histogram samples.
    pub fn mark_histograms(&mut self, labels: &Labels) {
        self.entry(labels).histograms = true;
    }

    /// Whether a select since the last [`MemStorage::reset_touched`] returned a series with
    /// native histograms.
    pub fn touched_histograms(&self) -> bool {
        self.touched_histograms.load(Ordering::Relaxed)
    }

    pub fn reset_touched(&self) {
        self.touched_histograms.store(false, Ordering::Relaxed);
    }

    /// Number of series held.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

struct MemQuerier {
    series: Arc<Vec<MemSeries>>,
    mint: Timestamp,
    maxt: Timestamp,
    touched: Arc<AtomicBool>,
}

impl Queryable for MemStorage {
    fn querier(&self, mint: Timestamp, maxt: Timestamp) -> Result<Box<dyn Querier>> {
        if mint > maxt {
            return Err(StorageError::Limit(format!(
                "invalid time range [{mint}, {maxt}]"
            )));
        }
        Ok(Box::new(MemQuerier {
            series: self.series.clone(),
            mint,
            maxt,
            touched: self.touched_histograms.clone(),
        }))
    }
}

impl MemQuerier {
    fn matching<'a>(&'a self, matchers: &'a [Matcher]) -> impl Iterator<Item = &'a MemSeries> + 'a {
        self.series
            .iter()
            .filter(move |s| matches_all(&s.labels, matchers))
    }
}

impl Querier for MemQuerier {
    fn select(
        &self,
        _sorted: bool,
        _hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Vec<Box<dyn Series>>> {
        let mut out: Vec<Box<dyn Series>> = Vec::new();
        for s in self.matching(matchers) {
            if s.histograms {
                self.touched.store(true, Ordering::Relaxed);
            }
            let lo = s.samples.partition_point(|p| p.0 < self.mint);
            let hi = s.samples.partition_point(|p| p.0 <= self.maxt);
            if lo < hi {
                out.push(Box::new(VecSeries {
                    labels: s.labels.clone(),
                    samples: s.samples[lo..hi].to_vec(),
                }));
            }
        }
        Ok(out)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut v: Vec<String> = self
            .matching(matchers)
            .filter_map(|s| s.labels.get(name).map(String::from))
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }

    fn label_names(&self, matchers: &[Matcher]) -> Result<Vec<String>> {
        let mut v: Vec<String> = self
            .matching(matchers)
            .flat_map(|s| {
                s.labels
                    .iter()
                    .map(|l| l.name.to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort();
        v.dedup();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_restricts_to_range_and_flags_histograms() {
        let mut m = MemStorage::new();
        let l = Labels::from_pairs([("__name__", "x")]);
        m.add(&l, &[(0, 1.0), (10, 2.0), (20, 3.0)]);
        m.add(&l, &[(10, 5.0)]);
        let q = m.querier(5, 20).unwrap();
        let s = q
            .select(
                true,
                &SelectHints::default(),
                &[Matcher::equal("__name__", "x")],
            )
            .unwrap();
        let mut it = s[0].iter();
        assert_eq!(it.next(), Some((10, 5.0)));
        assert!(!m.touched_histograms());
        m.mark_histograms(&l);
        let q = m.querier(0, 20).unwrap();
        q.select(
            true,
            &SelectHints::default(),
            &[Matcher::equal("__name__", "x")],
        )
        .unwrap();
        assert!(m.touched_histograms());
    }
}
