//! The dashboard over HTTP: every endpoint, the metrics format, escaping of
//! untrusted text, the token, and `porki serve` / `run --http` / `demo --http`
//! as a user runs them. (`browser.rs` watches it in a real browser.)

use std::io::Read as _;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use porki::domain::{AgentKind, MergeConflict, Node, TaskKind};
use porki::llm::{LlmResponse, Phase, Usage};
use porki::metrics::Metrics;
use porki::store::prelude::*;
use porki::store::{
    AgentField, AgentRecord, AgentState, GoalBranch, Lease, MemoryStore, ReapOutcome, RedisStore,
    TaskResult, WriteDagOptions, write_plan,
};
use porki::web::StoreSource;

use crate::support::prometheus;
use crate::support::web::{Dashboard, get, raw};
use crate::support::{
    Prefixed, RedisCluster, RedisServer, block_on, claim, exit_stderr, free_port, plan, porki,
    seed_team, signal, temp_dir, tokio_runtime, wait_exit, wait_for, wait_until,
};

const GOAL: &str = "shop";
const EVIL: &str = "<script>alert(1)</script>";
/// Leases that outlive the test.
const LEASE: Duration = Duration::from_secs(600);

/// The store of [`seed`].
fn seeded() -> Arc<MemoryStore> {
    seed().0
}

/// a → b → c, b → b.review: a DONE (with notes and an output), b RUNNING by w1
/// with a hostile title (its lease returned), agent w1 registered, paused, with
/// a hostile error.
fn seed() -> (Arc<MemoryStore>, Lease) {
    block_on(async {
        let store = Arc::new(MemoryStore::new());
        let review = Node {
            kind: TaskKind::Review,
            of: Some("b".into()),
            ..Node::new("b.review", "Review the copy")
        };
        let dag = plan(
            GOAL,
            vec![
                Node::new("a", "Pick products"),
                Node::new("b", EVIL),
                Node::new("c", "Publish"),
                review,
            ],
            &[("a", "b"), ("b", "c"), ("b", "b.review")],
        );
        let options = WriteDagOptions {
            title: "Open the shop".into(),
            ..WriteDagOptions::default()
        };
        write_plan(&*store, dag, &options, 100).await.unwrap();
        let a = claim(&*store, GOAL, "w1", LEASE).await.unwrap();
        let result = TaskResult {
            progress: "tea, <b>coffee</b> & cake".into(),
            artifacts: vec!["out/products.md".into()],
            ..TaskResult::default()
        };
        store.complete(&a, &result).await.unwrap();
        let b = claim(&*store, GOAL, "w1", LEASE).await.unwrap();
        assert_eq!(b.task, "b");
        store
            .register_agent(&AgentRecord {
                name: "w1".into(),
                goal: GOAL.into(),
                role: Some("writer".into()),
                kind: AgentKind::Builder,
                process: "host:1".into(),
                state: AgentState::Running,
            })
            .await
            .unwrap();
        store
            .push_agent_error("w1", "<img src=x onerror=alert(2)>")
            .await
            .unwrap();
        store
            .set_agent_value("w1", AgentField::Paused, Some("release"))
            .await
            .unwrap();
        (store, b)
    })
}

fn assert_contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "no {part:?} in:\n{text}");
    }
}

#[test]
fn the_front_page_shows_goals_progress_and_agents() {
    let web = Dashboard::start(seeded());
    let page = web.get("/");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    assert!(
        page.header("content-security-policy")
            .contains("script-src 'self'")
    );
    assert_contains_all(
        &page.body,
        &[
            "<!doctype html>",
            "href=\"/goals/shop\"",
            "Open the shop",
            "1 of 4 tasks done",
            "data-agent=\"w1\"",
            "writer",
            "href=\"/goals/shop/tasks/b\"",
            "paused (release)",
            "1 agent(s) paused",
            "<script src=\"/assets/app.js\" defer></script>",
            "data-events=\"/events\"",
        ],
    );
}

#[test]
fn a_goal_page_draws_its_dag_and_lists_every_task() {
    let web = Dashboard::start(seeded());
    let page = web.get("/goals/shop");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_contains_all(
        &page.body,
        &[
            "data-events=\"/events?goal=shop\"",
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"dag",
            "data-task=\"a\" data-state=\"DONE\"",
            "data-task=\"b\" data-state=\"RUNNING\"",
            "data-task=\"c\" data-state=\"BLOCKED\"",
            // The review task is drawn as one: dashed, and labelled. It is on
            // the critical path: b runs, and b.review and c wait for it with
            // the same rank (the smaller id wins).
            "class=\"node s-blocked k-review critical\"",
            "<span class=\"kind k-review\">review</span>",
            "<tr data-task=\"b\" data-state=\"RUNNING\" class=\"critical\">",
            "<p class=\"critical-path\">Critical path (the chain of tasks that holds the goal up longest): \
<a href=\"/goals/shop/tasks/b\">b</a> → <a href=\"/goals/shop/tasks/b.review\">b.review</a></p>",
            "<tr data-task=\"c\" data-state=\"BLOCKED\"><td>",
            // Ranked as the plan was written: a typical minute per task.
            "<span title=\"estimate 1m 00s (default)\">2m 00s</span> <span class=\"crit\">critical</span>",
            "RUNNING · w1",
            "<code>out/products.md</code>",
            "Paused (no new claims until RESUME): w1.",
        ],
    );
    // Lease time left counts down on the page.
    assert!(
        page.body.contains("class=\"countdown\" data-until="),
        "{}",
        page.body
    );
    let svg = web.get("/goals/shop/graph.svg");
    assert_eq!(svg.status, 200);
    assert_eq!(svg.header("content-type"), "image/svg+xml");
    assert!(
        svg.body
            .starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"")
    );
    assert_eq!(svg.body.matches("<rect").count(), 4);
    assert_eq!(svg.body.matches("class=\"edge critical\"").count(), 1);
}

#[test]
fn a_fragment_is_the_live_part_alone() {
    let web = Dashboard::start(seeded());
    for path in [
        "/?fragment=1",
        "/goals/shop?fragment=1",
        "/goals/shop/tasks/a?fragment=1",
    ] {
        let part = web.get(path);
        assert_eq!(part.status, 200, "{path}");
        assert!(!part.body.contains("<html"), "{path}: {}", part.body);
        assert!(part.body.contains("<h1>"), "{path}: {}", part.body);
    }
}

#[test]
fn a_task_page_shows_what_its_prompt_sees_notes_and_outputs() {
    let web = Dashboard::start(seeded());
    let page = web.get("/goals/shop/tasks/b");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_contains_all(
        &page.body,
        &[
            "Dependency results (as the prompt shows them)",
            "href=\"/goals/shop/tasks/a\"",
            // a's result, as b's prompt gets it, escaped.
            "tea, &lt;b&gt;coffee&lt;/b&gt; &amp; cake",
            "Waited for by:",
            "href=\"/goals/shop/tasks/b.review\"",
            "Plan node",
            "&quot;id&quot;: &quot;b&quot;",
            "<th>owner</th><td>w1</td>",
            "<tr><th>rank</th><td>2m 00s <span class=\"muted\">(the longest estimated path from its start to the end of the plan",
            "<tr><th>estimate</th><td>1m 00s <span class=\"muted\">(default: one typical task of the goal)</span></td></tr>",
        ],
    );
    let done = web.get("/goals/shop/tasks/a");
    assert_contains_all(
        &done.body,
        &[
            "<h2>Notes</h2>",
            "tea, &lt;b&gt;coffee",
            "<code>out/products.md</code>",
        ],
    );
}

