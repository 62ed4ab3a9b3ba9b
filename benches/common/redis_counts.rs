//! What the benchmarks count on the Redis side: the server's own command
//! statistics and a proxy that counts the commands clients send.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// `INFO commandstats`: calls per command name.
pub fn command_stats(port: u16) -> BTreeMap<String, u64> {
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection())
        .expect("connect to redis-server");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields.split(',').find_map(|f| f.strip_prefix("calls="))?;
            Some((name.to_string(), calls.parse().ok()?))
        })
        .collect()
}

/// The commands run between two [`command_stats`] readings, by name, most
/// first; the one `INFO` the later reading itself ran is left out.
pub fn commands_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> Vec<(String, u64)> {
    let mut per_kind: Vec<(String, u64)> = after
        .iter()
        .map(|(name, calls)| {
            let mut calls = calls - before.get(name).copied().unwrap_or(0);
            if name == "info" {
                calls = calls.saturating_sub(1);
            }
            (name.clone(), calls)
        })
        .filter(|(_, calls)| *calls > 0)
        .collect();
    per_kind.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    per_kind
}

/// A TCP proxy in front of Redis that counts the commands clients send.
pub struct CountingProxy {
    port: u16,
    counts: Arc<Counts>,
}

impl CountingProxy {
    pub fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let counts = Arc::new(Counts::default());
        let count = counts.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (client_in, server_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let count = count.clone();
                std::thread::spawn(move || forward_counting(client_in, server_out, &count));
                std::thread::spawn(move || forward(server, client));
            }
        });
        Self { port, counts }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn commands(&self) -> u64 {
        self.counts.total.load(Ordering::Relaxed)
    }

    /// Commands sent, by name, most first.
    pub fn by_name(&self) -> Vec<(String, u64)> {
        let mut names: Vec<_> = self
            .counts
            .names
            .lock()
            .unwrap()
            .clone()
            .into_iter()
            .collect();
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        names
    }
}

fn forward(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// Forwards requests, counting each command: a RESP array of bulk strings.
fn forward_counting(mut from: TcpStream, mut to: TcpStream, count: &Counts) {
    let mut buf = [0u8; 64 * 1024];
    let mut parser = RequestParser::default();
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        count
            .total
            .fetch_add(parser.feed(&buf[..n]), Ordering::Relaxed);
        let mut names = count.names.lock().unwrap();
        for (name, n) in std::mem::take(&mut parser.names) {
            *names.entry(name).or_default() += n;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// What the proxy counted.
#[derive(Default)]
struct Counts {
    total: AtomicU64,
    names: std::sync::Mutex<BTreeMap<String, u64>>,
}

/// Where the parser is in a stream of `*N\r\n($LEN\r\nBYTES\r\n){N}` requests.
#[derive(Default)]
struct RequestParser {
    line: Vec<u8>,
    /// Bulk strings left in the current command.
    args_left: u64,
    /// Bytes of the current bulk string (and its `\r\n`) left to skip.
    skip: u64,
    /// Whether the next bulk string is a command's name.
    name_next: bool,
    /// The name being read.
    name: Vec<u8>,
    /// Commands seen, by name.
    names: BTreeMap<String, u64>,
}

impl RequestParser {
    /// Reads `bytes`; returns how many commands started in them.
    fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut started = 0;
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = (self.skip as usize).min(bytes.len());
                if self.name_next {
                    self.name.extend_from_slice(&bytes[..n]);
                    if self.skip as usize == n {
                        let name = String::from_utf8_lossy(&self.name).trim().to_lowercase();
                        *self.names.entry(name).or_default() += 1;
                        self.name.clear();
                        self.name_next = false;
                    }
                }
                self.skip -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(bytes);
                break;
            };
            self.line.extend_from_slice(&bytes[..=end]);
            bytes = &bytes[end + 1..];
            let line = std::mem::take(&mut self.line);
            let number = |l: &[u8]| -> u64 {
                std::str::from_utf8(&l[1..])
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .unwrap_or(0)
            };
            match line.first() {
                Some(b'*') if self.args_left == 0 => {
                    started += 1;
                    self.args_left = number(&line);
                    self.name_next = true;
                }
                Some(b'$') => {
                    self.args_left = self.args_left.saturating_sub(1);
                    self.skip = number(&line) + 2;
                }
                _ => {}
            }
        }
        started
    }
}
