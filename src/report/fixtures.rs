//! Reports and plans the renderer tests share (the dashboard's too).

use std::collections::BTreeMap;

use crate::domain::{AgentKind, Dag, Node, TaskKind, TaskState, TaskStatus};
use crate::store::{AgentRecord, AgentState, GoalState, GoalStatus};

use super::{AgentReport, GoalReport};

/// The reference time of the fixtures, ms since the Unix epoch.
pub(crate) const NOW: u64 = 1_000_000;

/// A task with nothing set but its id, title, state and last change.
pub(crate) fn task(id: &str, title: &str, status: TaskStatus, updated_ms: u64) -> TaskState {
    TaskState {
        created_ms: 0,
        ..TaskState::new("g", id, title, status, updated_ms)
    }
}

/// A running agent of goal `g`, as `porki status` lists it.
pub(crate) fn agent(name: &str, role: Option<&str>, kind: AgentKind, alive: bool) -> AgentReport {
    AgentReport {
        record: AgentRecord {
            name: name.into(),
            goal: "g".into(),
            role: role.map(str::to_string),
            kind,
            process: "host:1".into(),
            state: AgentState::Running,
        },
        last_error: None,
        alive,
    }
}

/// a → b, a → c, b → d, c → d: a DONE, b RUNNING by w1, c FAILED, d BLOCKED.
pub(crate) fn diamond() -> (Dag, Vec<TaskState>) {
    let nodes = vec![
        Node::new("a", "Start"),
        Node::new("b", "Left"),
        Node::new("c", "Right"),
        Node::new("d", "Join"),
    ];
    // Out of order on purpose: renderers sort edges.
    let dag = Dag::new(
        "g",
        nodes,
        &[("c", "d"), ("a", "b"), ("a", "c"), ("b", "d")],
    );
    let mut b = task("b", "Left", TaskStatus::Running, NOW - 1_000);
    b.owner = Some("w1".into());
    b.attempt = 1;
    b.fence = 1;
    b.lease_expires_ms = Some(NOW + 12_000);
    let mut c = task("c", "Right", TaskStatus::Failed, NOW - 500);
    c.owner = Some("w2".into());
    c.attempt = 3;
    c.last_error = Some("boom".into());
    let mut a = task("a", "Start", TaskStatus::Done, NOW - 5_000);
    a.owner = Some("w1".into());
    a.attempt = 1;
    let d = task("d", "Join", TaskStatus::Blocked, NOW - 9_000);
    (dag, vec![a, b, c, d])
}

/// The diamond ranked so that its FAILED branch c is the critical path
/// (c → d), against the smaller id b.
pub(crate) fn ranked_diamond() -> (Dag, Vec<TaskState>) {
    let (dag, mut tasks) = diamond();
    for (task, rank) in tasks.iter_mut().zip([9_000, 2_000, 5_000, 1_000]) {
        task.rank_ms = Some(rank);
        task.estimate_ms = Some(1_000);
        task.estimate_source = Some(crate::domain::rank::EstimateSource::Default);
    }
    (dag, tasks)
}

/// The diamond as one active goal.
pub(crate) fn goal_report() -> GoalReport {
    let (dag, tasks) = diamond();
    report("Diamond", dag, tasks)
}

/// `dag` and `tasks` as one active goal titled `title`, counted from the tasks
/// (FAILED tasks a recovery took over counted as superseded).
fn report(title: &str, dag: Dag, tasks: Vec<TaskState>) -> GoalReport {
    let mut counts = BTreeMap::new();
    for t in &tasks {
        *counts.entry(t.status).or_insert(0) += 1;
    }
    let superseded = tasks.iter().filter(|t| t.recovered_by.is_some()).count() as u64;
    GoalReport {
        status: GoalStatus {
            goal: "g".into(),
            state: GoalState::Active,
            title: title.into(),
            fingerprint: "f".into(),
            source: String::new(),
            max_attempts: 3,
            counts,
            total: tasks.len() as u64,
            superseded,
            created_ms: 1,
            finished_ms: None,
            last_error: None,
            tokens: 0,
            cost_usd: 0.0,
            backoff: None,
            ready_by_role: Default::default(),
            branch: None,
            ranked: true,
        },
        tasks,
        edges: dag.edges,
    }
}

/// A task porki added to the plan: `kind` of `of`, in `cycle`.
fn added(
    id: &str,
    title: &str,
    status: TaskStatus,
    updated_ms: u64,
    kind: TaskKind,
    of: &str,
    cycle: u32,
) -> TaskState {
    TaskState {
        kind,
        of: Some(of.into()),
        cycle,
        ..task(id, title, status, updated_ms)
    }
}

