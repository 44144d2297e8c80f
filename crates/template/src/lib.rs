//! Go's `text/template` for Vigil: the template language of Prometheus alerting-rule annotations
//! and labels and of Alertmanager notifications, with Go's syntax, semantics, value printing and
//! error messages, over dynamic [`Value`]s that callers build from their own data.
//!
//! It owns parsing, execution, the builtin functions, Go's `fmt` printing, and the two standard
//! function sets: [`prometheus::prometheus_funcs`] and [`alertmanager::alertmanager_funcs`]. It
//! never does I/O, never runs queries itself (the caller hands in a query function) and never
//! panics on input: a hostile template hits [`Limits`] (output size, nesting depth, steps) and
//! gets an error.
//!
//! Not implemented: `html/template`'s contextual escaping (use `html`/`safeHtml` explicitly),
//! custom delimiters, complex numbers, range over functions and channels.
//!
//! Where dynamic values differ from Go's static types:
//! - [`Value::Nil`] stands for both Go's invalid value and a nil interface, so a field of a
//!   missing map entry is `<no value>` under every `missingkey` except `error` (Go errors with
//!   "nil pointer evaluating interface {}.X" under `missingkey=zero`).
//! - A struct given as a [`Value::Map`] reads a missing field as `<no value>` instead of Go's
//!   "can't evaluate field"; use an [`Object`] where that matters.
//! - Functions check their argument types themselves, so a wrong type reads
//!   `error calling f: wrong type for value; …` rather than Go's bare message.
//! - [`Template::lookup`] and [`Template::new_in_set`] return snapshots of the set: later
//!   `parse` calls on the original are not seen by them.
//!
//! ```
//! use template::{Template, Value};
//! let mut t = Template::new("t");
//! t.parse("{{ range $i, $e := . }}{{ if $i }}, {{ end }}{{ $e | printf \"%q\" }}{{ end }}")?;
//! let out = t.execute(&Value::list(["a".into(), "b".into()]))?;
//! assert_eq!(out, r#""a", "b""#);
//! # Ok::<(), template::TemplateError>(())
//! ```

pub mod alertmanager;
mod builtins;
mod exec;
mod funcs;
pub mod gofmt;
mod json;
mod lex;
mod parse;
pub mod prometheus;
mod regex;
pub mod time;
mod value;

use std::collections::HashMap;
use std::sync::Arc;

pub use funcs::{Arity, FuncMap};
pub use value::{Function, Object, Value, args};

use parse::Tree;

/// A template that failed to parse, or failed or was stopped while executing. The message is
/// Go's: `template: name:3: unexpected "}" in operand`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Exec(String),
    /// A [`Limits`] bound was hit.
    #[error("{0}")]
    Limit(String),
    /// An unknown option, or a template name that does not exist.
    #[error("{0}")]
    Usage(String),
}

/// What a field access on a map does when the key is missing (Go's `missingkey` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// `<no value>`.
    #[default]
    Default,
    /// The zero value of the map's element type: `""` for a label map (`StrMap`), `<no value>`
    /// for a `Map` (whose element type is `interface{}`). Prometheus and Alertmanager use this.
    Zero,
    /// An error.
    Error,
}

/// Bounds on one execution, so a hostile template cannot hang or exhaust memory or the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of output.
    pub max_output: usize,
    /// Nesting of `{{template}}` calls and control structures. Go allows 100000 template calls
    /// on its growable stacks; ours are fixed, so the default is far lower, and still far above
    /// what real templates need.
    pub max_depth: usize,
    /// Nodes and commands evaluated, including range iterations.
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_output: 32 << 20,
            max_depth: 200,
            max_steps: 10_000_000,
        }
    }
}

/// A set of named templates sharing functions and options, like Go's `*template.Template`; this
/// value executes the one called [`Template::name`].
#[derive(Clone, Debug)]
pub struct Template {
    name: String,
    trees: HashMap<String, Arc<Tree>>,
    funcs: Arc<FuncMap>,
    missing_key: MissingKey,
    limits: Limits,
}

impl Template {
    pub fn new(name: impl Into<String>) -> Template {
        Template {
            name: name.into(),
            trees: HashMap::new(),
            funcs: Arc::new(FuncMap::new()),
            missing_key: MissingKey::Default,
            limits: Limits::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds functions; call it before [`Template::parse`], which rejects unknown functions.
    pub fn funcs(&mut self, funcs: FuncMap) -> &mut Self {
        Arc::make_mut(&mut self.funcs).extend(funcs);
        self
    }

    /// Go's `Option`: `missingkey=default`, `missingkey=invalid`, `missingkey=zero` or
    /// `missingkey=error`.
    pub fn option(&mut self, opt: &str) -> Result<&mut Self, TemplateError> {
        self.missing_key = match opt {
            "missingkey=default" | "missingkey=invalid" => MissingKey::Default,
            "missingkey=zero" => MissingKey::Zero,
            "missingkey=error" => MissingKey::Error,
            _ if opt.starts_with("missingkey=") => {
                return Err(TemplateError::Usage(format!("unrecognized option: {opt}")));
            }
            _ => {
                return Err(TemplateError::Usage(format!("unrecognized option: {opt}")));
            }
        };
        Ok(self)
    }

    pub fn missing_key(&mut self, mk: MissingKey) -> &mut Self {
        self.missing_key = mk;
        self
    }

    pub fn limits(&mut self, limits: Limits) -> &mut Self {
        self.limits = limits;
        self
    }

    /// Parses `text`: its body becomes the template [`Template::name`] and its `define`s and
    /// `block`s are added to the set, replacing ones of the same name. As in Go, a body of only
    /// whitespace and comments does not replace an existing template.
    pub fn parse(&mut self, text: &str) -> Result<&mut Self, TemplateError> {
        let funcs = self.funcs.clone();
        let has_func = |name: &str| funcs.contains(name) || builtins::lookup(name).is_some();
        let trees = parse::parse(&self.name, text, &has_func).map_err(TemplateError::Parse)?;
        for tree in trees {
            let keep_old = tree.is_empty() && self.trees.contains_key(&tree.name);
            if !keep_old {
                self.trees.insert(tree.name.clone(), Arc::new(tree));
            }
        }
        Ok(self)
    }

    /// Executes this template with `data` as dot and `$`.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        match self.trees.get(&self.name) {
            Some(tree) => exec::execute(self, tree.clone(), data),
            None => Err(TemplateError::Usage(format!(
                "template: {}: {} is an incomplete or empty template",
                self.name,
                gofmt::quote(&self.name)
            ))),
        }
    }

    /// Executes the template called `name` of this set.
    pub fn execute_template(&self, name: &str, data: &Value) -> Result<String, TemplateError> {
        match self.lookup(name) {
            Some(t) => t.execute(data),
            None => Err(TemplateError::Usage(format!(
                "template: no template {} associated with template {}",
                gofmt::quote(name),
                gofmt::quote(&self.name)
            ))),
        }
    }

    /// The template called `name` of this set, sharing its definitions, functions and options.
    pub fn lookup(&self, name: &str) -> Option<Template> {
        self.trees.contains_key(name).then(|| Template {
            name: name.to_string(),
            ..self.clone()
        })
    }

    /// A new template called `name` in the same set (Go's `t.New(name)`), for parsing another
    /// text that may use this set's definitions.
    pub fn new_in_set(&self, name: impl Into<String>) -> Template {
        Template {
            name: name.into(),
            ..self.clone()
        }
    }

    /// The names of the templates defined in this set, sorted.
    pub fn defined_templates(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.trees.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
