//! `slack_configs`: one attachment per notification, posted to an incoming-webhook or
//! `chat.postMessage` URL in the JSON shape Alertmanager 0.25 sends.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use web::client::{HttpClientConfig, Secret};

use super::{HttpPoster, Renderer, SendResult, read_secret_file, truncate};
use crate::config::{ConfigError, GlobalConfig};
use crate::notify::TemplateData;
use crate::tmpl::{Templates, data_value};

/// Slack cuts titles longer than this (in characters); Alertmanager truncates them first.
const MAX_TITLE_RUNES: usize = 1024;

/// `slack_configs[].fields[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackField {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short: Option<bool>,
}

/// `slack_configs[].actions[].confirm`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfirm {
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ok_text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dismiss_text: String,
}

/// `slack_configs[].actions[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackAction {
    #[serde(default, rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub style: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm: Option<SlackConfirm>,
}

/// `slack_configs[]`, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlackConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_resolved: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_config: Option<HttpClientConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretext: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<SlackField>,
    #[serde(default)]
    pub short_fields: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_url: Option<String>,
    #[serde(default)]
    pub link_names: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrkdwn_in: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<SlackAction>,
}

/// A validated Slack integration: every text is a template, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackConfig {
    pub send_resolved: bool,
    pub http_config: HttpClientConfig,
    pub api_url: Option<String>,
    pub api_url_file: Option<String>,
    pub channel: String,
    pub username: String,
    pub color: String,
    pub title: String,
    pub title_link: String,
    pub pretext: String,
    pub text: String,
    pub fields: Vec<SlackField>,
    pub short_fields: bool,
    pub footer: String,
    pub fallback: String,
    pub callback_id: String,
    pub icon_emoji: String,
    pub icon_url: String,
    pub image_url: String,
    pub thumb_url: String,
    pub link_names: bool,
    pub mrkdwn_in: Vec<String>,
    pub actions: Vec<SlackAction>,
}

fn tmpl_default(v: &Option<String>, name: &str) -> String {
    v.clone()
        .unwrap_or_else(|| format!("{{{{ template \"slack.default.{name}\" . }}}}"))
}

/// Validates one `slack_configs` entry against the global settings.
pub fn validate(c: &RawSlackConfig, g: &GlobalConfig) -> Result<SlackConfig, ConfigError> {
    let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
    if c.api_url.is_some() && c.api_url_file.is_some() {
        return invalid("at most one of api_url & api_url_file must be configured");
    }
    let (api_url, api_url_file) = match (&c.api_url, &c.api_url_file) {
        (Some(u), _) => (Some(u.expose().to_string()), None),
        (None, Some(f)) => (None, Some(f.clone())),
        (None, None) => match (&g.slack_api_url, &g.slack_api_url_file) {
            (Some(u), _) => (Some(u.expose().to_string()), None),
            (None, Some(f)) => (None, Some(f.clone())),
            (None, None) => {
                return invalid("no global Slack API URL set either inline or in a file");
            }
        },
    };
    if let Some(u) = &api_url {
        let parsed = reqwest::Url::parse(u)
            .map_err(|e| ConfigError::Invalid(format!("parse slack api_url: {e}")))?;
        if parsed.scheme() != "http" && parsed.scheme() != "https" {
            return invalid(&format!(
                "unsupported scheme {:?} for slack api_url",
                parsed.scheme()
            ));
        }
    }
    for a in &c.actions {
        if a.type_.is_empty() {
            return invalid("missing type in Slack action configuration");
        }
        if a.text.is_empty() {
            return invalid("missing text in Slack action configuration");
        }
        if a.url.is_empty() && a.name.is_empty() {
            return invalid("missing name or url in Slack action configuration");
        }
    }
    for f in &c.fields {
        if f.title.is_empty() {
            return invalid("missing title in Slack field configuration");
        }
        if f.value.is_empty() {
            return invalid("missing value in Slack field configuration");
        }
    }
    let mut http_config = c
        .http_config
        .clone()
        .unwrap_or_else(|| g.http_config.clone());
    http_config
        .validate()
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    Ok(SlackConfig {
        send_resolved: c.send_resolved.unwrap_or(false),
        http_config,
        api_url,
        api_url_file,
        channel: c.channel.clone().unwrap_or_default(),
        username: tmpl_default(&c.username, "username"),
        color: c.color.clone().unwrap_or_else(|| {
            r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#.to_string()
        }),
        title: tmpl_default(&c.title, "title"),
        title_link: tmpl_default(&c.title_link, "titlelink"),
        pretext: tmpl_default(&c.pretext, "pretext"),
        text: tmpl_default(&c.text, "text"),
        fields: c.fields.clone(),
        short_fields: c.short_fields,
        footer: tmpl_default(&c.footer, "footer"),
        fallback: tmpl_default(&c.fallback, "fallback"),
        callback_id: tmpl_default(&c.callback_id, "callbackid"),
        icon_emoji: tmpl_default(&c.icon_emoji, "iconemoji"),
        icon_url: tmpl_default(&c.icon_url, "iconurl"),
        image_url: c.image_url.clone().unwrap_or_default(),
        thumb_url: c.thumb_url.clone().unwrap_or_default(),
        link_names: c.link_names,
        mrkdwn_in: c
            .mrkdwn_in
            .clone()
            .unwrap_or_else(|| vec!["fallback".into(), "pretext".into(), "text".into()]),
        actions: c.actions.clone(),
    })
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize)]
struct Request {
    #[serde(skip_serializing_if = "String::is_empty")]
    channel: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    icon_emoji: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    icon_url: String,
    #[serde(skip_serializing_if = "is_false")]
    link_names: bool,
    attachments: Vec<Attachment>,
}

