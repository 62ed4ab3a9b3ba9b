//! Worktree isolation across processes and machines (issue 20,
//! docs/isolation.md), with the real `porki` binary, the real `git` and a
//! private `redis-server`: two `porki run` processes, each with its own
//! repository, sharing the goal branch through a bare remote; and bad input
//! (a folder porki cannot write, a missing `--base-ref`, a rebase in progress,
//! a remote that cannot be reached or refuses the push) refused at start with
//! git's own message, or, for a push refused mid-run, failing the attempt
//! with it and leaving the goal branch as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use porki::domain::{TaskState, TaskStatus};
use porki::store::RedisStore;
use porki::store::prelude::*;

use crate::support::clis::{User, ordinary_user};
use crate::support::{
    PORKI, RedisServer, block_on, exit_stderr, git_in, git_output, porki, temp_dir, wait_exit,
    wait_until, write_script,
};

const GOAL: &str = "g";
const BRANCH: &str = "refs/heads/porki/g";
/// Tasks after `root` and before `end`.
const FAN_OUT: usize = 10;
const LONG: Duration = Duration::from_secs(180);

/// The real git in `dir`, which must succeed; its stdout, trimmed.
fn git(dir: &Path, args: &[&str]) -> String {
    git_in(dir, args).trim().to_string()
}

/// A bare repository standing for the shared git server.
fn bare_remote(dir: &Path) -> PathBuf {
    let remote = dir.join("remote.git");
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "--quiet", "--bare"]);
    remote
}

fn url(remote: &Path) -> String {
    format!("file://{}", remote.display())
}

