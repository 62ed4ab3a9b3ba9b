//! The goal-level behaviours of issue 12, on every backend like the rest of the
//! suite: replacing a plan is a compare-and-set on the fingerprint the replacer
//! read and keeps what the goal spent; the token budget is reserved before a call
//! and settled after it; finished goals and dead agents go once past the retention.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use porki::domain::TaskStatus;
use porki::store::gc::{self, GcOptions, GcReport};
use porki::store::prelude::*;
use porki::store::{
    AgentField, AgentRecord, AgentState, GoalState, PlanError, Recovery, Reservation, StoreError,
    WriteDagOptions, WriteDagOutcome, write_plan,
};

use super::{cluster, memory, redis};

conformance!(
    untimed: [
        a_replan_replaces_only_the_plan_it_read,
        replacing_a_plan_keeps_what_the_goal_spent,
        the_cleanup_removes_goals_finished_past_the_retention_and_nothing_else,
        a_goal_that_only_spent_tokens_is_listed_and_removed_once_unused_past_the_retention,
        the_cleanup_removes_agents_dead_past_the_retention,
        the_cleanup_keeps_a_dead_agents_heartbeat_cursor_while_its_file_exists,
    ],
    timed: [
        token_reservations_admit_calls_while_the_budget_lasts_and_expire,
    ],
);

/// Finished long enough ago for a retention of [`RETAIN`] on any backend's clock.
const RETAIN: Duration = Duration::from_millis(800);
const PAST_RETAIN: Duration = Duration::from_millis(1300);

fn replacing(fingerprint: &str) -> WriteDagOptions {
    WriteDagOptions {
        expected: Some(fingerprint.to_string()),
        ..Default::default()
    }
}

async fn fingerprint(store: &dyn Store, goal: &str) -> String {
    store.goal_status(goal).await.unwrap().unwrap().fingerprint
}

fn names(removed: &[gc::Removed]) -> Vec<&str> {
    removed.iter().map(|r| r.name.as_str()).collect()
}

async fn collect(store: &dyn Store, dry_run: bool) -> GcReport {
    let options = GcOptions {
        dry_run,
        ..GcOptions::new(RETAIN)
    };
    gc::collect(store, &options).await.expect("cleanup")
}

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

mod behaviour {
    use super::super::{LONG, SHORT, result, statuses, write};
    use super::*;
    use crate::support::{claim, nodes, plan};

    pub async fn a_replan_replaces_only_the_plan_it_read(store: Arc<dyn Store>) {
        write(&*store, plan("g", nodes(&["a", "b"]), &[("a", "b")])).await;
        // Two processes replanning the changed instructions both read this plan.
        let read = fingerprint(&*store, "g").await;
        let first = plan("g", nodes(&["x", "y"]), &[("x", "y")]);
        let second = plan("g", nodes(&["p", "q"]), &[]);
        let (outcome, _) = write_plan(&*store, first.clone(), &replacing(&read), 100)
            .await
            .unwrap();
        assert_eq!(outcome, WriteDagOutcome::Replaced);
        let replaced = fingerprint(&*store, "g").await;
        let x = claim(&*store, "g", "w", LONG).await.unwrap();
        store.complete(&x, &result("x")).await.unwrap();

        // The second one's plan arrives later: the plan it read is gone.
        let err = write_plan(&*store, second.clone(), &replacing(&read), 100)
            .await
            .unwrap_err();
        match err {
            PlanError::Store(StoreError::PlanConflict { ref existing, .. }) => {
                assert_eq!(existing, &replaced)
            }
            other => panic!("a stale replace must be refused with PlanConflict, got {other:?}"),
        }
        let states = statuses(&*store, "g").await;
        assert_eq!(
            states,
            [
                ("x".into(), TaskStatus::Done),
                ("y".into(), TaskStatus::Ready)
            ]
            .into(),
            "the first replan's progress is kept"
        );
        // Had it got the same answer, it resumes; a write expecting nothing never replaces.
        let (outcome, _) = write_plan(&*store, first, &replacing(&read), 100)
            .await
            .unwrap();
        assert_eq!(outcome, WriteDagOutcome::Unchanged);
        assert!(
            write_plan(&*store, second.clone(), &WriteDagOptions::default(), 100)
                .await
                .is_err()
        );
        // Expecting the plan that is stored now replaces it.
        let (outcome, _) = write_plan(&*store, second, &replacing(&replaced), 100)
            .await
            .unwrap();
        assert_eq!(outcome, WriteDagOutcome::Replaced);
        assert_eq!(
            statuses(&*store, "g").await.keys().collect::<Vec<_>>(),
            ["p", "q"]
        );
    }

