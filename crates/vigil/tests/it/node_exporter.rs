//! Debian's node exporter is scraped: its series appear with the right job/instance labels,
//! the target is healthy, and `up` is 1 in the stored data (read back by promtool).

use std::time::Duration;

use testkit::{peer_missing, poll_until, start_node_exporter, which};

use crate::util::{Vigil, promtool_dump};

#[tokio::test]
async fn node_exporter_is_scraped() -> anyhow::Result<()> {
    if which("prometheus-node-exporter").is_none() {
        return peer_missing("prometheus-node-exporter");
    }
    let dir = tempfile::tempdir()?;
    let (_ne, port) = start_node_exporter(dir.path()).await?;
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    );
    let v = Vigil::start(dir.path(), &cfg, &[]).await?;
    let instance = format!("127.0.0.1:{port}");

    let series = poll_until(Duration::from_secs(20), || {
        let url = v.url("/api/v1/series?match[]=node_cpu_seconds_total");
        async move {
            let j = testkit::get_json(&url).await.ok()?;
            let d = j["data"].as_array()?.clone();
            (!d.is_empty()).then_some(d)
        }
    })
    .await?;
    for s in &series {
        assert_eq!(s["job"], "node", "{s}");
        assert_eq!(s["instance"], instance.as_str(), "{s}");
        assert_eq!(s["__name__"], "node_cpu_seconds_total");
    }

    // The target is healthy and its metadata is known.
    let targets = v.active_targets().await?;
    assert_eq!(targets.len(), 1, "{targets:?}");
    let t = &targets[0];
    poll_until(Duration::from_secs(10), || async {
        let ts = v.active_targets().await.ok()?;
        (ts[0]["health"] == "up").then_some(())
    })
    .await?;
    assert_eq!(t["labels"]["job"], "node");
    assert_eq!(t["scrapeUrl"], format!("http://{instance}/metrics"));
    let md = v
        .json("/api/v1/metadata?metric=node_cpu_seconds_total")
        .await?;
    assert_eq!(
        md["data"]["node_cpu_seconds_total"][0]["type"], "counter",
        "{md}"
    );

    // Labels API sees node exporter's labels.
    let names = v.json("/api/v1/labels").await?;
    let names: Vec<&str> = names["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    for want in ["__name__", "cpu", "instance", "job", "mode"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let jobs = v.json("/api/v1/label/job/values").await?;
    assert_eq!(jobs["data"], serde_json::json!(["node"]));

    // Stop, then read the data directory with Prometheus's own tool: `up` is 1.
    v.stop()?;
    if which("promtool").is_none() {
        return peer_missing("promtool");
    }
    let dump = promtool_dump(&dir.path().join("data"))?;
    let ups: Vec<_> = dump
        .iter()
        .filter(|d| d.labels.starts_with("{__name__=\"up\""))
        .collect();
    assert!(!ups.is_empty(), "no up samples in promtool dump");
    assert!(ups.iter().all(|d| d.value == 1.0), "{ups:?}");
    assert!(
        ups[0].labels.contains(&format!("instance=\"{instance}\"")),
        "{:?}",
        ups[0]
    );
    let cpu = dump
        .iter()
        .filter(|d| d.labels.contains("node_cpu_seconds_total"))
        .count();
    assert!(cpu > 0, "promtool sees no node_cpu_seconds_total samples");
    Ok(())
}
