//! The set of endpoints (`--endpoint`, `--endpoint.file`), their clients and their health.
//!
//! An endpoint is marked down when its `/-/ready` check or a request to it fails, and up again
//! when a later check succeeds; queries skip endpoints that are down (with a warning). Endpoint
//! files are re-read when their modification time changes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use remote::{ReadClient, ReadClientConfig};
use serde::Deserialize;

/// Why the endpoint configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("read endpoint file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse endpoint file {path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("invalid endpoint {url:?}: {msg}")]
    Invalid { url: String, msg: String },
}

/// One group of an endpoint file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    targets: Vec<String>,
}

/// Reads the endpoint URLs of one file: a YAML list of `{targets: [...]}` groups.
pub fn read_endpoint_file(path: &Path) -> Result<Vec<String>, EndpointError> {
    let text = std::fs::read_to_string(path).map_err(|source| EndpointError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if text.trim().is_empty() {
        return Ok(vec![]);
    }
    let groups: Vec<Group> = serde_saphyr::from_str(&text).map_err(|e| EndpointError::Parse {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    Ok(groups.into_iter().flat_map(|g| g.targets).collect())
}

/// Normalises an endpoint: `host:port` gets `http://`, a trailing `/` is dropped.
pub fn normalize_url(url: &str) -> Result<String, EndpointError> {
    let url = url.trim().trim_end_matches('/');
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let parsed = reqwest::Url::parse(&full).map_err(|e| EndpointError::Invalid {
        url: url.to_string(),
        msg: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(EndpointError::Invalid {
            url: url.to_string(),
            msg: "want http(s)://host[:port][/path]".into(),
        });
    }
    Ok(full)
}

/// One backend.
pub struct Endpoint {
    /// Base URL without trailing slash.
    pub url: String,
    pub read: ReadClient,
    up: AtomicBool,
    last_error: Mutex<String>,
    /// Unix ms of the last health check.
    last_check: AtomicU64,
    /// Unix ms until which the endpoint is not asked for push-down (it lacks the API).
    no_pushdown_until: AtomicI64,
}

impl Endpoint {
    fn new(url: String, timeout: Duration) -> Result<Self, EndpointError> {
        let mut cfg = ReadClientConfig::new(format!("{url}/api/v1/read"));
        cfg.timeout = timeout;
        let read = ReadClient::new(&cfg).map_err(|e| EndpointError::Invalid {
            url: url.clone(),
            msg: e.to_string(),
        })?;
        Ok(Endpoint {
            url,
            read,
            up: AtomicBool::new(true),
            last_error: Mutex::new(String::new()),
            last_check: AtomicU64::new(0),
            no_pushdown_until: AtomicI64::new(0),
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> String {
        self.last_error.lock().clone()
    }

    pub fn last_check_ms(&self) -> u64 {
        self.last_check.load(Ordering::Relaxed)
    }

    /// Unix ms until which push-down skips this endpoint.
    pub fn no_pushdown_until(&self) -> i64 {
        self.no_pushdown_until.load(Ordering::Relaxed)
    }

    pub fn set_no_pushdown_until(&self, ms: i64) {
        self.no_pushdown_until.store(ms, Ordering::Relaxed);
    }

    /// Marks the endpoint down after a failed request; the health check brings it back.
    pub fn mark_down(&self, err: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(endpoint = %self.url, err, "endpoint marked down");
        }
        *self.last_error.lock() = err.to_string();
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!(endpoint = %self.url, "endpoint is up again");
        }
        self.last_error.lock().clear();
    }
}

/// The current endpoints, swapped as a whole when files change.
pub struct Endpoints {
    static_urls: Vec<String>,
    files: Vec<PathBuf>,
    timeout: Duration,
    current: ArcSwap<Vec<Arc<Endpoint>>>,
    file_mtimes: Mutex<Vec<Option<SystemTime>>>,
    http: reqwest::Client,
}

impl Endpoints {
    /// Builds the set from flags, reading the endpoint files once.
    pub fn new(
        urls: &[String],
        files: &[PathBuf],
        timeout: Duration,
    ) -> Result<Self, EndpointError> {
        let static_urls = urls
            .iter()
            .map(|u| normalize_url(u))
            .collect::<Result<Vec<_>, _>>()?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| EndpointError::Invalid {
                url: String::new(),
                msg: format!("build HTTP client: {e}"),
            })?;
        let e = Endpoints {
            static_urls,
            files: files.to_vec(),
            timeout,
            current: ArcSwap::from_pointee(vec![]),
            file_mtimes: Mutex::new(vec![None; files.len()]),
            http,
        };
        e.refresh(true)?;
        Ok(e)
    }

    /// The endpoints now.
    pub fn list(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.current.load_full()
    }

    /// The HTTP client for API fan-out (bounded by the endpoint timeout).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Re-reads endpoint files when they changed (always when `force`); keeps the clients and
    /// health of endpoints that stay.
    pub fn refresh(&self, force: bool) -> Result<(), EndpointError> {
        let mut changed = force;
        {
            let mut mt = self.file_mtimes.lock();
            for (i, f) in self.files.iter().enumerate() {
                let m = std::fs::metadata(f).and_then(|m| m.modified()).ok();
                if mt[i] != m {
                    mt[i] = m;
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(());
        }
        let mut urls = self.static_urls.clone();
        for f in &self.files {
            for u in read_endpoint_file(f)? {
                urls.push(normalize_url(&u)?);
            }
        }
        urls.sort();
        urls.dedup();
        let old = self.current.load_full();
        let mut next = Vec::with_capacity(urls.len());
        for u in urls {
            match old.iter().find(|e| e.url == u) {
                Some(e) => next.push(e.clone()),
                None => next.push(Arc::new(Endpoint::new(u, self.timeout)?)),
            }
        }
        if next.len() != old.len() || next.iter().zip(old.iter()).any(|(a, b)| a.url != b.url) {
            tracing::info!(endpoints = next.len(), "endpoint set changed");
        }
        self.current.store(Arc::new(next));
        Ok(())
    }

    /// Checks every endpoint's `/-/ready` once, concurrently.
    pub async fn check_health(&self, timeout: Duration) {
        let list = self.list();
        let checks = list.iter().map(|e| {
            let http = self.http.clone();
            async move {
                let r = http
                    .get(format!("{}/-/ready", e.url))
                    .timeout(timeout)
                    .send()
                    .await;
                let now = jiff::Timestamp::now().as_millisecond().max(0) as u64;
                e.last_check.store(now, Ordering::Relaxed);
                match r {
                    Ok(r) if r.status().is_success() => e.mark_up(),
                    Ok(r) => e.mark_down(&format!("/-/ready answered {}", r.status())),
                    Err(err) => e.mark_down(&format!("/-/ready: {}", remote::error_chain(&err))),
                }
            }
        });
        futures_util::future::join_all(checks).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(normalize_url("a:9090").unwrap(), "http://a:9090");
        assert_eq!(normalize_url("https://a/x/").unwrap(), "https://a/x");
        assert!(normalize_url("ftp://a").is_err());
        assert!(normalize_url("").is_err());
        assert!(normalize_url("http://a b").is_err());
    }

    #[test]
    fn endpoint_file_reread_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("e.yml");
        std::fs::write(&f, "- targets: ['127.0.0.1:1', 'http://127.0.0.1:2/']\n").unwrap();
        let e = Endpoints::new(
            &["127.0.0.1:3".into()],
            std::slice::from_ref(&f),
            Duration::from_secs(1),
        )
        .unwrap();
        let urls = |e: &Endpoints| e.list().iter().map(|x| x.url.clone()).collect::<Vec<_>>();
        assert_eq!(
            urls(&e),
            [
                "http://127.0.0.1:1",
                "http://127.0.0.1:2",
                "http://127.0.0.1:3"
            ]
        );
        let kept = e.list()[2].clone();
        kept.mark_down("x");
        std::fs::write(&f, "- targets: ['127.0.0.1:2']\n").unwrap();
        e.refresh(true).unwrap();
        assert_eq!(urls(&e), ["http://127.0.0.1:2", "http://127.0.0.1:3"]);
        assert!(!e.list()[1].is_up(), "health survives a refresh");
        std::fs::write(&f, "- targetz: []\n").unwrap();
        assert!(e.refresh(true).is_err());
        assert_eq!(e.list().len(), 2, "a bad file keeps the old set");
    }
}
