//! When a crashed agent is restarted: a restart-intensity limit (at most
//! `max_restarts` restarts within `window`, as Erlang/OTP's `intensity`/`period`)
//! and a jittered, doubling backoff between restarts.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// First restart delay; each further restart within the window doubles it.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// Longest restart delay.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// How often a crashing agent may be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within `window`; one more crash marks the agent failed.
    pub max_restarts: usize,
    /// The restart-intensity window.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// When one agent was restarted, within the window.
#[derive(Debug, Clone, Default)]
pub struct RestartHistory(VecDeque<Instant>);

impl RestartHistory {
    /// Forgets every restart (after the agent's declaration changed).
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// What to do about a crash.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RestartDecision {
    /// Start the agent again after this delay.
    RestartAfter(Duration),
    /// Too many restarts within the window: leave it down.
    GiveUp {
        /// Restarts counted within the window.
        restarts: usize,
    },
}

impl RestartPolicy {
    /// Decides about a crash at `now` and records the restart it allows.
    pub fn on_crash(&self, history: &mut RestartHistory, now: Instant) -> RestartDecision {
        self.on_crash_with_jitter(history, now, random_jitter())
    }

    /// [`RestartPolicy::on_crash`] with the jitter factor given (0.75–1.25).
    fn on_crash_with_jitter(
        &self,
        history: &mut RestartHistory,
        now: Instant,
        jitter: f64,
    ) -> RestartDecision {
        let restarts = &mut history.0;
        while restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            restarts.pop_front();
        }
        if restarts.len() >= self.max_restarts {
            return RestartDecision::GiveUp {
                restarts: restarts.len(),
            };
        }
        restarts.push_back(now);
        RestartDecision::RestartAfter(restart_delay(restarts.len(), jitter))
    }
}

/// Doubling from 100 ms for the `restarts`-th restart in the window, capped at
/// 30 s, times `jitter` so agents that failed together do not restart together.
fn restart_delay(restarts: usize, jitter: f64) -> Duration {
    let doublings = restarts.saturating_sub(1).min(31) as u32;
    let base = FIRST_DELAY.saturating_mul(2u32.saturating_pow(doublings));
    base.min(MAX_DELAY).mul_f64(jitter)
}

/// A factor in 0.75–1.25.
fn random_jitter() -> f64 {
    (uuid::Uuid::new_v4().as_u128() % 500) as f64 / 1000.0 + 0.75
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_restarts: usize, window_secs: u64) -> RestartPolicy {
        RestartPolicy {
            max_restarts,
            window: Duration::from_secs(window_secs),
        }
    }

    #[test]
    fn crashes_past_the_intensity_limit_give_up() {
        let policy = policy(3, 60);
        let mut history = RestartHistory::default();
        let start = Instant::now();
        for i in 0..3 {
            let now = start + Duration::from_secs(i);
            assert!(matches!(
                policy.on_crash_with_jitter(&mut history, now, 1.0),
                RestartDecision::RestartAfter(_)
            ));
        }
        assert_eq!(
            policy.on_crash_with_jitter(&mut history, start + Duration::from_secs(3), 1.0),
            RestartDecision::GiveUp { restarts: 3 }
        );
    }

    #[test]
    fn restarts_older_than_the_window_are_forgotten() {
        let policy = policy(2, 10);
        let mut history = RestartHistory::default();
        let start = Instant::now();
        policy.on_crash_with_jitter(&mut history, start, 1.0);
        policy.on_crash_with_jitter(&mut history, start + Duration::from_secs(1), 1.0);
        // Both restarts are more than 10 s old by now: the agent may restart again,
        // and its backoff starts over.
        assert_eq!(
            policy.on_crash_with_jitter(&mut history, start + Duration::from_secs(12), 1.0),
            RestartDecision::RestartAfter(FIRST_DELAY)
        );
        history.clear();
        assert_eq!(
            policy.on_crash_with_jitter(&mut history, start + Duration::from_secs(13), 1.0),
            RestartDecision::RestartAfter(FIRST_DELAY)
        );
    }

    #[test]
    fn the_backoff_doubles_to_a_cap_and_is_jittered() {
        let delays: Vec<u128> = (1..=11)
            .map(|n| restart_delay(n, 1.0).as_millis())
            .collect();
        assert_eq!(
            delays,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000
            ]
        );
        assert_eq!(restart_delay(1, 0.75), Duration::from_millis(75));
        assert_eq!(
            restart_delay(usize::MAX, 1.25),
            Duration::from_millis(37500)
        );
        for _ in 0..100 {
            let jitter = random_jitter();
            assert!((0.75..1.25).contains(&jitter), "{jitter}");
        }
    }

    #[test]
    fn zero_restarts_allowed_gives_up_at_once() {
        let mut history = RestartHistory::default();
        assert_eq!(
            policy(0, 60).on_crash(&mut history, Instant::now()),
            RestartDecision::GiveUp { restarts: 0 }
        );
    }
}
