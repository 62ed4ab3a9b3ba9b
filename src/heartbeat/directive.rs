//! Heartbeat file lines: which are directives, which are malformed. No I/O.
//!
//! One directive per line, keywords case-insensitive (`_` accepted for `-`),
//! `#` starts a comment anywhere on a line:
//!
//! ```text
//! # This file controls the research agent.
//! PAUSE --drain
//! DROP-TASK task-007   # wrong sources
//! ELEVATE task-009 50
//! APPROVE-TASK draft
//! REJECT-TASK draft the intro repeats the title; cut it
//! ```
//!
//! Heartbeat files also hold prose (the systemg example's first line is a
//! sentence), so a line is a directive only when its first word is a
//! directive keyword. A line whose first word merely looks like one (capitals
//! and dashes, e.g. `DROPTASK x`) is reported as malformed rather than ignored:
//! a typo'd command should be seen, not silently dropped.

use std::fmt;

use crate::domain::check_id;

/// Longest line read as a directive; longer lines are malformed unread.
pub const MAX_LINE_LEN: usize = 4096;

/// A command from an operator to one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// Claim nothing new; a held task is released, or finished first with `drain`.
    Pause {
        /// `PAUSE --drain`: finish the held task instead of releasing it.
        drain: bool,
    },
    /// Undo [`Directive::Pause`].
    Resume,
    /// Cancel a task: kill its LLM call and mark it FAILED (`dropped`).
    DropTask {
        /// The task id.
        task: String,
    },
    /// Put a FAILED task back to READY with its attempts reset.
    RetryTask {
        /// The task id.
        task: String,
    },
    /// Change a task's priority.
    Elevate {
        /// The task id.
        task: String,
        /// The new priority; higher runs sooner.
        priority: i32,
    },
    /// A person approves a task AWAITING_APPROVAL.
    ApproveTask {
        /// The task id.
        task: String,
    },
    /// A person rejects a task AWAITING_APPROVAL: a fix task carries the reason.
    RejectTask {
        /// The task id.
        task: String,
        /// What to change (the rest of the line, before any `#`).
        reason: String,
    },
    /// Reload the agent's instruction file.
    Reparse,
    /// Clear the agent's memory snapshot.
    FlushMemory,
    /// Stop the agent cleanly; the Supervisor does not restart it.
    Stop,
}

impl fmt::Display for Directive {
    /// The canonical line for the directive, as an operator would write it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Directive::Pause { drain: false } => f.write_str("PAUSE"),
            Directive::Pause { drain: true } => f.write_str("PAUSE --drain"),
            Directive::Resume => f.write_str("RESUME"),
            Directive::DropTask { task } => write!(f, "DROP-TASK {task}"),
            Directive::RetryTask { task } => write!(f, "RETRY-TASK {task}"),
            Directive::Elevate { task, priority } => write!(f, "ELEVATE {task} {priority}"),
            Directive::ApproveTask { task } => write!(f, "APPROVE-TASK {task}"),
            Directive::RejectTask { task, reason } => write!(f, "REJECT-TASK {task} {reason}"),
            Directive::Reparse => f.write_str("REPARSE"),
            Directive::FlushMemory => f.write_str("FLUSH-MEMORY"),
            Directive::Stop => f.write_str("STOP"),
        }
    }
}

/// What one heartbeat line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// A well-formed directive.
    Directive(Directive),
    /// Nothing to do: blank, a comment, or prose.
    Blank,
    /// Meant as a directive but unusable; the message names the problem.
    Malformed(String),
}

const USAGE: &str = "PAUSE [--drain], RESUME, DROP-TASK <id>, RETRY-TASK <id>, \
                     ELEVATE <id> <priority>, APPROVE-TASK <id>, REJECT-TASK <id> <reason>, \
                     REPARSE, FLUSH-MEMORY, STOP";

/// Classifies one line of a heartbeat file (a trailing `\n` or `\r\n` is ignored).
pub fn parse_line(line: &str) -> LineKind {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.len() > MAX_LINE_LEN {
        return LineKind::Malformed(format!(
            "line too long ({} bytes; a directive line has at most {MAX_LINE_LEN})",
            line.len()
        ));
    }
    let code = line.split_once('#').map_or(line, |(code, _)| code);
    let mut words = code.split_whitespace();
    let Some(first) = words.next() else {
        return LineKind::Blank;
    };
    let args: Vec<&str> = words.collect();
    let keyword = first.to_ascii_uppercase().replace('_', "-");
    let directive = match keyword.as_str() {
        "PAUSE" => match args.as_slice() {
            [] => Ok(Directive::Pause { drain: false }),
            [flag] if flag.eq_ignore_ascii_case("--drain") => Ok(Directive::Pause { drain: true }),
            [flag] => Err(format!("PAUSE takes only --drain, not {}", show(flag))),
            _ => Err(format!(
                "PAUSE takes only --drain, got {} words",
                args.len()
            )),
        },
        "RESUME" => no_args("RESUME", &args, Directive::Resume),
        "REPARSE" => no_args("REPARSE", &args, Directive::Reparse),
        "FLUSH-MEMORY" => no_args("FLUSH-MEMORY", &args, Directive::FlushMemory),
        "STOP" => no_args("STOP", &args, Directive::Stop),
        "DROP-TASK" => one_task("DROP-TASK", &args).map(|task| Directive::DropTask { task }),
        "RETRY-TASK" => one_task("RETRY-TASK", &args).map(|task| Directive::RetryTask { task }),
        "ELEVATE" => elevate(&args),
        "APPROVE-TASK" => {
            one_task("APPROVE-TASK", &args).map(|task| Directive::ApproveTask { task })
        }
        "REJECT-TASK" => reject(&args),
        _ if looks_like_directive(first) => Err(format!(
            "unknown directive {}: use one of {USAGE}",
            show(first)
        )),
        _ => return LineKind::Blank,
    };
    match directive {
        Ok(d) => LineKind::Directive(d),
        Err(m) => LineKind::Malformed(m),
    }
}

