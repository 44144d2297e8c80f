//! Debian's amtool 0.25 as a judge of our config parsing and routing.

use std::process::Command;

use alertmanager::Config;
use model::Labels;

use crate::common::{example_config, peer};

#[test]
fn amtool_check_config_accepts_example() {
    let cfg = example_config();
    Config::load_file(&cfg).expect("vigil loads the example config");
    let Some(amtool) = peer("amtool") else { return };
    let out = Command::new(amtool)
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn routing_matches_amtool() {
    let cfg_path = example_config();
    let cfg = Config::load_file(&cfg_path).unwrap();
    let cases: &[&[(&str, &str)]] = &[
        &[("alertname", "A")],
        &[("alertname", "A"), ("severity", "critical")],
        &[("alertname", "A"), ("severity", "critical"), ("team", "db")],
        &[("alertname", "A"), ("team", "storage"), ("env", "staging")],
        &[("alertname", "A"), ("service", "foo2")],
        &[("alertname", "A"), ("service", "foo3")],
        &[("alertname", "A"), ("team", "frontend"), ("env", "dev")],
        &[("alertname", "A"), ("team", "frontend"), ("env", "prod")],
        &[("alertname", "A"), ("team", "frontend")],
    ];
    let amtool = peer("amtool");
    for labels in cases {
        let ls = Labels::from_pairs(labels.iter().copied());
        let ours: Vec<String> = cfg
            .route
            .match_labels(&ls)
            .iter()
            .map(|r| r.receiver.clone())
            .collect();
        let Some(amtool) = &amtool else { continue };
        let out = Command::new(amtool)
            .args(["config", "routes", "test", "--config.file"])
            .arg(&cfg_path)
            .args(labels.iter().map(|(k, v)| format!("{k}={v}")))
            .output()
            .unwrap();
        let theirs = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(ours.join(","), theirs, "labels {labels:?}");
    }
}

/// Bad configurations are rejected with the message `amtool check-config` (0.25) prints.
#[test]
fn config_errors_match_amtool_check_config() {
    let cases = [
        "route:\n  receiver: nope\nreceivers:\n- name: a\n",
        "route:\n  receiver: a\n  foo: 1\n  routes:\n  - receiver: a\n    bar: 2\nreceivers:\n- name: a\n  baz: 3\ntime_intervals:\n- name: t\n  time_intervals:\n  - ww: 1\n    times:\n    - vv: 1\n",
        "route:\n  receiver: a\n  group_wait: abc\nreceivers:\n- name: a\n",
        "route:\n  receiver: a\nreceivers:\n- name: a\n  webhook_configs:\n  - url: 'not a url'\n",
        "route:\n  receiver: a\nreceivers:\n- name: a\n  webhook_configs:\n  - {}\n",
        "route:\n  receiver: a\ninhibit_rules:\n- equal: ['1x']\nreceivers:\n- name: a\n",
        "route:\n  receiver: a\n  routes:\n  - matchers: ['x=~(']\nreceivers:\n- name: a\n",
        "route:\n  receiver: a\n  routes:\n  - receiver: a\n    mute_time_intervals: [t]\nreceivers:\n- name: a\ntime_intervals:\n- name: t\n  time_intervals:\n  - weekdays: ['monday:sunday']\n",
        "route:\n  receiver: a\n  routes:\n  - receiver: a\n    mute_time_intervals: [t]\nreceivers:\n- name: a\ntime_intervals:\n- name: t\n  time_intervals:\n  - days_of_month: ['20:3']\n",
    ];
    let amtool = peer("amtool");
    let dir = tempfile::tempdir().unwrap();
    for (i, text) in cases.iter().enumerate() {
        let ours = match Config::parse(text) {
            Ok(_) => "SUCCESS".to_string(),
            Err(e) => format!("FAILED: {e}"),
        };
        let Some(amtool) = &amtool else { continue };
        let path = crate::common::write(dir.path(), &format!("c{i}.yml"), text);
        let out = Command::new(amtool)
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        // `Checking 'PATH'  FAILED: MESSAGE` and a blank line.
        let stdout = String::from_utf8_lossy(&out.stdout);
        let theirs = stdout
            .trim_end()
            .split_once("  ")
            .map(|(_, m)| m.to_string())
            .unwrap_or_default();
        assert_eq!(ours, theirs, "config:\n{text}");
    }
}
