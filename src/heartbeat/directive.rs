//! Heartbeat file lines and the cursor that applies each line once. No I/O.
//!
//! One directive per line, keywords case-insensitive (`_` accepted for `-`),
//! `#` starts a comment anywhere on a line:
//!
//! ```text
//! # This file controls the research agent.
//! PAUSE --drain
//! DROP-TASK task-007   # wrong sources
//! ELEVATE task-009 50
//! ```
//!
//! Heartbeat files also hold prose (the systemg example's first line is a
//! sentence), so a line is a directive only when its first word is a
//! directive keyword. A line whose first word merely looks like one (capitals
//! and dashes, e.g. `DROPTASK x`) is reported as malformed rather than ignored:
//! a typo'd command should be seen, not silently dropped.

use std::fmt;

use sha2::{Digest, Sha256};

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
                     ELEVATE <id> <priority>, REPARSE, FLUSH-MEMORY, STOP";

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

/// How much of a heartbeat file has been applied: the number of complete lines
/// and a hex SHA-256 of their bytes (line endings included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Complete lines applied.
    pub lines: u64,
    /// Hex SHA-256 of those lines' bytes.
    pub hash: String,
}

impl Default for Cursor {
    /// Nothing applied yet.
    fn default() -> Self {
        Self {
            lines: 0,
            hash: hex::encode(Sha256::digest(b"")),
        }
    }
}

/// The lines of a heartbeat file not yet applied, and the cursor after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewLines<'a> {
    /// The file still begins with the applied lines; `lines` follow them.
    Continue {
        /// 1-based line number of `lines[0]`.
        start_line: u64,
        /// The new complete lines, without their line endings.
        lines: Vec<&'a str>,
        /// The cursor once `lines` are applied.
        next: Cursor,
    },
    /// The applied lines changed or the file got shorter: only lines beyond
    /// the old line count are returned (see [`new_lines`]). The caller should
    /// log it.
    Replaced {
        /// 1-based line number of `lines[0]`.
        start_line: u64,
        /// Complete lines beyond the old line count, without line endings.
        lines: Vec<&'a str>,
        /// The cursor once `lines` are applied: the whole file's complete lines.
        next: Cursor,
    },
}

impl<'a> NewLines<'a> {
    /// The lines to apply, with the 1-based number of the first.
    pub fn lines(&self) -> (u64, &[&'a str]) {
        match self {
            NewLines::Continue {
                start_line, lines, ..
            }
            | NewLines::Replaced {
                start_line, lines, ..
            } => (*start_line, lines),
        }
    }

    /// The cursor to store once the lines are applied.
    pub fn next(&self) -> &Cursor {
        match self {
            NewLines::Continue { next, .. } | NewLines::Replaced { next, .. } => next,
        }
    }
}

/// The complete lines of `text` that `cursor` has not applied.
///
/// Only lines ending in `\n` count: a trailing partial line (an append still
/// being written) is left for the next call.
///
/// When the file no longer begins with the applied lines (an editor rewrote
/// it, it was truncated or replaced), the line positions up to the old count
/// are treated as applied and only lines beyond it are returned. Why: replaying
/// an old `DROP-TASK` or `STOP` cannot be undone, while a missed line can be
/// appended again once the caller's log says the file was replaced. The usual
/// causes keep old lines at their positions (an editor normalizing whitespace
/// or line endings, an edit above an appended line), so the lines past the old
/// count are the new ones; a truncated file returns nothing and its cursor
/// restarts at its new length, so later appends apply normally.
pub fn new_lines<'a>(text: &'a str, cursor: &Cursor) -> NewLines<'a> {
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    let all: Vec<&str> = complete.split_inclusive('\n').collect();
    let total = all.len() as u64;
    let old = cursor.lines;
    let mut hasher = Sha256::new();
    let mut prefix_hash = (old == 0).then(|| hex::encode(hasher.clone().finalize()));
    for (i, line) in all.iter().enumerate() {
        hasher.update(line.as_bytes());
        if i as u64 + 1 == old {
            prefix_hash = Some(hex::encode(hasher.clone().finalize()));
        }
    }
    let next = Cursor {
        lines: total,
        hash: hex::encode(hasher.finalize()),
    };
    // A cursor at zero lines matches any file, whatever hash it carries.
    let same_prefix =
        old == 0 || prefix_hash.is_some_and(|h| h.eq_ignore_ascii_case(cursor.hash.trim()));
    let skip = usize::try_from(old).unwrap_or(usize::MAX).min(all.len());
    let lines: Vec<&str> = all[skip..].iter().map(|l| strip_eol(l)).collect();
    let start_line = skip as u64 + 1;
    if same_prefix {
        NewLines::Continue {
            start_line,
            lines,
            next,
        }
    } else {
        NewLines::Replaced {
            start_line,
            lines,
            next,
        }
    }
}

