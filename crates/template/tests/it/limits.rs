//! Hostile templates end with an error, never a hang, a panic or a blown stack.

use template::{Limits, Template, TemplateError, Value};

fn run_limited(text: &str, limits: Limits) -> Result<String, TemplateError> {
    let mut t = Template::new("t");
    t.limits(limits);
    t.parse(text)?;
    t.execute(&Value::Nil)
}

/// Runs on a thread with a small stack, as a tokio worker has.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn infinite_recursion_stops_at_the_depth_limit() {
    let err = on_small_stack(|| {
        run_limited(r#"{{ define "a" }}{{ if true }}{{ with 1 }}{{ template "a" }}{{ end }}{{ end }}{{ end }}{{ template "a" }}"#, Limits::default())
    })
    .unwrap_err();
    assert!(matches!(err, TemplateError::Limit(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "template: a: exceeded maximum template depth (200)"
    );
}

#[test]
fn deep_nesting_in_one_template_is_refused_at_parse() {
    let text = "{{ if 1 }}".repeat(500) + &"{{ end }}".repeat(500);
    let err = on_small_stack(move || run_limited(&text, Limits::default())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: t:1: max expression depth exceeded"
    );
    let parens = "{{ ".to_string() + &"(".repeat(500) + "1" + &")".repeat(500) + " }}";
    let err = on_small_stack(move || run_limited(&parens, Limits::default())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: t:1: max expression depth exceeded"
    );
}

#[test]
fn maximal_legal_nesting_runs_on_a_small_stack() {
    let text = r#"{{ define "a" }}{{ if . }}{{ template "a" (slice . 1) }}{{ end }}{{ end }}"#
        .to_string()
        + &"{{ range 1 }}".repeat(99)
        + r#"{{ template "a" "abcdefghijklmnopqrstuvwxyz" }}x"#
        + &"{{ end }}".repeat(99);
    let out = on_small_stack(move || {
        run_limited(
            &text,
            Limits {
                max_depth: 400,
                ..Limits::default()
            },
        )
    })
    .unwrap();
    assert_eq!(out, "x");
}

#[test]
fn long_loops_stop_at_the_step_limit() {
    let err = run_limited(
        "{{ range 1000000000000 }}{{ end }}",
        Limits {
            max_steps: 100_000,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: t: execution exceeded the limit of 100000 steps"
    );
}

#[test]
fn big_output_stops_at_the_output_limit() {
    let err = run_limited(
        r#"{{ range 100000 }}{{ printf "%1000d" 1 }}{{ end }}"#,
        Limits {
            max_output: 1 << 20,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: t: output exceeds the limit of 1048576 bytes"
    );
    assert_eq!(
        run_limited(r#"{{ printf "%99999999d" 1 }}"#, Limits::default()).unwrap(),
        "%!(BADWIDTH)1"
    );
}

#[test]
fn garbage_input_never_panics() {
    let pieces = [
        "{{", "}}", "{{-", "-}}", "/*", "*/", "(", ")", "|", ":=", "=", "$", "$x", ".", ".A", "\"",
        "`", "'", "if", "else", "end", "range", "with", "define", "template", "block", "break",
        "continue", " ", "\n", "1", "-", "nil", "true", "€", "printf", ",",
    ];
    // A deterministic pseudo-random walk over the pieces.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..3000 {
        let mut text = String::new();
        for _ in 0..(seed % 24) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            text.push_str(pieces[(seed % pieces.len() as u64) as usize]);
        }
        seed = seed.wrapping_add(1);
        let _ = run_limited(&text, Limits::default());
    }
}

#[test]
fn doubling_a_string_stops_at_the_output_limit() {
    let err = run_limited(
        r#"{{ $x := "ab" }}{{ range 64 }}{{ $x = print $x $x }}{{ end }}"#,
        Limits {
            max_output: 1 << 20,
            ..Limits::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: t: a value exceeds the output limit of 1048576 bytes"
    );
}

#[test]
fn templates_are_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Template>();
    assert_send_sync::<Value>();
}
