//! Keeping what an agent holds: the task lease it renews while the task runs, the
//! single-active guard that keeps one agent name in one process, and the backoff
//! while the store is unreachable.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::prelude::*;
use crate::store::{Lease, StoreError};

use super::AgentError;

/// The leases this process's agents hold now, by agent: what the Supervisor
/// gives back on the way out when an agent could not (shutdown past the grace).
#[derive(Debug, Clone, Default)]
pub struct HeldLeases(Arc<Mutex<HashMap<String, Lease>>>);

impl HeldLeases {
    /// Takes every held lease out, leaving none.
    pub fn take_all(&self) -> Vec<Lease> {
        self.map().drain().map(|(_, lease)| lease).collect()
    }

    /// Whether `agent` holds a lease now.
    pub fn holds(&self, agent: &str) -> bool {
        self.map().contains_key(agent)
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        // A panic while the lock was held leaves a usable map behind.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The lease of the task one agent is executing, in the process's [`HeldLeases`]:
/// set and cleared by the worker, failed by the actor if the worker ends abruptly.
#[derive(Debug, Clone)]
pub(super) struct HeldLease {
    agent: String,
    all: HeldLeases,
}

impl HeldLease {
    /// The slot of `agent` in `all`.
    pub(super) fn new(agent: &str, all: HeldLeases) -> Self {
        Self {
            agent: agent.to_string(),
            all,
        }
    }

    /// Records `lease` (or nothing) as the one held now.
    pub(super) fn set(&self, lease: Option<Lease>) {
        let mut map = self.all.map();
        match lease {
            Some(lease) => map.insert(self.agent.clone(), lease),
            None => map.remove(&self.agent),
        };
    }

    /// Takes the held lease out, leaving none.
    pub(super) fn take(&self) -> Option<Lease> {
        self.all.map().remove(&self.agent)
    }
}

/// Keeps one task's lease: renews it every third of the TTL and knows the local
/// deadline by which the work must stop if the store stops answering. Redis
/// expires the lock at most a TTL after the last renewal it applied, which it
/// received after porki sent it: so porki counts from the send, and stops a
/// margin early.
pub(super) struct LeaseKeeper {
    store: Arc<dyn TaskStore>,
    lease: Lease,
    ttl: Duration,
    /// When the last successful renewal (or the claim) was sent.
    renewed: Cell<Instant>,
}

/// Why the lease can no longer be counted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LeaseEnd {
    /// The store says it is gone (expired and reclaimed, or revoked).
    Lost,
    /// The store did not confirm a renewal in time: the local deadline passed.
    Expired,
}

impl LeaseKeeper {
    /// A keeper of `lease`, whose claim was sent at `sent`.
    pub(super) fn new(
        store: Arc<dyn TaskStore>,
        lease: Lease,
        ttl: Duration,
        sent: Instant,
    ) -> Self {
        Self {
            store,
            lease,
            ttl,
            renewed: Cell::new(sent),
        }
    }

    /// When the work must have stopped unless a renewal succeeds first.
    pub(super) fn deadline(&self) -> Instant {
        self.renewed.get() + self.ttl - deadline_margin(self.ttl)
    }

    /// Time left before the deadline (zero once past).
    pub(super) fn remaining(&self) -> Duration {
        self.deadline().saturating_duration_since(Instant::now())
    }

    /// Renews every third of the TTL until the lease ends; each renewal may take
    /// at most a third of the TTL, and none outlives the deadline.
    pub(super) async fn keep(&self) -> LeaseEnd {
        loop {
            let next = (self.renewed.get() + self.ttl / 3).min(self.deadline());
            tokio::time::sleep_until(next).await;
            if let Some(end) = self.renew_now().await {
                return end;
            }
        }
    }

    /// One renewal now; `Some` when the lease has ended.
    pub(super) async fn renew_now(&self) -> Option<LeaseEnd> {
        if self.remaining().is_zero() {
            return Some(LeaseEnd::Expired);
        }
        let sent = Instant::now();
        let limit = (self.ttl / 3).min(self.remaining());
        match tokio::time::timeout(limit, self.store.renew(&self.lease, self.ttl)).await {
            Ok(Ok(())) => {
                self.renewed.set(sent);
                None
            }
            Ok(Err(StoreError::LeaseLost { .. })) => Some(LeaseEnd::Lost),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, deadline_in = ?self.remaining(), "cannot renew the lease; retrying until its deadline");
                self.past_deadline_after(RENEW_RETRY).await
            }
            Err(_) => {
                tracing::warn!(deadline_in = ?self.remaining(), "the store did not answer a renewal in time; retrying until the lease's deadline");
                self.past_deadline_after(Duration::ZERO).await
            }
        }
    }

    /// Waits `pause` (within the deadline); `Some(Expired)` once the deadline passed.
    async fn past_deadline_after(&self, pause: Duration) -> Option<LeaseEnd> {
        tokio::time::sleep(pause.min(self.remaining())).await;
        self.remaining().is_zero().then_some(LeaseEnd::Expired)
    }
}

