//! The task list of an agent's instruction file: the one grammar for it, used by
//! `porki instructions` and by the task-list planner ([`super::plan`]).
//!
//! ```markdown
//! ## Tasks
//! - [scope] Define the scope priority: 10
//! - [collect-sources] Collect sources artifacts: sources.md (soft)
//! - Summarize (after: collect-sources, scope) (priority: 2) (review)
//! - [ ] review: Review the report; after: Summarize (approval)
//! ```
//!
//! Rules:
//!
//! - Every top-level item of a list under a heading whose text contains `tasks`
//!   (any case, any level) is one task, until the next heading of that level or
//!   higher. Nested lists and blocks are notes of their item, not tasks. An item
//!   is read as plain text: emphasis and links keep only their text, code spans
//!   their content, and its paragraphs are joined by spaces.
//! - A leading checkbox, `[ ]`, `[x]` or `[X]`, is dropped (it is never an id).
//! - The id is an explicit prefix, `[id] Title` or `id: Title` (a lowercase
//!   id, so a title like `Note: …` stays a title), where `id` is a valid task id
//!   (1 to 64 characters from `A-Z a-z 0-9 . _ -`; a plan takes at most 49,
//!   leaving room for the suffixes of the tasks porki adds); anything else in
//!   brackets stays in the title. Without one, the id is a slug of the title:
//!   lowercase, runs of other characters as `-`, at most 49 characters, made unique with
//!   `-2`, `-3`… (explicit ids are reserved first, so a slug never takes one).
//! - Trailing fields, in any order and any case, each starting a word: `after:
//!   a, b` (dependencies, by id, or by a title whose slug is an id), `priority:
//!   N` (an `i32`; any other value is ignored), `artifacts: a.md, b.md`. They
//!   may be wrapped in parentheses or separated by `;`, `,`, `|` or dashes:
//!   `Title (after: a, b) (priority: 2)` and `Title; after: a; priority: 2`
//!   read the same. A repeated `after:` or `artifacts:` adds to the list; a
//!   repeated `priority:` replaces the value. Values lose surrounding backticks.
//! - The title is the text before the first field. An item with an id and no
//!   title takes its id as title; an item with neither is skipped.
//! - Markers, in any case, anywhere after the checkbox (before or after the id,
//!   in the title, among the fields): `(review)` marks the task for review (a
//!   goal with `Review: marked` reviews only marked tasks), `(approval)` makes
//!   it wait for a person's `APPROVE-TASK`, `(soft)` lets another builder take
//!   it when no live agent has its role. One pair of parentheses may hold
//!   several: `(review, soft)`. A marker is removed from the text it stood in.
//! - Only parentheses that hold nothing but marker words, and that stand alone
//!   (not glued to a word: `notes(review).md` is a file name), are markers, so
//!   markers never eat a title: `Review the draft`, `(Review the draft)` and
//!   `Approval flow (soft launch)` are titles. There is no bare-word or
//!   `review: yes` form on purpose: the bare word is a title word, and
//!   `review: Title` is an id prefix.
//! - An item without `after:` runs after the item above it in the same list
//!   (order gives edges; a new list or section starts a new chain), so a plain
//!   list is a sequence. `after: none` or `after: -` means no dependency.
//!   Names in `after:` that match no task here are kept as written (they may
//!   name a task of another agent).

use std::collections::HashSet;
use std::iter::Peekable;

use pulldown_cmark::{Event, HeadingLevel, OffsetIter, Parser, Tag, TagEnd};

use super::markdown::{inline_text, options, skip_to_end};
use crate::domain::Assignment;
use crate::domain::ids::{MAX_PLANNED_ID_LEN, check_id};

