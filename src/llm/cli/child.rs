//! The child process of a CLI call: its pipes and its process group.
//!
//! Pipes are read concurrently with caps (stdout up to a limit, stderr keeping
//! its tail); the group is stopped with SIGTERM, then SIGKILL after
//! [`KILL_GRACE`], both when a call ends and when its future is dropped.

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};

use super::temp::PrivateTemp;

/// Time between SIGTERM and SIGKILL.
pub(super) const KILL_GRACE: Duration = Duration::from_secs(2);

/// Writes `input` to the child's stdin, if both exist, then closes it.
pub(super) async fn feed(stdin: Option<ChildStdin>, input: Option<&str>) {
    if let (Some(mut stdin), Some(text)) = (stdin, input) {
        // A program that stops reading early gets EPIPE here; its exit status says more.
        let _ = stdin.write_all(text.as_bytes()).await;
        let _ = stdin.shutdown().await;
    }
}

/// Why stdout was not read in full.
pub(super) enum ReadError {
    /// More than the limit.
    TooLarge,
    /// The pipe failed.
    Io(std::io::Error),
}

/// Reads to the end; more than `limit` bytes is [`ReadError::TooLarge`].
pub(super) async fn read_capped<R: AsyncRead + Unpin>(
    reader: Option<R>,
    limit: usize,
) -> Result<Vec<u8>, ReadError> {
    let Some(mut reader) = reader else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut chunk).await.map_err(ReadError::Io)?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > limit {
            return Err(ReadError::TooLarge);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// What a child wrote to stderr: the tail, and its error lines wherever they were.
#[derive(Debug, Default)]
pub(super) struct Stderr {
    /// The last bytes, lossily decoded.
    pub(super) tail: String,
    /// Lines that report an error (`ERROR`, `error:`), oldest first, capped.
    pub(super) errors: Vec<String>,
}

/// Most error lines kept from stderr, and the longest kept line.
const ERROR_LINES: usize = 32;
const ERROR_LINE_LEN: usize = 1000;

/// Reads stderr to the end, keeping the last `keep` bytes and the error lines.
pub(super) async fn read_stderr<R: AsyncRead + Unpin>(reader: Option<R>, keep: usize) -> Stderr {
    let Some(mut reader) = reader else {
        return Stderr::default();
    };
    let mut out = Stderr::default();
    let mut tail = Vec::new();
    let mut line = Vec::new();
    let mut chunk = vec![0u8; 8 * 1024];
    while let Ok(n) = reader.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        for &byte in &chunk[..n] {
            if byte == b'\n' {
                note_error_line(&mut out.errors, &line);
                line.clear();
            } else if line.len() < ERROR_LINE_LEN {
                line.push(byte);
            }
        }
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > 2 * keep {
            tail.drain(..tail.len() - keep);
        }
    }
    note_error_line(&mut out.errors, &line);
    let start = tail.len().saturating_sub(keep);
    out.tail = String::from_utf8_lossy(&tail[start..]).into_owned();
    out
}

fn note_error_line(errors: &mut Vec<String>, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if errors.len() < ERROR_LINES
        && (text.contains(" ERROR ") || text.starts_with("ERROR") || text.starts_with("error:"))
    {
        errors.push(text.to_string());
    }
}

/// Sends `signal` to the group; `false` when the group is gone.
fn signal_group(pgid: Pid, signal: Option<Signal>) -> bool {
    !matches!(killpg(pgid, signal), Err(Errno::ESRCH))
}

/// SIGTERM to the group, SIGKILL to whatever is left after [`KILL_GRACE`].
pub(super) async fn stop_group(pgid: Pid, child: &mut Child) {
    if !signal_group(pgid, Some(Signal::SIGTERM)) {
        return;
    }
    let deadline = Instant::now() + KILL_GRACE;
    loop {
        // Reap the leader, so its zombie does not keep the group "alive".
        let _ = child.try_wait();
        if !signal_group(pgid, None) {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    signal_group(pgid, Some(Signal::SIGKILL));
    let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
}

/// Kills the process group when the call's future is dropped before it finished,
/// and removes the call's private temp folder once the group is gone.
///
/// Drop cannot await, so SIGTERM is sent at once and a short-lived thread sends
/// SIGKILL if the group outlives the grace (a thread, not a task: the runtime may
/// be shutting down when the drop happens). The folder waits for the group: a
/// process still running could make it again.
pub(super) struct GroupGuard {
    pgid: Option<Pid>,
    temp: Option<PrivateTemp>,
}

impl GroupGuard {
    /// A guard for the group led by `pgid`, owning the call's temp folder, if any.
    pub(super) fn new(pgid: Pid, temp: Option<PrivateTemp>) -> Self {
        Self {
            pgid: Some(pgid),
            temp,
        }
    }

    /// The call finished and its group was stopped: dropping the guard no longer
    /// signals the group, and removes the temp folder at once.
    pub(super) fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let temp = self.temp.take();
        let Some(pgid) = self.pgid.take() else {
            return;
        };
        if !signal_group(pgid, Some(Signal::SIGTERM)) {
            return;
        }
        std::thread::spawn(move || {
            let gone = |limit: Duration| {
                let deadline = Instant::now() + limit;
                while Instant::now() < deadline {
                    if !signal_group(pgid, None) {
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
                false
            };
            if !gone(KILL_GRACE) {
                signal_group(pgid, Some(Signal::SIGKILL));
                gone(KILL_GRACE);
            }
            drop(temp);
        });
    }
}
