//! Push-down: when one replica's data is known complete for everything a query reads, the
//! whole query goes to that replica (`/api/v1/vigil/query[_range]` of a vigil server, which
//! evaluates over its storage with the labels remote read gives: external labels attached,
//! replica labels removed) instead of every replica shipping its samples to be merged here.
//!
//! The window a query reads comes from the engine itself (a probe storage records the range
//! of the one querier the engine asks for). Each vigil server reports its coverage of that
//! window (`/api/v1/vigil/coverage`, from its `up` series, which hold failed scrapes as 0 and
//! downtime as missing samples, across restarts). A replica is chosen when every target of it
//! was scraped at every interval since `cleanSince`, and that is no later than the window's
//! start or than the first scrape (less one interval) of every other replica — so no other
//! replica holds data in the window that the chosen one lacks. Anything else (a stock
//! Prometheus without these endpoints, an endpoint down, different targets or non-replica
//! external labels, a remote-write receiver, a matcher on a replica label, `dedup=false`, an
//! error) takes the merge path.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::Timestamp;
use parking_lot::Mutex;
use promapi::Params;
use promql::ast::Expr;
use serde::Deserialize;
use storage::{Querier, Queryable, StorageError};

use crate::app::App;
use crate::endpoints::Endpoint;

/// One endpoint's answer of `/api/v1/vigil/coverage`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Coverage {
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    pub first: Option<Timestamp>,
    pub clean_since: Option<Timestamp>,
    #[serde(default)]
    pub interval_ms: i64,
    #[serde(default)]
    pub targets: usize,
    #[serde(default)]
    pub fingerprint: String,
    #[serde(default)]
    pub receiver: bool,
    #[serde(default)]
    pub no_step_subquery_interval_ms: i64,
    /// Targets not scraped at every interval of the whole window.
    #[serde(default)]
    pub imperfect: Vec<TargetCoverage>,
}

/// One target's scrapes over the window, when they were not all successful.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TargetCoverage {
    pub target: String,
    pub first: Timestamp,
    /// (from, to) without a successful scrape.
    pub bad: Vec<(Timestamp, Timestamp)>,
}

/// The replica whose data alone answers a query reading `[window_start, …]` exactly as the
/// merge of all of them would, or why there is none.
pub fn choose(
    covs: &[Coverage],
    window_start: Timestamp,
    replica_labels: &[String],
    subquery_interval_ms: i64,
) -> Result<usize, &'static str> {
    let first = covs.first().ok_or("no endpoints")?;
    fn shared<'a>(c: &'a Coverage, replica_labels: &[String]) -> Vec<(&'a String, &'a String)> {
        c.external_labels
            .iter()
            .filter(|(k, _)| !replica_labels.contains(k))
            .collect()
    }
    for c in covs {
        if c.receiver {
            return Err("an endpoint receives remote write");
        }
        if c.fingerprint != first.fingerprint || c.targets != first.targets {
            return Err("endpoints scrape different targets");
        }
        if shared(c, replica_labels) != shared(first, replica_labels) {
            return Err("endpoints differ in non-replica external labels");
        }
        if c.no_step_subquery_interval_ms != subquery_interval_ms {
            return Err("endpoints differ in the default subquery step");
        }
    }
    let by_clean = {
        let mut v: Vec<usize> = (0..covs.len()).collect();
        v.sort_by_key(|&i| (covs[i].clean_since.unwrap_or(i64::MAX), i));
        v
    };
    // Scrape phases differ between replicas: one interval and a half of slack at the edges of
    // a gap (so at most one sample there may be left out).
    let slack = covs.iter().map(|c| c.interval_ms).max().unwrap_or(0) * 3 / 2;
    for &r in &by_clean {
        let rc = &covs[r];
        let others = || covs.iter().enumerate().filter(move |&(i, _)| i != r);
        if let Some(clean) = rc.clean_since {
            // Complete over the whole window, or since before any other replica scraped.
            if clean <= window_start
                || others().all(|(_, c)| c.first.is_none_or(|f| f + slack >= clean))
            {
                return Ok(r);
            }
        }
        // Target by target: wherever this replica has no data, neither has any other. (Not
        // complete yet no target listed: an answer that does not say which, so no.)
        if !rc.imperfect.is_empty()
            && others().all(|(_, o)| lacks_no_more(rc, o, window_start, slack))
        {
            return Ok(r);
        }
    }
    Err("every endpoint has a gap in the window that another can fill")
}

