//! `porki gc`: removes from the store the goals finished and the agents dead for
//! longer than the retention (`porki::store::gc`), and prints what went.

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
        let report = gc::collect(&*store, &options).await.with_context(|| {
            format!(
                "cleaning up the store at {}",
                porki::store::redact(&args.store.redis_url)
            )
        })?;
        print!("{}", summary(&report, args.retain.retain_finished));
        Ok(ExitCode::SUCCESS)
    })
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
