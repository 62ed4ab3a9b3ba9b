//! The orchestrator end to end: Supervisor, agents, planner, reaper and gate
//! running goals on the embedded store, on a private redis-server and, for every
//! test with a Redis variant, on the shared Redis Cluster (`…_on_cluster`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use porki::domain::TaskStatus;
use porki::store::MemoryStore;
use porki::store::prelude::*;

use crate::support::runtime::*;
use crate::support::{
    RedisServer, block_on, ids, llm_gate_turn, nodes, plan, temp_dir, wait_until,
};

/// Runs `dag` with `agents` in one process; asserts every task DONE, once, in order.
fn run_to_completion(store: StoreKind, dag: porki::domain::Dag, agents: &[&str]) -> Arc<Record> {
    let goal = dag.goal_id.clone();
    let record = Arc::new(Record::default());
    let provider = Arc::new(ScriptedProvider::new(dag.clone(), "p1", record.clone()));
    let declared: Vec<(&str, &str)> = agents.iter().map(|a| (*a, goal.as_str())).collect();
    let project = project(&temp_dir("run"), &declared);
    let code = join_within(
        spawn_runtime(store.clone(), provider, project, |_| {}),
        LIMIT,
    );
    assert_eq!(code, 0, "the goal completes");
    let tasks = final_tasks(&store, &goal);
    assert_eq!(tasks.len(), dag.nodes.len());
    for (id, (status, progress, attempt)) in &tasks {
        assert_eq!(*status, TaskStatus::Done, "{id}");
        assert_eq!(progress, &format!("{id} by p1"));
        assert_eq!(*attempt, 1, "{id} ran on its first attempt");
    }
    let counts = record.counts();
    assert!(
        counts.values().all(|&n| n == 1),
        "no task executed twice: {counts:?}"
    );
    assert_eq!(counts.len(), dag.nodes.len());
    for e in record.executions() {
        assert!(
            e.unfinished_deps.is_empty(),
            "{} started before {:?} finished",
            e.task,
            e.unfinished_deps
        );
    }
    record
}

fn diamond() -> porki::domain::Dag {
    plan(
        "diamond",
        nodes(&["a", "b", "c", "d"]),
        &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
    )
}

#[test]
fn a_diamond_completes_in_dependency_order_on_memory() {
    let memory = Arc::new(MemoryStore::new());
    run_to_completion(StoreKind::Memory(memory.clone()), diamond(), &["w1", "w2"]);
    let status = block_on(memory.goal_status("diamond")).unwrap().unwrap();
    assert_eq!(
        status.tokens,
        5 * 15,
        "one plan call and four executions, 15 tokens each"
    );
    assert_eq!(status.cost_usd, 2.5);
}

#[test]
fn a_spent_token_budget_fails_the_next_call_closed() {
    let provider = ScriptedProvider::new(diamond(), "p1", Arc::default());
    let project = project(&temp_dir("budget"), &[("solo", "diamond")]);
    let (record, memory, run) = start_on_memory(Clock::Real, provider, project, |c| {
        c.settings.goal_token_budget = Some(40)
    });
    let store = StoreKind::Memory(memory.clone());
    assert_eq!(
        join_within(run, LIMIT),
        1,
        "the goal fails once the budget is spent"
    );
    let tasks = final_tasks(&store, "diamond");
    assert_eq!(tasks["a"].0, TaskStatus::Done);
    assert_eq!(tasks["b"].0, TaskStatus::Done);
    assert_eq!(
        tasks["c"].0,
        TaskStatus::Failed,
        "plan + a + b spent 45 of 40 tokens"
    );
    assert_eq!(tasks["c"].2, 1, "a spent budget is not retried");
    assert_eq!(
        record.counts().get("c"),
        None,
        "the provider was never called for c"
    );
    let task = block_on(memory.task("diamond", "c")).unwrap().unwrap();
    assert!(task.last_error.unwrap().contains("--goal-token-budget"));
    assert_eq!(
        block_on(memory.goal_status("diamond"))
            .unwrap()
            .unwrap()
            .tokens,
        45
    );
}

