//! Prometheus 2.42's HTTP behaviour around the handlers of `vigil server`: Go's `404 page not
//! found` and `Method Not Allowed` texts, HEAD only where Prometheus routes it, the API's CORS
//! headers (`--web.cors.origin`) and `OPTIONS` answers, and gzip for API, federation and
//! metrics answers when the client accepts it.

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Bodies larger than this are answered uncompressed rather than buffered (remote read
/// streams, huge exports).
const MAX_GZIP_BODY: usize = 512 << 20;

/// The settings the layer needs.
#[derive(Debug, Clone)]
pub struct Compat {
    /// `--web.cors.origin`, anchored as Prometheus anchors it.
    cors_origin: regex::Regex,
    /// Whether the origin regex is the default `.*` (then `*` is sent, not the origin).
    cors_any: bool,
}

impl Compat {
    /// `origin` is the flag's value (default `.*`).
    pub fn new(origin: &str) -> Result<Compat, regex::Error> {
        Ok(Compat {
            cors_origin: regex::Regex::new(&format!("^(?:{origin})$"))?,
            cors_any: origin == ".*",
        })
    }

    fn set_cors(&self, req: &HeaderMap, out: &mut HeaderMap) {
        let Some(origin) = req.get(header::ORIGIN) else {
            return;
        };
        let set = |out: &mut HeaderMap, k: &'static str, v: &'static str| {
            out.insert(k, HeaderValue::from_static(v));
        };
        set(
            out,
            "access-control-allow-headers",
            "Accept, Authorization, Content-Type, Origin",
        );
        set(out, "access-control-allow-methods", "GET, POST, OPTIONS");
        set(out, "access-control-expose-headers", "Date");
        set(out, "vary", "Origin");
        if self.cors_any {
            set(out, "access-control-allow-origin", "*");
        } else if origin.to_str().is_ok_and(|o| self.cors_origin.is_match(o)) {
            out.insert("access-control-allow-origin", origin.clone());
        }
    }
}

/// Go's `http.NotFound` (a fallback handler).
pub async fn not_found() -> Response {
    go_text(StatusCode::NOT_FOUND, "404 page not found\n")
}

fn go_text(status: StatusCode, text: &'static str) -> Response {
    let mut r = (status, text).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn accepts_gzip(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT_ENCODING).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|e| e.split(';').next().unwrap_or("").trim() == "gzip")
        })
    })
}

fn compressible(r: &Response) -> bool {
    if r.headers().contains_key(header::CONTENT_ENCODING) {
        return false;
    }
    r.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/json")
                || ct.contains("version=0.0.4")
                || ct.starts_with("application/vnd.google.protobuf")
        })
}

async fn gzip(r: Response) -> Response {
    let (mut parts, body) = r.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_GZIP_BODY).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("buffering a response to compress it: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let out = enc.write_all(&bytes).and_then(|()| enc.finish());
    match out {
        Ok(z) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            parts
                .headers
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            Response::from_parts(parts, Body::from(z))
        }
        Err(e) => {
            tracing::warn!("gzip a response: {e}");
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}

/// The middleware; `req`'s path is relative to the route prefix.
pub async fn layer(State(c): State<Arc<Compat>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let api = path.starts_with("/api/v1/");
    let method = req.method().clone();
    let headers = req.headers().clone();
    if method == Method::HEAD && path != "/-/healthy" && path != "/-/ready" {
        // compat: Prometheus routes HEAD only for the health endpoints.
        let mut r = go_text(StatusCode::METHOD_NOT_ALLOWED, "");
        r.headers_mut().remove("x-content-type-options");
        return r;
    }
    if method == Method::OPTIONS && api {
        let mut r = StatusCode::NO_CONTENT.into_response();
        c.set_cors(&headers, r.headers_mut());
        return r;
    }
    let mut r = next.run(req).await;
    if method == Method::HEAD {
        // compat: Prometheus's HEAD handlers write the status only.
        r.headers_mut().remove(header::CONTENT_TYPE);
        return r;
    }
    if r.status() == StatusCode::METHOD_NOT_ALLOWED
        && !r.headers().contains_key(header::CONTENT_TYPE)
    {
        let text = if path == "/-/reload" || path == "/-/quit" {
            "Only POST or PUT requests allowed"
        } else {
            "Method Not Allowed\n"
        };
        let allow = r.headers().get(header::ALLOW).cloned();
        r = go_text(StatusCode::METHOD_NOT_ALLOWED, text);
        if let Some(a) = allow {
            r.headers_mut().insert(header::ALLOW, a);
        }
        if text.starts_with("Only") {
            r.headers_mut().remove("x-content-type-options");
        }
        return r;
    }
    if api {
        c.set_cors(&headers, r.headers_mut());
    }
    if accepts_gzip(&headers)
        && !path.starts_with("/api/v1/read")
        && !path.starts_with("/api/v1/write")
        && compressible(&r)
    {
        r = gzip(r).await;
    }
    r
}

/// The form body of a request as Go's `FormValue` sees it (see [`promapi::params::form_body`]):
/// read only for POST, PUT and PATCH, and only when it is a form.
pub struct FormBody(pub Vec<u8>);

impl<S: Send + Sync> axum::extract::FromRequest<S> for FormBody {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let method = req.method().clone();
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if !matches!(method, Method::POST | Method::PUT | Method::PATCH) {
            return Ok(FormBody(Vec::new()));
        }
        Ok(FormBody(promapi::params::form_body(ct.as_deref(), &body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_like_prometheus() {
        let mut req = HeaderMap::new();
        let mut out = HeaderMap::new();
        let any = Compat::new(".*").unwrap();
        any.set_cors(&req, &mut out);
        assert!(out.is_empty(), "no Origin, no CORS headers");
        req.insert(header::ORIGIN, HeaderValue::from_static("http://a.example"));
        any.set_cors(&req, &mut out);
        assert_eq!(out["access-control-allow-origin"], "*");
        assert_eq!(out["vary"], "Origin");
        let one = Compat::new(r"http://a\.example").unwrap();
        let mut out = HeaderMap::new();
        one.set_cors(&req, &mut out);
        assert_eq!(out["access-control-allow-origin"], "http://a.example");
        req.insert(header::ORIGIN, HeaderValue::from_static("http://b.example"));
        let mut out = HeaderMap::new();
        one.set_cors(&req, &mut out);
        assert!(!out.contains_key("access-control-allow-origin"));
        assert_eq!(out["access-control-allow-methods"], "GET, POST, OPTIONS");
    }

    #[test]
    fn gzip_accept_encoding() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("deflate, gzip;q=1.0"),
        );
        assert!(accepts_gzip(&h));
    }
}
