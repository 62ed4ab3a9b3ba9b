//! Keeping goals right across processes and over time (issue 12): two `--replan`s
//! at once, the token budget under concurrent calls, `porki gc` and the
//! orchestrator's cleanup, and the event feed's first resync. (The store-level
//! halves run on every backend in `store_conformance::upkeep`.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use async_trait::async_trait;
use porki::domain::{Dag, TaskStatus};
use porki::llm::prompt::PlanContext;
use porki::llm::{FailureKind, LlmError, LlmProvider, LlmRequest, LlmResponse, Phase, Usage};
use porki::llm_gate::{CallError, LlmCaller, LlmGate, Urgency};
use porki::planner::{DagPlanner, PlanGoal, PlanOutcome};
use porki::store::gc::{self, GcOptions};
use porki::store::prelude::*;
use porki::store::{
    AgentField, AgentRecord, AgentState, EventKind, MemoryStore, Recovery, RedisStore, Reservation,
    TaskResult, WriteDagOptions, keys, write_plan,
};
use porki::supervisor::RunSettings;
use tokio::sync::Semaphore;

use crate::support::runtime::{
    LIMIT, ScriptedProvider, StoreKind, join_within, project, spawn_runtime,
};
use crate::support::{
    Prefixed, RedisCluster, RedisServer, block_on, claim, exit_stderr, hget, nodes, plan, porki,
    success_stdout, temp_dir, wait_until,
};

const LONG: Duration = Duration::from_secs(60);

async fn redis_store(server: &RedisServer) -> Arc<dyn Store> {
    Arc::new(RedisStore::connect(&server.url()).await.unwrap())
}

async fn cluster_store() -> Arc<dyn Store> {
    let store = RedisStore::connect_cluster(&RedisCluster::shared().url())
        .await
        .unwrap();
    Prefixed::new(Arc::new(store))
}

fn done(text: &str) -> TaskResult {
    TaskResult {
        progress: text.into(),
        ..TaskResult::default()
    }
}

/// Runs every task of `goal` to DONE, one claim at a time.
async fn finish(store: &dyn Store, goal: &str) {
    while let Some(lease) = claim(store, goal, "w", LONG).await {
        store.complete(&lease, &done(&lease.task)).await.unwrap();
    }
}

fn caller(
    store: &Arc<dyn Store>,
    provider: Arc<dyn LlmProvider>,
    budget: Option<u64>,
) -> LlmCaller {
    LlmCaller {
        gate: LlmGate::spawn(store.clone(), 0, Duration::from_secs(30)),
        provider,
        store: store.clone(),
        goal_token_budget: budget,
        goal_budget_usd: None,
        metrics: Default::default(),
        usage: porki::usage::UsageTally::start(store.clone()),
    }
}

// --- defect 13: two --replan at once ---------------------------------------

/// Answers plan calls in the order they came, each once the test releases it.
struct HeldPlans {
    plans: Vec<Dag>,
    arrived: AtomicUsize,
    release: Vec<Semaphore>,
}

#[async_trait]
impl LlmProvider for HeldPlans {
    fn name(&self) -> &str {
        "held"
    }

