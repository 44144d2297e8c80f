//! Alertmanager's functions and notification data, and a golden rendering of a notification
//! template built from the constructs of Alertmanager's `default.tmpl`.

use std::collections::BTreeMap;

use template::alertmanager::{Alerts, Kv, alertmanager_funcs};
use template::time::Time;
use template::{Template, Value};

fn kv(pairs: &[(&str, &str)]) -> Value {
    Kv::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    )
    .value()
}

fn time(rfc3339: &str) -> Value {
    Time::new(rfc3339.parse().unwrap()).value()
}

fn alert(
    status: &str,
    labels: &[(&str, &str)],
    annotations: &[(&str, &str)],
    ends: Value,
) -> Value {
    Value::map([
        ("Status", Value::from(status)),
        ("Labels", kv(labels)),
        ("Annotations", kv(annotations)),
        ("StartsAt", time("2024-03-01T12:00:00Z")),
        ("EndsAt", ends),
        (
            "GeneratorURL",
            Value::from("http://prom:9090/graph?g0.expr=up+%3D%3D+0"),
        ),
        ("Fingerprint", Value::from("c1a8e5b3e4f0a2d9")),
    ])
}

/// Notification data as Alertmanager builds it: two firing alerts and one resolved.
fn notification() -> Value {
    let alerts = vec![
        alert(
            "firing",
            &[
                ("alertname", "InstanceDown"),
                ("instance", "a:9100"),
                ("job", "node"),
                ("severity", "page"),
            ],
            &[
                ("summary", "a:9100 is down"),
                ("runbook", "https://runbooks/instance-down"),
            ],
            Value::object(Time::zero()),
        ),
        alert(
            "firing",
            &[
                ("alertname", "InstanceDown"),
                ("instance", "b:9100"),
                ("job", "node"),
                ("severity", "page"),
            ],
            &[("summary", "b:9100 is down")],
            Value::object(Time::zero()),
        ),
        alert(
            "resolved",
            &[
                ("alertname", "InstanceDown"),
                ("instance", "c:9100"),
                ("job", "node"),
                ("severity", "page"),
            ],
            &[("summary", "c:9100 is down")],
            time("2024-03-01T12:30:00Z"),
        ),
    ];
    Value::map([
        ("Receiver", Value::from("team-x")),
        ("Status", Value::from("firing")),
        ("Alerts", Alerts::new(alerts).value()),
        (
            "GroupLabels",
            kv(&[("alertname", "InstanceDown"), ("job", "node")]),
        ),
        (
            "CommonLabels",
            kv(&[
                ("alertname", "InstanceDown"),
                ("job", "node"),
                ("severity", "page"),
            ]),
        ),
        ("CommonAnnotations", kv(&[])),
        ("ExternalURL", Value::from("http://am.example.com:9093")),
    ])
}

fn expand(text: &str) -> Result<String, String> {
    let mut t = Template::new("");
    t.funcs(alertmanager_funcs());
    t.option("missingkey=zero").map_err(|e| e.to_string())?;
    t.parse(text).map_err(|e| e.to_string())?;
    t.execute(&notification()).map_err(|e| e.to_string())
}

#[track_caller]
fn check(text: &str, want: &str) {
    assert_eq!(expand(text).as_deref(), Ok(want), "{text}");
}

#[test]
fn data_methods() {
    check(
        "{{ .Alerts | len }} {{ .Alerts.Firing | len }} {{ .Alerts.Resolved | len }}",
        "3 2 1",
    );
    check(
        "{{ .GroupLabels.SortedPairs.Values | join \" \" }}",
        "InstanceDown node",
    );
    check("{{ .CommonLabels.Names }}", "[alertname job severity]");
    // Alertmanager 0.25's KV and Pairs have no String method: Go prints the map and the
    // slice of structs (checked against Debian's 0.25 through a Slack receiver).
    check(
        "{{ .CommonLabels }}",
        "map[alertname:InstanceDown job:node severity:page]",
    );
    check(
        "{{ .CommonLabels.SortedPairs }}",
        "[{alertname InstanceDown} {job node} {severity page}]",
    );
    check(
        "{{ (.CommonLabels.Remove .GroupLabels.Names).Values }}",
        "[page]",
    );
    check(
        "{{ .CommonLabels.Remove (stringSlice \"severity\" \"job\") }}",
        "map[alertname:InstanceDown]",
    );
    check(
        "{{ .CommonLabels.alertname }}|{{ .CommonLabels.nope }}|{{ index .CommonLabels \"job\" }}",
        "InstanceDown||node",
    );
    check(
        "{{ range .CommonLabels.SortedPairs }}{{ .Name }}:{{ .Value }} {{ end }}",
        "alertname:InstanceDown job:node severity:page ",
    );
    check(
        "{{ range $k, $v := .GroupLabels }}{{ $k }}={{ $v }};{{ end }}",
        "alertname=InstanceDown;job=node;",
    );
    check(
        "{{ len .CommonAnnotations }} {{ if .CommonAnnotations }}x{{ else }}empty{{ end }}",
        "0 empty",
    );
    check(
        "{{ (index .Alerts 2).EndsAt }}",
        "2024-03-01 12:30:00 +0000 UTC",
    );
    check(
        "{{ (index .Alerts 0).EndsAt }}",
        "0001-01-01 00:00:00 +0000 UTC",
    );
    check("{{ (index .Alerts 0).StartsAt.Unix }}", "1709294400");
    check(
        "{{ range .Alerts.Firing }}{{ .Labels.instance }} {{ end }}",
        "a:9100 b:9100 ",
    );
}

