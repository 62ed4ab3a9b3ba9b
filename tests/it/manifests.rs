//! The systemg manifests (`systemg.yaml` at the top level and in
//! `examples/orchestrator/`) and the instructions files they run.
//!
//! The manifests are read with the keys current systemg accepts (manifest
//! `version: "2"`; every service key is refused by systemg when unknown, so
//! these structs refuse unknown keys too): a misspelled key such as the seed's
//! `spawn.limit` fails here instead of at `sysg start`. One more test starts the
//! repository's manifest under the real `sysg` (on PATH, or in `target/sysg`
//! where `.ci/run` installs it), and fails without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use porki::project::Project;
use serde::Deserialize;

use crate::support::process::wait_child;
use crate::support::{PORKI, free_port, poll, temp_dir};

/// The manifests porki ships, relative to the repository root.
const MANIFESTS: &[&str] = &["systemg.yaml", "examples/orchestrator/systemg.yaml"];

/// Environment variables the orchestrator service must set.
const REQUIRED_ENV: &[&str] = &[
    "PORKI_LLM_MAX_CONCURRENCY",
    "PORKI_LLM_CONCURRENCY_WAIT_SECONDS",
];

/// The top level of a systemg manifest: the keys systemg's `ConfigV1` accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // fields read only to refuse unknown keys
struct Manifest {
    version: String,
    services: BTreeMap<String, Service>,
    project: Option<serde_yaml_ng::Value>,
    projects: Option<serde_yaml_ng::Value>,
    project_dir: Option<String>,
    env: Option<Env>,
    metrics: Option<serde_yaml_ng::Value>,
    logs: Option<serde_yaml_ng::Value>,
    status: Option<serde_yaml_ng::Value>,
}

/// One service: the keys systemg's `ServiceConfig` accepts (it denies others).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // fields read only to refuse unknown keys
struct Service {
    #[serde(default)]
    command: String,
    exec: Option<Vec<String>>,
    working_dir: Option<String>,
    env: Option<Env>,
    user: Option<String>,
    group: Option<String>,
    supplementary_groups: Option<Vec<String>>,
    limits: Option<serde_yaml_ng::Value>,
    capabilities: Option<Vec<String>>,
    isolation: Option<serde_yaml_ng::Value>,
    restart_policy: Option<String>,
    backoff: Option<String>,
    max_restarts: Option<u32>,
    depends_on: Option<Vec<String>>,
    deployment: Option<serde_yaml_ng::Value>,
    hooks: Option<serde_yaml_ng::Value>,
    cron: Option<serde_yaml_ng::Value>,
    skip: Option<serde_yaml_ng::Value>,
    spawn: Option<Spawn>,
    logs: Option<serde_yaml_ng::Value>,
}

/// `env:` of a service: an env file and/or inline `vars`.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Env {
    file: Option<String>,
    vars: Option<BTreeMap<String, String>>,
}

/// `spawn:` (systemg's `SpawnConfig`, unknown keys denied).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spawn {
    mode: Option<String>,
    limits: Option<SpawnLimits>,
}

/// `spawn.limits:` (systemg's `SpawnLimitsConfig`, unknown keys denied).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct SpawnLimits {
    children: Option<u32>,
    depth: Option<u32>,
    descendants: Option<u32>,
    total_memory: Option<String>,
    termination_policy: Option<String>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_manifest(path: &Path) -> Manifest {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{} is not a systemg v2 manifest porki can ship: {e}",
            path.display()
        )
    })
}

/// The words of a command line (the manifests' commands quote nothing that
/// matters here).
fn words(command: &str) -> Vec<&str> {
    command.split_whitespace().collect()
}

/// The value after `flag` in a command line.
fn flag_value<'a>(command: &'a str, flag: &str) -> Option<&'a str> {
    let words = words(command);
    let at = words.iter().position(|w| *w == flag)?;
    words.get(at + 1).copied()
}

