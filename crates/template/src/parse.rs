//! The parse tree and the parser, with Go's grammar and error messages.

use std::fmt;
use std::sync::Arc;

use crate::lex::{Item, Tok, lex};
use crate::value::Value;

// Nesting of control structures and parentheses the parser accepts. Real templates nest a few
// levels; the limit keeps a hostile template from exhausting the stack in the parser and in the
// executor, which recurse along the same structure.
const MAX_PARSE_DEPTH: usize = 100;

/// One parsed template: a `define`d one, a `block`, or the body of a `parse` call.
#[derive(Debug)]
pub(crate) struct Tree {
    pub name: String,
    /// The name of the template whose text this tree was parsed from (for error locations).
    pub parse_name: String,
    pub text: Arc<str>,
    pub root: Vec<Node>,
}

impl Tree {
    /// Go's `IsEmptyTree`: only whitespace text and comments.
    pub fn is_empty(&self) -> bool {
        self.root.iter().all(|n| match n {
            Node::Text(t) => t.trim().is_empty(),
            Node::Comment(_) => true,
            _ => false,
        })
    }

    /// `name:line:col` of a byte offset, as Go's `ErrorContext` shows it.
    pub fn location(&self, pos: usize) -> String {
        let pos = pos.min(self.text.len());
        let before = &self.text.as_bytes()[..pos];
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        let col = match before.iter().rposition(|&b| b == b'\n') {
            Some(nl) => pos - nl - 1,
            None => pos,
        };
        format!("{}:{}:{}", self.parse_name, line, col)
    }
}