#[derive(Serialize)]
struct Attachment {
    #[serde(skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    title_link: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pretext: String,
    text: String,
    fallback: String,
    callback_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<SlackField>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<SlackAction>,
    #[serde(skip_serializing_if = "String::is_empty")]
    image_url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    thumb_url: String,
    footer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    color: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mrkdwn_in: Vec<String>,
}

/// A Slack integration with its HTTP client and the configuration's templates.
pub struct Slack {
    cfg: SlackConfig,
    http: HttpPoster,
    tmpl: Arc<Templates>,
}

impl Slack {
    pub fn new(cfg: &SlackConfig, tmpl: Arc<Templates>) -> Result<Slack, web::client::ClientError> {
        Ok(Slack {
            http: HttpPoster::new(&cfg.http_config)?,
            cfg: cfg.clone(),
            tmpl,
        })
    }

    /// The JSON body for `data`, or the first template error.
    fn body(&self, data: &TemplateData) -> Result<Vec<u8>, (bool, String)> {
        let value = data_value(data);
        let mut r = Renderer::new(&self.tmpl, &value);
        let c = &self.cfg;
        let fields = c
            .fields
            .iter()
            .map(|f| SlackField {
                title: r.text(&f.title),
                value: r.text(&f.value),
                short: Some(f.short.unwrap_or(c.short_fields)),
            })
            .collect();
        let actions = c
            .actions
            .iter()
            .map(|a| SlackAction {
                type_: r.text(&a.type_),
                text: r.text(&a.text),
                url: r.text(&a.url),
                style: r.text(&a.style),
                name: r.text(&a.name),
                value: r.text(&a.value),
                // compat: Alertmanager 0.25 accepts `confirm` but does not send it.
                confirm: None,
            })
            .collect();
        let attachment = Attachment {
            title: truncate(r.text(&c.title), MAX_TITLE_RUNES),
            title_link: r.text(&c.title_link),
            pretext: r.text(&c.pretext),
            text: r.text(&c.text),
            fallback: r.text(&c.fallback),
            callback_id: r.text(&c.callback_id),
            fields,
            actions,
            image_url: r.text(&c.image_url),
            thumb_url: r.text(&c.thumb_url),
            footer: r.text(&c.footer),
            color: r.text(&c.color),
            mrkdwn_in: c.mrkdwn_in.clone(),
        };
        let req = Request {
            channel: r.text(&c.channel),
            username: r.text(&c.username),
            icon_emoji: r.text(&c.icon_emoji),
            icon_url: r.text(&c.icon_url),
            link_names: c.link_names,
            attachments: vec![attachment],
        };
        r.finish()?;
        Ok(crate::gojson::to_vec(&req))
    }

