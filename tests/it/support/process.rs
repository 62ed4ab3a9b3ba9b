//! The `porki` binary under test, and waiting on and signalling children.

use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// Path of the `porki` binary cargo built for these tests.
pub const PORKI: &str = env!("CARGO_BIN_EXE_porki");

/// A `porki` command that does not depend on the caller's shell: no
/// `PORKI_*` setting taken from it, no `COLUMNS`,
/// no colours.
pub fn porki() -> Command {
    let mut command = Command::new(PORKI);
    // A developer's own settings (PORKI_REDIS_URL, PORKI_REDIS_CA, …) must not
    // change what a test runs.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PORKI_") {
            command.env_remove(name);
        }
    }
    command.env_remove("COLUMNS").env("NO_COLOR", "1");
    command
}

/// The stdout of a command that must have succeeded (else the test fails,
/// showing both streams).
pub fn success_stdout(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The stderr of a finished command, which must have exited with `code`
/// (else the test fails, naming `what` and showing the stderr).
pub fn exit_stderr(output: &Output, code: i32, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{what}: {stderr}");
    stderr
}

/// Waits for `child` to exit; after `limit` kills it and returns `None`.
pub fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The exit code of `child` (-1 if a signal ended it); fails the test, after
/// killing it, if it runs past `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> i32 {
    wait_child(child, limit)
        .unwrap_or_else(|| panic!("porki did not exit within {limit:?}"))
        .code()
        .unwrap_or(-1)
}

/// Sends `signal` to `child` (not yet waited for, so its pid is still its own).
pub fn signal(child: &Child, signal: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
        .unwrap_or_else(|e| panic!("send {signal} to {}: {e}", child.id()));
}
