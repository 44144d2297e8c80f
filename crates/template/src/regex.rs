//! Unanchored Go regexes for the `match` and `reReplaceAll` template functions (Go's
//! `regexp.MatchString` and `Regexp.ReplaceAllString`).
//!
//! `model::GoRegex` parses Go's syntax and translates it into an explicit Rust pattern, but
//! anchors it; the template functions search, so we take its translation without the anchors.

use model::regex::{Anchor, GoRegex};

pub(crate) struct Search {
    re: regex::Regex,
    /// Group names by group index, as Go numbers them (index 0 is the whole match).
    names: Vec<Option<String>>,
}

const SIZE_LIMIT: usize = 64 << 20;

impl Search {
    pub fn new(pattern: &str) -> Result<Search, String> {
        // `Alertmanager` anchoring leaves `.` not matching `\n`, as in a plain Go regexp.
        let go =
            GoRegex::new_with_anchor(pattern, Anchor::Alertmanager).map_err(|e| e.to_string())?;
        let translated = go.translated();
        let inner = translated
            .strip_prefix(r"\A(?:")
            .and_then(|s| s.strip_suffix(r")\z"))
            .ok_or_else(|| format!("error parsing regexp: internal error: `{pattern}`"))?;
        let re = regex::RegexBuilder::new(inner)
            .size_limit(SIZE_LIMIT)
            .nest_limit(8000)
            .build()
            .map_err(|_| format!("error parsing regexp: expression too large: `{pattern}`"))?;
        Ok(Search {
            re,
            names: group_names(pattern),
        })
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.re.is_match(text)
    }

    /// Go's `ReplaceAllString`: every match replaced by `repl` with `$1`, `${name}` expanded.
    pub fn replace_all(&self, text: &str, repl: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for caps in self.re.captures_iter(text) {
            let Some(m) = caps.get(0) else { continue };
            out.push_str(&text[last..m.start()]);
            self.expand(&caps, repl, &mut out);
            last = m.end();
        }
        out.push_str(&text[last..]);
        out
    }

    fn group(&self, name: &str) -> Option<usize> {
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            return name.parse().ok();
        }
        self.names.iter().position(|n| n.as_deref() == Some(name))
    }

    fn expand(&self, caps: &regex::Captures<'_>, template: &str, out: &mut String) {
        let mut t = template;
        while let Some(i) = t.find('$') {
            out.push_str(&t[..i]);
            t = &t[i + 1..];
            if let Some(rest) = t.strip_prefix('$') {
                out.push('$');
                t = rest;
                continue;
            }
            let (name, rest) = if let Some(body) = t.strip_prefix('{') {
                match body.find('}') {
                    Some(end) if is_name(&body[..end]) => (&body[..end], &body[end + 1..]),
                    _ => {
                        // compat: Go copies a `$` that starts no valid reference as raw text.
                        out.push('$');
                        continue;
                    }
                }
            } else {
                let n = t
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                if n == 0 {
                    out.push('$');
                    continue;
                }
                (&t[..n], &t[n..])
            };
            if let Some(m) = self.group(name).and_then(|g| caps.get(g)) {
                out.push_str(m.as_str());
            }
            t = rest;
        }
        out.push_str(t);
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The names of the capture groups of a (valid) Go pattern, by group index.
fn group_names(pattern: &str) -> Vec<Option<String>> {
    let mut names = vec![None];
    let b = pattern.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if b.get(i + 1) == Some(&b'Q') {
                    i = match pattern[i + 2..].find("\\E") {
                        Some(e) => i + 2 + e + 2,
                        None => b.len(),
                    };
                    continue;
                }
                i += 2;
            }
            b'[' => {
                i += 1;
                if b.get(i) == Some(&b'^') {
                    i += 1;
                }
                if b.get(i) == Some(&b']') {
                    i += 1;
                }
                while i < b.len() && b[i] != b']' {
                    if b[i] == b'\\' {
                        i += 1;
                    } else if b[i] == b'['
                        && b.get(i + 1) == Some(&b':')
                        && let Some(e) = pattern[i..].find(":]")
                    {
                        i += e + 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'(' => {
                let rest = &pattern[i + 1..];
                let named = rest.strip_prefix("?P<").or_else(|| rest.strip_prefix("?<"));
                if let Some(after) = named {
                    let end = after.find('>').unwrap_or(after.len());
                    names.push(Some(after[..end].to_string()));
                } else if !rest.starts_with('?') {
                    names.push(None);
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_and_replaces_like_go() {
        let s = Search::new("a(b+)").unwrap();
        assert!(s.is_match("xxabbb"));
        assert!(!s.is_match("xxa"));
        assert_eq!(s.replace_all("ab-abb", "<$1>"), "<b>-<bb>");
        let n = Search::new(r"(?P<host>[^:]+):(?P<port>\d+)").unwrap();
        assert_eq!(n.replace_all("example.com:9090", "${host}"), "example.com");
        assert_eq!(n.replace_all("h:1", "$port$$"), "1$");
        assert_eq!(n.replace_all("h:1", "$1x"), "");
        assert_eq!(n.replace_all("h:1", "${1}x"), "hx");
        assert_eq!(
            group_names(r"(a)(?:b)[(](?P<c>d)\(e"),
            vec![None, None, Some("c".to_string())]
        );
        assert!(Search::new("(").is_err());
    }
}
