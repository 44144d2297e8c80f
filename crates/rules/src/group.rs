//! A rule group: rules evaluated in order at one interval, their outputs appended to storage
//! (with staleness markers for series that disappear), alerts handed to the notifier, and
//! the group's own statistics.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use model::{Labels, STALE_NAN};
use parking_lot::Mutex;

use crate::notifier::{AlertSink, NotifyAlert};
use crate::rule::{AlertingRule, EvalInfo, Health, OutSample, QueryRunner, RecordingRule, Rule};
use crate::rulefmt::LoadedGroup;

/// Everything an evaluation needs from the outside.
#[derive(Clone)]
pub struct EvalEnv {
    pub query: Arc<dyn QueryRunner>,
    pub appendable: Arc<dyn storage::Appendable>,
    pub sink: Option<Arc<dyn AlertSink>>,
    pub resend_delay: Duration,
    /// `--web.external-url`, for `generatorURL` and `$externalURL`.
    pub external_url: String,
}

/// Counters of one group, under Prometheus's metric names when rendered.
#[derive(Debug, Default)]
pub struct GroupMetrics {
    pub evaluations_total: AtomicU64,
    pub evaluation_failures_total: AtomicU64,
    pub iterations_total: AtomicU64,
    pub iterations_missed_total: AtomicU64,
    /// f64 bits of the last iteration's duration in seconds.
    pub last_duration_bits: AtomicU64,
    /// Wall-clock time of the last iteration start, ms.
    pub last_evaluation_ms: AtomicU64,
    pub last_samples: AtomicU64,
    /// Seconds spent in rule evaluations and in whole group iterations (summaries' sums).
    pub rule_seconds_total: Mutex<f64>,
    pub group_seconds_total: Mutex<f64>,
}