/// The remote's goal branch, if it has one.
fn remote_tip(remote: &Path) -> Option<String> {
    let out = git_output(remote, &["rev-parse", "--quiet", "--verify", BRANCH]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Installs `hooks/pre-receive` in the bare `remote`.
fn pre_receive(remote: &Path, script: &str) {
    write_script(&remote.join("hooks/pre-receive"), script);
}

/// A project for the `command` provider: a plan file and a provider script
/// that plans with it, and for each execution records `TASK PID FILES…` (the
/// files the attempt's worktree started with) in `record.log`, writes
/// `TASK.txt` in its working directory, waits `delay` and is done.
struct Project {
    dir: PathBuf,
    script: PathBuf,
}

impl Project {
    fn new(name: &str, nodes: &[&str], edges: &[(&str, &str)], delay: &str) -> Self {
        let dir = temp_dir(name);
        let nodes: Vec<serde_json::Value> = nodes
            .iter()
            .map(|id| serde_json::json!({"id": id, "title": format!("Write {id}.txt")}))
            .collect();
        let edges: Vec<serde_json::Value> = edges
            .iter()
            .map(|(s, t)| serde_json::json!({"source": s, "target": t}))
            .collect();
        let plan = serde_json::json!({"goal_id": GOAL, "nodes": nodes, "edges": edges});
        std::fs::write(dir.join("plan.json"), plan.to_string()).unwrap();
        let script = dir.join("provider.sh");
        write_script(
            &script,
            format!(
                "#!/bin/sh\nread phase\nread task\n\
                 case \"$phase\" in *plan*) cat '{plan}'; exit 0;; esac\n\
                 task=${{task#porki-task: {GOAL}/}}\n\
                 echo \"$task $PPID $(ls | tr '\\n' ' ')\" >> '{record}'\n\
                 echo \"$task\" > \"$task.txt\"\nsleep {delay}\n\
                 echo '{{\"status\":\"done\",\"notes\":\"wrote the file\"}}'\n",
                plan = dir.join("plan.json").display(),
                record = dir.join("record.log").display(),
            ),
        );
        Project { dir, script }
    }

    /// The fan-out: `root`, then `f01`…`f10` after it, then `end` after them all.
    fn fan_out(name: &str, delay: &str) -> Self {
        let tasks = fan_out_tasks();
        let mut edges = Vec::new();
        for f in &tasks[1..=FAN_OUT] {
            edges.push(("root", f.as_str()));
            edges.push((f.as_str(), "end"));
        }
        let nodes: Vec<&str> = tasks.iter().map(String::as_str).collect();
        Self::new(name, &nodes, &edges, delay)
    }

    /// A process's instructions (its own agents of the goal) and workspace.
    fn process(&self, name: &str, agents: &[&str]) -> (PathBuf, PathBuf) {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = String::from("# Test\n\n## Agents\n");
        for agent in agents {
            text.push_str(&format!("\n### {agent}\n- Goal: {GOAL}\n- Cadence: 1s\n"));
        }
        std::fs::write(dir.join("INSTRUCTIONS.md"), text).unwrap();
        (dir.join("INSTRUCTIONS.md"), dir.join("workspace"))
    }

    /// `porki run --until-done` of a process made by [`Project::process`],
    /// its stderr in `NAME.log`; `extra` flags after the others.
    fn run(&self, name: &str, agents: &[&str], redis: &str, extra: &[&str]) -> Command {
        let (instructions, workspace) = self.process(name, agents);
        let log = std::fs::File::create(self.log_path(name)).unwrap();
        let mut command = porki();
        command
            .args(["run", "--until-done", "--lease-ttl", "5s"])
            .args(["--llm-provider", "command", "--llm-cli"])
            .arg(&self.script)
            .args(["--redis-url", redis, "--instructions"])
            .arg(instructions)
            .arg("--workspace")
            .arg(workspace)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log);
        command
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// The recorded executions: task → the files its worktree started with, per run.
    fn starts(&self) -> Vec<(String, BTreeSet<String>)> {
        std::fs::read_to_string(self.dir.join("record.log"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let mut words = line.split_whitespace();
                let task = words.next().unwrap().to_string();
                let _pid = words.next();
                (task, words.map(str::to_string).collect())
            })
            .collect()
    }
}

fn fan_out_tasks() -> Vec<String> {
    let mut tasks = vec!["root".to_string()];
    tasks.extend((1..=FAN_OUT).map(|i| format!("f{i:02}")));
    tasks.push("end".to_string());
    tasks
}

/// The first `git` on `PATH`: the one porki would run.
fn real_git() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("git"))
        .find(|path| path.is_file())
        .expect("these tests need git 2.38 or newer on PATH: install it (Debian: `apt-get install git`)")
}

/// A folder holding a `git` that is the real one, except that right before
/// the first push that would move the goal branch of `remote`, another
/// machine's commit lands there (its id written to `mark/commit`).
fn git_racing_another_machine(dir: &Path, remote: &Path, mark: &Path) -> PathBuf {
    let bin = dir.join("racing-git");
    std::fs::create_dir_all(&bin).unwrap();
    let real = real_git();
    write_script(
        &bin.join("git"),
        format!(
            "#!/bin/sh\n\
             case \" $* \" in *\" push \"*)\n\
               if '{git}' --git-dir='{remote}' rev-parse --quiet --verify {BRANCH} >/dev/null \
                  && mkdir '{mark}' 2>/dev/null; then\n\
                 old=$('{git}' --git-dir='{remote}' rev-parse {BRANCH})\n\
                 new=$('{git}' --git-dir='{remote}' -c user.name=Other -c user.email=other@example.com \
                   commit-tree -p \"$old\" -m 'pushed by another machine' \"$old^{{tree}}\")\n\
                 '{git}' --git-dir='{remote}' update-ref {BRANCH} \"$new\" \"$old\" && echo \"$new\" > '{mark}/commit'\n\
               fi;;\n\
             esac\n\
             exec '{git}' \"$@\"\n",
            git = real.display(),
            remote = remote.display(),
            mark = mark.display(),
        ),
    );
    bin
}

