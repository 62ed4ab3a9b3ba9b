//! [`GoalStore`] on Redis: `write_dag.lua`, `plan_failed.lua` and the read-only
//! `goal_status.lua`; the token and money budgets' `budget_reserve.lua` and
//! `budget_settle.lua` (one key each, `goal:{G}`); the goal list is the `goals`
//! set (planned goals, goals that failed to plan, and drafts: goals that only
//! spent tokens), the plan `dag:{G}:*`.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use redis::AsyncCommands;
use tokio::sync::broadcast;

use super::declare::GoalCall;
use super::{RedisStore, unexpected};
use crate::domain::rank::{StoredRank, plan_ranks};
use crate::domain::{Assignment, Dag, Edge, Node, TaskStatus, ValidatedDag};
use crate::store::{
    Admission, BudgetAsk, CallCost, GoalBackoff, GoalBranch, GoalSpending, GoalState, GoalStatus,
    GoalStore, StoreError, StoreEvent, WriteDagOptions, WriteDagOutcome, keys,
};

/// The plan as `write_dag.lua` takes it: per node its JSON, the fields the task
/// hash keeps, and its edges both ways.
fn plan_json(dag: &ValidatedDag, ranked: bool) -> String {
    // A goal planned without ranking keeps no ranks: none are computed.
    let ranks = if ranked {
        plan_ranks(dag)
    } else {
        BTreeMap::new()
    };
    let plan: Vec<serde_json::Value> = dag
        .dag()
        .nodes
        .iter()
        .map(|node| {
            let mut json = serde_json::json!({
                "id": node.id,
                "node": serde_json::to_string(node).expect("a node serializes"),
                "title": node.title,
                "priority": node.priority,
                "role": node.effective_role().unwrap_or(""),
                "kind": node.kind.as_str(),
                "of": node.of.as_deref().unwrap_or(""),
                "approval": node.approval,
                "soft": node.assignment == Assignment::Soft,
                "deps": dag.deps_of(&node.id),
                "dependents": dag.dependents_of(&node.id),
            });
            if let Some(rank) = ranks.get(&node.id) {
                json["rank"] = rank.rank_ms.into();
                json["estimate"] = rank.estimate_ms.into();
                json["estimate_from"] = rank.source.as_str().into();
            }
            json
        })
        .collect();
    serde_json::Value::Array(plan).to_string()
}

/// Reads the goal hash and the per-state counts `goal_status.lua` derived (in
/// [`TaskStatus::ALL`] order) into a [`GoalStatus`].
fn goal_from_fields(
    goal: &str,
    fields: &HashMap<String, String>,
    counts: &[i64],
) -> Result<GoalStatus, StoreError> {
    let number = |field: &str| -> u64 {
        fields
            .get(field)
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| v.max(0) as u64)
            .unwrap_or(0)
    };
    // A goal hash without a status only holds the tokens spent planning it.
    let state_text = fields.get("status").map(String::as_str).unwrap_or("draft");
    let state = GoalState::parse(state_text).ok_or_else(|| StoreError::Corrupt {
        what: format!("{}.status", keys::goal(goal)),
        detail: format!("{state_text:?}"),
    })?;
    if counts.len() != TaskStatus::ALL.len() {
        return Err(unexpected("goal_status", &[format!("{counts:?}")]));
    }
    let counts: BTreeMap<TaskStatus, u64> = TaskStatus::ALL
        .into_iter()
        .zip(counts.iter().map(|&n| n.max(0) as u64))
        .collect();
    Ok(GoalStatus {
        goal: goal.to_string(),
        state,
        title: fields.get("title").cloned().unwrap_or_default(),
        fingerprint: fields.get("fingerprint").cloned().unwrap_or_default(),
        source: fields.get("source").cloned().unwrap_or_default(),
        max_attempts: number("max_attempts") as u32,
        counts,
        total: number("total"),
        created_ms: number("created_at"),
        finished_ms: fields.get("finished_at").map(|_| number("finished_at")),
        last_error: fields.get("last_error").cloned(),
        tokens: number("tokens"),
        cost_usd: fields
            .get("cost_usd")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        ready_by_role: BTreeMap::new(),
        superseded: number("superseded"),
        backoff: fields.get("backoff_until").map(|_| GoalBackoff {
            until_ms: number("backoff_until"),
            reason: fields.get("backoff_reason").cloned().unwrap_or_default(),
        }),
        branch: fields.get("branch").map(|branch| GoalBranch {
            branch: branch.clone(),
            repository: fields.get("repository").cloned().unwrap_or_default(),
        }),
        ranked: fields.get("ranking").is_none_or(|v| v != "off"),
    })
}

