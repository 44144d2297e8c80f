//! Grouping, timing, inhibition, silences and the nflog, end to end through the HTTP API and a
//! webhook sink, with short durations.

use std::time::Duration;

use serde_json::json;

use crate::common::{Am, Sink, get, poll_until, post_json, ts_in, write};

fn config(sink: &Sink, extra: &str) -> String {
    format!(
        r#"
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 300ms
  group_interval: 1s
  repeat_interval: 3s
{extra}
receivers:
- name: hook
  webhook_configs:
  - url: {}
"#,
        sink.url("/hook")
    )
}

fn alert(name: &str, instance: &str) -> serde_json::Value {
    json!({"labels": {"alertname": name, "instance": instance, "job": "j"}, "annotations": {"summary": "s"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_wait_interval_repeat_and_resolve() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "am.yml", &config(&sink, ""));
    let am = Am::start(&cfg, &dir.path().join("data")).await;

    let t0 = std::time::Instant::now();
    assert_eq!(am.post_alerts(json!([alert("A", "1")])).await.0, 200);
    let first = poll_until(Duration::from_secs(3), || sink.on("/hook").first().cloned())
        .await
        .expect("first notification");
    let waited = first.at - t0;
    assert!(
        waited >= Duration::from_millis(250),
        "sent before group_wait: {waited:?}"
    );
    let body = first.json();
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(body["groupKey"], "{}:{alertname=\"A\"}");
    assert_eq!(body["groupLabels"], json!({"alertname": "A"}));
    assert_eq!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");

    // A second alert joins the group: sent at the next group_interval tick, not at once.
    assert_eq!(am.post_alerts(json!([alert("A", "2")])).await.0, 200);
    let second = poll_until(Duration::from_secs(3), || sink.on("/hook").get(1).cloned())
        .await
        .expect("second notification");
    let gap = second.at - first.at;
    assert!(
        gap >= Duration::from_millis(900),
        "group_interval not respected: {gap:?}"
    );
    let b = second.json();
    let instances: Vec<&str> = b["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["instance"].as_str().unwrap())
        .collect();
    assert_eq!(instances, ["1", "2"]);
    assert_eq!(b["commonLabels"], json!({"alertname": "A", "job": "j"}));

    // Nothing changes: the next notification is a repeat after repeat_interval.
    let third = poll_until(Duration::from_secs(6), || sink.on("/hook").get(2).cloned())
        .await
        .expect("repeat notification");
    let gap = third.at - second.at;
    assert!(
        gap >= Duration::from_millis(2900),
        "repeated too early: {gap:?}"
    );
    assert_eq!(third.json()["alerts"], b["alerts"]);

    // Resolve both: a resolved notification follows.
    let now = ts_in(0);
    let mut resolved = vec![alert("A", "1"), alert("A", "2")];
    for a in &mut resolved {
        a["endsAt"] = json!(now);
    }
    assert_eq!(am.post_alerts(json!(resolved)).await.0, 200);
    let last = poll_until(Duration::from_secs(4), || {
        sink.on("/hook")
            .into_iter()
            .find(|h| h.json()["status"] == "resolved")
    })
    .await
    .expect("resolved notification");
    assert_eq!(last.json()["alerts"][0]["status"], "resolved");
    am.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inhibition_and_silences_suppress() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = r#"
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [cluster]
"#;
    let cfg = write(dir.path(), "am.yml", &config(&sink, extra));
    let am = Am::start(&cfg, &dir.path().join("data")).await;
    let (code, body) = post_json(
        &format!("{}/api/v2/silences", am.base),
        json!({"matchers": [{"name": "alertname", "value": "Silenced", "isRegex": false}],
               "startsAt": ts_in(-1), "endsAt": ts_in(3600), "createdBy": "t", "comment": "c"}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let alerts = json!([
        {"labels": {"alertname": "Crit", "severity": "critical", "cluster": "a"}},
        {"labels": {"alertname": "Warn", "severity": "warning", "cluster": "a"}},
        {"labels": {"alertname": "Warn2", "severity": "warning", "cluster": "b"}},
        {"labels": {"alertname": "Silenced"}},
    ]);
    assert_eq!(am.post_alerts(alerts).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut names: Vec<String> = sink
        .on("/hook")
        .iter()
        .map(|h| {
            h.json()["groupLabels"]["alertname"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["Crit", "Warn2"]);

    // The API reports why the others are suppressed.
    let (_, body) = get(&format!("{}/api/v2/alerts", am.base)).await;
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    for a in list.as_array().unwrap() {
        let name = a["labels"]["alertname"].as_str().unwrap();
        let st = &a["status"];
        match name {
            "Warn" => assert_eq!(st["inhibitedBy"].as_array().unwrap().len(), 1),
            "Silenced" => assert_eq!(st["silencedBy"].as_array().unwrap().len(), 1),
            _ => assert_eq!(st["state"], "active"),
        }
    }
    let (_, body) = get(&format!(
        "{}/api/v2/alerts?silenced=false&inhibited=false",
        am.base
    ))
    .await;
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    am.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_silences_and_does_not_renotify() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "am.yml",
        &config(&sink, "").replace("repeat_interval: 3s", "repeat_interval: 1h"),
    );
    let data = dir.path().join("data");
    let am = Am::start(&cfg, &data).await;
    let starts = ts_in(-60);
    let a = json!([{"labels": {"alertname": "A"}, "startsAt": starts}]);
    assert_eq!(am.post_alerts(a.clone()).await.0, 200);
    poll_until(Duration::from_secs(3), || sink.on("/hook").first().cloned())
        .await
        .expect("first notification");
    let (code, body) = post_json(
        &format!("{}/api/v2/silences", am.base),
        json!({"matchers": [{"name": "x", "value": "y", "isRegex": false}],
               "startsAt": ts_in(0), "endsAt": ts_in(3600), "createdBy": "t", "comment": "keep me"}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    am.stop().await;
    assert!(data.join("silences").exists() && data.join("nflog").exists());

    let am = Am::start(&cfg, &data).await;
    let (_, body) = get(&format!("{}/api/v2/silences", am.base)).await;
    assert!(body.contains("keep me"), "{body}");
    // The same alert again: its group was already notified, so nothing is sent.
    assert_eq!(am.post_alerts(a).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.on("/hook").len(), 1, "re-notified after restart");
    am.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_failed_webhooks() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 of localhost at first; the receiver fails, then we fix the
    // config by reload and the new group notifies.
    let bad = config(&sink, "").replace(&sink.url("/hook"), "http://127.0.0.1:9/hook");
    let cfg = write(dir.path(), "am.yml", &bad);
    let am = Am::start_with(&cfg, &dir.path().join("data"), |f| {
        f.notify_initial_backoff = Duration::from_millis(50);
    })
    .await;
    assert_eq!(am.post_alerts(json!([alert("A", "1")])).await.0, 200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, metrics) = get(&format!("{}/metrics", am.base)).await;
    let failed = metrics
        .lines()
        .find(|l| l.starts_with("alertmanager_notifications_failed_total{integration=\"webhook\"}"))
        .unwrap();
    assert!(!failed.ends_with(" 0"), "{failed}");
    write(dir.path(), "am.yml", &config(&sink, ""));
    let r = reqwest::Client::new()
        .post(format!("{}/-/reload", am.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    poll_until(Duration::from_secs(3), || sink.on("/hook").first().cloned())
        .await
        .expect("notification after reload");
    am.stop().await;
}

/// With repeat_interval a whole number of group intervals, Alertmanager repeats one tick later
/// than that (the notification is logged after its tick, so at the tick `repeat_interval` later
/// it is not yet old enough): repeats come every 3 group intervals for a repeat of 2. Timer
/// lag must not tip this either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_at_a_multiple_of_group_interval_waits_one_more_tick() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let text = config(&sink, "")
        .replace("group_wait: 300ms", "group_wait: 0s")
        .replace("group_interval: 1s", "group_interval: 200ms")
        .replace("repeat_interval: 3s", "repeat_interval: 400ms");
    let cfg = write(dir.path(), "am.yml", &text);
    let am = Am::start(&cfg, &dir.path().join("data")).await;
    assert_eq!(am.post_alerts(json!([alert("R", "1")])).await.0, 200);
    let hooks = poll_until(Duration::from_secs(5), || {
        let h = sink.on("/hook");
        (h.len() >= 4).then_some(h)
    })
    .await
    .expect("four notifications");
    for w in hooks.windows(2) {
        let gap = w[1].at - w[0].at;
        assert!(
            gap >= Duration::from_millis(550) && gap <= Duration::from_millis(750),
            "repeat every 3 group intervals (600ms), got {gap:?}"
        );
    }
    am.stop().await;
}
