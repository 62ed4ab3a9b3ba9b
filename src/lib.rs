//! porki runs a team of LLM agents against goals.
//!
//! An orchestrator turns each goal into a task DAG, agents claim and execute the
//! tasks under time-limited leases, and operators steer them through heartbeat
//! files. Redis is the only shared state.
//!
//! # Module map
//!
//! - [`domain`]: plans ([`domain::Dag`]) and their validation, task states, key-safe
//!   names. No I/O.
//! - [`store`]: the [`store::Store`] trait, the shared state every actor goes
//!   through. [`store::RedisStore`] runs each multi-key change as one Lua script
//!   (`src/store/*.lua`); [`store::MemoryStore`] is the embedded `memory://` twin
//!   with the same semantics.
//! - [`instructions`]: the instructions file (agents, goals, planner context) in
//!   its markdown and YAML forms, and agents' task lists. No I/O.
//! - [`heartbeat`]: heartbeat file directives (`PAUSE`, `DROP-TASK`…) and the
//!   cursor that applies each line once. No I/O.
//! - [`llm`]: the [`llm::LlmProvider`] trait and its providers (CLIs in their own
//!   process group, OpenAI-compatible and Anthropic HTTP, deterministic offline),
//!   the prompts of each phase and the parsing of answers.
//! - [`report`]: what `porki status` and `porki graph` print (text table, status
//!   JSON, Mermaid, DOT, graph JSON), rendered from fetched data. No I/O.
//!
//! Data flows one way: a validated plan is written to the store; agents claim,
//! renew, complete or fail tasks through it; completion promotes dependents in
//! the same atomic step.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod domain;
pub mod heartbeat;
pub mod instructions;
pub mod llm;
pub mod llm_gate;
pub mod planner;
pub mod project;
pub mod reaper;
pub mod report;
pub mod store;
pub mod supervisor;
pub mod watcher;
