//! The real binary against a secured Redis: a password (`requirepass`), an ACL
//! user with only the rights porki needs, TLS with a private CA, and a unix
//! socket. On each, `porki run --until-done`, `porki status` (text and JSON) and
//! `porki serve` work, and the password shows nowhere: not in their output, not
//! in errors (a wrong password says what to do), not on the dashboard, not in
//! the environment of the CLIs porki runs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::redis_server::{Access, url_encode};
use crate::support::web::get;
use crate::support::{
    RedisCluster, RedisServer, exit_stderr, free_port, llm_gate_turn, porki, signal, temp_dir,
    wait_exit, wait_until, write_script,
};

/// The password of every server here; `@` makes the URL carry it encoded.
const PASSWORD: &str = "hunter2@porki";
/// What must never show, in the password's plain and encoded forms alike.
const SECRET: &str = "hunter2";

/// The ACL rules porki needs on one Redis, as README.md gives them: its keys,
/// its event channels, and the commands it sends or its scripts call.
const PORKI_ACL: &str = "resetkeys ~goal:* ~dag:* ~task:* ~agent:* ~llm:* ~events:* ~goals ~agents resetchannels &events:* -@all +evalsha +script|load +get +set +getex +del +exists +pexpire +renamenx +hget +hgetall +hmget +hset +hdel +hexists +hincrby +hincrbyfloat +hkeys +sadd +srem +scard +smembers +zadd +zrem +zcard +zcount +zrange +zrangebyscore +zremrangebyscore +zscore +zpopmin +lpush +ltrim +lrange +time +publish +psubscribe";

/// What porki needs more on a Redis Cluster: the client checks its links
/// (`PING`) and reads the cluster's layout; sharded
/// pub/sub, `WAIT` after a completion, `CLIENT INFO` to check its subscriptions.
const PORKI_CLUSTER_ACL: &str =
    "+ping +cluster|slots +spublish +ssubscribe +sunsubscribe +wait +client|info";

/// A server asking for [`PASSWORD`], with `tls` and `unix_socket` as given.
fn server(tls: bool, unix_socket: bool) -> RedisServer {
    RedisServer::start_with_access(Access {
        password: Some(PASSWORD.into()),
        tls,
        unix_socket,
    })
}

/// Fails the test if `text` (what `what` printed) shows the password.
fn assert_hidden(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} shows the password:\n{text}");
}

/// Both streams of a finished command, as text.
fn streams(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What the ACL log of the server behind `conn` says `user` was denied
/// (commands, keys, channels), but `INFO`, which porki does without (it asks,
/// to tell a cluster node from one Redis).
fn denied(conn: &mut redis::Connection, user: &str) -> Vec<String> {
    let log: Vec<std::collections::HashMap<String, redis::Value>> =
        redis::cmd("ACL").arg("LOG").query(conn).unwrap();
    let text = |entry: &std::collections::HashMap<String, redis::Value>, field: &str| match entry
        .get(field)
    {
        Some(redis::Value::BulkString(value)) => String::from_utf8_lossy(value).into_owned(),
        _ => String::new(),
    };
    log.iter()
        .filter(|entry| text(entry, "username") == user)
        .map(|entry| format!("{} {}", text(entry, "reason"), text(entry, "object")))
        .filter(|denial| denial != "command info")
        .collect()
}

/// A project of one agent and one goal (`g1`) in a fresh folder.
fn project(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    std::fs::write(dir.join("I.md"), "## Agents\n### worker\n- Goal: g1\n").unwrap();
    dir
}

/// `porki ARGS --redis-url URL` with `env`, in `dir`, to its end.
fn porki_at(url: &str, env: &[(&str, &Path)], dir: &Path, args: &[&str]) -> Output {
    let mut command = porki();
    command
        .current_dir(dir)
        .args(args)
        .args(["--redis-url", url]);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// Runs a small offline goal to its end on `url`, reads it back with `porki
/// status` (text and JSON) and through `porki serve` (a page and the JSON API),
/// and checks that the password shows nowhere. `env` goes to every command.
fn porki_works_on(url: &str, env: &[(&str, &Path)], name: &str) {
    let dir = project(name);
    let run = porki_at(
        url,
        env,
        &dir,
        &[
            "run",
            "--until-done",
            "--llm-provider",
            "offline",
            "--instructions",
            "I.md",
        ],
    );
    assert!(run.status.success(), "run: {}", streams(&run));
    assert_hidden("porki run", &streams(&run));

    let status = porki_at(url, env, &dir, &["status"]);
    assert!(status.status.success(), "status: {}", streams(&status));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("goal g1  complete"), "{text}");
    assert_hidden("porki status", &streams(&status));
    let status = porki_at(url, env, &dir, &["status", "--json"]);
    assert!(
        status.status.success(),
        "status --json: {}",
        streams(&status)
    );
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["goals"][0]["state"], "complete", "{json}");
    assert_eq!(json["goals"][0]["done"], 2, "{json}");
    assert_hidden("porki status --json", &streams(&status));

    serve_shows_the_goal(url, env);
}