/// One task read from a `## Tasks` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskItem {
    /// Task id: explicit, or a unique slug of the title.
    pub id: String,
    /// The item's text without its checkbox, id prefix and trailing fields (the
    /// id when that leaves nothing).
    pub title: String,
    /// Ids of the tasks this one waits for.
    pub after: Vec<String>,
    /// Higher runs sooner; `None` when not given.
    pub priority: Option<i32>,
    /// Files the task is expected to produce.
    pub artifacts: Vec<String>,
    /// Marked `(review)`: reviewed under `Review: marked`.
    pub review: bool,
    /// Marked `(approval)`: waits for a person's approval after it ran.
    pub approval: bool,
    /// `Soft` when marked `(soft)`: another builder may take it when no live
    /// agent has its role.
    pub assignment: Assignment,
}

/// The markers of one item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Marks {
    review: bool,
    approval: bool,
    soft: bool,
}

impl Marks {
    /// Sets the mark a word names; false when it names none.
    fn set(&mut self, word: &str) -> bool {
        let flag = match word.to_ascii_lowercase().as_str() {
            "review" => &mut self.review,
            "approval" => &mut self.approval,
            "soft" => &mut self.soft,
            _ => return false,
        };
        *flag = true;
        true
    }
}

/// An item before ids are assigned and dependencies resolved.
struct Raw {
    explicit_id: Option<String>,
    title: String,
    /// `None`: no `after:` given, so it follows the previous item of its list.
    after: Option<Vec<String>>,
    priority: Option<i32>,
    artifacts: Vec<String>,
    marks: Marks,
    /// Index of the previous item in the same list.
    previous: Option<usize>,
}

/// Reads every task of the `tasks` sections of `markdown`, in file order; see
/// the [module docs](self) for the grammar.
pub fn task_list(markdown: &str) -> Vec<TaskItem> {
    let raws = collect(markdown);
    let ids = assign_ids(&raws);
    let known: HashSet<&str> = ids.iter().map(String::as_str).collect();
    raws.iter()
        .zip(&ids)
        .map(|(raw, id)| {
            let after = match &raw.after {
                None => raw.previous.map(|p| ids[p].clone()).into_iter().collect(),
                Some(deps) => deps
                    .iter()
                    .map(|d| {
                        if known.contains(d.as_str()) {
                            return d.clone();
                        }
                        let s = slug(d);
                        if known.contains(s.as_str()) {
                            s
                        } else {
                            d.clone()
                        }
                    })
                    .collect(),
            };
            TaskItem {
                id: id.clone(),
                title: raw.title.clone(),
                after,
                priority: raw.priority,
                artifacts: raw.artifacts.clone(),
                review: raw.marks.review,
                approval: raw.marks.approval,
                assignment: if raw.marks.soft {
                    Assignment::Soft
                } else {
                    Assignment::Hard
                },
            }
        })
        .collect()
}

fn collect(markdown: &str) -> Vec<Raw> {
    let mut events = Parser::new_ext(markdown, options())
        .into_offset_iter()
        .peekable();
    let mut raws: Vec<Raw> = Vec::new();
    let mut section: Option<HeadingLevel> = None;
    // Depth of lists inside the section; items at depth 1 are tasks.
    let mut list_depth = 0usize;
    let mut previous: Option<usize> = None;
    while let Some((event, _)) = events.next() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                let title = inline_text(&mut events, markdown);
                if section.is_some_and(|l| level <= l) {
                    section = None;
                }
                if title.to_ascii_lowercase().contains("tasks") {
                    section = Some(level);
                }
                list_depth = 0;
                previous = None;
            }
            Event::Start(Tag::List(_)) if section.is_some() => {
                list_depth += 1;
                if list_depth == 1 {
                    previous = None;
                }
            }
            Event::End(TagEnd::List(_)) if section.is_some() => {
                list_depth = list_depth.saturating_sub(1);
            }
            Event::Start(Tag::Item) if section.is_some() && list_depth == 1 => {
                if let Some(mut raw) = parse_item(&item_text(&mut events)) {
                    raw.previous = previous;
                    previous = Some(raws.len());
                    raws.push(raw);
                }
            }
            _ => {}
        }
    }
    raws
}

