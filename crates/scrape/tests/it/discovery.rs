//! File service discovery driving real scrapes.

use std::time::Duration;

use model::is_stale_nan;
use scrape::ManagerOptions;

use crate::scrape::{Harness, job};
use crate::support::{Reply, TestTarget, until};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn file_sd_json_and_yaml_are_reread_on_change() {
    let a = TestTarget::start(Reply::text("ma 1\n")).await;
    let b = TestTarget::start(Reply::text("mb 1\n")).await;
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("targets.json");
    let yaml = dir.path().join("more.yml");
    std::fs::write(
        &json,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"env": "json"}}}}]"#,
            a.host()
        ),
    )
    .unwrap();
    let cfg = job(&format!(
        "job_name: fsd\nscrape_interval: 200ms\nscrape_timeout: 150ms\nfile_sd_configs:\n- files: ['{0}/*.json', '{0}/*.yml']\n",
        dir.path().display()
    ));
    let opts = ManagerOptions {
        discovery_poll_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let h = Harness::with_options(vec![cfg], opts).await;

    let ma = until("ma scraped", WAIT, || {
        h.store.last("ma", &[("env", "json")])
    })
    .await;
    assert_eq!(ma.labels.get("job"), Some("fsd"));
    let t = h.mgr.targets_active().remove(0);
    assert_eq!(
        t.discovered_labels.get("__meta_filepath"),
        Some(json.to_str().unwrap())
    );
    assert!(t.labels.get("__meta_filepath").is_none());

    std::fs::write(
        &yaml,
        format!("- targets: ['{}']\n  labels:\n    env: yaml\n", b.host()),
    )
    .unwrap();
    until("mb scraped", WAIT, || {
        h.store.last("mb", &[("env", "yaml")])
    })
    .await;
    assert_eq!(h.mgr.targets_active().len(), 2);

    // A broken file keeps its last good targets.
    std::fs::write(&json, "[{ not json").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.mgr.targets_active().len(), 2);
    assert!(h.mgr.metrics().file_sd_read_errors_total >= 1);

    // Emptying it removes the target, whose series then go stale.
    std::fs::write(&json, "[]").unwrap();
    until("target a removed", WAIT, || {
        (h.mgr.targets_active().len() == 1).then_some(())
    })
    .await;
    until("stale ma", WAIT, || {
        h.store.last("ma", &[]).filter(|r| is_stale_nan(r.v))
    })
    .await;
    assert!(h.store.last("mb", &[]).is_some_and(|r| !is_stale_nan(r.v)));
    assert_eq!(
        h.mgr.metrics().discovered_targets,
        vec![("fsd".to_string(), 1)]
    );
    h.stop().await;
}
