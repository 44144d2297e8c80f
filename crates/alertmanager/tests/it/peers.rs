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
