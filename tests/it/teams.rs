//! Teams at work: a builder, a reviewer and a manager through accepted and
//! rejected reviews, an escalation, a recovery and a person's approval given
//! through a heartbeat file across a restart; and the bounds of every loop (a
//! reviewer who always rejects, a task that always fails, an approval that
//! never comes) as the runtime meets them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use porki::domain::{Node, TaskKind, TaskStatus};
use porki::project::Project;
use porki::store::GoalState;
use porki::store::prelude::*;
use porki::supervisor::Shutdown;
use serde_json::json;

use crate::support::runtime::*;
use crate::support::{RedisServer, append_line, block_on, plan, temp_dir, wait_until};

/// A project of goal `g` with a builder `dev`, a reviewer `qa` and, when
/// `manager`, a manager `lead`, each with a heartbeat file; the goal reviews the
/// tasks the plan marks.
fn team(dir: &Path, manager: bool) -> Project {
    std::fs::create_dir_all(dir.join("heartbeat")).unwrap();
    let mut text = String::from(
        "# Team\n\n## Goals\n\n### g\n- Review: marked\n- Approve: marked\n\n## Agents\n\n\
         ### dev\n- Goal: g\n- Role: dev\n- Heartbeat: heartbeat/dev.md\n- Cadence: 2s\n\n\
         ### qa\n- Goal: g\n- Role: qa\n- Heartbeat: heartbeat/qa.md\n- Cadence: 2s\n",
    );
    if manager {
        text.push_str(
            "\n### lead\n- Goal: g\n- Role: lead\n- Heartbeat: heartbeat/lead.md\n- Cadence: 2s\n",
        );
    }
    std::fs::write(dir.join("INSTRUCTIONS.md"), text).unwrap();
    Project::load(&dir.join("INSTRUCTIONS.md")).unwrap()
}

/// A work task for the builder's role, marked for review and approval as asked.
fn work(id: &str, review: bool, approval: bool) -> Node {
    let mut node = Node::new(id, format!("Task {id}"));
    node.role = Some("dev".into());
    node.review = review;
    node.approval = approval;
    node
}

fn verdict(verdict: &str, notes: &str) -> Behaviour {
    Behaviour::Answer(json!({"status": "done", "verdict": verdict, "notes": notes, "outputs": []}))
}

fn failure(why: &str) -> Behaviour {
    Behaviour::Answer(json!({"status": "failed", "notes": why}))
}

/// Executions per task that the record saw.
fn count(record: &Record, task: &str) -> usize {
    record.counts().get(task).copied().unwrap_or(0)
}

