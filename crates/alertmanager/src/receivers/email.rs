//! `email_configs`: one email per notification over SMTP (lettre), with Alertmanager 0.25's
//! defaults: `From`/`To`/`Subject` headers from the templates, an HTML body from
//! `email.default.html`, STARTTLS required unless `require_tls: false`, TLS from the first byte
//! on port 465, and the `global.smtp_*` settings as defaults.
//!
//! Differences from Alertmanager: authentication is AUTH PLAIN or LOGIN whenever
//! `auth_username` is set (Alertmanager skips it when the server does not offer AUTH, and also
//! speaks CRAM-MD5, so `auth_secret` is refused here); `auth_identity` is not sent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use web::client::{Secret, TlsConfig};

use super::{Renderer, SendResult};
use crate::config::{ConfigError, GlobalConfig};
use crate::notify::TemplateData;
use crate::tmpl::{Templates, data_value};

/// Bounds one SMTP conversation; the pipeline's retry deadline bounds the whole send.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// `email_configs[]`, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmailConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_resolved: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smarthost: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_identity: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_tls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
}

/// A validated email integration; `to`, `from`, header values, `html` and `text` are templates.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    pub send_resolved: bool,
    pub to: String,
    pub from: String,
    pub hello: String,
    pub host: String,
    pub port: u16,
    pub auth_username: String,
    pub auth_password: Secret,
    pub auth_secret: Secret,
    pub auth_identity: String,
    /// Names title-cased as Alertmanager does (`x-priority` → `X-Priority`).
    pub headers: BTreeMap<String, String>,
    pub html: String,
    pub text: String,
    pub require_tls: bool,
    pub tls_config: TlsConfig,
}

/// Go's `strings.Title`: each letter that follows a separator is upper-cased.
fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut after_sep = true;
    for c in s.chars() {
        if after_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        after_sep = !(c.is_alphanumeric() || c == '_');
    }
    out
}

/// `host:port`, as Go's `net.SplitHostPort` reads it.
fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("address {s}: missing port in address"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("address {s}: invalid port"))?;
    Ok((host.to_string(), port))
}

