//! The Redis backend: one Lua script per multi-key change, invoked by SHA.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use std::sync::{Arc, OnceLock, Weak};
use tokio::sync::broadcast;

use super::{
    AgentField, AgentRecord, ClaimOutcome, CompleteOutcome, EventKind, FailOutcome, GoalState,
    GoalStatus, Lease, ReapOutcome, Store, StoreError, StoreEvent, TaskResult, WriteDagOptions,
    WriteDagOutcome, keys,
};
use crate::domain::{Dag, Edge, Node, TaskState, TaskStatus, ValidatedDag, check_id};

/// Builds a task script: the shared helpers, the helper files it needs, then the
/// script itself (the last file).
macro_rules! task_script {
    ($($file:literal),+) => {
        Script::new(concat!(include_str!("lua/lib.lua"), $(include_str!(concat!("lua/", $file))),+))
    };
}

struct Scripts {
    write_dag: Script,
    claim: Script,
    renew: Script,
    complete: Script,
    complete_and_claim: Script,
    fail: Script,
    release: Script,
    reap: Script,
    drop_task: Script,
    retry_task: Script,
    elevate: Script,
    plan_failed: Script,
    goal_status: Script,
    agent_register: Script,
    guard_renew: Script,
    guard_release: Script,
    agent_swap: Script,
    gate_acquire: Script,
    gate_renew: Script,
    gate_count: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            write_dag: task_script!("write_dag.lua"),
            claim: task_script!("claim_lib.lua", "claim.lua"),
            renew: task_script!("renew.lua"),
            complete: task_script!("complete_lib.lua", "complete.lua"),
            complete_and_claim: task_script!(
                "claim_lib.lua",
                "complete_lib.lua",
                "complete_and_claim.lua"
            ),
            fail: task_script!("fail_lib.lua", "fail.lua"),
            release: task_script!("release.lua"),
            reap: task_script!("fail_lib.lua", "reap.lua"),
            drop_task: task_script!("fail_lib.lua", "drop_task.lua"),
            retry_task: task_script!("retry_task.lua"),
            elevate: task_script!("elevate.lua"),
            plan_failed: task_script!("plan_failed.lua"),
            goal_status: task_script!("goal_status.lua"),
            agent_register: Script::new(include_str!("lua/agent_register.lua")),
            guard_renew: Script::new(include_str!("lua/guard_renew.lua")),
            guard_release: Script::new(include_str!("lua/guard_release.lua")),
            agent_swap: Script::new(include_str!("lua/agent_swap.lua")),
            gate_acquire: Script::new(include_str!("lua/gate_acquire.lua")),
            gate_renew: Script::new(include_str!("lua/gate_renew.lua")),
            gate_count: Script::new(include_str!("lua/gate_count.lua")),
        }
    }
}

/// The task store on Redis, over one auto-reconnecting multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    conn: ConnectionManager,
    scripts: Arc<Scripts>,
    events: Arc<EventFeed>,
}

/// The in-process fan-out of `events:*`, fed by one subscriber connection started
/// on first use.
struct EventFeed {
    sender: broadcast::Sender<StoreEvent>,
    started: OnceLock<()>,
}

impl RedisStore {
    /// Connects to `url` (`redis://host:port[/db]`).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        // Writing a 10,000-task plan is one script that can take a second or more.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)))
            // One quick try per attempt: callers decide how to back off and what
            // to log, and a dropped connection is re-dialled on the next command.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Self {
            client,
            conn,
            scripts: Arc::new(Scripts::new()),
            events: Arc::new(EventFeed {
                sender: broadcast::channel(super::EVENT_CHANNEL_CAPACITY).0,
                started: OnceLock::new(),
            }),
        })
    }

    /// A handle on the underlying connection, for callers that need plain commands.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Runs a task script with `goal:{G}` as its key and `G` then `args` as ARGV.
    async fn run_task_script(
        &self,
        script: &Script,
        goal: &str,
        args: &[&str],
    ) -> Result<Vec<String>, StoreError> {
        let mut invocation = script.key(keys::goal(goal));
        invocation.arg(goal);
        for arg in args {
            invocation.arg(*arg);
        }
        Ok(invocation.invoke_async(&mut self.conn.clone()).await?)
    }

    /// Runs a lease-checked script and turns `lost` into [`StoreError::LeaseLost`].
    async fn run_lease_script(
        &self,
        script: &Script,
        lease: &Lease,
        extra: &[&str],
    ) -> Result<Vec<String>, StoreError> {
        let fence = lease.fence.to_string();
        let mut args = vec![lease.task.as_str(), lease.token.as_str(), fence.as_str()];
        args.extend_from_slice(extra);
        let reply = self.run_task_script(script, &lease.goal, &args).await?;
        if reply.first().map(String::as_str) == Some("lost") {
            return Err(StoreError::LeaseLost {
                goal: lease.goal.clone(),
                task: lease.task.clone(),
                fence: lease.fence,
            });
        }
        Ok(reply)
    }
}

