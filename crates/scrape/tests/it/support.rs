//! Test fixtures: a scriptable HTTP target, an in-memory storage and polling helpers.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use model::{Labels, Timestamp};
use parking_lot::Mutex;
use storage::{Appendable, Appender, SeriesRef, StorageError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the target answers the next requests.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with this body and content type; gzip-encoded when asked.
    Body {
        body: String,
        content_type: &'static str,
        gzip: bool,
    },
    /// This status with an empty body.
    Status(u16),
    /// Never answers.
    Hang,
    /// Closes the connection without answering.
    Close,
}

impl Reply {
    pub fn text(body: &str) -> Reply {
        Reply::Body {
            body: body.to_string(),
            content_type: "text/plain; version=0.0.4",
            gzip: false,
        }
    }
}

/// A scrape target on 127.0.0.1 whose answers the test changes at will.
pub struct TestTarget {
    pub addr: SocketAddr,
    reply: Arc<Mutex<Reply>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestTarget {
    pub async fn start(reply: Reply) -> TestTarget {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test target");
        let addr = listener.local_addr().expect("local addr");
        let reply = Arc::new(Mutex::new(reply));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (r, q) = (reply.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (r, q) = (r.clone(), q.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    q.lock().push(String::from_utf8_lossy(&buf).into_owned());
                    let reply = r.lock().clone();
                    let resp = match reply {
                        Reply::Hang => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        Reply::Close => return,
                        Reply::Status(code) => format!(
                            "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        )
                        .into_bytes(),
                        Reply::Body {
                            body,
                            content_type,
                            gzip,
                        } => {
                            let wants_gzip = String::from_utf8_lossy(&buf)
                                .to_ascii_lowercase()
                                .contains("accept-encoding: gzip");
                            let (payload, enc) = if gzip && wants_gzip {
                                let mut e = flate2::write::GzEncoder::new(
                                    Vec::new(),
                                    flate2::Compression::default(),
                                );
                                e.write_all(body.as_bytes()).expect("gzip");
                                (e.finish().expect("gzip"), "Content-Encoding: gzip\r\n")
                            } else {
                                (body.into_bytes(), "")
                            };
                            let mut head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{enc}Content-Length: {}\r\nConnection: close\r\n\r\n",
                                payload.len()
                            )
                            .into_bytes();
                            head.extend_from_slice(&payload);
                            head
                        }
                    };
                    let _ = sock.write_all(&resp).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        TestTarget {
            addr,
            reply,
            requests,
        }
    }

    pub fn set(&self, reply: Reply) {
        *self.reply.lock() = reply;
    }

    /// Raw request heads received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().clone()
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }
}

/// One committed sample.
#[derive(Clone, Debug)]
pub struct Rec {
    pub labels: Labels,
    pub t: Timestamp,
    pub v: f64,
}

#[derive(Default)]
struct MemInner {
    committed: Mutex<Vec<Rec>>,
    latest: Mutex<HashMap<Labels, (Timestamp, u64)>>,
    refs: Mutex<HashMap<Labels, SeriesRef>>,
    commits: AtomicUsize,
    rollbacks: AtomicUsize,
}

/// An in-memory storage with Prometheus's per-series ordering rules.
#[derive(Clone, Default)]
pub struct MemStorage {
    inner: Arc<MemInner>,
}

impl MemStorage {
    pub fn samples(&self) -> Vec<Rec> {
        self.inner.committed.lock().clone()
    }

    /// Samples of metric `name` whose labels include every pair of `with`.
    pub fn series(&self, name: &str, with: &[(&str, &str)]) -> Vec<Rec> {
        self.samples()
            .into_iter()
            .filter(|r| {
                r.labels.metric_name() == Some(name)
                    && with.iter().all(|(k, v)| r.labels.get(k) == Some(v))
            })
            .collect()
    }

    pub fn last(&self, name: &str, with: &[(&str, &str)]) -> Option<Rec> {
        self.series(name, with).pop()
    }

    pub fn rollbacks(&self) -> usize {
        self.inner.rollbacks.load(Ordering::SeqCst)
    }
}

impl Appendable for MemStorage {
    fn appender(&self) -> Box<dyn Appender> {
        Box::new(MemAppender {
            inner: self.inner.clone(),
            pending: Vec::new(),
        })
    }
}

struct MemAppender {
    inner: Arc<MemInner>,
    pending: Vec<Rec>,
}

impl Appender for MemAppender {
    fn append(
        &mut self,
        _r: SeriesRef,
        labels: &Labels,
        t: Timestamp,
        v: f64,
    ) -> storage::Result<SeriesRef> {
        let prev = self
            .pending
            .iter()
            .rev()
            .find(|p| &p.labels == labels)
            .map(|p| (p.t, p.v.to_bits()))
            .or_else(|| self.inner.latest.lock().get(labels).copied());
        if let Some((pt, pv)) = prev {
            if t < pt {
                return Err(StorageError::OutOfOrder);
            }
            if t == pt && pv != v.to_bits() {
                return Err(StorageError::DuplicateSample);
            }
        }
        self.pending.push(Rec {
            labels: labels.clone(),
            t,
            v,
        });
        let mut refs = self.inner.refs.lock();
        let n = refs.len() as u64 + 1;
        Ok(*refs.entry(labels.clone()).or_insert(n))
    }

    fn commit(self: Box<Self>) -> storage::Result<()> {
        let mut latest = self.inner.latest.lock();
        for r in &self.pending {
            latest.insert(r.labels.clone(), (r.t, r.v.to_bits()));
        }
        self.inner.committed.lock().extend(self.pending);
        self.inner.commits.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn rollback(self: Box<Self>) {
        self.inner.rollbacks.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `f` every 20ms until it returns `Some`, panicking with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Synchronous variant for conditions that need no awaiting.
pub async fn until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    wait_for(what, timeout, || std::future::ready(f())).await
}
