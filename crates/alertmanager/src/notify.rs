//! The notification pipeline of one configuration, run for each flush of an aggregation group:
//! inhibit → active/mute time intervals → silence → per integration (wait for the cluster
//! position → dedup against the nflog → send with retries → record in the nflog).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use model::Labels;
use serde::Serialize;
use web::client::Auth;

use crate::alert::{Alert, fingerprint_hex};
use crate::config::{Config, WebhookConfig};
use crate::inhibit::Inhibitor;
use crate::metrics::Metrics;
use crate::nflog::{Entry, Nflog, ReceiverKey};
use crate::route::Route;
use crate::silence::Silences;
use crate::time::{Clock, Time, format_opt_nano};
use crate::timeinterval::TimeInterval;

/// Why building or running an integration failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("receiver {receiver:?}: build HTTP client")]
    Client {
        receiver: String,
        #[source]
        source: web::client::ClientError,
    },
    #[error("{0}")]
    Send(String),
    #[error("load notification templates")]
    Templates(#[source] crate::tmpl::TmplError),
}

/// The group being flushed.
#[derive(Debug, Clone)]
pub struct GroupCtx {
    pub key: String,
    pub labels: Labels,
    pub route: Arc<Route>,
    pub now: Time,
    /// When this flush was scheduled (its timer tick), at or a little before `now`. The
    /// repeat-interval check counts from it, so a notification logged at the end of a flush is
    /// never a full repeat interval old at the tick `repeat_interval` later (Alertmanager's
    /// timers make it so too; timer lag must not tip it).
    pub tick: Time,
}

/// An alert as templates and the webhook payload see it.
#[derive(Debug, Clone, Serialize)]
pub struct TemplateAlert {
    pub status: &'static str,
    pub labels: Labels,
    pub annotations: Labels,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// Alertmanager's template data (`.Receiver`, `.Status`, `.Alerts`, `.GroupLabels`, …).
#[derive(Debug, Clone, Serialize)]
pub struct TemplateData {
    pub receiver: String,
    pub status: &'static str,
    pub alerts: Vec<TemplateAlert>,
    #[serde(rename = "groupLabels")]
    pub group_labels: Labels,
    #[serde(rename = "commonLabels")]
    pub common_labels: Labels,
    #[serde(rename = "commonAnnotations")]
    pub common_annotations: Labels,
    #[serde(rename = "externalURL")]
    pub external_url: String,
}

fn common(sets: impl Iterator<Item = Labels>) -> Labels {
    let mut acc: Option<Vec<(String, String)>> = None;
    for s in sets {
        match &mut acc {
            None => acc = Some(s.to_pairs()),
            Some(c) => c.retain(|(k, v)| s.get(k) == Some(v.as_str())),
        }
    }
    acc.map_or_else(Labels::empty, Labels::from_pairs)
}

/// Go's `regexp.QuoteMeta`.
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl TemplateData {
    pub fn new(
        receiver: &str,
        group_labels: &Labels,
        alerts: &[Alert],
        external_url: &str,
        now: Time,
    ) -> TemplateData {
        let firing = alerts.iter().any(|a| !a.resolved_at(now));
        TemplateData {
            // compat: Alertmanager passes the receiver name through regexp.QuoteMeta.
            receiver: quote_meta(receiver),
            status: if firing { "firing" } else { "resolved" },
            alerts: alerts
                .iter()
                .map(|a| TemplateAlert {
                    status: a.status_at(now),
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                    starts_at: a.starts_at.to_rfc3339_nano(),
                    ends_at: format_opt_nano(a.ends_at),
                    generator_url: a.generator_url.clone(),
                    fingerprint: fingerprint_hex(a.fingerprint()),
                })
                .collect(),
            group_labels: group_labels.clone(),
            common_labels: common(alerts.iter().map(|a| a.labels.clone())),
            common_annotations: common(alerts.iter().map(|a| a.annotations.clone())),
            external_url: external_url.to_string(),
        }
    }
}

/// The webhook payload, version 4.
#[derive(Serialize)]
pub struct WebhookMessage<'a> {
    #[serde(flatten)]
    pub data: &'a TemplateData,
    pub version: &'static str,
    #[serde(rename = "groupKey")]
    pub group_key: &'a str,
    #[serde(rename = "truncatedAlerts")]
    pub truncated_alerts: u64,
}

