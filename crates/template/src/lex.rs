//! The lexer: template text into items, with Go's delimiters, trim markers and comments.

const LEFT: &str = "{{";
const RIGHT: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Error(String),
    Bool(bool),
    /// A printable ASCII character not otherwise meaningful, like `,`.
    Char(char),
    CharConstant,
    Assign,
    Declare,
    Eof,
    Field,
    Identifier,
    LeftDelim,
    LeftParen,
    Number,
    Pipe,
    RawString,
    RightDelim,
    RightParen,
    Space,
    String,
    Text,
    Variable,
    Comment,
    // Keywords.
    Block,
    Break,
    Continue,
    Dot,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub tok: Tok,
    pub pos: usize,
    pub val: String,
    pub line: usize,
}

impl Item {
    /// Go's `item.String()`, used in "unexpected X" messages.
    pub fn describe(&self) -> String {
        match &self.tok {
            Tok::Eof => "EOF".to_string(),
            Tok::Error(msg) => msg.clone(),
            t if is_keyword(t) => format!("<{}>", self.val),
            _ if self.val.chars().count() > 10 => {
                let head: String = self.val.chars().take(10).collect();
                format!("{}...", crate::gofmt::quote(&head))
            }
            _ => crate::gofmt::quote(&self.val),
        }
    }
}

fn is_keyword(t: &Tok) -> bool {
    matches!(
        t,
        Tok::Block
            | Tok::Break
            | Tok::Continue
            | Tok::Dot
            | Tok::Define
            | Tok::Else
            | Tok::End
            | Tok::If
            | Tok::Nil
            | Tok::Range
            | Tok::Template
            | Tok::With
    )
}

fn keyword(word: &str) -> Option<Tok> {
    Some(match word {
        "block" => Tok::Block,
        "break" => Tok::Break,
        "continue" => Tok::Continue,
        "define" => Tok::Define,
        "else" => Tok::Else,
        "end" => Tok::End,
        "if" => Tok::If,
        "nil" => Tok::Nil,
        "range" => Tok::Range,
        "template" => Tok::Template,
        "with" => Tok::With,
        "true" => Tok::Bool(true),
        "false" => Tok::Bool(false),
        _ => return None,
    })
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// `-` followed by a space right after `{{`.
fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1])
}

/// A space followed by `-` right before `}}`.
fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0]) && b[1] == b'-'
}

/// Lexes the whole input into items; the last item is `Eof` or `Error`.
pub(crate) fn lex(input: &str) -> Vec<Item> {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        line: 1,
        start_line: 1,
        items: Vec::new(),
        paren_depth: 0,
    };
    l.run();
    l.items
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    line: usize,
    start_line: usize,
    items: Vec<Item>,
    paren_depth: usize,
}

enum State {
    Text,
    InsideAction,
    Done,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn backup(&mut self, c: char) {
        self.pos -= c.len_utf8();
        if c == '\n' {
            self.line -= 1;
        }
    }

    fn emit(&mut self, tok: Tok) {
        let val = self.input[self.start..self.pos].to_string();
        self.items.push(Item {
            tok,
            pos: self.start,
            val,
            line: self.start_line,
        });
        self.ignore();
    }

    /// Skips the text so far, counting its lines.
    fn ignore(&mut self) {
        self.line = self.start_line + self.input[self.start..self.pos].matches('\n').count();
        self.start = self.pos;
        self.start_line = self.line;
    }

    fn error(&mut self, msg: String) -> State {
        self.items.push(Item {
            tok: Tok::Error(msg.clone()),
            pos: self.start,
            val: msg,
            line: self.start_line,
        });
        State::Done
    }

    fn run(&mut self) {
        let mut state = State::Text;
        loop {
            state = match state {
                State::Text => self.lex_text(),
                State::InsideAction => self.lex_inside_action(),
                State::Done => return,
            };
        }
    }

    fn lex_text(&mut self) -> State {
        if let Some(x) = self.rest().find(LEFT) {
            if x > 0 {
                self.pos += x;
                let mut trimmed = self.pos;
                if has_left_trim(&self.input[self.pos + LEFT.len()..]) {
                    let text = &self.input[self.start..self.pos];
                    trimmed = self.start + text.trim_end_matches([' ', '\t', '\r', '\n']).len();
                }
                let end = self.pos;
                self.pos = trimmed;
                if self.pos > self.start {
                    self.emit(Tok::Text);
                }
                self.pos = end;
                self.ignore();
            }
            return self.lex_left_delim();
        }
        self.pos = self.input.len();
        if self.pos > self.start {
            self.emit(Tok::Text);
        }
        self.items.push(Item {
            tok: Tok::Eof,
            pos: self.pos,
            val: String::new(),
            line: self.start_line,
        });
        State::Done
    }

