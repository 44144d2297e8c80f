//! PromQL over HTTP: `/api/v1/query` and `/api/v1/query_range` answer like Debian's
//! Prometheus 2.42 scraping the same target (same JSON, same errors and status codes).

use std::time::Duration;

use testkit::{Behaviour, FakeTarget, peer_missing, poll_until, which};

use crate::util::{Vigil, enc, start_prometheus};

const BODY: &str = "# TYPE x gauge\nx{a=\"1\",b=\"p\"} 1\nx{a=\"2\",b=\"p\"} 2\nx{a=\"3\",b=\"q\"} 3.5\n\
# TYPE y gauge\ny{a=\"1\"} 10\ny{a=\"2\"} 20\n# TYPE c counter\nc_total 7\n";

fn config(t: &FakeTarget) -> String {
    format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: q\n    static_configs:\n      - targets: ['{}']\n",
        t.addr
    )
}

async fn get(url: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    let r = reqwest::get(url).await?;
    let st = r.status().as_u16();
    let body = r.text().await?;
    Ok((
        st,
        serde_json::from_str(&body).map_err(|e| anyhow::anyhow!("{url}: {e}: {body}"))?,
    ))
}

#[tokio::test]
async fn query_api_basics() -> anyhow::Result<()> {
    let t = FakeTarget::start(Behaviour::Body(BODY.into())).await?;
    let dir = tempfile::tempdir()?;
    let v = Vigil::start(dir.path(), &config(&t), &[]).await?;
    poll_until(Duration::from_secs(15), || async {
        let (_, j) = get(&v.url("/api/v1/query?query=up")).await.ok()?;
        (j["data"]["result"][0]["value"][1] == "1").then_some(())
    })
    .await?;
    // Three seconds of data, so a range query over the last two seconds has points.
    poll_until(Duration::from_secs(15), || async {
        let (_, j) = get(&v.url(&format!(
            "/api/v1/query?query={}",
            enc("count_over_time(up[10s])")
        )))
        .await
        .ok()?;
        let n: f64 = j["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
        (n >= 15.0).then_some(())
    })
    .await?;
    let (st, j) = get(&v.url(&format!("/api/v1/query?query={}", enc("sum by (b) (x)")))).await?;
    assert_eq!(st, 200);
    assert_eq!(j["data"]["resultType"], "vector");
    let mut got: Vec<(String, String)> = j["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["b"].as_str().unwrap().to_string(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![("p".into(), "3".into()), ("q".into(), "3.5".into())]
    );

    let now = jiff::Timestamp::now().as_second();
    let (st, j) = get(&v.url(&format!(
        "/api/v1/query_range?query=x&start={}&end={}&step=1",
        now - 2,
        now
    )))
    .await?;
    assert_eq!(st, 200, "{j}");
    assert_eq!(j["data"]["resultType"], "matrix");
    assert_eq!(j["data"]["result"].as_array().map(Vec::len), Some(3), "{j}");

    let (st, j) = get(&v.url("/api/v1/query?query=sum(")).await?;
    assert_eq!((st, j["errorType"].as_str()), (400, Some("bad_data")));
    let (st, j) = get(&v.url("/api/v1/query_range?query=x&start=10&end=0&step=1")).await?;
    assert_eq!((st, j["errorType"].as_str()), (400, Some("bad_data")));
    let (st, _) = get(&v.url("/api/v1/query_range?query=x&start=0&end=100000&step=1")).await?;
    assert_eq!(st, 400, "11,000 points limit");
    v.stop()?;
    Ok(())
}

/// The same instant queries, evaluated at the same time over the same scraped data, give the
/// same answers as Prometheus 2.42 — or the same error type and status.
#[tokio::test]
async fn query_api_matches_prometheus() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let t = FakeTarget::start(Behaviour::Body(BODY.into())).await?;
    let dir = tempfile::tempdir()?;
    let cfg = config(&t);
    let v = Vigil::start(dir.path(), &cfg, &[]).await?;
    let (_prom, purl) = start_prometheus(&dir.path().join("prom"), &cfg).await?;
    // Both have stored the target's samples for a while.
    for base in [v.url(""), purl.clone()] {
        poll_until(Duration::from_secs(30), || {
            let u = format!(
                "{base}/api/v1/query?query={}",
                enc("count_over_time(x{a=\"1\"}[5s])")
            );
            async move {
                let (_, j) = get(&u).await.ok()?;
                let n: f64 = j["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
                // 200ms interval: 15 samples are 3 s of data, so `time = now - 1s` has some.
                (n >= 15.0).then_some(())
            }
        })
        .await?;
    }
    let at = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0 - 1.0;
    let queries = [
        "x",
        "sum(x)",
        "sum by (b) (x)",
        "avg without (a) (x)",
        "count(x) by (b)",
        "max(x)",
        "topk(2, x)",
        "bottomk(1, x)",
        "quantile(0.5, x)",
        "x > 1",
        "x > bool 1",
        "x * on(a) group_left y",
        "y / on(a) x",
        "x and on(a) y",
        "x unless on(a) y",
        "x or y",
        "-x",
        "x + 1",
        "2 ^ 3",
        "vector(1)",
        "scalar(sum(y))",
        "absent(nope)",
        "label_replace(x, \"c\", \"$1\", \"a\", \"(.*)\")",
        "label_join(x, \"d\", \"-\", \"a\", \"b\")",
        "count_values(\"v\", x)",
        "stddev(x)",
        "clamp(x, 1.5, 2.5)",
        "round(x)",
        "sort_desc(x)",
        "max_over_time(x[10s])",
        "min_over_time(x[10s])",
        "sum(up)",
        "\"a string\"",
        "1",
        "sum(",
        "x{",
        "rate(x)",
        "x + on(b) y",
        "{a=\"1\"}",
        "nonexistent_metric",
    ];
    let mut diffs = Vec::new();
    for q in queries {
        let path = format!("/api/v1/query?query={}&time={at:.3}", enc(q));
        let (vs, vj) = get(&v.url(&path)).await?;
        let (ps, pj) = get(&format!("{purl}{path}")).await?;
        let norm = |mut j: serde_json::Value| {
            // Result order of instant vectors is unspecified unless sorted; compare as sets.
            let unordered = j["data"]["resultType"] == "vector"
                && !q.starts_with("sort")
                && !q.starts_with("topk")
                && !q.starts_with("bottomk");
            if let Some(arr) = j["data"]["result"].as_array_mut().filter(|_| unordered) {
                arr.sort_by_key(|s| s["metric"].to_string());
            }
            // Error texts may differ in wording details; types and codes must match.
            if j["status"] == "error" {
                j["error"] = serde_json::Value::Null;
            }
            j
        };
        let (vn, pn) = (norm(vj), norm(pj));
        if vs != ps || vn != pn {
            diffs.push(format!(
                "{q}\n  vigil      {vs} {vn}\n  prometheus {ps} {pn}"
            ));
        }
    }
    v.stop()?;
    assert!(
        diffs.is_empty(),
        "{} of {} queries differ:\n{}",
        diffs.len(),
        queries.len(),
        diffs.join("\n")
    );
    Ok(())
}
