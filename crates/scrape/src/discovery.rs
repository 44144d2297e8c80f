//! Service discovery: target groups from `static_configs` and from `file_sd_configs` (JSON or
//! YAML files named by glob patterns, re-read when they change and every `refresh_interval`).
//!
//! A discovery run publishes the complete, current list of groups of one scrape config through
//! a `watch` channel; the scrape pool turns groups into targets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use model::Labels;
use model::labels::ADDRESS_LABEL;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{FileSdConfig, ScrapeConfig, StaticConfig, is_valid_label_name};
use crate::metrics::Metrics;

/// The label file discovery puts on every group: the file the group came from.
pub const META_FILEPATH_LABEL: &str = "__meta_filepath";

/// A set of targets sharing labels, from one source.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetGroup {
    /// Unique within its discovery: the index for static configs, `path:index` for files.
    pub source: String,
    /// One label set per target, each holding at least `__address__`.
    pub targets: Vec<Labels>,
    /// Labels shared by all targets (a target's own labels win).
    pub labels: Labels,
}

/// Why a file could not be turned into target groups.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("read file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse file {path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("file {path}: {msg}")]
    Invalid { path: PathBuf, msg: String },
}

/// The groups of `static_configs`, sourced by their index like Prometheus.
pub fn static_groups(cfgs: &[StaticConfig]) -> Vec<TargetGroup> {
    cfgs.iter()
        .enumerate()
        .map(|(i, sc)| TargetGroup {
            source: i.to_string(),
            targets: sc
                .targets
                .iter()
                .map(|t| Labels::from_pairs([(ADDRESS_LABEL, t.as_str())]))
                .collect(),
            labels: Labels::from_pairs(sc.labels.iter()),
        })
        .collect()
}

#[derive(Deserialize)]
struct RawGroup {
    #[serde(default)]
    targets: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Reads one file SD file: a list of `{targets: [...], labels: {...}}`, as JSON for `.json`
/// and YAML otherwise. Each group gets `__meta_filepath` and the source `path:index`.
pub fn read_file_groups(path: &Path) -> Result<Vec<TargetGroup>, DiscoveryError> {
    let bytes = std::fs::read(path).map_err(|source| DiscoveryError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parse_err = |msg: String| DiscoveryError::Parse {
        path: path.to_path_buf(),
        msg,
    };
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let raw: Vec<RawGroup> = if is_json {
        serde_json::from_slice(&bytes).map_err(|e| parse_err(e.to_string()))?
    } else {
        let text = std::str::from_utf8(&bytes).map_err(|e| parse_err(e.to_string()))?;
        if text.trim().is_empty() {
            Vec::new()
        } else {
            serde_saphyr::from_str::<Option<Vec<RawGroup>>>(text)
                .map_err(|e| parse_err(e.to_string()))?
                .unwrap_or_default()
        }
    };
    let path_str = path.to_string_lossy();
    let mut out = Vec::with_capacity(raw.len());
    for (i, g) in raw.into_iter().enumerate() {
        let mut labels = g.labels.unwrap_or_default();
        if let Some(bad) = labels.keys().find(|k| !is_valid_label_name(k)) {
            return Err(DiscoveryError::Invalid {
                path: path.to_path_buf(),
                msg: format!("{bad:?} is not a valid label name"),
            });
        }
        labels.insert(META_FILEPATH_LABEL.to_string(), path_str.to_string());
        out.push(TargetGroup {
            source: format!("{path_str}:{i}"),
            targets: g
                .targets
                .unwrap_or_default()
                .iter()
                .map(|t| Labels::from_pairs([(ADDRESS_LABEL, t.as_str())]))
                .collect(),
            labels: Labels::from_pairs(labels.iter()),
        });
    }
    Ok(out)
}

/// What a file looked like when it was last read: modification time and size.
type Stamp = (Option<SystemTime>, u64);

struct WatchedFile {
    stamp: Stamp,
    groups: Vec<TargetGroup>,
}

/// One `file_sd_config`: the files its patterns matched and their last good groups.
struct FileSd {
    cfg: FileSdConfig,
    files: BTreeMap<PathBuf, WatchedFile>,
    next_refresh: Instant,
}

impl FileSd {
    fn new(cfg: FileSdConfig) -> Self {
        FileSd {
            cfg,
            files: BTreeMap::new(),
            next_refresh: Instant::now(),
        }
    }

    /// Re-reads files that are new, changed, or all of them when the refresh interval is due.
    /// A file that cannot be read or parsed keeps its last good groups (compat: Prometheus does
    /// the same, so a half-written file does not drop targets). Returns whether any group changed.
    fn poll(&mut self, metrics: &Metrics) -> bool {
        let now = Instant::now();
        let refresh = now >= self.next_refresh;
        if refresh {
            self.next_refresh = now + self.cfg.refresh_interval.max(Duration::from_millis(1));
        }
        let mut present = BTreeMap::new();
        for pattern in &self.cfg.files {
            match glob::glob(pattern) {
                Ok(paths) => {
                    for p in paths.flatten() {
                        present.insert(p, ());
                    }
                }
                Err(e) => tracing::error!(pattern, "file discovery: invalid glob pattern: {e}"),
            }
        }
        let mut changed = false;
        let before = self.files.len();
        self.files.retain(|p, _| present.contains_key(p));
        changed |= self.files.len() != before;
        for path in present.into_keys() {
            let stamp = match std::fs::metadata(&path) {
                Ok(m) => (m.modified().ok(), m.len()),
                Err(_) => (None, 0),
            };
            let known = self.files.get(&path);
            if !refresh && known.is_some_and(|f| f.stamp == stamp) {
                continue;
            }
            match read_file_groups(&path) {
                Ok(groups) => {
                    let differs = known.is_none_or(|f| f.groups != groups);
                    changed |= differs;
                    self.files.insert(path, WatchedFile { stamp, groups });
                }
                Err(e) => {
                    metrics.file_sd_read_errors.inc();
                    tracing::error!("file discovery: {e}");
                    if let Some(f) = self.files.get_mut(&path) {
                        // Keep the groups; look again when the file changes once more.
                        f.stamp = stamp;
                    } else {
                        self.files.insert(
                            path,
                            WatchedFile {
                                stamp,
                                groups: Vec::new(),
                            },
                        );
                    }
                }
            }
        }
        changed
    }

    fn groups(&self) -> impl Iterator<Item = &TargetGroup> {
        self.files.values().flat_map(|f| f.groups.iter())
    }
}

/// All discovery of one scrape config.
pub(crate) struct Discovery {
    statics: Vec<TargetGroup>,
    files: Vec<FileSd>,
}

impl Discovery {
    pub(crate) fn new(cfg: &ScrapeConfig) -> Self {
        Discovery {
            statics: static_groups(&cfg.static_configs),
            files: cfg
                .file_sd_configs
                .iter()
                .cloned()
                .map(FileSd::new)
                .collect(),
        }
    }

    fn groups(&self) -> Vec<TargetGroup> {
        self.statics
            .iter()
            .chain(self.files.iter().flat_map(FileSd::groups))
            .cloned()
            .collect()
    }

    fn poll(&mut self, metrics: &Metrics) -> bool {
        let mut changed = false;
        for f in &mut self.files {
            changed |= f.poll(metrics);
        }
        changed
    }

    /// Publishes the groups now and whenever they change, polling files every `poll` until
    /// `stop` fires. File I/O runs on the blocking pool.
    pub(crate) async fn run(
        mut self,
        poll: Duration,
        tx: watch::Sender<Arc<Vec<TargetGroup>>>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) {
        let mut first = true;
        loop {
            if !self.files.is_empty() || first {
                let m = metrics.clone();
                let (back, changed) = match tokio::task::spawn_blocking(move || {
                    let changed = self.poll(&m);
                    (self, changed)
                })
                .await
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("file discovery task failed: {e}");
                        return;
                    }
                };
                self = back;
                if changed || first {
                    // A closed channel means the pool is gone; nothing left to do.
                    if tx.send(Arc::new(self.groups())).is_err() {
                        return;
                    }
                }
                first = false;
            }
            if self.files.is_empty() {
                stop.cancelled().await;
                return;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vigil-sd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn static_groups_are_indexed() {
        let sc = StaticConfig {
            targets: vec!["a:1".into(), "b:2".into()],
            labels: [("env".to_string(), "p".to_string())].into(),
        };
        let g = static_groups(&[sc]);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].source, "0");
        assert_eq!(g[0].targets[1].get(ADDRESS_LABEL), Some("b:2"));
        assert_eq!(g[0].labels.get("env"), Some("p"));
    }

    #[test]
    fn reads_json_and_yaml() {
        let d = tempdir("read");
        let j = d.join("a.json");
        std::fs::write(
            &j,
            r#"[{"targets": ["x:1", "y:2"], "labels": {"env": "prod"}}, {"targets": ["z:3"]}]"#,
        )
        .unwrap();
        let g = read_file_groups(&j).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].source, format!("{}:0", j.display()));
        assert_eq!(
            g[0].labels.get(META_FILEPATH_LABEL),
            Some(j.to_str().unwrap())
        );
        assert_eq!(g[1].targets[0].get(ADDRESS_LABEL), Some("z:3"));

