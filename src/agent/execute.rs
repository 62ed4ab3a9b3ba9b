//! Executing one claimed task. The attempt — the execute call, the verdict on
//! its answer (`verdict.rs`), the check of the files it lists and, with
//! `--llm-summarize`, the summary — runs as one future raced against the lease
//! (renewed by its `LeaseKeeper`, given up at its local deadline), a stop or pause,
//! heartbeat directives and `failed` events (another process may have dropped the
//! task). Only an attempt that finished while the lease held is recorded
//! (`record.rs`).

use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;
use tokio::time::Instant;

use std::sync::Arc;

use crate::domain::{Isolation, TaskKind};
use crate::llm::prompt::{TaskContext, execute_prompt};
use crate::llm::{LlmRequest, Phase};
use crate::llm_gate::{LlmCaller, Slot, SlotPermit, Urgency};
use crate::store::{EventKind, Lease, Store, StoreError, StoreEvent};
use crate::workspace::GoalWorkspace;

use super::AgentSettings;
use super::control::PauseMode;
use super::isolate::{self, AttemptPlace, Place, Prepared};
use super::lease::{LeaseEnd, LeaseKeeper};
use super::prompts::summarize;
use super::verdict::{Verdict, check_outputs, judge};
use super::worker::Worker;

/// A task just claimed, and when its claim was sent: the lease's clock starts there.
#[derive(Debug)]
pub(super) struct Claimed {
    /// The lease.
    pub(super) lease: Lease,
    /// When the claim was sent.
    pub(super) sent: Instant,
    /// The gate slot taken before claiming (`--slot-before-claim`), for the
    /// task's execute call. Passed down by hand rather than through a
    /// `task_local!`: it belongs to that one call, and an ambient permit could
    /// be taken by another call of the attempt (the summary) or outlive it.
    pub(super) slot: Option<SlotPermit>,
}

/// How executing a claimed task ended, for the worker's loop.
#[derive(Debug)]
pub(super) enum Executed {
    /// Recording the result claimed the next task in the same round trip.
    Next(Claimed),
    /// Done with this task; claim again.
    Finished,
    /// The store could not be read: wait this long before claiming again.
    Wait(Duration),
}

/// What an attempt produced, before it is recorded.
pub(super) struct Attempt {
    /// What the answer means.
    pub(super) verdict: Verdict,
    /// The `--llm-summarize` note for the task's dependents, if one was made.
    pub(super) summary: Option<String>,
    /// The task's kind: a review's or an escalation's answer carries a verdict.
    pub(super) kind: TaskKind,
    /// Where the work is, under worktree isolation: to commit and merge.
    pub(super) place: Place,
}

/// How the race around an attempt ended.
enum Guarded<T> {
    /// The attempt finished while the lease held.
    Finished(T),
    /// The lease ended first; the attempt was stopped.
    Ended(LeaseEnd),
    /// The operator dropped the task (DROP-TASK): it is FAILED already.
    Dropped,
    /// Stop or pause: the task is to be given back.
    Released,
}

