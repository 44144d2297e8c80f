//! Relabelling rules (`relabel_configs`, `metric_relabel_configs`, `write_relabel_configs`,
//! `alert_relabel_configs`) with Prometheus's semantics and validation messages.
//!
//! [`RelabelConfigRaw`] is the YAML shape; [`RelabelConfig`] is the validated rule with a compiled
//! regex, built by [`RelabelConfig::from_raw`] or deserialised directly. Label names are checked
//! against the classic pattern `[a-zA-Z_][a-zA-Z0-9_]*`, as Prometheus 2.42 does.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use md5::{Digest, Md5};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::labels::{Labels, LabelsBuilder, quote_go};
use crate::regex::{GoRegex, RegexError};

pub const DEFAULT_SEPARATOR: &str = ";";
pub const DEFAULT_REGEX: &str = "(.*)";
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Sets `target_label` to the expanded `replacement` when `regex` matches.
    Replace,
    /// Drops the target unless `regex` matches the source value.
    Keep,
    /// Drops the target when `regex` matches the source value.
    Drop,
    /// Drops the target unless the source value equals the value of `target_label`.
    KeepEqual,
    /// Drops the target when the source value equals the value of `target_label`.
    DropEqual,
    /// Sets `target_label` to a hash of the source value modulo `modulus`.
    HashMod,
    /// Copies each label whose name matches `regex` to the name given by `replacement`.
    LabelMap,
    /// Removes labels whose name matches `regex`.
    LabelDrop,
    /// Removes labels whose name does not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the lowercased source value.
    Lowercase,
    /// Sets `target_label` to the uppercased source value.
    Uppercase,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::Replace,
        Action::Keep,
        Action::Drop,
        Action::KeepEqual,
        Action::DropEqual,
        Action::HashMod,
        Action::LabelMap,
        Action::LabelDrop,
        Action::LabelKeep,
        Action::Lowercase,
        Action::Uppercase,
    ];

    /// The configuration name (`replace`, `hashmod`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = RelabelError;

    /// compat: Prometheus lowercases the action before looking it up, so `Replace` works.
    fn from_str(s: &str) -> Result<Self, RelabelError> {
        let lower = go_to_lower(s);
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == lower)
            .ok_or_else(|| RelabelError::UnknownAction(s.to_string()))
    }
}

/// A relabel rule Prometheus would reject, with Prometheus's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelabelError {
    #[error("unknown relabel action {}", quote_go(.0))]
    UnknownAction(String),
    #[error("relabel action cannot be empty")]
    EmptyAction,
    #[error(transparent)]
    Regex(#[from] RegexError),
    #[error("{} is not a valid label name", quote_go(.0))]
    InvalidSourceLabel(String),
    #[error("relabel configuration for hashmod requires non-zero modulus")]
    ZeroModulus,
    #[error("relabel configuration for {0} action requires 'target_label' value")]
    MissingTargetLabel(Action),
    #[error("{} is invalid 'target_label' for {action} action", quote_go(.target))]
    InvalidTargetLabel { target: String, action: Action },
    #[error("'replacement' can not be set for {0} action")]
    ReplacementNotAllowed(Action),
    #[error("{} is invalid 'replacement' for {action} action", quote_go(.replacement))]
    InvalidReplacement { replacement: String, action: Action },
    #[error("{0} action requires only 'source_labels' and `target_label`, and no other fields")]
    EqualityExtraFields(Action),
    #[error("{0} action requires only 'regex', and no other fields")]
    LabelFilterExtraFields(Action),
}

/// One relabel rule as written in YAML, defaults filled in.
///
/// Fields follow Prometheus's YAML decoding: a missing field takes the default, an explicit
/// `null` the empty value (so `replacement:` means `""`, and `regex:` means the empty regex).
/// `regex` is `None` when the field was absent, because Prometheus treats an explicit `regex`
/// differently from the default (see [`RelabelConfig::from_raw`]).
///
/// Serialising mirrors Prometheus's `/api/v1/status/config`: empty fields are omitted, and so is
/// a regex that was never set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfigRaw {
    #[serde(default, skip_serializing_if = "is_none_or_empty")]
    pub source_labels: Option<Vec<String>>,
    #[serde(
        default = "default_separator",
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub separator: String,
    #[serde(
        default,
        deserialize_with = "present_regex",
        serialize_with = "serialize_regex",
        skip_serializing_if = "Option::is_none"
    )]
    pub regex: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_zero",
        skip_serializing_if = "is_zero"
    )]
    pub modulus: u64,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub target_label: String,
    #[serde(
        default = "default_replacement",
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub replacement: String,
    #[serde(
        default = "default_action",
        deserialize_with = "null_as_empty",
        skip_serializing_if = "String::is_empty"
    )]
    pub action: String,
}