    async fn call(&self, _: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let turn = self.arrived.fetch_add(1, Ordering::SeqCst);
        let plan = self.plans.get(turn).expect("no more plan calls than plans");
        self.release[turn].acquire().await.unwrap().forget();
        Ok(LlmResponse {
            text: serde_json::to_string(plan).unwrap(),
            usage: Usage::default(),
        })
    }
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Two processes started with `--replan` on the same edited instructions both
/// read the old plan and ask for a new one; the first to answer replaces it and
/// its agents make progress; the second's answer must not wipe that.
async fn two_replans_at_once_keep_the_first_ones_progress(store: Arc<dyn Store>) {
    let before = WriteDagOptions {
        source: "the instructions before the edit".into(),
        ..Default::default()
    };
    write_plan(
        &*store,
        plan("g", nodes(&["a", "b"]), &[("a", "b")]),
        &before,
        100,
    )
    .await
    .unwrap();
    let provider = Arc::new(HeldPlans {
        plans: vec![
            plan("g", nodes(&["x", "y"]), &[("x", "y")]),
            plan("g", nodes(&["p", "q"]), &[]),
        ],
        arrived: AtomicUsize::new(0),
        release: vec![Semaphore::new(0), Semaphore::new(0)],
    });
    let settings = RunSettings {
        replan: true,
        workspace: temp_dir("replan").join("{goal}"),
        ..RunSettings::default()
    }
    .planner();
    let context = PlanContext {
        goal_id: "g".into(),
        context: "the edited instructions".into(),
        agents: Vec::new(),
        policy: Default::default(),
        previous_error: None,
    };
    let start = || {
        let caller = caller(&store, provider.clone(), None);
        let planner = DagPlanner::new(store.clone(), caller, settings.clone()).start();
        actix_rt::spawn(planner.send(PlanGoal {
            context: context.clone(),
        }))
    };
    let (one, two) = (start(), start());
    wait_for("both planners asked for a plan", async || {
        provider.arrived.load(Ordering::SeqCst) == 2
    })
    .await;
    provider.release[0].add_permits(1);
    wait_for("the first new plan is stored", async || {
        store.task("g", "x").await.unwrap().is_some()
    })
    .await;
    finish_one(&*store, "x").await;
    provider.release[1].add_permits(1);
    let mut outcomes = vec![
        one.await.unwrap().unwrap().unwrap(),
        two.await.unwrap().unwrap().unwrap(),
    ];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [PlanOutcome::Replanned, PlanOutcome::Resumed]);
    let tasks: Vec<(String, TaskStatus)> = store
        .tasks("g")
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.status))
        .collect();
    assert_eq!(
        tasks,
        [
            ("x".into(), TaskStatus::Done),
            ("y".into(), TaskStatus::Ready)
        ],
        "the second replan resumed the first's plan and kept its progress"
    );
    // A third process started with --replan afterwards resumes without a call.
    let outcome = start().await.unwrap().unwrap().unwrap();
    assert_eq!(outcome, PlanOutcome::Resumed);
    assert_eq!(provider.arrived.load(Ordering::SeqCst), 2);
}

async fn finish_one(store: &dyn Store, task: &str) {
    let lease = claim(store, "g", "w", LONG).await.unwrap();
    assert_eq!(lease.task, task);
    store.complete(&lease, &done(task)).await.unwrap();
}

#[actix_rt::test]
async fn two_replans_at_once_keep_the_first_ones_progress_on_memory() {
    two_replans_at_once_keep_the_first_ones_progress(Arc::new(MemoryStore::new())).await;
}

#[actix_rt::test]
async fn two_replans_at_once_keep_the_first_ones_progress_on_redis() {
    let server = RedisServer::start();
    two_replans_at_once_keep_the_first_ones_progress(redis_store(&server).await).await;
}

// --- defect 9: the token budget under concurrent calls -----------------------

/// Answers every call after `delay`, reporting exactly the tokens
/// `Usage::estimate` gives its prompt.
struct Counted {
    calls: AtomicUsize,
    delay: Duration,
}

#[async_trait]
impl LlmProvider for Counted {
    fn name(&self) -> &str {
        "counted"
    }

    async fn call(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        Ok(LlmResponse {
            text: "{}".into(),
            usage: Usage::estimate(&request.prompt, ""),
        })
    }
}

/// Prompts of 400 characters: an estimate of 100 tokens each.
const ESTIMATE: u64 = 100;
const BUDGET: u64 = 250;

async fn concurrent_calls_spend_at_most_the_budget_and_one_estimate(store: Arc<dyn Store>) {
    let provider = Arc::new(Counted {
        calls: AtomicUsize::new(0),
        delay: Duration::from_millis(300),
    });
    let caller = caller(&store, provider.clone(), Some(BUDGET));
    let request = LlmRequest::new(Phase::Execute, "x".repeat(400), LONG);
    let results =
        futures::future::join_all((0..8).map(|_| caller.call("g", Urgency::task(None), &request)))
            .await;
    let spent = store.goal_status("g").await.unwrap().unwrap().tokens;
    assert!(
        spent <= BUDGET + ESTIMATE,
        "8 concurrent calls spent {spent} of a {BUDGET}-token budget"
    );
    let made = provider.calls.load(Ordering::SeqCst);
    assert_eq!(
        made, 3,
        "admitted while spent + reserved < budget: 0, 100, 200"
    );
    assert_eq!(spent, 300);
    assert_eq!(
        results.iter().filter(|r| r.is_err()).count(),
        5,
        "the other five refused"
    );
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        // Refused while calls in flight held the rest: the goal waits, it does not fail.
        assert!(
            matches!(refused, CallError::BudgetReserved { .. }),
            "{refused}"
        );
        assert!(matches!(refused.kind(), FailureKind::RateLimited { .. }));
    }
    // Settled, the budget is spent: the next call fails closed.
    let err = caller
        .call("g", Urgency::task(None), &request)
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::BudgetSpent { spent: 300, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), FailureKind::Fatal);
    assert!(err.to_string().contains("--goal-token-budget"), "{err}");
}