/// Maps the `no_task` and `state` replies of the admin scripts to errors.
fn admin_reply(
    reply: Vec<String>,
    goal: &str,
    task: &str,
    action: &'static str,
    needed: &'static str,
) -> Result<Vec<String>, StoreError> {
    match reply.first().map(String::as_str) {
        Some("ok") => Ok(reply),
        Some("no_task") => Err(StoreError::UnknownTask {
            goal: goal.to_string(),
            task: task.to_string(),
        }),
        Some("state") => Err(StoreError::WrongState {
            goal: goal.to_string(),
            task: task.to_string(),
            status: parse_status(reply.get(1).map(String::as_str).unwrap_or(""))?,
            action,
            needed,
        }),
        _ => Err(unexpected(action, &reply)),
    }
}

/// Reads a claim reply (see claim_lib.lua); `token` is the one the script stored.
fn claim_reply(
    reply: Vec<String>,
    goal: &str,
    agent: &str,
    token: String,
) -> Result<ClaimOutcome, StoreError> {
    match reply.first().map(String::as_str) {
        Some("claimed") if reply.len() == 4 => Ok(ClaimOutcome::Claimed(Lease {
            goal: goal.to_string(),
            task: reply[1].clone(),
            agent: agent.to_string(),
            token,
            fence: reply[2].parse().map_err(|_| unexpected("claim", &reply))?,
            attempt: reply[3].parse().map_err(|_| unexpected("claim", &reply))?,
        })),
        Some("empty") => Ok(ClaimOutcome::Empty {
            retry_in: reply
                .get(1)
                .and_then(|ms| ms.parse::<i64>().ok())
                .map(|ms| Duration::from_millis(ms.max(0) as u64)),
        }),
        Some("inactive") => Ok(ClaimOutcome::Empty { retry_in: None }),
        Some("no_goal") => Err(StoreError::UnknownGoal {
            goal: goal.to_string(),
        }),
        _ => Err(unexpected("claim", &reply)),
    }
}

/// Reads a completion reply (see complete_lib.lua) once the lease was found live.
fn complete_reply(mut reply: Vec<String>) -> Result<CompleteOutcome, StoreError> {
    if reply.first().map(String::as_str) != Some("ok") || reply.len() < 2 {
        return Err(unexpected("complete", &reply));
    }
    let goal_complete = reply[1] == "1";
    let mut promoted = reply.split_off(2);
    promoted.sort();
    Ok(CompleteOutcome {
        promoted,
        goal_complete,
    })
}

fn unexpected(what: &str, reply: &[String]) -> StoreError {
    StoreError::Corrupt {
        what: format!("{what} script reply"),
        detail: format!("{reply:?}"),
    }
}

