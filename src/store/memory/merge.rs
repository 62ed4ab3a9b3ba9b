//! [`MergeStore`] in memory: the rules of `goal_branch.lua`, the merge lock
//! scripts and `merge_conflict.lua`, on [`GoalData`].

use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::{GoalData, MemoryStore, NewTask};
use crate::domain::{
    MAX_MERGES_PER_TASK, MergeConflict, TaskKind, TaskStatus, check_id, merge_id, reserved_suffix,
};
use crate::store::{
    ConflictOutcome, EventKind, GoalBranch, Lease, MergeLock, MergeLockOutcome, MergeStore,
    StoreError, TaskResult, new_token,
};

/// A goal's merge lock: its token, the attempt holding it (task, fence) and
/// when it expires.
pub(super) struct MergeLockEntry {
    token: String,
    task: String,
    fence: u64,
    expires: Instant,
}

impl MergeLockEntry {
    fn live(&self) -> bool {
        self.expires > Instant::now()
    }
}

impl GoalData {
    /// The planned task merge tasks of `subject` are named after: an added
    /// task's id less its reserved suffix, when that is a task (as
    /// merge_conflict.lua).
    fn merge_base(&self, subject: &str) -> String {
        let task = &self.tasks[subject].state;
        if !task.kind.is_work()
            && let Some(suffix) = reserved_suffix(subject).filter(|s| !s.starts_with("merge"))
        {
            let base = &subject[..subject.len() - suffix.len() - 1];
            if self.tasks.contains_key(base) {
                return base.to_string();
            }
        }
        subject.to_string()
    }

    /// A held task's merge conflicted (see [`MergeStore::merge_conflict`]).
    fn conflict(
        &mut self,
        lease: &Lease,
        result: &TaskResult,
        conflict: &MergeConflict,
    ) -> ConflictOutcome {
        let id = lease.task.as_str();
        let entry = &self.tasks[id];
        let subject = match (&entry.state.kind, &entry.state.of) {
            (TaskKind::Merge, Some(of)) => of.clone(),
            _ => id.to_string(),
        };
        let waiting = id == subject || self.waiting_for_merge(id).as_deref() == Some(&subject);
        let base = self.merge_base(&subject);
        let count = self.tasks[&subject].merges;
        let n = self.tasks[&base].merge_names + 1;
        let merge = Some(merge_id(&base, n)).filter(|merge| {
            waiting
                && count < MAX_MERGES_PER_TASK
                && check_id("task id", merge).is_ok()
                && !self.tasks.contains_key(merge)
        });
        let task = self.task_mut(id);
        task.lock = None;
        task.state.lease_expires_ms = None;
        task.state.progress = result.progress.clone();
        task.state.artifacts = result.artifacts.clone();
        let Some(merge) = merge else {
            // Past its bound, the subject fails naming the files (through its
            // merge task, when that is what conflicted).
            if waiting {
                self.fail_for_good(id, conflict.failure());
                return ConflictOutcome::Failed { subject };
            }
            let reason = format!(
                "its merge conflicted, and {subject} no longer waits for it: {}",
                conflict.describe()
            );
            self.fail_for_good(id, reason);
            return ConflictOutcome::Failed {
                subject: id.to_string(),
            };
        };
        let about = &self.tasks[&subject].state;
        let spec = NewTask {
            title: format!("Merge: {}", about.title),
            kind: TaskKind::Merge,
            of: subject.clone(),
            notes: conflict.describe(),
            role: about.role.clone(),
            priority: about.priority,
            cycle: count + 1,
            approval: false,
        };
        self.add_task(&merge, spec, &subject, false);
        self.task_mut(&merge).state.conflict = Some(conflict.clone());
        self.task_mut(&base).merge_names = n;
        let about = self.task_mut(&subject);
        about.merges = count + 1;
        about.merging = Some(merge.clone());
        if id == subject {
            self.set_status(id, TaskStatus::Blocked);
            self.wait_for(id, &merge, false);
        } else {
            // The conflicting merge task is taken over by the next one, which
            // the subject waits for instead.
            self.supersede(
                id,
                &merge,
                format!("its merge conflicted too: {}", conflict.describe()),
            );
            for edge in self.dag.edges.iter_mut() {
                if edge.source == id && edge.target == subject {
                    edge.source = merge.clone();
                }
            }
            self.dag.edges.sort();
        }
        ConflictOutcome::Merging {
            task: merge,
            subject,
        }
    }
}

