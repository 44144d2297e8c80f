//! Starting `vigil server` as a child process for tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testkit::{Proc, free_port, wait_ready};

pub struct Vigil {
    pub proc: Proc,
    pub port: u16,
    pub config: PathBuf,
}

impl Vigil {
    /// Starts a server on a free port with `config` (YAML text) in `dir`.
    pub async fn start(dir: &Path, config: &str, extra: &[&str]) -> anyhow::Result<Vigil> {
        let cfg = dir.join("prometheus.yml");
        std::fs::write(&cfg, config)?;
        Self::start_with(dir, &cfg, free_port(), extra).await
    }

    /// Starts a server with an existing config file and data dir `dir/data` on `port`.
    pub async fn start_with(
        dir: &Path,
        cfg: &Path,
        port: u16,
        extra: &[&str],
    ) -> anyhow::Result<Vigil> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
        cmd.arg("server")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-lifecycle")
            .arg("--scrape.discovery-poll-interval=200ms")
            .args(extra);
        let n = std::fs::read_dir(dir)?.count();
        let proc = Proc::spawn("vigil", cmd, &dir.join(format!("vigil-{n}.log")))?;
        let v = Vigil {
            proc,
            port,
            config: cfg.to_path_buf(),
        };
        if let Err(e) = wait_ready(&v.url("/-/ready"), Duration::from_secs(30)).await {
            anyhow::bail!("{e}\nlog:\n{}", v.proc.log_text());
        }
        Ok(v)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub async fn json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        testkit::get_json(&self.url(path)).await
    }

    /// Active targets of `/api/v1/targets`.
    pub async fn active_targets(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let v = self.json("/api/v1/targets").await?;
        Ok(v["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// Graceful stop (SIGTERM) and wait.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.proc.signal(15)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.proc.running() {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "vigil did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

/// Percent-encodes everything but ASCII letters and digits: a query parameter value.
pub fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Wall-clock time in Unix milliseconds.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Starts Debian's `prometheus` on a free port with `config` (YAML text) written to
/// `dir/prometheus.yml` and its data in `dir/data`; returns it and its base URL once ready.
pub async fn start_prometheus(dir: &Path, config: &str) -> anyhow::Result<(Proc, String)> {
    start_prometheus_with(dir, config, &[]).await
}

/// [`start_prometheus`] with more command-line flags (`--web.enable-admin-api`, …).
pub async fn start_prometheus_with(
    dir: &Path,
    config: &str,
    args: &[&str],
) -> anyhow::Result<(Proc, String)> {
    std::fs::create_dir_all(dir)?;
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, config)?;
    let port = free_port();
    let mut cmd = Command::new("prometheus");
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(args);
    let p = Proc::spawn("prometheus", cmd, &dir.join("prometheus.log"))?;
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&format!("{url}/-/ready"), Duration::from_secs(30)).await?;
    Ok((p, url))
}

/// One sample line of `promtool tsdb dump`: `{labels} value timestamp`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dumped {
    pub labels: String,
    pub value: f64,
    pub t: i64,
}

/// Runs `promtool tsdb dump` over a data dir (it replays the WAL read-only) and parses it.
pub fn promtool_dump(data: &Path) -> anyhow::Result<Vec<Dumped>> {
    let out = Command::new("promtool")
        .args([
            "tsdb",
            "dump",
            "--min-time=-9223372036854775808",
            "--max-time=9223372036854775807",
        ])
        .arg(data)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "promtool tsdb dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let mut res = Vec::new();
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let close = line
            .rfind('}')
            .ok_or_else(|| anyhow::anyhow!("bad dump line {line}"))?;
        let mut rest = line[close + 1..].split_whitespace();
        let value: f64 = rest.next().unwrap_or("").parse()?;
        let t: i64 = rest.next().unwrap_or("").parse()?;
        res.push(Dumped {
            labels: line[..=close].to_string(),
            value,
            t,
        });
    }
    Ok(res)
}
