//! Go's `encoding/json.Marshal` of template values, for Alertmanager's `toJson`.

use crate::gofmt;
use crate::value::Value;

// A hostile value graph cannot be cyclic (values are immutable trees), but objects can hand
// out new values; bound the nesting anyway.
const MAX_DEPTH: usize = 1000;

/// Encodes `v` as Go's `json.Marshal` would (map keys sorted, `<>&` escaped).
pub(crate) fn marshal(v: &Value) -> Result<String, String> {
    let mut out = String::new();
    write(&mut out, v, 0)?;
    Ok(out)
}

fn write(out: &mut String, v: &Value, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("json: value nests too deeply".to_string());
    }
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&float(*f)?),
        Value::String(s) => string(out, s),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, e, depth + 1)?;
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, k);
                out.push(':');
                write(out, e, depth + 1)?;
            }
            out.push('}');
        }
        Value::StrMap(m) => {
            out.push('{');
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, k);
                out.push(':');
                string(out, e);
            }
            out.push('}');
        }
        Value::Object(o) => {
            if let Some(j) = o.json().or_else(|| o.underlying()) {
                write(out, &j, depth + 1)?;
            } else if let Some(s) = o.display() {
                string(out, &s);
            } else {
                out.push_str("{}");
            }
        }
        Value::Func(_) => return Err("json: unsupported type: func".to_string()),
    }
    Ok(())
}

/// Go's float encoding: shortest digits, exponent form only below 1e-6 or from 1e21.
fn float(f: f64) -> Result<String, String> {
    if f.is_nan() || f.is_infinite() {
        return Err(format!(
            "json: unsupported value: {}",
            gofmt::format_v(&Value::Float(f))
        ));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = gofmt::format_float(f, 'e', -1);
        // compat: Go writes e-07 as e-7.
        let n = s.len();
        let b = s.as_bytes();
        if n >= 4 && b[n - 4] == b'e' && b[n - 3] == b'-' && b[n - 2] == b'0' {
            return Ok(format!("{}{}", &s[..n - 2], &s[n - 1..]));
        }
        return Ok(s);
    }
    Ok(gofmt::format_float(f, 'f', -1))
}

fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_go() {
        let v = Value::map([
            (
                "b",
                Value::list([1.into(), 1.5.into(), 1e-7.into(), 1e21.into()]),
            ),
            ("a", Value::from("<x>&\"")),
            ("c", Value::str_map([("k", "v")])),
            ("d", Value::Nil),
        ]);
        assert_eq!(
            marshal(&v).unwrap(),
            r#"{"a":"\u003cx\u003e\u0026\"","b":[1,1.5,1e-7,1e+21],"c":{"k":"v"},"d":null}"#
        );
        assert!(marshal(&Value::Float(f64::NAN)).is_err());
    }
}
