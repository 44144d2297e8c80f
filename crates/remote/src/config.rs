//! `remote_write:` and `remote_read:` entries of prometheus.yml, parsed strictly with
//! Prometheus 2.42's defaults. The HTTP client settings are listed inline (serde cannot combine
//! `flatten` with `deny_unknown_fields`); `http_client_config()` gathers them.
//!
//! Not supported yet, so refused as unknown fields: `oauth2`, `sigv4`, `azuread`.
//!
//! Stricter than Prometheus 2.42, which loads these and then fails or stalls at run time: an
//! empty url, a scheme other than http(s), `max_samples_per_send: 0`, `min_shards: 0` or
//! `max_shards` below it, `min_backoff` above `max_backoff`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use model::duration::serde_prom_duration;
use model::relabel::RelabelConfig;
use serde::{Deserialize, Serialize};
use web::client::{Authorization, BasicAuth, Secret, TlsConfig};

use crate::client::WriteClientConfig;
use crate::queue::QueueConfig;

/// Why a remote storage config is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn default_true() -> bool {
    true
}

/// Headers a config may not set: the protocol's own.
const RESERVED_HEADERS: [&str; 7] = [
    "authorization",
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "x-prometheus-remote-write-version",
];

macro_rules! http_client_fields {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        pub struct $name {
            $($body)*
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
        }

        web::impl_inline_http_client!($name);

        impl $name {
            /// Validates the URL, headers and HTTP client settings; normalises the legacy
            /// bearer token into `authorization`.
            fn validate_common(&mut self, section: &str) -> Result<(), ConfigError> {
                if self.url.is_empty() {
                    return Err(ConfigError(format!("url for {section} is empty")));
                }
                let u = reqwest::Url::parse(&self.url).map_err(|e| {
                    ConfigError(format!("{section} url {:?}: {e}", self.url))
                })?;
                if !matches!(u.scheme(), "http" | "https") {
                    return Err(ConfigError(format!(
                        "{section} url {:?}: scheme must be http or https",
                        self.url
                    )));
                }
                for name in self.headers.keys() {
                    if RESERVED_HEADERS.iter().any(|r| name.eq_ignore_ascii_case(r)) {
                        return Err(ConfigError(format!(
                            "{name} is a reserved header. It must not be changed"
                        )));
                    }
                }
                let mut http = self.http_client_config();
                http.validate()
                    .map_err(|e| ConfigError(format!("{section} {:?}: {e}", self.url)))?;
                self.set_http_client_config(http);
                Ok(())
            }
        }
    };
}

http_client_fields! {
/// One `remote_write` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// Defaults to empty so that a missing url gets Prometheus's message from `validate`.
    #[serde(default)]
    pub url: String,
    #[serde(default = "default_write_timeout", with = "serde_prom_duration")]
    pub remote_timeout: Duration,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub write_relabel_configs: Vec<RelabelConfig>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub send_exemplars: bool,
    #[serde(default)]
    pub send_native_histograms: bool,
    #[serde(default)]
    pub queue_config: QueueConfigYaml,
    #[serde(default)]
    pub metadata_config: MetadataConfig,
    /// `prometheus.WriteRequest` (1.0, the default) or `io.prometheus.write.v2.Request` (2.0),
    /// as in Prometheus 3.
    #[serde(
        default = "default_protobuf_message",
        skip_serializing_if = "is_default_protobuf_message"
    )]
    pub protobuf_message: String,
}
}

fn default_protobuf_message() -> String {
    crate::v2::PROTO_V1.to_string()
}

fn is_default_protobuf_message(s: &str) -> bool {
    s == crate::v2::PROTO_V1
}

