//! alertmanager.yml as Alertmanager 0.25 reads it: raw structs parsed strictly (unknown fields
//! are errors naming the field and line), then validated into a [`Config`] whose route tree has
//! its inherited settings resolved and its matchers compiled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use model::MatchType;
use model::duration::{serde_opt_prom_duration, serde_prom_duration};
use serde::{Deserialize, Serialize};
use web::client::HttpClientConfig;

use crate::alert::is_valid_label_name;
use crate::matcher::{Matcher, Matchers, parse_matchers};
use crate::route::Route;
use crate::timeinterval::{RawTimeInterval, TimeInterval};

/// Why a configuration could not be loaded. Messages follow Alertmanager's.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Invalid(String),
}

fn invalid<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Invalid(msg.into()))
}

fn default_resolve_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_smtp_hello() -> String {
    "localhost".to_string()
}
fn default_true() -> bool {
    true
}

/// `global:`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    #[serde(default = "default_resolve_timeout", with = "serde_prom_duration")]
    pub resolve_timeout: Duration,
    #[serde(default)]
    pub http_config: HttpClientConfig,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub smtp_from: String,
    #[serde(default = "default_smtp_hello")]
    pub smtp_hello: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub smtp_smarthost: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub smtp_auth_username: String,
    #[serde(default, skip_serializing_if = "web::client::Secret::is_empty")]
    pub smtp_auth_password: web::client::Secret,
    #[serde(default, skip_serializing_if = "web::client::Secret::is_empty")]
    pub smtp_auth_secret: web::client::Secret,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub smtp_auth_identity: String,
    #[serde(default = "default_true")]
    pub smtp_require_tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_api_url: Option<web::client::Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_api_url_file: Option<String>,
    // Settings of receivers vigil does not implement yet; accepted so existing files load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagerduty_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opsgenie_api_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opsgenie_api_key: Option<web::client::Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opsgenie_api_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wechat_api_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wechat_api_secret: Option<web::client::Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wechat_api_corp_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victorops_api_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victorops_api_key: Option<web::client::Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victorops_api_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram_api_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webex_api_url: Option<String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            resolve_timeout: default_resolve_timeout(),
            http_config: HttpClientConfig::default(),
            smtp_from: String::new(),
            smtp_hello: default_smtp_hello(),
            smtp_smarthost: String::new(),
            smtp_auth_username: String::new(),
            smtp_auth_password: Default::default(),
            smtp_auth_secret: Default::default(),
            smtp_auth_identity: String::new(),
            smtp_require_tls: true,
            slack_api_url: None,
            slack_api_url_file: None,
            pagerduty_url: None,
            opsgenie_api_url: None,
            opsgenie_api_key: None,
            opsgenie_api_key_file: None,
            wechat_api_url: None,
            wechat_api_secret: None,
            wechat_api_corp_id: None,
            victorops_api_url: None,
            victorops_api_key: None,
            victorops_api_key_file: None,
            telegram_api_url: None,
            webex_api_url: None,
        }
    }
}

/// `route:` and its children, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<Vec<String>>,
    #[serde(default, rename = "match", skip_serializing_if = "BTreeMap::is_empty")]
    pub match_: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_re: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matchers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mute_time_intervals: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active_time_intervals: Vec<String>,
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RawRoute>,
    #[serde(
        default,
        with = "serde_opt_prom_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub group_wait: Option<Duration>,
    #[serde(
        default,
        with = "serde_opt_prom_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub group_interval: Option<Duration>,
    #[serde(
        default,
        with = "serde_opt_prom_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub repeat_interval: Option<Duration>,
}

/// `inhibit_rules[]`, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInhibitRule {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_match: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_match_re: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_matchers: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_match: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_match_re: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_matchers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equal: Vec<String>,
}

/// `webhook_configs[]`, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhookConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_resolved: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_config: Option<HttpClientConfig>,
    // compat: Alertmanager 0.25 does not treat the webhook URL as a secret (status shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<String>,
    #[serde(default)]
    pub max_alerts: u64,
}

/// Receiver kinds Alertmanager has and vigil does not implement yet. They parse (so the error
/// can say what is unsupported instead of "unknown field"), and fail validation.
const UNSUPPORTED_RECEIVERS: [&str; 9] = [
    "opsgenie_configs",
    "wechat_configs",
    "pushover_configs",
    "victorops_configs",
    "sns_configs",
    "telegram_configs",
    "webex_configs",
    "discord_configs",
    "msteams_configs",
];