/// A call dropped midway (lease lost, DROP-TASK) gives its reservation back at
/// once instead of holding the budget until the reservation expires.
async fn a_dropped_call_gives_its_reservation_back(store: Arc<dyn Store>) {
    let provider = Arc::new(Counted {
        calls: AtomicUsize::new(0),
        delay: LONG,
    });
    let caller = caller(&store, provider.clone(), Some(ESTIMATE));
    let request = LlmRequest::new(Phase::Execute, "x".repeat(400), LONG);
    let call = tokio::time::timeout(
        Duration::from_millis(200),
        caller.call("g", Urgency::task(None), &request),
    );
    assert!(call.await.is_err(), "the call was dropped");
    assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
    wait_for("the dropped call's reservation is given back", async || {
        let probe = store.reserve_tokens("g", "probe", 1, ESTIMATE, LONG).await;
        probe.unwrap() == Reservation::Reserved
    })
    .await;
    store.settle_tokens("g", "probe", 0, 0.0).await.unwrap();
}

#[actix_rt::test]
async fn concurrent_calls_spend_at_most_the_budget_and_one_estimate_on_memory() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    concurrent_calls_spend_at_most_the_budget_and_one_estimate(store.clone()).await;
    a_dropped_call_gives_its_reservation_back(Arc::new(MemoryStore::new())).await;
}

#[actix_rt::test]
async fn concurrent_calls_spend_at_most_the_budget_and_one_estimate_on_redis() {
    let server = RedisServer::start();
    concurrent_calls_spend_at_most_the_budget_and_one_estimate(redis_store(&server).await).await;
    let other = RedisServer::start();
    a_dropped_call_gives_its_reservation_back(redis_store(&other).await).await;
}

#[actix_rt::test]
async fn concurrent_calls_spend_at_most_the_budget_and_one_estimate_on_cluster() {
    concurrent_calls_spend_at_most_the_budget_and_one_estimate(cluster_store().await).await;
    a_dropped_call_gives_its_reservation_back(cluster_store().await).await;
}

// --- defect 14: the first subscription -----------------------------------------

#[tokio::test]
async fn the_single_redis_feed_sends_a_resync_after_its_first_subscription() {
    // What was published before the subscription was live is lost (pub/sub keeps
    // nothing): subscribers must be told to look again, the first time too.
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let mut events = store.events();
    let first = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s of subscribing")
        .unwrap();
    assert_eq!((first.goal.as_str(), first.kind), ("", EventKind::Resync));
}

// --- defect 10: retention ------------------------------------------------------

fn agent(name: &str, state: AgentState) -> AgentRecord {
    AgentRecord {
        name: name.into(),
        goal: "g".into(),
        role: None,
        kind: Default::default(),
        process: "host:1".into(),
        state,
    }
}

fn keys_matching(conn: &mut redis::Connection, pattern: &str) -> Vec<String> {
    let mut found: Vec<String> = redis::cmd("KEYS").arg(pattern).query(conn).unwrap();
    found.sort();
    found
}

fn is_member(conn: &mut redis::Connection, set: &str, name: &str) -> bool {
    redis::cmd("SISMEMBER")
        .arg(set)
        .arg(name)
        .query(conn)
        .unwrap()
}