/// Pause between renewals that failed at once.
const RENEW_RETRY: Duration = Duration::from_millis(100);

/// How long before the TTL runs out (counted from the send) the work stops:
/// a tenth of the TTL, at least 50 ms, for clock drift and scheduling.
fn deadline_margin(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(50)).min(ttl / 2)
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

    /// Renews the guard every third of the TTL; returns if
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

    fn lease(agent: &str) -> Lease {
        Lease {
            goal: "g".into(),
            task: "t".into(),
            agent: agent.into(),
            token: "x".into(),
            fence: 1,
            attempt: 1,
            rank_ms: None,
        }
    }

    #[test]
    fn a_held_lease_is_taken_once_and_the_process_sees_every_agents() {
        let all = HeldLeases::default();
        let (a, b) = (
            HeldLease::new("a", all.clone()),
            HeldLease::new("b", all.clone()),
        );
        a.set(Some(lease("a")));
        b.set(Some(lease("b")));
        assert!(all.holds("a") && all.holds("b") && !all.holds("c"));
        assert_eq!(a.take(), Some(lease("a")));
        assert!(!all.holds("a"));
        assert_eq!(a.take(), None);
        assert_eq!(all.take_all(), vec![lease("b")]);
        assert_eq!(b.take(), None);
    }

    /// A store whose renewals never answer (packets lost, no reset).
    struct Silent;

    #[async_trait::async_trait]
    impl TaskStore for Silent {
        async fn claim_preferred(
            &self,
            _: &str,
            _: &str,
            _: crate::store::ClaimScope<'_>,
            _: Duration,
            _: Option<&str>,
        ) -> Result<crate::store::ClaimOutcome, StoreError> {
            std::future::pending().await
        }
        async fn renew(&self, _: &Lease, _: Duration) -> Result<(), StoreError> {
            std::future::pending().await
        }
        async fn complete(
            &self,
            _: &Lease,
            _: &crate::store::TaskResult,
        ) -> Result<crate::store::CompleteOutcome, StoreError> {
            std::future::pending().await
        }
        async fn complete_and_claim(
            &self,
            _: &Lease,
            _: &crate::store::TaskResult,
            _: crate::store::ClaimScope<'_>,
            _: Duration,
        ) -> Result<(crate::store::CompleteOutcome, crate::store::ClaimOutcome), StoreError>
        {
            std::future::pending().await
        }
        async fn fail(
            &self,
            _: &Lease,
            _: &str,
            _: bool,
            _: Duration,
            _: crate::store::Recovery<'_>,
        ) -> Result<crate::store::FailOutcome, StoreError> {
            std::future::pending().await
        }
        async fn release(&self, _: &Lease) -> Result<(), StoreError> {
            std::future::pending().await
        }
        async fn back_off(&self, _: &Lease, _: Duration, _: &str) -> Result<(), StoreError> {
            std::future::pending().await
        }
        async fn held_by(&self, _: &str, _: &str) -> Result<Option<Lease>, StoreError> {
            std::future::pending().await
        }
        async fn reap(&self, _: &str) -> Result<crate::store::ReapOutcome, StoreError> {
            std::future::pending().await
        }
        async fn task(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<crate::domain::TaskState>, StoreError> {
            std::future::pending().await
        }
        async fn tasks(&self, _: &str) -> Result<Vec<crate::domain::TaskState>, StoreError> {
            std::future::pending().await
        }
        async fn best_ready(
            &self,
            _: &str,
            _: crate::store::ClaimScope<'_>,
        ) -> Result<Option<u64>, StoreError> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_stops_answering_ends_the_lease_by_its_deadline() {
        let ttl = Duration::from_millis(900);
        let sent = Instant::now();
        let keeper = LeaseKeeper::new(Arc::new(Silent), lease("a"), ttl, sent);
        assert_eq!(keeper.keep().await, LeaseEnd::Expired);
        let stopped = Instant::now() - sent;
        assert!(stopped <= ttl - deadline_margin(ttl), "{stopped:?}");
        assert!(stopped >= ttl / 2, "not before it had to: {stopped:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn renewals_keep_the_deadline_moving_until_the_lease_is_lost() {
        let store = Arc::new(crate::store::MemoryStore::new());
        let dag = crate::domain::Dag::new("g", vec![crate::domain::Node::new("t", "t")], &[]);
        crate::store::write_plan(&*store, dag, &Default::default(), 10)
            .await
            .unwrap();
        let ttl = Duration::from_millis(900);
        let sent = Instant::now();
        let crate::store::ClaimOutcome::Claimed(held) =
            store.claim("g", "a", None, ttl).await.unwrap()
        else {
            panic!("claimed nothing");
        };
        let keeper = LeaseKeeper::new(store.clone(), held, ttl, sent);
        let kept = tokio::time::timeout(ttl * 5, keeper.keep()).await;
        assert!(kept.is_err(), "still held after five TTLs");
        assert!(keeper.deadline() > sent + ttl * 4);
        store.drop_task("g", "t", "dropped").await.unwrap();
        assert_eq!(keeper.renew_now().await, Some(LeaseEnd::Lost));
    }
}
