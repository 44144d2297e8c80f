//! HA behaviour of a gossip cluster (issue #7), as timelines: three alertmanagers on 127.0.0.1
//! with a short peer timeout, two senders posting the same alerts to every node, one webhook
//! sink counting pages — and a mixed cluster with Debian's Alertmanager 0.25.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::{Am, Sink, peer, poll_until, post_json, write};

pub(crate) const PEER_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) fn config(sink: &Sink) -> String {
    format!(
        r#"
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 500ms
  group_interval: 1h
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: {}
"#,
        sink.url("/hook")
    )
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) struct Node {
    pub(crate) am: Am,
    pub(crate) gossip: u16,
    pub(crate) storage: PathBuf,
}

async fn node(cfg: &Path, storage: PathBuf, name: &str, gossip: u16, peers: &[u16]) -> Node {
    node_with(cfg, storage, name, gossip, peers, Duration::from_secs(1)).await
}

async fn node_with(
    cfg: &Path,
    storage: PathBuf,
    name: &str,
    gossip: u16,
    peers: &[u16],
    pushpull: Duration,
) -> Node {
    node_tweaked(cfg, storage, name, gossip, peers, pushpull, |_| {}).await
}

/// A node with the test's short timings, then `tweak` applied to its flags.
pub(crate) async fn node_tweaked(
    cfg: &Path,
    storage: PathBuf,
    name: &str,
    gossip: u16,
    peers: &[u16],
    pushpull: Duration,
    tweak: impl FnOnce(&mut alertmanager::AlertmanagerFlags),
) -> Node {
    let name = name.to_string();
    let peers: Vec<String> = peers.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let am = Am::start_with(cfg, &storage, |f| {
        f.cluster_listen_address = format!("127.0.0.1:{gossip}");
        f.cluster_peers = peers;
        f.cluster_peer_name = name;
        f.cluster_peer_timeout = PEER_TIMEOUT;
        f.cluster_gossip_interval = Duration::from_millis(100);
        f.cluster_pushpull_interval = pushpull;
        f.cluster_probe_interval = Duration::from_millis(300);
        f.cluster_probe_timeout = Duration::from_millis(150);
        f.cluster_settle_timeout = Duration::from_millis(500);
        f.cluster_reconnect_interval = Duration::from_millis(500);
        tweak(f);
    })
    .await;
    Node {
        am,
        gossip,
        storage,
    }
}

/// Three vigil nodes n0, n1, n2 (names fix their positions); every node lists all three
/// gossip addresses, its own included.
async fn three(cfg: &Path, dir: &Path) -> Vec<Node> {
    let ports = [free_port(), free_port(), free_port()];
    let mut nodes = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let storage = dir.join(format!("n{i}"));
        nodes.push(node(cfg, storage, &format!("n{i}"), *p, &ports).await);
    }
    let ok = poll_until(Duration::from_secs(10), || {
        nodes
            .iter()
            .all(|n| n.am.app.cluster().unwrap().cluster_size() == 3)
            .then_some(())
    })
    .await;
    assert!(ok.is_some(), "three members everywhere");
    nodes
}

fn alert(name: &str) -> serde_json::Value {
    json!([{"labels": {"alertname": name, "instance": "i"}}])
}

/// Two senders (like two Prometheus replicas) post the same alert to every node.
pub(crate) async fn post_everywhere(bases: &[String], name: &str) {
    for _sender in 0..2 {
        for b in bases {
            let (code, _) = post_json(&format!("{b}/api/v2/alerts"), alert(name)).await;
            assert_eq!(code, 200);
        }
    }
}

