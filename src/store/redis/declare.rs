//! Running a goal script with every key it touches declared in `KEYS`
//! (`lua/lib.lua` describes the layout and the `need` answer).
//!
//! Which tasks a script touches can depend on the data: the one a claim takes, the
//! dependents a completion promotes, the tasks a reap finds expired. The caller
//! declares what it expects, from what this process learned before ([`Hints`]); a
//! script that finds it needs more writes nothing and names what it needs, and is
//! called again with those declared. The hints make that rare: a claim's answer
//! carries the claimed task's dependents (for its completion), and a claim that
//! needed keys is told the next ids of its indexes (for the next claims).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, Script, ServerErrorKind, Value};

use super::RedisStore;
use crate::store::{StoreError, keys};

/// How often a script is called again for keys it needed before giving up with
/// [`StoreError::KeptChanging`]; each call declares everything the last one needed.
const ROUNDS: usize = 12;

/// Longest wait for a goal's event channel before its first script runs.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(1);

/// On a cluster, how long a completion waits for a replica of its primary to
/// have it (`WAIT 1`), so that a result the agent was told is stored survives a
/// failover of that primary.
const REPLICA_WAIT_MS: u64 = 100;

/// After a `WAIT` no replica answered (the primary has none left, e.g. just after
/// a failover), how long completions of that goal go without it.
const NO_REPLICA_PAUSE: Duration = Duration::from_secs(5);

/// Most ids kept as claim hints per goal and role, and most dependents lists kept.
const MAX_CLAIM_HINTS: usize = 64;
const MAX_DEPENDENTS: usize = 16_384;

/// What a goal script is run with: the tasks and roles to declare beside the
/// goal's fixed keys and the roles this process knows, and its own arguments.
pub(super) struct GoalCall<'a> {
    pub(super) goal: &'a str,
    /// Tasks the script is about (declared with their locks).
    pub(super) tasks: Vec<String>,
    /// Roles to declare beside the goal's known ones (a claiming agent's own role,
    /// a new plan's roles).
    pub(super) roles: Vec<String>,
    /// The script's own arguments (`ARG` in Lua).
    pub(super) args: Vec<String>,
    /// Where the ids a script needed are kept for next time.
    pub(super) learn: Learn,
    /// A completion: on a cluster, answered only once a replica has it too.
    pub(super) durable: bool,
}

/// Which hint the ids of a `need` answer refresh.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Learn {
    /// None: they serve this call only.
    Nothing,
    /// The claim hints of this role ('' for a roleless agent).
    Claim,
    /// The goal's RUNNING tasks, for the next reap.
    Running,
}

impl<'a> GoalCall<'a> {
    /// A call about `tasks` of `goal` with `args`.
    pub(super) fn new(goal: &'a str, tasks: &[&str], args: &[&str]) -> Self {
        Self {
            goal,
            tasks: tasks.iter().map(|t| t.to_string()).collect(),
            roles: Vec::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
            learn: Learn::Nothing,
            durable: false,
        }
    }
}

/// What this process learned about its goals' keys.
#[derive(Default)]
pub(super) struct Hints {
    goals: Mutex<HashMap<String, GoalHints>>,
}

#[derive(Default)]
struct GoalHints {
    /// Every role of the goal, as the last script that listed them found them.
    roles: Vec<String>,
    /// Role ('' for none) → ids the next claims of that role may take.
    claim: HashMap<String, Vec<String>>,
    /// The goal's RUNNING tasks, as the last reap that needed them found them.
    running: Vec<String>,
    /// Task → its dependents and whether it needs approval, from the claim that
    /// took it, for its completion.
    dependents: HashMap<String, (Vec<String>, bool)>,
    /// Until when completions skip `WAIT`: the goal's primary had no replica.
    no_replica_until: Option<Instant>,
}

impl Hints {
    /// Changes `goal`'s hints, which are made if it has none.
    fn with<T>(&self, goal: &str, f: impl FnOnce(&mut GoalHints) -> T) -> T {
        let mut goals = self.goals.lock().expect("hints lock");
        f(goals.entry(goal.to_string()).or_default())
    }

    /// Reads (or changes) `goal`'s hints if it has some; a goal this process
    /// never learned anything about gets no entry (a page asking about any name
    /// must not grow the map).
    fn peek<T: Default>(&self, goal: &str, f: impl FnOnce(&mut GoalHints) -> T) -> T {
        let mut goals = self.goals.lock().expect("hints lock");
        goals.get_mut(goal).map(f).unwrap_or_default()
    }