#[derive(Debug)]
pub(crate) enum Node {
    Text(String),
    Comment(String),
    Action(Pipe),
    If(Box<Branch>),
    Range(Box<Branch>),
    With(Box<Branch>),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

#[derive(Debug)]
pub(crate) struct Branch {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub(crate) struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub(crate) struct Cmd {
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub(crate) enum Arg {
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number {
        pos: usize,
        text: String,
        value: Value,
    },
    Str {
        pos: usize,
        quoted: String,
        value: Arc<str>,
    },
    /// `.A.B`
    Field {
        pos: usize,
        idents: Vec<String>,
    },
    /// `$x.A.B`; the first ident is the variable.
    Variable {
        pos: usize,
        idents: Vec<String>,
    },
    /// A function name.
    Ident {
        pos: usize,
        name: String,
    },
    /// `(pipeline).A.B`
    Chain {
        pos: usize,
        node: Box<Arg>,
        fields: Vec<String>,
    },
    Pipe(Box<Pipe>),
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Dot(p) | Arg::Nil(p) | Arg::Bool(p, _) => *p,
            Arg::Number { pos, .. }
            | Arg::Str { pos, .. }
            | Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Ident { pos, .. }
            | Arg::Chain { pos, .. } => *pos,
            Arg::Pipe(p) => p.pos,
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Number { text, .. } => f.write_str(text),
            Arg::Str { quoted, .. } => f.write_str(quoted),
            Arg::Field { idents, .. } => {
                for i in idents {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Variable { idents, .. } => f.write_str(&idents.join(".")),
            Arg::Ident { name, .. } => f.write_str(name),
            Arg::Chain { node, fields, .. } => {
                match node.as_ref() {
                    Arg::Pipe(p) => write!(f, "({p})")?,
                    n => write!(f, "{n}")?,
                }
                for i in fields {
                    write!(f, ".{i}")?;
                }
                Ok(())
            }
            Arg::Pipe(p) => write!(f, "{p}"),
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match a {
                Arg::Pipe(p) => write!(f, "({p})")?,
                a => write!(f, "{a}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, list: &[Node]) -> fmt::Result {
    list.iter().try_for_each(|n| write!(f, "{n}"))
}

fn write_branch(f: &mut fmt::Formatter<'_>, kw: &str, b: &Branch) -> fmt::Result {
    write!(f, "{{{{{kw} {}}}}}", b.pipe)?;
    write_list(f, &b.list)?;
    if let Some(e) = &b.else_list {
        f.write_str("{{else}}")?;
        write_list(f, e)?;
    }
    f.write_str("{{end}}")
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Text(t) => f.write_str(t),
            Node::Comment(c) => write!(f, "{{{{{c}}}}}"),
            Node::Action(p) => write!(f, "{{{{{p}}}}}"),
            Node::If(b) => write_branch(f, "if", b),
            Node::Range(b) => write_branch(f, "range", b),
            Node::With(b) => write_branch(f, "with", b),
            Node::Template { name, pipe, .. } => match pipe {
                Some(p) => write!(f, "{{{{template {} {p}}}}}", crate::gofmt::quote(name)),
                None => write!(f, "{{{{template {}}}}}", crate::gofmt::quote(name)),
            },
            Node::Break => f.write_str("{{break}}"),
            Node::Continue => f.write_str("{{continue}}"),
        }
    }
}

/// What one `{{…}}` or text item parsed into.
enum Parsed {
    Node(Node),
    End,
    Else,
}

/// The trees of one `parse` call: the body under `name`, then every `define` and `block`.
pub(crate) fn parse(
    name: &str,
    text: &str,
    has_func: &dyn Fn(&str) -> bool,
) -> Result<Vec<Tree>, String> {
    let text: Arc<str> = text.into();
    let mut p = Parser {
        items: lex(&text),
        idx: 0,
        line: 1,
        name: name.to_string(),
        text: text.clone(),
        has_func,
        vars: vec!["$".to_string()],
        range_depth: 0,
        depth: 0,
        trees: Vec::new(),
    };
    let mut root = Vec::new();
    loop {
        if p.peek().tok == Tok::Eof {
            break;
        }
        if p.peek().tok == Tok::LeftDelim {
            let save = p.idx;
            p.next();
            if p.next_non_space().tok == Tok::Define {
                p.parse_definition()?;
                continue;
            }
            p.idx = save;
        }
        match p.text_or_action()? {
            Parsed::Node(n) => root.push(n),
            Parsed::End => return p.err("unexpected {{end}}"),
            Parsed::Else => return p.err("unexpected {{else}}"),
        }
    }
    let body = Tree {
        name: name.to_string(),
        parse_name: name.to_string(),
        text,
        root,
    };
    let mut trees = vec![body];
    trees.append(&mut p.trees);
    Ok(trees)
}

struct Parser<'a> {
    items: Vec<Item>,
    idx: usize,
    line: usize,
    name: String,
    text: Arc<str>,
    has_func: &'a dyn Fn(&str) -> bool,
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
    trees: Vec<Tree>,
}

impl Parser<'_> {
    fn err<T>(&self, msg: impl fmt::Display) -> Result<T, String> {
        Err(format!("template: {}:{}: {msg}", self.name, self.line))
    }

    fn peek(&self) -> &Item {
        // The lexer always ends with Eof or Error, and the parser never reads past either.
        &self.items[self.idx.min(self.items.len() - 1)]
    }

    fn next(&mut self) -> Item {
        let item = self.peek().clone();
        // Past the end, peek keeps returning the final Eof or Error item.
        self.idx = (self.idx + 1).min(self.items.len());
        self.line = item.line;
        item
    }

    fn backup(&mut self) {
        self.idx = self.idx.saturating_sub(1);
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let item = self.next();
            if item.tok != Tok::Space {
                return item;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        while self.peek().tok == Tok::Space {
            self.idx = (self.idx + 1).min(self.items.len());
        }
        self.peek().clone()
    }

    fn unexpected<T>(&self, item: &Item, context: &str) -> Result<T, String> {
        if let Tok::Error(msg) = &item.tok {
            return self.err(msg);
        }
        self.err(format_args!("unexpected {} in {context}", item.describe()))
    }

    fn expect(&mut self, tok: Tok, context: &str) -> Result<Item, String> {
        let item = self.next_non_space();
        if item.tok != tok {
            return self.unexpected(&item, context);
        }
        Ok(item)
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            return self.err("max expression depth exceeded");
        }
        Ok(())
    }

    fn add_tree(&mut self, name: String, root: Vec<Node>) -> Result<(), String> {
        let tree = Tree {
            name,
            parse_name: self.name.clone(),
            text: self.text.clone(),
            root,
        };
        if let Some(i) = self.trees.iter().position(|t| t.name == tree.name) {
            if !self.trees[i].is_empty() && !tree.is_empty() {
                return self.err(format_args!(
                    "template: multiple definition of template {}",
                    crate::gofmt::quote(&tree.name)
                ));
            }
            if !tree.is_empty() {
                self.trees[i] = tree;
            }
            return Ok(());
        }
        self.trees.push(tree);
        Ok(())
    }

    /// The body of a `define` or `block`, parsed with a fresh set of variables.
    fn sub_tree(&mut self, context: &str) -> Result<Vec<Node>, String> {
        let vars = std::mem::replace(&mut self.vars, vec!["$".to_string()]);
        let range_depth = std::mem::take(&mut self.range_depth);
        let (list, end) = self.item_list()?;
        self.vars = vars;
        self.range_depth = range_depth;
        if !matches!(end, Parsed::End) {
            return self.err(format_args!("unexpected {{{{else}}}} in {context}"));
        }
        Ok(list)
    }

    fn parse_definition(&mut self) -> Result<(), String> {
        let context = "define clause";
        let item = self.next_non_space();
        if !matches!(item.tok, Tok::String | Tok::RawString) {
            return self.unexpected(&item, context);
        }
        let name = self.unquote(&item.val)?;
        self.expect(Tok::RightDelim, context)?;
        let root = self.sub_tree(context)?;
        self.add_tree(name, root)
    }

    fn item_list(&mut self) -> Result<(Vec<Node>, Parsed), String> {
        let mut list = Vec::new();
        while self.peek_non_space().tok != Tok::Eof {
            match self.text_or_action()? {
                Parsed::Node(n) => list.push(n),
                end => return Ok((list, end)),
            }
        }
        self.err("unexpected EOF")
    }

    fn text_or_action(&mut self) -> Result<Parsed, String> {
        let item = self.next_non_space();
        match item.tok {
            Tok::Text => Ok(Parsed::Node(Node::Text(item.val))),
            Tok::LeftDelim => self.action(),
            Tok::Comment => Ok(Parsed::Node(Node::Comment(item.val))),
            _ => self.unexpected(&item, "input"),
        }
    }

    fn action(&mut self) -> Result<Parsed, String> {
        let item = self.next_non_space();
        match item.tok {
            Tok::Block => return self.block_control().map(Parsed::Node),
            Tok::Break | Tok::Continue => {
                let word = item.val.clone();
                if self.range_depth == 0 {
                    return self.err(format_args!("{{{{{word}}}}} outside {{{{range}}}}"));
                }
                let end = self.next_non_space();
                if end.tok != Tok::RightDelim {
                    return self.unexpected(&end, &format!("{{{{{word}}}}}"));
                }
                return Ok(Parsed::Node(if item.tok == Tok::Break {
                    Node::Break
                } else {
                    Node::Continue
                }));
            }
            Tok::Else => {
                let next = self.peek_non_space();
                if !matches!(next.tok, Tok::If | Tok::With) {
                    self.expect(Tok::RightDelim, "else")?;
                }
                return Ok(Parsed::Else);
            }
            Tok::End => {
                self.expect(Tok::RightDelim, "end")?;
                return Ok(Parsed::End);
            }
            Tok::If => return self.control("if").map(|b| Parsed::Node(Node::If(b))),
            Tok::Range => return self.control("range").map(|b| Parsed::Node(Node::Range(b))),
            Tok::With => return self.control("with").map(|b| Parsed::Node(Node::With(b))),
            Tok::Template => return self.template_control().map(Parsed::Node),
            _ => {}
        }
        self.backup();
        let pipe = self.pipeline("command", Tok::RightDelim)?;
        Ok(Parsed::Node(Node::Action(pipe)))
    }

    fn control(&mut self, context: &str) -> Result<Box<Branch>, String> {
        self.enter()?;
        let mark = self.vars.len();
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let else_list = match next {
            Parsed::End => None,
            Parsed::Else => {
                let peek = self.peek_non_space().tok;
                let chained = (context == "if" && peek == Tok::If)
                    || (context == "with" && peek == Tok::With);
                if chained {
                    // `{{else if b}}` is `{{else}}{{if b}}…{{end}}` sharing the outer `{{end}}`.
                    self.next();
                    let inner = self.control(context)?;
                    Some(vec![if context == "if" {
                        Node::If(inner)
                    } else {
                        Node::With(inner)
                    }])
                } else {
                    let (list, next) = self.item_list()?;
                    if !matches!(next, Parsed::End) {
                        return self.err("expected end; found {{else}}");
                    }
                    Some(list)
                }
            }
            Parsed::Node(_) => return self.err("internal error: list ended by a node"),
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(Box::new(Branch {
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        }))
    }

    fn template_name(&mut self, context: &str) -> Result<(Item, String), String> {
        let item = self.next_non_space();
        if !matches!(item.tok, Tok::String | Tok::RawString) {
            return self.unexpected(&item, context);
        }
        let name = self.unquote(&item.val)?;
        Ok((item, name))
    }

    fn template_control(&mut self) -> Result<Node, String> {
        let context = "template clause";
        let (item, name) = self.template_name(context)?;
        let pipe = if self.next_non_space().tok != Tok::RightDelim {
            self.backup();
            Some(self.pipeline(context, Tok::RightDelim)?)
        } else {
            None
        };
        Ok(Node::Template {
            pos: item.pos,
            name,
            pipe,
        })
    }

    fn block_control(&mut self) -> Result<Node, String> {
        let context = "block clause";
        let (item, name) = self.template_name(context)?;
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        self.enter()?;
        let root = self.sub_tree(context)?;
        self.depth -= 1;
        self.add_tree(name.clone(), root)?;
        Ok(Node::Template {
            pos: item.pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn pipeline(&mut self, context: &str, end: Tok) -> Result<Pipe, String> {
        let pos = self.peek_non_space().pos;
        let mut pipe = Pipe {
            pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        while self.peek_non_space().tok == Tok::Variable {
            let v_idx = self.idx;
            let v = self.next();
            let next = self.peek_non_space();
            match next.tok {
                Tok::Assign | Tok::Declare => {
                    pipe.is_assign = next.tok == Tok::Assign;
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    break;
                }
                Tok::Char(',') => {
                    self.next_non_space();
                    pipe.decl.push(v.val.clone());
                    self.vars.push(v.val);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().tok {
                            Tok::Variable | Tok::RightDelim | Tok::RightParen => continue,
                            _ => return self.err("range can only initialize variables"),
                        }
                    }
                    return self.err(format_args!("too many declarations in {context}"));
                }
                _ => {
                    self.idx = v_idx;
                    break;
                }
            }
        }
        loop {
            let item = self.next_non_space();
            if item.tok == end {
                self.check_pipeline(&pipe, context)?;
                return Ok(pipe);
            }
            match item.tok {
                Tok::Bool(_)
                | Tok::CharConstant
                | Tok::Dot
                | Tok::Field
                | Tok::Identifier
                | Tok::Number
                | Tok::Nil
                | Tok::RawString
                | Tok::String
                | Tok::Variable
                | Tok::LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&item, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> Result<(), String> {
        if pipe.cmds.is_empty() {
            return self.err(format_args!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args.first(),
                Some(
                    Arg::Bool(..)
                        | Arg::Dot(_)
                        | Arg::Nil(_)
                        | Arg::Number { .. }
                        | Arg::Str { .. }
                )
            ) {
                return self.err(format_args!(
                    "non executable command in pipeline stage {}",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> Result<Cmd, String> {
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(op) = self.operand()? {
                args.push(op);
            }
            let item = self.next();
            match item.tok {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RightParen => self.backup(),
                Tok::Pipe => {}
                _ => return self.unexpected(&item, "operand"),
            }
            break;
        }
        if args.is_empty() {
            return self.err("empty command");
        }
        Ok(Cmd { args })
    }

    fn operand(&mut self) -> Result<Option<Arg>, String> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().tok != Tok::Field {
            return Ok(Some(node));
        }
        // compat: Go positions a field chain at its second field (`.A.B` is at `.B`).
        let chain_pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().tok == Tok::Field {
            let f = self.next();
            fields.push(f.val[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field { mut idents, .. } => {
                idents.extend(fields);
                Arg::Field {
                    pos: chain_pos,
                    idents,
                }
            }
            Arg::Variable { mut idents, .. } => {
                idents.extend(fields);
                Arg::Variable {
                    pos: chain_pos,
                    idents,
                }
            }
            Arg::Bool(..) | Arg::Str { .. } | Arg::Number { .. } | Arg::Nil(_) | Arg::Dot(_) => {
                return self.err(format_args!(
                    "unexpected . after term {}",
                    crate::gofmt::quote(&node.to_string())
                ));
            }
            node => Arg::Chain {
                pos: chain_pos,
                node: Box::new(node),
                fields,
            },
        }))
    }

    fn term(&mut self) -> Result<Option<Arg>, String> {
        let item = self.next_non_space();
        let pos = item.pos;
        Ok(Some(match item.tok {
            Tok::Identifier => {
                if !(self.has_func)(&item.val) {
                    return self.err(format_args!(
                        "function {} not defined",
                        crate::gofmt::quote(&item.val)
                    ));
                }
                Arg::Ident {
                    pos,
                    name: item.val,
                }
            }
            Tok::Dot => Arg::Dot(pos),
            Tok::Nil => Arg::Nil(pos),
            Tok::Variable => {
                if !self.vars.contains(&item.val) {
                    return self.err(format_args!(
                        "undefined variable {}",
                        crate::gofmt::quote(&item.val)
                    ));
                }
                Arg::Variable {
                    pos,
                    idents: vec![item.val],
                }
            }
            Tok::Field => Arg::Field {
                pos,
                idents: vec![item.val[1..].to_string()],
            },
            Tok::Bool(b) => Arg::Bool(pos, b),
            Tok::CharConstant => {
                let s = self.unquote_char(&item.val)?;
                Arg::Number {
                    pos,
                    text: item.val,
                    value: Value::Int(i64::from(u32::from(s))),
                }
            }
            Tok::Number => {
                let value = match parse_number(&item.val) {
                    Some(v) => v,
                    None => {
                        return self.err(format_args!(
                            "illegal number syntax: {}",
                            crate::gofmt::quote(&item.val)
                        ));
                    }
                };
                Arg::Number {
                    pos,
                    text: item.val,
                    value,
                }
            }
            Tok::LeftParen => {
                self.enter()?;
                let pipe = self.pipeline("parenthesized pipeline", Tok::RightParen)?;
                self.depth -= 1;
                Arg::Pipe(Box::new(pipe))
            }
            Tok::String | Tok::RawString => {
                let value = self.unquote(&item.val)?;
                Arg::Str {
                    pos,
                    quoted: item.val,
                    value: value.into(),
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }

    fn unquote(&self, quoted: &str) -> Result<String, String> {
        match unquote(quoted) {
            Some(s) => Ok(s),
            None => self.err("invalid syntax"),
        }
    }

    fn unquote_char(&self, quoted: &str) -> Result<char, String> {
        let inner = quoted
            .strip_prefix('\'')
            .and_then(|s| s.strip_suffix('\''))
            .unwrap_or("");
        match unescape(inner, '\'') {
            Some(s) if s.chars().count() == 1 => Ok(s.chars().next().unwrap_or('\0')),
            _ => self.err(format_args!(
                "malformed character constant: {}",
                quoted.trim_matches('\'')
            )),
        }
    }
}

/// Go's `strconv.Unquote` for `"…"` and `` `…` `` strings.
pub(crate) fn unquote(quoted: &str) -> Option<String> {
    if let Some(raw) = quoted.strip_prefix('`').and_then(|s| s.strip_suffix('`')) {
        // Go drops carriage returns from raw strings.
        return Some(raw.replace('\r', ""));
    }
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    unescape(inner, '"')
}

fn unescape(s: &str, quote: char) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote || c == '\n' {
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            c if c == quote => out.push(c),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = (0..n).filter_map(|_| chars.next()).collect();
                if hex.len() != n {
                    return None;
                }
                let v = u32::from_str_radix(&hex, 16).ok()?;
                if e == 'x' {
                    // A byte; only ASCII keeps the string valid UTF-8.
                    out.push(
                        char::from_u32(v)
                            .filter(|c| c.is_ascii())
                            .unwrap_or('\u{FFFD}'),
                    );
                } else {
                    out.push(char::from_u32(v)?);
                }
            }
            '0'..='7' => {
                let mut v = e.to_digit(8)?;
                for _ in 0..2 {
                    v = v * 8 + chars.next()?.to_digit(8)?;
                }
                if v > 255 {
                    return None;
                }
                out.push(
                    char::from_u32(v)
                        .filter(|c| c.is_ascii())
                        .unwrap_or('\u{FFFD}'),
                );
            }
            _ => return None,
        }
    }
    Some(out)
}

/// A number constant: an int when Go would make it one (no `.`, `e` or `p` unless hex), else a
/// float.
fn parse_number(text: &str) -> Option<Value> {
    if text.ends_with('i') {
        return None;
    }
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1
        && lower.starts_with('0')
        && lower.bytes().all(|b| b.is_ascii_digit() || b == b'_')
    {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let is_floaty = if radix == 16 {
        digits.contains(['.', 'p'])
    } else {
        digits.contains(['.', 'e'])
    };
    if !is_floaty {
        let clean: String = digits.chars().filter(|&c| c != '_').collect();
        if clean.is_empty() {
            return None;
        }
        if let Ok(u) = u64::from_str_radix(&clean, radix) {
            let v = if neg {
                0i64.checked_sub_unsigned(u)?
            } else {
                i64::try_from(u).ok()?
            };
            return Some(Value::Int(v));
        }
        if radix != 10 {
            return None;
        }
    }
    if radix != 10 {
        return None;
    }
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let f: f64 = clean.parse().ok()?;
    Some(Value::Float(if neg { -f } else { f }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number("42"), Some(Value::Int(42)));
        assert_eq!(parse_number("-3"), Some(Value::Int(-3)));
        assert_eq!(parse_number("0x1F"), Some(Value::Int(31)));
        assert_eq!(parse_number("017"), Some(Value::Int(15)));
        assert_eq!(parse_number("1_000"), Some(Value::Int(1000)));
        assert_eq!(parse_number("1.5"), Some(Value::Float(1.5)));
        assert_eq!(parse_number("1e3"), Some(Value::Float(1000.0)));
        assert_eq!(parse_number(".5"), Some(Value::Float(0.5)));
        assert_eq!(parse_number("1i"), None);
    }

    #[test]
    fn unquotes() {
        assert_eq!(unquote(r#""a\tb\"c\u00e9""#).as_deref(), Some("a\tb\"cé"));
        assert_eq!(unquote("`a\\n`").as_deref(), Some("a\\n"));
        assert_eq!(unquote(r#""\q""#), None);
    }
}
