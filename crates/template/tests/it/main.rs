//! Integration tests of the template engine: one line per case, expected outputs and messages
//! as Go's `text/template` (Go 1.22) produces them.

mod alertmanager;
mod exec;
mod limits;
mod prometheus;

use template::{FuncMap, Template, TemplateError, Value};

/// A data set most cases run on.
pub fn data() -> Value {
    Value::map([
        ("Name", Value::from("vigil")),
        ("N", Value::Int(3)),
        ("F", Value::Float(2.5)),
        ("Zero", Value::Int(0)),
        ("Empty", Value::from("")),
        ("T", Value::Bool(true)),
        ("List", Value::list(["a".into(), "b".into(), "c".into()])),
        (
            "Nums",
            Value::list([Value::Int(3), Value::Int(1), Value::Int(2)]),
        ),
        ("EmptyList", Value::list([])),
        (
            "Map",
            Value::map([
                ("b", Value::Int(2)),
                ("a", Value::Int(1)),
                ("c", Value::Int(3)),
            ]),
        ),
        (
            "Labels",
            Value::str_map([("job", "api"), ("instance", "host:9090")]),
        ),
        (
            "Nested",
            Value::map([("Inner", Value::map([("X", Value::from("deep"))]))]),
        ),
        (
            "Add",
            Value::func(|a| {
                Ok(Value::Int(
                    a.iter()
                        .filter_map(|v| match v {
                            Value::Int(i) => Some(*i),
                            _ => None,
                        })
                        .sum(),
                ))
            }),
        ),
    ])
}

pub fn parse_with(name: &str, text: &str, funcs: FuncMap) -> Result<Template, TemplateError> {
    let mut t = Template::new(name);
    t.funcs(funcs);
    t.parse(text)?;
    Ok(t)
}

pub fn run(text: &str, data: &Value) -> Result<String, TemplateError> {
    parse_with("t", text, FuncMap::new())?.execute(data)
}

#[track_caller]
pub fn check(text: &str, want: &str) {
    match run(text, &data()) {
        Ok(got) => assert_eq!(got, want, "template {text:?}"),
        Err(e) => panic!("template {text:?}: {e}"),
    }
}

#[track_caller]
pub fn check_err(text: &str, want: &str) {
    match run(text, &data()) {
        Ok(got) => panic!("template {text:?}: want error {want:?}, got output {got:?}"),
        Err(e) => assert_eq!(e.to_string(), want, "template {text:?}"),
    }
}
