//! Operator control of single tasks: the heartbeat directives DROP-TASK,
//! RETRY-TASK and ELEVATE (DESIGN.md §6).

use async_trait::async_trait;

use super::StoreError;
use crate::domain::TaskStatus;

/// DROP-TASK as a `WrongState` error names it: what it is called, the state it needs.
pub(super) const DROPPING: (&str, &str) = ("dropping", "not DONE");
/// RETRY-TASK as a `WrongState` error names it.
pub(super) const RETRYING: (&str, &str) = ("retrying", "FAILED");
/// ELEVATE as a `WrongState` error names it.
pub(super) const ELEVATING: (&str, &str) = ("elevating", "to exist");

/// What an operator does to one task of a running plan. Every method is atomic
/// with respect to every other caller.
#[async_trait]
pub trait ControlStore: Send + Sync + 'static {
    /// Cancels a task that is not DONE: FAILED with `reason`, any lease revoked.
    async fn drop_task(&self, goal: &str, task: &str, reason: &str) -> Result<(), StoreError>;

    /// Puts a FAILED task back (READY, or BLOCKED if a dependency is unfinished),
    /// attempts reset (and a review's cycles: it may ask for changes again).
    async fn retry_task(&self, goal: &str, task: &str) -> Result<TaskStatus, StoreError>;

    /// Changes a task's priority (and its place in the READY index).
    async fn elevate(&self, goal: &str, task: &str, priority: i32) -> Result<(), StoreError>;
}