    fn lex_left_delim(&mut self) -> State {
        self.pos += LEFT.len();
        let trim = has_left_trim(self.rest());
        let after = if trim { 2 } else { 0 };
        if self.input[self.pos + after..].starts_with(LEFT_COMMENT) {
            self.pos += after;
            self.ignore();
            return self.lex_comment();
        }
        self.emit(Tok::LeftDelim);
        self.pos += after;
        self.ignore();
        self.paren_depth = 0;
        State::InsideAction
    }

    fn lex_comment(&mut self) -> State {
        self.pos += LEFT_COMMENT.len();
        let Some(x) = self.rest().find(RIGHT_COMMENT) else {
            return self.error("unclosed comment".to_string());
        };
        self.pos += x + RIGHT_COMMENT.len();
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter".to_string());
        }
        self.emit(Tok::Comment);
        if trim {
            self.pos += 2;
        }
        self.pos += RIGHT.len();
        if trim {
            self.skip_leading_space();
        }
        self.ignore();
        State::Text
    }

    fn skip_leading_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t', '\r', '\n']).len();
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest();
        if has_right_trim(rest) && rest[2..].starts_with(RIGHT) {
            return (true, true);
        }
        (rest.starts_with(RIGHT), false)
    }

    fn lex_right_delim(&mut self, trim: bool) -> State {
        if trim {
            self.pos += 2;
            self.ignore();
        }
        self.pos += RIGHT.len();
        self.emit(Tok::RightDelim);
        if trim {
            self.skip_leading_space();
            self.ignore();
        }
        State::Text
    }

    fn lex_inside_action(&mut self) -> State {
        let (delim, trim) = self.at_right_delim();
        if delim {
            if self.paren_depth == 0 {
                return self.lex_right_delim(trim);
            }
            return self.error("unclosed left paren".to_string());
        }
        let Some(c) = self.next() else {
            return self.error("unclosed action".to_string());
        };
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                self.backup(c);
                return self.lex_space();
            }
            '=' => self.emit(Tok::Assign),
            ':' => {
                if self.next() != Some('=') {
                    return self.error("expected :=".to_string());
                }
                self.emit(Tok::Declare);
            }
            '|' => self.emit(Tok::Pipe),
            '"' => return self.lex_quote(),
            '`' => return self.lex_raw_quote(),
            '$' => return self.lex_field_or_variable(Tok::Variable),
            '\'' => return self.lex_char(),
            '.' => {
                if self.peek().is_none_or(|n| !n.is_ascii_digit()) {
                    return self.lex_field_or_variable(Tok::Field);
                }
                self.backup(c);
                return self.lex_number();
            }
            '+' | '-' | '0'..='9' => {
                self.backup(c);
                return self.lex_number();
            }
            c if is_alnum(c) => {
                self.backup(c);
                return self.lex_identifier();
            }
            '(' => {
                self.emit(Tok::LeftParen);
                self.paren_depth += 1;
            }
            ')' => {
                if self.paren_depth == 0 {
                    return self.error("unexpected right paren".to_string());
                }
                self.paren_depth -= 1;
                self.emit(Tok::RightParen);
            }
            c if c.is_ascii() && !c.is_ascii_control() => self.emit(Tok::Char(c)),
            c => {
                return self.error(format!(
                    "unrecognized character in action: {}",
                    unicode_desc(c)
                ));
            }
        }
        State::InsideAction
    }

    fn lex_space(&mut self) -> State {
        let mut n = 0;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii() && is_space(c as u8))
        {
            self.next();
            n += 1;
        }
        // A space that belongs to a ` -}}` trim marker is not a space item.
        let before = &self.input[self.pos - 1..];
        if has_right_trim(before) && before[2..].starts_with(RIGHT) {
            self.backup(self.input[self.pos - 1..].chars().next().unwrap_or(' '));
            if n == 1 {
                return State::InsideAction;
            }
        }
        self.emit(Tok::Space);
        State::InsideAction
    }

    fn lex_identifier(&mut self) -> State {
        while let Some(c) = self.next() {
            if !is_alnum(c) {
                self.backup(c);
                break;
            }
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or(' ');
            return self.error(format!("bad character {}", unicode_desc(c)));
        }
        let word = &self.input[self.start..self.pos];
        match keyword(word) {
            Some(tok) => self.emit(tok),
            None => self.emit(Tok::Identifier),
        }
        State::InsideAction
    }

    fn lex_field_or_variable(&mut self, tok: Tok) -> State {
        if self.at_terminator() {
            self.emit(if tok == Tok::Variable {
                Tok::Variable
            } else {
                Tok::Dot
            });
            return State::InsideAction;
        }
        while let Some(c) = self.next() {
            if !is_alnum(c) {
                self.backup(c);
                break;
            }
        }
        if !self.at_terminator() {
            let c = self.peek().unwrap_or(' ');
            return self.error(format!("bad character {}", unicode_desc(c)));
        }
        self.emit(tok);
        State::InsideAction
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if c.is_ascii() && is_space(c as u8) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(') => true,
            _ => self.rest().starts_with(RIGHT),
        }
    }

    fn lex_char(&mut self) -> State {
        loop {
            match self.next() {
                Some('\\') => {
                    if let Some(c) = self.next()
                        && c != '\n'
                    {
                        continue;
                    }
                    return self.error("unterminated character constant".to_string());
                }
                None | Some('\n') => {
                    return self.error("unterminated character constant".to_string());
                }
                Some('\'') => break,
                Some(_) => {}
            }
        }
        self.emit(Tok::CharConstant);
        State::InsideAction
    }

    fn lex_number(&mut self) -> State {
        if !self.scan_number() {
            let end = (self.pos).min(self.input.len());
            let text = &self.input[self.start..end];
            return self.error(format!("bad number syntax: {}", crate::gofmt::quote(text)));
        }
        self.emit(Tok::Number);
        State::InsideAction
    }

    fn accept(&mut self, valid: &str) -> bool {
        if let Some(c) = self.peek()
            && valid.contains(c)
        {
            self.next();
            return true;
        }
        false
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        self.accept("i");
        if self.peek().is_some_and(is_alnum) {
            self.next();
            return false;
        }
        true
    }

    fn lex_quote(&mut self) -> State {
        loop {
            match self.next() {
                Some('\\') => {
                    if let Some(c) = self.next()
                        && c != '\n'
                    {
                        continue;
                    }
                    return self.error("unterminated quoted string".to_string());
                }
                None | Some('\n') => return self.error("unterminated quoted string".to_string()),
                Some('"') => break,
                Some(_) => {}
            }
        }
        self.emit(Tok::String);
        State::InsideAction
    }

    fn lex_raw_quote(&mut self) -> State {
        match self.rest().find('`') {
            Some(x) => {
                self.pos += x + 1;
                self.emit(Tok::RawString);
                State::InsideAction
            }
            None => self.error("unterminated raw quoted string".to_string()),
        }
    }
}

