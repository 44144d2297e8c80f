//! Shared HTTP plumbing: the Prometheus API v1 response envelope and error types (mapped to
//! HTTP status codes here and nowhere else), lifecycle endpoints helpers, and the HTTP client
//! configuration used by scraping, remote write and the notifier (basic auth, authorization,
//! TLS), the text-format writer the roles render their own `/metrics` with, and
//! [`serve_nodelay`], how the server and query roles serve their routers.
//!
//! This crate never knows about storage, scraping or PromQL; roles plug their handlers in.

pub mod api;
pub mod client;
pub mod metrics;

/// An error and its sources joined by `": "`, as Go prints wrapped errors: for logs, HTTP
/// answers and notification failures.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Serves `router` on `listener` until `shutdown` completes, with TCP_NODELAY on every
/// connection: answers (remote read frames above all) go out at once, not after a delayed ACK.
pub async fn serve_nodelay(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("{msg}")]
    struct E {
        msg: &'static str,
        #[source]
        source: Option<Box<E>>,
    }

    #[test]
    fn error_chain_joins_sources() {
        let inner = E {
            msg: "connection refused",
            source: None,
        };
        let outer = E {
            msg: "send request",
            source: Some(Box::new(inner)),
        };
        assert_eq!(
            super::error_chain(&outer),
            "send request: connection refused"
        );
        let alone = E {
            msg: "alone",
            source: None,
        };
        assert_eq!(super::error_chain(&alone), "alone");
    }
}
