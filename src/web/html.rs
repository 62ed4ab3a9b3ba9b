//! Small pieces every page is made of: escaping, links, times, badges, the
//! progress bar and the page shell. Pure functions of their arguments.
//!
//! Everything the store holds is untrusted (task titles, notes and errors come
//! from an LLM), so every piece of it goes through [`escape`] before it is
//! written into HTML or SVG, in text and in attributes alike.

use std::fmt::Write as _;

use crate::domain::{TaskKind, TaskState, TaskStatus};
use crate::store::{GoalState, GoalStatus};

/// `text` safe in HTML and SVG text and in quoted attributes: `& < > " '` become
/// entities; control characters other than tab and newline and the Unicode
/// noncharacters (U+FFFE and U+FFFF are invalid in XML, and HTML calls them
/// all errors) become U+FFFD.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() || noncharacter(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// U+FDD0..U+FDEF, and the last two code points of every plane (U+FFFE, U+1FFFF…).
fn noncharacter(c: char) -> bool {
    let n = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&n) || n & 0xFFFE == 0xFFFE
}

/// `text` cut to `max` characters (an ellipsis marks a cut), on one line.
pub(super) fn shorten(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one_line = one_line.trim();
    if one_line.chars().count() <= max {
        return one_line.to_string();
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// One URL path segment: unreserved characters kept, every other byte `%XX`.
pub(super) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The page of a goal.
pub(super) fn goal_href(goal: &str) -> String {
    format!("/goals/{}", segment(goal))
}

/// The page of a task.
pub(super) fn task_href(goal: &str, task: &str) -> String {
    format!("/goals/{}/tasks/{}", segment(goal), segment(task))
}

/// `<a href="href">text</a>`, both escaped.
pub(super) fn link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", escape(href), escape(text))
}

/// The CSS class of a kind of task porki added (`k-review`, `k-fix`,
/// `k-recover`, `k-escalate`); `None` for planned work.
pub(super) fn kind_class(kind: TaskKind) -> Option<String> {
    (!kind.is_work()).then(|| format!("k-{}", kind.as_str()))
}

/// A task's kind as a badge (empty for planned work).
pub(super) fn kind_badge(kind: TaskKind) -> String {
    match kind_class(kind) {
        Some(class) => format!(" <span class=\"kind {class}\">{kind}</span>"),
        None => String::new(),
    }
}

/// The CSS class of a task state (`s-running`…).
pub(super) fn state_class(status: TaskStatus) -> String {
    format!("s-{}", status.as_str().to_ascii_lowercase())
}

/// A task state as a coloured badge.
pub(super) fn state_badge(status: TaskStatus) -> String {
    format!(
        "<span class=\"state {}\">{}</span>",
        state_class(status),
        status.as_str()
    )
}

/// A goal state as a badge.
pub(super) fn goal_badge(state: GoalState) -> String {
    let name = state.as_str();
    format!("<span class=\"goal-state g-{name}\">{name}</span>")
}

/// A duration in ms as `850ms`, `12s`, `3m 05s` or `2h 10m`.
pub(super) fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms}ms"),
        1..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, secs / 60 % 60),
    }
}

/// A time (ms since the Unix epoch) as `2024-05-01 12:00:00 UTC`.
pub(super) fn time(ms: u64) -> String {
    match jiff::Timestamp::from_millisecond(ms as i64) {
        Ok(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => format!("{ms} ms"),
    }
}

/// A countdown the page's script keeps ticking: `until_ms` is when it ends.
pub(super) fn countdown(until_ms: u64, now_ms: u64) -> String {
    format!(
        "<span class=\"countdown\" data-until=\"{until_ms}\">{}</span>",
        duration(until_ms.saturating_sub(now_ms))
    )
}

/// A task's lease time left while RUNNING (`expired` once past), else `–`.
pub(super) fn lease_left(task: &TaskState, now_ms: u64) -> String {
    match (task.status, task.lease_expires_ms) {
        (TaskStatus::Running, Some(expires)) if expires > now_ms => countdown(expires, now_ms),
        (TaskStatus::Running, Some(_)) => "<span class=\"warn\">expired</span>".to_string(),
        _ => "–".to_string(),
    }
}

/// A stacked bar of a goal's tasks per state, as inline SVG, out of the tasks
/// that count ([`crate::report::progress`]: FAILED tasks a recovery took over
/// are left out).
pub(super) fn progress_bar(status: &GoalStatus) -> String {
    const WIDTH: f64 = 240.0;
    let (done, counted) = crate::report::progress(status);
    let mut out = format!(
        "<svg class=\"bar\" viewBox=\"0 0 {WIDTH} 12\" width=\"{WIDTH}\" height=\"12\" role=\"img\" aria-label=\"{done} of {counted} tasks done\">"
    );
    let _ = write!(
        out,
        "<rect width=\"{WIDTH}\" height=\"12\" rx=\"3\" fill=\"#f1f3f5\"/>"
    );
    if counted > 0 {
        let mut x = 0.0;
        for state in [
            TaskStatus::Done,
            TaskStatus::AwaitingApproval,
            TaskStatus::Running,
            TaskStatus::Ready,
            TaskStatus::Failed,
        ] {
            let mut n = status.count(state);
            if state == TaskStatus::Failed {
                n = n.saturating_sub(status.superseded);
            }
            let w = WIDTH * n as f64 / counted as f64;
            if w > 0.0 {
                let _ = write!(
                    out,
                    "<rect x=\"{x:.1}\" width=\"{w:.1}\" height=\"12\" fill=\"{}\"/>",
                    bar_color(state)
                );
            }
            x += w;
        }
    }
    out.push_str("</svg>");
    out
}

fn bar_color(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Done => "#2f9e44",
        TaskStatus::Running => "#1c7ed6",
        TaskStatus::AwaitingApproval => "#7048e8",
        TaskStatus::Ready => "#f59f00",
        TaskStatus::Failed => "#e03131",
        TaskStatus::Blocked => "#adb5bd",
    }
}

