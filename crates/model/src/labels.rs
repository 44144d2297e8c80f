//! Label sets.
//!
//! A [`Labels`] is an immutable, sorted set of name/value pairs stored in one shared allocation:
//! each string is preceded by its length, encoded in ASCII-only bytes so the whole buffer stays a
//! valid `str`. One allocation per series keeps the head small, and clones are a reference count.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";
/// Label names starting with this prefix are reserved for internal use and dropped after relabeling.
pub const RESERVED_PREFIX: &str = "__";
/// Meta labels from service discovery.
pub const META_PREFIX: &str = "__meta_";
pub const ADDRESS_LABEL: &str = "__address__";
pub const SCHEME_LABEL: &str = "__scheme__";
pub const METRICS_PATH_LABEL: &str = "__metrics_path__";
pub const SCRAPE_INTERVAL_LABEL: &str = "__scrape_interval__";
pub const SCRAPE_TIMEOUT_LABEL: &str = "__scrape_timeout__";
pub const PARAM_PREFIX: &str = "__param_";
pub const TMP_PREFIX: &str = "__tmp_";
pub const JOB_LABEL: &str = "job";
pub const INSTANCE_LABEL: &str = "instance";
pub const BUCKET_LABEL: &str = "le";
pub const QUANTILE_LABEL: &str = "quantile";

/// One borrowed label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// An immutable, sorted label set without duplicate names. Equality and hashing are by content.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Labels {
    data: Arc<str>,
}

impl Default for Labels {
    fn default() -> Self {
        Self::empty()
    }
}

// Lengths are written in 7-bit ASCII groups: bit 6 says "more groups follow", bits 0-5 carry the
// value, most significant group first. ASCII bytes are char boundaries, so slicing stays valid.
fn push_len(out: &mut String, mut len: usize) {
    let mut groups = [0u8; 8];
    let mut n = 0;
    loop {
        groups[n] = (len & 0x3f) as u8;
        n += 1;
        len >>= 6;
        if len == 0 {
            break;
        }
    }
    for i in (0..n).rev() {
        let more = if i > 0 { 0x40 } else { 0 };
        out.push((groups[i] | more) as char);
    }
}

fn read_len(bytes: &[u8], pos: &mut usize) -> usize {
    let mut v = 0usize;
    loop {
        let b = bytes[*pos];
        *pos += 1;
        v = (v << 6) | (b & 0x3f) as usize;
        if b & 0x40 == 0 {
            return v;
        }
    }
}

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        static EMPTY: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
        Labels {
            data: EMPTY.get_or_init(|| Arc::from("")).clone(),
        }
    }

    /// Builds a label set from pairs in any order. For duplicate names the last one wins; empty
    /// values are kept (use [`LabelsBuilder`] to drop them).
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut v: Vec<(N, V)> = pairs.into_iter().collect();
        // Stable sort keeps input order among equal names so "last wins" below is well defined.
        v.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let mut out: Vec<(&str, &str)> = Vec::with_capacity(v.len());
        for (n, val) in &v {
            match out.last_mut() {
                Some(last) if last.0 == n.as_ref() => last.1 = val.as_ref(),
                _ => out.push((n.as_ref(), val.as_ref())),
            }
        }
        Self::from_sorted(out)
    }

    /// Builds from pairs already sorted by name with unique names (checked in debug builds).
    pub fn from_sorted<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut s = String::new();
        let mut prev: Option<&str> = None;
        for (n, v) in pairs {
            debug_assert!(
                prev.is_none_or(|p| p < n),
                "labels not sorted/unique: {prev:?} {n}"
            );
            prev = Some(n);
            push_len(&mut s, n.len());
            s.push_str(n);
            push_len(&mut s, v.len());
            s.push_str(v);
        }
        if s.is_empty() {
            return Self::empty();
        }
        Labels { data: Arc::from(s) }
    }

    /// Iterates over the labels in name order.
    pub fn iter(&self) -> LabelsIter<'_> {
        LabelsIter {
            data: &self.data,
            pos: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|l| l.name == name).map(|l| l.value)
    }

    /// The value of `name`, or "" when absent (Prometheus's `Labels.Get`).
    pub fn get_or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// A hash that is stable across processes and equal to Prometheus's `Labels.Hash`
    /// (xxhash64 over `name 0xff value 0xff` for each label).
    pub fn stable_hash(&self) -> u64 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        for l in self.iter() {
            h.update(l.name.as_bytes());
            h.update(&[0xff]);
            h.update(l.value.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }

    /// Hash over only the named labels (`names` sorted), as PromQL's `by (...)` grouping uses.
    pub fn hash_for_labels(&self, names: &[impl AsRef<str>]) -> u64 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        for l in self
            .iter()
            .filter(|l| names.iter().any(|n| n.as_ref() == l.name))
        {
            h.update(l.name.as_bytes());
            h.update(&[0xff]);
            h.update(l.value.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }

    /// Hash over all labels except the named ones and `__name__`, as `without (...)` grouping uses.
    pub fn hash_without_labels(&self, names: &[impl AsRef<str>]) -> u64 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        for l in self
            .iter()
            .filter(|l| l.name != METRIC_NAME && !names.iter().any(|n| n.as_ref() == l.name))
        {
            h.update(l.name.as_bytes());
            h.update(&[0xff]);
            h.update(l.value.as_bytes());
            h.update(&[0xff]);
        }
        h.digest()
    }

    /// A builder starting from this set.
    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder::from(self)
    }

    /// A copy without the metric name.
    pub fn without_metric_name(&self) -> Labels {
        if !self.contains(METRIC_NAME) {
            return self.clone();
        }
        Labels::from_sorted(
            self.iter()
                .filter(|l| l.name != METRIC_NAME)
                .map(|l| (l.name, l.value)),
        )
    }

    /// Owned pairs, for serialisation and tests.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect()
    }

    /// Bytes used by this label set's buffer (for memory accounting).
    pub fn byte_size(&self) -> usize {
        self.data.len()
    }
}

