//! Debian's Prometheus 2.42 as remote write sender, remote read client and remote read server.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use model::Labels;
use remote::QueuedSample;
use remote::config::RemoteWriteConfig;
use remote::proto::{
    ChunkEncoding, Label, LabelMatcher, MatcherType, Query, ReadRequest, ResponseType, Sample,
    TimeSeries, WriteRequest,
};
use remote::read::{STREAMED_CONTENT_TYPE, decode_frame};
use remote::{
    ReadLimits, ReadState, WriteClient, WriteClientConfig, WriteState, read_router, write_router,
};
use testkit::{FakeTarget, Proc, poll_until};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::mem::MemStore;

/// Starts Prometheus with `config`, or `None` when it is missing and skipping is allowed.
async fn prometheus(
    config: &str,
    dir: &std::path::Path,
    extra: &[&str],
) -> anyhow::Result<Option<(Proc, u16)>> {
    let Some(bin) = testkit::which("prometheus") else {
        testkit::peer_missing("prometheus")?;
        return Ok(None);
    };
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, config)?;
    let port = testkit::free_port();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(extra);
    let p = Proc::spawn("prometheus", cmd, &dir.join("prometheus.log"))?;
    let ready = format!("http://127.0.0.1:{port}/-/ready");
    if let Err(e) = testkit::wait_ready(&ready, Duration::from_secs(60)).await {
        anyhow::bail!("{e}\n{}", p.log_text());
    }
    Ok(Some((p, port)))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn metric(store: &MemStore, name: &str) -> Vec<(Labels, Vec<(i64, f64)>)> {
    store
        .snapshot()
        .into_iter()
        .filter(|(l, _)| l.metric_name() == Some(name))
        .collect()
}

fn matchers(name: &str) -> Vec<LabelMatcher> {
    vec![LabelMatcher {
        r#type: MatcherType::Eq as i32,
        name: "__name__".into(),
        value: name.into(),
    }]
}

/// Prometheus scrapes a target and remote-writes to our receiver: every sample arrives with
/// Prometheus's labels, timestamps and values. Then Prometheus, as a remote read server,
/// streams XOR chunks of the same series: our frame and chunk decoders read them, and our
/// encoder re-encodes each chunk to the very same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_writes_to_vigil() -> anyhow::Result<()> {
    let store = Arc::new(MemStore::default());
    let (addr, _srv) = crate::serve(store.clone()).await?;
    let body =
        |v: f64| format!("# TYPE vigil_it_metric gauge\nvigil_it_metric{{kind=\"x\"}} {v}\n");
    let target = Arc::new(FakeTarget::start(testkit::Behaviour::Body(body(0.0))).await?);
    // Values that change between scrapes, so the chunks exercise every XOR value case.
    let t2 = target.clone();
    let _changer = tokio::spawn(async move {
        for i in 1u32.. {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let v = match i % 4 {
                0 => 42.0,
                1 => f64::from(i) * 1.37,
                2 => -1e-300 * f64::from(i),
                _ => f64::from(i * i),
            };
            t2.set(testkit::Behaviour::Body(body(v)));
        }
    });
    let dir = tempfile::tempdir()?;
    let config = format!(
        "global:\n  scrape_interval: 1s\n\
         scrape_configs:\n  - job_name: t\n    static_configs:\n      - targets: ['{}']\n\
         remote_write:\n  - url: http://{addr}/api/v1/write\n    queue_config:\n      batch_send_deadline: 500ms\n",
        target.addr
    );
    let Some((prom, port)) = prometheus(&config, dir.path(), &[]).await? else {
        return Ok(());
    };
    let got = poll_until(Duration::from_secs(60), || {
        let m = metric(&store, "vigil_it_metric");
        async move { m.first().filter(|s| s.1.len() >= 6).cloned() }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", prom.log_text()))?;
    let instance = target.addr.to_string();
    let want = model::labels! {"__name__" => "vigil_it_metric", "instance" => instance.as_str(), "job" => "t", "kind" => "x"};
    assert_eq!(got.0, want);
    let distinct: std::collections::BTreeSet<u64> = got.1.iter().map(|s| s.1.to_bits()).collect();
    assert!(distinct.len() >= 3, "values should change: {:?}", got.1);
    let up = metric(&store, "up");
    assert_eq!(up.len(), 1, "{up:?}");
    assert!(up[0].1.iter().all(|s| s.1 == 1.0));

    // Prometheus's own copy of the series, read back as STREAMED_XOR_CHUNKS.
    let last = got.1.last().unwrap().0;
    let req = ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: last,
            matchers: matchers("vigil_it_metric"),
            hints: None,
        }],
        accepted_response_types: vec![ResponseType::StreamedXorChunks as i32],
    };
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/read"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Read-Version", "0.1.0")
        .body(remote::codec::encode_snappy_message(&req))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str()?,
        STREAMED_CONTENT_TYPE
    );
    let body = resp.bytes().await?;
    let (mut rest, mut theirs, mut chunks) = (&body[..], Vec::new(), 0);
    while !rest.is_empty() {
        let (frame, n) = decode_frame(rest, 1 << 20)?.expect("a whole frame");
        rest = &rest[n..];
        for cs in frame.chunked_series {
            let labels = Labels::from_pairs(cs.labels.iter().map(|l| (&l.name, &l.value)));
            assert_eq!(labels, want);
            for c in cs.chunks {
                assert_eq!(c.r#type, ChunkEncoding::Xor as i32);
                let samples = remote::xor::decode(&c.data)?;
                let mut enc = remote::xor::XorEncoder::new();
                for &(t, v) in &samples {
                    enc.append(t, v);
                }
                let ours = enc.finish();
                assert_eq!(ours, c.data, "re-encoded chunk differs");
                theirs.extend(samples);
                chunks += 1;
            }
        }
    }
    assert!(chunks >= 1);
    let ours: Vec<(i64, f64)> = metric(&store, "vigil_it_metric")[0].1.clone();
    let theirs: Vec<(i64, f64)> = theirs.into_iter().filter(|s| s.0 <= last).collect();
    assert_eq!(
        ours.iter()
            .filter(|s| s.0 <= last)
            .cloned()
            .collect::<Vec<_>>(),
        theirs
    );
    Ok(())
}

