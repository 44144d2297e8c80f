//! Alerts as Alertmanager holds them: label set, annotations, activity range, and the
//! fingerprint, merge and ordering rules that decide what a notification contains.

use std::cmp::Ordering;
use std::fmt::Write as _;

use model::Labels;
use model::labels::quote_go;

use crate::time::Time;

/// An alert received from a client (Prometheus, amtool, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: Time,
    /// `None` only in notifications, for alerts that are still firing (Go's zero time).
    pub ends_at: Option<Time>,
    pub generator_url: String,
    pub updated_at: Time,
    /// True when `ends_at` was set from `resolve_timeout` rather than by the client.
    pub timeout: bool,
}

// compat: prometheus/common's LabelSet.Fingerprint is FNV-1a 64 over `name 0xff value 0xff`.
const FNV_OFFSET: u64 = 14_695_981_039_346_656_037;
const FNV_PRIME: u64 = 1_099_511_628_211;

fn fnv_add(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Alertmanager's fingerprint of a label set (also the alert's identity).
pub fn fingerprint(labels: &Labels) -> u64 {
    let mut h = FNV_OFFSET;
    for l in labels.iter() {
        h = fnv_add(h, l.name.as_bytes());
        h = fnv_add(h, &[0xff]);
        h = fnv_add(h, l.value.as_bytes());
        h = fnv_add(h, &[0xff]);
    }
    h
}

/// A fingerprint as the API and payloads print it.
pub fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

/// Go's `model.LabelSet.String()`: `{a="1", b="2"}`.
// compat: Go sorts the formatted `name="value"` strings, not the names, so `a1` comes before `a`.
pub fn labelset_string(labels: &Labels) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={}", l.name, quote_go(l.value)))
        .collect();
    parts.sort();
    let mut out = String::with_capacity(parts.iter().map(|p| p.len() + 2).sum::<usize>() + 2);
    out.push('{');
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{p}");
    }
    out.push('}');
    out
}

/// Go's `model.LabelSet.Before`: fewer labels first, then by the first differing label in the
/// sorted union of names (a missing label sorts first), values compared bytewise.
pub fn labelset_before(a: &Labels, b: &Labels) -> bool {
    if a.len() != b.len() {
        return a.len() < b.len();
    }
    let mut names: Vec<&str> = a.iter().chain(b.iter()).map(|l| l.name).collect();
    names.sort_unstable();
    for n in names {
        let Some(av) = a.get(n) else { return true };
        let Some(bv) = b.get(n) else { return false };
        match av.cmp(bv) {
            Ordering::Less => return true,
            Ordering::Greater => return false,
            Ordering::Equal => {}
        }
    }
    false
}

/// Order of alerts in a notification: by `job`, then `instance` (alerts that have the label come
/// first), then by label set.
pub fn alert_order(a: &Alert, b: &Alert) -> Ordering {
    for key in ["job", "instance"] {
        match (a.labels.get(key), b.labels.get(key)) {
            (None, None) => continue,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    if labelset_before(&a.labels, &b.labels) {
        Ordering::Less
    } else if labelset_before(&b.labels, &a.labels) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

impl Alert {
    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.labels)
    }

    /// The hash the notification log records (xxhash64 of the sorted labels).
    pub fn nflog_hash(&self) -> u64 {
        self.labels.stable_hash()
    }

    /// Whether the alert is resolved at `t` (it has an end time that is not after `t`).
    pub fn resolved_at(&self, t: Time) -> bool {
        self.ends_at.is_some_and(|e| e <= t)
    }

    /// `"resolved"` or `"firing"` at `t`.
    pub fn status_at(&self, t: Time) -> &'static str {
        if self.resolved_at(t) {
            "resolved"
        } else {
            "firing"
        }
    }

    /// Merges a newer version of the same alert into this one, keeping the earliest start and
    /// the latest explicit end, as Alertmanager does when updates overlap.
    pub fn merge(&self, o: &Alert, now: Time) -> Alert {
        if o.updated_at < self.updated_at {
            return o.merge(self, now);
        }
        let mut res = o.clone();
        if self.starts_at < o.starts_at {
            res.starts_at = self.starts_at;
        }
        if o.resolved_at(now) {
            if self.resolved_at(now) && self.ends_at > o.ends_at {
                res.ends_at = self.ends_at;
            }
        } else if self.ends_at > o.ends_at && !self.timeout {
            res.ends_at = self.ends_at;
        }
        res
    }
}

/// Whether label name `s` is valid for Alertmanager 0.25 (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_alertmanager() {
        // Values observed from Debian's Alertmanager 0.25.
        let l = Labels::from_pairs([
            ("alertname", "A"),
            ("env", "prod"),
            ("job", "j"),
            ("instance", "i1"),
        ]);
        assert_eq!(fingerprint_hex(fingerprint(&l)), "86f03391b6eb9fcf");
        let l = Labels::from_pairs([("a", "b")]);
        assert_eq!(fingerprint_hex(fingerprint(&l)), "d2b371819297f98a");
    }

    #[test]
    fn labelset_string_sorts_formatted_pairs() {
        let l = Labels::from_pairs([("a", "x"), ("a1", "y"), ("b", "q\"")]);
        assert_eq!(labelset_string(&l), r#"{a1="y", a="x", b="q\""}"#);
        assert_eq!(labelset_string(&Labels::empty()), "{}");
    }

    #[test]
    fn before_orders_like_go() {
        let a = Labels::from_pairs([("a", "1")]);
        let b = Labels::from_pairs([("a", "2")]);
        let c = Labels::from_pairs([("b", "0")]);
        let two = Labels::from_pairs([("a", "0"), ("b", "0")]);
        assert!(labelset_before(&a, &b) && !labelset_before(&b, &a));
        assert!(labelset_before(&a, &two));
        // `c` lacks `a`, which comes first in the union: c is before a.
        assert!(labelset_before(&c, &a) && !labelset_before(&a, &c));
        assert!(!labelset_before(&a, &a));
    }
}
