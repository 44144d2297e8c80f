//! Targets: turning a discovered label set into the labels and URL of a scrape target, as
//! Prometheus 2.42's `PopulateLabels` does, and the target snapshots `/api/v1/targets` shows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use model::duration::{format_duration, parse_duration};
use model::labels::{
    ADDRESS_LABEL, INSTANCE_LABEL, JOB_LABEL, META_PREFIX, METRICS_PATH_LABEL, PARAM_PREFIX,
    RESERVED_PREFIX, SCHEME_LABEL, SCRAPE_INTERVAL_LABEL, SCRAPE_TIMEOUT_LABEL,
};
use model::{Labels, LabelsBuilder};
use parking_lot::Mutex;
use serde::Serialize;

use crate::config::{ScrapeConfig, check_target_address};

/// A target ready to be scraped.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Labels after relabelling, `__meta_*` removed; still holds `__address__`, `__scheme__`,
    /// `__metrics_path__`, `__param_*` and the interval/timeout labels.
    pub labels: Labels,
    /// The labels before relabelling.
    pub discovered: Labels,
    /// The labels attached to every scraped series: `labels` without the `__` ones.
    pub public: Labels,
    /// `scheme://address/path?query`, as Go's `url.URL.String` writes it.
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Identity within a pool: a hash of the labels and the URL.
    pub hash: u64,
}

/// The outcome of label population for one discovered target.
#[derive(Debug, Clone, PartialEq)]
pub enum Populated {
    Active(Target),
    /// Relabelling dropped the target; these are its discovered labels.
    Dropped(Labels),
}

/// Builds a target from one discovered target of a group: the target's own labels, then the
/// group's labels where the target has none, then the job's defaults, relabelling, the default
/// port and `instance`. Errors name what was wrong, like Prometheus's.
pub fn populate(target: &Labels, group: &Labels, cfg: &ScrapeConfig) -> Result<Populated, String> {
    let mut lb = target.builder();
    for l in group.iter() {
        if !target.contains(l.name) {
            lb.set(l.name, l.value);
        }
    }
    let interval = format_duration(cfg.interval());
    let timeout = format_duration(cfg.timeout());
    for (name, value) in [
        (JOB_LABEL, cfg.job_name.as_str()),
        (SCRAPE_INTERVAL_LABEL, interval.as_str()),
        (SCRAPE_TIMEOUT_LABEL, timeout.as_str()),
        (METRICS_PATH_LABEL, cfg.metrics_path.as_str()),
        (SCHEME_LABEL, cfg.scheme.as_str()),
    ] {
        if lb.get(name).is_none_or(str::is_empty) {
            lb.set(name, value);
        }
    }
    for (k, v) in &cfg.params {
        let name = format!("{PARAM_PREFIX}{k}");
        if let Some(first) = v.first()
            && lb.get(&name).is_none_or(str::is_empty)
        {
            lb.set(name, first.as_str());
        }
    }
    let discovered = lb.labels();
    if !model::relabel::process_builder(&mut lb, &cfg.relabel_configs) {
        return Ok(Populated::Dropped(discovered));
    }
    finish(lb, discovered, cfg)
}

fn finish(
    mut lb: LabelsBuilder,
    discovered: Labels,
    cfg: &ScrapeConfig,
) -> Result<Populated, String> {
    let mut addr = match lb.get(ADDRESS_LABEL) {
        Some(a) if !a.is_empty() => a.to_string(),
        _ => return Err("no address".to_string()),
    };
    // compat: Prometheus 2.x appends the scheme's default port to an address without one (3.0
    // stopped doing so), which also shows in `instance`.
    if split_host_port(&addr).is_none() && split_host_port(&format!("{addr}:1234")).is_some() {
        match lb.get(SCHEME_LABEL).unwrap_or("") {
            "http" | "" => addr.push_str(":80"),
            "https" => addr.push_str(":443"),
            _ => return Err(format!("invalid scheme: {:?}", cfg.scheme)),
        }
        lb.set(ADDRESS_LABEL, addr.as_str());
    }
    check_target_address(&addr).map_err(|e| e.to_string())?;

    let interval = parse_label_duration(&lb, SCRAPE_INTERVAL_LABEL, "interval")?;
    let timeout = parse_label_duration(&lb, SCRAPE_TIMEOUT_LABEL, "timeout")?;
    if timeout > interval {
        return Err(format!(
            "scrape timeout cannot be greater than scrape interval ({:?} > {:?})",
            lb.get(SCRAPE_TIMEOUT_LABEL).unwrap_or(""),
            lb.get(SCRAPE_INTERVAL_LABEL).unwrap_or("")
        ));
    }
    lb.retain(|n, _| !n.starts_with(META_PREFIX));
    if lb.get(INSTANCE_LABEL).is_none_or(str::is_empty) {
        lb.set(INSTANCE_LABEL, addr.as_str());
    }
    let labels = lb.labels();
    let public = Labels::from_sorted(
        labels
            .iter()
            .filter(|l| !l.name.starts_with(RESERVED_PREFIX))
            .map(|l| (l.name, l.value)),
    );
    let url = target_url(&labels, &cfg.params);
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    h.update(&labels.stable_hash().to_le_bytes());
    h.update(url.as_bytes());
    Ok(Populated::Active(Target {
        labels,
        discovered,
        public,
        url,
        interval,
        timeout,
        hash: h.digest(),
    }))
}

