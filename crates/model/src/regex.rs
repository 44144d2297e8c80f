//! A front end for Go's RE2 regular-expression syntax on top of the `regex` crate.
//!
//! Prometheus and Alertmanager compile user regexes with Go's `regexp` package, whose syntax and
//! semantics differ from Rust's in ways users notice: `\d \w \s \b` are ASCII-only in Go, `[[]` and
//! `\Q…\E` are valid, `a{1001}` is not, duplicate group names are allowed, and the error messages
//! are Go's. So we parse the Go syntax ourselves into a small tree (rejecting what Go rejects, with
//! Go's message), then print that tree as an explicit Rust pattern in which every flag has been
//! resolved per node, so no Rust default can leak in.

use std::fmt;
use std::sync::{Arc, LazyLock};

/// How a pattern is anchored, which also fixes whether `.` matches a newline by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Anchor {
    /// `^(?s:pattern)$`, as Prometheus 3 compiles label matchers and relabel regexes.
    #[default]
    Prometheus,
    /// `^(?:pattern)$`, as Alertmanager compiles matchers: `.` does not match `\n`.
    Alertmanager,
}

/// The kind of a regex syntax error, with Go's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Internal,
    InvalidCharClass,
    InvalidCharRange,
    InvalidEscape,
    InvalidNamedCapture,
    InvalidPerlOp,
    InvalidRepeatOp,
    InvalidRepeatSize,
    MissingBracket,
    MissingParen,
    MissingRepeatArgument,
    TrailingBackslash,
    UnexpectedParen,
    NestingDepth,
    Large,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Internal => "regexp/syntax: internal error",
            ErrorCode::InvalidCharClass => "invalid character class",
            ErrorCode::InvalidCharRange => "invalid character class range",
            ErrorCode::InvalidEscape => "invalid escape sequence",
            ErrorCode::InvalidNamedCapture => "invalid named capture",
            ErrorCode::InvalidPerlOp => "invalid or unsupported Perl syntax",
            ErrorCode::InvalidRepeatOp => "invalid nested repetition operator",
            ErrorCode::InvalidRepeatSize => "invalid repeat count",
            ErrorCode::MissingBracket => "missing closing ]",
            ErrorCode::MissingParen => "missing closing )",
            ErrorCode::MissingRepeatArgument => "missing argument to repetition operator",
            ErrorCode::TrailingBackslash => "trailing backslash at end of expression",
            ErrorCode::UnexpectedParen => "unexpected )",
            ErrorCode::NestingDepth => "expression nests too deeply",
            ErrorCode::Large => "expression too large",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pattern Go would reject. Displays exactly like Go's `*syntax.Error`:
/// ``error parsing regexp: missing closing ): `(foo` ``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error parsing regexp: {code}: `{expr}`")]
pub struct RegexError {
    code: ErrorCode,
    expr: String,
}

impl RegexError {
    fn new(code: ErrorCode, expr: &str) -> Self {
        RegexError {
            code,
            expr: expr.to_string(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The part of the pattern Go blames (sometimes the whole pattern, sometimes empty).
    pub fn expr(&self) -> &str {
        &self.expr
    }
}

// compat: Go's parser limits (regexp/syntax): counted repetitions up to 1000, tree height 1000.
const MAX_REPEAT: i64 = 1000;
const MAX_HEIGHT: u32 = 1000;
// Go accepts programs up to ~128 MiB; the `regex` default of 10 MiB rejects some patterns Go takes.
const RUST_SIZE_LIMIT: usize = 64 << 20;
// Our printed pattern wraps each tree level in at most two groups.
const RUST_NEST_LIMIT: u32 = 4 * MAX_HEIGHT + 16;
const MAX_RUNE: u32 = 0x10_FFFF;

/// A compiled, fully anchored regex with Go RE2 syntax and semantics.
#[derive(Clone, Debug)]
pub struct GoRegex {
    pattern: String,
    anchor: Anchor,
    re: regex::Regex,
    /// Group names by group index (index 0 is the whole match); Go allows duplicates.
    names: Arc<[Option<String>]>,
    literals: Option<Arc<[String]>>,
    prefixes: Option<Arc<[String]>>,
}

impl PartialEq for GoRegex {
    /// Two regexes are equal when compiled from the same pattern with the same anchoring.
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.anchor == other.anchor
    }
}

impl Eq for GoRegex {}

impl fmt::Display for GoRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl GoRegex {
    /// Compiles `pattern` the way Prometheus does: anchored as `^(?s:pattern)$`.
    pub fn new(pattern: &str) -> Result<GoRegex, RegexError> {
        Self::new_with_anchor(pattern, Anchor::Prometheus)
    }

    /// Compiles `pattern` with the given anchoring.
    pub fn new_with_anchor(pattern: &str, anchor: Anchor) -> Result<GoRegex, RegexError> {
        let flags = Flags {
            dot_nl: anchor == Anchor::Prometheus,
            ..Flags::default()
        };
        let (tree, names) = Parser::new(pattern, flags).parse()?;
        let mut translated = String::with_capacity(pattern.len() * 2 + 16);
        translated.push_str(r"\A(?:");
        emit(&tree, &mut translated);
        translated.push_str(r")\z");
        let re = regex::RegexBuilder::new(&translated)
            .size_limit(RUST_SIZE_LIMIT)
            .nest_limit(RUST_NEST_LIMIT)
            .build()
            .map_err(|e| match e {
                regex::Error::CompiledTooBig(_) => RegexError::new(ErrorCode::Large, pattern),
                _ => RegexError::new(ErrorCode::Internal, pattern),
            })?;
        let literals = literal_alternatives(&tree).map(Arc::from);
        // `.` matches a newline only in Prometheus's `(?s:…)` anchoring (a `(?-s)` group
        // parses into another node), so `prefix.*` means "starts with prefix" exactly.
        let prefixes = literal_prefixes(&tree).map(Arc::from);
        Ok(GoRegex {
            pattern: pattern.to_string(),
            anchor,
            re,
            names: names.into(),
            literals,
            prefixes,
        })
    }

    /// Whether the whole of `s` matches. Literal prefixes followed by `.*` and small sets of
    /// literals are compared directly (what the pattern means, without the automaton).
    pub fn is_match(&self, s: &str) -> bool {
        if let Some(p) = &self.prefixes {
            return p.iter().any(|p| s.starts_with(p.as_str()));
        }
        if let Some(l) = &self.literals
            && l.len() <= 16
        {
            return l.iter().any(|l| l == s);
        }
        self.re.is_match(s)
    }

    /// The pattern as given (without anchors, untranslated).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    pub fn anchor(&self) -> Anchor {
        self.anchor
    }

    /// The Rust pattern this regex was translated into (for debugging and tests).
    pub fn translated(&self) -> &str {
        self.re.as_str()
    }

    /// For a plain literal or an alternation of plain literals (`foo`, `a|b|c`, `(a|b)`), the
    /// literals, so an index can look them up directly. `None` for anything else, including
    /// case-insensitive patterns and patterns that can match the empty string this way.
    pub fn literal_alternatives(&self) -> Option<Vec<String>> {
        self.literals.as_ref().map(|l| l.to_vec())
    }

    /// For a pattern that is literals (or alternations of literals) followed by `.*` that
    /// matches anything (`foo.*`, `bench_(http|queue).*`, `.*`), the literal prefixes: the
    /// regex matches exactly the strings that start with one of them. Lets an index find the
    /// values in a sorted table, and matching skip the automaton. `None` for anything else.
    pub fn literal_prefixes(&self) -> Option<&[String]> {
        self.prefixes.as_deref()
    }

    /// Matches the whole of `s` and returns the capture groups, or `None` if it does not match.
    pub fn captures<'r, 'h>(&'r self, s: &'h str) -> Option<GoCaptures<'r, 'h>> {
        self.re.captures(s).map(|caps| GoCaptures {
            caps,
            names: &self.names,
        })
    }

    /// If the regex matches `input`, `template` expanded with Go's `Regexp.Expand` rules
    /// (`$1`, `${1}`, `$name`, `${name}`, `$$`); `None` when it does not match.
    pub fn replace_all_expand(&self, input: &str, template: &str) -> Option<String> {
        self.captures(input).map(|c| c.expand(template))
    }
}

/// The groups of one match of a [`GoRegex`].
pub struct GoCaptures<'r, 'h> {
    caps: regex::Captures<'h>,
    names: &'r [Option<String>],
}

impl<'h> GoCaptures<'_, 'h> {
    /// Group `i` (0 is the whole match), if it took part in the match.
    pub fn get(&self, i: usize) -> Option<&'h str> {
        self.caps.get(i).map(|m| m.as_str())
    }

    /// `template` expanded with Go's `Regexp.Expand` rules.
    pub fn expand(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 16);
        self.expand_into(template, &mut out);
        out
    }

    /// Like [`GoCaptures::expand`], appending to `out`.
    pub fn expand_into(&self, template: &str, out: &mut String) {
        let mut t = template;
        while let Some(i) = t.find('$') {
            out.push_str(&t[..i]);
            t = &t[i + 1..];
            if let Some(rest) = t.strip_prefix('$') {
                out.push('$');
                t = rest;
                continue;
            }
            let Some((name, num, rest)) = extract_ref(t) else {
                // compat: Go copies a `$` that starts no valid reference as raw text.
                out.push('$');
                continue;
            };
            t = rest;
            match num {
                Some(n) => out.push_str(self.get(n).unwrap_or("")),
                None => {
                    // compat: Go takes the leftmost group of that name that took part in the match.
                    let hit = self
                        .names
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| n.as_deref() == Some(name))
                        .find_map(|(i, _)| self.get(i));
                    out.push_str(hit.unwrap_or(""));
                }
            }
        }
        out.push_str(t);
    }
}