#[test]
fn a_team_reviews_fixes_escalates_recovers_and_waits_for_an_approval_across_a_restart() {
    let server = RedisServer::start();
    let dir = temp_dir("team");
    let store = StoreKind::Redis(server.url());
    let dag = plan(
        "g",
        vec![
            work("accepted", true, false),
            work("fixed", true, false),
            work("escalated", true, false),
            work("flaky", false, false),
            work("approved", false, true),
            work("final", false, false),
        ],
        &[("fixed", "final")],
    );
    let first = Arc::new(Record::default());
    let mut provider = ScriptedProvider::new(dag.clone(), "first", first.clone());
    provider.behaviour = Box::new(|task, before| match (task, before) {
        ("accepted.review", _) => verdict("approved", "fine as it is"),
        ("fixed.review", 0) => verdict("changes_requested", "add the missing tests"),
        ("fixed.review", _) => verdict("approved", "the tests are in"),
        ("escalated.review", n) => verdict("changes_requested", &format!("still wrong ({n})")),
        ("escalated.escalate", _) => verdict("approved", "good enough to ship"),
        ("flaky", n) => failure(&format!("flaky broke ({n})")),
        _ => Behaviour::Succeed,
    });
    let (run, supervisor) =
        spawn_stoppable_runtime(store.clone(), Arc::new(provider), team(&dir, true));
    wait_until(LIMIT, "everything but the approval is done", || {
        let tasks = tasks_now(&store, "g");
        tasks.get("approved").map(|t| t.0) == Some(TaskStatus::AwaitingApproval)
            && tasks
                .iter()
                .filter(|(id, _)| !["approved", "flaky"].contains(&id.as_str()))
                .all(|(_, t)| t.0 == TaskStatus::Done)
            && tasks.len() == 14
    });
    // The approval holds no lease and costs nothing while it waits.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&first, "approved"), 1);
    supervisor.do_send(Shutdown);
    join_within(run, LIMIT);

    let states = block_on(async {
        let store = store.open().await;
        let mut tasks = store.tasks("g").await.unwrap();
        tasks.sort_by(|a, b| a.id.cmp(&b.id));
        (store.goal_status("g").await.unwrap().unwrap(), tasks)
    });
    let (goal, tasks) = states;
    assert_eq!(goal.state, GoalState::Active, "waiting for the approval");
    assert_eq!(goal.count(TaskStatus::AwaitingApproval), 1);
    let task = |id: &str| tasks.iter().find(|t| t.id == id).unwrap().clone();
    // An accepted review: one review, no fix.
    assert_eq!(count(&first, "accepted.review"), 1);
    assert_eq!(task("accepted.review").owner.as_deref(), Some("qa"));
    // A rejected-then-fixed review: the fix carries the notes, for the builder's role.
    let fix = task("fixed.fix-1");
    assert_eq!(
        (fix.kind, fix.of.as_deref()),
        (TaskKind::Fix, Some("fixed"))
    );
    assert_eq!(fix.notes.as_deref(), Some("add the missing tests"));
    assert_eq!(fix.owner.as_deref(), Some("dev"));
    assert_eq!(count(&first, "fixed.review"), 2);
    assert_eq!(task("fixed.review").cycle, 1);
    // Dependents wait for the review to pass, not just for the task.
    let executions = first.executions();
    let started = |id: &str| executions.iter().find(|e| e.task == id).unwrap().started;
    let last_review_end = executions
        .iter()
        .filter(|e| e.task == "fixed.review")
        .filter_map(|e| e.finished)
        .max()
        .unwrap();
    assert!(
        started("final") >= last_review_end,
        "final waited for the review"
    );
    // An escalation after two review cycles: three reviews, two fixes, one
    // manager's decision that passed the review.
    assert_eq!(count(&first, "escalated.review"), 3);
    assert_eq!(
        (
            count(&first, "escalated.fix-1"),
            count(&first, "escalated.fix-2")
        ),
        (1, 1)
    );
    assert_eq!(count(&first, "escalated.escalate"), 1);
    assert_eq!(task("escalated.escalate").owner.as_deref(), Some("lead"));
    assert_eq!(task("escalated.review").status, TaskStatus::Done);
    // A recovery: the task failed its three attempts, the manager redid it.
    assert_eq!(count(&first, "flaky"), 3);
    let flaky = task("flaky");
    assert_eq!(flaky.status, TaskStatus::Failed);
    assert_eq!(flaky.recovered_by.as_deref(), Some("flaky.recover"));
    let recovery = task("flaky.recover");
    assert_eq!(recovery.status, TaskStatus::Done);
    assert_eq!(recovery.owner.as_deref(), Some("lead"));
    assert!(recovery.notes.unwrap().contains("flaky broke (2)"));
    assert_eq!(goal.superseded, 1);
    // Reviewers and managers took no builder work.
    for id in ["accepted", "fixed", "escalated", "approved", "final"] {
        assert_eq!(task(id).owner.as_deref(), Some("dev"), "{id}");
    }

    // A new process; a person approves through a heartbeat file of the goal.
    let second = Arc::new(Record::default());
    let provider = ScriptedProvider::new(dag, "second", second.clone());
    let run = spawn_runtime(store.clone(), Arc::new(provider), team(&dir, true), |_| {});
    std::thread::sleep(Duration::from_secs(1));
    append_line(&dir.join("heartbeat/lead.md"), "APPROVE-TASK approved");
    assert_eq!(
        join_within(run, LIMIT),
        0,
        "the goal completes once approved"
    );
    assert!(second.executions().is_empty(), "nothing ran again");
    let tasks = final_tasks(&store, "g");
    assert_eq!(tasks["approved"].0, TaskStatus::Done);
    assert!(
        tasks
            .values()
            .filter(|t| t.0 != TaskStatus::Failed)
            .all(|t| t.0 == TaskStatus::Done),
        "{tasks:?}"
    );
}