fn parse_status(s: &str) -> Result<TaskStatus, StoreError> {
    s.parse().map_err(|detail| StoreError::Corrupt {
        what: "task status".into(),
        detail,
    })
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// Reads a task hash (`HGETALL task:{G}:T`) into a [`TaskState`].
fn task_from_fields(
    goal: &str,
    id: &str,
    fields: &HashMap<String, String>,
) -> Result<TaskState, StoreError> {
    let corrupt = |field: &str, detail: String| StoreError::Corrupt {
        what: format!("{}.{field}", keys::task(goal, id)),
        detail,
    };
    let text = |field: &str| fields.get(field).cloned();
    fn number<T: std::str::FromStr>(
        fields: &HashMap<String, String>,
        field: &str,
    ) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        fields
            .get(field)
            .map(|v| v.parse::<T>().map_err(|e| format!("{v:?}: {e}")))
            .transpose()
    }
    macro_rules! num {
        ($field:literal) => {
            number(fields, $field).map_err(|e| corrupt($field, e))?
        };
    }
    let status = parse_status(fields.get("status").map(String::as_str).unwrap_or(""))?;
    let artifacts = match fields.get("artifacts") {
        Some(json) => {
            serde_json::from_str(json).map_err(|e| corrupt("artifacts", e.to_string()))?
        }
        None => Vec::new(),
    };
    Ok(TaskState {
        goal: goal.to_string(),
        id: id.to_string(),
        title: text("title").unwrap_or_default(),
        role: text("role"),
        priority: num!("priority").unwrap_or(0),
        status,
        owner: text("owner"),
        attempt: num!("attempt").unwrap_or(0),
        fence: num!("fence").unwrap_or(0),
        // Scripts overwrite these with 0 rather than delete them: 0 is unset.
        lease_expires_ms: num!("lease_expires").filter(|ms| *ms != 0),
        progress: text("progress").unwrap_or_default(),
        artifacts,
        last_error: text("last_error"),
        pending_deps: num!("pending").unwrap_or(0),
        retry_at_ms: num!("retry_at").filter(|ms| *ms != 0),
        created_ms: num!("created_at").unwrap_or(0),
        updated_ms: num!("updated_at").unwrap_or(0),
        started_ms: num!("started_at"),
        finished_ms: num!("finished_at"),
    })
}

#[async_trait]
impl Store for RedisStore {
    async fn write_dag(
        &self,
        dag: &ValidatedDag,
        options: &WriteDagOptions,
    ) -> Result<WriteDagOutcome, StoreError> {
        let goal = dag.goal_id();
        let plan: Vec<serde_json::Value> = dag
            .dag()
            .nodes
            .iter()
            .map(|node| {
                serde_json::json!({
                    "id": node.id,
                    "node": serde_json::to_string(node).expect("a node serializes"),
                    "title": node.title,
                    "priority": node.priority,
                    "role": node.effective_role().unwrap_or(""),
                    "deps": dag.deps_of(&node.id),
                    "dependents": dag.dependents_of(&node.id),
                })
            })
            .collect();
        let plan = serde_json::Value::Array(plan).to_string();
        let attempts = options.max_attempts.max(1).to_string();
        let replace = if options.replace { "1" } else { "0" };
        let reply = self
            .run_task_script(
                &self.scripts.write_dag,
                goal,
                &[
                    dag.fingerprint(),
                    &options.title,
                    &attempts,
                    replace,
                    &plan,
                    &options.source,
                ],
            )
            .await?;
        let outcome = match reply.first().map(String::as_str) {
            Some("created") => WriteDagOutcome::Created,
            Some("replaced") => WriteDagOutcome::Replaced,
            Some("unchanged") => WriteDagOutcome::Unchanged,
            Some("conflict") => {
                return Err(StoreError::PlanConflict {
                    goal: goal.to_string(),
                    existing: reply.get(1).cloned().unwrap_or_default(),
                });
            }
            _ => return Err(unexpected("write_dag", &reply)),
        };
        // Single-key and idempotent, so outside the script: a crash in between is
        // healed by the next write, which finds the plan unchanged and adds it again.
        let _: () = self.conn.clone().sadd(keys::GOALS, goal).await?;
        Ok(outcome)
    }

    async fn claim(
        &self,
        goal: &str,
        agent: &str,
        role: Option<&str>,
        ttl: Duration,
    ) -> Result<ClaimOutcome, StoreError> {
        let token = super::new_token();
        let reply = self
            .run_task_script(
                &self.scripts.claim,
                goal,
                &[agent, role.unwrap_or(""), &millis(ttl), &token, ""],
            )
            .await?;
        claim_reply(reply, goal, agent, token)
    }

