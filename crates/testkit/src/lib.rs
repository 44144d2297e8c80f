//! Test helpers (dev-only): free loopback ports, processes that are killed when dropped,
//! Debian peer programs started on 127.0.0.1, and polling with a deadline instead of sleeps.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound then released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("BUG: cannot bind an ephemeral loopback port")
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout/stderr sent to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Proc> {
        let out = std::fs::File::create(log)?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| anyhow::anyhow!("start {name}: {e}"))?;
        Ok(Proc {
            child,
            name: name.to_string(),
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by number (e.g. 1 = HUP, 9 = KILL, 15 = TERM).
    pub fn signal(&self, sig: i32) -> anyhow::Result<()> {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()?;
        anyhow::ensure!(st.success(), "kill -{sig} {} failed", self.pid());
        Ok(())
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The log so far, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `url` answers with a 2xx status.
pub async fn wait_ready(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    poll_until(timeout, || {
        let c = client.clone();
        async move {
            match c.get(url).send().await {
                Ok(r) if r.status().is_success() => Some(()),
                _ => None,
            }
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{url} not ready: {e}"))
}

/// Path of a program, or `None` when it is not installed (tests then say they skipped).
pub fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

/// Debian's node exporter on a free loopback port.
pub async fn start_node_exporter(dir: &Path) -> anyhow::Result<(Proc, u16)> {
    let bin = which("prometheus-node-exporter")
        .ok_or_else(|| anyhow::anyhow!("prometheus-node-exporter is not installed"))?;
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let p = Proc::spawn("node-exporter", cmd, &dir.join("node-exporter.log"))?;
    wait_ready(
        &format!("http://127.0.0.1:{port}/metrics"),
        Duration::from_secs(20),
    )
    .await?;
    Ok((p, port))
}

/// GET a URL and parse JSON.
pub async fn get_json(url: &str) -> anyhow::Result<serde_json::Value> {
    let r = reqwest::get(url).await?;
    let status = r.status();
    let body = r.text().await?;
    serde_json::from_str(&body).map_err(|e| anyhow::anyhow!("{url} -> {status}: {e}: {body}"))
}

/// Fails unless the environment allows skipping tests whose Debian peer is missing.
/// CI sets `VIGIL_REQUIRE_PEERS=1` so a missing install step cannot hide behind a skip.
pub fn peer_missing(prog: &str) -> anyhow::Result<()> {
    if std::env::var("VIGIL_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        anyhow::bail!("{prog} is required (VIGIL_REQUIRE_PEERS=1) but not installed");
    }
    eprintln!("SKIPPED: {prog} not installed");
    Ok(())
}

/// How a [`FakeTarget`] answers each scrape.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// 200 with this text-format body.
    Body(String),
    /// Accepts, reads the request, then never answers.
    Hang,
    /// Accepts and closes the connection without answering.
    Close,
    /// Answers with this HTTP status and a short body.
    Status(u16),
}

/// A loopback HTTP target with scripted behaviour that counts the requests it answered.
pub struct FakeTarget {
    pub addr: std::net::SocketAddr,
    pub served: std::sync::Arc<std::sync::atomic::AtomicU64>,
    behaviour: std::sync::Arc<std::sync::Mutex<Behaviour>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeTarget {
    pub async fn start(b: Behaviour) -> anyhow::Result<FakeTarget> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let behaviour = std::sync::Arc::new(std::sync::Mutex::new(b));
        let (s2, b2) = (served.clone(), behaviour.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = l.accept().await {
                let (served, behaviour) = (s2.clone(), b2.clone());
                tokio::spawn(async move {
                    loop {
                        // Read one request head (scrapes are GETs without a body).
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 4096];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let b = behaviour
                            .lock()
                            .map(|g| g.clone())
                            .unwrap_or(Behaviour::Close);
                        let resp = match b {
                            Behaviour::Hang => {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                return;
                            }
                            Behaviour::Close => return,
                            Behaviour::Body(body) => format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            ),
                            Behaviour::Status(code) => {
                                format!("HTTP/1.1 {code} Oops\r\nContent-Length: 4\r\n\r\noops")
                            }
                        };
                        if sock.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                        served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        Ok(FakeTarget {
            addr,
            served,
            behaviour,
            task,
        })
    }

    /// Changes what the target answers from now on.
    pub fn set(&self, b: Behaviour) {
        if let Ok(mut g) = self.behaviour.lock() {
            *g = b;
        }
    }

    pub fn served(&self) -> u64 {
        self.served.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FakeTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}
