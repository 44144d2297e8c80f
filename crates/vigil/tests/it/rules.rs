//! Rules and alerting of `vigil server` against the real peers: promtool agrees with
//! `vigil check rules` / `vigil test rules`, alerts reach Debian's Alertmanager 0.25 and resolve
//! there, `for` state survives a restart, and a bad rule file never stops running rules.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::{
    Behaviour, FakeTarget, Proc, free_port, peer_missing, poll_until, wait_ready, which,
};

use crate::util::Vigil;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn exit_code(cmd: &mut Command) -> anyhow::Result<(i32, String)> {
    let out = cmd.output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

fn vigil(args: &[&str], file: &Path) -> anyhow::Result<(i32, String)> {
    exit_code(
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .arg(file),
    )
}

fn promtool(args: &[&str], file: &Path) -> anyhow::Result<(i32, String)> {
    exit_code(Command::new("promtool").args(args).arg(file))
}

#[test]
fn promtool_and_vigil_agree_on_rule_files_and_unit_tests() -> anyhow::Result<()> {
    if which("promtool").is_none() {
        return peer_missing("promtool");
    }
    let r = repo();
    let mut checks: Vec<(PathBuf, i32)> = vec![(r.join("examples/rules/demo.yml"), 0)];
    let mut tests: Vec<(PathBuf, i32)> = vec![
        (r.join("examples/rules/demo_test.yml"), 0),
        (r.join("testdata/rules/demo_test.bad.yml"), 1),
    ];
    // Upstream's own files where this machine has them. Left out: unittest.yml (native
    // histograms: both fail), no-test-group-interval.yml (Prometheus 2.42 loads a test group
    // without `interval` at a zero interval; later versions and vigil use the evaluation
    // interval), start-time-test.yml (a newer field: both fail).
    let peer = r.join("../shared/peer-tests/promtool-rules");
    if peer.is_dir() {
        let pt = peer.join("promtool-testdata");
        for (f, want) in [
            ("rules.yml", 0),
            ("rules-bad.yml", 1),
            ("rules_duplicates.yml", 0),
            ("bad-rules-syntax.yml", 1),
        ] {
            checks.push((pt.join(f), want));
        }
        for e in std::fs::read_dir(peer.join("rulefmt-testdata"))? {
            let p = e?.path();
            let bad =
                p.to_string_lossy().ends_with(".bad.yaml") || p.to_string_lossy().contains("utf-8");
            checks.push((p, i32::from(bad)));
        }
        for (f, want) in [
            ("long-period.yml", 0),
            ("failing.yml", 1),
            ("bad-input-series.yml", 1),
            ("bad-promql.yml", 1),
            ("bad-rules-syntax-test.yml", 1),
            ("bad-rules-error-test.yml", 1),
            ("rules_run.yml", 1),
            ("negative-offset-test.yml", 0),
            ("at-modifier-test.yml", 0),
        ] {
            tests.push((pt.join(f), want));
        }
    }
    for (f, want) in &checks {
        let (p, ptext) = promtool(&["check", "rules"], f)?;
        let (v, vtext) = vigil(&["check", "rules"], f)?;
        assert_eq!(p, *want, "promtool check rules {}:\n{ptext}", f.display());
        assert_eq!(
            v,
            p,
            "vigil check rules {}:\n{vtext}\npromtool:\n{ptext}",
            f.display()
        );
    }
    // On our own files the output is promtool's, byte for byte (stdout and stderr): every
    // error of a bad rule file, YAML errors, template functions, unit-test failures.
    let td = r.join("testdata/rules");
    let byte_for_byte = [
        ("test", tests[0].0.clone()),
        ("test", tests[1].0.clone()),
        ("test", td.join("templates_test.bad.yml")),
        ("test", td.join("unknown_fields_test.bad.yml")),
        ("check", td.join("many_errors.bad.yml")),
        ("check", td.join("unknown_fields.bad.yml")),
        ("check", td.join("templates.yml")),
    ];
    for (cmd, f) in &byte_for_byte {
        let ours = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args([cmd, "rules"])
            .arg(f)
            .output()?;
        let theirs = Command::new("promtool")
            .args([cmd, "rules"])
            .arg(f)
            .output()?;
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "{cmd} {}",
            f.display()
        );
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&theirs.stdout)
        );
        assert_eq!(
            String::from_utf8_lossy(&ours.stderr),
            String::from_utf8_lossy(&theirs.stderr)
        );
    }
    for (f, want) in &tests {
        let (p, ptext) = promtool(&["test", "rules"], f)?;
        let (v, vtext) = vigil(&["test", "rules"], f)?;
        assert_eq!(p, *want, "promtool test rules {}:\n{ptext}", f.display());
        assert_eq!(
            v,
            p,
            "vigil test rules {}:\n{vtext}\npromtool:\n{ptext}",
            f.display()
        );
        if p == 0 {
            assert!(vtext.contains("SUCCESS"), "{vtext}");
        } else {
            assert!(vtext.contains("FAILED"), "{vtext}");
        }
    }
    Ok(())
}

