//! The Lua scripts (`src/store/lua/`), loaded once per store and invoked by SHA.

use redis::Script;

/// Builds a task script: the shared helpers (`lib.lua`), the helper files it
/// needs, then the script itself (the last file).
macro_rules! task_script {
    ($($file:literal),+) => {
        Script::new(concat!(
            include_str!("../lua/lib.lua"),
            $(include_str!(concat!("../lua/", $file))),+
        ))
    };
}

/// A script that names its keys itself and needs no helpers.
macro_rules! plain_script {
    ($file:literal) => {
        Script::new(include_str!(concat!("../lua/", $file)))
    };
}

/// Every script the Redis backend runs. The goal scripts (lib.lua first) take the
/// keys and arguments lib.lua describes (see `declare.rs`); the others name their
/// keys in their first line.
pub(super) struct Scripts {
    pub(super) write_dag: Script,
    pub(super) claim: Script,
    pub(super) renew: Script,
    pub(super) complete: Script,
    pub(super) complete_and_claim: Script,
    pub(super) fail: Script,
    pub(super) release: Script,
    pub(super) back_off: Script,
    pub(super) held_by: Script,
    pub(super) reap: Script,
    pub(super) drop_task: Script,
    pub(super) retry_task: Script,
    pub(super) elevate: Script,
    pub(super) settle_review: Script,
    pub(super) approve: Script,
    pub(super) reject: Script,
    pub(super) reassign: Script,
    pub(super) plan_failed: Script,
    pub(super) goal_status: Script,
    pub(super) agent_register: Script,
    pub(super) agent_legacy: Script,
    pub(super) guard_take: Script,
    pub(super) guard_release: Script,
    pub(super) agent_swap: Script,
    pub(super) gate_acquire: Script,
    pub(super) gate_renew: Script,
    pub(super) gate_count: Script,
    pub(super) budget_reserve: Script,
    pub(super) budget_settle: Script,
    pub(super) gc_goal: Script,
    pub(super) gc_agent: Script,
    pub(super) goal_branch: Script,
    pub(super) merge_lock: Script,
    pub(super) merge_lock_renew: Script,
    pub(super) merge_lock_release: Script,
    pub(super) merge_conflict: Script,
    pub(super) rerank: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            write_dag: task_script!("write_dag.lua"),
            claim: task_script!("claim_lib.lua", "claim.lua"),
            renew: task_script!("renew.lua"),
            complete: task_script!("merge_lib.lua", "complete_lib.lua", "complete.lua"),
            complete_and_claim: task_script!(
                "claim_lib.lua",
                "merge_lib.lua",
                "complete_lib.lua",
                "complete_and_claim.lua"
            ),
            fail: task_script!("merge_lib.lua", "fail_lib.lua", "team_lib.lua", "fail.lua"),
            release: task_script!("release_lib.lua", "release.lua"),
            back_off: task_script!("release_lib.lua", "back_off.lua"),
            held_by: task_script!("held_by.lua"),
            reap: task_script!("merge_lib.lua", "fail_lib.lua", "reap.lua"),
            drop_task: task_script!("merge_lib.lua", "fail_lib.lua", "drop_task.lua"),
            retry_task: task_script!("retry_task.lua"),
            elevate: task_script!("elevate.lua"),
            settle_review: task_script!(
                "merge_lib.lua",
                "fail_lib.lua",
                "complete_lib.lua",
                "team_lib.lua",
                "settle_review.lua"
            ),
            approve: task_script!("merge_lib.lua", "complete_lib.lua", "approve.lua"),
            reject: task_script!("team_lib.lua", "reject.lua"),
            reassign: task_script!("reassign.lua"),
            plan_failed: task_script!("plan_failed.lua"),
            goal_status: task_script!("goal_status.lua"),
            agent_register: plain_script!("agent_register.lua"),
            agent_legacy: plain_script!("agent_legacy.lua"),
            guard_take: plain_script!("guard_take.lua"),
            guard_release: plain_script!("guard_release.lua"),
            agent_swap: plain_script!("agent_swap.lua"),
            gate_acquire: plain_script!("gate_acquire.lua"),
            gate_renew: plain_script!("gate_renew.lua"),
            gate_count: plain_script!("gate_count.lua"),
            budget_reserve: plain_script!("budget_reserve.lua"),
            budget_settle: plain_script!("budget_settle.lua"),
            gc_goal: task_script!("gc_goal.lua"),
            gc_agent: plain_script!("gc_agent.lua"),
            goal_branch: plain_script!("goal_branch.lua"),
            merge_lock: plain_script!("merge_lock.lua"),
            merge_lock_renew: plain_script!("merge_lock_renew.lua"),
            merge_lock_release: plain_script!("merge_lock_release.lua"),
            merge_conflict: task_script!(
                "merge_lib.lua",
                "fail_lib.lua",
                "team_lib.lua",
                "merge_conflict.lua"
            ),
            rerank: task_script!("rerank.lua"),
        }
    }
}