/// Prometheus with `remote_read` pointed at our read server answers PromQL with data only our
/// store has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_reads_from_vigil() -> anyhow::Result<()> {
    let store = Arc::new(MemStore::default());
    let now = now_ms() / 1000 * 1000;
    let samples: Vec<(i64, f64)> = (0..=10)
        .map(|i| (now - 100_000 + i * 10_000, i as f64))
        .collect();
    store.insert(
        model::labels! {"__name__" => "vigil_remote_only", "src" => "mem"},
        samples.clone(),
    );
    // Record which response types the client accepts, then let the real router answer.
    let seen: Arc<Mutex<Vec<Vec<i32>>>> = Arc::default();
    let router = read_router(ReadState::new(store.clone(), ReadLimits::default()));
    let seen2 = seen.clone();
    let app = write_router(WriteState::new(store.clone())).route(
        "/api/v1/read",
        axum::routing::post(move |body: Bytes| {
            let (router, seen) = (router.clone(), seen2.clone());
            async move {
                if let Ok(r) = remote::decode_read_request(&body, 1 << 20) {
                    seen.lock().unwrap().push(r.accepted_response_types);
                }
                let req = Request::post("/api/v1/read")
                    .body(Body::from(body))
                    .unwrap();
                router.oneshot(req).await.unwrap()
            }
        }),
    );
    let (addr, _srv) = crate::serve_router(app).await?;
    let dir = tempfile::tempdir()?;
    let config =
        format!("remote_read:\n  - url: http://{addr}/api/v1/read\n    read_recent: true\n");
    let Some((prom, port)) = prometheus(&config, dir.path(), &[]).await? else {
        return Ok(());
    };
    let q = |expr: &str| {
        format!(
            "http://127.0.0.1:{port}/api/v1/query?query={expr}&time={}",
            now as f64 / 1000.0
        )
    };
    let v = testkit::get_json(&q("vigil_remote_only")).await?;
    let r = &v["data"]["result"];
    assert_eq!(
        r.as_array().map(Vec::len),
        Some(1),
        "{v}\n{}",
        prom.log_text()
    );
    assert_eq!(r[0]["metric"]["src"], "mem");
    assert_eq!(r[0]["value"][1], "10");
    let v = testkit::get_json(&q("sum_over_time(vigil_remote_only[5m])")).await?;
    assert_eq!(v["data"]["result"][0]["value"][1], "55", "{v}");
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    eprintln!("Prometheus 2.42 remote read accepted_response_types: {seen:?}");
    Ok(())
}

