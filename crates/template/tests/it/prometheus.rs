//! Prometheus's functions, as alerting rules and console templates use them.

use std::collections::BTreeMap;
use std::sync::Arc;

use template::prometheus::{PrometheusOptions, QuerySample, prometheus_funcs};
use template::{Template, Value};

/// Prometheus prepends these definitions to every alerting-rule template.
const DEFS: &str =
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}";

fn alert_data(value: f64) -> Value {
    Value::map([
        (
            "Labels",
            Value::str_map([("instance", "db-1.example.com:9100"), ("job", "node")]),
        ),
        ("ExternalLabels", Value::str_map([("cluster", "eu1")])),
        ("Value", Value::Float(value)),
    ])
}

fn samples() -> Vec<QuerySample> {
    let s = |inst: &str, v: f64| QuerySample {
        labels: BTreeMap::from([
            ("__name__".to_string(), "up".to_string()),
            ("instance".to_string(), inst.to_string()),
        ]),
        value: v,
    };
    vec![s("b:9090", 1.0), s("a:9090", 0.0)]
}

fn expand(text: &str, value: f64) -> Result<String, String> {
    let opts = PrometheusOptions {
        external_url: "http://prom.example.com:9090/prometheus".to_string(),
        query: Some(Arc::new(|q: &str| match q {
            "up" => Ok(samples()),
            "none" => Ok(Vec::new()),
            _ => Err(format!("bad query {q:?}")),
        })),
    };
    let mut t = Template::new("__alert_test");
    t.funcs(prometheus_funcs(opts));
    t.option("missingkey=zero").map_err(|e| e.to_string())?;
    t.parse(&format!("{DEFS}{text}"))
        .map_err(|e| e.to_string())?;
    t.execute(&alert_data(value)).map_err(|e| e.to_string())
}

#[track_caller]
fn check(text: &str, value: f64, want: &str) {
    assert_eq!(expand(text, value).as_deref(), Ok(want), "{text}");
}

#[track_caller]
fn check_err(text: &str, want: &str) {
    assert_eq!(expand(text, 0.0).unwrap_err(), want, "{text}");
}

#[test]
fn alert_annotations() {
    check(
        "{{ $labels.instance }} of {{ $labels.job }} is down",
        0.0,
        "db-1.example.com:9100 of node is down",
    );
    check("{{ $labels.nope }}|{{ .Labels.nope }}", 0.0, "|");
    check("{{ $externalLabels.cluster }}", 0.0, "eu1");
    check("value {{ $value }}", 0.25, "value 0.25");
    check("value {{ $value }}", 1e6, "value 1e+06");
    check("{{ $value | humanize }}", 1234567.0, "1.235M");
    check("{{ humanize $value }}B", 0.00123, "1.23mB");
    check("{{ printf \"%.2f\" $value }}", 2.34567, "2.35");
    check(
        "{{ if gt $value 0.5 }}high{{ else }}low{{ end }}",
        0.9,
        "high",
    );
}

#[test]
fn humanize_family() {
    check(
        "{{ humanize 0 }} {{ humanize 1 }} {{ humanize 1000 }} {{ humanize 12345678 }}",
        0.0,
        "0 1 1k 12.35M",
    );
    check(
        "{{ humanize \"2048\" }} {{ humanize1024 2048 }} {{ humanize1024 1 }}",
        0.0,
        "2.048k 2ki 1",
    );
    check("{{ humanize $value }}", f64::NAN, "NaN");
    check("{{ humanize $value }}", f64::INFINITY, "+Inf");
    check(
        "{{ humanizeDuration 3661 }} {{ humanizeDuration 0.25 }} {{ humanizeDuration 86400 }}",
        0.0,
        "1h 1m 1s 250ms 1d 0h 0m 0s",
    );
    check(
        "{{ humanizePercentage 0.1234 }} {{ humanizePercentage 0.5 }}",
        0.0,
        "12.34% 50%",
    );
    check(
        "{{ humanizeTimestamp 1435065584.128 }}",
        0.0,
        "2015-06-23 13:19:44.128 +0000 UTC",
    );
    check(
        "{{ (toTime 1435065584).Format \"2006-01-02\" }} {{ toTime 0 }}",
        0.0,
        "2015-06-23 1970-01-01 00:00:00 +0000 UTC",
    );
    check("{{ toDuration 90.5 }}", 0.0, "1m30.5s");
    check("{{ parseDuration \"1h30m\" }}", 0.0, "5400");
    check("{{ humanizeDuration (toDuration 61) }}", 0.0, "1m 1s");
    check_err(
        "{{ humanize \"abc\" }}",
        r#"template: __alert_test:1:83: executing "__alert_test" at <humanize "abc">: error calling humanize: strconv.ParseFloat: parsing "abc": invalid syntax"#,
    );
    check_err(
        "{{ humanize .Labels }}",
        r#"template: __alert_test:1:83: executing "__alert_test" at <humanize .Labels>: error calling humanize: can't convert map[string]string to float"#,
    );
}

