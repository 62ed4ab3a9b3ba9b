//! [`ControlStore`] on Redis: `drop_task.lua`, `retry_task.lua`, `elevate.lua`.

use async_trait::async_trait;

use super::{RedisStore, parse_status, unexpected};
use crate::domain::TaskStatus;
use crate::store::control::{DROPPING, ELEVATING, RETRYING};
use crate::store::{ControlStore, StoreError};

/// Maps the `no_task` and `state` replies of the control scripts to errors; `op`
/// is what the operation is called and the state it needs.
pub(super) fn control_reply(
    reply: Vec<String>,
    goal: &str,
    task: &str,
    op: (&'static str, &'static str),
) -> Result<Vec<String>, StoreError> {
    match reply.first().map(String::as_str) {
        Some("ok") => Ok(reply),
        Some("no_task") => Err(StoreError::unknown_task(goal, task)),
        Some("superseded") if reply.len() == 2 => Err(StoreError::Superseded {
            goal: goal.to_string(),
            task: task.to_string(),
            by: reply[1].clone(),
        }),
        Some("state") => Err(StoreError::wrong_state(
            goal,
            task,
            parse_status(reply.get(1).map(String::as_str).unwrap_or(""))?,
            op,
        )),
        _ => Err(unexpected(op.0, &reply)),
    }
}

#[async_trait]
impl ControlStore for RedisStore {
    async fn drop_task(&self, goal: &str, task: &str, reason: &str) -> Result<(), StoreError> {
        let reply = self
            .run_task_script(&self.scripts.drop_task, goal, &[task], &[task, reason])
            .await?;
        control_reply(reply, goal, task, DROPPING).map(drop)
    }

    async fn retry_task(&self, goal: &str, task: &str) -> Result<TaskStatus, StoreError> {
        let reply = self
            .run_task_script(&self.scripts.retry_task, goal, &[task], &[task])
            .await?;
        let reply = control_reply(reply, goal, task, RETRYING)?;
        parse_status(reply.get(1).map(String::as_str).unwrap_or(""))
    }

    async fn elevate(&self, goal: &str, task: &str, priority: i32) -> Result<(), StoreError> {
        let reply = self
            .run_task_script(
                &self.scripts.elevate,
                goal,
                &[task],
                &[task, &priority.to_string()],
            )
            .await?;
        control_reply(reply, goal, task, ELEVATING).map(drop)
    }
}
