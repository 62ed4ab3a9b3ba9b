//! `porki status` and `porki graph` run as a user runs them, against a private Redis.

use std::process::Output;
use std::time::Duration;

use nix::sys::signal::Signal;
use porki::domain::Node;
use porki::store::prelude::*;
use porki::store::{RedisStore, TaskResult, WriteDagOptions, write_plan};
use serde_json::{Value, json};

use crate::support::{
    RedisServer, block_on, claim, exit_stderr, plan, porki, seed_team, signal, success_stdout,
    temp_dir,
};

const GOAL: &str = "shop-001";
const HOSTILE: &str = "Say \"hi\" [now]";
/// Leases that outlive the test.
const LEASE: Duration = Duration::from_secs(600);

/// Runs `porki ARGS` to the end.
fn porki_output(args: &[&str]) -> Output {
    porki().args(args).output().unwrap()
}

/// The stdout of `porki ARGS`, which must succeed.
fn porki_stdout(args: &[&str]) -> String {
    success_stdout(&porki_output(args))
}

/// Asserts that `text` contains each of `parts`.
fn assert_contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part}: {text}");
    }
}

/// a → b, a → c, b → d, c → d, and e alone: a and b DONE, c RUNNING by w2,
/// e READY, d BLOCKED.
fn seed(url: &str) {
    block_on(async {
        let store = RedisStore::connect(url).await.unwrap();
        let node = |id: &str, title: &str, priority| Node {
            priority,
            ..Node::new(id, title)
        };
        let nodes = vec![
            node("a", "Pick products", 10),
            node("b", "Write copy", 9),
            node("c", "Take photos", 8),
            node("d", "Publish", 0),
            node("e", HOSTILE, 0),
        ];
        let dag = plan(
            GOAL,
            nodes,
            &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
        );
        let options = WriteDagOptions {
            title: "Open the shop".into(),
            ..WriteDagOptions::default()
        };
        write_plan(&store, dag, &options, 100).await.unwrap();
        // Changes a few ms apart, so "most recent activity first" has one answer.
        let tick = || tokio::time::sleep(Duration::from_millis(5));
        for agent in ["w1", "w1"] {
            tick().await;
            let lease = claim(&store, GOAL, agent, LEASE).await.unwrap();
            store
                .complete(&lease, &TaskResult::default())
                .await
                .unwrap();
        }
        tick().await;
        let running = claim(&store, GOAL, "w2", LEASE).await.unwrap();
        assert_eq!(running.task, "c");
    });
}

fn seeded_server() -> RedisServer {
    let server = RedisServer::start();
    seed(&server.url());
    server
}

#[test]
fn status_shows_counts_and_the_task_table_newest_first() {
    let server = seeded_server();
    let text = porki_stdout(&["status", "--redis-url", &server.url()]);
    assert!(
        text.contains("goal shop-001  active  Open the shop"),
        "{text}"
    );
    assert!(text.contains("2/5 done (40%)"), "{text}");
    assert!(
        text.contains("blocked 1  ready 1  running 1  awaiting approval 0  done 2  failed 0"),
        "{text}"
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("ID"))
        .skip(1)
        .take(5)
        .map(|l| l.split_whitespace().collect())
        .collect();
    // c was claimed last; a and b were completed before it.
    assert_eq!(rows[0][..3], ["c", "Take", "photos"], "{text}");
    assert!(
        rows[0].contains(&"RUNNING") && rows[0].contains(&"w2"),
        "{text}"
    );
    let lease = rows[0][rows[0].len() - 2];
    assert!(
        lease.ends_with('s') && lease != "-",
        "lease left {lease}: {text}"
    );
    for (id, state) in [
        ("a", "DONE"),
        ("b", "DONE"),
        ("d", "BLOCKED"),
        ("e", "READY"),
    ] {
        assert!(
            rows.iter().any(|r| r[0] == id && r.contains(&state)),
            "{id} {state}: {text}"
        );
    }
    // Ranked as the plan was written: every task one typical minute, c with
    // d behind it.
    assert!(
        text.contains("  STATE    RANK   ESTIMATE       NOTE"),
        "{text}"
    );
    assert_eq!(rows[0][4..7], ["2m00s", "1m00s", "default"], "{text}");
}

