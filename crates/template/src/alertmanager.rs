//! Alertmanager's template functions and the value types of its notification data: `KV` (label
//! and annotation sets with `SortedPairs`, `Names`, `Values`, `Remove`), `Pairs` and `Alerts`
//! (with `Firing` and `Resolved`).
//!
//! Alertmanager executes its templates with `missingkey=zero`; so should callers.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::tz::TimeZone;

use crate::funcs::{Arity, FuncMap};
use crate::prometheus::{humanize_duration, re_match, re_replace_all, title, to_float};
use crate::time::{Duration, Time, time_arg};
use crate::value::{Object, Value, args};

/// Alertmanager's functions (0.25 and later): `toUpper`, `toLower`, `title`, `trimSpace`,
/// `join`, `match`, `safeHtml`, `safeUrl`, `urlUnescape`, `reReplaceAll`, `stringSlice`, `date`,
/// `tz`, `since`, `humanizeDuration` and `toJson`.
pub fn alertmanager_funcs() -> FuncMap {
    use Arity::Exact;
    let mut m = FuncMap::new();
    m.insert_with_arity("toUpper", Exact(1), |a| {
        Ok(Value::from(args::string(&a[0])?.to_uppercase()))
    });
    m.insert_with_arity("toLower", Exact(1), |a| {
        Ok(Value::from(args::string(&a[0])?.to_lowercase()))
    });
    m.insert_with_arity("title", Exact(1), |a| {
        Ok(Value::from(title(args::string(&a[0])?, true)))
    });
    m.insert_with_arity("trimSpace", Exact(1), |a| {
        Ok(Value::from(args::string(&a[0])?.trim()))
    });
    m.insert_with_arity("join", Exact(2), |a| {
        let sep = args::string(&a[0])?;
        Ok(Value::from(args::strings(&a[1])?.join(sep)))
    });
    m.insert_with_arity("match", Exact(2), re_match);
    m.insert_with_arity("safeHtml", Exact(1), |a| {
        Ok(Value::from(args::string(&a[0])?))
    });
    m.insert_with_arity("safeUrl", Exact(1), |a| {
        Ok(Value::from(args::string(&a[0])?))
    });
    m.insert_with_arity("urlUnescape", Exact(1), |a| {
        Ok(Value::from(query_unescape(args::string(&a[0])?)?))
    });
    m.insert_with_arity("reReplaceAll", Exact(3), re_replace_all);
    m.insert("stringSlice", |a| {
        a.iter()
            .map(|v| args::string(v).map(Value::from))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::from)
    });
    m.insert_with_arity("date", Exact(2), |a| {
        let layout = args::string(&a[0])?;
        Ok(Value::from(time_arg(&a[1])?.format(layout)))
    });
    m.insert_with_arity("tz", Exact(2), |a| {
        let name = args::string(&a[0])?;
        let t = time_arg(&a[1])?;
        Ok(t.in_zone(load_location(name)?).value())
    });
    m.insert_with_arity("since", Exact(1), |a| {
        let t = time_arg(&a[0])?;
        let d = jiff::Timestamp::now().as_nanosecond() - t.timestamp().as_nanosecond();
        let d = i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX });
        Ok(Duration(d).value())
    });
    m.insert_with_arity("humanizeDuration", Exact(1), |a| {
        Ok(Value::from(humanize_duration(to_float(&a[0])?)))
    });
    m.insert_with_arity("toJson", Exact(1), |a| {
        crate::json::marshal(&a[0]).map(Value::from)
    });
    m
}

/// Go's `time.LoadLocation`.
fn load_location(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        _ => TimeZone::get(name).map_err(|_| format!("unknown time zone {name}")),
    }
}

/// Go's `url.QueryUnescape`.
fn query_unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                let Some(hex) = hex else {
                    let bad: String = s[i..].chars().take(3).collect();
                    return Err(format!("invalid URL escape {}", crate::gofmt::quote(&bad)));
                };
                out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Alertmanager's `KV`: a label or annotation set (`map[string]string`) with methods.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kv(pub Arc<BTreeMap<String, String>>);

impl Kv {
    pub fn new(map: BTreeMap<String, String>) -> Kv {
        Kv(Arc::new(map))
    }

    pub fn value(self) -> Value {
        Value::object(self)
    }

    /// The pairs sorted by name, with `alertname` first.
    pub fn sorted_pairs(&self) -> Pairs {
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(self.0.len());
        if let Some(v) = self.0.get("alertname") {
            pairs.push(("alertname".to_string(), v.clone()));
        }
        pairs.extend(
            self.0
                .iter()
                .filter(|(k, _)| *k != "alertname")
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        Pairs(pairs)
    }
}

impl Object for Kv {
    fn type_name(&self) -> &str {
        "template.KV"
    }