    async fn claim_preferred(
        &self,
        goal: &str,
        agent: &str,
        role: Option<&str>,
        ttl: Duration,
        task: &str,
    ) -> Result<ClaimOutcome, StoreError> {
        let token = super::new_token();
        let reply = self
            .run_task_script(
                &self.scripts.claim,
                goal,
                &[agent, role.unwrap_or(""), &millis(ttl), &token, task],
            )
            .await?;
        claim_reply(reply, goal, agent, token)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        self.run_lease_script(&self.scripts.renew, lease, &[&millis(ttl)])
            .await
            .map(drop)
    }

    async fn complete(
        &self,
        lease: &Lease,
        result: &TaskResult,
    ) -> Result<CompleteOutcome, StoreError> {
        let artifacts = serde_json::to_string(&result.artifacts).expect("strings serialize");
        let reply = self
            .run_lease_script(
                &self.scripts.complete,
                lease,
                &[&result.progress, &artifacts],
            )
            .await?;
        complete_reply(reply)
    }

    async fn complete_and_claim(
        &self,
        lease: &Lease,
        result: &TaskResult,
        role: Option<&str>,
        ttl: Duration,
    ) -> Result<(CompleteOutcome, ClaimOutcome), StoreError> {
        let artifacts = serde_json::to_string(&result.artifacts).expect("strings serialize");
        let token = super::new_token();
        let fence = lease.fence.to_string();
        let mut invocation = self.scripts.complete_and_claim.key(keys::goal(&lease.goal));
        invocation
            .arg(&lease.goal)
            .arg(&lease.task)
            .arg(&lease.token)
            .arg(&fence)
            .arg(&result.progress)
            .arg(&artifacts)
            .arg(&lease.agent)
            .arg(role.unwrap_or(""))
            .arg(millis(ttl))
            .arg(&token);
        let mut replies: Vec<Vec<String>> = invocation.invoke_async(&mut self.conn.clone()).await?;
        match replies.len() {
            1 if replies[0].first().map(String::as_str) == Some("lost") => {
                Err(StoreError::LeaseLost {
                    goal: lease.goal.clone(),
                    task: lease.task.clone(),
                    fence: lease.fence,
                })
            }
            2 => {
                let claimed = replies.pop().expect("two replies");
                let completed = complete_reply(replies.pop().expect("two replies"))?;
                let claimed = claim_reply(claimed, &lease.goal, &lease.agent, token)?;
                Ok((completed, claimed))
            }
            _ => Err(unexpected("complete_and_claim", &replies.concat())),
        }
    }

