//! Domain types, free of I/O: plans, task states and key-safe names.

pub mod dag;
pub mod ids;
pub mod task;

pub use dag::{Dag, DagError, Edge, Node, ValidatedDag};
pub use ids::{InvalidId, check_id};
pub use task::{TaskState, TaskStatus};
