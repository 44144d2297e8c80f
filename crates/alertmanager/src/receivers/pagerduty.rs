//! `pagerduty_configs`: PagerDuty Events API v2 (`routing_key`), one event per notification,
//! deduplicated by the SHA-256 of the group key as Alertmanager 0.25 does, so PagerDuty merges a
//! trigger and its resolve into one incident. Events API v1 (`service_key`) is refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use web::client::{HttpClientConfig, Secret};

use super::{HttpPoster, Renderer, SendResult, read_secret_file, truncate};
use crate::config::{ConfigError, GlobalConfig};
use crate::notify::TemplateData;
use crate::tmpl::{Templates, data_value};

/// PagerDuty's Events API v2 endpoint, Alertmanager's default `global.pagerduty_url`.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// PagerDuty rejects longer summaries; Alertmanager truncates them first.
const MAX_SUMMARY_RUNES: usize = 1024;

/// `pagerduty_configs[].images[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyImage {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub src: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alt: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub href: String,
}

/// `pagerduty_configs[].links[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerdutyLink {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub href: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
}

/// `pagerduty_configs[]`, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPagerdutyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_resolved: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_config: Option<HttpClientConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<PagerdutyImage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<PagerdutyLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A validated PagerDuty (Events API v2) integration; texts are templates.
#[derive(Debug, Clone, PartialEq)]
pub struct PagerdutyConfig {
    pub send_resolved: bool,
    pub http_config: HttpClientConfig,
    pub routing_key: Option<String>,
    pub routing_key_file: Option<String>,
    pub url: String,
    pub client: String,
    pub client_url: String,
    pub description: String,
    /// Alertmanager's default details (`firing`, `resolved`, `num_firing`, `num_resolved`)
    /// merged under the configured ones.
    pub details: BTreeMap<String, String>,
    pub images: Vec<PagerdutyImage>,
    pub links: Vec<PagerdutyLink>,
    pub source: String,
    pub severity: String,
    pub class: String,
    pub component: String,
    pub group: String,
}

fn default_details() -> [(&'static str, &'static str); 4] {
    [
        (
            "firing",
            r#"{{ template "pagerduty.default.instances" .Alerts.Firing }}"#,
        ),
        (
            "resolved",
            r#"{{ template "pagerduty.default.instances" .Alerts.Resolved }}"#,
        ),
        ("num_firing", "{{ .Alerts.Firing | len }}"),
        ("num_resolved", "{{ .Alerts.Resolved | len }}"),
    ]
}

