//! Keeping what an agent holds: the task lease it renews while the task runs, the
//! single-active guard that keeps one agent name in one process, and the backoff
//! while the store is unreachable.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::{Lease, Store, StoreError};

use super::AgentError;

/// The lease of the task an agent is executing, shared between the worker (which
/// sets and clears it) and the actor (which fails it if the worker ends abruptly).
#[derive(Debug, Clone, Default)]
pub(super) struct HeldLease(Arc<Mutex<Option<Lease>>>);

impl HeldLease {
    /// Records `lease` (or nothing) as the one held now.
    pub(super) fn set(&self, lease: Option<Lease>) {
        *self.slot() = lease;
    }

    /// Takes the held lease out, leaving none.
    pub(super) fn take(&self) -> Option<Lease> {
        self.slot().take()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Lease>> {
        // A panic while the lock was held leaves a usable Option behind.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Renews the lease every third of its TTL; returns once it is lost. A store
/// error is retried until the lease would have run out anyway.
pub(super) async fn renew_until_lost(store: Arc<dyn Store>, lease: Lease, ttl: Duration) {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(ttl / 3).await;
        match store.renew(&lease, ttl).await {
            Ok(()) => last_ok = tokio::time::Instant::now(),
            Err(StoreError::LeaseLost { .. }) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the lease; retrying");
                if last_ok.elapsed() >= ttl {
                    return;
                }
            }
        }
    }
}

/// The single-active guard of one agent name (`agent:NAME:active`), held by this
/// run's token.
pub(super) struct AgentGuard {
    store: Arc<dyn Store>,
    name: String,
    token: String,
    ttl: Duration,
}

impl AgentGuard {
    /// A guard for `name` under a fresh token; nothing is taken yet.
    pub(super) fn new(store: Arc<dyn Store>, name: String, ttl: Duration) -> Self {
        Self {
            store,
            name,
            token: crate::store::new_token(),
            ttl,
        }
    }

    /// Waits until the guard is taken (true), or `stop` fires first (false).
    pub(super) async fn take(&self, stop: impl std::future::Future<Output = ()>) -> bool {
        tokio::pin!(stop);
        let mut told = false;
        loop {
            match self
                .store
                .acquire_agent_guard(&self.name, &self.token, self.ttl)
                .await
            {
                Ok(true) => return true,
                Ok(false) if !told => {
                    tracing::warn!(agent = %self.name, "agent is live in another process; this process does not run it (it takes over if that process stops)");
                    told = true;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(agent = %self.name, error = %e, "cannot check the agent's single-active guard")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.ttl / 3) => {}
                _ = &mut stop => return false,
            }
        }
    }

    /// Renews the guard and the heartbeat key every third of the TTL; returns if
    /// the guard is lost to another process.
    pub(super) async fn keep(&self) -> AgentError {
        let (store, name, token, ttl) = (&self.store, &self.name, &self.token, self.ttl);
        loop {
            match store.renew_agent_guard(name, token, ttl).await {
                Ok(true) => {}
                // The guard expired (e.g. Redis was down past its TTL): take it back
                // unless another process already has.
                Ok(false) => match store.acquire_agent_guard(name, token, ttl).await {
                    Ok(true) => {
                        tracing::info!(agent = %name, "single-active guard had expired; taken again")
                    }
                    Ok(false) => return AgentError::GuardLost(name.clone()),
                    Err(e) => {
                        tracing::warn!(agent = %name, error = %e, "cannot re-take the agent's guard")
                    }
                },
                Err(e) => {
                    tracing::warn!(agent = %name, error = %e, "cannot renew the agent's guard")
                }
            }
            if let Err(e) = store.agent_heartbeat(name, ttl).await {
                tracing::debug!(agent = %name, error = %e, "cannot refresh the heartbeat key");
            }
            tokio::time::sleep(ttl / 3).await;
        }
    }

    /// Gives the guard up (if this run still holds it).
    pub(super) async fn release(&self) {
        let _ = self
            .store
            .release_agent_guard(&self.name, &self.token)
            .await;
    }
}

/// Tracks a store outage: logs its start and end once, and backs off meanwhile.
#[derive(Debug, Default)]
pub(super) struct StoreOutage {
    backoff: Option<Duration>,
}

impl StoreOutage {
    /// The store failed: how long to wait before trying again (100 ms doubling to 5 s).
    pub(super) fn failed(&mut self, agent: &str, error: &StoreError) -> Duration {
        let next = match self.backoff {
            None => {
                tracing::warn!(%agent, %error, "store unreachable; claiming paused, reconnecting with backoff");
                Duration::from_millis(100)
            }
            Some(b) => (b * 2).min(Duration::from_secs(5)),
        };
        self.backoff = Some(next);
        next
    }

    /// The store answered: the outage, if any, is over.
    pub(super) fn recovered(&mut self, agent: &str) {
        if self.backoff.take().is_some() {
            tracing::info!(%agent, "store reachable again; claiming resumed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_error() -> StoreError {
        StoreError::UnknownGoal { goal: "g".into() }
    }

    #[test]
    fn outage_backoff_doubles_from_100ms_to_5s_and_resets_on_recovery() {
        let mut outage = StoreOutage::default();
        let waits: Vec<_> = (0..8)
            .map(|_| outage.failed("a", &store_error()).as_millis())
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        outage.recovered("a");
        assert_eq!(
            outage.failed("a", &store_error()),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn a_held_lease_is_taken_once() {
        let held = HeldLease::default();
        let lease = Lease {
            goal: "g".into(),
            task: "t".into(),
            agent: "a".into(),
            token: "x".into(),
            fence: 1,
            attempt: 1,
        };
        held.set(Some(lease.clone()));
        assert_eq!(held.take(), Some(lease));
        assert_eq!(held.take(), None);
    }
}
