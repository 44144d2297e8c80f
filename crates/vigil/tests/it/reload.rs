//! SIGHUP and `POST /-/reload`: a good file is applied, a bad one keeps the old config running
//! and is reported by `prometheus_config_last_reload_successful`.

use std::time::Duration;

use testkit::{Behaviour, FakeTarget, poll_until};

use crate::util::Vigil;

async fn metric(v: &Vigil, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(v.url("/metrics")).await?.text().await?;
    text.lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("{name} not in /metrics"))
}

fn cfg(job: &str, t: &FakeTarget) -> String {
    format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['{}']\n",
        t.addr
    )
}

#[tokio::test]
async fn reload_good_and_bad() -> anyhow::Result<()> {
    let t = FakeTarget::start(Behaviour::Body("x 1\n".into())).await?;
    let dir = tempfile::tempdir()?;
    let v = Vigil::start(dir.path(), &cfg("one", &t), &[]).await?;
    assert_eq!(
        metric(&v, "prometheus_config_last_reload_successful").await?,
        1.0
    );

    // A broken file via SIGHUP: old config keeps running, metric goes to 0.
    std::fs::write(
        &v.config,
        "scrape_configs:\n  - job_name: two\n    scrape_intervall: 1s\n",
    )?;
    v.proc.signal(1)?;
    poll_until(Duration::from_secs(10), || async {
        (metric(&v, "prometheus_config_last_reload_successful")
            .await
            .ok()?
            == 0.0)
            .then_some(())
    })
    .await?;
    let ts = v.active_targets().await?;
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0]["labels"]["job"], "one");
    let status = v.json("/api/v1/status/runtimeinfo").await?;
    assert_eq!(status["data"]["reloadConfigSuccess"], false);

    // Same through the HTTP endpoint: 500 with the reason.
    let r = reqwest::Client::new()
        .post(v.url("/-/reload"))
        .send()
        .await?;
    assert_eq!(r.status(), 500);
    assert!(r.text().await?.contains("scrape_intervall"));

    // A good file: applied, metric back to 1, new job scraped.
    std::fs::write(&v.config, cfg("two", &t))?;
    let r = reqwest::Client::new()
        .post(v.url("/-/reload"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(
        metric(&v, "prometheus_config_last_reload_successful").await?,
        1.0
    );
    poll_until(Duration::from_secs(10), || async {
        let ts = v.active_targets().await.ok()?;
        (ts.len() == 1 && ts[0]["labels"]["job"] == "two").then_some(())
    })
    .await?;
    let cfg_yaml = v.json("/api/v1/status/config").await?;
    assert!(
        cfg_yaml["data"]["yaml"]
            .as_str()
            .unwrap_or("")
            .contains("job_name: two")
    );

    // /-/quit stops the server.
    let r = reqwest::Client::new().post(v.url("/-/quit")).send().await?;
    assert_eq!(r.status(), 200);
    let mut v = v;
    poll_until(Duration::from_secs(20), || {
        let running = v.proc.running();
        async move { (!running).then_some(()) }
    })
    .await?;
    Ok(())
}