#[test]
fn the_cleanup_leaves_no_key_of_a_removed_goal_or_agent() {
    let server = RedisServer::start();
    let mut conn = server.conn();
    block_on(async {
        let store = redis_store(&server).await;
        // A failed goal with every kind of key: role and roleless ready indexes,
        // a blocked task, dependents, spending and a reservation.
        let mut tasks = nodes(&["a", "b", "c", "d"]);
        tasks[0].role = Some("writer".into());
        write_plan(
            &*store,
            plan("old", tasks, &[("a", "c")]),
            &WriteDagOptions::default(),
            100,
        )
        .await
        .unwrap();
        let lease = claim(&*store, "old", "w", LONG).await.unwrap();
        store
            .fail(&lease, "bad", false, LONG, Recovery::Never)
            .await
            .unwrap();
        store.settle_tokens("old", "", 40, 0.2).await.unwrap();
        store
            .reserve_tokens("old", "r", 5, 1_000, LONG)
            .await
            .unwrap();
        write_plan(
            &*store,
            plan("open", nodes(&["a"]), &[]),
            &WriteDagOptions::default(),
            100,
        )
        .await
        .unwrap();
        store
            .register_agent(&agent("ghost", AgentState::Stopped))
            .await
            .unwrap();
        for field in [
            AgentField::Memory,
            AgentField::Paused,
            AgentField::HeartbeatCursor,
        ] {
            store
                .set_agent_value("ghost", field, Some("x"))
                .await
                .unwrap();
        }
        store.push_agent_error("ghost", "bad line").await.unwrap();
        // Registered by a porki from before `changed_at`.
        store
            .register_agent(&agent("legacy", AgentState::Stopped))
            .await
            .unwrap();
    });
    let _: () = redis::cmd("HDEL")
        .arg(keys::agent_registered("legacy"))
        .arg("changed_at")
        .query(&mut conn)
        .unwrap();
    let old_keys = keys_matching(&mut conn, "*{old}*");
    assert!(old_keys.len() >= 10, "{old_keys:?}");
    let open_keys = keys_matching(&mut conn, "*{open}*");
    assert_eq!(keys_matching(&mut conn, "agent:{ghost}:*").len(), 5);
    std::thread::sleep(Duration::from_millis(700));

    let report = block_on(async {
        let store = redis_store(&server).await;
        gc::collect(&*store, &GcOptions::new(Duration::from_millis(500)))
            .await
            .unwrap()
    });
    assert_eq!(report.goals.len(), 1);
    assert_eq!(
        (report.goals[0].name.as_str(), report.goals[0].tasks),
        ("old", 4)
    );
    assert_eq!(report.agents.len(), 1, "{report:?}");
    assert_eq!(report.agents[0].name, "ghost");
    assert_eq!(keys_matching(&mut conn, "*{old}*"), Vec::<String>::new());
    assert!(!is_member(&mut conn, keys::GOALS, "old"));
    assert_eq!(keys_matching(&mut conn, "*{open}*"), open_keys);
    assert!(is_member(&mut conn, keys::GOALS, "open"));
    assert_eq!(
        keys_matching(&mut conn, "agent:{ghost}:*"),
        Vec::<String>::new()
    );
    assert!(!is_member(&mut conn, keys::AGENTS, "ghost"));
    // The registration without a time got one; it goes a retention later.
    let stamped: Option<u64> = hget(&mut conn, &keys::agent_registered("legacy"), "changed_at");
    assert!(stamped.is_some());
    assert!(is_member(&mut conn, keys::AGENTS, "legacy"));
}

