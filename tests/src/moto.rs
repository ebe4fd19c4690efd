//! moto server, the real AWS API peer for EC2, EKS, STS and IAM, started per test on a free
//! loopback port from the venv that `scripts/test.sh` creates.

use std::io::Read;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to start answering.
const MOTO_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Poll interval while waiting for moto to answer.
const MOTO_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A running moto server; killed on drop.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts `moto_server` on 127.0.0.1 and waits until it answers HTTP.
    pub fn start() -> Moto {
        let port = crate::free_port();
        let child = Command::new(crate::venv_bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ALLOW_NONEXISTENT_REGION", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let mut moto = Moto { child, port };
        moto.wait_ready();
        moto
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + MOTO_START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll moto_server") {
                panic!("moto_server exited early with {status}");
            }
            if self.answers() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within {MOTO_START_TIMEOUT:?}"
            );
            std::thread::sleep(MOTO_POLL_INTERVAL);
        }
    }

    fn answers(&self) -> bool {
        use std::io::Write;
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = "GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.")
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, to use as the endpoint URL of every AWS client.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Resets all of moto's state.
    pub fn reset(&self) {
        use std::io::Write;
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect moto");
        let req = "POST /moto-api/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        s.write_all(req.as_bytes()).expect("reset moto");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