#[test]
fn status_json_has_the_documented_fields() {
    let server = seeded_server();
    // Two agents of the goal: one live (its guard held) with a recorded
    // problem, one stopped.
    block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        for (name, state) in [
            ("w2", porki::store::AgentState::Running),
            ("w1", porki::store::AgentState::Stopped),
        ] {
            store
                .register_agent(&porki::store::AgentRecord {
                    name: name.into(),
                    goal: GOAL.into(),
                    role: (name == "w2").then(|| "photo".into()),
                    kind: porki::domain::AgentKind::Builder,
                    process: "host-a:42".into(),
                    state,
                })
                .await
                .unwrap();
        }
        assert!(
            store
                .acquire_agent_guard("w2", "token", Duration::from_secs(600))
                .await
                .unwrap()
        );
        store.push_agent_error("w2", "older problem").await.unwrap();
        store
            .push_agent_error("w2", "hb.md:3: ELEVATE x high: not a number")
            .await
            .unwrap();
    });
    let text = porki_stdout(&[
        "status",
        "--redis-url",
        &server.url(),
        "--goal",
        GOAL,
        "--json",
    ]);
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["version"], 1);
    assert!(value["generated_ms"].as_u64().unwrap() > 0);
    let goal = &value["goals"][0];
    assert_eq!(value["goals"].as_array().unwrap().len(), 1);
    for field in [
        "goal",
        "title",
        "state",
        "total",
        "done",
        "percent_done",
        "counts",
        "max_attempts",
        "created_ms",
        "finished_ms",
        "last_error",
        "superseded",
        "awaiting_approval",
        "tasks",
    ] {
        assert!(goal.get(field).is_some(), "goal field {field}: {goal}");
    }
    assert_eq!(goal["goal"], GOAL);
    assert_eq!(goal["state"], "active");
    assert_eq!(goal["total"], 5);
    assert_eq!(goal["done"], 2);
    assert_eq!(
        goal["counts"],
        serde_json::json!({"BLOCKED": 1, "READY": 1, "RUNNING": 1, "AWAITING_APPROVAL": 0, "DONE": 2, "FAILED": 0})
    );
    let tasks = goal["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 5);
    for field in [
        "id",
        "title",
        "state",
        "role",
        "priority",
        "owner",
        "attempt",
        "fence",
        "lease_expires_ms",
        "lease_left_ms",
        "lease_expired",
        "last_error",
        "retry_at_ms",
        "artifacts",
        "pending_deps",
        "created_ms",
        "updated_ms",
        "started_ms",
        "finished_ms",
        "kind",
        "of",
        "cycle",
        "notes",
        "needs_approval",
        "waits_for",
        "recovered_by",
        "planned_role",
        "rank_ms",
        "estimate_ms",
        "estimate_source",
    ] {
        assert!(
            tasks[0].get(field).is_some(),
            "task field {field}: {}",
            tasks[0]
        );
    }
    let running = &tasks[0];
    assert_eq!(running["id"], "c");
    assert_eq!(running["state"], "RUNNING");
    assert_eq!(running["owner"], "w2");
    assert_eq!(running["attempt"], 1);
    let left = running["lease_left_ms"].as_u64().unwrap();
    assert!(left > 500_000 && left <= 600_000, "{left}");
    assert_eq!(running["lease_expired"], false);
    // c and d behind it, a typical minute each while nothing has been measured.
    assert_eq!(
        (
            &running["rank_ms"],
            &running["estimate_ms"],
            &running["estimate_source"]
        ),
        (&json!(120_000), &json!(60_000), &json!("default"))
    );
    let updated: Vec<u64> = tasks
        .iter()
        .map(|t| t["updated_ms"].as_u64().unwrap())
        .collect();
    assert!(updated.windows(2).all(|w| w[0] >= w[1]), "{updated:?}");
    let e = tasks.iter().find(|t| t["id"] == "e").unwrap();
    assert_eq!(e["title"], HOSTILE);
    assert_eq!(e["lease_left_ms"], Value::Null);
    assert_eq!(
        value["agents"],
        json!([
            {"name": "w1", "goal": GOAL, "role": null, "kind": "builder", "process": "host-a:42",
             "state": "stopped", "alive": false, "last_error": null},
            {"name": "w2", "goal": GOAL, "role": "photo", "kind": "builder", "process": "host-a:42",
             "state": "running", "alive": true,
             "last_error": "hb.md:3: ELEVATE x high: not a number"},
        ])
    );
}