#[async_trait]
impl MergeStore for MemoryStore {
    async fn set_goal_branch(
        &self,
        goal: &str,
        branch: &GoalBranch,
    ) -> Result<GoalBranch, StoreError> {
        let mut state = self.lock();
        let data = state
            .goals
            .get_mut(goal)
            .ok_or_else(|| StoreError::UnknownGoal {
                goal: goal.to_string(),
            })?;
        Ok(data
            .status
            .branch
            .get_or_insert_with(|| branch.clone())
            .clone())
    }

    async fn acquire_merge_lock(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<MergeLockOutcome, StoreError> {
        let mut state = self.lock();
        state.held(lease)?;
        let expires = Instant::now() + ttl;
        let lock = |token: &str| {
            MergeLockOutcome::Acquired(MergeLock {
                goal: lease.goal.clone(),
                task: lease.task.clone(),
                token: token.to_string(),
            })
        };
        match state
            .merge_locks
            .get_mut(&lease.goal)
            .filter(|held| held.live())
        {
            // The same attempt asking again gets the lock it holds.
            Some(held) if held.task == lease.task && held.fence == lease.fence => {
                held.expires = expires;
                Ok(lock(&held.token))
            }
            Some(held) => Ok(MergeLockOutcome::Busy {
                holder: held.task.clone(),
                expires_in: held.expires.saturating_duration_since(Instant::now()),
            }),
            None => {
                let token = new_token();
                state.merge_locks.insert(
                    lease.goal.clone(),
                    MergeLockEntry {
                        token: token.clone(),
                        task: lease.task.clone(),
                        fence: lease.fence,
                        expires,
                    },
                );
                Ok(lock(&token))
            }
        }
    }

    async fn renew_merge_lock(&self, lock: &MergeLock, ttl: Duration) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.merge_locks.get_mut(&lock.goal) {
            Some(held) if held.live() && held.token == lock.token => {
                held.expires = Instant::now() + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_merge_lock(&self, lock: &MergeLock) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let ours = state
            .merge_locks
            .get(&lock.goal)
            .is_some_and(|held| held.live() && held.token == lock.token);
        if ours {
            state.merge_locks.remove(&lock.goal);
        }
        Ok(ours)
    }

    async fn merge_conflict(
        &self,
        lease: &Lease,
        result: &TaskResult,
        conflict: &MergeConflict,
    ) -> Result<ConflictOutcome, StoreError> {
        let conflict = conflict.capped();
        let mut state = self.lock();
        let Some(data) = state.goals.get_mut(&lease.goal) else {
            return Err(StoreError::lease_lost(lease));
        };
        if !data.holds(lease) {
            // The same request sent again gets the answer it had.
            return match data
                .tasks
                .get(&lease.task)
                .and_then(|t| t.conflicted.as_ref())
            {
                Some((token, fence, outcome)) if *token == lease.token && *fence == lease.fence => {
                    Ok(outcome.clone())
                }
                _ => Err(StoreError::lease_lost(lease)),
            };
        }
        let outcome = data.conflict(lease, result, &conflict);
        data.task_mut(&lease.task).conflicted =
            Some((lease.token.clone(), lease.fence, outcome.clone()));
        drop(state);
        match &outcome {
            ConflictOutcome::Merging { .. } => self.emit(&lease.goal, EventKind::Ready),
            ConflictOutcome::Failed { .. } => self.emit_failed(&lease.goal),
        }
        Ok(outcome)
    }
}
