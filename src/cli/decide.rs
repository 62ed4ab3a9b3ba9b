//! `porki approve` and `porki reject`: a person's decision on a task that awaits
//! approval, written straight to the store (as APPROVE-TASK and REJECT-TASK in a
//! heartbeat file are).

use std::process::ExitCode;

use clap::Args;
use porki::domain::check_id;
use porki::store::StoreError;

use super::{block_on, check_goal, connect, unknown_goal, usage};

/// Flags of `porki approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    store: super::StoreArgs,
    /// The goal of the task.
    #[arg(long, value_name = "G")]
    goal: String,
    /// The task that awaits approval.
    #[arg(long, value_name = "T")]
    task: String,
}

/// Flags of `porki reject`.
#[derive(Debug, Args)]
pub struct RejectArgs {
    #[command(flatten)]
    approve: ApproveArgs,
    /// What to change: the fix task that is added carries it.
    #[arg(long, value_name = "TEXT")]
    reason: String,
}

/// Runs `porki approve`; exit code 2 for an unknown goal or task, or a task that
/// does not await approval.
pub fn approve(args: ApproveArgs) -> anyhow::Result<ExitCode> {
    decide(&args, None)
}

/// Runs `porki reject`; exit codes as for `porki approve`.
pub fn reject(args: RejectArgs) -> anyhow::Result<ExitCode> {
    if args.reason.trim().is_empty() {
        return Err(usage("--reason is empty: say what to change"));
    }
    decide(&args.approve, Some(&args.reason))
}

fn decide(args: &ApproveArgs, reason: Option<&str>) -> anyhow::Result<ExitCode> {
    check_goal(&args.goal)?;
    check_id("task id", &args.task).map_err(usage)?;
    let said = block_on(async {
        let store = connect(&args.store.redis_url).await?;
        if store.goal_status(&args.goal).await?.is_none() {
            return Err(unknown_goal(&*store, &args.goal, &args.store.redis_url).await);
        }
        let decided = match reason {
            None => store.approve(&args.goal, &args.task).await.map(|done| {
                let mut said = format!("approved {}/{}", args.goal, args.task);
                if !done.promoted.is_empty() {
                    said += &format!("; now ready: {}", done.promoted.join(", "));
                }
                if done.goal_complete {
                    said += "; the goal is complete";
                }
                said
            }),
            Some(reason) => store
                .reject(&args.goal, &args.task, reason)
                .await
                .map(|rejected| {
                    format!(
                        "rejected {}/{}; fix task {} carries the reason, then the task awaits approval again",
                        args.goal, args.task, rejected.fix
                    )
                }),
        };
        match decided {
            Ok(said) => Ok(said),
            Err(e @ (StoreError::UnknownTask { .. } | StoreError::WrongState { .. })) => {
                Err(usage(e))
            }
            Err(e) => Err(e.into()),
        }
    })?;
    println!("{said}");
    Ok(ExitCode::SUCCESS)
}
