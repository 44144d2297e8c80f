//! Alertmanager's label matchers: regexes anchored as `^(?:…)$` (so `.` does not match a newline),
//! the matcher-list syntax of `matchers:`, amtool and `?filter=` (`{a="b", c=~"d.*"}`, values may
//! be unquoted), Go's sort order of matchers, and their printed form (`name="value"`).

use std::cmp::Ordering;
use std::fmt;

use model::labels::quote_go;
use model::regex::{Anchor, ErrorCode, GoRegex, RegexError};
use model::{Labels, MatchType};

/// A matcher that cannot be built or parsed; messages are Alertmanager's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    #[error("bad matcher format: {0}")]
    BadFormat(String),
    #[error("matcher value contains unescaped double quote: {0}")]
    UnescapedQuote(String),
    #[error("{0}")]
    Regex(String),
}

/// Compiles an Alertmanager regex (anchored). Alertmanager compiles `^(?:` + v + `)$`, so Go
/// blames that whole wrapped text when it reports the whole expression (missing or unexpected
/// parenthesis); this error text does the same.
pub fn compile_regex(value: &str) -> Result<GoRegex, String> {
    GoRegex::new_with_anchor(value, Anchor::Alertmanager).map_err(|e| regex_error(value, &e))
}

fn regex_error(value: &str, e: &RegexError) -> String {
    match e.code() {
        ErrorCode::MissingParen | ErrorCode::UnexpectedParen | ErrorCode::NestingDepth
            if e.expr() == value =>
        {
            format!("error parsing regexp: {}: `^(?:{value})$`", e.code())
        }
        _ => e.to_string(),
    }
}

/// One matcher with Alertmanager semantics.
#[derive(Clone)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    pub kind: MatchType,
    re: Option<GoRegex>,
}