    async fn fail(
        &self,
        lease: &Lease,
        error: &str,
        retryable: bool,
        backoff: Duration,
    ) -> Result<FailOutcome, StoreError> {
        let reply = self
            .run_lease_script(
                &self.scripts.fail,
                lease,
                &[error, if retryable { "1" } else { "0" }, &millis(backoff)],
            )
            .await?;
        match reply.first().map(String::as_str) {
            Some("retrying") => Ok(FailOutcome::Retrying { after: backoff }),
            Some("failed") => Ok(FailOutcome::Failed),
            _ => Err(unexpected("fail", &reply)),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        self.run_lease_script(&self.scripts.release, lease, &[])
            .await
            .map(drop)
    }

    async fn reap(&self, goal: &str) -> Result<ReapOutcome, StoreError> {
        let mut invocation = self.scripts.reap.key(keys::goal(goal));
        invocation.arg(goal);
        let (mut requeued, mut failed): (Vec<String>, Vec<String>) =
            invocation.invoke_async(&mut self.conn.clone()).await?;
        requeued.sort();
        failed.sort();
        Ok(ReapOutcome { requeued, failed })
    }

    async fn drop_task(&self, goal: &str, task: &str, reason: &str) -> Result<(), StoreError> {
        let reply = self
            .run_task_script(&self.scripts.drop_task, goal, &[task, reason])
            .await?;
        admin_reply(reply, goal, task, "dropping", "not DONE").map(drop)
    }

    async fn retry_task(&self, goal: &str, task: &str) -> Result<TaskStatus, StoreError> {
        let reply = self
            .run_task_script(&self.scripts.retry_task, goal, &[task])
            .await?;
        let reply = admin_reply(reply, goal, task, "retrying", "FAILED")?;
        parse_status(reply.get(1).map(String::as_str).unwrap_or(""))
    }

    async fn elevate(&self, goal: &str, task: &str, priority: i32) -> Result<(), StoreError> {
        let reply = self
            .run_task_script(&self.scripts.elevate, goal, &[task, &priority.to_string()])
            .await?;
        admin_reply(reply, goal, task, "elevating", "to exist").map(drop)
    }

    async fn add_usage(&self, goal: &str, tokens: u64, cost_usd: f64) -> Result<u64, StoreError> {
        let key = keys::goal(goal);
        let mut pipe = redis::pipe();
        pipe.atomic().hincr(&key, "tokens", tokens);
        if cost_usd > 0.0 {
            pipe.cmd("HINCRBYFLOAT")
                .arg(&key)
                .arg("cost_usd")
                .arg(cost_usd)
                .ignore();
        }
        let (total,): (u64,) = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(total)
    }

    async fn fail_unplanned_goal(&self, goal: &str, reason: &str) -> Result<(), StoreError> {
        self.run_task_script(&self.scripts.plan_failed, goal, &[reason])
            .await?;
        let _: () = self.conn.clone().sadd(keys::GOALS, goal).await?;
        Ok(())
    }

    async fn goal_status(&self, goal: &str) -> Result<Option<GoalStatus>, StoreError> {
        let mut invocation = self.scripts.goal_status.key(keys::goal(goal));
        invocation.arg(goal);
        let (fields, counts): (HashMap<String, String>, Vec<i64>) =
            invocation.invoke_async(&mut self.conn.clone()).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        goal_from_fields(goal, &fields, &counts).map(Some)
    }

    async fn goals(&self) -> Result<Vec<String>, StoreError> {
        let mut goals: Vec<String> = self.conn.clone().smembers(keys::GOALS).await?;
        goals.sort();
        Ok(goals)
    }

    async fn task(&self, goal: &str, task: &str) -> Result<Option<TaskState>, StoreError> {
        let fields: HashMap<String, String> =
            self.conn.clone().hgetall(keys::task(goal, task)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        task_from_fields(goal, task, &fields).map(Some)
    }

    async fn tasks(&self, goal: &str) -> Result<Vec<TaskState>, StoreError> {
        let mut conn = self.conn.clone();
        let mut ids: Vec<String> = conn.hkeys(keys::dag_nodes(goal)).await?;
        ids.sort();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(keys::task(goal, id));
        }
        let all: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        ids.iter()
            .zip(&all)
            .filter(|(_, fields)| !fields.is_empty())
            .map(|(id, fields)| task_from_fields(goal, id, fields))
            .collect()
    }

    async fn dag(&self, goal: &str) -> Result<Option<Dag>, StoreError> {
        let mut conn = self.conn.clone();
        let (nodes, deps): (HashMap<String, String>, HashMap<String, String>) = redis::pipe()
            .hgetall(keys::dag_nodes(goal))
            .hgetall(keys::dag_deps(goal))
            .query_async(&mut conn)
            .await?;
        if nodes.is_empty() {
            return Ok(None);
        }
        let corrupt = |key: String, e: serde_json::Error| StoreError::Corrupt {
            what: key,
            detail: e.to_string(),
        };
        let mut nodes = nodes
            .iter()
            .map(|(id, json)| {
                serde_json::from_str::<Node>(json)
                    .map_err(|e| corrupt(keys::dag_nodes(goal) + "." + id, e))
            })
            .collect::<Result<Vec<Node>, _>>()?;
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut edges = Vec::new();
        for (target, json) in &deps {
            let sources: Vec<String> = serde_json::from_str(json)
                .map_err(|e| corrupt(keys::dag_deps(goal) + "." + target, e))?;
            edges.extend(sources.into_iter().map(|source| Edge {
                source,
                target: target.clone(),
            }));
        }
        edges.sort();
        Ok(Some(Dag {
            goal_id: goal.to_string(),
            nodes,
            edges,
        }))
    }

    fn events(&self) -> broadcast::Receiver<StoreEvent> {
        let receiver = self.events.sender.subscribe();
        self.events.started.get_or_init(|| {
            tokio::spawn(feed_events(
                self.client.clone(),
                Arc::downgrade(&self.events),
            ));
        });
        receiver
    }

    async fn gate_acquire(&self, token: &str, cap: u32, ttl: Duration) -> Result<bool, StoreError> {
        let granted: i64 = self
            .scripts
            .gate_acquire
            .key(keys::LLM_GATE)
            .arg(token)
            .arg(cap)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(granted == 1)
    }

    async fn gate_renew(&self, token: &str, ttl: Duration) -> Result<bool, StoreError> {
        let renewed: i64 = self
            .scripts
            .gate_renew
            .key(keys::LLM_GATE)
            .arg(token)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(renewed == 1)
    }

    async fn gate_release(&self, token: &str) -> Result<(), StoreError> {
        let _: i64 = self.conn.clone().zrem(keys::LLM_GATE, token).await?;
        Ok(())
    }

    async fn gate_in_flight(&self) -> Result<u64, StoreError> {
        let count: u64 = self
            .scripts
            .gate_count
            .key(keys::LLM_GATE)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(count)
    }

    async fn register_agent(&self, record: &AgentRecord) -> Result<(), StoreError> {
        check_id("agent name", &record.name)?;
        let mut invocation = self.scripts.agent_register.prepare_invoke();
        invocation
            .key(keys::AGENTS)
            .key(keys::agent_registered(&record.name))
            .arg(&record.name)
            .arg("goal")
            .arg(&record.goal)
            .arg("role")
            .arg(record.role.as_deref().unwrap_or(""))
            .arg("process")
            .arg(&record.process)
            .arg("state")
            .arg(&record.state);
        let _: String = invocation.invoke_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let mut names: Vec<String> = conn.smembers(keys::AGENTS).await?;
        names.sort();
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.hgetall(keys::agent_registered(name));
        }
        let all: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        Ok(names
            .into_iter()
            .zip(all)
            .filter(|(_, fields)| !fields.is_empty())
            .map(|(name, mut fields)| AgentRecord {
                name,
                goal: fields.remove("goal").unwrap_or_default(),
                role: fields.remove("role").filter(|r| !r.is_empty()),
                process: fields.remove("process").unwrap_or_default(),
                state: fields.remove("state").unwrap_or_default(),
            })
            .collect())
    }