/// `porki serve` on `url`: the front page, the goal's page and `/api/status`
/// show the finished goal, and neither they nor its output show the password.
fn serve_shows_the_goal(url: &str, env: &[(&str, &Path)]) {
    let port = free_port();
    let mut command = porki();
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--redis-url", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(20), "porki serve is ready", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && get(&format!("{base}/readyz"), &[]).status == 200
    });
    let front = get(&format!("{base}/"), &[]);
    assert_eq!(front.status, 200, "{}", front.body);
    assert!(front.body.contains("g1"), "{}", front.body);
    // The footer names the store, its password hidden.
    assert!(front.body.contains("***"), "{}", front.body);
    let page = get(&format!("{base}/goals/g1"), &[]);
    assert!(
        page.body.contains("data-state=\"DONE\""),
        "the goal page shows its tasks: {}",
        page.body
    );
    let api = get(&format!("{base}/api/status"), &[]);
    let json: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(json["goals"][0]["state"], "complete", "{json}");
    for (what, body) in [
        ("/", &front.body),
        ("/goals/g1", &page.body),
        ("/api", &api.body),
    ] {
        assert_hidden(what, body);
    }
    signal(&child, Signal::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 0);
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    assert!(output.contains("dashboard at"), "{output}");
    assert_hidden("porki serve", &output);
}