/// The plain text of the list item just opened, on one line; consumes the item
/// through its end.
fn item_text(events: &mut Peekable<OffsetIter<'_>>) -> String {
    let mut out = String::new();
    // Containers open inside the item (paragraphs, emphasis, links…).
    let mut depth = 0usize;
    while let Some((event, _)) = events.next() {
        match event {
            Event::Start(
                Tag::List(_) | Tag::CodeBlock(_) | Tag::BlockQuote(_) | Tag::HtmlBlock,
            ) => skip_to_end(events),
            Event::Start(tag) => {
                if matches!(tag, Tag::Paragraph) && !out.is_empty() {
                    out.push(' ');
                }
                depth += 1;
            }
            Event::End(_) if depth == 0 => break,
            Event::End(_) => depth -= 1,
            Event::Text(t) | Event::Code(t) => out.push_str(&t),
            Event::SoftBreak | Event::HardBreak => out.push(' '),
            _ => {}
        }
    }
    out
}

const FIELDS: [&str; 3] = ["after", "priority", "artifacts"];

/// Splits an item into id prefix, title and trailing fields; `None` for an
/// item with neither id nor title.
fn parse_item(text: &str) -> Option<Raw> {
    let text = text.trim();
    let text = ["[ ]", "[x]", "[X]"]
        .iter()
        .find_map(|checkbox| text.strip_prefix(checkbox))
        .unwrap_or(text)
        .trim_start();
    let (text, marks) = strip_markers(text);
    let (explicit_id, rest) = id_prefix(&text);
    let markers = field_markers(rest);
    let title_end = markers.first().map_or(rest.len(), |m| m.0);
    let title = rest
        .get(..title_end)
        .unwrap_or(rest)
        .trim_start()
        .trim_end_matches(|c: char| c.is_whitespace() || "(;,|—–-:".contains(c));
    let title = match (title, &explicit_id) {
        ("", None) => return None,
        ("", Some(id)) => id.clone(),
        (title, _) => title.to_owned(),
    };
    let mut raw = Raw {
        explicit_id,
        title,
        after: None,
        priority: None,
        artifacts: Vec::new(),
        marks,
        previous: None,
    };
    for (i, &(start, name)) in markers.iter().enumerate() {
        let value_start = start + name.len() + 1;
        let value_end = markers.get(i + 1).map_or(rest.len(), |m| m.0);
        let value = rest
            .get(value_start..value_end)
            .unwrap_or("")
            .trim_start()
            .trim_end_matches(|c: char| c.is_whitespace() || "();,|—–".contains(c));
        match name {
            "after" => {
                let deps: Vec<String> = list(value)
                    .into_iter()
                    .filter(|d| !(d == "-" || d.eq_ignore_ascii_case("none")))
                    .collect();
                raw.after.get_or_insert_with(Vec::new).extend(deps);
            }
            "priority" => raw.priority = value.parse().ok().or(raw.priority),
            _ => raw.artifacts.extend(list(value)),
        }
    }
    Some(raw)
}

/// `text` without its markers (see the module docs), and the marks they set.
///
/// A marker's own text goes, and so does the space after it when the text
/// before already ends in a space, so `Draft (review) it` reads `Draft it`.
fn strip_markers(text: &str) -> (String, Marks) {
    let mut marks = Marks::default();
    let mut out = String::with_capacity(text.len());
    // Where the text not yet copied to `out` starts, and whether a marker was just cut.
    let mut copied = 0;
    let mut cut = false;
    let glued = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    for (open, _) in text.match_indices('(') {
        if open < copied || glued(text[..open].chars().next_back()) {
            continue;
        }
        let Some(len) = text[open..].find(')') else {
            break;
        };
        let close = open + len;
        let inner = &text[open + 1..close];
        if glued(text[close + 1..].chars().next()) || !is_marker_group(inner) {
            continue;
        }
        push_after_cut(&mut out, &text[copied..open], cut);
        for word in marker_words(inner) {
            marks.set(word);
        }
        copied = close + 1;
        cut = true;
    }
    push_after_cut(&mut out, &text[copied..], cut);
    (out, marks)
}

