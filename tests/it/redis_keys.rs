//! Redis as other programs see it: the key layout (hash tags, the keys of an
//! agent from before the tags), and a script's answer to a request the client
//! sent twice.

use porki::domain::AgentKind;
use porki::store::prelude::*;
use porki::store::{AgentField, AgentRecord, AgentState, RedisStore, keys};

use crate::support::{RedisServer, block_on, claim, hget, nodes, plan};

#[test]
fn an_agents_keys_from_before_the_hash_tags_are_moved_when_it_registers() {
    let server = RedisServer::start();
    let mut conn = server.conn();
    let old = |suffix: &str| format!("agent:analyst:{suffix}");
    redis::pipe()
        .set(old("paused"), "drain")
        .set(old("heartbeat_cursor"), "3:abc")
        .set(old("memory"), "[\"did x\"]")
        .rpush(old("errors"), "bad line")
        .hset(old("registered"), "state", "stopped")
        // Already written under the new name: the old one is dropped, not moved.
        .set(
            keys::agent_field("analyst", AgentField::Memory),
            "[\"newer\"]",
        )
        .exec(&mut conn)
        .unwrap();
    block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        store
            .register_agent(&AgentRecord {
                name: "analyst".into(),
                goal: "g".into(),
                role: None,
                kind: AgentKind::Manager,
                process: "host:1".into(),
                state: AgentState::Running,
            })
            .await
            .unwrap();
        let value = |field| {
            let store = store.clone();
            async move { store.agent_value("analyst", field).await.unwrap() }
        };
        assert_eq!(value(AgentField::Paused).await.as_deref(), Some("drain"));
        assert_eq!(
            value(AgentField::HeartbeatCursor).await.as_deref(),
            Some("3:abc")
        );
        assert_eq!(
            value(AgentField::Memory).await.as_deref(),
            Some("[\"newer\"]")
        );
        assert_eq!(store.agent_errors("analyst").await.unwrap(), ["bad line"]);
        assert_eq!(store.agents().await.unwrap()[0].state, AgentState::Running);
    });
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("agent:analyst:*")
        .query(&mut conn)
        .unwrap();
    assert!(left.is_empty(), "old keys left behind: {left:?}");
    let state: String = hget(&mut conn, "agent:{analyst}:registered", "state");
    assert_eq!(state, "running");
    let kind: String = hget(&mut conn, "agent:{analyst}:registered", "kind");
    assert_eq!(kind, "manager");
}

#[test]
fn an_agent_registered_before_agents_had_kinds_reads_as_a_builder() {
    let server = RedisServer::start();
    let mut conn = server.conn();
    // As a porki from before kinds wrote it: no `kind` field.
    redis::pipe()
        .hset_multiple(
            keys::agent_registered("old"),
            &[
                ("goal", "g"),
                ("role", "qa"),
                ("process", "host:1"),
                ("state", "running"),
            ],
        )
        .sadd(keys::AGENTS, "old")
        .exec(&mut conn)
        .unwrap();
    let agents = block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        store.agents().await.unwrap()
    });
    assert_eq!(agents.len(), 1);
    assert_eq!(
        (agents[0].role.as_deref(), agents[0].kind),
        (Some("qa"), AgentKind::Builder)
    );
}

/// The completion script as the Redis backend builds it (lib.lua first).
const COMPLETE_LUA: &str = concat!(
    include_str!("../../src/store/lua/lib.lua"),
    include_str!("../../src/store/lua/merge_lib.lua"),
    include_str!("../../src/store/lua/complete_lib.lua"),
    include_str!("../../src/store/lua/complete.lua"),
);

