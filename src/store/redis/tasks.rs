//! [`TaskStore`] on Redis: claim, renew, complete, fail, release and reap are
//! each one script (`claim.lua`, `complete.lua`…); reads are plain `HGETALL`s.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::AsyncCommands;

use super::declare::{GoalCall, Learn};
use super::{RedisStore, artifacts_json, flag, is_lost, millis, parse_status, unexpected};
use crate::domain::merge::capped_diffstat;
use crate::domain::rank::EstimateSource;
use crate::domain::{TaskKind, TaskState, recovery_id};
use crate::store::tasks::rank_of_ready_score;
use crate::store::{
    ClaimOutcome, ClaimScope, CompleteOutcome, FailOutcome, GoalState, Lease, ReapOutcome,
    Recovery, StoreError, TaskResult, TaskStore, keys, new_token,
};

/// Reads a claim reply (see claim_lib.lua); `token` is the one the script stored.
/// The claimed task's dependents are kept as a hint for its completion, the ids
/// sent back for the next claims of `role`.
fn claim_reply(
    store: &RedisStore,
    mut reply: Vec<String>,
    (goal, agent, role): (&str, &str, Option<&str>),
    token: String,
) -> Result<ClaimOutcome, StoreError> {
    match reply.first().map(String::as_str) {
        Some("claimed") if reply.len() >= 7 => {
            let hints = reply.split_off(7);
            store.hints.claim_hints(goal, role, hints);
            let needs_approval = reply[5] == "1";
            let bad = || unexpected("claim", &reply);
            let dependents = match reply[4].as_str() {
                "" => Vec::new(),
                json => serde_json::from_str(json).map_err(|_| bad())?,
            };
            let lease = Lease {
                goal: goal.to_string(),
                task: reply[1].clone(),
                agent: agent.to_string(),
                token,
                fence: reply[2].parse().map_err(|_| bad())?,
                attempt: reply[3].parse().map_err(|_| bad())?,
                rank_ms: reply[6].parse().ok(),
            };
            store
                .hints
                .claimed(goal, &lease.task, dependents, needs_approval);
            Ok(ClaimOutcome::Claimed(lease))
        }
        Some("empty") => Ok(ClaimOutcome::Empty {
            retry_in: reply
                .get(1)
                .and_then(|ms| ms.parse::<i64>().ok())
                .map(|ms| Duration::from_millis(ms.max(0) as u64)),
            goal_state: GoalState::Active,
        }),
        Some("inactive") => Ok(ClaimOutcome::Empty {
            retry_in: None,
            goal_state: reply
                .get(1)
                .and_then(|s| GoalState::parse(s))
                .ok_or_else(|| unexpected("claim", &reply))?,
        }),
        Some("no_goal") => Err(StoreError::UnknownGoal {
            goal: goal.to_string(),
        }),
        _ => Err(unexpected("claim", &reply)),
    }
}

/// A result's commit and its capped diffstat, as the completion scripts take
/// them (`""`: none).
pub(super) fn merged(result: &TaskResult) -> (&str, String) {
    match result.commit.as_deref() {
        Some(commit) if !commit.is_empty() => (
            commit,
            capped_diffstat(result.diffstat.as_deref().unwrap_or("")),
        ),
        _ => ("", String::new()),
    }
}

/// For a merge task's id (`P.merge`, `P.merge-2`…), the task it most likely
/// merges (P), declared up front; `need` covers a wrong guess.
pub(super) fn merge_guess(task: &str) -> Option<String> {
    let merge = crate::domain::reserved_suffix(task)?.starts_with("merge");
    merge.then(|| super::team::base_of(task).to_string())
}

/// Reads a completion reply (see complete_lib.lua) once the lease was found live.
pub(super) fn complete_reply(mut reply: Vec<String>) -> Result<CompleteOutcome, StoreError> {
    if reply.first().map(String::as_str) != Some("ok") || reply.len() < 2 {
        return Err(unexpected("complete", &reply));
    }
    let goal_complete = reply[1] == "1";
    let awaiting_approval = reply[1] == "awaiting";
    let mut promoted = reply.split_off(2);
    promoted.sort();
    Ok(CompleteOutcome {
        promoted,
        goal_complete,
        awaiting_approval,
    })
}

