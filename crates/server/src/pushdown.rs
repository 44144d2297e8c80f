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
use crate::coverage::{Kept, coverage};
use crate::http_compat::FormBody;
use crate::query_api::{Endpoint, answer};

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

/// `POST|PUT /api/v1/admin/tsdb/delete_series`: the admin API's, and the coverage summary
/// forgotten before and after (deleted `up` samples change coverage answers).
pub async fn delete_series(State(app): State<App>, raw: RawQuery, body: FormBody) -> Response {
    app.coverage_cache().invalidate();
    let res = crate::admin::delete_series(State(app.clone()), raw, body).await;
    app.coverage_cache().invalidate();
    res
}

/// `GET /api/v1/vigil/coverage?start=…&end=…` (see the module doc).
pub async fn coverage_api(State(app): State<App>, RawQuery(q): RawQuery) -> ApiResult<Value> {
    refuse_agent(&app)?;
    let p = Params::parse(q.as_deref(), b"");
    let now = jiff::Timestamp::now().as_millisecond();
    let end = p.time("end", now)?.min(now);
    let start = p.time("start", end)?;
    let db = app.db().clone();
    let cache = app.coverage_cache().clone();
    let receiver = app.flags().enable_remote_write_receiver;
    let cov = tokio::task::spawn_blocking(move || {
        // Remote write can add `up` samples at any time: always read storage then.
        if receiver {
            return coverage(db.as_ref(), start, end, now);
        }
        let kept = Kept {
            lowest: db
                .blocks()
                .first()
                .map_or(db.head_min_time(), |b| b.min_time.min(db.head_min_time())),
            retention_ms: i64::try_from(db.options().retention.as_millis()).unwrap_or(i64::MAX),
        };
        cache.coverage(db.as_ref(), kept, start, end, now)
    })
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
}