/// Alertmanager 0.25 with one route to a webhook at `webhook` (or to nothing).
async fn start_alertmanager_with(
    dir: &Path,
    webhook: Option<std::net::SocketAddr>,
) -> anyhow::Result<(Proc, u16)> {
    let bin = which("prometheus-alertmanager")
        .ok_or_else(|| anyhow::anyhow!("prometheus-alertmanager is not installed"))?;
    let cfg = dir.join("alertmanager.yml");
    let receiver = match webhook {
        Some(a) => format!("  - name: 'null'\n    webhook_configs: [{{url: 'http://{a}/hook'}}]\n"),
        None => "  - name: 'null'\n".to_string(),
    };
    std::fs::write(
        &cfg,
        format!(
            "route:\n  receiver: 'null'\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n{receiver}"
        ),
    )?;
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=");
    let p = Proc::spawn("alertmanager", cmd, &dir.join("alertmanager.log"))?;
    wait_ready(
        &format!("http://127.0.0.1:{port}/-/ready"),
        Duration::from_secs(20),
    )
    .await?;
    Ok((p, port))
}

async fn start_alertmanager(dir: &Path) -> anyhow::Result<(Proc, u16)> {
    start_alertmanager_with(dir, None).await
}

fn ts(s: &str) -> anyhow::Result<jiff::Timestamp> {
    Ok(s.parse::<jiff::Timestamp>()?)
}

