//! The same config and alerts fed to Debian's Alertmanager 0.25 and to vigil: the webhook
//! notifications must be the same bytes, apart from `externalURL`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::{Am, Sink, get, peer, poll_until, post_json, write};

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(sink: &Sink, path: &str) -> String {
    format!(
        r#"
route:
  receiver: main
  group_by: [alertname]
  group_wait: 500ms
  group_interval: 1s
  repeat_interval: 1h
  routes:
  - matchers: ['severity="page"']
    receiver: pager
    continue: true
    group_by: [alertname, cluster]
  - matchers: ['team=~"db.*"']
    receiver: 'team.db'
    group_by: ['...']
receivers:
- name: main
  webhook_configs:
  - url: {main}
- name: pager
  webhook_configs:
  - url: {pager}
    max_alerts: 2
- name: 'team.db'
  webhook_configs:
  - url: {db}
"#,
        main = sink.url(&format!("/{path}/main")),
        pager = sink.url(&format!("/{path}/pager")),
        db = sink.url(&format!("/{path}/db")),
    )
}

/// Starts Debian's Alertmanager without clustering and waits until it is ready.
async fn start_peer(
    bin: &std::path::Path,
    cfg: &std::path::Path,
    data: &std::path::Path,
) -> (Peer, String) {
    let port = free_port();
    let peer = Peer(
        Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("{base}/-/ready")).await
            && r.status() == 200
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "Debian alertmanager did not become ready");
    (peer, base)
}

