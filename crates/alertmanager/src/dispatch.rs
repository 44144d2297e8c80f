//! The dispatcher: puts each alert into the aggregation groups of the routes it matches and
//! flushes each group on Alertmanager's schedule — first after `group_wait` (at once if the
//! alert is already older than that), then every `group_interval`; the pipeline's dedup decides
//! whether a flush actually notifies (changes, or `repeat_interval` elapsed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use model::Labels;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::alert::{Alert, alert_order, fingerprint};
use crate::notify::{GroupCtx, Pipeline};
use crate::route::Route;
use crate::time::Clock;

struct GroupState {
    alerts: HashMap<u64, Alert>,
    has_flushed: bool,
    next: Instant,
}

/// One aggregation group: the alerts of one route with the same group labels.
pub struct AggrGroup {
    pub route: Arc<Route>,
    pub labels: Labels,
    pub key: String,
    state: Mutex<GroupState>,
    wake: Notify,
    token: CancellationToken,
}

impl AggrGroup {
    /// A copy of the group's alerts.
    pub fn alerts(&self) -> Vec<Alert> {
        self.state.lock().alerts.values().cloned().collect()
    }

    fn is_empty(&self) -> bool {
        self.state.lock().alerts.is_empty()
    }

    fn insert(&self, a: Alert, clock: &Clock) {
        let mut st = self.state.lock();
        let now = clock.now();
        let overdue = a.starts_at.add(self.route.group_wait) < now;
        st.alerts.insert(a.fingerprint(), a);
        if !st.has_flushed && overdue {
            st.next = Instant::now();
            drop(st);
            self.wake.notify_one();
        }
    }

    async fn run(self: Arc<Self>, pipeline: Arc<Pipeline>, clock: Clock) {
        loop {
            let next = self.state.lock().next;
            tokio::select! {
                _ = self.token.cancelled() => return,
                _ = self.wake.notified() => continue,
                _ = tokio::time::sleep_until(next) => {}
            }
            let scheduled = {
                let mut st = self.state.lock();
                let now = Instant::now();
                if now < st.next {
                    continue;
                }
                // The next tick is a group interval after this one was due, so wake-up lag
                // does not accumulate; after a long stall it is a group interval from now.
                let scheduled = st.next;
                st.next = (scheduled + self.route.group_interval).max(now);
                if st.next == now {
                    st.next = now + self.route.group_interval;
                }
                st.has_flushed = true;
                scheduled
            };
            let lag = Instant::now().saturating_duration_since(scheduled);
            self.flush(&pipeline, &clock, lag).await;
        }
    }

    async fn flush(&self, pipeline: &Arc<Pipeline>, clock: &Clock, lag: std::time::Duration) {
        let now = clock.now();
        let mut alerts: Vec<Alert> = {
            let st = self.state.lock();
            st.alerts.values().cloned().collect()
        };
        if alerts.is_empty() {
            return;
        }
        for a in &mut alerts {
            // Alerts that are not resolved yet are sent without an end time, so they do not
            // resolve on the receiver's side as time passes.
            if !a.resolved_at(now) {
                a.ends_at = None;
            }
        }
        alerts.sort_by(alert_order);
        let ctx = GroupCtx {
            key: self.key.clone(),
            labels: self.labels.clone(),
            route: self.route.clone(),
            now,
            tick: now.sub(lag),
        };
        let sent = alerts.clone();
        let ok = tokio::select! {
            ok = pipeline.exec(ctx, alerts) => ok,
            _ = self.token.cancelled() => false,
        };
        if !ok {
            return;
        }
        let mut st = self.state.lock();
        for a in sent.iter().filter(|a| a.resolved_at(now)) {
            let fp = a.fingerprint();
            // Keep it if it was updated while we were notifying.
            if st
                .alerts
                .get(&fp)
                .is_some_and(|cur| cur.updated_at == a.updated_at)
            {
                st.alerts.remove(&fp);
            }
        }
    }
}

/// Routes alerts into aggregation groups for one configuration.
pub struct Dispatcher {
    route: Arc<Route>,
    groups: Mutex<HashMap<(usize, u64), Arc<AggrGroup>>>,
    pipeline: Arc<Pipeline>,
    clock: Clock,
    token: CancellationToken,
    runtime: tokio::runtime::Handle,
}

impl Dispatcher {
    /// A dispatcher whose groups stop when `token` is cancelled. Must be created inside a
    /// tokio runtime.
    pub fn new(
        route: Arc<Route>,
        pipeline: Arc<Pipeline>,
        clock: Clock,
        token: CancellationToken,
    ) -> Dispatcher {
        Dispatcher {
            route,
            groups: Mutex::new(HashMap::new()),
            pipeline,
            clock,
            token,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// Adds or updates an alert in every group it belongs to.
    pub fn process(&self, a: &Alert) {
        let routes = self.route.match_labels(&a.labels);
        let mut groups = self.groups.lock();
        for route in routes {
            let labels = route.group_labels(&a.labels);
            let id = (Arc::as_ptr(&route) as usize, fingerprint(&labels));
            let g = groups.entry(id).or_insert_with(|| {
                let g = Arc::new(AggrGroup {
                    key: route.group_key(&labels),
                    state: Mutex::new(GroupState {
                        alerts: HashMap::new(),
                        has_flushed: false,
                        next: Instant::now() + route.group_wait,
                    }),
                    route,
                    labels,
                    wake: Notify::new(),
                    token: self.token.child_token(),
                });
                self.runtime
                    .spawn(g.clone().run(self.pipeline.clone(), self.clock.clone()));
                g
            });
            g.insert(a.clone(), &self.clock);
        }
    }

    /// Removes groups that have no alerts left (Alertmanager does this every 30s).
    pub fn maintenance(&self) {
        self.groups.lock().retain(|_, g| {
            let keep = !g.is_empty();
            if !keep {
                g.token.cancel();
            }
            keep
        });
    }

    /// The current groups.
    pub fn groups(&self) -> Vec<Arc<AggrGroup>> {
        self.groups.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.groups.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops every group.
    pub fn stop(&self) {
        self.token.cancel();
    }

    /// Runs maintenance every `every` until the token is cancelled.
    pub async fn run_maintenance(self: Arc<Self>, every: Duration) {
        loop {
            tokio::select! {
                _ = self.token.cancelled() => return,
                _ = tokio::time::sleep(every) => self.maintenance(),
            }
        }
    }
}