    fn method(&self, name: &str, argv: &[Value]) -> Option<Result<Value, String>> {
        let r = match name {
            "SortedPairs" => Ok(self.sorted_pairs().value()),
            "Names" => Ok(self.sorted_pairs().names()),
            "Values" => Ok(self.sorted_pairs().values()),
            "String" => Ok(Value::from(self.sorted_pairs().to_string())),
            "Remove" => match argv {
                [keys] => args::strings(keys).map(|keys| {
                    let mut m = (*self.0).clone();
                    for k in keys {
                        m.remove(&k);
                    }
                    Kv::new(m).value()
                }),
                _ => Err(format!(
                    "wrong number of args for Remove: want 1 got {}",
                    argv.len()
                )),
            },
            _ => return None,
        };
        Some(r)
    }

    fn underlying(&self) -> Option<Value> {
        Some(Value::StrMap(self.0.clone()))
    }

    fn json(&self) -> Option<Value> {
        self.underlying()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Alertmanager's `Pairs`: a sorted list of name/value pairs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pairs(pub Vec<(String, String)>);

impl Pairs {
    pub fn value(self) -> Value {
        Value::object(self)
    }

    fn names(&self) -> Value {
        Value::list(self.0.iter().map(|(k, _)| Value::from(k.as_str())))
    }

    fn values(&self) -> Value {
        Value::list(self.0.iter().map(|(_, v)| Value::from(v.as_str())))
    }
}

impl std::fmt::Display for Pairs {
    /// `a=1, b=2`, as Alertmanager's `Pairs.String`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl Object for Pairs {
    fn type_name(&self) -> &str {
        "template.Pairs"
    }

    fn method(&self, name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        Some(Ok(match name {
            "Names" => self.names(),
            "Values" => self.values(),
            "String" => Value::from(self.to_string()),
            _ => return None,
        }))
    }

    fn underlying(&self) -> Option<Value> {
        Some(Value::list(self.0.iter().map(|(k, v)| {
            Value::object(Pair {
                name: k.clone(),
                value: v.clone(),
            })
        })))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// One element of [`Pairs`], with fields `Name` and `Value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub name: String,
    pub value: String,
}

impl Object for Pair {
    fn type_name(&self) -> &str {
        "template.Pair"
    }

    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "Name" => Some(Value::from(self.name.as_str())),
            "Value" => Some(Value::from(self.value.as_str())),
            _ => None,
        }
    }

    fn display(&self) -> Option<String> {
        // Go prints a struct without a String method as {field field}.
        Some(format!("{{{} {}}}", self.name, self.value))
    }

    fn json(&self) -> Option<Value> {
        Some(Value::map([
            ("Name", Value::from(self.name.as_str())),
            ("Value", Value::from(self.value.as_str())),
        ]))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Alertmanager's `Alerts`: a list of alerts with `Firing` and `Resolved`, which select the
/// alerts whose `Status` field is `firing` or `resolved`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Alerts(pub Arc<Vec<Value>>);

impl Alerts {
    pub fn new(alerts: Vec<Value>) -> Alerts {
        Alerts(Arc::new(alerts))
    }

    pub fn value(self) -> Value {
        Value::object(self)
    }

    fn with_status(&self, status: &str) -> Value {
        Value::list(
            self.0
                .iter()
                .filter(|a| alert_status(a).as_deref() == Some(status))
                .cloned(),
        )
    }
}

fn alert_status(a: &Value) -> Option<String> {
    let s = match a {
        Value::Map(m) => m.get("Status").cloned(),
        Value::Object(o) => o.field("Status"),
        _ => None,
    }?;
    s.as_str().map(str::to_string)
}

impl Object for Alerts {
    fn type_name(&self) -> &str {
        "template.Alerts"
    }

    fn method(&self, name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        Some(Ok(match name {
            "Firing" => self.with_status("firing"),
            "Resolved" => self.with_status("resolved"),
            _ => return None,
        }))
    }

    fn underlying(&self) -> Option<Value> {
        Some(Value::List(self.0.clone()))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The time argument type Alertmanager's `date`, `tz` and `since` take.
pub type AlertTime = Time;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_methods() {
        let kv = Kv::new(BTreeMap::from([
            ("zone".to_string(), "a".to_string()),
            ("alertname".to_string(), "Down".to_string()),
            ("job".to_string(), "api".to_string()),
        ]));
        assert_eq!(
            kv.sorted_pairs().to_string(),
            "alertname=Down, job=api, zone=a"
        );
        assert_eq!(query_unescape("a%20b+c").unwrap(), "a b c");
        assert!(query_unescape("%zz").is_err());
    }
}
