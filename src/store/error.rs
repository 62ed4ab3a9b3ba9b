//! What can go wrong in the store, for every backend alike.

use thiserror::Error;

use super::Lease;
use crate::domain::{InvalidId, TaskStatus};

/// Errors from the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The store URL is not one porki understands.
    #[error("store URL {url:?} is not valid: {reason} ({forms})", forms = super::url::URL_FORMS)]
    BadUrl {
        /// The URL given, its password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `redis+cluster://` URL names a Redis that is not part of a cluster.
    #[error(
        "{url} is not a Redis Cluster (cluster support is disabled on it): use redis://HOST:PORT for a single Redis"
    )]
    NotACluster {
        /// The URL given, its password hidden.
        url: String,
    },
    /// A `redis://` URL names a node of a Redis Cluster, which holds only some slots.
    #[error(
        "{url} is a node of a Redis Cluster: use redis+cluster://HOST:PORT[,HOST:PORT…] so that every key goes to the node that owns it"
    )]
    IsACluster {
        /// The URL given, its password hidden.
        url: String,
    },
    /// A goal script kept finding tasks it had not been given, because other
    /// processes kept changing the goal; the caller retries later, as after an outage.
    #[error(
        "goal {goal:?} changed under this process {rounds} times in a row while a script ran: retrying later"
    )]
    KeptChanging {
        /// Goal id.
        goal: String,
        /// How many times the script was called.
        rounds: usize,
    },
    /// Redis refused porki's credentials: a wrong password or user, or none
    /// given to a Redis that asks for one.
    #[error("Redis at {url} refused porki's credentials ({detail}): {hint}", hint = AUTH_HINT)]
    Refused {
        /// The URL given, its password hidden.
        url: String,
        /// What Redis said.
        detail: String,
    },
    /// A TLS connection cannot be made as set up: the CA file is unreadable, or
    /// the server's certificate is not one porki trusts.
    #[error("TLS to {url} cannot work: {reason}")]
    Tls {
        /// The URL given, its password hidden.
        url: String,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// Redis could not be reached or answered with an error. (No error source:
    /// the message already carries the cause, which `{:#}` would print again.)
    #[error("Redis error: {0} ({hint})", hint = redis_hint(.0))]
    Redis(::redis::RedisError),
    /// The goal has no plan in the store.
    #[error("goal {goal:?} has no plan in the store: start the orchestrator so it plans the goal")]
    UnknownGoal {
        /// Goal id.
        goal: String,
    },
    /// The goal has no such task.
    #[error("goal {goal:?} has no task {task:?}: check the id with `porki status --goal {goal}`")]
    UnknownTask {
        /// Goal id.
        goal: String,
        /// Task id.
        task: String,
    },
    /// The goal has a different plan than the write expected to find: none, or
    /// the one it was to replace (another process replaced that one first).
    #[error(
        "goal {goal:?} has a different plan than this write expected (stored fingerprint {existing}): another process planned it meanwhile, so resume that plan, or ask for it to be replaced (porki run --replan)"
    )]
    PlanConflict {
        /// Goal id.
        goal: String,
        /// Fingerprint of the stored plan.
        existing: String,
    },
    /// The lease is no longer held: it expired and was reaped or reclaimed, or the task was dropped.
    #[error("lease on {goal}/{task} (fence {fence}) is no longer held: the result is dropped")]
    LeaseLost {
        /// Goal id.
        goal: String,
        /// Task id.
        task: String,
        /// The stale fence.
        fence: u64,
    },
    /// RETRY-TASK of a FAILED task whose work another task took over (a
    /// recovery; for a merge task, the next merge task or the task it merges).
    #[error(
        "task {goal}/{task} failed and task {by} took its work over: retry {by} instead (RETRY-TASK {by})"
    )]
    Superseded {
        /// Goal id.
        goal: String,
        /// Task id.
        task: String,
        /// The task that took its work over.
        by: String,
    },
    /// A verdict for a task that is neither a review nor an escalation.
    #[error("task {goal}/{task} is a {kind} task: only review and escalation tasks take a verdict")]
    NotAReview {
        /// Goal id.
        goal: String,
        /// Task id.
        task: String,
        /// Its kind.
        kind: String,
    },
    /// The operation does not apply to the task in its current state.
    #[error("task {goal}/{task} is {status}: {action} needs it {needed}")]
    WrongState {
        /// Goal id.
        goal: String,
        /// Task id.
        task: String,
        /// Its state.
        status: TaskStatus,
        /// What was attempted.
        action: &'static str,
        /// What state that needs.
        needed: &'static str,
    },
    /// A name that cannot be a key part.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// Stored data that porki cannot read.
    #[error(
        "stored data for {what} is unreadable ({detail}): it was written by another program or damaged"
    )]
    Corrupt {
        /// Which key or field.
        what: String,
        /// The parse error.
        detail: String,
    },
}

impl From<::redis::RedisError> for StoreError {
    fn from(e: ::redis::RedisError) -> Self {
        StoreError::Redis(e)
    }
}

/// What to do about a Redis credential error.
const AUTH_HINT: &str = "put the right user and password in --redis-url or PORKI_REDIS_URL (redis://USER:PASSWORD@HOST:PORT; redis://:PASSWORD@HOST:PORT for requirepass; redis+unix:///PATH?user=USER&pass=PASSWORD)";

/// Whether Redis refused porki's credentials (`WRONGPASS`, `NOAUTH`).
pub(crate) fn is_auth_error(e: &::redis::RedisError) -> bool {
    e.kind() == ::redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
}

/// What to do about a Redis error, by its kind.
fn redis_hint(e: &::redis::RedisError) -> &'static str {
    if is_auth_error(e) {
        AUTH_HINT
    } else if e.code() == Some("NOPERM") {
        "the Redis user lacks a right porki needs: grant it the ACL rules README.md gives under \"A secured Redis\""
    } else {
        "check that redis-server is running and --redis-url points at it"
    }
}

/// Constructors the backends share, so both word an error the same way.
impl StoreError {
    /// Whether the URL or what goes with it is at fault (malformed, naming a
    /// cluster node as one Redis or one Redis as a cluster, credentials Redis
    /// refuses, a TLS set-up that cannot work): retrying cannot help.
    pub fn is_wrong_url(&self) -> bool {
        matches!(
            self,
            StoreError::BadUrl { .. }
                | StoreError::NotACluster { .. }
                | StoreError::IsACluster { .. }
                | StoreError::Refused { .. }
                | StoreError::Tls { .. }
        )
    }

    /// `LeaseLost` for a stale `lease`.
    pub(super) fn lease_lost(lease: &Lease) -> Self {
        StoreError::LeaseLost {
            goal: lease.goal.clone(),
            task: lease.task.clone(),
            fence: lease.fence,
        }
    }

    /// `UnknownTask` for `goal`/`task`.
    pub fn unknown_task(goal: &str, task: &str) -> Self {
        StoreError::UnknownTask {
            goal: goal.to_string(),
            task: task.to_string(),
        }
    }

    /// `WrongState`: `op` (what it is called, the state it needs; see
    /// [`super::control`]) does not apply to `goal`/`task`, which is `status`.
    pub(super) fn wrong_state(
        goal: &str,
        task: &str,
        status: TaskStatus,
        (action, needed): (&'static str, &'static str),
    ) -> Self {
        StoreError::WrongState {
            goal: goal.to_string(),
            task: task.to_string(),
            status,
            action,
            needed,
        }
    }
}