/// Validates one `email_configs` entry against the global settings.
pub fn validate(c: &RawEmailConfig, g: &GlobalConfig) -> Result<EmailConfig, ConfigError> {
    let invalid = |m: String| Err(ConfigError::Invalid(m));
    let to = c.to.clone().unwrap_or_default();
    if to.is_empty() {
        return invalid("missing to address in email config".into());
    }
    let mut headers = BTreeMap::new();
    for (k, v) in &c.headers {
        let k = title_case(k);
        if headers.insert(k.clone(), v.clone()).is_some() {
            return invalid(format!("duplicate header {k:?} in email config"));
        }
    }
    let smarthost = c
        .smarthost
        .clone()
        .unwrap_or_else(|| g.smtp_smarthost.clone());
    if smarthost.is_empty() {
        return invalid("no global SMTP smarthost set".into());
    }
    let (host, port) = split_host_port(&smarthost).map_err(ConfigError::Invalid)?;
    let from = c.from.clone().unwrap_or_else(|| g.smtp_from.clone());
    if from.is_empty() {
        return invalid("no global SMTP from set".into());
    }
    headers.entry("From".into()).or_insert_with(|| from.clone());
    headers.entry("To".into()).or_insert_with(|| to.clone());
    headers
        .entry("Subject".into())
        .or_insert_with(|| r#"{{ template "email.default.subject" . }}"#.into());
    let or_global = |v: &Option<String>, g: &String| v.clone().unwrap_or_else(|| g.clone());
    let or_global_secret = |v: &Option<Secret>, g: &Secret| v.clone().unwrap_or_else(|| g.clone());
    let auth_secret = or_global_secret(&c.auth_secret, &g.smtp_auth_secret);
    if !auth_secret.is_empty() {
        // Alertmanager answers CRAM-MD5 with it; lettre has no CRAM-MD5, and silently
        // trying another mechanism without the password would only fail at the server.
        return invalid(
            "auth_secret (SMTP CRAM-MD5) is not supported by vigil; use auth_password".into(),
        );
    }
    Ok(EmailConfig {
        send_resolved: c.send_resolved.unwrap_or(false),
        to,
        from,
        hello: or_global(&c.hello, &g.smtp_hello),
        host,
        port,
        auth_username: or_global(&c.auth_username, &g.smtp_auth_username),
        auth_password: or_global_secret(&c.auth_password, &g.smtp_auth_password),
        auth_secret,
        auth_identity: or_global(&c.auth_identity, &g.smtp_auth_identity),
        headers,
        html: c
            .html
            .clone()
            .unwrap_or_else(|| r#"{{ template "email.default.html" . }}"#.into()),
        text: c.text.clone().unwrap_or_default(),
        require_tls: c.require_tls.unwrap_or(g.smtp_require_tls),
        tls_config: c.tls_config.clone().unwrap_or_default(),
    })
}

/// An email integration with the configuration's templates.
pub struct Email {
    cfg: EmailConfig,
    tmpl: Arc<Templates>,
}

/// A failure worth a retry (the server or the network may recover).
fn transient(msg: String) -> (bool, String) {
    (true, msg)
}

fn permanent(msg: String) -> (bool, String) {
    (false, msg)
}

impl Email {
    pub fn new(cfg: &EmailConfig, tmpl: Arc<Templates>) -> Email {
        Email {
            cfg: cfg.clone(),
            tmpl,
        }
    }

    /// The message for `data`, or the first template or address error.
    fn message(&self, data: &TemplateData) -> Result<Message, (bool, String)> {
        let value = data_value(data);
        let mut r = Renderer::new(&self.tmpl, &value);
        let c = &self.cfg;
        let from = r.text(&c.from);
        let to = r.text(&c.to);
        let headers: Vec<(String, String)> = c
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), r.text(v)))
            .collect();
        // compat: Alertmanager renders `html` with Go's html/template, which also escapes
        // data printed without an explicit `html`; vigil's engine is text/template only.
        let html = r.text(&c.html);
        let text = r.text(&c.text);
        r.finish()?;

        let from_addr =
            first_address(&from).map_err(|e| permanent(format!("parse 'from' addresses: {e}")))?;
        let to_addrs: Vec<Address> = to
            .parse::<Mailboxes>()
            .map_err(|e| permanent(format!("parse 'to' addresses: {e}")))?
            .into_iter()
            .map(|m| m.email)
            .collect();
        let envelope = lettre::address::Envelope::new(Some(from_addr), to_addrs)
            .map_err(|e| permanent(format!("build envelope: {e}")))?;
        // Like Alertmanager: a Date and a random Message-Id at this host.
        let mut b = Message::builder()
            .envelope(envelope)
            .date_now()
            .message_id(None);
        for (k, v) in headers {
            let name = HeaderName::new_from_ascii(k.clone())
                .map_err(|_| permanent(format!("invalid header name {k:?}")))?;
            b = b.raw_header(HeaderValue::new(name, v));
        }
        let body = match (text.is_empty(), html.is_empty()) {
            (false, false) => MultiPart::alternative_plain_html(text, html),
            (false, true) => MultiPart::alternative().singlepart(SinglePart::plain(text)),
            (true, _) => MultiPart::alternative().singlepart(SinglePart::html(html)),
        };
        b.multipart(body)
            .map_err(|e| permanent(format!("build email: {e}")))
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, (bool, String)> {
        let c = &self.cfg;
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.as_str())
            .port(c.port)
            .hello_name(ClientId::Domain(c.hello.clone()))
            .timeout(Some(SMTP_TIMEOUT));
        // compat: Alertmanager speaks TLS from the first byte on port 465, else STARTTLS when
        // require_tls is set, else plain SMTP (it never upgrades on its own).
        if c.port == 465 || c.require_tls {
            let params = self.tls_params()?;
            b = b.tls(if c.port == 465 {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            });
        } else {
            b = b.tls(Tls::None);
        }
        if !c.auth_username.is_empty() {
            b = b
                .credentials(Credentials::new(
                    c.auth_username.clone(),
                    c.auth_password.expose().to_string(),
                ))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(b.build())
    }

    fn tls_params(&self) -> Result<TlsParameters, (bool, String)> {
        let t = &self.cfg.tls_config;
        let name = if t.server_name.is_empty() {
            self.cfg.host.clone()
        } else {
            t.server_name.clone()
        };
        let mut p =
            TlsParameters::builder(name).dangerous_accept_invalid_certs(t.insecure_skip_verify);
        let ca = if !t.ca_file.is_empty() {
            std::fs::read(&t.ca_file)
                .map_err(|e| transient(format!("read ca_file {}: {e}", t.ca_file)))?
        } else {
            t.ca.clone().into_bytes()
        };
        if !ca.is_empty() {
            let cert =
                Certificate::from_pem(&ca).map_err(|e| permanent(format!("load CA: {e}")))?;
            p = p.add_root_certificate(cert);
        }
        p.build()
            .map_err(|e| permanent(format!("TLS settings: {e}")))
    }

    /// Sends one notification.
    pub async fn send(&self, data: &TemplateData) -> SendResult {
        let msg = self.message(data)?;
        let transport = self.transport()?;
        match transport.send(msg).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = web::error_chain(&e);
                Err((
                    !e.is_permanent(),
                    format!("send email via {}:{}: {text}", self.cfg.host, self.cfg.port),
                ))
            }
        }
    }
}