/// Our streamed answer decodes to exactly the stored samples (the client side Prometheus
/// 2.42 lacks: it only asks for SAMPLES).
#[tokio::test]
async fn vigil_streams_chunks_over_http() -> anyhow::Result<()> {
    let store = Arc::new(MemStore::default());
    let samples: Vec<(i64, f64)> = (0..1000)
        .map(|i| (i * 15_000 + i % 7, (i * i) as f64 / 3.0))
        .collect();
    for s in ["a", "b"] {
        store.insert(
            model::labels! {"__name__" => "m", "s" => s},
            samples.clone(),
        );
    }
    let (addr, _srv) = crate::serve(store).await?;
    let req = ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: 0,
            end_timestamp_ms: i64::MAX,
            matchers: matchers("m"),
            hints: None,
        }],
        accepted_response_types: vec![ResponseType::StreamedXorChunks as i32],
    };
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/read"))
        .body(remote::codec::encode_snappy_message(&req))
        .send()
        .await?;
    assert_eq!(
        resp.headers()["content-type"].to_str()?,
        STREAMED_CONTENT_TYPE
    );
    let body = resp.bytes().await?;
    let mut rest = &body[..];
    let mut got: std::collections::BTreeMap<String, Vec<(i64, f64)>> = Default::default();
    while !rest.is_empty() {
        let (frame, n) = decode_frame(rest, 1 << 20)?.expect("a whole frame");
        rest = &rest[n..];
        assert_eq!(frame.query_index, 0);
        for cs in frame.chunked_series {
            let e = got.entry(cs.labels[1].value.clone()).or_default();
            for c in cs.chunks {
                e.extend(remote::xor::decode(&c.data)?);
            }
        }
    }
    assert_eq!(got.len(), 2);
    for v in got.values() {
        assert_eq!(v, &samples);
    }
    Ok(())
}

/// Our remote write client → Prometheus's receiver (`--web.enable-remote-write-receiver`):
/// the samples are queryable there with the same labels, timestamps and values; a duplicate
/// sample with another value is refused with 400 and classified as not worth retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_writes_to_prometheus() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let Some((prom, port)) =
        prometheus("", dir.path(), &["--web.enable-remote-write-receiver"]).await?
    else {
        return Ok(());
    };
    let now = now_ms();
    let samples: Vec<(i64, f64)> = (0..10)
        .map(|i| (now - 9_000 + i * 1000 + i % 3, i as f64 * 0.5))
        .collect();
    let series = |job: &str, samples: &[(i64, f64)]| TimeSeries {
        labels: vec![
            Label::new("__name__", "vigil_sent"),
            Label::new("job", job),
            Label::new("zone", "ä ü"),
        ],
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        ..Default::default()
    };
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let client = WriteClient::new(&WriteClientConfig::new(&url))?;
    let req = WriteRequest {
        timeseries: vec![series("a", &samples), series("b", &samples[..1])],
        metadata: vec![],
    };
    if let Err(e) = client.write(&req).await {
        anyhow::bail!("{}\n{}", remote::error_chain(&e), prom.log_text());
    }
    let q = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=vigil_sent%7Bjob%3D%22a%22%7D%5B1m%5D&time={}",
        now as f64 / 1000.0
    );
    let v = testkit::get_json(&q).await?;
    let r = &v["data"]["result"];
    assert_eq!(r.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(r[0]["metric"]["zone"], "ä ü");
    let got: Vec<(i64, f64)> = r[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            (t, p[1].as_str().unwrap().parse().unwrap())
        })
        .collect();
    assert_eq!(got, samples);

    let dup = WriteRequest {
        timeseries: vec![series("a", &[(samples[0].0, 99.0)])],
        metadata: vec![],
    };
    let e = client.write(&dup).await.unwrap_err();
    assert!(!e.is_recoverable(), "{e:?}");
    let msg = remote::error_chain(&e);
    assert!(msg.contains("400"), "{msg}");
    eprintln!("Prometheus 2.42 on an old sample: {msg}");

    // The same through a parsed `remote_write` entry and the batching queue.
    let y = format!(
        "url: {url}\nqueue_config: {{max_samples_per_send: 30, batch_send_deadline: 100ms}}\n"
    );
    let mut cfg: RemoteWriteConfig = serde_saphyr::from_str(&y)?;
    cfg.validate()?;
    let (h, runner) = remote::queue(WriteClient::new(&cfg.client_config())?, cfg.queue());
    let stop = CancellationToken::new();
    let task = tokio::spawn(runner.run(stop.clone()));
    let labels = model::labels! {"__name__" => "vigil_queued", "job" => "q"};
    for i in 0..100 {
        let s = QueuedSample {
            labels: labels.clone(),
            t: now - 99_000 + i * 1000,
            v: i as f64,
        };
        h.push(s).await?;
    }
    let st = h.stats().clone();
    poll_until(Duration::from_secs(20), || {
        let n = st.samples_sent.load(std::sync::atomic::Ordering::Relaxed);
        async move { (n == 100).then_some(()) }
    })
    .await?;
    stop.cancel();
    task.await?;
    let q = format!(
        "http://127.0.0.1:{port}/api/v1/query?query=count_over_time(vigil_queued%5B5m%5D)&time={}",
        now as f64 / 1000.0
    );
    let v = testkit::get_json(&q).await?;
    assert_eq!(v["data"]["result"][0]["value"][1], "100", "{v}");
    Ok(())
}
