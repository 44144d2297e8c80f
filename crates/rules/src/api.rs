//! The data of `/api/v1/rules`, `/api/v1/alerts` and `/api/v1/alertmanagers` in Prometheus's
//! JSON shapes (the server wraps them in the API envelope).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::manager::Manager;
use crate::notifier::Notifier;
use crate::rule::{Alert, AlertState, EvalInfo, Rule};

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "0001-01-01T00:00:00Z".to_string())
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn labels_json(l: &model::Labels) -> Value {
    let m: BTreeMap<&str, &str> = l.iter().map(|l| (l.name, l.value)).collect();
    json!(m)
}

/// compat: alert values are formatted with Go's `strconv.FormatFloat(v, 'e', -1, 64)`.
pub fn format_value_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let s = format!("{v:e}");
    // Rust: `1e0`, `1.5e-7`; Go: `1e+00`, `1.5e-07`.
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// A float64 as Go's encoding/json writes it: whole numbers without a fraction (`2`, not `2.0`).
fn go_float(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

fn alert_json(a: &Alert) -> Value {
    let mut v = json!({
        "labels": labels_json(&a.labels),
        "annotations": a.annotations,
        "state": a.state.as_str(),
        "activeAt": rfc3339(a.active_at),
        "value": format_value_e(a.value),
    });
    if let Some(k) = a.keep_firing_since {
        v["keepFiringSince"] = rfc3339(k).into();
    }
    v
}

fn eval_fields(v: &mut Value, info: &EvalInfo) {
    v["health"] = info.health.as_str().into();
    if let Some(e) = &info.last_error {
        v["lastError"] = e.clone().into();
    }
    v["evaluationTime"] = info.duration.as_secs_f64().into();
    v["lastEvaluation"] = info
        .last_evaluation
        .map(rfc3339)
        .unwrap_or_else(|| ZERO_TIME.to_string())
        .into();
}

/// Which rules `/api/v1/rules` lists (`type=alert|record`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleTypeFilter {
    All,
    Alert,
    Record,
}

impl RuleTypeFilter {
    /// Parses the `type` parameter; the error is Prometheus's message.
    pub fn parse(s: Option<&str>) -> Result<RuleTypeFilter, String> {
        match s.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => Ok(RuleTypeFilter::All),
            Some("alert") => Ok(RuleTypeFilter::Alert),
            Some("record") => Ok(RuleTypeFilter::Record),
            // compat: Prometheus 2.42 quotes the lower-cased value.
            Some(t) => Err(format!(
                "invalid parameter \"type\": not supported value {}",
                serde_json::to_string(t).unwrap_or_default()
            )),
        }
    }
}

/// `data` of `/api/v1/rules`.
pub fn rules_json(m: &Manager, filter: RuleTypeFilter) -> Value {
    let mut groups = Vec::new();
    for g in m.groups() {
        let st = g.state.lock();
        let mut rules = Vec::new();
        for (r, info) in st.rules.iter().zip(&st.infos) {
            let mut v = match r {
                Rule::Alerting(a) => {
                    if filter == RuleTypeFilter::Record {
                        continue;
                    }
                    let alerts: Vec<Value> = a.active_alerts().iter().map(alert_json).collect();
                    json!({
                        "state": a.state().as_str(),
                        "name": a.name,
                        "query": a.expr_text,
                        "duration": go_float(a.hold.as_secs_f64()),
                        "keepFiringFor": go_float(a.keep_firing_for.as_secs_f64()),
                        "labels": a.labels,
                        "annotations": a.annotations,
                        "alerts": alerts,
                        "type": "alerting",
                    })
                }
                Rule::Recording(rr) => {
                    if filter == RuleTypeFilter::Alert {
                        continue;
                    }
                    let mut v = json!({
                        "name": rr.name,
                        "query": rr.expr_text,
                        "type": "recording",
                    });
                    if !rr.labels.is_empty() {
                        v["labels"] = json!(rr.labels);
                    }
                    v
                }
            };
            eval_fields(&mut v, info);
            rules.push(v);
        }
        let last_ms = g
            .metrics
            .last_evaluation_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        groups.push(json!({
            "name": g.name,
            "file": g.file,
            "rules": rules,
            "interval": go_float(g.interval.as_secs_f64()),
            "limit": g.limit,
            "evaluationTime": g.metrics.last_duration(),
            "lastEvaluation": if last_ms == 0 { ZERO_TIME.to_string() } else { rfc3339(last_ms as i64) },
        }));
    }
    json!({ "groups": groups })
}

/// `data` of `/api/v1/alerts`: every pending and firing alert.
pub fn alerts_json(m: &Manager) -> Value {
    let mut alerts = Vec::new();
    for g in m.groups() {
        let st = g.state.lock();
        for r in &st.rules {
            if let Rule::Alerting(a) = r {
                alerts.extend(
                    a.active_alerts()
                        .iter()
                        .filter(|a| a.state != AlertState::Inactive)
                        .map(alert_json),
                );
            }
        }
    }
    json!({ "alerts": alerts })
}

/// `data` of `/api/v1/alertmanagers`.
pub fn alertmanagers_json(n: &Notifier) -> Value {
    let (active, dropped) = n.alertmanagers();
    let f = |v: Vec<String>| {
        v.into_iter()
            .map(|u| json!({ "url": u }))
            .collect::<Vec<_>>()
    };
    json!({
        "activeAlertmanagers": f(active),
        "droppedAlertmanagers": f(dropped),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_seconds_are_integers() {
        // Prometheus: "duration":2, "interval":1, "keepFiringFor":0.5.
        assert_eq!(go_float(2.0).to_string(), "2");
        assert_eq!(go_float(0.0).to_string(), "0");
        assert_eq!(go_float(0.5).to_string(), "0.5");
    }

    #[test]
    fn go_e_format() {
        assert_eq!(format_value_e(1.0), "1e+00");
        assert_eq!(format_value_e(1.5e-7), "1.5e-07");
        assert_eq!(format_value_e(123456.0), "1.23456e+05");
        assert_eq!(format_value_e(0.0), "0e+00");
        assert_eq!(format_value_e(1e100), "1e+100");
    }
}
