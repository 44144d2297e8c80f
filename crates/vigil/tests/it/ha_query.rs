//! `vigil query` over HA replicas: two servers with `replica` external labels a/b scrape the
//! same application (two targets serving the same counter, relabelled to one `instance`), one
//! replica goes away or fails scrapes, and the merged view through `vigil query` has no gap,
//! counts one series, and rates like a single healthy replica. Also: misbehaving endpoints
//! give partial responses with warnings (or errors in strict mode) within the timeout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use testkit::{
    Behaviour, FakeTarget, Proc, free_port, peer_missing, poll_until, wait_ready, which,
};

use crate::util::{Vigil, enc, now_ms};

/// Scrape interval of the replicas (ms).
pub const IVAL_MS: i64 = 200;

/// Two targets serving the same application metrics: a counter that grows by 1 per ms of
/// wall time (updated every 5 ms) and a constant gauge. Target a can be made to fail.
pub struct App {
    pub a: Arc<FakeTarget>,
    pub b: Arc<FakeTarget>,
    /// Makes target a (0) or b (1) answer 500.
    pub fail: [Arc<AtomicBool>; 2],
    task: tokio::task::JoinHandle<()>,
}

/// `c_total` carries its own timestamp, so its value is exactly linear in the stored sample
/// times and rates compare without the fake's scrape-latency noise; `s_total` has no
/// timestamp, so failed scrapes write staleness markers for it.
fn body(ts: i64, v: i64) -> String {
    format!(
        "# TYPE c_total counter\nc_total {v} {ts}\n# TYPE s_total counter\ns_total {v}\n# TYPE g gauge\ng 1\n"
    )
}