    async fn agent_value(
        &self,
        name: &str,
        field: AgentField,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .clone()
            .get(keys::agent_field(name, field))
            .await?)
    }

    async fn set_agent_value(
        &self,
        name: &str,
        field: AgentField,
        value: Option<&str>,
    ) -> Result<(), StoreError> {
        let key = keys::agent_field(name, field);
        let mut conn = self.conn.clone();
        match value {
            Some(value) => conn.set::<_, _, ()>(key, value).await?,
            None => conn.del::<_, ()>(key).await?,
        }
        Ok(())
    }

    async fn swap_agent_value(
        &self,
        name: &str,
        field: AgentField,
        expected: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError> {
        let swapped: i64 = self
            .scripts
            .agent_swap
            .key(keys::agent_field(name, field))
            .arg(expected.unwrap_or(""))
            .arg(value)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(swapped == 1)
    }

    async fn push_agent_error(&self, name: &str, message: &str) -> Result<(), StoreError> {
        let key = keys::agent_errors(name);
        let _: () = redis::pipe()
            .atomic()
            .lpush(&key, message)
            .ignore()
            .ltrim(&key, 0, super::AGENT_ERRORS_KEPT as isize - 1)
            .ignore()
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn agent_errors(&self, name: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .conn
            .clone()
            .lrange(keys::agent_errors(name), 0, -1)
            .await?)
    }

    async fn agent_heartbeat(&self, name: &str, ttl: Duration) -> Result<(), StoreError> {
        let _: () = self
            .conn
            .clone()
            .pset_ex(keys::agent_heartbeat(name), "alive", ttl.as_millis() as u64)
            .await?;
        Ok(())
    }

    async fn agent_alive(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .clone()
            .exists(keys::agent_heartbeat(name))
            .await?)
    }

    async fn acquire_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64));
        let set: Option<String> = self
            .conn
            .clone()
            .set_options(keys::agent_active(name), token, options)
            .await?;
        if set.is_some() {
            return Ok(true);
        }
        self.renew_agent_guard(name, token, ttl).await
    }

    async fn renew_agent_guard(
        &self,
        name: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let renewed: i64 = self
            .scripts
            .guard_renew
            .key(keys::agent_active(name))
            .arg(token)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(renewed == 1)
    }

    async fn release_agent_guard(&self, name: &str, token: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .scripts
            .guard_release
            .key(keys::agent_active(name))
            .arg(token)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}

