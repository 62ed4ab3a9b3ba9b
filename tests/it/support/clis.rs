//! The real `claude` and `codex` CLIs, at pinned versions from the npm registry,
//! installed into `target/real-clis` (not globally) the first time a test needs
//! them; `.ci/run` installs them there up front. `PORKI_TEST_CLI_DIR` points at
//! another `node_modules/.bin`.
//!
//! Each run gets an environment that keeps the CLI off the network and away from
//! the user's own settings: a throwaway home, the stand-in model's URL, a fake
//! key, and the vendors' switches for telemetry and updates (`REAL-CLIS.md`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Pinned versions: the ones whose behaviour `REAL-CLIS.md` records.
pub const CLAUDE_PACKAGE: &str = "@anthropic-ai/claude-code@2.1.197";
/// Pinned codex version.
pub const CODEX_PACKAGE: &str = "@openai/codex@0.171.0";

/// The folder the CLIs are installed under.
fn install_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/real-clis")
}

/// The `node_modules/.bin` folder holding `claude` and `codex`, installing them
/// first if they are missing (once per test process).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PORKI_TEST_CLI_DIR") {
        return PathBuf::from(dir);
    }
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let bin = install_dir().join("node_modules/.bin");
    if bin.join("claude").exists() && bin.join("codex").exists() {
        return bin;
    }
    let npm = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(install_dir())
        .args([CLAUDE_PACKAGE, CODEX_PACKAGE])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the real-CLI tests need Node.js and npm to install {CLAUDE_PACKAGE} and \
                 {CODEX_PACKAGE} ({e}): install Node.js 18 or newer (apt-get install -y nodejs npm)"
            )
        });
    assert!(
        npm.status.success() && bin.join("claude").exists() && bin.join("codex").exists(),
        "npm could not install {CLAUDE_PACKAGE} and {CODEX_PACKAGE} into {}: {}\n\
         run that install by hand, or point PORKI_TEST_CLI_DIR at a node_modules/.bin holding both",
        install_dir().display(),
        String::from_utf8_lossy(&npm.stderr)
    );
    bin
}

/// The environment for a real `claude` that talks only to `model_url`.
pub fn claude_env(home: &Path, model_url: &str) -> Vec<(String, String)> {
    let mut env = offline_env();
    env.extend([
        ("HOME".into(), home.display().to_string()),
        (
            "CLAUDE_CONFIG_DIR".into(),
            home.join(".claude").display().to_string(),
        ),
        ("ANTHROPIC_BASE_URL".into(), model_url.into()),
        ("ANTHROPIC_API_KEY".into(), "stand-in-key".into()),
        (
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(),
            "1".into(),
        ),
        ("DISABLE_TELEMETRY".into(), "1".into()),
        ("DISABLE_AUTOUPDATER".into(), "1".into()),
        ("DISABLE_ERROR_REPORTING".into(), "1".into()),
    ]);
    env
}

/// The environment for a real `codex` that talks only to `model_url`: a
/// `CODEX_HOME` (outside the system temp folder, where codex warns) whose
/// config names the stand-in as its provider.
pub fn codex_env(home: &Path, model_url: &str) -> Vec<(String, String)> {
    std::fs::create_dir_all(home).unwrap();
    std::fs::write(
        home.join("config.toml"),
        format!(
            "model_provider = \"standin\"\n\
             check_for_update_on_startup = false\n\
             [analytics]\nenabled = false\n\
             [features]\nplugins = false\n\
             [model_providers.standin]\n\
             name = \"standin\"\n\
             base_url = \"{model_url}/v1\"\n\
             wire_api = \"responses\"\n\
             env_key = \"STANDIN_OPENAI_KEY\"\n"
        ),
    )
    .unwrap();
    let mut env = offline_env();
    env.extend([
        ("CODEX_HOME".into(), home.display().to_string()),
        ("STANDIN_OPENAI_KEY".into(), "stand-in-key".into()),
        ("HOME".into(), home.display().to_string()),
    ]);
    env
}

/// No proxy, so nothing leaves the machine through one; loopback is reached directly.
fn offline_env() -> Vec<(String, String)> {
    vec![
        ("NO_PROXY".into(), "127.0.0.1,localhost".into()),
        ("no_proxy".into(), "127.0.0.1,localhost".into()),
    ]
}

/// A folder for one test under `target/` (codex refuses a home under the system temp folder).
pub fn target_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-homes")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An ordinary (non-root) user to run porki and a CLI as.
#[derive(Debug, Clone, Copy)]
pub struct User {
    /// Its uid.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
}

/// The user that runs `porki` as a non-root user: as root, `porki-test`
/// (created with `useradd` if missing); otherwise the current user.
pub fn ordinary_user() -> User {
    const NAME: &str = "porki-test";
    if !nix::unistd::geteuid().is_root() {
        return User {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        };
    }
    static CREATE: Mutex<()> = Mutex::new(());
    let _once = CREATE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(user) = lookup(NAME) {
        return user;
    }
    let added = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            NAME,
        ])
        .output();
    // Another test process may have added it meanwhile: look again either way.
    lookup(NAME).unwrap_or_else(|| {
        panic!(
            "this test runs porki as an ordinary user (claude refuses full permissions as root) \
             and could not create the user {NAME} with useradd ({added:?}): install useradd \
             (Debian: apt-get install -y passwd) or create the user yourself"
        )
    })
}

/// `name`'s uid and gid, from `getent passwd`.
fn lookup(name: &str) -> Option<User> {
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .ok()?;
    let line = String::from_utf8(out.stdout).ok()?;
    let mut fields = line.trim().split(':').skip(2);
    Some(User {
        uid: fields.next()?.parse().ok()?,
        gid: fields.next()?.parse().ok()?,
    })
}

impl User {
    /// Makes `dir` and everything in it this user's (the run's workspace and the CLI's home).
    pub fn own(&self, dir: &Path) {
        std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid)).unwrap();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.is_symlink() {
                self.own(&path);
            } else {
                std::os::unix::fs::lchown(&path, Some(self.uid), Some(self.gid)).unwrap();
            }
        }
    }

    /// Fails the test, saying what to do, unless this user can run each of `programs`
    /// (every folder above them searchable, the files readable and executable).
    pub fn assert_can_run(&self, programs: &[PathBuf]) {
        use std::os::unix::process::CommandExt;
        for program in programs {
            let program = program.canonicalize().unwrap_or_else(|_| program.clone());
            let ok = Command::new("test")
                .arg("-r")
                .arg(&program)
                .arg("-a")
                .arg("-x")
                .arg(&program)
                .uid(self.uid)
                .gid(self.gid)
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "uid {} cannot run {}: make every folder above it searchable by others \
                 (chmod o+x) or check out the repository where other users can reach it",
                self.uid,
                program.display()
            );
        }
    }
}