/// A webhook integration with its HTTP client.
pub struct Webhook {
    cfg: WebhookConfig,
    client: reqwest::Client,
    auth: Auth,
}

impl Webhook {
    fn new(receiver: &str, cfg: &WebhookConfig) -> Result<Webhook, NotifyError> {
        let err = |source| NotifyError::Client {
            receiver: receiver.to_string(),
            source,
        };
        Ok(Webhook {
            client: web::client::build_client(&cfg.http_config, None).map_err(err)?,
            auth: Auth::from_config(&cfg.http_config).map_err(err)?,
            cfg: cfg.clone(),
        })
    }

    /// Sends one notification; `Err((retry, message))` on failure.
    async fn send(
        &self,
        ctx: &GroupCtx,
        receiver: &str,
        alerts: &[Alert],
        external_url: &str,
    ) -> Result<(), (bool, String)> {
        let max = usize::try_from(self.cfg.max_alerts).unwrap_or(usize::MAX);
        let (alerts, truncated) = if max > 0 && alerts.len() > max {
            (&alerts[..max], (alerts.len() - max) as u64)
        } else {
            (alerts, 0)
        };
        let data = TemplateData::new(receiver, &ctx.labels, alerts, external_url, ctx.now);
        let body = crate::gojson::to_vec(&WebhookMessage {
            data: &data,
            version: "4",
            group_key: &ctx.key,
            truncated_alerts: truncated,
        });
        let url = match (&self.cfg.url, &self.cfg.url_file) {
            (Some(u), _) => u.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map(|s| s.trim().to_string())
                .map_err(|e| (true, format!("read url_file {f}: {e}")))?,
            (None, None) => return Err((false, "no URL configured".to_string())),
        };
        let req = self
            .client
            .post(&url)
            .header("Content-Type", "application/json")
            .header(
                "User-Agent",
                concat!("Vigil-Alertmanager/", env!("CARGO_PKG_VERSION")),
            )
            .body(body);
        let req = self
            .auth
            .apply_auth(req)
            .map_err(|e| (false, e.to_string()))?;
        let resp = req.send().await.map_err(|e| {
            (
                true,
                format!("Post {:?}: {}", redact(&url), web::error_chain(&e)),
            )
        })?;
        let status = resp.status();
        // Drain the body so the connection can be reused.
        let _ = resp.bytes().await;
        if status.is_success() {
            return Ok(());
        }
        Err((
            status.is_server_error(),
            format!("unexpected status code {}", status.as_u16()),
        ))
    }
}

fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("xxxxx"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

// One value per configured integration, built at (re)load: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Webhook(Webhook),
    Slack(crate::receivers::slack::Slack),
    Email(crate::receivers::email::Email),
    Pagerduty(crate::receivers::pagerduty::Pagerduty),
}

/// One integration of a receiver.
pub struct Integration {
    receiver: String,
    key: ReceiverKey,
    send_resolved: bool,
    kind: Kind,
}

impl Integration {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Webhook(_) => "webhook",
            Kind::Slack(_) => "slack",
            Kind::Email(_) => "email",
            Kind::Pagerduty(_) => "pagerduty",
        }
    }
}

/// Returns how long this node waits before sending: position × peer timeout in a cluster.
pub type PeerWait = Arc<dyn Fn() -> Duration + Send + Sync>;

/// Everything the pipeline needs besides the configuration.
#[derive(Clone)]
pub struct Shared {
    pub silences: Arc<Silences>,
    pub nflog: Arc<Nflog>,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    pub external_url: String,
    pub peer_wait: PeerWait,
    /// The gossip cluster: nothing is sent before it settled (Alertmanager's gossip settle
    /// stage).
    pub cluster: Option<cluster::Peer>,
    /// Gossiped "sending now" records (with the cluster only).
    pub inflight: Option<Arc<crate::inflight::InFlight>>,
    /// Smallest per-flush deadline for retries (Alertmanager: 10s).
    pub min_timeout: Duration,
    /// First retry backoff (Alertmanager: 500ms, growing ×1.5 up to a minute).
    pub initial_backoff: Duration,
}