#[test]
fn unknown_goals_tasks_and_paths_are_404_saying_what_to_do() {
    let web = Dashboard::start(seeded());
    let goal = web.get("/goals/nope");
    assert_eq!(goal.status, 404);
    assert_contains_all(
        &goal.body,
        &["goal &quot;nope&quot; is not in the store", "it has shop"],
    );
    let task = web.get("/goals/shop/tasks/nope");
    assert_eq!(task.status, 404);
    assert!(
        task.body.contains("pick one from the goal"),
        "{}",
        task.body
    );
    assert_eq!(web.get("/goals/nope/graph.svg").status, 404);
    assert_eq!(web.get("/api/goals/nope/graph").status, 404);
    let other = web.get("/nothing/here");
    assert_eq!(other.status, 404);
    assert!(other.body.contains("the dashboard starts at /"));
}

#[test]
fn a_script_in_task_text_is_shown_as_text_in_html_and_svg() {
    let web = Dashboard::start(seeded());
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";
    for path in [
        "/",
        "/goals/shop",
        "/goals/shop/tasks/b",
        "/goals/shop/tasks/c",
        "/goals/shop/graph.svg",
    ] {
        let page = web.get(path);
        assert_eq!(page.status, 200, "{path}");
        assert!(
            !page.body.contains("<script>alert"),
            "{path}: {}",
            page.body
        );
        assert!(!page.body.contains("<img src=x"), "{path}: {}", page.body);
        assert!(!page.body.contains("<b>coffee"), "{path}: {}", page.body);
        if path != "/" {
            assert!(page.body.contains(escaped), "{path}: {}", page.body);
        }
    }
    // The agent's error, and the title inside the SVG's tooltip.
    assert!(
        web.get("/")
            .body
            .contains("&lt;img src=x onerror=alert(2)&gt;")
    );
    let svg = web.get("/goals/shop/graph.svg").body;
    roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    assert!(
        svg.contains(&format!("<title>b: {escaped} (RUNNING · w1)</title>")),
        "{svg}"
    );
}

/// Characters XML forbids (U+FFFE, U+FFFF, C0 controls) or that HTML calls
/// errors (other noncharacters, C1 controls), in a title an LLM wrote.
const NONCHARACTERS: &str =
    "a\u{FFFE}b\u{FFFF}c\u{FDD0}d\u{1FFFE}e\u{10FFFF}f\u{0}g\u{1b}h\u{7f}i\u{85}j\r";

#[test]
fn noncharacters_in_titles_leave_the_svg_well_formed_xml_and_the_pages_clean() {
    let store = Arc::new(MemoryStore::new());
    block_on(async {
        let dag = plan(
            "odd",
            vec![
                Node::new("a", format!("Title {NONCHARACTERS}")),
                Node::new("b", "Plain"),
            ],
            &[("a", "b")],
        );
        let options = WriteDagOptions {
            title: format!("Goal {NONCHARACTERS}"),
            ..WriteDagOptions::default()
        };
        write_plan(&*store, dag, &options, 100).await.unwrap();
        let a = claim(&*store, "odd", "w1", LEASE).await.unwrap();
        let result = TaskResult {
            progress: format!("Notes {NONCHARACTERS}"),
            artifacts: vec![format!("out/{NONCHARACTERS}")],
            ..TaskResult::default()
        };
        store.complete(&a, &result).await.unwrap();
        store
            .register_agent(&AgentRecord {
                name: "w1".into(),
                goal: "odd".into(),
                role: None,
                kind: AgentKind::Builder,
                process: "host:1".into(),
                state: AgentState::Running,
            })
            .await
            .unwrap();
        store
            .push_agent_error("w1", &format!("Error {NONCHARACTERS}"))
            .await
            .unwrap();
    });
    let web = Dashboard::start(store);
    let forbidden = |c: char| {
        let n = c as u32;
        (c.is_control() && c != '\n' && c != '\t')
            || (0xFDD0..=0xFDEF).contains(&n)
            || n & 0xFFFE == 0xFFFE
    };
    let svg = web.get("/goals/odd/graph.svg");
    assert_eq!(svg.status, 200);
    if let Err(e) = roxmltree::Document::parse(&svg.body) {
        panic!("the SVG is not well-formed XML: {e}\n{}", svg.body);
    }
    for path in [
        "/",
        "/goals/odd",
        "/goals/odd?fragment=1",
        "/goals/odd/tasks/a",
        "/goals/odd/graph.svg",
    ] {
        let page = web.get(path);
        assert_eq!(page.status, 200, "{path}");
        let bad: Vec<String> = page
            .body
            .chars()
            .filter(|&c| forbidden(c))
            .map(|c| format!("U+{:04X}", c as u32))
            .collect();
        assert!(bad.is_empty(), "{path} carries {bad:?}");
        assert!(page.body.contains("a\u{FFFD}b"), "{path}: {}", page.body);
    }
}

#[test]
fn waits_are_called_out_on_the_goal_page() {
    let (store, b) = seed();
    // b hits a rate limit: it is given back, and the whole goal waits.
    block_on(store.back_off(&b, Duration::from_secs(120), "429 <too many>")).unwrap();
    let web = Dashboard::start(store);
    let page = web.get("/goals/shop");
    assert_contains_all(
        &page.body,
        &[
            "Waiting for a rate or usage limit",
            "429 &lt;too many&gt;",
            "class=\"countdown\"",
        ],
    );
    assert!(web.get("/").body.contains("rate limit:"));
}

/// The team goal of `support::seed_team`, in the embedded store.
fn seed_team_store() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    block_on(seed_team(&*store));
    store
}