#[test]
fn strings_and_regexes() {
    check(
        "{{ title \"hello world\" }} {{ toUpper \"a\" }} {{ toLower \"B\" }}",
        0.0,
        "Hello World A b",
    );
    check(
        "{{ match \"^db-\" $labels.instance }} {{ match \"x$\" \"abc\" }}",
        0.0,
        "true false",
    );
    check(
        r#"{{ reReplaceAll "(.*):(\\d+)" "$1" $labels.instance }}"#,
        0.0,
        "db-1.example.com",
    );
    check(r#"{{ reReplaceAll "o" "0" "foo boo" }}"#, 0.0, "f00 b00");
    check(
        "{{ stripPort $labels.instance }} {{ stripDomain $labels.instance }}",
        0.0,
        "db-1.example.com db-1:9100",
    );
    check(
        "{{ graphLink \"up == 0\" }}",
        0.0,
        "/graph?g0.expr=up+%3D%3D+0&g0.tab=0",
    );
    check(
        "{{ tableLink \"rate(x[5m])\" }}",
        0.0,
        "/graph?g0.expr=rate%28x%5B5m%5D%29&g0.tab=1",
    );
    check(
        "{{ pathPrefix }} {{ externalURL }}",
        0.0,
        "/prometheus http://prom.example.com:9090/prometheus",
    );
    check("{{ safeHtml \"<b>\" }}", 0.0, "<b>");
    check(
        "{{ with args 1 \"x\" }}{{ .arg0 }}{{ .arg1 }}{{ end }}",
        0.0,
        "1x",
    );
    check_err(
        r#"{{ match "(" "x" }}"#,
        r#"template: __alert_test:1:83: executing "__alert_test" at <match "(" "x">: error calling match: error parsing regexp: missing closing ): `(`"#,
    );
}

#[test]
fn queries() {
    check("{{ query \"up\" | len }}", 0.0, "2");
    check(
        "{{ with query \"up\" }}{{ . | first | value }}{{ end }}",
        0.0,
        "1",
    );
    check(
        "{{ range query \"up\" | sortByLabel \"instance\" }}{{ .Labels.instance }}={{ .Value }} {{ end }}",
        0.0,
        "a:9090=0 b:9090=1 ",
    );
    check(
        "{{ (query \"up\" | first).Labels.instance }}",
        0.0,
        "b:9090",
    );
    check(
        "{{ query \"up\" | first | label \"instance\" }}",
        0.0,
        "b:9090",
    );
    check(
        "{{ range query \"none\" }}x{{ else }}no data{{ end }}",
        0.0,
        "no data",
    );
    check_err(
        "{{ query \"none\" | first }}",
        r#"template: __alert_test:1:98: executing "__alert_test" at <first>: error calling first: first() called on vector with no elements"#,
    );
    check_err(
        "{{ query \"bad\" }}",
        r#"template: __alert_test:1:83: executing "__alert_test" at <query "bad">: error calling query: bad query "bad""#,
    );
}

#[test]
fn tmpl_executes_a_named_template() {
    check(
        r#"{{ define "x" }}<{{ . }}>{{ end }}{{ tmpl "x" 5 }}"#,
        0.0,
        "<5>",
    );
}