/// Runs the scripted team on the embedded store (paused clock) until it exits.
fn run_team(
    name: &str,
    manager: bool,
    dag: porki::domain::Dag,
    behaviour: Box<ChooseBehaviour>,
) -> (i32, Arc<Record>, Vec<porki::domain::TaskState>) {
    let dir = temp_dir(name);
    let mut provider = ScriptedProvider::new(dag, "p", Arc::default());
    provider.behaviour = behaviour;
    let (record, memory, run) =
        start_on_memory(Clock::Paused, provider, team(&dir, manager), |_| {});
    let code = join_within(run, LIMIT);
    let tasks = block_on(memory.tasks("g")).unwrap();
    (code, record, tasks)
}

#[test]
fn a_reviewer_who_always_rejects_ends_in_a_failed_review_after_the_cycles() {
    for manager in [false, true] {
        let dag = plan("g", vec![work("a", true, false)], &[]);
        let (code, record, tasks) = run_team(
            "reject",
            manager,
            dag,
            Box::new(|task, n| match task {
                "a.review" => verdict("changes_requested", &format!("no ({n})")),
                "a.escalate" => verdict("changes_requested", "not shippable"),
                _ => Behaviour::Succeed,
            }),
        );
        assert_eq!(code, 1, "the goal fails (manager: {manager})");
        assert_eq!(count(&record, "a"), 1);
        assert_eq!(
            count(&record, "a.review"),
            3,
            "a first review and two cycles"
        );
        assert_eq!(count(&record, "a.fix-1") + count(&record, "a.fix-2"), 2);
        assert_eq!(count(&record, "a.fix-3"), 0);
        assert_eq!(count(&record, "a.escalate"), usize::from(manager));
        let review = tasks.iter().find(|t| t.id == "a.review").unwrap();
        assert_eq!(review.status, TaskStatus::Failed);
        let error = review.last_error.clone().unwrap();
        let says = if manager { "not shippable" } else { "no (2)" };
        assert!(error.contains(says), "{error}");
    }
}

#[test]
fn a_task_that_always_fails_is_recovered_once_then_fails_with_both_errors() {
    let dag = plan(
        "g",
        vec![work("a", false, false), work("b", false, false)],
        &[("a", "b")],
    );
    let (code, record, tasks) = run_team(
        "always-fails",
        false,
        dag,
        Box::new(|task, n| match task {
            "a" => failure(&format!("a broke ({n})")),
            "a.recover" => failure(&format!("the recovery broke ({n})")),
            _ => Behaviour::Succeed,
        }),
    );
    assert_eq!(code, 1);
    assert_eq!(count(&record, "a"), 3);
    assert_eq!(count(&record, "a.recover"), 3);
    assert_eq!(count(&record, "b"), 0, "b never runs on failed work");
    assert_eq!(count(&record, "a.recover.recover"), 0);
    let task = |id: &str| tasks.iter().find(|t| t.id == id).unwrap().clone();
    assert_eq!(task("a").status, TaskStatus::Failed);
    assert!(task("a").last_error.unwrap().contains("a broke (2)"));
    let recovery = task("a.recover");
    assert_eq!(recovery.status, TaskStatus::Failed);
    let error = recovery.last_error.unwrap();
    assert!(error.contains("the recovery broke (2)"), "{error}");
    assert!(error.contains("a broke (2)"), "both errors: {error}");
    assert_eq!(tasks.len(), 3, "one recovery, nothing nested");
}

