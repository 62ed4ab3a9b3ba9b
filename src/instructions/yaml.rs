//! The YAML form of the instructions file (the Python original's form), as the
//! whole file or in a fenced ```` ```yaml ```` block of a markdown file:
//!
//! ```yaml
//! instruction_schema_version: "2"
//! agents:
//!   - name: research_agent
//!     goal: goal-001
//!     cadence: 30s
//!     kind: builder
//! goals:
//!   - id: goal-001
//!     review: marked
//!     approve: none
//! ```
//!
//! Keys are case-insensitive and `_` is the same as `-` (`log_level`,
//! `log-level`). A top-level `context:` string is planner context, like the
//! text around the agent list in the markdown form. `goals:` (optional) lists
//! goal policies, checked as [`super::goals`] says.
//!
//! serde_yaml_ng values carry no positions, so lines are found by a small scan
//! of the block-style layout (`locate`); for flow style (`agents: [{…}]`)
//! messages fall back to the `agents:` (or `goals:`) line. The scan only places messages, it
//! never decides a value.

use serde_yaml_ng::Value;

use super::fields::{Acc, Draft, Field, normalize_key};
use super::goals::{GoalDraft, GoalField};

/// The schema version this parser reads.
pub const SCHEMA_VERSION: &str = "2";

/// Whether the whole text is the YAML form rather than markdown.
///
/// True when it parses as a YAML mapping with an `agents` or
/// `instruction_schema_version` key, or when its first line that is not blank
/// or a `#` comment is one of those keys (so a YAML syntax error is reported as
/// such, not as "no agents"). A leading `---` alone does not count: markdown
/// front matter starts that way too.
pub(super) fn looks_like_yaml(text: &str) -> bool {
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    first.and_then(top_key).is_some_and(is_marker_key) || parses_with_marker(text)
}

/// Whether a fenced yaml block declares agents (and is not some other YAML example).
pub(super) fn declares_agents(block: &str) -> bool {
    block.lines().any(|l| top_key(l).is_some_and(is_marker_key)) || parses_with_marker(block)
}

fn is_marker_key(key: String) -> bool {
    key == "agents" || key == "instruction-schema-version"
}

fn parses_with_marker(text: &str) -> bool {
    match serde_yaml_ng::from_str::<Value>(text) {
        Ok(Value::Mapping(m)) => m
            .keys()
            .filter_map(Value::as_str)
            .any(|k| is_marker_key(normalize_key(k))),
        _ => false,
    }
}

/// The normalized key of a top-level `key: …` line (no indentation), if it is one.
fn top_key(line: &str) -> Option<String> {
    if line.starts_with(char::is_whitespace) {
        return None;
    }
    key_of(line)
}

/// The normalized key of `key: value` / `key:` text, quotes removed.
fn key_of(s: &str) -> Option<String> {
    let (key, rest) = s.split_once(':')?;
    if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
        return None;
    }
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    if key.is_empty() || key.starts_with(['#', '-', '{', '[']) {
        return None;
    }
    Some(normalize_key(key))
}

/// The top-level keys whose lists `locate` finds the items of.
const LISTS: [&str; 2] = ["agents", "goals"];

/// Lines of the parts of a block-style document (1-based, relative to it).
#[derive(Debug, Default)]
struct Layout {
    top_keys: Vec<(String, usize)>,
    /// The items of each list in [`LISTS`], by key.
    lists: Vec<(String, Vec<ItemLayout>)>,
}

#[derive(Debug)]
struct ItemLayout {
    line: usize,
    key_indent: usize,
    keys: Vec<(String, usize)>,
}

impl ItemLayout {
    /// The line of `key` (normalized) in this item.
    fn key_line(&self, key: &str) -> Option<usize> {
        self.keys.iter().find(|(k, _)| k == key).map(|&(_, l)| l)
    }
}

impl Layout {
    fn top(&self, key: &str) -> Option<usize> {
        self.top_keys
            .iter()
            .find(|(k, _)| k == key)
            .map(|&(_, l)| l)
    }

    /// The scanned items of the list under `key`, if there are exactly `count`
    /// (only then do they match the parsed items one to one).
    fn items(&self, key: &str, count: usize) -> Option<&[ItemLayout]> {
        self.lists
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, items)| items.as_slice())
            .filter(|items| items.len() == count)
    }
}

