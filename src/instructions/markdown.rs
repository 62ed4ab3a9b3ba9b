//! The markdown form of the instructions file, read with pulldown-cmark events.
//!
//! ```markdown
//! ## Agents
//! ### research_agent
//! - Goal: goal-001
//! - Heartbeat: ./instructions/heartbeat/research.md
//! - Kind: builder
//!
//! ## Goals
//! ### goal-001
//! - Review: marked
//! ```
//!
//! A heading whose text is `Agents` (any level L) opens the agent list; each
//! heading of level L+1 under it declares one agent named by its text, and the
//! `- Key: value` bullets under that heading are its fields (keys are
//! case-insensitive; `Log level`, `log_level` and `Log-Level` are one key). The
//! list ends at the next heading of level L or less. Paragraphs under an agent
//! are description and ignored. Everything outside the agent list is kept
//! verbatim as context for the planner. A fenced ```` ```yaml ```` block with an
//! `agents:` key is the YAML form (see [`super::yaml`]) and is left out of the
//! context as well.
//!
//! A heading whose text is `Goals` (outside the agent list) opens the goal
//! policies the same way: one heading of level L+1 per goal, its text the goal
//! id, with `- Review:` and `- Approve:` bullets (see [`super::goals`]). Unlike
//! the agent list, that section stays in the planner context.

use std::ops::Range;

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::fields::{Acc, Draft, Field};
use super::goals::{GoalDraft, GoalField};
use super::yaml;

type Events<'a> = std::iter::Peekable<pulldown_cmark::OffsetIter<'a>>;

/// Options shared by the markdown readers: task list markers (`- [ ]`) are not text.
pub(super) fn options() -> Options {
    Options::ENABLE_TASKLISTS
}

/// Which list a heading opened: the agents (cut from the context) or the goal
/// policies (kept in it, see [`super::goals`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Agents,
    Goals,
}

