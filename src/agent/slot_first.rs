//! `--slot-before-claim`: an agent whose provider takes LLM gate slots waits
//! for one before claiming, queued at the rank of the best READY task it may
//! take, then claims and runs the task's execute call with that slot. No
//! claimed task waits for a slot under its lease, and the task is chosen when
//! a slot frees rather than when the agent was last idle.

use std::time::Duration;

use crate::llm_gate::{GateError, SlotPermit, Urgency};
use crate::store::{ClaimScope, Lease, StoreError};

use super::lease::StoreOutage;
use super::worker::Worker;

/// What waiting for a slot before claiming came to.
pub(super) enum SlotFirst {
    /// A slot is held: claim now and give it to the execute call.
    Granted(SlotPermit),
    /// Nothing is READY for this agent, so it queues for no slot: the claim
    /// says when to look again (or that the goal is complete).
    NothingReady,
    /// No slot (a stop, a pause, the store or the gate failed): wait this long.
    Wait(Duration),
}

impl Worker {
    /// Whether this agent waits for a slot before claiming.
    pub(super) fn slot_first(&self) -> bool {
        self.deps.settings.slot_before_claim && self.deps.caller.takes_slots()
    }

    /// Waits for a slot at the rank of the best READY task within `scope`;
    /// a stop request, a STOP or a PAUSE directive ends the wait.
    pub(super) async fn slot_for_claim(
        &mut self,
        scope: ClaimScope<'_>,
        outage: &mut StoreOutage,
    ) -> SlotFirst {
        let name = self.config.name.clone();
        let rank_ms = match self.deps.store.best_ready(&self.config.goal, scope).await {
            Ok(Some(rank_ms)) => rank_ms,
            Ok(None) => return SlotFirst::NothingReady,
            Err(e) => return SlotFirst::Wait(outage.failed(&name, &e)),
        };
        let caller = self.deps.caller.clone();
        let slot = caller.slot(Urgency::Task { rank_ms });
        tokio::pin!(slot);
        let (mut stop, heartbeat) = (self.stop.clone(), self.heartbeat.clone());
        loop {
            tokio::select! {
                granted = &mut slot => return match granted {
                    Ok(permit) => SlotFirst::Granted(permit),
                    Err(GateError::Store(e)) => SlotFirst::Wait(outage.failed(&name, &e)),
                    Err(GateError::Stopped) => SlotFirst::Wait(self.config.cadence),
                    Err(e @ GateError::Timeout { .. }) => {
                        tracing::warn!(agent = %name, error = %e, "no LLM slot before claiming; queueing again");
                        SlotFirst::Wait(Duration::ZERO)
                    }
                },
                _ = stop.wait_for(Option::is_some) => return SlotFirst::Wait(Duration::ZERO),
                _ = heartbeat.notified() => {
                    self.apply_heartbeat(None).await;
                    if !self.keeps_working() {
                        return SlotFirst::Wait(Duration::ZERO);
                    }
                }
            }
        }
    }

    /// A task claimed without a slot while slot-first (it became READY, or its
    /// retry came due, after the look found nothing) is given back at once, so
    /// that no claimed task waits for a slot; the next step queues for it.
    pub(super) async fn give_back_unslotted(&self, lease: &Lease) {
        tracing::debug!(task = %lease.task, "claimed without a slot; giving the task back to queue for one first");
        if let Err(e) = self.deps.store.release(lease).await
            && !matches!(e, StoreError::LeaseLost { .. })
        {
            tracing::warn!(task = %lease.task, error = %e, "cannot give back a task claimed without a slot; the reaper will return it");
        }
    }
}
