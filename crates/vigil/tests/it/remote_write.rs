//! vigil's remote write sender against real receivers: Debian's Prometheus 2.42 (through an
//! outage of the receiver and a restart of the sender in the middle of it) and VictoriaMetrics.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use testkit::{
    Behaviour, FakeTarget, Proc, free_port, peer_missing, poll_until, wait_ready, which,
};

use crate::util::{Vigil, enc};

const BODY: &str = "# TYPE m gauge\nm{i=\"0\"} 1\nm{i=\"1\"} 2.5\nm{i=\"2\"} -3\n";

/// Samples of `m` over the last `range` before `at` (unix seconds), per series `i`, as
/// (timestamp string, value string).
async fn samples(
    base: &str,
    range: &str,
    at: f64,
) -> anyhow::Result<BTreeMap<String, Vec<(String, String)>>> {
    let q = format!("m[{range}]");
    let j = testkit::get_json(&format!(
        "{base}/api/v1/query?query={}&time={at:.3}",
        enc(&q)
    ))
    .await?;
    let mut out = BTreeMap::new();
    for s in j["data"]["result"].as_array().cloned().unwrap_or_default() {
        let key = s["metric"]["i"].as_str().unwrap_or("").to_string();
        let vals = s["values"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|p| (p[0].to_string(), p[1].as_str().unwrap_or("").to_string()))
            .collect();
        out.insert(key, vals);
    }
    Ok(out)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_text(v: &Vigil) -> String {
    match reqwest::get(v.url("/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn start_prometheus(dir: &Path, port: u16, n: usize) -> anyhow::Result<Proc> {
    start_prometheus_with(dir, port, n, "")
}

/// Prometheus 2.42 as a remote write receiver, `extra` appended to its config file.
fn start_prometheus_with(dir: &Path, port: u16, n: usize, extra: &str) -> anyhow::Result<Proc> {
    std::fs::create_dir_all(dir)?;
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, format!("global:\n  scrape_interval: 1m\n{extra}"))?;
    let mut cmd = std::process::Command::new("prometheus");
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver");
    Proc::spawn("prometheus", cmd, &dir.join(format!("prometheus-{n}.log")))
}

fn stop_proc(p: &mut Proc) -> anyhow::Result<()> {
    p.signal(15)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while p.running() {
        anyhow::ensure!(std::time::Instant::now() < deadline, "did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Flags that make vigil cut blocks, checkpoint and delete WAL segments every few seconds, so
/// the outage below outlasts the WAL: what is unsent must come from the disk backlog.
const FAST_TRUNCATION: &[&str] = &[
    "--storage.tsdb.min-block-duration=2s",
    "--storage.tsdb.max-block-duration=2s",
    "--storage.tsdb.wal-segment-size=64KB",
];

/// Every sample vigil scraped reaches Prometheus with the same labels, timestamps and values,
/// even though Prometheus was down for a while and vigil restarted during that outage; the
/// backlog gauges rose during the outage and drained after it.
#[tokio::test]
async fn outage_and_sender_restart_lose_nothing() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let target = FakeTarget::start(Behaviour::Body(BODY.into())).await?;
    let dir = tempfile::tempdir()?;
    let pport = free_port();
    let pdir = dir.path().join("prom");
    let mut prom = start_prometheus(&pdir, pport, 0)?;
    let purl = format!("http://127.0.0.1:{pport}");
    wait_ready(&format!("{purl}/-/ready"), Duration::from_secs(30)).await?;

    let vdir = dir.path().join("vigil");
    std::fs::create_dir_all(&vdir)?;
    let cfg = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n  external_labels: {{replica: a}}\n\
scrape_configs:\n  - job_name: t\n    static_configs:\n      - targets: ['{}']\n\
remote_write:\n  - url: {purl}/api/v1/write\n    queue_config:\n      batch_send_deadline: 100ms\n      min_backoff: 20ms\n      max_backoff: 200ms\n      max_disk_usage: 64MB\n",
        target.addr
    );
    let vport = free_port();
    let vcfg = vdir.join("prometheus.yml");
    std::fs::write(&vcfg, &cfg)?;
    let v = Vigil::start_with(&vdir, &vcfg, vport, FAST_TRUNCATION).await?;
    let start = now_s();

    // Data flows.
    poll_until(Duration::from_secs(30), || async {
        let s = samples(&purl, "1m", now_s()).await.ok()?;
        (s.len() == 3).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; vigil log:\n{}", v.proc.log_text()))?;

    // The receiver goes away; the backlog grows.
    stop_proc(&mut prom)?;
    let backlog = poll_until(Duration::from_secs(30), || async {
        let t = metrics_text(&v).await;
        let b = metric(&t, "vigil_remote_storage_backlog_samples{")?;
        (b > 20.0).then_some(b)
    })
    .await?;
    assert!(backlog > 20.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = metrics_text(&v).await;
    assert!(
        metric(&t, "vigil_remote_storage_oldest_unsent_sample_age_seconds{").unwrap_or(0.0) > 0.0,
        "data at risk must be visible"
    );
    // The sender restarts in the middle of the outage.
    v.stop()?;
    let v = Vigil::start_with(&vdir, &vcfg, vport, FAST_TRUNCATION).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The WAL has moved on past the outage's start: its first segments are gone.
    let wal = vdir.join("data").join("wal");
    let first_segment = std::fs::read_dir(&wal)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .min();
    assert!(
        first_segment.is_some_and(|s| s > 0),
        "WAL was not truncated: {first_segment:?}"
    );

    // The receiver returns; the backlog drains.
    let mut prom = start_prometheus(&pdir, pport, 1)?;
    wait_ready(&format!("{purl}/-/ready"), Duration::from_secs(30)).await?;
    poll_until(Duration::from_secs(60), || async {
        let t = metrics_text(&v).await;
        let b = metric(&t, "vigil_remote_storage_backlog_samples{")?;
        (b == 0.0).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; vigil log:\n{}", v.proc.log_text()))?;
    let t = metrics_text(&v).await;
    assert_eq!(
        metric(&t, "prometheus_remote_storage_samples_failed_total{"),
        Some(0.0),
        "{t}"
    );

    // Compare everything up to a moment that has certainly been sent.
    let at = now_s() - 1.0;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let range = format!("{}s", (at - start + 5.0).ceil() as i64);
    let ours = samples(&v.url(""), &range, at).await?;
    let theirs = samples(&purl, &range, at).await?;
    assert_eq!(ours.len(), 3);
    for (k, vals) in &ours {
        assert!(vals.len() > 15, "series {k}: only {} samples", vals.len());
        assert_eq!(
            Some(vals),
            theirs.get(k),
            "series i={k} differs between vigil and the receiver"
        );
    }
    // External labels are attached on the way out.
    let j = testkit::get_json(&format!("{purl}/api/v1/series?match[]=m")).await?;
    assert!(
        j["data"]
            .as_array()
            .is_some_and(|a| a.iter().all(|s| s["replica"] == "a")),
        "{j}"
    );
    v.stop()?;
    stop_proc(&mut prom)?;
    Ok(())
}

/// Samples written to VictoriaMetrics's `/api/v1/write` are queryable there, unchanged.
#[tokio::test]
async fn writes_to_victoria_metrics() -> anyhow::Result<()> {
    if which("victoria-metrics").is_none() {
        return peer_missing("victoria-metrics");
    }
    let target = FakeTarget::start(Behaviour::Body(BODY.into())).await?;
    let dir = tempfile::tempdir()?;
    let vmport = free_port();
    let mut cmd = std::process::Command::new("victoria-metrics");
    cmd.arg(format!("-httpListenAddr=127.0.0.1:{vmport}"))
        .arg(format!(
            "-storageDataPath={}",
            dir.path().join("vm").display()
        ))
        .arg("-retentionPeriod=100y")
        .arg("-search.latencyOffset=0s");
    let mut vm = Proc::spawn("victoria-metrics", cmd, &dir.path().join("vm.log"))?;
    let vmurl = format!("http://127.0.0.1:{vmport}");
    wait_ready(&format!("{vmurl}/health"), Duration::from_secs(30)).await?;
    let cfg = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n\
scrape_configs:\n  - job_name: t\n    static_configs:\n      - targets: ['{}']\n\
remote_write:\n  - url: {vmurl}/api/v1/write\n    queue_config:\n      batch_send_deadline: 100ms\n",
        target.addr
    );
    let v = Vigil::start(dir.path(), &cfg, &[]).await?;
    // Let a few scrapes happen, then compare what VM exported with vigil's own samples.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let at = now_s() - 1.0;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ours = samples(&v.url(""), "1m", at).await?;
    assert_eq!(ours.len(), 3);
    let theirs = poll_until(Duration::from_secs(30), || async {
        // VM flushes its in-memory buffers about every second.
        let text = reqwest::get(format!(
            "{vmurl}/api/v1/export?match[]=m&end={at:.3}&start={:.3}",
            at - 60.0
        ))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
        let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for line in text.lines() {
            let j: serde_json::Value = serde_json::from_str(line).ok()?;
            let k = j["metric"]["i"].as_str()?.to_string();
            let vals = j["values"].as_array()?;
            let ts = j["timestamps"].as_array()?;
            let pts = ts
                .iter()
                .zip(vals)
                .map(|(t, v)| {
                    let ms = t.as_i64().unwrap_or(0);
                    (
                        format!("{}", ms as f64 / 1000.0),
                        expfmt_value(v.as_f64().unwrap_or(f64::NAN)),
                    )
                })
                .collect();
            out.insert(k, pts);
        }
        let complete = out.len() == 3
            && ours
                .iter()
                .all(|(k, v)| out.get(k).is_some_and(|o| o.len() >= v.len()));
        complete.then_some(out)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; vigil log:\n{}", v.proc.log_text()))?;
    for (k, vals) in &ours {
        let t = &theirs[k];
        let ours_norm: Vec<(String, String)> = vals
            .iter()
            .map(|(ts, v)| {
                let f: f64 = ts.parse().unwrap_or(0.0);
                (format!("{f}"), v.clone())
            })
            .collect();
        let theirs_in_range: Vec<(String, String)> = t
            .iter()
            .filter(|p| ours_norm.contains(p))
            .cloned()
            .collect();
        assert_eq!(ours_norm, theirs_in_range, "series i={k}");
    }
    v.stop()?;
    vm.kill9();
    Ok(())
}

fn expfmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// vigil ↔ InfluxDB 1.x: one vigil server writes to `/api/v1/prom/write`, a second one (with no
/// data of its own) reads back through `remote_read` from `/api/v1/prom/read`, and PromQL over
/// the read-back data equals PromQL over the writer's own data. InfluxDB does not keep NaN, so
/// the staleness marker of a series that ended is lost: the reader still sees the last value for
/// the lookback window, where the writer already sees nothing (documented in the README).
#[tokio::test]
async fn influxdb_round_trip() -> anyhow::Result<()> {
    if which("influxd").is_none() {
        return peer_missing("influxd");
    }
    let dir = tempfile::tempdir()?;
    let (http, rpc) = (free_port(), free_port());
    let idir = dir.path().join("influx");
    std::fs::create_dir_all(&idir)?;
    let conf = format!(
        "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n[http]\n  bind-address = \"127.0.0.1:{http}\"\n",
        d = idir.display()
    );
    std::fs::write(idir.join("influxdb.conf"), conf)?;
    let mut cmd = std::process::Command::new("influxd");
    cmd.arg("-config").arg(idir.join("influxdb.conf"));
    let mut influx = Proc::spawn("influxd", cmd, &idir.join("influxd.log"))?;
    let iurl = format!("http://127.0.0.1:{http}");
    let c = reqwest::Client::new();
    poll_until(Duration::from_secs(30), || async {
        let r = c.get(format!("{iurl}/ping")).send().await.ok()?;
        (r.status().as_u16() == 204).then_some(())
    })
    .await?;
    let r = c
        .post(format!("{iurl}/query"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("q=CREATE+DATABASE+vigil")
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "create database: {}", r.status());

    let target = FakeTarget::start(Behaviour::Body(BODY.into())).await?;
    let wdir = dir.path().join("writer");
    std::fs::create_dir_all(&wdir)?;
    let wcfg = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n\
scrape_configs:\n  - job_name: t\n    static_configs:\n      - targets: ['{}']\n\
remote_write:\n  - url: {iurl}/api/v1/prom/write?db=vigil\n    queue_config:\n      batch_send_deadline: 100ms\n",
        target.addr
    );
    let writer = Vigil::start(&wdir, &wcfg, &[]).await?;
    let rdir = dir.path().join("reader");
    std::fs::create_dir_all(&rdir)?;
    let rcfg =
        format!("remote_read:\n  - url: {iurl}/api/v1/prom/read?db=vigil\n    read_recent: true\n");
    let reader = Vigil::start(&rdir, &rcfg, &[]).await?;

    tokio::time::sleep(Duration::from_secs(3)).await;
    let at = now_s() - 1.0;
    // InfluxDB makes points queryable at once; give the sender its batch deadline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ours = samples(&writer.url(""), "1m", at).await?;
    assert_eq!(ours.len(), 3);
    let theirs = poll_until(Duration::from_secs(20), || async {
        let t = samples(&reader.url(""), "1m", at).await.ok()?;
        (t == ours).then_some(t)
    })
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}; read back differs from what was written; reader log:\n{}",
            reader.proc.log_text()
        )
    })?;
    assert_eq!(theirs, ours);
    // PromQL over the read-back data: an aggregation agrees too.
    let q = format!(
        "/api/v1/query?query={}&time={at:.3}",
        enc("sum by (job) (m)")
    );
    let a = writer.json(&q).await?;
    let b = reader.json(&q).await?;
    assert_eq!(a["data"], b["data"]);

    // The series ends: the writer's staleness marker does not survive InfluxDB.
    target.set(Behaviour::Status(500));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = now_s() - 0.5;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let q = format!("/api/v1/query?query=m&time={after:.3}");
    let w = writer.json(&q).await?;
    let r = reader.json(&q).await?;
    assert_eq!(w["data"]["result"].as_array().map(Vec::len), Some(0), "{w}");
    assert_eq!(r["data"]["result"].as_array().map(Vec::len), Some(3), "{r}");

    writer.stop()?;
    reader.stop()?;
    influx.kill9();
    Ok(())
}

/// `protobuf_message: io.prometheus.write.v2.Request`: a vigil receiver takes 2.0; Debian's
/// Prometheus 2.42, a 1.0 receiver that answers 204 to anything, is detected by the missing
/// written-counts header and gets 1.0 instead. Both end up with every sample.
#[tokio::test]
async fn remote_write_2_0_and_fallback() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let target = FakeTarget::start(Behaviour::Body(BODY.into())).await?;
    let dir = tempfile::tempdir()?;
    let pport = free_port();
    let mut prom = start_prometheus(&dir.path().join("prom"), pport, 0)?;
    let purl = format!("http://127.0.0.1:{pport}");
    wait_ready(&format!("{purl}/-/ready"), Duration::from_secs(30)).await?;
    let rdir = dir.path().join("receiver");
    std::fs::create_dir_all(&rdir)?;
    let receiver = Vigil::start(&rdir, "", &["--web.enable-remote-write-receiver"]).await?;
    let sdir = dir.path().join("sender");
    std::fs::create_dir_all(&sdir)?;
    let cfg = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n\
scrape_configs:\n  - job_name: t\n    static_configs:\n      - targets: ['{}']\n\
remote_write:\n  - url: {}\n    protobuf_message: io.prometheus.write.v2.Request\n    queue_config: {{batch_send_deadline: 100ms}}\n  - url: {purl}/api/v1/write\n    protobuf_message: io.prometheus.write.v2.Request\n    queue_config: {{batch_send_deadline: 100ms}}\n",
        target.addr,
        receiver.url("/api/v1/write"),
    );
    let sender = Vigil::start(&sdir, &cfg, &[]).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let at = now_s() - 1.0;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ours = samples(&sender.url(""), "1m", at).await?;
    assert_eq!(ours.len(), 3);
    let via_v2 = samples(&receiver.url(""), "1m", at).await?;
    let via_fallback = samples(&purl, "1m", at).await?;
    assert_eq!(via_v2, ours, "vigil receiver (2.0)");
    assert_eq!(via_fallback, ours, "Prometheus 2.42 (fallback to 1.0)");
    // Only the Prometheus destination fell back; the vigil receiver kept speaking 2.0.
    let log = sender.proc.log_text();
    let fallbacks: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("falling back to 1.0"))
        .collect();
    assert!(!fallbacks.is_empty(), "{log}");
    let prom_write = format!("{purl}/api/v1/write");
    assert!(
        fallbacks.iter().all(|l| l.contains(&prom_write)),
        "{fallbacks:?}"
    );
    sender.stop()?;
    receiver.stop()?;
    stop_proc(&mut prom)?;
    Ok(())
}

/// The value of `name` for the destination `url` in a /metrics text.
fn metric_for(text: &str, name: &str, url: &str) -> Option<f64> {
    let needle = format!("url=\"{url}\"");
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(&needle))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `queue_config.live_first` after an outage, against two Prometheus 2.42 receivers: one with
/// an out-of-order window gets every sample, the newest ones before the backlog (its
/// out-of-order counter proves the order); one without refuses the backlog that comes after
/// newer samples (HTTP 400, whole requests), which is why vigil sends in order by default.
#[tokio::test]
async fn live_first_needs_an_out_of_order_window() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let target = FakeTarget::start(Behaviour::Body(BODY.into())).await?;
    let dir = tempfile::tempdir()?;
    let ooo = "storage:\n  tsdb:\n    out_of_order_time_window: 30m\n";
    let (sport, oport) = (free_port(), free_port());
    let (sdir, odir) = (dir.path().join("strict"), dir.path().join("ooo"));
    let mut strict = start_prometheus_with(&sdir, sport, 0, "")?;
    let mut tolerant = start_prometheus_with(&odir, oport, 0, ooo)?;
    let (surl, ourl) = (
        format!("http://127.0.0.1:{sport}"),
        format!("http://127.0.0.1:{oport}"),
    );
    wait_ready(&format!("{surl}/-/ready"), Duration::from_secs(30)).await?;
    wait_ready(&format!("{ourl}/-/ready"), Duration::from_secs(30)).await?;
    let vdir = dir.path().join("vigil");
    std::fs::create_dir_all(&vdir)?;
    let q = "    queue_config: {batch_send_deadline: 100ms, min_backoff: 20ms, max_backoff: 200ms, live_first: true}\n";
    let cfg = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n\
scrape_configs:\n  - job_name: t\n    static_configs:\n      - targets: ['{}']\n\
remote_write:\n  - url: {surl}/api/v1/write\n{q}  - url: {ourl}/api/v1/write\n{q}",
        target.addr
    );
    let v = Vigil::start(&vdir, &cfg, &[]).await?;
    let start = now_s();
    for url in [&surl, &ourl] {
        poll_until(Duration::from_secs(30), || async {
            let s = samples(url, "1m", now_s()).await.ok()?;
            (s.len() == 3).then_some(())
        })
        .await?;
    }
    stop_proc(&mut strict)?;
    stop_proc(&mut tolerant)?;
    let (sw, ow) = (
        format!("{surl}/api/v1/write"),
        format!("{ourl}/api/v1/write"),
    );
    let backlogs = |t: &str| {
        Some((
            metric_for(t, "vigil_remote_storage_backlog_samples{", &sw)?,
            metric_for(t, "vigil_remote_storage_backlog_samples{", &ow)?,
        ))
    };
    poll_until(Duration::from_secs(30), || async {
        let (a, b) = backlogs(&metrics_text(&v).await)?;
        (a > 30.0 && b > 30.0).then_some(())
    })
    .await?;
    let mut strict = start_prometheus_with(&sdir, sport, 1, "")?;
    let mut tolerant = start_prometheus_with(&odir, oport, 1, ooo)?;
    wait_ready(&format!("{surl}/-/ready"), Duration::from_secs(30)).await?;
    wait_ready(&format!("{ourl}/-/ready"), Duration::from_secs(30)).await?;
    poll_until(Duration::from_secs(60), || async {
        let (a, b) = backlogs(&metrics_text(&v).await)?;
        (a == 0.0 && b == 0.0).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; vigil log:\n{}", v.proc.log_text()))?;

    let at = now_s() - 1.0;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let range = format!("{}s", (at - start + 5.0).ceil() as i64);
    let ours = samples(&v.url(""), &range, at).await?;
    assert_eq!(ours.len(), 3);
    // The tolerant receiver: everything, and some of it arrived out of order.
    assert_eq!(
        samples(&ourl, &range, at).await?,
        ours,
        "out-of-order window"
    );
    let prom = reqwest::get(format!("{ourl}/metrics"))
        .await?
        .text()
        .await?;
    let ooo_appended = metric(
        &prom,
        "prometheus_tsdb_head_out_of_order_samples_appended_total",
    );
    assert!(
        ooo_appended.is_some_and(|n| n > 0.0),
        "live samples did not go first"
    );
    // The strict receiver: the backlog sent after newer samples was refused and is missing.
    let t = metrics_text(&v).await;
    let failed = metric_for(&t, "prometheus_remote_storage_samples_failed_total{", &sw);
    assert!(failed.is_some_and(|f| f > 0.0), "{t}");
    let theirs = samples(&surl, &range, at).await?;
    let count =
        |m: &BTreeMap<String, Vec<(String, String)>>| -> usize { m.values().map(Vec::len).sum() };
    assert!(
        count(&theirs) < count(&ours),
        "strict receiver: {} of {}",
        count(&theirs),
        count(&ours)
    );
    v.stop()?;
    stop_proc(&mut strict)?;
    stop_proc(&mut tolerant)?;
    Ok(())
}

/// Agent mode: scrape + WAL + remote write; the query surface answers 422 like Prometheus's
/// agent, and a config with rule_files is refused.
#[tokio::test]
async fn agent_mode_forwards_and_refuses_queries() -> anyhow::Result<()> {
    let target = FakeTarget::start(Behaviour::Body(BODY.into())).await?;
    let dir = tempfile::tempdir()?;
    let rdir = dir.path().join("receiver");
    std::fs::create_dir_all(&rdir)?;
    let receiver = Vigil::start(&rdir, "", &["--web.enable-remote-write-receiver"]).await?;
    let adir = dir.path().join("agent");
    std::fs::create_dir_all(&adir)?;
    let cfg = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n\
scrape_configs:\n  - job_name: t\n    static_configs:\n      - targets: ['{}']\n\
remote_write:\n  - url: {}\n    queue_config: {{batch_send_deadline: 100ms}}\n",
        target.addr,
        receiver.url("/api/v1/write"),
    );
    let agent_data = adir.join("agent-data");
    let agent = Vigil::start(
        &adir,
        &cfg,
        &[
            "--enable-feature=agent",
            &format!("--storage.agent.path={}", agent_data.display()),
        ],
    )
    .await?;
    let got = poll_until(Duration::from_secs(20), || async {
        let s = samples(&receiver.url(""), "1m", now_s()).await.ok()?;
        (s.len() == 3).then_some(s)
    })
    .await?;
    assert!(got.values().all(|v| !v.is_empty()));
    let r = reqwest::get(agent.url("/api/v1/query?query=up")).await?;
    assert_eq!(r.status().as_u16(), 422);
    let j: serde_json::Value = serde_json::from_str(&r.text().await?)?;
    assert_eq!(j["error"], "unavailable with Prometheus Agent");
    assert_eq!(j["errorType"], "execution");
    let r = reqwest::get(agent.url("/api/v1/targets")).await?;
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        agent_data.join("wal").is_dir(),
        "agent data in --storage.agent.path"
    );
    agent.stop()?;

    // rule_files is not allowed in agent mode.
    let bad = adir.join("bad.yml");
    std::fs::write(&bad, format!("{cfg}rule_files: [r.yml]\n"))?;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["server", "--agent"])
        .arg(format!("--config.file={}", bad.display()))
        .arg(format!("--storage.agent.path={}", agent_data.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("field rule_files is not allowed in agent mode"),
        "{err}"
    );
    receiver.stop()?;
    Ok(())
}
