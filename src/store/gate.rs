//! The LLM gate's slots (`llm:gate`) and its wait queue (`{llm:gate}:queue`): a
//! cap on concurrent LLM calls across every agent and process (DESIGN.md §7),
//! handed out in the queue's order.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreError;

/// One attempt at an LLM call slot (see [`GateStore::gate_acquire`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotAsk {
    /// Slots across every process; 0 means no cap.
    pub cap: u32,
    /// How long a slot lives without renewal.
    pub ttl: Duration,
    /// How far ahead of its arrival a waiter is queued (the call's capped rank):
    /// its place is its first attempt's time minus this.
    pub head_start: Duration,
    /// How long a waiter stays queued without asking again: one that stopped
    /// asking (its process died) is then dropped, so it blocks nobody.
    pub alive_for: Duration,
}

/// Slots for LLM calls, each held under a token until it expires, and the
/// callers waiting for one. Every method is atomic with respect to every other
/// caller.
#[async_trait]
pub trait GateStore: Send + Sync + 'static {
    /// Takes one of `ask.cap` LLM call slots (`llm:gate`) for `ask.ttl`, or
    /// queues the caller (`{llm:gate}:queue`, placed by its first attempt's time
    /// less `ask.head_start`) and returns false. A slot is given only while fewer
    /// live waiters are queued ahead of the caller than slots are free; a holder
    /// asking again keeps its slot. Expired slots and waiters not seen within
    /// their `alive_for` are dropped first. `cap` 0 means no cap.
    async fn gate_acquire(&self, token: &str, ask: SlotAsk) -> Result<bool, StoreError>;

    /// Extends a held slot; false if it expired and was freed.
    async fn gate_renew(&self, token: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Frees the slot held under `token`, and takes `token` out of the queue: a
    /// caller that stopped waiting (timed out, dropped) blocks nobody, and a slot
    /// given as it went away is not lost until it expires.
    async fn gate_release(&self, token: &str) -> Result<(), StoreError>;

    /// Slots held now (expired ones not counted).
    async fn gate_in_flight(&self) -> Result<u64, StoreError>;
}