/// Reads a task hash (`HGETALL task:{G}:T`) into a [`TaskState`].
fn task_from_fields(
    goal: &str,
    id: &str,
    fields: &HashMap<String, String>,
) -> Result<TaskState, StoreError> {
    let corrupt = |field: &str, detail: String| StoreError::Corrupt {
        what: format!("{}.{field}", keys::task(goal, id)),
        detail,
    };
    let text = |field: &str| fields.get(field).cloned();
    fn number<T: std::str::FromStr>(
        fields: &HashMap<String, String>,
        field: &str,
    ) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        fields
            .get(field)
            .map(|v| v.parse::<T>().map_err(|e| format!("{v:?}: {e}")))
            .transpose()
    }
    macro_rules! num {
        ($field:literal) => {
            number(fields, $field).map_err(|e| corrupt($field, e))?
        };
    }
    let status = parse_status(fields.get("status").map(String::as_str).unwrap_or(""))?;
    let kind = match fields.get("kind") {
        Some(kind) => TaskKind::parse(kind).ok_or_else(|| corrupt("kind", format!("{kind:?}")))?,
        None => TaskKind::Work,
    };
    let flag = |field: &str| fields.get(field).is_some_and(|v| v == "1");
    let nonempty = |field: &str| text(field).filter(|v| !v.is_empty());
    let artifacts = match fields.get("artifacts") {
        Some(json) => {
            serde_json::from_str(json).map_err(|e| corrupt("artifacts", e.to_string()))?
        }
        None => Vec::new(),
    };
    Ok(TaskState {
        goal: goal.to_string(),
        id: id.to_string(),
        title: text("title").unwrap_or_default(),
        role: text("role"),
        priority: num!("priority").unwrap_or(0),
        status,
        owner: text("owner"),
        attempt: num!("attempt").unwrap_or(0),
        fence: num!("fence").unwrap_or(0),
        // Scripts overwrite these with 0 rather than delete them: 0 is unset.
        lease_expires_ms: num!("lease_expires").filter(|ms| *ms != 0),
        progress: text("progress").unwrap_or_default(),
        artifacts,
        last_error: text("last_error"),
        pending_deps: num!("pending").unwrap_or(0),
        retry_at_ms: num!("retry_at").filter(|ms| *ms != 0),
        created_ms: num!("created_at").unwrap_or(0),
        updated_ms: num!("updated_at").unwrap_or(0),
        started_ms: num!("started_at"),
        finished_ms: num!("finished_at"),
        kind,
        of: nonempty("of"),
        cycle: num!("cycle").unwrap_or(0),
        notes: nonempty("notes"),
        needs_approval: flag("approval"),
        soft: flag("soft"),
        planned_role: text("planned_role"),
        recovered_by: text("recovered_by"),
        commit: nonempty("commit"),
        diffstat: nonempty("diffstat"),
        conflict: match fields.get("conflict") {
            Some(json) => {
                Some(serde_json::from_str(json).map_err(|e| corrupt("conflict", e.to_string()))?)
            }
            None => None,
        },
        estimate_ms: num!("estimate"),
        estimate_source: fields
            .get("estimate_from")
            .map(|v| {
                EstimateSource::parse(v).ok_or_else(|| corrupt("estimate_from", format!("{v:?}")))
            })
            .transpose()?,
        rank_ms: num!("rank"),
    })
}

impl RedisStore {
    /// The end of a call that finishes (or loses) a held lease: the lease's hints
    /// are dropped, and a `lost` answer becomes [`StoreError::LeaseLost`].
    pub(super) fn finished(
        &self,
        lease: &Lease,
        reply: Result<Vec<String>, StoreError>,
    ) -> Result<Vec<String>, StoreError> {
        self.hints.finished(&lease.goal, &lease.task, &[]);
        match reply {
            Ok(reply) if is_lost(&reply) => Err(StoreError::lease_lost(lease)),
            other => other,
        }
    }

    /// A claim's script call: the ids this process expects the claim to take, the
    /// agent's own role declared, hints refreshed from a `need` answer.
    fn claim_call<'a>(
        &self,
        goal: &'a str,
        scope: ClaimScope<'_>,
        extra: &[&str],
        args: Vec<String>,
    ) -> GoalCall<'a> {
        let mut tasks: Vec<String> = extra.iter().map(|t| t.to_string()).collect();
        tasks.extend(self.hints.claim(goal, scope.role));
        GoalCall {
            goal,
            tasks,
            roles: scope.role.map(|r| vec![r.to_string()]).unwrap_or_default(),
            args,
            learn: Learn::Claim,
            durable: false,
        }
    }
}

#[async_trait]
impl TaskStore for RedisStore {
    async fn claim_preferred(
        &self,
        goal: &str,
        agent: &str,
        scope: ClaimScope<'_>,
        ttl: Duration,
        preferred: Option<&str>,
    ) -> Result<ClaimOutcome, StoreError> {
        let token = new_token();
        let role = scope.role;
        // claim.lua takes '' for no role and no preferred task.
        let args = [
            agent,
            role.unwrap_or(""),
            &millis(ttl),
            &token,
            preferred.unwrap_or(""),
            flag(scope.roleless),
        ];
        let call = self.claim_call(
            goal,
            scope,
            preferred.as_slice(),
            args.map(str::to_string).to_vec(),
        );
        let reply = self.run_goal(&self.scripts.claim, call).await?;
        claim_reply(self, reply, (goal, agent, role), token)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        self.run_lease_script(&self.scripts.renew, lease, &[&millis(ttl)])
            .await
            .map(drop)
    }