/// The directives and malformed lines of `text` with their 1-based line numbers.
pub fn parse_text(text: &str) -> Vec<(usize, LineKind)> {
    text.split('\n')
        .enumerate()
        .map(|(i, line)| (i + 1, parse_line(line)))
        .filter(|(_, kind)| *kind != LineKind::Blank)
        .collect()
}

fn show(word: &str) -> String {
    let short: String = word.chars().take(40).collect();
    format!("{short:?}")
}

fn no_args(name: &str, args: &[&str], d: Directive) -> Result<Directive, String> {
    match args {
        [] => Ok(d),
        _ => Err(format!(
            "{name} takes no arguments, got {}",
            show(&args.join(" "))
        )),
    }
}

fn one_task(name: &str, args: &[&str]) -> Result<String, String> {
    match args {
        [] => Err(format!("{name} needs a task id, e.g. {name} task-001")),
        [id] => task_id(id),
        _ => Err(format!(
            "{name} takes one task id, got {} words",
            args.len()
        )),
    }
}

fn task_id(id: &str) -> Result<String, String> {
    check_id("task id", id)
        .map(|()| id.to_owned())
        .map_err(|e| e.to_string())
}

fn reject(args: &[&str]) -> Result<Directive, String> {
    match args {
        [] => Err(
            "REJECT-TASK needs a task id and a reason, e.g. REJECT-TASK task-001 cite the sources"
                .into(),
        ),
        [id] => Err(format!(
            "REJECT-TASK {id} needs a reason after the task id: say what to change"
        )),
        [id, reason @ ..] => Ok(Directive::RejectTask {
            task: task_id(id)?,
            reason: reason.join(" "),
        }),
    }
}

fn elevate(args: &[&str]) -> Result<Directive, String> {
    const EXAMPLE: &str = "e.g. ELEVATE task-001 50";
    match args {
        [] | [_] => Err(format!("ELEVATE needs a task id and a priority, {EXAMPLE}")),
        [id, priority] => {
            let task = task_id(id)?;
            let priority = priority.parse::<i32>().map_err(|_| {
                format!(
                    "ELEVATE priority {} is not a whole number between {} and {}, {EXAMPLE}",
                    show(priority),
                    i32::MIN,
                    i32::MAX
                )
            })?;
            Ok(Directive::Elevate { task, priority })
        }
        _ => Err(format!(
            "ELEVATE takes a task id and a priority, got {} words, {EXAMPLE}",
            args.len()
        )),
    }
}