/// The one alert of `/api/v1/alerts` named `name`, if any.
async fn vigil_alert(v: &Vigil, name: &str) -> Option<serde_json::Value> {
    let j = v.json("/api/v1/alerts").await.ok()?;
    j["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == name)
        .cloned()
}

#[tokio::test]
async fn firing_and_resolved_alerts_reach_alertmanager() -> anyhow::Result<()> {
    if which("prometheus-alertmanager").is_none() {
        return peer_missing("prometheus-alertmanager");
    }
    let dir = tempfile::tempdir()?;
    let hook = Capture::start().await?;
    let (am, am_port) = start_alertmanager_with(dir.path(), Some(hook.addr)).await?;
    let target = FakeTarget::start(Behaviour::Body("switch 1\n".into())).await?;
    std::fs::write(
        dir.path().join("rules.yml"),
        r#"groups:
  - name: switch
    rules:
      - alert: SwitchOn
        expr: switch == 1
        for: 2s
        labels:
          severity: page
        annotations:
          summary: "switch on {{ $labels.instance }} is {{ $value }}"
          replica: "{{ $externalLabels.replica }}"
"#,
    )?;
    let cfg = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 500ms
  evaluation_interval: 1s
  external_labels:
    cluster: c1
    replica: a
rule_files: [rules.yml]
alerting:
  alert_relabel_configs:
    - {{regex: replica, action: labeldrop}}
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:{am_port}']
scrape_configs:
  - job_name: switch
    static_configs:
      - targets: ['{}']
"#,
        target.addr
    );
    let v = Vigil::start(dir.path(), &cfg, &["--rules.alert.resend-delay=2s"]).await?;
    let am_url = format!("http://127.0.0.1:{am_port}/api/v2/alerts");
    let am_alert = poll_until(Duration::from_secs(30), || async {
        let j = testkit::get_json(&am_url).await.ok()?;
        j.as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "SwitchOn")
            .cloned()
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; vigil log:\n{}", v.proc.log_text()))?;
    let labels = &am_alert["labels"];
    let want_labels = serde_json::json!({
        "alertname": "SwitchOn",
        "cluster": "c1",
        "instance": target.addr.to_string(),
        "job": "switch",
        "severity": "page",
    });
    assert_eq!(labels, &want_labels, "{am_alert}");
    assert_eq!(
        am_alert["annotations"],
        serde_json::json!({
            "summary": format!("switch on {} is 1", target.addr),
            "replica": "a",
        })
    );
    assert!(
        am_alert["generatorURL"]
            .as_str()
            .is_some_and(|u| u.contains("/graph?g0.expr=switch+%3D%3D+1")),
        "{am_alert}"
    );
    let ours = vigil_alert(&v, "SwitchOn")
        .await
        .expect("alert in /api/v1/alerts");
    assert_eq!(ours["state"], "firing");
    let active_at = ts(ours["activeAt"].as_str().unwrap_or_default())?;
    let starts_at = ts(am_alert["startsAt"].as_str().unwrap_or_default())?;
    // startsAt is when the alert fired: the first evaluation at least `for` after activeAt.
    let pending = starts_at.duration_since(active_at).as_secs_f64();
    assert!(
        (2.0..=5.0).contains(&pending),
        "startsAt {starts_at} activeAt {active_at}"
    );
    let ends_at = ts(am_alert["endsAt"].as_str().unwrap_or_default())?;
    assert!(
        ends_at > jiff::Timestamp::now(),
        "a firing alert's endsAt is in the future: {ends_at}"
    );

    let ams = v.json("/api/v1/alertmanagers").await?;
    assert_eq!(
        ams["data"]["activeAlertmanagers"],
        serde_json::json!([{ "url": am_url }])
    );

    // Resolve: Alertmanager hears about it and drops the alert from its active list.
    let resolve_started = Instant::now();
    target.set(Behaviour::Body("switch 0\n".into()));
    poll_until(Duration::from_secs(20), || async {
        let j = testkit::get_json(&am_url).await.ok()?;
        let still = j
            .as_array()?
            .iter()
            .any(|a| a["labels"]["alertname"] == "SwitchOn");
        (!still).then_some(())
    })
    .await?;
    assert!(vigil_alert(&v, "SwitchOn").await.is_none());
    // Alertmanager's resolved notification carries the endsAt vigil sent: the evaluation at
    // which the alert stopped, after it started and not in the future.
    let resolved = poll_until(Duration::from_secs(20), || async {
        let bodies = hook.bodies.lock().ok()?.clone();
        bodies.into_iter().find(|b| b["status"] == "resolved")
    })
    .await?;
    let a = &resolved["alerts"][0];
    assert_eq!(a["labels"], want_labels, "{resolved}");
    assert_eq!(a["startsAt"].as_str().map(ts).transpose()?, Some(starts_at));
    let ends = ts(a["endsAt"].as_str().unwrap_or_default())?;
    assert!(
        ends > starts_at && ends <= jiff::Timestamp::now(),
        "{resolved}"
    );
    assert!(resolve_started.elapsed() < Duration::from_secs(15));
    let metrics = reqwest::get(v.url("/metrics")).await?.text().await?;
    let sent = format!("prometheus_notifications_sent_total{{alertmanager=\"{am_url}\"}}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(&sent) && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(
        metrics.contains("prometheus_notifications_dropped_total 0"),
        "{metrics}"
    );
    assert!(metrics.contains("prometheus_notifications_alertmanagers_discovered 1"));
    v.stop()?;
    drop(am);
    Ok(())
}

#[tokio::test]
async fn restart_during_for_keeps_active_at_and_fires_on_time() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("rules.yml"),
        "groups:\n  - name: always\n    rules:\n      - alert: Always\n        expr: vector(1)\n        for: 20s\n",
    )?;
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n",
    )?;
    let port = free_port();
    let flags = ["--rules.alert.for-grace-period=1s"];
    let v = Vigil::start_with(dir.path(), &cfg, port, &flags).await?;
    let first = poll_until(Duration::from_secs(10), || vigil_alert(&v, "Always")).await?;
    assert_eq!(first["state"], "pending");
    let a0 = ts(first["activeAt"].as_str().unwrap_or_default())?;
    // Let it be pending for a while (ALERTS_FOR_STATE is written every evaluation).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let down = jiff::Timestamp::now();
    v.stop()?;

    let v = Vigil::start_with(dir.path(), &cfg, port, &flags).await?;
    let up = jiff::Timestamp::now();
    // Restored after the second evaluation: activeAt moves by the outage only (Prometheus's
    // rule), instead of starting over at the first evaluation after the restart.
    let restored = poll_until(Duration::from_secs(15), || async {
        let a = vigil_alert(&v, "Always").await?;
        let at = ts(a["activeAt"].as_str()?).ok()?;
        (at < up.checked_sub(jiff::SignedDuration::from_secs(1)).ok()?).then_some(at)
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "activeAt was not restored: {e}; log:\n{}",
            v.proc.log_text()
        )
    })?;
    let outage = jiff::Timestamp::now().duration_since(down).as_secs_f64();
    let shift = restored.duration_since(a0).as_secs_f64();
    assert!(
        shift >= 0.0 && shift <= outage + 1.0,
        "activeAt {a0} -> {restored}, outage {outage}s"
    );
    // Fires `for` after the restored activeAt.
    let fired = poll_until(Duration::from_secs(30), || async {
        let a = vigil_alert(&v, "Always").await?;
        (a["state"] == "firing").then(jiff::Timestamp::now)
    })
    .await?;
    let pending = fired.duration_since(restored).as_secs_f64();
    assert!(
        (19.0..=25.0).contains(&pending),
        "fired {pending}s after the restored activeAt {restored}"
    );
    v.stop()?;
    Ok(())
}

