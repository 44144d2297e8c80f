//! Remote storage with the real Prometheus 2.42: it remote-writes into `vigil server
//! --web.enable-remote-write-receiver`, and it reads vigil's data through `remote_read`.

use std::time::Duration;

use testkit::{Behaviour, FakeTarget, peer_missing, poll_until, which};

use crate::util::{Vigil, enc};

async fn query(base: &str, q: &str) -> Option<serde_json::Value> {
    let j = testkit::get_json(&format!("{base}/api/v1/query?query={}", enc(q)))
        .await
        .ok()?;
    Some(j["data"]["result"].clone())
}

#[tokio::test]
async fn prometheus_writes_to_and_reads_from_vigil() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let prom_target = FakeTarget::start(Behaviour::Body(
        "# TYPE pushed gauge\npushed{k=\"a\"} 42\n".into(),
    ))
    .await?;
    let vigil_target = FakeTarget::start(Behaviour::Body(
        "# TYPE vigil_only gauge\nvigil_only 7\n".into(),
    ))
    .await?;
    let dir = tempfile::tempdir()?;
    let vcfg = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: v\n    static_configs:\n      - targets: ['{}']\n",
        vigil_target.addr
    );
    let v = Vigil::start(dir.path(), &vcfg, &["--web.enable-remote-write-receiver"]).await?;

    let pcfg = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: p\n    static_configs:\n      - targets: ['{}']\n\
remote_write:\n  - url: {}\n    queue_config:\n      batch_send_deadline: 200ms\n\
remote_read:\n  - url: {}\n    read_recent: true\n",
        prom_target.addr,
        v.url("/api/v1/write"),
        v.url("/api/v1/read"),
    );
    let (prom, purl) = crate::util::start_prometheus(&dir.path().join("prom"), &pcfg).await?;

    // Prometheus → vigil: the scraped sample arrives with its labels and value.
    let got = poll_until(Duration::from_secs(30), || async {
        let r = query(&v.url(""), "pushed").await?;
        (r.as_array()?.len() == 1).then_some(r)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}; prometheus log:\n{}", prom.log_text()))?;
    assert_eq!(got[0]["metric"]["job"], "p");
    assert_eq!(got[0]["metric"]["k"], "a");
    assert_eq!(got[0]["value"][1], "42");
    // `up` of Prometheus's own scrape is written too.
    let up = query(&v.url(""), "up{job=\"p\"}").await.unwrap_or_default();
    assert_eq!(up[0]["value"][1], "1", "{up}");

    // vigil → Prometheus: a series only vigil has is visible through remote_read.
    let r = poll_until(Duration::from_secs(30), || async {
        let r = query(&purl, "vigil_only").await?;
        (r.as_array()?.len() == 1).then_some(r)
    })
    .await?;
    assert_eq!(r[0]["value"][1], "7");
    assert_eq!(r[0]["metric"]["job"], "v");
    v.stop()?;
    Ok(())
}
