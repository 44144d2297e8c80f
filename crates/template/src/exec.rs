//! The executor: walks a parse tree over a value and writes the output.

use std::sync::Arc;

use crate::builtins;
use crate::funcs::{Arity, FuncDef, FuncKind};
use crate::gofmt;
use crate::parse::{Arg, Branch, Cmd, Node, Pipe, Tree};
use crate::value::Value;
use crate::{MissingKey, Template, TemplateError};

/// How a walk ended: normally, or by `{{break}}`/`{{continue}}` inside a range.
enum Flow {
    Normal,
    Break,
    Continue,
}

type Res<T> = Result<T, TemplateError>;

pub(crate) struct State<'t> {
    tmpl: &'t Template,
    tree: Arc<Tree>,
    out: String,
    vars: Vec<(String, Value)>,
    depth: usize,
    steps: u64,
}

/// Executes `tree` of `tmpl` with `dot`.
pub(crate) fn execute(tmpl: &Template, tree: Arc<Tree>, dot: &Value) -> Res<String> {
    let mut s = State {
        tmpl,
        tree: tree.clone(),
        out: String::new(),
        vars: vec![("$".to_string(), dot.clone())],
        depth: 0,
        steps: 0,
    };
    s.walk_list(dot, &tree.root)?;
    Ok(s.out)
}