/// Validates one `pagerduty_configs` entry against the global settings.
pub fn validate(c: &RawPagerdutyConfig, g: &GlobalConfig) -> Result<PagerdutyConfig, ConfigError> {
    let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
    if c.routing_key.is_some() && c.routing_key_file.is_some() {
        return invalid("at most one of routing_key & routing_key_file must be configured");
    }
    if c.service_key.is_some() || c.service_key_file.is_some() {
        return invalid(
            "pagerduty_configs: service_key (Events API v1) is not supported by vigil; use routing_key (Events API v2)",
        );
    }
    if c.routing_key.is_none() && c.routing_key_file.is_none() {
        return invalid("missing service or routing key in PagerDuty config");
    }
    let url = c
        .url
        .clone()
        .or_else(|| g.pagerduty_url.clone())
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let parsed = reqwest::Url::parse(&url)
        .map_err(|e| ConfigError::Invalid(format!("parse pagerduty url {url:?}: {e}")))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return invalid(&format!(
            "unsupported scheme {:?} for pagerduty url",
            parsed.scheme()
        ));
    }
    let mut details = c.details.clone().unwrap_or_default();
    for (k, v) in default_details() {
        details
            .entry(k.to_string())
            .or_insert_with(|| v.to_string());
    }
    let mut http_config = c
        .http_config
        .clone()
        .unwrap_or_else(|| g.http_config.clone());
    http_config
        .validate()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let client = c
        .client
        .clone()
        .unwrap_or_else(|| r#"{{ template "pagerduty.default.client" . }}"#.into());
    Ok(PagerdutyConfig {
        send_resolved: c.send_resolved.unwrap_or(true),
        http_config,
        routing_key: c.routing_key.as_ref().map(|k| k.expose().to_string()),
        routing_key_file: c.routing_key_file.clone(),
        url,
        source: c.source.clone().unwrap_or_else(|| client.clone()),
        client,
        client_url: c
            .client_url
            .clone()
            .unwrap_or_else(|| r#"{{ template "pagerduty.default.clientURL" . }}"#.into()),
        description: c
            .description
            .clone()
            .unwrap_or_else(|| r#"{{ template "pagerduty.default.description" .}}"#.into()),
        details,
        images: c.images.clone(),
        links: c.links.clone(),
        severity: c.severity.clone().unwrap_or_else(|| "error".into()),
        class: c.class.clone().unwrap_or_default(),
        component: c.component.clone().unwrap_or_default(),
        group: c.group.clone().unwrap_or_default(),
    })
}

#[derive(Serialize)]
struct Payload {
    summary: String,
    source: String,
    severity: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    class: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    component: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    custom_details: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Event {
    routing_key: String,
    dedup_key: String,
    event_action: &'static str,
    payload: Payload,
    #[serde(skip_serializing_if = "String::is_empty")]
    client: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    client_url: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    images: Vec<PagerdutyImage>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<PagerdutyLink>,
}

/// A PagerDuty integration with its HTTP client and the configuration's templates.
pub struct Pagerduty {
    cfg: PagerdutyConfig,
    http: HttpPoster,
    tmpl: Arc<Templates>,
}

/// Alertmanager's group key hash: hex SHA-256 of the group key.
pub fn dedup_key(group_key: &str) -> String {
    Sha256::digest(group_key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Pagerduty {
    pub fn new(
        cfg: &PagerdutyConfig,
        tmpl: Arc<Templates>,
    ) -> Result<Pagerduty, web::client::ClientError> {
        Ok(Pagerduty {
            http: HttpPoster::new(&cfg.http_config)?,
            cfg: cfg.clone(),
            tmpl,
        })
    }

    fn body(
        &self,
        data: &TemplateData,
        group_key: &str,
        routing_key: String,
    ) -> Result<Vec<u8>, (bool, String)> {
        let value = data_value(data);
        let mut r = Renderer::new(&self.tmpl, &value);
        let c = &self.cfg;
        let custom_details = c
            .details
            .iter()
            .map(|(k, v)| (k.clone(), r.text(v)))
            .collect();
        let images = c
            .images
            .iter()
            .map(|i| PagerdutyImage {
                src: r.text(&i.src),
                alt: r.text(&i.alt),
                href: r.text(&i.href),
            })
            .collect();
        let links = c
            .links
            .iter()
            .map(|l| PagerdutyLink {
                href: r.text(&l.href),
                text: r.text(&l.text),
            })
            .collect();
        let event = Event {
            routing_key: r.text(&routing_key),
            dedup_key: dedup_key(group_key),
            event_action: if data.status == "firing" {
                "trigger"
            } else {
                "resolve"
            },
            payload: Payload {
                summary: truncate(r.text(&c.description), MAX_SUMMARY_RUNES),
                source: r.text(&c.source),
                severity: r.text(&c.severity),
                class: r.text(&c.class),
                component: r.text(&c.component),
                group: r.text(&c.group),
                custom_details,
            },
            client: r.text(&c.client),
            client_url: r.text(&c.client_url),
            images,
            links,
        };
        r.finish()?;
        Ok(crate::gojson::to_vec(&event))
    }

    /// Sends one event for the group `group_key`.
    pub async fn send(&self, data: &TemplateData, group_key: &str) -> SendResult {
        let key = match (&self.cfg.routing_key, &self.cfg.routing_key_file) {
            (Some(k), _) => k.clone(),
            (None, Some(f)) => read_secret_file(f)?,
            (None, None) => return Err((false, "no routing key configured".to_string())),
        };
        let body = self.body(data, group_key, key)?;
        self.http.post_json(&self.cfg.url, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::receivers::testsink::{self, down_alert as data};

    const GROUP_KEY: &str = r#"{}:{alertname="Down"}"#;

    /// The bodies are what Debian's Alertmanager 0.25 posted for the same configuration and
    /// alert (`amtool alert add Down job=api instance=a:1 --annotation=summary='a <down>'`, then
    /// the same alert ended).
    #[tokio::test]
    async fn events_like_alertmanager() {
        let mut sink = testsink::start().await;
        let text = "route: {receiver: r}\nreceivers:\n- name: r\n  pagerduty_configs:\n  - url: URL/pd\n    routing_key: rk123\n  - url: URL/pd2\n    routing_key: rk2\n    send_resolved: false\n    severity: '{{ .CommonLabels.job }}'\n    class: c\n    component: comp\n    group: g\n    source: src\n    details: {firing: 'x', extra: 'e {{ .Status }}'}\n    images: [{src: 'http://i/{{ .Status }}', alt: a, href: h}]\n    links: [{href: 'http://l', text: t}]\n"
        .replace("URL", &sink.url);
        let cfg = Config::parse(&text).unwrap();
        let tmpl = Arc::new(Templates::defaults());
        let pd: Vec<Pagerduty> = cfg.receivers[0]
            .pagerduty
            .iter()
            .map(|c| Pagerduty::new(c, tmpl.clone()).unwrap())
            .collect();
        assert!(pd[0].cfg.send_resolved && !pd[1].cfg.send_resolved);
        #[track_caller]
        fn check(got: (String, Vec<u8>), path: &str, want: &str) {
            assert_eq!(got.0, path);
            assert_eq!(String::from_utf8(got.1).unwrap(), format!("{want}\n"));
        }
        pd[0].send(&data("firing"), GROUP_KEY).await.unwrap();
        check(
            sink.rx.recv().await.unwrap(),
            "/pd",
            r#"{"routing_key":"rk123","dedup_key":"af94c9e8f6a3043625e36c6f472fe6be85ac23a9117184ee4cb7b4ad7401a47e","event_action":"trigger","payload":{"summary":"[FIRING:1] Down (a:1 api)","source":"Alertmanager","severity":"error","custom_details":{"firing":"Labels:\n - alertname = Down\n - instance = a:1\n - job = api\nAnnotations:\n - summary = a \u003cdown\u003e\nSource: \n","num_firing":"1","num_resolved":"0","resolved":""}},"client":"Alertmanager","client_url":"http://am.example:9093/#/alerts?receiver=r"}"#,
        );
        pd[0].send(&data("resolved"), GROUP_KEY).await.unwrap();
        check(
            sink.rx.recv().await.unwrap(),
            "/pd",
            r#"{"routing_key":"rk123","dedup_key":"af94c9e8f6a3043625e36c6f472fe6be85ac23a9117184ee4cb7b4ad7401a47e","event_action":"resolve","payload":{"summary":"[RESOLVED] Down (a:1 api)","source":"Alertmanager","severity":"error","custom_details":{"firing":"","num_firing":"0","num_resolved":"1","resolved":"Labels:\n - alertname = Down\n - instance = a:1\n - job = api\nAnnotations:\n - summary = a \u003cdown\u003e\nSource: \n"}},"client":"Alertmanager","client_url":"http://am.example:9093/#/alerts?receiver=r"}"#,
        );
        pd[1].send(&data("firing"), GROUP_KEY).await.unwrap();
        check(
            sink.rx.recv().await.unwrap(),
            "/pd2",
            r#"{"routing_key":"rk2","dedup_key":"af94c9e8f6a3043625e36c6f472fe6be85ac23a9117184ee4cb7b4ad7401a47e","event_action":"trigger","payload":{"summary":"[FIRING:1] Down (a:1 api)","source":"src","severity":"api","class":"c","component":"comp","group":"g","custom_details":{"extra":"e firing","firing":"x","num_firing":"1","num_resolved":"0","resolved":""}},"client":"Alertmanager","client_url":"http://am.example:9093/#/alerts?receiver=r","images":[{"src":"http://i/firing","alt":"a","href":"h"}],"links":[{"href":"http://l","text":"t"}]}"#,
        );
    }

    #[test]
    fn validation() {
        #[track_caller]
        fn bad(cfg: &str, want: &str) {
            let text = format!(
                "route: {{receiver: r}}\nreceivers: [{{name: r, pagerduty_configs: [{cfg}]}}]\n"
            );
            let err = Config::parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        bad("{}", "missing service or routing key in PagerDuty config");
        bad(
            "{routing_key: a, routing_key_file: f}",
            "at most one of routing_key",
        );
        bad("{service_key: a}", "Events API v1");
        bad("{routing_key: a, url: 'ftp://x'}", "unsupported scheme");
        let c = Config::parse(
            "global: {pagerduty_url: 'http://pd/x'}\nroute: {receiver: r}\nreceivers: [{name: r, pagerduty_configs: [{routing_key: k}]}]\n",
        )
        .unwrap();
        assert_eq!(c.receivers[0].pagerduty[0].url, "http://pd/x");
        assert_eq!(c.receivers[0].pagerduty[0].details.len(), 4);
    }
}
