//! Function maps: the functions a template may call besides the builtins.

use std::collections::HashMap;
use std::sync::Arc;

use crate::value::{Function, Value};

/// How many arguments a function takes; the executor checks it before evaluating them and
/// reports Go's `wrong number of args for f: want 1 got 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    Exact(usize),
    AtLeast(usize),
}

#[derive(Clone)]
pub(crate) enum FuncKind {
    /// A builtin implemented as a plain function.
    Native(fn(&[Value]) -> Result<Value, String>),
    /// A caller's function.
    Plain(Function),
    /// `and` and `or`, which evaluate their arguments lazily.
    And,
    Or,
    /// Executes a named template of the same set and returns its output (Prometheus's `tmpl`).
    ExecTemplate,
}

#[derive(Clone)]
pub(crate) struct FuncDef {
    pub kind: FuncKind,
    pub arity: Arity,
}

/// Named functions for templates (Go's `template.FuncMap`). Functions the caller adds shadow
/// builtins of the same name, as in Go.
#[derive(Clone, Default)]
pub struct FuncMap {
    pub(crate) map: HashMap<String, FuncDef>,
}

impl FuncMap {
    pub fn new() -> FuncMap {
        FuncMap::default()
    }

    /// Adds a function that takes any number of arguments and checks them itself.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        f: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.insert_with_arity(name, Arity::AtLeast(0), f)
    }

    /// Adds a shared function value with an argument count the executor checks.
    pub fn insert_function(
        &mut self,
        name: impl Into<String>,
        arity: Arity,
        f: Function,
    ) -> &mut Self {
        self.map.insert(
            name.into(),
            FuncDef {
                kind: FuncKind::Plain(f),
                arity,
            },
        );
        self
    }

    /// Adds a function whose argument count the executor checks.
    pub fn insert_with_arity(
        &mut self,
        name: impl Into<String>,
        arity: Arity,
        f: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.map.insert(
            name.into(),
            FuncDef {
                kind: FuncKind::Plain(Arc::new(f)),
                arity,
            },
        );
        self
    }

    /// Adds a function `name "template" data` that executes another template of the same set
    /// and returns its output as a string (Prometheus's `tmpl`).
    pub fn insert_template_caller(&mut self, name: impl Into<String>) -> &mut Self {
        self.map.insert(
            name.into(),
            FuncDef {
                kind: FuncKind::ExecTemplate,
                arity: Arity::Exact(2),
            },
        );
        self
    }

    /// Adds every function of `other`, replacing ones with the same name.
    pub fn extend(&mut self, other: FuncMap) -> &mut Self {
        self.map.extend(other.map);
        self
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The function names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.map.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub(crate) fn get(&self, name: &str) -> Option<&FuncDef> {
        self.map.get(name)
    }
}

impl std::fmt::Debug for FuncMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}
