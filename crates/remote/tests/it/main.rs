//! Integration tests of the remote storage crate: the receiver and read server over a real
//! socket, against Debian's Prometheus 2.42 as sender, remote-read client and read server.

mod bad;
mod config;
mod mem;
mod peers;

use std::net::SocketAddr;
use std::sync::Arc;

use remote::{ReadLimits, ReadState, WriteState, read_router, write_router};

/// Serves the write and read routers over `store` on a free loopback port.
pub async fn serve(
    store: Arc<mem::MemStore>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = write_router(WriteState::new(store.clone()))
        .merge(read_router(ReadState::new(store, ReadLimits::default())));
    serve_router(app).await
}

pub async fn serve_router(
    app: axum::Router,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Ok((addr, task))
}
