//! A plain-HTTP/1.1 server on a free 127.0.0.1 port, on a thread and runtime of its own, shared
//! by the emulators and proxies of this crate (IMDS, SSM, the AWS fault proxy). Stopped and
//! joined on drop.

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

/// The error a handler returns to end the connection without an answer (fault injection).
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// A thread running a tokio runtime until it is dropped: the drop signals the future and
/// joins the thread. The test servers (this one, the latency proxy, the Roles Anywhere
/// emulator) each run on one.
#[derive(Debug)]
pub struct RuntimeThread {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RuntimeThread {
    /// Runs `run(stop)` on a runtime from `builder` in a thread named `name`; `stop` resolves
    /// when the `RuntimeThread` is dropped.
    pub fn spawn<F, Fut>(name: &str, mut builder: tokio::runtime::Builder, run: F) -> RuntimeThread
    where
        F: FnOnce(tokio::sync::oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let rt = builder.enable_all().build().expect("runtime");
                rt.block_on(run(rx));
            })
            .expect("spawn runtime thread");
        RuntimeThread {
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// A multi-threaded runtime with two workers, as the servers use.
    pub fn two_workers() -> tokio::runtime::Builder {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    }
}

impl Drop for RuntimeThread {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct LoopbackServer {
    addr: SocketAddr,
    _thread: RuntimeThread,
}

impl LoopbackServer {
    /// Serves `handler` on a free loopback port; `name` names the thread.
    pub fn start<H, Fut>(name: &str, handler: H) -> LoopbackServer
    where
        H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Full<Bytes>>, Dropped>> + Send + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let thread = RuntimeThread::spawn(name, RuntimeThread::two_workers(), move |stop| {
            serve(listener, handler, stop)
        });
        LoopbackServer {
            addr,
            _thread: thread,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn serve<H, Fut>(
    listener: std::net::TcpListener,
    handler: H,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Full<Bytes>>, Dropped>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let svc = hyper::service::service_fn(handler);
                    // A dropped request ends the connection with an error; that is the fault.
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                });
            }
        }
    }
}

/// What a [`Routes`] server answers on one path.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status and body.
    Body(u16, String),
    /// End the connection without an answer.
    Close,
    /// Accept the request and answer only after a minute (a hung peer).
    Hang,
}

/// A loopback HTTP server answering fixed bodies by path, changeable while it runs: stands in
/// for kubelet's healthz and ipamd's introspection and metrics endpoints, which cannot run
/// here. Unknown paths are 404.
#[derive(Debug)]
pub struct Routes {
    server: LoopbackServer,
    table: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Answer>>>,
}

impl Routes {
    /// Serves `routes`.
    pub fn start(routes: &[(&str, Answer)]) -> Routes {
        let table = std::sync::Arc::new(std::sync::Mutex::new(
            routes
                .iter()
                .map(|(p, a)| ((*p).to_owned(), a.clone()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        ));
        let t = table.clone();
        let server = LoopbackServer::start("routes", move |req: Request<Incoming>| {
            let answer = t.lock().expect("routes").get(req.uri().path()).cloned();
            async move {
                let (code, body) = match answer {
                    Some(Answer::Body(code, body)) => (code, body),
                    Some(Answer::Close) => return Err(Dropped),
                    Some(Answer::Hang) => {
                        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                        (200, String::new())
                    }
                    None => (404, String::new()),
                };
                let mut resp = Response::new(Full::new(Bytes::from(body)));
                *resp.status_mut() = hyper::StatusCode::from_u16(code)
                    .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                Ok(resp)
            }
        });
        Routes { server, table }
    }

    /// Changes what `path` answers.
    pub fn set(&self, path: &str, answer: Answer) {
        self.table
            .lock()
            .expect("routes")
            .insert(path.to_owned(), answer);
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.server.addr().port()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }
}
