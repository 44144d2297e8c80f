//! The example configs are valid for Debian's promtool and for vigil; a typo is rejected by
//! vigil with the field named.

use std::path::PathBuf;
use std::process::Command;

use testkit::{peer_missing, which};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example_configs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .expect("examples dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yml")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("prometheus"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn examples_pass_promtool_and_vigil() -> anyhow::Result<()> {
    let files = example_configs();
    assert!(!files.is_empty());
    for f in &files {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["check", "config"])
            .arg(f)
            .output()?;
        assert!(
            out.status.success(),
            "vigil rejects {}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    if which("promtool").is_none() {
        return peer_missing("promtool");
    }
    for f in &files {
        let out = Command::new("promtool")
            .args(["check", "config", "--syntax-only"])
            .arg(f)
            .output()?;
        assert!(
            out.status.success(),
            "promtool rejects {}: {}{}",
            f.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Each `testdata/config/*.bad.yml` is rejected by vigil (and by promtool), and vigil's message
/// contains the text in the file's first line (`# error: …`).
#[test]
fn bad_configs_rejected_with_field_named() -> anyhow::Result<()> {
    let dir = repo().join("testdata/config");
    let mut n = 0;
    for e in std::fs::read_dir(&dir)? {
        let p = e?.path();
        if !p.to_string_lossy().ends_with(".bad.yml") {
            continue;
        }
        n += 1;
        let text = std::fs::read_to_string(&p)?;
        let want = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# error: "))
            .expect("first line: # error: <text>");
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["check", "config"])
            .arg(&p)
            .output()?;
        let msg = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{} accepted", p.display());
        assert!(
            msg.contains(want),
            "{}: want {want:?} in {msg}",
            p.display()
        );
        if which("promtool").is_some() {
            let out = Command::new("promtool")
                .args(["check", "config", "--syntax-only"])
                .arg(&p)
                .output()?;
            assert!(!out.status.success(), "promtool accepts {}", p.display());
        }
    }
    assert!(n >= 3, "expected bad config fixtures, found {n}");
    Ok(())
}