/// Every task of the goal as stored.
fn tasks(server: &RedisServer) -> BTreeMap<String, TaskState> {
    block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        let mut tasks = BTreeMap::new();
        for id in fan_out_tasks().into_iter().chain(["a".to_string()]) {
            if let Some(task) = store.task(GOAL, &id).await.unwrap() {
                tasks.insert(id, task);
            }
        }
        tasks
    })
}

#[test]
fn two_processes_with_their_own_repositories_share_the_goal_branch_through_a_bare_remote() {
    let server = RedisServer::start();
    let project = Project::fan_out("remote-fan-out", "0.5");
    let remote = bare_remote(&project.dir);
    let mark = project.dir.join("raced");
    let racing = git_racing_another_machine(&project.dir, &remote, &mark);
    let remote_url = url(&remote);
    let flags = ["--git-remote", remote_url.as_str()];

    let mut two = project
        .run("two", &["b1", "b2"], &server.url(), &flags)
        .spawn()
        .unwrap();
    // The other machine's pushes race only this process's merges, not the
    // goal branch's creation.
    wait_until(
        Duration::from_secs(30),
        "the remote has the goal branch",
        || remote_tip(&remote).is_some(),
    );
    let path = std::env::join_paths(
        std::iter::once(racing).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let mut one = project
        .run("one", &["a1", "a2"], &server.url(), &flags)
        .env("PATH", path)
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut one, LONG), 0, "{}", project.log("one"));
    assert_eq!(wait_exit(&mut two, LONG), 0, "{}", project.log("two"));

    // Every task DONE with the goal branch's commit holding its work, both
    // processes having done some.
    let tasks = tasks(&server);
    let tip = remote_tip(&remote).unwrap();
    let mut by_process: BTreeMap<String, &str> = BTreeMap::new();
    for id in fan_out_tasks() {
        let task = &tasks[&id];
        assert_eq!(task.status, TaskStatus::Done, "{id}: {task:?}");
        let commit = task.commit.as_deref().expect("a DONE task has its commit");
        git(&remote, &["merge-base", "--is-ancestor", commit, &tip]);
        let owner = task.owner.as_deref().unwrap();
        by_process.insert(id, if owner.starts_with('a') { "one" } else { "two" });
    }
    let processes: BTreeSet<&str> = by_process.values().copied().collect();
    assert_eq!(
        processes.len(),
        2,
        "both processes did tasks: {by_process:?}"
    );

    // Each task's commit is on the remote's goal branch exactly once, and the
    // branch holds every task's file.
    let log = git(
        &remote,
        &[
            "log",
            "--no-merges",
            "--format=%(trailers:key=Porki-Task,valueonly,separator=%x2C)",
            "porki/g",
        ],
    );
    let merged: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
    for id in fan_out_tasks() {
        let times = merged.iter().filter(|t| **t == id).count();
        assert_eq!(times, 1, "{id} merged once: {merged:?}");
        let files = git(&remote, &["ls-tree", "--name-only", "porki/g"]);
        assert!(files.lines().any(|f| f == format!("{id}.txt")), "{files}");
    }
    assert_eq!(merged.len(), fan_out_tasks().len(), "{merged:?}");

    // Every worktree started from the remote's goal branch: each attempt saw
    // its dependencies' files, some of them merged by the other process.
    let starts = project.starts();
    let deps = |task: &str| -> Vec<String> {
        match task {
            "root" => Vec::new(),
            "end" => fan_out_tasks()[1..=FAN_OUT].to_vec(),
            _ => vec!["root".to_string()],
        }
    };
    for (task, files) in &starts {
        for dep in deps(task) {
            assert!(
                files.contains(&format!("{dep}.txt")),
                "{task} started without {dep}.txt: {files:?}"
            );
        }
    }
    let across = fan_out_tasks().iter().any(|task| {
        deps(task)
            .iter()
            .any(|dep| by_process[dep] != by_process[task])
    });
    assert!(
        across,
        "some task built on the other process's work: {by_process:?}"
    );

    // The other machine's push made this process's push fail; the merge was
    // fetched, made again and pushed under the lock, and kept that commit.
    let other = std::fs::read_to_string(mark.join("commit")).expect("the other machine pushed");
    git(
        &remote,
        &["merge-base", "--is-ancestor", other.trim(), &tip],
    );
    assert!(
        project
            .log("one")
            .contains("the goal branch moved while merging; merging again"),
        "{}",
        project.log("one")
    );

    git(&remote, &["fsck", "--strict", "--no-progress"]);
    for name in ["one", "two"] {
        let workspace = project.dir.join(name).join("workspace");
        git(&workspace, &["fsck", "--no-progress"]);
        assert_eq!(git(&workspace, &["status", "--porcelain"]), "", "{name}");
        assert_eq!(
            git(&workspace, &["worktree", "list"]).lines().count(),
            1,
            "{name}: the attempts' worktrees are gone"
        );
    }
}