    /// Drops everything learned about `goal` (it finished or is gone).
    pub(super) fn forget(&self, goal: &str) {
        self.goals.lock().expect("hints lock").remove(goal);
    }

    /// Drops the hints of every goal not in `goals` (the store's list: the
    /// others were collected, or never planned).
    pub(super) fn keep_only(&self, goals: &[String]) {
        let listed: std::collections::HashSet<&str> = goals.iter().map(String::as_str).collect();
        let mut hinted = self.goals.lock().expect("hints lock");
        hinted.retain(|goal, _| listed.contains(goal.as_str()));
    }

    /// The goals with hints.
    fn goals(&self) -> Vec<String> {
        self.goals
            .lock()
            .expect("hints lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Ids a claim of `role` should declare: what the last claim of it sent back.
    pub(super) fn claim(&self, goal: &str, role: Option<&str>) -> Vec<String> {
        self.peek(goal, |h| {
            h.claim.get(role.unwrap_or("")).cloned().unwrap_or_default()
        })
    }

    /// A claim of `role` sent back the ids the next claims may take (a claim
    /// sends none while the ones it was given last suffice).
    pub(super) fn claim_hints(&self, goal: &str, role: Option<&str>, mut ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        dedup(&mut ids);
        ids.truncate(MAX_CLAIM_HINTS);
        self.with(goal, |h| {
            h.claim.insert(role.unwrap_or("").to_string(), ids);
        })
    }

    /// The goal's RUNNING tasks as last seen.
    pub(super) fn running(&self, goal: &str) -> Vec<String> {
        self.peek(goal, |h| h.running.clone())
    }

    /// A claim took `task`, whose dependents are `dependents`, and which needs a
    /// person's approval once it ran if `approval`.
    pub(super) fn claimed(&self, goal: &str, task: &str, dependents: Vec<String>, approval: bool) {
        self.with(goal, |h| {
            for ids in h.claim.values_mut() {
                ids.retain(|id| id != task);
            }
            if h.dependents.len() >= MAX_DEPENDENTS {
                h.dependents.clear();
            }
            h.dependents
                .insert(task.to_string(), (dependents, approval));
        })
    }

    /// Whether a held task needs approval, as its claim said: `"1"`/`"0"`, or
    /// `""` when this process did not claim it (the script reads the task).
    pub(super) fn approval(&self, goal: &str, task: &str) -> &'static str {
        self.peek(goal, |h| match h.dependents.get(task) {
            Some((_, true)) => "1",
            Some((_, false)) => "0",
            None => "",
        })
    }

    /// The dependents of a held task, if its claim said (kept for a retried call).
    pub(super) fn dependents(&self, goal: &str, task: &str) -> Vec<String> {
        self.peek(goal, |h| {
            h.dependents
                .get(task)
                .map(|(dependents, _)| dependents.clone())
                .unwrap_or_default()
        })
    }

    /// A held task is finished here: its dependents are no longer needed, and the
    /// tasks it `promoted` are READY, so the next claims may take them.
    pub(super) fn finished(&self, goal: &str, task: &str, promoted: &[String]) {
        // Only what is kept is updated: the goal may have just been forgotten
        // (its last completion completed it).
        self.peek(goal, |h| {
            h.dependents.remove(task);
            for ids in h.claim.values_mut() {
                for id in promoted {
                    if !ids.contains(id) {
                        ids.insert(0, id.clone());
                    }
                }
                ids.truncate(MAX_CLAIM_HINTS);
            }
        })
    }

    /// Keeps what the `need` answer of a claim of `role` names, for the next claims.
    pub(super) fn learn_claim(&self, goal: &str, role: Option<&str>, need: &[String]) {
        if let Some((roles, ids)) = need_parts(need) {
            let call = GoalCall {
                roles: role.map(|r| vec![r.to_string()]).unwrap_or_default(),
                learn: Learn::Claim,
                ..GoalCall::new(goal, &[], &[])
            };
            self.learn(&call, roles, &ids);
        }
    }

    /// Whether a completion of `goal` should wait for a replica.
    fn replica_expected(&self, goal: &str) -> bool {
        let goals = self.goals.lock().expect("hints lock");
        goals
            .get(goal)
            .is_none_or(|h| h.no_replica_until.is_none_or(|t| t <= Instant::now()))
    }

    /// No replica had the last completion of `goal` within the wait.
    fn no_replica(&self, goal: &str) {
        self.with(goal, |h| {
            h.no_replica_until = Some(Instant::now() + NO_REPLICA_PAUSE)
        });
    }

    fn roles(&self, goal: &str) -> Vec<String> {
        self.peek(goal, |h| h.roles.clone())
    }

    fn learn(&self, call: &GoalCall<'_>, roles: Vec<String>, ids: &[String]) {
        self.with(call.goal, |h| {
            h.roles = roles;
            let mut ids = ids.to_vec();
            dedup(&mut ids);
            match call.learn {
                Learn::Nothing => {}
                Learn::Claim => {
                    let role = call.roles.first().cloned().unwrap_or_default();
                    ids.truncate(MAX_CLAIM_HINTS);
                    h.claim.insert(role, ids);
                }
                Learn::Running => h.running = ids,
            }
        })
    }
}

/// Whether a script's answer says its goal is complete: a claim's
/// `{'inactive', 'complete'}`, at the top or inside (complete_and_claim answers
/// `{completion, claim}`). Agents that woke on the goal's end claim once more
/// and retire: their claim must not leave the goal watched.
fn says_complete(value: &Value) -> bool {
    let Value::Array(items) = value else {
        return false;
    };
    fn text(v: &Value) -> Option<&[u8]> {
        match v {
            Value::BulkString(bytes) => Some(bytes.as_slice()),
            Value::SimpleString(s) => Some(s.as_bytes()),
            _ => None,
        }
    }
    match items.as_slice() {
        [first, second, ..]
            if text(first) == Some(b"inactive") && text(second) == Some(b"complete") =>
        {
            true
        }
        _ => items
            .iter()
            .any(|item| matches!(item, Value::Array(_)) && says_complete(item)),
    }
}

/// Removes repeated ids, keeping the first of each.
fn dedup(ids: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
}

/// The roles and ids of a `need` answer: `{'need', #roles, roles..., ids...}`, at
/// the top or as the only element (complete_and_claim wraps its answers in a list).
fn need_of(value: &Value) -> Option<(Vec<String>, Vec<String>)> {
    let Value::Array(items) = value else {
        return None;
    };
    if let [inner @ Value::Array(_)] = items.as_slice() {
        return need_of(inner);
    }
    need_parts(&Vec::<String>::from_redis_value_ref(value).ok()?)
}

/// The roles and ids of a `need` answer read as text.
fn need_parts(text: &[String]) -> Option<(Vec<String>, Vec<String>)> {
    if text.first().map(String::as_str) != Some("need") {
        return None;
    }
    let roles: usize = text.get(1)?.parse().ok()?;
    let rest = text.get(2..)?;
    if rest.len() < roles {
        return None;
    }
    Some((rest[..roles].to_vec(), rest[roles..].to_vec()))
}

impl RedisStore {
    /// Drops what this process keeps about `goal` (hints; on a cluster, its
    /// channel's subscription): it finished or is gone. A later script on the
    /// goal takes it up again.
    pub(super) fn forget_goal(&self, goal: &str) {
        self.events.forget(goal);
    }