#[test]
fn porki_gc_prints_what_it_removes_and_a_dry_run_removes_nothing() {
    let server = RedisServer::start();
    let mut conn = server.conn();
    block_on(async {
        let store = redis_store(&server).await;
        write_plan(
            &*store,
            plan("old", nodes(&["a"]), &[]),
            &WriteDagOptions::default(),
            100,
        )
        .await
        .unwrap();
        finish(&*store, "old").await;
        write_plan(
            &*store,
            plan("open", nodes(&["a"]), &[]),
            &WriteDagOptions::default(),
            100,
        )
        .await
        .unwrap();
        store
            .register_agent(&agent("ghost", AgentState::Stopped))
            .await
            .unwrap();
    });
    std::thread::sleep(Duration::from_millis(1200));
    let gc = |extra: &[&str]| {
        porki()
            .args(["gc", "--redis-url", &server.url()])
            .args(extra)
            .output()
            .unwrap()
    };
    let dry = success_stdout(&gc(&["--retain-finished", "1s", "--dry-run"]));
    assert!(
        dry.contains("would remove goal old (complete, finished ")
            && dry.contains("1 tasks)")
            && dry.contains("would remove agent ghost (stopped, dead for ")
            && dry.contains("nothing was removed"),
        "{dry}"
    );
    assert!(!dry.contains("open"), "{dry}");
    assert!(
        !keys_matching(&mut conn, "*{old}*").is_empty(),
        "a dry run removes nothing"
    );

    let output = porki()
        .args(["gc", "--redis-url", &server.url()])
        .env("PORKI_RETAIN_FINISHED", "1s")
        .output()
        .unwrap();
    let removed = success_stdout(&output);
    assert!(
        removed.contains("removed goal old (complete")
            && removed.contains("removed agent ghost (stopped")
            && removed.contains("removed 1 goal and 1 agent; kept 1 goal and 0 agents"),
        "{removed}"
    );
    assert!(keys_matching(&mut conn, "*{old}*").is_empty());
    assert!(!keys_matching(&mut conn, "*{open}*").is_empty());
    let again = success_stdout(&gc(&["--retain-finished", "1s"]));
    assert!(again.contains("removed 0 goals and 0 agents"), "{again}");

    let memory = porki()
        .args(["gc", "--redis-url", "memory://"])
        .output()
        .unwrap();
    let stderr = exit_stderr(&memory, 2, "gc on memory://");
    assert!(stderr.contains("--redis-url"), "{stderr}");
    let bad = gc(&["--retain-finished", "a week"]);
    let stderr = exit_stderr(&bad, 2, "gc with a bad retention");
    assert!(stderr.contains("days (7d)"), "{stderr}");
}

#[test]
fn porki_gc_takes_off_a_listed_agent_whose_registration_is_gone() {
    // What a crash between a removal and its unlisting leaves: the name in the
    // `agents` set, a key or two, no registration. Before, gc never saw it.
    let server = RedisServer::start();
    let mut conn = server.conn();
    let _: () = redis::cmd("SADD")
        .arg("agents")
        .arg("halfgone")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("LPUSH")
        .arg("agent:{halfgone}:errors")
        .arg("old problem")
        .query(&mut conn)
        .unwrap();
    let output = porki()
        .args(["gc", "--redis-url", &server.url()])
        .output()
        .unwrap();
    let stdout = success_stdout(&output);
    assert!(stdout.contains("removed 0 goals and 0 agents"), "{stdout}");
    assert!(!is_member(&mut conn, "agents", "halfgone"));
    assert!(keys_matching(&mut conn, "agent:{halfgone}*").is_empty());
}

#[test]
fn the_orchestrator_cleans_up_what_others_left_but_keeps_its_own() {
    let server = RedisServer::start();
    let project = project(&temp_dir("cleanup"), &[("solo", "g")]);
    block_on(async {
        let store = redis_store(&server).await;
        write_plan(
            &*store,
            plan("old", nodes(&["a"]), &[]),
            &WriteDagOptions::default(),
            100,
        )
        .await
        .unwrap();
        finish(&*store, "old").await;
        store
            .register_agent(&agent("ghost", AgentState::Stopped))
            .await
            .unwrap();
    });
    let mut provider = ScriptedProvider::new(
        plan("g", nodes(&["a", "b"]), &[("a", "b")]),
        "p1",
        Arc::default(),
    );
    provider.delay = Duration::from_millis(300);
    let run = spawn_runtime(
        StoreKind::Redis(server.url()),
        Arc::new(provider),
        project,
        |config| {
            config.settings.retain_finished = Duration::ZERO;
            config.settings.cleanup_every = Duration::from_millis(100);
        },
    );
    let listed = || {
        block_on(async {
            let store = redis_store(&server).await;
            let agents: Vec<String> = store
                .agents()
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.name)
                .collect();
            (store.goals().await.unwrap(), agents)
        })
    };
    wait_until(
        LIMIT,
        "the old goal and the ghost agent are removed",
        || {
            let (goals, agents) = listed();
            !goals.contains(&"old".to_string()) && !agents.contains(&"ghost".to_string())
        },
    );
    assert_eq!(join_within(run, LIMIT), 0);
    let (goals, agents) = listed();
    assert_eq!(goals, ["g"], "its own goal is kept, finished or not");
    assert_eq!(agents, ["solo"], "and its own agent");
}