fn parse_label_duration(lb: &LabelsBuilder, name: &str, what: &str) -> Result<Duration, String> {
    let v = lb.get(name).unwrap_or("");
    let d = parse_duration(v).map_err(|e| format!("error parsing scrape {what}: {e}"))?;
    if d.is_zero() {
        return Err(format!("scrape {what} cannot be 0"));
    }
    Ok(d)
}

/// Go's `net.SplitHostPort`: `host:port` or `[host]:port`, where a bare host may not contain
/// a colon. The port may be empty.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let (host, after) = (&rest[..end], &rest[end + 1..]);
        let port = after.strip_prefix(':')?;
        if port.contains([':', '[', ']']) {
            return None;
        }
        return Some((host, port));
    }
    let i = s.rfind(':')?;
    let (host, port) = (&s[..i], &s[i + 1..]);
    if host.contains([':', '[', ']']) || port.contains(['[', ']']) {
        return None;
    }
    Some((host, port))
}

/// `scheme://address/path?query`, where the query holds the config's params with `__param_*`
/// labels replacing the first value of theirs. Escaping follows Go's `net/url`.
pub fn target_url(labels: &Labels, params: &BTreeMap<String, Vec<String>>) -> String {
    let mut params = params.clone();
    for l in labels.iter() {
        if let Some(k) = l.name.strip_prefix(PARAM_PREFIX) {
            let v = params.entry(k.to_string()).or_default();
            match v.first_mut() {
                Some(first) => *first = l.value.to_string(),
                None => v.push(l.value.to_string()),
            }
        }
    }
    let mut url = String::new();
    url.push_str(labels.get_or_empty(SCHEME_LABEL));
    url.push_str("://");
    url.push_str(labels.get_or_empty(ADDRESS_LABEL));
    let path = labels.get_or_empty(METRICS_PATH_LABEL);
    if !path.is_empty() && !path.starts_with('/') {
        url.push('/');
    }
    escape_into(&mut url, path, false);
    let mut first = true;
    for (k, vs) in &params {
        for v in vs {
            url.push(if first { '?' } else { '&' });
            first = false;
            escape_into(&mut url, k, true);
            url.push('=');
            escape_into(&mut url, v, true);
        }
    }
    url
}

fn is_query_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn is_path_safe(b: u8) -> bool {
    is_query_safe(b)
        || matches!(
            b,
            b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'@'
        )
}

