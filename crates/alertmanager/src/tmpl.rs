//! Notification templates: vigil's default templates (the template names of Alertmanager 0.25's
//! `default.tmpl` and `email.tmpl`, with the same output for the same data), the user's
//! `templates:` files parsed over them, and Alertmanager's template data as [`Value`]s.
//!
//! Like Alertmanager, each receiver field (`title: '{{ template "slack.default.title" . }}'`) is
//! parsed as a new template in the shared set and executed with `missingkey=zero`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use model::Labels;
use template::alertmanager::{Alerts, Kv, alertmanager_funcs};
use template::time::Time;
use template::{Template, Value};

use crate::notify::{TemplateAlert, TemplateData};

/// vigil's own default templates. Each definition produces what Alertmanager 0.25's definition
/// of the same name produces; `email.default.html` is a plain HTML list instead of
/// Alertmanager's inlined-CSS email.
pub const DEFAULT_TEMPLATES: &str = r#"
{{- define "__alertmanager" }}Alertmanager{{ end }}
{{- define "__alertmanagerURL" }}{{ .ExternalURL }}/#/alerts?receiver={{ urlquery .Receiver }}{{ end }}
{{- define "__description" }}{{ end }}

{{- /* [FIRING:2] values of the group labels (values of the other common labels) */ -}}
{{- define "__subject" -}}
[{{ toUpper .Status }}{{ if eq .Status "firing" }}:{{ len .Alerts.Firing }}{{ end }}]
{{- " " }}{{ join " " .GroupLabels.SortedPairs.Values }}
{{- " " }}{{ if gt (len .CommonLabels) (len .GroupLabels) -}}
({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ join " " .Values }}{{ end }})
{{- end }}
{{- end }}

{{- define "__text_alert_list" }}{{ range $a := . -}}
Labels:
{{ range $a.Labels.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end -}}
Annotations:
{{ range $a.Annotations.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end -}}
Source: {{ $a.GeneratorURL }}
{{ end }}{{ end }}

