//! Bad payloads over a real socket: quick 400/413 with a clear message, and the receiver
//! keeps serving afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use remote::codec::{encode_snappy_message, snappy_encode};
use remote::proto::{Label, Sample, TimeSeries, WriteRequest};

use crate::mem::MemStore;

fn good() -> Vec<u8> {
    encode_snappy_message(&WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![Label::new("__name__", "ok")],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 1,
            }],
            ..Default::default()
        }],
        metadata: vec![],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_are_refused_quickly() -> anyhow::Result<()> {
    let store = Arc::new(MemStore::default());
    let (addr, _srv) = crate::serve(store.clone()).await?;
    let url = format!("http://{addr}/api/v1/write");
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        let c = client.clone();
        let url = url.clone();
        async move {
            let t0 = Instant::now();
            let r = c
                .post(&url)
                .header("Content-Type", "application/x-protobuf")
                .header("Content-Encoding", "snappy")
                .body(body)
                .send()
                .await;
            let r = match r {
                Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                Err(e) => (0, e.to_string()),
            };
            (r, t0.elapsed())
        }
    };
    let g = good();
    let mut random = vec![0u8; 4096];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in &mut random {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut huge_prefix = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
    huge_prefix.extend_from_slice(&g[1..]);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "truncated snappy",
            g[..g.len() - 3].to_vec(),
            400,
            "decode snappy block",
        ),
        ("random bytes", random, 400, "snappy"),
        ("huge length prefix", huge_prefix, 400, "impossible"),
        (
            "not protobuf",
            snappy_encode(b"\x0a\xff\xff\xff"),
            400,
            "protobuf",
        ),
    ];
    for (name, body, status, msg) in cases {
        let ((code, text), took) = post(body).await;
        assert_eq!(code, status, "{name}: {text}");
        assert!(text.contains(msg), "{name}: {text:?} lacks {msg:?}");
        assert!(took < Duration::from_secs(2), "{name} took {took:?}");
    }
    // 100 MB: over the 32 MiB body limit.
    let ((code, text), took) = post(vec![0u8; 100_000_000]).await;
    eprintln!("100 MB body: {code} {text:?} in {took:?}");
    assert!(code == 413 || code == 0, "100 MB body: {code} {text}");
    assert!(took < Duration::from_secs(10), "100 MB body took {took:?}");
    let ((code, text), _) = post(g).await;
    assert_eq!(code, 204, "still serving: {text}");
    assert_eq!(store.snapshot().len(), 1);
    Ok(())
}
