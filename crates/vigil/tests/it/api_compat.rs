//! `vigil server`'s HTTP surface side by side with Debian's Prometheus 2.42: both scrape the
//! same loopback target, then answer the same requests — parameter errors of the query, series,
//! label, metadata and admin endpoints, method and path errors, CORS, gzip, HEAD, OPTIONS and
//! the route prefix — and status codes, Content-Type and bodies must be equal. The HTTP-layer
//! checks also run against vigil alone with the answers recorded from Prometheus 2.42.

use std::time::Duration;

use testkit::{Behaviour, FakeTarget, peer_missing, poll_until, which};

use crate::util::{Vigil, start_prometheus, start_prometheus_with};

const TARGET_BODY: &str = "# HELP compat_items Items.\n# TYPE compat_items gauge\n\
compat_items{kind=\"a\"} 1\ncompat_items{kind=\"b\"} 2\n";

fn config(target: &str, down: u16) -> String {
    format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: t\n    static_configs:\n      - targets: ['{target}']\n  - job_name: down\n    static_configs:\n      - targets: ['127.0.0.1:{down}']\n"
    )
}

/// The stable fields of the one target of pool `down` once it has been scraped.
async fn down_target(base: &str) -> anyhow::Result<serde_json::Value> {
    poll_until(Duration::from_secs(20), || async {
        let a = ask(base, "GET", "/api/v1/targets?scrapePool=down", None)
            .await
            .ok()?;
        let mut t = a.body.ok()?["data"]["activeTargets"][0].clone();
        if t["health"] != "down" {
            return None;
        }
        let o = t.as_object_mut()?;
        o.remove("lastScrape");
        o.remove("lastScrapeDuration");
        Some(t)
    })
    .await
}

/// Percent-encodes one form value.
fn enc_value(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Percent-encodes every query value of `path` (keys stay as written).
fn enc(path: &str) -> String {
    let Some((p, q)) = path.split_once('?') else {
        return path.to_string();
    };
    let parts: Vec<String> = q
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => format!("{k}={}", enc_value(v)),
            None => kv.to_string(),
        })
        .collect();
    format!("{p}?{}", parts.join("&"))
}

/// What one request answered: status, Content-Type and the body (JSON when it parses).
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: Result<serde_json::Value, String>,
}