/// systemg's duration grammar: a whole number with an optional `ms`, `s`, `m`
/// or `h`.
fn is_systemg_duration(text: &str) -> bool {
    let digits = ["ms", "s", "m", "h"]
        .iter()
        .find_map(|unit| text.strip_suffix(unit))
        .unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn check_restart(path: &Path, name: &str, service: &Service) {
    let policy = service
        .restart_policy
        .as_deref()
        .unwrap_or_else(|| panic!("{}: services.{name} has no restart_policy", path.display()));
    assert!(
        ["always", "on-failure", "never"].contains(&policy),
        "{}: services.{name}.restart_policy {policy:?} is not always, on-failure or never",
        path.display()
    );
    let backoff = service
        .backoff
        .as_deref()
        .unwrap_or_else(|| panic!("{}: services.{name} has no backoff", path.display()));
    assert!(
        is_systemg_duration(backoff),
        "{}: services.{name}.backoff {backoff:?} is not a systemg duration (like 5s)",
        path.display()
    );
}

/// Checks one manifest and returns the instructions file its orchestrator runs.
fn check_manifest(path: &Path) -> PathBuf {
    let manifest = read_manifest(path);
    let shown = path.display();
    assert_eq!(
        manifest.version, "2",
        "{shown}: manifest version must be \"2\""
    );
    let redis = manifest
        .services
        .get("redis")
        .unwrap_or_else(|| panic!("{shown}: no `redis` service"));
    let orchestrator = manifest
        .services
        .get("orchestrator")
        .unwrap_or_else(|| panic!("{shown}: no `orchestrator` service"));
    assert_eq!(
        words(&redis.command).first(),
        Some(&"redis-server"),
        "{shown}: the redis service runs redis-server"
    );
    check_restart(path, "redis", redis);
    check_restart(path, "orchestrator", orchestrator);

    let depends = orchestrator.depends_on.clone().unwrap_or_default();
    assert!(
        depends.iter().any(|d| d == "redis"),
        "{shown}: orchestrator must depend_on redis, has {depends:?}"
    );

    let vars = orchestrator
        .env
        .as_ref()
        .and_then(|e| e.vars.as_ref())
        .unwrap_or_else(|| panic!("{shown}: orchestrator has no env.vars"));
    for name in REQUIRED_ENV {
        let value = vars
            .get(*name)
            .unwrap_or_else(|| panic!("{shown}: orchestrator env.vars lacks {name}"));
        assert!(
            value.parse::<u64>().is_ok(),
            "{shown}: {name} = {value:?} is not a whole number"
        );
    }

    let spawn = orchestrator
        .spawn
        .as_ref()
        .unwrap_or_else(|| panic!("{shown}: orchestrator has no spawn block"));
    assert_eq!(
        spawn.mode.as_deref(),
        Some("dynamic"),
        "{shown}: spawn.mode must be dynamic"
    );
    let children = spawn
        .limits
        .as_ref()
        .and_then(|l| l.children)
        .unwrap_or_else(|| panic!("{shown}: spawn.limits.children is missing"));
    assert!(
        children > 0,
        "{shown}: spawn.limits.children must be positive"
    );

    let command = words(&orchestrator.command);
    assert_eq!(
        command.first(),
        Some(&"porki"),
        "{shown}: orchestrator runs porki"
    );
    assert_eq!(
        flag_value(&orchestrator.command, "--role"),
        Some("orchestrator"),
        "{shown}: orchestrator runs with --role orchestrator"
    );

    // The orchestrator talks to the redis service the manifest starts.
    let port = flag_value(&redis.command, "--port").unwrap_or("6379");
    let url = flag_value(&orchestrator.command, "--redis-url")
        .unwrap_or_else(|| panic!("{shown}: orchestrator has no --redis-url"));
    assert!(
        url.ends_with(&format!(":{port}")),
        "{shown}: orchestrator --redis-url {url} is not the redis service's port {port}"
    );

    let instructions = flag_value(&orchestrator.command, "--instructions")
        .unwrap_or_else(|| panic!("{shown}: orchestrator has no --instructions"));
    let folder = path.parent().expect("a manifest has a folder");
    let instructions = folder.join(instructions);
    assert!(
        instructions.is_file(),
        "{shown}: --instructions points at {}, which does not exist",
        instructions.display()
    );
    instructions
}

/// Loads an instructions file and checks the files its agents name exist.
fn check_instructions(path: &Path) -> Project {
    let project =
        Project::load(path).unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
    assert!(
        !project.agents.is_empty(),
        "{} declares no agents",
        path.display()
    );
    for agent in &project.agents {
        if let Some(heartbeat) = &agent.heartbeat {
            assert!(
                heartbeat.is_file(),
                "{}: agent {}'s heartbeat file {} does not exist",
                path.display(),
                agent.name,
                heartbeat.display()
            );
        }
    }
    project
}

#[test]
fn manifests_are_systemg_v2_and_point_at_loadable_instructions() {
    for manifest in MANIFESTS {
        let path = repo().join(manifest);
        let instructions = check_manifest(&path);
        check_instructions(&instructions);
    }
}

#[test]
fn the_seeds_spawn_limit_key_is_refused() {
    let seed = "version: \"2\"\nservices:\n  orchestrator:\n    command: porki\n    spawn:\n      mode: dynamic\n      limit: 10\n";
    let error = serde_yaml_ng::from_str::<Manifest>(seed)
        .expect_err("spawn.limit is not a systemg key")
        .to_string();
    assert!(error.contains("limit"), "{error}");
}

fn find_instructions(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            find_instructions(&path, found);
        } else if path.file_name().is_some_and(|n| n == "INSTRUCTIONS.md") {
            found.push(path);
        }
    }
}