impl Default for RelabelConfigRaw {
    fn default() -> Self {
        RelabelConfigRaw {
            source_labels: None,
            separator: default_separator(),
            regex: None,
            modulus: 0,
            target_label: String::new(),
            replacement: default_replacement(),
            action: default_action(),
        }
    }
}

fn default_separator() -> String {
    DEFAULT_SEPARATOR.to_string()
}

fn default_replacement() -> String {
    DEFAULT_REPLACEMENT.to_string()
}

fn default_action() -> String {
    Action::Replace.as_str().to_string()
}

fn is_none_or_empty(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_none_or(Vec::is_empty)
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn null_as_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or_default())
}

fn present_regex<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?.unwrap_or_default()))
}

// compat: Prometheus writes an empty regex as `null`.
fn serialize_regex<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v.as_deref() {
        Some(r) if !r.is_empty() => s.serialize_str(r),
        _ => s.serialize_none(),
    }
}

/// A validated relabel rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelabelConfig {
    source_labels: Vec<String>,
    separator: String,
    regex: GoRegex,
    /// The regex as configured, `None` when it was left at the default.
    regex_source: Option<String>,
    modulus: u64,
    target_label: String,
    replacement: String,
    action: Action,
}

/// A `target_label` with `$1`/`${name}` references, or a `labelmap` replacement (Prometheus's
/// `relabelTarget`; `\w` is ASCII here because this is Go syntax).
static RELABEL_TARGET: LazyLock<GoRegex> = LazyLock::new(|| {
    GoRegex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$")
        .expect("BUG: constant regex compiles")
});

/// A classic Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

impl RelabelConfig {
    /// Validates a raw rule the way Prometheus does, in the same order, with the same messages.
    pub fn from_raw(raw: RelabelConfigRaw) -> Result<RelabelConfig, RelabelError> {
        use Action::*;

        if raw.action.is_empty() {
            return Err(RelabelError::EmptyAction);
        }
        let action: Action = raw.action.parse()?;
        let source_labels = raw.source_labels.clone().unwrap_or_default();
        if let Some(bad) = source_labels.iter().find(|n| !is_valid_label_name(n)) {
            return Err(RelabelError::InvalidSourceLabel(bad.clone()));
        }
        let regex = GoRegex::new(raw.regex.as_deref().unwrap_or(DEFAULT_REGEX))?;

        let target = raw.target_label.as_str();
        let invalid_target = || RelabelError::InvalidTargetLabel {
            target: target.to_string(),
            action,
        };
        let writes_target = matches!(action, Lowercase | Uppercase | KeepEqual | DropEqual);
        if action == HashMod && raw.modulus == 0 {
            return Err(RelabelError::ZeroModulus);
        }
        if target.is_empty() && (writes_target || matches!(action, Replace | HashMod)) {
            return Err(RelabelError::MissingTargetLabel(action));
        }
        if action == Replace {
            let valid = if target.contains('$') {
                RELABEL_TARGET.is_match(target)
            } else {
                is_valid_label_name(target)
            };
            if !valid {
                return Err(invalid_target());
            }
        }
        if writes_target && !is_valid_label_name(target) {
            return Err(invalid_target());
        }
        if writes_target && raw.replacement != DEFAULT_REPLACEMENT {
            return Err(RelabelError::ReplacementNotAllowed(action));
        }
        if action == LabelMap && !RELABEL_TARGET.is_match(&raw.replacement) {
            return Err(RelabelError::InvalidReplacement {
                replacement: raw.replacement,
                action,
            });
        }
        if action == HashMod && !is_valid_label_name(target) {
            return Err(invalid_target());
        }
        if matches!(action, KeepEqual | DropEqual)
            // compat: Prometheus compares the regex by identity with its default, so any
            // explicitly written regex is rejected here, even `(.*)`.
            && (raw.regex.is_some()
                || raw.modulus != 0
                || raw.separator != DEFAULT_SEPARATOR
                || raw.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(RelabelError::EqualityExtraFields(action));
        }
        if matches!(action, LabelDrop | LabelKeep)
            // compat: an explicit empty list (`source_labels: []`) counts as set.
            && (raw.source_labels.is_some()
                || !target.is_empty()
                || raw.modulus != 0
                || raw.separator != DEFAULT_SEPARATOR
                || raw.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(RelabelError::LabelFilterExtraFields(action));
        }

        Ok(RelabelConfig {
            source_labels,
            separator: raw.separator,
            regex,
            regex_source: raw.regex,
            modulus: raw.modulus,
            target_label: raw.target_label,
            replacement: raw.replacement,
            action,
        })
    }

