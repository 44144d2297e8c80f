//! The dynamic values templates run on, standing in for Go's `reflect.Value`.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A function value (Go's `func`), callable with the `call` builtin.
pub type Function = Arc<dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync>;

/// A value a template can print, test, index, range over and pass to functions.
///
/// Collections are behind `Arc`, so passing a big data set around a template is cheap.
#[derive(Clone, Default)]
pub enum Value {
    /// No value: a missing map key, an unset field, Go's untyped `nil`. Prints as `<no value>`.
    #[default]
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(Arc<str>),
    /// Go's `[]interface{}`.
    List(Arc<Vec<Value>>),
    /// Go's `map[string]interface{}`: a missing key reads as `<no value>`.
    Map(Arc<BTreeMap<String, Value>>),
    /// Go's `map[string]string` (label sets): under `missingkey=zero` a missing key reads as `""`,
    /// and `index` of a missing key is `""`.
    StrMap(Arc<BTreeMap<String, String>>),
    /// A value with fields and methods of its own (a Go struct or named type).
    Object(Arc<dyn Object>),
    Func(Function),
}

/// A value with named fields and methods, like a Go struct or a named type with methods
/// (Alertmanager's `KV.SortedPairs`, `Alerts.Firing`).
///
/// A template's `.Name` on an object first tries [`Object::method`], then [`Object::field`],
/// then, when [`Object::underlying`] is a map, that map's key; this is Go's order (methods win).
pub trait Object: Send + Sync {
    /// Go's type name, for error messages (`template.KV`, `time.Time`).
    fn type_name(&self) -> &str;

    /// The field `name`, if the object has one.
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }

    /// Calls the method `name` with `args` (any number of them, as the template wrote: check
    /// the count); `None` when there is no such method.
    fn method(&self, _name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        None
    }

    /// The plain value this object is built on (a Go named type over a map or slice): used to
    /// range, index, take `len`, compare and print it.
    fn underlying(&self) -> Option<Value> {
        None
    }

    /// Go's `String()` method: when present, printing uses it (`%v`, `%s`, `%q`, `print`).
    fn display(&self) -> Option<String> {
        None
    }

    /// The value `toJson` encodes instead of this object (Go's `MarshalJSON`); by default the
    /// underlying value, else the `String()` text, else an empty JSON object.
    fn json(&self) -> Option<Value> {
        None
    }

    /// For downcasting in functions that take specific objects (`date` takes a time).
    fn as_any(&self) -> &dyn Any;
}

impl Value {
    pub fn string(s: impl Into<Arc<str>>) -> Value {
        Value::String(s.into())
    }

    pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(Arc::new(items.into_iter().collect()))
    }

    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(Arc::new(
            entries.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        ))
    }

    pub fn str_map<K: Into<String>, V: Into<String>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Value {
        Value::StrMap(Arc::new(
            entries
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        ))
    }

    pub fn object(o: impl Object + 'static) -> Value {
        Value::Object(Arc::new(o))
    }

    pub fn func(f: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static) -> Value {
        Value::Func(Arc::new(f))
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The object behind this value, downcast to `T`.
    pub fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        match self {
            Value::Object(o) => o.as_any().downcast_ref::<T>(),
            _ => None,
        }
    }

    /// The value with objects replaced by their underlying value where they have one.
    pub(crate) fn resolved(&self) -> Value {
        match self {
            Value::Object(o) => o.underlying().unwrap_or_else(|| self.clone()),
            _ => self.clone(),
        }
    }

    /// Go's truth: false for zero values, empty collections and nil.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::StrMap(m) => !m.is_empty(),
            Value::Object(o) => o.underlying().is_none_or(|u| u.is_true()),
            Value::Func(_) => true,
        }
    }

    /// Go's type name of this value, for error messages.
    pub fn type_name(&self) -> &str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::StrMap(_) => "map[string]string",
            Value::Object(o) => o.type_name(),
            Value::Func(_) => "func",
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("Nil"),
            Value::Bool(b) => write!(f, "Bool({b})"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Float(x) => write!(f, "Float({x})"),
            Value::String(s) => write!(f, "String({s:?})"),
            Value::List(l) => f.debug_list().entries(l.iter()).finish(),
            Value::Map(m) => f.debug_map().entries(m.iter()).finish(),
            Value::StrMap(m) => f.debug_map().entries(m.iter()).finish(),
            Value::Object(o) => write!(f, "Object({})", o.type_name()),
            Value::Func(_) => f.write_str("Func"),
        }
    }
}

impl PartialEq for Value {
    /// Structural equality for tests; objects and functions are equal only to themselves.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Map(a), Value::Map(b)) => a == b,
            (Value::StrMap(a), Value::StrMap(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => Arc::ptr_eq(a, b),
            (Value::Func(a), Value::Func(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.into())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v.into())
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(Arc::new(v))
    }
}

impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Self {
        Value::list(v.into_iter().map(Value::from))
    }
}

impl From<BTreeMap<String, Value>> for Value {
    fn from(v: BTreeMap<String, Value>) -> Self {
        Value::Map(Arc::new(v))
    }
}

impl From<BTreeMap<String, String>> for Value {
    fn from(v: BTreeMap<String, String>) -> Self {
        Value::StrMap(Arc::new(v))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Nil, Into::into)
    }
}

/// Helpers for functions to read their arguments with Go-like type errors.
pub mod args {
    use super::Value;

    /// A `wrong number of args` error unless there are exactly `n`.
    pub fn exact(name: &str, args: &[Value], n: usize) -> Result<(), String> {
        if args.len() == n {
            return Ok(());
        }
        Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ))
    }

    fn wrong(want: &str, got: &Value) -> String {
        format!(
            "wrong type for value; expected {want}; got {}",
            got.type_name()
        )
    }

    /// A string argument (objects with a `String()` count, as Go's typed strings do not).
    pub fn string(v: &Value) -> Result<&str, String> {
        match v {
            Value::String(s) => Ok(s),
            _ => Err(wrong("string", v)),
        }
    }

    pub fn int(v: &Value) -> Result<i64, String> {
        match v {
            Value::Int(i) => Ok(*i),
            _ => Err(wrong("int", v)),
        }
    }

    /// A number as float64: ints convert, as untyped constants do in Go.
    pub fn float(v: &Value) -> Result<f64, String> {
        match v {
            Value::Float(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            _ => Err(wrong("float64", v)),
        }
    }

    /// A list of strings (Go's `[]string`).
    pub fn strings(v: &Value) -> Result<Vec<String>, String> {
        match v.resolved() {
            Value::List(l) => l
                .iter()
                .map(|e| string(e).map(str::to_string))
                .collect::<Result<_, _>>()
                .map_err(|_| wrong("[]string", v)),
            Value::Nil => Ok(Vec::new()),
            _ => Err(wrong("[]string", v)),
        }
    }
}
