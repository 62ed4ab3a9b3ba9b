//! What changed in a goal, as announced on `events:{G}`: idle agents wake on
//! these instead of polling. [`super::GoalStore::events`] subscribes.

/// What changed in a goal, as announced on `events:{G}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Tasks became READY (plan written, dependents promoted, lease reaped, release, retry).
    Ready,
    /// A task failed and will be retried after a backoff.
    Retry,
    /// A task became FAILED.
    Failed,
    /// Every task is DONE.
    GoalComplete,
    /// The goal failed.
    GoalFailed,
    /// The event feed reconnected: events may have been missed, so look again.
    Resync,
}

/// A change in a goal; idle agents wake on these instead of polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreEvent {
    /// Goal id (empty for [`EventKind::Resync`], which concerns every goal).
    pub goal: String,
    /// What happened.
    pub kind: EventKind,
}

impl StoreEvent {
    /// Parses a message of `events:{G}` (`ready`, `retry T`, `goal complete`…).
    ///
    /// A completion that unblocks nothing is not announced: it gives an idle agent
    /// nothing to claim (promotions announce `ready`, the last one `goal complete`).
    pub fn parse(goal: &str, message: &str) -> Option<Self> {
        let kind = match message.split_whitespace().next()? {
            "ready" => EventKind::Ready,
            "retry" => EventKind::Retry,
            "failed" => EventKind::Failed,
            "goal" if message.ends_with("complete") => EventKind::GoalComplete,
            "goal" if message.ends_with("failed") => EventKind::GoalFailed,
            _ => return None,
        };
        Some(Self {
            goal: goal.to_string(),
            kind,
        })
    }

    /// Whether an agent of `goal` should look for work after this event.
    pub fn concerns(&self, goal: &str) -> bool {
        self.kind == EventKind::Resync || self.goal == goal
    }
}

/// Capacity of the in-process event channel; a slow receiver that lags behind
/// gets a `Lagged` error and simply looks again.
pub const EVENT_CHANNEL_CAPACITY: usize = 1024;