/// A team at work, every loop in one plan, newest change first:
///
/// - `draft` DONE; its review asked for changes once (cycle 1) and waits
///   (BLOCKED) for `draft.fix-1`, RUNNING by w1;
/// - `copy` DONE; its review asked for changes twice and waits for the
///   escalation `copy.escalate` (READY, for role lead);
/// - `sign-off` and `logo` AWAITING_APPROVAL;
/// - `scan` FAILED and taken over by `scan.recover` (READY, needs approval);
/// - `layout` READY, planned for role designer and handed to a writer;
/// - `publish` BLOCKED on both reviews and the recovery.
pub(crate) fn team() -> (Dag, Vec<TaskState>) {
    let mut fix = added(
        "draft.fix-1",
        "Fix 1 of: Draft",
        TaskStatus::Running,
        NOW - 100,
        TaskKind::Fix,
        "draft",
        1,
    );
    fix.owner = Some("w1".into());
    fix.attempt = 1;
    fix.lease_expires_ms = Some(NOW + 30_000);
    fix.notes = Some("cite the sources".into());
    let review = added(
        "draft.review",
        "Review: Draft",
        TaskStatus::Blocked,
        NOW - 200,
        TaskKind::Review,
        "draft",
        1,
    );
    let mut escalate = added(
        "copy.escalate",
        "Settle the review of: Copy",
        TaskStatus::Ready,
        NOW - 300,
        TaskKind::Escalate,
        "copy.review",
        0,
    );
    escalate.role = Some("lead".into());
    let copy_review = added(
        "copy.review",
        "Review: Copy",
        TaskStatus::Blocked,
        NOW - 400,
        TaskKind::Review,
        "copy",
        2,
    );
    let mut sign_off = task(
        "sign-off",
        "Sign off",
        TaskStatus::AwaitingApproval,
        NOW - 500,
    );
    sign_off.needs_approval = true;
    sign_off.owner = Some("w2".into());
    sign_off.attempt = 1;
    let mut logo = task(
        "logo",
        "Draw the logo",
        TaskStatus::AwaitingApproval,
        NOW - 550,
    );
    logo.needs_approval = true;
    logo.owner = Some("w2".into());
    logo.attempt = 1;
    let mut scan = task("scan", "Scan the archive", TaskStatus::Failed, NOW - 600);
    scan.owner = Some("w2".into());
    scan.attempt = 3;
    scan.last_error = Some("timeout".into());
    scan.recovered_by = Some("scan.recover".into());
    let mut recover = added(
        "scan.recover",
        "Recover: Scan the archive",
        TaskStatus::Ready,
        NOW - 700,
        TaskKind::Recover,
        "scan",
        0,
    );
    recover.notes = Some("timeout".into());
    recover.needs_approval = true;
    let mut layout = task("layout", "Lay out", TaskStatus::Ready, NOW - 800);
    layout.role = Some("writer".into());
    layout.soft = true;
    layout.planned_role = Some("designer".into());
    let publish = task("publish", "Publish", TaskStatus::Blocked, NOW - 850);
    let mut draft = task("draft", "Draft", TaskStatus::Done, NOW - 900);
    draft.owner = Some("w1".into());
    draft.attempt = 1;
    let mut copy = task("copy", "Copy", TaskStatus::Done, NOW - 1_000);
    copy.owner = Some("w1".into());
    copy.attempt = 1;
    let tasks = vec![
        fix,
        review,
        escalate,
        copy_review,
        sign_off,
        logo,
        scan,
        recover,
        layout,
        publish,
        draft,
        copy,
    ];
    let mut nodes: Vec<Node> = tasks
        .iter()
        .map(|t| {
            let mut node = Node::new(t.id.clone(), t.title.clone());
            node.kind = t.kind;
            node.of = t.of.clone();
            node
        })
        .collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let dag = Dag::new(
        "g",
        nodes,
        &[
            ("draft", "draft.review"),
            ("draft.fix-1", "draft.review"),
            ("copy", "copy.review"),
            ("copy.escalate", "copy.review"),
            ("draft.review", "publish"),
            ("copy.review", "publish"),
            // scan's dependents were rewired to its recovery when it took over.
            ("scan.recover", "publish"),
        ],
    );
    (dag, tasks)
}

/// The team plan as one active goal.
pub(crate) fn team_report() -> GoalReport {
    let (dag, tasks) = team();
    report("Team", dag, tasks)
}

/// A title that breaks Mermaid and DOT unless escaped.
pub(crate) const HOSTILE: &str = "say \"hi\"]; end\n[x] --> y #1 <b>&`\\N";

/// A goal id, task ids and a title that need escaping.
pub(crate) fn hostile() -> (Dag, Vec<TaskState>) {
    let nodes = vec![Node::new("end", HOSTILE), Node::new("a-b.c_d", "ok")];
    let dag = Dag::new("g\"x", nodes, &[("end", "a-b.c_d")]);
    let tasks = vec![
        task("end", HOSTILE, TaskStatus::Ready, 0),
        task("a-b.c_d", "ok", TaskStatus::Blocked, 0),
    ];
    (dag, tasks)
}