#[test]
fn graph_prints_nodes_and_edges_with_states_in_every_format() {
    let server = seeded_server();
    let url = server.url();
    let graph = |format: &str| {
        porki_stdout(&[
            "graph",
            "--redis-url",
            &url,
            "--goal",
            GOAL,
            "--format",
            format,
        ])
    };

    let mermaid = graph("mermaid");
    assert_eq!(
        mermaid,
        porki_stdout(&["graph", "--redis-url", &url, "--goal", GOAL]),
        "mermaid is the default"
    );
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    assert_contains_all(
        &mermaid,
        &[
            "t_a[\"a<br/>Pick products<br/>DONE\"]:::done",
            "t_c[\"c<br/>Take photos<br/>RUNNING by w2\"]:::running",
            "t_d[\"d<br/>Publish<br/>BLOCKED\"]:::blocked",
            "t_e[\"e<br/>Say #quot;hi#quot; [now]<br/>READY\"]:::ready",
            "t_a --> t_b",
            "t_c --> t_d",
            "classDef running fill:",
            // c (RUNNING, ranked above e) and what waits for it.
            "    %% critical path (thick borders, bold #c2255c links): c → d\n",
            "    class t_c critical\n    class t_d critical\n",
            // The 4th of the sorted edges a → b, a → c, b → d, c → d.
            "    linkStyle 3 stroke:#c2255c,stroke-width:3px\n",
        ],
    );

    let dot = graph("dot");
    assert!(dot.starts_with("digraph \"shop-001\" {\n"), "{dot}");
    assert_contains_all(
        &dot,
        &[
            "\"b\" [label=\"b\\nWrite copy\\nDONE\", fillcolor=",
            "\"e\" [label=\"e\\nSay \\\"hi\\\" [now]\\nREADY\", fillcolor=",
            "\"a\" -> \"c\";",
            "\"b\" -> \"d\";",
            "    // critical path (thick borders, bold #c2255c edges): c → d\n",
            "    \"c\" -> \"d\" [color=\"#c2255c\", penwidth=2.5];\n",
        ],
    );
    assert_eq!(dot.matches("penwidth=3").count(), 2, "{dot}");
    assert!(dot.ends_with("}\n"), "{dot}");

    let json: Value = serde_json::from_str(&graph("json")).unwrap();
    assert_eq!(json["goal"], GOAL);
    let states: Vec<(&str, &str)> = json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("a", "DONE"),
            ("b", "DONE"),
            ("c", "RUNNING"),
            ("d", "BLOCKED"),
            ("e", "READY")
        ]
    );
    assert_eq!(json["edges"].as_array().unwrap().len(), 4);
    assert_eq!(
        json["edges"][0],
        serde_json::json!({"source": "a", "target": "b"})
    );
    assert_eq!(json["critical_path"], json!(["c", "d"]));
    assert_eq!(
        (&json["nodes"][0]["rank_ms"], &json["nodes"][4]["rank_ms"]),
        (&json!(180_000), &json!(60_000))
    );
}

/// The team goal of `support::seed_team`, in Redis at `url`.
fn seed_team_redis(url: &str) {
    block_on(async { seed_team(&RedisStore::connect(url).await.unwrap()).await });
}

#[test]
fn status_and_graph_show_approvals_recoveries_and_what_tasks_wait_for() {
    let server = RedisServer::start();
    let url = server.url();
    seed_team_redis(&url);
    let output = porki()
        .args(["status", "--redis-url", &url, "--goal", "team"])
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    let text = success_stdout(&output);
    assert_contains_all(
        &text,
        &[
            "0/3 done (0%), not counting 1 FAILED task a recovery took over",
            "awaiting approval 1",
            "  awaiting approval: draft (porki approve|reject --goal team --task T, or APPROVE-TASK T",
        ],
    );
    let row = |id: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("no row {id}: {text}"))
            .to_string()
    };
    assert!(
        row("publish").contains("waits for draft, scan.recover"),
        "{text}"
    );
    assert!(row("scan").contains("recovered by scan.recover"), "{text}");
    assert!(row("scan.recover").contains("recovery of scan"), "{text}");
    assert!(
        row("draft").contains("awaits a person's approval"),
        "{text}"
    );
    assert!(row("rev").contains("reviewer"), "{text}");

    let mermaid = porki_stdout(&["graph", "--redis-url", &url, "--goal", "team"]);
    assert_contains_all(
        &mermaid,
        &[
            "t_scan_2e_recover[\"scan.recover<br/>Recover: Scan the archive<br/>recovery<br/>READY\"]:::ready",
            "t_scan_2e_recover --> t_publish",
            "t_scan -. recovered by .-> t_scan_2e_recover",
            "class t_scan_2e_recover recover",
        ],
    );
    let dot = porki_stdout(&[
        "graph",
        "--redis-url",
        &url,
        "--goal",
        "team",
        "--format",
        "dot",
    ]);
    assert_contains_all(
        &dot,
        &[
            "\"scan\" -> \"scan.recover\" [style=dotted, label=\"recovered by\"];",
            "style=\"rounded,filled,dashed\"",
        ],
    );
    let json: Value = serde_json::from_str(&porki_stdout(&[
        "status",
        "--redis-url",
        &url,
        "--goal",
        "team",
        "--json",
    ]))
    .unwrap();
    let goal = &json["goals"][0];
    assert_eq!(goal["awaiting_approval"], serde_json::json!(["draft"]));
    assert_eq!(goal["superseded"], 1);
    let task = |id: &str| {
        goal["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        task("publish")["waits_for"],
        serde_json::json!(["draft", "scan.recover"])
    );
    assert_eq!(task("scan.recover")["kind"], "recover");
    assert_eq!(task("scan.recover")["of"], "scan");
    assert_eq!(task("scan.recover")["notes"], "archive offline");
    assert_eq!(task("scan")["recovered_by"], "scan.recover");
    assert_eq!(task("draft")["needs_approval"], true);
    assert_eq!(json["agents"][0]["kind"], "reviewer");
}

