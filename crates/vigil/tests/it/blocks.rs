//! Blocks on disk in Prometheus's formats, proven with Prometheus's own tools: Debian's
//! `promtool tsdb list|analyze|dump` read the blocks `vigil server` cut, and `vigil server`
//! started on a data directory written by Debian's Prometheus 2.42 serves all of its samples.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use testkit::{
    Behaviour, FakeTarget, Proc, free_port, peer_missing, poll_until, wait_ready, which,
};

use crate::util::{Vigil, enc, now_ms, promtool_dump};

type Samples = BTreeMap<String, Vec<(i64, f64)>>;

/// Every raw sample in `(t - 1h, t]` through `/api/v1/query` (a range vector selector).
async fn raw_samples(base: &str, t_ms: i64) -> anyhow::Result<Samples> {
    let q = enc("{__name__=~\".+\"}[1h]");
    let t = format!("{}.{:03}", t_ms / 1000, t_ms % 1000);
    let j = testkit::get_json(&format!("{base}/api/v1/query?query={q}&time={t}")).await?;
    anyhow::ensure!(j["status"] == "success", "{j}");
    let mut out = Samples::new();
    for s in j["data"]["result"].as_array().cloned().unwrap_or_default() {
        let m = s["metric"].as_object().cloned().unwrap_or_default();
        // promtool's `labels.String()` form; the test's values need no escaping.
        let pairs: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or("")))
            .collect();
        let labels = format!("{{{}}}", pairs.join(", "));
        let mut v = Vec::new();
        for p in s["values"].as_array().cloned().unwrap_or_default() {
            let ts = (p[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
            let val: f64 = p[1].as_str().unwrap_or("").parse()?;
            v.push((ts, val));
        }
        out.insert(labels, v);
    }
    Ok(out)
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn body() -> String {
    let mut s = String::from("# TYPE work gauge\n");
    for i in 0..20 {
        s.push_str(&format!("work{{shard=\"{i}\"}} {}.5\n", i * 3));
    }
    s
}

#[tokio::test]
async fn promtool_reads_vigil_blocks() -> anyhow::Result<()> {
    if which("promtool").is_none() {
        return peer_missing("promtool");
    }
    let target = FakeTarget::start(Behaviour::Body(body())).await?;
    let dir = tempfile::tempdir()?;
    let cfg = format!(
        "global:\n  scrape_interval: 100ms\n  scrape_timeout: 90ms\nscrape_configs:\n  - job_name: work\n    static_configs:\n      - targets: ['{}']\n",
        target.addr
    );
    let v = Vigil::start(
        dir.path(),
        &cfg,
        &[
            "--storage.tsdb.min-block-duration=2s",
            "--storage.tsdb.max-block-duration=6s",
        ],
    )
    .await?;
    let url = v.url("/metrics");
    poll_until(Duration::from_secs(40), || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        (metric(&text, "prometheus_tsdb_compactions_total")? >= 4.0
            && metric(&text, "prometheus_tsdb_blocks_loaded")? >= 2.0)
            .then_some(())
    })
    .await?;
    let t = now_ms() - 1000;
    let served = raw_samples(&v.url(""), t).await?;
    v.stop()?;
    let data = dir.path().join("data");
    let blocks: Vec<String> = std::fs::read_dir(&data)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 26)
        .collect();
    assert!(blocks.len() >= 2, "{blocks:?}");

    let run = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("promtool").args(args).arg(&data).output()?;
        anyhow::ensure!(
            out.status.success(),
            "promtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };
    let list = run(&["tsdb", "list"])?;
    for b in &blocks {
        assert!(list.contains(b.as_str()), "promtool lists {b}:\n{list}");
    }
    let analyze = run(&["tsdb", "analyze"])?;
    assert!(analyze.contains("Block ID"), "{analyze}");
    assert!(analyze.contains("work"), "{analyze}");

    // promtool dumps exactly what vigil served (up to the query time).
    let mut dumped = Samples::new();
    for d in promtool_dump(&data)? {
        if d.t <= t && d.t > t - 3_600_000 && !d.value.is_nan() {
            dumped.entry(d.labels).or_default().push((d.t, d.value));
        }
    }
    assert_eq!(dumped.len(), served.len());
    assert_eq!(dumped, served, "promtool's dump equals vigil's answer");
    let work = served
        .iter()
        .filter(|(k, _)| k.starts_with("{__name__=\"work\""))
        .count();
    assert_eq!(work, 20);

    // And vigil's own tools read the same directory.
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["tsdb", "dump"])
        .arg(&data)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = String::from_utf8(out.stdout)?;
    let mut ours_samples = Samples::new();
    for line in ours.lines() {
        let close = line.rfind('}').unwrap();
        let mut rest = line[close + 1..].split_whitespace();
        let v: f64 = rest.next().unwrap().parse()?;
        let ts: i64 = rest.next().unwrap().parse()?;
        if ts <= t && ts > t - 3_600_000 && !v.is_nan() {
            ours_samples
                .entry(line[..=close].to_string())
                .or_default()
                .push((ts, v));
        }
    }
    assert_eq!(ours_samples, served, "vigil tsdb dump");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["tsdb", "list"])
        .arg(&data)
        .output()?;
    let ours = String::from_utf8(out.stdout)?;
    for b in &blocks {
        assert!(
            ours.contains(b.as_str()),
            "vigil tsdb list shows {b}:\n{ours}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn vigil_serves_a_prometheus_data_dir() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let target = FakeTarget::start(Behaviour::Body(body())).await?;
    let dir = tempfile::tempdir()?;
    let pdir = dir.path().join("prom");
    std::fs::create_dir_all(&pdir)?;
    let pcfg = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: p\n    static_configs:\n      - targets: ['{}']\n",
        target.addr
    );
    std::fs::write(pdir.join("prometheus.yml"), pcfg)?;
    let data = dir.path().join("data");
    let pport = free_port();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!(
        "--config.file={}",
        pdir.join("prometheus.yml").display()
    ))
    .arg(format!("--storage.tsdb.path={}", data.display()))
    .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
    .arg("--storage.tsdb.min-block-duration=10s")
    .arg("--storage.tsdb.max-block-duration=10s")
    // Snappy-compressed WAL records (the default of 2.42, stated to be sure).
    .arg("--storage.tsdb.wal-compression");
    let mut prom = Proc::spawn("prometheus", cmd, &pdir.join("prometheus.log"))?;
    let base = format!("http://127.0.0.1:{pport}");
    wait_ready(&format!("{base}/-/ready"), Duration::from_secs(30)).await?;
    // Wait for a block Prometheus cut (the head must span 15 s first).
    let d2 = data.clone();
    poll_until(Duration::from_secs(60), || {
        let d2 = d2.clone();
        async move {
            std::fs::read_dir(&d2)
                .ok()?
                .flatten()
                .any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.len() == 26 && e.path().join("meta.json").exists()
                })
                .then_some(())
        }
    })
    .await?;
    let t = now_ms() - 1000;
    let theirs = raw_samples(&base, t).await?;
    prom.signal(15)?;
    poll_until(Duration::from_secs(30), || {
        let running = prom.running();
        async move { (!running).then_some(()) }
    })
    .await?;
    assert!(theirs.len() >= 20, "{}", theirs.len());

    let cfg = dir.path().join("vigil.yml");
    std::fs::write(&cfg, "scrape_configs: []\n")?;
    let v = Vigil::start_with(dir.path(), &cfg, free_port(), &[]).await?;
    let metrics = reqwest::get(v.url("/metrics")).await?.text().await?;
    assert!(
        metric(&metrics, "prometheus_tsdb_blocks_loaded").unwrap_or(0.0) >= 1.0,
        "vigil loaded Prometheus's blocks"
    );
    let ours = raw_samples(&v.url(""), t).await?;
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours, theirs, "vigil serves every sample Prometheus stored");
    v.stop()?;
    Ok(())
}

