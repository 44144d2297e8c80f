//! `scrape_configs:` entries of prometheus.yml, parsed strictly, with Prometheus 2.42's
//! defaults and validation messages.
//!
//! The HTTP client settings are listed inline (serde cannot combine `flatten` with
//! `deny_unknown_fields`); [`ScrapeConfig::http_client_config`] gathers them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use model::duration::{serde_opt_prom_duration, serde_prom_duration};
use model::relabel::RelabelConfig;
use serde::{Deserialize, Serialize};
use web::client::{Authorization, BasicAuth, Secret, TlsConfig};

/// Why a scrape config is invalid. Messages are Prometheus's where it has one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    fn new(msg: impl Into<String>) -> Self {
        ConfigError(msg.into())
    }
}

fn default_true() -> bool {
    true
}
fn default_metrics_path() -> String {
    "/metrics".to_string()
}
fn default_scheme() -> String {
    "http".to_string()
}
fn default_file_refresh() -> Duration {
    Duration::from_secs(300)
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Prometheus's defaults when a config has no `global:` section.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// One `scrape_config`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub honor_labels: bool,
    #[serde(default = "default_true")]
    pub honor_timestamps: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Vec<String>>,
    /// Filled from the global section by [`ScrapeConfig::apply_defaults`].
    #[serde(
        default,
        with = "serde_opt_prom_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub scrape_interval: Option<Duration>,
    /// Filled from the global section by [`ScrapeConfig::apply_defaults`].
    #[serde(
        default,
        with = "serde_opt_prom_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub scrape_timeout: Option<Duration>,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    #[serde(default = "default_scheme")]
    pub scheme: String,

    // HTTP client settings, inline as in Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub bearer_token: Secret,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bearer_token_file: String,
    #[serde(default, skip_serializing_if = "TlsConfig::is_default")]
    pub tls_config: TlsConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    #[serde(default = "default_true")]
    pub enable_http2: bool,

    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_relabel_configs: Vec<RelabelConfig>,

    #[serde(default, skip_serializing_if = "ByteSize::is_zero")]
    pub body_size_limit: ByteSize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sample_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub target_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_name_length_limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_value_length_limit: u64,
}

web::impl_inline_http_client!(ScrapeConfig);

impl ScrapeConfig {
    /// A config with Prometheus's defaults and the given job name (for code and tests).
    pub fn new(job_name: impl Into<String>) -> Self {
        ScrapeConfig {
            job_name: job_name.into(),
            honor_labels: false,
            honor_timestamps: true,
            params: BTreeMap::new(),
            scrape_interval: None,
            scrape_timeout: None,
            metrics_path: default_metrics_path(),
            scheme: default_scheme(),
            basic_auth: None,
            authorization: None,
            bearer_token: Secret::default(),
            bearer_token_file: String::new(),
            tls_config: TlsConfig::default(),
            proxy_url: None,
            follow_redirects: true,
            enable_http2: true,
            static_configs: Vec::new(),
            file_sd_configs: Vec::new(),
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
            body_size_limit: ByteSize(0),
            sample_limit: 0,
            target_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
        }
    }

    /// Fills the interval and timeout from the global section. A zero or missing interval takes
    /// the global one; a missing timeout takes the global one capped at the interval.
    pub fn apply_defaults(&mut self, global_interval: Duration, global_timeout: Duration) {
        let interval = match self.scrape_interval {
            Some(d) if !d.is_zero() => d,
            _ => global_interval,
        };
        self.scrape_interval = Some(interval);
        if self.scrape_timeout.is_none_or(|d| d.is_zero()) {
            // compat: Prometheus caps the inherited timeout at the job's interval.
            self.scrape_timeout = Some(global_timeout.min(interval));
        }
    }

    /// The scrape interval (the global default if [`ScrapeConfig::apply_defaults`] was not run).
    pub fn interval(&self) -> Duration {
        self.scrape_interval.unwrap_or(DEFAULT_SCRAPE_INTERVAL)
    }

    /// The scrape timeout (the global default capped at the interval if not set).
    pub fn timeout(&self) -> Duration {
        self.scrape_timeout
            .unwrap_or(DEFAULT_SCRAPE_TIMEOUT.min(self.interval()))
    }