#[test]
fn every_instructions_file_loads() {
    let mut found = Vec::new();
    for dir in ["examples", "instructions"] {
        find_instructions(&repo().join(dir), &mut found);
    }
    found.sort();
    for expected in [
        "instructions/INSTRUCTIONS.md",
        "examples/orchestrator/instructions/INSTRUCTIONS.md",
        "examples/demo/instructions/INSTRUCTIONS.md",
    ] {
        assert!(
            found.contains(&repo().join(expected)),
            "{expected} not found among {found:?}"
        );
    }
    for path in &found {
        check_instructions(path);
    }
}

// ---------------------------------------------------------------------------
// Under a real `sysg`.

/// A program on PATH.
fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a folder in the temp dir");
    for entry in std::fs::read_dir(from).expect("list a folder to copy") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// The systemg version `.ci/run` installs.
const SYSTEMG_VERSION: &str = "0.69.2";

/// `sysg`: on PATH, or where `.ci/run` installs it (`target/sysg/bin`, not
/// globally). Missing, the test fails saying how to install it.
fn sysg() -> PathBuf {
    let local = repo().join("target/sysg/bin/sysg");
    on_path("sysg")
        .or_else(|| local.is_file().then_some(local))
        .unwrap_or_else(|| {
            panic!(
                "`sysg` (systemg) is needed to start the repository's manifest for real and is \
                 neither on PATH nor in target/sysg/bin: install it with `cargo install systemg \
                 --version {SYSTEMG_VERSION} --locked --ignore-rust-version --root target/sysg` \
                 (`.ci/run` does this)"
            )
        })
}

