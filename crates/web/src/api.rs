//! The Prometheus HTTP API v1 envelope: `{"status":"success","data":…}` and
//! `{"status":"error","errorType":…,"error":…}`, and the mapping of error types to HTTP status
//! codes, which is the same as Prometheus's `web/api/v1`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Prometheus's API error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Timeout,
    Canceled,
    Execution,
    BadData,
    Internal,
    Unavailable,
    NotFound,
    NotAcceptable,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Execution => "execution",
            ErrorType::BadData => "bad_data",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
            ErrorType::NotFound => "not_found",
            ErrorType::NotAcceptable => "not_acceptable",
        }
    }

    /// The HTTP status Prometheus answers with for this error type.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::Timeout | ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            // compat: Prometheus uses nginx's 499 "client closed request" for cancellations.
            ErrorType::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
        }
    }
}

/// An API error: its type and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{msg}")]
pub struct ApiError {
    pub kind: ErrorType,
    pub msg: String,
}

impl ApiError {
    pub fn new(kind: ErrorType, msg: impl Into<String>) -> Self {
        ApiError {
            kind,
            msg: msg.into(),
        }
    }

    pub fn bad_data(msg: impl Into<String>) -> Self {
        Self::new(ErrorType::BadData, msg)
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, msg)
    }

    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self::new(ErrorType::Unavailable, msg)
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(ErrorType::NotFound, msg)
    }

    pub fn execution(msg: impl Into<String>) -> Self {
        Self::new(ErrorType::Execution, msg)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'static str,
    #[serde(rename = "errorType")]
    error_type: &'static str,
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status: "error",
            error_type: self.kind.as_str(),
            error: &self.msg,
        };
        json_response(self.kind.status(), &body)
    }
}

/// A successful API answer with optional warnings and infos.
#[derive(Debug, Serialize)]
pub struct ApiSuccess<T: Serialize> {
    status: &'static str,
    pub data: T,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub infos: Vec<String>,
}

impl<T: Serialize> ApiSuccess<T> {
    pub fn new(data: T) -> Self {
        ApiSuccess {
            status: "success",
            data,
            warnings: Vec::new(),
            infos: Vec::new(),
        }
    }

    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }
}

impl<T: Serialize> IntoResponse for ApiSuccess<T> {
    fn into_response(self) -> Response {
        json_response(StatusCode::OK, &self)
    }
}

/// The result type of API handlers.
pub type ApiResult<T> = Result<ApiSuccess<T>, ApiError>;

/// Wraps data in a success envelope.
pub fn ok<T: Serialize>(data: T) -> ApiResult<T> {
    Ok(ApiSuccess::new(data))
}

/// Serialises `body` as JSON with `status`.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut r = (status, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encode response: {e}"),
        )
            .into_response(),
    }
}

/// Formats a float the way Prometheus's JSON API does (as a string, Go 'f' -1 formatting with
/// `NaN`, `+Inf`, `-Inf`).
pub fn format_sample_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // compat: Go's strconv.FormatFloat(v, 'f', -1, 64): shortest round-trip digits, never
        // an exponent — which is exactly what Rust's Display for f64 prints.
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_like_prometheus() {
        assert_eq!(ErrorType::BadData.status(), 400);
        assert_eq!(ErrorType::Execution.status(), 422);
        assert_eq!(ErrorType::Timeout.status(), 503);
        assert_eq!(ErrorType::Canceled.status(), 499);
        assert_eq!(ErrorType::NotFound.status(), 404);
        assert_eq!(ErrorType::Internal.status(), 500);
    }

    #[test]
    fn floats_as_go_formats_them() {
        assert_eq!(format_sample_value(1.0), "1");
        assert_eq!(format_sample_value(0.5), "0.5");
        assert_eq!(format_sample_value(1e21), "1000000000000000000000");
        assert_eq!(format_sample_value(f64::NAN), "NaN");
        assert_eq!(format_sample_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_sample_value(1.5e-7), "0.00000015");
    }
}