#[test]
fn a_team_goal_shows_approvals_recoveries_and_what_tasks_wait_for() {
    let web = Dashboard::start(seed_team_store());
    let page = web.get("/goals/team");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_contains_all(
        &page.body,
        &[
            "Awaiting a person's approval: <a href=\"/goals/team/tasks/draft\">draft</a>. \
Answer with porki approve|reject --goal team --task T",
            "<a href=\"/goals/team/tasks/scan\">scan</a> by <a href=\"/goals/team/tasks/scan.recover\">scan.recover</a>",
            "<tr data-task=\"scan.recover\" data-state=\"READY\">",
            "<span class=\"kind k-recover\">recover</span>",
            "<td class=\"note\">recovery of scan</td>",
            "<td class=\"note\">waits for draft, scan.recover</td>",
            "<td class=\"note\">awaits a person&#39;s approval</td>",
            "<td class=\"note\">recovered by scan.recover</td>",
            "class=\"edge recovery\"",
            // Progress leaves the superseded task out: 0 of 3 (draft, scan.recover, publish).
            "<span class=\"num\">0/3 done</span>",
            "<td>qa</td><td>reviewer</td>",
        ],
    );
    assert!(!page.body.contains("RETRY-TASK"), "{}", page.body);
    let task = web.get("/goals/team/tasks/draft");
    assert_contains_all(
        &task.body,
        &[
            "<code>porki approve --goal team --task draft</code>",
            "<code>APPROVE-TASK draft</code>",
        ],
    );
    let status: serde_json::Value = serde_json::from_str(&web.get("/api/status").body).unwrap();
    let goal = &status["goals"][0];
    assert_eq!(goal["awaiting_approval"], serde_json::json!(["draft"]));
    assert_eq!(goal["superseded"], 1);
    let publish = goal["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "publish")
        .unwrap();
    assert_eq!(
        publish["waits_for"],
        serde_json::json!(["draft", "scan.recover"])
    );
    assert_eq!(status["agents"][0]["kind"], "reviewer");
    let graph: serde_json::Value =
        serde_json::from_str(&web.get("/api/goals/team/graph").body).unwrap();
    let scan = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "scan")
        .unwrap();
    assert_eq!(scan["recovered_by"], "scan.recover");
}

/// Process metrics as an orchestrator's actors would have counted them.
fn busy_metrics() -> Arc<Metrics> {
    let metrics = Arc::new(Metrics::new());
    metrics.task_claimed(GOAL);
    metrics.task_claimed(GOAL);
    metrics.task_completed(GOAL);
    metrics.task_failed(GOAL, true);
    metrics.stale_result_rejected(GOAL);
    metrics.task_ended(GOAL, Duration::from_millis(1_200));
    metrics.leases_reaped(
        GOAL,
        &ReapOutcome {
            requeued: vec!["b".into()],
            failed: vec![],
        },
    );
    metrics.agent_restarted("w1");
    let answer = Ok(LlmResponse {
        text: "{}".into(),
        usage: Usage {
            input_tokens: 100,
            output_tokens: 20,
            cost_usd: Some(0.01),
        },
    });
    metrics.llm_call("claude", Phase::Execute, &answer, Duration::from_secs(3));
    let timeout = Err(porki::llm::LlmError::Timeout {
        provider: "claude".into(),
        after: Duration::from_secs(1),
    });
    metrics.llm_call("claude", Phase::Plan, &timeout, Duration::from_secs(1));
    metrics.gate_waited(Duration::from_millis(40));
    metrics
}