/// Reads the markdown form into `acc`; returns the context text.
pub(super) fn parse_into(text: &str, acc: &mut Acc<'_>) -> String {
    let lines = LineIndex::new(text);
    let mut events = Parser::new_ext(text, options())
        .into_offset_iter()
        .peekable();
    // The open section: what it lists, its heading level and where it starts
    // (for the context cut).
    let mut section: Option<(Section, HeadingLevel, usize)> = None;
    let mut excluded: Vec<Range<usize>> = Vec::new();
    let mut draft: Option<Draft> = None;
    let mut goal: Option<GoalDraft> = None;
    // Under a deeper heading inside an agent or goal (`#### Notes`): description, not fields.
    let mut in_subheading = false;
    let mut markdown_agents = 0usize;
    let mut yaml_blocks: Vec<usize> = Vec::new();
    let mut yaml_context: Vec<String> = Vec::new();

    while let Some((event, range)) = events.next() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                let line = lines.line(range.start);
                let title = inline_text(&mut events, text);
                if let Some((kind, l, start)) = section
                    && level <= l
                {
                    if let Some(d) = draft.take() {
                        acc.push(d);
                    }
                    if let Some(g) = goal.take() {
                        acc.push_goal(g);
                    }
                    if kind == Section::Agents {
                        excluded.push(start..range.start);
                    }
                    section = None;
                }
                in_subheading = false;
                let title = title.trim();
                if title.eq_ignore_ascii_case("agents") {
                    section = Some((Section::Agents, level, range.start));
                    acc.section_line.get_or_insert(line);
                } else if section.is_none() && title.eq_ignore_ascii_case("goals") {
                    section = Some((Section::Goals, level, range.start));
                } else if let Some((kind, l, _)) = section
                    && level as usize == l as usize + 1
                {
                    if kind == Section::Agents {
                        if let Some(d) = draft.take() {
                            acc.push(d);
                        }
                        let mut d = Draft::at(line);
                        acc.set(&mut d, "name", title, line);
                        draft = Some(d);
                        markdown_agents += 1;
                    } else {
                        if let Some(g) = goal.take() {
                            acc.push_goal(g);
                        }
                        goal = Some(acc.goal_heading(title, line));
                    }
                } else if section.is_some() {
                    in_subheading = true;
                }
            }
            Event::Start(Tag::Item) if !in_subheading && section.is_some() => {
                let line = lines.line(range.start);
                let item = item_text(&mut events, text);
                match section {
                    Some((Section::Agents, ..)) => field_bullet(acc, draft.as_mut(), &item, line),
                    _ => goal_bullet(acc, goal.as_mut(), &item, line),
                }
            }
            Event::Start(Tag::Paragraph)
                if !in_subheading && (draft.is_some() || goal.is_some()) =>
            {
                let line = lines.line(range.start);
                let para = inline_text(&mut events, text);
                // A field written without its bullet would otherwise vanish silently.
                if let Some((key, _)) = para.split_once(':') {
                    let is_field = if draft.is_some() {
                        Field::from_key(key).is_some()
                    } else {
                        policy_field(key).is_some()
                    };
                    if is_field {
                        acc.warn(
                            line,
                            Some(key.trim()),
                            "not a bullet, so ignored: write it as `- Key: value`",
                        );
                    }
                }
            }
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) if is_yaml(&info) => {
                let block_line = lines.line(range.start);
                let (content, end) = code_text(&mut events, range.end);
                if !yaml::declares_agents(&content) {
                    continue;
                }
                excluded.push(range.start..end);
                acc.section_line.get_or_insert(block_line);
                if !yaml_blocks.is_empty() {
                    acc.error(
                        block_line,
                        None,
                        format!(
                            "a second yaml agents block (the first is on line {}): \
                             declare all agents in one block",
                            yaml_blocks[0]
                        ),
                    );
                    continue;
                }
                yaml_blocks.push(block_line);
                // The block's content starts on the line after the opening fence.
                if let Some(c) = yaml::parse_document(&content, block_line, acc) {
                    yaml_context.push(c);
                }
            }
            _ => {}
        }
    }
    if let Some(d) = draft.take() {
        acc.push(d);
    }
    if let Some(g) = goal.take() {
        acc.push_goal(g);
    }
    if let Some((Section::Agents, _, start)) = section {
        excluded.push(start..text.len());
    }
    if markdown_agents > 0
        && let Some(&yaml_line) = yaml_blocks.first()
    {
        acc.error(
            yaml_line,
            None,
            "agents are declared both in this yaml block and as `### name` headings: \
             use one form",
        );
    }
    let mut context = cut(text, excluded);
    for c in yaml_context {
        if !context.is_empty() {
            context.push_str("\n\n");
        }
        context.push_str(c.trim());
    }
    context
}

/// Handles one list item of the agents section.
fn field_bullet(acc: &mut Acc<'_>, draft: Option<&mut Draft>, item: &str, line: usize) {
    // A line right below a bullet continues it (CommonMark "lazy" lines); a
    // value is one line, so the rest is flagged rather than glued onto it.
    let (item, more) = item.split_once('\n').unwrap_or((item, ""));
    if draft.is_some() && !more.trim().is_empty() {
        acc.warn(
            line + 1,
            None,
            "text right below a field is ignored: leave a blank line before a description",
        );
    }
    let Some((key, value)) = item.split_once(':') else {
        if draft.is_some() {
            let shown: String = item.trim().chars().take(60).collect();
            acc.error(
                line,
                None,
                format!("{shown:?} is not a field: write `- Key: value`, e.g. `- Goal: goal-001`"),
            );
        }
        return;
    };
    match draft {
        Some(d) => acc.set(d, key, value, line),
        None => {
            if let Some(field) = Field::from_key(key) {
                acc.error(
                    line,
                    Some(field.name()),
                    "comes before any agent: put it under an `### agent_name` heading",
                );
            }
        }
    }
}

/// The policy field a key names (`Review`, `Approve`); the goal's id is its heading.
fn policy_field(key: &str) -> Option<GoalField> {
    GoalField::from_key(key).filter(|f| *f != GoalField::Id)
}

