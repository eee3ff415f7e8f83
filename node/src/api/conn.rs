//! The accept loop of the API, plain and TLS alike (`specs/api.md` §1.3): every client is
//! untrusted, so a connection costs a bounded slot and must send its request headers in
//! time. Over `max_connections` a new connection is closed at once (it would otherwise
//! queue in the kernel and look like a hang); a client that opens a connection and
//! trickles or withholds its headers (slowloris) is dropped after `header_timeout`; a TLS
//! handshake gets the same bound. Shutdown stops accepting, ends the long-lived audit
//! feeds, and lets in-flight requests finish for at most 10 s.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// Per-listener bounds (`http_max_connections`, `http_header_timeout_ms` in the config).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits { max_connections: 1024, header_timeout: Duration::from_secs(10) }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; `tls` wraps each stream first.
pub async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnLimits,
    closing: Arc<tokio::sync::watch::Sender<bool>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // A failed accept (a connection reset before it was taken, or too many
                // open files) must not end the server.
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::debug!(max = limits.max_connections, "connection limit reached: connection closed");
                    drop(stream);
                    continue;
                };
                let service = TowerToHyperService::new(app.clone());
                // HTTP/1.1 only (the API speaks nothing else): no protocol sniffing that
                // could wait on a silent client before any timeout is armed.
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
                let watcher = graceful.watcher();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    match tls {
                        Some(acceptor) => {
                            let Ok(Ok(stream)) = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await else { return };
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn).await;
                        }
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            let _ = watcher.watch(conn).await;
                        }
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    // Long-lived responses (the audit feed) end now, so draining does not wait on them.
    closing.send_replace(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}
