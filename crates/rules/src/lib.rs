//! Recording and alerting rules for `vigil server`: rule files (strict YAML like Prometheus
//! 2.42), group evaluation on Prometheus's aligned schedule, alert state with `for` and
//! `keep_firing_for`, `ALERTS`/`ALERTS_FOR_STATE`, templated labels and annotations, the
//! notifier that posts alerts to every configured Alertmanager, the API data of
//! `/api/v1/rules`, `/alerts` and `/alertmanagers` (queries printed like Prometheus prints
//! them), and promtool's rule unit tests.
//!
//! It never persists samples (it appends through `storage::Appendable`; unit tests use a
//! small in-memory store), never serves HTTP (the server mounts the API data) and never knows
//! which storage it runs on.

pub mod api;
pub mod group;
pub mod manager;
pub mod memstore;
mod metrics;
pub mod notifier;
pub mod rule;
pub mod rulefmt;
pub mod templating;
pub mod unittest;

pub use manager::{Manager, ManagerOptions};
pub use notifier::{AlertSink, AlertingConfig, Notifier, NotifierOptions, NotifyAlert};
pub use rulefmt::RuleFileError;