impl Worker {
    /// Runs a claimed task to its end.
    #[tracing::instrument(skip_all, fields(goal = %claimed.lease.goal, task = %claimed.lease.task, agent = %claimed.lease.agent, attempt = claimed.lease.attempt))]
    pub(super) async fn execute(
        &mut self,
        claimed: Claimed,
        events: &mut broadcast::Receiver<StoreEvent>,
    ) -> Executed {
        let Claimed { lease, sent, slot } = claimed;
        self.held.set(Some(lease.clone()));
        tracing::info!("task claimed");
        let started = Instant::now();
        self.deps.settings.metrics.task_claimed(&lease.goal);
        // Chaos testing (FAILPOINTS=agent-execute=10%panic): an agent crash mid-task.
        fail::fail_point!("agent-execute");
        let ttl = self.deps.settings.lease_ttl;
        let keeper = LeaseKeeper::new(self.deps.store.clone(), lease.clone(), ttl, sent);
        let context = match self.task_context(&lease).await {
            Ok(context) => context,
            Err(e) => {
                let wait = self.context_unreadable(&lease, &keeper, e).await;
                self.held.set(None);
                return wait.map_or(Executed::Finished, Executed::Wait);
            }
        };
        let isolation = self
            .config
            .isolation
            .unwrap_or(self.deps.settings.isolation);
        let work = attempt(
            self.deps.caller.clone(),
            self.workspace(&lease.goal),
            self.deps.settings.clone(),
            context,
            (isolation == Isolation::Worktree).then(|| (self.deps.store.clone(), lease.clone())),
            slot,
        );
        let mut place = Place::Shared;
        let next = match self.guarded(&lease, &keeper, work, events).await {
            Guarded::Finished(mut attempt) => {
                place = attempt.place.take();
                self.record(&lease, &keeper, attempt, &mut place).await
            }
            Guarded::Ended(LeaseEnd::Lost) => {
                tracing::warn!(
                    "lease lost while the task ran; its LLM call was stopped and its result will not be used"
                );
                None
            }
            Guarded::Ended(LeaseEnd::Expired) => {
                tracing::warn!(
                    "lease lost while the task ran (the store did not confirm it before its deadline); its LLM call was stopped, so no two processes run the task at once"
                );
                None
            }
            Guarded::Dropped => {
                tracing::warn!("task dropped by the operator; its LLM call was stopped");
                None
            }
            Guarded::Released => {
                self.give_back(&lease, &keeper).await;
                None
            }
        };
        place.clean_up(&lease.task).await;
        self.deps
            .settings
            .metrics
            .task_ended(&lease.goal, started.elapsed());
        // The next task (claimed with the completion) is held from here on.
        self.held.set(next.as_ref().map(|c| c.lease.clone()));
        next.map_or(Executed::Finished, Executed::Next)
    }