    async fn complete(
        &self,
        lease: &Lease,
        result: &TaskResult,
    ) -> Result<CompleteOutcome, StoreError> {
        let fence = lease.fence.to_string();
        // A fresh id per request: a resend of this one is answered ok again.
        let request = new_token();
        let (commit, diffstat) = merged(result);
        let mut call = GoalCall::new(
            &lease.goal,
            &[&lease.task],
            &[
                &lease.task,
                &lease.token,
                &fence,
                &result.progress,
                &artifacts_json(result),
                &request,
                self.hints.approval(&lease.goal, &lease.task),
                commit,
                &diffstat,
            ],
        );
        call.tasks
            .extend(self.hints.dependents(&lease.goal, &lease.task));
        call.tasks.extend(merge_guess(&lease.task));
        call.durable = true;
        let reply = self.run_goal(&self.scripts.complete, call).await;
        let reply = self.finished(lease, reply)?;
        let outcome = complete_reply(reply)?;
        self.hints
            .finished(&lease.goal, &lease.task, &outcome.promoted);
        Ok(outcome)
    }

    async fn complete_and_claim(
        &self,
        lease: &Lease,
        result: &TaskResult,
        scope: ClaimScope<'_>,
        ttl: Duration,
    ) -> Result<(CompleteOutcome, ClaimOutcome), StoreError> {
        let token = new_token();
        let role = scope.role;
        let fence = lease.fence.to_string();
        let (commit, diffstat) = merged(result);
        let args = [
            &lease.task,
            &lease.token,
            &fence,
            &result.progress,
            &artifacts_json(result),
            &lease.agent,
            role.unwrap_or(""),
            &millis(ttl),
            &token,
            flag(scope.roleless),
            self.hints.approval(&lease.goal, &lease.task),
            commit,
            &diffstat,
        ];
        let mut held = vec![lease.task.clone()];
        held.extend(self.hints.dependents(&lease.goal, &lease.task));
        held.extend(merge_guess(&lease.task));
        let held: Vec<&str> = held.iter().map(String::as_str).collect();
        let mut call = self.claim_call(
            &lease.goal,
            scope,
            &held,
            args.map(|a| a.to_string()).to_vec(),
        );
        // A `need` of the completion names dependents, not claim hints.
        call.learn = Learn::Nothing;
        call.durable = true;
        let mut replies: Vec<Vec<String>> = self
            .run_goal(&self.scripts.complete_and_claim, call)
            .await?;
        match replies.len() {
            1 if is_lost(&replies[0]) => {
                self.hints.finished(&lease.goal, &lease.task, &[]);
                Err(StoreError::lease_lost(lease))
            }
            2 => {
                let claimed = replies.pop().expect("two replies");
                let completed = complete_reply(replies.pop().expect("two replies"))?;
                self.hints
                    .finished(&lease.goal, &lease.task, &completed.promoted);
                let claimed = if claimed.first().map(String::as_str) == Some("need") {
                    // Completed; the claim needed keys this call did not declare.
                    self.hints.learn_claim(&lease.goal, role, &claimed);
                    self.claim_preferred(&lease.goal, &lease.agent, scope, ttl, None)
                        .await?
                } else {
                    claim_reply(self, claimed, (&lease.goal, &lease.agent, role), token)?
                };
                Ok((completed, claimed))
            }
            _ => Err(unexpected("complete_and_claim", &replies.concat())),
        }
    }

