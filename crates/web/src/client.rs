//! HTTP client configuration (Prometheus's common HTTPClientConfig).
