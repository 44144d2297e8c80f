//! `remote_write`/`remote_read` sections: what we accept or refuse, Debian's promtool 2.42
//! accepts or refuses too (for the refusals both sides agree on; ours are stricter for
//! `sigv4`/`oauth2`, which we do not support yet).

use std::process::Command;

use remote::config::{
    RemoteReadConfig, RemoteWriteConfig, validate_remote_reads, validate_remote_writes,
};

#[derive(serde::Deserialize)]
struct Sections {
    #[serde(default)]
    remote_write: Vec<RemoteWriteConfig>,
    #[serde(default)]
    remote_read: Vec<RemoteReadConfig>,
}

fn ours(y: &str) -> Result<(), String> {
    let mut s: Sections = serde_saphyr::from_str(y).map_err(|e| e.to_string())?;
    validate_remote_writes(&mut s.remote_write).map_err(|e| e.to_string())?;
    validate_remote_reads(&mut s.remote_read).map_err(|e| e.to_string())
}

#[derive(PartialEq)]
enum Verdict {
    /// Both accept.
    Both,
    /// Both refuse.
    Neither,
    /// Prometheus loads it, we refuse it (see `remote::config`'s docs).
    OnlyPrometheus,
}

#[test]
fn agrees_with_promtool() -> anyhow::Result<()> {
    let Some(promtool) = testkit::which("promtool") else {
        return testkit::peer_missing("promtool");
    };
    let dir = tempfile::tempdir()?;
    use Verdict::*;
    let cases: &[(&str, Verdict)] = &[
        ("remote_write:\n  - url: http://a/w\n", Both),
        (
            "remote_write:\n  - url: https://a/w\n    name: a\n    remote_timeout: 10s\n    headers: {X-Scope-OrgID: t1}\n    write_relabel_configs:\n      - {source_labels: [__name__], regex: go_.*, action: drop}\n    queue_config: {capacity: 10000, max_samples_per_send: 2000, batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 10s, retry_on_http_429: true}\n    metadata_config: {send: false, send_interval: 2m}\n    basic_auth: {username: u, password: p}\n",
            Both,
        ),
        (
            "remote_read:\n  - url: http://a/r\n    read_recent: true\n    required_matchers: {job: x}\n    filter_external_labels: false\n",
            Both,
        ),
        ("remote_write:\n  - {}\n", Neither),
        (
            "remote_write:\n  - url: http://a/w\n    headers: {Content-Type: x}\n",
            Neither,
        ),
        ("remote_write:\n  - url: http://a/w\n    foo: 1\n", Neither),
        (
            "remote_write:\n  - {url: http://a/w, name: x}\n  - {url: http://b/w, name: x}\n",
            Neither,
        ),
        (
            "remote_write:\n  - url: http://a/w\n    bearer_token: t\n    basic_auth: {username: u}\n",
            Neither,
        ),
        ("remote_read:\n  - {}\n", Neither),
        (
            "remote_read:\n  - url: http://a/r\n    queue_config: {}\n",
            Neither,
        ),
        ("remote_write:\n  - url: ''\n", OnlyPrometheus),
        ("remote_write:\n  - url: ftp://a/w\n", OnlyPrometheus),
        (
            "remote_write:\n  - url: http://a/w\n    queue_config: {max_shards: 0}\n",
            OnlyPrometheus,
        ),
        (
            "remote_write:\n  - url: http://a/w\n    queue_config: {max_samples_per_send: 0}\n",
            OnlyPrometheus,
        ),
        (
            "remote_write:\n  - url: http://a/w\n    queue_config: {min_backoff: 10s, max_backoff: 1s}\n",
            OnlyPrometheus,
        ),
    ];
    for (i, (y, verdict)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("p{i}.yml"));
        std::fs::write(&f, y)?;
        let out = Command::new(&promtool)
            .arg("check")
            .arg("config")
            .arg(&f)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        let theirs = out.status.success();
        let mine = ours(y);
        assert_eq!(theirs, *verdict != Neither, "promtool on case {i}: {text}");
        assert_eq!(mine.is_ok(), *verdict == Both, "ours on case {i}: {mine:?}");
        // Where both refuse for a validation rule (not YAML shape), the messages match.
        if let (Err(m), Some(their_msg)) = (&mine, text.split(&format!("p{i}.yml: ")).nth(1)) {
            let their_msg = their_msg.lines().next().unwrap_or_default();
            if !their_msg.starts_with("yaml:") {
                assert!(
                    m.contains(their_msg),
                    "case {i}: ours {m:?}, theirs {their_msg:?}"
                );
            }
        }
    }
    Ok(())
}
