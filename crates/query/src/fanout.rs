//! A `storage::Queryable` over N endpoints through remote read: every select asks every
//! endpoint that is up, groups the series that are equal once the replica labels are removed,
//! and merges each group with `storage::dedup`. One `Fanout` serves one request and collects
//! that request's warnings (failed or skipped endpoints).

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Arc;

use model::{Labels, Matcher, Timestamp};
use parking_lot::Mutex;
use remote::proto::ReadHints;
use remote::{LazyIter, LazySeries};
use storage::dedup::{DedupIter, Stretch, counter_like};
use storage::{Querier, Queryable, SampleIterator, SelectHints, Series, StorageError};

use crate::endpoints::Endpoint;

/// How replicas are combined for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupMode {
    /// Merge series equal without the replica labels (the default).
    On,
    /// Show every replica's series with its replica labels (`dedup=false`).
    Off,
}

/// Settings of one request's fan-out.
#[derive(Clone)]
pub struct FanoutOpts {
    pub replica_labels: Arc<Vec<String>>,
    pub dedup: DedupMode,
    /// When false, any endpoint failure fails the request.
    pub partial_response: bool,
}

/// The per-request queryable.
pub struct Fanout {
    endpoints: Arc<Vec<Arc<Endpoint>>>,
    opts: FanoutOpts,
    warnings: Arc<Mutex<Vec<String>>>,
    rt: tokio::runtime::Handle,
}

impl Fanout {
    /// Must be created inside the Tokio runtime; selects run on blocking threads.
    pub fn new(endpoints: Arc<Vec<Arc<Endpoint>>>, opts: FanoutOpts) -> Self {
        Fanout {
            endpoints,
            opts,
            warnings: Arc::default(),
            rt: tokio::runtime::Handle::current(),
        }
    }

    /// The warnings collected so far (deduplicated, in order).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().clone()
    }

    /// Reads and merges the series matching `matchers` in `[mint, maxt]`. Blocking: call from
    /// a blocking thread.
    pub fn select_merged(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> storage::Result<Vec<MergedSeries>> {
        // The selector's own window (the engine's hints) when it is narrower than the
        // querier's: an instant selector needs only its lookback before each step, a range
        // selector its range.
        let (mint, maxt) = if hints.start != 0 || hints.end != 0 {
            (mint.max(hints.start), maxt.min(hints.end))
        } else {
            (mint, maxt)
        };
        if mint > maxt {
            return Ok(Vec::new());
        }
        let read_hints = ReadHints {
            step_ms: hints.step,
            func: hints.func.clone().unwrap_or_default(),
            start_ms: mint,
            end_ms: maxt,
            ..Default::default()
        };
        let mut asked = Vec::new();
        for e in self.endpoints.iter() {
            if e.is_up() {
                asked.push(e.clone());
            } else {
                self.fail(&format!(
                    "endpoint {} is down, skipped: {}",
                    e.url,
                    e.last_error()
                ))?;
            }
        }
        // Each endpoint's read runs as its own task, so the responses are received and
        // decoded on all worker threads at once.
        let reads: Vec<_> = asked
            .iter()
            .map(|e| {
                let (e, h, ms) = (e.clone(), read_hints.clone(), matchers.to_vec());
                self.rt
                    .spawn(async move { e.read.read_lazy(mint, maxt, &ms, Some(h)).await })
            })
            .collect();
        let results = self.rt.block_on(futures_util::future::join_all(reads));
        // Groups found by a hash of the labels without the replica labels; the stripped label
        // set is built once per group.
        let mut groups: Vec<MergedSeries> = Vec::new();
        let mut index: HashMap<u64, Vec<usize>> = HashMap::new();
        let no_replica_labels: &[String] = &[];
        let ignored = match self.opts.dedup {
            DedupMode::On => self.opts.replica_labels.as_slice(),
            DedupMode::Off => no_replica_labels,
        };
        let mut answered = 0;
        for (e, r) in asked.iter().zip(results) {
            let r = match r {
                Ok(Ok(r)) => r,
                Err(join) => {
                    let msg = format!("remote read from {}: {join}", e.url);
                    self.fail(&msg)?;
                    continue;
                }
                Ok(Err(err)) => {
                    let msg = remote::error_chain(&err);
                    e.mark_down(&msg);
                    self.fail(&msg)?;
                    continue;
                }
            };
            answered += 1;
            for s in r.series {
                let h = hash_without(&s.labels, ignored);
                let slot = index.entry(h).or_default();
                let found = slot
                    .iter()
                    .copied()
                    .find(|&g| eq_without(&groups[g].labels, &s.labels, ignored));
                let g = match found {
                    Some(g) => g,
                    None => {
                        let key = strip(&s.labels, ignored);
                        groups.push(MergedSeries {
                            counter: key.metric_name().is_some_and(counter_like),
                            labels: key,
                            replicas: vec![],
                            endpoints: vec![],
                            replica_labels: self.opts.replica_labels.clone(),
                            range: (mint, maxt),
                        });
                        slot.push(groups.len() - 1);
                        groups.len() - 1
                    }
                };
                let m = &mut groups[g];
                m.endpoints.push(e.clone());
                m.replicas.push(s);
            }
        }
        if answered == 0 && !asked.is_empty() {
            return Err(StorageError::Io {
                context: format!("no endpoint answered: {}", self.warnings.lock().join("; ")),
                source: std::io::Error::other("all endpoints failed"),
            });
        }
        let mut out = groups;
        // Usually already in order (every endpoint streams its series sorted).
        if !out.is_sorted_by(|a, b| a.labels <= b.labels) {
            out.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        }
        if hints.limit > 0 {
            out.truncate(hints.limit);
        }
        Ok(out)
    }

    /// Records an endpoint failure: a warning, or the request's error in strict mode.
    fn fail(&self, msg: &str) -> storage::Result<()> {
        if !self.opts.partial_response {
            return Err(StorageError::Io {
                context: format!("partial response disabled: {msg}"),
                source: std::io::Error::other(msg.to_string()),
            });
        }
        let mut w = self.warnings.lock();
        if !w.iter().any(|x| x == msg) {
            w.push(msg.to_string());
        }
        Ok(())
    }
}

