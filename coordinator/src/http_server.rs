//! The coordinator's small HTTP servers (`/metrics`, maintenance mode's page, the dashboard): an axum
//! router on its own task, stopped gracefully with a bound.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server; [`HttpServer::stop`] ends it.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// Serves `app` on the bound `listener` until stopped; `what` names it in logs.
    pub fn serve(
        listener: TcpListener,
        app: axum::Router,
        what: &'static str,
    ) -> std::io::Result<HttpServer> {
        let addr = listener.local_addr()?;
        Ok(HttpServer::spawn(addr, what, move |stopped| async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        }))
    }

    /// Runs `serve` (a server bound to `addr` that ends once its argument resolves) on its
    /// own task: for servers `serve` cannot build (the dashboard's TLS listener).
    pub fn spawn<F, Fut>(addr: SocketAddr, what: &'static str, serve: F) -> HttpServer
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let served = serve(stopped);
        let task = tokio::spawn(async move {
            if let Err(error) = served.await {
                tracing::error!(address = %addr, %error, "{what} server stopped");
            }
        });
        tracing::info!(address = %addr, "serving {what}");
        HttpServer { addr, stop, task }
    }

    /// The bound address (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, let requests in flight finish for up to 2 s, then drop them.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}