#[test]
fn a_spent_money_budget_fails_the_next_call_closed() {
    let provider = ScriptedProvider {
        cost_usd: Some(0.4),
        ..ScriptedProvider::new(diamond(), "p1", Arc::default())
    };
    let project = project(&temp_dir("money"), &[("solo", "diamond")]);
    let (record, memory, run) = start_on_memory(Clock::Real, provider, project, |c| {
        c.settings.goal_budget_usd = Some(1.0)
    });
    let store = StoreKind::Memory(memory.clone());
    assert_eq!(
        join_within(run, LIMIT),
        1,
        "the goal fails once its budget cannot pay for another call"
    );
    let tasks = final_tasks(&store, "diamond");
    assert_eq!(tasks["a"].0, TaskStatus::Done, "the second call");
    assert_eq!(
        tasks["b"].0,
        TaskStatus::Failed,
        "the third call: $0.80 spent and $0.40 more would pass $1"
    );
    assert_eq!(tasks["b"].2, 1, "a spent budget is not retried");
    assert_eq!(
        record.counts().get("b"),
        None,
        "the provider was never called for b"
    );
    let task = block_on(memory.task("diamond", "b")).unwrap().unwrap();
    let error = task.last_error.unwrap();
    assert!(
        error.contains("--goal-budget-usd") && error.contains("raise"),
        "{error}"
    );
    let goal = block_on(memory.goal_status("diamond")).unwrap().unwrap();
    assert_eq!(goal.state, porki::store::GoalState::Failed);
    assert!((goal.cost_usd - 0.8).abs() < 1e-9, "{}", goal.cost_usd);
}

#[test]
fn calls_of_unknown_cost_under_a_money_budget_are_counted_on_the_goal() {
    let provider = ScriptedProvider {
        cost_usd: None,
        ..ScriptedProvider::new(diamond(), "p1", Arc::default())
    };
    let project = project(&temp_dir("unknown-cost"), &[("solo", "diamond")]);
    let (_, memory, run) = start_on_memory(Clock::Real, provider, project, |c| {
        c.settings.goal_budget_usd = Some(1.0)
    });
    assert_eq!(
        join_within(run, LIMIT),
        0,
        "unknown costs do not stop the goal"
    );
    let spending = block_on(memory.goal_spending("diamond")).unwrap();
    assert_eq!(
        (spending.cost_unknown, spending.priced_calls),
        (5, 0),
        "one plan call and four executions, none priced"
    );
}

#[test]
fn a_diamond_completes_in_dependency_order_on_redis() {
    let server = RedisServer::start();
    run_to_completion(StoreKind::Redis(server.url()), diamond(), &["w1", "w2"]);
}

#[test]
fn a_diamond_completes_in_dependency_order_on_cluster() {
    run_to_completion(StoreKind::shared_cluster(), diamond(), &["w1", "w2"]);
}

#[test]
fn a_fan_out_of_50_tasks_with_4_agents_runs_each_once() {
    let server = RedisServer::start();
    fan_out_of_50_tasks_with_4_agents(StoreKind::Redis(server.url()));
}

#[test]
fn a_fan_out_of_50_tasks_with_4_agents_runs_each_once_on_cluster() {
    fan_out_of_50_tasks_with_4_agents(StoreKind::shared_cluster());
}

fn fan_out_of_50_tasks_with_4_agents(store: StoreKind) {
    let mut tasks = vec!["root".to_string()];
    let leaves = ids("leaf", 50);
    tasks.extend(leaves.iter().cloned());
    tasks.push("sink".into());
    let mut edges: Vec<(&str, &str)> = leaves.iter().map(|l| ("root", l.as_str())).collect();
    edges.extend(leaves.iter().map(|l| (l.as_str(), "sink")));
    let record = run_to_completion(
        store,
        plan("fan", nodes(&tasks), &edges),
        &["a1", "a2", "a3", "a4"],
    );
    assert!(
        record.max_in_flight.load(Ordering::SeqCst) > 1,
        "agents worked in parallel"
    );
}

#[test]
fn a_chain_of_20_tasks_runs_in_order() {
    let chain = ids("step", 20);
    let edges: Vec<(&str, &str)> = chain.windows(2).map(|w| (&*w[0], &*w[1])).collect();
    let record = run_to_completion(
        StoreKind::Memory(Arc::new(MemoryStore::new())),
        plan("chain", nodes(&chain), &edges),
        &["w1", "w2", "w3"],
    );
    let order: Vec<String> = record.executions().into_iter().map(|e| e.task).collect();
    assert_eq!(order, chain);
}