impl GroupMetrics {
    fn copy_from(&self, o: &GroupMetrics) {
        for (a, b) in [
            (&self.evaluations_total, &o.evaluations_total),
            (
                &self.evaluation_failures_total,
                &o.evaluation_failures_total,
            ),
            (&self.iterations_total, &o.iterations_total),
            (&self.iterations_missed_total, &o.iterations_missed_total),
            (&self.last_duration_bits, &o.last_duration_bits),
            (&self.last_evaluation_ms, &o.last_evaluation_ms),
            (&self.last_samples, &o.last_samples),
        ] {
            a.store(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        *self.rule_seconds_total.lock() = *o.rule_seconds_total.lock();
        *self.group_seconds_total.lock() = *o.group_seconds_total.lock();
    }

    pub fn last_duration(&self) -> f64 {
        f64::from_bits(self.last_duration_bits.load(Ordering::Relaxed))
    }
}

/// Mutable state of a group, behind one lock (evaluation holds it; the API reads it).
#[derive(Debug)]
pub struct GroupState {
    pub rules: Vec<Rule>,
    pub infos: Vec<EvalInfo>,
    /// The series each rule wrote in its previous evaluation.
    prev_series: Vec<HashSet<Labels>>,
    /// Series of rules that no longer exist, to be marked stale at the next evaluation.
    stale_series: Vec<Labels>,
}

/// One rule group.
#[derive(Debug)]
pub struct Group {
    pub file: String,
    pub name: String,
    pub interval: Duration,
    pub limit: usize,
    /// Read by the API; an evaluation takes it only around each rule's state update, not
    /// while the rule's query runs.
    pub state: Mutex<GroupState>,
    /// Held for a whole evaluation, so state is copied or marked stale between evaluations.
    eval_lock: Mutex<()>,
    pub metrics: GroupMetrics,
}

impl Group {
    /// Builds a group from a validated definition.
    pub fn new(
        file: &Path,
        g: &LoadedGroup,
        default_interval: Duration,
        external_labels: &BTreeMap<String, String>,
        external_url: &str,
    ) -> Group {
        let rules: Vec<Rule> = g
            .def
            .rules
            .iter()
            .zip(&g.exprs)
            .map(|(r, e)| {
                if r.record.is_empty() {
                    Rule::Alerting(AlertingRule {
                        name: r.alert.clone(),
                        expr_text: promql::printer::print(e),
                        expr: e.clone(),
                        hold: r.for_.unwrap_or_default(),
                        keep_firing_for: r.keep_firing_for.unwrap_or_default(),
                        labels: r.labels.clone(),
                        annotations: r.annotations.clone(),
                        external_labels: external_labels.clone(),
                        external_url: external_url.to_string(),
                        active: Default::default(),
                        restored: false,
                    })
                } else {
                    Rule::Recording(RecordingRule {
                        name: r.record.clone(),
                        expr_text: promql::printer::print(e),
                        expr: e.clone(),
                        labels: r.labels.clone(),
                    })
                }
            })
            .collect();
        let n = rules.len();
        Group {
            file: file.to_string_lossy().into_owned(),
            name: g.def.name.clone(),
            // An interval of 0 means the global one, as in Prometheus.
            interval: g
                .def
                .interval
                .filter(|d| !d.is_zero())
                .unwrap_or(default_interval),
            limit: g.def.limit,
            state: Mutex::new(GroupState {
                rules,
                infos: vec![EvalInfo::default(); n],
                prev_series: vec![HashSet::new(); n],
                stale_series: Vec::new(),
            }),
            eval_lock: Mutex::new(()),
            metrics: GroupMetrics::default(),
        }
    }

    /// `file;name`, the `rule_group` label of the group's metrics.
    pub fn key(&self) -> String {
        format!("{};{}", self.file, self.name)
    }

    /// compat: Prometheus offsets a group's evaluations within the interval by a hash of
    /// `{file, name}`, so groups spread out and every replica evaluates at the same instants.
    fn offset_ns(&self) -> i64 {
        let h = Labels::from_pairs([("name", self.name.as_str()), ("file", self.file.as_str())])
            .stable_hash();
        let iv = self.interval_ns();
        (h % iv as u64) as i64
    }

    pub fn interval_ns(&self) -> i64 {
        (self.interval.as_nanos() as i64).max(1)
    }

    /// The latest evaluation timestamp (ns) at or before `now_ns`.
    pub fn eval_timestamp(&self, now_ns: i64) -> i64 {
        let iv = self.interval_ns();
        let offset = self.offset_ns();
        let adj = now_ns - offset;
        adj - adj.rem_euclid(iv) + offset
    }

    /// Takes over the state of the same group of the previous configuration: alert state of
    /// rules with the same name and labels (matched in order, like Prometheus's `CopyState`;
    /// the query may have changed), previous series, statistics. Series of rules that
    /// are gone are marked stale at the next evaluation.
    pub fn copy_state(&self, old: &Group) {
        let _old_eval = old.eval_lock.lock();
        let mut st = self.state.lock();
        let mut o = old.state.lock();
        let mut used = vec![false; o.rules.len()];
        let st = &mut *st;
        for (i, r) in st.rules.iter_mut().enumerate() {
            let found =
                o.rules.iter().enumerate().position(|(j, or)| {
                    !used[j] && or.name() == r.name() && or.labels() == r.labels()
                });
            let Some(j) = found else { continue };
            used[j] = true;
            st.prev_series[i] = std::mem::take(&mut o.prev_series[j]);
            st.infos[i] = o.infos[j].clone();
            if let (Rule::Alerting(n), Rule::Alerting(p)) = (r, &o.rules[j]) {
                n.copy_state(p);
            }
        }
        for (j, u) in used.iter().enumerate() {
            if !u {
                st.stale_series.extend(o.prev_series[j].drain());
            }
        }
        st.stale_series.append(&mut o.stale_series);
        self.metrics.copy_from(&old.metrics);
    }

    /// Evaluates every rule at `ts` (ms), in order, appending their outputs.
    pub fn eval(&self, ts: i64, env: &EvalEnv) {
        let _eval = self.eval_lock.lock();
        let started = Instant::now();
        let wall = jiff::Timestamp::now().as_millisecond();
        let mut samples_total = 0u64;
        let n = self.state.lock().rules.len();
        for i in 0..n {
            let rule_start = Instant::now();
            self.metrics
                .evaluations_total
                .fetch_add(1, Ordering::Relaxed);
            // The query runs without the state lock, so the API stays responsive.
            let expr = self.state.lock().rules[i].expr().clone();
            let pre = Prefetched {
                result: Mutex::new(Some(env.query.query(&expr, ts))),
                inner: &*env.query,
            };
            let mut guard = self.state.lock();
            let st = &mut *guard;
            let res = match &mut st.rules[i] {
                Rule::Recording(r) => r.eval(ts, &pre, self.limit),
                Rule::Alerting(r) => r.eval(ts, &pre, self.limit),
            };
            let info = &mut st.infos[i];
            info.last_evaluation = Some(wall);
            info.duration = rule_start.elapsed();
            *self.metrics.rule_seconds_total.lock() += info.duration.as_secs_f64();
            let vector = match res {
                Ok(v) => {
                    info.health = Health::Good;
                    info.last_error = None;
                    v
                }
                Err(e) => {
                    tracing::warn!(group = %self.name, rule = st.rules[i].name(), "evaluating rule: {e}");
                    info.health = Health::Bad;
                    info.last_error = Some(e);
                    self.metrics
                        .evaluation_failures_total
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            samples_total += vector.len() as u64;
            if let (Rule::Alerting(r), Some(sink)) = (&mut st.rules[i], &env.sink) {
                let alerts = r.alerts_to_send(ts, env.resend_delay, self.interval);
                if !alerts.is_empty() {
                    let url = generator_url(&env.external_url, &r.expr_text);
                    sink.send(
                        alerts
                            .into_iter()
                            .map(|a| NotifyAlert::from_rule_alert(&a, &url))
                            .collect(),
                    );
                }
            }
            let prev = std::mem::take(&mut st.prev_series[i]);
            st.prev_series[i] = self.append(env, &vector, &prev, ts);
        }
        let stale = std::mem::take(&mut self.state.lock().stale_series);
        if !stale.is_empty() {
            let mut app = env.appendable.appender();
            for l in &stale {
                let _ = app.append(0, l, ts, STALE_NAN);
            }
            if let Err(e) = app.commit() {
                tracing::warn!(group = %self.name, "writing staleness markers: {e}");
            }
        }
        self.metrics
            .last_samples
            .store(samples_total, Ordering::Relaxed);
        self.metrics
            .iterations_total
            .fetch_add(1, Ordering::Relaxed);
        self.metrics
            .last_duration_bits
            .store(started.elapsed().as_secs_f64().to_bits(), Ordering::Relaxed);
        *self.metrics.group_seconds_total.lock() += started.elapsed().as_secs_f64();
        self.metrics
            .last_evaluation_ms
            .store(wall as u64, Ordering::Relaxed);
    }

    /// Appends a rule's output, marks series of the previous evaluation that are gone as
    /// stale, and returns the series written now.
    fn append(
        &self,
        env: &EvalEnv,
        v: &[OutSample],
        prev: &HashSet<Labels>,
        ts: i64,
    ) -> HashSet<Labels> {
        let mut app = env.appendable.appender();
        let mut now = HashSet::with_capacity(v.len());
        let (mut ooo, mut dup) = (0, 0);
        for s in v {
            match app.append(0, &s.labels, s.t, s.v) {
                Ok(_) => {
                    now.insert(s.labels.clone());
                }
                Err(storage::StorageError::OutOfOrder) => ooo += 1,
                Err(storage::StorageError::DuplicateSample) => dup += 1,
                Err(e) => {
                    tracing::warn!(group = %self.name, series = %s.labels, "rule sample appending failed: {e}")
                }
            }
        }
        if ooo > 0 || dup > 0 {
            tracing::warn!(group = %self.name, out_of_order = ooo, duplicates = dup, "error on ingesting results from rule evaluation");
        }
        for l in prev.iter().filter(|l| !now.contains(*l)) {
            // Series no longer exposed: mark it stale.
            if let Err(e) = app.append(0, l, ts, STALE_NAN)
                && !e.is_sample_error()
            {
                tracing::warn!(group = %self.name, series = %l, "adding stale marker: {e}");
            }
        }
        if let Err(e) = app.commit() {
            tracing::warn!(group = %self.name, "committing rule results: {e}");
        }
        now
    }

    /// Writes staleness markers for everything this group wrote last (the group is going away).
    pub fn mark_all_stale(&self, env: &EvalEnv, ts: i64) {
        let _eval = self.eval_lock.lock();
        let mut st = self.state.lock();
        let mut app = env.appendable.appender();
        for set in st.prev_series.iter_mut() {
            for l in set.drain() {
                let _ = app.append(0, &l, ts, STALE_NAN);
            }
        }
        for l in st.stale_series.drain(..) {
            let _ = app.append(0, &l, ts, STALE_NAN);
        }
        if let Err(e) = app.commit() {
            tracing::warn!(group = %self.name, "writing staleness markers: {e}");
        }
    }

    /// Restores `for` state of every alerting rule (after the first evaluations at startup).
    pub fn restore_for_state(
        &self,
        q: &dyn storage::Queryable,
        ts: i64,
        outage_tolerance: Duration,
        grace: Duration,
    ) {
        let _eval = self.eval_lock.lock();
        let mut st = self.state.lock();
        for r in st.rules.iter_mut() {
            if let Rule::Alerting(a) = r
                && let Err(e) = a.restore(q, ts, outage_tolerance, grace)
            {
                tracing::error!(group = %self.name, rule = %a.name, "restoring alert state: {e}");
                a.restored = true;
            }
        }
    }

    /// Marks every alerting rule as restored (groups loaded after startup need no restore).
    pub fn set_restored(&self) {
        for r in self.state.lock().rules.iter_mut() {
            if let Rule::Alerting(a) = r {
                a.restored = true;
            }
        }
    }
}

/// A [`QueryRunner`] whose first query result was computed before the state lock was taken;
/// template queries go to the real runner.
struct Prefetched<'a> {
    result: Mutex<Option<Result<Vec<promql::Sample>, String>>>,
    inner: &'a dyn QueryRunner,
}

impl QueryRunner for Prefetched<'_> {
    fn query(&self, expr: &promql::ast::Expr, t: i64) -> Result<Vec<promql::Sample>, String> {
        match self.result.lock().take() {
            Some(r) => r,
            None => self.inner.query(expr, t),
        }
    }

    fn template_query(&self, t: i64) -> template::prometheus::QueryFn {
        self.inner.template_query(t)
    }
}

/// `<external url>/graph?g0.expr=<expr>&g0.tab=1`, as Prometheus links alerts to their query.
pub fn generator_url(external_url: &str, expr: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(expr.as_bytes()).collect();
    format!(
        "{}/graph?g0.expr={q}&g0.tab=1",
        external_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memstore::MemStorage;
    use crate::rule::{AlertState, EngineQuery};
    use crate::rulefmt::parse_file;

    fn group(yaml: &str) -> Group {
        let f = parse_file(Path::new("/r.yml"), yaml).unwrap();
        Group::new(
            Path::new("/r.yml"),
            &f.groups[0],
            Duration::from_secs(1),
            &BTreeMap::new(),
            "http://vigil:9090",
        )
    }

    struct Sink(Mutex<Vec<NotifyAlert>>);
    impl AlertSink for Sink {
        fn send(&self, alerts: Vec<NotifyAlert>) {
            self.0.lock().extend(alerts);
        }
    }

    fn env(store: &MemStorage, sink: Option<Arc<Sink>>) -> EvalEnv {
        EvalEnv {
            query: Arc::new(EngineQuery {
                engine: promql::Engine::default(),
                queryable: Arc::new(store.clone()),
            }),
            appendable: Arc::new(store.clone()),
            sink: sink.map(|s| s as Arc<dyn AlertSink>),
            resend_delay: Duration::from_secs(60),
            external_url: "http://vigil:9090".into(),
        }
    }

    fn samples(store: &MemStorage, sel: &str) -> Vec<(Labels, Vec<(i64, f64)>)> {
        use storage::Queryable;
        let q = store.querier(i64::MIN, i64::MAX).unwrap();
        let ms = model::parse_selector(sel).unwrap();
        let mut out = Vec::new();
        for s in q.select(true, &Default::default(), &ms).unwrap() {
            let mut it = s.iter();
            let mut v = Vec::new();
            while let Some(p) = it.next() {
                v.push(p);
            }
            out.push((s.labels().clone(), v));
        }
        out
    }

    #[test]
    fn evaluation_times_are_aligned_and_offset_by_the_group_hash() {
        let g = group("groups:\n- name: g\n  interval: 10s\n  rules: [{record: r, expr: '1'}]\n");
        let iv = 10_000_000_000i64;
        let t = g.eval_timestamp(1_700_000_000_123_456_789);
        assert!(t <= 1_700_000_000_123_456_789 && t > 1_700_000_000_123_456_789 - iv);
        assert_eq!(g.eval_timestamp(t + iv - 1), t, "same slot");
        assert_eq!(g.eval_timestamp(t + iv), t + iv);
        let h = g.offset_ns();
        assert_eq!(t.rem_euclid(iv), h);
        let other =
            group("groups:\n- name: other\n  interval: 10s\n  rules: [{record: r, expr: '1'}]\n");
        assert_ne!(other.offset_ns(), h, "groups spread over the interval");
    }

    #[test]
    fn recording_outputs_go_stale_when_they_disappear() {
        let store = MemStorage::new();
        let up = |inst: &str| Labels::from_pairs([("__name__", "up"), ("instance", inst)]);
        store.add(&up("a"), &[(0, 1.0)]);
        store.add(&up("b"), &[(0, 1.0), (1000, 1.0)]);
        // Make `a` vanish at 1s.
        store.add(&up("a"), &[(1000, model::STALE_NAN)]);
        let g = group("groups:\n- name: g\n  rules:\n  - record: copy\n    expr: up\n");
        let e = env(&store, None);
        g.eval(0, &e);
        g.eval(1000, &e);
        let got = samples(&store, "copy");
        assert_eq!(got.len(), 2);
        let a = &got[0].1;
        assert_eq!(a[0], (0, 1.0));
        assert_eq!(a.len(), 2);
        assert!(model::is_stale_nan(a[1].1) && a[1].0 == 1000, "{a:?}");
        assert_eq!(got[1].1, vec![(0, 1.0), (1000, 1.0)]);
    }

    #[test]
    fn alerts_are_sent_with_generator_url_and_alerts_series_written() {
        let store = MemStorage::new();
        let sink = Arc::new(Sink(Mutex::new(Vec::new())));
        let g = group(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: vector(1) > 0\n    for: 1s\n",
        );
        g.set_restored();
        let e = env(&store, Some(sink.clone()));
        g.eval(0, &e);
        assert!(sink.0.lock().is_empty(), "pending alerts are not sent");
        g.eval(1000, &e);
        let sent = sink.0.lock().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].starts_at, 1000);
        assert_eq!(sent[0].ends_at, 1000 + 4 * 60_000);
        assert_eq!(
            sent[0].generator_url,
            "http://vigil:9090/graph?g0.expr=vector%281%29+%3E+0&g0.tab=1"
        );
        let alerts = samples(&store, "ALERTS");
        assert_eq!(alerts.len(), 2, "one series per state: {alerts:?}");
        let for_state = samples(&store, "ALERTS_FOR_STATE");
        assert_eq!(for_state[0].1, vec![(0, 0.0), (1000, 0.0)]);
    }

    /// `ALERTS_FOR_STATE{alertname="A"}` samples from before a restart.
    fn for_state(store: &MemStorage, samples: &[(i64, f64)]) {
        let labels = Labels::from_pairs([("__name__", "ALERTS_FOR_STATE"), ("alertname", "A")]);
        store.add(&labels, samples);
    }

    /// A group with one alert `A` on `vector(1)` held `for_`, evaluated at each of `evals`
    /// (ms), then restored at `restore_at` with Prometheus's default outage tolerance (1h)
    /// and grace period (1m).
    fn restored(store: &MemStorage, for_: &str, evals: &[i64], restore_at: i64) -> Group {
        let g = group(&format!(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: vector(1)\n    for: {for_}\n"
        ));
        let e = env(store, None);
        for &t in evals {
            g.eval(t, &e);
        }
        let (tolerance, grace) = (Duration::from_secs(3600), Duration::from_secs(60));
        g.restore_for_state(store, restore_at, tolerance, grace);
        g
    }

    /// The first active alert of the group's alerting rule, and whether the rule was restored.
    fn first_alert(g: &Group) -> (crate::rule::Alert, bool) {
        let st = g.state.lock();
        let Rule::Alerting(a) = &st.rules[0] else {
            panic!("alerting rule expected")
        };
        (a.active_alerts()[0].clone(), a.restored)
    }

    #[test]
    fn restore_moves_active_at_by_the_outage() {
        let store = MemStorage::new();
        // Before the restart: active since 1000s, last evaluated at 1300s.
        for_state(&store, &[(1_200_000, 1000.0), (1_300_000, 1000.0)]);
        let g = restored(&store, "10m", &[1_400_000, 1_401_000], 1_402_000);
        let (al, restored) = first_alert(&g);
        // 300s of the 600s `for` were spent before the outage (1300s - 1000s); the outage
        // lasted 102s, so activeAt moves from 1000s to 1102s.
        assert_eq!(al.active_at, 1_102_000);
        assert_eq!(al.state, AlertState::Pending);
        assert!(restored);
    }

    #[test]
    fn later_rules_see_earlier_results_of_the_same_evaluation() {
        let store = MemStorage::new();
        let g = group(
            "groups:\n- name: g\n  rules:\n  - record: a:one\n    expr: vector(1)\n  - alert: A\n    expr: a:one == 1\n",
        );
        g.set_restored();
        g.eval(1000, &env(&store, None));
        let st = g.state.lock();
        let Rule::Alerting(a) = &st.rules[1] else {
            panic!()
        };
        assert_eq!(a.state(), AlertState::Firing);
    }

    #[test]
    fn restore_ignores_state_older_than_the_outage_tolerance() {
        let store = MemStorage::new();
        for_state(&store, &[(1_300_000, 1000.0)]);
        // Down for more than an hour: the old activeAt is not restored.
        let g = restored(&store, "10m", &[5_000_000], 5_001_000);
        assert_eq!(first_alert(&g).0.active_at, 5_000_000);
    }

    #[test]
    fn restore_survives_garbage_for_state() {
        for v in [f64::NAN, f64::INFINITY, -1e300, 1e300] {
            let store = MemStorage::new();
            for_state(&store, &[(1_300_000, v)]);
            let g = restored(&store, "10m", &[1_400_000], 1_401_000);
            g.eval(1_402_000, &env(&store, None));
        }
    }

    #[test]
    fn restore_skips_short_for_and_uses_grace_period() {
        let store = MemStorage::new();
        for_state(&store, &[(1_300_000, 1000.0)]);
        // `for` shorter than the grace period: not restored.
        let g = restored(&store, "30s", &[1_400_000], 1_401_000);
        assert_eq!(first_alert(&g).0.active_at, 1_400_000);
        // Remaining pending time shorter than the grace period: fires a grace period after
        // the restore.
        let g = restored(&store, "320s", &[1_400_000], 1_401_000);
        assert_eq!(first_alert(&g).0.active_at, 1_401_000 + 60_000 - 320_000);
    }
}