/// Reads the goal hash and the per-state counts `goal_status.lua` derived (in
/// [`TaskStatus::ALL`] order) into a [`GoalStatus`].
fn goal_from_fields(
    goal: &str,
    fields: &HashMap<String, String>,
    counts: &[i64],
) -> Result<GoalStatus, StoreError> {
    let number = |field: &str| -> u64 {
        fields
            .get(field)
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| v.max(0) as u64)
            .unwrap_or(0)
    };
    // A goal hash without a status only holds the tokens spent planning it.
    let state_text = fields.get("status").map(String::as_str).unwrap_or("draft");
    let state = GoalState::parse(state_text).ok_or_else(|| StoreError::Corrupt {
        what: format!("{}.status", keys::goal(goal)),
        detail: format!("{state_text:?}"),
    })?;
    if counts.len() != TaskStatus::ALL.len() {
        return Err(unexpected("goal_status", &[format!("{counts:?}")]));
    }
    let counts: BTreeMap<TaskStatus, u64> = TaskStatus::ALL
        .into_iter()
        .zip(counts.iter().map(|&n| n.max(0) as u64))
        .collect();
    Ok(GoalStatus {
        goal: goal.to_string(),
        state,
        title: fields.get("title").cloned().unwrap_or_default(),
        fingerprint: fields.get("fingerprint").cloned().unwrap_or_default(),
        source: fields.get("source").cloned().unwrap_or_default(),
        max_attempts: number("max_attempts") as u32,
        counts,
        total: number("total"),
        created_ms: number("created_at"),
        finished_ms: fields.get("finished_at").map(|_| number("finished_at")),
        last_error: fields.get("last_error").cloned(),
        tokens: number("tokens"),
        cost_usd: fields
            .get("cost_usd")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
    })
}

/// Forwards `events:*` to the in-process channel until the store is dropped,
/// reconnecting with backoff; after a reconnect it sends [`EventKind::Resync`]
/// because messages published during the outage are lost (pub/sub keeps none).
async fn feed_events(client: redis::Client, feed: Weak<EventFeed>) {
    use futures::StreamExt;
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let connected = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(keys::EVENTS_PATTERN).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        let Some(sender) = feed.upgrade().map(|f| f.sender.clone()) else {
            return;
        };
        match connected {
            Ok(mut pubsub) => {
                backoff = Duration::from_millis(100);
                if !first {
                    tracing::info!("event feed reconnected to Redis");
                    let _ = sender.send(StoreEvent {
                        goal: String::new(),
                        kind: EventKind::Resync,
                    });
                }
                first = false;
                let mut messages = pubsub.on_message();
                loop {
                    let next = tokio::time::timeout(Duration::from_secs(1), messages.next()).await;
                    if feed.strong_count() == 0 {
                        return;
                    }
                    match next {
                        Ok(Some(message)) => {
                            let channel = message.get_channel_name().to_string();
                            let payload: String = message.get_payload().unwrap_or_default();
                            if let Some(event) = keys::goal_of_events_channel(&channel)
                                .and_then(|goal| StoreEvent::parse(goal, &payload))
                            {
                                let _ = sender.send(event);
                            }
                        }
                        Ok(None) => break,
                        Err(_idle) => {}
                    }
                }
                tracing::warn!("event feed lost its Redis connection; reconnecting");
            }
            Err(e) => {
                first = false;
                tracing::warn!(error = %e, retry_in = ?backoff, "event feed cannot reach Redis");
            }
        }
        drop(sender);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