#[test]
fn a_dependent_of_recovered_work_is_given_the_recoverys_result() {
    // `first` (role y) reads the plan before `a` (role x) fails and `a.recover`
    // takes its place; `b` (role y) then needs the recovery's result, not the
    // failed task's.
    let project = two_builders("recovered-input", [("ex", "x"), ("why", "y")]);
    let of_role = |id: &str, role: &str, priority| Node {
        role: Some(role.into()),
        priority,
        ..Node::new(id, id)
    };
    let dag = plan(
        "g",
        vec![
            of_role("first", "y", 9),
            of_role("a", "x", 0),
            of_role("b", "y", 0),
        ],
        &[("a", "b")],
    );
    let mut provider = ScriptedProvider::new(dag, "p", Arc::default());
    provider.behaviour = Box::new(|task, _| match task {
        "a" => failure("a broke"),
        _ => Behaviour::Succeed,
    });
    let (record, _, run) = start_on_memory(Clock::Paused, provider, project, |_| {});
    assert_eq!(join_within(run, LIMIT), 0);
    let prompt = |task: &str| {
        let executions = record.executions();
        executions
            .iter()
            .find(|e| e.task == task)
            .unwrap()
            .prompt
            .clone()
    };
    let b = prompt("b");
    assert!(b.contains("a.recover by p"), "{b}");
    assert!(!b.contains("a broke"), "{b}");
}

#[test]
fn an_approval_that_never_comes_waits_visibly_and_spends_nothing() {
    let dir = temp_dir("never-approved");
    let dag = plan(
        "g",
        vec![work("a", false, true), work("b", false, false)],
        &[("a", "b")],
    );
    let provider = ScriptedProvider::new(dag, "p", Arc::default());
    let record = provider.record.clone();
    let memory = Arc::new(porki::store::MemoryStore::new());
    let (run, supervisor) = spawn_stoppable_runtime(
        StoreKind::Memory(memory.clone()),
        Arc::new(provider),
        team(&dir, false),
    );
    let started = Instant::now();
    wait_until(LIMIT, "a awaits approval", || count(&record, "a") == 1);
    std::thread::sleep(Duration::from_secs(3));
    assert!(!run.is_finished(), "--until-done keeps waiting");
    assert_eq!(record.executions().len(), 1, "no call while it waits");
    let state = |id| block_on(memory.task("g", id)).unwrap().unwrap().status;
    assert_eq!(state("a"), TaskStatus::AwaitingApproval, "visibly");
    assert_eq!(state("b"), TaskStatus::Blocked);
    supervisor.do_send(Shutdown);
    join_within(run, LIMIT);
    assert!(started.elapsed() >= Duration::from_secs(3));
}

/// Two builders of goal `g`, each `(name, role)`.
fn two_builders(dir: &str, agents: [(&str, &str); 2]) -> Project {
    let dir = temp_dir(dir);
    let text: String = agents
        .iter()
        .map(|(name, role)| format!("### {name}\n- Goal: g\n- Role: {role}\n"))
        .collect();
    std::fs::write(dir.join("INSTRUCTIONS.md"), format!("## Agents\n{text}")).unwrap();
    Project::load(&dir.join("INSTRUCTIONS.md")).unwrap()
}

/// `dev` (role dev) and `sketcher` (role design).
fn dev_and_sketcher(dir: &str) -> Project {
    two_builders(dir, [("dev", "dev"), ("sketcher", "design")])
}

