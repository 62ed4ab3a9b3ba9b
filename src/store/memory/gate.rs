//! [`GateStore`] in memory: slot tokens and their expiry, and the waiters'
//! queue, ordered as Redis orders `{llm:gate}:queue` (place, then token).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::MemoryStore;
use crate::store::{GateStore, SlotAsk, StoreError};

/// The gate's state: what `llm:gate`, `{llm:gate}:queue` and `{llm:gate}:seen`
/// hold on Redis.
#[derive(Default)]
pub(super) struct Gate {
    /// Slot holders: token → expiry.
    slots: HashMap<String, Instant>,
    /// Waiters: (place, token), a place being ms since `epoch` less the head start.
    queue: BTreeSet<(i64, String)>,
    /// Waiters: token → (place, until when it counts as alive).
    seen: HashMap<String, (i64, Instant)>,
    /// What places count from: the first attempt.
    epoch: Option<Instant>,
}

impl Gate {
    /// Drops expired slots and waiters that stopped asking.
    fn sweep(&mut self, now: Instant) {
        self.slots.retain(|_, expiry| *expiry > now);
        let queue = &mut self.queue;
        self.seen.retain(|token, (place, until)| {
            let alive = *until > now;
            if !alive {
                queue.remove(&(*place, token.clone()));
            }
            alive
        });
    }

    /// Takes `token` out of the queue.
    fn leave(&mut self, token: &str) {
        if let Some((place, _)) = self.seen.remove(token) {
            self.queue.remove(&(place, token.to_string()));
        }
    }
}

#[async_trait]
impl GateStore for MemoryStore {
    async fn gate_acquire(&self, token: &str, ask: SlotAsk) -> Result<bool, StoreError> {
        let gate = &mut self.lock().gate;
        let now = Instant::now();
        gate.sweep(now);
        let granted = if ask.cap == 0 || gate.slots.contains_key(token) {
            true
        } else {
            let epoch = *gate.epoch.get_or_insert(now);
            let arrived = now.duration_since(epoch).as_millis() as i64;
            let place = match gate.seen.get(token) {
                Some((place, _)) => *place,
                None => arrived - ask.head_start.as_millis() as i64,
            };
            gate.queue.insert((place, token.to_string()));
            gate.seen
                .insert(token.to_string(), (place, now + ask.alive_for));
            let free = (ask.cap as usize).saturating_sub(gate.slots.len());
            let ahead = gate.queue.range(..(place, token.to_string())).count();
            ahead < free
        };
        if granted {
            gate.leave(token);
            gate.slots.insert(token.to_string(), now + ask.ttl);
        }
        Ok(granted)
    }

    async fn gate_renew(&self, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let gate = &mut self.lock().gate;
        let now = Instant::now();
        match gate.slots.get_mut(token) {
            Some(expiry) if *expiry > now => {
                *expiry = now + ttl;
                Ok(true)
            }
            _ => {
                gate.slots.remove(token);
                Ok(false)
            }
        }
    }

    async fn gate_release(&self, token: &str) -> Result<(), StoreError> {
        let gate = &mut self.lock().gate;
        gate.slots.remove(token);
        gate.leave(token);
        Ok(())
    }

    async fn gate_in_flight(&self) -> Result<u64, StoreError> {
        let now = Instant::now();
        Ok(self
            .lock()
            .gate
            .slots
            .values()
            .filter(|e| **e > now)
            .count() as u64)
    }
}