/// Finds the lines of top-level keys, of each item of the [`LISTS`] and of its keys.
fn locate(text: &str) -> Layout {
    let mut layout = Layout::default();
    // The list being scanned: its index in `layout.lists` and the indent of its dashes.
    let mut list: Option<(usize, Option<usize>)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let content = raw.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = raw.len() - content.len();
        if indent == 0 && !content.starts_with('-') {
            list = None;
            if let Some(key) = key_of(content) {
                if LISTS.contains(&key.as_str()) && layout.top(&key).is_none() {
                    list = Some((layout.lists.len(), None));
                    layout.lists.push((key.clone(), Vec::new()));
                }
                layout.top_keys.push((key, line));
            }
            continue;
        }
        let Some((index, dash_indent)) = &mut list else {
            continue;
        };
        let items = &mut layout.lists[*index].1;
        if content == "-" || content.starts_with("- ") {
            if *dash_indent.get_or_insert(indent) == indent {
                let rest = content[1..].trim_start();
                let key_indent = indent + (content.len() - rest.len());
                let mut keys = Vec::new();
                if let Some(k) = key_of(rest) {
                    keys.push((k, line));
                }
                items.push(ItemLayout {
                    line,
                    key_indent,
                    keys,
                });
            }
            continue;
        }
        if let Some(item) = items.last_mut()
            && indent == item.key_indent
            && let Some(k) = key_of(content)
        {
            item.keys.push((k, line));
        }
    }
    layout
}

/// Reads one YAML document into `acc`; `offset` is added to its line numbers.
/// Returns its `context:` text, if any.
pub(super) fn parse_document(text: &str, offset: usize, acc: &mut Acc<'_>) -> Option<String> {
    let value = match serde_yaml_ng::from_str::<Value>(text) {
        Ok(v) => v,
        Err(e) => {
            let (line, col) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 0));
            let mut msg = e.to_string();
            // The library appends a position relative to the block; ours is absolute.
            if let Some(at) = msg.rfind(" at line ") {
                msg.truncate(at);
            }
            let col = if col > 0 {
                format!(" (column {col})")
            } else {
                String::new()
            };
            acc.error(offset + line, None, format!("not valid YAML{col}: {msg}"));
            return None;
        }
    };
    let layout = locate(text);
    let at = |l: Option<usize>| offset + l.unwrap_or(1);
    let Value::Mapping(map) = value else {
        acc.error(
            offset + 1,
            None,
            "expected a mapping with an `agents:` list of agents",
        );
        return None;
    };
    let mut context = None;
    let mut saw_agents = false;
    for (k, v) in &map {
        let Some(raw_key) = k.as_str() else {
            acc.warn(at(None), None, "a key that is not text, ignored");
            continue;
        };
        let key = normalize_key(raw_key);
        let line = at(layout.top(&key));
        match key.as_str() {
            "instruction-schema-version" => check_version(v, line, acc),
            "context" => match v {
                Value::String(s) => context = Some(s.clone()),
                _ => acc.error(line, Some("context"), "expected text"),
            },
            "agents" => {
                saw_agents = true;
                agents(v, &layout, offset, acc);
            }
            "goals" => goals(v, &layout, offset, acc),
            _ => {
                let shown: String = raw_key.chars().take(40).collect();
                acc.warn(
                    line,
                    Some(&shown),
                    "unknown top-level key, ignored \
                     (known: instruction_schema_version, agents, goals, context)",
                );
            }
        }
    }
    if saw_agents {
        acc.section_line.get_or_insert(at(layout.top("agents")));
    }
    context
}

fn check_version(v: &Value, line: usize, acc: &mut Acc<'_>) {
    let ok = match v {
        Value::String(s) => s.trim() == SCHEMA_VERSION,
        Value::Number(n) => n.as_u64() == Some(2),
        _ => false,
    };
    if !ok {
        acc.error(
            line,
            Some("instruction_schema_version"),
            format!(
                "is {}, but porki reads version \"{SCHEMA_VERSION}\": \
                 write instruction_schema_version: \"{SCHEMA_VERSION}\" and check the agents \
                 against it",
                describe(v)
            ),
        );
    }
}

