//! The shared vocabulary of Vigil: label sets, samples, timestamps, label matchers (with Go RE2
//! regex semantics), Prometheus durations, byte sizes, relabelling rules, and Go yaml.v2's
//! wording of config decoding errors.
//!
//! Pure data and pure functions only: this crate never does I/O and depends on nothing of ours.

pub mod duration;
pub mod labels;
pub mod matcher;
pub mod regex;
pub mod relabel;
pub mod sample;
pub mod selector;
pub mod size;
pub mod yaml;

pub use duration::{DurationError, format_duration, parse_duration};
pub use labels::{Label, Labels, LabelsBuilder};
pub use matcher::{MatchType, Matcher, MatcherError};
pub use regex::{GoRegex, RegexError};
pub use sample::{STALE_NAN, STALE_NAN_BITS, Sample, Timestamp, is_stale_nan};
pub use selector::{SelectorError, parse_selector};
pub use size::{format_byte_size, parse_byte_size};
