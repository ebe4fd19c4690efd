//! An HTTP proxy on 127.0.0.1 in front of moto that answers the first requests with the
//! errors AWS services send under load, then forwards the rest unchanged. The error shapes
//! follow each protocol:
//! - EC2 (query protocol): HTTP 503 with an XML `<Response><Errors><Error><Code>` document,
//!   code `RequestLimitExceeded`;
//! - EKS (REST-JSON): HTTP 429 with `x-amzn-ErrorType: ThrottlingException` and a JSON body;
//! - server errors: HTTP 500 (`InternalError` for EC2, `ServerException` for EKS);
//! - a connection closed without an answer.
//!
//! Runs on its own thread; stopped on drop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::loopback_http::{Dropped, LoopbackServer};

/// Which protocol's error documents to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// EC2 query protocol (XML errors).
    Ec2,
    /// EKS REST-JSON protocol.
    Eks,
}

/// One injected answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The service's throttling error.
    Throttle,
    /// The service's internal server error.
    ServerError,
    /// Close the connection without answering.
    Drop,
}

#[derive(Debug)]
struct Shared {
    service: Service,
    upstream: String,
    faults: Mutex<VecDeque<Fault>>,
    /// Fault to repeat forever once the queue is empty (persistent throttling).
    forever: Mutex<Option<Fault>>,
    injected: AtomicU64,
    forwarded: AtomicU64,
    client: reqwest::Client,
}

/// A running fault proxy.
#[derive(Debug)]
pub struct FaultProxy {
    server: LoopbackServer,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Proxies a free loopback port to `upstream` (`http://127.0.0.1:PORT`), answering the
    /// first requests with `faults`, in order.
    pub fn start(service: Service, upstream: &str, faults: &[Fault]) -> FaultProxy {
        let url = url::Url::parse(upstream).expect("upstream URL");
        assert!(
            url.host_str() == Some("127.0.0.1") || url.host_str() == Some("localhost"),
            "the proxy only forwards to loopback"
        );
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let shared = Arc::new(Shared {
            service,
            upstream: upstream.trim_end_matches('/').to_owned(),
            faults: Mutex::new(faults.iter().copied().collect()),
            forever: Mutex::new(None),
            injected: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .expect("client"),
        });
        let s = shared.clone();
        let server = LoopbackServer::start("fault-proxy", move |req| handle(s.clone(), req));
        FaultProxy { server, shared }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// Answer every request from now on with `fault` (after the queued ones).
    pub fn always(&self, fault: Fault) {
        *self.shared.forever.lock().expect("lock") = Some(fault);
    }

    /// Requests answered with a fault.
    pub fn injected(&self) -> u64 {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// Requests forwarded to the upstream.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }
}

fn next_fault(shared: &Shared) -> Option<Fault> {
    let queued = shared.faults.lock().expect("lock").pop_front();
    queued.or(*shared.forever.lock().expect("lock"))
}

/// The error document `service` sends for `fault`.
pub fn error_response(service: Service, fault: Fault) -> Response<Full<Bytes>> {
    let request_id = "7a62c49f-347e-4fc4-9331-6e8eEXAMPLE";
    let (status, content_type, body, error_type) = match (service, fault) {
        (Service::Ec2, Fault::Throttle) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/xml;charset=UTF-8",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
            ),
            None,
        ),
        (Service::Ec2, _) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/xml;charset=UTF-8",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InternalError</Code><Message>An internal error has occurred</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
            ),
            None,
        ),
        (Service::Eks, Fault::Throttle) => (
            StatusCode::TOO_MANY_REQUESTS,
            "application/json",
            "{\"message\":\"Rate exceeded\"}".to_owned(),
            Some("ThrottlingException"),
        ),
        (Service::Eks, _) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            "{\"message\":\"An internal error occurred\"}".to_owned(),
            Some("ServerException"),
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    h.insert(
        "x-amzn-requestid",
        hyper::header::HeaderValue::from_static(request_id),
    );
    if let Some(t) = error_type {
        h.insert(
            "x-amzn-errortype",
            hyper::header::HeaderValue::from_static(t),
        );
    }
    r
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    if let Some(fault) = next_fault(&shared) {
        shared.injected.fetch_add(1, Ordering::SeqCst);
        return match fault {
            Fault::Drop => Err(Dropped),
            f => Ok(error_response(shared.service, f)),
        };
    }
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut out = shared
        .client
        .request(parts.method.clone(), format!("{}{path}", shared.upstream));
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
            out = out.header(name, value);
        }
    }
    let Ok(resp) = out.body(body).send().await else {
        return Err(Dropped);
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.map_err(|_| Dropped)?;
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = status;
    for (name, value) in &headers {
        if name != hyper::header::TRANSFER_ENCODING && name != hyper::header::CONTENT_LENGTH {
            r.headers_mut().insert(name, value.clone());
        }
    }
    Ok(r)
}