/// Short tasks `a1`..`a6` beside the chain `z1 → z2 → z3`, whose ids sort last,
/// run by one agent on a private redis-server, ranked or not (`--ranking`);
/// the order the tasks ran in.
fn chain_beside_short_tasks_on_redis(ranking: bool) -> Vec<String> {
    let server = RedisServer::start();
    let ids = ["a1", "a2", "a3", "a4", "a5", "a6", "z1", "z2", "z3"];
    let dag = plan("g", nodes(&ids), &[("z1", "z2"), ("z2", "z3")]);
    let record = Arc::new(Record::default());
    let provider = Arc::new(ScriptedProvider::new(dag, "p1", record.clone()));
    let project = project(&temp_dir("ranked"), &[("w1", "g")]);
    let runtime = spawn_runtime(
        StoreKind::Redis(server.url()),
        provider,
        project,
        move |c| {
            c.settings.ranking = ranking;
        },
    );
    assert_eq!(join_within(runtime, LIMIT), 0, "the goal completes");
    record.executions().into_iter().map(|e| e.task).collect()
}

#[test]
fn the_critical_chains_first_task_is_claimed_before_any_short_task_on_redis() {
    assert_eq!(
        chain_beside_short_tasks_on_redis(true),
        ["z1", "z2", "a1", "a2", "a3", "a4", "a5", "a6", "z3"],
        "the chain holds the most work up until its last task, which ties with the short ones"
    );
    assert_eq!(
        chain_beside_short_tasks_on_redis(false),
        ["a1", "a2", "a3", "a4", "a5", "a6", "z1", "z2", "z3"],
        "--ranking off: the smallest id first"
    );
}

#[test]
fn the_ranker_learns_estimates_from_finished_tasks_while_the_goal_runs() {
    let store = Arc::new(MemoryStore::new());
    let dag = plan(
        "g",
        nodes(&["a", "b", "c", "d"]),
        &[("a", "b"), ("b", "c"), ("c", "d")],
    );
    let record = Arc::new(Record::default());
    let mut provider = ScriptedProvider::new(dag, "p1", record);
    provider.delay = Duration::from_millis(1_200);
    let project = project(&temp_dir("ranker"), &[("w1", "g")]);
    let kind = StoreKind::Memory(store.clone());
    let runtime = spawn_runtime(kind, Arc::new(provider), project, |_| {});
    assert_eq!(join_within(runtime, LIMIT), 0, "the goal completes");
    let last = block_on(store.task("g", "d")).unwrap().unwrap();
    assert_eq!(
        last.estimate_source,
        Some(porki::domain::rank::EstimateSource::Measured),
        "a finished task's duration reached the tasks after it: {last:?}"
    );
    let estimate = last.estimate_ms.unwrap();
    assert!((1_000..5_000).contains(&estimate), "{estimate} ms");
}

#[test]
fn a_panicking_provider_gets_its_agent_restarted_and_the_run_completes() {
    let mut provider = ScriptedProvider::new(diamond(), "p1", Arc::default());
    provider.behaviour = Box::new(|task, runs| {
        if task == "b" && runs == 0 {
            Behaviour::Panic
        } else {
            Behaviour::Succeed
        }
    });
    let project = project(&temp_dir("panic"), &[("solo", "diamond")]);
    let (record, memory, run) = start_on_memory(Clock::Paused, provider, project, |_| {});
    assert_eq!(join_within(run, LIMIT), 0);
    let tasks = final_tasks(&StoreKind::Memory(memory), "diamond");
    assert!(tasks.values().all(|t| t.0 == TaskStatus::Done));
    assert_eq!(record.counts()["b"], 2, "b ran again after the panic");
    assert_eq!(tasks["b"].2, 2, "the panicked run counted as an attempt");
}

#[test]
fn a_provider_that_always_panics_trips_the_restart_intensity_limit() {
    let dag = plan("doomed", nodes(&ids("t", 20)), &[]);
    let mut provider = ScriptedProvider::new(dag, "p1", Arc::default());
    provider.behaviour = Box::new(|_, _| Behaviour::Panic);
    let project = project(&temp_dir("doomed"), &[("crashy", "doomed")]);
    let (record, memory, run) = start_on_memory(Clock::Paused, provider, project, |c| {
        c.settings.restart.max_restarts = 3;
        c.settings.max_attempts = 50;
    });
    let code = join_within(run, LIMIT);
    assert_eq!(
        code, 1,
        "no agent is left for the goal, so --until-done fails"
    );
    assert_eq!(
        record.executions().len(),
        4,
        "the first run and 3 restarts, then no more"
    );
    let agents = block_on(memory.agents()).unwrap();
    assert!(
        agents[0]
            .state
            .to_string()
            .starts_with("failed: scripted panic"),
        "{:?}",
        agents[0].state
    );
}