    /// The rule in its YAML shape, as Prometheus would print it.
    pub fn to_raw(&self) -> RelabelConfigRaw {
        RelabelConfigRaw {
            source_labels: (!self.source_labels.is_empty()).then(|| self.source_labels.clone()),
            separator: self.separator.clone(),
            regex: self.regex_source.clone(),
            modulus: self.modulus,
            target_label: self.target_label.clone(),
            replacement: self.replacement.clone(),
            action: self.action.as_str().to_string(),
        }
    }

    pub fn action(&self) -> Action {
        self.action
    }

    pub fn source_labels(&self) -> &[String] {
        &self.source_labels
    }

    pub fn separator(&self) -> &str {
        &self.separator
    }

    pub fn regex(&self) -> &GoRegex {
        &self.regex
    }

    pub fn modulus(&self) -> u64 {
        self.modulus
    }

    pub fn target_label(&self) -> &str {
        &self.target_label
    }

    pub fn replacement(&self) -> &str {
        &self.replacement
    }

    /// The source label values joined by the separator; missing labels count as "".
    fn source_value(&self, b: &LabelsBuilder) -> String {
        match self.source_labels.as_slice() {
            [one] => b.get(one).unwrap_or("").to_string(),
            many => {
                let values: Vec<&str> = many.iter().map(|n| b.get(n).unwrap_or("")).collect();
                values.join(&self.separator)
            }
        }
    }

    /// Applies this rule; `false` means the label set is dropped.
    pub fn apply(&self, b: &mut LabelsBuilder) -> bool {
        let value = self.source_value(b);
        let target = self.target_label.as_str();
        match self.action {
            Action::Drop => return !self.regex.is_match(&value),
            Action::Keep => return self.regex.is_match(&value),
            Action::DropEqual => return b.get(target).unwrap_or("") != value,
            Action::KeepEqual => return b.get(target).unwrap_or("") == value,
            Action::Replace => self.replace(b, &value),
            Action::Lowercase => {
                b.set(target, go_to_lower(&value));
            }
            Action::Uppercase => {
                b.set(target, go_to_upper(&value));
            }
            Action::HashMod => {
                b.set(target, hash_mod(&value, self.modulus).to_string());
            }
            Action::LabelMap => {
                // Decide on a snapshot, so labels written by this rule are not matched again.
                let copies: Vec<(String, String)> = b
                    .iter()
                    .filter_map(|l| {
                        let name = self.regex.replace_all_expand(l.name, &self.replacement)?;
                        Some((name, l.value.to_string()))
                    })
                    .collect();
                for (name, value) in copies {
                    b.set(name, value);
                }
            }
            Action::LabelDrop => {
                b.retain(|name, _| !self.regex.is_match(name));
            }
            Action::LabelKeep => {
                b.retain(|name, _| self.regex.is_match(name));
            }
        }
        true
    }

    fn replace(&self, b: &mut LabelsBuilder, value: &str) {
        let Some(caps) = self.regex.captures(value) else {
            return;
        };
        let target = if self.target_label.contains('$') {
            caps.expand(&self.target_label)
        } else {
            self.target_label.clone()
        };
        // A template can expand to something that is not a label name; then nothing happens.
        if !is_valid_label_name(&target) {
            return;
        }
        let result = caps.expand(&self.replacement);
        if result.is_empty() {
            b.del(&target);
        } else {
            b.set(target, result);
        }
    }
}