/// Status, Content-Type and body of a raw request, with timestamps and silence ids blanked.
async fn exchange(base: &str, method: &str, path: &str, body: &str) -> String {
    let c = reqwest::Client::new();
    let url = format!("{base}{path}");
    let req = match method {
        "POST" => c
            .post(url)
            .header("Content-Type", "application/json")
            .body(body.to_string()),
        "DELETE" => c.delete(url),
        _ => c.get(url),
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let cors = r
        .headers()
        .get("access-control-allow-methods")
        .map(|v| format!(" cors={}", v.to_str().unwrap()))
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    let ts = regex::Regex::new(r"\d{4}-\d\d-\d\dT[\d:.]+Z").unwrap();
    let id =
        regex::Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap();
    let text = ts.replace_all(&text, "TS");
    let text = id.replace_all(&text, "ID");
    format!("{method} {path} {body}\n  -> {status} {ct}{cors} {text:?}")
}

/// Bad and unusual API v2 requests get the same status, Content-Type and body (byte for byte,
/// after blanking times and ids) from vigil as from Debian's Alertmanager 0.25.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_match_alertmanager() {
    let Some(bin) = peer("prometheus-alertmanager") else {
        return;
    };
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "am.yml", &config(&sink, "x"));
    let (_peer, theirs) = start_peer(&bin, &cfg, &dir.path().join("am-data")).await;
    let am = Am::start(&cfg, &dir.path().join("vigil-data")).await;
    let later = crate::common::ts_in(3600);
    let before = crate::common::ts_in(-60);
    let m = r#"[{"name":"a","value":"x","isRegex":false}]"#;
    let requests: Vec<(&str, String, String)> = vec![
        // Alerts: decoding (400), then go-swagger validation (422), then Alertmanager's own.
        ("POST", "/api/v2/alerts".into(), "null".into()),
        (
            "POST",
            "/api/v2/alerts".into(),
            r#"[{"startsAt":"bad"}]"#.into(),
        ),
        (
            "POST",
            "/api/v2/alerts".into(),
            r#"[{"labels":{"a":"x"},"startsAt":"2026-13-24T20:00:00Z"}]"#.into(),
        ),
        (
            "POST",
            "/api/v2/alerts".into(),
            r#"[{"labels":{"a":"x"},"endsAt":"2026-11-24 20:00:00x"}]"#.into(),
        ),
        (
            "POST",
            "/api/v2/alerts".into(),
            r#"[{"labels":{"b":"x"},"startsAt":"2026-11-24T20:00:00"}]"#.into(),
        ),
        (
            "POST",
            "/api/v2/alerts".into(),
            r#"[{"labels":{"c":"x"},"startsAt":"2026-11-24 20:00:00"}]"#.into(),
        ),
        (
            "POST",
            "/api/v2/alerts".into(),
            r#"[{"labels":{"d":"x"},"startsAt":""}]"#.into(),
        ),
        (
            "POST",
            "/api/v2/alerts".into(),
            r#"[{"labels":{"a":"x"},"generatorURL":"not a url"}]"#.into(),
        ),
        (
            "POST",
            "/api/v2/alerts".into(),
            r#"[{"generatorURL":"http://x:port/"}]"#.into(),
        ),
        (
            "POST",
            "/api/v2/alerts".into(),
            r#"[{"labels":{"a":"x"}},{}]"#.into(),
        ),
        ("POST", "/api/v2/alerts".into(), r#"[{"labels":{}}]"#.into()),
        (
            "POST",
            "/api/v2/alerts".into(),
            r#"[{"labels":{"1a":"x"}}]"#.into(),
        ),
        (
            "GET",
            "/api/v2/alerts?filter=b%3D%22x%22".into(),
            String::new(),
        ),
        // (Paths with two methods list them in Go's random map order: not compared.)
        ("POST", "/api/v2/status".into(), "{}".into()),
        ("DELETE", "/api/v2/receivers".into(), String::new()),
        ("DELETE", "/api/v2/alerts/groups".into(), String::new()),
        (
            "GET",
            "/api/v2/alerts?filter=d%3D%22x%22".into(),
            String::new(),
        ),
        (
            "GET",
            "/api/v2/alerts?filter=a%3D~%22(%22".into(),
            String::new(),
        ),
        ("GET", "/api/v2/alerts?receiver=a)".into(), String::new()),
        // Silences: the first missing field in go-swagger's (alphabetical) order.
        ("POST", "/api/v2/silences".into(), "{}".into()),
        (
            "POST",
            "/api/v2/silences".into(),
            r#"{"comment":"c"}"#.into(),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            format!(r#"{{"comment":"c","createdBy":"me","endsAt":"{later}"}}"#),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            format!(
                r#"{{"comment":"c","createdBy":"me","endsAt":"{later}","matchers":[{{"name":"a"}}]}}"#
            ),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            format!(r#"{{"comment":"c","createdBy":"me","endsAt":"{later}","matchers":[]}}"#),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            format!(r#"{{"comment":"c","createdBy":"me","endsAt":"{later}","matchers":{m}}}"#),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            format!(
                r#"{{"comment":"c","createdBy":"me","endsAt":"{later}","matchers":{m},"startsAt":"x"}}"#
            ),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            format!(
                r#"{{"comment":"c","createdBy":"me","endsAt":"{later}","startsAt":"{later}","matchers":[{{"name":"a","value":"(","isRegex":true}}]}}"#
            ),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            format!(
                r#"{{"comment":"c","createdBy":"me","endsAt":"{later}","startsAt":"{before}","matchers":[{{"name":"a","value":"(","isRegex":true}}]}}"#
            ),
        ),
        (
            "POST",
            "/api/v2/silences".into(),
            format!(
                r#"{{"comment":"c","createdBy":"me","endsAt":"{later}","startsAt":"{before}","matchers":[{{"name":"a","value":".*","isRegex":true}}]}}"#
            ),
        ),
        ("GET", "/api/v2/silence/nope".into(), String::new()),
        (
            "GET",
            "/api/v2/silence/00000000-0000-0000-0000-000000000000".into(),
            String::new(),
        ),
        (
            "DELETE",
            "/api/v2/silence/00000000-0000-0000-0000-000000000000".into(),
            String::new(),
        ),
    ];
    compare(&theirs, &am.base, &requests).await;

    // API v1, which 0.25 still serves. (Known difference: an alert posted there without
    // annotations shows `"annotations":null` in 0.25, `{}` in vigil.)
    let v1 = |m: &'static str, p: &str, b: &str| (m, p.to_string(), b.to_string());
    let requests = vec![
        v1(
            "POST",
            "/api/v1/alerts",
            r#"[{"labels":{"alertname":"V1","severity":"page","cluster":"eu"},"annotations":{"s":"<x>"},"startsAt":"2026-11-24T20:00:00.5+01:00"},{"labels":{"alertname":"V1b","team":"dbx"},"annotations":{},"generatorURL":"http://x"},{"labels":{"alertname":"V1c","severity":"page","team":"dbz"},"annotations":{}}]"#,
        ),
        v1("POST", "/api/v1/alerts", "{}"),
        v1("POST", "/api/v1/alerts", "x"),
        v1("POST", "/api/v1/alerts", ""),
        v1("POST", "/api/v1/alerts", "null"),
        v1("POST", "/api/v1/alerts", r#"[{"labels":{}}]"#),
        v1(
            "POST",
            "/api/v1/alerts",
            r#"[{"labels":{"a":"b"},"startsAt":"bad"}]"#,
        ),
        v1("POST", "/api/v1/alerts", r#"[{"labels":{"1":"b"}}]"#),
        v1(
            "POST",
            "/api/v1/alerts",
            r#"[{"labels":{"a":"b"},"startsAt":"2026-11-24T20:00:00Z","endsAt":"2026-11-24T19:00:00Z"},{"labels":{}}]"#,
        ),
        v1("GET", "/api/v1/alerts?active=x", ""),
        v1("GET", "/api/v1/alerts?receiver=(", ""),
        v1("GET", "/api/v1/alerts?filter=foo", ""),
        v1("GET", "/api/v1/receivers", ""),
        v1("POST", "/api/v1/silences", "[]"),
        v1(
            "POST",
            "/api/v1/silences",
            &format!(r#"{{"matchers":[],"startsAt":"{before}","endsAt":"{later}"}}"#),
        ),
        v1(
            "POST",
            "/api/v1/silences",
            &format!(
                r#"{{"matchers":[{{"name":"a","value":"x"}}],"startsAt":"{later}","endsAt":"{later}"}}"#
            ),
        ),
        v1(
            "POST",
            "/api/v1/silences",
            &format!(
                r#"{{"matchers":[{{"name":"a","value":"x"}}],"startsAt":"bad","endsAt":"{later}"}}"#
            ),
        ),
        v1(
            "POST",
            "/api/v1/silences",
            &format!(
                r#"{{"matchers":[{{"name":"a","value":"(","isRegex":true}}],"startsAt":"{before}","endsAt":"{later}"}}"#
            ),
        ),
        v1(
            "POST",
            "/api/v1/silences",
            &format!(
                r#"{{"id":"nope","matchers":[{{"name":"a","value":"x"}}],"startsAt":"{before}","endsAt":"{later}"}}"#
            ),
        ),
        v1(
            "POST",
            "/api/v1/silences",
            &format!(
                r#"{{"matchers":[{{"name":"alertname","value":"Nope"}},{{"name":"x","value":"y.*","isRegex":true,"isEqual":false}}],"startsAt":"{before}","endsAt":"{later}","createdBy":"me"}}"#
            ),
        ),
        v1("GET", "/api/v1/silences", ""),
        v1("GET", "/api/v1/silences?filter=alertname%3DNope", ""),
        v1("GET", "/api/v2/silences", ""),
        v1("GET", "/api/v1/silence/nope", ""),
        v1("DELETE", "/api/v1/silence/nope", ""),
    ];
    compare(&theirs, &am.base, &requests).await;
    // Once the groups have flushed (group_wait 500ms), the alerts read the same.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let requests = vec![
        v1("GET", "/api/v1/alerts", ""),
        v1(
            "GET",
            "/api/v1/alerts?filter=%7Balertname%3D~%22V1.*%22%7D&receiver=pager",
            "",
        ),
        v1("GET", "/api/v2/alerts/groups", ""),
        v1("GET", "/api/v2/alerts/groups?receiver=pager", ""),
        v1(
            "GET",
            "/api/v2/alerts/groups?receiver=team.*&filter=team%3D~%22db.%22",
            "",
        ),
        v1("GET", "/api/v1/alerts?active=false", ""),
    ];
    compare(&theirs, &am.base, &requests).await;

    // Expiring a silence twice (ids differ between the two, so each side uses its own).
    for base in [&theirs, &am.base] {
        let (_, list) = get(&format!("{base}/api/v2/silences")).await;
        let list: serde_json::Value = serde_json::from_str(&list).unwrap();
        let id = list[0]["id"].as_str().unwrap().to_string();
        for round in 0..2 {
            let r = reqwest::Client::new()
                .delete(format!("{base}/api/v2/silence/{id}"))
                .send()
                .await
                .unwrap();
            // 0.25 answers 200 again for an already expired silence.
            assert_eq!(r.status().as_u16(), 200, "{base} round {round}");
        }
    }

    // The configuration as /api/v2/status shows it, defaults applied.
    let original = |s: String| -> String {
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        v["config"]["original"].as_str().unwrap().to_string()
    };
    let (_, t) = get(&format!("{theirs}/api/v2/status")).await;
    let (_, o) = get(&format!("{}/api/v2/status", am.base)).await;
    assert_eq!(original(o), original(t));
    am.stop().await;
}

async fn compare(theirs: &str, ours: &str, requests: &[(&str, String, String)]) {
    let mut theirs_out = Vec::new();
    let mut ours_out = Vec::new();
    for (method, path, body) in requests {
        theirs_out.push(exchange(theirs, method, path, body).await);
        ours_out.push(exchange(ours, method, path, body).await);
    }
    for (t, o) in theirs_out.iter().zip(&ours_out) {
        assert_eq!(o, t);
    }
}

fn normalise(mut v: serde_json::Value) -> String {
    v["externalURL"] = json!("");
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_notifications_match_alertmanager() {
    let Some(bin) = peer("prometheus-alertmanager") else {
        return;
    };
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let am_cfg = write(dir.path(), "am.yml", &config(&sink, "am"));
    let (_peer, theirs) = start_peer(&bin, &am_cfg, &dir.path().join("am-data")).await;
    let vigil_cfg = write(dir.path(), "vigil.yml", &config(&sink, "vigil"));
    let am = Am::start(&vigil_cfg, &dir.path().join("vigil-data")).await;

    let starts = "2024-06-19T10:00:00.123456789+02:00";
    let mut alerts = Vec::new();
    for (i, inst) in ["b:9100", "a:9100", "c:9100"].iter().enumerate() {
        alerts.push(json!({"labels": {"alertname": "HighLoad", "instance": inst, "job": "node", "severity": "page", "cluster": "eu"},
                           "annotations": {"summary": format!("load <{i}> & more")}, "startsAt": starts,
                           "generatorURL": "http://prom/graph?g0.expr=x&a=<b>"}));
    }
    alerts.push(json!({"labels": {"alertname": "HighLoad", "instance": "d:9100", "severity": "page", "cluster": "us"}, "startsAt": starts}));
    alerts.push(json!({"labels": {"alertname": "DiskFull", "team": "dbops", "zone": "z1"}, "annotations": {"a": "1"}, "startsAt": starts}));
    alerts.push(json!({"labels": {"alertname": "NoJob", "x": "\u{2028}"}, "startsAt": starts}));
    let alerts = json!(alerts);
    assert_eq!(
        post_json(&format!("{theirs}/api/v2/alerts"), alerts.clone())
            .await
            .0,
        200
    );
    assert_eq!(am.post_alerts(alerts).await.0, 200);

    // HighLoad goes to pager only (a matching child hides its parent): eu and us; DiskFull to
    // team.db; NoJob to main.
    let want = 4;
    let got = poll_until(Duration::from_secs(8), || {
        let h = sink.received();
        let n_am = h.iter().filter(|h| h.path.starts_with("/am/")).count();
        let n_v = h.iter().filter(|h| h.path.starts_with("/vigil/")).count();
        (n_am >= want && n_v >= want).then_some(h)
    })
    .await
    .unwrap_or_else(|| {
        for h in sink.received() {
            eprintln!("{} {}", h.path, String::from_utf8_lossy(&h.body));
        }
        panic!("both sent all notifications")
    });
    let collect = |prefix: &str| {
        let mut v: Vec<(String, String)> = got
            .iter()
            .filter(|h| h.path.starts_with(prefix))
            .map(|h| {
                (
                    h.path.trim_start_matches(prefix).to_string(),
                    normalise(h.json()),
                )
            })
            .collect();
        v.sort();
        v
    };
    let (theirs_n, ours_n) = (collect("/am/"), collect("/vigil/"));
    assert_eq!(ours_n, theirs_n);

    // Byte-for-byte too (Go's HTML escaping, field order, trailing newline).
    let raw = |prefix: &str| {
        let mut v: Vec<String> = got
            .iter()
            .filter(|h| h.path.starts_with(prefix))
            .map(|h| {
                let s = String::from_utf8(h.body.to_vec()).unwrap();
                let v = h.json();
                s.replace(v["externalURL"].as_str().unwrap(), "EXT")
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(raw("/vigil/"), raw("/am/"));

    // The API agrees on fingerprints and groups.
    let (_, a) = get(&format!("{theirs}/api/v2/alerts/groups")).await;
    let (_, b) = get(&format!("{}/api/v2/alerts/groups", am.base)).await;
    let strip = |s: &str| {
        let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
        for g in v.as_array_mut().unwrap() {
            for a in g["alerts"].as_array_mut().unwrap() {
                a["updatedAt"] = json!("");
                a["endsAt"] = json!("");
            }
        }
        v
    };
    assert_eq!(strip(&b), strip(&a));
    am.stop().await;
}

/// `# TYPE` lines of the `alertmanager_*` families: name -> type.
fn metric_types(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|r| r.split_once(' '))
        .filter(|(n, _)| n.starts_with("alertmanager_"))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// Series (name and labels) of the given families with their values.
fn series_of(text: &str, families: &[&str]) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(s, _)| {
            let name = s.split('{').next().unwrap_or("");
            families.contains(&name)
        })
        .map(|(s, v)| (s.to_string(), v.to_string()))
        .collect()
}

/// After the same alerts and notifications, vigil exports every `alertmanager_*` family Debian's
/// Alertmanager 0.25 exports (bar the HTTP-handler and GC/snapshot/query timing families), with
/// the same type, and the same series for the families whose values must agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_match_alertmanager() {
    let Some(bin) = peer("prometheus-alertmanager") else {
        return;
    };
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "am.yml", &config(&sink, "m"));
    let (_peer, theirs) = start_peer(&bin, &cfg, &dir.path().join("am-data")).await;
    let am = Am::start(&cfg, &dir.path().join("vigil-data")).await;
    let alerts = json!([
        {"labels": {"alertname": "M1", "severity": "page", "cluster": "eu"}, "startsAt": "2024-06-19T10:00:00Z"},
        {"labels": {"alertname": "M2", "team": "dbx"}, "startsAt": "2024-06-19T10:00:00Z"},
        {"labels": {"alertname": "M3"}, "startsAt": "2024-06-19T10:00:00Z"},
    ]);
    assert_eq!(
        post_json(&format!("{theirs}/api/v2/alerts"), alerts.clone())
            .await
            .0,
        200
    );
    assert_eq!(am.post_alerts(alerts).await.0, 200);
    poll_until(Duration::from_secs(8), || {
        let h = sink.received();
        let n = |p: &str| h.iter().filter(|h| h.path.starts_with(p)).count();
        (n("/m/") >= 6).then_some(())
    })
    .await
    .expect("notifications from both");
    let (_, t) = get(&format!("{theirs}/metrics")).await;
    let (_, o) = get(&format!("{}/metrics", am.base)).await;
    let (tt, ot) = (metric_types(&t), metric_types(&o));
    let skip = [
        "alertmanager_http_",
        "alertmanager_nflog_gc_duration",
        "alertmanager_nflog_snapshot_duration",
        "alertmanager_nflog_query_duration",
        "alertmanager_silences_gc_duration",
        "alertmanager_silences_snapshot_duration",
        "alertmanager_silences_query_duration",
    ];
    for (name, ty) in &tt {
        if skip.iter().any(|s| name.starts_with(s)) {
            continue;
        }
        assert_eq!(ot.get(name), Some(ty), "family {name} ({ty})");
    }
    let families = [
        "alertmanager_notifications_total",
        "alertmanager_notifications_failed_total",
        "alertmanager_notification_requests_total",
        "alertmanager_notification_latency_seconds_bucket",
        "alertmanager_notification_latency_seconds_count",
        "alertmanager_alerts",
        "alertmanager_marked_alerts",
        "alertmanager_receivers",
        "alertmanager_integrations",
        "alertmanager_silences",
        "alertmanager_alerts_received_total",
        "alertmanager_alerts_invalid_total",
        "alertmanager_dispatcher_aggregation_groups",
    ];
    assert_eq!(series_of(&o, &families), series_of(&t, &families));
    am.stop().await;
}

/// The same templates rendered by Debian's Alertmanager 0.25 and by vigil, through a Slack and
/// a PagerDuty receiver pointed at the sink: the request bodies are equal once each side's
/// external URL is blanked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templated_payloads_match_alertmanager() {
    let Some(bin) = peer("prometheus-alertmanager") else {
        return;
    };
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tmpl = write(
        dir.path(),
        "t.tmpl",
        r#"{{ define "mytitle" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .GroupLabels.SortedPairs.Values | join " " }} {{ if gt (len .CommonLabels) (len .GroupLabels) }}({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join " " }}{{ end }}){{ end }}{{ end }}"#,
    );
    let cfg = |path: &str| {
        format!(
            r#"
route:
  receiver: s
  group_by: [alertname]
  group_wait: 500ms
  group_interval: 1s
  repeat_interval: 1h
templates: ['{tmpl}']
receivers:
- name: s
  slack_configs:
  - api_url: {slack}
    channel: '#x'
    title: '{{{{ template "mytitle" . }}}}'
    text: '{{{{ range .Alerts }}}}{{{{ .Labels.alertname | toUpper }}}} {{{{ .Annotations.summary | title }}}} {{{{ .StartsAt.Format "2006-01-02" }}}} {{{{ reReplaceAll "a(.)" "<$1>" "banana" }}}} {{{{ .Labels.SortedPairs.Names | join "," }}}} {{{{ safeHtml "<b>" }}}} {{{{ printf "%05.1f|%x|%-4s|" 3.14159 255 "ab" }}}}{{{{ end }}}} {{{{ .CommonLabels }}}} {{{{ .CommonLabels.SortedPairs }}}} {{{{ .GroupLabels.Values }}}} {{{{ .Alerts.Firing }}}}'
    fields:
    - title: f
      value: '{{{{ .Status | toLower }}}} {{{{ .Alerts.Firing | len }}}} {{{{ .Alerts.Resolved | len }}}}'
  pagerduty_configs:
  - routing_key: k
    url: {pd}
"#,
            tmpl = tmpl.display(),
            slack = sink.url(&format!("/{path}/slack")),
            pd = sink.url(&format!("/{path}/pd")),
        )
    };
    let am_cfg = write(dir.path(), "am.yml", &cfg("am"));
    let (_peer, theirs) = start_peer(&bin, &am_cfg, &dir.path().join("am-data")).await;
    let vigil_cfg = write(dir.path(), "vigil.yml", &cfg("vigil"));
    let am = Am::start(&vigil_cfg, &dir.path().join("vigil-data")).await;
    let alerts = json!([
        {"labels": {"alertname": "S1", "instance": "i1", "job": "j"}, "annotations": {"summary": "hello world", "description": "d <b>"}, "startsAt": "2024-06-19T10:00:00Z", "generatorURL": "http://g/x?a=1&b=2"},
        {"labels": {"alertname": "S1", "instance": "i2", "job": "j"}, "annotations": {"summary": "second one"}, "startsAt": "2024-06-19T10:00:00.5+02:00"},
    ]);
    assert_eq!(
        post_json(&format!("{theirs}/api/v2/alerts"), alerts.clone())
            .await
            .0,
        200
    );
    assert_eq!(am.post_alerts(alerts).await.0, 200);
    let got = poll_until(Duration::from_secs(8), || {
        let h = sink.received();
        (h.len() >= 4).then_some(h)
    })
    .await
    .expect("slack and pagerduty payloads from both");
    let body = |path: &str, ext: &str| {
        let h = got.iter().find(|h| h.path == path).expect(path);
        String::from_utf8(h.body.to_vec())
            .unwrap()
            .replace(ext, "EXT")
    };
    // Each side's external URL: http://<hostname>:<port>.
    let ext_of = |b: &str| {
        let v: serde_json::Value = serde_json::from_str(b).unwrap();
        let link = v["attachments"][0]["title_link"]
            .as_str()
            .unwrap()
            .to_string();
        link.split("/#/").next().unwrap().to_string()
    };
    let (ta, oa) = (
        String::from_utf8(
            got.iter()
                .find(|h| h.path == "/am/slack")
                .unwrap()
                .body
                .to_vec(),
        )
        .unwrap(),
        String::from_utf8(
            got.iter()
                .find(|h| h.path == "/vigil/slack")
                .unwrap()
                .body
                .to_vec(),
        )
        .unwrap(),
    );
    let (te, oe) = (ext_of(&ta), ext_of(&oa));
    assert_eq!(body("/vigil/slack", &oe), body("/am/slack", &te));
    assert_eq!(body("/vigil/pd", &oe), body("/am/pd", &te));
    am.stop().await;
}
