//! A rate limit (HTTP 429) the CLI gives up on makes porki give the task back
//! without counting the attempt and hold the whole goal until the limit resets
//! (the time the message names, else a minute), then finish it.
//!
//! claude prints the API's message (here "try again in 6s"); codex prints only
//! "exceeded retry limit, last status: 429 Too Many Requests", at once without a
//! `retry-after` header and after about five seconds of its own retries with
//! `retry-after: 1`, so porki waits its default minute for it.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Setup, assert_every_file_written, status, text, try_status};
use crate::support::model::Fault;
use crate::support::{RedisServer, wait_for};

/// Runs `setup` against a Redis while its model answers execute calls with
/// `fault`; checks that `porki status` showed the goal backing off for a rate
/// limit and that the goal then finished with every file. Returns how many
/// calls were answered 429.
fn waits_then_finishes(setup: &Setup, fault: Fault) -> usize {
    let redis = RedisServer::start();
    setup.model.set_fault(fault);
    let url = redis.url();
    let (output, backoff) = std::thread::scope(|scope| {
        let run = scope.spawn(|| setup.run(&url, &[]));
        // While the limit holds, `porki status` shows the goal waiting and why.
        let backoff = wait_for(Duration::from_secs(60), "the goal backs off", || {
            let goal = try_status(&url)?;
            (!goal["backoff"].is_null()).then(|| goal["backoff"].clone())
        });
        (run.join().unwrap(), backoff)
    });
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        backoff["reason"].as_str().unwrap().contains("rate"),
        "{backoff}"
    );
    assert!(backoff["left_ms"].as_u64().unwrap() > 0, "{backoff}");
    // Every task DONE on its first attempt: the limited calls cost no attempt.
    assert_every_file_written(setup, &status(&url));
    setup
        .model
        .calls()
        .iter()
        .filter(|c| c.status == 429)
        .count()
}

/// A 429 on execute calls for `lasting`, with the OpenAI API's error body.
fn openai_429(lasting: Duration, retry_after: Option<u64>) -> Fault {
    Fault {
        status: 429,
        body: json!({"error": {"type": "requests", "code": "rate_limit_exceeded", "message": "Rate limit reached for the stand-in."}}),
        execute_only: true,
        lasting: Some(lasting),
        retry_after,
    }
}

#[test]
fn claude_rate_limited_makes_the_goal_wait_then_finish() {
    let setup = Setup::new("claude", "429");
    let body: Value = json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached for the stand-in; try again in 6s."}});
    let limited = waits_then_finishes(
        &setup,
        Fault {
            status: 429,
            body,
            execute_only: true,
            lasting: Some(Duration::from_secs(6)),
            retry_after: None,
        },
    );
    // The goal stopped asking while it waited: few 429s in all.
    assert!((1..=6).contains(&limited), "{limited} rate-limited calls");
}

/// Both codex cases at once (each waits porki's default minute).
#[test]
fn codex_rate_limited_with_or_without_retry_after_makes_the_goal_wait_then_finish() {
    let without = Setup::new("codex", "429");
    let with = Setup::new("codex", "429-retry-after");
    let (without_limited, with_limited) = std::thread::scope(|scope| {
        // codex fails at once: the limit is over long before porki asks again.
        let a =
            scope.spawn(|| waits_then_finishes(&without, openai_429(Duration::from_secs(3), None)));
        // codex retries for about five seconds itself; the limit outlasts that.
        let b = scope
            .spawn(|| waits_then_finishes(&with, openai_429(Duration::from_secs(10), Some(1))));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(without_limited, 1, "codex gives up on the first 429");
    assert!(
        (3..=20).contains(&with_limited),
        "{with_limited} rate-limited calls: codex should retry after 1 s a few times, and porki not on top"
    );
}
