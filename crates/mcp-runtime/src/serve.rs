//! The accept loop every listener runs: hyper's connection builder with a timer, so that a client
//! must finish a request's headers within `server.header_read_timeout_secs` (a slowloris client
//! trickling header lines held a connection, and its file descriptor, for ever under
//! `axum::serve`, which sets no timer), graceful shutdown of every connection, and the TLS peer
//! of each connection in its requests' extensions.

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::tls::TlsPeer;

/// Serves `router` on `listener` until `shutdown`, then lets open connections finish (the caller
/// bounds how long). `peer` names the TLS peer of a connection, for `edge::authenticate`.
pub(crate) async fn serve<L>(
    mut listener: L,
    router: Router,
    peer: fn(&L::Io) -> Option<TlsPeer>,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
) -> io::Result<()>
where
    L: Listener,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let (io, _) = tokio::select! {
            conn = listener.accept() => conn,
            () = shutdown.cancelled() => break,
        };
        let info = peer(&io).map(ConnectInfo);
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let mut req = req.map(Body::new);
            if let Some(info) = &info {
                req.extensions_mut().insert(info.clone());
            }
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.oneshot(req).await.unwrap_or_else(|e| match e {})) }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(message = "Connection ended with an error.", error = %e);
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}
