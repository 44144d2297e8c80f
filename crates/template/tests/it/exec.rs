//! The language: actions, pipelines, variables, control structures, builtins, printing, errors.

use template::{MissingKey, Template, Value};

use crate::{check, check_err, data, run};

#[test]
fn text_comments_and_trim_markers() {
    check("hello", "hello");
    check("", "");
    check("a {{/* comment */}} b", "a  b");
    check("a {{- /* comment */ -}} b", "ab");
    check("a  {{- .Name -}}  \n b", "avigilb");
    check("{{- .Name }}  x", "vigil  x");
    check("{{ .Name -}}\n\n  x", "vigilx");
    check("{{-3}}", "-3");
    check("{{ 3 -}} x", "3x");
    check("{{\n.Name\n}}", "vigil");
}

#[test]
fn printing_values_like_go() {
    check("{{ .Name }}", "vigil");
    check("{{ .N }}", "3");
    check("{{ .F }}", "2.5");
    check("{{ .T }}", "true");
    check("{{ .List }}", "[a b c]");
    check("{{ .Map }}", "map[a:1 b:2 c:3]");
    check("{{ .Labels }}", "map[instance:host:9090 job:api]");
    check("{{ .Missing }}", "<no value>");
    check("{{ .Labels.missing }}", "<no value>");
    check("{{ print nil }}", "<nil>");
    check_err(
        "{{ nil | print }}",
        r#"template: t:1:3: executing "t" at <nil>: nil is not a command"#,
    );
    check(
        "{{ 1e6 }} {{ 100000.0 }} {{ 0.1 }} {{ 3.14 }} {{ 1.5e-7 }}",
        "1e+06 100000 0.1 3.14 1.5e-07",
    );
    check("{{ 1234567.0 }}", "1.234567e+06");
    check(
        "{{ 0x1F }} {{ 017 }} {{ 1_000 }} {{ 'a' }} {{ -5 }}",
        "31 15 1000 97 -5",
    );
    check(r#"{{ "a\tb\u00e9" }}|{{ `raw\n` }}"#, "a\tbé|raw\\n");
    check("{{ true }} {{ false }}", "true false");
    check("{{ .Nested.Inner.X }}", "deep");
    check("{{ .Nested.Missing.X }}", "<no value>");
    check("{{ . | len }}", "13");
}

#[test]
fn pipelines_and_parentheses() {
    check(r#"{{ "x" | printf "%s-%s" "a" }}"#, "a-x");
    check(r#"{{ .Name | printf "%q" | printf "%s!" }}"#, r#""vigil"!"#);
    check("{{ (len .List) }}", "3");
    check("{{ len (slice .List 1) }}", "2");
    check("{{ (index .Nested \"Inner\").X }}", "deep");
    check("{{ ($x := 5) }} {{ $x }}", "5 5");
    check("{{ .List | len | printf \"%03d\" }}", "003");
}

#[test]
fn variables() {
    check("{{ $x := .Name }}{{ $x }}", "vigil");
    check("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", "2");
    check("{{ $ }}", &crate::run("{{ . }}", &data()).unwrap());
    check("{{ with .Nested }}{{ $.Name }}{{ end }}", "vigil");
    check(
        "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}",
        "2",
    );
    check("{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}", "2");
    check("{{ $x := .Nested }}{{ $x.Inner.X }}", "deep");
    check(
        "{{ $x := 0 }}{{ range .Nums }}{{ $x = . }}{{ end }}{{ $x }}",
        "2",
    );
}

#[test]
fn if_else_chains() {
    check("{{ if .T }}yes{{ end }}", "yes");
    check("{{ if .Zero }}yes{{ else }}no{{ end }}", "no");
    check("{{ if .Empty }}a{{ else if .N }}b{{ else }}c{{ end }}", "b");
    check(
        "{{ if .Empty }}a{{ else if .Zero }}b{{ else }}c{{ end }}",
        "c",
    );
    check("{{ if .EmptyList }}a{{ else }}empty{{ end }}", "empty");
    check("{{ if .Missing }}a{{ else }}missing{{ end }}", "missing");
    check("{{ if .Map }}map{{ end }}", "map");
    check("{{ if 0.0 }}a{{ else }}b{{ end }}", "b");
    check("{{ if $x := .N }}{{ $x }}{{ end }}", "3");
    check("{{ if and .T .N }}both{{ end }}", "both");
}

#[test]
fn with_blocks() {
    check("{{ with .Nested.Inner }}{{ .X }}{{ end }}", "deep");
    check("{{ with .Missing }}a{{ else }}b{{ end }}", "b");
    check(
        "{{ with .Empty }}a{{ else with .Name }}{{ . }}{{ end }}",
        "vigil",
    );
    check("{{ with $v := .N }}{{ $v }}{{ . }}{{ end }}", "33");
}

#[test]
fn range_forms() {
    check("{{ range .List }}{{ . }}{{ end }}", "abc");
    check(
        "{{ range $i, $e := .List }}{{ $i }}={{ $e }} {{ end }}",
        "0=a 1=b 2=c ",
    );
    check("{{ range $e := .List }}{{ $e }}{{ end }}", "abc");
    check(
        "{{ range $k, $v := .Map }}{{ $k }}{{ $v }}{{ end }}",
        "a1b2c3",
    );
    check("{{ range .Map }}{{ . }}{{ end }}", "123");
    check(
        "{{ range $k, $v := .Labels }}{{ $k }}={{ $v }};{{ end }}",
        "instance=host:9090;job=api;",
    );
    check("{{ range .EmptyList }}x{{ else }}none{{ end }}", "none");
    check("{{ range .Missing }}x{{ else }}none{{ end }}", "none");
    check("{{ range 3 }}{{ . }}{{ end }}", "012");
    check("{{ range $i := 3 }}{{ $i }}{{ end }}", "012");
    check("{{ range 0 }}x{{ else }}zero{{ end }}", "zero");
    check(
        "{{ range .List }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}",
        "a",
    );
    check(
        "{{ range .List }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ . }}{{ end }}",
        "ac",
    );
    check(
        "{{ range $i, $_ := .List }}{{ range $.Nums }}{{ $i }}{{ . }}{{ end }};{{ end }}",
        "030102;131112;232122;",
    );
    check(
        "{{ $x := 0 }}{{ range $x = .Nums }}{{ $x }}{{ end }}",
        "312",
    );
    check("{{ range .List }}{{ $y := . }}{{ end }}done", "done");
}

#[test]
fn define_template_block() {
    check(
        r#"{{ define "x" }}[{{ . }}]{{ end }}{{ template "x" .Name }}"#,
        "[vigil]",
    );
    check(
        r#"{{ define "x" }}[{{ . }}]{{ end }}{{ template "x" }}"#,
        "[<no value>]",
    );
    check(r#"{{ block "b" .N }}<{{ . }}>{{ end }}"#, "<3>");
    check(
        r#"{{ define "x" }}{{ $ }}{{ end }}{{ $v := 1 }}{{ template "x" .N }}"#,
        "3",
    );
    check(
        r#"{{ define "fact" }}{{ if . }}{{ . }} {{ template "fact" (slice . 1) }}{{ end }}{{ end }}{{ template "fact" .List }}"#,
        "[a b c] [b c] [c] ",
    );
    // Later parses add definitions and may redefine them.
    let mut t = Template::new("root");
    t.parse(r#"{{ define "a" }}one{{ end }}{{ template "a" }}"#)
        .unwrap();
    t.parse(r#"{{ define "a" }}two{{ end }}"#).unwrap();
    assert_eq!(t.execute(&Value::Nil).unwrap(), "two");
    assert_eq!(t.execute_template("a", &Value::Nil).unwrap(), "two");
    assert_eq!(t.defined_templates(), vec!["a", "root"]);
    assert!(t.lookup("a").is_some());
    assert!(t.lookup("b").is_none());
    assert_eq!(
        t.execute_template("b", &Value::Nil)
            .unwrap_err()
            .to_string(),
        r#"template: no template "b" associated with template "root""#
    );
    // A body of only whitespace does not replace the existing one.
    t.parse("  \n").unwrap();
    assert_eq!(t.execute(&Value::Nil).unwrap(), "two");
    // A block's default can be overridden by a later definition.
    let mut t = Template::new("page");
    t.parse(r#"<{{ block "body" . }}default{{ end }}>"#)
        .unwrap();
    assert_eq!(t.execute(&Value::Nil).unwrap(), "<default>");
    t.parse(r#"{{ define "body" }}custom{{ end }}"#).unwrap();
    assert_eq!(t.execute(&Value::Nil).unwrap(), "<custom>");
}

#[test]
fn comparisons() {
    check(
        "{{ eq 1 1 }} {{ eq 1 2 }} {{ eq \"a\" \"a\" }} {{ eq .N 1 2 3 }}",
        "true false true true",
    );
    check("{{ ne 1 2 }} {{ ne \"a\" \"a\" }}", "true false");
    check(
        "{{ lt 1 2 }} {{ le 2 2 }} {{ gt 1 2 }} {{ ge 2 2 }}",
        "true true false true",
    );
    check("{{ lt 1.5 2.5 }} {{ lt \"a\" \"b\" }}", "true true");
    check("{{ eq .Missing \"x\" }}", "false");
    check("{{ eq true true }}", "true");
    check_err(
        "{{ eq 1 1.0 }}",
        r#"template: t:1:3: executing "t" at <eq 1 1.0>: error calling eq: incompatible types for comparison"#,
    );
    check_err(
        "{{ lt true false }}",
        r#"template: t:1:3: executing "t" at <lt true false>: error calling lt: invalid type for comparison"#,
    );
    check_err(
        "{{ eq .List .List }}",
        r#"template: t:1:3: executing "t" at <eq .List .List>: error calling eq: non-comparable type [a b c]: []interface {}"#,
    );
    check_err(
        "{{ eq 1 }}",
        r#"template: t:1:3: executing "t" at <eq 1>: error calling eq: missing argument for comparison"#,
    );
}

#[test]
fn logic() {
    check(
        "{{ and 1 0 }} {{ and 1 2 }} {{ or 0 \"\" }} {{ or 0 5 }}",
        "0 2  5",
    );
    check("{{ not 0 }} {{ not .T }}", "true false");
    // and/or stop at the deciding value: the call below would fail.
    check(
        "{{ or 1 (index .List 10) }} {{ and 0 (index .List 10) }}",
        "1 0",
    );
    check("{{ .T | and 1 }} {{ 0 | or \"\" }}", "true 0");
}

#[test]
fn index_slice_len() {
    check(
        "{{ index .List 1 }} {{ index .Map \"c\" }} {{ index .Labels \"job\" }}",
        "b 3 api",
    );
    check(
        "{{ index .Labels \"nope\" }}|{{ index .Map \"nope\" }}",
        "|<no value>",
    );
    check("{{ index .Nested \"Inner\" \"X\" }}", "deep");
    check("{{ index \"abc\" 1 }}", "98");
    check("{{ index .List }}", "[a b c]");
    check(
        "{{ slice .List 1 2 }} {{ slice .List 1 }} {{ slice .List }} {{ slice \"hello\" 1 3 }}",
        "[b] [b c] [a b c] el",
    );
    check(
        "{{ len .List }} {{ len .Map }} {{ len \"héllo\" }} {{ len .Labels }}",
        "3 3 6 2",
    );
    check_err(
        "{{ index .List 5 }}",
        r#"template: t:1:3: executing "t" at <index .List 5>: error calling index: index out of range: 5"#,
    );
    check_err(
        "{{ index .List -1 }}",
        r#"template: t:1:3: executing "t" at <index .List -1>: error calling index: index out of range: -1"#,
    );
    check_err(
        "{{ index 5 1 }}",
        r#"template: t:1:3: executing "t" at <index 5 1>: error calling index: can't index item of type int"#,
    );
    check_err(
        "{{ index .Missing 1 }}",
        r#"template: t:1:3: executing "t" at <index .Missing 1>: error calling index: index of untyped nil"#,
    );
    check_err(
        "{{ slice .List 2 1 }}",
        r#"template: t:1:3: executing "t" at <slice .List 2 1>: error calling slice: invalid slice index: 2 > 1"#,
    );
    check_err(
        "{{ len 3 }}",
        r#"template: t:1:3: executing "t" at <len 3>: error calling len: len of type int"#,
    );
}

#[test]
fn print_functions() {
    check(r#"{{ print "a" 1 2 "b" }}"#, "a1 2b");
    check(r#"{{ println "a" 1 }}"#, "a 1\n");
    check(
        r#"{{ printf "%d|%5.2f|%-4s|%x|%v" 42 3.14159 "ab" 255 .List }}"#,
        "42| 3.14|ab  |ff|[a b c]",
    );
    check(r#"{{ printf "%s" .Missing }}"#, "%!s(<nil>)");
    check(r#"{{ printf "%d %s" 1 }}"#, "1 %!s(MISSING)");
    check(r#"{{ printf "%.1f%%" 99.95 }}"#, "100.0%");
    check(
        r#"{{ printf "%v %v" .Map .Labels }}"#,
        "map[a:1 b:2 c:3] map[instance:host:9090 job:api]",
    );
    check(r#"{{ printf "%q" "x\"y" }}"#, r#""x\"y""#);
    check(
        r#"{{ printf "%T %T %T" 1 "s" .Labels }}"#,
        "int string map[string]string",
    );
}

#[test]
fn escaping_functions() {
    check(
        r#"{{ html "<a href='x'>&\"</a>" }}"#,
        "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;",
    );
    check(
        r#"{{ js "it's <b> \"q\" \\ =" }}"#,
        r#"it\'s \u003Cb\u003E \"q\" \\ \u003D"#,
    );
    check(r#"{{ urlquery "a b&c=d/é" }}"#, "a+b%26c%3Dd%2F%C3%A9");
    check(r#"{{ html .Missing }}"#, "&lt;no value&gt;");
    check(r#"{{ html 1 2 }}"#, "1 2");
}

#[test]
fn call_and_functions_as_values() {
    check("{{ call .Add 1 2 3 }}", "6");
    check_err(
        "{{ call .Name }}",
        r#"template: t:1:3: executing "t" at <call .Name>: error calling call: non-function vigil of type string"#,
    );
}

#[test]
fn missing_key_options() {
    let d = data();
    let run_mk = |mk: MissingKey, text: &str| {
        let mut t = Template::new("t");
        t.missing_key(mk);
        t.parse(text).unwrap();
        t.execute(&d)
    };
    assert_eq!(
        run_mk(MissingKey::Zero, "[{{ .Labels.nope }}]").unwrap(),
        "[]"
    );
    assert_eq!(
        run_mk(MissingKey::Zero, "[{{ .nope }}]").unwrap(),
        "[<no value>]"
    );
    assert_eq!(
        run_mk(MissingKey::Default, "[{{ .Labels.nope }}]").unwrap(),
        "[<no value>]"
    );
    assert_eq!(
        run_mk(MissingKey::Error, "{{ .Labels.nope }}")
            .unwrap_err()
            .to_string(),
        r#"template: t:1:10: executing "t" at <.Labels.nope>: map has no entry for key "nope""#
    );
    let mut t = Template::new("t");
    assert!(t.option("missingkey=zero").is_ok());
    assert_eq!(
        t.option("bogus").unwrap_err().to_string(),
        "unrecognized option: bogus"
    );
}

#[test]
fn exec_errors() {
    check_err(
        "{{ .Name.Foo }}",
        r#"template: t:1:8: executing "t" at <.Name.Foo>: can't evaluate field Foo in type string"#,
    );
    check_err(
        "{{ template \"nope\" }}",
        r#"template: t:1:12: executing "t" at <{{template "nope"}}>: template "nope" not defined"#,
    );
    check_err(
        "{{ .Name 1 }}",
        r#"template: t:1:3: executing "t" at <.Name>: Name is not a method but has arguments"#,
    );
    check_err(
        "{{ 1 2 }}",
        r#"template: t:1:3: executing "t" at <1>: can't give argument to non-function 1"#,
    );
    check_err(
        "{{ range .Name }}{{ end }}",
        "template: t:1:9: executing \"t\" at <{{range .Name}}{{end}}>: range can't iterate over vigil",
    );
    check_err(
        "{{ range $i, $e := 3 }}{{ end }}",
        "template: t:1:9: executing \"t\" at <{{range $i, $e := 3}}{{end}}>: can't use 3 to iterate over more than one variable",
    );
    check_err(
        "{{ not 1 2 }}",
        r#"template: t:1:3: executing "t" at <not>: wrong number of args for not: want 1 got 2"#,
    );
    check_err(
        "{{ printf }}",
        r#"template: t:1:3: executing "t" at <printf>: wrong number of args for printf: want at least 1 got 0"#,
    );
    check_err(
        "line1\n{{ define \"x\" }}\n  {{ .b 1 }}{{ end }}{{ template \"x\" .Map }}",
        r#"template: t:3:5: executing "x" at <.b>: b is not a method but has arguments"#,
    );
    check_err(
        "{{ .Add }}",
        r#"template: t:1:3: executing "t" at <.Add>: can't print value of type func"#,
    );
}

#[test]
fn parse_errors() {
    check_err("{{ .A }", r#"template: t:1: unexpected "}" in operand"#);
    check_err("{{ if .A }}x", "template: t:1: unexpected EOF");
    check_err("{{ end }}", "template: t:1: unexpected {{end}}");
    check_err("{{ else }}", "template: t:1: unexpected {{else}}");
    check_err(
        "a\nb\n{{ nope 1 }}",
        r#"template: t:3: function "nope" not defined"#,
    );
    check_err("{{ $x }}", r#"template: t:1: undefined variable "$x""#);
    check_err("{{ .A ", "template: t:1: unclosed action");
    check_err("{{/* x", "template: t:1: unclosed comment");
    check_err(
        "{{/* x */ .A }}",
        "template: t:1: comment ends before closing delimiter",
    );
    check_err("{{ if }}{{ end }}", "template: t:1: missing value for if");
    check_err(
        "{{ range }}{{ end }}",
        "template: t:1: missing value for range",
    );
    check_err("{{ }}", "template: t:1: missing value for command");
    check_err("{{ break }}", "template: t:1: {{break}} outside {{range}}");
    check_err(
        "{{ continue }}",
        "template: t:1: {{continue}} outside {{range}}",
    );
    check_err(r#"{{ "abc }}"#, "template: t:1: unterminated quoted string");
    check_err("{{ 1x }}", r#"template: t:1: bad number syntax: "1x""#);
    check_err(
        "{{ .A | 1 }}",
        "template: t:1: non executable command in pipeline stage 2",
    );
    check_err("{{ (1 }}", "template: t:1: unclosed left paren");
    check_err("{{ 1) }}", "template: t:1: unexpected right paren");
    check_err(
        "{{ $a, $b := 1 }}",
        "template: t:1: too many declarations in command",
    );
    check_err(
        "{{ range $a, $b, $c := . }}{{ end }}",
        "template: t:1: too many declarations in range",
    );
    check_err(
        r#"{{ define "a" }}x{{ end }}{{ define "a" }}y{{ end }}"#,
        r#"template: t:1: template: multiple definition of template "a""#,
    );
    check_err(
        r#"{{ template 1 }}"#,
        r#"template: t:1: unexpected "1" in template clause"#,
    );
    check_err(r#"{{ define "a" }}x"#, "template: t:1: unexpected EOF");
    check_err(
        "{{ if .A }}{{ else }}{{ else }}{{ end }}",
        "template: t:1: expected end; found {{else}}",
    );
    check_err("{{ 3.x }}", "template: t:1: bad number syntax: \"3.x\"");
    check_err(
        "{{ \"a\".B }}",
        r#"template: t:1: unexpected . after term "\"a\"""#,
    );
    check_err(
        "{{ .A € }}",
        "template: t:1: unrecognized character in action: U+20AC '€'",
    );
    check_err(
        "{{ with .A }}{{ else if .B }}{{ end }}",
        "template: t:1: unexpected <if> in input",
    );
}

#[test]
fn execute_without_body() {
    let t = Template::new("empty");
    assert_eq!(
        t.execute(&Value::Nil).unwrap_err().to_string(),
        r#"template: empty: "empty" is an incomplete or empty template"#
    );
    assert_eq!(run("{{/* only a comment */}}", &Value::Nil).unwrap(), "");
}

/// A caller's type with fields, methods and a `String()`.
struct Host {
    name: String,
    port: i64,
}

impl template::Object for Host {
    fn type_name(&self) -> &str {
        "main.Host"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Name" => Some(Value::from(self.name.as_str())),
            "Port" => Some(Value::Int(self.port)),
            _ => None,
        }
    }

    fn method(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        match name {
            "Addr" => Some(Ok(Value::from(format!("{}:{}", self.name, self.port)))),
            "WithPort" => Some(template::args::int(&args[0]).map(|p| {
                Value::object(Host {
                    name: self.name.clone(),
                    port: p,
                })
            })),
            _ => None,
        }
    }

    fn display(&self) -> Option<String> {
        Some(format!("host {}", self.name))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[test]
fn caller_objects() {
    let d = Value::map([(
        "H",
        Value::object(Host {
            name: "db".to_string(),
            port: 5432,
        }),
    )]);
    let r = |text: &str| run(text, &d).map_err(|e| e.to_string());
    assert_eq!(
        r("{{ .H.Name }}:{{ .H.Port }} {{ .H.Addr }}").unwrap(),
        "db:5432 db:5432"
    );
    assert_eq!(
        r("{{ (.H.WithPort 1).Addr }} {{ 7 | .H.WithPort }}").unwrap(),
        "db:1 host db"
    );
    assert_eq!(
        r("{{ .H }} {{ printf \"%s|%v\" .H .H }} {{ if .H }}yes{{ end }}").unwrap(),
        "host db host db|host db yes"
    );
    assert_eq!(
        r("{{ .H.Nope }}").unwrap_err(),
        r#"template: t:1:5: executing "t" at <.H.Nope>: can't evaluate field Nope in type main.Host"#
    );
    assert_eq!(
        r("{{ .H.WithPort \"x\" }}").unwrap_err(),
        r#"template: t:1:5: executing "t" at <.H.WithPort>: error calling WithPort: wrong type for value; expected int; got string"#
    );
    assert_eq!(
        r("{{ .H.Name 1 }}").unwrap_err(),
        r#"template: t:1:5: executing "t" at <.H.Name>: Name has arguments but cannot be invoked as function"#
    );
}