http_client_fields! {
/// One `remote_read` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteReadConfig {
    #[serde(default)]
    pub url: String,
    #[serde(default = "default_read_timeout", with = "serde_prom_duration")]
    pub remote_timeout: Duration,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Label pairs every selector must have for this remote to be asked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_matchers: BTreeMap<String, String>,
    /// Whether to ask for time ranges the local storage also holds.
    #[serde(default)]
    pub read_recent: bool,
    #[serde(default = "default_true")]
    pub filter_external_labels: bool,
}
}

fn default_write_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_read_timeout() -> Duration {
    Duration::from_secs(60)
}

/// `queue_config` as written in YAML; defaults are Prometheus 2.42's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfigYaml {
    pub capacity: usize,
    pub max_shards: usize,
    pub min_shards: usize,
    pub max_samples_per_send: usize,
    #[serde(with = "serde_prom_duration")]
    pub batch_send_deadline: Duration,
    #[serde(with = "serde_prom_duration")]
    pub min_backoff: Duration,
    #[serde(with = "serde_prom_duration")]
    pub max_backoff: Duration,
    pub retry_on_http_429: bool,
    /// vigil: bound of the on-disk backlog of unsent samples for this destination (default
    /// 1GB). Prometheus has no such setting: it loses what its WAL truncation removes.
    #[serde(with = "serde_bytes_size")]
    pub max_disk_usage: u64,
    /// vigil: after an outage, send new samples at once while the disk backlog drains beside
    /// them. Only for receivers that accept out-of-order samples (VictoriaMetrics, InfluxDB,
    /// Prometheus with an `out_of_order_time_window` longer than the outage): a Prometheus
    /// receiver without one refuses the older backlog (400, whole request). Default false:
    /// each series is sent in time order, backlog first.
    pub live_first: bool,
}

/// The default `max_disk_usage`: 1 GiB per destination.
pub const DEFAULT_MAX_DISK_USAGE: u64 = 1 << 30;

pub use model::{format_byte_size, parse_byte_size};

mod serde_bytes_size {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(u64),
        S(String),
    }

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_byte_size(*v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(n),
            Raw::S(s) => super::parse_byte_size(&s).map_err(serde::de::Error::custom),
        }
    }
}

impl Default for QueueConfigYaml {
    fn default() -> Self {
        let q = QueueConfig::default();
        QueueConfigYaml {
            capacity: q.capacity,
            max_shards: 200,
            min_shards: 1,
            max_samples_per_send: q.max_samples_per_send,
            batch_send_deadline: q.batch_send_deadline,
            min_backoff: q.min_backoff,
            max_backoff: q.max_backoff,
            retry_on_http_429: false,
            max_disk_usage: DEFAULT_MAX_DISK_USAGE,
            live_first: false,
        }
    }
}

/// `metadata_config`; defaults are Prometheus 2.42's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub send: bool,
    #[serde(with = "serde_prom_duration")]
    pub send_interval: Duration,
    pub max_samples_per_send: usize,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            send: true,
            send_interval: Duration::from_secs(60),
            max_samples_per_send: 500,
        }
    }
}

impl RemoteWriteConfig {
    /// Prometheus's checks; call once after parsing.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        self.validate_common("remote_write")?;
        if self.protobuf_message != crate::v2::PROTO_V1
            && self.protobuf_message != crate::v2::PROTO_V2
        {
            return Err(ConfigError(format!(
                "unknown remote write protobuf message {}, supported: {}, {}",
                self.protobuf_message,
                crate::v2::PROTO_V1,
                crate::v2::PROTO_V2
            )));
        }
        let q = &self.queue_config;
        if q.max_samples_per_send == 0 {
            return Err(ConfigError(
                "queue_config.max_samples_per_send must be positive".into(),
            ));
        }
        if q.min_shards == 0 || q.max_shards < q.min_shards {
            return Err(ConfigError(format!(
                "queue_config: min_shards ({}) must be positive and at most max_shards ({})",
                q.min_shards, q.max_shards
            )));
        }
        if q.min_backoff > q.max_backoff {
            return Err(ConfigError(
                "queue_config: min_backoff must not exceed max_backoff".into(),
            ));
        }
        Ok(())
    }

    /// The client settings of this destination.
    pub fn client_config(&self) -> WriteClientConfig {
        WriteClientConfig {
            url: self.url.clone(),
            remote_timeout: self.remote_timeout,
            headers: self.headers.clone().into_iter().collect(),
            http: self.http_client_config(),
            retry_on_http_429: self.queue_config.retry_on_http_429,
            v2: self.protobuf_message == crate::v2::PROTO_V2,
        }
    }

    /// The queue settings of this destination (apply `write_relabel_configs` with
    /// [`crate::QueueHandle::with_relabel`]).
    pub fn queue(&self) -> QueueConfig {
        let q = &self.queue_config;
        QueueConfig {
            capacity: q.capacity,
            max_samples_per_send: q.max_samples_per_send,
            batch_send_deadline: q.batch_send_deadline,
            min_backoff: q.min_backoff,
            max_backoff: q.max_backoff,
        }
    }
}