    async fn fail(
        &self,
        lease: &Lease,
        error: &str,
        retryable: bool,
        backoff: Duration,
        recovery: Recovery<'_>,
    ) -> Result<FailOutcome, StoreError> {
        let (mode, role) = match recovery {
            Recovery::Never => ("0", ""),
            Recovery::SameRole => ("1", ""),
            Recovery::Role(role) => ("2", role),
        };
        let fence = lease.fence.to_string();
        let backoff_ms = millis(backoff);
        let args = [
            lease.task.as_str(),
            &lease.token,
            &fence,
            error,
            flag(retryable),
            &backoff_ms,
            mode,
            role,
        ];
        // Declared up front: the recovery this failure may add, or the task a
        // failing recovery recovers (its error joins this one).
        let recover = recovery_id(&lease.task);
        let recovered = lease.task.strip_suffix(".recover");
        let mut tasks = vec![lease.task.as_str()];
        match (recovery, recovered) {
            (_, Some(recovered)) => tasks.push(recovered),
            (Recovery::Never, None) => {}
            (_, None) => tasks.push(&recover),
        }
        let mut call = GoalCall::new(&lease.goal, &tasks, &args);
        call.tasks.extend(merge_guess(&lease.task));
        if !role.is_empty() {
            call.roles.push(role.to_string());
        }
        // A recovery's script reads the dependents (a review of the task reviews
        // the recovery); `need` covers a hint that is missing.
        call.tasks
            .extend(self.hints.dependents(&lease.goal, &lease.task));
        let reply: Result<Vec<String>, StoreError> = self.run_goal(&self.scripts.fail, call).await;
        let reply = self.finished(lease, reply)?;
        match reply.first().map(String::as_str) {
            Some("retrying") => Ok(FailOutcome::Retrying { after: backoff }),
            Some("failed") => Ok(FailOutcome::Failed),
            Some("recovering") if reply.len() == 2 => Ok(FailOutcome::Recovering {
                task: reply[1].clone(),
            }),
            _ => Err(unexpected("fail", &reply)),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let reply = self
            .run_lease_script(&self.scripts.release, lease, &[])
            .await;
        self.finished(lease, reply).map(drop)
    }

    async fn back_off(
        &self,
        lease: &Lease,
        wait: Duration,
        reason: &str,
    ) -> Result<(), StoreError> {
        let reply = self
            .run_lease_script(&self.scripts.back_off, lease, &[&millis(wait), reason])
            .await;
        self.finished(lease, reply).map(drop)
    }

    async fn held_by(&self, goal: &str, agent: &str) -> Result<Option<Lease>, StoreError> {
        let call = GoalCall {
            tasks: self.hints.running(goal),
            learn: Learn::Running,
            ..GoalCall::new(goal, &[], &[agent])
        };
        let reply: Vec<String> = self.run_goal(&self.scripts.held_by, call).await?;
        if reply.is_empty() {
            return Ok(None);
        }
        let number = |i: usize| reply.get(i).and_then(|v| v.parse().ok());
        match (reply.first(), reply.get(1), number(2), number(3)) {
            (Some(task), Some(token), Some(fence), Some(attempt)) => Ok(Some(Lease {
                goal: goal.to_string(),
                task: task.clone(),
                agent: agent.to_string(),
                token: token.clone(),
                fence,
                attempt: attempt as u32,
                rank_ms: None,
            })),
            _ => Err(unexpected("held_by", &reply)),
        }
    }

    async fn reap(&self, goal: &str) -> Result<ReapOutcome, StoreError> {
        let call = GoalCall {
            tasks: self.hints.running(goal),
            learn: Learn::Running,
            ..GoalCall::new(goal, &[], &[])
        };
        let (mut requeued, mut failed): (Vec<String>, Vec<String>) =
            self.run_goal(&self.scripts.reap, call).await?;
        requeued.sort();
        failed.sort();
        Ok(ReapOutcome { requeued, failed })
    }
    async fn task(&self, goal: &str, task: &str) -> Result<Option<TaskState>, StoreError> {
        let fields: HashMap<String, String> =
            self.conn.clone().hgetall(keys::task(goal, task)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        task_from_fields(goal, task, &fields).map(Some)
    }

    async fn best_ready(
        &self,
        goal: &str,
        scope: ClaimScope<'_>,
    ) -> Result<Option<u64>, StoreError> {
        let roleless = scope.roleless.then(|| keys::ready(goal, None));
        let role = scope
            .role
            .filter(|r| !r.is_empty())
            .map(|r| keys::ready(goal, Some(r)));
        let mut best: Option<i64> = None;
        // Two reads, not a script: a hint may be stale by the time it is used anyway.
        for key in [roleless, role].into_iter().flatten() {
            let first: Vec<(String, f64)> = self.conn.clone().zrange_withscores(key, 0, 0).await?;
            if let Some((_, score)) = first.first() {
                best = Some(best.map_or(*score as i64, |b| b.min(*score as i64)));
            }
        }
        Ok(best.map(rank_of_ready_score))
    }

    async fn tasks(&self, goal: &str) -> Result<Vec<TaskState>, StoreError> {
        let mut ids: Vec<String> = self.conn.clone().hkeys(keys::dag_nodes(goal)).await?;
        ids.sort();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let all = self
            .hgetall_each(ids.iter().map(|id| keys::task(goal, id)))
            .await?;
        ids.iter()
            .zip(&all)
            .filter(|(_, fields)| !fields.is_empty())
            .map(|(id, fields)| task_from_fields(goal, id, fields))
            .collect()
    }
}