/// Parses the reference after a `$`: a name of letters, digits and underscores, optionally in
/// braces. Returns the name, its group number when it is one, and the rest of the template.
fn extract_ref(s: &str) -> Option<(&str, Option<usize>, &str)> {
    // Go's `unicode.IsLetter` and `unicode.IsDigit`: categories L and Nd.
    static NAME: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"\A[\p{L}\p{Nd}_]+").expect("BUG: constant regex compiles")
    });
    let (brace, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let name = NAME.find(body)?.as_str();
    let mut rest = &body[name.len()..];
    if brace {
        rest = rest.strip_prefix('}')?;
    }
    let mut num = Some(0usize);
    for b in name.bytes() {
        match num {
            // compat: Go gives up on numbers from 1e8 on and treats them as names.
            Some(n) if b.is_ascii_digit() && n < 100_000_000 => {
                num = Some(n * 10 + usize::from(b - b'0'));
            }
            _ => {
                num = None;
                break;
            }
        }
    }
    if name.len() > 1 && name.starts_with('0') {
        num = None;
    }
    Some((name, num, rest))
}

// ---------------------------------------------------------------------------------------------
// The syntax tree.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    StartText,
    EndText,
    StartLine,
    EndLine,
    WordBoundary,
    NotWordBoundary,
}

/// A character class with its flags resolved. `ranges` are code points (Go allows surrogates in
/// escapes; they can never match). `props` are Unicode property classes left to the `regex`
/// crate, already in its syntax (`sc=Greek`, `gc=Lu`).
#[derive(Debug, Clone, Default)]
struct Class {
    ranges: Vec<(u32, u32)>,
    props: Vec<(String, bool)>,
    negated: bool,
    fold: bool,
}

#[derive(Debug, Clone)]
enum Node {
    Empty,
    Literal {
        c: u32,
        fold: bool,
    },
    Class(Class),
    Dot {
        nl: bool,
    },
    Look(Look),
    /// A capturing group; groups are numbered by the order of their `(`, in Go and in the
    /// printed Rust pattern alike, so no index is kept.
    Capture {
        sub: Box<Node>,
        height: u32,
    },
    Repeat {
        sub: Box<Node>,
        min: u32,
        max: Option<u32>,
        greedy: bool,
        /// `{n,m}` rather than `* + ?`; only these count towards Go's repeat limit.
        counted: bool,
        height: u32,
    },
    Concat(Vec<Node>, u32),
    Alternate(Vec<Node>, u32),
}

impl Node {
    fn height(&self) -> u32 {
        match self {
            Node::Capture { height, .. } | Node::Repeat { height, .. } => *height,
            Node::Concat(_, h) | Node::Alternate(_, h) => *h,
            _ => 1,
        }
    }

    fn concat(mut items: Vec<Node>) -> Node {
        match items.len() {
            0 => Node::Empty,
            1 => items.pop().expect("BUG: length checked"),
            _ => {
                let h = 1 + items.iter().map(Node::height).max().unwrap_or(0);
                Node::Concat(items, h)
            }
        }
    }

    fn alternate(mut items: Vec<Node>) -> Node {
        match items.len() {
            1 => items.pop().expect("BUG: length checked"),
            _ => {
                let h = 1 + items.iter().map(Node::height).max().unwrap_or(0);
                Node::Alternate(items, h)
            }
        }
    }
}

/// compat: Go's `repeatIsValid`: nested counted repetitions may not multiply beyond 1000 copies.
fn repeat_is_valid(node: &Node, mut n: u32) -> bool {
    match node {
        Node::Repeat {
            sub,
            min,
            max,
            counted,
            ..
        } => {
            if *counted {
                let m = match max {
                    Some(0) => return true,
                    Some(m) => *m,
                    None => *min,
                };
                if m > n {
                    return false;
                }
                n = n.checked_div(m).unwrap_or(n);
            }
            repeat_is_valid(sub, n)
        }
        Node::Capture { sub, .. } => repeat_is_valid(sub, n),
        Node::Concat(items, _) | Node::Alternate(items, _) => {
            items.iter().all(|i| repeat_is_valid(i, n))
        }
        _ => true,
    }
}