#[test]
fn a_stalled_holder_loses_its_lease_and_its_late_result_is_rejected() {
    let server = RedisServer::start();
    stalled_holder_loses_its_lease(StoreKind::Redis(server.url()));
}

#[test]
fn a_stalled_holder_loses_its_lease_and_its_late_result_is_rejected_on_cluster() {
    stalled_holder_loses_its_lease(StoreKind::shared_cluster());
}

fn stalled_holder_loses_its_lease(store: StoreKind) {
    let dag = plan("stall", nodes(&["only"]), &[]);
    let record = Arc::new(Record::default());
    let mut stalled = ScriptedProvider::new(dag.clone(), "stalled", record.clone());
    stalled.behaviour = Box::new(|_, _| Behaviour::Stall(Duration::from_secs(3)));
    let healthy = ScriptedProvider::new(dag, "healthy", record.clone());

    let first = spawn_runtime(
        store.clone(),
        Arc::new(stalled),
        project(&temp_dir("stall-a"), &[("a", "stall")]),
        |_| {},
    );
    // Start the healthy process only once the first one holds the task and stalls.
    wait_until(
        Duration::from_secs(10),
        "the first process starts the task",
        || !record.executions().is_empty(),
    );
    let second = spawn_runtime(
        store.clone(),
        Arc::new(healthy),
        project(&temp_dir("stall-b"), &[("b", "stall")]),
        |_| {},
    );
    assert_eq!(join_within(second, LIMIT), 0);
    assert_eq!(join_within(first, LIMIT), 0);

    let tasks = final_tasks(&store, "stall");
    assert_eq!(tasks["only"].0, TaskStatus::Done);
    assert_eq!(
        tasks["only"].1, "only by healthy",
        "the reclaimer's result is kept"
    );
    assert_eq!(tasks["only"].2, 2, "the lost lease counted an attempt");
    let processes: Vec<String> = record.executions().into_iter().map(|e| e.process).collect();
    assert_eq!(processes, ["stalled", "healthy"]);
}

#[test]
fn two_processes_share_one_goal_without_running_a_task_twice() {
    let server = RedisServer::start();
    two_processes_share_one_goal(StoreKind::Redis(server.url()));
}

#[test]
fn two_processes_share_one_goal_without_running_a_task_twice_on_cluster() {
    two_processes_share_one_goal(StoreKind::shared_cluster());
}

fn two_processes_share_one_goal(store: StoreKind) {
    let tasks = ids("t", 40);
    let edges: Vec<(&str, &str)> = tasks[1..10].iter().map(|t| (&*tasks[0], &**t)).collect();
    let dag = plan("shared", nodes(&tasks), &edges);
    let record = Arc::new(Record::default());
    let spawn = |process: &str, agents: &[(&str, &str)]| {
        let provider = ScriptedProvider::new(dag.clone(), process, record.clone());
        spawn_runtime(
            store.clone(),
            Arc::new(provider),
            project(&temp_dir(process), agents),
            |_| {},
        )
    };
    // `dup` is declared by both processes: only one may run it at a time.
    let one = spawn(
        "one",
        &[("one-a", "shared"), ("one-b", "shared"), ("dup", "shared")],
    );
    let two = spawn(
        "two",
        &[("two-a", "shared"), ("two-b", "shared"), ("dup", "shared")],
    );
    assert_eq!(join_within(one, LIMIT), 0);
    assert_eq!(join_within(two, LIMIT), 0);
    let final_state = final_tasks(&store, "shared");
    assert!(
        final_state
            .values()
            .all(|t| t.0 == TaskStatus::Done && t.2 == 1)
    );
    let counts = record.counts();
    assert_eq!(counts.len(), 40);
    assert!(
        counts.values().all(|&n| n == 1),
        "no task ran twice: {counts:?}"
    );
    let processes: std::collections::BTreeSet<String> =
        record.executions().into_iter().map(|e| e.process).collect();
    assert_eq!(processes.len(), 2, "both processes did work");
}

