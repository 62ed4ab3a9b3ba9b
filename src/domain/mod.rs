//! Domain types, free of I/O: plans (and their shaping for a team), task
//! states, teams, ranking by the critical path, merge conflicts, isolation and
//! key-safe names.

pub mod critical;
pub mod dag;
pub mod ids;
pub mod isolation;
pub mod merge;
pub mod rank;
pub mod shaping;
pub mod task;
pub mod team;

pub use critical::critical_path;
pub use dag::{Assignment, Dag, DagError, Edge, MAX_ESTIMATE, Node, ValidatedDag};
pub use ids::{InvalidId, MAX_PLANNED_ID_LEN, check_id, check_planned_id};
pub use isolation::Isolation;
pub use merge::{MAX_MERGES_PER_TASK, MergeConflict};
pub use shaping::shape_plan;
pub use task::{TaskState, TaskStatus};
pub use team::{
    AgentKind, ApprovalPolicy, DEFAULT_MAX_REVIEW_CYCLES, GoalPolicy, ReviewPolicy, TaskKind,
    TeamLimits, claim_role, escalation_id, fix_id, merge_id, recovery_id, reserved_suffix,
    review_id, takes,
};
