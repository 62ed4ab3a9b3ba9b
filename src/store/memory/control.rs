//! [`ControlStore`] in memory: DROP-TASK, RETRY-TASK and ELEVATE.

use async_trait::async_trait;

use super::{MemoryStore, now_ms};
use crate::domain::{TaskKind, TaskStatus};
use crate::store::control::{DROPPING, RETRYING};
use crate::store::{ControlStore, EventKind, GoalState, StoreError};

#[async_trait]
impl ControlStore for MemoryStore {
    async fn drop_task(&self, goal: &str, task: &str, reason: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        let data = state.goal_with_task(goal, task)?;
        match data.tasks[task].state.status {
            TaskStatus::Done => Err(StoreError::wrong_state(
                goal,
                task,
                TaskStatus::Done,
                DROPPING,
            )),
            TaskStatus::Failed => Ok(()),
            _ => {
                data.unindex_ready(task);
                data.task_mut(task).state.fence += 1;
                data.fail_for_good(task, reason.to_string());
                drop(state);
                self.emit_failed(goal);
                Ok(())
            }
        }
    }

    async fn retry_task(&self, goal: &str, task: &str) -> Result<TaskStatus, StoreError> {
        let mut state = self.lock();
        let data = state.goal_with_task(goal, task)?;
        let current = data.tasks[task].state.status;
        if current != TaskStatus::Failed {
            return Err(StoreError::wrong_state(goal, task, current, RETRYING));
        }
        if let Some(by) = data.tasks[task].state.recovered_by.clone() {
            return Err(StoreError::Superseded {
                goal: goal.to_string(),
                task: task.to_string(),
                by,
            });
        }
        let to = if data.tasks[task].state.pending_deps > 0 {
            TaskStatus::Blocked
        } else {
            TaskStatus::Ready
        };
        data.set_status(task, to);
        let entry = data.task_mut(task);
        entry.state.attempt = 0;
        entry.state.finished_ms = None;
        entry.state.retry_at_ms = None;
        entry.state.owner = None;
        if entry.state.kind == TaskKind::Review {
            // A person's retry grants the review its cycles again.
            entry.state.cycle = 0;
        }
        if to == TaskStatus::Ready {
            data.index_ready(task);
        }
        if data.status.count(TaskStatus::Failed) == data.status.superseded {
            data.status.state = GoalState::Active;
            data.status.finished_ms = None;
        }
        drop(state);
        self.emit(goal, EventKind::Ready);
        Ok(to)
    }

    async fn elevate(&self, goal: &str, task: &str, priority: i32) -> Result<(), StoreError> {
        let mut state = self.lock();
        let data = state.goal_with_task(goal, task)?;
        let in_index = data.remove_ready(task);
        let entry = data.task_mut(task);
        entry.state.priority = priority;
        entry.state.updated_ms = now_ms();
        if in_index {
            data.index_ready(task);
        }
        Ok(())
    }
}