/// Whether a first word looks like an attempted directive: capitals, digits,
/// `-` and `_`, starting with a capital, at least three characters (so prose
/// starting with "I" or "AI" stays prose).
fn looks_like_directive(word: &str) -> bool {
    word.len() >= 3
        && word.starts_with(|c: char| c.is_ascii_uppercase())
        && word
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(line: &str) -> Directive {
        match parse_line(line) {
            LineKind::Directive(d) => d,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn malformed(line: &str) -> String {
        match parse_line(line) {
            LineKind::Malformed(m) => m,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    #[test]
    fn every_directive_parses_in_any_case() {
        assert_eq!(d("PAUSE"), Directive::Pause { drain: false });
        assert_eq!(d("pause --DRAIN"), Directive::Pause { drain: true });
        assert_eq!(d("Resume"), Directive::Resume);
        assert_eq!(
            d("drop-task task-001"),
            Directive::DropTask {
                task: "task-001".into()
            }
        );
        assert_eq!(d("DROP_TASK t1"), Directive::DropTask { task: "t1".into() });
        assert_eq!(
            d("RETRY-TASK a.b_c"),
            Directive::RetryTask {
                task: "a.b_c".into()
            }
        );
        assert_eq!(
            d("ELEVATE task-9 -5"),
            Directive::Elevate {
                task: "task-9".into(),
                priority: -5
            }
        );
        assert_eq!(
            d("approve-task draft"),
            Directive::ApproveTask {
                task: "draft".into()
            }
        );
        assert_eq!(
            d("REJECT-TASK draft  cut the   intro # too long"),
            Directive::RejectTask {
                task: "draft".into(),
                reason: "cut the intro".into()
            }
        );
        assert_eq!(d("reparse"), Directive::Reparse);
        assert_eq!(d("Flush-Memory"), Directive::FlushMemory);
        assert_eq!(d("STOP"), Directive::Stop);
    }

    #[test]
    fn display_round_trips() {
        for line in [
            "PAUSE",
            "PAUSE --drain",
            "RESUME",
            "DROP-TASK t",
            "RETRY-TASK t",
            "ELEVATE t 3",
            "APPROVE-TASK t",
            "REJECT-TASK t say why",
            "REPARSE",
            "FLUSH-MEMORY",
            "STOP",
        ] {
            assert_eq!(d(line).to_string(), line);
        }
    }

    #[test]
    fn comments_whitespace_and_line_endings_are_ignored() {
        assert_eq!(
            d("  PAUSE   # lunch\r\n"),
            Directive::Pause { drain: false }
        );
        assert_eq!(
            d("DROP-TASK t1#why"),
            Directive::DropTask { task: "t1".into() }
        );
        assert_eq!(parse_line("# DROP-TASK t1"), LineKind::Blank);
        assert_eq!(parse_line("   \t "), LineKind::Blank);
        assert_eq!(parse_line(""), LineKind::Blank);
    }

    #[test]
    fn prose_and_headings_are_not_directives() {
        for line in [
            "This file controls the research agent.",
            "# Heartbeat",
            "## Control",
            "- PAUSE stops claims",
            "I paused it yesterday",
            "AI agents read this",
            "NOTE: ignore",
            "STOP.",
        ] {
            assert_eq!(parse_line(line), LineKind::Blank, "{line}");
        }
    }

    #[test]
    fn every_malformed_form_names_the_problem() {
        assert!(malformed("DROP-TASK").contains("DROP-TASK needs a task id"));
        assert!(malformed("RETRY-TASK").contains("RETRY-TASK needs a task id"));
        assert!(malformed("REJECT-TASK draft").contains("needs a reason"));
        assert!(malformed("REJECT-TASK").contains("needs a task id and a reason"));
        assert!(malformed("APPROVE-TASK a b").contains("takes one task id"));
        assert!(malformed("DROP-TASK a b").contains("one task id"));
        assert!(malformed("DROP-TASK a:b").contains("task id \"a:b\" is not allowed"));
        assert!(malformed("RETRY-TASK {g}").contains("not allowed"));
        assert!(malformed("ELEVATE").contains("needs a task id and a priority"));
        assert!(malformed("ELEVATE t1").contains("needs a task id and a priority"));
        assert!(malformed("ELEVATE t1 high").contains("not a whole number"));
        assert!(malformed("ELEVATE t1 99999999999").contains("not a whole number"));
        assert!(malformed("ELEVATE t1 1 2").contains("got 3 words"));
        assert!(malformed("ELEVATE a*b 1").contains("not allowed"));
        assert!(malformed("PAUSE now").contains("only --drain"));
        assert!(malformed("PAUSE --drain now").contains("only --drain"));
        assert!(malformed("Stop the agent when done").contains("STOP takes no arguments"));
        for name in ["RESUME", "REPARSE", "FLUSH-MEMORY"] {
            assert!(malformed(&format!("{name} x")).contains("takes no arguments"));
        }
        let m = malformed("FOO-BAR x");
        assert!(m.starts_with("unknown directive \"FOO-BAR\""), "{m}");
        assert!(malformed("PASUE").contains("unknown directive"));
    }

    #[test]
    fn a_one_megabyte_line_is_too_long() {
        let line = format!("DROP-TASK {}", "a".repeat(1 << 20));
        assert!(malformed(&line).contains("line too long"));
        let text = format!("PAUSE\n{line}\nRESUME\n");
        let kinds: Vec<usize> = parse_text(&text).into_iter().map(|(n, _)| n).collect();
        assert_eq!(kinds, [1, 2, 3]);
    }

    #[test]
    fn parse_text_numbers_lines_and_skips_blanks() {
        let text = "# controls research\n\nPAUSE\nsome prose\nDROP-TASK\nRESUME";
        assert_eq!(
            parse_text(text),
            vec![
                (3, LineKind::Directive(Directive::Pause { drain: false })),
                (
                    5,
                    LineKind::Malformed(
                        "DROP-TASK needs a task id, e.g. DROP-TASK task-001".into()
                    )
                ),
                (6, LineKind::Directive(Directive::Resume)),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = parse_line(&s);
            let _ = parse_text(&s);
        }

        #[test]
        fn directive_like_lines_never_panic(s in "((?i)pause|resume|drop-task|retry-task|elevate|stop|[A-Z-]{1,6}|--drain|-?[0-9]{1,12}|[a-z:*{}]{0,6}| |#|\r|\n){0,12}") {
            for (_, kind) in parse_text(&s) {
                if let LineKind::Directive(d) = kind {
                    // What parses re-parses to itself.
                    proptest::prop_assert_eq!(parse_line(&d.to_string()), LineKind::Directive(d));
                }
            }
        }
    }
}