/// `receivers[]`, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_configs: Vec<RawWebhookConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_configs: Vec<crate::receivers::email::RawEmailConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slack_configs: Vec<crate::receivers::slack::RawSlackConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pagerduty_configs: Vec<crate::receivers::pagerduty::RawPagerdutyConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opsgenie_configs: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wechat_configs: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pushover_configs: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub victorops_configs: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sns_configs: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telegram_configs: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webex_configs: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discord_configs: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub msteams_configs: Vec<serde_json::Value>,
}

impl RawReceiver {
    fn unsupported(&self) -> Option<&'static str> {
        let lists = [
            &self.opsgenie_configs,
            &self.wechat_configs,
            &self.pushover_configs,
            &self.victorops_configs,
            &self.sns_configs,
            &self.telegram_configs,
            &self.webex_configs,
            &self.discord_configs,
            &self.msteams_configs,
        ];
        UNSUPPORTED_RECEIVERS
            .iter()
            .zip(lists)
            .find(|(_, l)| !l.is_empty())
            .map(|(n, _)| *n)
    }
}

/// `time_intervals[]` / `mute_time_intervals[]`, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNamedTimeInterval {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub time_intervals: Vec<RawTimeInterval>,
}

/// The whole file, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub global: GlobalConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RawRoute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inhibit_rules: Vec<RawInhibitRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<RawReceiver>,
    #[serde(default)]
    pub templates: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mute_time_intervals: Vec<RawNamedTimeInterval>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_intervals: Vec<RawNamedTimeInterval>,
}

/// A validated webhook receiver.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    pub url: Option<String>,
    pub url_file: Option<String>,
    pub send_resolved: bool,
    pub max_alerts: u64,
    pub http_config: HttpClientConfig,
}

/// A validated receiver: a name and its integrations.
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    pub name: String,
    pub webhooks: Vec<WebhookConfig>,
    pub slack: Vec<crate::receivers::slack::SlackConfig>,
    pub email: Vec<crate::receivers::email::EmailConfig>,
    pub pagerduty: Vec<crate::receivers::pagerduty::PagerdutyConfig>,
}

/// A validated inhibition rule.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source: Matchers,
    pub target: Matchers,
    pub equal: Vec<String>,
}

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub raw: RawConfig,
    /// The file as given, byte for byte.
    pub original: String,
    pub route: Arc<Route>,
    pub inhibit_rules: Vec<InhibitRule>,
    pub receivers: Vec<Receiver>,
    pub time_intervals: HashMap<String, Arc<Vec<TimeInterval>>>,
    /// Template file globs, relative ones resolved against the config file's directory.
    pub templates: Vec<String>,
}

impl Config {
    /// Loads a file; relative paths inside it are relative to its directory.
    pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut cfg = Self::parse(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for t in &mut cfg.templates {
            if Path::new(t.as_str()).is_relative() {
                *t = base.join(t.as_str()).to_string_lossy().into_owned();
            }
        }
        for r in &mut cfg.receivers {
            for w in &mut r.webhooks {
                w.http_config.resolve_paths(base);
                if let Some(f) = &mut w.url_file
                    && Path::new(f.as_str()).is_relative()
                {
                    *f = base.join(f.as_str()).to_string_lossy().into_owned();
                }
            }
            for e in &mut r.email {
                let ca = &mut e.tls_config.ca_file;
                if !ca.is_empty() && Path::new(ca.as_str()).is_relative() {
                    *ca = base.join(ca.as_str()).to_string_lossy().into_owned();
                }
            }
            for p in &mut r.pagerduty {
                p.http_config.resolve_paths(base);
                if let Some(f) = &mut p.routing_key_file
                    && Path::new(f.as_str()).is_relative()
                {
                    *f = base.join(f.as_str()).to_string_lossy().into_owned();
                }
            }
            for s in &mut r.slack {
                s.http_config.resolve_paths(base);
                if let Some(f) = &mut s.api_url_file
                    && Path::new(f.as_str()).is_relative()
                {
                    *f = base.join(f.as_str()).to_string_lossy().into_owned();
                }
            }
        }
        Ok(cfg)
    }

