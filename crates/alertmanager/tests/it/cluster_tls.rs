//! Who may join a cluster. TLS (`--cluster.tls-config`): vigil nodes with mutual TLS form a
//! cluster and replicate silences; a node with a certificate from another CA, or without TLS,
//! never joins; vigil and Debian's Alertmanager 0.25 form one TLS cluster. The shared key
//! (`--cluster.key-file`): nodes without it, or with another key, never join.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster::{
    Node, config, count_pages_after, create_silence, debian_with, free_port, node_tweaked,
    peer_names, post_everywhere, wait_peer_counts, wait_state,
};
use crate::common::{Sink, poll_until, write};

fn certs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cluster/testdata/tls")
}

/// A TLS file with mutual TLS: the server asks for and verifies client certificates against
/// `ca`, and the client presents `cert`.
fn tls_file(dir: &Path, name: &str, cert: &str, ca: &str) -> PathBuf {
    let c = certs();
    let text = format!(
        "tls_server_config:\n  cert_file: {c}/{cert}.pem\n  key_file: {c}/{cert}-key.pem\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {c}/{ca}.pem\n\
         tls_client_config:\n  ca_file: {c}/{ca}.pem\n  cert_file: {c}/{cert}.pem\n  \
         key_file: {c}/{cert}-key.pem\n",
        c = c.display()
    );
    write(dir, name, &text)
}

async fn tls_node(
    cfg: &Path,
    dir: &Path,
    name: &str,
    gossip: u16,
    peers: &[u16],
    tls: Option<&Path>,
) -> Node {
    let tls = tls.map(|p| p.display().to_string()).unwrap_or_default();
    node_tweaked(
        cfg,
        dir.join(name),
        name,
        gossip,
        peers,
        Duration::from_secs(60),
        |f| f.cluster_tls_config = tls,
    )
    .await
}