/// A hash of `labels` without the `ignored` names.
fn hash_without(labels: &Labels, ignored: &[String]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for l in labels
        .iter()
        .filter(|l| !ignored.iter().any(|r| r == l.name))
    {
        h.write(l.name.as_bytes());
        h.write_u8(0xff);
        h.write(l.value.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

/// Whether `stripped` equals `labels` without the `ignored` names.
fn eq_without(stripped: &Labels, labels: &Labels, ignored: &[String]) -> bool {
    let mut a = stripped.iter();
    let mut b = labels
        .iter()
        .filter(|l| !ignored.iter().any(|r| r == l.name));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.name == y.name && x.value == y.value => {}
            _ => return false,
        }
    }
}

/// `labels` without the replica labels.
pub fn strip(labels: &Labels, replica_labels: &[String]) -> Labels {
    if !replica_labels.iter().any(|r| labels.contains(r)) {
        return labels.clone();
    }
    Labels::from_sorted(
        labels
            .iter()
            .filter(|l| !replica_labels.iter().any(|r| r == l.name))
            .map(|l| (l.name, l.value)),
    )
}

/// Names a replica for `dedup=explain`: the endpoint and its replica label values.
fn origin(url: &str, labels: &Labels, replica_labels: &[String]) -> String {
    let vals: Vec<String> = replica_labels
        .iter()
        .filter_map(|r| labels.get(r).map(|v| format!("{r}={v:?}")))
        .collect();
    if vals.is_empty() {
        url.to_string()
    } else {
        format!("{url} {{{}}}", vals.join(","))
    }
}

/// One output series: the copies of one series from every replica, still encoded as they
/// came (decoded while iterated).
pub struct MergedSeries {
    pub labels: Labels,
    pub replicas: Vec<LazySeries>,
    /// The endpoint each copy came from.
    endpoints: Vec<Arc<Endpoint>>,
    replica_labels: Arc<Vec<String>>,
    /// Offset correction on (the name marks a counter).
    pub counter: bool,
    /// The read's inclusive time range: samples outside it are not part of the series.
    range: (Timestamp, Timestamp),
}

impl MergedSeries {
    /// Which endpoint and replica each copy came from (for `dedup=explain`).
    pub fn origins(&self) -> Vec<String> {
        self.replicas
            .iter()
            .zip(&self.endpoints)
            .map(|(s, e)| origin(&e.url, &s.labels, &self.replica_labels))
            .collect()
    }

    /// The merge over the copies' own iterator type (no dynamic call per sample).
    fn dedup_iter(&self) -> DedupIter<'_, LazyIter<'_>> {
        let (start, end) = self.range;
        let its = self.replicas.iter().map(|s| s.iter(start, end)).collect();
        DedupIter::new(its, self.counter)
    }

    /// Runs the merge and reports which replica served which stretch.
    pub fn explain(&self) -> (Option<i64>, Vec<Stretch>, usize) {
        let mut it = self.dedup_iter().with_explain();
        let mut n = 0;
        while it.next().is_some() {
            n += 1;
        }
        (it.interval(), it.stretches().to_vec(), n)
    }
}

impl Series for MergedSeries {
    fn labels(&self) -> &Labels {
        &self.labels
    }

    fn iter(&self) -> Box<dyn SampleIterator + '_> {
        match self.replicas.as_slice() {
            [one] => Box::new(one.iter(self.range.0, self.range.1)),
            _ => Box::new(self.dedup_iter()),
        }
    }
}

impl Queryable for Fanout {
    fn querier(&self, mint: Timestamp, maxt: Timestamp) -> storage::Result<Box<dyn Querier>> {
        Ok(Box::new(FanoutQuerier {
            fanout: Fanout {
                endpoints: self.endpoints.clone(),
                opts: self.opts.clone(),
                warnings: self.warnings.clone(),
                rt: self.rt.clone(),
            },
            mint,
            maxt,
        }))
    }
}

struct FanoutQuerier {
    fanout: Fanout,
    mint: Timestamp,
    maxt: Timestamp,
}

impl Querier for FanoutQuerier {
    fn select(
        &self,
        _sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> storage::Result<Vec<Box<dyn Series>>> {
        // Merged series are always sorted by labels.
        Ok(self
            .fanout
            .select_merged(self.mint, self.maxt, hints, matchers)?
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn Series>)
            .collect())
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> storage::Result<Vec<String>> {
        let hints = SelectHints {
            start: self.mint,
            end: self.maxt,
            labels_only: true,
            ..Default::default()
        };
        let mut out = std::collections::BTreeSet::new();
        for s in self
            .fanout
            .select_merged(self.mint, self.maxt, &hints, matchers)?
        {
            if let Some(v) = s.labels.get(name) {
                out.insert(v.to_string());
            }
        }
        Ok(out.into_iter().collect())
    }

    fn label_names(&self, matchers: &[Matcher]) -> storage::Result<Vec<String>> {
        let hints = SelectHints {
            start: self.mint,
            end: self.maxt,
            labels_only: true,
            ..Default::default()
        };
        let mut out = std::collections::BTreeSet::new();
        for s in self
            .fanout
            .select_merged(self.mint, self.maxt, &hints, matchers)?
        {
            for l in s.labels.iter() {
                out.insert(l.name.to_string());
            }
        }
        Ok(out.into_iter().collect())
    }
}
