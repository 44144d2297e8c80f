//! `vigil up`: the whole local topology starts, every component becomes ready, the query front
//! end shows the demo series once (not once per replica), one replica can be stopped with
//! `vigil up --kill` while queries keep answering, and SIGTERM stops every child.

use std::time::Duration;

use testkit::{Proc, poll_until};

use crate::util::enc;

/// A base port with `n` free consecutive ports after it.
fn free_port_range(n: u16) -> u16 {
    let start = 20000 + (std::process::id() % 2000) as u16 * 13;
    for base in (start..60000).step_by(n as usize + 3) {
        let ok = (base..base + n).all(|p| {
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
        });
        if ok {
            return base;
        }
    }
    panic!("no free port range");
}

async fn scalar(base: &str, q: &str) -> Option<f64> {
    let j = testkit::get_json(&format!("{base}/api/v1/query?query={}", enc(q)))
        .await
        .ok()?;
    j["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn pid_alive(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test]
async fn up_starts_everything_and_survives_a_replica_loss() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let base = free_port_range(12);
    let data = dir.path().join("up");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args(["up", "--demo.series=60"])
        .arg(format!("--port-base={base}"))
        .arg(format!("--data-dir={}", data.display()));
    let mut up = Proc::spawn("vigil up", cmd, &dir.path().join("up.log"))?;
    let control = format!("http://127.0.0.1:{}", base + 8);

    // Every component ready within 60 s.
    let status = poll_until(Duration::from_secs(60), || async {
        let st = testkit::get_json(&format!("{control}/status")).await.ok()?;
        let all = st.as_array()?;
        (all.len() == 8 && all.iter().all(|c| c["state"] == "ready")).then_some(st)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nvigil up log:\n{}", up.log_text()))?;
    let pids: Vec<u64> = status
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["pid"].as_u64())
        .collect();
    assert_eq!(pids.len(), 8);

    // Through the query front end, the demo series appear once.
    let query = format!("http://127.0.0.1:{base}");
    let replica_a = format!("http://127.0.0.1:{}", base + 1);
    let store = format!("http://127.0.0.1:{}", base + 3);
    let (merged, single) = poll_until(Duration::from_secs(60), || async {
        // The store has both replicas' copies (remote write), and they merge away too.
        let in_store = scalar(&store, "count(demo_queue_depth)").await?;
        let single = scalar(&replica_a, "count(demo_queue_depth)").await?;
        if in_store != 2.0 * single {
            return None;
        }
        let merged = scalar(&query, "count(demo_queue_depth)").await?;
        (single > 0.0 && merged == single).then_some((merged, single))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nvigil up log:\n{}", up.log_text()))?;
    assert_eq!(merged, single);
    let by_replica = testkit::get_json(&format!(
        "{query}/api/v1/query?query={}",
        enc("count by (replica) (demo_queue_depth)")
    ))
    .await?;
    assert_eq!(
        by_replica["data"]["result"].as_array().map(Vec::len),
        Some(1),
        "replica label must be merged away: {by_replica}"
    );

    // The always-firing Watchdog pages exactly once: two replicas send it to three
    // Alertmanagers, the cluster deduplicates.
    let notifications = data.join("notifications.log");
    let count = |alert: &str| {
        std::fs::read_to_string(&notifications)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"alertname\":\"{alert}\"")))
            .filter(|l| l.contains("\"status\":\"firing\""))
            .count()
    };
    poll_until(Duration::from_secs(90), || async {
        (count("Watchdog") >= 1).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nvigil up log:\n{}", up.log_text()))?;
    // Longer than the last node's wait (position 2 × 5s peer timeout).
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(count("Watchdog"), 1, "Watchdog paged more than once");

    // Stop replica a: queries keep answering with the same count.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["up", "--kill", "server-a"])
        .arg(format!("--port-base={base}"))
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st = testkit::get_json(&format!("{control}/status")).await?;
    let a = st
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "server-a")
        .cloned()
        .unwrap_or_default();
    assert_eq!(a["state"], "stopped", "{st}");
    let after = poll_until(Duration::from_secs(30), || async {
        scalar(&query, "count(demo_queue_depth)").await
    })
    .await?;
    assert_eq!(after, single);

    // Stop the store: queries keep answering, with a partial-response warning. When it comes
    // back, replica b's backlog fills the gap: the store holds every sample b has.
    let vigil_up = |args: &[&str]| -> anyhow::Result<()> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("up")
            .args(args)
            .arg(format!("--port-base={base}"))
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    vigil_up(&["--kill", "store"])?;
    let warned = poll_until(Duration::from_secs(30), || async {
        let j = testkit::get_json(&format!(
            "{query}/api/v1/query?query={}",
            enc("count(demo_queue_depth)")
        ))
        .await
        .ok()?;
        let n: f64 = j["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
        (n == single && j["warnings"].as_array().is_some_and(|w| !w.is_empty())).then_some(j)
    })
    .await?;
    assert_eq!(warned["status"], "success");
    tokio::time::sleep(Duration::from_secs(12)).await;
    vigil_up(&["--start", "store"])?;
    let replica_b = format!("http://127.0.0.1:{}", base + 2);
    // External labels are attached on the way out: b stores the series without `replica`.
    let sel_b = "demo_queue_depth{queue=\"q0\",shard=\"0\"}";
    let sel_store = "demo_queue_depth{queue=\"q0\",shard=\"0\",replica=\"b\"}";
    poll_until(Duration::from_secs(60), || async {
        let text = reqwest::get(format!("{replica_b}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let backlog = text
            .lines()
            .find(|l| l.starts_with("vigil_remote_storage_backlog_samples{"))?
            .rsplit(' ')
            .next()?
            .parse::<f64>()
            .ok()?;
        (backlog == 0.0).then_some(())
    })
    .await?;
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64()
        - 6.0;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let in_b = testkit::get_json(&format!(
        "{replica_b}/api/v1/query?query={}&time={at:.3}",
        enc(&format!("count_over_time({sel_b}[10m])"))
    ))
    .await?;
    let in_store = testkit::get_json(&format!(
        "{store}/api/v1/query?query={}&time={at:.3}",
        enc(&format!("count_over_time({sel_store}[10m])"))
    ))
    .await?;
    assert_eq!(
        in_store["data"]["result"][0]["value"][1], in_b["data"]["result"][0]["value"][1],
        "the store misses samples of replica b after its outage: {in_store} vs {in_b}"
    );

    // Stop Alertmanager 0 and the demo exporter: TargetDown (for: 1m) still pages exactly once,
    // from the next node in the cluster.
    for name in ["alertmanager-0", "demo"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["up", "--kill", name])
            .arg(format!("--port-base={base}"))
            .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    poll_until(Duration::from_secs(150), || async {
        (count("TargetDown") >= 1).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nvigil up log:\n{}", up.log_text()))?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(count("TargetDown"), 1, "TargetDown paged more than once");

    // `vigil up status` (the same as `--status`) prints the table.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["up", "status"])
        .arg(format!("--port-base={base}"))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("server-b") && text.contains("stopped"),
        "{text}"
    );

    // SIGTERM stops every child.
    up.signal(15)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while up.running() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "vigil up did not stop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for pid in pids {
        assert!(!pid_alive(pid), "child {pid} still running");
    }
    Ok(())
}

/// Runs `program args… file` for each file; every run must succeed.
fn check_all(program: &str, args: &[&str], files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    for f in files {
        let out = std::process::Command::new(program)
            .args(args)
            .arg(f)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{program} rejects {}: {}{}",
            f.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Prometheus configs pass `vigil check config` and `promtool check config` (rule files
/// included); Alertmanager configs pass `amtool check-config`.
fn check_examples(prom: &[std::path::PathBuf], am: &[std::path::PathBuf]) -> anyhow::Result<()> {
    check_all(env!("CARGO_BIN_EXE_vigil"), &["check", "config"], prom)?;
    if testkit::which("promtool").is_none() {
        return testkit::peer_missing("promtool");
    }
    check_all("promtool", &["check", "config"], prom)?;
    if testkit::which("amtool").is_none() {
        return testkit::peer_missing("amtool");
    }
    check_all("amtool", &["check-config"], am)
}

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The configs of the default topology (`examples/up/`).
#[test]
fn up_examples_pass_vigil_promtool_and_amtool() -> anyhow::Result<()> {
    let dir = examples().join("up");
    let prom = ["server-a.yml", "server-b.yml", "store.yml"].map(|f| dir.join(f));
    check_examples(&prom, &[dir.join("alertmanager.yml")])
}

/// Every deployment example (`examples/*/`).
#[test]
fn deployment_examples_pass_vigil_promtool_and_amtool() -> anyhow::Result<()> {
    let mut prom = Vec::new();
    let mut am = Vec::new();
    for dir in [
        "basic-ha",
        "remote-storage",
        "alertmanager-cluster",
        "sharding",
    ] {
        for e in std::fs::read_dir(examples().join(dir))? {
            let p = e?.path();
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if p.extension().is_none_or(|x| x != "yml") || name.starts_with("topology") {
                continue;
            }
            if name.starts_with("alertmanager") {
                am.push(p);
            } else if name != "rules.yml" {
                prom.push(p);
            }
        }
    }
    assert!(prom.len() >= 6 && !am.is_empty(), "{prom:?} {am:?}");
    check_examples(&prom, &am)
}

/// Runs `vigil up FILE` for one example topology until every component is ready and `check`
/// succeeds, then stops it with SIGTERM and checks no child is left.
async fn run_example<F, Fut>(file: &str, check: F) -> anyhow::Result<()>
where
    F: Fn(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let topology = examples().join(file);
    let text = std::fs::read_to_string(&topology)?;
    // The examples use fixed ports; say which one is taken instead of failing obscurely.
    for word in text.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']') {
        if let Some(addr) = word.strip_prefix("127.0.0.1:").or(word
            .strip_prefix("--web.listen-address=127.0.0.1:")
            .or(word.strip_prefix("-httpListenAddr=127.0.0.1:")))
            && let Ok(port) = addr.parse::<u16>()
        {
            anyhow::ensure!(
                std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "{file}: port {port} is taken on this machine"
            );
        }
    }
    let control = if text.contains("control: 127.0.0.1:5001") || !text.contains("control:") {
        "http://127.0.0.1:5001".to_string()
    } else {
        anyhow::bail!("{file}: the test expects the control API on 127.0.0.1:5001");
    };
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.arg("up")
        .arg(&topology)
        .arg(format!("--data-dir={}", data.display()));
    let mut up = Proc::spawn("vigil up", cmd, &dir.path().join("up.log"))?;
    let result = async {
        let status = poll_until(Duration::from_secs(60), || async {
            let st = testkit::get_json(&format!("{control}/status")).await.ok()?;
            let all = st.as_array()?;
            (!all.is_empty() && all.iter().all(|c| c["state"] == "ready")).then_some(st)
        })
        .await?;
        poll_until(Duration::from_secs(120), || check(data.clone())).await?;
        // `vigil up FILE --status` finds the running topology through the same file.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("up")
            .arg(&topology)
            .arg("--status")
            .output()?;
        let table = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(out.status.success() && table.contains("ready"), "{table}");
        anyhow::Ok(status)
    }
    .await;
    up.signal(15)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while up.running() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{file}: vigil up did not stop"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = result.map_err(|e| {
        let logs: String = std::fs::read_dir(data.join("logs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                let t = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = t.lines().rev().take(15).collect();
                format!(
                    "--- {}\n{}\n",
                    e.path().display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect();
        anyhow::anyhow!("{file}: {e}\nvigil up log:\n{}\n{logs}", up.log_text())
    })?;
    for pid in status
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["pid"].as_u64())
    {
        anyhow::ensure!(!pid_alive(pid), "{file}: child {pid} still running");
    }
    Ok(())
}

/// `count(q)` through `base`, if it answers with one sample.
async fn count_of(base: &str, q: &str) -> Option<f64> {
    scalar(base, &format!("count({q})")).await
}

/// Every example deployment runs as written with `vigil up examples/…/topology*.yml`: all
/// components become ready and the deployment does its job (the examples use fixed ports,
/// so they run one after the other).
#[tokio::test]
async fn example_topologies_run() -> anyhow::Result<()> {
    const Q: &str = "http://127.0.0.1:9090";
    // (1) basic HA: the node target appears once through `vigil query`, not once per replica.
    run_example("basic-ha/topology.yml", |_| async {
        let a = count_of("http://127.0.0.1:9091", "up{job=\"node\"} == 1").await?;
        let b = count_of("http://127.0.0.1:9092", "up{job=\"node\"} == 1").await?;
        let merged = count_of(Q, "up{job=\"node\"} == 1").await?;
        (a == 1.0 && b == 1.0 && merged == 1.0).then_some(())
    })
    .await?;

    // (2) HA + remote storage, vigil store: the store holds both replicas' copies.
    run_example("remote-storage/topology.yml", |_| async {
        let store = count_of("http://127.0.0.1:9093", "up{job=\"node\"}").await?;
        let merged = count_of(Q, "up{job=\"node\"}").await?;
        (store == 2.0 && merged == 1.0).then_some(())
    })
    .await?;
    if testkit::which("influxd").is_some() {
        run_example("remote-storage/topology-influxdb.yml", |_| async {
            // InfluxDB stores what the replicas write: its measurement `up` has both replicas.
            let j = testkit::get_json(&format!(
                "http://127.0.0.1:8086/query?db=prometheus&q={}",
                enc("SHOW TAG VALUES FROM \"up\" WITH KEY = \"replica\"")
            ))
            .await
            .ok()?;
            let values = j["results"][0]["series"][0]["values"].as_array()?.len();
            let merged = count_of(Q, "up{job=\"node\"}").await?;
            (values == 2 && merged == 1.0).then_some(())
        })
        .await?;
    } else {
        testkit::peer_missing("influxd")?;
    }
    if testkit::which("victoria-metrics").is_some() {
        run_example("remote-storage/topology-victoriametrics.yml", |_| async {
            let vm = count_of("http://127.0.0.1:8428", "up{job=\"node\"}").await?;
            let merged = count_of(Q, "up{job=\"node\"}").await?;
            (vm == 2.0 && merged == 1.0).then_some(())
        })
        .await?;
    } else {
        testkit::peer_missing("victoria-metrics")?;
    }

    // (3) Alertmanager cluster: three gossiping nodes, and the always-firing Watchdog pages
    // once (it reaches `vigil up`'s webhook receiver on :5001).
    run_example("alertmanager-cluster/topology.yml", |data| async move {
        for port in [9094, 9095, 9096] {
            let st = testkit::get_json(&format!("http://127.0.0.1:{port}/api/v2/status"))
                .await
                .ok()?;
            if st["cluster"]["peers"].as_array()?.len() != 3 {
                return None;
            }
        }
        let log = std::fs::read_to_string(data.join("notifications.log")).ok()?;
        let watchdog = log
            .lines()
            .filter(|l| l.contains("\"alertname\":\"Watchdog\""))
            .count();
        (watchdog >= 1).then_some(())?;
        // Longer than the last node's wait (position 2 × 15s default peer timeout).
        tokio::time::sleep(Duration::from_secs(35)).await;
        let log = std::fs::read_to_string(data.join("notifications.log")).ok()?;
        let again = log
            .lines()
            .filter(|l| l.contains("\"alertname\":\"Watchdog\""))
            .count();
        assert_eq!(again, 1, "Watchdog paged more than once:\n{log}");
        Some(())
    })
    .await?;

    // (4) Sharding: each shard keeps part of the four targets, `vigil query` shows all four
    // once, and the global server federates both shards' aggregates.
    run_example("sharding/topology.yml", |_| async {
        let s0 = count_of("http://127.0.0.1:9091", "up{job=\"app\"}").await?;
        let s1 = count_of("http://127.0.0.1:9092", "up{job=\"app\"}").await?;
        let all = count_of(Q, "up{job=\"app\"}").await?;
        let global = count_of("http://127.0.0.1:9093", "job:up:sum").await?;
        (s0 > 0.0 && s1 > 0.0 && s0 + s1 == 4.0 && all == 4.0 && global == 2.0).then_some(())
    })
    .await
}