// --- bad input: a clear error at start, nothing lost ----------------------

/// Runs `porki run` on a one-task project with `workspace` and `extra` flags;
/// it must stop at start with exit 2 having stored nothing. Its stderr.
fn refused_at_start(name: &str, workspace: &Path, extra: &[&str]) -> String {
    refused_at_start_as(name, workspace, extra, None)
}

/// [`refused_at_start`], porki running as `user` (`None`: as this process).
fn refused_at_start_as(name: &str, workspace: &Path, extra: &[&str], user: Option<User>) -> String {
    let server = RedisServer::start();
    let project = Project::new(name, &["a"], &[], "0");
    let (instructions, _) = project.process("p", &["w"]);
    let mut command = porki();
    if let Some(user) = user {
        use std::os::unix::process::CommandExt;
        user.assert_can_run(&[PathBuf::from(PORKI), project.script.clone()]);
        let home = project.dir.join("home");
        std::fs::create_dir_all(&home).unwrap();
        user.own(&home);
        command.env("HOME", home).uid(user.uid).gid(user.gid);
    }
    let output = command
        .args([
            "run",
            "--until-done",
            "--llm-provider",
            "command",
            "--llm-cli",
        ])
        .arg(&project.script)
        .args(["--redis-url", &server.url(), "--instructions"])
        .arg(instructions)
        .arg("--workspace")
        .arg(workspace)
        .args(extra)
        .output()
        .unwrap();
    let stderr = exit_stderr(&output, 2, name);
    let keys: u64 = redis::cmd("DBSIZE").query(&mut server.conn()).unwrap();
    assert_eq!(keys, 0, "{name}: nothing was stored");
    assert!(
        !project.dir.join("record.log").exists(),
        "{name}: no task ran"
    );
    stderr
}

/// A user's repository: `main` with a committed `README`.
fn user_repo(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    git(&dir, &["init", "--quiet"]);
    std::fs::write(dir.join("README"), "hello\n").unwrap();
    git(&dir, &["add", "README"]);
    git(&dir, &["commit", "--quiet", "-m", "first"]);
    dir
}

/// What a user sees of their repository: refs, HEAD, status, the exclude file.
fn user_state(dir: &Path) -> String {
    let exclude = std::fs::read_to_string(dir.join(".git/info/exclude")).unwrap_or_default();
    format!(
        "{}\n{}\n{}\n{exclude}",
        git(dir, &["for-each-ref"]),
        git(dir, &["rev-parse", "HEAD"]),
        git(dir, &["status", "--porcelain=v2", "--branch"]),
    )
}

/// Makes `dir` read-only for its owner (`mode` 0555).
fn read_only(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
}

/// Who runs porki in the unwritable-workspace tests, so that permissions stop
/// it: as root (whom they do not stop), the ordinary user `porki-test`, the
/// test's folders being root's; otherwise this user, the folders made
/// read-only.
fn locked_out() -> Option<User> {
    nix::unistd::geteuid().is_root().then(ordinary_user)
}