{{- define "slack.default.title" }}{{ template "__subject" . }}{{ end }}
{{- define "slack.default.username" }}{{ template "__alertmanager" . }}{{ end }}
{{- define "slack.default.titlelink" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{- define "slack.default.fallback" }}{{ template "slack.default.title" . }} | {{ template "slack.default.titlelink" . }}{{ end }}
{{- define "slack.default.callbackid" }}{{ end }}
{{- define "slack.default.pretext" }}{{ end }}
{{- define "slack.default.iconemoji" }}{{ end }}
{{- define "slack.default.iconurl" }}{{ end }}
{{- define "slack.default.text" }}{{ end }}
{{- define "slack.default.footer" }}{{ end }}

{{- define "pagerduty.default.description" }}{{ template "__subject" . }}{{ end }}
{{- define "pagerduty.default.client" }}{{ template "__alertmanager" . }}{{ end }}
{{- define "pagerduty.default.clientURL" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{- define "pagerduty.default.instances" }}{{ template "__text_alert_list" . }}{{ end }}

{{- define "__vigil_html_alert_list" -}}
<ul>
{{- range . }}
<li>Labels:<ul>{{ range .Labels.SortedPairs }}<li>{{ .Name | html }} = {{ .Value | html }}</li>{{ end }}</ul>
{{- with .Annotations }}Annotations:<ul>{{ range .SortedPairs }}<li>{{ .Name | html }} = {{ .Value | html }}</li>{{ end }}</ul>{{ end }}
{{- with .GeneratorURL }}<a href="{{ . | html }}">Source</a>{{ end }}</li>
{{- end }}
</ul>
{{- end }}

{{- define "email.default.subject" }}{{ template "__subject" . }}{{ end }}
{{- define "email.default.html" -}}
<!DOCTYPE html>
<html>
<head><meta charset="UTF-8"></head>
<body>
<p>{{ len .Alerts.Firing }} firing, {{ len .Alerts.Resolved }} resolved
{{- with .GroupLabels }} for {{ range $i, $p := .SortedPairs }}{{ if $i }}, {{ end }}{{ $p.Name | html }}={{ $p.Value | html }}{{ end }}{{ end }}</p>
<p><a href="{{ template "__alertmanagerURL" . }}">View in {{ template "__alertmanager" . }}</a></p>
{{- if .Alerts.Firing }}
<h2>Firing</h2>
{{ template "__vigil_html_alert_list" .Alerts.Firing }}
{{- end }}
{{- if .Alerts.Resolved }}
<h2>Resolved</h2>
{{ template "__vigil_html_alert_list" .Alerts.Resolved }}
{{- end }}
</body>
</html>
{{- end }}
"#;

/// Why templates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TmplError {
    #[error("invalid template glob {glob:?}")]
    Glob {
        glob: String,
        #[source]
        source: glob::PatternError,
    },
    #[error("read template file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse template file {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// The template set of one configuration.
#[derive(Clone, Debug)]
pub struct Templates {
    set: Template,
}

impl Templates {
    /// The defaults, then each file matched by `globs` in order (a later definition replaces an
    /// earlier one of the same name, as in Alertmanager).
    pub fn load(globs: &[String]) -> Result<Templates, TmplError> {
        let mut set = base();
        for g in globs {
            let paths = glob::glob(g).map_err(|source| TmplError::Glob {
                glob: g.clone(),
                source,
            })?;
            let mut files: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
            files.sort();
            for path in files {
                let text = std::fs::read_to_string(&path).map_err(|source| TmplError::Read {
                    path: path.clone(),
                    source,
                })?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut t = set.new_in_set(name);
                t.parse(&text).map_err(|e| TmplError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                set = t;
            }
        }
        Ok(Templates { set })
    }

    /// Only the defaults.
    pub fn defaults() -> Templates {
        Templates { set: base() }
    }

    /// Renders one field: parsed into the set, executed with `missingkey=zero`. An empty text
    /// renders empty without parsing.
    pub fn text(&self, text: &str, data: &Value) -> Result<String, String> {
        if text.is_empty() {
            return Ok(String::new());
        }
        let mut t = self.set.new_in_set("");
        t.parse(text).map_err(|e| e.to_string())?;
        t.execute(data).map_err(|e| e.to_string())
    }
}

fn base() -> Template {
    let mut t = Template::new("default.tmpl");
    t.funcs(alertmanager_funcs());
    t.missing_key(template::MissingKey::Zero);
    t.parse(DEFAULT_TEMPLATES)
        .expect("BUG: the default templates parse");
    t
}

fn kv(labels: &Labels) -> Value {
    let m: BTreeMap<String, String> = labels.to_pairs().into_iter().collect();
    Kv::new(m).value()
}

/// An RFC 3339 time as a template `time.Time`, in the UTC offset it was written with (Go keeps
/// it: `2024-06-19 10:00:00 +0200 +0200`).
fn time(s: &str) -> Value {
    let Ok(ts) = s.parse::<jiff::Timestamp>() else {
        return Time::zero().value();
    };
    let offset = s
        .len()
        .checked_sub(6)
        .and_then(|i| s.get(i..))
        .filter(|o| o.starts_with(['+', '-']) && o.as_bytes()[3] == b':')
        .and_then(|o| {
            let h: i32 = o[1..3].parse().ok()?;
            let m: i32 = o[4..6].parse().ok()?;
            let secs = h * 3600 + m * 60;
            jiff::tz::Offset::from_seconds(if o.starts_with('-') { -secs } else { secs }).ok()
        });
    match offset {
        Some(o) if o.seconds() != 0 => Time::with_zone(ts, jiff::tz::TimeZone::fixed(o)).value(),
        _ => Time::new(ts).value(),
    }
}

/// Alertmanager's `template.Alert`: a Go struct, so `.Field` reads a field and printing it
/// gives `{firing map[…] map[…] 2024-… +0000 UTC … url fingerprint}` (fields in declaration
/// order), as Alertmanager 0.25 prints `{{ .Alerts.Firing }}`.
struct AlertStruct(Vec<(&'static str, Value)>);

impl template::Object for AlertStruct {
    fn type_name(&self) -> &str {
        "template.Alert"
    }

    fn field(&self, name: &str) -> Option<Value> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    fn display(&self) -> Option<String> {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(_, v)| template::gofmt::format_v(v))
            .collect();
        Some(format!("{{{}}}", parts.join(" ")))
    }

    fn json(&self) -> Option<Value> {
        Some(Value::map(self.0.iter().cloned()))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn alert_value(a: &TemplateAlert) -> Value {
    Value::object(AlertStruct(vec![
        ("Status", Value::from(a.status)),
        ("Labels", kv(&a.labels)),
        ("Annotations", kv(&a.annotations)),
        ("StartsAt", time(&a.starts_at)),
        ("EndsAt", time(&a.ends_at)),
        ("GeneratorURL", Value::from(a.generator_url.as_str())),
        ("Fingerprint", Value::from(a.fingerprint.as_str())),
    ]))
}

/// Alertmanager's `template.Data` as a template value.
pub fn data_value(d: &TemplateData) -> Value {
    Value::map([
        ("Receiver", Value::from(d.receiver.as_str())),
        ("Status", Value::from(d.status)),
        (
            "Alerts",
            Alerts::new(d.alerts.iter().map(alert_value).collect()).value(),
        ),
        ("GroupLabels", kv(&d.group_labels)),
        ("CommonLabels", kv(&d.common_labels)),
        ("CommonAnnotations", kv(&d.common_annotations)),
        ("ExternalURL", Value::from(d.external_url.as_str())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.to_vec())
    }

    fn alert(status: &'static str, l: &[(&str, &str)], a: &[(&str, &str)]) -> TemplateAlert {
        TemplateAlert {
            status,
            labels: labels(l),
            annotations: labels(a),
            starts_at: "2024-03-01T10:00:00.5Z".into(),
            ends_at: if status == "resolved" {
                "2024-03-01T11:00:00Z".into()
            } else {
                "0001-01-01T00:00:00Z".into()
            },
            generator_url: "http://prom:9090/graph?g0.expr=up+%3D%3D+0".into(),
            fingerprint: "0123456789abcdef".into(),
        }
    }

    fn data(
        receiver: &str,
        status: &'static str,
        alerts: Vec<TemplateAlert>,
        group: &[(&str, &str)],
        common: &[(&str, &str)],
        common_ann: &[(&str, &str)],
    ) -> TemplateData {
        TemplateData {
            receiver: crate::notify::quote_meta(receiver),
            status,
            alerts,
            group_labels: labels(group),
            common_labels: labels(common),
            common_annotations: labels(common_ann),
            external_url: "http://am.example:9093".into(),
        }
    }

    fn cases() -> Vec<TemplateData> {
        let down = [("alertname", "Down"), ("job", "api"), ("instance", "a:1")];
        let down2 = [("alertname", "Down"), ("job", "api"), ("instance", "b:1")];
        vec![
            data(
                "team-a.pager",
                "firing",
                vec![
                    alert(
                        "firing",
                        &down,
                        &[("summary", "a is down"), ("runbook", "r")],
                    ),
                    alert(
                        "firing",
                        &down2,
                        &[("summary", "b is down"), ("runbook", "r")],
                    ),
                ],
                &[("alertname", "Down")],
                &[("alertname", "Down"), ("job", "api")],
                &[("runbook", "r")],
            ),
            data(
                "r",
                "firing",
                vec![
                    alert("resolved", &down, &[("summary", "<b>x</b> & y")]),
                    alert("firing", &down2, &[]),
                ],
                &[("job", "api"), ("alertname", "Down")],
                &[("alertname", "Down"), ("job", "api")],
                &[],
            ),
            data(
                "r",
                "resolved",
                vec![alert("resolved", &down, &[("description", "multi\nline")])],
                &[],
                &down,
                &[("description", "multi\nline")],
            ),
        ]
    }

    const NAMES: [&str; 19] = [
        "__subject",
        "__description",
        "__text_alert_list",
        "__alertmanager",
        "__alertmanagerURL",
        "slack.default.title",
        "slack.default.username",
        "slack.default.fallback",
        "slack.default.callbackid",
        "slack.default.pretext",
        "slack.default.titlelink",
        "slack.default.iconemoji",
        "slack.default.iconurl",
        "slack.default.text",
        "slack.default.footer",
        "pagerduty.default.description",
        "pagerduty.default.client",
        "pagerduty.default.clientURL",
        "email.default.subject",
    ];

    fn render_all(t: &Templates, d: &TemplateData) -> Vec<String> {
        let v = data_value(d);
        NAMES
            .iter()
            .map(|n| {
                // __text_alert_list takes a list of alerts, as the receivers call it.
                let arg = if *n == "__text_alert_list" {
                    ".Alerts"
                } else {
                    "."
                };
                t.text(&format!("{{{{ template {n:?} {arg} }}}}"), &v)
                    .unwrap_or_else(|e| panic!("{n}: {e}"))
            })
            .collect()
    }

    #[test]
    fn subject_and_alert_list() {
        let t = Templates::defaults();
        let c = cases();
        let out = render_all(&t, &c[0]);
        assert_eq!(out[0], "[FIRING:2] Down (api)");
        assert_eq!(
            out[4],
            "http://am.example:9093/#/alerts?receiver=team-a%5C.pager"
        );
        assert_eq!(
            out[7],
            "[FIRING:2] Down (api) | http://am.example:9093/#/alerts?receiver=team-a%5C.pager"
        );
        assert!(out[2].starts_with(
            "Labels:\n - alertname = Down\n - instance = a:1\n - job = api\nAnnotations:\n - runbook = r\n"
        ));
        assert_eq!(render_all(&t, &c[2])[0], "[RESOLVED]  (Down a:1 api)");
        // Methods and functions the data offers.
        let v = data_value(&c[1]);
        let text = "{{ .Alerts.Resolved | len }} {{ .CommonLabels.Names }} {{ (index .Alerts 0).StartsAt.Unix }} {{ (index .Alerts 1).EndsAt.IsZero }} {{ .GroupLabels.SortedPairs }} {{ reReplaceAll \"a(p)i\" \"$1\" \"api\" }} {{ title \"x y\" }} {{ stringSlice \"a\" \"b\" | join \",\" }} {{ match \"^D\" .CommonLabels.alertname }}";
        assert_eq!(
            t.text(text, &v).unwrap(),
            "1 [alertname job] 1709287200 true [{alertname Down} {job api}] p X Y a,b true"
        );
        // Printed as Alertmanager 0.25 prints them (checked against Debian's build): KV as a
        // Go map, an alert as a Go struct.
        assert_eq!(
            t.text("{{ .CommonLabels }} {{ index .Alerts 0 }}", &v)
                .unwrap(),
            "map[alertname:Down job:api] {resolved map[alertname:Down instance:a:1 job:api] map[summary:<b>x</b> & y] 2024-03-01 10:00:00.5 +0000 UTC 2024-03-01 11:00:00 +0000 UTC http://prom:9090/graph?g0.expr=up+%3D%3D+0 0123456789abcdef}"
        );
    }

    #[test]
    fn user_templates_override_and_extend() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.tmpl"),
            r#"{{ define "__alertmanager" }}Vigil{{ end }}{{ define "my" }}{{ .Status }}{{ end }}"#,
        )
        .unwrap();
        let glob = dir.path().join("*.tmpl").to_string_lossy().into_owned();
        let t = Templates::load(&[glob]).unwrap();
        let v = data_value(&cases()[0]);
        assert_eq!(
            t.text(
                r#"{{ template "slack.default.username" . }} {{ template "my" . }}"#,
                &v
            )
            .unwrap(),
            "Vigil firing"
        );
        std::fs::write(dir.path().join("b.tmpl"), "{{ define \"x\" }}{{ end ").unwrap();
        let glob = dir.path().join("b.tmpl").to_string_lossy().into_owned();
        let err = Templates::load(&[glob]).unwrap_err().to_string();
        assert!(err.contains("b.tmpl"), "{err}");
        assert!(t.text("{{ .Nope.x }}", &v).is_ok());
        assert!(t.text("{{ template \"nope\" . }}", &v).is_err());
    }

    #[test]
    fn email_html_lists_alerts_escaped() {
        let t = Templates::defaults();
        let html = t
            .text(
                r#"{{ template "email.default.html" . }}"#,
                &data_value(&cases()[1]),
            )
            .unwrap();
        assert!(
            html.contains("<h2>Firing</h2>") && html.contains("<h2>Resolved</h2>"),
            "{html}"
        );
        assert!(
            html.contains("summary = &lt;b&gt;x&lt;/b&gt; &amp; y"),
            "{html}"
        );
    }

    /// The defaults render what Debian's Alertmanager 0.25 renders from its own default.tmpl
    /// and email.tmpl for the same data (amtool template render).
    #[test]
    fn defaults_match_alertmanager() {
        let dir = "/usr/share/prometheus/alertmanager";
        let have = std::process::Command::new("amtool")
            .arg("--version")
            .output()
            .is_ok()
            && std::path::Path::new(dir).join("default.tmpl").exists();
        if !have {
            assert!(
                std::env::var("VIGIL_REQUIRE_PEERS").as_deref() != Ok("1"),
                "amtool and {dir}/default.tmpl are required (VIGIL_REQUIRE_PEERS=1)"
            );
            eprintln!("SKIPPED: amtool or Alertmanager's default.tmpl not installed");
            return;
        }
        const SEP: &str = "\u{1}SEP\u{1}";
        let tmp = tempfile::tempdir().unwrap();
        let t = Templates::defaults();
        for (i, d) in cases().iter().enumerate() {
            let file = tmp.path().join(format!("data{i}.json"));
            std::fs::write(&file, serde_json::to_vec(d).unwrap()).unwrap();
            let text: Vec<String> = NAMES
                .iter()
                .map(|n| {
                    let arg = if *n == "__text_alert_list" {
                        ".Alerts"
                    } else {
                        "."
                    };
                    format!("{{{{ template {n:?} {arg} }}}}")
                })
                .collect();
            let out = std::process::Command::new("amtool")
                .arg("template")
                .arg("render")
                .arg(format!("--template.glob={dir}/*.tmpl"))
                .arg(format!("--template.data={}", file.display()))
                .arg(format!("--template.text={}", text.join(SEP)))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8(out.stdout).unwrap();
            let stdout = stdout.strip_suffix('\n').unwrap_or(&stdout);
            let want: Vec<&str> = stdout.split(SEP).collect();
            let got = render_all(&t, d);
            for ((n, w), g) in NAMES.iter().zip(&want).zip(&got) {
                assert_eq!(g, w, "case {i}, template {n}");
            }
        }
    }
}