/// compat: Prometheus hashes with MD5 and keeps the last 8 bytes as a big-endian integer, so
/// shards agree with stock Prometheus servers.
fn hash_mod(value: &str, modulus: u64) -> u64 {
    let sum = Md5::digest(value.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&sum[8..16]);
    u64::from_be_bytes(tail) % modulus
}

/// Go's `strings.ToLower`: the simple one-to-one mapping of each character, so no final-sigma
/// rule and `İ` becomes a plain `i`.
fn go_to_lower(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut it = c.to_lowercase();
            match (it.next(), it.next()) {
                (Some(l), None) => l,
                // The one multi-character lowercase mapping: U+0130 → "i\u{307}".
                _ => 'i',
            }
        })
        .collect()
}

/// Go's `strings.ToUpper`: the simple one-to-one mapping of each character. Where Unicode's full
/// mapping has several characters (`ß` → "SS") the simple one keeps the character, except for
/// the Greek letters with ypogegrammeni, which map to their prosgegrammeni forms.
fn go_to_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut it = c.to_uppercase();
            match (it.next(), it.next()) {
                (Some(u), None) => u,
                _ => {
                    let cp = c as u32;
                    let simple = match cp {
                        0x1f80..=0x1f87 | 0x1f90..=0x1f97 | 0x1fa0..=0x1fa7 => cp + 8,
                        0x1fb3 | 0x1fc3 | 0x1ff3 => cp + 9,
                        _ => cp,
                    };
                    char::from_u32(simple).unwrap_or(c)
                }
            }
        })
        .collect()
}

impl<'de> Deserialize<'de> for RelabelConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RelabelConfigRaw::deserialize(d)?;
        RelabelConfig::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

impl Serialize for RelabelConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_raw().serialize(s)
    }
}

/// Applies `cfgs` in order to a label set; `None` when a rule drops it.
pub fn process(labels: &Labels, cfgs: &[RelabelConfig]) -> Option<Labels> {
    if cfgs.is_empty() {
        return Some(labels.clone());
    }
    let mut b = labels.builder();
    process_builder(&mut b, cfgs).then(|| b.labels())
}