#[test]
fn metrics_parse_as_prometheus_text_with_names_labels_and_types() {
    let web = Dashboard::start_with(StoreSource::Open(seeded()), None, Some(busy_metrics()));
    let reply = web.get("/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let families = prometheus::parse(&reply.body).unwrap_or_else(|e| panic!("{e}\n{}", reply.body));
    let expect = [
        ("porki_tasks", "gauge", &["goal", "state"][..]),
        ("porki_goal_state", "gauge", &["goal", "state"]),
        ("porki_goal_tokens", "gauge", &["goal"]),
        ("porki_goal_cost_usd", "gauge", &["goal"]),
        ("porki_goal_backoff_remaining_seconds", "gauge", &["goal"]),
        ("porki_llm_gate_slots_in_use", "gauge", &[]),
        ("porki_store_up", "gauge", &[]),
        ("porki_task_claims_total", "counter", &["goal"]),
        ("porki_task_completions_total", "counter", &["goal"]),
        ("porki_task_failures_total", "counter", &["goal", "outcome"]),
        ("porki_stale_results_rejected_total", "counter", &["goal"]),
        ("porki_task_duration_seconds", "histogram", &["goal"]),
        ("porki_leases_reaped_total", "counter", &["goal", "outcome"]),
        ("porki_agent_restarts_total", "counter", &["agent"]),
        (
            "porki_llm_calls_total",
            "counter",
            &["provider", "phase", "outcome"],
        ),
        (
            "porki_llm_call_duration_seconds",
            "histogram",
            &["provider", "phase", "outcome"],
        ),
        (
            "porki_llm_tokens_total",
            "counter",
            &["provider", "phase", "direction"],
        ),
        (
            "porki_llm_cost_usd_total",
            "counter",
            &["provider", "phase"],
        ),
        ("porki_llm_gate_wait_seconds", "histogram", &[]),
    ];
    for (name, kind, labels) in expect {
        let family = families
            .get(name)
            .unwrap_or_else(|| panic!("no family {name} in\n{}", reply.body));
        assert_eq!(family.kind, kind, "{name}");
        assert!(!family.help.is_empty(), "{name} has help");
        assert!(!family.samples.is_empty(), "{name} has samples");
        for sample in &family.samples {
            let mut names: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
            names.retain(|l| *l != "le");
            let mut wanted = labels.to_vec();
            wanted.sort();
            assert_eq!(names, wanted, "labels of {}", sample.name);
        }
    }
    let tasks = &families["porki_tasks"];
    for (state, count) in [
        ("BLOCKED", 2.0),
        ("READY", 0.0),
        ("RUNNING", 1.0),
        ("DONE", 1.0),
        ("FAILED", 0.0),
    ] {
        assert_eq!(
            tasks.value("porki_tasks", &[("goal", GOAL), ("state", state)]),
            Some(count),
            "{state}"
        );
    }
    assert_eq!(
        families["porki_task_claims_total"].value("porki_task_claims_total", &[("goal", GOAL)]),
        Some(2.0)
    );
    assert_eq!(
        families["porki_llm_calls_total"].value(
            "porki_llm_calls_total",
            &[
                ("provider", "claude"),
                ("phase", "plan"),
                ("outcome", "timeout")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(
        families["porki_llm_tokens_total"].value(
            "porki_llm_tokens_total",
            &[
                ("provider", "claude"),
                ("phase", "execute"),
                ("direction", "input")
            ]
        ),
        Some(100.0)
    );
    assert_eq!(
        families["porki_goal_state"]
            .value("porki_goal_state", &[("goal", GOAL), ("state", "active")]),
        Some(1.0)
    );
    assert_eq!(
        families["porki_store_up"].value("porki_store_up", &[]),
        Some(1.0)
    );
    let durations = &families["porki_task_duration_seconds"];
    assert_eq!(
        durations.value(
            "porki_task_duration_seconds_bucket",
            &[("goal", GOAL), ("le", "1")]
        ),
        Some(0.0)
    );
    assert_eq!(
        durations.value(
            "porki_task_duration_seconds_bucket",
            &[("goal", GOAL), ("le", "2.5")]
        ),
        Some(1.0)
    );
}

#[test]
fn the_metrics_reader_refuses_what_a_scraper_would() {
    for bad in [
        "porki_x 1\n",
        "# TYPE porki_x gauge\nporki_y 1\n",
        "# TYPE porki_x gauge\nporki_x{a=\"1} 1\n",
        "# TYPE porki_x gauge\nporki_x{1a=\"1\"} 1\n",
        "# TYPE porki_x histogram\nporki_x_bucket{le=\"1\"} 2\nporki_x_bucket{le=\"+Inf\"} 1\nporki_x_count 1\n",
        "# TYPE porki_x histogram\nporki_x_bucket{le=\"+Inf\"} 2\nporki_x_count 1\n",
        "# TYPE porki_x counter\nporki_x -1\n",
    ] {
        assert!(prometheus::parse(bad).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn health_is_up_and_readiness_follows_the_store() {
    let web = Dashboard::start(seeded());
    let health = web.get("/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = web.get("/readyz");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));

    // A Redis nobody listens on: up, not ready, pages say so.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let down = Dashboard::start_with(StoreSource::Url(url), None, None);
    assert_eq!(down.get("/healthz").status, 200);
    let ready = down.get("/readyz");
    assert_eq!(ready.status, 503);
    assert!(ready.body.contains("not ready"), "{}", ready.body);
    let page = down.get("/");
    assert_eq!(page.status, 503);
    assert!(page.body.contains("not reachable yet"), "{}", page.body);
    assert_eq!(down.get("/api/status").status, 503);
    let metrics = prometheus::parse(&down.get("/metrics").body).unwrap();
    assert_eq!(
        metrics["porki_store_up"].value("porki_store_up", &[]),
        Some(0.0)
    );
}

#[test]
fn readiness_comes_when_redis_does() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let web = Dashboard::start_with(StoreSource::Url(url), None, None);
    assert_eq!(web.get("/readyz").status, 503);
    server.restart();
    wait_until(Duration::from_secs(15), "the dashboard is ready", || {
        web.get("/readyz").status == 200
    });
    assert_eq!(web.get("/").status, 200);
}

#[test]
fn events_announce_a_finished_task_to_its_goal_page() {
    let (store, b) = seed();
    let web = Dashboard::start(store.clone());
    let runtime = tokio_runtime();
    let text = runtime.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut response = client
            .get(format!("{}/events?goal={GOAL}", web.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let first = response.chunk().await.unwrap().unwrap();
        assert_eq!(&first[..], b"retry: 2000\n\n");
        store.complete(&b, &TaskResult::default()).await.unwrap();
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !text.contains("\n\n") {
            let chunk = tokio::time::timeout_at(deadline, response.chunk())
                .await
                .expect("a change event within 5 s")
                .unwrap()
                .unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    });
    assert!(
        text.starts_with("event: change\ndata: {\"goal\":"),
        "{text}"
    );
}

#[test]
fn a_token_is_checked_on_every_request() {
    let token = "0123456789abcdef";
    let web = Dashboard::start_with(StoreSource::Open(seeded()), Some(token), None);
    for path in [
        "/",
        "/goals/shop",
        "/metrics",
        "/healthz",
        "/readyz",
        "/events",
        "/api/status",
        "/assets/app.js",
    ] {
        let refused = web.get(path);
        assert_eq!(refused.status, 401, "{path}");
        assert_eq!(refused.header("www-authenticate"), "Bearer realm=\"porki\"");
        assert!(refused.body.contains("?token=TOKEN"), "{}", refused.body);
        let wrong = web.get_with(path, &[("authorization", "Bearer 0123456789abcdeX")]);
        assert_eq!(wrong.status, 401, "{path}");
    }
    let bearer = format!("Bearer {token}");
    assert_eq!(
        web.get_with("/metrics", &[("authorization", &bearer)])
            .status,
        200
    );
    // A browser: the query once, then the cookie it was given.
    let first = web.get(&format!("/goals/shop?token={token}"));
    assert_eq!(first.status, 200);
    let cookie = first.header("set-cookie");
    assert_eq!(
        cookie,
        format!("porki_token={token}; Path=/; HttpOnly; SameSite=Strict")
    );
    let cookie = cookie.split(';').next().unwrap();
    assert_eq!(web.get_with("/", &[("cookie", cookie)]).status, 200);
    assert_eq!(
        web.get_with("/", &[("cookie", "porki_token=nope")]).status,
        401
    );
    // With a token, other host names are fine (it may serve a network).
    let named = web.get_with(
        "/",
        &[("authorization", &bearer), ("host", "porki.example:7878")],
    );
    assert_eq!(named.status, 200);
}

#[test]
fn without_a_token_only_loopback_names_are_served() {
    let web = Dashboard::start(seeded());
    let rebound = web.get_with("/", &[("host", "evil.example:7878")]);
    assert_eq!(rebound.status, 403);
    assert!(rebound.body.contains("--http-token"), "{}", rebound.body);
    assert_eq!(web.get_with("/", &[("host", "localhost:7878")]).status, 200);
}

/// What a reverse proxy on this machine sends the dashboard at `base` for a
/// browser's `GET /`, with `extra` header lines.
fn proxied(base: &str, extra: &[&str]) -> Vec<(&'static str, String)> {
    let upstream = base.trim_start_matches("http://");
    let extra: String = extra.iter().map(|h| format!("\n{h}")).collect();
    vec![
        // nginx's defaults: `proxy_pass http://127.0.0.1:PORT;` sends HTTP/1.0,
        // Host set to the upstream, and no forwarding header.
        ("nginx", format!("GET / HTTP/1.0\nHost: {upstream}{extra}")),
        // What Caddy, Traefik and Apache send (nginx too, as usually set up),
        // with Host set to the upstream.
        (
            "x-forwarded-for",
            format!(
                "GET / HTTP/1.1\nHost: {upstream}\nX-Forwarded-For: 203.0.113.9\n\
                 X-Forwarded-Proto: https\nX-Forwarded-Host: porki.example.com{extra}"
            ),
        ),
        (
            "forwarded",
            format!(
                "GET / HTTP/1.1\nHost: {upstream}\nForwarded: for=203.0.113.9;proto=https{extra}"
            ),
        ),
    ]
}

#[test]
fn without_a_token_a_local_proxy_is_refused_even_with_a_loopback_host() {
    let web = Dashboard::start(seeded());
    let upstream = web.base.trim_start_matches("http://").to_string();
    // Straight from this machine: served.
    let (status, body) = raw(&web.base, &format!("GET / HTTP/1.1\nHost: {upstream}"));
    assert_eq!(status, 200, "{body}");
    for (proxy, request) in proxied(&web.base, &[]) {
        let (status, body) = raw(&web.base, &request);
        assert_eq!(status, 403, "{proxy}: {body}");
        assert!(
            body.contains("came through a proxy") && body.contains("--http-token"),
            "{proxy}: {body}"
        );
    }
}

#[test]
fn behind_a_proxy_the_token_is_what_lets_requests_in() {
    let token = "0123456789abcdef";
    let web = Dashboard::start_with(StoreSource::Open(seeded()), Some(token), None);
    let bearer = format!("Authorization: Bearer {token}");
    for (proxy, request) in proxied(&web.base, &[&bearer]) {
        let (status, body) = raw(&web.base, &request);
        assert_eq!(status, 200, "{proxy}: {body}");
        assert!(body.contains("Open the shop"), "{proxy}: {body}");
    }
    for (proxy, request) in proxied(&web.base, &[]) {
        let (status, body) = raw(&web.base, &request);
        assert_eq!(status, 401, "{proxy}: {body}");
    }
}

/// Goal `iso` under worktree isolation: `a` DONE and merged as [`MERGED`]
/// (a hostile diffstat), `b` conflicted on files touched by `a`, so
/// `b.merge` is READY to resolve it.
fn seed_merged() -> Arc<MemoryStore> {
    block_on(async {
        let store = Arc::new(MemoryStore::new());
        let dag = plan("iso", vec![Node::new("a", "A"), Node::new("b", "B")], &[]);
        write_plan(&*store, dag, &WriteDagOptions::default(), 100)
            .await
            .unwrap();
        let branch = GoalBranch {
            branch: "porki/iso".into(),
            repository: "/home/u/<proj>".into(),
        };
        store.set_goal_branch("iso", &branch).await.unwrap();
        let a = claim(&*store, "iso", "w1", LEASE).await.unwrap();
        let result = TaskResult {
            commit: Some(MERGED.into()),
            diffstat: Some(format!(
                " {EVIL}.md | 2 ++\n 1 file changed, 2 insertions(+)"
            )),
            ..TaskResult::default()
        };
        store.complete(&a, &result).await.unwrap();
        let b = claim(&*store, "iso", "w1", LEASE).await.unwrap();
        let conflict = MergeConflict {
            commit: "feedfacefeedfacefeedfacefeedfacefeedface".into(),
            files: vec!["shared.txt".into(), format!("{EVIL}.md")],
            ours: vec!["b".into()],
            theirs: vec!["a".into()],
        };
        store
            .merge_conflict(&b, &TaskResult::default(), &conflict)
            .await
            .unwrap();
        store
    })
}

const MERGED: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn worktree_isolation_shows_the_goal_branch_each_commit_its_diffstat_and_conflicts() {
    let web = Dashboard::start(seed_merged());
    let goal = web.get("/goals/iso");
    assert_eq!(goal.status, 200, "{}", goal.body);
    assert_contains_all(
        &goal.body,
        &[
            "branch <code>porki/iso</code> in <code>/home/u/&lt;proj&gt;</code>",
            "<code>git log --graph porki/iso</code>",
            // The task table names each task's commit.
            "<td class=\"note\">commit 0123456</td>",
        ],
    );
    let a = web.get("/goals/iso/tasks/a");
    assert_contains_all(
        &a.body,
        &[
            "<h2>Commit</h2><p><code class=\"commit\">0123456789abcdef0123456789abcdef01234567</code>",
            "<pre class=\"text diffstat\"> &lt;script&gt;alert(1)&lt;/script&gt;.md | 2 ++\n 1 file changed",
        ],
    );
    assert!(!a.body.contains("Merge conflict"), "{}", a.body);
    let merge = web.get("/goals/iso/tasks/b.merge");
    assert_eq!(merge.status, 200, "{}", merge.body);
    assert_contains_all(
        &merge.body,
        &[
            "<h2>Merge conflict</h2><p>Commit <code>feedfacefeedfacefeedfacefeedfacefeedface</code> \
(the work of <a href=\"/goals/iso/tasks/b\">b</a>) did not merge into the goal branch, where \
<a href=\"/goals/iso/tasks/a\">a</a> changed the same files:",
            "<li><code>shared.txt</code></li><li><code>&lt;script&gt;alert(1)&lt;/script&gt;.md</code></li>",
        ],
    );
    assert!(!merge.body.contains("<h2>Commit</h2>"), "{}", merge.body);
    // The JSON API carries the same.
    let status: serde_json::Value = serde_json::from_str(&web.get("/api/status").body).unwrap();
    let goal = &status["goals"][0];
    assert_eq!(
        (&goal["branch"], &goal["repository"]),
        (&"porki/iso".into(), &"/home/u/<proj>".into())
    );
    let task = |id: &str| {
        goal["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("no task {id} in {goal}"))
            .clone()
    };
    assert_eq!(task("a")["commit"], MERGED);
    assert!(
        task("a")["diffstat"]
            .as_str()
            .unwrap()
            .contains("1 file changed"),
        "{goal}"
    );
    assert_eq!(task("b.merge")["conflict"]["files"][0], "shared.txt");
    assert_eq!(
        task("b.merge")["conflict"]["theirs"],
        serde_json::json!(["a"])
    );
}

#[test]
fn the_json_api_is_porki_status_and_porki_graph() {
    let web = Dashboard::start(seeded());
    let status: serde_json::Value = serde_json::from_str(&web.get("/api/status").body).unwrap();
    assert_eq!(status["version"], 1);
    assert_eq!(status["goals"][0]["goal"], GOAL);
    assert_eq!(status["goals"][0]["done"], 1);
    assert_eq!(status["agents"][0]["name"], "w1");
    assert_eq!(
        status["agents"][0]["last_error"],
        "<img src=x onerror=alert(2)>"
    );
    let graph: serde_json::Value =
        serde_json::from_str(&web.get("/api/goals/shop/graph").body).unwrap();
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(graph["edges"].as_array().unwrap().len(), 3);
}

#[test]
fn assets_are_served_from_the_binary() {
    let web = Dashboard::start(seeded());
    let css = web.get("/assets/style.css");
    assert_eq!(
        (css.status, css.header("content-type")),
        (200, "text/css; charset=utf-8")
    );
    assert!(css.body.contains(".s-running"));
    let js = web.get("/assets/app.js");
    assert_eq!(
        (js.status, js.header("content-type")),
        (200, "text/javascript; charset=utf-8")
    );
    assert!(js.body.contains("new EventSource"));
}

/// Seeds a Redis store with the plan of [`seed`].
fn seed_redis(url: &str) {
    block_on(async {
        let store = RedisStore::connect(url).await.unwrap();
        let dag = plan(
            GOAL,
            vec![Node::new("a", "Pick products"), Node::new("b", EVIL)],
            &[("a", "b")],
        );
        write_plan(&store, dag, &WriteDagOptions::default(), 100)
            .await
            .unwrap();
        let a = claim(&store, GOAL, "w1", LEASE).await.unwrap();
        store.complete(&a, &TaskResult::default()).await.unwrap();
    });
}

#[test]
fn porki_serve_reads_a_redis_store_and_stops_on_sigterm() {
    let server = RedisServer::start();
    seed_redis(&server.url());
    let port = free_port();
    let mut child = porki()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--redis-url", &server.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until(Duration::from_secs(20), "porki serve is ready", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && get(&format!("{base}/readyz"), &[]).status == 200
    });
    let page = get(&format!("{base}/goals/{GOAL}"), &[]);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("data-task=\"a\" data-state=\"DONE\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let metrics = prometheus::parse(&get(&format!("{base}/metrics"), &[]).body).unwrap();
    assert_eq!(
        metrics["porki_tasks"].value("porki_tasks", &[("goal", GOAL), ("state", "READY")]),
        Some(1.0)
    );
    // It runs no agents: no process counters.
    assert!(!metrics.contains_key("porki_task_claims_total"));
    signal(&child, Signal::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 0);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(
        stdout.contains(&format!("dashboard at http://127.0.0.1:{port}/")),
        "{stdout}"
    );
}

#[test]
fn porki_serve_refuses_a_public_address_without_a_token_and_the_embedded_store() {
    let output = porki()
        .env_remove("PORKI_HTTP_TOKEN")
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--redis-url",
            "redis://127.0.0.1:1",
        ])
        .output()
        .unwrap();
    let stderr = exit_stderr(&output, 2, "serve on 0.0.0.0 without a token");
    assert!(
        stderr.contains("without a token") && stderr.contains("--http-token"),
        "{stderr}"
    );
    let output = porki()
        .env_remove("PORKI_HTTP_TOKEN")
        .args(["demo", "--http", "0.0.0.0:0"])
        .output()
        .unwrap();
    exit_stderr(&output, 2, "demo --http on 0.0.0.0 without a token");
    let output = porki()
        .args(["serve", "--redis-url", "memory://"])
        .output()
        .unwrap();
    let stderr = exit_stderr(&output, 2, "serve memory://");
    assert!(stderr.contains("--http"), "{stderr}");
    // A URL that can never work is refused at once, not retried behind the pages.
    let output = porki()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "redis+cluster://",
        ])
        .output()
        .unwrap();
    let stderr = exit_stderr(&output, 2, "serve with a malformed URL");
    assert!(stderr.contains("redis+cluster://"), "{stderr}");
    let output = porki()
        .env("PORKI_HTTP_TOKEN", "not a token")
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    let stderr = exit_stderr(&output, 2, "a token with spaces");
    assert!(
        !stderr.contains("not a token"),
        "the token is not echoed: {stderr}"
    );
    // The token's value never shows in --help.
    let help = porki()
        .env("PORKI_HTTP_TOKEN", "s3cret-value")
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("s3cret-value"));
}

#[test]
fn run_http_serves_the_orchestrator_and_counts_its_agents_work() {
    let dir = temp_dir("run-http");
    std::fs::write(
        dir.join("worker.md"),
        "## Tasks\n- [one] First\n- [two] Second\n- [three] Third\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("INSTRUCTIONS.md"),
        "## Agents\n### w0\n- Goal: g1\n- Instructions: worker.md\n",
    )
    .unwrap();
    let port = free_port();
    let mut child = porki()
        .current_dir(&dir)
        .args([
            "run",
            "--llm-provider",
            "offline",
            "--redis-url",
            "memory://",
        ])
        .args(["--http", &format!("127.0.0.1:{port}")])
        .arg("--instructions")
        .arg(dir.join("INSTRUCTIONS.md"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let status = wait_for(Duration::from_secs(30), "the goal completes", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        let reply = get(&format!("{base}/api/status"), &[]);
        let status: serde_json::Value = serde_json::from_str(&reply.body).ok()?;
        (status["goals"][0]["state"] == "complete").then_some(status)
    });
    assert_eq!(status["goals"][0]["done"], 3);
    let metrics = prometheus::parse(&get(&format!("{base}/metrics"), &[]).body).unwrap();
    let goal = [("goal", "g1")];
    assert_eq!(
        metrics["porki_task_completions_total"].value("porki_task_completions_total", &goal),
        Some(3.0)
    );
    assert_eq!(
        metrics["porki_task_claims_total"].value("porki_task_claims_total", &goal),
        Some(3.0)
    );
    assert_eq!(
        metrics["porki_task_duration_seconds"].value("porki_task_duration_seconds_count", &goal),
        Some(3.0)
    );
    assert_eq!(
        metrics["porki_llm_calls_total"].value(
            "porki_llm_calls_total",
            &[
                ("provider", "offline"),
                ("phase", "execute"),
                ("outcome", "ok")
            ]
        ),
        Some(3.0)
    );
    assert!(metrics.contains_key("porki_llm_gate_wait_seconds"));
    signal(&child, Signal::SIGTERM);
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 0);
}

/// Seeds `finished` complete goals of three tasks (`done-N`, two of them with a
/// role), the live goal `live` with a task RUNNING, and agents `w0..` with a
/// pause and a problem each, on the Redis at `url`.
fn seed_idle(url: &str, finished: usize, agents: usize) {
    block_on(async {
        let store = RedisStore::connect(url).await.unwrap();
        let tasks = |goal: &str| {
            let mut nodes = vec![
                Node::new("a", "First"),
                Node::new("b", "Second"),
                Node::new("c", "Third"),
            ];
            nodes[1].role = Some("writer".into());
            nodes[2].role = Some("editor".into());
            plan(goal, nodes, &[("a", "b"), ("b", "c")])
        };
        for n in 0..finished {
            let goal = format!("done-{n}");
            write_plan(&store, tasks(&goal), &WriteDagOptions::default(), 100)
                .await
                .unwrap();
            for role in [None, Some("writer"), Some("editor")] {
                let lease = match store.claim(&goal, "w0", role, LEASE).await.unwrap() {
                    porki::store::ClaimOutcome::Claimed(lease) => lease,
                    other => panic!("{goal}: {other:?}"),
                };
                store
                    .complete(&lease, &TaskResult::default())
                    .await
                    .unwrap();
            }
        }
        write_plan(&store, tasks("live"), &WriteDagOptions::default(), 100)
            .await
            .unwrap();
        claim(&store, "live", "w0", LEASE).await.unwrap();
        for n in 0..agents {
            let name = format!("w{n}");
            store
                .register_agent(&AgentRecord {
                    name: name.clone(),
                    goal: "live".into(),
                    role: None,
                    kind: AgentKind::Builder,
                    process: "host:1".into(),
                    state: AgentState::Running,
                })
                .await
                .unwrap();
            store.push_agent_error(&name, "a problem").await.unwrap();
            store
                .set_agent_value(&name, AgentField::Paused, Some("drain"))
                .await
                .unwrap();
        }
    });
}

/// The commands the Redis at `server` ran per second (those of its scripts
/// included, by name) while a dashboard on it had one page open and nothing
/// changed.
fn idle_commands(server: &RedisServer) -> (f64, std::collections::BTreeMap<String, u64>) {
    let web = Dashboard::start_with(StoreSource::Url(server.url()), None, None);
    // A page listening: its stream is read on a thread of its own until the end.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let base = web.base.clone();
    let page = std::thread::spawn(move || {
        tokio_runtime().block_on(async move {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut response = client.get(format!("{base}/events")).send().await.unwrap();
            while stopped.try_recv().is_err() {
                let _ = tokio::time::timeout(Duration::from_millis(100), response.chunk()).await;
            }
        })
    });
    // The first look reads everything; what follows is the idle cost.
    std::thread::sleep(Duration::from_secs(3));
    let mut conn = server.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut conn)
        .unwrap();
    let window = Duration::from_secs(5);
    std::thread::sleep(window);
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    let _ = stop.send(());
    page.join().unwrap();
    drop(web);
    let mut calls = std::collections::BTreeMap::new();
    for line in info.lines() {
        let Some((name, rest)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        if name.starts_with("config") {
            continue;
        }
        let n: u64 = rest
            .split(',')
            .find_map(|f| f.strip_prefix("calls="))
            .and_then(|n| n.parse().ok())
            .unwrap();
        calls.insert(name.to_string(), n);
    }
    let total: u64 = calls.values().sum();
    (total as f64 / window.as_secs_f64(), calls)
}

#[test]
fn an_idle_dashboard_reads_little_whatever_the_number_of_finished_goals() {
    let server = RedisServer::start();
    seed_idle(&server.url(), 20, 4);
    let (rate, calls) = idle_commands(&server);
    eprintln!("an idle dashboard: {rate:.1} commands/s: {calls:?}");
    // Each second the live goal's summary; the 20 finished goals once in 15 s.
    let summaries = calls.get("evalsha").copied().unwrap_or(0) as f64 / 5.0;
    assert!(summaries < 4.0, "{summaries} goal summaries/s: {calls:?}");
    assert!(rate < 60.0, "{rate} commands/s: {calls:?}");
}

/// Read events a Redis processed so far (`total_reads_processed`): one per
/// round trip of a client (a pipeline arrives in one).
fn reads_processed(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(conn).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_reads_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO stats has total_reads_processed (Redis 6 or later)")
}

/// Registers agents `w0..w{n}` of goal `g`, each paused, with problems, every
/// other one alive.
async fn seed_agents(store: &dyn Store, n: usize) {
    for i in 0..n {
        let name = format!("w{i}");
        store
            .register_agent(&AgentRecord {
                name: name.clone(),
                goal: "g".into(),
                role: (i % 2 == 0).then(|| "writer".to_string()),
                kind: AgentKind::Builder,
                process: "host:1".into(),
                state: AgentState::Running,
            })
            .await
            .unwrap();
        for problem in ["old", "older news", "newest"] {
            store
                .push_agent_error(&name, &format!("{problem} of {name}"))
                .await
                .unwrap();
        }
        store
            .set_agent_value(&name, AgentField::Paused, Some("drain"))
            .await
            .unwrap();
        if i % 2 == 0 {
            assert!(
                store
                    .acquire_agent_guard(&name, "its-process", LEASE)
                    .await
                    .unwrap()
            );
        }
    }
}

#[test]
fn the_dashboard_reads_every_agent_in_one_round_trip() {
    let server = RedisServer::start();
    let agents = 12;
    block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        seed_agents(&store, agents).await;
    });
    let web = Dashboard::start_with(StoreSource::Url(server.url()), None, None);
    assert_eq!(web.get("/readyz").status, 200);
    let mut conn = server.conn();
    let before = reads_processed(&mut conn);
    let status = web.get("/api/status");
    let reads = reads_processed(&mut conn) - before;
    assert_eq!(status.status, 200);
    let status: serde_json::Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(status["agents"].as_array().unwrap().len(), agents);
    assert_eq!(status["agents"][0]["last_error"], "newest of w0");
    assert_eq!(status["agents"][0]["alive"], true);
    assert_eq!(status["agents"][1]["alive"], false);
    // The goals list, the agents list, one pipeline for all agents, and this INFO.
    assert!(
        reads <= 4,
        "{reads} round trips for /api/status of {agents} agents"
    );
}

/// `agent_details` says what the one-at-a-time reads say, for every agent.
async fn agent_details_match_the_single_reads(store: &dyn Store) {
    seed_agents(store, 5).await;
    let details = store.agent_details(2).await.unwrap();
    let names: Vec<&str> = details.iter().map(|a| a.record.name.as_str()).collect();
    assert_eq!(names, ["w0", "w1", "w2", "w3", "w4"]);
    for agent in &details {
        let name = &agent.record.name;
        let errors = store.agent_errors(name).await.unwrap();
        assert_eq!(agent.errors, errors[..2], "{name}");
        assert_eq!(agent.errors[0], format!("newest of {name}"));
        assert_eq!(
            agent.paused,
            store.agent_value(name, AgentField::Paused).await.unwrap()
        );
        assert_eq!(
            agent.alive,
            store.agent_alive(name).await.unwrap(),
            "{name}"
        );
        let records = store.agents().await.unwrap();
        assert!(records.contains(&agent.record), "{name}");
    }
    assert_eq!(details.iter().filter(|a| a.alive).count(), 3);
    assert!(store.agent_details(0).await.unwrap()[0].errors.is_empty());
}

#[test]
fn agent_details_match_the_single_reads_on_every_store() {
    block_on(agent_details_match_the_single_reads(&MemoryStore::new()));
    let server = RedisServer::start();
    block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        agent_details_match_the_single_reads(&store).await;
    });
    let cluster = RedisCluster::shared();
    block_on(async {
        let store = RedisStore::connect_cluster(&cluster.url()).await.unwrap();
        let store = Prefixed::new(Arc::new(store));
        agent_details_match_the_single_reads(&*store).await;
    });
}