/// Runs `child` to completion, killing it after `limit`.
fn wait_output(mut child: Child, limit: Duration) -> Output {
    let finished = wait_child(&mut child, limit).is_some();
    let output = child.wait_with_output().expect("collect child output");
    assert!(
        finished,
        "command did not finish within {limit:?}; stdout: {}; stderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A private systemg home with a copy of the repository's manifest.
struct Sysg {
    program: PathBuf,
    dir: PathBuf,
    manifest: PathBuf,
    started: bool,
}

impl Sysg {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(args)
            .current_dir(&self.dir)
            // systemg keeps its supervisor state under $HOME: a private one
            // leaves any supervisor of the user's alone.
            .env("HOME", self.dir.join("home"))
            .env("NO_COLOR", "1")
            .env("SYSTEMG_AGENT", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        let child = self
            .command(args)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sysg {args:?}: {e}"));
        wait_output(child, Duration::from_secs(60))
    }

    fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "sysg {args:?} failed ({}): stdout: {stdout}; stderr: {}; orchestrator log: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            self.orchestrator_log()
        );
        stdout
    }

    fn manifest_arg(&self) -> String {
        self.manifest.display().to_string()
    }

    fn orchestrator_log(&self) -> String {
        let manifest = self.manifest_arg();
        let output = self.run(&[
            "logs",
            "-c",
            &manifest,
            "--service",
            "orchestrator",
            "--lines",
            "40",
        ]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Sysg {
    fn drop(&mut self) {
        if self.started {
            let manifest = self.manifest_arg();
            let _ = self.run(&["stop", "-c", &manifest]);
            let _ = self.run(&["stop", "--supervisor"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The repository's manifest, rewritten to a private Redis port, the built
/// binary and the offline provider.
fn rewrite_manifest(text: &str, port: u16) -> String {
    let mut manifest: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).expect("the manifest is YAML");
    let services = manifest
        .get_mut("services")
        .expect("the manifest has services");
    let redis = services["redis"]["command"]
        .as_str()
        .expect("redis has a command")
        .replace("--port 6379", &format!("--port {port}"));
    assert!(
        redis.contains(&format!("--port {port}")),
        "the redis command names --port 6379: {redis}"
    );
    services["redis"]["command"] = redis.into();
    let orchestrator = services["orchestrator"]["command"]
        .as_str()
        .expect("the orchestrator has a command")
        .trim()
        .to_string();
    let rest = orchestrator
        .strip_prefix("porki ")
        .expect("the orchestrator command starts with porki");
    let command = format!(
        "'{PORKI}' {} --llm-provider offline",
        rest.replace("127.0.0.1:6379", &format!("127.0.0.1:{port}"))
    );
    services["orchestrator"]["command"] = command.into();
    serde_yaml_ng::to_string(&manifest).expect("serialize the manifest")
}

#[test]
fn the_repository_manifest_runs_under_sysg() {
    let program = sysg();
    assert!(
        on_path("redis-server").is_some(),
        "the manifest starts redis-server, which is not on PATH: apt-get install -y redis-server"
    );
    let dir = temp_dir("sysg");
    std::fs::create_dir_all(dir.join("home")).expect("create the temp dir");
    for folder in ["instructions", "docs"] {
        copy_dir(&repo().join(folder), &dir.join(folder));
    }
    let port = free_port();
    let text = std::fs::read_to_string(repo().join("systemg.yaml")).expect("read systemg.yaml");
    let manifest = dir.join("systemg.yaml");
    std::fs::write(&manifest, rewrite_manifest(&text, port)).expect("write the manifest copy");
    let mut sysg = Sysg {
        program,
        dir,
        manifest,
        started: false,
    };
    let manifest = sysg.manifest_arg();
    let project = Project::load(&sysg.dir.join("instructions/INSTRUCTIONS.md"))
        .expect("the copied instructions load");
    let expected: Vec<String> = project.agents.iter().map(|a| a.name.clone()).collect();
    let goals = project.goals();

    sysg.run_ok(&["validate", "-c", &manifest]);
    let example = repo().join("examples/orchestrator/systemg.yaml");
    sysg.run_ok(&["validate", "-c", &example.display().to_string()]);

    sysg.started = true;
    sysg.run_ok(&["start", "--daemonize", "-c", &manifest]);

    // The orchestrator registers its agents in Redis once it is up.
    let url = format!("redis://127.0.0.1:{port}");
    let mut last = String::new();
    let registered = poll(Duration::from_secs(60), Duration::from_millis(200), || {
        let members = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .and_then(|mut c| {
                redis::cmd("SMEMBERS")
                    .arg("agents")
                    .query::<Vec<String>>(&mut c)
            });
        last = match members {
            Ok(names) if expected.iter().all(|n| names.contains(n)) => return Some(names),
            Ok(names) => format!("registered so far: {names:?}"),
            Err(e) => e.to_string(),
        };
        None
    })
    .unwrap_or_else(|| {
        panic!(
            "the agents {expected:?} were not registered in Redis within 60 s ({last}); \
             orchestrator log: {}",
            sysg.orchestrator_log()
        )
    });
    assert!(
        expected.iter().all(|n| registered.contains(n)),
        "{registered:?}"
    );

    // With the offline provider the goals run to completion under sysg.
    let mut states = Vec::new();
    poll(Duration::from_secs(60), Duration::from_millis(200), || {
        states = goals
            .iter()
            .map(|goal| {
                let state = redis::Client::open(url.as_str())
                    .and_then(|c| c.get_connection())
                    .and_then(|mut c| {
                        redis::cmd("HGET")
                            .arg(format!("goal:{{{goal}}}"))
                            .arg("status")
                            .query::<Option<String>>(&mut c)
                    });
                (goal.clone(), state)
            })
            .collect();
        states
            .iter()
            .all(|(_, state)| matches!(state, Ok(Some(s)) if s == "complete"))
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the goals did not all complete under sysg within 60 s ({states:?}); \
             orchestrator log: {}",
            sysg.orchestrator_log()
        )
    });

    let status = sysg.run_ok(&["status", "-c", &manifest]);
    for service in ["redis", "orchestrator"] {
        let row = status
            .lines()
            .find(|line| line.contains(service))
            .unwrap_or_else(|| panic!("sysg status does not list {service}: {status}"));
        assert!(
            row.to_ascii_lowercase().contains("running"),
            "sysg status does not show {service} running: {status}"
        );
    }

    sysg.run_ok(&["stop", "-c", &manifest]);
    sysg.run_ok(&["stop", "--supervisor"]);
    sysg.started = false;

    // Stopping the manifest stops its redis-server too.
    poll(Duration::from_secs(20), Duration::from_millis(200), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    })
    .unwrap_or_else(|| panic!("redis on port {port} still answers 20 s after sysg stop"));
}
