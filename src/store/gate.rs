//! The LLM gate's slots (`llm:gate`): a cap on concurrent LLM calls across every
//! agent and process (DESIGN.md §7).

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;

/// Slots for LLM calls, each held under a token until it expires. Every method is
/// atomic with respect to every other caller.
#[async_trait]
pub trait GateStore: Send + Sync + 'static {
    /// Takes one of `cap` LLM call slots (`llm:gate`) for `ttl`; false if all are taken.
    /// Expired slots (their holder died) are freed first. `cap` 0 means no cap.
    async fn gate_acquire(&self, token: &str, cap: u32, ttl: Duration) -> Result<bool, StoreError>;

    /// Extends a held slot; false if it expired and was freed.
    async fn gate_renew(&self, token: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Frees a slot.
    async fn gate_release(&self, token: &str) -> Result<(), StoreError>;

    /// Slots held now (expired ones not counted).
    async fn gate_in_flight(&self) -> Result<u64, StoreError>;
}