fn agents(v: &Value, layout: &Layout, offset: usize, acc: &mut Acc<'_>) {
    let agents_line = offset + layout.top("agents").unwrap_or(1);
    let Some(seq) = list_of(v, "agents", "`- name: …` item per agent", agents_line, acc) else {
        return;
    };
    let items = layout.items("agents", seq.len());
    for (i, agent) in seq.iter().enumerate() {
        let item = items.map(|items| &items[i]);
        let item_line = item.map_or(agents_line, |it| offset + it.line);
        let Value::Mapping(fields) = agent else {
            acc.error(
                item_line,
                Some("agents"),
                format!(
                    "agent {} is {}: expected `name:`, `goal:` and the other fields",
                    i + 1,
                    describe(agent)
                ),
            );
            continue;
        };
        let mut draft = Draft::at(item_line);
        for (k, value) in fields {
            let key = k.as_str().map(str::to_owned).unwrap_or_else(|| describe(k));
            let norm = normalize_key(&key);
            let line = item
                .and_then(|it| it.key_line(&norm))
                .map_or(item_line, |l| offset + l);
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                Value::Number(n) if norm == "cadence" => n.to_string(),
                other => {
                    let known = Field::from_key(&key);
                    // Counted as given, so it is not also reported as missing.
                    draft.seen.extend(known);
                    let field = known.map_or(key.as_str(), |f| f.name());
                    acc.error(line, Some(field), not_text(other));
                    continue;
                }
            };
            acc.set(&mut draft, &key, &text, line);
        }
        acc.push(draft);
    }
}

/// The `goals:` list: one `{id, review, approve}` mapping per goal.
fn goals(v: &Value, layout: &Layout, offset: usize, acc: &mut Acc<'_>) {
    let goals_line = offset + layout.top("goals").unwrap_or(1);
    let Some(seq) = list_of(v, "goals", "`- id: …` item per goal", goals_line, acc) else {
        return;
    };
    let items = layout.items("goals", seq.len());
    for (i, goal) in seq.iter().enumerate() {
        let item = items.map(|items| &items[i]);
        let item_line = item.map_or(goals_line, |it| offset + it.line);
        let Value::Mapping(fields) = goal else {
            acc.error(
                item_line,
                Some("goals"),
                format!(
                    "goal {} is {}: expected `id:`, and `review:` or `approve:`",
                    i + 1,
                    describe(goal)
                ),
            );
            continue;
        };
        let mut draft = GoalDraft::at(item_line);
        for (k, value) in fields {
            let key = k.as_str().map(str::to_owned).unwrap_or_else(|| describe(k));
            let line = item
                .and_then(|it| it.key_line(&normalize_key(&key)))
                .map_or(item_line, |l| offset + l);
            let field = GoalField::from_key(&key);
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                // A policy written `true` or `1` gets the message that lists the choices.
                Value::Bool(b) if field != Some(GoalField::Id) => b.to_string(),
                Value::Number(n) if field != Some(GoalField::Id) => n.to_string(),
                other => {
                    draft.seen.extend(field);
                    let shown = field.map_or(key.as_str(), |f| f.name());
                    acc.error(line, Some(shown), not_text(other));
                    continue;
                }
            };
            acc.set_goal(&mut draft, &key, &text, line);
        }
        acc.push_goal(draft);
    }
}

/// `v` as a list; else an error naming `key` (nothing for an empty value).
fn list_of<'v>(
    v: &'v Value,
    key: &str,
    item: &str,
    line: usize,
    acc: &mut Acc<'_>,
) -> Option<&'v Vec<Value>> {
    match v {
        Value::Sequence(seq) => Some(seq),
        Value::Null => None,
        _ => {
            acc.error(
                line,
                Some(key),
                format!("is {}: expected a list, one {item}", describe(v)),
            );
            None
        }
    }
}

fn not_text(v: &Value) -> String {
    format!(
        "is {}: expected text; quote it (\"…\") to keep it as written",
        describe(v)
    )
}

/// A short description of a YAML value for messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "empty".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("{:?}", s.chars().take(40).collect::<String>()),
        Value::Sequence(_) => "a list".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}