fn first_address(s: &str) -> Result<Address, String> {
    s.parse::<Mailboxes>()
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .map(|m| m.email)
        .ok_or_else(|| "no address".to_string())
}

#[cfg(test)]
mod tests {
    use model::Labels;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::sync::mpsc;

    use super::*;
    use crate::config::Config;
    use crate::notify::TemplateAlert;

    /// What the sink saw of one SMTP session.
    #[derive(Debug, Default)]
    struct Session {
        ehlo: String,
        auth: Vec<String>,
        mail_from: String,
        rcpt_to: Vec<String>,
        data: String,
    }

    /// A plain-SMTP server (no STARTTLS) recording each session; `auth` advertises AUTH PLAIN.
    async fn smtp_sink(auth: bool) -> (u16, mpsc::Receiver<Session>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (r, mut w) = conn.into_split();
                    let mut lines = BufReader::new(r).lines();
                    let mut s = Session::default();
                    w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let up = line.to_ascii_uppercase();
                        let reply: &[u8] = if up.starts_with("EHLO") {
                            s.ehlo = line[5..].to_string();
                            if auth {
                                b"250-sink\r\n250 AUTH PLAIN LOGIN\r\n"
                            } else {
                                b"250-sink\r\n250 8BITMIME\r\n"
                            }
                        } else if up.starts_with("AUTH") {
                            s.auth.push(line.clone());
                            b"235 ok\r\n"
                        } else if up.starts_with("MAIL FROM:") {
                            s.mail_from = line[10..].to_string();
                            b"250 ok\r\n"
                        } else if up.starts_with("RCPT TO:") {
                            s.rcpt_to.push(line[8..].to_string());
                            b"250 ok\r\n"
                        } else if up == "DATA" {
                            w.write_all(b"354 go\r\n").await.unwrap();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                s.data.push_str(&l);
                                s.data.push('\n');
                            }
                            b"250 queued\r\n"
                        } else if up == "QUIT" {
                            w.write_all(b"221 bye\r\n").await.unwrap();
                            break;
                        } else {
                            b"250 ok\r\n"
                        };
                        w.write_all(reply).await.unwrap();
                    }
                    let _ = tx.send(s).await;
                });
            }
        });
        (port, rx)
    }

    fn data() -> TemplateData {
        let l = Labels::from_pairs([("alertname", "Down"), ("job", "api")]);
        TemplateData {
            receiver: "ops".into(),
            status: "firing",
            alerts: vec![TemplateAlert {
                status: "firing",
                labels: l.clone(),
                annotations: Labels::from_pairs([("summary", "api is down")]),
                starts_at: "2024-03-01T10:00:00Z".into(),
                ends_at: "0001-01-01T00:00:00Z".into(),
                generator_url: "http://prom/graph".into(),
                fingerprint: "0123456789abcdef".into(),
            }],
            group_labels: Labels::from_pairs([("alertname", "Down")]),
            common_labels: l,
            common_annotations: Labels::from_pairs([("summary", "api is down")]),
            external_url: "http://am".into(),
        }
    }

    fn email(global: &str, cfg: &str) -> Email {
        let text = format!(
            "global: {{{global}}}\nroute: {{receiver: ops}}\nreceivers: [{{name: ops, email_configs: [{cfg}]}}]\n"
        );
        let c = Config::parse(&text).unwrap();
        Email::new(&c.receivers[0].email[0], Arc::new(Templates::defaults()))
    }

    #[tokio::test]
    async fn sends_alertmanagers_default_email() {
        let (port, mut rx) = smtp_sink(false).await;
        let e = email(
            &format!(
                "smtp_smarthost: '127.0.0.1:{port}', smtp_from: 'am@example.org', smtp_hello: vigil.test"
            ),
            "{to: 'a@example.org, Bob <b@example.org>', require_tls: false, headers: {x-team: '{{ .CommonLabels.job }}'}, text: 'text {{ .Status }}'}",
        );
        e.send(&data()).await.unwrap();
        let s = rx.recv().await.unwrap();
        assert_eq!(s.ehlo, "vigil.test");
        assert_eq!(s.mail_from, "<am@example.org>");
        assert_eq!(s.rcpt_to, ["<a@example.org>", "<b@example.org>"]);
        assert!(s.auth.is_empty());
        let d = &s.data;
        for want in [
            "From: am@example.org\n",
            "Message-ID: <",
            "Date: ",
            "To: a@example.org, Bob <b@example.org>\n",
            "Subject: [FIRING:1] Down (api)\n",
            "X-Team: api\n",
            "Content-Type: multipart/alternative",
            "Content-Type: text/plain; charset=utf-8",
            "text firing",
            "Content-Type: text/html; charset=utf-8",
            "summary =3D api is down",
        ] {
            assert!(d.contains(want), "missing {want:?} in:\n{d}");
        }
    }

    #[tokio::test]
    async fn auth_and_tls_rules() {
        let (port, mut rx) = smtp_sink(true).await;
        let host = format!("smtp_smarthost: '127.0.0.1:{port}', smtp_from: 'am@example.org'");
        let e = email(
            &format!("{host}, smtp_auth_username: u, smtp_auth_password: p"),
            "{to: a@example.org, require_tls: false}",
        );
        e.send(&data()).await.unwrap();
        let s = rx.recv().await.unwrap();
        // "\0u\0p" in base64.
        assert_eq!(s.auth, ["AUTH PLAIN AHUAcA=="]);
        // require_tls (the default) against a server without STARTTLS: no mail goes out.
        let e = email(&host, "{to: a@example.org}");
        let (_, msg) = e.send(&data()).await.unwrap_err();
        assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
        let s = rx.recv().await.unwrap();
        assert!(s.mail_from.is_empty(), "{s:?}");
        // A template error is not retried.
        let e = email(
            &host,
            "{to: '{{ template \"nope\" . }}', require_tls: false}",
        );
        let (retry, msg) = e.send(&data()).await.unwrap_err();
        assert!(!retry && msg.contains("nope"), "{msg}");
    }

    #[test]
    fn validation() {
        #[track_caller]
        fn bad(global: &str, cfg: &str, want: &str) {
            let text = format!(
                "global: {{{global}}}\nroute: {{receiver: r}}\nreceivers: [{{name: r, email_configs: [{cfg}]}}]\n"
            );
            let err = Config::parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        let g = "smtp_smarthost: 'h:25', smtp_from: f@x";
        bad(g, "{}", "missing to address in email config");
        bad(
            "smtp_from: f@x",
            "{to: a@x}",
            "no global SMTP smarthost set",
        );
        bad(
            "smtp_smarthost: 'h:25'",
            "{to: a@x}",
            "no global SMTP from set",
        );
        bad(
            "smtp_from: f@x",
            "{to: a@x, smarthost: h}",
            "missing port in address",
        );
        bad(
            g,
            "{to: a@x, headers: {subject: a, Subject: b}}",
            "duplicate header \"Subject\"",
        );
        bad(g, "{to: a@x, tls: {}}", "tls");
        bad(g, "{to: a@x, auth_secret: s}", "CRAM-MD5");
        let c = Config::parse(&format!(
            "global: {{{g}, smtp_require_tls: false}}\nroute: {{receiver: r}}\nreceivers: [{{name: r, email_configs: [{{to: a@x, headers: {{x-priority: '1'}}}}]}}]\n"
        ))
        .unwrap();
        let e = &c.receivers[0].email[0];
        assert!(!e.require_tls && !e.send_resolved);
        assert_eq!(
            (e.host.as_str(), e.port, e.hello.as_str()),
            ("h", 25, "localhost")
        );
        assert_eq!(
            e.headers.keys().collect::<Vec<_>>(),
            ["From", "Subject", "To", "X-Priority"]
        );
        assert_eq!(e.html, r#"{{ template "email.default.html" . }}"#);
    }
}