/// The pipeline of one configuration.
pub struct Pipeline {
    receivers: HashMap<String, Vec<Arc<Integration>>>,
    inhibitor: Arc<Inhibitor>,
    time_intervals: HashMap<String, Arc<Vec<TimeInterval>>>,
    shared: Shared,
}

impl Pipeline {
    pub fn new(
        cfg: &Config,
        inhibitor: Arc<Inhibitor>,
        shared: Shared,
    ) -> Result<Pipeline, NotifyError> {
        let templates =
            Arc::new(crate::tmpl::Templates::load(&cfg.templates).map_err(NotifyError::Templates)?);
        let mut receivers = HashMap::new();
        for r in &cfg.receivers {
            let mut list = Vec::new();
            for (i, w) in r.webhooks.iter().enumerate() {
                list.push(Arc::new(Integration {
                    receiver: r.name.clone(),
                    key: ReceiverKey {
                        group_name: r.name.clone(),
                        integration: "webhook".into(),
                        idx: i as u32,
                    },
                    send_resolved: w.send_resolved,
                    kind: Kind::Webhook(Webhook::new(&r.name, w)?),
                }));
            }
            for (i, c) in r.slack.iter().enumerate() {
                let slack = crate::receivers::slack::Slack::new(c, templates.clone()).map_err(
                    |source| NotifyError::Client {
                        receiver: r.name.clone(),
                        source,
                    },
                )?;
                list.push(Arc::new(Integration {
                    receiver: r.name.clone(),
                    key: ReceiverKey {
                        group_name: r.name.clone(),
                        integration: "slack".into(),
                        idx: i as u32,
                    },
                    send_resolved: c.send_resolved,
                    kind: Kind::Slack(slack),
                }));
            }
            for (i, c) in r.pagerduty.iter().enumerate() {
                let pd = crate::receivers::pagerduty::Pagerduty::new(c, templates.clone())
                    .map_err(|source| NotifyError::Client {
                        receiver: r.name.clone(),
                        source,
                    })?;
                list.push(Arc::new(Integration {
                    receiver: r.name.clone(),
                    key: ReceiverKey {
                        group_name: r.name.clone(),
                        integration: "pagerduty".into(),
                        idx: i as u32,
                    },
                    send_resolved: c.send_resolved,
                    kind: Kind::Pagerduty(pd),
                }));
            }
            for (i, c) in r.email.iter().enumerate() {
                list.push(Arc::new(Integration {
                    receiver: r.name.clone(),
                    key: ReceiverKey {
                        group_name: r.name.clone(),
                        integration: "email".into(),
                        idx: i as u32,
                    },
                    send_resolved: c.send_resolved,
                    kind: Kind::Email(crate::receivers::email::Email::new(c, templates.clone())),
                }));
            }
            receivers.insert(r.name.clone(), list);
        }
        Ok(Pipeline {
            receivers,
            inhibitor,
            time_intervals: cfg.time_intervals.clone(),
            shared,
        })
    }

    pub fn inhibitor(&self) -> &Arc<Inhibitor> {
        &self.inhibitor
    }

    fn in_any(&self, names: &[String], now: Time) -> bool {
        names.iter().any(|n| {
            self.time_intervals
                .get(n)
                .is_some_and(|tis| tis.iter().any(|ti| ti.contains(now.timestamp())))
        })
    }

    /// Runs the pipeline for one flush; true when every integration succeeded (or nothing had to
    /// be sent), so resolved alerts may be dropped from the group.
    pub async fn exec(self: &Arc<Self>, ctx: GroupCtx, alerts: Vec<Alert>) -> bool {
        let now = ctx.now;
        let alerts: Vec<Alert> = alerts
            .into_iter()
            .filter(|a| self.inhibitor.mutes(&a.labels, now).is_none())
            .collect();
        if alerts.is_empty() {
            return true;
        }
        let route = &ctx.route;
        if !route.active_time_intervals.is_empty()
            && !self.in_any(&route.active_time_intervals, now)
        {
            tracing::debug!(group = %ctx.key, "outside active time intervals, not notifying");
            return true;
        }
        if self.in_any(&route.mute_time_intervals, now) {
            tracing::debug!(group = %ctx.key, "inside mute time interval, not notifying");
            return true;
        }
        self.shared
            .metrics
            .silences_queries
            .fetch_add(alerts.len() as u64, Ordering::Relaxed);
        let alerts: Vec<Alert> = alerts
            .into_iter()
            .filter(|a| self.shared.silences.mutes(&a.labels).is_empty())
            .collect();
        if alerts.is_empty() {
            return true;
        }
        let Some(integrations) = self.receivers.get(&route.receiver) else {
            tracing::error!(receiver = %route.receiver, "BUG: route names an unknown receiver");
            return false;
        };
        let alerts = Arc::new(alerts);
        let ctx = Arc::new(ctx);
        let mut tasks = Vec::with_capacity(integrations.len());
        for integ in integrations {
            let (me, integ, alerts, ctx) =
                (self.clone(), integ.clone(), alerts.clone(), ctx.clone());
            tasks.push(tokio::spawn(async move {
                me.exec_integration(&ctx, &integ, &alerts).await
            }));
        }
        let mut ok = true;
        for t in tasks {
            ok &= t.await.unwrap_or(false);
        }
        ok
    }