    /// Parses and validates YAML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            serde_saphyr::from_str(text)
                .map_err(|e| ConfigError::Parse(go_yaml_error(text, &e.to_string())))?
        };
        Self::from_raw(raw, text)
    }

    fn from_raw(raw: RawConfig, original: &str) -> Result<Config, ConfigError> {
        let Some(root) = &raw.route else {
            return invalid("no routes provided");
        };
        let receivers = validate_receivers(&raw)?;
        let time_intervals = validate_time_intervals(&raw)?;
        if root.receiver.as_deref().unwrap_or("").is_empty() {
            return invalid("root route must specify a default receiver");
        }
        if !root.match_.is_empty() || !root.match_re.is_empty() || !root.matchers.is_empty() {
            return invalid("root route must not have any matchers");
        }
        if !root.mute_time_intervals.is_empty() {
            return invalid("root route must not have any mute time intervals");
        }
        if !root.active_time_intervals.is_empty() {
            return invalid("root route must not have any active time intervals");
        }
        let names: HashSet<&str> = receivers.iter().map(|r| r.name.as_str()).collect();
        let route = build_route(root, None, &names, &time_intervals)?;
        let inhibit_rules = raw
            .inhibit_rules
            .iter()
            .map(validate_inhibit_rule)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Config {
            templates: raw.templates.clone(),
            raw,
            original: original.to_string(),
            route: Arc::new(route),
            inhibit_rules,
            receivers,
            time_intervals,
        })
    }

    /// The configuration as `GET /api/v2/status` shows it: the parsed file with defaults,
    /// secrets hidden.
    pub fn to_yaml(&self) -> String {
        // Alertmanager prints the configuration after its defaults are applied.
        let mut raw = self.raw.clone();
        let g = &mut raw.global;
        for (field, default) in [
            (
                &mut g.pagerduty_url,
                "https://events.pagerduty.com/v2/enqueue",
            ),
            (&mut g.opsgenie_api_url, "https://api.opsgenie.com/"),
            (
                &mut g.wechat_api_url,
                "https://qyapi.weixin.qq.com/cgi-bin/",
            ),
            (
                &mut g.victorops_api_url,
                "https://alert.victorops.com/integrations/generic/20131114/alert/",
            ),
            (&mut g.telegram_api_url, "https://api.telegram.org"),
            (&mut g.webex_api_url, "https://webexapis.com/v1/messages"),
        ] {
            field.get_or_insert_with(|| default.to_string());
        }
        let http = raw.global.http_config.clone();
        for r in &mut raw.receivers {
            for w in &mut r.webhook_configs {
                w.send_resolved.get_or_insert(true);
                w.http_config.get_or_insert_with(|| http.clone());
            }
        }
        serde_saphyr::to_string(&raw)
            .map(|y| go_yaml_quotes(&y))
            .unwrap_or_else(|e| format!("# could not render config: {e}\n"))
    }

    pub fn receiver(&self, name: &str) -> Option<&Receiver> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

/// The message Alertmanager (yaml.v2, strict) gives for text serde rejected: every unknown
/// field as `yaml: unmarshal errors:` lines naming Go's type, else the bare message of a value's
/// own check (`not a valid duration string: "x"`), else `yaml: line N: …`.
fn go_yaml_error(text: &str, first: &str) -> String {
    let reparse = |t: &str| {
        serde_saphyr::from_str::<RawConfig>(t)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let type_of = |expected: &str| {
        if expected.contains("start_time") {
            "timeinterval.yamlTimeRange"
        } else if expected.contains("weekdays") {
            "timeinterval.TimeInterval"
        } else {
            "config.plain"
        }
    };
    model::yaml::unmarshal_errors(text, first, reparse, type_of)
        .unwrap_or_else(|| model::yaml::go_error(first).0)
}

/// Go's yaml.v2 quotes a scalar that cannot be plain with single quotes unless it needs escapes;
/// serde_saphyr uses double quotes. Rewrites whole double-quoted values without escapes.
fn go_yaml_quotes(y: &str) -> String {
    let mut out = String::with_capacity(y.len());
    for line in y.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let start = if let Some(i) = body.find(": \"") {
            Some(i + 2)
        } else {
            let t = body.trim_start();
            t.starts_with("- \"").then(|| body.len() - t.len() + 2)
        };
        match start {
            Some(i) if body.ends_with('"') && body.len() > i + 1 => {
                let inner = &body[i + 1..body.len() - 1];
                if inner.contains('\\') || inner.contains('"') {
                    out.push_str(line);
                } else {
                    out.push_str(&body[..i]);
                    out.push('\'');
                    out.push_str(&inner.replace('\'', "''"));
                    out.push('\'');
                    out.push_str(nl);
                }
            }
            _ => out.push_str(line),
        }
    }
    out
}

