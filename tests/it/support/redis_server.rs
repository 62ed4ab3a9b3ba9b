//! A private `redis-server` on a free loopback port, stopped when dropped;
//! optionally asking for a password, and also listening with TLS (certificates
//! made with `openssl` for the test) or on a unix socket.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, temp_dir};

/// A running `redis-server` owned by one test.
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    access: Access,
    tls_port: Option<u16>,
}

/// What a test's server asks of its clients beyond its plain loopback port,
/// which it always has (for the test's own commands).
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `requirepass`: the password of the default user.
    pub password: Option<String>,
    /// Also listen with TLS, on a port of its own (see [`RedisServer::tls_port`]).
    pub tls: bool,
    /// Also listen on a unix socket (see [`RedisServer::socket_path`]).
    pub unix_socket: bool,
}

const INSTALL_HINT: &str = "redis-server is required by this test and was not found on PATH: \
install it (Debian/Ubuntu: `apt-get install -y redis-server`; macOS: `brew install redis`) \
or run `.ci/run`, which installs it";

const OPENSSL_HINT: &str = "openssl is required by this test (it makes the TLS certificates) \
and was not found on PATH: install it (Debian/Ubuntu: `apt-get install -y openssl`; \
macOS: `brew install openssl`)";

impl RedisServer {
    /// Starts a server with no persistence.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a server with extra `redis-server` arguments, in its own temp dir.
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_secured(extra, Access::default())
    }

    /// Starts a server with no persistence that asks for `access`.
    pub fn start_with_access(access: Access) -> Self {
        Self::start_secured(&["--save", "", "--appendonly", "no"], access)
    }

    fn start_secured(extra: &[&str], access: Access) -> Self {
        let dir = temp_dir("redis");
        // A port picked free can be taken before redis binds it; try a few.
        for _ in 0..5 {
            // A failed try's drop removed the folder.
            std::fs::create_dir_all(&dir).expect("create the redis folder");
            let port = free_port();
            let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            if let Some(password) = &access.password {
                extra.extend(["--requirepass".into(), password.clone()]);
            }
            let tls_port = access.tls.then(free_port);
            if let Some(tls_port) = tls_port {
                make_certificates(&dir);
                let file = |name: &str| dir.join(name).display().to_string();
                extra.extend([
                    "--tls-port".into(),
                    tls_port.to_string(),
                    "--tls-cert-file".into(),
                    file("server.crt"),
                    "--tls-key-file".into(),
                    file("server.key"),
                    "--tls-ca-cert-file".into(),
                    file("ca.crt"),
                    // Clients show no certificate: porki checks the server's only.
                    "--tls-auth-clients".into(),
                    "no".into(),
                ]);
            }
            if access.unix_socket {
                extra.extend([
                    "--unixsocket".into(),
                    dir.join("redis.sock").display().to_string(),
                    "--unixsocketperm".into(),
                    "700".into(),
                ]);
            }
            let child = spawn(port, &dir, &extra);
            let mut server = RedisServer {
                child,
                port,
                dir: dir.clone(),
                extra,
                access: access.clone(),
                tls_port,
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

    /// `redis://127.0.0.1:PORT`, with the default user's password if it has one.
    pub fn url(&self) -> String {
        match &self.access.password {
            Some(password) => format!("redis://:{}@127.0.0.1:{}", url_encode(password), self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// The TLS port (a server started with [`Access::tls`]).
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("the server was started without TLS")
    }

    /// The PEM file of the CA that signed the server's certificate (for
    /// `127.0.0.1` and `localhost`), with TLS.
    pub fn ca_file(&self) -> PathBuf {
        assert!(
            self.tls_port.is_some(),
            "the server was started without TLS"
        );
        self.dir.join("ca.crt")
    }

    /// The unix socket (a server started with [`Access::unix_socket`]).
    pub fn socket_path(&self) -> PathBuf {
        assert!(
            self.access.unix_socket,
            "the server was started without a unix socket"
        );
        self.dir.join("redis.sock")
    }

    /// Creates ACL user `name` with `password` and the ACL `rules` (as `ACL
    /// SETUSER` takes them, separated by spaces).
    pub fn add_user(&self, name: &str, password: &str, rules: &str) {
        let mut conn = self.conn();
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(name)
            .arg("reset")
            .arg("on")
            .arg(format!(">{password}"))
            .arg(rules.split_whitespace().collect::<Vec<_>>())
            .query::<()>(&mut conn)
            .unwrap_or_else(|e| panic!("ACL SETUSER {name} {rules}: {e}"));
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

/// `text` percent-encoded for a URL's user info or query: all but letters,
/// digits and `-._~`.
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Makes in `dir` a CA (`ca.crt`) and a server certificate it signed
/// (`server.crt`, `server.key`) for `127.0.0.1` and `localhost`, with openssl.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write the certificate's extensions");
    let steps: [&[&str]; 3] = [
        &[
            &["req", "-x509", "-days", "2", "-subj", "/CN=porki test CA"],
            &ec[..],
            &["-keyout", "ca.key", "-out", "ca.crt"],
        ]
        .concat(),
        &[
            &["req", "-new", "-subj", "/CN=localhost"],
            &ec[..],
            &["-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    ];
    for args in steps {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    panic!("{OPENSSL_HINT}");
                }
                panic!("could not run openssl: {e}");
            });
        assert!(
            output.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Starts `redis-server` on loopback `port` in `dir`, with `extra` arguments.
pub(super) fn spawn(port: u16, dir: &Path, extra: &[String]) -> Child {
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

/// Whether a Redis on loopback `port` answers PING (or asks for a password).
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
    matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"))
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
