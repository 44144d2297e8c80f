//! Misbehaving targets get `up` 0 and a clear `lastError`; the healthy target next to them is
//! unaffected and the server keeps running.

use std::time::Duration;

use testkit::{Behaviour, FakeTarget, poll_until};

use crate::util::Vigil;

fn many_samples(n: usize) -> String {
    (0..n).map(|i| format!("m{{i=\"{i}\"}} {i}\n")).collect()
}

#[tokio::test]
async fn bad_targets_fail_alone() -> anyhow::Result<()> {
    let good = FakeTarget::start(Behaviour::Body("# TYPE ok gauge\nok 1\n".into())).await?;
    let garbage =
        FakeTarget::start(Behaviour::Body("ok 1\nthis is { not metrics\n".into())).await?;
    let hang = FakeTarget::start(Behaviour::Hang).await?;
    let close = FakeTarget::start(Behaviour::Close).await?;
    let big = FakeTarget::start(Behaviour::Body(many_samples(2000))).await?;
    let many = FakeTarget::start(Behaviour::Body(many_samples(200))).await?;
    let status = FakeTarget::start(Behaviour::Status(500)).await?;

    let job = |name: &str, t: &FakeTarget, extra: &str| {
        format!(
            "  - job_name: {name}\n{extra}    static_configs:\n      - targets: ['{}']\n",
            t.addr
        )
    };
    let cfg = [
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\nscrape_configs:\n".to_string(),
        job("good", &good, ""),
        job("garbage", &garbage, ""),
        job("hang", &hang, ""),
        job("close", &close, ""),
        job("big", &big, "    body_size_limit: 1KB\n"),
        job("many", &many, "    sample_limit: 100\n"),
        job("status", &status, ""),
    ]
    .concat();
    let dir = tempfile::tempdir()?;
    let v = Vigil::start(dir.path(), &cfg, &[]).await?;

    // Wait until every target has been scraped at least once.
    let targets = poll_until(Duration::from_secs(20), || async {
        let ts = v.active_targets().await.ok()?;
        (ts.len() == 7 && ts.iter().all(|t| t["health"] != "unknown")).then_some(ts)
    })
    .await?;
    let by_job = |j: &str| {
        targets
            .iter()
            .find(|t| t["labels"]["job"] == j)
            .cloned()
            .unwrap_or_default()
    };
    let expect = [
        ("garbage", "line 2"),
        ("hang", "deadline"),
        ("close", ""),
        ("big", "body size limit exceeded"),
        ("many", "sample limit exceeded"),
        ("status", "server returned HTTP status 500"),
    ];
    for (j, want) in expect {
        let t = by_job(j);
        assert_eq!(t["health"], "down", "{j}: {t}");
        let err = t["lastError"].as_str().unwrap_or("");
        assert!(
            !err.is_empty() && err.contains(want),
            "{j}: lastError {err:?} should contain {want:?}"
        );
    }
    let g = by_job("good");
    assert_eq!(g["health"], "up", "{g}");
    assert_eq!(g["lastError"], "");

    // The good target keeps being scraped while the others fail.
    let before = good.served();
    poll_until(Duration::from_secs(10), || async {
        (good.served() >= before + 2).then_some(())
    })
    .await?;
    let ok = v.json("/api/v1/series?match[]=ok").await?;
    assert_eq!(ok["data"].as_array().map(Vec::len), Some(1), "{ok}");
    // Nothing of the over-limit scrapes was stored.
    let m = v.json("/api/v1/series?match[]=m").await?;
    assert_eq!(m["data"].as_array().map(Vec::len), Some(0), "{m}");

    let healthy = reqwest::get(v.url("/-/healthy")).await?;
    assert!(healthy.status().is_success());
    v.stop()?;
    Ok(())
}
