//! Rule unit tests in promtool's format (`promtool test rules`): `rule_files`,
//! `evaluation_interval`, `group_eval_order` and `tests` with `input_series` in expanding
//! notation, `alert_rule_test` and `promql_expr_test`. Output and exit code follow promtool
//! 2.42: `Unit Testing:  FILE`, then `  SUCCESS` or `  FAILED:` with one block per failure.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use model::duration::serde_opt_prom_duration;
use model::{Labels, MatchType};
use serde::Deserialize;

use crate::group::{EvalEnv, Group};
use crate::memstore::MemStorage;
use crate::rule::{AlertState, EngineQuery, QueryRunner, Rule};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default, with = "serde_opt_prom_duration")]
    evaluation_interval: Option<Duration>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default, with = "serde_opt_prom_duration")]
    interval: Option<Duration>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    #[serde(default)]
    values: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(default, with = "serde_opt_prom_duration")]
    eval_time: Option<Duration>,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    #[serde(default, with = "serde_opt_prom_duration")]
    eval_time: Option<Duration>,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: f64,
}

/// One value of a series description: a sample, a gap or a staleness marker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SeriesValue {
    Value(f64),
    Omitted,
    Stale,
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => promql::parse_go_float(s),
    }
}

/// Expands promtool's notation: `a+bxn`, `a-bxn`, `axn`, `_`, `_xn`, `stale`.
pub fn expand_values(text: &str) -> Result<Vec<SeriesValue>, String> {
    let mut out = Vec::new();
    for tok in text.split_whitespace() {
        if tok == "_" {
            out.push(SeriesValue::Omitted);
            continue;
        }
        if tok == "stale" {
            out.push(SeriesValue::Stale);
            continue;
        }
        let Some(xpos) = tok.rfind('x') else {
            let v = parse_float(tok).ok_or_else(|| format!("invalid value {tok:?}"))?;
            out.push(SeriesValue::Value(v));
            continue;
        };
        let (head, n) = (&tok[..xpos], &tok[xpos + 1..]);
        let n: usize = n
            .parse()
            .map_err(|_| format!("invalid repetition in {tok:?}"))?;
        if head == "_" {
            out.extend(std::iter::repeat_n(SeriesValue::Omitted, n));
            continue;
        }
        // Split "a+b" / "a-b" at the operator that is not a sign or an exponent's sign.
        let bytes = head.as_bytes();
        let op = (1..bytes.len()).find(|&i| {
            (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
        });
        let (start, step) = match op {
            Some(i) => {
                let a =
                    parse_float(&head[..i]).ok_or_else(|| format!("invalid value in {tok:?}"))?;
                let b = parse_float(&head[i + 1..])
                    .ok_or_else(|| format!("invalid step in {tok:?}"))?;
                (a, if bytes[i] == b'-' { -b } else { b })
            }
            None => (
                parse_float(head).ok_or_else(|| format!("invalid value in {tok:?}"))?,
                0.0,
            ),
        };
        for k in 0..=n {
            out.push(SeriesValue::Value(start + step * k as f64));
        }
    }
    Ok(out)
}

/// Parses a series description like `up{job="x"}` (equality matchers only) into labels.
pub fn parse_metric(s: &str) -> Result<Labels, String> {
    let s = s.trim();
    if s.is_empty() || s == "{}" {
        return Ok(Labels::empty());
    }
    let ms = model::parse_selector(s).map_err(|e| e.to_string())?;
    let mut pairs = Vec::with_capacity(ms.len());
    for m in ms {
        if m.kind != MatchType::Equal {
            return Err(format!(
                "invalid series description {s:?}: only = is allowed"
            ));
        }
        pairs.push((m.name, m.value));
    }
    Ok(Labels::from_pairs(pairs))
}

fn fmt_dur(d: Duration) -> String {
    model::format_duration(d)
}

/// The outcome of one file.
#[derive(Debug, Default)]
pub struct FileResult {
    pub errors: Vec<String>,
}

/// Runs every test file, printing like promtool; returns the process exit code (0 or 1).
pub fn main_cli(files: &[PathBuf], run: Option<&str>) -> u8 {
    // compat: promtool's argument parser rejects a missing file before testing any.
    if let Some(missing) = files.iter().find(|f| !f.exists()) {
        eprintln!(
            "promtool: error: path '{}' does not exist, try --help",
            missing.display()
        );
        return 1;
    }
    let mut failed = false;
    for f in files {
        println!("Unit Testing:  {}", f.display());
        let res = run_file(f, run);
        if res.errors.is_empty() {
            println!("  SUCCESS");
        } else {
            eprintln!("  FAILED:");
            for e in &res.errors {
                eprintln!("{e}");
                println!();
            }
            failed = true;
        }
        println!();
    }
    u8::from(failed)
}

/// Runs one test file. `run` selects test groups whose name matches this regex.
pub fn run_file(path: &Path, run: Option<&str>) -> FileResult {
    let mut res = FileResult::default();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            res.errors.push(format!("open {}: {e}", path.display()));
            return res;
        }
    };
    let tf: TestFile = match serde_saphyr::from_str(&text) {
        Ok(t) => t,
        Err(e) => {
            // yaml.UnmarshalStrict's messages, with Go's type names.
            res.errors.extend(crate::rulefmt::yaml_errors_with(
                &text,
                &e,
                |t| {
                    serde_saphyr::from_str::<TestFile>(t)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                },
                go_test_type,
            ));
            return res;
        }
    };
    // compat: promtool treats a zero interval as unset.
    let eval_interval = tf
        .evaluation_interval
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(60));
    let base = path.parent().unwrap_or(Path::new("."));
    let rule_files: Vec<String> = tf
        .rule_files
        .iter()
        .map(|f| {
            if Path::new(f).is_relative() {
                base.join(f).to_string_lossy().into_owned()
            } else {
                f.clone()
            }
        })
        .collect();
    // Globs first (promtool warns about patterns matching nothing); the files are loaded for
    // each test group, which reports their errors.
    let mut paths = Vec::new();
    for rf in &rule_files {
        match crate::rulefmt::expand_globs(std::slice::from_ref(rf)) {
            Ok(m) if m.is_empty() => eprintln!("  WARNING: no file match pattern {rf}"),
            Ok(m) => paths.extend(m),
            Err(e) => {
                res.errors.push(e.to_string());
                return res;
            }
        }
    }
    let load = || -> Result<Vec<crate::rulefmt::LoadedFile>, Vec<String>> {
        let mut out = Vec::with_capacity(paths.len());
        for p in &paths {
            let text = std::fs::read_to_string(p)
                .map_err(|e| vec![format!("open {}: {e}", p.display())])?;
            let f = crate::rulefmt::parse_file_all(p, &text)
                .map_err(|errs| errs.iter().map(ToString::to_string).collect::<Vec<_>>())?;
            out.push(f);
        }
        Ok(out)
    };
    let filter = match run
        .map(|r| model::GoRegex::new(&format!(".*(?:{r}).*")))
        .transpose()
    {
        Ok(f) => f,
        Err(e) => {
            res.errors.push(format!("  invalid --run regex: {e}"));
            return res;
        }
    };
    for tg in &tf.tests {
        if let Some(re) = &filter
            && !re.is_match(&tg.name)
        {
            continue;
        }
        match load() {
            Ok(files) => {
                res.errors
                    .extend(run_group(tg, &files, eval_interval, &tf.group_eval_order))
            }
            Err(errs) => res.errors.extend(errs),
        }
    }
    res
}

