//! Errors of parsing and evaluation, worded as Prometheus words them.

use crate::parser::ParseError;

/// Why a query failed. The API maps `Parse` to `bad_data`, `Timeout` to `timeout`, `Canceled`
/// to `canceled` and everything else to `execution`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The per-query sample budget ([`crate::EngineOptions::max_samples`]) ran out.
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    #[error("query timed out in query execution")]
    Timeout,
    #[error("query was canceled in query execution")]
    Canceled,
    #[error(transparent)]
    Storage(storage::StorageError),
    /// An evaluation error with Prometheus's wording (duplicate series, bad arguments, ...).
    #[error("{0}")]
    Eval(String),
}

impl Error {
    /// The error kind in Prometheus's API terms (`errorType`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Parse(_) => "bad_data",
            Error::Timeout => "timeout",
            Error::Canceled => "canceled",
            Error::Storage(_) | Error::TooManySamples | Error::Eval(_) => "execution",
        }
    }
}

pub(crate) fn eval_err<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error::Eval(msg.into()))
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