impl RemoteReadConfig {
    /// Prometheus's checks; call once after parsing.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        self.validate_common("remote_read")
    }
}

/// Checks a whole `remote_write:` list: each entry, and that names are unique.
pub fn validate_remote_writes(cfgs: &mut [RemoteWriteConfig]) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for c in cfgs.iter_mut() {
        c.validate()?;
        if !c.name.is_empty() && !names.insert(c.name.clone()) {
            return Err(ConfigError(format!(
                "found multiple remote write configs with job name {:?}",
                c.name
            )));
        }
    }
    Ok(())
}

/// Checks a whole `remote_read:` list: each entry, and that names are unique.
pub fn validate_remote_reads(cfgs: &mut [RemoteReadConfig]) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for c in cfgs.iter_mut() {
        c.validate()?;
        if !c.name.is_empty() && !names.insert(c.name.clone()) {
            return Err(ConfigError(format!(
                "found multiple remote read configs with job name {:?}",
                c.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(y: &str) -> Result<Vec<RemoteWriteConfig>, String> {
        let mut c: Vec<RemoteWriteConfig> = serde_saphyr::from_str(y).map_err(|e| e.to_string())?;
        validate_remote_writes(&mut c).map_err(|e| e.to_string())?;
        Ok(c)
    }

    fn reads(y: &str) -> Result<Vec<RemoteReadConfig>, String> {
        let mut c: Vec<RemoteReadConfig> = serde_saphyr::from_str(y).map_err(|e| e.to_string())?;
        validate_remote_reads(&mut c).map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn defaults() {
        let w = writes("- url: http://a/api/v1/write\n").unwrap().remove(0);
        assert_eq!(w.remote_timeout, Duration::from_secs(30));
        assert_eq!(w.queue_config, QueueConfigYaml::default());
        assert_eq!(w.queue_config.capacity, 2500);
        assert_eq!(w.queue_config.max_samples_per_send, 500);
        assert!(w.metadata_config.send && w.follow_redirects && w.enable_http2);
        let r = reads("- url: http://a/api/v1/read\n").unwrap().remove(0);
        assert_eq!(r.remote_timeout, Duration::from_secs(60));
        assert!(!r.read_recent && r.filter_external_labels);
    }

    #[test]
    fn max_disk_usage_sizes() {
        let w = writes("- url: http://a/w\n  queue_config: {max_disk_usage: 512MB}\n")
            .unwrap()
            .remove(0);
        assert_eq!(w.queue_config.max_disk_usage, 512 << 20);
        let w = writes("- url: http://a/w\n  queue_config: {max_disk_usage: 4096}\n")
            .unwrap()
            .remove(0);
        assert_eq!(w.queue_config.max_disk_usage, 4096);
        assert!(writes("- url: http://a/w\n  queue_config: {max_disk_usage: 5XB}\n").is_err());
        assert_eq!(parse_byte_size("2GB"), Ok(2 << 30));
        assert_eq!(format_byte_size(DEFAULT_MAX_DISK_USAGE), "1GB");
        assert_eq!(format_byte_size(1000), "1000B");
        assert!(parse_byte_size("99999999999EB").is_err());
    }

    /// `live_first` is off unless asked for; shard bounds keep Prometheus's defaults.
    #[test]
    fn live_first_and_shard_defaults() {
        let w = writes("- url: http://a/w\n").unwrap().remove(0);
        assert!(!w.queue_config.live_first);
        assert_eq!(
            (w.queue_config.min_shards, w.queue_config.max_shards),
            (1, 200)
        );
        let w = writes("- url: http://a/w\n  queue_config: {live_first: true, min_shards: 2}\n")
            .unwrap()
            .remove(0);
        assert!(w.queue_config.live_first);
        assert_eq!(w.queue_config.min_shards, 2);
        assert!(writes("- url: http://a/w\n  queue_config: {live_first: maybe}\n").is_err());
    }

    #[test]
    fn full_write_config() {
        let y = "\
- url: https://a/w
  name: a
  remote_timeout: 10s
  headers: {X-Scope-OrgID: t1}
  write_relabel_configs:
    - source_labels: [__name__]
      regex: go_.*
      action: drop
  queue_config:
    capacity: 10000
    max_samples_per_send: 2000
    batch_send_deadline: 1s
    min_backoff: 100ms
    max_backoff: 10s
    retry_on_http_429: true
  metadata_config: {send: false}
  bearer_token: secret
";
        let w = writes(y).unwrap().remove(0);
        let q = w.queue();
        assert_eq!((q.capacity, q.max_samples_per_send), (10000, 2000));
        assert_eq!(q.batch_send_deadline, Duration::from_secs(1));
        let c = w.client_config();
        assert!(c.retry_on_http_429);
        assert_eq!(c.headers, [("X-Scope-OrgID".to_string(), "t1".to_string())]);
        assert!(c.http.authorization.is_some(), "legacy bearer token moved");
        assert_eq!(w.write_relabel_configs.len(), 1);
        assert!(!w.metadata_config.send);
    }

    #[test]
    fn refusals() {
        #[track_caller]
        fn bad(r: Result<impl std::fmt::Debug, String>, want: &str) {
            let e = r.expect_err("config should be rejected");
            assert!(e.contains(want), "{e:?} does not contain {want:?}");
        }
        bad(writes("- url: ''\n"), "url for remote_write is empty");
        bad(writes("- {}\n"), "url");
        bad(writes("- url: 'ftp://a'\n"), "scheme must be http or https");
        bad(
            writes("- url: 'http://a'\n  headers: {Content-Type: x}\n"),
            "Content-Type is a reserved header",
        );
        bad(writes("- url: 'http://a'\n  foo: 1\n"), "foo");
        bad(
            writes("- url: 'http://a'\n  queue_config: {max_shards: 0}\n"),
            "min_shards",
        );
        bad(
            writes("- url: 'http://a'\n  queue_config: {min_backoff: 10s, max_backoff: 1s}\n"),
            "min_backoff",
        );
        bad(writes("- url: 'http://a'\n  sigv4: {region: x}\n"), "sigv4");
        bad(
            writes("- url: 'http://a'\n  bearer_token: x\n  basic_auth: {username: u}\n"),
            "at most one of",
        );
        bad(
            writes("- {url: 'http://a', name: x}\n- {url: 'http://b', name: x}\n"),
            "multiple remote write configs",
        );
        bad(reads("- url: ''\n"), "url for remote_read is empty");
        bad(
            reads("- {url: 'http://a', name: x}\n- {url: 'http://b', name: x}\n"),
            "multiple remote read configs",
        );
        bad(
            reads("- url: 'http://a'\n  queue_config: {}\n"),
            "queue_config",
        );
    }
}
