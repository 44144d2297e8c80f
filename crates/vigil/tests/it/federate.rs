//! Federation and sharding: `GET /federate` answers like Prometheus 2.42 (checked side by side
//! with a Debian Prometheus scraping it), a global server federates aggregates from two shard
//! servers, and the `hashmod` recipe of `examples/sharding/` splits one job's targets across
//! two servers with `vigil query` giving one view.

use std::collections::BTreeSet;
use std::time::Duration;

use testkit::{Behaviour, FakeTarget, peer_missing, poll_until, which};

use crate::ha_query::{Query, get_json, scalar};
use crate::util::{Vigil, enc, now_ms, start_prometheus};

async fn text(url: &str) -> anyhow::Result<(u16, String, String)> {
    let r = reqwest::get(url).await?;
    let st = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Ok((st, ct, r.text().await?))
}

const BODY: &str = "# TYPE req_total counter\nreq_total{code=\"200\"} 10\nreq_total{code=\"500\"} 2\n# TYPE temp gauge\ntemp 21.5\n";

/// The same `/federate` output as Prometheus 2.42 scraping the same target with the same
/// external labels (timestamps aside, which differ by scrape time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federate_like_prometheus() -> anyhow::Result<()> {
    let t = FakeTarget::start(Behaviour::Body(BODY.into())).await?;
    let dir = tempfile::tempdir()?;
    let cfg = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n  external_labels:\n    dc: eu1\n    job: ignored-when-set\n\
scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{}']\n",
        t.addr
    );
    let v = Vigil::start(dir.path(), &cfg, &[]).await?;
    poll_until(Duration::from_secs(15), || async {
        scalar(&v.url(""), "count(req_total)", now_ms(), "")
            .await
            .ok()
            .filter(|n| *n == 2.0)
    })
    .await?;
    let path = format!(
        "/federate?match[]={}&match[]=temp",
        enc("{__name__=~\"req.*\"}")
    );
    let strip_ts = |s: &str| -> String {
        s.lines()
            .map(|l| match l.starts_with('#') {
                true => l.to_string(),
                false => l
                    .rsplit_once(' ')
                    .map(|x| x.0.to_string())
                    .unwrap_or_default(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let addr = t.addr.to_string();
    let want = format!(
        "# TYPE req_total untyped\n\
req_total{{code=\"200\",instance=\"{addr}\",job=\"app\",dc=\"eu1\"}} 10\n\
req_total{{code=\"500\",instance=\"{addr}\",job=\"app\",dc=\"eu1\"}} 2\n\
# TYPE temp untyped\n\
temp{{instance=\"{addr}\",job=\"app\",dc=\"eu1\"}} 21.5"
    );
    // Asked again for a while: a scrape that timed out (150 ms, a busy machine) leaves the
    // series stale until the next one.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (st, ct, body) = loop {
        let (st, ct, body) = text(&v.url(&path)).await?;
        if strip_ts(&body) == want || std::time::Instant::now() > deadline {
            break (st, ct, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(st, 200, "{body}");
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert_eq!(strip_ts(&body), want, "{body}");
    // Timestamps are the samples' own, recent.
    let ts: i64 = body
        .lines()
        .nth(1)
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or("")
        .parse()?;
    assert!((now_ms() - ts).abs() < 5_000, "{body}");
    let (st, _, _) = text(&v.url("/federate?match[]=%7B")).await?;
    assert_eq!(st, 400);

    if which("prometheus").is_none() {
        v.stop()?;
        return peer_missing("prometheus");
    }
    let (_p, purl) = start_prometheus(&dir.path().join("prom"), &cfg).await?;
    let pbody = poll_until(Duration::from_secs(20), || async {
        let (_, _, b) = text(&format!("{purl}{path}")).await.ok()?;
        (b.lines().count() >= 5).then_some(b)
    })
    .await?;
    assert_eq!(strip_ts(&pbody), want, "Prometheus 2.42 answers:\n{pbody}");
    v.stop()?;
    Ok(())
}

/// Two shard servers each scrape one target and record an aggregate; a global server
/// federates the aggregates (honor_labels) and sees both shards' with their external labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_server_federates_shard_aggregates() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut shards = Vec::new();
    let mut targets = Vec::new();
    for (i, v) in [(0, 10), (1, 32)] {
        let t = FakeTarget::start(Behaviour::Body(format!(
            "# TYPE req_total counter\nreq_total{{code=\"200\"}} {v}\nreq_total{{code=\"500\"}} 1\n"
        )))
        .await?;
        let d = dir.path().join(format!("shard{i}"));
        std::fs::create_dir_all(&d)?;
        std::fs::write(
            d.join("rules.yml"),
            "groups:\n  - name: agg\n    interval: 200ms\n    rules:\n      - record: job:req_total:sum\n        expr: sum by (job) (req_total)\n",
        )?;
        let cfg = format!(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n  evaluation_interval: 200ms\n  external_labels:\n    shard: \"{i}\"\n\
rule_files: ['{}']\n\
scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{}']\n",
            d.join("rules.yml").display(),
            t.addr
        );
        shards.push(Vigil::start(&d, &cfg, &[]).await?);
        targets.push(t);
    }
    let gdir = dir.path().join("global");
    std::fs::create_dir_all(&gdir)?;
    let gcfg = format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\n\
scrape_configs:\n  - job_name: federate\n    honor_labels: true\n    metrics_path: /federate\n    params:\n      'match[]': ['{{__name__=~\"job:.*\"}}']\n    static_configs:\n      - targets: ['127.0.0.1:{}', '127.0.0.1:{}']\n",
        shards[0].port, shards[1].port
    );
    let global = Vigil::start(&gdir, &gcfg, &[]).await?;
    let got = poll_until(Duration::from_secs(20), || async {
        let url = global.url(&format!("/api/v1/query?query={}", enc("job:req_total:sum")));
        let (_, v) = get_json(&url).await.ok()?;
        let r = v["data"]["result"].as_array()?.clone();
        (r.len() == 2).then_some(r)
    })
    .await?;
    let mut seen: Vec<(String, String, String)> = got
        .iter()
        .map(|s| {
            (
                s["metric"]["shard"].as_str().unwrap_or("").to_string(),
                s["metric"]["job"].as_str().unwrap_or("").to_string(),
                s["value"][1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    seen.sort();
    // honor_labels keeps the shards' `job`; the external `shard` label tells them apart.
    assert_eq!(
        seen,
        vec![
            ("0".into(), "app".into(), "11".into()),
            ("1".into(), "app".into(), "33".into())
        ]
    );
    let total = scalar(&global.url(""), "sum(job:req_total:sum)", now_ms(), "").await?;
    assert_eq!(total, 44.0);
    for s in shards {
        s.stop()?;
    }
    global.stop()?;
    Ok(())
}

/// The recipe of `examples/sharding/`: two servers keep disjoint halves of one job's targets
/// with `hashmod`, and `vigil query` over both shows every target exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashmod_shards_one_view() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut targets = Vec::new();
    for _ in 0..12 {
        targets.push(FakeTarget::start(Behaviour::Body("# TYPE x gauge\nx 1\n".into())).await?);
    }
    let list = targets
        .iter()
        .map(|t| format!("'{}'", t.addr))
        .collect::<Vec<_>>()
        .join(", ");
    let mut shards = Vec::new();
    for i in 0..2 {
        let d = dir.path().join(format!("shard{i}"));
        std::fs::create_dir_all(&d)?;
        let ex = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sharding");
        let tmpl = std::fs::read_to_string(ex.join(format!("shard-{i}.yml")))?;
        std::fs::copy(ex.join("rules.yml"), d.join("rules.yml"))?;
        let example_targets =
            "'127.0.0.1:9101', '127.0.0.1:9102', '127.0.0.1:9103', '127.0.0.1:9104'";
        assert!(tmpl.contains(example_targets), "{tmpl}");
        let cfg = tmpl
            .replace(
                "scrape_interval: 15s",
                "scrape_interval: 200ms\n  scrape_timeout: 150ms",
            )
            .replace(example_targets, &list);
        shards.push(Vigil::start(&d, &cfg, &[]).await?);
    }
    let urls: Vec<String> = shards.iter().map(|s| s.url("")).collect();
    let q = Query::start(dir.path(), &urls, &[]).await?;
    let per_shard = poll_until(Duration::from_secs(20), || async {
        let mut n = Vec::new();
        for s in &shards {
            n.push(
                scalar(&s.url(""), "count(up == 1)", now_ms(), "")
                    .await
                    .ok()? as usize,
            );
        }
        (n.iter().sum::<usize>() == 12).then_some(n)
    })
    .await?;
    assert!(
        per_shard.iter().all(|&n| n > 0 && n < 12),
        "both shards own targets: {per_shard:?}"
    );
    let (_, v) = get_json(&q.url(&format!("/api/v1/query?query={}", enc("up")))).await?;
    let instances: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["instance"].as_str().unwrap_or("").to_string())
        .collect();
    let distinct: BTreeSet<&String> = instances.iter().collect();
    assert_eq!(instances.len(), 12, "{v}");
    assert_eq!(distinct.len(), 12, "each target once: {v}");
    let shard_labels: BTreeSet<&str> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["metric"]["shard"].as_str())
        .collect();
    assert_eq!(shard_labels, BTreeSet::from(["0", "1"]), "{v}");
    assert_eq!(scalar(&q.url(""), "sum(x)", now_ms(), "").await?, 12.0);
    for s in shards {
        s.stop()?;
    }
    Ok(())
}
