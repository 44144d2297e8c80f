//! What `vigil query` needs to push a whole PromQL query down to one replica instead of
//! merging every replica's samples:
//!
//! - `GET /api/v1/vigil/coverage?start=&end=`: how complete this server's data is over a
//!   window, read from its own `up` series (a failed scrape writes `up` 0; a server that was
//!   down, or had not started yet, wrote no `up` at all, and the WAL keeps that across
//!   restarts): since when every target has been scraped successfully at every interval
//!   (`cleanSince`), its first scrape in the window (`first`), a fingerprint of the targets, the
//!   external labels, and the engine settings that change results.
//! - `GET|POST /api/v1/vigil/query` and `/api/v1/vigil/query_range`: the usual query API, but
//!   evaluated over the local storage as remote read serves it (external labels attached,
//!   equality matchers on them dropped), with the `drop_label` labels removed — the labels
//!   `vigil query` gives merged series. Remote-read endpoints of the server's own config are
//!   not read (they are not part of what it serves over remote read either).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use model::{Labels, MatchType, Matcher, Timestamp};
use promapi::Params;
use serde_json::{Value, json};
use storage::{Querier, Queryable, SampleIterator, SelectHints, Series, SeriesSet};
use web::api::{ApiError, ApiResult, ok};

use crate::app::App;
use crate::http_compat::FormBody;
use crate::query_api::{Endpoint, answer};

/// How far before the window `up` is read, to see whether the window starts inside a gap.
const BEFORE_WINDOW_MS: i64 = 5 * 60_000;

/// The local storage with external labels attached and some labels removed.
struct ExternalView {
    db: Arc<dyn Queryable>,
    external: Labels,
    drop: Vec<String>,
}

impl Queryable for ExternalView {
    fn querier(&self, mint: Timestamp, maxt: Timestamp) -> storage::Result<Box<dyn Querier>> {
        let add = Labels::from_sorted(
            self.external
                .iter()
                .filter(|l| !self.drop.iter().any(|d| d == l.name))
                .map(|l| (l.name, l.value)),
        );
        Ok(Box::new(ExternalQuerier {
            inner: self.db.querier(mint, maxt)?,
            external: self.external.clone(),
            add,
            drop: self.drop.clone(),
        }))
    }
}

struct ExternalQuerier {
    inner: Box<dyn Querier>,
    external: Labels,
    /// The external labels that stay (the others are dropped anyway).
    add: Labels,
    drop: Vec<String>,
}

impl ExternalQuerier {
    /// Remote read's rule: equality matchers on external labels that hold are dropped
    /// (stored series do not carry them); the others apply to the stored labels.
    fn matchers(&self, ms: &[Matcher]) -> Vec<Matcher> {
        ms.iter()
            .filter(|m| {
                !(m.kind == MatchType::Equal
                    && self.external.get(&m.name) == Some(m.value.as_str()))
            })
            .cloned()
            .collect()
    }

    /// The series under its new labels; whether they changed.
    fn wrap(&self, s: Box<dyn Series>) -> (Box<dyn Series>, bool) {
        wrap(&self.add, &self.drop, s)
    }
}

/// The labels of a stored series as `vigil query` gives them (`add` attached where missing,
/// `drop` removed), or `None` when unchanged (the usual case when the only external labels are
/// replica labels).
fn relabel(add: &Labels, drop: &[String], l: &Labels) -> Option<Labels> {
    let adds = add.iter().any(|e| !l.contains(e.name));
    if !adds && !drop.iter().any(|d| l.contains(d)) {
        return None;
    }
    let mut b = l.builder();
    for e in add.iter() {
        if !l.contains(e.name) {
            b.set(e.name, e.value);
        }
    }
    for d in drop {
        b.del(d);
    }
    Some(b.labels())
}

/// `s` under its new labels; whether they changed.
fn wrap(add: &Labels, drop: &[String], s: Box<dyn Series>) -> (Box<dyn Series>, bool) {
    match relabel(add, drop, s.labels()) {
        None => (s, false),
        Some(labels) => (Box::new(Relabelled { inner: s, labels }), true),
    }
}

/// A stored series under the labels remote read would give it.
struct Relabelled {
    inner: Box<dyn Series>,
    labels: Labels,
}

impl Series for Relabelled {
    fn labels(&self) -> &Labels {
        &self.labels
    }

    fn iter(&self) -> Box<dyn SampleIterator + '_> {
        self.inner.iter()
    }

    fn raw_chunks(&self) -> Option<Vec<storage::RawChunk<'_>>> {
        self.inner.raw_chunks()
    }
}