// Per-goal state: what a store keeps in the process about the goals it works on
// (claim hints; on a cluster, a subscription to each goal's events) goes when
// the goal finishes or is collected, and reading goals (pages) adds none.

/// A runtime whose workers keep a `RedisStore`'s connections served while a
/// dashboard on another thread uses it.
fn store_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The shard channels of goals named `prefix…` that any primary of the shared
/// cluster has subscribers for (`PUBSUB SHARDCHANNELS`).
fn shard_channels(cluster: &RedisCluster, prefix: &str) -> Vec<String> {
    let pattern = format!("events:{{{prefix}*");
    let mut channels: Vec<String> = cluster
        .topology()
        .iter()
        .filter(|n| n.primary && !n.failed)
        .flat_map(|n| {
            cluster
                .cli(n.port, &["PUBSUB", "SHARDCHANNELS", &pattern])
                .lines()
                .map(str::to_string)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    channels.sort();
    channels
}

/// Every URL about goal `goal` (and its task `a`).
fn goal_urls(goal: &str) -> Vec<String> {
    vec![
        format!("/goals/{goal}"),
        format!("/goals/{goal}?fragment=1"),
        format!("/goals/{goal}/graph.svg"),
        format!("/goals/{goal}/tasks/a"),
        format!("/goals/{goal}/tasks/a?fragment=1"),
        format!("/api/goals/{goal}/graph"),
    ]
}

/// Asks `store`'s dashboard about goals it does not have: each answer is a 404
/// that names the goal and says what to do, and the store keeps nothing.
fn unknown_goals_are_404_and_leave_nothing(
    store: Arc<RedisStore>,
    known: &str,
    unknown: &[String],
) {
    let web = Dashboard::start_with(StoreSource::Open(store.clone()), None, None);
    assert_eq!(web.get(&format!("/goals/{known}")).status, 200);
    for goal in unknown {
        for url in goal_urls(goal) {
            let reply = web.get(&url);
            assert_eq!(reply.status, 404, "{url}: {}", reply.body);
            assert!(
                reply
                    .body
                    .contains(&format!("{goal}&quot; is not in the store"))
                    || reply
                        .body
                        .contains(&format!("{goal}\" is not in the store")),
                "{url}: {}",
                reply.body
            );
            assert!(reply.body.contains("front page"), "{url}: {}", reply.body);
        }
    }
    assert_eq!(
        store.goals_kept().len(),
        0,
        "reading goals keeps no per-goal state in the dashboard's store"
    );
}

#[test]
fn unknown_goals_are_404_and_leave_no_state_on_one_redis() {
    let server = RedisServer::start();
    seed_redis(&server.url());
    let runtime = store_runtime();
    let store = Arc::new(
        runtime
            .block_on(RedisStore::connect(&server.url()))
            .unwrap(),
    );
    let unknown: Vec<String> = (0..20).map(|n| format!("nope-{n}")).collect();
    unknown_goals_are_404_and_leave_nothing(store, GOAL, &unknown);
}

#[test]
fn unknown_goals_are_404_and_leave_no_state_on_a_cluster() {
    let cluster = RedisCluster::shared();
    let prefix = Prefixed::fresh_prefix() + "web-unknown-";
    let known = format!("{prefix}shop");
    let runtime = store_runtime();
    let store = Arc::new(
        runtime
            .block_on(RedisStore::connect_cluster(&cluster.url()))
            .unwrap(),
    );
    runtime.block_on(async {
        let dag = plan(&known, vec![Node::new("a", "Pick products")], &[]);
        write_plan(&*store, dag, &WriteDagOptions::default(), 100)
            .await
            .unwrap();
    });
    // The dashboard's own store: the one above wrote the plan (it works on it).
    let reader = Arc::new(
        runtime
            .block_on(RedisStore::connect_cluster(&cluster.url()))
            .unwrap(),
    );
    let unknown: Vec<String> = (0..20).map(|n| format!("{prefix}nope-{n}")).collect();
    unknown_goals_are_404_and_leave_nothing(reader, &known, &unknown);
    // No node was asked to send this process any of those goals' events.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        shard_channels(cluster, &format!("{prefix}nope")),
        Vec::<String>::new()
    );
}

/// Works goals through `store` as agents do (listening to events) and checks
/// that what it keeps per goal goes when each finishes or is collected;
/// `channels` lists the goals' subscribed channels (empty on one Redis).
async fn per_goal_state_goes_with_the_goal(
    store: &RedisStore,
    prefix: &str,
    channels: &dyn Fn() -> Vec<String>,
) {
    let wait_kept = |n: usize, what: &'static str| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while store.goals_kept().len() != n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: the store keeps {} goals, not {n}",
                store.goals_kept().len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _events = store.events();
    // A goal that completes.
    let done = format!("{prefix}done");
    let mut nodes = vec![Node::new("a", "First"), Node::new("b", "Second")];
    nodes[1].role = Some("writer".into());
    let dag = plan(&done, nodes, &[("a", "b")]);
    write_plan(store, dag, &WriteDagOptions::default(), 100)
        .await
        .unwrap();
    let a = claim(store, &done, "w1", LEASE).await.unwrap();
    store.complete(&a, &TaskResult::default()).await.unwrap();
    let b = match store
        .claim(&done, "w2", Some("writer"), LEASE)
        .await
        .unwrap()
    {
        porki::store::ClaimOutcome::Claimed(lease) => lease,
        other => panic!("{other:?}"),
    };
    assert_eq!(store.goals_kept().len(), 1, "a goal worked on is kept");
    store.complete(&b, &TaskResult::default()).await.unwrap();
    wait_kept(0, "the goal completed").await;
    // An idle agent that woke on the goal's end claims once more, and retires.
    assert!(claim(store, &done, "w1", LEASE).await.is_none());
    assert_eq!(
        store.goals_kept().len(),
        0,
        "a claim that finds the goal complete"
    );
    // A goal that fails: kept while agents wait on it for a retry, gone once collected.
    let failed = format!("{prefix}failed");
    let dag = plan(&failed, vec![Node::new("a", "Only")], &[]);
    write_plan(store, dag, &WriteDagOptions::default(), 100)
        .await
        .unwrap();
    let a = claim(store, &failed, "w1", LEASE).await.unwrap();
    store
        .fail(
            &a,
            "broken",
            false,
            Duration::ZERO,
            porki::store::Recovery::Never,
        )
        .await
        .unwrap();
    wait_kept(0, "the goal failed").await;
    assert!(claim(store, &failed, "w1", LEASE).await.is_none());
    // On a cluster it listens to the goal's channel (one Redis sends every goal's).
    assert_eq!(
        store.goals_kept().len(),
        usize::from(store.is_cluster()),
        "an agent waits on the failed goal"
    );
    let sweep = store
        .sweep_goal(&failed, Duration::ZERO, false)
        .await
        .unwrap();
    assert!(
        matches!(sweep, porki::store::Sweep::Removed { .. }),
        "{sweep:?}"
    );
    assert_eq!(store.goals_kept().len(), 0, "the goal was collected");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !channels().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still subscribed to {:?}",
            channels()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn per_goal_state_goes_when_goals_finish_or_are_collected_on_one_redis() {
    let server = RedisServer::start();
    let runtime = store_runtime();
    runtime.block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        per_goal_state_goes_with_the_goal(&store, "", &Vec::new).await;
    });
}

