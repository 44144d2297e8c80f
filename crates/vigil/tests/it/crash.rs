//! `kill -9` during steady ingestion, then restart: every sample stored before the kill is
//! back, scraping continues, and no series has a duplicate timestamp.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use testkit::{Behaviour, FakeTarget, free_port, peer_missing, poll_until, which};

use crate::util::{Dumped, Vigil, promtool_dump};

fn body(n: usize) -> String {
    let mut s = String::from("# TYPE work_total counter\n");
    for i in 0..n {
        s.push_str(&format!("work_total{{shard=\"{i}\"}} {}\n", i * 10));
    }
    s
}

fn by_series(d: &[Dumped]) -> BTreeMap<String, Vec<i64>> {
    let mut m: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for s in d {
        m.entry(s.labels.clone()).or_default().push(s.t);
    }
    m
}

#[tokio::test]
async fn kill9_loses_nothing_committed() -> anyhow::Result<()> {
    if which("promtool").is_none() {
        return peer_missing("promtool");
    }
    let target = FakeTarget::start(Behaviour::Body(body(50))).await?;
    let dir = tempfile::tempdir()?;
    let cfg = format!(
        "global:\n  scrape_interval: 100ms\n  scrape_timeout: 90ms\nscrape_configs:\n  - job_name: work\n    static_configs:\n      - targets: ['{}']\n",
        target.addr
    );
    let cfg_path = dir.path().join("prometheus.yml");
    std::fs::write(&cfg_path, cfg)?;
    let port = free_port();
    let mut v = Vigil::start_with(dir.path(), &cfg_path, port, &[]).await?;

    poll_until(Duration::from_secs(20), || async {
        (target.served() >= 20).then_some(())
    })
    .await?;
    v.proc.kill9();
    let served_before_kill = target.served();

    // What was on disk at the moment of the kill (promtool replays the WAL read-only).
    let before = promtool_dump(&dir.path().join("data"))?;
    let ups_before = before
        .iter()
        .filter(|d| d.labels.starts_with("{__name__=\"up\""))
        .count() as u64;
    // Every scrape the target answered was committed, but for one that may have been in flight.
    assert!(
        ups_before + 1 >= served_before_kill,
        "only {ups_before} scrapes stored of {served_before_kill} served before the kill"
    );

    let v2 = Vigil::start_with(dir.path(), &cfg_path, port, &[]).await?;
    let resumed = target.served();
    poll_until(Duration::from_secs(20), || async {
        (target.served() >= resumed + 10).then_some(())
    })
    .await?;
    v2.stop()?;
    drop(v);

    let after = promtool_dump(&dir.path().join("data"))?;
    let (b, a) = (by_series(&before), by_series(&after));
    for (series, ts) in &b {
        let got: BTreeSet<i64> = a
            .get(series)
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default();
        let missing: Vec<_> = ts.iter().filter(|t| !got.contains(t)).collect();
        assert!(
            missing.is_empty(),
            "{series}: samples lost after restart: {missing:?}"
        );
    }
    for (series, ts) in &a {
        let uniq: BTreeSet<_> = ts.iter().collect();
        assert_eq!(uniq.len(), ts.len(), "{series} has duplicate timestamps");
        let max_before = b
            .get(series)
            .and_then(|v| v.iter().max().copied())
            .unwrap_or(i64::MIN);
        if series.starts_with("{__name__=\"up\"") {
            assert!(
                ts.iter().any(|&t| t > max_before),
                "scraping did not continue for {series}"
            );
        }
    }
    Ok(())
}
