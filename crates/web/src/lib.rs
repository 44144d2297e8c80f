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