    /// Sends one notification.
    pub async fn send(&self, data: &TemplateData) -> SendResult {
        let body = self.body(data)?;
        let url = match (&self.cfg.api_url, &self.cfg.api_url_file) {
            (Some(u), _) => u.clone(),
            (None, Some(f)) => read_secret_file(f)?,
            (None, None) => return Err((false, "no Slack API URL configured".to_string())),
        };
        self.http.post_json(&url, body).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::config::Config;
    use crate::receivers::testsink::{self, down_alert as data};

    fn slack(yaml_cfgs: &str, url: &str) -> Vec<Slack> {
        let text = format!(
            "route: {{receiver: r}}\nreceivers:\n- name: r\n  slack_configs:\n{}",
            yaml_cfgs.replace("URL", url)
        );
        let cfg = Config::parse(&text).unwrap();
        let tmpl = Arc::new(Templates::defaults());
        cfg.receivers[0]
            .slack
            .iter()
            .map(|c| Slack::new(c, tmpl.clone()).unwrap())
            .collect()
    }

    /// The bodies are what Debian's Alertmanager 0.25 posted for the same configuration and
    /// alert (`amtool alert add Down job=api instance=a:1 --annotation=summary='a <down>'`).
    #[tokio::test]
    async fn body_like_alertmanager() {
        let mut sink = testsink::start().await;
        let s = slack(
            "  - api_url: URL/slack\n    channel: '#alerts'\n  - api_url: URL/slack2\n    fields: [{title: 'T {{ .Status }}', value: v}, {title: a, value: b, short: false}]\n    short_fields: true\n    actions: [{type: button, text: 'Go <{{ .Status }}>', url: 'http://x/{{ .Receiver }}', confirm: {text: sure}}]\n    link_names: true\n    icon_emoji: ':x:'\n    image_url: 'http://img'\n    mrkdwn_in: [text]\n",
            &sink.url,
        );
        assert!(!s[0].cfg.send_resolved);
        s[0].send(&data("firing")).await.unwrap();
        let (path, body) = sink.rx.recv().await.unwrap();
        assert_eq!(path, "/slack");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r##"{"channel":"#alerts","username":"Alertmanager","attachments":[{"title":"[FIRING:1] Down (a:1 api)","title_link":"http://am.example:9093/#/alerts?receiver=r","text":"","fallback":"[FIRING:1] Down (a:1 api) | http://am.example:9093/#/alerts?receiver=r","callback_id":"","footer":"","color":"danger","mrkdwn_in":["fallback","pretext","text"]}]}
"##
        );
        s[1].send(&data("firing")).await.unwrap();
        let (path, body) = sink.rx.recv().await.unwrap();
        assert_eq!(path, "/slack2");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"username":"Alertmanager","icon_emoji":":x:","link_names":true,"attachments":[{"title":"[FIRING:1] Down (a:1 api)","title_link":"http://am.example:9093/#/alerts?receiver=r","text":"","fallback":"[FIRING:1] Down (a:1 api) | http://am.example:9093/#/alerts?receiver=r","callback_id":"","fields":[{"title":"T firing","value":"v","short":true},{"title":"a","value":"b","short":false}],"actions":[{"type":"button","text":"Go \u003cfiring\u003e","url":"http://x/r"}],"image_url":"http://img","footer":"","color":"danger","mrkdwn_in":["text"]}]}
"#
        );
    }

    #[tokio::test]
    async fn failures_say_whether_to_retry() {
        let sink = testsink::start().await;
        let s = slack(
            "  - api_url: URL/a\n  - api_url: URL/b\n    title: '{{ .Nope.Missing.x }}{{ template \"none\" . }}'\n",
            &sink.url,
        );
        sink.status.store(503, Ordering::Relaxed);
        let (retry, msg) = s[0].send(&data("firing")).await.unwrap_err();
        assert!(retry && msg.contains("503"), "{msg}");
        sink.status.store(400, Ordering::Relaxed);
        let (retry, msg) = s[0].send(&data("firing")).await.unwrap_err();
        assert!(!retry && msg.contains("400"), "{msg}");
        let (retry, msg) = s[1].send(&data("firing")).await.unwrap_err();
        assert!(!retry && msg.contains("none"), "{msg}");
        let (retry, msg) = slack("  - api_url: http://127.0.0.1:1/x\n", "")[0]
            .send(&data("firing"))
            .await
            .unwrap_err();
        assert!(retry && msg.contains("<redacted>"), "{msg}");
    }

    #[test]
    fn validation() {
        #[track_caller]
        fn bad(global: &str, cfg: &str, want: &str) {
            let text = format!(
                "global: {{{global}}}\nroute: {{receiver: r}}\nreceivers: [{{name: r, slack_configs: [{cfg}]}}]\n"
            );
            let err = Config::parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        bad("", "{}", "no global Slack API URL set");
        bad(
            "",
            "{api_url: 'http://a', api_url_file: f}",
            "at most one of api_url & api_url_file",
        );
        bad("", "{api_url: 'ftp://a'}", "unsupported scheme");
        bad(
            "",
            "{api_url: 'http://a', fields: [{title: t}]}",
            "missing value in Slack field",
        );
        bad(
            "",
            "{api_url: 'http://a', actions: [{type: button, text: t}]}",
            "missing name or url",
        );
        bad("", "{api_url: 'http://a', colour: red}", "colour");
        let c = Config::parse(
            "global: {slack_api_url: 'http://g/x'}\nroute: {receiver: r}\nreceivers: [{name: r, slack_configs: [{send_resolved: true}]}]\n",
        )
        .unwrap();
        let s = &c.receivers[0].slack[0];
        assert_eq!(s.api_url.as_deref(), Some("http://g/x"));
        assert!(s.send_resolved);
        assert_eq!(s.title, r#"{{ template "slack.default.title" . }}"#);
    }
}