impl App {
    pub async fn start() -> anyhow::Result<App> {
        let a = Arc::new(FakeTarget::start(Behaviour::Body(body(now_ms(), 0))).await?);
        let b = Arc::new(FakeTarget::start(Behaviour::Body(body(now_ms(), 0))).await?);
        let fail = [
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        ];
        let (ta, tb, fa, fb) = (a.clone(), b.clone(), fail[0].clone(), fail[1].clone());
        let t0 = now_ms();
        let task = tokio::spawn(async move {
            loop {
                let ts = now_ms();
                let v = ts - t0;
                for (t, f) in [(&ta, &fa), (&tb, &fb)] {
                    if f.load(Ordering::SeqCst) {
                        t.set(Behaviour::Status(500));
                    } else {
                        t.set(Behaviour::Body(body(ts, v)));
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Ok(App { a, b, fail, task })
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// prometheus.yml of one replica scraping `target`, with `instance` relabelled to a constant
/// so both replicas store the same series.
pub fn replica_config(replica: &str, target: &FakeTarget) -> String {
    replica_config_with(replica, target, &[])
}

/// [`replica_config`] with more external labels than `replica`.
pub fn replica_config_with(replica: &str, target: &FakeTarget, more: &[(&str, &str)]) -> String {
    let more: String = more
        .iter()
        .map(|(k, v)| format!("    {k}: {v}\n"))
        .collect();
    format!(
        "global:\n  scrape_interval: {IVAL_MS}ms\n  scrape_timeout: 150ms\n  external_labels:\n    replica: {replica}\n{more}\
scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{}']\n    relabel_configs:\n      - target_label: instance\n        replacement: app-0\n",
        target.addr
    )
}

/// Two `vigil server` replicas (data in `dir/a` and `dir/b`) and a `vigil query` over both.
pub struct Replicas {
    pub dirs: [PathBuf; 2],
    /// `None` only while [`Replicas::bounce`] has one stopped.
    pub r: [Option<Vigil>; 2],
    pub urls: Vec<String>,
    pub q: Query,
}

impl Replicas {
    pub async fn start(dir: &Path, configs: [String; 2]) -> anyhow::Result<Replicas> {
        let dirs = replica_dirs(dir)?;
        let r = [
            Some(Vigil::start(&dirs[0], &configs[0], &[]).await?),
            Some(Vigil::start(&dirs[1], &configs[1], &[]).await?),
        ];
        let urls: Vec<String> = r.iter().flatten().map(|v| v.url("")).collect();
        let q = Query::start(dir, &urls, &[]).await?;
        Ok(Replicas { dirs, r, urls, q })
    }

    /// Stops replica `i`, and after `down_ms` starts it again (same port, config and data).
    pub async fn bounce(&mut self, i: usize, down_ms: i64) -> anyhow::Result<()> {
        let v = self.r[i].take().expect("BUG: replica already stopped");
        let (port, cfg) = (v.port, v.config.clone());
        v.stop()?;
        sleep_ms(down_ms).await;
        self.r[i] = Some(Vigil::start_with(&self.dirs[i], &cfg, port, &[]).await?);
        Ok(())
    }

    pub fn stop(self) -> anyhow::Result<()> {
        for v in self.r.into_iter().flatten() {
            v.stop()?;
        }
        Ok(())
    }
}

/// A `vigil query` child process.
pub struct Query {
    pub proc: Proc,
    pub port: u16,
}

impl Query {
    pub async fn start(dir: &Path, endpoints: &[String], extra: &[&str]) -> anyhow::Result<Query> {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.arg("query")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--query.replica-label=replica")
            .arg("--endpoint.health-interval=200ms");
        if !extra.iter().any(|e| e.starts_with("--endpoint.timeout")) {
            cmd.arg("--endpoint.timeout=2s");
        }
        for e in endpoints {
            cmd.arg(format!("--endpoint={e}"));
        }
        cmd.args(extra);
        let proc = Proc::spawn("vigil-query", cmd, &dir.join(format!("query-{port}.log")))?;
        let q = Query { proc, port };
        if let Err(e) = wait_ready(&q.url("/-/ready"), Duration::from_secs(20)).await {
            anyhow::bail!("{e}\nlog:\n{}", q.proc.log_text());
        }
        Ok(q)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}

pub async fn get_json(url: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let r = reqwest::get(url).await?;
    let st = r.status().as_u16();
    let text = r.text().await?;
    let v = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{url}: {e}: {text}"))?;
    Ok((st, v))
}

/// `query_range` of `q` over `[start, end]` (ms) with `step` and `lookback_delta` (ms).
pub async fn range(
    base: &str,
    q: &str,
    start: i64,
    end: i64,
    step: i64,
    lookback: i64,
    extra: &str,
) -> anyhow::Result<serde_json::Value> {
    let url = format!(
        "{base}/api/v1/query_range?query={}&start={}&end={}&step={}&lookback_delta={}{extra}",
        enc(q),
        start as f64 / 1000.0,
        end as f64 / 1000.0,
        step as f64 / 1000.0,
        lookback as f64 / 1000.0,
    );
    let (st, v) = get_json(&url).await?;
    anyhow::ensure!(st == 200, "{url}: {st} {v}");
    Ok(v)
}

/// Instant query value of a one-element vector result.
pub async fn scalar(base: &str, q: &str, t: i64, extra: &str) -> anyhow::Result<f64> {
    let url = format!(
        "{base}/api/v1/query?query={}&time={}{extra}",
        enc(q),
        t as f64 / 1000.0
    );
    let (st, v) = get_json(&url).await?;
    anyhow::ensure!(st == 200, "{url}: {st} {v}");
    let s = v["data"]["result"][0]["value"][1]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("{url}: no value in {v}"))?;
    Ok(s.parse()?)
}

/// Steps in `[start, end]` where series 0 of a matrix has no point.
pub fn missing_steps(v: &serde_json::Value, start: i64, end: i64, step: i64) -> usize {
    let want = ((end - start) / step + 1) as usize;
    let got = v["data"]["result"][0]["values"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    want.saturating_sub(got)
}

/// The largest spacing between consecutive raw samples of `s_total` in `[start, end]`.
pub async fn max_spacing(base: &str, start: i64, end: i64) -> anyhow::Result<i64> {
    let url = format!(
        "{base}/api/v1/query?query={}&time={}",
        enc(&format!("s_total[{}ms]", end - start)),
        end as f64 / 1000.0
    );
    let (st, v) = get_json(&url).await?;
    anyhow::ensure!(st == 200, "{url}: {st} {v}");
    let ts: Vec<i64> = v["data"]["result"][0]["values"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("{url}: no samples: {v}"))?
        .iter()
        .filter_map(|p| p[0].as_f64())
        .map(|t| (t * 1000.0).round() as i64)
        .collect();
    anyhow::ensure!(ts.len() > 5, "{url}: too few samples: {v}");
    let mut gaps: Vec<i64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    // The window's edges count too.
    gaps.push(ts[0] - start);
    gaps.push(end - ts[ts.len() - 1]);
    Ok(gaps.into_iter().max().unwrap_or(0))
}

pub async fn sleep_ms(ms: i64) {
    tokio::time::sleep(Duration::from_millis(ms as u64)).await;
}

/// The shared checks: over `[start, end]` the merged counter has no gap at scrape-interval
/// resolution, is one series (two without dedup), and rates like replica b.
pub async fn check_merged(
    q: &str,
    down_url: &str,
    b_url: &str,
    start: i64,
    end: i64,
) -> anyhow::Result<()> {
    let step = IVAL_MS / 2;
    let lookback = IVAL_MS * 7 / 4;
    let merged = range(q, "s_total", start, end, step, lookback, "").await?;
    assert_eq!(
        merged["data"]["result"].as_array().map(Vec::len),
        Some(1),
        "one merged series: {merged}"
    );
    let labels = &merged["data"]["result"][0]["metric"];
    assert!(
        labels.get("replica").is_none(),
        "replica label dropped: {labels}"
    );
    assert_eq!(
        missing_steps(&merged, start, end, step),
        0,
        "merged view has a gap: {merged}"
    );
    // Raw samples: the merged series has no spacing over 1.5 intervals (plus scrape jitter),
    // while the replica that went away alone has a gap of several intervals.
    let merged_gap = max_spacing(q, start, end).await?;
    assert!(
        merged_gap <= IVAL_MS * 3 / 2 + 60,
        "merged raw samples have a gap of {merged_gap} ms"
    );
    let alone_gap = max_spacing(down_url, start, end).await?;
    assert!(
        alone_gap >= IVAL_MS * 3,
        "replica that went away shows no gap ({alone_gap} ms), so the scenario did not happen"
    );
    // Counter values never dip.
    let vals: Vec<f64> = merged["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        vals.windows(2).all(|w| w[1] >= w[0]),
        "merged counter dips: {vals:?}"
    );

    for (query, extra, want) in [
        ("count(c_total)", "", 1.0),
        ("count(g)", "", 1.0),
        ("count(c_total)", "&dedup=false", 2.0),
    ] {
        let n = scalar(q, query, end, extra).await?;
        assert_eq!(n, want, "{query}{extra}");
    }
    // sum(rate()) and increase() across the switches, against replica b alone. `c_total` grows
    // by exactly 1 per ms of its own timestamps, so the truth is known: on a loaded machine the
    // healthy replica misses scrapes too, and then the merge (which fills those gaps from the
    // other replica) must be at least as close to the truth as that replica.
    let mut t = start + 2000;
    while t <= end {
        for (expr, truth) in [
            ("sum(rate(c_total[3s]))", 1000.0),
            ("sum(increase(c_total[3s]))", 3000.0),
        ] {
            let got = scalar(q, expr, t, "").await?;
            let want = scalar(b_url, expr, t, "").await?;
            let err = |x: f64| (x - truth).abs();
            assert!(
                (got - want).abs() <= want.abs() * 0.01 || err(got) <= err(want),
                "{expr} at {t}: merged {got}, replica b {want}, truth {truth}"
            );
        }
        t += 500;
    }
    Ok(())
}

/// Which replica (0 = a, 1 = b) the merge follows in steady state: the one serving the
/// longest stretch of `[start, now - 1 s]` (at the edges of the data, whichever replica scraped
/// first or last serves a short stretch, so neither end tells).
pub async fn followed(q: &Query, start: i64) -> anyhow::Result<usize> {
    let url = q.url(&format!(
        "/api/v1/dedup/explain?match[]=s_total&start={}&end={}",
        start as f64 / 1000.0,
        (now_ms() - 1000) as f64 / 1000.0
    ));
    let (st, v) = get_json(&url).await?;
    anyhow::ensure!(st == 200, "{url}: {v}");
    let longest = v["data"][0]["stretches"]
        .as_array()
        .and_then(|s| s.iter().max_by_key(|x| x["samples"].as_u64().unwrap_or(0)))
        .and_then(|s| s["replica"].as_str())
        .ok_or_else(|| anyhow::anyhow!("no stretch in {v}"))?;
    Ok(usize::from(longest.contains("replica=\"b\"")))
}

/// Both replicas served a stretch of `[start, end]`, and the interval was learned.
async fn check_explain(q: &Query, start: i64, end: i64) -> anyhow::Result<()> {
    let (st, v) = get_json(&q.url(&format!(
        "/api/v1/dedup/explain?match[]=s_total&start={}&end={}",
        start as f64 / 1000.0,
        end as f64 / 1000.0
    )))
    .await?;
    assert_eq!(st, 200, "{v}");
    let stretches = v["data"][0]["stretches"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let served: std::collections::BTreeSet<String> = stretches
        .iter()
        .map(|s| s["replica"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(served.len(), 2, "both replicas served a stretch: {v}");
    assert_eq!(v["data"][0]["intervalMs"], IVAL_MS, "learned interval: {v}");
    Ok(())
}

/// `dir/a` and `dir/b`, created.
fn replica_dirs(dir: &Path) -> anyhow::Result<[PathBuf; 2]> {
    let d = [dir.join("a"), dir.join("b")];
    for x in &d {
        std::fs::create_dir_all(x)?;
    }
    Ok(d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_replica_down_no_gap() -> anyhow::Result<()> {
    let app = App::start().await?;
    let dir = tempfile::tempdir()?;
    let configs = [replica_config("a", &app.a), replica_config("b", &app.b)];
    let mut r = Replicas::start(dir.path(), configs).await?;
    let start = now_ms() + 500;
    sleep_ms(2500).await;
    // The replica being followed goes away for 10 scrape intervals, then comes back.
    let down = followed(&r.q, start).await?;
    r.bounce(down, IVAL_MS * 10).await?;
    sleep_ms(2500).await;
    let (q, urls) = (&r.q, &r.urls);
    let end = now_ms() - 500;
    check_merged(&q.url(""), &urls[down], &urls[1 - down], start, end).await?;
    check_explain(q, start, end).await?;

    // series/labels/targets fan out and drop the replica label.
    let (_, s) = get_json(&q.url("/api/v1/series?match[]=c_total")).await?;
    assert_eq!(s["data"].as_array().map(Vec::len), Some(1), "{s}");
    let (_, s) = get_json(&q.url("/api/v1/series?match[]=c_total&dedup=false")).await?;
    assert_eq!(
        s["data"].as_array().map(Vec::len),
        Some(1),
        "stored series carry no replica label: {s}"
    );
    let (_, l) = get_json(&q.url("/api/v1/labels")).await?;
    let names: Vec<&str> = l["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    assert!(
        names.contains(&"instance") && !names.contains(&"replica"),
        "{l}"
    );
    let (_, t) = get_json(&q.url("/api/v1/targets")).await?;
    assert_eq!(
        t["data"]["activeTargets"].as_array().map(Vec::len),
        Some(2),
        "{t}"
    );
    let (_, b) = get_json(&q.url("/api/v1/status/buildinfo")).await?;
    assert_eq!(b["status"], "success");
    r.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_failed_scrape_staleness_no_gap() -> anyhow::Result<()> {
    let app = App::start().await?;
    let dir = tempfile::tempdir()?;
    let configs = [replica_config("a", &app.a), replica_config("b", &app.b)];
    let r = Replicas::start(dir.path(), configs).await?;
    let (q, urls) = (&r.q, &r.urls);
    let start = now_ms() + 500;
    sleep_ms(2500).await;
    // The followed replica's scrapes fail (it writes staleness markers); the other's succeed.
    let bad = followed(q, start).await?;
    app.fail[bad].store(true, Ordering::SeqCst);
    sleep_ms(IVAL_MS * 6).await;
    app.fail[bad].store(false, Ordering::SeqCst);
    sleep_ms(2500).await;
    let end = now_ms() - 500;
    // That replica recorded the failure.
    let up = range(
        &urls[bad],
        "min_over_time(up[10s])",
        end,
        end,
        1000,
        300_000,
        "",
    )
    .await?;
    assert_eq!(up["data"]["result"][0]["values"][0][1], "0", "{up}");
    check_merged(&q.url(""), &urls[bad], &urls[1 - bad], start, end).await?;
    check_explain(q, start, end).await?;
    r.stop()
}

/// The same with two Debian Prometheus 2.42 servers as the replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_prometheus_replicas_no_gap() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let app = App::start().await?;
    let dir = tempfile::tempdir()?;
    let d = replica_dirs(dir.path())?;
    let cfgs = [replica_config("a", &app.a), replica_config("b", &app.b)];
    let ports = [free_port(), free_port()];
    let start_prom = |i: usize| -> anyhow::Result<Proc> {
        std::fs::write(d[i].join("prometheus.yml"), &cfgs[i])?;
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!(
            "--config.file={}",
            d[i].join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            d[i].join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{}", ports[i]));
        Proc::spawn("prometheus", cmd, &d[i].join(format!("log-{}", now_ms())))
    };
    let mut p = [start_prom(0)?, start_prom(1)?];
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    for u in &urls {
        wait_ready(&format!("{u}/-/ready"), Duration::from_secs(30)).await?;
    }
    // Prometheus's discovery hands targets over within ~5 s of the start.
    for u in &urls {
        poll_until(Duration::from_secs(20), || async {
            scalar(u, "count(c_total)", now_ms(), "").await.ok()
        })
        .await?;
    }
    let q = Query::start(dir.path(), &urls, &[]).await?;
    let start = now_ms() + 1000;
    sleep_ms(3000).await;
    let down = followed(&q, start).await?;
    p[down].signal(15)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while p[down].running() {
        anyhow::ensure!(Instant::now() < deadline, "prometheus did not stop");
        sleep_ms(50).await;
    }
    sleep_ms(IVAL_MS * 10).await;
    p[down] = start_prom(down)?;
    wait_ready(&format!("{}/-/ready", urls[down]), Duration::from_secs(30)).await?;
    sleep_ms(6000).await;
    let end = now_ms() - 500;
    check_merged(&q.url(""), &urls[down], &urls[1 - down], start, end).await?;
    check_explain(&q, start, end).await?;
    Ok(())
}

/// Endpoints that hang, answer garbage or 500 give a partial response with warnings within
/// the endpoint timeout; with `partial_response=false` they give an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_response_and_strict_mode() -> anyhow::Result<()> {
    let app = App::start().await?;
    let dir = tempfile::tempdir()?;
    let b = Vigil::start(dir.path(), &replica_config("b", &app.b), &[]).await?;
    let hang = FakeTarget::start(Behaviour::Hang).await?;
    let garbage = FakeTarget::start(Behaviour::Body("garbage".into())).await?;
    let fail = FakeTarget::start(Behaviour::Status(500)).await?;
    let eps = vec![
        b.url(""),
        format!("http://{}", hang.addr),
        format!("http://{}", garbage.addr),
        format!("http://{}", fail.addr),
    ];
    let q = Query::start(dir.path(), &eps, &["--endpoint.timeout=1s"]).await?;
    poll_until(Duration::from_secs(10), || async {
        scalar(&b.url(""), "count(c_total)", now_ms(), "")
            .await
            .ok()
    })
    .await?;
    for path in [
        format!("/api/v1/query?query={}", enc("count(c_total)")),
        "/api/v1/series?match[]=c_total".to_string(),
        "/api/v1/labels?start=0".to_string(),
    ] {
        let t0 = Instant::now();
        let (st, v) = get_json(&q.url(&path)).await?;
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "{path} took {:?}",
            t0.elapsed()
        );
        assert_eq!(st, 200, "{path}: {v}");
        assert_eq!(v["status"], "success", "{path}: {v}");
        let warnings = v["warnings"].as_array().cloned().unwrap_or_default();
        assert!(
            warnings.len() >= 3,
            "{path}: one warning per bad endpoint: {v}"
        );
        for bad in [&hang.addr, &garbage.addr, &fail.addr] {
            assert!(
                warnings
                    .iter()
                    .any(|w| w.as_str().unwrap_or("").contains(&bad.to_string())),
                "{path}: a warning names {bad}: {v}"
            );
        }
        if path.contains("query?") {
            assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");
        }
        let t0 = Instant::now();
        let (st, v) = get_json(&q.url(&format!("{path}&partial_response=false"))).await?;
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "{path} strict took {:?}",
            t0.elapsed()
        );
        assert!(st >= 400, "{path} strict: {st} {v}");
        assert_eq!(v["status"], "error", "{path} strict: {v}");
    }
    // The endpoint view shows health.
    let (_, e) = get_json(&q.url("/api/v1/endpoints")).await?;
    assert_eq!(e["data"].as_array().map(Vec::len), Some(4), "{e}");
    b.stop()?;
    Ok(())
}
