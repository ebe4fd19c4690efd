//! Docker's Engine API on its unix socket: `GET /_ping` (`OK` when the daemon serves) and
//! `GET /version`. HTTP/1.1 over the socket, each request bounded in time and size.

use std::path::Path;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

/// Largest answer read.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Errors talking to Docker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket does not accept connections.
    #[error("cannot connect to Docker at {socket}")]
    Connect {
        /// The socket.
        socket: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The request failed or took too long.
    #[error("Docker at {socket}: GET {path}: {reason}")]
    Request {
        /// The socket.
        socket: String,
        /// The path.
        path: String,
        /// What happened.
        reason: String,
    },
}

/// `GET path` on the socket: the status and the body (at most [`MAX_ANSWER_BYTES`]), all within
/// `timeout`.
pub async fn get(socket: &Path, path: &str, timeout: Duration) -> Result<(u16, Vec<u8>), Error> {
    let label = socket.display().to_string();
    let failed = |reason: String| Error::Request {
        socket: label.clone(),
        path: path.to_owned(),
        reason,
    };
    let call = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|source| Error::Connect {
                socket: label.clone(),
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, "docker")
            .header(hyper::header::USER_AGENT, crate::net::client::USER_AGENT)
            .body(Empty::<hyper::body::Bytes>::new())
            .map_err(|e| failed(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_bytes()
            .to_vec();
        driver.abort();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err(failed(format!(
                "no answer within {}ms",
                timeout.as_millis()
            )))
        })
}

/// `GET /_ping`: Ok when Docker answers 200 `OK`.
pub async fn ping(socket: &Path, timeout: Duration) -> Result<(), Error> {
    let (status, body) = get(socket, "/_ping", timeout).await?;
    if status == 200 && body.trim_ascii() == b"OK" {
        Ok(())
    } else {
        Err(Error::Request {
            socket: socket.display().to_string(),
            path: "/_ping".into(),
            reason: format!(
                "HTTP {status} {:?}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        })
    }
}

/// The engine's version (`GET /version`, `Version`).
pub async fn version(socket: &Path, timeout: Duration) -> Result<String, Error> {
    let (status, body) = get(socket, "/version", timeout).await?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    match (status, v.get("Version").and_then(|v| v.as_str())) {
        (200, Some(ver)) => Ok(ver.to_owned()),
        _ => Err(Error::Request {
            socket: socket.display().to_string(),
            path: "/version".into(),
            reason: format!("HTTP {status} without a Version"),
        }),
    }
}