    /// Prometheus's checks. Also normalises the HTTP client settings (the legacy bearer token
    /// becomes `authorization`), so call it once after parsing.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        if self.job_name.is_empty() {
            return Err(ConfigError::new("job_name is empty"));
        }
        let job = &self.job_name;
        if self.timeout() > self.interval() {
            return Err(ConfigError::new(format!(
                "scrape timeout greater than scrape interval for scrape config with job name {job:?}"
            )));
        }
        let mut http = self.http_client_config();
        http.validate().map_err(|e| {
            ConfigError::new(format!("invalid HTTP client config for job {job:?}: {e}"))
        })?;
        self.set_http_client_config(http);
        for sc in &self.static_configs {
            sc.validate()?;
        }
        for fc in &self.file_sd_configs {
            fc.validate()?;
        }
        Ok(())
    }

    /// Makes relative file names (file_sd globs, secret and TLS files) relative to `base`, the
    /// directory of the config file.
    pub fn resolve_paths(&mut self, base: &Path) {
        let mut http = self.http_client_config();
        http.resolve_paths(base);
        self.set_http_client_config(http);
        for fc in &mut self.file_sd_configs {
            for f in &mut fc.files {
                if !f.is_empty() && Path::new(f.as_str()).is_relative() {
                    *f = base.join(f.as_str()).to_string_lossy().into_owned();
                }
            }
        }
    }

    /// Whether `other` differs only in ways that leave service discovery unchanged.
    pub(crate) fn same_discovery(&self, other: &ScrapeConfig) -> bool {
        self.static_configs == other.static_configs && self.file_sd_configs == other.file_sd_configs
    }
}

/// `static_configs:` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl StaticConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for name in self.labels.keys() {
            if !is_valid_label_name(name) {
                return Err(ConfigError::new(format!(
                    "{name:?} is not a valid label name"
                )));
            }
        }
        for t in &self.targets {
            check_target_address(t)?;
        }
        Ok(())
    }
}

/// `file_sd_configs:` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default = "default_file_refresh", with = "serde_prom_duration")]
    pub refresh_interval: Duration,
}

impl FileSdConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.files.is_empty() {
            return Err(ConfigError::new(
                "file service discovery config must contain at least one path name",
            ));
        }
        for f in &self.files {
            if !is_valid_file_sd_name(f) {
                return Err(ConfigError::new(format!(
                    "path name {f:?} is not valid for file discovery"
                )));
            }
        }
        Ok(())
    }
}