/// A wrong password (`url`) is refused at once by `status`, `run` and `serve`
/// (exit 2, no retrying), saying what to do, and showing no password.
fn a_wrong_password_is_refused(url: &str, env: &[(&str, &Path)]) {
    let dir = project("wrong-password");
    let port = free_port().to_string();
    for args in [
        &["status"][..],
        &["run", "--llm-provider", "offline", "--instructions", "I.md"],
        &["serve", "--listen", &format!("127.0.0.1:{port}")],
    ] {
        let started = Instant::now();
        let output = porki_at(url, env, &dir, args);
        let stderr = exit_stderr(&output, 2, &format!("{args:?} with a wrong password"));
        assert!(
            stderr.contains("refused porki's credentials")
                && stderr.contains("--redis-url or PORKI_REDIS_URL"),
            "{args:?} says what to do: {stderr}"
        );
        assert_hidden(&format!("{args:?}"), &streams(&output));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{args:?} gave up at once: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn porki_runs_on_a_redis_with_a_password_and_never_shows_it() {
    let server = server(false, false);
    let url = server.url();
    porki_works_on(&url, &[], "requirepass");
    a_wrong_password_is_refused(
        &format!("redis://:{SECRET}-wrong@127.0.0.1:{}", server.port()),
        &[],
    );
    // No password at all: Redis answers NOAUTH, which says the same.
    let dir = project("no-password");
    let output = porki_at(
        &format!("redis://127.0.0.1:{}", server.port()),
        &[],
        &dir,
        &["status"],
    );
    let stderr = exit_stderr(&output, 2, "status without the password");
    assert!(
        stderr.contains("NOAUTH") && stderr.contains("--redis-url"),
        "{stderr}"
    );
}

#[test]
fn the_clis_porki_runs_are_not_given_the_redis_password() {
    let server = server(false, false);
    let url = server.url();
    let dir = project("child-env");
    // A CLI that keeps its environment, then plans one task and does it.
    let cli = dir.join("llm.sh");
    write_script(
        &cli,
        format!(
            "#!/bin/sh\nenv > \"{}/env-$$\"\nread first\ncase \"$first\" in\n  *plan*) echo '{{\"nodes\":[{{\"id\":\"one\",\"title\":\"One\"}}],\"edges\":[]}}' ;;\n  *) echo '{{\"status\":\"done\"}}' ;;\nesac\n",
            dir.display()
        ),
    );
    let run = porki_at(
        &url,
        &[],
        &dir,
        &[
            "run",
            "--until-done",
            "--llm-provider",
            "command",
            "--llm-cli",
            &cli.display().to_string(),
            "--instructions",
            "I.md",
        ],
    );
    assert!(run.status.success(), "run: {}", streams(&run));
    let envs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("env-"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap())
        .collect();
    assert!(
        envs.len() >= 2,
        "the CLI planned and executed: {} runs",
        envs.len()
    );
    for env in envs {
        assert_hidden("a CLI's environment", &env);
    }
}

#[test]
fn porki_runs_as_an_acl_user_with_only_the_rights_it_needs() {
    let server = server(false, false);
    server.add_user("porki", PASSWORD, PORKI_ACL);
    let url = format!(
        "redis://porki:{}@127.0.0.1:{}",
        url_encode(PASSWORD),
        server.port()
    );
    let mut admin = server.conn();
    redis::cmd("ACL")
        .arg("LOG")
        .arg("RESET")
        .query::<()>(&mut admin)
        .unwrap();
    porki_works_on(&url, &[], "acl");
    let dir = project("acl-more");
    for args in [&["graph", "--goal", "g1"][..], &["gc"]] {
        let output = porki_at(&url, &[], &dir, args);
        assert!(output.status.success(), "{args:?}: {}", streams(&output));
    }
    let denied = denied(&mut admin, "porki");
    assert!(denied.is_empty(), "porki was denied {denied:?}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for rules in [PORKI_ACL, PORKI_CLUSTER_ACL] {
        assert!(
            readme.contains(rules),
            "README.md gives the ACL rules tested here: {rules}"
        );
    }

    a_wrong_password_is_refused(
        &format!("redis://porki:{SECRET}-wrong@127.0.0.1:{}", server.port()),
        &[],
    );
    // A user without a right porki needs is told which, and where the rules are.
    server.add_user("weak", PASSWORD, &PORKI_ACL.replace(" +smembers", ""));
    let weak = format!(
        "redis://weak:{}@127.0.0.1:{}",
        url_encode(PASSWORD),
        server.port()
    );
    let output = porki_at(&weak, &[], &dir, &["status"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("no permissions to run the 'smembers' command")
            && stderr.contains("A secured Redis"),
        "{stderr}"
    );
    // Said once: the error's cause is not printed again after it.
    assert_eq!(stderr.matches("no permissions").count(), 1, "{stderr}");
    assert_hidden("status as a user without a right", &stderr);
}

#[test]
fn porki_runs_on_redis_over_tls_trusting_the_ca_it_is_given() {
    let server = server(true, false);
    let url = format!(
        "rediss://:{}@127.0.0.1:{}",
        url_encode(PASSWORD),
        server.tls_port()
    );
    let ca = server.ca_file();
    let trust = [("PORKI_REDIS_CA", ca.as_path())];
    porki_works_on(&url, &trust, "tls");
    a_wrong_password_is_refused(
        &format!("rediss://:{SECRET}-wrong@127.0.0.1:{}", server.tls_port()),
        &trust,
    );
    let dir = project("tls-untrusted");
    // Without the CA, the server's certificate is not trusted: said at once.
    let output = porki_at(&url, &[], &dir, &["status"]);
    let stderr = exit_stderr(&output, 2, "TLS without the CA");
    assert!(
        stderr.contains("does not trust the server's certificate")
            && stderr.contains("PORKI_REDIS_CA"),
        "{stderr}"
    );
    assert_hidden("TLS without the CA", &stderr);
    // Nor is the check turned off by the URL.
    let output = porki_at(&format!("{url}/#insecure"), &[], &dir, &["status"]);
    let stderr = exit_stderr(&output, 2, "TLS with #insecure");
    assert!(stderr.contains("PORKI_REDIS_CA"), "{stderr}");
    assert_hidden("TLS with #insecure", &stderr);
    // A CA file that is not one, or a URL without TLS, is refused saying so.
    let not_a_ca = dir.join("I.md");
    let output = porki_at(&url, &[("PORKI_REDIS_CA", &not_a_ca)], &dir, &["status"]);
    let stderr = exit_stderr(&output, 2, "a CA file without a certificate");
    assert!(stderr.contains("holds no PEM certificate"), "{stderr}");
    let plain = format!(
        "redis://:{}@127.0.0.1:{}",
        url_encode(PASSWORD),
        server.port()
    );
    let output = porki_at(&plain, &trust, &dir, &["status"]);
    let stderr = exit_stderr(&output, 2, "PORKI_REDIS_CA with redis://");
    assert!(stderr.contains("use rediss://"), "{stderr}");
    assert_hidden("PORKI_REDIS_CA with redis://", &stderr);
}

#[test]
fn porki_runs_on_redis_over_a_unix_socket() {
    let server = server(false, true);
    let socket = server.socket_path();
    let url = format!(
        "redis+unix://{}?pass={}",
        socket.display(),
        url_encode(PASSWORD)
    );
    porki_works_on(&url, &[], "unix");
    // `unix://` is the same.
    let dir = project("unix-short");
    let short = url.replacen("redis+unix://", "unix://", 1);
    let output = porki_at(&short, &[], &dir, &["status"]);
    assert!(output.status.success(), "{}", streams(&output));
    a_wrong_password_is_refused(
        &format!("redis+unix://{}?pass={SECRET}-wrong", socket.display()),
        &[],
    );
    // A password in the user info, where redis-rs does not read it, is refused saying where it goes.
    let output = porki_at(
        &format!(
            "redis+unix://:{}@{}",
            url_encode(PASSWORD),
            socket.display()
        ),
        &[],
        &dir,
        &["status"],
    );
    let stderr = exit_stderr(&output, 2, "a socket URL with user info");
    assert!(stderr.contains("?user=USER&pass=PASSWORD"), "{stderr}");
    assert_hidden("a socket URL with user info", &stderr);
}

#[test]
fn porki_runs_on_a_redis_cluster_as_an_acl_user() {
    let cluster = RedisCluster::shared();
    // The run takes an LLM slot of llm:gate, one key for the whole shared cluster.
    let _turn = llm_gate_turn().blocking_lock();
    // Names of this test's own on the shared cluster.
    let user = format!("porki-access-{}", std::process::id());
    let goal = format!("access-{}", std::process::id());
    let rules = format!("{PORKI_ACL} {PORKI_CLUSTER_ACL}");
    for port in cluster.ports() {
        let mut args = vec!["ACL", "SETUSER", &user, "reset", "on"];
        let password = format!(">{PASSWORD}");
        args.push(&password);
        args.extend(rules.split_whitespace());
        let answer = cluster.cli(port, &args);
        assert_eq!(answer.trim(), "OK", "ACL SETUSER on {port}: {answer}");
    }
    let url = cluster
        .url()
        .replacen("://", &format!("://{user}:{}@", url_encode(PASSWORD)), 1);
    let dir = temp_dir("cluster-acl");
    std::fs::write(
        dir.join("I.md"),
        format!("## Agents\n### {goal}-worker\n- Goal: {goal}\n"),
    )
    .unwrap();
    let run = porki_at(
        &url,
        &[],
        &dir,
        &[
            "run",
            "--until-done",
            "--llm-provider",
            "offline",
            "--instructions",
            "I.md",
        ],
    );
    assert!(run.status.success(), "run: {}", streams(&run));
    assert_hidden("porki run on the cluster", &streams(&run));
    let status = porki_at(&url, &[], &dir, &["status", "--json", "--goal", &goal]);
    assert!(status.status.success(), "status: {}", streams(&status));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["goals"][0]["state"], "complete", "{json}");
    assert_hidden("porki status on the cluster", &streams(&status));
    for port in cluster.ports() {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .and_then(|client| client.get_connection())
            .unwrap();
        let denied = denied(&mut conn, &user);
        assert!(denied.is_empty(), "porki was denied on {port}: {denied:?}");
    }
    a_wrong_password_is_refused(
        &cluster
            .url()
            .replacen("://", &format!("://{user}:{SECRET}-wrong@"), 1),
        &[],
    );
    for port in cluster.ports() {
        cluster.cli(port, &["ACL", "DELUSER", &user]);
    }
}
