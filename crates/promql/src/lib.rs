//! PromQL: our parser (Prometheus's grammar and error messages) into our own AST, and an evaluator
//! over `storage::Queryable` for instant and range queries.
//!
//! This crate owns the language's semantics; it never stores data, never speaks HTTP and never
//! depends on a particular storage (`tsdb` plugs in through the `storage` traits).

pub mod ast;
mod engine;
pub mod error;
mod functions;
pub mod parser;
pub mod printer;
pub mod value;

pub use engine::{Engine, EngineOptions, QueryOpts, QueryStats, SampleStats, StatsLevel, Timings};
pub use error::Error;
pub use functions::{format_go_float, parse_go_float, write_go_float};
pub use parser::{ParseError, parse, parse_metric_selector};
pub use value::{QueryResult, Sample, Series, Value};