#[test]
fn an_unknown_goal_exits_2_naming_it() {
    let server = seeded_server();
    let url = server.url();
    for args in [
        vec!["status", "--redis-url", &url, "--goal", "no-such-goal"],
        vec![
            "status",
            "--redis-url",
            &url,
            "--goal",
            "no-such-goal",
            "--json",
        ],
        vec!["graph", "--redis-url", &url, "--goal", "no-such-goal"],
    ] {
        let output = porki_output(&args);
        let stderr = exit_stderr(&output, 2, &format!("{args:?}"));
        assert!(
            stderr.contains("\"no-such-goal\"") && stderr.contains(GOAL),
            "{args:?}: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn status_after_the_demo_shows_its_tasks_done_and_its_review_cycle() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = temp_dir("status-demo");
    let output = porki()
        .args(["demo", "--redis-url", &url, "--delay", "10ms", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    success_stdout(&output);
    let text = porki_stdout(&[
        "status",
        "--redis-url",
        &url,
        "--goal",
        "demo-001",
        "--json",
    ]);
    let value: Value = serde_json::from_str(&text).unwrap();
    let goal = &value["goals"][0];
    assert_eq!(goal["state"], "complete");
    // 12 planned tasks, the draft's review, and the fix its review asked for once.
    assert_eq!(goal["total"], 14, "{text}");
    assert_eq!(goal["counts"]["DONE"], 14);
    let tasks = goal["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 14);
    assert!(tasks.iter().all(|t| t["state"] == "DONE"), "{text}");
    let task = |id: &str| tasks.iter().find(|t| t["id"] == id).unwrap();
    let team = |id: &str| {
        let t = task(id);
        (t["kind"].clone(), t["of"].clone(), t["cycle"].clone())
    };
    assert_eq!(
        team("draft.review"),
        (json!("review"), json!("draft"), json!(1)),
        "{text}"
    );
    assert_eq!(
        team("draft.fix-1"),
        (json!("fix"), json!("draft"), json!(1)),
        "{text}"
    );
    let agents = value["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 4, "{text}");
    let reviewer = agents.iter().find(|a| a["name"] == "reviewer").unwrap();
    assert_eq!(reviewer["kind"], "reviewer");

    let output = porki()
        .args(["status", "--redis-url", &url, "--goal", "demo-001"])
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    let text = success_stdout(&output);
    assert_contains_all(
        &text,
        &[
            "14/14 done (100%)",
            "review of draft, cycle 1",
            "fix 1 of draft",
        ],
    );
}

#[test]
fn watch_redraws_every_second_until_interrupted() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let server = seeded_server();
    let mut child = porki()
        .args(["status", "--redis-url", &server.url(), "--watch", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Not a terminal: one compact document per line, one line per second.
    let mut frames = Vec::new();
    for _ in 0..2 {
        let line = lines.next().unwrap().unwrap();
        let value: Value = serde_json::from_str(&line).unwrap();
        frames.push(value["generated_ms"].as_u64().unwrap());
        assert_eq!(value["goals"][0]["goal"], GOAL);
    }
    assert!(frames[1] - frames[0] >= 900, "{frames:?}");
    signal(&child, Signal::SIGINT);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "Ctrl-C ends the watch cleanly: {status:?}"
    );
}