async fn ask(base: &str, method: &str, path: &str, form: Option<&str>) -> anyhow::Result<Answer> {
    let client = reqwest::Client::new();
    let m = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut rb = client.request(m, format!("{base}{}", enc(path)));
    if let Some(f) = form {
        rb = rb
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(f.to_string());
    }
    let r = rb.send().await?;
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = r.text().await?;
    let body = serde_json::from_str(&text).map_err(|_| text);
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

/// Requests whose answers do not depend on timing: (method, path, form body).
const CASES: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/api/v1/query", None),
    ("GET", "/api/v1/query?query=up&time=abc", None),
    (
        "GET",
        "/api/v1/query?query=1&time=2023-01-01T00:00:00Z",
        None,
    ),
    (
        "GET",
        "/api/v1/query?query=1&time=2023-01-01T01:00:00.5+01:00",
        None,
    ),
    ("GET", "/api/v1/query?query=1&time=1.5", None),
    ("GET", "/api/v1/query?query=1&time=2023-01-01", None),
    ("GET", "/api/v1/query?query=1&time=10&timeout=abc", None),
    ("GET", "/api/v1/query?query=1&time=10&timeout=-1s", None),
    ("POST", "/api/v1/query", Some("query=1&time=10")),
    ("POST", "/api/v1/query?query=2&time=10", Some("query=1")),
    ("GET", "/api/v1/query?query=sum(&time=10", None),
    ("GET", "/api/v1/query_range?query=1", None),
    ("GET", "/api/v1/query_range?query=1&start=10", None),
    ("GET", "/api/v1/query_range?query=1&start=10&end=20", None),
    (
        "GET",
        "/api/v1/query_range?query=1&start=10&end=20&step=0",
        None,
    ),
    (
        "GET",
        "/api/v1/query_range?query=1&start=10&end=20&step=-1",
        None,
    ),
    (
        "GET",
        "/api/v1/query_range?query=1&start=10&end=20&step=abc",
        None,
    ),
    (
        "GET",
        "/api/v1/query_range?query=1&start=20&end=10&step=1",
        None,
    ),
    (
        "GET",
        "/api/v1/query_range?query=1&start=0&end=11001&step=1",
        None,
    ),
    (
        "GET",
        "/api/v1/query_range?query=1&start=0&end=11000&step=1s",
        None,
    ),
    (
        "GET",
        "/api/v1/query_range?query=1&start=10&end=20&step=1.5",
        None,
    ),
    (
        "GET",
        "/api/v1/query_range?query=sum(&start=10&end=20&step=5",
        None,
    ),
    (
        "GET",
        "/api/v1/query_range?query=up[5m]&start=10&end=20&step=5",
        None,
    ),
    (
        "GET",
        "/api/v1/query_range?query=\"a\"&start=10&end=20&step=5",
        None,
    ),
    ("GET", "/api/v1/query_range?start=10&end=20&step=5", None),
    (
        "POST",
        "/api/v1/query_range",
        Some("query=1&start=10&end=20&step=5"),
    ),
    ("GET", "/api/v1/series", None),
    ("GET", "/api/v1/series?match[]=", None),
    ("GET", "/api/v1/series?match[]=up{", None),
    ("GET", "/api/v1/series?match[]=sum(up)", None),
    ("GET", "/api/v1/series?match[]=up[5m]", None),
    ("GET", "/api/v1/series?match[]=1", None),
    ("GET", "/api/v1/series?match[]={job=~\".*\"}", None),
    ("GET", "/api/v1/series?match[]=up{job=~\"(\"}", None),
    ("GET", "/api/v1/series?match[]=up&start=abc", None),
    ("GET", "/api/v1/series?match[]=up&end=abc", None),
    ("GET", "/api/v1/series?match[]=up&start=20&end=10", None),
    ("GET", "/api/v1/series?match[]=up", None),
    ("GET", "/api/v1/series?match[]=up&limit=1", None),
    (
        "GET",
        "/api/v1/series?match[]=up&match[]=compat_items{kind=\"b\"}",
        None,
    ),
    ("POST", "/api/v1/series", Some("match[]=compat_items")),
    ("GET", "/api/v1/labels?match[]=compat_items", None),
    ("GET", "/api/v1/labels?match[]=up{", None),
    ("GET", "/api/v1/labels?match[]={job=~\".*\"}", None),
    ("GET", "/api/v1/labels?start=abc", None),
    ("GET", "/api/v1/labels?start=20&end=10", None),
    ("GET", "/api/v1/labels?match[]=compat_items&limit=1", None),
    ("GET", "/api/v1/label/kind/values", None),
    (
        "GET",
        "/api/v1/label/kind/values?match[]=compat_items{kind=\"b\"}",
        None,
    ),
    ("GET", "/api/v1/label/kind/values?match[]=up{", None),
    ("GET", "/api/v1/label/kind/values?start=abc", None),
    ("GET", "/api/v1/label/kind/values?limit=1", None),
    ("GET", "/api/v1/label/1abc/values", None),
    ("GET", "/api/v1/label/nonexistent/values", None),
    (
        "GET",
        "/api/v1/label/__name__/values?match[]=compat_items",
        None,
    ),
    ("GET", "/api/v1/metadata?metric=compat_items", None),
    ("GET", "/api/v1/metadata?metric=nonexistent", None),
    ("GET", "/api/v1/metadata?limit=abc", None),
    ("GET", "/api/v1/metadata?limit=0", None),
    (
        "GET",
        "/api/v1/metadata?metric=compat_items&limit_per_metric=abc",
        None,
    ),
    ("GET", "/api/v1/targets?state=xyz", None),
    ("GET", "/api/v1/targets?state=dropped", None),
    ("GET", "/api/v1/targets?scrapePool=nonexistent", None),
    ("GET", "/api/v1/targets/metadata?metric=compat_items", None),
    ("GET", "/api/v1/targets/metadata?match_target={job=", None),
    (
        "GET",
        "/api/v1/targets/metadata?match_target={job=\"t\"}&metric=nonexistent",
        None,
    ),
    ("GET", "/api/v1/targets/metadata?limit=abc", None),
    ("GET", "/api/v1/query_exemplars", None),
    ("GET", "/api/v1/query_exemplars?query=1", None),
    (
        "GET",
        "/api/v1/query_exemplars?query=up&start=10&end=20",
        None,
    ),
    (
        "GET",
        "/api/v1/query_exemplars?query=up&start=20&end=10",
        None,
    ),
    ("GET", "/api/v1/rules?type=xx", None),
    ("POST", "/api/v1/admin/tsdb/snapshot", None),
    ("POST", "/api/v1/admin/tsdb/delete_series", None),
    ("POST", "/api/v1/admin/tsdb/clean_tombstones", None),
    ("GET", "/api/v1/admin/tsdb/snapshot", None),
    ("GET", "/api/v1/nonexistent", None),
    ("GET", "/api/v1/", None),
    ("GET", "/nonexistent", None),
    ("POST", "/api/v1/label/kind/values", None),
    ("PUT", "/api/v1/query?query=1", None),
    ("DELETE", "/api/v1/series", None),
    ("HEAD", "/api/v1/query?query=1", None),
    ("HEAD", "/metrics", None),
    ("HEAD", "/-/healthy", None),
    ("HEAD", "/-/ready", None),
    ("OPTIONS", "/api/v1/query", None),
    ("POST", "/-/healthy", None),
    ("GET", "/-/healthy", None),
    ("GET", "/-/ready", None),
    ("GET", "/-/reload", None),
    ("GET", "/-/quit", None),
    ("GET", "/federate", None),
    ("GET", "/federate?match[]=", None),
    ("GET", "/federate?match[]=up{", None),
    ("POST", "/federate", Some("match[]=up")),
    ("GET", "/api/v1/write", None),
    ("POST", "/api/v1/write", None),
    ("GET", "/api/v1/read", None),
];

