//! The task list of an agent's instruction file, read by the offline planner.
//!
//! ```markdown
//! ## Tasks
//! - [scope] Define the scope priority: 10
//! - [collect-sources] Collect sources artifacts: sources.md
//! - Summarize after: collect-sources, scope
//! ```
//!
//! Rules:
//!
//! - Every top-level item of a list under a heading whose text contains `tasks`
//!   (any case, any level) is one task, until the next heading of that level or
//!   higher. Nested lists are notes of their item, not tasks.
//! - The id is an explicit prefix, `[id] Title` or `id: Title` (a lowercase
//!   id, so a title like `Note: …` stays a title), else a slug of the title:
//!   lowercase, runs of other characters as `-`, at most 64 characters, made
//!   unique with `-2`, `-3`…
//! - Trailing fields, in any order and any case: `after: a, b` (dependencies,
//!   by id, or by a title whose slug is an id), `priority: N` (an `i32`; any
//!   other value is ignored), `artifacts: a.md, b.md`.
//! - An item without `after:` runs after the item above it in the same list
//!   (order gives edges; a new list or section starts a new chain), so a plain
//!   list is a sequence. `after: none` or `after: -` means no dependency.

use std::collections::HashSet;

use pulldown_cmark::{Event, HeadingLevel, Parser, Tag, TagEnd};

use super::markdown::{inline_text, item_text, options};
use crate::domain::ids::{MAX_ID_LEN, check_id};

/// One task read from a `## Tasks` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskItem {
    /// Task id: explicit, or a unique slug of the title.
    pub id: String,
    /// The item's text without its id prefix and trailing fields.
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

/// Reads every task of the `tasks` sections of `markdown`, in file order.
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
                let text = item_text(&mut events, markdown).replace('\n', " ");
                let mut raw = parse_item(&text);
                raw.previous = previous;
                previous = Some(raws.len());
                raws.push(raw);
            }
            _ => {}
        }
    }
    raws
}

const FIELDS: [&str; 3] = ["after", "priority", "artifacts"];

/// Splits an item into id prefix, title and trailing fields.
fn parse_item(text: &str) -> Raw {
    let text = text.trim();
    let (explicit_id, rest) = id_prefix(text);
    let markers = field_markers(rest);
    let title_end = markers.first().map_or(rest.len(), |m| m.0);
    let title = rest
        .get(..title_end)
        .unwrap_or(rest)
        .trim()
        .trim_end_matches([';', ',', '(', '—', '–', '-', '|'])
        .trim()
        .to_owned();
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
            .trim()
            .trim_end_matches([';', ',', ')', '|'])
            .trim();
        match name {
            "after" => {
                let deps: Vec<String> = list(value)
                    .into_iter()
                    .filter(|d| !(d == "-" || d.eq_ignore_ascii_case("none")))
                    .collect();
                raw.after.get_or_insert_with(Vec::new).extend(deps);
            }
            "priority" => raw.priority = value.parse().ok(),
            _ => raw.artifacts.extend(list(value)),
        }
    }
    raw
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
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
            let base = slug(&raw.title);
            let mut id = base.clone();
            let mut n = 2u32;
            while taken.contains(&id) {
                let suffix = format!("-{n}");
                let keep = MAX_ID_LEN - suffix.len();
                let stem = base[..base.len().min(keep)].trim_end_matches('-');
                id = format!("{stem}{suffix}");
                n += 1;
            }
            taken.insert(id.clone());
            id
        })
        .collect()
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