impl Querier for ExternalQuerier {
    fn select(
        &self,
        sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> storage::Result<Vec<Box<dyn Series>>> {
        let ms = self.matchers(matchers);
        if ms.is_empty() {
            return Ok(Vec::new());
        }
        let mut changed = false;
        let mut out: Vec<Box<dyn Series>> = self
            .inner
            .select(sorted, hints, &ms)?
            .into_iter()
            .map(|s| {
                let (s, c) = self.wrap(s);
                changed |= c;
                s
            })
            .collect();
        // Changed labels can change the order (`{a="1"}` sorts after `{}` but before
        // `{e="x"}`).
        if sorted && changed {
            out.sort_by(|a, b| a.labels().cmp(b.labels()));
        }
        Ok(out)
    }

    fn select_iter(
        &self,
        sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> storage::Result<SeriesSet<'_>> {
        // Only dropping labels: series stream through (a stored series carrying a replica
        // label itself is rare; the order can then differ from the merge path's).
        if self.add.is_empty() {
            let ms = self.matchers(matchers);
            if ms.is_empty() {
                return Ok(Box::new(std::iter::empty()));
            }
            let it = self.inner.select_iter(sorted, hints, &ms)?;
            let (add, drop) = (self.add.clone(), self.drop.clone());
            return Ok(Box::new(it.map(move |r| r.map(|s| wrap(&add, &drop, s).0))));
        }
        Ok(Box::new(
            self.select(sorted, hints, matchers)?.into_iter().map(Ok),
        ))
    }

    fn label_values(&self, name: &str, matchers: &[Matcher]) -> storage::Result<Vec<String>> {
        if self.drop.iter().any(|d| d == name) {
            return Ok(Vec::new());
        }
        let mut v = self.inner.label_values(name, &self.matchers(matchers))?;
        if let Some(e) = self.external.get(name)
            && !v.iter().any(|x| x == e)
        {
            v.push(e.to_string());
            v.sort();
        }
        Ok(v)
    }

    fn label_names(&self, matchers: &[Matcher]) -> storage::Result<Vec<String>> {
        let mut v = self.inner.label_names(&self.matchers(matchers))?;
        v.extend(self.external.iter().map(|l| l.name.to_string()));
        v.retain(|n| !self.drop.iter().any(|d| d == n));
        v.sort();
        v.dedup();
        Ok(v)
    }
}

fn view(app: &App, p: &Params) -> Arc<dyn Queryable> {
    Arc::new(ExternalView {
        db: app.db().clone(),
        external: app.config().external_labels(),
        drop: p.all("drop_label").into_iter().map(String::from).collect(),
    })
}

fn refuse_agent(app: &App) -> Result<(), ApiError> {
    if app.flags().agent_mode() {
        return Err(ApiError::new(
            web::api::ErrorType::Unavailable,
            "unavailable with Prometheus Agent",
        ));
    }
    Ok(())
}

/// `GET|POST /api/v1/vigil/query`: `/api/v1/query` as `vigil query` would answer it from
/// this server's remote read alone (external labels attached, `drop_label`s removed).
pub async fn query(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    FormBody(body): FormBody,
) -> Response {
    let p = Params::parse(q.as_deref(), &body);
    let view = refuse_agent(&app).map(|()| view(&app, &p));
    answer(&app, &p, Endpoint::Instant, view).await
}

/// `GET|POST /api/v1/vigil/query_range`: like [`query`] for `/api/v1/query_range`.
pub async fn query_range(
    State(app): State<App>,
    RawQuery(q): RawQuery,
    FormBody(body): FormBody,
) -> Response {
    let p = Params::parse(q.as_deref(), &body);
    let view = refuse_agent(&app).map(|()| view(&app, &p));
    answer(&app, &p, Endpoint::Range, view).await
}

/// Completeness of the scrapes over one window, from the `up` series.
#[derive(Debug, Default, PartialEq)]
pub struct Coverage {
    /// The first `up` sample (any target) from shortly before the window on.
    pub first: Option<Timestamp>,
    /// Every target was scraped successfully at every interval from here to the window's end;
    /// `None` when that does not hold at the end either (or nothing is scraped).
    pub clean_since: Option<Timestamp>,
    /// The largest scrape interval seen.
    pub interval: i64,
    pub targets: usize,
    /// Order-independent hash of the targets' `up` label sets.
    pub fingerprint: u64,
    /// The targets not scraped at every interval of the whole window (usually none).
    pub imperfect: Vec<TargetCoverage>,
}

/// One target's scrapes over a window, when they were not all successful.
#[derive(Debug, Default, PartialEq)]
pub struct TargetCoverage {
    /// Hash of its `up` labels.
    pub target: u64,
    /// Its first `up` sample from shortly before the window on.
    pub first: Timestamp,
    /// Where it has no successful scrape: (last success or first sample, next success or the
    /// window's end), inside or overlapping the window, in order.
    pub bad: Vec<(Timestamp, Timestamp)>,
}

/// One target's `up` samples up to `end` in time order → (interval, where it was not
/// scraped successfully). `now` tells how much of the end may still be in flight.
fn target_gaps(
    samples: &[(Timestamp, f64)],
    end: Timestamp,
    now: Timestamp,
) -> (i64, Vec<(Timestamp, Timestamp)>) {
    let Some(&(first, _)) = samples.first() else {
        return (0, Vec::new());
    };
    // Its scrape interval: the smallest spacing (a missed scrape doubles one, jitter
    // shortens none by much). One sample: unknown, so nothing after it is known complete.
    let Some(ival) = samples
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .filter(|&d| d > 0)
        .min()
    else {
        return (0, vec![(first, end.max(first))]);
    };
    let gap = ival * 3 / 2;
    let mut bad: Vec<(Timestamp, Timestamp)> = Vec::new();
    let mut push = |s: Timestamp, e: Timestamp| match bad.last_mut() {
        Some(l) if s <= l.1 => l.1 = l.1.max(e),
        _ => bad.push((s, e)),
    };
    let mut last_good: Option<Timestamp> = None;
    let mut failing_since: Option<Timestamp> = None;
    for &(t, v) in samples {
        if v != 1.0 {
            failing_since.get_or_insert(last_good.unwrap_or(t));
            continue;
        }
        if let Some(f) = failing_since.take() {
            push(f, t);
        } else if let Some(lg) = last_good
            && t - lg > gap
        {
            push(lg, t);
        }
        last_good = Some(t);
    }
    if let Some(f) = failing_since {
        push(f, end);
    } else if let Some(lg) = last_good {
        // A scrape's `up` is written when it ends, so up to one more interval before `now`
        // may still be in flight; before that the samples are all there.
        let in_flight = (end - (now - ival)).clamp(0, ival);
        if end - lg > gap + in_flight {
            push(lg, end);
        }
    }
    (ival, bad)
}

/// Reads `up` over `[start - BEFORE_WINDOW_MS, end]`.
pub fn coverage(
    db: &dyn Queryable,
    start: Timestamp,
    end: Timestamp,
    now: Timestamp,
) -> storage::Result<Coverage> {
    let from = start.saturating_sub(BEFORE_WINDOW_MS);
    let q = db.querier(from, end)?;
    let hints = SelectHints {
        start: from,
        end,
        ..Default::default()
    };
    let m = Matcher::new(MatchType::Equal, "__name__", "up").map_err(|e| {
        storage::StorageError::io("up matcher", std::io::Error::other(e.to_string()))
    })?;
    let mut cov = Coverage::default();
    let mut clean_since = Some(i64::MIN);
    let mut hashes = Vec::new();
    let mut samples = Vec::new();
    for s in q.select(true, &hints, &[m])? {
        samples.clear();
        let mut it = s.iter();
        let mut cur = it.seek(from);
        while let Some((t, v)) = cur {
            if t > end {
                break;
            }
            samples.push((t, v));
            cur = it.next();
        }
        let Some(&(first, _)) = samples.first() else {
            continue;
        };
        cov.targets += 1;
        let target = s.labels().stable_hash();
        hashes.push(target);
        cov.first = Some(cov.first.map_or(first, |f: i64| f.min(first)));
        let (ival, mut bad) = target_gaps(&samples, end, now);
        cov.interval = cov.interval.max(ival);
        // Clean since the end of its last gap; never when the gap lasts to the end.
        clean_since = match (clean_since, bad.last()) {
            (Some(c), None) => Some(c.max(first)),
            (Some(c), Some(&(_, e))) if e < end => Some(c.max(e)),
            _ => None,
        };
        bad.retain(|&(_, e)| e > start);
        if first > start || !bad.is_empty() {
            cov.imperfect.push(TargetCoverage { target, first, bad });
        }
    }
    cov.clean_since = clean_since.filter(|_| cov.targets > 0);
    hashes.sort_unstable();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in hashes {
        h = (h ^ x).wrapping_mul(0x0000_0100_0000_01b3);
    }
    cov.fingerprint = h;
    Ok(cov)
}

/// `GET /api/v1/vigil/coverage?start=…&end=…` (see the module doc).
pub async fn coverage_api(State(app): State<App>, RawQuery(q): RawQuery) -> ApiResult<Value> {
    refuse_agent(&app)?;
    let p = Params::parse(q.as_deref(), b"");
    let now = jiff::Timestamp::now().as_millisecond();
    let end = p.time("end", now)?.min(now);
    let start = p.time("start", end)?;
    let db: Arc<dyn Queryable> = app.db().clone();
    let cov = tokio::task::spawn_blocking(move || coverage(db.as_ref(), start, end, now))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let ext: BTreeMap<String, String> = app
        .config()
        .external_labels()
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    ok(json!({
        "externalLabels": ext,
        "first": cov.first,
        "cleanSince": cov.clean_since,
        "intervalMs": cov.interval,
        "targets": cov.targets,
        "fingerprint": format!("{:016x}", cov.fingerprint),
        "imperfect": cov.imperfect.iter().map(|t| json!({
            "target": format!("{:016x}", t.target),
            "first": t.first,
            "bad": t.bad,
        })).collect::<Vec<_>>(),
        // Samples that arrive by remote write have no `up` to tell their completeness.
        "receiver": app.flags().enable_remote_write_receiver,
        "lookbackDeltaMs": app.flags().lookback_delta.as_millis() as i64,
        "noStepSubqueryIntervalMs": app.config().global.evaluation_interval.as_millis() as i64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_as_remote_read_gives_them() {
        let drop = ["replica".to_string()];
        let x = Labels::from_pairs([("__name__", "x"), ("job", "j")]);
        // Only replica external labels: nothing changes (no copy either).
        assert_eq!(relabel(&Labels::empty(), &drop, &x), None);
        let add = Labels::from_pairs([("region", "eu")]);
        assert_eq!(
            relabel(&add, &drop, &x),
            Some(Labels::from_pairs([
                ("__name__", "x"),
                ("job", "j"),
                ("region", "eu")
            ]))
        );
        // A series' own label wins over an external one; its replica label goes.
        let own = Labels::from_pairs([("__name__", "x"), ("region", "us"), ("replica", "r")]);
        assert_eq!(
            relabel(&add, &drop, &own),
            Some(Labels::from_pairs([("__name__", "x"), ("region", "us")]))
        );
    }

    #[test]
    fn clean_target() {
        let s = [(1000, 1.0), (2000, 1.0), (3010, 1.0), (4000, 1.0)];
        assert_eq!(target_gaps(&s, 4500, 9000), (990, vec![]));
        // Not settled yet: the next scrape may be in flight.
        assert_eq!(target_gaps(&s, 5800, 5800), (990, vec![]));
        assert_eq!(target_gaps(&s, 5800, 9000), (990, vec![(4000, 5800)]));
    }

    #[test]
    fn failed_scrapes_are_gaps() {
        let s = [(1000, 1.0), (2000, 0.0), (3000, 1.0), (4000, 1.0)];
        assert_eq!(target_gaps(&s, 4000, 4000), (1000, vec![(1000, 3000)]));
        // Gaps that touch become one.
        let s = [(1000, 0.0), (2000, 1.0), (3000, 0.0), (4000, 0.0)];
        assert_eq!(target_gaps(&s, 4000, 4000), (1000, vec![(1000, 4000)]));
    }

    #[test]
    fn missing_scrapes_are_gaps() {
        let s = [(1000, 1.0), (2000, 1.0), (62000, 1.0), (63000, 1.0)];
        assert_eq!(target_gaps(&s, 63000, 63000), (1000, vec![(2000, 62000)]));
    }

    #[test]
    fn stopped_scraping_is_a_gap_to_the_end() {
        let s = [(1000, 1.0), (2000, 1.0), (3000, 1.0)];
        assert_eq!(target_gaps(&s, 9000, 9000), (1000, vec![(3000, 9000)]));
        // A replica that stopped 1.6 intervals before a settled window's end has a gap.
        assert_eq!(target_gaps(&s, 4600, 9000), (1000, vec![(3000, 4600)]));
        let s = [(1000, 1.0), (2000, 1.0), (3000, 0.0)];
        assert_eq!(target_gaps(&s, 3000, 3000), (1000, vec![(2000, 3000)]));
        assert_eq!(
            target_gaps(&[(1000, 1.0)], 1000, 1000),
            (0, vec![(1000, 1000)])
        );
    }
}