/// Whether `o` has no data in the window that `r` lacks: every target `r` did not scrape at
/// every interval, `o` did not either, at the same times (within `slack`).
fn lacks_no_more(r: &Coverage, o: &Coverage, window_start: Timestamp, slack: i64) -> bool {
    r.imperfect.iter().all(|rt| {
        // `o` scraped it throughout.
        let Some(ot) = o.imperfect.iter().find(|t| t.target == rt.target) else {
            return false;
        };
        if rt.first > window_start && ot.first + slack < rt.first {
            return false;
        }
        rt.bad.iter().all(|&(s, e)| {
            let s = s.max(window_start);
            e <= ot.first + slack
                || ot
                    .bad
                    .iter()
                    .any(|&(os, oe)| os.max(window_start) - slack <= s && e <= oe + slack)
        })
    })
}

/// Whether any selector of `expr` has a matcher on one of `names`.
pub fn matches_label(expr: &Expr, names: &[String]) -> bool {
    let mut found = false;
    expr.walk(&mut |e| {
        let vs = match e {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(m) => &m.vs,
            _ => return,
        };
        if vs.matchers.iter().any(|m| names.contains(&m.name)) {
            found = true;
        }
    });
    found
}

/// A storage that records the range the engine asks for, then stops the evaluation.
#[derive(Default)]
struct Probe {
    range: Mutex<Option<(Timestamp, Timestamp)>>,
}

impl Queryable for Probe {
    fn querier(&self, mint: Timestamp, maxt: Timestamp) -> storage::Result<Box<dyn Querier>> {
        *self.range.lock() = Some((mint, maxt));
        Err(StorageError::io(
            "probe",
            std::io::Error::other("window recorded"),
        ))
    }
}

/// The time range the evaluation `f` reads, or `None` when it reads no data.
pub fn window<F>(f: F) -> Option<(Timestamp, Timestamp)>
where
    F: FnOnce(&dyn Queryable) -> Result<promql::QueryResult, promql::Error>,
{
    let probe = Probe::default();
    let _ = f(&probe);
    probe.range.into_inner()
}

/// What to forward: the query's kind and its parameters, pinned (`time` of an instant query,
/// the lookback) so the replica evaluates exactly what the merge path would.
pub struct Forward {
    pub path: &'static str,
    pub form: Vec<(String, String)>,
    /// What the query reads ([`window`]).
    pub window: Option<(Timestamp, Timestamp)>,
    /// A selector matches on a replica label ([`matches_label`]).
    pub selects_replicas: bool,
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

impl Forward {
    pub fn instant(p: &Params, time: Timestamp, lookback_ms: i64) -> Forward {
        let mut form = vec![("time".to_string(), secs(time))];
        Self::common(p, &mut form, lookback_ms);
        Forward {
            path: "/api/v1/vigil/query",
            form,
            window: None,
            selects_replicas: false,
        }
    }

    /// Adds what the forwarding decision needs to know about the query.
    pub fn reading(
        mut self,
        window: Option<(Timestamp, Timestamp)>,
        expr: &Expr,
        replica_labels: &[String],
    ) -> Forward {
        self.window = window;
        self.selects_replicas = matches_label(expr, replica_labels);
        self
    }

    pub fn range(p: &Params, lookback_ms: i64) -> Forward {
        let mut form = Vec::new();
        for k in ["start", "end", "step"] {
            if let Some(v) = p.get(k) {
                form.push((k.to_string(), v.to_string()));
            }
        }
        Self::common(p, &mut form, lookback_ms);
        Forward {
            path: "/api/v1/vigil/query_range",
            form,
            window: None,
            selects_replicas: false,
        }
    }