/// The `externalURL` of the pages for alert group `name`.
pub(crate) fn pages(sink: &Sink, name: &str) -> Vec<String> {
    sink.on("/hook")
        .iter()
        .map(|h| h.json())
        .filter(|j| j["groupLabels"]["alertname"] == name)
        .map(|j| j["externalURL"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub(crate) async fn count_pages_after(sink: &Sink, name: &str, within: Duration) -> Vec<String> {
    poll_until(within, || {
        let p = pages(sink, name);
        (!p.is_empty()).then_some(())
    })
    .await;
    // Everyone else's wait (position × peer timeout) must pass without a second page.
    tokio::time::sleep(PEER_TIMEOUT * 2 + Duration::from_secs(1)).await;
    pages(sink, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_page_per_group_and_handover_on_graceful_stop() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "am.yml", &config(&sink));
    let mut nodes = three(&cfg, dir.path()).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.am.base.clone()).collect();
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| n.am.app.external_url().to_string())
        .collect();
    assert_eq!(
        nodes
            .iter()
            .map(|n| n.am.app.cluster().unwrap().position())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );

    // Steady state: one page, from position 0.
    post_everywhere(&bases, "Steady").await;
    let got = count_pages_after(&sink, "Steady", Duration::from_secs(5)).await;
    assert_eq!(got, vec![urls[0].clone()], "exactly one page, from n0");

    // n0 stops gracefully: like Alertmanager it leaves the cluster, so n1 is position 0 at
    // once and pages the next group without waiting a peer timeout. (`kill -9`, where n1 waits
    // one peer timeout, is tested with processes in crates/vigil/tests/it/am_cluster.rs.)
    let n0 = nodes.remove(0);
    n0.am.stop().await;
    poll_until(Duration::from_secs(2), || {
        (nodes[0].am.app.cluster().unwrap().position() == 0).then_some(())
    })
    .await
    .expect("n1 is position 0 right after n0 left");
    let t0 = std::time::Instant::now();
    post_everywhere(&bases[1..], "AfterCrash").await;
    let got = count_pages_after(&sink, "AfterCrash", Duration::from_secs(10)).await;
    assert_eq!(got, vec![urls[1].clone()], "exactly one page, from n1");
    let first = sink
        .on("/hook")
        .into_iter()
        .find(|h| h.json()["groupLabels"]["alertname"] == "AfterCrash")
        .unwrap();
    let took = first.at.duration_since(t0);
    assert!(
        took < PEER_TIMEOUT,
        "n1 paged without waiting a peer timeout: {took:?}"
    );

    // n0 comes back with its storage and name: it converges and pages nothing again.
    let back = node(
        &cfg,
        n0.storage.clone(),
        "n0",
        n0.gossip,
        &[nodes[0].gossip],
    )
    .await;
    poll_until(Duration::from_secs(10), || {
        (back.am.app.cluster().unwrap().cluster_size() == 3).then_some(())
    })
    .await
    .expect("n0 rejoins");
    post_json(
        &format!("{}/api/v2/alerts", back.am.base),
        alert("AfterCrash"),
    )
    .await;
    post_json(&format!("{}/api/v2/alerts", back.am.base), alert("Steady")).await;
    tokio::time::sleep(PEER_TIMEOUT * 2).await;
    assert_eq!(
        pages(&sink, "AfterCrash").len(),
        1,
        "no extra page after n0 returns"
    );
    assert_eq!(
        pages(&sink, "Steady").len(),
        1,
        "restart does not re-notify"
    );
    back.am.stop().await;
    for n in nodes {
        n.am.stop().await;
    }
}

fn avoided(nodes: &[Node]) -> u64 {
    nodes
        .iter()
        .map(|n| {
            n.am.app
                .render_metrics()
                .lines()
                .find_map(|l| l.strip_prefix("alertmanager_cluster_duplicates_avoided_total "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0) as u64
        })
        .sum()
}

/// Beyond Alertmanager: n0's send to a slow receiver is still under way when n1's and n2's
/// turns come; its gossiped in-flight record makes them wait for its nflog entry instead of
/// paging again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_receiver_is_paged_once() {
    let sink = Sink::start_slow(PEER_TIMEOUT * 2 + PEER_TIMEOUT / 2).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "am.yml", &config(&sink));
    let nodes = three(&cfg, dir.path()).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.am.base.clone()).collect();
    post_everywhere(&bases, "Slow").await;
    poll_until(Duration::from_secs(5), || {
        (!pages(&sink, "Slow").is_empty()).then_some(())
    })
    .await
    .expect("paged");
    tokio::time::sleep(PEER_TIMEOUT * 4).await;
    let got = pages(&sink, "Slow");
    assert_eq!(got.len(), 1, "one page despite the slow receiver: {got:?}");
    assert!(avoided(&nodes) >= 2, "n1 and n2 each avoided a duplicate");
    for n in nodes {
        n.am.stop().await;
    }
}

pub(crate) async fn silence_state(base: &str, id: &str) -> Option<String> {
    let r = reqwest::get(format!("{base}/api/v2/silence/{id}"))
        .await
        .ok()?;
    if r.status().as_u16() != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&r.text().await.ok()?).ok()?;
    v["status"]["state"].as_str().map(str::to_string)
}

