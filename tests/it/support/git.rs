//! The real git, as the tests' user runs it (an identity, `main` for new
//! repositories, C messages).

use std::path::Path;
use std::process::{Command, Output};

/// `git ARGS` in `dir`: its output, whatever it exited with.
pub fn git_output(dir: &Path, args: &[&str]) -> Output {
    // `-C`: a folder not made yet is git's error, not a failure to start it.
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Tester", "-c", "user.email=tester@example.com"])
        .args(["-c", "init.defaultBranch=main"])
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| {
            panic!("these tests need git 2.38 or newer on PATH: install it (Debian: `apt-get install git`): {e}")
        })
}

/// `git ARGS` in `dir`, which must succeed: its stdout.
pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = git_output(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
