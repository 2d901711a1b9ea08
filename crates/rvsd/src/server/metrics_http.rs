//! `--metrics ADDR`: the Prometheus endpoint's HTTP server thread.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::*;

/// Serve `GET /metrics` on `addr` until rvsd stops: one thread, one
/// request at a time ([`crate::metrics`]). The listener is bound before
/// this returns, so a bad address stops rvsd at start.
pub fn spawn_metrics(
    shared: Arc<Shared>,
    addr: std::net::SocketAddr,
    labels: crate::metrics::BackendLabels,
) -> Result<(), MetricsError> {
    let server =
        tiny_http::Server::http(addr).map_err(|source| MetricsError::Listen { addr, source })?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let ctype = tiny_http::Header::from_bytes(
                &b"Content-Type"[..],
                crate::metrics::CONTENT_TYPE.as_bytes(),
            )
            .ok();
            while !shared.stopping() {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(200)) else {
                    continue;
                };
                let path = req.url().split('?').next().unwrap_or_default().to_string();
                let response = match (req.method(), path.as_str()) {
                    (tiny_http::Method::Get, "/metrics") => {
                        let text = crate::metrics::render(&shared.metrics_snapshot(), &labels);
                        let mut r = tiny_http::Response::from_string(text);
                        if let Some(h) = ctype.clone() {
                            r.add_header(h);
                        }
                        r
                    }
                    (tiny_http::Method::Get, "/") => {
                        tiny_http::Response::from_string("rvsd: metrics at /metrics\n")
                    }
                    _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
                };
                let _ = req.respond(response);
            }
        })
        .map_err(MetricsError::Thread)?;
    Ok(())
}

/// Why [`spawn_metrics`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound.
    #[error("--metrics {addr}: cannot listen: {source}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] io::Error),
}