#[test]
fn a_workspace_porki_cannot_make_stops_porki_run_at_start() {
    let user = locked_out();
    let parent = temp_dir("locked-parent");
    if user.is_none() {
        read_only(&parent);
    }
    let workspace = parent.join("ws");
    let stderr = refused_at_start_as("unmakeable", &workspace, &[], user);
    assert!(
        stderr.contains(&format!("cannot write in {}", workspace.display()))
            && stderr.contains("Permission denied")
            && stderr.contains("choose another --workspace"),
        "{stderr}"
    );
    assert!(!workspace.exists(), "nothing was made");
}

#[test]
fn a_repository_porki_cannot_write_in_stops_porki_run_at_start_and_is_left_alone() {
    let user = locked_out();
    let repo = user_repo("locked-repo");
    // Another user's repository (git will not use it, so porki would make
    // its own in the folder), or this user's with a git folder it cannot write.
    let locked = if user.is_some() {
        repo.clone()
    } else {
        read_only(&repo.join(".git"));
        repo.join(".git")
    };
    let before = user_state(&repo);
    let stderr = refused_at_start_as("locked-repo", &repo, &[], user);
    assert!(
        stderr.contains(&format!("cannot write in {}", locked.display()))
            && stderr.contains("Permission denied")
            && stderr.contains("choose another --workspace"),
        "{stderr}"
    );
    assert_eq!(user_state(&repo), before, "the repository is as it was");
}

#[test]
fn a_base_ref_that_does_not_exist_stops_porki_run_at_start_with_gits_message() {
    let repo = user_repo("base-ref");
    let before = user_state(&repo);
    let stderr = refused_at_start("base-ref", &repo, &["--base-ref", "no-such-branch"]);
    assert!(
        stderr.contains("--base-ref \"no-such-branch\"")
            && stderr.contains("bad revision 'no-such-branch'")
            && stderr.contains("leave --base-ref out"),
        "{stderr}"
    );
    assert_eq!(user_state(&repo), before, "the repository is as it was");
}

#[test]
fn a_repository_in_the_middle_of_a_rebase_stops_porki_run_at_start_and_is_left_alone() {
    let repo = user_repo("mid-rebase");
    git(&repo, &["checkout", "--quiet", "-b", "topic"]);
    std::fs::write(repo.join("README"), "topic\n").unwrap();
    git(&repo, &["commit", "--quiet", "-am", "topic"]);
    git(&repo, &["checkout", "--quiet", "main"]);
    std::fs::write(repo.join("README"), "main\n").unwrap();
    git(&repo, &["commit", "--quiet", "-am", "main"]);
    let rebase = git_output(&repo, &["rebase", "main", "topic"]);
    assert!(!rebase.status.success(), "the rebase stops on its conflict");
    let before = user_state(&repo);
    let stderr = refused_at_start("mid-rebase", &repo, &[]);
    assert!(
        stderr.contains("in the middle of a rebase") && stderr.contains("git rebase --abort"),
        "{stderr}"
    );
    assert_eq!(user_state(&repo), before, "the repository is as it was");
    assert!(
        repo.join(".git/rebase-merge").is_dir(),
        "the rebase goes on"
    );
}

