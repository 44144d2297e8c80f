//! Go yaml.v2's strict-decoding messages, rebuilt from serde_saphyr's error text, for the
//! config loaders that must print what promtool and amtool print (`rules`, `alertmanager`).
//!
//! serde stops at the first unknown field; yaml.v2 lists them all as
//! `yaml: unmarshal errors:` lines. [`unmarshal_errors`] finds every one by blanking the
//! rejected key (and what is nested under it) and decoding again, keeping line numbers.
//! Only text is handled here: the caller decodes.

use std::fmt::Write;

/// `(line, field, expected fields)` of serde_saphyr's unknown-field error
/// (`error: line L column C: unknown field `f`, expected ...`).
pub fn unknown_field(err: &str) -> Option<(usize, &str, &str)> {
    let rest = err.lines().next()?.strip_prefix("error: line ")?;
    let (line, rest) = rest.split_once(" column ")?;
    let (_, rest) = rest.split_once(": unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    Some((line.parse().ok()?, field, expected))
}

/// yaml.v2's `yaml: unmarshal errors:` message listing every unknown field of `text`, sorted
/// by line, or `None` when `first` (the first decoding error) is not about an unknown field.
/// `reparse` decodes text again (its error text on failure); `type_of` names the Go type
/// from serde's list of expected fields (`field x not found in type config.plain`).
pub fn unmarshal_errors(
    text: &str,
    first: &str,
    reparse: impl Fn(&str) -> Result<(), String>,
    type_of: impl Fn(&str) -> &'static str,
) -> Option<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut found: Vec<(usize, String)> = Vec::new();
    let mut err = first.to_string();
    // Each pass removes one key; a file with more unknown keys than this is cut short.
    for _ in 0..100 {
        let Some((line, field, expected)) = unknown_field(&err) else {
            break;
        };
        found.push((
            line,
            format!("field {field} not found in type {}", type_of(expected)),
        ));
        if !blank_key(&mut lines, line) {
            break;
        }
        match reparse(&lines.join("\n")) {
            Ok(()) => break,
            Err(e) => err = e,
        }
    }
    if found.is_empty() {
        return None;
    }
    found.sort();
    let mut msg = "yaml: unmarshal errors:".to_string();
    for (line, m) in found {
        let _ = write!(msg, "\n  line {line}: {m}");
    }
    Some(msg)
}

/// Blanks the key on 1-based `line` and the lines nested under it; a list item's first key
/// leaves the item (with its other keys, if any). False when there is no such line.
fn blank_key(lines: &mut [String], line: usize) -> bool {
    let Some(key_line) = line.checked_sub(1).and_then(|i| lines.get(i)) else {
        return false;
    };
    let indent_of = |l: &str| l.len() - l.trim_start().len();
    let mut indent = indent_of(key_line);
    if key_line.trim_start().starts_with("- ") {
        lines[line - 1] = format!("{}- {{}}", " ".repeat(indent));
        indent += 2;
        let rest = lines
            .iter()
            .skip(line)
            .find(|l| !l.trim().is_empty() && indent_of(l) <= indent);
        if rest.is_some_and(|l| indent_of(l) == indent) {
            lines[line - 1] = format!("{}-", " ".repeat(indent - 2));
        }
    } else {
        lines[line - 1].clear();
    }
    for l in lines.iter_mut().skip(line) {
        if l.trim().is_empty() || indent_of(l) > indent {
            l.clear();
        } else {
            break;
        }
    }
    true
}

/// A decoding error other than an unknown field as yaml.v2 words it: a syntax error as
/// `yaml: line N: ...` (`true`: Prometheus's two decoders both report it), a value's own check
/// as its bare message, anything else as serde_saphyr's first line.
pub fn go_error(err: &str) -> (String, bool) {
    let head = err.lines().next().unwrap_or_default();
    let parsed = head.strip_prefix("error: line ").and_then(|r| {
        let (l, rest) = r.split_once(" column ")?;
        let (_, m) = rest.split_once(": ")?;
        Some((l.parse::<usize>().ok()?, m))
    });
    match parsed {
        Some((line, m)) if m.starts_with("while parsing") || m.starts_with("did not find") => {
            let m = m.split_once(", ").map_or(m, |(_, m)| m);
            (format!("yaml: line {line}: {m}"), true)
        }
        Some((_, m)) => (m.to_string(), false),
        None => (head.to_string(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        #[serde(default)]
        value: Option<u32>,
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Top {
        items: Vec<Item>,
        #[serde(default)]
        other: Option<String>,
    }

    fn decode(t: &str) -> Result<(), String> {
        serde_saphyr::from_str::<Top>(t)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_unknown_field_is_listed() {
        let text = "items:\n  - bogus: 1\n    name: a\n  - name: b\n    extra:\n      deep: 2\nwhat: x\nother: y\n";
        let first = decode(text).unwrap_err();
        let type_of = |expected: &str| {
            if expected.contains("name") {
                "main.Item"
            } else {
                "main.Top"
            }
        };
        assert_eq!(
            unmarshal_errors(text, &first, decode, type_of).as_deref(),
            Some(
                "yaml: unmarshal errors:\n  line 2: field bogus not found in type main.Item\n  \
                 line 5: field extra not found in type main.Item\n  \
                 line 7: field what not found in type main.Top"
            )
        );
    }

    #[test]
    fn other_errors_as_yaml_v2_words_them() {
        let text = "items: x\n";
        let first = decode(text).unwrap_err();
        assert_eq!(unmarshal_errors(text, &first, decode, |_| "x"), None);
        let syntax =
            "error: line 3 column 1: while parsing a block mapping, did not find expected key";
        assert_eq!(
            go_error(syntax),
            ("yaml: line 3: did not find expected key".to_string(), true)
        );
        assert_eq!(
            go_error("not a valid duration string: \"x\""),
            ("not a valid duration string: \"x\"".to_string(), false)
        );
        assert_eq!(
            unknown_field("error: line 0 column 1: unknown field `a`, expected `b`").map(|u| u.1),
            Some("a")
        );
        let mut lines = vec!["a: 1".to_string()];
        assert!(!blank_key(&mut lines, 0));
        assert!(!blank_key(&mut lines, 2));
    }
}
