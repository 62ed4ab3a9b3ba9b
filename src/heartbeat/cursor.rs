//! The cursor that makes each heartbeat line take effect once. No I/O.
//!
//! The applied position is the number of complete lines and a SHA-256 of their
//! bytes; it is kept in the store, so a restart does not replay a line and a
//! truncated or replaced file is detected.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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

/// A cursor as the store keeps it (`agent:NAME:heartbeat_cursor`):
/// `LINES:HASH:FILE`, the file being the heartbeat file it is a position in.
/// Cursors stored before the file was recorded read back without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCursor {
    /// The position.
    pub cursor: Cursor,
    /// The heartbeat file (absolute), if recorded.
    pub file: Option<PathBuf>,
}

impl StoredCursor {
    /// `cursor` in `file`.
    pub fn new(cursor: Cursor, file: &Path) -> Self {
        Self {
            cursor,
            file: Some(file.to_path_buf()),
        }
    }

    /// Reads the stored text; `None` if it is not a cursor.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, ':');
        let lines = parts.next()?.parse().ok()?;
        let hash = parts.next()?.to_string();
        let file = parts.next().map(PathBuf::from);
        Some(Self {
            cursor: Cursor { lines, hash },
            file,
        })
    }

    /// Whether this is a position in `file` (a cursor without a file is taken to be).
    pub fn is_in(&self, file: &Path) -> bool {
        self.file.as_deref().is_none_or(|f| f == file)
    }
}

impl std::fmt::Display for StoredCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.cursor.lines, self.cursor.hash)?;
        match &self.file {
            Some(file) => write!(f, ":{}", file.display()),
            None => Ok(()),
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
    // (A cursor at zero lines matches any file: see `same_prefix`.)
    let mut prefix_hash = None;
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

    /// The parts of `r`, which must be `Continue` when `continued`, else `Replaced`.
    fn parts<'a>(r: NewLines<'a>, continued: bool) -> (u64, Vec<&'a str>, Cursor) {
        assert_eq!(matches!(r, NewLines::Continue { .. }), continued, "{r:?}");
        let (start_line, lines) = r.lines();
        (start_line, lines.to_vec(), r.next().clone())
    }

    fn cont<'a>(r: NewLines<'a>) -> (u64, Vec<&'a str>, Cursor) {
        parts(r, true)
    }

    fn replaced<'a>(r: NewLines<'a>) -> (u64, Vec<&'a str>, Cursor) {
        parts(r, false)
    }

    #[test]
    fn a_stored_cursor_reads_back_with_its_file() {
        let stored = StoredCursor::new(
            Cursor {
                lines: 12,
                hash: "abcd".into(),
            },
            Path::new("/srv/hb: odd/agent.md"),
        );
        assert_eq!(stored.to_string(), "12:abcd:/srv/hb: odd/agent.md");
        assert_eq!(
            StoredCursor::parse(&stored.to_string()),
            Some(stored.clone())
        );
        assert!(stored.is_in(Path::new("/srv/hb: odd/agent.md")));
        assert!(!stored.is_in(Path::new("/srv/other.md")));
        // Written before the file was recorded: a position in whatever file.
        let old = StoredCursor::parse("3:ef").unwrap();
        assert_eq!((old.cursor.lines, old.file), (3, None));
        assert!(
            StoredCursor::parse("3:ef")
                .unwrap()
                .is_in(Path::new("/any.md"))
        );
        assert_eq!(StoredCursor::parse("twelve:ab"), None);
        assert_eq!(StoredCursor::parse("12"), None);
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
