//! Go's builtin template functions: comparisons, `index`, `slice`, `len`, printing and escaping.

use std::cmp::Ordering;

use crate::funcs::{Arity, FuncDef, FuncKind};
use crate::gofmt;
use crate::value::Value;

/// The builtin called `name`, if there is one.
pub(crate) fn lookup(name: &str) -> Option<FuncDef> {
    use Arity::{AtLeast, Exact};
    let (kind, arity) = match name {
        "and" => (FuncKind::And, AtLeast(1)),
        "or" => (FuncKind::Or, AtLeast(1)),
        "not" => (FuncKind::Native(not), Exact(1)),
        "len" => (FuncKind::Native(len), Exact(1)),
        "index" => (FuncKind::Native(index), AtLeast(1)),
        "slice" => (FuncKind::Native(slice), AtLeast(1)),
        "print" => (FuncKind::Native(print), AtLeast(0)),
        "printf" => (FuncKind::Native(printf), AtLeast(1)),
        "println" => (FuncKind::Native(println), AtLeast(0)),
        "html" => (FuncKind::Native(html), AtLeast(0)),
        "js" => (FuncKind::Native(js), AtLeast(0)),
        "urlquery" => (FuncKind::Native(urlquery), AtLeast(0)),
        "eq" => (FuncKind::Native(eq), AtLeast(1)),
        "ne" => (FuncKind::Native(ne), Exact(2)),
        "lt" => (FuncKind::Native(lt), Exact(2)),
        "le" => (FuncKind::Native(le), Exact(2)),
        "gt" => (FuncKind::Native(gt), Exact(2)),
        "ge" => (FuncKind::Native(ge), Exact(2)),
        "call" => (FuncKind::Native(call), AtLeast(1)),
        _ => return None,
    };
    Some(FuncDef { kind, arity })
}

fn not(args: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(!args[0].is_true()))
}

fn len(args: &[Value]) -> Result<Value, String> {
    let n = match args[0].resolved() {
        Value::String(s) => s.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.len(),
        Value::StrMap(m) => m.len(),
        Value::Nil => return Err("len of untyped nil".to_string()),
        v => return Err(format!("len of type {}", v.type_name())),
    };
    Ok(Value::from(n))
}

fn index_arg(v: &Value, cap: usize) -> Result<usize, String> {
    let x = match v.resolved() {
        Value::Int(i) => i,
        Value::Nil => return Err("cannot index slice/array with nil".to_string()),
        v => {
            return Err(format!(
                "cannot index slice/array with type {}",
                v.type_name()
            ));
        }
    };
    match usize::try_from(x) {
        Ok(u) if u <= cap => Ok(u),
        _ => Err(format!("index out of range: {x}")),
    }
}

fn map_key(v: &Value) -> Result<String, String> {
    match v.resolved() {
        Value::String(s) => Ok(s.to_string()),
        Value::Nil => Err("value is nil; should be of type string".to_string()),
        v => Err(format!(
            "value has type {}; should be string",
            v.type_name()
        )),
    }
}

fn index(args: &[Value]) -> Result<Value, String> {
    let mut item = args[0].resolved();
    if item.is_nil() {
        return Err("index of untyped nil".to_string());
    }
    for idx in &args[1..] {
        item = match item.resolved() {
            Value::List(l) => {
                let i = index_arg(idx, l.len())?;
                match l.get(i) {
                    Some(v) => v.clone(),
                    None => return Err(format!("index out of range: {i}")),
                }
            }
            Value::String(s) => {
                let i = index_arg(idx, s.len())?;
                match s.as_bytes().get(i) {
                    Some(b) => Value::Int(i64::from(*b)),
                    None => return Err(format!("index out of range: {i}")),
                }
            }
            Value::Map(m) => m.get(&map_key(idx)?).cloned().unwrap_or(Value::Nil),
            Value::StrMap(m) => Value::from(m.get(&map_key(idx)?).cloned().unwrap_or_default()),
            Value::Nil => return Err("index of nil pointer".to_string()),
            v => return Err(format!("can't index item of type {}", v.type_name())),
        };
    }
    Ok(item)
}

fn slice(args: &[Value]) -> Result<Value, String> {
    let item = args[0].resolved();
    let idxs = &args[1..];
    if item.is_nil() {
        return Err("slice of untyped nil".to_string());
    }
    if idxs.len() > 3 {
        return Err(format!("too many slice indexes: {}", idxs.len()));
    }
    let len = match &item {
        Value::String(s) => {
            if idxs.len() == 3 {
                return Err("cannot 3-index slice a string".to_string());
            }
            s.len()
        }
        Value::List(l) => l.len(),
        v => return Err(format!("can't slice item of type {}", v.type_name())),
    };
    let mut idx = [0, len, len];
    for (i, v) in idxs.iter().enumerate() {
        idx[i] = index_arg(v, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if idxs.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item {
        Value::String(s) => {
            Value::from(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).into_owned())
        }
        Value::List(l) => Value::from(l[idx[0]..idx[1]].to_vec()),
        _ => Value::Nil,
    })
}