impl State<'_> {
    /// Go's `state.errorf` with a node: `template: loc: executing "name" at <ctx>: msg`.
    fn fail<T>(
        &self,
        pos: usize,
        ctx: &dyn std::fmt::Display,
        msg: impl std::fmt::Display,
    ) -> Res<T> {
        let ctx = ctx.to_string();
        Err(TemplateError::Exec(format!(
            "template: {}: executing {} at <{ctx}>: {msg}",
            self.tree.location(pos),
            gofmt::quote(&self.tree.name),
        )))
    }

    fn limit<T>(&self, msg: String) -> Res<T> {
        Err(TemplateError::Limit(format!(
            "template: {}: {msg}",
            self.tree.name
        )))
    }

    fn step(&mut self) -> Res<()> {
        self.steps += 1;
        if self.steps > self.tmpl.limits.max_steps {
            return self.limit(format!(
                "execution exceeded the limit of {} steps",
                self.tmpl.limits.max_steps
            ));
        }
        Ok(())
    }

    fn enter(&mut self) -> Res<()> {
        self.depth += 1;
        if self.depth > self.tmpl.limits.max_depth {
            return self.limit(format!(
                "exceeded maximum template depth ({})",
                self.tmpl.limits.max_depth
            ));
        }
        Ok(())
    }

    fn write(&mut self, s: &str) -> Res<()> {
        if self.out.len() + s.len() > self.tmpl.limits.max_output {
            return self.limit(format!(
                "output exceeds the limit of {} bytes",
                self.tmpl.limits.max_output
            ));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn walk_list(&mut self, dot: &Value, list: &[Node]) -> Res<Flow> {
        for node in list {
            match self.walk(dot, node)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value, node: &Node) -> Res<Flow> {
        self.step()?;
        match node {
            Node::Text(t) => self.write(t)?,
            Node::Comment(_) => {}
            Node::Action(pipe) => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.print_value(pipe, &v)?;
                }
            }
            Node::If(b) => return self.walk_if_with(dot, b, false),
            Node::With(b) => return self.walk_if_with(dot, b, true),
            Node::Range(b) => self.walk_range(dot, b, node)?,
            Node::Template { pos, name, pipe } => {
                self.walk_template(dot, *pos, name, pipe, node)?
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn print_value(&mut self, pipe: &Pipe, v: &Value) -> Res<()> {
        let s = match v {
            Value::Nil => "<no value>".to_string(),
            Value::Func(_) => {
                return self.fail(pipe.pos, pipe, "can't print value of type func");
            }
            v => gofmt::format_v(v),
        };
        self.write(&s)
    }

    fn walk_if_with(&mut self, dot: &Value, b: &Branch, with: bool) -> Res<Flow> {
        self.enter()?;
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let flow = if val.is_true() {
            let dot = if with { &val } else { dot };
            self.walk_list(dot, &b.list)?
        } else if let Some(e) = &b.else_list {
            self.walk_list(dot, e)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        self.depth -= 1;
        Ok(flow)
    }

    fn set_top_var(&mut self, n: usize, v: Value) {
        let len = self.vars.len();
        if let Some(slot) = len.checked_sub(n).and_then(|i| self.vars.get_mut(i)) {
            slot.1 = v;
        }
    }

    fn set_var(
        &mut self,
        name: &str,
        v: Value,
        pos: usize,
        ctx: &dyn std::fmt::Display,
    ) -> Res<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => self.fail(pos, ctx, format_args!("undefined variable: {name}")),
        }
    }

    /// One iteration of a range body with `index` and `elem` bound to the declared variables.
    fn range_iteration(&mut self, b: &Branch, mark: usize, index: Value, elem: Value) -> Res<Flow> {
        self.step()?;
        let decl = &b.pipe.decl;
        if !decl.is_empty() {
            if b.pipe.is_assign {
                let v = if decl.len() > 1 {
                    index.clone()
                } else {
                    elem.clone()
                };
                self.set_var(&decl[0], v, b.pos, &b.pipe)?;
            } else {
                self.set_top_var(1, elem.clone());
            }
        }
        if decl.len() > 1 {
            if b.pipe.is_assign {
                self.set_var(&decl[1], elem.clone(), b.pos, &b.pipe)?;
            } else {
                self.set_top_var(2, index);
            }
        }
        let flow = self.walk_list(&elem, &b.list)?;
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn walk_range(&mut self, dot: &Value, b: &Branch, node: &Node) -> Res<()> {
        self.enter()?;
        let outer = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?.resolved();
        let mark = self.vars.len();
        let mut ran = false;
        macro_rules! iterate {
            ($index:expr, $elem:expr) => {{
                ran = true;
                if let Flow::Break = self.range_iteration(b, mark, $index, $elem)? {
                    break;
                }
            }};
        }
        match &val {
            Value::List(l) => {
                for (i, e) in l.iter().enumerate() {
                    iterate!(Value::from(i), e.clone());
                }
            }
            Value::Map(m) => {
                for (k, v) in m.iter() {
                    iterate!(Value::from(k.as_str()), v.clone());
                }
            }
            Value::StrMap(m) => {
                for (k, v) in m.iter() {
                    iterate!(Value::from(k.as_str()), Value::from(v.as_str()));
                }
            }
            Value::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    return self.fail(
                        b.pos,
                        node,
                        format_args!("can't use {n} to iterate over more than one variable"),
                    );
                }
                for i in 0..*n {
                    iterate!(Value::Int(i), Value::Int(i));
                }
            }
            Value::Nil => {}
            v => {
                return self.fail(
                    b.pos,
                    node,
                    format_args!("range can't iterate over {}", gofmt::format_v(v)),
                );
            }
        }
        if !ran && let Some(e) = &b.else_list {
            self.walk_list(dot, e)?;
        }
        self.vars.truncate(outer);
        self.depth -= 1;
        Ok(())
    }

    fn walk_template(
        &mut self,
        dot: &Value,
        pos: usize,
        name: &str,
        pipe: &Option<Pipe>,
        node: &Node,
    ) -> Res<()> {
        let Some(tree) = self.tmpl.trees.get(name).cloned() else {
            return self.fail(
                pos,
                node,
                format_args!("template {} not defined", gofmt::quote(name)),
            );
        };
        let dot = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Value::Nil,
        };
        self.run_tree(tree, dot)
    }

    /// Runs another tree with its own variables (templates inherit none), same output.
    fn run_tree(&mut self, tree: Arc<Tree>, dot: Value) -> Res<()> {
        self.enter()?;
        let vars = std::mem::replace(&mut self.vars, vec![("$".to_string(), dot.clone())]);
        let saved = std::mem::replace(&mut self.tree, tree.clone());
        let result = self.walk_list(&dot, &tree.root);
        self.tree = saved;
        self.vars = vars;
        self.depth -= 1;
        result.map(|_| ())
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &Pipe) -> Res<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value.take())?);
        }
        let value = value.unwrap_or_default();
        for d in &pipe.decl {
            if pipe.is_assign {
                self.set_var(d, value.clone(), pipe.pos, pipe)?;
            } else {
                self.vars.push((d.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], fin: &Option<Value>) -> Res<()> {
        if args.len() > 1 || fin.is_some() {
            return self.fail(
                args[0].pos(),
                &args[0],
                format_args!("can't give argument to non-function {}", args[0]),
            );
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &Cmd, fin: Option<Value>) -> Res<Value> {
        self.step()?;
        let first = &cmd.args[0];
        match first {
            Arg::Field { idents, .. } => {
                self.eval_field_chain(dot, dot.clone(), first, idents, &cmd.args, fin)
            }
            Arg::Chain { node, fields, .. } => {
                if let Arg::Nil(_) = node.as_ref() {
                    return self.fail(
                        first.pos(),
                        first,
                        format_args!("indirection through explicit nil in {first}"),
                    );
                }
                let recv = self.eval_arg(dot, node)?;
                self.eval_field_chain(dot, recv, first, fields, &cmd.args, fin)
            }
            Arg::Ident { name, .. } => self.eval_function(dot, name, first, cmd, &cmd.args, fin),
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &fin)?;
                self.eval_pipeline(dot, p)
            }
            Arg::Variable { idents, .. } => {
                let v = self.var_value(&idents[0], first)?;
                if idents.len() == 1 {
                    self.not_a_function(&cmd.args, &fin)?;
                    return Ok(v);
                }
                self.eval_field_chain(dot, v, first, &idents[1..], &cmd.args, fin)
            }
            Arg::Nil(_) => {
                self.not_a_function(&cmd.args, &fin)?;
                self.fail(first.pos(), first, "nil is not a command")
            }
            _ => {
                self.not_a_function(&cmd.args, &fin)?;
                self.eval_arg(dot, first)
            }
        }
    }

    fn var_value(&self, name: &str, node: &Arg) -> Res<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.fail(node.pos(), node, format_args!("undefined variable: {name}")),
        }
    }

    fn eval_arg(&mut self, dot: &Value, arg: &Arg) -> Res<Value> {
        match arg {
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => Ok(Value::Nil),
            Arg::Bool(_, b) => Ok(Value::Bool(*b)),
            Arg::Number { value, .. } => Ok(value.clone()),
            Arg::Str { value, .. } => Ok(Value::String(value.clone())),
            Arg::Field { idents, .. } => self.eval_field_chain(
                dot,
                dot.clone(),
                arg,
                idents,
                std::slice::from_ref(arg),
                None,
            ),
            Arg::Variable { idents, .. } => {
                let v = self.var_value(&idents[0], arg)?;
                if idents.len() == 1 {
                    return Ok(v);
                }
                self.eval_field_chain(dot, v, arg, &idents[1..], std::slice::from_ref(arg), None)
            }
            Arg::Pipe(p) => self.eval_pipeline(dot, p),
            Arg::Ident { name, .. } => {
                self.eval_function(dot, name, arg, arg, std::slice::from_ref(arg), None)
            }
            Arg::Chain { node, fields, .. } => {
                if let Arg::Nil(_) = node.as_ref() {
                    return self.fail(
                        arg.pos(),
                        arg,
                        format_args!("indirection through explicit nil in {arg}"),
                    );
                }
                let recv = self.eval_arg(dot, node)?;
                self.eval_field_chain(dot, recv, arg, fields, std::slice::from_ref(arg), None)
            }
        }
    }

    /// Evaluates `args[1..]` (args[0] names the function or field) and appends the pipeline's
    /// value.
    fn eval_args(&mut self, dot: &Value, args: &[Arg], fin: Option<Value>) -> Res<Vec<Value>> {
        let mut argv = Vec::with_capacity(args.len());
        for a in args.iter().skip(1) {
            argv.push(self.eval_arg(dot, a)?);
        }
        argv.extend(fin);
        Ok(argv)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value,
        receiver: Value,
        node: &Arg,
        idents: &[String],
        args: &[Arg],
        fin: Option<Value>,
    ) -> Res<Value> {
        let mut recv = receiver;
        let (last, init) = idents
            .split_last()
            .expect("BUG: a field chain has at least one field");
        for ident in init {
            recv = self.eval_field(dot, ident, node, &[], None, recv)?;
        }
        self.eval_field(dot, last, node, args, fin, recv)
    }

    fn missing_key(&self, node: &Arg, name: &str, zero: Value) -> Res<Value> {
        match self.tmpl.missing_key {
            MissingKey::Default => Ok(Value::Nil),
            MissingKey::Zero => Ok(zero),
            MissingKey::Error => self.fail(
                node.pos(),
                node,
                format_args!("map has no entry for key {}", gofmt::quote(name)),
            ),
        }
    }

    fn map_field(
        &self,
        recv: &Value,
        name: &str,
        node: &Arg,
        has_args: bool,
    ) -> Option<Res<Value>> {
        let found = match recv {
            Value::Map(m) => m.get(name).cloned().ok_or(Value::Nil),
            Value::StrMap(m) => m
                .get(name)
                .map(|v| Value::from(v.as_str()))
                .ok_or_else(|| Value::from("")),
            _ => return None,
        };
        if has_args {
            return Some(self.fail(
                node.pos(),
                node,
                format_args!("{name} is not a method but has arguments"),
            ));
        }
        Some(match found {
            Ok(v) => Ok(v),
            Err(zero) => self.missing_key(node, name, zero),
        })
    }

    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        node: &Arg,
        args: &[Arg],
        fin: Option<Value>,
        recv: Value,
    ) -> Res<Value> {
        let has_args = args.len() > 1 || fin.is_some();
        match &recv {
            Value::Nil => {
                // compat: Go returns no value for a field of no value, unless missingkey=error.
                if self.tmpl.missing_key == MissingKey::Error {
                    return self.fail(
                        node.pos(),
                        node,
                        format_args!("nil data; no entry for key {}", gofmt::quote(name)),
                    );
                }
                Ok(Value::Nil)
            }
            Value::Object(o) => {
                let argv = if has_args {
                    self.eval_args(dot, args, fin)?
                } else {
                    Vec::new()
                };
                if let Some(r) = o.method(name, &argv) {
                    return r.or_else(|e| {
                        self.fail(node.pos(), node, format_args!("error calling {name}: {e}"))
                    });
                }
                if let Some(v) = o.field(name) {
                    if has_args {
                        return self.fail(
                            node.pos(),
                            node,
                            format_args!("{name} has arguments but cannot be invoked as function"),
                        );
                    }
                    return Ok(v);
                }
                if let Some(u) = o.underlying()
                    && let Some(r) = self.map_field(&u, name, node, has_args)
                {
                    return r;
                }
                self.fail(
                    node.pos(),
                    node,
                    format_args!("can't evaluate field {name} in type {}", o.type_name()),
                )
            }
            _ => match self.map_field(&recv, name, node, has_args) {
                Some(r) => r,
                None => self.fail(
                    node.pos(),
                    node,
                    format_args!("can't evaluate field {name} in type {}", recv.type_name()),
                ),
            },
        }
    }

    fn find_function(&self, name: &str) -> Option<FuncDef> {
        if let Some(f) = self.tmpl.funcs.get(name) {
            return Some(f.clone());
        }
        builtins::lookup(name)
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        name: &str,
        ident: &Arg,
        cmd: &dyn std::fmt::Display,
        args: &[Arg],
        fin: Option<Value>,
    ) -> Res<Value> {
        let Some(def) = self.find_function(name) else {
            return self.fail(
                ident.pos(),
                ident,
                format_args!("{} is not a defined function", gofmt::quote(name)),
            );
        };
        let n = args.len().saturating_sub(1) + usize::from(fin.is_some());
        match def.arity {
            Arity::Exact(want) if n != want => {
                return self.fail(
                    ident.pos(),
                    ident,
                    format_args!("wrong number of args for {name}: want {want} got {n}"),
                );
            }
            Arity::AtLeast(want) if n < want => {
                return self.fail(
                    ident.pos(),
                    ident,
                    format_args!("wrong number of args for {name}: want at least {want} got {n}"),
                );
            }
            _ => {}
        }
        let call_pos = ident.pos();
        let result = match def.kind {
            FuncKind::And | FuncKind::Or => {
                let or = matches!(def.kind, FuncKind::Or);
                let mut v = Value::Nil;
                for a in args.iter().skip(1) {
                    v = self.eval_arg(dot, a)?;
                    if v.is_true() == or {
                        return Ok(v);
                    }
                }
                if let Some(f) = fin {
                    v = f;
                }
                return Ok(v);
            }
            FuncKind::Native(f) => {
                let argv = self.eval_args(dot, args, fin)?;
                f(&argv)
            }
            FuncKind::Plain(f) => {
                let argv = self.eval_args(dot, args, fin)?;
                f(&argv)
            }
            FuncKind::ExecTemplate => {
                let argv = self.eval_args(dot, args, fin)?;
                return self.exec_template_value(&argv, call_pos, cmd, name);
            }
        };
        let value = result
            .or_else(|e| self.fail(call_pos, cmd, format_args!("error calling {name}: {e}")))?;
        // A string that could never be printed is refused here, before repeated doubling
        // (`$x = print $x $x`) can exhaust memory without writing any output.
        if let Value::String(s) = &value
            && s.len() > self.tmpl.limits.max_output
        {
            return self.limit(format!(
                "a value exceeds the output limit of {} bytes",
                self.tmpl.limits.max_output
            ));
        }
        Ok(value)
    }

    /// `tmpl "name" data`: the output of another template, as a value.
    fn exec_template_value(
        &mut self,
        argv: &[Value],
        pos: usize,
        cmd: &dyn std::fmt::Display,
        fname: &str,
    ) -> Res<Value> {
        let Value::String(name) = &argv[0] else {
            return self.fail(
                pos,
                cmd,
                format_args!(
                    "error calling {fname}: wrong type for value; expected string; got {}",
                    argv[0].type_name()
                ),
            );
        };
        let Some(tree) = self.tmpl.trees.get(name.as_ref()).cloned() else {
            return self.fail(
                pos,
                cmd,
                format_args!(
                    "error calling {fname}: template: no template {} associated with template {}",
                    gofmt::quote(name),
                    gofmt::quote(&self.tmpl.name)
                ),
            );
        };
        let out = std::mem::take(&mut self.out);
        let outer_len = out.len();
        // The nested output counts against the limit together with what is already written.
        self.out = String::with_capacity(0);
        let budget = self.tmpl.limits.max_output.saturating_sub(outer_len);
        let result = if budget == 0 {
            self.limit(format!(
                "output exceeds the limit of {} bytes",
                self.tmpl.limits.max_output
            ))
        } else {
            self.run_tree(tree, argv[1].clone())
        };
        let inner = std::mem::replace(&mut self.out, out);
        result?;
        if inner.len() + outer_len > self.tmpl.limits.max_output {
            return self.limit(format!(
                "output exceeds the limit of {} bytes",
                self.tmpl.limits.max_output
            ));
        }
        Ok(Value::from(inner))
    }
}
