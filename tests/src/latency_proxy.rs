//! A TCP proxy on 127.0.0.1 that adds latency in front of a local server (moto in the
//! benchmark): every chunk is forwarded half the round-trip latency after it was read, in each
//! direction, like a longer wire. Runs on its own thread; stopped on drop.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::loopback_http::RuntimeThread;

/// Size of one read.
const CHUNK_BYTES: usize = 16 * 1024;

/// A running latency proxy.
#[derive(Debug)]
pub struct LatencyProxy {
    addr: SocketAddr,
    _thread: RuntimeThread,
}

impl LatencyProxy {
    /// Proxies a free loopback port to `upstream` (a loopback address), adding `rtt` per round
    /// trip (`rtt / 2` each way).
    pub fn start(upstream: SocketAddr, rtt: Duration) -> LatencyProxy {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy only forwards to loopback addresses"
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let one_way = rtt / 2;
        let thread = RuntimeThread::spawn(
            "latency-proxy",
            RuntimeThread::two_workers(),
            move |mut rx| async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut rx => return,
                        accepted = listener.accept() => {
                            let Ok((client, _)) = accepted else { continue };
                            tokio::spawn(async move {
                                let Ok(server) = TcpStream::connect(upstream).await else { return };
                                let _ = client.set_nodelay(true);
                                let _ = server.set_nodelay(true);
                                let (cr, cw) = client.into_split();
                                let (sr, sw) = server.into_split();
                                tokio::join!(pipe(cr, sw, one_way), pipe(sr, cw, one_way));
                            });
                        }
                    }
                }
            },
        );
        LatencyProxy {
            addr,
            _thread: thread,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Copies `from` to `to`, delivering each chunk `delay` after it was read.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