    pub async fn replacing_a_plan_keeps_what_the_goal_spent(store: Arc<dyn Store>) {
        write(&*store, plan("g", nodes(&["a", "b", "c"]), &[("a", "b")])).await;
        store.add_usage("g", 100, 1.5).await.unwrap();
        // A call in flight holds 30 tokens of a budget; a rate limit makes the goal wait.
        let held = store
            .reserve_tokens("g", "in-flight", 30, 1_000, LONG)
            .await
            .unwrap();
        assert_eq!(held, Reservation::Reserved);
        let a = claim(&*store, "g", "w", LONG).await.unwrap();
        store
            .back_off(&a, Duration::from_secs(600), "429 from claude")
            .await
            .unwrap();
        let c = store.task("g", "c").await.unwrap().unwrap();
        assert_eq!(c.status, TaskStatus::Ready);

        let read = fingerprint(&*store, "g").await;
        let (outcome, _) = write_plan(
            &*store,
            plan("g", nodes(&["x"]), &[]),
            &replacing(&read),
            100,
        )
        .await
        .unwrap();
        assert_eq!(outcome, WriteDagOutcome::Replaced);
        let goal = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!(
            (goal.state, goal.total, goal.count(TaskStatus::Ready)),
            (GoalState::Active, 1, 1),
            "the plan is the new one"
        );
        assert_ne!(goal.fingerprint, read);
        assert_eq!(goal.tokens, 100, "tokens spent on the goal are kept");
        assert_eq!(goal.cost_usd, 1.5, "and its cost");
        assert_eq!(
            goal.backoff.map(|b| b.reason).as_deref(),
            Some("429 from claude"),
            "a limit's wait is about the goal, not the plan"
        );
        // The call in flight still holds its 30: 100 + 30 leave 1 of 131.
        let next = |id: &'static str| {
            let store = store.clone();
            async move { store.reserve_tokens("g", id, 1, 131, LONG).await.unwrap() }
        };
        assert_eq!(next("one").await, Reservation::Reserved);
        assert_eq!(
            next("two").await,
            Reservation::Spent {
                spent: 100,
                reserved: 31
            }
        );
        store
            .settle_tokens("g", "in-flight", 20, 0.0)
            .await
            .unwrap();
        assert_eq!(store.goal_status("g").await.unwrap().unwrap().tokens, 120);
    }

    pub async fn token_reservations_admit_calls_while_the_budget_lasts_and_expire(
        store: Arc<dyn Store>,
    ) {
        // The goal has no plan yet (its plan call is the first to reserve).
        let reserve = |id: &'static str, tokens: u64, budget: u64, ttl: Duration| {
            let store = store.clone();
            async move {
                store
                    .reserve_tokens("g", id, tokens, budget, ttl)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(reserve("a", 60, 100, LONG).await, Reservation::Reserved);
        assert_eq!(
            reserve("b", 60, 100, LONG).await,
            Reservation::Reserved,
            "admitted while spent + reserved is under the budget"
        );
        assert_eq!(
            reserve("c", 1, 100, LONG).await,
            Reservation::Spent {
                spent: 0,
                reserved: 120
            }
        );
        assert_eq!(store.settle_tokens("g", "a", 50, 0.25).await.unwrap(), 50);
        assert_eq!(
            reserve("c", 1, 100, LONG).await,
            Reservation::Spent {
                spent: 50,
                reserved: 60
            },
            "a's reservation went, its use counts"
        );
        // b's call failed: it used nothing, and its reservation goes.
        assert_eq!(store.settle_tokens("g", "b", 0, 0.0).await.unwrap(), 50);
        // c's process dies between reserving and settling: its reservation expires.
        assert_eq!(reserve("c", 40, 100, SHORT).await, Reservation::Reserved);
        assert_eq!(
            reserve("d", 1, 90, LONG).await,
            Reservation::Spent {
                spent: 50,
                reserved: 40
            }
        );
        tokio::time::sleep(SHORT * 2).await;
        assert_eq!(reserve("d", 1, 90, LONG).await, Reservation::Reserved);
        let goal = store.goal_status("g").await.unwrap().unwrap();
        assert_eq!((goal.tokens, goal.cost_usd), (50, 0.25));
        // Settling without a reservation adds usage, as add_usage does.
        assert_eq!(store.settle_tokens("g", "", 5, 0.0).await.unwrap(), 55);
    }

    pub async fn the_cleanup_removes_goals_finished_past_the_retention_and_nothing_else(
        store: Arc<dyn Store>,
    ) {
        // Finished before the retention: complete, failed, and failed to plan.
        write(&*store, plan("old", nodes(&["a", "b"]), &[("a", "b")])).await;
        for task in ["a", "b"] {
            let lease = claim(&*store, "old", "w", LONG).await.unwrap();
            assert_eq!(lease.task, task);
            store.complete(&lease, &result(task)).await.unwrap();
        }
        store.add_usage("old", 70, 0.5).await.unwrap();
        write(&*store, plan("lost", nodes(&["a"]), &[])).await;
        let lease = claim(&*store, "lost", "w", LONG).await.unwrap();
        store
            .fail(&lease, "bad", false, SHORT, Recovery::Never)
            .await
            .unwrap();
        store
            .fail_unplanned_goal("unplanned", "no plan")
            .await
            .unwrap();
        // Failed as long ago, but a task of it is still leased by someone.
        write(&*store, plan("busy", nodes(&["a", "b"]), &[])).await;
        let _held = claim(&*store, "busy", "w", LONG).await.unwrap();
        let doomed = claim(&*store, "busy", "v", LONG).await.unwrap();
        store
            .fail(&doomed, "bad", false, SHORT, Recovery::Never)
            .await
            .unwrap();
        tokio::time::sleep(PAST_RETAIN).await;
        // Finished just now, and active.
        write(&*store, plan("new", nodes(&["a"]), &[])).await;
        let lease = claim(&*store, "new", "w", LONG).await.unwrap();
        store.complete(&lease, &result("a")).await.unwrap();
        write(&*store, plan("active", nodes(&["a"]), &[])).await;
        let all = ["active", "busy", "lost", "new", "old", "unplanned"];
        assert_eq!(store.goals().await.unwrap(), all);

        let dry = collect(&*store, true).await;
        assert!(dry.dry_run);
        assert_eq!(names(&dry.goals), ["lost", "old", "unplanned"]);
        assert_eq!(dry.kept_goals, 3);
        assert!(
            dry.lines()[1].starts_with("would remove goal old (complete, finished "),
            "{:?}",
            dry.lines()
        );
        assert_eq!(
            store.goals().await.unwrap(),
            all,
            "a dry run removes nothing"
        );
        assert_eq!(statuses(&*store, "old").await.len(), 2);

        let report = collect(&*store, false).await;
        assert_eq!(names(&report.goals), ["lost", "old", "unplanned"]);
        let old = &report.goals[1];
        assert_eq!((old.state.as_str(), old.tasks), ("complete", 2));
        assert!(
            old.age >= PAST_RETAIN - Duration::from_millis(100),
            "{old:?}"
        );
        assert_eq!(
            (
                report.goals[0].state.as_str(),
                report.goals[2].state.as_str()
            ),
            ("failed", "failed")
        );
        assert_eq!(store.goals().await.unwrap(), ["active", "busy", "new"]);
        for goal in ["old", "lost", "unplanned"] {
            assert!(store.goal_status(goal).await.unwrap().is_none(), "{goal}");
            assert!(store.dag(goal).await.unwrap().is_none(), "{goal}");
            assert!(store.tasks(goal).await.unwrap().is_empty(), "{goal}");
        }
        assert!(store.task("old", "a").await.unwrap().is_none());
        for goal in ["active", "busy", "new"] {
            assert!(store.goal_status(goal).await.unwrap().is_some(), "{goal}");
        }
        // The orchestrator keeps its own goals whatever their age.
        tokio::time::sleep(PAST_RETAIN).await;
        let options = GcOptions {
            keep_goals: BTreeSet::from(["new".to_string()]),
            ..GcOptions::new(RETAIN)
        };
        let report = gc::collect(&*store, &options).await.unwrap();
        assert!(report.is_empty(), "{report:?}");
        assert_eq!(store.goals().await.unwrap(), ["active", "busy", "new"]);
    }

    pub async fn a_goal_that_only_spent_tokens_is_listed_and_removed_once_unused_past_the_retention(
        store: Arc<dyn Store>,
    ) {
        // Regression: planning calls (or a late usage batch after gc removed the
        // goal) left a goal hash holding only tokens that `goals` did not list,
        // so gc never found it.
        store.add_usage("draft", 40, 0.5).await.unwrap();
        assert!(
            matches!(
                store
                    .reserve_tokens("flight", "call", 5, 1_000, LONG)
                    .await
                    .unwrap(),
                Reservation::Reserved
            ),
            "a call of a goal planning right now"
        );
        assert_eq!(store.goals().await.unwrap(), ["draft", "flight"]);
        let draft = store.goal_status("draft").await.unwrap().unwrap();
        assert_eq!((draft.state, draft.tokens), (GoalState::Draft, 40));
        assert_eq!(
            store.goal_status("flight").await.unwrap().unwrap().state,
            GoalState::Draft
        );
        assert!(
            collect(&*store, false).await.goals.is_empty(),
            "used just now"
        );

        tokio::time::sleep(PAST_RETAIN).await;
        let dry = collect(&*store, true).await;
        assert_eq!(names(&dry.goals), ["draft"]);
        let report = collect(&*store, false).await;
        assert_eq!(
            names(&report.goals),
            ["draft"],
            "flight has a call in flight"
        );
        let removed = &report.goals[0];
        assert_eq!((removed.state.as_str(), removed.tasks), ("draft", 0));
        assert!(removed.age >= PAST_RETAIN - Duration::from_millis(100));
        assert_eq!(store.goals().await.unwrap(), ["flight"]);
        assert!(store.goal_status("draft").await.unwrap().is_none());

        // Spent on after gc removed it: listed again.
        store.add_usage("draft", 1, 0.0).await.unwrap();
        assert_eq!(store.goals().await.unwrap(), ["draft", "flight"]);
        // Planned, it is no draft: its spending is the goal's.
        write(&*store, plan("flight", nodes(&["a"]), &[])).await;
        store.settle_tokens("flight", "call", 7, 0.0).await.unwrap();
        tokio::time::sleep(PAST_RETAIN).await;
        let report = collect(&*store, false).await;
        assert_eq!(names(&report.goals), ["draft"]);
        let flight = store.goal_status("flight").await.unwrap().unwrap();
        assert_eq!((flight.state, flight.tokens), (GoalState::Active, 7));
    }

    pub async fn the_cleanup_removes_agents_dead_past_the_retention(store: Arc<dyn Store>) {
        store
            .register_agent(&agent("stopped-old", AgentState::Stopped))
            .await
            .unwrap();
        store
            .set_agent_value("stopped-old", AgentField::Memory, Some("[\"did x\"]"))
            .await
            .unwrap();
        store
            .push_agent_error("stopped-old", "bad line")
            .await
            .unwrap();
        // Its process died without a word: registered running, no heartbeat.
        store
            .register_agent(&agent("crashed", AgentState::Running))
            .await
            .unwrap();
        store
            .register_agent(&agent("alive", AgentState::Running))
            .await
            .unwrap();
        assert!(
            store
                .acquire_agent_guard("alive", "its-token", LONG)
                .await
                .unwrap()
        );
        // Stopped, but its guard is held: a process is running it.
        store
            .register_agent(&agent("guarded", AgentState::Stopped))
            .await
            .unwrap();
        assert!(
            store
                .acquire_agent_guard("guarded", "token", LONG)
                .await
                .unwrap()
        );
        tokio::time::sleep(PAST_RETAIN).await;
        store
            .register_agent(&agent("stopped-new", AgentState::Failed("crashed".into())))
            .await
            .unwrap();

        let report = collect(&*store, false).await;
        assert_eq!(names(&report.agents), ["stopped-old"]);
        assert_eq!(report.agents[0].state, "stopped");
        assert_eq!(report.kept_agents, 4, "crashed is only found dead now");
        let listed: Vec<String> = store
            .agents()
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(listed, ["alive", "crashed", "guarded", "stopped-new"]);
        let memory = store.agent_value("stopped-old", AgentField::Memory).await;
        assert_eq!(memory.unwrap(), None);
        assert!(store.agent_errors("stopped-old").await.unwrap().is_empty());

        tokio::time::sleep(PAST_RETAIN).await;
        let dry = collect(&*store, true).await;
        assert_eq!(names(&dry.agents), ["crashed", "stopped-new"]);
        assert_eq!(
            store.agents().await.unwrap().len(),
            4,
            "a dry run removes nothing"
        );
        let report = collect(&*store, false).await;
        assert_eq!(names(&report.agents), ["crashed", "stopped-new"]);
        assert_eq!(
            (
                report.agents[0].state.as_str(),
                report.agents[1].state.as_str()
            ),
            ("running", "failed: crashed")
        );
        let listed: Vec<String> = store
            .agents()
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(listed, ["alive", "guarded"], "live agents are kept");
    }

    pub async fn the_cleanup_keeps_a_dead_agents_heartbeat_cursor_while_its_file_exists(
        store: Arc<dyn Store>,
    ) {
        let dir = crate::support::temp_dir("gc-cursor");
        let heartbeat = dir.join("kept.md");
        std::fs::write(&heartbeat, "PAUSE\n").unwrap();
        let cursor = |file: &std::path::Path| {
            porki::heartbeat::StoredCursor::new(
                porki::heartbeat::new_lines("PAUSE\n", &Default::default())
                    .next()
                    .clone(),
                file,
            )
            .to_string()
        };
        for (name, file) in [("kept", heartbeat.clone()), ("lost", dir.join("gone.md"))] {
            store
                .register_agent(&agent(name, AgentState::Stopped))
                .await
                .unwrap();
            let value = cursor(&file);
            store
                .set_agent_value(name, AgentField::HeartbeatCursor, Some(&value))
                .await
                .unwrap();
            store
                .set_agent_value(name, AgentField::Memory, Some("[]"))
                .await
                .unwrap();
        }
        tokio::time::sleep(PAST_RETAIN).await;
        let report = collect(&*store, false).await;
        assert_eq!(names(&report.agents), ["kept", "lost"]);
        assert_eq!(report.agents[0].cursor_kept.as_deref(), Some(&*heartbeat));
        assert_eq!(report.agents[1].cursor_kept, None);
        assert!(
            report.lines()[0].contains("its heartbeat cursor stays while"),
            "{:?}",
            report.lines()
        );
        assert!(
            store.agents().await.unwrap().is_empty(),
            "both registrations went"
        );
        let value = |name: &'static str, field| {
            let store = store.clone();
            async move { store.agent_value(name, field).await.unwrap() }
        };
        assert_eq!(
            value("kept", AgentField::HeartbeatCursor).await,
            Some(cursor(&heartbeat))
        );
        assert_eq!(value("kept", AgentField::Memory).await, None);
        assert_eq!(value("lost", AgentField::HeartbeatCursor).await, None);

        // Found again by the next sweep, and kept while the file is there.
        let report = collect(&*store, false).await;
        assert!(report.agents.is_empty());
        assert_eq!(report.kept_agents, 1);
        assert!(value("kept", AgentField::HeartbeatCursor).await.is_some());
        // The file goes: so does the cursor, and the name.
        std::fs::remove_file(&heartbeat).unwrap();
        let report = collect(&*store, false).await;
        assert_eq!((report.agents.len(), report.kept_agents), (0, 0));
        assert_eq!(value("kept", AgentField::HeartbeatCursor).await, None);
        assert!(store.agent_names().await.unwrap().is_empty());
    }
}
