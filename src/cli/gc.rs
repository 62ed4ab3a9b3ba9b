//! `porki gc`: removes from the store the goals finished and the agents dead for
//! longer than the retention (`porki::store::gc`), and prints what went. Of a
//! goal removed that ran in worktrees, the repository recorded with it loses
//! the goal's worktrees and (unless `--keep-branches`) its task branches; the
//! goal branch stays: it is the result.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use porki::store::gc::{self, GcOptions, GcReport, age_text};

use super::{StoreArgs, block_on, connect, parse_duration};

/// Flags of `porki gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    retain: RetainArgs,
    /// Print what would be removed, and remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep the task branches (`porki-task/<goal>/…`) of the goals removed; their worktrees go anyway.
    #[arg(long)]
    keep_branches: bool,
}

/// The retention, shared by `porki gc` and `porki run`.
#[derive(Debug, Clone, Args)]
pub struct RetainArgs {
    /// Keep goals complete or failed, and agents dead, this long before removing every key of them (e.g. 7d, 36h, 30m).
    #[arg(long, env = "PORKI_RETAIN_FINISHED", value_name = "DURATION", value_parser = parse_retention, default_value = "7d")]
    pub retain_finished: Duration,
}

/// A retention: a duration as `--lease-ttl` takes them, or whole days (`7d`).
pub fn parse_retention(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if let Some(days) = trimmed.strip_suffix('d') {
        return days
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|d| d.checked_mul(86_400))
            .map(Duration::from_secs)
            .ok_or_else(|| {
                format!("{trimmed:?} is not a number of days: use a whole number, as in 7d")
            });
    }
    parse_duration(trimmed).map_err(|e| format!("{e}, or days (7d)"))
}

/// Runs `porki gc`.
pub fn run(args: GcArgs) -> anyhow::Result<ExitCode> {
    block_on(async {
        let store = connect(&args.store.redis_url).await?;
        let options = GcOptions {
            dry_run: args.dry_run,
            ..GcOptions::new(args.retain.retain_finished)
        };
        let context = || {
            format!(
                "cleaning up the store at {}",
                porki::store::redact(&args.store.redis_url)
            )
        };
        let repositories = goal_repositories(&*store).await.with_context(context)?;
        let report = gc::collect(&*store, &options).await.with_context(context)?;
        print!("{}", summary(&report, args.retain.retain_finished));
        let removed: Vec<(String, String)> = report
            .goals
            .iter()
            .filter_map(|g| Some((g.name.clone(), repositories.get(&g.name)?.clone())))
            .collect();
        let secrets = porki::llm::Secrets::new(&args.store.redis_url, None);
        let git = GitCleanup {
            keep_branches: args.keep_branches,
            dry_run: args.dry_run,
        };
        print!("{}", git.run(&removed, &secrets).await);
        Ok(ExitCode::SUCCESS)
    })
}

/// The repository recorded with each goal that ran in worktrees.
async fn goal_repositories(
    store: &dyn porki::store::Store,
) -> Result<BTreeMap<String, String>, porki::store::StoreError> {
    let mut repositories = BTreeMap::new();
    for goal in store.goals().await? {
        if let Some(branch) = store.goal_status(&goal).await?.and_then(|s| s.branch) {
            repositories.insert(goal, branch.repository);
        }
    }
    Ok(repositories)
}

/// Removing the git leftovers of the goals gc removed.
struct GitCleanup {
    keep_branches: bool,
    dry_run: bool,
}

impl GitCleanup {
    /// Cleans the repository of each `(goal, repository)`; one line for each.
    async fn run(&self, goals: &[(String, String)], secrets: &porki::llm::Secrets) -> String {
        let what = if self.keep_branches {
            "worktrees"
        } else {
            "worktrees and task branches"
        };
        let mut text = String::new();
        if goals.is_empty() {
            return text;
        }
        if self.dry_run {
            for (goal, repository) in goals {
                text.push_str(&format!(
                    "would remove the {what} of goal {goal} in {repository}\n"
                ));
            }
            return text;
        }
        let git = match porki::git::Git::detect(None, secrets).await {
            Ok(git) => git,
            Err(e) => {
                for (goal, repository) in goals {
                    text.push_str(&format!(
                        "left the {what} of goal {goal} in {repository}: {e}\n"
                    ));
                }
                return text;
            }
        };
        for (goal, repository) in goals {
            let line = match self.clean(&git, goal, repository).await {
                Ok(Some(done)) => format!(
                    "removed {} and {} of goal {goal} in {repository}; its branch porki/{goal} stays\n",
                    count(done.worktrees, "worktree"),
                    count(done.branches, "task branch"),
                ),
                Ok(None) => format!(
                    "goal {goal}'s repository {repository} is not on this machine (or has no branch porki/{goal}): run porki gc where it is\n"
                ),
                Err(e) => format!(
                    "could not remove the {what} of goal {goal} in {repository}: {e}; remove them with `git worktree remove` and `git branch -D`\n"
                ),
            };
            text.push_str(&line);
        }
        text
    }

    async fn clean(
        &self,
        git: &porki::git::Git,
        goal: &str,
        repository: &str,
    ) -> Result<Option<porki::git::GcReport>, porki::git::GitError> {
        match porki::git::GoalRepo::open(git, Path::new(repository), goal, None).await? {
            Some(repo) => Ok(Some(repo.gc(self.keep_branches).await?)),
            None => Ok(None),
        }
    }
}

/// `n` things, `thing` in the plural unless `n` is 1.
fn count(n: usize, thing: &str) -> String {
    let plural = if thing.ends_with('h') { "es" } else { "s" };
    format!("{n} {thing}{}", if n == 1 { "" } else { plural })
}

/// What `porki gc` prints: one line per goal and agent removed, then the counts.
fn summary(report: &GcReport, retain: Duration) -> String {
    let mut text = String::new();
    for line in report.lines() {
        text.push_str(&line);
        text.push('\n');
    }
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let verb = if report.dry_run {
        "dry run: would remove"
    } else {
        "removed"
    };
    text.push_str(&format!(
        "{verb} {} and {}; kept {} and {} (active or alive, or finished or dead for less than {})\n",
        count(report.goals.len(), "goal"),
        count(report.agents.len(), "agent"),
        count(report.kept_goals, "goal"),
        count(report.kept_agents, "agent"),
        age_text(retain),
    ));
    if report.dry_run {
        text.push_str("nothing was removed (--dry-run)\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retentions_take_days_or_any_duration() {
        assert_eq!(
            parse_retention("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            parse_retention("36h").unwrap(),
            Duration::from_secs(36 * 3600)
        );
        assert_eq!(parse_retention("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_retention("90").unwrap(), Duration::from_secs(90));
        let err = parse_retention("a week").unwrap_err();
        assert!(err.contains("days (7d)"), "{err}");
        assert!(
            parse_retention("1.5d")
                .unwrap_err()
                .contains("whole number")
        );
    }
}