/// Handles one list item of the goals section: a policy field, or description.
fn goal_bullet(acc: &mut Acc<'_>, goal: Option<&mut GoalDraft>, item: &str, line: usize) {
    let (item, more) = item.split_once('\n').unwrap_or((item, ""));
    let Some((key, value)) = item.split_once(':') else {
        return;
    };
    match (goal, policy_field(key)) {
        (Some(g), Some(_)) => {
            if !more.trim().is_empty() {
                acc.warn(
                    line + 1,
                    None,
                    "text right below a field is ignored: leave a blank line before a description",
                );
            }
            acc.set_goal(g, key, value, line);
        }
        (None, Some(field)) => acc.error(
            line,
            Some(field.name()),
            "comes before any goal: put it under a `### goal-id` heading",
        ),
        // One word before the colon looks like a key, most likely a misspelt
        // policy; anything else (`See https://…`, `Goal 1: …`) is description.
        (Some(_), None) if is_one_word(key) => acc.unknown_goal_key(key, line),
        _ => {}
    }
}

fn is_one_word(key: &str) -> bool {
    let key = key.trim();
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
}

fn is_yaml(info: &str) -> bool {
    let lang = info.split_whitespace().next().unwrap_or("");
    lang.eq_ignore_ascii_case("yaml") || lang.eq_ignore_ascii_case("yml")
}

/// The text of a code block, and where the block ends.
fn code_text(events: &mut Events<'_>, mut end: usize) -> (String, usize) {
    let mut content = String::new();
    for (event, range) in events.by_ref() {
        match event {
            Event::Text(t) => content.push_str(&t),
            Event::End(TagEnd::CodeBlock) => {
                end = end.max(range.end);
                break;
            }
            _ => {}
        }
    }
    (content, end)
}

/// The inline text of the container just opened, consuming it through its end.
///
/// Plain text is unescaped and code spans unwrapped; any other inline element
/// (emphasis, links, HTML) is kept as its raw source, so `### *agent*` yields
/// `*agent*` and is rejected as a name rather than silently read as `agent`.
pub(super) fn inline_text(events: &mut Events<'_>, src: &str) -> String {
    text_of(events, src, ' ', false)
}

/// The text of a list item just opened: its first paragraph's lines joined by
/// `\n`, later paragraphs on lines of their own, nested lists skipped; consumes
/// the item through its end.
pub(super) fn item_text(events: &mut Events<'_>, src: &str) -> String {
    text_of(events, src, '\n', true)
}

/// The text of the container just opened, consuming it through its end: plain
/// text and code spans as text, line breaks as `newline`, other elements as
/// their raw source. In a list `item`, paragraphs go on lines of their own and
/// nested lists, code blocks and quotes are skipped.
fn text_of(events: &mut Events<'_>, src: &str, newline: char, item: bool) -> String {
    let mut out = String::new();
    while let Some((event, range)) = events.next() {
        match event {
            Event::End(_) => break,
            Event::Text(t) | Event::Code(t) => out.push_str(&t),
            Event::SoftBreak | Event::HardBreak => out.push(newline),
            Event::Start(Tag::Paragraph) if item => {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&text_of(events, src, newline, false));
            }
            Event::Start(Tag::List(_) | Tag::CodeBlock(_) | Tag::BlockQuote(_)) if item => {
                skip_to_end(events)
            }
            Event::Start(_) => {
                out.push_str(src.get(range).unwrap_or(""));
                skip_to_end(events);
            }
            Event::Html(h) | Event::InlineHtml(h) => out.push_str(&h),
            _ => {}
        }
    }
    out
}

/// Consumes events through the end of the container just opened.
pub(super) fn skip_to_end(events: &mut Events<'_>) {
    let mut depth = 1usize;
    for (event, _) in events.by_ref() {
        match event {
            Event::Start(_) => depth += 1,
            Event::End(_) => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            _ => {}
        }
    }
}

/// `text` without the byte ranges in `excluded`, trimmed at both ends.
fn cut(text: &str, mut excluded: Vec<Range<usize>>) -> String {
    excluded.sort_by_key(|r| r.start);
    let mut out = String::new();
    let mut pos = 0;
    for r in excluded {
        if r.start > pos {
            out.push_str(text.get(pos..r.start).unwrap_or(""));
        }
        pos = pos.max(r.end);
    }
    out.push_str(text.get(pos..).unwrap_or(""));
    out.trim().to_owned()
}

/// Maps byte offsets to 1-based line numbers.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }
}