async fn post(url: &str) -> anyhow::Result<(u16, String)> {
    let r = reqwest::Client::new().post(url).send().await?;
    Ok((r.status().as_u16(), r.text().await?))
}

#[tokio::test]
async fn admin_api_delete_clean_snapshot() -> anyhow::Result<()> {
    let target = FakeTarget::start(Behaviour::Body(body())).await?;
    let dir = tempfile::tempdir()?;
    let cfg = format!(
        "global:\n  scrape_interval: 100ms\n  scrape_timeout: 90ms\nscrape_configs:\n  - job_name: work\n    static_configs:\n      - targets: ['{}']\n",
        target.addr
    );
    let v = Vigil::start(
        dir.path(),
        &cfg,
        &[
            "--storage.tsdb.min-block-duration=2s",
            "--web.enable-admin-api",
        ],
    )
    .await?;
    let url = v.url("/metrics");
    poll_until(Duration::from_secs(30), || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        (metric(&text, "prometheus_tsdb_blocks_loaded")? >= 1.0).then_some(())
    })
    .await?;
    let series = |sel: &'static str| {
        let base = v.url("");
        async move {
            let t = now_ms();
            let all = raw_samples(&base, t).await?;
            anyhow::Ok(
                all.into_iter()
                    .filter(|(k, _)| k.contains(sel))
                    .map(|(_, s)| s.len())
                    .sum::<usize>(),
            )
        }
    };
    assert!(series("shard=\"3\"").await? > 20);
    let sel = enc("work{shard=\"3\"}");
    let (code, body) =
        post(&v.url(&format!("/api/v1/admin/tsdb/delete_series?match[]={sel}"))).await?;
    assert_eq!(code, 204, "{body}");
    assert_eq!(
        series("shard=\"3\"").await?,
        0,
        "deleted in blocks and head"
    );
    assert!(series("shard=\"2\"").await? > 20, "others stay");
    let (code, body) = post(&v.url("/api/v1/admin/tsdb/clean_tombstones")).await?;
    assert_eq!(code, 204, "{body}");
    assert_eq!(
        series("shard=\"3\"").await?,
        0,
        "still deleted after cleaning"
    );

    let (code, body) = post(&v.url("/api/v1/admin/tsdb/snapshot")).await?;
    assert_eq!(code, 200, "{body}");
    let j: serde_json::Value = serde_json::from_str(&body)?;
    let name = j["data"]["name"].as_str().unwrap_or_default().to_string();
    let snap = dir.path().join("data/snapshots").join(&name);
    let blocks = std::fs::read_dir(&snap)?
        .flatten()
        .filter(|e| e.path().join("meta.json").exists())
        .count();
    assert!(blocks >= 2, "the blocks and the head in {}", snap.display());
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["tsdb", "dump"])
        .arg(&snap)
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("shard=\"2\""), "snapshot readable");
    assert!(
        !text.contains("shard=\"3\""),
        "snapshot without deleted data"
    );

    let j = v.json("/api/v1/status/tsdb").await?;
    assert!(
        j["data"]["headStats"]["numSeries"].as_u64().unwrap_or(0) > 0,
        "{j}"
    );
    assert!(j["data"]["seriesCountByMetricName"].is_array(), "{j}");
    v.stop()?;

    let dir2 = tempfile::tempdir()?;
    let v2 = Vigil::start(dir2.path(), "scrape_configs: []\n", &[]).await?;
    let (code, body) = post(&v2.url("/api/v1/admin/tsdb/snapshot")).await?;
    // Prometheus 2.42 answers 500 with errorType "unavailable".
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("admin APIs disabled"), "{body}");
    v2.stop()?;
    Ok(())
}