#[test]
fn a_completion_sent_twice_is_answered_ok_twice_and_applied_once() {
    let server = RedisServer::start();
    let (token, fence) = block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        porki::store::write_plan(
            &store,
            plan("g", nodes(&["a", "b"]), &[("a", "b")]),
            &Default::default(),
            100,
        )
        .await
        .unwrap();
        let lease = claim(&store, "g", "x", std::time::Duration::from_secs(60))
            .await
            .unwrap();
        (lease.token, lease.fence.to_string())
    });
    // What the client sends, twice when a failover cut the connection before the
    // answer came back.
    let script = redis::Script::new(COMPLETE_LUA);
    let send = |request: &str, progress: &str| -> Vec<String> {
        let args = ["a", &token, &fence, progress, "[]", request];
        send_goal_script(&server, &script, &["a", "b"], &args)
    };
    assert_eq!(send("request-1", "first"), ["ok", "0", "b"]);
    assert_eq!(
        send("request-1", "first"),
        ["ok", "0"],
        "the resend promotes nothing"
    );
    assert_eq!(
        send("request-2", "second"),
        ["lost"],
        "another completion of the same lease is refused"
    );
    let mut conn = server.conn();
    let progress: String = hget(&mut conn, "task:{g}:a", "progress");
    assert_eq!(progress, "first");
    let remaining: i64 = hget(&mut conn, "goal:{g}", "remaining");
    assert_eq!(remaining, 1, "a was counted DONE once");
}

/// Runs `script` on goal `g` as the Redis backend calls it: the goal's keys, no
/// roles, `tasks` with their locks; then G, the publish command, the counts, the
/// ids and `args`.
fn send_goal_script<T: redis::FromRedisValue>(
    server: &RedisServer,
    script: &redis::Script,
    tasks: &[&str],
    args: &[&str],
) -> T {
    let mut invocation = script.prepare_invoke();
    for key in keys::goal_keys("g") {
        invocation.key(key);
    }
    for task in tasks {
        invocation
            .key(keys::task("g", task))
            .key(keys::task_lock("g", task));
    }
    let count = tasks.len().to_string();
    for arg in ["g", "PUBLISH", "0", &count]
        .iter()
        .chain(tasks)
        .chain(args)
    {
        invocation.arg(*arg);
    }
    invocation.invoke(&mut server.conn()).unwrap()
}

/// The complete-and-claim script as the Redis backend builds it.
const COMPLETE_AND_CLAIM_LUA: &str = concat!(
    include_str!("../../src/store/lua/lib.lua"),
    include_str!("../../src/store/lua/claim_lib.lua"),
    include_str!("../../src/store/lua/merge_lib.lua"),
    include_str!("../../src/store/lua/complete_lib.lua"),
    include_str!("../../src/store/lua/complete_and_claim.lua"),
);