#[tokio::test]
async fn malformed_rule_file_is_rejected_and_running_rules_keep_going() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rules = dir.path().join("rules.yml");
    let bad = "groups:\n  - name: broken\n    rules:\n      - record: ok:one\n        expr: vector(1)\n      - alert: Bad\n        expr: 'sum(('\n";
    std::fs::write(&rules, bad)?;
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n",
    )?;

    // At startup: the server refuses to start and says where and why.
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("server")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data0").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let want = format!(
        "{}: 7:15: group \"broken\", rule 2, \"Bad\": could not parse expression",
        rules.display()
    );
    assert!(err.contains(&want), "{err}");

    // A good file runs; a bad reload is refused and the old rules keep evaluating.
    std::fs::write(
        &rules,
        "groups:\n  - name: good\n    rules:\n      - record: ok:one\n        expr: vector(1)\n",
    )?;
    let v = Vigil::start_with(dir.path(), &cfg, free_port(), &[]).await?;
    let sample_ts = |v: &Vigil| {
        let url = v.url("/api/v1/query?query=timestamp(ok:one)");
        async move {
            let j = testkit::get_json(&url).await.ok()?;
            j["data"]["result"][0]["value"][1]
                .as_str()?
                .parse::<f64>()
                .ok()
        }
    };
    let t1 = poll_until(Duration::from_secs(10), || sample_ts(&v)).await?;
    std::fs::write(&rules, bad)?;
    let resp = reqwest::Client::new()
        .post(v.url("/-/reload"))
        .send()
        .await?;
    assert_eq!(resp.status(), 500);
    let body = resp.text().await?;
    assert!(body.contains(&want), "{body}");
    let t2 = poll_until(Duration::from_secs(10), || async {
        sample_ts(&v).await.filter(|t| *t >= t1 + 2.0)
    })
    .await?;
    assert!(t2 > t1);
    let rules_api = v.json("/api/v1/rules").await?;
    assert_eq!(rules_api["data"]["groups"][0]["name"], "good");
    assert_eq!(rules_api["data"]["groups"][0]["rules"][0]["health"], "ok");
    let metrics = reqwest::get(v.url("/metrics")).await?.text().await?;
    assert!(metrics.contains("prometheus_config_last_reload_successful 0"));
    assert!(metrics.contains("prometheus_rule_evaluation_failures_total{rule_group="));

    // SIGHUP with a fixed file: the new group runs.
    std::fs::write(
        &rules,
        "groups:\n  - name: good\n    rules:\n      - record: ok:one\n        expr: vector(1)\n  - name: added\n    rules:\n      - record: ok:two\n        expr: vector(2)\n",
    )?;
    v.proc.signal(1)?;
    poll_until(Duration::from_secs(10), || async {
        let j = testkit::get_json(&v.url("/api/v1/query?query=ok:two"))
            .await
            .ok()?;
        (j["data"]["result"][0]["value"][1] == "2").then_some(())
    })
    .await?;
    let rules_api = v.json("/api/v1/rules").await?;
    let names: Vec<&str> = rules_api["data"]["groups"]
        .as_array()
        .map(|g| g.iter().filter_map(|g| g["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["added", "good"]);
    v.stop()?;
    Ok(())
}

/// A loopback HTTP server that records the JSON body of every POST and answers 200.
struct Capture {
    addr: std::net::SocketAddr,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Capture {
    async fn start() -> anyhow::Result<Capture> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let b2 = bodies.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = l.accept().await {
                let bodies = b2.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buf.len() < end + 4 + len {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        if let Ok(v) = serde_json::from_slice(&buf[end + 4..end + 4 + len])
                            && let Ok(mut g) = bodies.lock()
                        {
                            g.push(v);
                        }
                        buf.drain(..end + 4 + len);
                        let ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                        if sock.write_all(ok.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(Capture { addr, bodies, task })
    }

    fn first(&self) -> Option<serde_json::Value> {
        self.bodies.lock().ok()?.first().cloned()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Drops the fields that depend on when each server happened to evaluate.
fn without_times(mut v: serde_json::Value) -> serde_json::Value {
    match &mut v {
        serde_json::Value::Object(m) => {
            for k in [
                "evaluationTime",
                "lastEvaluation",
                "activeAt",
                "startsAt",
                "endsAt",
            ] {
                m.remove(k);
            }
            for (_, x) in m.iter_mut() {
                *x = without_times(x.take());
            }
        }
        serde_json::Value::Array(a) => {
            for x in a.iter_mut() {
                *x = without_times(x.take());
            }
        }
        // compat: Go writes whole floats without a fraction (`1`), serde_json as `1.0`.
        serde_json::Value::Number(n) => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 1e15
            {
                return serde_json::json!(f as i64);
            }
        }
        _ => {}
    }
    v
}

#[tokio::test]
async fn rules_api_and_alert_payloads_match_prometheus() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let dir = tempfile::tempdir()?;
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        r#"groups:
  - name: shapes
    interval: 1s
    rules:
      - record: job:one
        expr: vector(1)
        labels: {src: x}
      - alert: Firing
        expr: vector(2) > 1
        labels: {severity: page, value: "{{ $value }}"}
        annotations:
          summary: "value {{ $value | humanize }}"
          url: "{{ $externalURL }}"
          replica: "{{ $externalLabels.replica }}"
          durations: "{{ humanizeDuration 3661 }} {{ humanizeDuration 0.25 }} {{ humanizePercentage 0.1234 }}"
          sizes: "{{ humanize1024 1048576 }} {{ humanize 0.000123 }} {{ humanizeTimestamp 1700000000 }}"
          query: '{{ with query "vector(42)" }}{{ . | first | value }}{{ end }}'
          query_labels: '{{ range query "label_replace(vector(7), \"k\", \"v\", \"\", \"\")" }}{{ .Labels.k }}={{ .Value }}{{ end }}'
          printf: '{{ printf "%.2f|%5s|%d" 3.14159 "ab" 42 }}'
          control: '{{ if gt $value 1.5 }}high{{ else }}low{{ end }} {{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}'
          strings: '{{ "hello world" | title }} {{ toUpper "x" }} {{ reReplaceAll "(a+)" "<$1>" "baaad" }} {{ "a.b:9090" | stripPort }}'
          missing: '[{{ $labels.nope }}]'
          bad: '{{ query "\"x\"" }}'
      - alert: Pending
        expr: vector(3)
        for: 1h
        keep_firing_for: 5m
  - name: printing
    interval: 1s
    rules:
      - record: a:b
        expr: sum by(job)(rate(x{b="2",a=~"1.*"}[5m])) / on(job) group_left count without(i,j)(x offset 1m)
      - record: a:c
        expr: |
          topk(3, max_over_time(x[10m:30s]) > bool 1e6)
            or ignoring(k) -y @ 1700000000 unless (label_replace(z, "a", "$1", "b", "(.*)") * 0.5)
"#,
    )?;
    let prom_am = Capture::start().await?;
    let vigil_am = Capture::start().await?;
    let cfg = |am: std::net::SocketAddr| {
        format!(
            "global:\n  evaluation_interval: 1s\n  external_labels: {{replica: r1}}\nrule_files: ['{}']\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{am}']}}]\n",
            rules.display()
        )
    };
    let pdir = dir.path().join("prom");
    std::fs::create_dir_all(&pdir)?;
    std::fs::write(pdir.join("prometheus.yml"), cfg(prom_am.addr))?;
    let pport = free_port();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!(
        "--config.file={}",
        pdir.join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        pdir.join("data").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
    .arg("--web.external-url=http://example:9090/")
    .arg("--rules.alert.resend-delay=1s");
    let _prom = Proc::spawn("prometheus", cmd, &pdir.join("prometheus.log"))?;
    let vdir = dir.path().join("vigil");
    std::fs::create_dir_all(&vdir)?;
    let v = Vigil::start(
        &vdir,
        &cfg(vigil_am.addr),
        &[
            "--web.external-url=http://example:9090/",
            "--rules.alert.resend-delay=1s",
        ],
    )
    .await?;
    wait_ready(
        &format!("http://127.0.0.1:{pport}/-/ready"),
        Duration::from_secs(30),
    )
    .await?;

    let (p, g) = poll_until(Duration::from_secs(20), || async {
        Some((prom_am.first()?, vigil_am.first()?))
    })
    .await?;
    assert_eq!(
        without_times(g.clone()),
        without_times(p.clone()),
        "vigil {g}\nprometheus {p}"
    );
    for body in [&p, &g] {
        let a = &body[0];
        let starts = ts(a["startsAt"].as_str().unwrap_or_default())?;
        let ends = ts(a["endsAt"].as_str().unwrap_or_default())?;
        // Sent at firing time or a resend: valid for 4 × max(resend delay, interval) = 4s.
        let valid = ends.duration_since(starts).as_secs_f64();
        assert!(valid >= 4.0, "{body}");
    }

    let api = |path: &'static str, port: u16| async move {
        testkit::get_json(&format!("http://127.0.0.1:{port}{path}")).await
    };
    // Every rule of both servers has been evaluated at least once.
    for port in [v.port, pport] {
        poll_until(Duration::from_secs(10), || async move {
            let j = api("/api/v1/rules", port).await.ok()?;
            let text = j.to_string();
            (j["status"] == "success" && !text.contains("\"health\":\"unknown\"")).then_some(())
        })
        .await?;
    }
    for path in [
        "/api/v1/rules",
        "/api/v1/alerts",
        "/api/v1/rules?type=alert",
        "/api/v1/rules?type=record",
    ] {
        let ours = without_times(api(path, v.port).await?);
        let theirs = without_times(api(path, pport).await?);
        assert_eq!(ours, theirs, "{path}");
    }
    let bad = reqwest::get(v.url("/api/v1/rules?type=nope")).await?;
    assert_eq!(bad.status(), 400);
    v.stop()?;
    Ok(())
}

/// The alerts named `name` that Alertmanager at `url` holds as active.
async fn am_alerts(url: &str, name: &str) -> Option<Vec<serde_json::Value>> {
    let j = testkit::get_json(url).await.ok()?;
    Some(
        j.as_array()?
            .iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .cloned()
            .collect(),
    )
}

#[tokio::test]
async fn two_replicas_two_alertmanagers_one_alert_each() -> anyhow::Result<()> {
    if which("prometheus-alertmanager").is_none() {
        return peer_missing("prometheus-alertmanager");
    }
    let dir = tempfile::tempdir()?;
    let (am0_dir, am1_dir) = (dir.path().join("am0"), dir.path().join("am1"));
    std::fs::create_dir_all(&am0_dir)?;
    std::fs::create_dir_all(&am1_dir)?;
    let (_am0, p0) = start_alertmanager(&am0_dir).await?;
    let (_am1, p1) = start_alertmanager(&am1_dir).await?;
    let target = FakeTarget::start(Behaviour::Body("switch 1\n".into())).await?;
    // Both replicas load the same rule file, as identical deployments do.
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: ha\n    rules:\n      - alert: SwitchOn\n        expr: switch == 1\n        labels: {severity: page}\n",
    )?;
    let cfg = |replica: &str| {
        format!(
            r#"global:
  scrape_interval: 1s
  scrape_timeout: 500ms
  evaluation_interval: 1s
  external_labels: {{replica: {replica}}}
rule_files: ['{}']
alerting:
  alert_relabel_configs: [{{regex: replica, action: labeldrop}}]
  alertmanagers:
    - static_configs: [{{targets: ['127.0.0.1:{p0}', '127.0.0.1:{p1}']}}]
scrape_configs:
  - job_name: switch
    static_configs: [{{targets: ['{}']}}]
"#,
            rules.display(),
            target.addr
        )
    };
    let (ad, bd) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&ad)?;
    std::fs::create_dir_all(&bd)?;
    let a = Vigil::start(&ad, &cfg("a"), &["--rules.alert.resend-delay=1s"]).await?;
    let b = Vigil::start(&bd, &cfg("b"), &["--rules.alert.resend-delay=1s"]).await?;
    let urls = [
        format!("http://127.0.0.1:{p0}/api/v2/alerts"),
        format!("http://127.0.0.1:{p1}/api/v2/alerts"),
    ];
    for u in &urls {
        let got = poll_until(Duration::from_secs(20), || async {
            am_alerts(u, "SwitchOn").await.filter(|v| !v.is_empty())
        })
        .await?;
        assert_eq!(got.len(), 1, "one alert, not one per replica: {got:?}");
        assert!(got[0]["labels"].get("replica").is_none(), "{got:?}");
    }
    // One replica goes away: the other keeps the alert alive everywhere.
    a.stop()?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for u in &urls {
        assert_eq!(am_alerts(u, "SwitchOn").await.map(|v| v.len()), Some(1));
    }
    target.set(Behaviour::Body("switch 0\n".into()));
    for u in &urls {
        poll_until(Duration::from_secs(20), || async {
            am_alerts(u, "SwitchOn").await.filter(|v| v.is_empty())
        })
        .await?;
    }
    b.stop()?;
    Ok(())
}
