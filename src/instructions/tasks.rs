//! The task list of an agent's instruction file: the one grammar for it, used by
//! `porki instructions` and by the task-list planner ([`super::plan`]).
//!
//! ```markdown
//! ## Tasks
//! - [scope] Define the scope priority: 10
//! - [collect-sources] Collect sources artifacts: sources.md
//! - Summarize (after: collect-sources, scope) (priority: 2)
//! - [ ] review: Review the report; after: Summarize
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
//!   (1 to 64 characters from `A-Z a-z 0-9 . _ -`); anything else in brackets
//!   stays in the title. Without one, the id is a slug of the title: lowercase,
//!   runs of other characters as `-`, at most 64 characters, made unique with
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
//! - An item without `after:` runs after the item above it in the same list
//!   (order gives edges; a new list or section starts a new chain), so a plain
//!   list is a sequence. `after: none` or `after: -` means no dependency.
//!   Names in `after:` that match no task here are kept as written (they may
//!   name a task of another agent).

use std::collections::HashSet;
use std::iter::Peekable;

use pulldown_cmark::{Event, HeadingLevel, OffsetIter, Parser, Tag, TagEnd};

use super::markdown::{inline_text, options, skip_to_end};
use crate::domain::ids::{MAX_ID_LEN, check_id};

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
}