fn validate_receivers(raw: &RawConfig) -> Result<Vec<Receiver>, ConfigError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.receivers.len());
    for r in &raw.receivers {
        if r.name.is_empty() {
            return invalid("missing name in receiver");
        }
        if !seen.insert(r.name.as_str()) {
            return invalid(format!(
                "notification config name {:?} is not unique",
                r.name
            ));
        }
        if let Some(kind) = r.unsupported() {
            return invalid(format!(
                "receiver {:?}: {kind} are not supported by vigil yet (supported: webhook_configs, slack_configs, email_configs, pagerduty_configs)",
                r.name
            ));
        }
        let mut webhooks = Vec::with_capacity(r.webhook_configs.len());
        for w in &r.webhook_configs {
            webhooks.push(validate_webhook(w, &raw.global)?);
        }
        let slack = r
            .slack_configs
            .iter()
            .map(|c| crate::receivers::slack::validate(c, &raw.global))
            .collect::<Result<_, _>>()?;
        let email = r
            .email_configs
            .iter()
            .map(|c| crate::receivers::email::validate(c, &raw.global))
            .collect::<Result<_, _>>()?;
        let pagerduty = r
            .pagerduty_configs
            .iter()
            .map(|c| crate::receivers::pagerduty::validate(c, &raw.global))
            .collect::<Result<_, _>>()?;
        out.push(Receiver {
            name: r.name.clone(),
            webhooks,
            slack,
            email,
            pagerduty,
        });
    }
    Ok(out)
}

fn validate_webhook(w: &RawWebhookConfig, g: &GlobalConfig) -> Result<WebhookConfig, ConfigError> {
    let url = w.url.clone();
    match (&url, &w.url_file) {
        // compat: 0.25's message (it has no url_file; vigil accepts one).
        (None, None) => return invalid("missing URL in webhook config"),
        (Some(_), Some(_)) => return invalid("at most one of url & url_file must be configured"),
        (Some(u), None) => {
            let scheme = match reqwest::Url::parse(u) {
                Ok(p) => p.scheme().to_string(),
                // Go reads a relative reference without complaint; its scheme is "".
                Err(e) if e.to_string() == "relative URL without a base" => String::new(),
                Err(e) => return invalid(format!("parse {u:?}: {e}")),
            };
            if scheme != "http" && scheme != "https" {
                return invalid(format!("unsupported scheme {scheme:?} for URL"));
            }
        }
        (None, Some(_)) => {}
    }
    let mut http_config = w
        .http_config
        .clone()
        .unwrap_or_else(|| g.http_config.clone());
    http_config
        .validate()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    Ok(WebhookConfig {
        url,
        url_file: w.url_file.clone(),
        send_resolved: w.send_resolved.unwrap_or(true),
        max_alerts: w.max_alerts,
        http_config,
    })
}

fn validate_time_intervals(
    raw: &RawConfig,
) -> Result<HashMap<String, Arc<Vec<TimeInterval>>>, ConfigError> {
    let mut out = HashMap::new();
    for (what, list) in [
        ("mute time interval", &raw.mute_time_intervals),
        ("time interval", &raw.time_intervals),
    ] {
        for ti in list {
            if ti.name.is_empty() {
                return invalid(format!("missing name in {what}"));
            }
            if out.contains_key(&ti.name) {
                return invalid(format!("{what} {:?} is not unique", ti.name));
            }
            let intervals = ti
                .time_intervals
                .iter()
                .map(TimeInterval::from_raw)
                .collect::<Result<Vec<_>, _>>()
                // Alertmanager's unmarshalers report these bare.
                .map_err(ConfigError::Invalid)?;
            out.insert(ti.name.clone(), Arc::new(intervals));
        }
    }
    Ok(out)
}