impl Matcher {
    pub fn new(
        kind: MatchType,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, MatcherError> {
        let value = value.into();
        let re = match kind {
            MatchType::RegexMatch | MatchType::RegexNoMatch => {
                Some(compile_regex(&value).map_err(MatcherError::Regex)?)
            }
            MatchType::Equal | MatchType::NotEqual => None,
        };
        Ok(Matcher {
            name: name.into(),
            value,
            kind,
            re,
        })
    }

    /// `name="value"`, which cannot fail.
    pub fn equal_unchecked(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher {
            name: name.into(),
            value: value.into(),
            kind: MatchType::Equal,
            re: None,
        }
    }

    /// Whether a label value (`""` for a missing label) matches.
    pub fn matches(&self, v: &str) -> bool {
        match self.kind {
            MatchType::Equal => v == self.value,
            MatchType::NotEqual => v != self.value,
            MatchType::RegexMatch => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchType::RegexNoMatch => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    pub fn is_regex(&self) -> bool {
        matches!(self.kind, MatchType::RegexMatch | MatchType::RegexNoMatch)
    }

    pub fn is_equal(&self) -> bool {
        matches!(self.kind, MatchType::Equal | MatchType::RegexMatch)
    }

    /// Parses one matcher such as `foo="bar"`, `foo=~bar.*` or `foo != "a \"b\""`.
    pub fn parse(s: &str) -> Result<Matcher, MatcherError> {
        let bad = || MatcherError::BadFormat(s.to_string());
        let t = s.trim_start();
        let name_len = t
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
            })
            .map_or(t.len(), |(i, _)| i);
        if name_len == 0 {
            return Err(bad());
        }
        let (name, rest) = t.split_at(name_len);
        let rest = rest.trim_start();
        let (kind, rest) = if let Some(r) = rest.strip_prefix("=~") {
            (MatchType::RegexMatch, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (MatchType::Equal, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (MatchType::NotEqual, r)
        } else if let Some(r) = rest.strip_prefix("!~") {
            (MatchType::RegexNoMatch, r)
        } else {
            return Err(bad());
        };
        let raw = rest.trim();
        let value = unescape_value(raw)?;
        Matcher::new(kind, name, value)
    }
}

/// compat: Alertmanager 0.25 unescapes `\n`, `\"` and `\\`, keeps other backslashes literally,
/// and accepts a value with or without surrounding double quotes.
fn unescape_value(raw: &str) -> Result<String, MatcherError> {
    let (body, mut expect_quote) = match raw.strip_prefix('"') {
        Some(b) => (b, true),
        None => (raw, false),
    };
    let quote_err = || MatcherError::UnescapedQuote(raw.to_string());
    let mut out = String::with_capacity(body.len());
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if escaped {
            escaped = false;
            match c {
                'n' => out.push('\n'),
                '"' | '\\' => out.push(c),
                _ => {
                    out.push('\\');
                    out.push(c);
                }
            }
            continue;
        }
        let last = i + c.len_utf8() == body.len();
        match c {
            '\\' if !last => escaped = true,
            '\\' => out.push('\\'),
            '"' => {
                if !expect_quote || !last {
                    return Err(quote_err());
                }
                expect_quote = false;
            }
            _ => out.push(c),
        }
    }
    if expect_quote {
        return Err(quote_err());
    }
    Ok(out)
}

/// Parses a matcher list: `{a="b",c=~"d"}` or `a="b", c=~"d"` (commas inside quotes allowed).
pub fn parse_matchers(s: &str) -> Result<Vec<Matcher>, MatcherError> {
    let s = s.strip_prefix('{').unwrap_or(s);
    let s = s.strip_suffix('}').unwrap_or(s);
    let mut tokens: Vec<String> = Vec::new();
    let mut token = String::new();
    let (mut in_quotes, mut escaped) = (false, false);
    for c in s.chars() {
        match c {
            ',' if !in_quotes => {
                tokens.push(std::mem::take(&mut token));
                continue;
            }
            ',' => {}
            '"' => {
                if escaped {
                    escaped = false;
                } else {
                    in_quotes = !in_quotes;
                }
            }
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        token.push(c);
    }
    let last = token.trim();
    if !last.is_empty() {
        tokens.push(last.to_string());
    }
    tokens.iter().map(|t| Matcher::parse(t)).collect()
}

fn type_rank(k: MatchType) -> u8 {
    // compat: Go's MatchType constants order: =, !=, =~, !~.
    match k {
        MatchType::Equal => 0,
        MatchType::NotEqual => 1,
        MatchType::RegexMatch => 2,
        MatchType::RegexNoMatch => 3,
    }
}

impl Ord for Matcher {
    /// Alertmanager's `labels.Matchers` order: by name, then value, then type.
    fn cmp(&self, o: &Self) -> Ordering {
        self.name
            .cmp(&o.name)
            .then_with(|| self.value.cmp(&o.value))
            .then_with(|| type_rank(self.kind).cmp(&type_rank(o.kind)))
    }
}
impl PartialOrd for Matcher {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.value == o.value && self.kind == o.kind
    }
}
impl Eq for Matcher {}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.name, self.kind, quote_go(&self.value))
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A sorted list of matchers that all must match.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    pub fn new(mut v: Vec<Matcher>) -> Matchers {
        v.sort();
        Matchers(v)
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.0
            .iter()
            .all(|m| m.matches(labels.get_or_empty(&m.name)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Matcher> {
        self.0.iter()
    }
}

impl fmt::Display for Matchers {
    /// `{a="b",c=~"d"}`, as route keys print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_alertmanager() {
        #[track_caller]
        fn check(input: &str, want: &[&str]) {
            let got: Vec<String> = parse_matchers(input)
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(got, want, "{input}");
        }
        check(r#"{foo="bar"}"#, &[r#"foo="bar""#]);
        check(r#"foo=bar"#, &[r#"foo="bar""#]);
        check(r#"foo =~ "a,b" , x!=y"#, &[r#"foo=~"a,b""#, r#"x!="y""#]);
        check(r#"foo="a \"q\" \\ \n \d""#, &[r#"foo="a \"q\" \\ \n \\d""#]);
        check(r#"foo="""#, &[r#"foo="""#]);
        check(r#"foo!~"x|y""#, &[r#"foo!~"x|y""#]);
        check(r#"{}"#, &[]);
        check(r#"foo=bar\"#, &[r#"foo="bar\\""#]);
    }

    #[test]
    fn rejects_like_alertmanager() {
        #[track_caller]
        fn check(input: &str, want: &str) {
            let err = parse_matchers(input).unwrap_err().to_string();
            assert_eq!(err, want);
        }
        check("foo", "bad matcher format: foo");
        check("1a=b", "bad matcher format: 1a=b");
        check(
            r#"foo="bar"baz""#,
            r#"matcher value contains unescaped double quote: "bar"baz""#,
        );
        check(
            r#"foo="bar"#,
            r#"matcher value contains unescaped double quote: "bar"#,
        );
        check(
            "foo=~(",
            "error parsing regexp: missing closing ): `^(?:()$`",
        );
        check("foo=~a)", "error parsing regexp: unexpected ): `^(?:a))$`");
        check(
            "foo=~a**",
            "error parsing regexp: invalid nested repetition operator: `**`",
        );
    }

    #[test]
    fn regex_is_anchored_without_dot_newline() {
        let m = Matcher::parse("a=~b.*").unwrap();
        assert!(m.matches("bcd") && !m.matches("abc") && !m.matches("b\nc"));
        let n = Matcher::parse("a!~b.*").unwrap();
        assert!(n.matches("") && !n.matches("bx"));
    }

    #[test]
    fn sorts_by_name_value_type() {
        let ms = Matchers::new(parse_matchers(r#"b="1", a!="2", a="2", a=~"1""#).unwrap());
        assert_eq!(ms.to_string(), r#"{a=~"1",a="2",a!="2",b="1"}"#);
    }
}
