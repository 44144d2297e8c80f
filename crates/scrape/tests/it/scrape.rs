//! Scrape loops end to end: HTTP, parsing, labels, limits, staleness and the target API.

use std::sync::Arc;
use std::time::Duration;

use model::is_stale_nan;
use scrape::{ManagerOptions, ScrapeConfig, ScrapeManager, TargetHealth};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::{MemStorage, Reply, TestTarget, until};

const WAIT: Duration = Duration::from_secs(10);

pub fn job(yaml: &str) -> ScrapeConfig {
    let mut c: ScrapeConfig = serde_saphyr::from_str(yaml).expect("test config parses");
    c.apply_defaults(Duration::from_secs(60), Duration::from_secs(10));
    c.validate().expect("test config is valid");
    c
}

/// A job scraping `targets` every 200ms with extra YAML lines.
pub fn fast_job(name: &str, targets: &[&TestTarget], extra: &str) -> ScrapeConfig {
    let list: Vec<String> = targets.iter().map(|t| format!("'{}'", t.host())).collect();
    job(&format!(
        "job_name: {name}\nscrape_interval: 200ms\nscrape_timeout: 150ms\nstatic_configs: [{{targets: [{}]}}]\n{extra}",
        list.join(", ")
    ))
}

pub struct Harness {
    pub mgr: ScrapeManager,
    pub store: MemStorage,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Harness {
    pub async fn start(configs: Vec<ScrapeConfig>) -> Harness {
        Self::with_options(configs, ManagerOptions::default()).await
    }

    pub async fn with_options(configs: Vec<ScrapeConfig>, opts: ManagerOptions) -> Harness {
        let store = MemStorage::default();
        let mgr = ScrapeManager::new(Arc::new(store.clone()), opts);
        mgr.apply_config(configs);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(mgr.clone().run(shutdown.clone()));
        Harness {
            mgr,
            store,
            shutdown,
            task,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("manager stops promptly")
            .expect("manager task");
    }

    /// Waits for an `up` sample of the target at `host` with value `v`.
    pub async fn wait_up(&self, host: &str, v: f64) {
        until(&format!("up{{instance={host:?}}} == {v}"), WAIT, || {
            self.store
                .series("up", &[("instance", host)])
                .iter()
                .any(|r| r.v == v)
                .then_some(())
        })
        .await
    }

    /// Waits until the target at `host` reports an error containing `want`.
    pub async fn wait_error(&self, host: &str, want: &str) -> String {
        until(
            &format!("lastError of {host} containing {want:?}"),
            WAIT,
            || {
                self.mgr
                    .targets_active()
                    .into_iter()
                    .find(|t| t.labels.get("instance") == Some(host) && t.last_error.contains(want))
                    .map(|t| t.last_error)
            },
        )
        .await
    }
}

#[tokio::test]
async fn happy_path_with_report_series_metadata_and_headers() {
    let body = "# HELP m A counter.\n# TYPE m counter\nm{a=\"1\"} 5\nm{a=\"2\"} 6\n";
    let t = TestTarget::start(Reply::text(body)).await;
    let h = Harness::start(vec![fast_job("j", &[&t], "")]).await;
    let host = t.host();
    h.wait_up(&host, 1.0).await;

    let m = h.store.last("m", &[("a", "1")]).expect("sample m{a=1}");
    assert_eq!(
        m.labels,
        model::labels! {"__name__" => "m", "a" => "1", "job" => "j", "instance" => host.as_str()}
    );
    assert_eq!(m.v, 5.0);
    let up = h.store.last("up", &[]).unwrap();
    assert_eq!(up.t, m.t, "report series share the scrape timestamp");
    let now = jiff::Timestamp::now().as_millisecond();
    assert!((now - m.t).abs() < 5_000, "timestamp is the scrape time");
    for (name, want) in [
        ("scrape_samples_scraped", 2.0),
        ("scrape_samples_post_metric_relabeling", 2.0),
    ] {
        assert_eq!(
            h.store.last(name, &[("job", "j")]).unwrap().v,
            want,
            "{name}"
        );
    }
    assert_eq!(h.store.series("scrape_series_added", &[])[0].v, 2.0);
    assert!(h.store.last("scrape_duration_seconds", &[]).unwrap().v > 0.0);

    let targets = h.mgr.targets_active();
    assert_eq!(targets.len(), 1);
    let at = &targets[0];
    assert_eq!(at.health, TargetHealth::Up);
    assert_eq!(at.last_error, "");
    assert_eq!(at.scrape_pool, "j");
    assert_eq!(at.scrape_url, format!("http://{host}/metrics"));
    assert_eq!(
        (at.scrape_interval.as_str(), at.scrape_timeout.as_str()),
        ("200ms", "150ms")
    );
    assert!(at.last_scrape.ends_with('Z') && !at.last_scrape.starts_with("0001"));
    let json = serde_json::to_value(at).unwrap();
    for key in [
        "discoveredLabels",
        "labels",
        "scrapePool",
        "scrapeUrl",
        "globalUrl",
        "lastError",
        "lastScrape",
        "lastScrapeDuration",
        "health",
        "scrapeInterval",
        "scrapeTimeout",
    ] {
        assert!(json.get(key).is_some(), "{key} missing in {json}");
    }
    assert_eq!(json["health"], "up");
    assert_eq!(json["discoveredLabels"]["__address__"], host.as_str());

    let md = h.mgr.metadata();
    assert!(
        md.iter()
            .any(|(n, m)| n == "m" && m.kind == "counter" && m.help == "A counter."),
        "{md:?}"
    );
    let tmd = h.mgr.target_metadata();
    assert_eq!(tmd[0].target.get("instance"), Some(host.as_str()));

    let req = t.requests().remove(0).to_ascii_lowercase();
    assert!(req.starts_with("get /metrics http/1.1"), "{req}");
    assert!(
        req.contains("accept: application/openmetrics-text;version=1.0.0"),
        "{req}"
    );
    assert!(req.contains("accept-encoding: gzip"), "{req}");
    assert!(req.contains("user-agent: vigil/"), "{req}");
    assert!(
        req.contains("x-prometheus-scrape-timeout-seconds: 0.15"),
        "{req}"
    );
    h.stop().await;
}

#[tokio::test]
async fn honor_labels_conflicts() {
    let t = TestTarget::start(Reply::text(
        "m{job=\"inner\",instance=\"x\",exported_job=\"e\"} 1\n",
    ))
    .await;
    let h = Harness::start(vec![
        fast_job("a", &[&t], ""),
        fast_job("b", &[&t], "honor_labels: true\n"),
    ])
    .await;
    let host = t.host();
    let a = until("sample of job a", WAIT, || {
        h.store.last("m", &[("job", "a")])
    })
    .await;
    assert_eq!(
        a.labels,
        model::labels! {"__name__" => "m", "job" => "a", "instance" => host.as_str(),
        "exported_instance" => "x", "exported_job" => "e", "exported_exported_job" => "inner"}
    );
    let b = until("sample of job b", WAIT, || {
        h.store.last("m", &[("job", "inner")])
    })
    .await;
    assert_eq!(
        b.labels,
        model::labels! {"__name__" => "m", "job" => "inner", "instance" => "x", "exported_job" => "e"}
    );
    h.stop().await;
}

#[tokio::test]
async fn honor_timestamps() {
    let t = TestTarget::start(Reply::text("m 1 1000\n")).await;
    let h = Harness::start(vec![
        fast_job("yes", &[&t], ""),
        fast_job("no", &[&t], "honor_timestamps: false\n"),
    ])
    .await;
    let yes = until("sample of job yes", WAIT, || {
        h.store.last("m", &[("job", "yes")])
    })
    .await;
    assert_eq!(yes.t, 1000);
    let no = until("sample of job no", WAIT, || {
        h.store.last("m", &[("job", "no")])
    })
    .await;
    assert!(no.t > 1_600_000_000_000, "scrape time used: {}", no.t);
    h.stop().await;
}

#[tokio::test]
async fn gzip_body_and_openmetrics() {
    let t = TestTarget::start(Reply::Body {
        body: "# TYPE m gauge\nm 3\n# EOF\n".to_string(),
        content_type: "application/openmetrics-text; version=1.0.0",
        gzip: true,
    })
    .await;
    let h = Harness::start(vec![fast_job("z", &[&t], "")]).await;
    let m = until("gzip sample", WAIT, || h.store.last("m", &[])).await;
    assert_eq!(m.v, 3.0);
    h.stop().await;
}

#[tokio::test]
async fn failures_set_up_to_zero_with_an_error() {
    let garbage = TestTarget::start(Reply::text("m 1\nthis is { not valid\n")).await;
    let hang = TestTarget::start(Reply::Hang).await;
    let close = TestTarget::start(Reply::Close).await;
    let status = TestTarget::start(Reply::Status(500)).await;
    let h = Harness::start(vec![fast_job("f", &[&garbage, &hang, &close, &status], "")]).await;

    let e = h.wait_error(&garbage.host(), "line 2").await;
    assert!(!e.is_empty());
    h.wait_error(&hang.host(), "context deadline exceeded")
        .await;
    let e = h.wait_error(&close.host(), "Get \"").await;
    assert!(e.contains(&close.host()), "{e}");
    h.wait_error(
        &status.host(),
        "server returned HTTP status 500 Internal Server Error",
    )
    .await;
    for t in [&garbage, &hang, &close, &status] {
        h.wait_up(&t.host(), 0.0).await;
        assert_eq!(
            h.store
                .last("scrape_samples_scraped", &[("instance", &t.host())])
                .unwrap()
                .v,
            if std::ptr::eq(t, &garbage) { 1.0 } else { 0.0 }
        );
    }
    assert!(
        h.store.series("m", &[]).is_empty(),
        "a failed scrape appends nothing"
    );
    assert!(
        h.mgr
            .targets_active()
            .iter()
            .all(|t| t.health == TargetHealth::Down)
    );
    h.stop().await;
}

#[tokio::test]
async fn limits_fail_the_whole_scrape() {
    let big = TestTarget::start(Reply::text(&format!("m{{a=\"{}\"}} 1\n", "x".repeat(2000)))).await;
    let many = TestTarget::start(Reply::text("m{a=\"1\"} 1\nm{a=\"2\"} 1\nm{a=\"3\"} 1\n")).await;
    let labels = TestTarget::start(Reply::text("m{a=\"1\",b=\"2\",c=\"3\"} 1\n")).await;
    let h = Harness::start(vec![
        fast_job("body", &[&big], "body_size_limit: 1KB\n"),
        fast_job("samples", &[&many], "sample_limit: 2\n"),
        fast_job("labels", &[&labels], "label_limit: 3\n"),
    ])
    .await;
    h.wait_error(&big.host(), "body size limit exceeded").await;
    h.wait_error(&many.host(), "sample limit exceeded").await;
    h.wait_error(
        &labels.host(),
        "label_limit exceeded (metric: m, number of labels: 6, limit: 3)",
    )
    .await;
    h.wait_up(&many.host(), 0.0).await;
    assert_eq!(
        h.store
            .last("scrape_samples_scraped", &[("job", "samples")])
            .unwrap()
            .v,
        3.0
    );
    assert!(
        h.store.series("m", &[]).is_empty(),
        "nothing of a failed scrape is stored"
    );
    assert!(h.store.rollbacks() > 0);
    let m = h.mgr.metrics();
    assert!(
        m.exceeded_body_size_limit_total >= 1
            && m.exceeded_sample_limit_total >= 1
            && m.exceeded_label_limits_total >= 1,
        "{m:?}"
    );
    h.stop().await;
}

#[tokio::test]
async fn disappearing_series_get_staleness_markers() {
    let t = TestTarget::start(Reply::text("a 1\nb 2\n")).await;
    let h = Harness::start(vec![fast_job("s", &[&t], "")]).await;
    until("b scraped", WAIT, || h.store.last("b", &[])).await;
    t.set(Reply::text("a 1\n"));
    let stale = until("stale b", WAIT, || {
        h.store.last("b", &[]).filter(|r| is_stale_nan(r.v))
    })
    .await;
    let a = h
        .store
        .series("a", &[])
        .into_iter()
        .find(|r| r.t == stale.t)
        .expect("a scraped at the marker's time");
    assert_eq!(a.v, 1.0);
    // A failing scrape marks the rest stale too.
    t.set(Reply::Status(404));
    until("stale a", WAIT, || {
        h.store.last("a", &[]).filter(|r| is_stale_nan(r.v))
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn removed_target_goes_stale_and_others_continue() {
    let keep = TestTarget::start(Reply::text("k 1\n")).await;
    let gone = TestTarget::start(Reply::text("g 1\n")).await;
    let h = Harness::start(vec![fast_job("r", &[&keep, &gone], "")]).await;
    until("g scraped", WAIT, || h.store.last("g", &[])).await;
    h.mgr.apply_config(vec![fast_job("r", &[&keep], "")]);
    until("stale g", WAIT, || {
        h.store.last("g", &[]).filter(|r| is_stale_nan(r.v))
    })
    .await;
    until("stale up of removed target", WAIT, || {
        h.store
            .last("up", &[("instance", &gone.host())])
            .filter(|r| is_stale_nan(r.v))
    })
    .await;
    let before = h.store.series("k", &[]).len();
    until("keep is still scraped", WAIT, || {
        (h.store.series("k", &[]).len() > before + 1).then_some(())
    })
    .await;
    assert!(h.store.series("k", &[]).iter().all(|r| r.v == 1.0));
    assert_eq!(h.mgr.targets_active().len(), 1);

    // Removing the whole job stops it and marks its series stale too.
    h.mgr.apply_config(vec![]);
    until("stale k", WAIT, || {
        h.store.last("k", &[]).filter(|r| is_stale_nan(r.v))
    })
    .await;
    assert!(h.mgr.targets_active().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn target_relabeling_drop_param_and_default_port() {
    let t = TestTarget::start(Reply::text("m 1\n")).await;
    let cfg = job(&format!(
        r#"
job_name: rl
scrape_interval: 200ms
scrape_timeout: 150ms
params: {{module: [m1, m2]}}
static_configs:
- targets: ['{}', 'drop-me:1', 'noport']
relabel_configs:
- source_labels: [__address__]
  regex: 'drop-me.*'
  action: drop
- source_labels: [__address__]
  regex: '(.*)'
  target_label: __param_target
- source_labels: [__address__]
  regex: 'noport'
  target_label: __scheme__
  replacement: https
"#,
        t.host()
    ));
    let h = Harness::start(vec![cfg]).await;
    h.wait_up(&t.host(), 1.0).await;
    let req = t.requests().remove(0);
    assert!(
        req.starts_with(&format!(
            "GET /metrics?module=m1&module=m2&target={} ",
            t.host().replace(':', "%3A")
        )),
        "{req}"
    );
    let dropped = h.mgr.targets_dropped();
    assert_eq!(dropped.len(), 1);
    assert_eq!(
        dropped[0].discovered_labels.get("__address__"),
        Some("drop-me:1")
    );
    assert_eq!(
        serde_json::to_value(&dropped[0]).unwrap(),
        serde_json::json!({"discoveredLabels": dropped[0].discovered_labels})
    );
    let active = h.mgr.targets_active();
    let noport = active
        .iter()
        .find(|t| t.discovered_labels.get("__address__") == Some("noport"))
        .expect("noport target");
    assert_eq!(noport.labels.get("instance"), Some("noport:443"));
    assert!(
        noport.scrape_url.starts_with("https://noport:443/metrics?"),
        "{}",
        noport.scrape_url
    );
    h.stop().await;
}

#[tokio::test]
async fn metric_relabeling_drops_series() {
    let t = TestTarget::start(Reply::text("m{a=\"1\"} 1\nm{a=\"2\"} 2\n")).await;
    let cfg = fast_job(
        "mr",
        &[&t],
        "metric_relabel_configs:\n- source_labels: [a]\n  regex: '2'\n  action: drop\n",
    );
    let h = Harness::start(vec![cfg]).await;
    h.wait_up(&t.host(), 1.0).await;
    assert!(h.store.series("m", &[("a", "2")]).is_empty());
    assert_eq!(h.store.last("m", &[("a", "1")]).unwrap().v, 1.0);
    assert_eq!(h.store.last("scrape_samples_scraped", &[]).unwrap().v, 2.0);
    assert_eq!(
        h.store
            .last("scrape_samples_post_metric_relabeling", &[])
            .unwrap()
            .v,
        1.0
    );
    h.stop().await;
}

#[tokio::test]
async fn reload_changes_labels_and_keeps_unchanged_pools() {
    let t = TestTarget::start(Reply::text("m 1\n")).await;
    let other = TestTarget::start(Reply::text("o 1\n")).await;
    let h = Harness::start(vec![fast_job("c", &[&t], ""), fast_job("u", &[&other], "")]).await;
    until("m scraped", WAIT, || h.store.last("m", &[])).await;
    let o_url = h
        .mgr
        .targets_active()
        .into_iter()
        .find(|x| x.scrape_pool == "u")
        .unwrap();
    h.mgr.apply_config(vec![
        fast_job(
            "c",
            &[&t],
            "relabel_configs: [{target_label: env, replacement: prod}]\n",
        ),
        fast_job("u", &[&other], ""),
    ]);
    until("relabelled series", WAIT, || {
        h.store.last("m", &[("env", "prod")])
    })
    .await;
    let o_after = h
        .mgr
        .targets_active()
        .into_iter()
        .find(|x| x.scrape_pool == "u")
        .unwrap();
    assert_eq!(o_after.scrape_url, o_url.scrape_url);
    assert!(
        h.store.series("o", &[]).iter().all(|r| !is_stale_nan(r.v)),
        "unchanged pool never went stale"
    );
    // The old series of the reloaded target goes stale.
    until("old series stale", WAIT, || {
        h.store
            .series("m", &[])
            .into_iter()
            .find(|r| r.labels.get("env").is_none() && is_stale_nan(r.v))
    })
    .await;
    assert_eq!(h.mgr.metrics().scrape_pool_reloads_total, 1);
    h.stop().await;
}

#[tokio::test]
async fn target_limit_fails_all_targets_of_the_pool() {
    let a = TestTarget::start(Reply::text("m 1\n")).await;
    let b = TestTarget::start(Reply::text("m 1\n")).await;
    let h = Harness::start(vec![fast_job("tl", &[&a, &b], "target_limit: 1\n")]).await;
    h.wait_error(
        &a.host(),
        "target_limit exceeded (number of targets: 2, limit: 1)",
    )
    .await;
    h.wait_up(&b.host(), 0.0).await;
    assert!(
        a.requests().is_empty(),
        "targets over the limit are not scraped"
    );
    h.stop().await;
}