#[test]
fn a_complete_and_claim_sent_twice_claims_one_task_and_answers_it_twice() {
    // Regression: the resend was answered ok for the completion, then claimed
    // another task for the agent, which never heard of the first one.
    let server = RedisServer::start();
    let (token, fence) = block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        porki::store::write_plan(
            &store,
            plan("g", nodes(&["a", "b", "c"]), &[]),
            &Default::default(),
            100,
        )
        .await
        .unwrap();
        let lease = claim(&store, "g", "x", std::time::Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(lease.task, "a");
        (lease.token, lease.fence.to_string())
    });
    let script = redis::Script::new(COMPLETE_AND_CLAIM_LUA);
    let send = |request: &str| -> Vec<Vec<String>> {
        let args = [
            "a", &token, &fence, "done", "[]", "x", "", "60000", request, "1", "",
        ];
        send_goal_script(&server, &script, &["a", "b", "c"], &args)
    };
    let first = send("request-1");
    // The claim's rank (b: one typical task, 60 s) comes back with it, on the
    // resend too.
    let claimed = ["claimed", "b", "1", "1", "", "0", "60000"];
    assert_eq!(first[0], ["ok", "0"]);
    assert_eq!(first[1][..7], claimed, "{first:?}");
    let again = send("request-1");
    assert_eq!(again[0], ["ok", "0"]);
    assert_eq!(again[1], claimed, "the resend answers the same claim");
    assert_eq!(send("request-2"), [["lost"]]);
    let mut conn = server.conn();
    let c: String = hget(&mut conn, "task:{g}:c", "status");
    assert_eq!(c, "READY", "no second task was claimed");
    let attempt: i64 = hget(&mut conn, "task:{g}:b", "attempt");
    assert_eq!(attempt, 1);
    let lock: String = redis::cmd("GET")
        .arg(keys::task_lock("g", "b"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(lock, "request-1 1");
    // Once the claim no longer holds the task, a resend claims nothing.
    let _: () = redis::cmd("DEL")
        .arg(keys::task_lock("g", "b"))
        .query(&mut conn)
        .unwrap();
    assert_eq!(send("request-1")[1], ["empty", ""]);
}

/// The review-settling script as the Redis backend builds it.
const SETTLE_REVIEW_LUA: &str = concat!(
    include_str!("../../src/store/lua/lib.lua"),
    include_str!("../../src/store/lua/merge_lib.lua"),
    include_str!("../../src/store/lua/fail_lib.lua"),
    include_str!("../../src/store/lua/complete_lib.lua"),
    include_str!("../../src/store/lua/team_lib.lua"),
    include_str!("../../src/store/lua/settle_review.lua"),
);

#[test]
fn a_review_asking_for_changes_sent_twice_adds_one_fix_and_answers_it_twice() {
    // Regression: the resend of a verdict asking for changes answered `lost`.
    let server = RedisServer::start();
    let (token, fence) = block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        let review = porki::domain::Node {
            kind: porki::domain::TaskKind::Review,
            of: Some("a".into()),
            ..porki::domain::Node::new("a.review", "Review a")
        };
        let tasks = vec![porki::domain::Node::new("a", "A"), review];
        porki::store::write_plan(
            &store,
            plan("g", tasks, &[("a", "a.review")]),
            &Default::default(),
            100,
        )
        .await
        .unwrap();
        let ttl = std::time::Duration::from_secs(60);
        let a = claim(&store, "g", "x", ttl).await.unwrap();
        store
            .complete(&a, &porki::store::TaskResult::default())
            .await
            .unwrap();
        let r = claim(&store, "g", "x", ttl).await.unwrap();
        assert_eq!(r.task, "a.review");
        (r.token, r.fence.to_string())
    });
    let script = redis::Script::new(SETTLE_REVIEW_LUA);
    let send = |request: &str| -> Vec<String> {
        let args = [
            "a.review",
            &token,
            &fence,
            "notes",
            "[]",
            request,
            "changes",
            "add tests",
            "2",
            "",
        ];
        send_goal_script(&server, &script, &["a.review", "a", "a.fix-1"], &args)
    };
    assert_eq!(send("request-1"), ["fix", "a.fix-1"]);
    assert_eq!(send("request-1"), ["fix", "a.fix-1"], "the resend's answer");
    assert_eq!(send("request-2"), ["lost"]);
    let mut conn = server.conn();
    let cycle: i64 = hget(&mut conn, "task:{g}:a.review", "cycle");
    assert_eq!(cycle, 1, "changes were asked once");
    let total: i64 = hget(&mut conn, "goal:{g}", "total");
    assert_eq!(total, 3, "one fix was added");
}