/// Whether the text inside parentheses is one or more marker words and nothing else.
fn is_marker_group(inner: &str) -> bool {
    let mut probe = Marks::default();
    let mut words = marker_words(inner).peekable();
    words.peek().is_some() && words.all(|w| probe.set(w))
}

fn marker_words(inner: &str) -> impl Iterator<Item = &str> {
    inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
}

/// Appends `piece`; right after a cut marker, without the space a space before it makes double.
fn push_after_cut(out: &mut String, piece: &str, cut: bool) {
    if cut && (out.is_empty() || out.ends_with(char::is_whitespace)) {
        out.push_str(piece.trim_start());
    } else {
        out.push_str(piece);
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().trim_matches('`').trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `[id] rest` or `id: rest` with a valid lowercase id; otherwise no id.
fn id_prefix(text: &str) -> (Option<String>, &str) {
    if let Some(inner) = text.strip_prefix('[')
        && let Some((id, rest)) = inner.split_once(']')
        && check_id("task id", id.trim()).is_ok()
    {
        return (Some(id.trim().to_owned()), rest);
    }
    if let Some((id, rest)) = text.split_once(':')
        && check_id("task id", id).is_ok()
        && !id.bytes().any(|b| b.is_ascii_uppercase())
        && !FIELDS.contains(&id)
        && (rest.is_empty() || rest.starts_with(char::is_whitespace))
    {
        return (Some(id.to_owned()), rest);
    }
    (None, text)
}

/// Byte offsets of `after:`, `priority:`, `artifacts:` that start a word.
fn field_markers(text: &str) -> Vec<(usize, &'static str)> {
    let lower = text.to_ascii_lowercase();
    let mut found = Vec::new();
    for name in FIELDS {
        let pattern = format!("{name}:");
        for (at, _) in lower.match_indices(&pattern) {
            let starts_word = lower[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '-'));
            if starts_word {
                found.push((at, name));
            }
        }
    }
    found.sort_unstable();
    found
}

/// The ids of `raws`: explicit ones as written, others unique slugs.
fn assign_ids(raws: &[Raw]) -> Vec<String> {
    // Explicit ids are reserved first so a slug never takes one that comes later.
    let mut taken: HashSet<String> = raws.iter().filter_map(|r| r.explicit_id.clone()).collect();
    raws.iter()
        .map(|raw| {
            if let Some(id) = &raw.explicit_id {
                return id.clone();
            }
            let id = unique_id(&slug(&raw.title), &taken);
            taken.insert(id.clone());
            id
        })
        .collect()
}

/// `base`, or else the first of `base-2`, `base-3`… (the stem cut to keep it
/// within [`MAX_PLANNED_ID_LEN`]) that is not in `taken`.
pub fn unique_id(base: &str, taken: &HashSet<String>) -> String {
    let mut id = base.to_owned();
    let mut n = 2u32;
    while taken.contains(&id) {
        let suffix = format!("-{n}");
        let keep = MAX_PLANNED_ID_LEN.saturating_sub(suffix.len());
        let stem = base.get(..base.len().min(keep)).unwrap_or(base);
        id = format!("{}{suffix}", stem.trim_end_matches('-'));
        n += 1;
    }
    id
}

/// Lowercase ASCII letters and digits, every other run as one `-`, at most
/// [`MAX_PLANNED_ID_LEN`] characters; `task` when nothing is left.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(MAX_PLANNED_ID_LEN);
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "task".to_owned()
    } else {
        out.to_owned()
    }
}

#[cfg(test)]
mod tests;