/// Applies `cfgs` in order to a builder; `false` when a rule drops the label set (the builder is
/// then left part-way).
pub fn process_builder(b: &mut LabelsBuilder, cfgs: &[RelabelConfig]) -> bool {
    cfgs.iter().all(|c| c.apply(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels;

    fn cfgs(yaml: &str) -> Vec<RelabelConfig> {
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}\n{e}"))
    }

    #[track_caller]
    fn check(input: Labels, yaml: &str, want: Option<Labels>) {
        assert_eq!(process(&input, &cfgs(yaml)), want, "{yaml}");
    }

    #[test]
    fn replace() {
        let abc = labels! {"a" => "foo", "b" => "bar", "c" => "baz"};
        check(
            abc.clone(),
            "- {source_labels: [a], regex: 'f(.*)', target_label: d, replacement: 'ch${1}-ch${1}'}",
            Some(labels! {"a" => "foo", "b" => "bar", "c" => "baz", "d" => "choo-choo"}),
        );
        // Two sources joined by the separator, then a rule reading the first rule's output.
        check(
            abc.clone(),
            r#"
- {source_labels: [a, b], regex: 'f(.*);(.*)r', target_label: a, replacement: 'b${1}${2}m'}
- {source_labels: [c, a], regex: '(b).*b(.*)ba(.*)', target_label: d, replacement: '$1$2$2$3'}
"#,
            Some(labels! {"a" => "boobam", "b" => "bar", "c" => "baz", "d" => "boooom"}),
        );
        // Regex not matching: nothing happens.
        check(
            labels! {"a" => "boo"},
            "- {source_labels: [a], regex: f, target_label: b, replacement: bar}",
            Some(labels! {"a" => "boo"}),
        );
        // Missing source label reads as "" and the default regex matches it.
        check(
            labels! {"a" => "x"},
            "- {source_labels: [missing], target_label: b, replacement: set}",
            Some(labels! {"a" => "x", "b" => "set"}),
        );
        // Default regex and replacement copy a value; custom separator.
        check(
            labels! {"a" => "1", "b" => "2"},
            "- {source_labels: [a, b, nope], separator: '-', target_label: c}",
            Some(labels! {"a" => "1", "b" => "2", "c" => "1-2-"}),
        );
        // An empty result deletes the target label.
        check(
            labels! {"a" => "x", "b" => "y"},
            "- {source_labels: [a], target_label: b, replacement: ''}",
            Some(labels! {"a" => "x"}),
        );
        check(
            labels! {"a" => "x", "b" => "y"},
            "- {source_labels: [missing], target_label: b}",
            Some(labels! {"a" => "x"}),
        );
        // Templates in target_label.
        check(
            labels! {"a" => "some-name-value"},
            "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${1}', replacement: '${2}'}",
            Some(labels! {"a" => "some-name-value", "name" => "value"}),
        );
        check(
            labels! {"a" => "some-name-value"},
            "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: 'x_$1', replacement: '$2'}",
            Some(labels! {"a" => "some-name-value", "x_name" => "value"}),
        );
        // A target that expands to an invalid name ("" or "0") is skipped.
        check(
            labels! {"a" => "some-name-0"},
            r#"
- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${3}', replacement: '${1}'}
- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', target_label: '${2}', replacement: '${1}'}
"#,
            Some(labels! {"a" => "some-name-0"}),
        );
        // `$1x` names group "1x", which does not exist (Go's rule): the value is empty.
        check(
            labels! {"a" => "v"},
            "- {source_labels: [a], regex: '(.*)', target_label: b, replacement: '$1x'}",
            Some(labels! {"a" => "v"}),
        );
        // Dot matches newline (Prometheus 3 anchoring).
        check(
            labels! {"a" => "x\ny"},
            "- {source_labels: [a], regex: 'x.(y)', target_label: b}",
            Some(labels! {"a" => "x\ny", "b" => "y"}),
        );
        // Real-life tag parsing.
        check(
            labels! {"__meta_sd_tags" => "path:/secret,job:some-job,label:foo=bar"},
            r#"
- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)path:(/[^,]+).*', target_label: __metrics_path__}
- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)job:([^,]+).*', target_label: job}
- {source_labels: [__meta_sd_tags], regex: '(?:.+,|^)label:([^=]+)=([^,]+).*', target_label: '${1}', replacement: '${2}'}
"#,
            Some(labels! {
                "__meta_sd_tags" => "path:/secret,job:some-job,label:foo=bar",
                "__metrics_path__" => "/secret",
                "job" => "some-job",
                "foo" => "bar",
            }),
        );
    }

    #[test]
    fn keep_and_drop() {
        let foo = labels! {"a" => "foo"};
        check(
            foo.clone(),
            "- {source_labels: [a], regex: '.*o.*', action: drop}",
            None,
        );
        check(
            foo.clone(),
            "- {source_labels: [a], regex: no-match, action: drop}",
            Some(foo.clone()),
        );
        // Anchored: `f|o` matches neither all of "foo".
        check(
            foo.clone(),
            "- {source_labels: [a], regex: 'f|o', action: drop}",
            Some(foo.clone()),
        );
        check(
            foo.clone(),
            "- {source_labels: [a], regex: no-match, action: keep}",
            None,
        );
        check(
            foo.clone(),
            "- {source_labels: [a], regex: 'f.*', action: keep}",
            Some(foo.clone()),
        );
        // A missing source is "", which `.+` does not match.
        check(
            foo.clone(),
            "- {source_labels: [b], regex: '.+', action: keep}",
            None,
        );
        check(
            foo.clone(),
            "- {source_labels: [b], regex: '', action: keep}",
            Some(foo.clone()),
        );
        // A drop stops processing.
        check(
            foo.clone(),
            "- {source_labels: [a], regex: '.*o.*', action: drop}\n- {target_label: x, replacement: y}",
            None,
        );
    }

    #[test]
    fn keepequal_dropequal() {
        let ports = labels! {"__tmp_port" => "1234", "__port1" => "1234", "__port2" => "5678"};
        let keep1 = "- {source_labels: [__tmp_port], action: keepequal, target_label: __port1}";
        let keep2 = "- {source_labels: [__tmp_port], action: keepequal, target_label: __port2}";
        let drop1 = "- {source_labels: [__tmp_port], action: dropequal, target_label: __port1}";
        let drop2 = "- {source_labels: [__tmp_port], action: dropequal, target_label: __port2}";
        check(ports.clone(), keep1, Some(ports.clone()));
        check(ports.clone(), keep2, None);
        check(ports.clone(), drop1, None);
        check(ports.clone(), drop2, Some(ports.clone()));
        // Both missing: "" == "".
        check(
            labels! {"a" => "1"},
            "- {source_labels: [x], action: keepequal, target_label: y}",
            Some(labels! {"a" => "1"}),
        );
        check(
            labels! {"a" => "1"},
            "- {source_labels: [x], action: dropequal, target_label: y}",
            None,
        );
    }

    #[test]
    fn hashmod() {
        // Expected values from Prometheus's own relabel tests.
        check(
            labels! {"a" => "foo", "b" => "bar", "c" => "baz"},
            "- {source_labels: [c], target_label: d, action: hashmod, modulus: 1000}",
            Some(labels! {"a" => "foo", "b" => "bar", "c" => "baz", "d" => "976"}),
        );
        check(
            labels! {"a" => "foo\nbar"},
            "- {source_labels: [a], target_label: b, action: hashmod, modulus: 1000}",
            Some(labels! {"a" => "foo\nbar", "b" => "734"}),
        );
        assert_eq!(hash_mod("anything", 1), 0);
        // Missing source hashes "".
        let out = process(
            &Labels::empty(),
            &cfgs("- {source_labels: [x], target_label: s, action: hashmod, modulus: 7}"),
        );
        assert_eq!(
            out.unwrap().get("s"),
            Some(hash_mod("", 7).to_string().as_str())
        );
    }

    #[test]
    fn labelmap() {
        check(
            labels! {"a" => "foo", "b1" => "bar", "b2" => "baz"},
            "- {regex: '(b.*)', replacement: 'bar_${1}', action: labelmap}",
            Some(
                labels! {"a" => "foo", "b1" => "bar", "b2" => "baz", "bar_b1" => "bar", "bar_b2" => "baz"},
            ),
        );
        check(
            labels! {"a" => "foo", "__meta_my_bar" => "aaa", "__meta_my_baz" => "bbb", "__meta_other" => "ccc"},
            "- {regex: '__meta_(my.*)', replacement: '${1}', action: labelmap}",
            Some(labels! {
                "a" => "foo", "__meta_my_bar" => "aaa", "__meta_my_baz" => "bbb",
                "__meta_other" => "ccc", "my_bar" => "aaa", "my_baz" => "bbb",
            }),
        );
        // A label produced by the rule is not mapped again in the same pass.
        check(
            labels! {"x" => "1"},
            "- {regex: '(x+)', replacement: 'x${1}', action: labelmap}",
            Some(labels! {"x" => "1", "xx" => "1"}),
        );
    }

    #[test]
    fn labeldrop_labelkeep() {
        let l = labels! {"a" => "foo", "b1" => "bar", "b2" => "baz"};
        check(
            l.clone(),
            "- {regex: '(b.*)', action: labelkeep}",
            Some(labels! {"b1" => "bar", "b2" => "baz"}),
        );
        check(
            l.clone(),
            "- {regex: '(b.*)', action: labeldrop}",
            Some(labels! {"a" => "foo"}),
        );
        check(
            l.clone(),
            "- {regex: 'b', action: labeldrop}",
            Some(l.clone()),
        );
        // From Prometheus issue 12283: drop, re-add and keep in one chain.
        check(
            labels! {"__meta_kubernetes_pod_container_port_name" => "foo", "__meta_kubernetes_pod_annotation_XXX_metrics_port" => "9091"},
            r#"
- {regex: '^__meta_kubernetes_pod_container_port_name$', action: labeldrop}
- {source_labels: [__meta_kubernetes_pod_annotation_XXX_metrics_port], regex: '(.+)', replacement: metrics, target_label: __meta_kubernetes_pod_container_port_name}
- {source_labels: [__meta_kubernetes_pod_container_port_name], regex: '^metrics$', action: keep}
"#,
            Some(labels! {
                "__meta_kubernetes_pod_annotation_XXX_metrics_port" => "9091",
                "__meta_kubernetes_pod_container_port_name" => "metrics",
            }),
        );
    }

    #[test]
    fn lowercase_uppercase() {
        check(
            labels! {"foo" => "bAr123Foo"},
            "- {source_labels: [foo], action: uppercase, target_label: foo_uppercase}\n- {source_labels: [foo], action: lowercase, target_label: foo_lowercase}",
            Some(
                labels! {"foo" => "bAr123Foo", "foo_lowercase" => "bar123foo", "foo_uppercase" => "BAR123FOO"},
            ),
        );
        // Empty value deletes the target.
        check(
            labels! {"t" => "x"},
            "- {source_labels: [missing], action: lowercase, target_label: t}",
            Some(Labels::empty()),
        );
        // Go's simple case mappings, not Rust's full ones.
        assert_eq!(go_to_lower("ΟΔΟΣ İ"), "οδοσ i");
        assert_eq!(go_to_upper("straße ﬁ ᾳ ῳ ᾀ ǆ"), "STRAßE ﬁ ᾼ ῼ ᾈ Ǆ");
        assert_eq!(go_to_upper("é"), "É");
    }

    #[test]
    fn builder_api() {
        let cfg = cfgs("- {target_label: job, replacement: x}");
        let mut b = labels! {"a" => "1"}.builder();
        assert!(process_builder(&mut b, &cfg));
        assert_eq!(b.labels(), labels! {"a" => "1", "job" => "x"});
        let drop = cfgs("- {source_labels: [a], regex: '1', action: drop}");
        assert!(!process_builder(&mut b, &drop));
        assert_eq!(
            process(&labels! {"a" => "1"}, &[]),
            Some(labels! {"a" => "1"})
        );
    }

    #[track_caller]
    fn invalid(yaml: &str, want: &str) {
        let raw: RelabelConfigRaw =
            serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}\n{e}"));
        assert_eq!(
            RelabelConfig::from_raw(raw).unwrap_err().to_string(),
            want,
            "{yaml}"
        );
        let err = serde_saphyr::from_str::<RelabelConfig>(yaml)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{yaml}: {err}");
    }

    #[test]
    fn validation_errors() {
        invalid("action: nope", r#"unknown relabel action "nope""#);
        invalid("action: null", "relabel action cannot be empty");
        invalid(
            "{source_labels: [a-b], target_label: x}",
            r#""a-b" is not a valid label name"#,
        );
        invalid(
            "{regex: '(foo', target_label: x}",
            "error parsing regexp: missing closing ): `(foo`",
        );
        invalid(
            "{action: hashmod, target_label: x}",
            "relabel configuration for hashmod requires non-zero modulus",
        );
        for action in [
            "replace",
            "hashmod",
            "lowercase",
            "uppercase",
            "keepequal",
            "dropequal",
        ] {
            invalid(
                &format!("{{action: {action}, modulus: 1}}"),
                &format!("relabel configuration for {action} action requires 'target_label' value"),
            );
        }
        invalid(
            "{target_label: '0x'}",
            r#""0x" is invalid 'target_label' for replace action"#,
        );
        invalid(
            "{target_label: 'a-b'}",
            r#""a-b" is invalid 'target_label' for replace action"#,
        );
        invalid(
            "{target_label: '-${3}'}",
            r#""-${3}" is invalid 'target_label' for replace action"#,
        );
        invalid(
            "{target_label: '0${3}'}",
            r#""0${3}" is invalid 'target_label' for replace action"#,
        );
        invalid(
            "{target_label: '${'}",
            r#""${" is invalid 'target_label' for replace action"#,
        );
        invalid(
            "{action: lowercase, target_label: '${3}'}",
            r#""${3}" is invalid 'target_label' for lowercase action"#,
        );
        invalid(
            "{action: keepequal, target_label: 'a.b'}",
            r#""a.b" is invalid 'target_label' for keepequal action"#,
        );
        invalid(
            "{action: hashmod, modulus: 2, target_label: '$1'}",
            r#""$1" is invalid 'target_label' for hashmod action"#,
        );
        invalid(
            "{action: uppercase, target_label: x, replacement: y}",
            "'replacement' can not be set for uppercase action",
        );
        invalid(
            "{action: labelmap, replacement: 'a-$1'}",
            r#""a-$1" is invalid 'replacement' for labelmap action"#,
        );
        invalid(
            "{action: labelmap, replacement: ''}",
            r#""" is invalid 'replacement' for labelmap action"#,
        );
        let eq = "action requires only 'source_labels' and `target_label`, and no other fields";
        invalid(
            "{action: keepequal, target_label: x, regex: '(.*)'}",
            &format!("keepequal {eq}"),
        );
        invalid(
            "{action: dropequal, target_label: x, separator: ','}",
            &format!("dropequal {eq}"),
        );
        invalid(
            "{action: dropequal, target_label: x, modulus: 3}",
            &format!("dropequal {eq}"),
        );
        let only = "action requires only 'regex', and no other fields";
        invalid(
            "{action: labeldrop, source_labels: [a]}",
            &format!("labeldrop {only}"),
        );
        invalid(
            "{action: labeldrop, source_labels: []}",
            &format!("labeldrop {only}"),
        );
        invalid(
            "{action: labelkeep, target_label: x}",
            &format!("labelkeep {only}"),
        );
        invalid(
            "{action: labelkeep, replacement: x}",
            &format!("labelkeep {only}"),
        );
        invalid(
            "{action: labelkeep, separator: x}",
            &format!("labelkeep {only}"),
        );
        invalid(
            "{action: labelkeep, modulus: 1}",
            &format!("labelkeep {only}"),
        );
        assert!(serde_saphyr::from_str::<RelabelConfig>("{target_label: x, foo: 1}").is_err());
    }

    #[test]
    fn valid_edge_cases() {
        for target in [
            "label",
            "label${1}",
            "${1}label",
            "${1}",
            "$1",
            "asd$2asd",
            "_${1}_",
            "foo${bar}foo",
        ] {
            let yaml = format!("{{target_label: '{target}'}}");
            assert!(
                serde_saphyr::from_str::<RelabelConfig>(&yaml).is_ok(),
                "{target}"
            );
        }
        let c: RelabelConfig =
            serde_saphyr::from_str("{action: HashMod, modulus: 2, target_label: x}").unwrap();
        assert_eq!(c.action(), Action::HashMod);
        let c: RelabelConfig =
            serde_saphyr::from_str("{action: LabelDrop, source_labels: null}").unwrap();
        assert_eq!(c.action(), Action::LabelDrop);
        // `replacement:` with no value means "", which deletes the target.
        let c: RelabelConfig =
            serde_saphyr::from_str("{target_label: x, replacement: null}").unwrap();
        assert_eq!(c.replacement(), "");
        // `regex:` with no value is the empty regex.
        let c: RelabelConfig = serde_saphyr::from_str("{target_label: x, regex: null}").unwrap();
        assert!(c.regex().is_match("") && !c.regex().is_match("a"));
        let c: RelabelConfig =
            serde_saphyr::from_str("{action: keepequal, source_labels: [a], target_label: b}")
                .unwrap();
        assert_eq!(c.regex().as_str(), DEFAULT_REGEX);
    }

    #[test]
    fn serialize_like_prometheus() {
        let c = cfgs(
            r#"
- source_labels: [a, b]
  target_label: t
- action: Drop
  regex: 'x.*'
  source_labels: [a]
- {action: hashmod, source_labels: [a], modulus: 8, target_label: shard}
- {action: labelmap, regex: '__meta_(.+)', replacement: '$1'}
"#,
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"source_labels": ["a", "b"], "separator": ";", "target_label": "t", "replacement": "$1", "action": "replace"},
                {"source_labels": ["a"], "separator": ";", "regex": "x.*", "replacement": "$1", "action": "drop"},
                {"source_labels": ["a"], "separator": ";", "modulus": 8, "target_label": "shard", "replacement": "$1", "action": "hashmod"},
                {"separator": ";", "regex": "__meta_(.+)", "replacement": "$1", "action": "labelmap"},
            ])
        );
        let yaml = serde_saphyr::to_string(&c).unwrap();
        let back: Vec<RelabelConfig> = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, c, "{yaml}");
        let empty_regex = cfgs("- {target_label: x, regex: ''}");
        assert_eq!(
            serde_json::to_value(&empty_regex).unwrap()[0]["regex"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn raw_defaults() {
        let raw = RelabelConfigRaw::default();
        let yaml_default: RelabelConfigRaw = serde_saphyr::from_str("{}").unwrap();
        assert_eq!(raw, yaml_default);
        let c = RelabelConfig::from_raw(RelabelConfigRaw {
            source_labels: Some(vec!["a".into()]),
            regex: Some("x".into()),
            action: "keep".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            process(&labels! {"a" => "x"}, std::slice::from_ref(&c)),
            Some(labels! {"a" => "x"})
        );
        assert_eq!(c.to_raw().action, "keep");
    }
}
