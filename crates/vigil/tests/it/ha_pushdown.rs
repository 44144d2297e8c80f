//! `vigil query` pushes a whole query down to one replica only when that replica's data is
//! complete for everything the query reads: both replicas healthy → one answers (the response
//! names it); a replica that was down for a while is never chosen for a window covering its
//! gap; when every replica has such a gap the merge answers. Results equal the merge path's
//! (non-replica external labels kept, replica label removed).

use std::time::Duration;

use testkit::poll_until;

use crate::ha_query::{App, IVAL_MS, Query, Replicas, replica_config_with, sleep_ms};
use crate::util::{Vigil, enc, now_ms};

const ANSWERED_BY: &str = "x-vigil-answered-by";

/// A replica's config with a non-replica external label, which answers must keep.
fn config(replica: &str, target: &testkit::FakeTarget) -> String {
    replica_config_with(replica, target, &[("region", "eu")])
}

fn secs(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// A query through `vigil query`: the replica that answered it alone (if any) and the data.
async fn ask(
    q: &Query,
    path_and_query: &str,
) -> anyhow::Result<(Option<String>, serde_json::Value)> {
    let url = q.url(path_and_query);
    let r = reqwest::get(&url).await?;
    let by = r
        .headers()
        .get(ANSWERED_BY)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let st = r.status();
    let v: serde_json::Value = serde_json::from_str(&r.text().await?)?;
    anyhow::ensure!(st == 200 && v["status"] == "success", "{url}: {st} {v}");
    Ok((by, v["data"].clone()))
}

fn instant(expr: &str, t: i64) -> String {
    format!("/api/v1/query?query={}&time={}", enc(expr), secs(t))
}

fn range(expr: &str, start: i64, end: i64) -> String {
    format!(
        "/api/v1/query_range?query={}&start={}&end={}&step={}&lookback_delta={}",
        enc(expr),
        secs(start),
        secs(end),
        secs(IVAL_MS / 2),
        secs(IVAL_MS * 7 / 4)
    )
}

/// The merge path's answer of the same query: a matcher on the replica label (that every
/// series passes) is never pushed down.
fn merged(expr: &str) -> String {
    if expr == "g" {
        return "g{replica=~\".*\"}".into();
    }
    expr.replace("c_total", "c_total{replica=~\".*\"}")
}

fn value(d: &serde_json::Value) -> f64 {
    d["result"][0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_pushdown_only_when_complete() -> anyhow::Result<()> {
    let app = App::start().await?;
    let dir = tempfile::tempdir()?;
    let configs = [config("a", &app.a), config("b", &app.b)];
    let mut r = Replicas::start(dir.path(), configs).await?;
    let start = now_ms() + 500;
    sleep_ms(2500).await;

    // Both complete: pushed down, and the answer equals the merge's.
    let pushed = poll_until(Duration::from_secs(10), || async {
        let (by, _) = ask(&r.q, &instant("count(c_total)", now_ms() - 300))
            .await
            .ok()?;
        by
    })
    .await;
    assert!(pushed.is_ok(), "both replicas complete, yet no push-down");
    let t = now_ms() - 300;
    let (by, d) = ask(&r.q, &instant("g", t)).await?;
    let (mby, m) = ask(&r.q, &instant(&merged("g"), t)).await?;
    assert!(
        mby.is_none(),
        "a replica-label matcher takes the merge path"
    );
    assert_eq!(d["result"].as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(
        d["result"][0]["metric"], m["result"][0]["metric"],
        "{d} vs {m}"
    );
    assert_eq!(
        d["result"][0]["metric"],
        serde_json::json!({"__name__": "g", "instance": "app-0", "job": "app", "region": "eu"}),
        "non-replica external labels kept, replica dropped (answered by {by:?})"
    );
    assert_eq!(value(&d), value(&m));
    for expr in ["count(c_total)", "sum(rate(c_total[2s]))"] {
        let t = now_ms() - 300;
        let (_, d) = ask(&r.q, &instant(expr, t)).await?;
        let (_, m) = ask(&r.q, &instant(&merged(expr), t)).await?;
        assert!(
            (value(&d) - value(&m)).abs() <= value(&m).abs() * 0.01,
            "{expr}: pushed {d} vs merged {m}"
        );
    }
    // dedup=false shows raw replicas: never one replica.
    let (by, d) = ask(
        &r.q,
        &format!("{}&dedup=false", instant("count(g)", now_ms() - 300)),
    )
    .await?;
    assert!(by.is_none(), "dedup=false pushed down to {by:?}");
    assert_eq!(value(&d), 2.0, "{d}");

    // The target fails on both replicas at once (it is down, not a replica): neither has data
    // the other lacks, so a window over the failure is still pushed down.
    for f in &app.fail {
        f.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    sleep_ms(IVAL_MS * 6).await;
    for f in &app.fail {
        f.store(false, std::sync::atomic::Ordering::SeqCst);
    }
    sleep_ms(1000).await;
    let (by, d) = ask(&r.q, &range("s_total", start, now_ms() - 300)).await?;
    assert!(
        by.is_some(),
        "a failure on every replica stopped the push-down: {d}"
    );

    // Replica a goes away for 10 intervals: a window covering its gap never goes to a.
    r.bounce(0, IVAL_MS * 10).await?;
    sleep_ms(1500).await;
    let end = now_ms() - 300;
    for path in [
        range("s_total", start, end),
        instant("count_over_time(s_total[10s])", end),
    ] {
        let (by, d) = ask(&r.q, &path).await?;
        assert!(
            by.as_deref() != Some(r.urls[0].as_str()),
            "{path}: answered by the replica with a gap"
        );
        assert_eq!(d["result"].as_array().map(Vec::len), Some(1), "{d}");
        assert!(d["result"][0]["metric"].get("replica").is_none(), "{d}");
    }
    // A window after a's recovery may go to either (both complete there).
    let recovered = poll_until(Duration::from_secs(10), || async {
        let (by, _) = ask(&r.q, &instant("g", now_ms() - 300)).await.ok()?;
        by
    })
    .await;
    assert!(
        recovered.is_ok(),
        "no push-down for a window after the recovery"
    );

    // Now b goes away too: a window covering both gaps has no complete replica → merge.
    r.bounce(1, IVAL_MS * 10).await?;
    sleep_ms(1500).await;
    let end = now_ms() - 300;
    let (by, d) = ask(&r.q, &range("s_total", start, end)).await?;
    assert!(
        by.is_none(),
        "both replicas have gaps, yet pushed down to {by:?}"
    );
    assert_eq!(d["result"].as_array().map(Vec::len), Some(1), "{d}");
    let (by, d) = ask(&r.q, &instant("count_over_time(s_total[20s])", end)).await?;
    assert!(
        by.is_none(),
        "both replicas have gaps, yet pushed down to {by:?}"
    );
    let n = value(&d);
    // The merge fills each replica's gap from the other: about one sample per interval.
    let want = (20_000.min(end - start) / IVAL_MS) as f64;
    assert!(
        n >= want * 0.8,
        "merged count_over_time {n}, want about {want}"
    );
    r.stop()
}

/// One endpoint: its data is all the merge would have, so every query goes to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ha_pushdown_single_endpoint() -> anyhow::Result<()> {
    let app = App::start().await?;
    let dir = tempfile::tempdir()?;
    let v = Vigil::start(dir.path(), &config("a", &app.a), &[]).await?;
    let q = Query::start(dir.path(), &[v.url("")], &[]).await?;
    sleep_ms(1000).await;
    let (by, d) = ask(&q, &instant("g", now_ms() - 300)).await?;
    assert_eq!(by.as_deref(), Some(v.url("").as_str()), "{d}");
    assert_eq!(d["result"][0]["metric"]["region"], "eu", "{d}");
    assert!(d["result"][0]["metric"].get("replica").is_none(), "{d}");
    // Bad parameters of vigil query are refused whichever path would answer.
    for bad in ["dedup=maybe", "partial_response=maybe"] {
        let r = reqwest::get(q.url(&format!("{}&{bad}", instant("g", now_ms())))).await?;
        assert_eq!(r.status().as_u16(), 400, "{bad}");
    }
    // vigil query's own /metrics count the push-down and show the endpoint up.
    let m = reqwest::get(q.url("/metrics")).await?.text().await?;
    let up = format!("vigil_query_endpoint_up{{endpoint=\"{}\"}} 1", v.url(""));
    assert!(m.lines().any(|l| l == up), "{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with("vigil_query_pushed_down_queries_total ")
                && l != "vigil_query_pushed_down_queries_total 0"),
        "{m}"
    );
    v.stop()?;
    Ok(())
}