#[test]
fn a_remote_that_cannot_be_reached_stops_porki_run_at_start_with_gits_message() {
    let dir = temp_dir("unreachable-remote");
    let missing = dir.join("missing.git");
    let stderr = refused_at_start(
        "unreachable-remote",
        &dir.join("workspace"),
        &[
            "--git-remote",
            &format!("file://porki:s3cret@{}", missing.display()),
        ],
    );
    let shown = format!("file://porki:***@{}", missing.display());
    assert!(
        stderr.contains(&format!("cannot fetch from the git remote {shown}"))
            && stderr.contains("does not appear to be a git repository")
            && stderr.contains("check --git-remote"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("s3cret"),
        "the password is hidden: {stderr}"
    );
}

#[test]
fn a_remote_that_refuses_the_goal_branch_stops_porki_run_at_start_with_gits_message() {
    let dir = temp_dir("refusing-remote");
    let remote = bare_remote(&dir);
    pre_receive(
        &remote,
        "#!/bin/sh\necho 'pushes to porki/* are not allowed here' >&2\nexit 1\n",
    );
    let stderr = refused_at_start(
        "refusing-remote",
        &dir.join("workspace"),
        &["--git-remote", &url(&remote)],
    );
    assert!(
        stderr.contains("refused the push of porki/g")
            && stderr.contains("pre-receive hook declined")
            && stderr.contains("pushes to porki/* are not allowed here")
            && stderr.contains("allow this machine to push there"),
        "{stderr}"
    );
    assert_eq!(remote_tip(&remote), None, "the remote is as it was");
}

/// The keys whose value holds `needle` (the server stores values
/// uncompressed, so a key's `DUMP` holds its strings as they are).
fn keys_holding(server: &RedisServer, needle: &str) -> Vec<String> {
    let mut conn = server.conn();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    keys.into_iter()
        .filter(|key| {
            let dump: Vec<u8> = redis::cmd("DUMP").arg(key).query(&mut conn).unwrap();
            dump.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .collect()
}

#[test]
fn a_remote_refusing_a_merge_fails_the_attempt_with_gits_message_and_keeps_the_goal_branch() {
    let server =
        RedisServer::start_with(&["--save", "", "--appendonly", "no", "--rdbcompression", "no"]);
    let project = Project::new("refused-merge", &["a"], &[], "0");
    let remote = bare_remote(&project.dir);
    // The goal branch may be made, never moved.
    pre_receive(
        &remote,
        "#!/bin/sh\nwhile read old new ref; do\n  case $old in *[!0]*)\n    \
         echo \"$ref is protected: ask its owner\" >&2; exit 1;;\n  esac\ndone\n",
    );
    // A URL with a password (git ignores it for a file URL), which porki
    // shows nowhere.
    let remote_url = format!("file://porki:s3cret@{}", remote.display());
    let mut run = project
        .run(
            "p",
            &["w"],
            &server.url(),
            &["--git-remote", &remote_url, "--max-attempts", "1"],
        )
        .spawn()
        .unwrap();
    assert_eq!(wait_exit(&mut run, LONG), 1, "{}", project.log("p"));
    let task = &tasks(&server)["a"];
    assert_eq!(task.status, TaskStatus::Failed, "{task:?}");
    let error = task.last_error.clone().unwrap_or_default();
    let shown = format!("file://porki:***@{}", remote.display());
    for expected in [
        "could not merge the task's work",
        &format!("the git remote {shown} refused the push of porki/g"),
        "pre-receive hook declined",
        "refs/heads/porki/g is protected: ask its owner",
    ] {
        assert!(error.contains(expected), "{expected:?} in {error:?}");
        assert!(project.log("p").contains(expected), "{}", project.log("p"));
    }
    let status = block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        store.goal_status(GOAL).await.unwrap().unwrap()
    });
    let branch = status.branch.expect("the goal branch is recorded");
    assert_eq!(
        (branch.branch.as_str(), branch.repository.as_str()),
        ("porki/g", shown.as_str())
    );
    assert_eq!(keys_holding(&server, "s3cret"), Vec::<String>::new());
    assert!(!project.log("p").contains("s3cret"), "{}", project.log("p"));
    // The goal branch is its start commit, there and here.
    let start = remote_tip(&remote).unwrap();
    assert_eq!(git(&remote, &["rev-list", "--count", "porki/g"]), "1");
    let workspace = project.dir.join("p").join("workspace");
    assert_eq!(git(&workspace, &["rev-parse", "porki/g"]), start);
    assert!(!workspace.join("a.txt").exists());
}