#[test]
fn functions() {
    check(
        "{{ \"firing\" | toUpper }} {{ \"ABC\" | toLower }} {{ \"hELLO wORLD\" | title }}",
        "FIRING abc Hello World",
    );
    check("[{{ \"  x \\n\" | trimSpace }}]", "[x]");
    check("{{ stringSlice \"a\" \"b\" | join \", \" }}", "a, b");
    check(
        "{{ match \"^team-\" .Receiver }} {{ reReplaceAll \"team-(.*)\" \"$1!\" .Receiver }}",
        "true x!",
    );
    check(
        "{{ safeHtml \"<b>\" }} {{ urlUnescape \"a%2Fb+c\" }}",
        "<b> a/b c",
    );
    check(
        "{{ (index .Alerts 0).StartsAt | date \"Mon, 02 Jan 2006 15:04 MST\" }}",
        "Fri, 01 Mar 2024 12:00 UTC",
    );
    check(
        "{{ (index .Alerts 0).StartsAt | tz \"Europe/Berlin\" | date \"15:04 MST\" }}",
        "13:00 CET",
    );
    check(
        "{{ (index .Alerts 0).StartsAt.Format \"2006-01-02T15:04:05Z07:00\" }}",
        "2024-03-01T12:00:00Z",
    );
    check(
        "{{ humanizeDuration 3661 }} {{ humanizeDuration \"90\" }}",
        "1h 1m 1s 1m 30s",
    );
    check(
        "{{ if gt (since (index .Alerts 0).StartsAt).Seconds 0.0 }}past{{ end }}",
        "past",
    );
    check(
        "{{ .GroupLabels | toJson }}",
        r#"{"alertname":"InstanceDown","job":"node"}"#,
    );
    check(
        "{{ (index .Alerts 2).EndsAt | toJson }}",
        r#""2024-03-01T12:30:00Z""#,
    );
    check("{{ stringSlice \"<a>\" | toJson }}", r#"["\u003ca\u003e"]"#);
    assert_eq!(
        expand("{{ tz \"Mars/Olympus\" (index .Alerts 0).StartsAt }}").unwrap_err(),
        r#"template: :1:3: executing "" at <tz "Mars/Olympus" (index .Alerts 0).StartsAt>: error calling tz: unknown time zone Mars/Olympus"#
    );
}

/// Our notification templates: the same constructs as Alertmanager's `default.tmpl`
/// (`define`, `template`, `SortedPairs`, `Remove`, `join`, `toUpper`, `urlquery`, nested ranges
/// with trim markers), written for this test.
const NOTIFICATION_TEMPLATES: &str = r#"
{{ define "__am" }}Alertmanager{{ end }}
{{ define "__amURL" }}{{ .ExternalURL }}/#/alerts?receiver={{ .Receiver | urlquery }}{{ end }}

{{ define "__subject" -}}
[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .GroupLabels.SortedPairs.Values | join " " }}
{{- if gt (len .CommonLabels) (len .GroupLabels) }} ({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join " " }}{{ end }}){{ end }}
{{- end }}

{{ define "__alert_list" }}{{ range . }}Labels:
{{ range .Labels.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Annotations:
{{ range .Annotations.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Source: {{ .GeneratorURL }}
{{ end }}{{ end }}

{{ define "text.default.message" -}}
{{ template "__subject" . }}
{{ if gt (len .Alerts.Firing) 0 -}}
Alerts Firing:
{{ template "__alert_list" .Alerts.Firing }}
{{- end }}
{{- if gt (len .Alerts.Resolved) 0 }}
Alerts Resolved:
{{ template "__alert_list" .Alerts.Resolved }}
{{- end }}
Sent by {{ template "__am" . }} ({{ template "__amURL" . }})
{{- end }}
"#;

const GOLDEN: &str = "\
[FIRING:2] InstanceDown node (page)
Alerts Firing:
Labels:
 - alertname = InstanceDown
 - instance = a:9100
 - job = node
 - severity = page
Annotations:
 - runbook = https://runbooks/instance-down
 - summary = a:9100 is down
Source: http://prom:9090/graph?g0.expr=up+%3D%3D+0
Labels:
 - alertname = InstanceDown
 - instance = b:9100
 - job = node
 - severity = page
Annotations:
 - summary = b:9100 is down
Source: http://prom:9090/graph?g0.expr=up+%3D%3D+0

Alerts Resolved:
Labels:
 - alertname = InstanceDown
 - instance = c:9100
 - job = node
 - severity = page
Annotations:
 - summary = c:9100 is down
Source: http://prom:9090/graph?g0.expr=up+%3D%3D+0

Sent by Alertmanager (http://am.example.com:9093/#/alerts?receiver=team-x)";

#[test]
fn golden_notification() {
    let mut t = Template::new("");
    t.funcs(alertmanager_funcs());
    t.option("missingkey=zero").unwrap();
    t.parse(NOTIFICATION_TEMPLATES).unwrap();
    // As Alertmanager does: a receiver's field is a small template using the set's definitions.
    let mut field = t.new_in_set("");
    field
        .parse(r#"{{ template "text.default.message" . }}"#)
        .unwrap();
    let got = field.execute(&notification()).unwrap();
    assert_eq!(got, GOLDEN, "\n--- got ---\n{got}\n---");
    let subject = t.execute_template("__subject", &notification()).unwrap();
    assert_eq!(subject, "[FIRING:2] InstanceDown node (page)");
}