fn escape_into(out: &mut String, s: &str, query: bool) {
    for &b in s.as_bytes() {
        let safe = if query {
            is_query_safe(b)
        } else {
            is_path_safe(b)
        };
        if safe {
            out.push(b as char);
        } else if query && b == b' ' {
            out.push('+');
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Prometheus's scrape offset: a point in the interval fixed by the target's hash and a
/// per-server seed, pinned to wall-clock time so every server restart (and every replica with
/// the same seed) scrapes a target at the same phase. Returns the wait before the first scrape.
pub fn scrape_offset(hash: u64, seed: u64, interval: Duration, now: SystemTime) -> Duration {
    let iv = interval.as_nanos().max(1);
    let now_ns = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let base = iv - now_ns % iv;
    let offset = u128::from(hash ^ seed) % iv;
    let mut next = base + offset;
    if next > iv {
        next -= iv;
    }
    Duration::from_nanos(next as u64)
}

/// The health of a target as `/api/v1/targets` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TargetHealth {
    #[default]
    Unknown,
    Up,
    Down,
}

#[derive(Debug, Default)]
pub(crate) struct TargetStatus {
    pub health: TargetHealth,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_duration: Duration,
}

/// HELP, TYPE and UNIT of one metric family of one target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct MetricMetadata {
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// A running target shared between its scrape loop and the API.
#[derive(Debug)]
pub(crate) struct TargetShared {
    pub target: Target,
    pub pool: String,
    /// Discovered labels; refreshed when discovery reports the same target with new meta labels.
    pub discovered: Mutex<Labels>,
    pub status: Mutex<TargetStatus>,
    pub metadata: Mutex<Arc<Vec<(String, MetricMetadata)>>>,
    /// Set when the pool is over its `target_limit`: scrapes fail with this error.
    pub forced_error: Mutex<Option<String>>,
}

impl TargetShared {
    pub(crate) fn new(target: Target, pool: &str) -> Self {
        TargetShared {
            discovered: Mutex::new(target.discovered.clone()),
            target,
            pool: pool.to_string(),
            status: Mutex::new(TargetStatus::default()),
            metadata: Mutex::new(Arc::new(Vec::new())),
            forced_error: Mutex::new(None),
        }
    }

    pub(crate) fn snapshot(&self) -> ActiveTarget {
        let st = self.status.lock();
        let t = &self.target;
        ActiveTarget {
            discovered_labels: self.discovered.lock().clone(),
            labels: t.public.clone(),
            scrape_pool: self.pool.clone(),
            scrape_url: t.url.clone(),
            global_url: t.url.clone(),
            last_error: st.last_error.clone(),
            last_scrape: format_time(st.last_scrape),
            last_scrape_duration: st.last_duration.as_secs_f64(),
            health: st.health,
            scrape_interval: t.labels.get_or_empty(SCRAPE_INTERVAL_LABEL).to_string(),
            scrape_timeout: t.labels.get_or_empty(SCRAPE_TIMEOUT_LABEL).to_string(),
            last_scrape_time: st.last_scrape,
        }
    }
}

/// RFC 3339 with the fraction Go prints; never scraped is Go's zero time.
fn format_time(t: Option<SystemTime>) -> String {
    match t.and_then(|t| jiff::Timestamp::try_from(t).ok()) {
        Some(ts) => ts.to_string(),
        None => "0001-01-01T00:00:00Z".to_string(),
    }
}

/// An active target as `/api/v1/targets` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveTarget {
    pub discovered_labels: Labels,
    pub labels: Labels,
    pub scrape_pool: String,
    pub scrape_url: String,
    pub global_url: String,
    pub last_error: String,
    /// RFC 3339; `0001-01-01T00:00:00Z` before the first scrape.
    pub last_scrape: String,
    /// Seconds.
    pub last_scrape_duration: f64,
    pub health: TargetHealth,
    pub scrape_interval: String,
    pub scrape_timeout: String,
    #[serde(skip)]
    pub last_scrape_time: Option<SystemTime>,
}

/// A target dropped by relabelling, as `/api/v1/targets` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DroppedTarget {
    pub discovered_labels: Labels,
    /// compat: Prometheus 2.42 does not show the pool of a dropped target; kept for filtering.
    #[serde(skip)]
    pub scrape_pool: String,
}

