//! A TCP proxy between a porki "process" and Redis that can fail the way
//! networks do: stop forwarding in both directions with every socket left open
//! (packets lost, no reset), or cut a connection right after a given request went
//! through, so its reply is lost although Redis ran it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Faults {
    /// Nothing is forwarded while set.
    frozen: AtomicBool,
    /// A request holding these bytes goes through, then its connection is cut.
    cut_after: Mutex<Option<Vec<u8>>>,
}

/// The proxy; its threads end with the process.
pub struct Proxy {
    port: u16,
    faults: Arc<Faults>,
}

impl Proxy {
    /// Forwards `127.0.0.1:<port>` to `127.0.0.1:<upstream>`.
    pub fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Faults::default());
        let shared = faults.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let link = Arc::new(Link {
                    client: client.try_clone().unwrap(),
                    server: server.try_clone().unwrap(),
                    cut: AtomicBool::new(false),
                });
                let (requests, replies) = (link.clone(), link);
                let (faults_a, faults_b) = (shared.clone(), shared.clone());
                let (client_b, server_b) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(client, server, &faults_a, &requests, true));
                std::thread::spawn(move || pipe(server_b, client_b, &faults_b, &replies, false));
            }
        });
        Self { port, faults }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops forwarding anything, in both directions, sockets kept open.
    pub fn freeze(&self) {
        self.faults.frozen.store(true, Ordering::SeqCst);
    }

    /// Forwards again what was held back, and what comes.
    pub fn thaw(&self) {
        self.faults.frozen.store(false, Ordering::SeqCst);
    }

    /// Whether the cut asked for by [`Proxy::cut_after_request_with`] happened.
    pub fn cut_done(&self) -> bool {
        self.faults.cut_after.lock().unwrap().is_none()
    }

    /// Once: the next request holding `marker` reaches Redis, then its connection
    /// is cut and no reply of it comes back.
    pub fn cut_after_request_with(&self, marker: &[u8]) {
        *self.faults.cut_after.lock().unwrap() = Some(marker.to_vec());
    }
}

/// One proxied connection.
struct Link {
    client: TcpStream,
    server: TcpStream,
    /// Set once the connection is being cut: nothing more is forwarded.
    cut: AtomicBool,
}

/// Copies `from` to `to` until either closes, honouring the faults; `requests`
/// is the client → server direction.
fn pipe(mut from: TcpStream, mut to: TcpStream, faults: &Faults, link: &Link, requests: bool) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while faults.frozen.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if link.cut.load(Ordering::SeqCst) {
            break;
        }
        let chunk = &buffer[..n];
        let cut_now = requests && {
            let mut armed = faults.cut_after.lock().unwrap();
            let hit = armed
                .as_ref()
                .is_some_and(|m| chunk.windows(m.len()).any(|w| w == m.as_slice()));
            if hit {
                *armed = None;
            }
            hit
        };
        if cut_now {
            // From here no reply is forwarded; the request still reaches Redis.
            link.cut.store(true, Ordering::SeqCst);
        }
        if to.write_all(chunk).is_err() {
            break;
        }
        if cut_now {
            std::thread::sleep(Duration::from_millis(50));
            let _ = link.client.shutdown(Shutdown::Both);
            let _ = link.server.shutdown(Shutdown::Both);
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