#[test]
fn a_soft_task_whose_role_has_no_live_agent_goes_to_a_builder() {
    let project = dev_and_sketcher("soft");
    let mut sketch = Node::new("sketch", "Sketch the page");
    sketch.role = Some("design".into());
    sketch.assignment = porki::domain::Assignment::Soft;
    let dag = plan("g", vec![work("build", false, false), sketch], &[]);
    let provider = ScriptedProvider::new(dag, "p", Arc::default());
    // One slot, filled in name order: the sketcher never runs while the builder holds it.
    let (record, memory, run) = start_on_memory(Clock::Paused, provider, project, |config| {
        config.settings.spawn_limit = 1
    });
    assert_eq!(join_within(run, LIMIT), 0);
    let sketch = block_on(memory.task("g", "sketch")).unwrap().unwrap();
    assert_eq!(sketch.owner.as_deref(), Some("dev"));
    assert_eq!(sketch.role.as_deref(), Some("dev"));
    assert_eq!(sketch.planned_role.as_deref(), Some("design"));
    assert_eq!(count(&record, "sketch"), 1);
}

#[test]
fn an_idle_agent_gives_its_slot_to_a_waiting_one_whose_role_has_ready_tasks() {
    let project = dev_and_sketcher("yield");
    let of_role = |id: &str, role: &str| Node {
        role: Some(role.into()),
        ..Node::new(id, id)
    };
    // dev → sketch → deploy: the slot has to change hands twice.
    let dag = plan(
        "g",
        vec![
            of_role("build", "dev"),
            of_role("sketch", "design"),
            of_role("deploy", "dev"),
        ],
        &[("build", "sketch"), ("sketch", "deploy")],
    );
    let provider = ScriptedProvider::new(dag, "p", Arc::default());
    // One slot, filled in name order: dev first, and idle once build is done.
    let (record, memory, run) = start_on_memory(Clock::Paused, provider, project, |config| {
        config.settings.spawn_limit = 1
    });
    assert_eq!(join_within(run, LIMIT), 0, "the goal must end");
    for (task, owner) in [("build", "dev"), ("sketch", "sketcher"), ("deploy", "dev")] {
        let state = block_on(memory.task("g", task)).unwrap().unwrap();
        assert_eq!(state.status, TaskStatus::Done, "{task}");
        assert_eq!(state.owner.as_deref(), Some(owner), "{task}");
        assert_eq!(count(&record, task), 1, "{task}");
    }
    assert_eq!(record.max_in_flight.load(Ordering::SeqCst), 1);
}

#[test]
fn the_ids_porki_adds_to_the_longest_planned_id_are_accepted_by_a_heartbeat_file() {
    // Regression: slugs and planned ids took all 64 characters, so `.review` or
    // `.fix-1` made ids that plan validation or APPROVE-TASK refused.
    let dir = temp_dir("longest-id");
    // The id a task list gives a long title.
    let long = porki::instructions::tasks::slug(&"x".repeat(100));
    assert_eq!(long.len(), porki::domain::MAX_PLANNED_ID_LEN);
    let review = format!("{long}.review");
    let dag = plan("g", vec![work(&long, true, true)], &[]);
    let mut provider = ScriptedProvider::new(dag, "p", Arc::default());
    let asked = review.clone();
    provider.behaviour = Box::new(move |task, before| match before {
        0 if task == asked => verdict("changes_requested", "once more"),
        _ if task == asked => verdict("approved", "fine"),
        _ => Behaviour::Succeed,
    });
    let record = provider.record.clone();
    let memory = Arc::new(porki::store::MemoryStore::new());
    let run = spawn_runtime(
        StoreKind::Memory(memory.clone()),
        Arc::new(provider),
        team(&dir, false),
        |_| {},
    );
    let state = |id: &str| block_on(memory.task("g", id)).unwrap().map(|t| t.status);
    wait_until(LIMIT, "the review awaits approval", || {
        state(&review) == Some(TaskStatus::AwaitingApproval)
    });
    assert_eq!(count(&record, &format!("{long}.fix-1")), 1);
    append_line(
        &dir.join("heartbeat/dev.md"),
        &format!("APPROVE-TASK {review}"),
    );
    assert_eq!(
        join_within(run, LIMIT),
        0,
        "the goal completes once approved"
    );
    assert_eq!(state(&review), Some(TaskStatus::Done));
}