fn print(args: &[Value]) -> Result<Value, String> {
    Ok(Value::from(gofmt::sprint(args)))
}

fn printf(args: &[Value]) -> Result<Value, String> {
    let format = match &args[0] {
        Value::String(s) => s.clone(),
        v => {
            return Err(format!(
                "wrong type for value; expected string; got {}",
                v.type_name()
            ));
        }
    };
    Ok(Value::from(gofmt::sprintf(&format, &args[1..])))
}

fn println(args: &[Value]) -> Result<Value, String> {
    Ok(Value::from(gofmt::sprintln(args)))
}

/// The text the escaping functions work on: one string as is, else `fmt.Sprint` of the
/// arguments with a missing value shown as `<no value>`.
fn eval_args(args: &[Value]) -> String {
    if let [Value::String(s)] = args {
        return s.to_string();
    }
    let shown: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Value::Nil => Value::from("<no value>"),
            a => a.clone(),
        })
        .collect();
    gofmt::sprint(&shown)
}

/// Go's `template.HTMLEscapeString`.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn html(args: &[Value]) -> Result<Value, String> {
    Ok(Value::from(html_escape(&eval_args(args))))
}

/// Go's `template.JSEscapeString`.
pub(crate) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c if c.is_ascii() || !c.is_control() => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

fn js(args: &[Value]) -> Result<Value, String> {
    Ok(Value::from(js_escape(&eval_args(args))))
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn urlquery(args: &[Value]) -> Result<Value, String> {
    Ok(Value::from(query_escape(&eval_args(args))))
}

fn call(args: &[Value]) -> Result<Value, String> {
    match &args[0] {
        Value::Func(f) => f(&args[1..]),
        Value::Nil => Err("call of nil".to_string()),
        v => Err(format!(
            "non-function {} of type {}",
            gofmt::format_v(v),
            v.type_name()
        )),
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";
const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";

#[derive(PartialEq)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Nil => Kind::Invalid,
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::String(_) => Kind::Str,
        _ => Kind::Other,
    }
}

fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    let (ka, kb) = (kind(a), kind(b));
    if ka != kb {
        if ka != Kind::Invalid && kb != Kind::Invalid {
            return Err(BAD_COMPARISON.to_string());
        }
        return Ok(false);
    }
    Ok(match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Func(_), _) | (_, Value::Func(_)) => {
            return Err(format!("non-comparable type {}: func", gofmt::format_v(b)));
        }
        _ => {
            return Err(format!(
                "non-comparable type {}: {}",
                gofmt::format_v(b),
                b.type_name()
            ));
        }
    })
}

fn eq(args: &[Value]) -> Result<Value, String> {
    let first = args[0].resolved();
    if args.len() < 2 {
        return Err("missing argument for comparison".to_string());
    }
    for other in &args[1..] {
        if equal(&first, &other.resolved())? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn ne(args: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(!equal(
        &args[0].resolved(),
        &args[1].resolved(),
    )?))
}

fn order(a: &Value, b: &Value) -> Result<Ordering, String> {
    let (a, b) = (a.resolved(), b.resolved());
    let (ka, kb) = (kind(&a), kind(&b));
    if matches!(ka, Kind::Invalid | Kind::Other) || matches!(kb, Kind::Invalid | Kind::Other) {
        return Err(BAD_COMPARISON_TYPE.to_string());
    }
    if ka != kb {
        return Err(BAD_COMPARISON.to_string());
    }
    Ok(match (&a, &b) {
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => return Err(BAD_COMPARISON_TYPE.to_string()),
    })
}

/// Whether a < b, with NaN comparing false as in Go.
fn less(a: &Value, b: &Value) -> Result<bool, String> {
    if let (Value::Float(x), Value::Float(y)) = (a.resolved(), b.resolved()) {
        return Ok(x < y);
    }
    Ok(order(a, b)? == Ordering::Less)
}

fn lt(args: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(less(&args[0], &args[1])?))
}

fn le(args: &[Value]) -> Result<Value, String> {
    let lt = less(&args[0], &args[1])?;
    Ok(Value::Bool(
        lt || equal(&args[0].resolved(), &args[1].resolved())?,
    ))
}

fn gt(args: &[Value]) -> Result<Value, String> {
    let Value::Bool(le) = le(args)? else {
        return Ok(Value::Bool(false));
    };
    Ok(Value::Bool(!le))
}

fn ge(args: &[Value]) -> Result<Value, String> {
    Ok(Value::Bool(!less(&args[0], &args[1])?))
}
