//! The local HTTP endpoint: `/metrics` and `/healthz`. Binds 127.0.0.1 by default; serves
//! nothing else and nothing secret.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::metrics::{CONTENT_TYPE, Metrics};

/// Default listen address of the endpoint.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9256";
/// Bound on reading a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}; choose another address with --listen")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What the endpoint serves.
#[derive(Debug, Clone)]
pub struct State {
    /// The metrics.
    pub metrics: Metrics,
    /// Whether the daemon's loop is alive (for `/healthz`).
    pub alive: Arc<AtomicBool>,
}

fn respond(state: &State, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, ctype: &str, body: Vec<u8>| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
            resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        resp
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"only GET\n".to_vec(),
        );
    }
    match req.uri().path() {
        "/metrics" => text(StatusCode::OK, CONTENT_TYPE, state.metrics.scrape()),
        "/healthz" if state.alive.load(Ordering::Relaxed) => {
            text(StatusCode::OK, "text/plain", b"ok\n".to_vec())
        }
        "/healthz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            b"starting\n".to_vec(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            b"not found: try /metrics or /healthz\n".to_vec(),
        ),
    }
}

/// Binds the endpoint and serves it in a task until the runtime stops.
pub async fn serve(addr: SocketAddr, state: State) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let resp = respond(&state, &req);
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT);
                if let Err(e) = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, "http connection ended");
                }
            });
        }
    });
    Ok(bound)
}