/// Prometheus accepts `*` only in the last path element and requires a JSON or YAML extension
/// (`^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$`).
fn is_valid_file_sd_name(name: &str) -> bool {
    let Some(stem) = [".json", ".yml", ".yaml", ".JSON", ".YML", ".YAML"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
    else {
        return false;
    };
    match stem.find('*') {
        Some(p) => !stem[p + 1..].contains('/'),
        None => true,
    }
}

/// A target address may not contain a path (Prometheus's `CheckTargetAddress`).
pub(crate) fn check_target_address(addr: &str) -> Result<(), ConfigError> {
    if addr.contains('/') {
        return Err(ConfigError::new(format!(
            "{addr:?} is not a valid hostname"
        )));
    }
    Ok(())
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_valid_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A size in bytes written with a base-2 unit (`512MB` = 512 MiB), like Prometheus's
/// `body_size_limit`. `0` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }

    /// Parses `10MB`, `1.5GiB`, `1GB512MB`, `0`. A unit is required for non-zero sizes; `KB`
    /// and `KiB` both mean 1024 bytes (compat: Prometheus uses base-2 units throughout).
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let orig = s;
        let s = s.trim();
        if s == "0" {
            return Ok(ByteSize(0));
        }
        if s.is_empty() {
            return Err(format!("invalid size {orig:?}"));
        }
        let mut rest = s;
        let mut total = 0f64;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if num_len == 0 {
                return Err(format!("invalid size {orig:?}"));
            }
            let n: f64 = rest[..num_len]
                .parse()
                .map_err(|_| format!("invalid size {orig:?}"))?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            if unit_len == 0 {
                return Err(format!("missing unit in size {orig:?}"));
            }
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let shift = model::size::unit_shift(unit)
                .ok_or_else(|| format!("unknown unit {unit:?} in size {orig:?}"))?;
            total += n * (1u64 << shift) as f64;
        }
        if total >= u64::MAX as f64 {
            return Err(format!("size {orig:?} overflows"));
        }
        Ok(ByteSize(total as u64))
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the size exactly, e.g. `10MB`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&model::format_byte_size(self.0))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size with a unit such as 10MB")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                ByteSize::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                ByteSize::parse(&v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> Result<ScrapeConfig, String> {
        let mut c: ScrapeConfig = serde_saphyr::from_str(y).map_err(|e| e.to_string())?;
        c.apply_defaults(Duration::from_secs(60), Duration::from_secs(10));
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[track_caller]
    fn bad(y: &str, want: &str) {
        let err = parse(y).expect_err("config should be rejected");
        assert!(
            err.contains(want),
            "error {err:?} does not contain {want:?}"
        );
    }

    #[test]
    fn defaults_like_prometheus() {
        let c = parse("job_name: a\n").unwrap();
        assert!(c.honor_timestamps && !c.honor_labels);
        assert_eq!(c.metrics_path, "/metrics");
        assert_eq!(c.scheme, "http");
        assert_eq!(c.interval(), Duration::from_secs(60));
        assert_eq!(c.timeout(), Duration::from_secs(10));
        assert!(c.follow_redirects && c.enable_http2);
        let c = parse("job_name: a\nscrape_interval: 5s\n").unwrap();
        assert_eq!(
            c.timeout(),
            Duration::from_secs(5),
            "inherited timeout is capped at the interval"
        );
        let mut n = ScrapeConfig::new("a");
        n.apply_defaults(Duration::from_secs(60), Duration::from_secs(10));
        assert_eq!(n, parse("job_name: a\n").unwrap());
    }

    #[test]
    fn strict_parsing_names_the_field() {
        bad("job_name: a\nscrape_intervall: 5s\n", "scrape_intervall");
        bad(
            "job_name: a\nkubernetes_sd_configs: [{role: pod}]\n",
            "kubernetes_sd_configs",
        );
        bad(
            "job_name: a\nstatic_configs: [{targets: [x], lables: {}}]\n",
            "lables",
        );
        bad(
            "job_name: a\nfile_sd_configs: [{files: [a.json], refresh: 1m}]\n",
            "refresh",
        );
        bad("scrape_interval: 5s\n", "job_name");
    }

    #[test]
    fn validation_messages() {
        bad(
            "job_name: x\nscrape_interval: 5s\nscrape_timeout: 10s\n",
            r#"scrape timeout greater than scrape interval for scrape config with job name "x""#,
        );
        bad("job_name: ''\n", "job_name is empty");
        bad(
            "job_name: x\nfile_sd_configs: [{files: []}]\n",
            "file service discovery config must contain at least one path name",
        );
        bad(
            "job_name: x\nfile_sd_configs: [{files: [a.txt]}]\n",
            r#"path name "a.txt" is not valid for file discovery"#,
        );
        bad(
            "job_name: x\nfile_sd_configs: [{files: ['*/a.json']}]\n",
            "not valid for file discovery",
        );
        bad(
            "job_name: x\nstatic_configs: [{targets: ['a/b:1']}]\n",
            r#""a/b:1" is not a valid hostname"#,
        );
        bad(
            "job_name: x\nstatic_configs: [{targets: [a], labels: {0x: y}}]\n",
            r#""0x" is not a valid label name"#,
        );
        bad(
            "job_name: x\nbearer_token: a\nbearer_token_file: b\n",
            "at most one of bearer_token & bearer_token_file",
        );
        bad("job_name: x\nbody_size_limit: 10\n", "missing unit");
        bad("job_name: x\nbody_size_limit: 10XB\n", "unknown unit");
        bad("job_name: x\nsample_limit: -1\n", "sample_limit");
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            r#"
job_name: node
honor_labels: true
honor_timestamps: false
params: {module: [a, b]}
scrape_interval: 15s
scrape_timeout: 5s
metrics_path: /m
scheme: https
body_size_limit: 10MB
sample_limit: 100
target_limit: 5
label_limit: 30
label_name_length_limit: 200
label_value_length_limit: 300
bearer_token: tok
tls_config: {insecure_skip_verify: true}
static_configs:
- targets: ['a:1', 'b:2']
  labels: {env: prod}
file_sd_configs:
- files: ['sd/*.json', 'x.yml']
  refresh_interval: 1m
"#,
        )
        .unwrap();
        assert_eq!(c.body_size_limit, ByteSize(10 << 20));
        assert_eq!(c.params["module"], vec!["a", "b"]);
        assert_eq!(
            c.file_sd_configs[0].refresh_interval,
            Duration::from_secs(60)
        );
        assert_eq!(
            c.authorization.as_ref().unwrap().credentials.expose(),
            "tok"
        );
        assert!(c.bearer_token.is_empty());
        let y = serde_saphyr::to_string(&c).unwrap();
        assert!(y.contains("<secret>") && !y.contains("tok"), "{y}");
        assert!(y.contains("body_size_limit: 10MB"), "{y}");
        let mut back: ScrapeConfig = serde_saphyr::from_str(&y.replace("<secret>", "tok")).unwrap();
        back.validate().unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn sizes() {
        #[track_caller]
        fn check(s: &str, want: u64) {
            assert_eq!(ByteSize::parse(s), Ok(ByteSize(want)), "{s}");
        }
        check("0", 0);
        check("1B", 1);
        check("1KB", 1024);
        check("1KiB", 1024);
        check("10MB", 10 << 20);
        check("1.5GB", 3 << 29);
        check("1GB512MB", (1 << 30) + (512 << 20));
        check("2EB", 2 << 60);
        assert!(ByteSize::parse("").is_err());
        assert!(ByteSize::parse("MB").is_err());
        assert!(ByteSize::parse("12").is_err());
        assert_eq!(ByteSize(10 << 20).to_string(), "10MB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }

    /// Go's `units.Base2Bytes` sums number-unit pairs; each unit comes from `model::size`.
    #[test]
    fn compound_sizes() {
        #[track_caller]
        fn check(s: &str, want: u64) {
            assert_eq!(ByteSize::parse(s), Ok(ByteSize(want)), "{s}");
        }
        #[track_caller]
        fn bad(s: &str, want: &str) {
            assert_eq!(ByteSize::parse(s), Err(want.to_string()), "{s}");
        }
        check("1GiB512MiB", (1 << 30) + (512 << 20));
        check("1MB1B", (1 << 20) + 1);
        check("1KB1KiB", 2048);
        check("1EB1PB1TiB", (1 << 60) + (1 << 50) + (1 << 40));
        check("1GB1MB1KB1B", (1 << 30) + (1 << 20) + 1025);
        check("0.5KB0.5KB", 1024);
        check(" 3MB ", 3 << 20);
        bad("", r#"invalid size """#);
        bad("MB", r#"invalid size "MB""#);
        bad("1..2MB", r#"invalid size "1..2MB""#);
        bad("12", r#"missing unit in size "12""#);
        bad("1GB512", r#"missing unit in size "1GB512""#);
        bad("10XB", r#"unknown unit "XB" in size "10XB""#);
        bad("1GB2kb", r#"unknown unit "kb" in size "1GB2kb""#);
        bad("1GB MB", r#"unknown unit "GB MB" in size "1GB MB""#);
        bad("16EB", r#"size "16EB" overflows"#);
        bad("8EB8EB", r#"size "8EB8EB" overflows"#);
    }

    #[test]
    fn relative_paths() {
        let mut c = parse("job_name: x\nfile_sd_configs: [{files: ['sd/*.json', '/abs/a.yml']}]\nbasic_auth: {username: u, password_file: pw}\n").unwrap();
        c.resolve_paths(Path::new("/etc/vigil"));
        assert_eq!(
            c.file_sd_configs[0].files,
            vec!["/etc/vigil/sd/*.json", "/abs/a.yml"]
        );
        assert_eq!(c.basic_auth.unwrap().password_file, "/etc/vigil/pw");
    }

    #[test]
    fn file_sd_names() {
        for ok in ["a.json", "dir/*.yml", "/x/y/z*.YAML", "*.yaml", "a*b*.json"] {
            assert!(is_valid_file_sd_name(ok), "{ok}");
        }
        for bad in ["a.txt", "*/a.json", "a.Json", "dir/*/x.yml"] {
            assert!(!is_valid_file_sd_name(bad), "{bad}");
        }
    }
}