    async fn exec_integration(
        &self,
        ctx: &GroupCtx,
        integ: &Integration,
        alerts: &[Alert],
    ) -> bool {
        if let Some(c) = &self.shared.cluster {
            c.wait_ready().await;
        }
        let wait = (self.shared.peer_wait)();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let (mut firing, mut resolved) = (Vec::new(), Vec::new());
        for a in alerts {
            if a.resolved_at(ctx.now) {
                resolved.push(a.nflog_hash());
            } else {
                firing.push(a.nflog_hash());
            }
        }
        // A peer still sending this notification: wait for it to finish (its nflog entry
        // then decides) or for its record to lapse.
        let flight_key = format!("{}:{}", ctx.key, integ.key);
        if let Some(inf) = &self.shared.inflight {
            let give_up =
                tokio::time::Instant::now() + ctx.route.group_interval.max(self.shared.min_timeout);
            while inf.held_by_other(&flight_key) && tokio::time::Instant::now() < give_up {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        self.shared
            .metrics
            .nflog_queries
            .fetch_add(1, Ordering::Relaxed);
        let entry = self.shared.nflog.query(&ctx.key, &integ.key);
        if entry.is_none() {
            self.shared
                .metrics
                .nflog_query_errors
                .fetch_add(1, Ordering::Relaxed);
        }
        let now = ctx.tick.add(wait).min(self.shared.clock.now());
        if !needs_update(
            entry.as_ref(),
            &firing,
            &resolved,
            integ.send_resolved,
            ctx.route.repeat_interval,
            now,
        ) {
            // A peer logged this flush while we waited our turn: a page the cluster saved.
            // "This flush": logged at most half our wait before our flush (the nodes' group
            // timers start within milliseconds of each other; an older flush is a group
            // interval back).
            let tolerance = (wait / 2).min(ctx.route.group_interval / 2);
            if !wait.is_zero()
                && !firing.is_empty()
                && entry
                    .as_ref()
                    .is_some_and(|e| e.timestamp.add(tolerance) >= ctx.now)
            {
                self.shared
                    .metrics
                    .peer_dedup
                    .fetch_add(1, Ordering::Relaxed);
            }
            return true;
        }
        let to_send: Vec<Alert> = if integ.send_resolved {
            alerts.to_vec()
        } else {
            alerts
                .iter()
                .filter(|a| !a.resolved_at(ctx.now))
                .cloned()
                .collect()
        };
        let _in_flight = self.shared.inflight.as_ref().map(|i| i.begin(&flight_key));
        if !to_send.is_empty() || integ.send_resolved {
            let deadline = ctx.route.group_interval.max(self.shared.min_timeout) + wait;
            if !self.send_with_retries(ctx, integ, &to_send, deadline).await {
                return false;
            }
        }
        self.shared
            .nflog
            .log(&integ.key, &ctx.key, firing, resolved);
        true
    }

    async fn send_with_retries(
        &self,
        ctx: &GroupCtx,
        integ: &Integration,
        alerts: &[Alert],
        deadline: Duration,
    ) -> bool {
        let counters = self.shared.metrics.integration(integ.name());
        let give_up = tokio::time::Instant::now() + deadline;
        let mut backoff = self.shared.initial_backoff;
        let mut last_err = String::new();
        for attempt in 1.. {
            let started = std::time::Instant::now();
            counters.notifications.fetch_add(1, Ordering::Relaxed);
            counters.requests.fetch_add(1, Ordering::Relaxed);
            let attempt_fut = async {
                let data = || {
                    let url = &self.shared.external_url;
                    TemplateData::new(&integ.receiver, &ctx.labels, alerts, url, ctx.now)
                };
                match &integ.kind {
                    Kind::Webhook(w) => {
                        w.send(ctx, &integ.receiver, alerts, &self.shared.external_url)
                            .await
                    }
                    Kind::Slack(s) => s.send(&data()).await,
                    Kind::Email(e) => e.send(&data()).await,
                    Kind::Pagerduty(p) => p.send(&data(), &ctx.key).await,
                }
            };
            let res = tokio::time::timeout_at(give_up, attempt_fut)
                .await
                .unwrap_or_else(|_| Err((false, "context deadline exceeded".to_string())));
            counters.observe_latency(started.elapsed());
            match res {
                Ok(()) => {
                    tracing::debug!(receiver = %integ.receiver, integration = %integ.key, attempts = attempt, "Notify success");
                    return true;
                }
                Err((retry, msg)) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    counters.requests_failed.fetch_add(1, Ordering::Relaxed);
                    if !retry {
                        tracing::error!(receiver = %integ.receiver, integration = %integ.key, "notify retry canceled due to unrecoverable error after {attempt} attempts: {msg}");
                        return false;
                    }
                    if msg != last_err {
                        tracing::warn!(receiver = %integ.receiver, integration = %integ.key, attempts = attempt, "Notify attempt failed, will retry later: {msg}");
                    }
                    last_err = msg;
                }
            }
            let next = tokio::time::Instant::now() + backoff;
            if next >= give_up {
                tracing::error!(receiver = %integ.receiver, integration = %integ.key, "notify retry canceled after {attempt} attempts: {last_err}");
                return false;
            }
            tokio::time::sleep_until(next).await;
            backoff = (backoff.mul_f64(1.5)).min(Duration::from_secs(60));
        }
        false
    }
}

/// Alertmanager's dedup rule: notify when something new fires, when everything resolved that
/// was notified as firing, when resolved alerts changed (with `send_resolved`), or when the
/// repeat interval has passed since the last notification.
pub fn needs_update(
    entry: Option<&Entry>,
    firing: &[u64],
    resolved: &[u64],
    send_resolved: bool,
    repeat: Duration,
    now: Time,
) -> bool {
    let Some(e) = entry else {
        return !firing.is_empty();
    };
    if !e.is_firing_subset(firing) {
        return true;
    }
    if firing.is_empty() {
        return !e.firing.is_empty();
    }
    if send_resolved && !e.is_resolved_subset(resolved) {
        return true;
    }
    e.timestamp < now.sub(repeat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_rules() {
        let now = Time::parse("2024-01-01T01:00:00Z").unwrap();
        let e = Entry {
            group_key: "k".into(),
            receiver: ReceiverKey {
                group_name: "r".into(),
                integration: "webhook".into(),
                idx: 0,
            },
            timestamp: now.sub(Duration::from_secs(60)),
            firing: vec![1, 2],
            resolved: vec![],
            expires_at: now,
        };
        let h = Duration::from_secs(3600);
        let m = Duration::from_secs(30);
        #[track_caller]
        fn check(
            e: Option<&Entry>,
            f: &[u64],
            r: &[u64],
            sr: bool,
            rep: Duration,
            now: Time,
            want: bool,
        ) {
            assert_eq!(
                needs_update(e, f, r, sr, rep, now),
                want,
                "firing {f:?} resolved {r:?}"
            );
        }
        check(None, &[1], &[], true, h, now, true);
        check(None, &[], &[1], true, h, now, false);
        check(Some(&e), &[1, 2], &[], true, h, now, false);
        check(Some(&e), &[1, 2, 3], &[], true, h, now, true);
        check(Some(&e), &[1], &[2], true, h, now, true);
        check(Some(&e), &[1], &[2], false, h, now, false);
        check(Some(&e), &[], &[1, 2], false, h, now, true);
        check(Some(&e), &[1, 2], &[], true, m, now, true);
    }

    #[test]
    fn quote_meta_like_go() {
        assert_eq!(quote_meta("team.a+(x)"), r"team\.a\+\(x\)");
    }
}
