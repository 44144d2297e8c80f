//! Rules and alerting in `vigil server`: builds the rule manager and the notifier from the
//! flags and prometheus.yml, applies them at start and on reload, and serves
//! `/api/v1/rules`, `/api/v1/alerts` and `/api/v1/alertmanagers`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use web::api::{ApiError, ApiResult, ok};

use crate::app::App;
use crate::config::{Config, ConfigError};
use crate::flags::ServerFlags;

/// The rule manager and the notifier of one server.
pub struct Alerting {
    pub manager: rules::Manager,
    pub notifier: rules::Notifier,
}

impl Alerting {
    /// Builds both; nothing runs until [`Alerting::start`].
    pub fn new(
        flags: &ServerFlags,
        engine: promql::Engine,
        db: Arc<tsdb::Db>,
        shutdown: CancellationToken,
    ) -> Alerting {
        let notifier = rules::Notifier::new(rules::NotifierOptions {
            queue_capacity: flags.notification_queue_capacity,
        });
        let sink: Arc<dyn rules::AlertSink> = Arc::new(notifier.clone());
        let manager = rules::Manager::new(
            rules::ManagerOptions {
                engine,
                queryable: db.clone(),
                appendable: db,
                sink: Some(sink),
                external_url: external_url(flags),
                outage_tolerance: flags.for_outage_tolerance,
                grace_period: flags.for_grace_period,
                resend_delay: flags.resend_delay,
            },
            shutdown,
        );
        Alerting { manager, notifier }
    }

    /// Starts the notifier's sender and applies the first configuration.
    pub fn start(&self, cfg: &Config, shutdown: CancellationToken) -> Result<(), ConfigError> {
        tokio::spawn(self.notifier.clone().run(shutdown));
        self.apply(cfg)
    }

    /// Applies the `alerting:` section and the rule files. A bad rule file keeps the running
    /// rules.
    pub fn apply(&self, cfg: &Config) -> Result<(), ConfigError> {
        self.notifier
            .apply_config(&cfg.alerting, cfg.external_labels())
            .map_err(|e| ConfigError::Invalid(format!("alerting: {e}")))?;
        self.manager
            .update(
                cfg.global.evaluation_interval,
                &cfg.rule_files,
                &cfg.global.external_labels,
            )
            .map_err(|e| ConfigError::Invalid(format!("error loading rules: {e}")))
    }

    /// The notifier's and the rule groups' metrics in text format.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        self.notifier.render_metrics(&mut out);
        self.manager.render_metrics(&mut out);
        out
    }
}

/// `--web.external-url`, or like Prometheus `http://<hostname>:<port>` when it is not set.
pub(crate) fn external_url(flags: &ServerFlags) -> String {
    if !flags.external_url.is_empty() {
        return flags.external_url.trim_end_matches('/').to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("http://{host}:{}", flags.listen_address.port())
}

/// Checks that every rule file of a config loads (used at startup, where Prometheus exits on a
/// bad rule file).
pub fn check_rule_files(cfg: &Config) -> Result<(), ConfigError> {
    rules::rulefmt::load_all(&cfg.rule_files)
        .map(|_| ())
        .map_err(|e| ConfigError::Invalid(format!("error loading rules: {e}")))
}

/// `GET /api/v1/rules[?type=alert|record]`
pub async fn rules_api(
    State(app): State<App>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Value> {
    let filter = rules::api::RuleTypeFilter::parse(q.get("type").map(String::as_str))
        .map_err(ApiError::bad_data)?;
    ok(rules::api::rules_json(&app.alerting().manager, filter))
}

/// `GET /api/v1/alerts`
pub async fn alerts_api(State(app): State<App>) -> ApiResult<Value> {
    ok(rules::api::alerts_json(&app.alerting().manager))
}

/// `GET /api/v1/alertmanagers`
pub async fn alertmanagers_api(State(app): State<App>) -> ApiResult<Value> {
    ok(rules::api::alertmanagers_json(&app.alerting().notifier))
}