/// The Go type promtool decodes a test file's mapping into, told by its fields.
fn go_test_type(expected: &str) -> &'static str {
    let has = |f: &str| expected.split([' ', ',']).any(|w| w == f);
    if has("rule_files") {
        "main.unitTestFile"
    } else if has("input_series") {
        "main.testGroup"
    } else if has("series") {
        "main.series"
    } else if has("alertname") {
        "main.alertTestCase"
    } else if has("exp_labels") {
        "main.alert"
    } else if has("exp_samples") {
        "main.promqlTestCase"
    } else {
        "main.sample"
    }
}

fn run_group(
    tg: &TestGroup,
    files: &[crate::rulefmt::LoadedFile],
    eval_interval: Duration,
    order: &[String],
) -> Vec<String> {
    let mut errs = Vec::new();
    let store = MemStorage::new();
    let interval = tg
        .interval
        .filter(|d| !d.is_zero())
        .unwrap_or(eval_interval);
    let iv_ms = interval.as_millis() as i64;
    for s in &tg.input_series {
        let labels = match parse_metric(&s.series) {
            Ok(l) => l,
            Err(e) => {
                errs.push(format!("    series {:?}: {e}", s.series));
                return errs;
            }
        };
        let vals = match expand_values(&s.values) {
            Ok(v) => v,
            Err(e) => {
                errs.push(format!("    series {:?}: {e}", s.series));
                return errs;
            }
        };
        let samples: Vec<(i64, f64)> = vals
            .iter()
            .enumerate()
            .filter_map(|(k, v)| match v {
                SeriesValue::Value(f) => Some((k as i64 * iv_ms, *f)),
                SeriesValue::Stale => Some((k as i64 * iv_ms, model::STALE_NAN)),
                SeriesValue::Omitted => None,
            })
            .collect();
        store.add(&labels, &samples);
    }
    let ext_url = tg.external_url.clone();
    let mut groups: Vec<Group> = Vec::new();
    for f in files {
        for g in &f.groups {
            groups.push(Group::new(
                &f.path,
                g,
                eval_interval,
                &tg.external_labels,
                &ext_url,
            ));
        }
    }
    if !order.is_empty() {
        let pos: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        groups.sort_by_key(|g| pos.get(g.name.as_str()).copied().unwrap_or(usize::MAX));
    }
    for g in &groups {
        g.set_restored();
    }
    let engine = promql::Engine::new(promql::EngineOptions {
        no_step_subquery_interval: eval_interval,
        ..Default::default()
    });
    let query = Arc::new(EngineQuery {
        engine,
        queryable: Arc::new(store.clone()),
    });
    let env = EvalEnv {
        query: query.clone(),
        appendable: Arc::new(store.clone()),
        sink: None,
        resend_delay: Duration::from_secs(60),
        external_url: ext_url,
    };
    let mut alert_times: Vec<i64> = tg
        .alert_rule_test
        .iter()
        .map(|a| a.eval_time.unwrap_or_default().as_millis() as i64)
        .collect();
    alert_times.sort_unstable();
    alert_times.dedup();
    let max_t = tg
        .alert_rule_test
        .iter()
        .map(|a| a.eval_time)
        .chain(tg.promql_expr_test.iter().map(|e| e.eval_time))
        .map(|d| d.unwrap_or_default().as_millis() as i64)
        .max()
        .unwrap_or(0);
    let step = (eval_interval.as_millis() as i64).max(1);
    let name_prefix = if tg.name.is_empty() {
        String::new()
    } else {
        format!("    name: {},\n", tg.name)
    };
    let mut curr = 0;
    let mut ts = 0i64;
    while ts <= max_t {
        let mut eval_errs = Vec::new();
        for g in &groups {
            g.eval(ts, &env);
            let st = g.state.lock();
            for (r, info) in st.rules.iter().zip(&st.infos) {
                if let Some(e) = &info.last_error {
                    eval_errs.push(format!(
                        "    rule: {}, time: {}, err: {e}",
                        r.name(),
                        fmt_dur(Duration::from_millis(ts as u64))
                    ));
                }
            }
        }
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return errs;
        }
        while curr < alert_times.len() && ts <= alert_times[curr] && alert_times[curr] < ts + step {
            let t = alert_times[curr];
            for at in tg
                .alert_rule_test
                .iter()
                .filter(|a| a.eval_time.unwrap_or_default().as_millis() as i64 == t)
            {
                let mut got = firing_alerts(&groups, &at.alertname);
                let mut exp: Vec<(Labels, Labels)> = at
                    .exp_alerts
                    .iter()
                    .map(|a| {
                        let mut l = a.exp_labels.clone();
                        l.insert("alertname".to_string(), at.alertname.clone());
                        (
                            Labels::from_pairs(l.iter()),
                            Labels::from_pairs(a.exp_annotations.iter()),
                        )
                    })
                    .collect();
                got.sort();
                exp.sort();
                if got != exp {
                    errs.push(format!(
                        "{name_prefix}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                        at.alertname,
                        fmt_dur(Duration::from_millis(t as u64)),
                        fmt_alerts(&exp),
                        fmt_alerts(&got)
                    ));
                }
            }
            curr += 1;
        }
        ts += step;
    }
    for et in &tg.promql_expr_test {
        let t = et.eval_time.unwrap_or_default();
        let tdesc = fmt_dur(t);
        let got = promql::parse(&et.expr)
            .map_err(|e| e.to_string())
            .and_then(|e| query.query(&e, t.as_millis() as i64));
        let got = match got {
            Ok(g) => g,
            Err(e) => {
                errs.push(format!(
                    "{name_prefix}    expr: {:?}, time: {tdesc}, err: {e}",
                    et.expr
                ));
                continue;
            }
        };
        let mut exp = Vec::new();
        let mut bad = false;
        for s in &et.exp_samples {
            match parse_metric(&s.labels) {
                Ok(l) => exp.push((l, s.value)),
                Err(e) => {
                    errs.push(format!(
                        "    expr: {:?}, time: {tdesc}, err: labels {:?}: {e}",
                        et.expr, s.labels
                    ));
                    bad = true;
                    break;
                }
            }
        }
        if bad {
            continue;
        }
        let mut got: Vec<(Labels, f64)> = got.into_iter().map(|s| (s.labels, s.v)).collect();
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let same =
            exp.len() == got.len() && exp.iter().zip(&got).all(|(a, b)| a.0 == b.0 && a.1 == b.1);
        if !same {
            errs.push(format!(
                "    expr: {:?}, time: {tdesc},\n        exp: {}\n        got: {}",
                et.expr,
                fmt_samples(&exp),
                fmt_samples(&got)
            ));
        }
    }
    errs
}