pub(crate) async fn wait_state(bases: &[String], id: &str, want: &str, within: Duration) {
    let end = std::time::Instant::now() + within;
    loop {
        let mut all = true;
        for b in bases {
            all &= silence_state(b, id).await.as_deref() == Some(want);
        }
        if all {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "silence {id} not {want} everywhere"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn silence_body(alertname: &str) -> serde_json::Value {
    // A repetitive comment makes the gossip packet compressible, so LZW interop is exercised
    // (memberlist compresses only when that makes the packet smaller); it stays well under the
    // oversize limit, so it travels by UDP gossip.
    json!({
        "matchers": [{"name": "alertname", "value": alertname, "isRegex": false}],
        "startsAt": "2020-01-01T00:00:00Z",
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "test", "comment": "maintenance window ".repeat(12)
    })
}

pub(crate) async fn create_silence(base: &str, alertname: &str) -> String {
    let (code, body) = post_json(&format!("{base}/api/v2/silences"), silence_body(alertname)).await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["silenceID"].as_str().unwrap().to_string()
}

pub(crate) async fn expire_silence(base: &str, id: &str) {
    let r = reqwest::Client::new()
        .delete(format!("{base}/api/v2/silence/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_spreads_and_expiry_spreads() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "am.yml", &config(&sink));
    let nodes = three(&cfg, dir.path()).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.am.base.clone()).collect();

    let t0 = std::time::Instant::now();
    let id = create_silence(&bases[2], "Quiet").await;
    wait_state(&bases, &id, "active", Duration::from_secs(2)).await;
    println!("silence active everywhere after {:?}", t0.elapsed());
    post_everywhere(&bases, "Quiet").await;
    tokio::time::sleep(PEER_TIMEOUT * 2 + Duration::from_secs(1)).await;
    assert!(pages(&sink, "Quiet").is_empty(), "silenced on every node");

    expire_silence(&bases[0], &id).await;
    wait_state(&bases, &id, "expired", Duration::from_secs(2)).await;
    for n in nodes {
        n.am.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_pages_on_each_side_then_stops_duplicating() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "am.yml", &config(&sink));
    let nodes = three(&cfg, dir.path()).await;
    let bases: Vec<String> = nodes.iter().map(|n| n.am.base.clone()).collect();

    nodes[0].am.app.cluster().unwrap().set_partitioned(true);
    poll_until(Duration::from_secs(10), || {
        (nodes[1].am.app.cluster().unwrap().cluster_size() == 2).then_some(())
    })
    .await
    .expect("n1 and n2 see n0 gone");
    post_everywhere(&bases, "Split").await;
    let got = count_pages_after(&sink, "Split", Duration::from_secs(8)).await;
    assert!(!got.is_empty(), "paged at least once during the partition");
    assert!(got.len() <= 2, "at most once per side: {got:?}");

    nodes[0].am.app.cluster().unwrap().set_partitioned(false);
    poll_until(Duration::from_secs(10), || {
        nodes
            .iter()
            .all(|n| n.am.app.cluster().unwrap().cluster_size() == 3)
            .then_some(())
    })
    .await
    .expect("healed");
    // After healing, a new group is paged exactly once again.
    post_everywhere(&bases, "Healed").await;
    let got = count_pages_after(&sink, "Healed", Duration::from_secs(8)).await;
    assert_eq!(got.len(), 1, "duplicates stop after healing: {got:?}");
    let avoided: u64 = {
        let mut n = 0;
        for node in &nodes {
            let m = node.am.app.render_metrics();
            n += m
                .lines()
                .find_map(|l| l.strip_prefix("alertmanager_cluster_duplicates_avoided_total "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
        }
        n
    };
    assert!(
        avoided >= 2,
        "the peers counted the pages they did not repeat: {avoided}"
    );
    for n in nodes {
        n.am.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gossip_does_not_crash_a_node() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "am.yml", &config(&sink));
    let nodes = three(&cfg, dir.path()).await;
    let target = format!("127.0.0.1:{}", nodes[1].gossip);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Random bytes, and valid-looking headers (each message type, compound, compressed,
    // label) followed by junk or cut short.
    for i in 0..3000u64 {
        let len = (next() % 300) as usize;
        let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if !p.is_empty() && i % 2 == 0 {
            p[0] = [0u8, 1, 2, 3, 4, 5, 7, 8, 9, 12, 244][(i / 2 % 11) as usize];
        }
        let _ = udp.send_to(&p, &target);
    }
    for i in 0..30u8 {
        use std::io::Write as _;
        if let Ok(mut s) = std::net::TcpStream::connect(&target) {
            let mut p = vec![i % 14, 0x83];
            p.extend((0..(next() % 200)).map(|_| next() as u8));
            let _ = s.write_all(&p);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let id = create_silence(&nodes[0].am.base, "StillWorks").await;
    let bases: Vec<String> = nodes.iter().map(|n| n.am.base.clone()).collect();
    wait_state(&bases, &id, "active", Duration::from_secs(3)).await;
    assert_eq!(nodes[1].am.app.cluster().unwrap().cluster_size(), 3);
    let m = nodes[1].am.app.render_metrics();
    assert!(
        m.lines().any(
            |l| l.starts_with("alertmanager_cluster_messages_dropped_total ") && !l.ends_with(" 0")
        ),
        "garbage is counted"
    );
    for n in nodes {
        n.am.stop().await;
    }
}

pub(crate) struct Debian {
    child: Child,
    pub(crate) http: u16,
    pub(crate) gossip: u16,
}

impl Drop for Debian {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn debian(cfg: &Path, dir: &Path, peers: &[u16]) -> Option<Debian> {
    debian_with(cfg, dir, peers, &[])
}

/// Debian's Alertmanager 0.25 with the test's short timings and `extra` flags.
pub(crate) fn debian_with(
    cfg: &Path,
    dir: &Path,
    peers: &[u16],
    extra: &[String],
) -> Option<Debian> {
    let bin = peer("prometheus-alertmanager")?;
    let (http, gossip) = (free_port(), free_port());
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{http}"))
        .arg(format!("--cluster.listen-address=127.0.0.1:{gossip}"))
        .arg(format!(
            "--cluster.peer-timeout={}s",
            PEER_TIMEOUT.as_secs()
        ))
        .arg("--cluster.settle-timeout=500ms")
        .arg("--cluster.gossip-interval=100ms")
        // Long: after the join, state must travel by gossip (UDP, compressed), not push/pull.
        .arg("--cluster.pushpull-interval=1m")
        .arg("--cluster.probe-interval=300ms")
        .arg("--cluster.probe-timeout=150ms")
        .arg("--cluster.reconnect-interval=500ms");
    for p in peers {
        cmd.arg(format!("--cluster.peer=127.0.0.1:{p}"));
    }
    cmd.args(extra);
    std::fs::create_dir_all(dir).unwrap();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let child = cmd.stdout(Stdio::null()).stderr(log).spawn().unwrap();
    Some(Debian {
        child,
        http,
        gossip,
    })
}

/// Waits up to 15 s until every node of `bases` lists `n` peers; else panics with the counts
/// and `context()` (a peer's log, say).
pub(crate) async fn wait_peer_counts(bases: &[String], n: usize, context: impl Fn() -> String) {
    let end = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mut sizes = Vec::new();
        for b in bases {
            sizes.push(peer_names(b).await.len());
        }
        if sizes.iter().all(|&s| s == n) {
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "every node lists {n} peers: {sizes:?}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn peer_names(base: &str) -> Vec<String> {
    let Ok(r) = reqwest::get(format!("{base}/api/v2/status")).await else {
        return Vec::new();
    };
    let v: serde_json::Value =
        serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default();
    let mut names: Vec<String> = v["cluster"]["peers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_cluster_with_debian_alertmanager() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "am.yml", &config(&sink));
    let (g0, g1) = (free_port(), free_port());
    let Some(deb) = debian(&cfg, &dir.path().join("debian"), &[g0]) else {
        return;
    };
    let long = Duration::from_secs(60);
    let v0 = node_with(&cfg, dir.path().join("v0"), "v0", g0, &[g0, g1], long).await;
    let v1 = node_with(
        &cfg,
        dir.path().join("v1"),
        "v1",
        g1,
        &[g0, deb.gossip],
        long,
    )
    .await;
    let deb_base = format!("http://127.0.0.1:{}", deb.http);
    let bases = vec![v0.am.base.clone(), v1.am.base.clone(), deb_base.clone()];

    wait_peer_counts(&bases, 3, String::new).await;
    let names = peer_names(&deb_base).await;
    assert_eq!(peer_names(&bases[0]).await, names);
    assert!(names.contains(&"v0".to_string()) && names.contains(&"v1".to_string()));

    post_everywhere(&bases, "Mixed").await;
    let got = count_pages_after(&sink, "Mixed", Duration::from_secs(8)).await;
    assert_eq!(
        got.len(),
        1,
        "exactly one page from the mixed cluster: {got:?}"
    );

    // A silence made on Debian's node silences on ours, and the other way round.
    let from_debian = create_silence(&deb_base, "FromDebian").await;
    wait_state(&bases, &from_debian, "active", Duration::from_secs(3)).await;
    let from_vigil = create_silence(&bases[1], "FromVigil").await;
    wait_state(&bases, &from_vigil, "active", Duration::from_secs(3)).await;
    post_everywhere(&bases, "FromDebian").await;
    post_everywhere(&bases, "FromVigil").await;
    tokio::time::sleep(PEER_TIMEOUT * 2 + Duration::from_secs(1)).await;
    assert!(pages(&sink, "FromDebian").is_empty());
    assert!(pages(&sink, "FromVigil").is_empty());
    expire_silence(&bases[0], &from_debian).await;
    wait_state(&bases, &from_debian, "expired", Duration::from_secs(3)).await;

    v0.am.stop().await;
    v1.am.stop().await;
    drop(deb);
}