async fn wait_scraped(base: &str) -> anyhow::Result<()> {
    poll_until(Duration::from_secs(20), || async {
        let a = ask(base, "GET", "/api/v1/series?match[]=compat_items", None).await;
        let scraped = matches!(a, Ok(Answer { body: Ok(ref j), .. })
            if j["data"].as_array().is_some_and(|d| d.len() == 2));
        scraped.then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{base} did not scrape the target: {e}"))
}

#[tokio::test]
async fn api_answers_match_prometheus() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let target = FakeTarget::start(Behaviour::Body(TARGET_BODY.into())).await?;
    let cfg = config(&target.addr.to_string(), testkit::free_port());
    let dir = tempfile::tempdir()?;
    let v = Vigil::start(dir.path(), &cfg, &[]).await?;
    let (_prom, purl) = start_prometheus(&dir.path().join("prom"), &cfg).await?;
    wait_scraped(&v.url("")).await?;
    wait_scraped(&purl).await?;
    let mut diffs = Vec::new();
    // A target that refuses connections: same error text, health and global URL.
    let (ours, theirs) = (down_target(&v.url("")).await?, down_target(&purl).await?);
    if ours != theirs {
        diffs.push(format!(
            "down target\n  vigil:      {ours}\n  prometheus: {theirs}"
        ));
    }
    for (method, path, form) in CASES {
        let ours = ask(&v.url(""), method, path, *form).await?;
        let theirs = ask(&purl, method, path, *form).await?;
        if ours != theirs {
            diffs.push(format!(
                "{method} {path} {form:?}\n  vigil:      {ours:?}\n  prometheus: {theirs:?}"
            ));
        }
    }
    // Federation as protobuf when the Accept header prefers it: same type and layout (only the
    // sample timestamps differ, and they encode to the same length).
    let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3";
    let mut fed = Vec::new();
    for base in [v.url(""), purl.clone()] {
        let (s, h, body) = head_of(
            &format!("{base}/federate?match[]=compat_items"),
            "GET",
            &[("Accept", accept)],
        )
        .await?;
        fed.push((
            s,
            h["content-type"].to_str()?.to_string(),
            body.len(),
            body.get(..20).map(<[u8]>::to_vec),
        ));
    }
    if fed[0] != fed[1] {
        diffs.push(format!(
            "protobuf federation\n  vigil:      {:?}\n  prometheus: {:?}",
            fed[0], fed[1]
        ));
    }
    // Status endpoints: the same keys (values differ: paths, versions, times).
    for status in [
        "flags",
        "runtimeinfo",
        "buildinfo",
        "config",
        "tsdb",
        "walreplay",
    ] {
        let path = format!("/api/v1/status/{status}");
        let keys = |a: Answer| -> Vec<String> {
            a.body
                .ok()
                .and_then(|j| j["data"].as_object().map(|o| o.keys().cloned().collect()))
                .unwrap_or_default()
        };
        let ours = keys(ask(&v.url(""), "GET", &path, None).await?);
        let theirs = keys(ask(&purl, "GET", &path, None).await?);
        if ours != theirs || ours.is_empty() {
            diffs.push(format!(
                "{path} keys\n  vigil:      {ours:?}\n  prometheus: {theirs:?}"
            ));
        }
    }
    // POST bodies count only as forms (urlencoded or multipart), as Go's FormValue reads them.
    let client = reqwest::Client::new();
    for ct in [
        "",
        "text/plain",
        "application/x-www-form-urlencoded; charset=utf-8",
    ] {
        let mut got = Vec::new();
        for base in [v.url(""), purl.clone()] {
            let mut rb = client
                .post(format!("{base}/api/v1/query"))
                .body("query=1&time=10");
            if !ct.is_empty() {
                rb = rb.header("Content-Type", ct);
            }
            let r = rb.send().await?;
            got.push((r.status().as_u16(), r.text().await?));
        }
        if got[0] != got[1] {
            diffs.push(format!("POST query with Content-Type {ct:?}: {got:?}"));
        }
    }
    let mp = "--XyZ\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nvector(2)\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"time\"\r\n\r\n10\r\n--XyZ--\r\n";
    let mut got = Vec::new();
    for base in [v.url(""), purl.clone()] {
        let r = client
            .post(format!("{base}/api/v1/query"))
            .header("Content-Type", "multipart/form-data; boundary=XyZ")
            .body(mp)
            .send()
            .await?;
        got.push((r.status().as_u16(), r.text().await?));
    }
    if got[0] != got[1] {
        diffs.push(format!("POST multipart query: {got:?}"));
    }
    // Big form bodies: read up to Go's 10 MB, ignored beyond it.
    for pad in [3 << 20, 11 << 20] {
        let form = format!("query=vector(1)&time=10&pad={}", "x".repeat(pad));
        let ours = ask(&v.url(""), "POST", "/api/v1/query", Some(&form)).await?;
        let theirs = ask(&purl, "POST", "/api/v1/query", Some(&form)).await?;
        if ours != theirs {
            diffs.push(format!(
                "POST /api/v1/query with a {pad}-byte body\n  vigil:      {ours:?}\n  prometheus: {theirs:?}"
            ));
        }
    }
    println!(
        "{} requests compared with Prometheus 2.42; {} differences",
        CASES.len(),
        diffs.len()
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    v.stop()?;
    Ok(())
}

/// The response headers that matter here, lower-case names.
async fn head_of(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Vec<u8>)> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut rb = client.request(reqwest::Method::from_bytes(method.as_bytes())?, url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await?;
    let status = r.status().as_u16();
    let h = r.headers().clone();
    Ok((status, h, r.bytes().await?.to_vec()))
}

/// CORS, gzip, OPTIONS, the route prefix and Go's error texts, with the answers Prometheus 2.42
/// gives (checked against it too when it is installed).
#[tokio::test]
async fn http_layer_like_prometheus() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = "global:\n  scrape_interval: 1h\n";
    let flags = [
        "--web.external-url=http://127.0.0.1:1/prom/",
        "--web.cors.origin=http://a\\.example",
    ];
    let mut bases = Vec::new();
    for who in ["vigil", "prometheus"] {
        let bin = if who == "vigil" {
            env!("CARGO_BIN_EXE_vigil").to_string()
        } else if which("prometheus").is_some() {
            "prometheus".to_string()
        } else {
            peer_missing("prometheus")?;
            continue;
        };
        let d = dir.path().join(who);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join("prometheus.yml"), cfg)?;
        let port = testkit::free_port();
        let mut cmd = std::process::Command::new(bin);
        if who == "vigil" {
            cmd.arg("server");
        }
        cmd.arg(format!(
            "--config.file={}",
            d.join("prometheus.yml").display()
        ))
        .arg(format!("--storage.tsdb.path={}", d.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .args(flags);
        let p = testkit::Proc::spawn(who, cmd, &d.join("log"))?;
        let base = format!("http://127.0.0.1:{port}");
        testkit::wait_ready(&format!("{base}/prom/-/ready"), Duration::from_secs(30)).await?;
        bases.push((who, base, p));
    }
    for (who, base, _) in &bases {
        let q = format!("{base}/prom/api/v1/query?query=1");
        // Everything lives under the prefix.
        let (s, _, _) = head_of(&format!("{base}/api/v1/query?query=1"), "GET", &[]).await?;
        assert_eq!(s, 404, "{who}: outside the route prefix");
        let (s, h, _) = head_of(&format!("{base}/"), "GET", &[]).await?;
        assert_eq!(s, 302, "{who}: / redirects");
        assert!(h["location"].to_str()?.ends_with("/prom"), "{who}: {h:?}");
        let (s, h, _) = head_of(&format!("{base}/prom"), "GET", &[]).await?;
        assert_eq!(s, 301, "{who}: the prefix without its slash");
        assert!(h["location"].to_str()?.ends_with("/prom/"), "{who}: {h:?}");
        let (s, h, _) = head_of(&format!("{base}/prom/"), "GET", &[]).await?;
        assert_eq!(s, 302, "{who}: the home page");
        assert!(
            h["location"].to_str()?.ends_with("/prom/classic/graph"),
            "{who}: {h:?}"
        );
        // CORS for an allowed origin, none for another, nothing without Origin.
        let (s, h, _) = head_of(&q, "GET", &[("Origin", "http://a.example")]).await?;
        assert_eq!(s, 200, "{who}");
        assert_eq!(
            h["access-control-allow-origin"], "http://a.example",
            "{who}"
        );
        assert_eq!(
            h["access-control-allow-methods"], "GET, POST, OPTIONS",
            "{who}"
        );
        assert_eq!(
            h["access-control-allow-headers"], "Accept, Authorization, Content-Type, Origin",
            "{who}"
        );
        assert_eq!(h["access-control-expose-headers"], "Date", "{who}");
        assert_eq!(h["vary"], "Origin", "{who}");
        let (_, h, _) = head_of(&q, "GET", &[("Origin", "http://b.example")]).await?;
        assert!(!h.contains_key("access-control-allow-origin"), "{who}");
        let (_, h, _) = head_of(&q, "GET", &[]).await?;
        assert!(!h.contains_key("access-control-allow-methods"), "{who}");
        // OPTIONS preflight.
        let (s, h, body) = head_of(&q, "OPTIONS", &[("Origin", "http://a.example")]).await?;
        assert_eq!((s, body.len()), (204, 0), "{who}");
        assert_eq!(
            h["access-control-allow-origin"], "http://a.example",
            "{who}"
        );
        // gzip when accepted.
        for path in [
            "/prom/api/v1/query?query=1",
            "/prom/federate?match[]=up",
            "/prom/metrics",
        ] {
            let (s, h, body) = head_of(
                &format!("{base}{path}"),
                "GET",
                &[("Accept-Encoding", "gzip")],
            )
            .await?;
            assert_eq!(s, 200, "{who} {path}");
            assert_eq!(h["content-encoding"], "gzip", "{who} {path}");
            assert_eq!(&body[..2], &[0x1f, 0x8b], "{who} {path}: gzip magic");
        }
        let (s, h, _) = head_of(
            &format!("{base}/prom/federate?match[]=up"),
            "GET",
            &[
                ("Accept-Encoding", "gzip"),
                (
                    "Accept",
                    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
                ),
            ],
        )
        .await?;
        assert_eq!(
            (s, &h["content-encoding"]),
            (200, &"gzip".parse::<reqwest::header::HeaderValue>()?),
            "{who}: protobuf federation"
        );
        let (_, h, _) = head_of(
            &format!("{base}/prom/-/healthy"),
            "GET",
            &[("Accept-Encoding", "gzip")],
        )
        .await?;
        assert!(!h.contains_key("content-encoding"), "{who}");
        // Go's texts for unknown paths and methods.
        let (s, h, body) = head_of(&format!("{base}/prom/api/v1/nope"), "GET", &[]).await?;
        assert_eq!(s, 404, "{who}");
        assert_eq!(h["content-type"], "text/plain; charset=utf-8", "{who}");
        assert_eq!(body, b"404 page not found\n", "{who}");
        let (s, _, body) = head_of(&format!("{base}/prom/api/v1/query"), "PUT", &[]).await?;
        assert_eq!(
            (s, body.as_slice()),
            (405, &b"Method Not Allowed\n"[..]),
            "{who}"
        );
        let (s, _, body) = head_of(&format!("{base}/prom/-/reload"), "GET", &[]).await?;
        assert_eq!(
            (s, body.as_slice()),
            (405, &b"Only POST or PUT requests allowed"[..]),
            "{who}"
        );
    }
    for (_, _, p) in bases.iter_mut() {
        p.kill9();
    }
    Ok(())
}

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn field(num: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(num << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A snappy-framed (literals only) `prometheus.WriteRequest` with one series and samples.
fn write_request(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> Vec<u8> {
    let mut ts = Vec::new();
    for (n, v) in labels {
        let mut l = Vec::new();
        field(1, n.as_bytes(), &mut l);
        field(2, v.as_bytes(), &mut l);
        field(1, &l, &mut ts);
    }
    for (t, v) in samples {
        let mut s = vec![0x09];
        s.extend_from_slice(&v.to_le_bytes());
        s.push(0x10);
        varint(*t as u64, &mut s);
        field(2, &s, &mut ts);
    }
    let mut req = Vec::new();
    field(1, &ts, &mut req);
    let mut out = Vec::new();
    varint(req.len() as u64, &mut out);
    for chunk in req.chunks(60) {
        out.push(((chunk.len() - 1) << 2) as u8);
        out.extend_from_slice(chunk);
    }
    out
}

async fn remote_write(base: &str, body: Vec<u8>) -> anyhow::Result<(u16, String)> {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// The remote write receiver refuses what Prometheus 2.42 refuses, with its status and text.
#[tokio::test]
async fn remote_write_errors_match_prometheus() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let cfg = "global:\n  scrape_interval: 1h\n";
    let dir = tempfile::tempdir()?;
    let v = Vigil::start(dir.path(), cfg, &["--web.enable-remote-write-receiver"]).await?;
    let (mut prom, purl) = start_prometheus_with(
        &dir.path().join("prom"),
        cfg,
        &["--web.enable-remote-write-receiver"],
    )
    .await?;
    let now = jiff::Timestamp::now().as_millisecond();
    let m = [("__name__", "rw_compat"), ("a", "1")];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("first sample", write_request(&m, &[(now - 10_000, 1.0)])),
        ("out of order", write_request(&m, &[(now - 20_000, 2.0)])),
        ("duplicate", write_request(&m, &[(now - 10_000, 5.0)])),
        (
            "same sample again",
            write_request(&m, &[(now - 10_000, 1.0)]),
        ),
        ("no samples", write_request(&m, &[])),
        (
            "too old",
            write_request(&[("__name__", "rw_old")], &[(now - 3 * 86_400_000, 1.0)]),
        ),
    ];
    for (name, body) in cases {
        let ours = remote_write(&v.url(""), body.clone()).await?;
        let theirs = remote_write(&purl, body).await?;
        assert_eq!(ours, theirs, "{name}: vigil vs Prometheus 2.42");
    }
    // Undecodable bodies: 400 and Go's snappy error text in both (vigil adds context).
    for body in [vec![0xff, 0xff, 0xff], Vec::new()] {
        let ours = remote_write(&v.url(""), body.clone()).await?;
        let theirs = remote_write(&purl, body).await?;
        assert_eq!(ours.0, theirs.0, "{ours:?} {theirs:?}");
        assert!(ours.1.contains(theirs.1.trim_end()), "{ours:?} {theirs:?}");
    }
    prom.kill9();
    v.stop()?;
    Ok(())
}

/// `/api/v1/format_query` prints queries back as Prometheus 2.42 does.
#[tokio::test]
async fn format_query_matches_prometheus() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let cfg = "global:\n  scrape_interval: 1h\n";
    let dir = tempfile::tempdir()?;
    let v = Vigil::start(dir.path(), cfg, &[]).await?;
    let (_prom, purl) = start_prometheus(&dir.path().join("prom"), cfg).await?;
    let queries = [
        "sum(up)by(job)",
        "sum without(a,b)(rate(x{b=\"1\",a=~\"x\"}[1h30m] offset 5m @ 10))",
        "a / on(c) group_left(d) -b > bool 1e6",
        "a * ignoring(x) group_right b unless c or d and e",
        "{__name__=\"q\"}[5m:] + z[1d:1m] offset 1w",
        "topk(5, x @ start()) + count_values(\"v\", y) + 0.5 + 1.5e-7 + Inf + 0x10 + NaN",
        "quantile(0.9, rate(h_bucket{le!=\"+Inf\", job!~\"a|b\"}[5m]))",
        "histogram_quantile(0.99, sum by(le)(rate(x[90s])))",
        "-(a + b) ^ 2 % 3 atan2 c",
        "\"str\\\\x\\\"y\"",
        "label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\")",
        "time() - 1234567 + 123456 - 0.00001",
        "absent(nonexistent{job=\"x\"} @ end())",
        "max_over_time((a + b)[10m:30s])",
        "",
        "sum(",
    ];
    for q in queries {
        let path = format!("/api/v1/format_query?query={q}");
        let ours = ask(&v.url(""), "GET", &path, None).await?;
        let theirs = ask(&purl, "GET", &path, None).await?;
        assert_eq!(ours, theirs, "format_query {q:?}");
        let ours = ask(
            &v.url(""),
            "POST",
            "/api/v1/format_query",
            Some(&format!("query={}", enc_value(q))),
        )
        .await?;
        assert_eq!(ours, theirs, "POST format_query {q:?}");
    }
    v.stop()?;
    Ok(())
}

/// The admin API with --web.enable-admin-api answers Prometheus 2.42's statuses and errors.
#[tokio::test]
async fn admin_api_matches_prometheus() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let cfg = "global:\n  scrape_interval: 1h\n";
    let dir = tempfile::tempdir()?;
    let v = Vigil::start(dir.path(), cfg, &["--web.enable-admin-api"]).await?;
    let (mut prom, purl) =
        start_prometheus_with(&dir.path().join("prom"), cfg, &["--web.enable-admin-api"]).await?;
    let cases = [
        "delete_series",
        "delete_series?match[]=",
        "delete_series?match[]=up{",
        "delete_series?match[]={a=~\".*\"}",
        "delete_series?match[]=up&start=x",
        "delete_series?match[]=up&start=20&end=10",
        "delete_series?match[]=up{job=\"down\"}",
        "clean_tombstones",
        "snapshot?skip_head=x",
    ];
    for c in cases {
        let path = format!("/api/v1/admin/tsdb/{c}");
        let ours = ask(&v.url(""), "POST", &path, None).await?;
        let theirs = ask(&purl, "POST", &path, None).await?;
        assert_eq!(ours, theirs, "{path}");
    }
    let snap = |a: Answer| {
        a.body
            .ok()
            .map(|j| (j["status"].clone(), j["data"]["name"].is_string()))
    };
    let ours = snap(
        ask(
            &v.url(""),
            "POST",
            "/api/v1/admin/tsdb/snapshot?skip_head=T",
            None,
        )
        .await?,
    );
    let theirs = snap(
        ask(
            &purl,
            "POST",
            "/api/v1/admin/tsdb/snapshot?skip_head=T",
            None,
        )
        .await?,
    );
    assert_eq!(ours, theirs);
    prom.kill9();
    v.stop()?;
    Ok(())
}

/// Output and exit status of `promtool query ARGS... URL REST...`.
fn promtool(args: &[&str], url: &str, rest: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let out = std::process::Command::new("promtool")
        .arg("query")
        .args(args)
        .arg(url)
        .args(rest)
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Debian's `promtool query` works against vigil as against Prometheus 2.42: the same output
/// and exit status for instant, range, series and labels queries and for errors.
#[tokio::test]
async fn promtool_query_works_as_against_prometheus() -> anyhow::Result<()> {
    if which("prometheus").is_none() || which("promtool").is_none() {
        return peer_missing("prometheus");
    }
    let target = FakeTarget::start(Behaviour::Body(TARGET_BODY.into())).await?;
    let cfg = config(&target.addr.to_string(), testkit::free_port());
    let dir = tempfile::tempdir()?;
    let v = Vigil::start(dir.path(), &cfg, &[]).await?;
    let (_prom, purl) = start_prometheus(&dir.path().join("prom"), &cfg).await?;
    wait_scraped(&v.url("")).await?;
    wait_scraped(&purl).await?;
    let vurl = v.url("");
    let cases: &[(&[&str], &[&str])] = &[
        (&["instant", "--time=1000"], &["vector(1) + 1"]),
        (&["instant"], &["sum("]),
        (
            &["instant", "-o", "json", "--time=1000"],
            &["label_replace(vector(2), \"a\", \"b\", \"\", \"\")"],
        ),
        (
            &["range", "--start=1", "--end=100", "--step=30s"],
            &["vector(1)"],
        ),
        (
            &["range", "--start=100", "--end=1", "--step=30s"],
            &["vector(1)"],
        ),
        (&["series", "--match=compat_items"], &[]),
        (
            &[
                "series",
                "--match=compat_items{kind=\"b\"}",
                "--match=up{job=\"t\"}",
            ],
            &[],
        ),
        (&["series", "--match=up{"], &[]),
        (&["labels"], &["kind"]),
        (&["labels", "--match=compat_items{kind=\"a\"}"], &["kind"]),
        (
            &[
                "labels",
                "--start=2020-01-01T00:00:00Z",
                "--end=2020-01-02T00:00:00Z",
            ],
            &["job"],
        ),
    ];
    for (args, rest) in cases {
        let ours = promtool(args, &vurl, rest)?;
        let theirs = promtool(args, &purl, rest)?;
        assert_eq!(ours, theirs, "promtool query {args:?} {rest:?}");
    }
    // Live data: the same series and values (sample times differ between the two servers).
    let strip = |s: String| -> Vec<String> {
        let mut v: Vec<String> = s
            .lines()
            .map(|l| l.split(" @[").next().unwrap_or("").to_string())
            .collect();
        v.sort();
        v
    };
    // Asked again for a while: at "now" a scrape that just failed (1 s timeout, a busy
    // machine) has marked the series stale on one server and not on the other.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ours = promtool(&["instant"], &vurl, &["compat_items"])?;
        let theirs = promtool(&["instant"], &purl, &["compat_items"])?;
        let same = ours.0 == 0 && strip(ours.1.clone()) == strip(theirs.1.clone());
        if (same && !theirs.1.trim().is_empty()) || std::time::Instant::now() > deadline {
            assert_eq!(ours.0, 0, "{ours:?}");
            assert_eq!(strip(ours.1), strip(theirs.1));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    v.stop()?;
    Ok(())
}

/// The JSON of `v` with every number replaced by `#`: keys, their order and nesting only.
fn shape(v: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut prev = ' ';
    let mut num = false;
    for c in v.chars() {
        if in_str {
            out.push(c);
            if c == '"' && prev != '\\' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            num = false;
            out.push(c);
        } else if c.is_ascii_digit()
            || (num && matches!(c, '.' | 'e' | 'E' | '+' | '-'))
            || c == '-'
        {
            if !num {
                out.push('#');
            }
            num = true;
        } else {
            num = false;
            out.push(c);
        }
        prev = c;
    }
    out
}

/// `GET base/api/v1/{path}?{query}`: status and body.
async fn get_text(base: &str, path: &str, query: &str) -> anyhow::Result<(u16, String)> {
    let r = reqwest::get(format!("{base}/api/v1/{path}?{query}")).await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// Writes the same series into vigil and Prometheus: `stats_m{i="0".."2"}` every 10 s at
/// 5 s past the ten seconds (never on a window edge of the queries below), the last at `end`.
async fn load_stats_data(bases: [&str; 2], end: i64) -> anyhow::Result<()> {
    for i in 0..3 {
        let i_s = i.to_string();
        let labels = [("__name__", "stats_m"), ("i", i_s.as_str())];
        // Series 2 stops 4 minutes early, so steps hold different numbers of samples.
        let last = if i == 2 { end - 240_000 } else { end };
        let samples: Vec<(i64, f64)> = (0..90)
            .map(|j| (last - j * 10_000, (j * (i + 1)) as f64))
            .rev()
            .collect();
        for base in bases {
            let (code, text) = remote_write(base, write_request(&labels, &samples)).await?;
            anyhow::ensure!(code == 204, "remote write to {base}: {code} {text}");
        }
    }
    Ok(())
}

/// vigil and Prometheus side by side, both with `flags` (and the remote write receiver),
/// loaded with [`load_stats_data`]; `end` is the last sample's time.
struct StatsPeers {
    dir: tempfile::TempDir,
    v: Vigil,
    prom: testkit::Proc,
    vurl: String,
    purl: String,
    end: i64,
}

async fn stats_peers(flags: &[&str]) -> anyhow::Result<StatsPeers> {
    let cfg = "global:\n  scrape_interval: 1h\n";
    let mut flags = flags.to_vec();
    flags.push("--web.enable-remote-write-receiver");
    let dir = tempfile::tempdir()?;
    let v = Vigil::start(dir.path(), cfg, &flags).await?;
    let (prom, purl) = start_prometheus_with(&dir.path().join("prom"), cfg, &flags).await?;
    let vurl = v.url("");
    // Samples at ...5 s; the queries run at ...0.007 s, so no sample sits on a window's edge
    // (Prometheus 2.42 closes windows on the left, vigil follows 3.x and does not).
    let end = jiff::Timestamp::now().as_millisecond() / 10_000 * 10_000 - 60_000 + 5_000;
    load_stats_data([&vurl, &purl], end).await?;
    Ok(StatsPeers {
        dir,
        v,
        prom,
        vurl,
        purl,
        end,
    })
}

impl StatsPeers {
    fn stop(mut self) -> anyhow::Result<()> {
        self.prom.kill9();
        self.v.stop()
    }
}

/// `stats` of `/api/v1/query` and `/api/v1/query_range`: the same keys in the same order
/// as Prometheus 2.42 (with `--enable-feature=promql-per-step-stats` on both), the same
/// parameter values turning it on, and the same sample counts over the same data; timings
/// are checked for presence and type only.
#[tokio::test]
async fn query_stats_match_prometheus() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let peers = stats_peers(&["--enable-feature=promql-per-step-stats"]).await?;
    let (vurl, purl, end) = (peers.vurl.clone(), peers.purl.clone(), peers.end);
    let t = |ms: i64| format!("{}.{:03}", ms / 1000, ms % 1000);
    let at = t(end - 60_000 + 2 + 5);
    let (start, stop) = (t(end - 600_000 + 2), t(end - 60_000 + 2));
    let enc = enc_value;
    // (query, where peakSamples is compared: selectors hold the same samples in both, and
    // an instant range function holds its outputs and a window in both; elsewhere the
    // engines' intermediate buffers differ)
    let queries = [
        ("stats_m", &["query", "query_range"][..]),
        ("stats_m[2m]", &["query", "query_range"][..]),
        ("stats_m[2m:30s]", &[][..]),
        ("rate(stats_m[1m])", &["query"][..]),
        ("sum by(i)(rate(stats_m[2m])) + stats_m", &["query"][..]),
        ("max_over_time(stats_m[3m:30s])", &[][..]),
        ("count_over_time(stats_m[5m] offset 1m)", &[][..]),
        ("absent_over_time(stats_m[1m])", &[][..]),
        ("timestamp(stats_m) - 1", &[][..]),
        ("sum(stats_m @ end())", &[][..]),
        ("vector(1)", &[][..]),
        ("rate(stats_m[1m] @ end())", &["query"][..]),
        ("topk(1, stats_m offset 2m) > bool 10", &[][..]),
        ("scalar(sum(stats_m{i=\"0\"}))", &[][..]),
        ("absent(nope) or last_over_time(stats_m[90s])", &[][..]),
        (
            "quantile_over_time(0.5, stats_m[4m:20s] offset 30s)",
            &[][..],
        ),
    ];
    let mut compared = 0;
    for (q, peak) in queries {
        let mut reqs = vec![("query", format!("query={}&time={at}", enc(q)))];
        if !q.contains('[') || q.contains('(') {
            reqs.push((
                "query_range",
                format!("query={}&start={start}&end={stop}&step=60", enc(q)),
            ));
        }
        for (path, params) in reqs {
            for stats in ["all", "1"] {
                let p = format!("{params}&stats={stats}");
                let (oc, ours) = get_text(&vurl, path, &p).await?;
                let (tc, theirs) = get_text(&purl, path, &p).await?;
                let ctx = format!("{path}?{p}\nvigil: {ours}\nprometheus: {theirs}");
                assert_eq!((oc, tc), (200, 200), "{ctx}");
                let ours_s = ours.find(",\"stats\":").map(|i| &ours[i..]);
                let theirs_s = theirs.find(",\"stats\":").map(|i| &theirs[i..]);
                assert_eq!(ours_s.map(shape), theirs_s.map(shape), "shape of {ctx}");
                let (o, th): (serde_json::Value, serde_json::Value) =
                    (serde_json::from_str(&ours)?, serde_json::from_str(&theirs)?);
                assert_eq!(o["data"]["result"], th["data"]["result"], "{ctx}");
                let (os, ts) = (
                    &o["data"]["stats"]["samples"],
                    &th["data"]["stats"]["samples"],
                );
                for key in ["totalQueryableSamples", "totalQueryableSamplesPerStep"] {
                    assert_eq!(os[key], ts[key], "{key} of {ctx}");
                }
                if peak.contains(&path) {
                    assert_eq!(os["peakSamples"], ts["peakSamples"], "peakSamples of {ctx}");
                }
                assert!(os["peakSamples"].as_u64().is_some(), "{ctx}");
                let timings = o["data"]["stats"]["timings"]
                    .as_object()
                    .ok_or_else(|| anyhow::anyhow!("no timings: {ctx}"))?;
                assert_eq!(timings.len(), 6, "{ctx}");
                assert!(
                    timings
                        .values()
                        .all(|x| x.as_f64().is_some_and(|f| f >= 0.0))
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 30, "{compared}");
    // Which values turn statistics on: any non-empty one; per-step counts only for `all`.
    for stats in ["", "0", "false", "true", "ALL", "all"] {
        let p = format!("query=stats_m&time={at}&stats={stats}");
        let (_, ours) = get_text(&vurl, "query", &p).await?;
        let (_, theirs) = get_text(&purl, "query", &p).await?;
        let has = |b: &str, k: &str| b.contains(&format!("\"{k}\":"));
        for key in ["stats", "totalQueryableSamplesPerStep"] {
            assert_eq!(
                has(&ours, key),
                has(&theirs, key),
                "{key} for stats={stats:?}"
            );
        }
        assert_eq!(has(&ours, "stats"), !stats.is_empty());
    }
    // POST form bodies carry it too.
    let body = format!("query=stats_m&time={at}&stats=all");
    let post = |base: String| {
        let body = body.clone();
        async move {
            let text = reqwest::Client::new()
                .post(format!("{base}/api/v1/query"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await?
                .text()
                .await?;
            anyhow::Ok(serde_json::from_str::<serde_json::Value>(&text)?)
        }
    };
    let (o, th) = (post(vurl.clone()).await?, post(purl.clone()).await?);
    assert_eq!(
        o["data"]["stats"]["samples"],
        th["data"]["stats"]["samples"]
    );
    assert!(o["data"]["stats"]["samples"]["totalQueryableSamplesPerStep"].is_array());
    // `vigil query` over the vigil server takes the parameter too (per-step counts always).
    let q =
        crate::ha_query::Query::start(peers.dir.path(), std::slice::from_ref(&vurl), &[]).await?;
    let p = format!("query=stats_m&time={at}&stats=all");
    let (code, body) = get_text(&q.url(""), "query", &p).await?;
    let (_, direct) = get_text(&vurl, "query", &p).await?;
    let samples = |b: &str| -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str::<serde_json::Value>(b)?["data"]["stats"]["samples"].clone())
    };
    assert_eq!(code, 200, "{body}");
    assert_eq!(samples(&body)?, samples(&direct)?, "vigil query: {body}");
    drop(q);
    peers.stop()
}

/// Without `--enable-feature=promql-per-step-stats`, `stats=all` gives the same statistics
/// as any other value, in vigil as in Prometheus 2.42.
#[tokio::test]
async fn query_stats_all_needs_the_feature_flag() -> anyhow::Result<()> {
    if which("prometheus").is_none() {
        return peer_missing("prometheus");
    }
    let peers = stats_peers(&[]).await?;
    let (vurl, purl, end) = (peers.vurl.clone(), peers.purl.clone(), peers.end);
    // Off the samples' times, as in query_stats_match_prometheus.
    let p = format!(
        "query=rate(stats_m[1m])&start={}.007&end={}.007&step=30&stats=all",
        (end - 300_000) / 1000,
        end / 1000
    );
    let (_, ours) = get_text(&vurl, "query_range", &p).await?;
    let (_, theirs) = get_text(&purl, "query_range", &p).await?;
    let cut = |b: &str| b.find(",\"stats\":").map(|i| shape(&b[i..]));
    assert_eq!(
        cut(&ours),
        cut(&theirs),
        "vigil: {ours}\nprometheus: {theirs}"
    );
    assert!(!ours.contains("PerStep"), "{ours}");
    let (o, th): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(&ours)?, serde_json::from_str(&theirs)?);
    assert_eq!(
        o["data"]["stats"]["samples"]["totalQueryableSamples"],
        th["data"]["stats"]["samples"]["totalQueryableSamples"]
    );
    peers.stop()
}