fn firing_alerts(groups: &[Group], name: &str) -> Vec<(Labels, Labels)> {
    let mut out = Vec::new();
    for g in groups {
        let st = g.state.lock();
        for r in &st.rules {
            if let Rule::Alerting(a) = r
                && a.name == name
            {
                for al in a
                    .active
                    .values()
                    .filter(|al| al.state == AlertState::Firing)
                {
                    out.push((al.labels.clone(), Labels::from_pairs(al.annotations.iter())));
                }
            }
        }
    }
    out
}

/// compat: promtool's `labelsAndAnnotations.String()`, indented like its error messages.
fn fmt_alerts(v: &[(Labels, Labels)]) -> String {
    if v.is_empty() {
        return "[]".to_string();
    }
    let mut s = String::from("[");
    for (i, (l, a)) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("\n{i}:\n  Labels:{l}\n  Annotations:{a}"));
    }
    s.push_str("\n]");
    s.replace('\n', "\n            ")
}

/// compat: promtool's `parsedSamplesString`: values as Go's `FormatFloat(v, 'E', -1, 64)`.
fn fmt_samples(v: &[(Labels, f64)]) -> String {
    if v.is_empty() {
        return "nil".to_string();
    }
    let items: Vec<String> = v
        .iter()
        .map(|(l, f)| format!("{l} {}", crate::api::format_value_e(*f).to_uppercase()))
        .collect();
    items.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use SeriesValue::*;

    fn run_text(files: &[(&str, &str)]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        run_file(&dir.path().join(files[0].0), None).errors
    }

    #[test]
    fn file_errors_like_promtool() {
        // promtool test rules (2.42) on the same files.
        assert_eq!(
            run_text(&[(
                "t.yml",
                "rule_files: [r.yml]\ntests:\n - interval: 1m\n   foo: 1\n   input_series:\n   - series: x\n     valuez: 1\n   promql_expr_test:\n   - expr: x\n     exp_samples:\n     - labelz: x\n"
            )]),
            [
                "yaml: unmarshal errors:\n  line 4: field foo not found in type main.testGroup\n  line 7: field valuez not found in type main.series\n  line 11: field labelz not found in type main.sample"
            ]
        );
        // A bad rule file fails each test group, with all its errors; no group, no load.
        let bad = "groups:\n- name: g\n  rules:\n  - record: 'a b'\n    expr: up\n  - alert: A\n    expr: 'up +'\n";
        let errs = run_text(&[
            (
                "t.yml",
                "rule_files: [r.yml]\ntests:\n - interval: 1m\n - interval: 1m\n",
            ),
            ("r.yml", bad),
        ]);
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(
            errs[0]
                .ends_with(r#"4:13: group "g", rule 1, "a b": invalid recording rule name: a b"#),
            "{errs:?}"
        );
        assert!(
            errs[1].contains(r#"7:11: group "g", rule 2, "A": could not parse expression"#),
            "{errs:?}"
        );
        assert!(
            run_text(&[
                ("t.yml", "rule_files: [r.yml]\ntests: []\n"),
                ("r.yml", bad)
            ])
            .is_empty()
        );
    }

    #[test]
    fn expanding_notation() {
        let v = |s: &str| expand_values(s).unwrap();
        assert_eq!(
            v("-2+4x3"),
            vec![Value(-2.0), Value(2.0), Value(6.0), Value(10.0)]
        );
        assert_eq!(
            v("1-2x4"),
            vec![
                Value(1.0),
                Value(-1.0),
                Value(-3.0),
                Value(-5.0),
                Value(-7.0)
            ]
        );
        assert_eq!(v("1x2"), vec![Value(1.0), Value(1.0), Value(1.0)]);
        assert_eq!(
            v("1 _x3 stale"),
            vec![Value(1.0), Omitted, Omitted, Omitted, Stale]
        );
        assert_eq!(v("1e3+1e1x1"), vec![Value(1000.0), Value(1010.0)]);
        assert!(expand_values("1+x").is_err());
        assert!(expand_values("abc").is_err());
    }

    #[test]
    fn failure_text_like_promtool() {
        let l = Labels::from_pairs([("alertname", "A")]);
        assert_eq!(fmt_alerts(&[]), "[]");
        assert_eq!(
            fmt_alerts(&[(l.clone(), Labels::empty())]),
            "[\n            0:\n              Labels:{alertname=\"A\"}\n              Annotations:{}\n            ]"
        );
        assert_eq!(fmt_samples(&[]), "nil");
        assert_eq!(
            fmt_samples(&[(l.clone(), 1.0), (l, 0.25)]),
            "{alertname=\"A\"} 1E+00, {alertname=\"A\"} 2.5E-01"
        );
    }

    #[test]
    fn metric_descriptions() {
        assert_eq!(
            parse_metric("up{job=\"a\", instance=\"b\"}").unwrap(),
            Labels::from_pairs([("__name__", "up"), ("instance", "b"), ("job", "a")])
        );
        assert_eq!(parse_metric("").unwrap(), Labels::empty());
        assert!(parse_metric("up{job=~\"a\"}").is_err());
    }
}
