//! What a query returns.

use model::Labels;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    /// Milliseconds: the evaluation time.
    pub t: i64,
    pub v: f64,
}

/// One series of a range vector (matrix).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    /// `(timestamp ms, value)` in increasing time order.
    pub points: Vec<(i64, f64)>,
}

/// A query's value, typed as in Prometheus's API (`resultType`).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar {
        t: i64,
        v: f64,
    },
    String {
        t: i64,
        s: String,
    },
    /// In evaluation order (which `sort` and friends define for instant queries).
    Vector(Vec<Sample>),
    /// Sorted by labels for range queries.
    Matrix(Vec<Series>),
}

impl Value {
    /// The API's `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A successful query: the value plus the annotations collected on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    /// `PromQL warning: ...` annotations.
    pub warnings: Vec<String>,
    /// `PromQL info: ...` annotations.
    pub infos: Vec<String>,
    /// Statistics, when the query asked for them ([`crate::QueryOpts::stats`]).
    pub stats: Option<Box<crate::QueryStats>>,
}