    /// The goals this process keeps state for (claim hints; on a cluster, a
    /// subscription to their events): the goals it works on. For tests and
    /// diagnostics: it shrinks as goals finish or are collected, and reading a
    /// goal's status adds none.
    pub fn goals_kept(&self) -> std::collections::BTreeSet<String> {
        let mut goals: std::collections::BTreeSet<String> =
            self.hints.goals().into_iter().collect();
        goals.extend(self.events.watched());
        goals
    }

    /// Runs a goal script with its keys declared (see the module doc), calling it
    /// again while it answers `need`.
    pub(super) async fn run_goal<T: FromRedisValue>(
        &self,
        script: &Script,
        call: GoalCall<'_>,
    ) -> Result<T, StoreError> {
        if let Some(subscribed) = self.events.watch(call.goal) {
            // The first script on a goal waits (once, briefly) for its channel.
            let _ = tokio::time::timeout(SUBSCRIBE_WAIT, subscribed).await;
        }
        self.run_goal_unwatched(script, call).await
    }

    /// [`Self::run_goal`] without subscribing to the goal's events first: for a
    /// script that only looks at a goal to remove it (porki gc), whose events
    /// this process has no use for.
    pub(super) async fn run_goal_unwatched<T: FromRedisValue>(
        &self,
        script: &Script,
        mut call: GoalCall<'_>,
    ) -> Result<T, StoreError> {
        let publish = if self.conn.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        };
        dedup(&mut call.tasks);
        for _ in 0..ROUNDS {
            let mut roles = call.roles.clone();
            roles.extend(self.hints.roles(call.goal));
            roles.retain(|r| !r.is_empty());
            dedup(&mut roles);
            let mut cmd = redis::cmd("EVALSHA");
            cmd.arg(script.get_hash())
                .arg(keys::GOAL_KEY_NAMES.len() + roles.len() + 2 * call.tasks.len())
                .arg(&keys::goal_keys(call.goal)[..]);
            for role in &roles {
                cmd.arg(keys::ready(call.goal, Some(role)));
            }
            for task in &call.tasks {
                cmd.arg(keys::task(call.goal, task))
                    .arg(keys::task_lock(call.goal, task));
            }
            cmd.arg(call.goal)
                .arg(publish)
                .arg(roles.len())
                .arg(call.tasks.len())
                .arg(&roles)
                .arg(&call.tasks)
                .arg(&call.args);
            let value = self.eval(script, cmd, call.goal, call.durable).await?;
            match need_of(&value) {
                Some((roles, ids)) => {
                    self.hints.learn(&call, roles, &ids);
                    call.tasks.extend(ids);
                    dedup(&mut call.tasks);
                }
                None => {
                    if says_complete(&value) {
                        self.forget_goal(call.goal);
                    }
                    return T::from_redis_value(value).map_err(|e| StoreError::Redis(e.into()));
                }
            }
        }
        Err(StoreError::KeptChanging {
            goal: call.goal.to_string(),
            rounds: ROUNDS,
        })
    }