/// Matchers from the deprecated `match`/`match_re` maps and the new `matchers` list, sorted.
fn collect_matchers(
    eq: &BTreeMap<String, String>,
    re: &BTreeMap<String, String>,
    list: &[String],
) -> Result<Matchers, ConfigError> {
    let mut v = Vec::new();
    for (n, val) in eq {
        if !is_valid_label_name(n) {
            return invalid(format!("invalid label name {n:?}"));
        }
        v.push(Matcher::equal_unchecked(n, val));
    }
    for (n, val) in re {
        if !is_valid_label_name(n) {
            return invalid(format!("invalid label name {n:?}"));
        }
        v.push(
            Matcher::new(MatchType::RegexMatch, n, val)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?,
        );
    }
    for line in list {
        v.extend(parse_matchers(line).map_err(|e| ConfigError::Invalid(e.to_string()))?);
    }
    Ok(Matchers::new(v))
}

fn build_route(
    r: &RawRoute,
    parent: Option<&Route>,
    receivers: &HashSet<&str>,
    intervals: &HashMap<String, Arc<Vec<TimeInterval>>>,
) -> Result<Route, ConfigError> {
    let matchers = collect_matchers(&r.match_, &r.match_re, &r.matchers)?;
    let receiver = match (&r.receiver, parent) {
        (Some(x), _) if !x.is_empty() => x.clone(),
        (_, Some(p)) => p.receiver.clone(),
        _ => String::new(),
    };
    if !receivers.contains(receiver.as_str()) {
        return invalid(format!("undefined receiver {receiver:?} used in route"));
    }
    let (group_by, group_by_all) = match &r.group_by {
        Some(list) => validate_group_by(list)?,
        None => parent.map_or((Vec::new(), false), |p| {
            (p.group_by.clone(), p.group_by_all)
        }),
    };
    if r.group_interval == Some(Duration::ZERO) {
        return invalid("group_interval cannot be zero");
    }
    if r.repeat_interval == Some(Duration::ZERO) {
        return invalid("repeat_interval cannot be zero");
    }
    for name in r.mute_time_intervals.iter().chain(&r.active_time_intervals) {
        if !intervals.contains_key(name) {
            return invalid(format!("undefined time interval {name:?} used in route"));
        }
    }
    let key = match parent {
        Some(p) => format!("{}/{}", p.key, matchers),
        None => matchers.to_string(),
    };
    let mut route = Route {
        receiver,
        group_by,
        group_by_all,
        group_wait: r
            .group_wait
            .or(parent.map(|p| p.group_wait))
            .unwrap_or(Duration::from_secs(30)),
        group_interval: r
            .group_interval
            .or(parent.map(|p| p.group_interval))
            .unwrap_or(Duration::from_secs(300)),
        repeat_interval: r
            .repeat_interval
            .or(parent.map(|p| p.repeat_interval))
            .unwrap_or(Duration::from_secs(4 * 3600)),
        matchers,
        continue_: r.continue_,
        mute_time_intervals: r.mute_time_intervals.clone(),
        active_time_intervals: r.active_time_intervals.clone(),
        key,
        routes: Vec::new(),
    };
    let children = r
        .routes
        .iter()
        .map(|c| build_route(c, Some(&route), receivers, intervals).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    route.routes = children;
    Ok(route)
}

fn validate_group_by(list: &[String]) -> Result<(Vec<String>, bool), ConfigError> {
    let mut seen = HashSet::new();
    let mut all = false;
    for l in list {
        if l == "..." {
            all = true;
            continue;
        }
        if !is_valid_label_name(l) {
            return invalid(format!("invalid label name {l:?} in group_by list"));
        }
        if !seen.insert(l.as_str()) {
            return invalid(format!("duplicated label {l:?} in group_by"));
        }
    }
    if all && list.len() > 1 {
        return invalid(
            "cannot have wildcard group_by (`...`) and other other labels at the same time",
        );
    }
    let mut v: Vec<String> = if all { Vec::new() } else { list.to_vec() };
    v.sort();
    Ok((v, all))
}

fn validate_inhibit_rule(r: &RawInhibitRule) -> Result<InhibitRule, ConfigError> {
    let source = collect_matchers(&r.source_match, &r.source_match_re, &r.source_matchers)?;
    let target = collect_matchers(&r.target_match, &r.target_match_re, &r.target_matchers)?;
    for l in &r.equal {
        if !is_valid_label_name(l) {
            return invalid(format!("{l:?} is not a valid label name"));
        }
    }
    Ok(InhibitRule {
        source,
        target,
        equal: r.equal.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn bad(yaml: &str, want: &str) {
        let err = Config::parse(yaml).unwrap_err().to_string();
        assert!(err.contains(want), "want {want:?} in {err:?}");
    }

    const RECV: &str = "receivers:\n- name: a\n- name: b\n";

    #[test]
    fn validation_messages_like_alertmanager() {
        bad(RECV, "no routes provided");
        bad(
            &format!("route: {{}}\n{RECV}"),
            "root route must specify a default receiver",
        );
        bad(
            &format!("route: {{receiver: a, matchers: ['x=y']}}\n{RECV}"),
            "root route must not have any matchers",
        );
        bad(
            &format!("route: {{receiver: a, routes: [{{receiver: c}}]}}\n{RECV}"),
            "undefined receiver \"c\" used in route",
        );
        bad(
            "route: {receiver: a}\nreceivers: [{name: a}, {name: a}]\n",
            "notification config name \"a\" is not unique",
        );
        bad(
            &format!("route: {{receiver: a, group_by: ['...', x]}}\n{RECV}"),
            "cannot have wildcard group_by",
        );
        bad(
            &format!("route: {{receiver: a, group_by: [x, x]}}\n{RECV}"),
            "duplicated label \"x\" in group_by",
        );
        bad(
            &format!("route: {{receiver: a, group_interval: 0s}}\n{RECV}"),
            "group_interval cannot be zero",
        );
        bad(
            &format!("route: {{receiver: a, routes: [{{mute_time_intervals: [n]}}]}}\n{RECV}"),
            "undefined time interval \"n\" used in route",
        );
        bad(
            "route: {receiver: a}\nreceivers: [{name: a, opsgenie_configs: [{api_key: x}]}]\n",
            "opsgenie_configs are not supported",
        );
        bad(
            "route: {receiver: a}\nreceivers: [{name: a, slack_configs: [{channel: x}]}]\n",
            "no global Slack API URL set",
        );
        bad(
            "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{}]}]\n",
            "missing URL in webhook config",
        );
        bad(
            &format!("route: {{receiver: a, routes: [{{matchers: ['x=~(']}}]}}\n{RECV}"),
            "error parsing regexp: missing closing ): `^(?:()$`",
        );
        bad(
            &format!("route: {{receiver: a, routes: [{{match_re: {{x: 'a)'}}}}]}}\n{RECV}"),
            "error parsing regexp: unexpected ): `^(?:a))$`",
        );
    }

    #[test]
    fn yaml_quotes_like_go() {
        assert_eq!(
            go_yaml_quotes("a: \"...\"\nb:\n  - \"x'y\"\n  - \"a\\nb\"\nc: team=~\"x\"\n"),
            "a: '...'\nb:\n  - 'x''y'\n  - \"a\\nb\"\nc: team=~\"x\"\n"
        );
    }

    #[test]
    fn unknown_field_names_field_and_line() {
        let err =
            Config::parse("route:\n  receiver: a\n  group_wiat: 1s\nreceivers: [{name: a}]\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("group_wiat") && err.contains('3'), "{err}");
    }

    #[test]
    fn children_inherit_settings() {
        let c = Config::parse(
            "route:\n  receiver: a\n  group_by: [x]\n  group_wait: 1s\n  routes:\n  - matchers: ['env=\"prod\"']\n    receiver: b\n    repeat_interval: 1m\n    routes:\n    - match: {team: t}\n      group_by: ['...']\nreceivers: [{name: a}, {name: b}]\n",
        )
        .unwrap();
        let root = &c.route;
        assert_eq!(root.key, "{}");
        assert_eq!(root.group_interval, Duration::from_secs(300));
        let child = &root.routes[0];
        assert_eq!(child.key, "{}/{env=\"prod\"}");
        assert_eq!(child.group_by, vec!["x".to_string()]);
        assert_eq!(child.group_wait, Duration::from_secs(1));
        assert_eq!(child.repeat_interval, Duration::from_secs(60));
        let grand = &child.routes[0];
        assert_eq!(grand.receiver, "b");
        assert!(grand.group_by_all);
        assert_eq!(grand.key, "{}/{env=\"prod\"}/{team=\"t\"}");
    }
}