    fn common(p: &Params, form: &mut Vec<(String, String)>, lookback_ms: i64) {
        for k in ["query", "timeout", "stats"] {
            if let Some(v) = p.get(k) {
                form.push((k.to_string(), v.to_string()));
            }
        }
        form.push(("lookback_delta".into(), secs(lookback_ms)));
    }
}

/// Response header naming the endpoint that answered a pushed-down query.
pub const ANSWERED_BY: &str = "x-vigil-answered-by";

/// The longest a coverage request may take.
const COVERAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// How long an endpoint without the push-down API is not asked again.
const UNSUPPORTED_FOR_MS: i64 = 60_000;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

async fn coverage_of(
    app: &App,
    e: &Endpoint,
    (start, end): (Timestamp, Timestamp),
) -> Result<Coverage, String> {
    let url = format!(
        "{}/api/v1/vigil/coverage?start={}&end={}",
        e.url,
        secs(start),
        secs(end)
    );
    let r = app
        .endpoints()
        .http()
        .get(&url)
        // Coverage is cheap to answer; a replica too slow for it is left to the merge path.
        .timeout(app.flags().endpoint_timeout.min(COVERAGE_TIMEOUT))
        .send()
        .await
        .map_err(|err| format!("{url}: {err}"))?;
    if matches!(
        r.status(),
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    ) {
        e.set_no_pushdown_until(now_ms() + UNSUPPORTED_FOR_MS);
        return Err(format!("{url}: no push-down API"));
    }
    if !r.status().is_success() {
        return Err(format!("{url}: HTTP {}", r.status()));
    }
    #[derive(Deserialize)]
    struct Answer {
        data: Coverage,
    }
    let bytes = r.bytes().await.map_err(|err| format!("{url}: {err}"))?;
    serde_json::from_slice::<Answer>(&bytes)
        .map(|a| a.data)
        .map_err(|err| format!("{url}: {err}"))
}

/// Answers the query from one replica when that is safe (see the module doc); `None` means
/// take the merge path.
pub async fn try_forward(app: &App, p: &Params, fwd: Forward) -> Option<Response> {
    // dedup=false shows raw replicas; a matcher on a replica label selects replicas.
    if !app.flags().push_down
        || !matches!(p.get("dedup"), None | Some("" | "true" | "1"))
        || fwd.selects_replicas
    {
        return None;
    }
    let window = fwd.window?;
    let list = app.endpoints().list();
    let now = now_ms();
    if list.is_empty()
        || list
            .iter()
            .any(|e| !e.is_up() || e.no_pushdown_until() > now)
    {
        return None;
    }
    let mut form: Vec<(String, String)> = fwd.form;
    for r in app.replica_labels() {
        form.push(("drop_label".into(), r.clone()));
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish();
    let send = |e: &Arc<Endpoint>| {
        let req = app
            .endpoints()
            .http()
            .post(format!("{}{}", e.url, fwd.path))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.clone());
        AbortOnDrop(tokio::spawn(req.send()))
    };
    let (chosen, pending) = if list.len() == 1 {
        // One endpoint: its data is all the merge would have.
        (list[0].clone(), send(&list[0]))
    } else {
        // The replica chosen last time is asked at once, while the coverage requests run; its
        // answer is used only if it is chosen again (otherwise the request is dropped, which
        // cancels the evaluation there).
        let guess = app
            .last_pushdown()
            .and_then(|u| list.iter().find(|e| e.url == u).cloned())
            .map(|e| {
                let h = send(&e);
                (e, h)
            });
        let calls = list.iter().map(|e| coverage_of(app, e, window));
        let mut covs = Vec::with_capacity(list.len());
        for r in futures_util::future::join_all(calls).await {
            match r {
                Ok(c) => covs.push(c),
                Err(msg) => {
                    tracing::debug!(%msg, "push-down: coverage unknown, merging");
                    app.set_last_pushdown(None);
                    return None;
                }
            }
        }
        let subq = app.engine_subquery_interval_ms();
        match choose(&covs, window.0, app.replica_labels(), subq) {
            Ok(i) => match guess {
                Some((e, h)) if e.url == list[i].url => (e, h),
                _ => (list[i].clone(), send(&list[i])),
            },
            Err(why) => {
                tracing::debug!(why, "push-down: merging");
                app.set_last_pushdown(None);
                return None;
            }
        }
    };
    app.set_last_pushdown(Some(chosen.url.clone()));
    let mut pending = pending;
    let r = match (&mut pending.0).await {
        Ok(Ok(r)) => r,
        Ok(Err(err)) => {
            tracing::debug!(endpoint = %chosen.url, %err, "push-down failed, merging");
            return None;
        }
        Err(err) => {
            tracing::debug!(endpoint = %chosen.url, %err, "push-down task failed, merging");
            return None;
        }
    };
    if r.status() == StatusCode::NOT_FOUND {
        chosen.set_no_pushdown_until(now_ms() + UNSUPPORTED_FOR_MS);
        return None;
    }
    // Errors (limits, timeouts) are left to the merge path to report in its own words.
    if !r.status().is_success() {
        return None;
    }
    app.counters().queries.fetch_add(1, Ordering::Relaxed);
    app.counters().pushed_down.fetch_add(1, Ordering::Relaxed);
    let by = header::HeaderValue::from_str(&chosen.url).ok()?;
    // The answer streams through as it arrives.
    Some(
        (
            [
                (
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                ),
                (header::HeaderName::from_static(ANSWERED_BY), by),
            ],
            axum::body::Body::from_stream(r.bytes_stream()),
        )
            .into_response(),
    )
}

/// A spawned request that is dropped (its connection closed) when no longer wanted.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cov(first: i64, clean: Option<i64>) -> Coverage {
        Coverage {
            external_labels: BTreeMap::from([("replica".into(), "a".into())]),
            first: Some(first),
            clean_since: clean,
            interval_ms: 1000,
            targets: 3,
            fingerprint: "f".into(),
            receiver: false,
            no_step_subquery_interval_ms: 60_000,
            imperfect: vec![],
        }
    }

    fn target(first: i64, bad: &[(i64, i64)]) -> TargetCoverage {
        TargetCoverage {
            target: "t1".into(),
            first,
            bad: bad.to_vec(),
        }
    }

    fn pick(covs: &[Coverage], start: i64) -> Result<usize, &'static str> {
        choose(covs, start, &["replica".to_string()], 60_000)
    }

    #[test]
    fn both_complete_picks_the_earliest() {
        let covs = [cov(1_000, Some(1_500)), cov(900, Some(1_200))];
        assert_eq!(pick(&covs, 0), Ok(1));
        // Both clean over the whole window: the first listed.
        let covs = [cov(0, Some(100)), cov(0, Some(100))];
        assert_eq!(pick(&covs, 5_000), Ok(0));
    }

    #[test]
    fn a_gap_in_the_window_is_never_chosen() {
        // a was down and recovered at 70 s; b scraped throughout.
        let covs = [cov(0, Some(70_000)), cov(0, Some(200))];
        assert_eq!(pick(&covs, 10_000), Ok(1));
        // Both have gaps another can fill: merge.
        let covs = [cov(0, Some(70_000)), cov(0, Some(40_000))];
        assert!(pick(&covs, 10_000).is_err());
        // A window after a's recovery may use a.
        let covs = [cov(0, Some(70_000)), cov(0, None)];
        assert_eq!(pick(&covs, 80_000), Ok(0));
        assert!(pick(&covs, 60_000).is_err());
    }

    #[test]
    fn a_target_failing_on_every_replica_still_pushes_down() {
        // Target t1 failed from 20 s to 30 s on both (scrape phases differ by 0.4 s).
        let mut a = cov(0, None);
        a.imperfect = vec![target(0, &[(19_600, 30_600)])];
        let mut b = cov(0, None);
        b.imperfect = vec![target(0, &[(20_000, 31_000)])];
        assert_eq!(pick(&[a.clone(), b.clone()], 10_000), Ok(0));
        // b's outage was longer: a has data b lacks, not the other way round.
        b.imperfect = vec![target(0, &[(20_000, 45_000)])];
        assert_eq!(pick(&[a.clone(), b.clone()], 10_000), Ok(0));
        assert_eq!(pick(&[b.clone(), a.clone()], 10_000), Ok(1));
        // Failing on a only: b.
        let mut b = cov(0, Some(100));
        b.imperfect = vec![];
        assert_eq!(pick(&[a.clone(), b], 10_000), Ok(1));
        // Each has a failure of t1 the other does not: merge.
        let mut b = cov(0, None);
        b.imperfect = vec![target(0, &[(40_000, 45_000)])];
        assert!(pick(&[a, b], 10_000).is_err());
    }

    #[test]
    fn differences_between_replicas_merge() {
        let mut b = cov(0, Some(0));
        b.fingerprint = "g".into();
        assert!(pick(&[cov(0, Some(0)), b], 10).is_err());
        let mut b = cov(0, Some(0));
        b.external_labels.insert("region".into(), "eu".into());
        assert!(pick(&[cov(0, Some(0)), b.clone()], 10).is_err());
        let mut a = cov(0, Some(0));
        a.external_labels.insert("region".into(), "eu".into());
        a.external_labels.insert("replica".into(), "b".into());
        assert_eq!(pick(&[a, b], 10), Ok(0));
        let mut b = cov(0, Some(0));
        b.receiver = true;
        assert!(pick(&[cov(0, Some(0)), b], 10).is_err());
    }

    #[test]
    fn replica_matchers_are_found() {
        let names = ["replica".to_string()];
        for (q, want) in [
            ("x", false),
            ("sum(rate(x{replica=\"a\"}[1m]))", true),
            ("x{replica=~\".+\"} + y", true),
            ("max_over_time(y{job=\"a\"}[5m:1m])", false),
        ] {
            let e = promql::parse(q).unwrap();
            assert_eq!(matches_label(&e, &names), want, "{q}");
        }
    }

    #[test]
    fn probe_records_the_window() {
        let engine = promql::Engine::new(promql::EngineOptions {
            lookback_delta: std::time::Duration::from_secs(300),
            ..Default::default()
        });
        let e = promql::parse("rate(x[1m])").unwrap();
        let w = window(|q| engine.eval_instant(q, &e, 1_000_000, Default::default()));
        assert_eq!(w, Some((1_000_000 - 60_000 + 1, 1_000_000)));
        let e = promql::parse("1 + 1").unwrap();
        assert_eq!(
            window(|q| engine.eval_instant(q, &e, 1_000_000, Default::default())),
            None
        );
    }
}