#[test]
fn the_llm_gate_keeps_two_calls_in_flight_across_two_processes() {
    let server = RedisServer::start();
    llm_gate_across_two_processes(StoreKind::Redis(server.url()));
}

#[test]
fn the_llm_gate_keeps_two_calls_in_flight_across_two_processes_on_cluster() {
    // llm:gate is one key for the whole shared cluster.
    let _turn = llm_gate_turn().blocking_lock();
    llm_gate_across_two_processes(StoreKind::shared_cluster());
}

fn llm_gate_across_two_processes(store: StoreKind) {
    let dag = plan("gated", nodes(&ids("t", 40)), &[]);
    let record = Arc::new(Record::default());
    let spawn = |process: &str| {
        let mut provider = ScriptedProvider::new(dag.clone(), process, record.clone());
        provider.delay = Duration::from_millis(40);
        let agents: Vec<(String, &str)> = (0..4)
            .map(|i| (format!("{process}-{i}"), "gated"))
            .collect();
        let agents: Vec<(&str, &str)> = agents.iter().map(|(a, g)| (a.as_str(), *g)).collect();
        spawn_runtime(
            store.clone(),
            Arc::new(provider),
            project(&temp_dir(process), &agents),
            |c| {
                c.settings.llm_max_concurrency = 2;
            },
        )
    };
    let (one, two) = (spawn("one"), spawn("two"));
    assert_eq!(join_within(one, LIMIT), 0);
    assert_eq!(join_within(two, LIMIT), 0);
    assert_eq!(
        record.max_in_flight.load(Ordering::SeqCst),
        2,
        "8 agents, never more than 2 calls"
    );
    assert_eq!(record.executions().len(), 40);
    let in_flight = block_on(async { store.open().await.gate_in_flight().await.unwrap() });
    assert_eq!(in_flight, 0, "every slot was given back");
}

#[test]
fn llm_select_takes_the_llms_pick_and_falls_back_to_priority_order() {
    let mut dag = plan("select", nodes(&ids("t", 5)), &[]);
    for (i, node) in dag.nodes.iter_mut().enumerate() {
        node.priority = 10 - i as i32;
    }
    let mut provider = ScriptedProvider::new(dag, "p1", Arc::default());
    provider.pick = Some("t04".into());
    let project = project(&temp_dir("select"), &[("solo", "select")]);
    let (record, _, run) = start_on_memory(Clock::Real, provider, project, |c| {
        c.settings.llm_select = true
    });
    assert_eq!(join_within(run, LIMIT), 0);
    let order: Vec<String> = record.executions().into_iter().map(|e| e.task).collect();
    // t04 (lowest priority) first, as picked; once it is done the pick is not
    // READY any more, so the rest follow priority order.
    assert_eq!(order, ["t04", "t00", "t01", "t02", "t03"]);
}

#[test]
fn llm_summarize_stores_the_summary_for_dependents() {
    let provider = ScriptedProvider::new(diamond(), "p1", Arc::default());
    let project = project(&temp_dir("summarize"), &[("solo", "diamond")]);
    let (record, memory, run) = start_on_memory(Clock::Real, provider, project, |c| {
        c.settings.llm_summarize = true
    });
    assert_eq!(join_within(run, LIMIT), 0);
    for (id, (status, progress, _)) in final_tasks(&StoreKind::Memory(memory), "diamond") {
        assert_eq!(status, TaskStatus::Done);
        assert_eq!(progress, format!("summary of {id}"));
    }
    assert_eq!(record.executions().len(), 4, "summaries are not executions");
}

#[test]
fn a_summary_longer_than_the_lease_keeps_the_lease_and_the_result() {
    // Regression: the summarize call ran after lease renewal stopped, so a summary
    // longer than the rest of the lease lost the result and burned an attempt
    // (three executions, then FAILED).
    let mut provider = ScriptedProvider::new(diamond(), "p1", Arc::default());
    provider.summarize_delay = Duration::from_millis(2_500); // the lease is 900 ms
    let project = project(&temp_dir("slow-summary"), &[("solo", "diamond")]);
    let (record, memory, run) = start_on_memory(Clock::Real, provider, project, |c| {
        c.settings.llm_summarize = true
    });
    assert_eq!(join_within(run, LIMIT), 0);
    for (id, (status, progress, attempt)) in final_tasks(&StoreKind::Memory(memory), "diamond") {
        assert_eq!(status, TaskStatus::Done);
        assert_eq!(progress, format!("summary of {id}"));
        assert_eq!(attempt, 1, "{id} ran once");
    }
    assert_eq!(record.executions().len(), 4);
}

