//! Receivers besides the webhook (which lives in `notify`): Slack and email. Each owns its
//! configuration as written (`Raw*Config`), its validation with Alertmanager 0.25's defaults and
//! messages, and one send attempt; `notify` wraps them in retries, dedup and the nflog.

pub mod email;
pub mod pagerduty;
pub mod slack;

use template::Value;
use web::client::{Auth, ClientError, HttpClientConfig};

use crate::tmpl::Templates;

/// The outcome of one attempt: `Err((retry, message))` on failure.
pub type SendResult = Result<(), (bool, String)>;

/// Renders a receiver's fields one after the other, keeping the first error, as Alertmanager's
/// `tmplText` helper does (a failed field renders empty and the send fails afterwards).
pub(crate) struct Renderer<'a> {
    tmpl: &'a Templates,
    data: &'a Value,
    err: Option<String>,
}

impl<'a> Renderer<'a> {
    pub(crate) fn new(tmpl: &'a Templates, data: &'a Value) -> Self {
        Renderer {
            tmpl,
            data,
            err: None,
        }
    }

    pub(crate) fn text(&mut self, text: &str) -> String {
        if self.err.is_some() {
            return String::new();
        }
        match self.tmpl.text(text, self.data) {
            Ok(s) => s,
            Err(e) => {
                self.err = Some(e);
                String::new()
            }
        }
    }

    /// The first template error, not worth retrying.
    pub(crate) fn finish(self) -> SendResult {
        match self.err {
            Some(e) => Err((false, e)),
            None => Ok(()),
        }
    }
}

/// An HTTP client with the receiver's `http_config` applied.
pub(crate) struct HttpPoster {
    client: reqwest::Client,
    auth: Auth,
}

impl HttpPoster {
    pub(crate) fn new(cfg: &HttpClientConfig) -> Result<HttpPoster, ClientError> {
        Ok(HttpPoster {
            client: web::client::build_client(cfg, None)?,
            auth: Auth::from_config(cfg)?,
        })
    }

    /// POSTs a JSON body; 5xx and 429 answers and transport errors are worth a retry.
    pub(crate) async fn post_json(&self, url: &str, body: Vec<u8>) -> SendResult {
        let req = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .header(
                "User-Agent",
                concat!("Vigil-Alertmanager/", env!("CARGO_PKG_VERSION")),
            )
            .body(body);
        let req = self
            .auth
            .apply_auth(req)
            .map_err(|e| (false, e.to_string()))?;
        let resp = req.send().await.map_err(|e| {
            let e = e.without_url();
            (
                true,
                format!("Post {:?}: {}", redact(url), web::error_chain(&e)),
            )
        })?;
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let mut msg = format!("unexpected status code {}", status.as_u16());
        let text = String::from_utf8_lossy(&body[..body.len().min(1024)]);
        if !text.trim().is_empty() {
            msg.push_str(&format!(": {}", text.trim()));
        }
        Err((status.is_server_error() || status.as_u16() == 429, msg))
    }
}

/// The URL with its password and path hidden: Slack and PagerDuty URLs carry their secret in
/// the path.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/<redacted>",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<redacted>".to_string(),
    }
}

/// Reads a secret file (`api_url_file`), trimmed as Alertmanager does.
pub(crate) fn read_secret_file(path: &str) -> Result<String, (bool, String)> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| (true, format!("read {path}: {e}")))
}

/// Truncates to `max` characters, ending in `…` when cut (Alertmanager's `TruncateInRunes`).
pub(crate) fn truncate(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// An HTTP server for tests that records each request's path and body and answers with a set
/// status, and the alert group the receivers' tests send.
#[cfg(test)]
pub(crate) mod testsink {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU16, Ordering};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{StatusCode, Uri};
    use model::Labels;
    use tokio::sync::mpsc;

    use crate::notify::{TemplateAlert, TemplateData};

    pub(crate) struct Sink {
        pub url: String,
        pub status: Arc<AtomicU16>,
        pub rx: mpsc::Receiver<(String, Vec<u8>)>,
    }

    #[derive(Clone)]
    struct St {
        tx: mpsc::Sender<(String, Vec<u8>)>,
        status: Arc<AtomicU16>,
    }

    async fn handle(State(st): State<St>, uri: Uri, body: Bytes) -> StatusCode {
        let _ = st.tx.send((uri.path().to_string(), body.to_vec())).await;
        StatusCode::from_u16(st.status.load(Ordering::Relaxed)).unwrap_or(StatusCode::OK)
    }

    pub(crate) async fn start() -> Sink {
        let (tx, rx) = mpsc::channel(16);
        let status = Arc::new(AtomicU16::new(200));
        let st = St {
            tx,
            status: status.clone(),
        };
        let app = axum::Router::new()
            .fallback(axum::routing::post(handle))
            .with_state(st);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Sink { url, status, rx }
    }

    /// The group the receivers' tests notify about: one alert `Down{instance="a:1",job="api"}`
    /// with summary `a <down>`, as `amtool alert add Down job=api instance=a:1
    /// --annotation=summary='a <down>'` sent it to Debian's Alertmanager 0.25 when their
    /// expected bodies were recorded (`status` "firing", or "resolved" once ended).
    pub(crate) fn down_alert(status: &'static str) -> TemplateData {
        let l = Labels::from_pairs([("alertname", "Down"), ("instance", "a:1"), ("job", "api")]);
        TemplateData {
            receiver: "r".into(),
            status,
            alerts: vec![TemplateAlert {
                status,
                labels: l.clone(),
                annotations: Labels::from_pairs([("summary", "a <down>")]),
                starts_at: "2024-03-01T10:00:00Z".into(),
                ends_at: "0001-01-01T00:00:00Z".into(),
                generator_url: String::new(),
                fingerprint: "0123456789abcdef".into(),
            }],
            group_labels: Labels::from_pairs([("alertname", "Down")]),
            common_labels: l,
            common_annotations: Labels::from_pairs([("summary", "a <down>")]),
            external_url: "http://am.example:9093".into(),
        }
    }
}