fn strip_eol(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
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

    fn cont<'a>(r: NewLines<'a>) -> (u64, Vec<&'a str>, Cursor) {
        match r {
            NewLines::Continue {
                start_line,
                lines,
                next,
            } => (start_line, lines, next),
            other => panic!("expected Continue, got {other:?}"),
        }
    }

    fn replaced<'a>(r: NewLines<'a>) -> (u64, Vec<&'a str>, Cursor) {
        match r {
            NewLines::Replaced {
                start_line,
                lines,
                next,
            } => (start_line, lines, next),
            other => panic!("expected Replaced, got {other:?}"),
        }
    }

    #[test]
    fn appended_lines_are_returned_once() {
        let (start, lines, c1) = cont(new_lines("PAUSE\n", &Cursor::default()));
        assert_eq!((start, lines), (1, vec!["PAUSE"]));
        assert_eq!(c1.lines, 1);
        let (start, lines, c2) = cont(new_lines("PAUSE\nRESUME\nSTOP\n", &c1));
        assert_eq!((start, lines), (2, vec!["RESUME", "STOP"]));
        let (_, lines, c3) = cont(new_lines("PAUSE\nRESUME\nSTOP\n", &c2));
        assert!(lines.is_empty());
        assert_eq!(c3, c2);
    }

    #[test]
    fn a_partial_line_waits_for_its_newline() {
        let (_, lines, c) = cont(new_lines("PAUSE\nDROP-TA", &Cursor::default()));
        assert_eq!(lines, ["PAUSE"]);
        assert_eq!(c.lines, 1);
        let (start, lines, c) = cont(new_lines("PAUSE\nDROP-TASK t1\n", &c));
        assert_eq!((start, lines), (2, vec!["DROP-TASK t1"]));
        assert_eq!(c.lines, 2);
        let (_, lines, c) = cont(new_lines("no newline yet", &Cursor::default()));
        assert!(lines.is_empty());
        assert_eq!(c, Cursor::default());
    }

    #[test]
    fn truncation_replays_nothing_and_later_appends_apply() {
        let (_, _, c) = cont(new_lines("DROP-TASK a\nDROP-TASK b\n", &Cursor::default()));
        let (_, lines, c) = replaced(new_lines("", &c));
        assert!(lines.is_empty());
        assert_eq!(c, Cursor::default());
        let (start, lines, _) = cont(new_lines("PAUSE\n", &c));
        assert_eq!((start, lines), (1, vec!["PAUSE"]));
    }

    #[test]
    fn a_shorter_rewrite_replays_nothing() {
        let (_, _, c) = cont(new_lines(
            "DROP-TASK a\nDROP-TASK b\nRESUME\n",
            &Cursor::default(),
        ));
        let (_, lines, c) = replaced(new_lines("PAUSE\n", &c));
        assert!(lines.is_empty());
        assert_eq!(c.lines, 1);
    }

    #[test]
    fn a_replaced_prefix_applies_only_lines_past_the_old_count() {
        let (_, _, c) = cont(new_lines("DROP-TASK a\nPAUSE\n", &Cursor::default()));
        // An editor rewrote line 1 and the operator appended a line.
        let text = "DROP-TASK a   # done\nPAUSE\nRESUME\n";
        let (start, lines, next) = replaced(new_lines(text, &c));
        assert_eq!((start, lines), (3, vec!["RESUME"]));
        assert_eq!(next.lines, 3);
        let (_, lines, _) = cont(new_lines(text, &next));
        assert!(lines.is_empty());
    }

    #[test]
    fn crlf_lines_are_stripped_but_hashed_as_written() {
        let (_, lines, c) = cont(new_lines("PAUSE\r\nRESUME\r\n", &Cursor::default()));
        assert_eq!(lines, ["PAUSE", "RESUME"]);
        // The same text with LF endings is a different file.
        replaced(new_lines("PAUSE\nRESUME\n", &c));
    }

    #[test]
    fn a_cursor_with_a_garbage_hash_is_replaced() {
        let c = Cursor {
            lines: 1,
            hash: "zz".into(),
        };
        let (start, lines, _) = replaced(new_lines("PAUSE\nSTOP\n", &c));
        assert_eq!((start, lines), (2, vec!["STOP"]));
    }

    #[test]
    fn a_cursor_hash_is_the_sha256_of_the_applied_bytes() {
        let (_, _, c) = cont(new_lines("PAUSE\n", &Cursor::default()));
        assert_eq!(c.hash, hex::encode(Sha256::digest(b"PAUSE\n")));
        assert_eq!(c.hash.len(), 64);
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

        #[test]
        fn cursor_applies_every_line_exactly_once(lines in proptest::collection::vec("[A-Za-z #-]{0,8}", 0..12), cut in 0usize..12) {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let split = text.match_indices('\n').nth(cut).map_or(text.len(), |(i, _)| i + 1);
            let (_, first, c) = cont(new_lines(&text[..split], &Cursor::default()));
            let (_, second, _) = cont(new_lines(&text, &c));
            let seen: Vec<&str> = first.into_iter().chain(second).collect();
            proptest::prop_assert_eq!(seen, lines.iter().map(String::as_str).collect::<Vec<_>>());
        }

        #[test]
        fn new_lines_never_panics(a in "\\PC*", b in "\\PC*", n in 0u64..5) {
            let c = Cursor { lines: n, hash: String::new() };
            let _ = new_lines(&a, &c);
            let first = new_lines(&a, &Cursor::default());
            let _ = new_lines(&b, first.next());
        }
    }
}
