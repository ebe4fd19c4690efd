//! moto's STS backend alone on a loopback port, for requests that the all-services
//! `moto_server` cannot route: it picks the service from the `Authorization` header or the
//! form body, and a presigned `GET /?Action=GetCallerIdentity&X-Amz-...` (what the cluster's
//! authenticator sends for a node's token) has neither, so it would land on S3. This is the
//! same moto code (`create_backend_app("sts")`) served by werkzeug, from the test venv.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Poll interval while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Serves moto's STS backend app on 127.0.0.1:PORT until killed.
const SERVER: &str = "\
import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import create_backend_app
run_simple(sys.argv[1], int(sys.argv[2]), create_backend_app('sts'), threaded=True)
";

/// A running moto STS server; killed on drop.
#[derive(Debug)]
pub struct MotoSts {
    child: Child,
    port: u16,
}

impl MotoSts {
    /// Starts it and waits until it answers HTTP.
    pub fn start() -> MotoSts {
        let port = crate::free_port();
        let child = Command::new(crate::venv_bin("python"))
            .args(["-c", SERVER, "127.0.0.1", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto STS");
        let mut sts = MotoSts { child, port };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = sts.child.try_wait().expect("poll moto STS") {
                panic!("moto STS exited early with {status}");
            }
            if sts.answers() {
                return sts;
            }
            assert!(
                Instant::now() < deadline,
                "moto STS did not answer within {START_TIMEOUT:?}"
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = "GET /?Action=GetCallerIdentity&Version=2011-06-15 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for MotoSts {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