/// One entry of `/api/v1/targets/metadata`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetMetadata {
    /// The target's labels (without `__` labels).
    pub target: Labels,
    pub metric: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
    #[serde(skip)]
    pub scrape_pool: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::labels;

    fn cfg(y: &str) -> ScrapeConfig {
        let mut c: ScrapeConfig = serde_saphyr::from_str(y).unwrap();
        c.apply_defaults(Duration::from_secs(60), Duration::from_secs(10));
        c.validate().unwrap();
        c
    }

    fn active(p: Populated) -> Target {
        match p {
            Populated::Active(t) => t,
            Populated::Dropped(l) => panic!("target dropped: {l}"),
        }
    }

    #[test]
    fn defaults_port_instance_and_url() {
        let c = cfg("job_name: node\nparams: {module: [if_mib, x]}\n");
        let t = active(
            populate(
                &labels! {"__address__" => "host"},
                &labels! {"env" => "prod"},
                &c,
            )
            .unwrap(),
        );
        assert_eq!(
            t.public,
            labels! {"env" => "prod", "instance" => "host:80", "job" => "node"}
        );
        assert_eq!(t.labels.get("__address__"), Some("host:80"));
        assert_eq!(t.labels.get("__param_module"), Some("if_mib"));
        assert_eq!(t.url, "http://host:80/metrics?module=if_mib&module=x");
        assert_eq!(t.discovered.get("__address__"), Some("host"));
        assert_eq!(t.discovered.get("__scrape_interval__"), Some("1m"));
        assert_eq!(
            (t.interval, t.timeout),
            (Duration::from_secs(60), Duration::from_secs(10))
        );

        let c = cfg("job_name: s\nscheme: https\n");
        let t = active(populate(&labels! {"__address__" => "h"}, &Labels::empty(), &c).unwrap());
        assert_eq!(t.url, "https://h:443/metrics");
        let t =
            active(populate(&labels! {"__address__" => "[::1]:9"}, &Labels::empty(), &c).unwrap());
        assert_eq!(t.public.get("instance"), Some("[::1]:9"));
        let t = active(populate(&labels! {"__address__" => "::1"}, &Labels::empty(), &c).unwrap());
        assert_eq!(
            t.public.get("instance"),
            Some("::1"),
            "no port is added where it cannot be"
        );
    }

    #[test]
    fn target_labels_beat_group_labels_and_meta_is_removed() {
        let c = cfg("job_name: j\n");
        let t = active(
            populate(
                &labels! {"__address__" => "a:1", "x" => "target", "__meta_foo" => "m"},
                &labels! {"x" => "group", "y" => "g", "job" => "override"},
                &c,
            )
            .unwrap(),
        );
        assert_eq!(
            t.public,
            labels! {"instance" => "a:1", "job" => "override", "x" => "target", "y" => "g"}
        );
        assert!(t.labels.get("__meta_foo").is_none());
        assert_eq!(t.discovered.get("__meta_foo"), Some("m"));
    }

    #[test]
    fn relabeling_drop_param_and_errors() {
        let c = cfg(r#"
job_name: j
relabel_configs:
- source_labels: [__address__]
  regex: 'drop.*'
  action: drop
- source_labels: [__address__]
  target_label: __param_target
- target_label: __address__
  replacement: 'exporter:9115'
"#);
        assert!(matches!(
            populate(&labels! {"__address__" => "drop:1"}, &Labels::empty(), &c),
            Ok(Populated::Dropped(_))
        ));
        let t = active(
            populate(
                &labels! {"__address__" => "example.com"},
                &Labels::empty(),
                &c,
            )
            .unwrap(),
        );
        assert_eq!(t.url, "http://exporter:9115/metrics?target=example.com");
        assert_eq!(t.public.get("instance"), Some("exporter:9115"));

        let c =
            cfg("job_name: j\nrelabel_configs: [{target_label: __address__, replacement: ''}]\n");
        assert_eq!(
            populate(&labels! {"__address__" => "a:1"}, &Labels::empty(), &c),
            Err("no address".to_string())
        );
        let c = cfg("job_name: j\n");
        let e = populate(
            &labels! {"__address__" => "a:1", "__scrape_timeout__" => "2m"},
            &Labels::empty(),
            &c,
        )
        .unwrap_err();
        assert_eq!(
            e,
            r#"scrape timeout cannot be greater than scrape interval ("2m" > "1m")"#
        );
        let e = populate(
            &labels! {"__address__" => "a:1", "__scrape_interval__" => "x"},
            &Labels::empty(),
            &c,
        )
        .unwrap_err();
        assert!(e.starts_with("error parsing scrape interval"), "{e}");
        let e = populate(&labels! {"__address__" => "a/b"}, &Labels::empty(), &c).unwrap_err();
        assert!(e.contains("is not a valid hostname"), "{e}");
    }

    #[test]
    fn url_escaping_like_go() {
        let l = labels! {"__scheme__" => "http", "__address__" => "h:1", "__metrics_path__" => "/a b?c", "__param_q" => "x y&z"};
        assert_eq!(
            target_url(&l, &BTreeMap::new()),
            "http://h:1/a%20b%3Fc?q=x+y%26z"
        );
    }

    #[test]
    fn split_host_port_like_go() {
        assert_eq!(split_host_port("a:1"), Some(("a", "1")));
        assert_eq!(split_host_port("a:"), Some(("a", "")));
        assert_eq!(split_host_port("[::1]:9"), Some(("::1", "9")));
        assert_eq!(split_host_port("a"), None);
        assert_eq!(split_host_port("::1"), None);
        assert_eq!(split_host_port("[::1]"), None);
    }

    #[test]
    fn offsets_are_within_the_interval_and_stable() {
        let iv = Duration::from_secs(10);
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_003_250);
        let o = scrape_offset(12345, 0, iv, now);
        assert!(o <= iv);
        // The first scrape lands at the same phase regardless of when the loop starts.
        let later = now + Duration::from_millis(4321);
        let o2 = scrape_offset(12345, 0, iv, later);
        let phase = |t: SystemTime, o: Duration| {
            (t + o)
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % iv.as_nanos()
        };
        assert_eq!(phase(now, o), phase(later, o2));
        assert_ne!(
            scrape_offset(12345, 7, iv, now),
            o,
            "the seed moves the phase"
        );
    }
}
