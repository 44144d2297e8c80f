//! Label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus semantics: regexes are fully anchored
//! and follow Go's RE2 syntax; a missing label matches as the empty string.

use std::fmt;

use crate::labels::quote_go;
use crate::regex::{GoRegex, RegexError};

/// The four matcher operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchType {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

impl MatchType {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::RegexMatch => "=~",
            MatchType::RegexNoMatch => "!~",
        }
    }
}

impl fmt::Display for MatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    #[error("invalid regular expression in matcher for label {name:?}")]
    Regex {
        name: String,
        #[source]
        source: RegexError,
    },
}

/// One label matcher.
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
    ) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let re = match kind {
            MatchType::RegexMatch | MatchType::RegexNoMatch => {
                Some(GoRegex::new(&value).map_err(|source| MatcherError::Regex {
                    name: name.clone(),
                    source,
                })?)
            }
            _ => None,
        };
        Ok(Matcher {
            name,
            value,
            kind,
            re,
        })
    }

    /// `name="value"`, which cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Self {
        Matcher {
            name: name.into(),
            value: value.into(),
            kind: MatchType::Equal,
            re: None,
        }
    }

    /// Whether the label value `v` (use "" for a missing label) matches.
    pub fn matches(&self, v: &str) -> bool {
        match self.kind {
            MatchType::Equal => v == self.value,
            MatchType::NotEqual => v != self.value,
            MatchType::RegexMatch => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchType::RegexNoMatch => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Whether a series without this label matches.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// For `=~` matchers whose regex is an alternation of literals (`a|b|c`), the literals;
    /// lets the index look postings up directly instead of scanning values.
    pub fn set_matches(&self) -> Option<Vec<String>> {
        match self.kind {
            MatchType::Equal => Some(vec![self.value.clone()]),
            MatchType::RegexMatch => self.re.as_ref().and_then(GoRegex::literal_alternatives),
            _ => None,
        }
    }

    /// For `=~` matchers whose regex is literal prefixes followed by `.*` (`/api/.*`,
    /// `bench_(http|queue).*`), the prefixes: the values that match are those starting with
    /// one of them, so an index with sorted values can seek to them instead of testing every
    /// value.
    pub fn prefix_matches(&self) -> Option<&[String]> {
        match self.kind {
            MatchType::RegexMatch => self.re.as_ref().and_then(GoRegex::literal_prefixes),
            _ => None,
        }
    }

    /// The compiled regex of a regex matcher.
    pub fn regex(&self) -> Option<&GoRegex> {
        self.re.as_ref()
    }
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.value == o.value && self.kind == o.kind
    }
}

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

/// Whether a label set satisfies every matcher.
pub fn matches_all(labels: &crate::Labels, matchers: &[Matcher]) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get_or_empty(&m.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_ops() {
        let m = Matcher::new(MatchType::RegexMatch, "a", "fo+").unwrap();
        assert!(m.matches("foo"));
        assert!(!m.matches("xfoo"), "regex must be anchored");
        assert!(!m.matches(""));
        let n = Matcher::new(MatchType::RegexNoMatch, "a", "").unwrap();
        assert!(n.matches("x") && !n.matches(""));
        assert!(Matcher::equal("a", "").matches_empty());
        assert!(
            Matcher::new(MatchType::NotEqual, "a", "b")
                .unwrap()
                .matches("")
        );
        assert_eq!(m.to_string(), "a=~\"fo+\"");
    }
}
