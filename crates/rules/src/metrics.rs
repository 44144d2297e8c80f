//! A few helpers to write metrics in the text exposition format (the server concatenates
//! them into `/metrics`).

use std::fmt::Write;

/// `# HELP` and `# TYPE` lines of a family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], v: f64) {
    web::metrics::write_series(out, name, labels);
    let _ = writeln!(out, " {}", format_value(v));
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        promql::format_go_float(v)
    }
}
