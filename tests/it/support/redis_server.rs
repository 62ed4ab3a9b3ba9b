//! A private `redis-server` on a free loopback port, stopped when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, temp_dir};

/// A running `redis-server` owned by one test.
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
    extra: Vec<String>,
}

const INSTALL_HINT: &str = "redis-server is required by this test and was not found on PATH: \
install it (Debian/Ubuntu: `apt-get install -y redis-server`; macOS: `brew install redis`) \
or run `.ci/run`, which installs it";

impl RedisServer {
    /// Starts a server with no persistence.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a server with extra `redis-server` arguments, in its own temp dir.
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = temp_dir("redis");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        // A port picked free can be taken before redis binds it; try a few.
        for _ in 0..5 {
            // A failed try's drop removed the folder.
            std::fs::create_dir_all(&dir).expect("create the redis folder");
            let port = free_port();
            let child = spawn(port, &dir, &extra);
            let mut server = RedisServer {
                child,
                port,
                dir: dir.clone(),
                extra: extra.clone(),
            };
            if server.wait_ready(Duration::from_secs(10)) {
                return server;
            }
        }
        panic!("redis-server did not start on a free port after 5 tries");
    }

    /// The port it listens on (loopback).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A new synchronous connection to the server.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .expect("connect to the test redis-server")
    }

    /// Kills the server (SIGKILL, as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port and directory (after `kill`).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.child = spawn(self.port, &self.dir, &self.extra);
            if self.wait_ready(Duration::from_secs(5)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_ready(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if ping(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        false
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `redis-server` on loopback `port` in `dir`, with `extra` arguments.
pub(super) fn spawn(port: u16, dir: &std::path::Path, extra: &[String]) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                panic!("{INSTALL_HINT}");
            }
            panic!("could not start redis-server: {e}");
        })
}

/// Whether a Redis on loopback `port` answers PING.
pub(super) fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// One field of a Redis hash, e.g. `hget(&mut conn, "task:{g}:a", "status")`.
pub fn hget<T: redis::FromRedisValue>(
    conn: &mut impl redis::ConnectionLike,
    key: &str,
    field: &str,
) -> T {
    redis::cmd("HGET")
        .arg(key)
        .arg(field)
        .query(conn)
        .unwrap_or_else(|e| panic!("HGET {key} {field}: {e}"))
}