// ---------------------------------------------------------------------------------------------
// The parser. It follows the structure of Go's syntax rules so the same inputs fail with the
// same message and the same blamed text.

#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    fold: bool,
    dot_nl: bool,
    multi_line: bool,
    non_greedy: bool,
}

struct Frame {
    /// Whether this frame is a capturing group (not a non-capturing group or the top level).
    capture: bool,
    /// Flags to restore when the group closes.
    saved: Flags,
    alternates: Vec<Node>,
    concat: Vec<Node>,
}

impl Frame {
    fn new(capture: bool, saved: Flags) -> Self {
        Frame {
            capture,
            saved,
            alternates: Vec::new(),
            concat: Vec::new(),
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    flags: Flags,
    names: Vec<Option<String>>,
    stack: Vec<Frame>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, flags: Flags) -> Self {
        Parser {
            src,
            pos: 0,
            flags,
            names: vec![None],
            stack: vec![Frame::new(false, flags)],
        }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn err(&self, code: ErrorCode, from: usize) -> RegexError {
        RegexError::new(code, &self.src[from..self.pos])
    }

    fn whole(&self, code: ErrorCode) -> RegexError {
        RegexError::new(code, self.src)
    }

    fn top(&mut self) -> &mut Frame {
        self.stack
            .last_mut()
            .expect("BUG: parser stack never empty")
    }

    fn push(&mut self, node: Node) -> Result<(), RegexError> {
        if node.height() > MAX_HEIGHT {
            return Err(self.whole(ErrorCode::NestingDepth));
        }
        self.top().concat.push(node);
        Ok(())
    }

    fn literal(&mut self, c: u32) -> Result<(), RegexError> {
        let fold = self.flags.fold;
        self.push(Node::Literal { c, fold })
    }

    fn parse(mut self) -> Result<(Node, Vec<Option<String>>), RegexError> {
        // Start of the previous token when it was a repetition operator (Go's `lastRepeat`).
        let mut last_repeat: Option<usize> = None;
        while let Some(c) = self.peek() {
            let start = self.pos;
            let mut this_repeat = None;
            match c {
                '(' => {
                    if self.rest().starts_with("(?") {
                        self.parse_perl_flags()?;
                    } else {
                        self.pos += 1;
                        self.open_group(true);
                    }
                }
                '|' => {
                    self.pos += 1;
                    let f = self.top();
                    let branch = Node::concat(std::mem::take(&mut f.concat));
                    f.alternates.push(branch);
                }
                ')' => {
                    self.pos += 1;
                    self.close_group()?;
                }
                '^' => {
                    self.pos += 1;
                    let look = if self.flags.multi_line {
                        Look::StartLine
                    } else {
                        Look::StartText
                    };
                    self.push(Node::Look(look))?;
                }
                '$' => {
                    self.pos += 1;
                    let look = if self.flags.multi_line {
                        Look::EndLine
                    } else {
                        Look::EndText
                    };
                    self.push(Node::Look(look))?;
                }
                '.' => {
                    self.pos += 1;
                    let nl = self.flags.dot_nl;
                    self.push(Node::Dot { nl })?;
                }
                '[' => {
                    let class = self.parse_class()?;
                    self.push(Node::Class(class))?;
                }
                '*' | '+' | '?' => {
                    self.pos += 1;
                    let (min, max) = match c {
                        '*' => (0, None),
                        '+' => (1, None),
                        _ => (0, Some(1)),
                    };
                    self.repeat(min, max, false, start, last_repeat)?;
                    this_repeat = Some(start);
                }
                '{' => match self.parse_repeat_braces() {
                    None => {
                        // compat: a `{` that does not start a valid repeat is a literal.
                        self.pos += 1;
                        self.literal('{' as u32)?;
                    }
                    Some((min, max, end)) => {
                        self.pos = end;
                        let valid = |n: i64| (0..=MAX_REPEAT).contains(&n);
                        if !valid(min) || max.is_some_and(|m| !valid(m) || m < min) {
                            return Err(self.err(ErrorCode::InvalidRepeatSize, start));
                        }
                        let max = max.map(|m| m as u32);
                        self.repeat(min as u32, max, true, start, last_repeat)?;
                        this_repeat = Some(start);
                    }
                },
                '\\' => self.parse_backslash()?,
                c => {
                    self.pos += c.len_utf8();
                    self.literal(c as u32)?;
                }
            }
            last_repeat = this_repeat;
        }
        if self.stack.len() > 1 {
            return Err(self.whole(ErrorCode::MissingParen));
        }
        let frame = self.stack.pop().expect("BUG: parser stack never empty");
        let node = finish_frame(frame);
        Ok((node, self.names))
    }

    fn open_group(&mut self, capture: bool) {
        if capture {
            self.names.push(None);
        }
        let saved = self.flags;
        self.stack.push(Frame::new(capture, saved));
    }

    fn close_group(&mut self) -> Result<(), RegexError> {
        if self.stack.len() < 2 {
            return Err(self.whole(ErrorCode::UnexpectedParen));
        }
        let frame = self.stack.pop().expect("BUG: length checked");
        self.flags = frame.saved;
        let capture = frame.capture;
        let sub = finish_frame(frame);
        let node = if capture {
            let height = sub.height() + 1;
            Node::Capture {
                sub: Box::new(sub),
                height,
            }
        } else {
            sub
        };
        self.push(node)
    }

    /// Applies a repetition operator (already consumed) to the last item.
    fn repeat(
        &mut self,
        min: u32,
        max: Option<u32>,
        counted: bool,
        start: usize,
        last_repeat: Option<usize>,
    ) -> Result<(), RegexError> {
        let mut greedy = !self.flags.non_greedy;
        if self.peek() == Some('?') {
            self.pos += 1;
            greedy = !greedy;
        }
        if let Some(prev) = last_repeat {
            // compat: Go rejects stacked operators (`a**`, `a+?*`) instead of nesting them.
            return Err(self.err(ErrorCode::InvalidRepeatOp, prev));
        }
        let Some(sub) = self.top().concat.pop() else {
            return Err(self.err(ErrorCode::MissingRepeatArgument, start));
        };
        let height = sub.height() + 1;
        let node = Node::Repeat {
            sub: Box::new(sub),
            min,
            max,
            greedy,
            counted,
            height,
        };
        let too_many = counted
            && (min >= 2 || max.is_some_and(|m| m >= 2))
            && !repeat_is_valid(&node, MAX_REPEAT as u32);
        if too_many {
            return Err(self.err(ErrorCode::InvalidRepeatSize, start));
        }
        self.push(node)
    }

    /// `{n}`, `{n,}` or `{n,m}` at the current position: (min, max, end), max `None` for `{n,}`.
    /// A number too big to read comes back as [`TOO_BIG`], which fails the caller's range check.
    fn parse_repeat_braces(&self) -> Option<(i64, Option<i64>, usize)> {
        let s = self.rest().as_bytes();
        let mut i = 1;
        let min = parse_int(s, &mut i)?;
        let max = match s.get(i)? {
            b',' => {
                i += 1;
                if *s.get(i)? == b'}' {
                    None
                } else {
                    Some(parse_int(s, &mut i)?)
                }
            }
            _ => Some(min),
        };
        if *s.get(i)? != b'}' {
            return None;
        }
        Some((min, max, self.pos + i + 1))
    }

    /// `(?` at the current position: flags, a non-capturing group or a named group.
    fn parse_perl_flags(&mut self) -> Result<(), RegexError> {
        let start = self.pos;
        let t = self.rest();
        let b = t.as_bytes();
        if (t.len() > 4 && b[2] == b'P' && b[3] == b'<') || (t.len() > 3 && b[2] == b'<') {
            let begin = if b[2] == b'P' { 4 } else { 3 };
            let Some(end) = t.find('>') else {
                return Err(RegexError::new(ErrorCode::InvalidNamedCapture, t));
            };
            let name = &t[begin..end];
            let valid =
                !name.is_empty() && name.bytes().all(|c| c == b'_' || c.is_ascii_alphanumeric());
            if !valid {
                return Err(RegexError::new(
                    ErrorCode::InvalidNamedCapture,
                    &t[..end + 1],
                ));
            }
            self.pos += end + 1;
            self.open_group(true);
            let last = self.names.len() - 1;
            self.names[last] = Some(name.to_string());
            return Ok(());
        }

        self.pos += 2;
        let mut flags = self.flags;
        let mut negate = false;
        let mut saw_flag = false;
        while let Some(c) = self.bump() {
            match c {
                'i' | 'm' | 's' | 'U' => {
                    let on = !negate;
                    match c {
                        'i' => flags.fold = on,
                        'm' => flags.multi_line = on,
                        's' => flags.dot_nl = on,
                        _ => flags.non_greedy = on,
                    }
                    saw_flag = true;
                }
                '-' => {
                    if negate {
                        break;
                    }
                    negate = true;
                    saw_flag = false;
                }
                ':' | ')' => {
                    if negate && !saw_flag {
                        break;
                    }
                    if c == ':' {
                        self.open_group(false);
                    }
                    self.flags = flags;
                    return Ok(());
                }
                _ => break,
            }
        }
        Err(self.err(ErrorCode::InvalidPerlOp, start))
    }

    /// A backslash outside a class.
    fn parse_backslash(&mut self) -> Result<(), RegexError> {
        let start = self.pos;
        let look = match self.peek_at(1) {
            Some('A') => Some(Look::StartText),
            Some('z') => Some(Look::EndText),
            Some('b') => Some(Look::WordBoundary),
            Some('B') => Some(Look::NotWordBoundary),
            _ => None,
        };
        if let Some(look) = look {
            self.pos += 2;
            return self.push(Node::Look(look));
        }
        match self.peek_at(1) {
            Some('C') => {
                // Go has no "any byte" escape.
                self.pos += 2;
                return Err(self.err(ErrorCode::InvalidEscape, start));
            }
            Some('Q') => {
                // Everything up to `\E` (or the end) is literal.
                self.pos += 2;
                let rest = self.rest();
                let (lit, skip) = match rest.find(r"\E") {
                    Some(i) => (&rest[..i], i + 2),
                    None => (rest, rest.len()),
                };
                self.pos += skip;
                for c in lit.chars() {
                    self.literal(c as u32)?;
                }
                return Ok(());
            }
            Some('p' | 'P') => {
                let mut class = Class {
                    fold: self.flags.fold,
                    ..Class::default()
                };
                self.parse_unicode_class(&mut class)?;
                return self.push(Node::Class(class));
            }
            Some(c @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) => {
                self.pos += 2;
                let mut class = Class {
                    fold: self.flags.fold,
                    ..Class::default()
                };
                let (ranges, negated) = perl_group(c);
                add_group(&mut class, ranges, negated);
                return self.push(Node::Class(class));
            }
            _ => {}
        }
        let c = self.parse_escape()?;
        self.literal(c)
    }

    /// One escape sequence standing for a single character (Go's `parseEscape`).
    fn parse_escape(&mut self) -> Result<u32, RegexError> {
        let start = self.pos;
        self.pos += 1;
        let Some(c) = self.bump() else {
            return Err(RegexError::new(ErrorCode::TrailingBackslash, ""));
        };
        match c {
            '1'..='7' if !self.peek().is_some_and(|d| ('0'..='7').contains(&d)) => {
                // A single non-zero digit would be a backreference, which Go does not support.
            }
            '0'..='7' => {
                let mut r = c as u32 - '0' as u32;
                for _ in 1..3 {
                    match self.peek() {
                        Some(d @ '0'..='7') => {
                            r = r * 8 + (d as u32 - '0' as u32);
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                return Ok(r);
            }
            'x' => {
                if let Some(r) = self.parse_hex_escape() {
                    return Ok(r);
                }
            }
            'a' => return Ok(0x07),
            'f' => return Ok(0x0c),
            'n' => return Ok(0x0a),
            'r' => return Ok(0x0d),
            't' => return Ok(0x09),
            'v' => return Ok(0x0b),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => return Ok(c as u32),
            _ => {}
        }
        Err(self.err(ErrorCode::InvalidEscape, start))
    }

    /// After `\x`: two hex digits or `{hex}`. On failure the position shows what Go consumed.
    fn parse_hex_escape(&mut self) -> Option<u32> {
        let c = self.bump()?;
        if c == '{' {
            let mut r: u32 = 0;
            let mut digits = 0;
            loop {
                let c = self.bump()?;
                if c == '}' {
                    break;
                }
                r = r * 16 + c.to_digit(16)?;
                if r > MAX_RUNE {
                    return None;
                }
                digits += 1;
            }
            return (digits > 0).then_some(r);
        }
        let x = c.to_digit(16);
        let y = self.bump().and_then(|c| c.to_digit(16));
        Some(x? * 16 + y?)
    }

    /// `\pN`, `\p{Name}`, `\PN`, `\P{^Name}` at the current position, added to `class`.
    fn parse_unicode_class(&mut self, class: &mut Class) -> Result<(), RegexError> {
        let start = self.pos;
        let t = self.rest();
        let mut negated = t.as_bytes()[1] == b'P';
        let after = &t[2..];
        let (seq_len, name) = match after.chars().next() {
            Some('{') => match t.find('}') {
                Some(end) => (end + 1, &t[3..end]),
                None => return Err(RegexError::new(ErrorCode::InvalidCharRange, t)),
            },
            Some(c) => (2 + c.len_utf8(), &after[..c.len_utf8()]),
            None => (2, ""),
        };
        self.pos += seq_len;
        let name = match name.strip_prefix('^') {
            Some(n) => {
                negated = !negated;
                n
            }
            None => name,
        };
        if name == "Any" {
            if !negated {
                class.ranges.push((0, MAX_RUNE));
            }
            return Ok(());
        }
        match unicode_property(name) {
            Some(prop) => {
                class.props.push((prop, negated));
                Ok(())
            }
            None => Err(self.err(ErrorCode::InvalidCharRange, start)),
        }
    }

    /// A bracketed class at the current position (Go's `parseClass`).
    fn parse_class(&mut self) -> Result<Class, RegexError> {
        let start = self.pos;
        self.pos += 1;
        let mut class = Class {
            fold: self.flags.fold,
            ..Class::default()
        };
        if self.peek() == Some('^') {
            self.pos += 1;
            class.negated = true;
        }
        let mut first = true;
        loop {
            let rest = self.rest();
            if rest.starts_with(']') && !first {
                self.pos += 1;
                return Ok(class);
            }
            first = false;
            // POSIX `[:alpha:]`.
            if let Some(i) = rest.strip_prefix("[:").and_then(|r| r.find(":]")) {
                let name = &rest[..i + 4];
                let Some((ranges, negated)) = posix_group(name) else {
                    return Err(RegexError::new(ErrorCode::InvalidCharRange, name));
                };
                add_group(&mut class, ranges, negated);
                self.pos += name.len();
                continue;
            }
            if rest.starts_with(r"\p") || rest.starts_with(r"\P") {
                self.parse_unicode_class(&mut class)?;
                continue;
            }
            if let Some(c @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) =
                rest.strip_prefix('\\').and_then(|r| r.chars().next())
            {
                let (ranges, negated) = perl_group(c);
                add_group(&mut class, ranges, negated);
                self.pos += 2;
                continue;
            }
            let range_start = self.pos;
            let lo = self.parse_class_char(start)?;
            let mut hi = lo;
            let rest = self.rest();
            if rest.len() >= 2 && rest.starts_with('-') && !rest[1..].starts_with(']') {
                self.pos += 1;
                hi = self.parse_class_char(start)?;
                if hi < lo {
                    return Err(self.err(ErrorCode::InvalidCharRange, range_start));
                }
            }
            class.ranges.push((lo, hi));
        }
    }

    fn parse_class_char(&mut self, class_start: usize) -> Result<u32, RegexError> {
        match self.peek() {
            None => Err(RegexError::new(
                ErrorCode::MissingBracket,
                &self.src[class_start..],
            )),
            Some('\\') => self.parse_escape(),
            Some(c) => {
                self.pos += c.len_utf8();
                Ok(c as u32)
            }
        }
    }
}

/// Marks a repeat count too big to read (Go gives up at 1e8).
const TOO_BIG: i64 = -1;

/// Go's `parseInt` for repeat counts: no leading zeros; values from 1e8 on become [`TOO_BIG`].
fn parse_int(s: &[u8], i: &mut usize) -> Option<i64> {
    let start = *i;
    if !s.get(start)?.is_ascii_digit() {
        return None;
    }
    if s.len() > start + 1 && s[start] == b'0' && s[start + 1].is_ascii_digit() {
        return None;
    }
    while s.get(*i).is_some_and(u8::is_ascii_digit) {
        *i += 1;
    }
    let mut n: i64 = 0;
    for &d in &s[start..*i] {
        if n >= 100_000_000 {
            return Some(TOO_BIG);
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Some(n)
}

fn finish_frame(mut frame: Frame) -> Node {
    let last = Node::concat(std::mem::take(&mut frame.concat));
    frame.alternates.push(last);
    Node::alternate(frame.alternates)
}

/// Resolves a `\p{…}` name to `regex` syntax: a general category, else a script. Go looks up
/// categories and scripts by exact name; `regex` is looser about case and separators.
fn unicode_property(name: &str) -> Option<String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    // compat: Go resolves script names to the Script property, while a bare `\p{Greek}` in the
    // `regex` crate means Script_Extensions; so name the property explicitly.
    ["gc", "sc"]
        .into_iter()
        .map(|p| format!("{p}={name}"))
        .find(|prop| {
            regex_syntax::Parser::new()
                .parse(&format!(r"\p{{{prop}}}"))
                .is_ok()
        })
}

const DIGIT: &[(u32, u32)] = &[(0x30, 0x39)];
const SPACE: &[(u32, u32)] = &[(0x09, 0x0a), (0x0c, 0x0d), (0x20, 0x20)];
const WORD: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5a), (0x5f, 0x5f), (0x61, 0x7a)];

/// Go's Perl classes: ASCII only (`\s` has no `\v`).
fn perl_group(c: char) -> (&'static [(u32, u32)], bool) {
    let ranges = match c.to_ascii_lowercase() {
        'd' => DIGIT,
        's' => SPACE,
        _ => WORD,
    };
    (ranges, c.is_ascii_uppercase())
}

/// Go's POSIX classes, `[:name:]` or `[:^name:]`.
fn posix_group(name: &str) -> Option<(&'static [(u32, u32)], bool)> {
    let inner = name.strip_prefix("[:")?.strip_suffix(":]")?;
    let (inner, negated) = match inner.strip_prefix('^') {
        Some(n) => (n, true),
        None => (inner, false),
    };
    let ranges: &'static [(u32, u32)] = match inner {
        "alnum" => &[(0x30, 0x39), (0x41, 0x5a), (0x61, 0x7a)],
        "alpha" => &[(0x41, 0x5a), (0x61, 0x7a)],
        "ascii" => &[(0x00, 0x7f)],
        "blank" => &[(0x09, 0x09), (0x20, 0x20)],
        "cntrl" => &[(0x00, 0x1f), (0x7f, 0x7f)],
        "digit" => DIGIT,
        "graph" => &[(0x21, 0x7e)],
        "lower" => &[(0x61, 0x7a)],
        "print" => &[(0x20, 0x7e)],
        "punct" => &[(0x21, 0x2f), (0x3a, 0x40), (0x5b, 0x60), (0x7b, 0x7e)],
        "space" => &[(0x09, 0x0d), (0x20, 0x20)],
        "upper" => &[(0x41, 0x5a)],
        "word" => WORD,
        "xdigit" => &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
        _ => return None,
    };
    Some((ranges, negated))
}

/// Adds an ASCII group to a class. Go case-folds a group before negating it, so under `(?i)`
/// `\W` excludes the Kelvin sign and the long s (which fold to `k` and `s`); mirror that here,
/// because the `regex` crate would only fold after our negation.
fn add_group(class: &mut Class, ranges: &[(u32, u32)], negated: bool) {
    if !negated {
        class.ranges.extend_from_slice(ranges);
        return;
    }
    let mut set = ranges.to_vec();
    if class.fold {
        for &(c, extra) in &[('k', 0x212a), ('s', 0x17f)] {
            let lower = c as u32;
            let upper = c.to_ascii_uppercase() as u32;
            if ranges
                .iter()
                .any(|&(lo, hi)| (lo..=hi).contains(&lower) || (lo..=hi).contains(&upper))
            {
                set.push((extra, extra));
            }
        }
    }
    class.ranges.extend(negate_ranges(set));
}

fn normalize(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn negate_ranges(ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut next = 0u32;
    for (lo, hi) in normalize(ranges) {
        if lo > next {
            out.push((next, lo - 1));
        }
        next = hi.saturating_add(1);
    }
    if next <= MAX_RUNE {
        out.push((next, MAX_RUNE));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Printing the tree as a Rust pattern. Every construct is spelled out so that no Rust flag or
// default applies: Unicode-aware `.` and literals, ASCII classes as explicit ranges.

const NEVER: &str = r"[^\x{0}-\x{10FFFF}]";

fn push_char(out: &mut String, c: u32) {
    match char::from_u32(c) {
        Some(ch) if ch.is_ascii_alphanumeric() => out.push(ch),
        _ => {
            use std::fmt::Write;
            let _ = write!(out, r"\x{{{c:X}}}");
        }
    }
}

/// Writes `ranges` as class items, skipping surrogates (they cannot occur in a `str`).
/// Returns whether anything was written.
fn push_ranges(out: &mut String, ranges: &[(u32, u32)]) -> bool {
    let mut any = false;
    for &(lo, hi) in ranges {
        for (lo, hi) in [(lo, hi.min(0xd7ff)), (lo.max(0xe000), hi)] {
            if lo > hi {
                continue;
            }
            any = true;
            push_char(out, lo);
            if hi > lo {
                out.push('-');
                push_char(out, hi);
            }
        }
    }
    any
}

fn emit_class(class: &Class, out: &mut String) {
    let mut items = String::new();
    let mut any = push_ranges(&mut items, &normalize(class.ranges.clone()));
    for (prop, negated) in &class.props {
        items.push_str(if *negated { r"\P{" } else { r"\p{" });
        items.push_str(prop);
        items.push('}');
        any = true;
    }
    if !any {
        // Go allows classes that match nothing (or, negated, everything); Rust has no `[]`.
        out.push_str(if class.negated {
            r"[\x{0}-\x{10FFFF}]"
        } else {
            NEVER
        });
        return;
    }
    if class.fold {
        out.push_str("(?i:");
    }
    out.push('[');
    if class.negated {
        out.push('^');
    }
    out.push_str(&items);
    out.push(']');
    if class.fold {
        out.push(')');
    }
}

/// The character of a case-insensitive literal that can occur in a `str`.
fn folded_char(node: &Node) -> Option<u32> {
    match node {
        Node::Literal { c, fold: true } if char::from_u32(*c).is_some() => Some(*c),
        _ => None,
    }
}

fn emit(node: &Node, out: &mut String) {
    match node {
        Node::Empty => {}
        Node::Literal { c, fold } => {
            if char::from_u32(*c).is_none() {
                out.push_str(NEVER);
            } else if *fold {
                out.push_str("(?i:");
                push_char(out, *c);
                out.push(')');
            } else {
                push_char(out, *c);
            }
        }
        Node::Class(class) => emit_class(class, out),
        Node::Dot { nl: true } => out.push_str("(?s:.)"),
        Node::Dot { nl: false } => out.push_str("(?-s:.)"),
        Node::Look(look) => out.push_str(match look {
            Look::StartText => r"\A",
            Look::EndText => r"\z",
            Look::StartLine => "(?m:^)",
            Look::EndLine => "(?m:$)",
            Look::WordBoundary => r"(?-u:\b)",
            Look::NotWordBoundary => r"(?-u:\B)",
        }),
        Node::Capture { sub, .. } => {
            out.push('(');
            emit(sub, out);
            out.push(')');
        }
        Node::Repeat {
            sub,
            min,
            max,
            greedy,
            ..
        } => {
            out.push_str("(?:");
            emit(sub, out);
            out.push(')');
            match (min, max) {
                (0, None) => out.push('*'),
                (1, None) => out.push('+'),
                (0, Some(1)) => out.push('?'),
                (n, None) => out.push_str(&format!("{{{n},}}")),
                (n, Some(m)) if n == m => out.push_str(&format!("{{{n}}}")),
                (n, Some(m)) => out.push_str(&format!("{{{n},{m}}}")),
            }
            if !greedy {
                out.push('?');
            }
        }
        Node::Concat(items, _) => {
            // Runs of case-insensitive literals share one group: `(?i:foo)`, not three.
            let mut i = 0;
            while i < items.len() {
                if folded_char(&items[i]).is_none() {
                    emit(&items[i], out);
                    i += 1;
                    continue;
                }
                out.push_str("(?i:");
                while let Some(c) = items.get(i).and_then(folded_char) {
                    push_char(out, c);
                    i += 1;
                }
                out.push(')');
            }
        }
        Node::Alternate(items, _) => {
            out.push_str("(?:");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                emit(item, out);
            }
            out.push(')');
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Literal alternatives for index lookups.

fn literal_string(node: &Node, out: &mut String) -> bool {
    match node {
        Node::Literal { c, fold: false } => match char::from_u32(*c) {
            Some(ch) => {
                out.push(ch);
                true
            }
            None => false,
        },
        Node::Concat(items, _) => items.iter().all(|i| literal_string(i, out)),
        _ => false,
    }
}

fn collect_alternatives(node: &Node, out: &mut Vec<String>) -> bool {
    match node {
        Node::Alternate(items, _) => items.iter().all(|i| collect_alternatives(i, out)),
        Node::Capture { sub, .. } => collect_alternatives(sub, out),
        _ => {
            let mut s = String::new();
            if !literal_string(node, &mut s) || s.is_empty() {
                return false;
            }
            if !out.contains(&s) {
                out.push(s);
            }
            true
        }
    }
}

fn literal_alternatives(node: &Node) -> Option<Vec<String>> {
    let mut out = Vec::new();
    collect_alternatives(node, &mut out).then_some(out)
}

/// The most prefixes [`literal_prefixes`] expands a pattern into.
const MAX_PREFIXES: usize = 256;

/// For `A B … .*` where each of `A B …` is a literal or an alternation of non-empty literals
/// and `.*` matches any text (newlines too), every concatenation of one alternative of each:
/// the pattern matches exactly the strings starting with one of them.
fn literal_prefixes(node: &Node) -> Option<Vec<String>> {
    let items: &[Node] = match node {
        Node::Capture { sub, .. } => return literal_prefixes(sub),
        Node::Concat(items, _) => items,
        other => std::slice::from_ref(other),
    };
    let (last, head) = items.split_last()?;
    let Node::Repeat {
        sub,
        min: 0,
        max: None,
        ..
    } = last
    else {
        return None;
    };
    if !matches!(**sub, Node::Dot { nl: true }) {
        return None;
    }
    let mut out = vec![String::new()];
    for item in head {
        let alts = match item {
            Node::Literal { .. } | Node::Concat(..) => {
                let mut s = String::new();
                literal_string(item, &mut s).then_some(vec![s])?
            }
            Node::Capture { .. } | Node::Alternate(..) => literal_alternatives(item)?,
            _ => return None,
        };
        if out.len() * alts.len() > MAX_PREFIXES {
            return None;
        }
        out = out
            .iter()
            .flat_map(|p| alts.iter().map(move |a| format!("{p}{a}")))
            .collect();
    }
    out.sort();
    out.dedup();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn matches(pattern: &str, input: &str, want: bool) {
        let re = GoRegex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(
            re.is_match(input),
            want,
            "{pattern} on {input:?} (as {})",
            re.translated()
        );
    }

    #[test]
    fn go_semantics_differ_from_rust() {
        matches(r"\d", "5", true);
        matches(r"\d", "٣", false); // Arabic-Indic three: a digit in Unicode, not in Go
        matches(r"\D", "٣", true);
        matches(r"\w+", "abc_09", true);
        matches(r"\w", "é", false);
        matches(r"\W", "é", true);
        matches(r"\s", "\u{a0}", false); // no-break space
        matches(r"\s", "\u{b}", false); // Go's \s has no \v
        matches(r"\s", "\t", true);
        matches(r"[\d\s]+", "1 2", true);
        matches(r"[^\d]", "٣", true);
        matches(r"é\b", "é", false); // é is not a word character for \b
        matches(r"a\b", "a", true);
        matches(r"a\Bb", "ab", true);
        matches(r".", "é", true);
        matches(r"[[:alpha:]]+", "abcXYZ", true);
        matches(r"[[:^alpha:]]", "é", true);
        matches(r"[[:word:]]", "é", false);
        matches(r"\pL+", "éß", true);
        matches(r"\p{Greek}+", "αβγ", true);
        matches(r"\P{Greek}", "α", false);
        matches(r"[\p{^Greek}]", "a", true);
        matches(r"\p{Any}", "\n", true);
    }

    #[test]
    fn anchoring_and_flags() {
        matches("foo", "foo", true);
        matches("foo", "xfoo", false);
        matches("foo", "foox", false);
        matches("a|b", "b", true);
        matches("a|b", "ab", false);
        matches(".*", "a\nb", true); // dotall, like Prometheus 3
        matches("(?-s:.*)", "a\nb", false);
        matches("(?i)foo", "FoO", true);
        matches("(?i:f)oo", "FOO", false);
        matches("(?i)k", "\u{212a}", true); // Kelvin sign folds to k in Go too
        matches(r"(?i)\W", "\u{212a}", false);
        matches(r"(?i)[\W]", "\u{212a}", false);
        matches("(?m)^b$", "b", true);
        matches("a$", "a", true);
        matches(r"a\z", "a", true);
        matches(r"\Aa", "a", true);
        matches("(?U)a+", "aaa", true);
        matches("(?i)(?-i)a", "A", false);
        matches("x(?i)y", "xY", true);
        matches("(?i)foo(?-i)bar", "FOObar", true);
        matches("(?i)foo(?-i)bar", "FOOBAR", false);
        assert_eq!(
            GoRegex::new("(?i)ab(?-i)c").unwrap().translated(),
            r"\A(?:(?i:ab)c)\z"
        );
        let am = GoRegex::new_with_anchor(".*", Anchor::Alertmanager).unwrap();
        assert!(!am.is_match("a\nb"));
        assert!(am.is_match("ab"));
    }

    #[test]
    fn go_only_syntax() {
        matches("[[]", "[", true);
        matches("[]a]+", "]a", true);
        matches("[^]a]", "b", true);
        matches("[a-]+", "a-", true);
        matches(r"\Q.*\E", ".*", true);
        matches(r"\Q.*\E", "ab", false);
        matches(r"\Qa.b", "a.b", true);
        matches(r"a{,2}", "a{,2}", true); // not a repeat: literal
        matches(r"a{01}", "a{01}", true);
        matches(r"x{", "x{", true);
        matches(r"a{2}", "aa", true);
        matches(r"a{1000}", &"a".repeat(1000), true);
        matches(r"(?P<n>a)(?P<n>b)", "ab", true); // duplicate names are fine in Go
        matches(r"(?<n>a)", "a", true);
        matches(r"\_\-\ \<", "_- <", true);
        matches(r"\x41\x{1F600}\101\0", "A\u{1F600}A\0", true);
        matches(r"^*a", "a", true);
        matches(r"a*(?i)*", "aa", true);
        matches(r"(?)a", "a", true);
        matches(r"[^\x00-\x{10FFFF}]", "a", false);
        matches(r"", "", true);
        matches(r"()", "", true);
        matches(r"a|", "", true);
    }

    #[track_caller]
    fn fails(pattern: &str, want: &str) {
        match GoRegex::new(pattern) {
            Ok(r) => panic!("{pattern} compiled to {}", r.translated()),
            Err(e) => assert_eq!(e.to_string(), want, "{pattern}"),
        }
    }

    #[test]
    fn go_errors() {
        fails("(foo", "error parsing regexp: missing closing ): `(foo`");
        fails("foo)", "error parsing regexp: unexpected ): `foo)`");
        fails("a[bc", "error parsing regexp: missing closing ]: `[bc`");
        fails("[]", "error parsing regexp: missing closing ]: `[]`");
        fails(
            r"\Z",
            r"error parsing regexp: invalid escape sequence: `\Z`",
        );
        fails(
            r"\1",
            r"error parsing regexp: invalid escape sequence: `\1`",
        );
        fails(
            r"\8",
            r"error parsing regexp: invalid escape sequence: `\8`",
        );
        fails(
            r"\C",
            r"error parsing regexp: invalid escape sequence: `\C`",
        );
        fails(
            r"[\b]",
            r"error parsing regexp: invalid escape sequence: `\b`",
        );
        fails(
            r"\xZ1",
            r"error parsing regexp: invalid escape sequence: `\xZ1`",
        );
        fails(
            r"\x{zz}",
            r"error parsing regexp: invalid escape sequence: `\x{z`",
        );
        fails(
            r"\x{110000}",
            r"error parsing regexp: invalid escape sequence: `\x{110000`",
        );
        fails(
            "a\\",
            "error parsing regexp: trailing backslash at end of expression: ``",
        );
        fails(
            "a**",
            "error parsing regexp: invalid nested repetition operator: `**`",
        );
        fails(
            "a+?*",
            "error parsing regexp: invalid nested repetition operator: `+?*`",
        );
        fails(
            "a{2}{3}",
            "error parsing regexp: invalid nested repetition operator: `{2}{3}`",
        );
        fails(
            "a{1001}",
            "error parsing regexp: invalid repeat count: `{1001}`",
        );
        fails(
            "a{2,1}",
            "error parsing regexp: invalid repeat count: `{2,1}`",
        );
        fails(
            "a{1,1001}",
            "error parsing regexp: invalid repeat count: `{1,1001}`",
        );
        fails(
            "a{99999999999}",
            "error parsing regexp: invalid repeat count: `{99999999999}`",
        );
        fails(
            "(a{2}){1000}",
            "error parsing regexp: invalid repeat count: `{1000}`",
        );
        fails(
            "((a{10}){10}){11}",
            "error parsing regexp: invalid repeat count: `{11}`",
        );
        fails(
            "*a",
            "error parsing regexp: missing argument to repetition operator: `*`",
        );
        fails(
            "a|*",
            "error parsing regexp: missing argument to repetition operator: `*`",
        );
        fails(
            "(?i)*",
            "error parsing regexp: missing argument to repetition operator: `*`",
        );
        fails(
            "{2}",
            "error parsing regexp: missing argument to repetition operator: `{2}`",
        );
        fails(
            "[z-a]",
            "error parsing regexp: invalid character class range: `z-a`",
        );
        fails(
            "[[:foo:]]",
            "error parsing regexp: invalid character class range: `[:foo:]`",
        );
        fails(
            r"\p{Foo}",
            r"error parsing regexp: invalid character class range: `\p{Foo}`",
        );
        fails(
            r"\p{Greek",
            r"error parsing regexp: invalid character class range: `\p{Greek`",
        );
        fails(
            "(?=a)",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?=`",
        );
        fails(
            "(?!a)",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?!`",
        );
        fails(
            "(?<=a)b",
            "error parsing regexp: invalid named capture: `(?<=a)b`",
        );
        fails(
            "(?i",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?i`",
        );
        fails(
            "(?-)",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?-)`",
        );
        fails(
            "(?P<>a)",
            "error parsing regexp: invalid named capture: `(?P<>`",
        );
        fails(
            "(?P<a-b>x)",
            "error parsing regexp: invalid named capture: `(?P<a-b>`",
        );
        fails(
            "(?P=a)",
            "error parsing regexp: invalid or unsupported Perl syntax: `(?P`",
        );
        let deep = format!("{}a{}", "(".repeat(1001), ")".repeat(1001));
        assert_eq!(
            GoRegex::new(&deep).unwrap_err().code(),
            ErrorCode::NestingDepth
        );
        let chained = format!("a{}", "*(?i)".repeat(1001));
        assert_eq!(
            GoRegex::new(&chained).unwrap_err().code(),
            ErrorCode::NestingDepth
        );
    }

    #[test]
    fn literal_alternatives_cases() {
        let lits = |p: &str| GoRegex::new(p).unwrap().literal_alternatives();
        assert_eq!(lits("foo"), Some(vec!["foo".to_string()]));
        assert_eq!(
            lits("a|b|c"),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(lits("(a|b)"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(lits("(?:a|bb)|a"), Some(vec!["a".into(), "bb".into()]));
        assert_eq!(lits(r"a\.b"), Some(vec!["a.b".into()]));
        assert_eq!(lits("a.b"), None);
        assert_eq!(lits("(?i)foo"), None);
        assert_eq!(lits("a|"), None);
        assert_eq!(lits(""), None);
        assert_eq!(lits("a+"), None);
        assert_eq!(lits("foo(bar|baz)"), None);
    }

    #[test]
    fn literal_prefixes_cases() {
        let pre = |p: &str| {
            GoRegex::new(p)
                .unwrap()
                .literal_prefixes()
                .map(|v| v.to_vec())
        };
        let v = |xs: &[&str]| Some(xs.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(pre("foo.*"), v(&["foo"]));
        assert_eq!(pre("/api/.*"), v(&["/api/"]));
        assert_eq!(
            pre("bench_(http|queue).*"),
            v(&["bench_http", "bench_queue"])
        );
        assert_eq!(pre("(a|b)(c|d).*"), v(&["ac", "ad", "bc", "bd"]));
        assert_eq!(pre("(foo.*)"), v(&["foo"]));
        assert_eq!(pre(".*"), v(&[""]));
        assert_eq!(
            pre("foo.*?"),
            v(&["foo"]),
            "laziness does not change a full match"
        );
        // Not a plain prefix: other tails, case folding, classes, newline-less dots.
        for p in [
            "foo",
            "foo.+",
            "foo.*bar",
            "(?i)foo.*",
            "fo[ox].*",
            "foo(?-s:.*)",
            "foo.*|bar",
            "(a|)b.*",
            "foo.{0,3}",
        ] {
            assert_eq!(pre(p), None, "{p}");
        }
        // Too many combinations are not expanded.
        let wide = "(a|b|c|d)".repeat(5) + ".*";
        assert_eq!(pre(&wide), None);
    }

    #[test]
    fn literal_prefixes_agree_with_the_regex() {
        let inputs = [
            "",
            "f",
            "fo",
            "foo",
            "foox",
            "foo\nbar",
            "xfoo",
            "bench_http",
            "bench_http_x",
            "bench_queu",
            "bench_queue_depth",
            "Foo",
            "ac",
            "adz",
            "b",
            "bd\n",
            "héllo",
            "/api/",
            "/api",
            "/api/v1\n",
        ];
        for p in [
            "foo.*",
            "bench_(http|queue).*",
            "(a|b)(c|d).*",
            ".*",
            "/api/.*",
            "h(é|e)llo.*",
        ] {
            let re = GoRegex::new(p).unwrap();
            let pre = re.literal_prefixes().expect(p);
            for i in inputs {
                assert_eq!(
                    pre.iter().any(|x| i.starts_with(x.as_str())),
                    re.is_match(i),
                    "{p} on {i:?}"
                );
            }
        }
    }

    #[track_caller]
    fn expands(pattern: &str, input: &str, template: &str, want: Option<&str>) {
        let re = GoRegex::new(pattern).unwrap();
        assert_eq!(
            re.replace_all_expand(input, template).as_deref(),
            want,
            "{pattern} {template}"
        );
    }

    #[test]
    fn expand_like_go() {
        expands("(a)(b)", "ab", "$2$1", Some("ba"));
        expands("(a)(b)", "ab", "${1}x", Some("ax"));
        expands("(a)(b)", "ab", "$1x", Some("")); // group "1x" does not exist
        expands("(a)(b)", "ab", "$$1", Some("$1"));
        expands("(a)(b)", "ab", "$0", Some("ab"));
        expands("(a)(b)", "ab", "$3-", Some("-"));
        expands("(a)(b)", "ab", "$01", Some("")); // leading zero: a name, not a number
        expands("(a)(b)", "ab", "${1", Some("${1"));
        expands("(a)(b)", "ab", "x$", Some("x$"));
        expands("(a)(b)", "ab", "$-", Some("$-"));
        expands("(a)(b)", "ab", "${}", Some("${}"));
        expands("(?P<first>a)(b)", "ab", "$first.${first}", Some("a.a"));
        expands("(?P<n>x)?(?P<n>b)", "b", "$n", Some("b"));
        expands("(?P<n>a)(?P<n>b)", "ab", "$n", Some("a"));
        expands("(a)", "b", "$1", None);
        expands("(.*)", "", "[$1]", Some("[]"));
    }
}