    /// Runs `work` while the lease holds; stops it when the lease ends, the task
    /// is dropped, or the agent is paused (release) or stopped (after the grace).
    async fn guarded<T>(
        &mut self,
        lease: &Lease,
        keeper: &LeaseKeeper,
        work: impl Future<Output = T>,
        events: &mut broadcast::Receiver<StoreEvent>,
    ) -> Guarded<T> {
        let keep = keeper.keep();
        tokio::pin!(work, keep);
        let heartbeat = self.heartbeat.clone();
        let mut stop = self.stop.clone();
        let mut grace_ends: Option<Instant> = None;
        loop {
            let grace = async {
                match grace_ends {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                out = &mut work => return Guarded::Finished(out),
                end = &mut keep => return Guarded::Ended(end),
                () = grace => return Guarded::Released,
                requested = stop.wait_for(Option::is_some), if grace_ends.is_none() => {
                    let grace = requested.map(|g| g.unwrap_or_default()).unwrap_or_default();
                    grace_ends = Some(Instant::now() + grace);
                }
                _ = heartbeat.notified() => {
                    if self.apply_heartbeat(Some(lease)).await {
                        return Guarded::Dropped;
                    }
                    if self.stop_directive || self.paused == Some(PauseMode::Release) {
                        return Guarded::Released;
                    }
                }
                event = events.recv() => {
                    // Another process may have dropped this task: check the lease now
                    // rather than at the next renewal.
                    if let Ok(StoreEvent { kind: EventKind::Failed, goal }) = event
                        && goal == lease.goal
                        && let Some(end) = keeper.renew_now().await
                    {
                        return Guarded::Ended(end);
                    }
                }
            }
        }
    }

    /// The task's context cannot be read. Unreachable store: give the task back
    /// and wait (`Some`). Unreadable data (a plan written by another program, a
    /// damaged node): a failed attempt with the reason, retried after a backoff
    /// and FAILED once attempts are spent — never an instant re-claim.
    async fn context_unreadable(
        &mut self,
        lease: &Lease,
        keeper: &LeaseKeeper,
        error: StoreError,
    ) -> Option<Duration> {
        if matches!(error, StoreError::Redis(_)) {
            tracing::warn!(%error, "cannot read the task's context; giving it back and waiting for the store");
            self.give_back(lease, keeper).await;
            return Some(CONTEXT_OUTAGE_WAIT);
        }
        let reason = format!("cannot read the task's context: {error}");
        // The store's data, not the work: retried, never recovered.
        self.record_failure(lease, keeper, &reason, true, false)
            .await;
        None
    }
}

/// How long an agent waits after the store failed to give a task's context.
const CONTEXT_OUTAGE_WAIT: Duration = Duration::from_secs(1);

/// The attempt: under worktree isolation its place first (an earlier
/// attempt's work already merged or committed, or a fresh worktree), then the
/// execute call in its workspace, the verdict on its answer, the files it lists
/// checked on disk, and the optional summary. Owns what it needs, so it can race
/// the lease while the worker applies directives.
async fn attempt(
    caller: LlmCaller,
    goal_workspace: GoalWorkspace,
    settings: AgentSettings,
    mut context: TaskContext,
    isolate: Option<(Arc<dyn Store>, Lease)>,
    slot: Option<SlotPermit>,
) -> Attempt {
    let kind = context.team.as_ref().map_or(TaskKind::Work, |t| t.kind);
    let mut workspace = goal_workspace.clone();
    let mut place = Place::Shared;
    if let Some((store, lease)) = &isolate {
        let of = context
            .team
            .as_ref()
            .and_then(|t| t.subject.as_ref())
            .map(|s| s.id.clone());
        let prepared = isolate::prepare(AttemptPlace {
            git: settings.git.as_deref(),
            store: &**store,
            lease,
            kind,
            of: of.as_deref(),
            workspace: &goal_workspace,
        })
        .await;
        match prepared {
            Ok(Prepared::Run(isolated)) => {
                workspace = isolated.workspace(&goal_workspace);
                context.artifact_dir = workspace.artifacts_in_prompt();
                if let Some(team) = context.team.as_mut() {
                    team.diff = isolated.diff.clone();
                }
                place = Place::Worktree(isolated);
            }
            Ok(Prepared::Earlier { repo, work }) => {
                tracing::info!(work = ?work, "an earlier attempt of this task finished its work; not running it again");
                // That attempt died, leaving its worktree; this lease owns the path now.
                if let Err(e) = repo.remove_worktree(&lease.task).await {
                    tracing::warn!(error = %e, "could not remove a dead attempt's worktree; porki gc will");
                }
                return Attempt {
                    verdict: Verdict::Done(work.answer()),
                    summary: None,
                    kind,
                    place: Place::Earlier { repo, work },
                };
            }
            Err(e) => {
                return Attempt {
                    verdict: Verdict::Failed {
                        retryable: true,
                        error: format!("could not prepare the task's git worktree: {e}"),
                    },
                    summary: None,
                    kind,
                    place,
                };
            }
        }
    }
    let request = LlmRequest::new(
        Phase::Execute,
        execute_prompt(&context),
        settings.llm_timeout,
    )
    .in_workspace(workspace.clone());
    let slot = slot.map_or(Slot::Queue(Urgency::task(context.rank_ms)), Slot::Held);
    let answer = caller.call(&context.goal_id, slot, &request).await;
    let mut verdict = judge(answer, SystemTime::now());
    if caller.provider.writes_files() {
        verdict = check_outputs(verdict, &workspace).await;
    }
    // A verdict's notes are what a fix is asked to do: they are kept as written.
    let summary = match &verdict {
        Verdict::Done(answer) if settings.llm_summarize && !kind.decides() => {
            summarize(&caller, workspace, settings.llm_timeout, context, answer).await
        }
        _ => None,
    };
    Attempt {
        verdict,
        summary,
        kind,
        place,
    }
}