    /// Runs `cmd` (an `EVALSHA` of `script`), loading the script where the node
    /// does not have it (first use, or a replica just promoted). A `durable` call
    /// on a cluster is followed in the same round trip by `WAIT 1` on the same
    /// connection, so it is answered once a replica has it too.
    async fn eval(
        &self,
        script: &Script,
        cmd: Cmd,
        goal: &str,
        durable: bool,
    ) -> Result<Value, RedisError> {
        let mut conn = self.conn.clone();
        let wait = durable && self.conn.is_cluster() && self.hints.replica_expected(goal);
        let mut loaded = false;
        loop {
            let answer = if wait {
                let mut pipe = redis::pipe();
                pipe.add_command(cmd.clone())
                    .cmd("WAIT")
                    .arg(1)
                    .arg(REPLICA_WAIT_MS);
                pipe.query_async::<(Value, i64)>(&mut conn)
                    .await
                    .map(|(value, replicas)| {
                        if replicas == 0 {
                            self.hints.no_replica(goal);
                        }
                        value
                    })
            } else {
                cmd.query_async::<Value>(&mut conn).await
            };
            match answer {
                Err(e) if !loaded && e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script.load_async(&mut conn).await?;
                    loaded = true;
                }
                answer => return answer,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(items: &[&str]) -> Value {
        Value::Array(
            items
                .iter()
                .map(|s| Value::BulkString(s.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn need_answers_are_read_at_the_top_or_wrapped_once() {
        let need = bulk(&["need", "2", "r1", "r2", "t1", "t2"]);
        let expected = Some((
            vec!["r1".into(), "r2".into()],
            vec!["t1".into(), "t2".into()],
        ));
        assert_eq!(need_of(&need), expected);
        assert_eq!(need_of(&Value::Array(vec![need.clone()])), expected);
        assert_eq!(need_of(&bulk(&["need", "0"])), Some((vec![], vec![])));
        // A completion followed by a claim that needed keys is not a call to repeat.
        assert_eq!(need_of(&Value::Array(vec![bulk(&["ok", "0"]), need])), None);
        assert_eq!(need_of(&bulk(&["ok"])), None);
        assert_eq!(need_of(&bulk(&["need", "3", "r1"])), None);
    }

    #[test]
    fn a_claim_that_finds_its_goal_complete_is_recognised_where_it_stands() {
        let complete = bulk(&["inactive", "complete"]);
        assert!(says_complete(&complete));
        // complete_and_claim: the completion, then the claim.
        assert!(says_complete(&Value::Array(vec![
            bulk(&["ok", "1"]),
            complete.clone()
        ])));
        assert!(!says_complete(&bulk(&["inactive", "failed"])));
        assert!(!says_complete(&bulk(&["claimed", "inactive", "complete"])));
        assert!(!says_complete(&Value::Array(vec![
            bulk(&["ok", "0"]),
            bulk(&["empty", ""])
        ])));
    }
}