/// Iterator over a [`Labels`].
pub struct LabelsIter<'a> {
    data: &'a str,
    pos: usize,
}

impl<'a> Iterator for LabelsIter<'a> {
    type Item = Label<'a>;

    fn next(&mut self) -> Option<Label<'a>> {
        if self.pos >= self.data.len() {
            return None;
        }
        let b = self.data.as_bytes();
        let nl = read_len(b, &mut self.pos);
        let name = &self.data[self.pos..self.pos + nl];
        self.pos += nl;
        let vl = read_len(b, &mut self.pos);
        let value = &self.data[self.pos..self.pos + vl];
        self.pos += vl;
        Some(Label { name, value })
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = Label<'a>;
    type IntoIter = LabelsIter<'a>;
    fn into_iter(self) -> LabelsIter<'a> {
        self.iter()
    }
}

impl Ord for Labels {
    /// Prometheus's `labels.Compare`: label by label, name then value; a prefix sorts first.
    fn cmp(&self, other: &Self) -> Ordering {
        let mut a = self.iter();
        let mut b = other.iter();
        loop {
            match (a.next(), b.next()) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => {
                    let c = x.name.cmp(y.name).then_with(|| x.value.cmp(y.value));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
            }
        }
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Labels {
    /// `{__name__="up", job="x"}` like Prometheus's `Labels.String`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={}", l.name, quote_go(l.value))?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        for l in self.iter() {
            m.serialize_entry(l.name, l.value)?;
        }
        m.end()
    }
}

impl<'de> serde::Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        Ok(Labels::from_sorted(
            m.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        ))
    }
}