#[test]
fn an_escalation_a_plan_stored_before_plans_were_refused_them_settles_only_itself() {
    // Regression: approving a planned escalation marked the task it named DONE,
    // whatever that task was doing.
    let server = RedisServer::start();
    block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        let review = porki::domain::Node {
            kind: porki::domain::TaskKind::Review,
            of: Some("a".into()),
            ..porki::domain::Node::new("r", "Review a")
        };
        let mut tasks = nodes(&["a", "b", "e1", "e2"]);
        tasks.push(review);
        let dag = plan("g", tasks, &[("a", "b"), ("a", "r")]);
        porki::store::write_plan(&store, dag, &Default::default(), 100)
            .await
            .unwrap();
    });
    // As such a plan stored them: e1 escalates work b, e2 the review r; neither
    // waits for it.
    redis::pipe()
        .hset_multiple(keys::task("g", "e1"), &[("kind", "escalate"), ("of", "b")])
        .hset_multiple(keys::task("g", "e2"), &[("kind", "escalate"), ("of", "r")])
        .exec(&mut server.conn())
        .unwrap();
    block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        for (id, about) in [("e1", "b"), ("e2", "r")] {
            let scope = porki::store::ClaimScope::builder(None);
            let ttl = std::time::Duration::from_secs(60);
            let claimed = store
                .claim_preferred("g", "lead", scope, ttl, Some(id))
                .await
                .unwrap();
            let porki::store::ClaimOutcome::Claimed(lease) = claimed else {
                panic!("{id} is claimed: {claimed:?}")
            };
            assert_eq!(lease.task, id);
            let outcome = store
                .settle_review(
                    &lease,
                    &porki::store::TaskResult::default(),
                    &porki::store::ReviewVerdict::Approved,
                    &Default::default(),
                )
                .await
                .unwrap();
            let moot = porki::store::ReviewOutcome::Moot {
                review: about.into(),
            };
            assert_eq!(outcome, moot);
            let task = store.task("g", about).await.unwrap().unwrap();
            assert_eq!(
                (task.status, task.pending_deps),
                (porki::domain::TaskStatus::Blocked, 1),
                "{about} is left as it is"
            );
        }
    });
}

/// The merge-conflict script as the Redis backend builds it.
const MERGE_CONFLICT_LUA: &str = concat!(
    include_str!("../../src/store/lua/lib.lua"),
    include_str!("../../src/store/lua/merge_lib.lua"),
    include_str!("../../src/store/lua/fail_lib.lua"),
    include_str!("../../src/store/lua/team_lib.lua"),
    include_str!("../../src/store/lua/merge_conflict.lua"),
);

#[test]
fn a_merge_conflict_sent_twice_adds_one_merge_task_and_answers_it_twice() {
    let server = RedisServer::start();
    let (token, fence) = block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        porki::store::write_plan(
            &store,
            plan("g", nodes(&["x"]), &[]),
            &Default::default(),
            100,
        )
        .await
        .unwrap();
        let lease = claim(&store, "g", "w", std::time::Duration::from_secs(60))
            .await
            .unwrap();
        (lease.token, lease.fence.to_string())
    });
    let script = redis::Script::new(MERGE_CONFLICT_LUA);
    let send = |fence: &str| -> Vec<String> {
        let args = [
            "x", &token, fence, "done", "[]", "notes", "{}", "failure", "2", "64",
        ];
        send_goal_script(&server, &script, &["x", "x.merge"], &args)
    };
    assert_eq!(send(&fence), ["merging", "x.merge", "x"]);
    assert_eq!(
        send(&fence),
        ["merging", "x.merge", "x"],
        "the resend's answer"
    );
    assert_eq!(send("7"), ["lost"], "another lease is refused");
    let mut conn = server.conn();
    let total: i64 = hget(&mut conn, "goal:{g}", "total");
    assert_eq!(total, 2, "one merge task was added");
    let status: String = hget(&mut conn, "task:{g}:x", "status");
    assert_eq!(status, "BLOCKED");
}

#[test]
fn the_merge_lock_is_a_key_of_the_goal_holding_its_token_task_and_fence_with_a_ttl() {
    let server = RedisServer::start();
    let lock = block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        porki::store::write_plan(
            &store,
            plan("g", nodes(&["x"]), &[]),
            &Default::default(),
            100,
        )
        .await
        .unwrap();
        let lease = claim(&store, "g", "w", std::time::Duration::from_secs(60))
            .await
            .unwrap();
        let ttl = std::time::Duration::from_secs(30);
        match store.acquire_merge_lock(&lease, ttl).await.unwrap() {
            porki::store::MergeLockOutcome::Acquired(lock) => (lock, lease.fence),
            busy => panic!("the lock is free, got {busy:?}"),
        }
    });
    let (lock, fence) = lock;
    let mut conn = server.conn();
    let key = keys::merge_lock("g");
    assert_eq!(key, "goal:{g}:merge");
    let value: String = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
    assert_eq!(value, format!("{} x {fence}", lock.token));
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut conn).unwrap();
    assert!(ttl > 0 && ttl <= 30_000, "{ttl}");
}