fn size(n: &Node) -> usize {
    n.am.app.cluster().unwrap().cluster_size()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cluster_replicates_and_refuses_strangers() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "am.yml", &config(&sink));
    let good = tls_file(dir.path(), "tls.yml", "node", "ca");
    let bad = tls_file(dir.path(), "stranger.yml", "stranger", "other-ca");
    let (g0, g1, g2, g3) = (free_port(), free_port(), free_port(), free_port());
    let a = tls_node(&cfg, dir.path(), "a", g0, &[g0, g1], Some(&good)).await;
    let b = tls_node(&cfg, dir.path(), "b", g1, &[g0, g1], Some(&good)).await;
    let ok = poll_until(Duration::from_secs(10), || {
        (size(&a) == 2 && size(&b) == 2).then_some(())
    })
    .await;
    assert!(ok.is_some(), "two TLS nodes form a cluster");
    // No UDP in TLS mode: the gossip port is free for UDP.
    assert!(std::net::UdpSocket::bind(("127.0.0.1", g0)).is_ok());

    let bases = vec![a.am.base.clone(), b.am.base.clone()];
    let id = create_silence(&bases[0], "OverTls").await;
    wait_state(&bases, &id, "active", Duration::from_secs(3)).await;
    post_everywhere(&bases, "Paged").await;
    let got = count_pages_after(&sink, "Paged", Duration::from_secs(8)).await;
    assert_eq!(got.len(), 1, "one page from the TLS cluster: {got:?}");

    // A certificate from another CA, and a node without TLS: neither gets in.
    let stranger = tls_node(&cfg, dir.path(), "s", g2, &[g0, g1], Some(&bad)).await;
    let plain = tls_node(&cfg, dir.path(), "p", g3, &[g0, g1], None).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(size(&stranger), 1, "the stranger stays alone");
    assert_eq!(size(&plain), 1, "the plain node stays alone");
    assert_eq!((size(&a), size(&b)), (2, 2), "members unchanged");
    let names = peer_names(&bases[1]).await;
    assert_eq!(names, vec!["a".to_string(), "b".to_string()]);
    for n in [a, b, stranger, plain] {
        n.am.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_mixed_cluster_with_debian_alertmanager() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "am.yml", &config(&sink));
    let tls = tls_file(dir.path(), "tls.yml", "node", "ca");
    let (g0, g1) = (free_port(), free_port());
    let Some(deb) = debian_with(
        &cfg,
        &dir.path().join("debian"),
        &[g0],
        &[format!("--cluster.tls-config={}", tls.display())],
    ) else {
        return;
    };
    let v0 = tls_node(&cfg, dir.path(), "v0", g0, &[g0, g1], Some(&tls)).await;
    let v1 = tls_node(&cfg, dir.path(), "v1", g1, &[g0, deb.gossip], Some(&tls)).await;
    let deb_base = format!("http://127.0.0.1:{}", deb.http);
    let bases = vec![v0.am.base.clone(), v1.am.base.clone(), deb_base.clone()];
    let debian_log = || std::fs::read_to_string(dir.path().join("debian/log")).unwrap_or_default();
    wait_peer_counts(&bases, 3, debian_log).await;
    // Silences cross both ways (by gossip packets over the TLS transport).
    let from_debian = create_silence(&deb_base, "FromDebian").await;
    wait_state(&bases, &from_debian, "active", Duration::from_secs(3)).await;
    let from_vigil = create_silence(&bases[1], "FromVigil").await;
    wait_state(&bases, &from_vigil, "active", Duration::from_secs(3)).await;
    post_everywhere(&bases, "MixedTls").await;
    let got = count_pages_after(&sink, "MixedTls", Duration::from_secs(8)).await;
    assert_eq!(got.len(), 1, "one page from the mixed TLS cluster: {got:?}");
    v0.am.stop().await;
    v1.am.stop().await;
    drop(deb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_file_keeps_out_nodes_without_the_key() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "am.yml", &config(&sink));
    let key = write(
        dir.path(),
        "key",
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU=\n",
    );
    let other = write(dir.path(), "other", "AAAAAAAAAAAAAAAAAAAAAA==\n");
    let (g0, g1, g2, g3) = (free_port(), free_port(), free_port(), free_port());
    let keyed = |name: &'static str, port: u16, file: Option<PathBuf>| {
        let file = file.map(|p| p.display().to_string()).unwrap_or_default();
        let (cfg, dir) = (cfg.clone(), dir.path().to_path_buf());
        async move {
            node_tweaked(
                &cfg,
                dir.join(name),
                name,
                port,
                &[g0, g1],
                Duration::from_secs(60),
                |f| f.cluster_key_file = file,
            )
            .await
        }
    };
    let a = keyed("a", g0, Some(key.clone())).await;
    let b = keyed("b", g1, Some(key.clone())).await;
    let ok = poll_until(Duration::from_secs(10), || {
        (size(&a) == 2 && size(&b) == 2).then_some(())
    })
    .await;
    assert!(ok.is_some(), "two keyed nodes form a cluster");
    let plain = keyed("plain", g2, None).await;
    let wrong = keyed("wrong", g3, Some(other)).await;
    // Debian's Alertmanager 0.25 has no keyring: it cannot join either.
    let deb = debian_with(&cfg, &dir.path().join("debian"), &[g0, g1], &[]);
    let bases = vec![a.am.base.clone(), b.am.base.clone()];
    let id = create_silence(&bases[1], "Keyed").await;
    wait_state(&bases, &id, "active", Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!((size(&a), size(&b)), (2, 2), "members unchanged");
    assert_eq!(size(&plain), 1);
    assert_eq!(size(&wrong), 1);
    if let Some(deb) = &deb {
        let base = format!("http://127.0.0.1:{}", deb.http);
        let end = std::time::Instant::now() + Duration::from_secs(10);
        let mut names = peer_names(&base).await;
        while names.is_empty() && std::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(100)).await;
            names = peer_names(&base).await;
        }
        assert_eq!(names.len(), 1, "Debian stays alone: {names:?}");
    }
    assert_eq!(
        peer_names(&bases[0]).await,
        vec!["a".to_string(), "b".to_string()]
    );
    for n in [a, b, plain, wrong] {
        n.am.stop().await;
    }
    drop(deb);
}