        let y = d.join("b.yml");
        std::fs::write(&y, "- targets: ['q:9']\n  labels:\n    team: a\n").unwrap();
        let g = read_file_groups(&y).unwrap();
        assert_eq!(g[0].labels.get("team"), Some("a"));
        std::fs::write(&y, "").unwrap();
        assert!(read_file_groups(&y).unwrap().is_empty());

        std::fs::write(&j, "[{").unwrap();
        assert!(matches!(
            read_file_groups(&j),
            Err(DiscoveryError::Parse { .. })
        ));
        std::fs::write(&j, r#"[{"targets": ["a"], "labels": {"0bad": "x"}}]"#).unwrap();
        let e = read_file_groups(&j).unwrap_err().to_string();
        assert!(e.contains("\"0bad\" is not a valid label name"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn bad_file_keeps_last_good_groups_and_removed_file_drops_them() {
        let d = tempdir("poll");
        let f = d.join("t.json");
        std::fs::write(&f, r#"[{"targets": ["x:1"]}]"#).unwrap();
        let cfg = FileSdConfig {
            files: vec![d.join("*.json").to_string_lossy().into()],
            refresh_interval: Duration::from_secs(3600),
        };
        let m = Metrics::default();
        let mut sd = FileSd::new(cfg);
        assert!(sd.poll(&m));
        assert_eq!(sd.groups().count(), 1);
        assert!(!sd.poll(&m), "unchanged file is not re-read");
        std::fs::write(&f, "garbage that is longer").unwrap();
        assert!(!sd.poll(&m));
        assert_eq!(sd.groups().count(), 1);
        assert_eq!(m.file_sd_read_errors.get(), 1);
        std::fs::write(&f, r#"[{"targets": ["x:1", "y:2"]}, {"targets": []}]"#).unwrap();
        assert!(sd.poll(&m));
        assert_eq!(sd.groups().map(|g| g.targets.len()).sum::<usize>(), 2);
        std::fs::remove_file(&f).unwrap();
        assert!(sd.poll(&m));
        assert_eq!(sd.groups().count(), 0);
        let _ = std::fs::remove_dir_all(&d);
    }
}