/// An item before ids are assigned and dependencies resolved.
struct Raw {
    explicit_id: Option<String>,
    title: String,
    /// `None`: no `after:` given, so it follows the previous item of its list.
    after: Option<Vec<String>>,
    priority: Option<i32>,
    artifacts: Vec<String>,
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
    let (explicit_id, rest) = id_prefix(text);
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
/// within [`MAX_ID_LEN`]) that is not in `taken`.
pub fn unique_id(base: &str, taken: &HashSet<String>) -> String {
    let mut id = base.to_owned();
    let mut n = 2u32;
    while taken.contains(&id) {
        let suffix = format!("-{n}");
        let keep = MAX_ID_LEN.saturating_sub(suffix.len());
        let stem = base.get(..base.len().min(keep)).unwrap_or(base);
        id = format!("{}{suffix}", stem.trim_end_matches('-'));
        n += 1;
    }
    id
}

/// Lowercase ASCII letters and digits, every other run as one `-`, at most 64
/// characters; `task` when nothing is left.
pub fn slug(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(MAX_ID_LEN);
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "task".to_owned()
    } else {
        out.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(tasks: &[TaskItem]) -> Vec<&str> {
        tasks.iter().map(|t| t.id.as_str()).collect()
    }

    #[test]
    fn explicit_ids_and_trailing_after() {
        let md =
            "## Tasks\n- [scope] Define scope\n- [collect-sources] Collect sources after: scope\n";
        let t = task_list(md);
        assert_eq!(ids(&t), ["scope", "collect-sources"]);
        assert_eq!(t[1].title, "Collect sources");
        assert_eq!(t[1].after, ["scope"]);
        assert!(t[0].after.is_empty());
    }

    #[test]
    fn order_gives_edges_when_after_is_missing() {
        let t = task_list("## Tasks\n- One\n- Two\n- Three\n");
        assert_eq!(ids(&t), ["one", "two", "three"]);
        assert!(t[0].after.is_empty());
        assert_eq!(t[1].after, ["one"]);
        assert_eq!(t[2].after, ["two"]);
    }

    #[test]
    fn after_none_or_dash_means_no_dependency() {
        let t = task_list("## Tasks\n- A\n- B after: none\n- C AFTER: -\n");
        assert!(t[1].after.is_empty());
        assert!(t[2].after.is_empty());
    }

    #[test]
    fn colon_prefix_is_an_id_only_when_lowercase() {
        let t = task_list("## Tasks\n- t1: First thing\n- Note: second thing\n");
        assert_eq!(t[0].id, "t1");
        assert_eq!(t[0].title, "First thing");
        assert_eq!(t[1].id, "note-second-thing");
        assert_eq!(t[1].title, "Note: second thing");
    }

    #[test]
    fn priority_and_artifacts_in_any_order_and_case() {
        let t = task_list(
            "### Research tasks\n- [w] Write report Artifacts: `report.md`, notes.md; Priority: 7 after: none\n",
        );
        assert_eq!(t[0].title, "Write report");
        assert_eq!(t[0].priority, Some(7));
        assert_eq!(t[0].artifacts, ["report.md", "notes.md"]);
        assert!(t[0].after.is_empty());
    }

    #[test]
    fn a_bad_priority_is_ignored() {
        let t = task_list("## Tasks\n- Do it priority: high\n");
        assert_eq!(t[0].priority, None);
        assert_eq!(t[0].title, "Do it");
    }

    #[test]
    fn slugs_are_unique_and_bounded() {
        let long = "x".repeat(100);
        let md =
            format!("## Tasks\n- Same\n- Same\n- Same\n- {long}\n- {long}\n- [same-2] explicit\n");
        let t = task_list(&md);
        assert_eq!(ids(&t)[..3], ["same", "same-3", "same-4"]);
        assert_eq!(t[3].id.len(), 64);
        assert_eq!(t[4].id.len(), 64);
        assert!(t[4].id.ends_with("-2"));
        assert_eq!(t[5].id, "same-2");
        for task in &t {
            assert!(check_id("task id", &task.id).is_ok(), "{}", task.id);
        }
    }

    #[test]
    fn after_may_name_a_title() {
        let t = task_list("## Tasks\n- Collect sources\n- Write after: Collect sources\n");
        assert_eq!(t[1].after, ["collect-sources"]);
    }

    #[test]
    fn only_tasks_sections_count_and_nested_lists_are_notes() {
        let md = "# Agent\n- not a task\n## Tasks\n- A\n  - detail\n- B\n## Notes\n- also not\n";
        let t = task_list(md);
        assert_eq!(ids(&t), ["a", "b"]);
        assert_eq!(t[1].after, ["a"]);
    }

    #[test]
    fn a_new_list_starts_a_new_chain() {
        let md = "## Tasks\n- A\n- B\n\nThen, separately:\n\n1. C\n2. D\n";
        let t = task_list(md);
        assert_eq!(ids(&t), ["a", "b", "c", "d"]);
        assert!(t[2].after.is_empty());
        assert_eq!(t[3].after, ["c"]);
    }

    #[test]
    fn sub_headings_stay_in_the_section_until_a_same_level_heading() {
        let md = "## Tasks\n### Phase one\n- A\n### Phase two\n- B\n## Other\n- C\n";
        let t = task_list(md);
        assert_eq!(ids(&t), ["a", "b"]);
    }

    #[test]
    fn checkboxes_are_not_ids() {
        let t = task_list("## Tasks\n- [ ] Open item\n- [x] Done item\n");
        assert_eq!(ids(&t), ["open-item", "done-item"]);
    }

    #[test]
    fn no_tasks_section_gives_nothing() {
        assert!(task_list("# Title\n- a\n- b\n").is_empty());
        assert!(task_list("").is_empty());
    }

    #[test]
    fn the_agent_template_has_a_readable_task_list() {
        let t = task_list(&super::super::agent_template("research_agent"));
        assert_eq!(ids(&t), ["scope", "collect-sources", "summarize", "review"]);
        assert_eq!(t[0].priority, Some(10));
        assert_eq!(t[1].after, ["scope"]);
        assert_eq!(t[2].artifacts, ["report.md"]);
        assert_eq!(t[3].after, ["scope", "summarize"]);
    }

    #[test]
    fn the_module_example_reads_as_documented() {
        let md = "## Tasks\n\
            - [scope] Define the scope priority: 10\n\
            - [collect-sources] Collect sources artifacts: sources.md\n\
            - Summarize (after: collect-sources, scope) (priority: 2)\n\
            - [ ] review: Review the report; after: Summarize\n";
        let t = task_list(md);
        assert_eq!(ids(&t), ["scope", "collect-sources", "summarize", "review"]);
        assert_eq!(t[1].after, ["scope"]);
        assert_eq!(t[1].artifacts, ["sources.md"]);
        assert_eq!(t[2].title, "Summarize");
        assert_eq!(t[2].after, ["collect-sources", "scope"]);
        assert_eq!(t[2].priority, Some(2));
        assert_eq!(t[3].title, "Review the report");
        assert_eq!(t[3].after, ["summarize"]);
    }

    #[test]
    fn fields_in_parentheses_or_after_separators() {
        let md = "## Tasks\n\
            - [a] A (after: none) (priority: 2)\n\
            - [b] B (after: a, c) (artifacts: `b.md`)\n\
            - [c] C ; priority: 4 ; after: a\n\
            - D | priority: 1 | after: b |\n\
            - E, after: d — priority: 3\n";
        let t = task_list(md);
        assert_eq!(ids(&t), ["a", "b", "c", "d", "e"]);
        for (task, title) in t.iter().zip(["A", "B", "C", "D", "E"]) {
            assert_eq!(task.title, title);
        }
        assert!(t[0].after.is_empty());
        assert_eq!(t[0].priority, Some(2));
        assert_eq!(t[1].after, ["a", "c"]);
        assert_eq!(t[1].artifacts, ["b.md"]);
        assert_eq!(
            (t[2].priority, &t[2].after[..]),
            (Some(4), &["a".to_owned()][..])
        );
        assert_eq!(
            (t[3].priority, &t[3].after[..]),
            (Some(1), &["b".to_owned()][..])
        );
        assert_eq!(
            (t[4].priority, &t[4].after[..]),
            (Some(3), &["d".to_owned()][..])
        );
    }

    #[test]
    fn repeated_fields_add_up_and_a_bad_priority_keeps_the_good_one() {
        let t = task_list("## Tasks\n- A priority: 5 priority: high after: x after: y\n");
        assert_eq!(t[0].priority, Some(5));
        assert_eq!(t[0].after, ["x", "y"]);
    }

    #[test]
    fn checkboxes_written_as_text_are_dropped() {
        let t = task_list("## Tasks\n- [ ]Open\n- [x]Done\n- [X] [big] Big one\n");
        assert_eq!(ids(&t), ["open", "done", "big"]);
        assert_eq!(t[0].title, "Open");
    }

    #[test]
    fn items_without_a_title_take_their_id_or_are_skipped() {
        let t = task_list("## Tasks\n- [scope]\n- [ ]\n- after: scope\n-\n- Next\n");
        assert_eq!(ids(&t), ["scope", "next"]);
        assert_eq!(t[0].title, "scope");
        assert_eq!(t[1].after, ["scope"]);
    }

    #[test]
    fn items_are_read_as_plain_text() {
        let md = "## Tasks\n\
            - Read the *docs* and `code`\n\
            - Read [the guide](https://example.com/after:x)\n\
            - Two\n  lines\n\n  and a paragraph\n\n      code block after: nothing\n";
        let t = task_list(md);
        assert_eq!(t[0].title, "Read the docs and code");
        assert_eq!(t[1].title, "Read the guide");
        assert_eq!(t[1].after, ["read-the-docs-and-code"]);
        assert_eq!(t[2].title, "Two lines and a paragraph");
        assert_eq!(t[2].after, ["read-the-guide"]);
    }

    #[test]
    fn brackets_that_are_no_id_stay_in_the_title() {
        let t = task_list("## Tasks\n- [Collect sources] first\n");
        assert_eq!(t[0].id, "collect-sources-first");
        assert_eq!(t[0].title, "[Collect sources] first");
    }

    #[test]
    fn unique_id_adds_a_suffix_within_the_length_limit() {
        let taken: HashSet<String> = ["a", "a-2"].map(String::from).into();
        assert_eq!(unique_id("b", &taken), "b");
        assert_eq!(unique_id("a", &taken), "a-3");
        let long = "x".repeat(MAX_ID_LEN);
        let id = unique_id(&long, &HashSet::from([long.clone()]));
        assert_eq!(id.len(), MAX_ID_LEN);
        assert!(id.ends_with("-2"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = task_list(&s);
        }

        #[test]
        fn never_panics_on_task_lists(s in "(## Tasks\n|- |\\[[a-z ]{0,4}\\] ?|after: ?|priority: ?|artifacts: ?|[a-zé, -]{0,8}|\n){0,30}") {
            for t in task_list(&s) {
                proptest::prop_assert!(check_id("task id", &t.id).is_ok(), "{}", t.id);
            }
        }
    }
}
