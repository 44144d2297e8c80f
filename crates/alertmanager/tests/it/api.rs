//! API v2 against Debian's amtool 0.25 and the status codes of Alertmanager 0.25.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::common::{Am, get, peer, post_json, write};

const CFG: &str = r#"
route:
  receiver: web
  group_by: [alertname]
  group_wait: 1h
receivers:
- name: web
  webhook_configs:
  - url: http://127.0.0.1:9/
"#;

fn amtool(amtool: &std::path::Path, base: &str, args: &[&str]) -> String {
    let out = Command::new(amtool)
        .arg(format!("--alertmanager.url={base}"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "amtool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_alerts_and_silences() {
    let Some(bin) = peer("amtool") else { return };
    let dir = tempfile::tempdir().unwrap();
    let am = Am::start(&write(dir.path(), "am.yml", CFG), &dir.path().join("data")).await;
    let base = am.base.clone();
    let b = base.clone();
    let bin2 = bin.clone();
    tokio::task::spawn_blocking(move || {
        amtool(
            &bin2,
            &b,
            &[
                "alert",
                "add",
                "TestAlert",
                "severity=page",
                "--annotation=summary=hi",
            ],
        );
        let q = amtool(&bin2, &b, &["alert", "query", "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&q).unwrap();
        assert_eq!(v[0]["labels"]["alertname"], "TestAlert");
        assert_eq!(v[0]["annotations"]["summary"], "hi");
        let id = amtool(
            &bin2,
            &b,
            &[
                "silence",
                "add",
                "severity=page",
                "-c",
                "maintenance",
                "-a",
                "me",
                "-d",
                "1h",
            ],
        );
        let id = id.trim().to_string();
        assert_eq!(id.len(), 36, "{id}");
        let q = amtool(&bin2, &b, &["silence", "query", "-q"]);
        assert_eq!(q.trim(), id);
        let exported = amtool(&bin2, &b, &["silence", "query", "-o", "json"]);
        let q = amtool(&bin2, &b, &["alert", "query", "-o", "json", "--silenced"]);
        let v: serde_json::Value = serde_json::from_str(&q).unwrap();
        assert_eq!(v[0]["status"]["silencedBy"][0], id.as_str());
        amtool(&bin2, &b, &["silence", "expire", &id]);
        let q = amtool(&bin2, &b, &["silence", "query", "-q"]);
        assert_eq!(q.trim(), "", "expired silences are not listed by default");
        let q = amtool(&bin2, &b, &["silence", "query", "-q", "--expired"]);
        assert_eq!(q.trim(), id);
        // `silence import` of the exported (now expired) silence creates a new one, as
        // Alertmanager does when an update would touch an expired silence.
        let file = std::env::temp_dir().join(format!("vigil-silences-{}.json", std::process::id()));
        std::fs::write(&file, &exported).unwrap();
        amtool(
            &bin2,
            &b,
            &["silence", "import", &file.display().to_string()],
        );
        let _ = std::fs::remove_file(&file);
        let q = amtool(&bin2, &b, &["silence", "query", "-q"]);
        assert_eq!(q.split_whitespace().count(), 1, "{q}");
        assert_ne!(q.trim(), id, "import must create a new silence");
        let _ = amtool(&bin2, &b, &["config", "show"]);
    })
    .await
    .unwrap();
    am.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_like_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let am = Am::start(&write(dir.path(), "am.yml", CFG), &dir.path().join("data")).await;
    let b = &am.base;
    #[track_caller]
    fn check(got: (u16, String), code: u16, body: &str) {
        assert_eq!(got.0, code, "{}", got.1);
        assert_eq!(got.1.trim_end(), body);
    }
    let alerts = format!("{b}/api/v2/alerts");
    check(
        post_json(&alerts, json!([{"annotations": {}}])).await,
        422,
        r#"{"code":602,"message":"0.labels in body is required"}"#,
    );
    check(
        post_json(&alerts, json!([{"labels": {}}])).await,
        400,
        r#""at least one label pair required""#,
    );
    check(
        post_json(&alerts, json!([{"labels": {"a b": "c"}}])).await,
        400,
        r#""invalid label set: invalid name \"a b\"""#,
    );
    check(
        post_json(&alerts, json!([{"labels": {"a": "b"}, "startsAt": "2030-01-01T00:00:00Z", "endsAt": "2029-01-01T00:00:00Z"}])).await,
        400,
        r#""start time must be before end time""#,
    );
    check(
        get(&format!("{alerts}?filter=foo")).await,
        400,
        r#""bad matcher format: foo""#,
    );
    let sil = format!("{b}/api/v2/silences");
    let s = |m: serde_json::Value, start: &str, end: &str| json!({"matchers": m, "startsAt": start, "endsAt": end, "createdBy": "me", "comment": "c"});
    let ab = json!([{"name": "a", "value": "b", "isRegex": false}]);
    check(
        post_json(
            &sil,
            s(
                json!([{"name": "a", "value": "", "isRegex": false}]),
                "2020-01-01T00:00:00Z",
                "2090-01-01T00:00:00Z",
            ),
        )
        .await,
        400,
        r#""silence invalid: at least one matcher must not match the empty string""#,
    );
    check(
        post_json(
            &sil,
            s(ab.clone(), "2020-01-01T00:00:00Z", "2010-01-01T00:00:00Z"),
        )
        .await,
        400,
        r#""Failed to create silence: start time must be before end time""#,
    );
    check(
        post_json(
            &sil,
            s(ab.clone(), "2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"),
        )
        .await,
        400,
        r#""Failed to create silence: end time can't be in the past""#,
    );
    check(
        post_json(
            &sil,
            s(json!([]), "2020-01-01T00:00:00Z", "2090-01-01T00:00:00Z"),
        )
        .await,
        422,
        r#"{"code":612,"message":"matchers in body should have at least 1 items"}"#,
    );
    let mut with_id = s(ab.clone(), "2020-01-01T00:00:00Z", "2090-01-01T00:00:00Z");
    with_id["id"] = json!("6e7a4f4c-0000-0000-0000-000000000000");
    check(
        post_json(&sil, with_id).await,
        404,
        r#""silence not found""#,
    );
    check(
        get(&format!("{b}/api/v2/silence/abc")).await,
        422,
        r#"{"code":601,"message":"silenceID in path must be of type uuid: \"abc\""}"#,
    );
    check(
        get(&format!(
            "{b}/api/v2/silence/6e7a4f4c-0000-0000-0000-000000000000"
        ))
        .await,
        404,
        "",
    );
    check(
        get(&format!("{b}/api/v2/nothing")).await,
        404,
        r#"{"code":404,"message":"path /api/v2/nothing was not found"}"#,
    );
    check(
        get(&format!("{b}/api/v2/receivers")).await,
        200,
        r#"[{"name":"web"}]"#,
    );
    check(get(&format!("{b}/-/healthy")).await, 200, "OK");
    let (code, status) = get(&format!("{b}/api/v2/status")).await;
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["cluster"], json!({"peers": [], "status": "disabled"}));
    assert!(
        v["config"]["original"]
            .as_str()
            .unwrap()
            .contains("receiver: web")
    );
    let (_, m) = get(&format!("{b}/metrics")).await;
    assert!(
        m.contains("alertmanager_alerts_invalid_total{version=\"v2\"} 3"),
        "{m}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    am.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_prefix_from_external_url() {
    let dir = tempfile::tempdir().unwrap();
    let am = Am::start_with(
        &write(dir.path(), "am.yml", CFG),
        &dir.path().join("data"),
        |f| {
            f.external_url = "http://example.com/am/".to_string();
        },
    )
    .await;
    assert_eq!(get(&format!("{}/am/-/ready", am.base)).await.0, 200);
    assert_eq!(get(&format!("{}/am/api/v2/alerts", am.base)).await.0, 200);
    assert_eq!(am.app.external_url(), "http://example.com/am");
    am.stop().await;
}