/// A goal's counts per state as small badges.
pub(super) fn counts(status: &GoalStatus) -> String {
    TaskStatus::ALL
        .iter()
        .map(|s| {
            format!(
                "<span class=\"count {}\" title=\"{}\">{} {}</span>",
                state_class(*s),
                s.as_str(),
                s.as_str().to_ascii_lowercase().replace('_', " "),
                status.count(*s)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a page is: its title, where its live part comes from, and that part.
pub(super) struct Page<'a> {
    /// The `<title>` (escaped here).
    pub title: &'a str,
    /// The SSE URL the page listens to.
    pub events: String,
    /// When the live part was rendered (ms since the Unix epoch).
    pub now_ms: u64,
    /// The live part, already HTML.
    pub live: String,
    /// Shown in the footer (a URL without its password).
    pub store_label: &'a str,
}

/// The whole HTML document around a page's live part.
pub(super) fn document(page: &Page<'_>) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{title} · porki</title>\n\
<link rel=\"stylesheet\" href=\"/assets/style.css\">\n\
<script src=\"/assets/app.js\" defer></script>\n</head>\n\
<body data-events=\"{events}\">\n\
<header class=\"top\"><a class=\"brand\" href=\"/\">porki</a>\
<nav><a href=\"/\">goals &amp; agents</a><a href=\"/metrics\">metrics</a><a href=\"/api/status\">status JSON</a></nav>\
<span id=\"live-status\" class=\"live-status\">connecting…</span></header>\n\
<main id=\"live\" data-now=\"{now}\">\n{live}\n</main>\n\
<footer>store {store} · read-only</footer>\n</body>\n</html>\n",
        title = escape(page.title),
        events = escape(&page.events),
        now = page.now_ms,
        live = page.live,
        store = escape(page.store_label),
    )
}

/// A live part that only says something went wrong (and the page keeps trying).
pub(super) fn problem(message: &str) -> String {
    format!("<p class=\"problem\">{}</p>", escape(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            escape("<script>alert('x\"y')</script>&\u{1b}\n"),
            "&lt;script&gt;alert(&#39;x&quot;y&#39;)&lt;/script&gt;&amp;\u{FFFD}\n"
        );
        assert_eq!(
            escape("a\u{FFFE}\u{FFFF}\u{FDD0}\u{FDEF}\u{1FFFE}\u{10FFFF}\u{85}\r"),
            format!("a{}", "\u{FFFD}".repeat(8))
        );
        // Neighbours of the noncharacters are text.
        assert_eq!(
            escape("\u{FDCF}\u{FDF0}\u{FFFD}\u{1FFFD}"),
            "\u{FDCF}\u{FDF0}\u{FFFD}\u{1FFFD}"
        );
    }

    #[test]
    fn kinds_badge_only_the_tasks_porki_added() {
        assert_eq!(kind_badge(TaskKind::Work), "");
        assert_eq!(
            kind_badge(TaskKind::Escalate),
            " <span class=\"kind k-escalate\">escalate</span>"
        );
        assert_eq!(kind_class(TaskKind::Fix).as_deref(), Some("k-fix"));
    }

    #[test]
    fn segments_and_short_texts() {
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
        assert_eq!(segment("ok-1.2_x"), "ok-1.2_x");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten(" a\nb ", 10), "a b");
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(185_000), "3m 05s");
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
    }
}