/// Go's `%#U`: `U+007D '}'`.
fn unicode_desc(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<(Tok, String)> {
        lex(s).into_iter().map(|i| (i.tok, i.val)).collect()
    }

    #[test]
    fn trims_and_comments() {
        let got = toks("a  {{- .X -}}  b{{/* c */}}d {{- /* e */ -}} f");
        let want = vec![
            (Tok::Text, "a".to_string()),
            (Tok::LeftDelim, "{{".to_string()),
            (Tok::Field, ".X".to_string()),
            (Tok::RightDelim, "}}".to_string()),
            (Tok::Text, "b".to_string()),
            (Tok::Comment, "/* c */".to_string()),
            (Tok::Text, "d".to_string()),
            (Tok::Comment, "/* e */".to_string()),
            (Tok::Text, "f".to_string()),
            (Tok::Eof, String::new()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn action_tokens() {
        let got: Vec<Tok> = toks(r#"{{$x := .A.b | printf "%d" 1.5 `r` 'c' -3 (nil)}}"#)
            .into_iter()
            .map(|(t, _)| t)
            .filter(|t| *t != Tok::Space)
            .collect();
        use Tok::*;
        assert_eq!(
            got,
            vec![
                LeftDelim,
                Variable,
                Declare,
                Field,
                Field,
                Pipe,
                Identifier,
                String,
                Number,
                RawString,
                CharConstant,
                Number,
                LeftParen,
                Nil,
                RightParen,
                RightDelim,
                Eof
            ]
        );
    }

    #[test]
    fn numbers_negative_not_trim() {
        let got = toks("{{-3}}");
        assert_eq!(got[1], (Tok::Number, "-3".to_string()));
    }
}