/// Reads `dag:{G}:nodes` and `dag:{G}:deps` back into a plan: nodes by id, edges sorted.
fn dag_from_fields(
    goal: &str,
    nodes: &HashMap<String, String>,
    deps: &HashMap<String, String>,
) -> Result<Dag, StoreError> {
    let corrupt = |key: String, e: serde_json::Error| StoreError::Corrupt {
        what: key,
        detail: e.to_string(),
    };
    let mut nodes = nodes
        .iter()
        .map(|(id, json)| {
            serde_json::from_str::<Node>(json)
                .map_err(|e| corrupt(keys::dag_nodes(goal) + "." + id, e))
        })
        .collect::<Result<Vec<Node>, _>>()?;
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    let mut edges = Vec::new();
    for (target, json) in deps {
        let sources: Vec<String> = serde_json::from_str(json)
            .map_err(|e| corrupt(keys::dag_deps(goal) + "." + target, e))?;
        edges.extend(sources.into_iter().map(|source| Edge {
            source,
            target: target.clone(),
        }));
    }
    edges.sort();
    Ok(Dag {
        goal_id: goal.to_string(),
        nodes,
        edges,
    })
}

impl RedisStore {
    /// Lists a goal whose hash holds only spending (`draft` is 1: a goal not
    /// planned yet, or spent on after gc removed it), so that gc finds it.
    /// Single-key and idempotent, so outside the budget scripts (`goals` is
    /// another slot).
    async fn list_draft(&self, goal: &str, draft: i64) -> Result<(), StoreError> {
        if draft == 1 {
            let _: () = self.conn.clone().sadd(keys::GOALS, goal).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl GoalStore for RedisStore {
    async fn write_dag(
        &self,
        dag: &ValidatedDag,
        options: &WriteDagOptions,
    ) -> Result<WriteDagOutcome, StoreError> {
        let goal = dag.goal_id();
        let attempts = options.max_attempts.max(1).to_string();
        let expected = options.expected.as_deref().unwrap_or("");
        let nodes = &dag.dag().nodes;
        let tasks: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        let mut call = GoalCall::new(
            goal,
            &tasks,
            &[
                dag.fingerprint(),
                &options.title,
                &attempts,
                expected,
                &plan_json(dag, options.ranked),
                &options.source,
                if options.ranked { "" } else { "off" },
            ],
        );
        call.roles = nodes
            .iter()
            .filter_map(|n| n.effective_role())
            .map(str::to_string)
            .collect();
        let reply: Vec<String> = self.run_goal(&self.scripts.write_dag, call).await?;
        let outcome = match reply.first().map(String::as_str) {
            Some("created") => WriteDagOutcome::Created,
            Some("replaced") => WriteDagOutcome::Replaced,
            Some("unchanged") => WriteDagOutcome::Unchanged,
            Some("conflict") => {
                return Err(StoreError::PlanConflict {
                    goal: goal.to_string(),
                    existing: reply.get(1).cloned().unwrap_or_default(),
                });
            }
            _ => return Err(unexpected("write_dag", &reply)),
        };
        // Single-key and idempotent, so outside the script: a crash in between is
        // healed by the next write, which finds the plan unchanged and adds it again.
        let _: () = self.conn.clone().sadd(keys::GOALS, goal).await?;
        Ok(outcome)
    }

    async fn rerank(
        &self,
        goal: &str,
        fingerprint: &str,
        typical_ms: u64,
        ranks: &BTreeMap<String, StoredRank>,
    ) -> Result<usize, StoreError> {
        let tasks: Vec<&str> = ranks.keys().map(String::as_str).collect();
        let list: Vec<(&str, u64, u64, &str)> = ranks
            .iter()
            .map(|(id, r)| (id.as_str(), r.rank_ms, r.estimate_ms, r.source.as_str()))
            .collect();
        let list = serde_json::to_string(&list).expect("ranks serialize");
        let typical = typical_ms.to_string();
        let call = GoalCall::new(goal, &tasks, &[fingerprint, &typical, &list]);
        let reply: Vec<String> = self.run_goal(&self.scripts.rerank, call).await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(reply.get(1).and_then(|n| n.parse().ok()).unwrap_or(0)),
            Some("stale") => Ok(0),
            _ => Err(unexpected("rerank", &reply)),
        }
    }

    async fn reserve_budget(
        &self,
        goal: &str,
        reservation: &str,
        ask: &BudgetAsk,
    ) -> Result<Admission, StoreError> {
        let (status, spent, reserved, draft, usd_spent, usd_reserved, usd): (
            i64,
            u64,
            u64,
            i64,
            f64,
            f64,
            f64,
        ) = self
            .scripts
            .budget_reserve
            .key(keys::goal(goal))
            .arg(reservation)
            .arg(ask.tokens)
            .arg(ask.token_budget.map(|b| b.to_string()).unwrap_or_default())
            .arg(super::millis(ask.ttl))
            .arg(ask.usd_budget.map(|b| b.to_string()).unwrap_or_default())
            .arg(ask.usd_default.to_string())
            .invoke_async(&mut self.conn.clone())
            .await?;
        self.list_draft(goal, draft).await?;
        Ok(match status {
            1 => Admission::Reserved,
            0 => Admission::Tokens { spent, reserved },
            _ => Admission::Money {
                spent: usd_spent,
                reserved: usd_reserved,
                estimate: usd,
            },
        })
    }

    async fn settle_budget(
        &self,
        goal: &str,
        reservation: &str,
        tokens: u64,
        cost: CallCost,
    ) -> Result<u64, StoreError> {
        let (cost_usd, mode) = match cost {
            CallCost::Untracked(usd) => (usd, ""),
            CallCost::Priced(usd) => (usd, "priced"),
            CallCost::Unknown => (0.0, "unknown"),
        };
        let cost_usd = if cost_usd.is_finite() {
            cost_usd.max(0.0)
        } else {
            0.0
        };
        let (total, draft): (u64, i64) = self
            .scripts
            .budget_settle
            .key(keys::goal(goal))
            .arg(reservation)
            .arg(tokens)
            .arg(cost_usd.to_string())
            .arg(mode)
            .invoke_async(&mut self.conn.clone())
            .await?;
        self.list_draft(goal, draft).await?;
        Ok(total)
    }

    async fn goal_spending(&self, goal: &str) -> Result<GoalSpending, StoreError> {
        // One key, read only: no script needed.
        let (unknown, calls, usd): (Option<u64>, Option<u64>, Option<f64>) = redis::cmd("HMGET")
            .arg(keys::goal(goal))
            .arg(&["cost_unknown", "priced_calls", "priced_usd"])
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(GoalSpending {
            cost_unknown: unknown.unwrap_or(0),
            priced_calls: calls.unwrap_or(0),
            priced_usd: usd.unwrap_or(0.0),
        })
    }

    async fn fail_unplanned_goal(&self, goal: &str, reason: &str) -> Result<(), StoreError> {
        let _: Vec<String> = self
            .run_task_script(&self.scripts.plan_failed, goal, &[], &[reason])
            .await?;
        let _: () = self.conn.clone().sadd(keys::GOALS, goal).await?;
        Ok(())
    }

    async fn goal_status(&self, goal: &str) -> Result<Option<GoalStatus>, StoreError> {
        // A read: it subscribes to nothing, and keeps the roles it learned only
        // while the goal is open (a dashboard reads every goal, and any name).
        let call = GoalCall::new(goal, &[], &[]);
        let (fields, counts, by_role): (HashMap<String, String>, Vec<i64>, Vec<String>) = self
            .run_goal_unwatched(&self.scripts.goal_status, call)
            .await?;
        if fields.is_empty() {
            self.hints.forget(goal);
            return Ok(None);
        }
        let mut status = goal_from_fields(goal, &fields, &counts)?;
        status.ready_by_role = by_role
            .chunks(2)
            .filter_map(|pair| match pair {
                [role, n] => Some((role.clone(), n.parse::<u64>().ok()?)),
                _ => None,
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        if status.state.is_terminal() {
            self.hints.forget(goal);
        }
        Ok(Some(status))
    }

    async fn goals(&self) -> Result<Vec<String>, StoreError> {
        let goals = self.sorted_members(keys::GOALS).await?;
        // Hints of a goal no longer listed are of one collected meanwhile.
        self.hints.keep_only(&goals);
        Ok(goals)
    }

    async fn dag(&self, goal: &str) -> Result<Option<Dag>, StoreError> {
        let (nodes, deps): (HashMap<String, String>, HashMap<String, String>) = redis::pipe()
            .hgetall(keys::dag_nodes(goal))
            .hgetall(keys::dag_deps(goal))
            .query_async(&mut self.conn.clone())
            .await?;
        if nodes.is_empty() {
            return Ok(None);
        }
        dag_from_fields(goal, &nodes, &deps).map(Some)
    }

    fn events(&self) -> broadcast::Receiver<StoreEvent> {
        self.subscribe()
    }
}