#[tokio::test]
async fn prometheus_serves_a_vigil_data_dir() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let target = FakeTarget::start(Behaviour::Body(body())).await?;
    let dir = tempfile::tempdir()?;
    let cfg = format!(
        "global:\n  scrape_interval: 100ms\n  scrape_timeout: 90ms\nscrape_configs:\n  - job_name: work\n    static_configs:\n      - targets: ['{}']\n",
        target.addr
    );
    let v = Vigil::start(dir.path(), &cfg, &["--storage.tsdb.min-block-duration=2s"]).await?;
    let url = v.url("/metrics");
    poll_until(Duration::from_secs(40), || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        (metric(&text, "prometheus_tsdb_blocks_loaded")? >= 2.0).then_some(())
    })
    .await?;
    let t = now_ms() - 1000;
    let ours = raw_samples(&v.url(""), t).await?;
    v.stop()?;

    // Prometheus opens the same directory: vigil's blocks, WAL and chunks_head.
    let pdir = dir.path().join("prom");
    std::fs::create_dir_all(&pdir)?;
    std::fs::write(pdir.join("prometheus.yml"), "scrape_configs: []\n")?;
    let pport = free_port();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!(
        "--config.file={}",
        pdir.join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        dir.path().join("data").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{pport}"));
    let prom = Proc::spawn("prometheus", cmd, &pdir.join("prometheus.log"))?;
    let base = format!("http://127.0.0.1:{pport}");
    wait_ready(&format!("{base}/-/ready"), Duration::from_secs(30)).await?;
    let theirs = raw_samples(&base, t).await?;
    prom.signal(15)?;
    assert!(ours.len() >= 20, "{}", ours.len());
    assert_eq!(theirs, ours, "Prometheus serves every sample vigil stored");
    Ok(())
}