/// Quotes a string the way Go's `strconv.Quote` does for printable text.
pub fn quote_go(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A mutable label set used while relabelling or building target labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelsBuilder {
    // Sorted by name, unique.
    pairs: Vec<(String, String)>,
}

impl From<&Labels> for LabelsBuilder {
    fn from(l: &Labels) -> Self {
        LabelsBuilder {
            pairs: l.to_pairs(),
        }
    }
}

impl LabelsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `name` to `value`; an empty value deletes the label, as in Prometheus.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let name = name.into();
        let value = value.into();
        match self.pairs.binary_search_by(|p| p.0.as_str().cmp(&name)) {
            Ok(i) if value.is_empty() => {
                self.pairs.remove(i);
            }
            Ok(i) => self.pairs[i].1 = value,
            Err(_) if value.is_empty() => {}
            Err(i) => self.pairs.insert(i, (name, value)),
        }
        self
    }

    pub fn del(&mut self, name: &str) -> &mut Self {
        if let Ok(i) = self.pairs.binary_search_by(|p| p.0.as_str().cmp(name)) {
            self.pairs.remove(i);
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|p| p.0.as_str().cmp(name))
            .ok()
            .map(|i| self.pairs[i].1.as_str())
    }

    /// Keeps only labels for which `f(name, value)` is true.
    pub fn retain(&mut self, mut f: impl FnMut(&str, &str) -> bool) -> &mut Self {
        self.pairs.retain(|(n, v)| f(n, v));
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = Label<'_>> {
        self.pairs.iter().map(|(n, v)| Label { name: n, value: v })
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn labels(&self) -> Labels {
        Labels::from_sorted(self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }
}

/// Builds label sets one after another in a reused buffer, for readers of many series (a
/// block index): pairs are pushed in name order and [`LabelsBuf::finish`] makes the set with
/// one allocation (building through pairs, a `String` and the shared buffer takes four or
/// five). Pairs that turn out not to be sorted and unique, e.g. from a damaged file, give the
/// set [`Labels::from_pairs`] would build.
#[derive(Debug, Default)]
pub struct LabelsBuf {
    text: String,
    /// Byte range of the last name pushed.
    prev: (usize, usize),
    unsorted: bool,
}

impl LabelsBuf {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new set.
    pub fn clear(&mut self) {
        self.text.clear();
        self.prev = (0, 0);
        self.unsorted = false;
    }

    /// Adds a pair after the ones pushed since [`LabelsBuf::clear`].
    pub fn push(&mut self, name: &str, value: &str) {
        if !self.text.is_empty() && name <= &self.text[self.prev.0..self.prev.1] {
            self.unsorted = true;
        }
        push_len(&mut self.text, name.len());
        let start = self.text.len();
        self.text.push_str(name);
        self.prev = (start, self.text.len());
        push_len(&mut self.text, value.len());
        self.text.push_str(value);
    }

    /// The set of the pairs pushed since [`LabelsBuf::clear`].
    pub fn finish(&self) -> Labels {
        if self.text.is_empty() {
            return Labels::empty();
        }
        if self.unsorted {
            let it = LabelsIter {
                data: &self.text,
                pos: 0,
            };
            return Labels::from_pairs(it.map(|l| (l.name, l.value)));
        }
        Labels {
            data: Arc::from(self.text.as_str()),
        }
    }
}

/// `labels!{"a" => "b", ...}` for tests and literals.
#[macro_export]
macro_rules! labels {
    ($($k:expr => $v:expr),* $(,)?) => {
        $crate::labels::Labels::from_pairs([$(($k, $v)),*])
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_sorted_and_dedup() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3")]);
        assert_eq!(
            l.to_pairs(),
            vec![("a".into(), "1".into()), ("b".into(), "3".into())]
        );
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn long_strings_and_unicode() {
        let long = "x".repeat(100_000);
        let l = Labels::from_pairs([("name", long.as_str()), ("ü", "ß\n\"")]);
        assert_eq!(l.get("name").map(str::len), Some(100_000));
        assert_eq!(l.get("ü"), Some("ß\n\""));
        for len in [0, 1, 63, 64, 65, 4095, 4096, 4097, 262_144] {
            let v = "v".repeat(len);
            let l = Labels::from_pairs([("a", v.as_str()), ("b", "")]);
            assert_eq!(l.get("a").map(str::len), Some(len));
            assert_eq!(l.get("b"), Some(""));
        }
    }

    #[test]
    fn hash_matches_prometheus_definition() {
        let l = labels! {"__name__" => "up", "job" => "a"};
        let mut buf = Vec::new();
        for (n, v) in [("__name__", "up"), ("job", "a")] {
            buf.extend_from_slice(n.as_bytes());
            buf.push(0xff);
            buf.extend_from_slice(v.as_bytes());
            buf.push(0xff);
        }
        assert_eq!(l.stable_hash(), xxhash_rust::xxh64::xxh64(&buf, 0));
        assert_ne!(
            l.stable_hash(),
            labels! {"__name__" => "up", "job" => "b"}.stable_hash()
        );
    }

    #[test]
    fn ordering_like_prometheus() {
        let a = labels! {"a" => "1"};
        let b = labels! {"a" => "1", "b" => "0"};
        let c = labels! {"a" => "2"};
        assert!(a < b && b < c);
        assert_eq!(a.cmp(&a.clone()), Ordering::Equal);
    }

    #[test]
    fn display_quotes() {
        let l = labels! {"__name__" => "up", "x" => "a\"b"};
        assert_eq!(l.to_string(), r#"{__name__="up", x="a\"b"}"#);
    }

    #[test]
    fn labels_buf_builds_sets_in_turn() {
        let mut b = LabelsBuf::new();
        assert_eq!(b.finish(), Labels::empty());
        for set in [
            vec![("__name__", "up"), ("job", "a")],
            vec![("a", ""), ("b", &*"x".repeat(5000))],
            vec![("z", "1")],
        ] {
            b.clear();
            for (n, v) in &set {
                b.push(n, v);
            }
            assert_eq!(b.finish(), Labels::from_sorted(set.iter().copied()));
        }
        // Unsorted or duplicate names (a damaged index) come out as from_pairs builds them.
        for set in [
            vec![("b", "1"), ("a", "2")],
            vec![("a", "1"), ("a", "2"), ("c", "3")],
        ] {
            b.clear();
            for (n, v) in &set {
                b.push(n, v);
            }
            assert_eq!(b.finish(), Labels::from_pairs(set.iter().copied()));
        }
    }

    #[test]
    fn builder_set_del() {
        let mut b = labels! {"a" => "1", "c" => "3"}.builder();
        b.set("b", "2").del("a").set("c", "");
        assert_eq!(b.labels(), labels! {"b" => "2"});
    }
}
