//! The parse error: which line, what kind, what was wrong.

/// What class of problem a [`ParseError`] reports, for callers that count or
/// branch on failures (the message is for humans).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParseErrorKind {
    /// The bytes do not follow the grammar.
    Syntax,
    /// A label value, help text or other returned string is not UTF-8.
    InvalidUtf8,
    /// A sample value or timestamp does not parse, or is out of range.
    InvalidNumber,
    /// `# TYPE` names a type the format does not have.
    InvalidType,
    /// A label name occurs twice in one label set.
    DuplicateLabel,
    /// OpenMetrics: the body ends without `# EOF`.
    MissingEof,
    /// OpenMetrics: something follows `# EOF`.
    DataAfterEof,
}

/// A body that could not be parsed. Parsing stops at the first error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct ParseError {
    /// 1-based line the problem was found on.
    pub line: usize,
    pub kind: ParseErrorKind,
    /// What was wrong, naming what was expected and what was found.
    pub msg: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, kind: ParseErrorKind, msg: impl Into<String>) -> Self {
        ParseError {
            line,
            kind,
            msg: msg.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_line() {
        let e = ParseError::new(3, ParseErrorKind::Syntax, "expected label value, got \"x\"");
        assert_eq!(e.to_string(), "line 3: expected label value, got \"x\"");
    }
}