#[test]
fn a_task_whose_context_cannot_be_read_fails_after_its_attempts_without_spinning() {
    // Regression: a task whose plan node could not be read was released and
    // claimed again about a thousand times a second, forever.
    let server = RedisServer::start();
    let project = project(&temp_dir("unreadable"), &[("solo", "g")]);
    let dag = plan("g", nodes(&ids("t", 2)), &[]);
    // Another program wrote the plan under porki's keys, one node damaged.
    block_on(async {
        let store = porki::store::RedisStore::connect(&server.url())
            .await
            .unwrap();
        let options = porki::store::WriteDagOptions {
            title: "g".into(),
            source: porki::planner::source_fingerprint(&porki::planner::plan_context(
                &project, "g",
            )),
            ..Default::default()
        };
        porki::store::write_plan(&store, dag.clone(), &options, 100)
            .await
            .unwrap();
    });
    let mut conn = server.conn();
    let _: () = redis::cmd("HSET")
        .arg("dag:{g}:nodes")
        .arg("t01")
        .arg("{not json")
        .query(&mut conn)
        .unwrap();
    let store = StoreKind::Redis(server.url());
    let provider = Arc::new(ScriptedProvider::new(dag, "p1", Arc::default()));
    let started = Instant::now();
    let code = join_within(
        spawn_runtime(store.clone(), provider, project, |_| {}),
        LIMIT,
    );
    assert_eq!(code, 1, "the goal fails");
    let tasks = final_tasks(&store, "g");
    let (status, _, attempt) = &tasks["t00"];
    assert_eq!(
        (*status, *attempt),
        (TaskStatus::Failed, 3),
        "each claim counted, none spun"
    );
    // A FAILED task stops the goal's claims: the other task was never taken.
    assert_eq!(tasks["t01"].0, TaskStatus::Ready);
    let task: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg("task:{g}:t00")
        .query(&mut conn)
        .unwrap();
    assert!(
        task["last_error"].contains("cannot read the task's context")
            && task["last_error"].contains("dag:{g}:nodes.t01"),
        "the reason names what is unreadable: {}",
        task["last_error"]
    );
    assert_eq!(task["fence"], "3", "three claims in all");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_crash_looping_agent_is_restarted_at_once_and_given_up_on_by_the_intensity_limit() {
    // Regression: a panicking agent kept its single-active guard, so its restart
    // waited out the guard's TTL (15 s by default) and 5 restarts never fitted in
    // the 60 s window: it restarted forever.
    let mut provider =
        ScriptedProvider::new(plan("g", nodes(&ids("t", 3)), &[]), "p1", Arc::default());
    provider.behaviour = Box::new(|_, _| Behaviour::Panic);
    let project = project(&temp_dir("crash-loop"), &[("looper", "g")]);
    let started = Instant::now();
    let (record, memory, run) = start_on_memory(Clock::Real, provider, project, |c| {
        c.settings.guard_ttl = Some(Duration::from_secs(15));
        c.settings.max_attempts = 50;
    });
    // Exits 1: no agent is left to finish the goal.
    assert_eq!(join_within(run, LIMIT), 1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "five restarts do not wait out a 15 s guard each: {:?}",
        started.elapsed()
    );
    assert_eq!(
        record.executions().len(),
        6,
        "the first run and five restarts"
    );
    let agents = block_on(memory.agents()).unwrap();
    assert!(
        agents[0].state.to_string().starts_with("failed: "),
        "{:?}",
        agents[0].state
    );
}

#[test]
fn three_processes_and_twenty_agents_with_random_panics_run_every_task_once_at_a_time() {
    let server = RedisServer::start();
    three_processes_with_random_panics(StoreKind::Redis(server.url()));
}

#[test]
fn three_processes_and_twenty_agents_with_random_panics_run_every_task_once_at_a_time_on_cluster() {
    three_processes_with_random_panics(StoreKind::shared_cluster());
}

fn three_processes_with_random_panics(store: StoreKind) {
    let tasks = ids("t", 100);
    let edges: Vec<(&str, &str)> = (0..50).map(|i| (&*tasks[i], &*tasks[i + 50])).collect();
    let dag = plan("chaos", nodes(&tasks), &edges);
    let record = Arc::new(Record::default());
    let mut runs = Vec::new();
    for (p, count) in [("one", 7), ("two", 7), ("three", 6)] {
        let mut provider = ScriptedProvider::new(dag.clone(), p, record.clone());
        provider.delay = Duration::from_millis(20);
        // About one execution in eight panics, decided by the task and its run number.
        provider.behaviour = Box::new(|task, runs| {
            let hash = task.bytes().fold(runs as u64 * 31 + 7, |h, b| {
                h.wrapping_mul(131).wrapping_add(b as u64)
            });
            if hash % 8 == 0 {
                Behaviour::Panic
            } else {
                Behaviour::Succeed
            }
        });
        let agents: Vec<(String, &str)> =
            (0..count).map(|i| (format!("{p}-{i}"), "chaos")).collect();
        let agents: Vec<(&str, &str)> = agents.iter().map(|(a, g)| (a.as_str(), *g)).collect();
        runs.push(spawn_runtime(
            store.clone(),
            Arc::new(provider),
            project(&temp_dir(p), &agents),
            |c| {
                c.settings.max_attempts = 10;
                c.settings.restart.max_restarts = 1000;
            },
        ));
    }
    for run in runs {
        assert_eq!(join_within(run, LIMIT), 0);
    }
    let final_state = final_tasks(&store, "chaos");
    let executions = record.executions();
    let panicked = executions.len() - tasks.len();
    assert!(panicked > 0, "the run had panics to recover from");
    for (id, (status, progress, attempt)) in &final_state {
        assert_eq!(*status, TaskStatus::Done, "{id}");
        let runs: Vec<&Execution> = executions.iter().filter(|e| &e.task == id).collect();
        assert_eq!(
            *attempt as usize,
            runs.len(),
            "{id}: every execution was one counted attempt"
        );
        // The accepted result is the last run's: the earlier runs panicked.
        let last = runs.last().unwrap();
        assert_eq!(progress, &format!("{id} by {}", last.process), "{id}");
        // Never two runs of one task at once.
        for pair in runs.windows(2) {
            let ended = pair[0]
                .finished
                .expect("a run that panicked still recorded its end");
            assert!(
                ended <= pair[1].started,
                "{id}: a run started before the previous one ended"
            );
        }
    }
    let processes: std::collections::BTreeSet<&str> =
        executions.iter().map(|e| e.process.as_str()).collect();
    assert_eq!(processes.len(), 3, "all three processes worked");
}

#[test]
fn the_spawn_limit_caps_running_agents_and_the_rest_wait() {
    let dag = plan("capped", nodes(&ids("t", 20)), &[]);
    let mut provider = ScriptedProvider::new(dag, "p1", Arc::default());
    provider.delay = Duration::from_millis(50);
    let agents = [
        ("a1", "capped"),
        ("a2", "capped"),
        ("a3", "capped"),
        ("a4", "capped"),
    ];
    let project = project(&temp_dir("capped"), &agents);
    let (record, memory, run) = start_on_memory(Clock::Real, provider, project, |c| {
        c.settings.spawn_limit = 2
    });
    assert_eq!(join_within(run, LIMIT), 0);
    assert_eq!(
        record.max_in_flight.load(Ordering::SeqCst),
        2,
        "two agents at most, each one task at a time"
    );
    let owners: std::collections::BTreeSet<String> = block_on(memory.tasks("capped"))
        .unwrap()
        .into_iter()
        .filter_map(|t| t.owner)
        .collect();
    assert_eq!(
        owners.len(),
        2,
        "the waiting agents never got a slot before the goal ended: {owners:?}"
    );
}

/// Runs 12 tasks (two of them after another) with 4 agents and 1 LLM slot,
/// `--slot-before-claim` as given; returns the most tasks RUNNING (claimed)
/// when an execute call started.
fn most_running_at_a_call(store: StoreKind, slot_before_claim: bool) -> usize {
    let dag = plan(
        "slots",
        nodes(&ids("t", 12)),
        &[("t00", "t10"), ("t01", "t11")],
    );
    let record = Arc::new(Record::default());
    let mut provider = ScriptedProvider::new(dag, "p1", record.clone());
    provider.delay = Duration::from_millis(30);
    provider.count_running = true;
    let agents: Vec<(&str, &str)> = ["a0", "a1", "a2", "a3"]
        .iter()
        .map(|a| (*a, "slots"))
        .collect();
    let run = spawn_runtime(
        store,
        Arc::new(provider),
        project(&temp_dir("slot-first"), &agents),
        move |c| {
            c.settings.llm_max_concurrency = 1;
            c.settings.slot_before_claim = slot_before_claim;
        },
    );
    assert_eq!(join_within(run, LIMIT), 0, "the goal completes");
    let executions = record.executions();
    assert_eq!(executions.len(), 12, "each task ran once");
    assert_eq!(record.max_in_flight.load(Ordering::SeqCst), 1);
    executions
        .iter()
        .map(|e| e.running.expect("counted"))
        .max()
        .unwrap()
}

#[test]
fn with_slot_before_claim_no_claimed_task_waits_for_a_slot() {
    let store = StoreKind::Memory(Arc::new(MemoryStore::new()));
    assert_eq!(
        most_running_at_a_call(store, true),
        1,
        "each call's task is the only one claimed: the others wait for the slot unclaimed"
    );
}

#[test]
fn with_slot_before_claim_no_claimed_task_waits_for_a_slot_on_redis() {
    let server = RedisServer::start();
    assert_eq!(
        most_running_at_a_call(StoreKind::Redis(server.url()), true),
        1
    );
}

#[test]
fn without_slot_before_claim_claimed_tasks_wait_for_the_slot() {
    // Today's order: claim, then wait for a slot under the lease.
    let store = StoreKind::Memory(Arc::new(MemoryStore::new()));
    assert!(most_running_at_a_call(store, false) > 1);
}

#[test]
fn with_slot_before_claim_a_retry_that_comes_due_is_claimed_only_with_a_slot() {
    // `long` (role y) holds the only slot for 3 s; `flaky` (role x) fails once
    // and comes due 1 s later, when nothing is READY for its agent: a claim
    // then takes it without a slot, and it must go back to queue for one rather
    // than wait out `long` under its lease.
    let with_role = |id: &str, role: &str| porki::domain::Node {
        role: Some(role.into()),
        ..crate::support::node(id, 0)
    };
    // Ranked well above `long`, so its agent is first in the gate's queue.
    let flaky = porki::domain::Node {
        estimate: Some(10.0),
        ..with_role("flaky", "x")
    };
    let dag = plan("retry", vec![flaky, with_role("long", "y")], &[]);
    let record = Arc::new(Record::default());
    let mut provider = ScriptedProvider::new(dag, "p1", record.clone());
    provider.delay = Duration::from_millis(50);
    provider
        .delays
        .insert("long".into(), Duration::from_secs(3));
    provider.count_running = true;
    provider.behaviour = Box::new(|task, before| match (task, before) {
        ("flaky", 0) => {
            Behaviour::Answer(serde_json::json!({"status": "failed", "notes": "flaky"}))
        }
        _ => Behaviour::Succeed,
    });
    let dir = temp_dir("slot-first-retry");
    std::fs::write(
        dir.join("INSTRUCTIONS.md"),
        "# Test\n\n## Goals\n### retry\n- Review: none\n- Approve: none\n\n## Agents\n\
         ### ax\n- Goal: retry\n- Role: x\n- Cadence: 2s\n\n\
         ### ay\n- Goal: retry\n- Role: y\n- Cadence: 2s\n",
    )
    .unwrap();
    let project = porki::project::Project::load(&dir.join("INSTRUCTIONS.md")).unwrap();
    let run = spawn_runtime(
        StoreKind::Memory(Arc::new(MemoryStore::new())),
        Arc::new(provider),
        project,
        |c| {
            c.settings.llm_max_concurrency = 1;
            c.settings.slot_before_claim = true;
        },
    );
    assert_eq!(join_within(run, LIMIT), 0, "the goal completes");
    let executions = record.executions();
    let order: Vec<&str> = executions.iter().map(|e| e.task.as_str()).collect();
    assert_eq!(order, ["flaky", "long", "flaky"]);
    let retry = &executions[2];
    assert!(
        retry.started >= executions[1].ended.unwrap(),
        "the retry's call waited for the slot"
    );
    let waited = retry.lease_waited.expect("measured");
    assert!(
        waited < Duration::from_secs(1),
        "the retry waited {waited:?} for the slot under its lease"
    );
}