#[test]
fn per_goal_state_goes_when_goals_finish_or_are_collected_on_a_cluster() {
    let cluster = RedisCluster::shared();
    let prefix = Prefixed::fresh_prefix() + "web-state-";
    let runtime = store_runtime();
    runtime.block_on(async {
        let store = RedisStore::connect_cluster(&cluster.url()).await.unwrap();
        let channels = || shard_channels(cluster, &prefix);
        per_goal_state_goes_with_the_goal(&store, &prefix, &channels).await;
    });
}

#[test]
fn a_dashboard_drops_what_it_learned_of_a_goal_collected_elsewhere() {
    // On a cluster the dashboard hears no goal's events: the goals list tells it.
    let cluster = RedisCluster::shared();
    let goal = Prefixed::fresh_prefix() + "web-collected";
    let runtime = store_runtime();
    let connect = || {
        Arc::new(
            runtime
                .block_on(RedisStore::connect_cluster(&cluster.url()))
                .unwrap(),
        )
    };
    let (worker, reader) = (connect(), connect());
    let a = runtime.block_on(async {
        let mut nodes = vec![Node::new("a", "First"), Node::new("b", "Second")];
        nodes[1].role = Some("writer".into());
        let dag = plan(&goal, nodes, &[("a", "b")]);
        write_plan(&*worker, dag, &WriteDagOptions::default(), 100)
            .await
            .unwrap();
        claim(&*worker, &goal, "w1", LEASE).await.unwrap()
    });
    let web = Dashboard::start_with(StoreSource::Open(reader.clone()), None, None);
    assert_eq!(web.get(&format!("/goals/{goal}")).status, 200);
    // It read the goal's roles to count its READY tasks, and keeps them while it
    // runs. (The shared cluster holds other tests' goals: only this one counts.)
    assert!(reader.goals_kept().contains(&goal));
    runtime.block_on(async {
        worker
            .fail(
                &a,
                "broken",
                false,
                Duration::ZERO,
                porki::store::Recovery::Never,
            )
            .await
            .unwrap();
        let sweep = worker
            .sweep_goal(&goal, Duration::ZERO, false)
            .await
            .unwrap();
        assert!(
            matches!(sweep, porki::store::Sweep::Removed { .. }),
            "{sweep:?}"
        );
    });
    assert_eq!(web.get("/").status, 200);
    assert!(!reader.goals_kept().contains(&goal));
}
