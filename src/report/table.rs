//! Fitting text to the terminal for `porki status`: tables whose columns share
//! the width, cells and lines cut or wrapped to it.

use std::fmt::Write as _;

use super::clean;

/// Indent of tables and per-goal lines.
pub(super) const INDENT: &str = "  ";
/// Gap between table columns.
const GAP: &str = "  ";

/// The text on one line, or `-` when there is none.
pub(super) fn or_dash(text: Option<&str>) -> String {
    text.filter(|t| !t.is_empty())
        .map_or_else(|| "-".to_string(), clean)
}

/// Each column's natural width: its widest cell, the header included.
pub(super) fn natural_widths<const N: usize>(
    header: &[&str; N],
    rows: &[[String; N]],
) -> [usize; N] {
    std::array::from_fn(|col| {
        rows.iter()
            .map(|r| r[col].chars().count())
            .chain([header[col].len()])
            .max()
            .unwrap_or(0)
    })
}

/// Width of a table with these column widths: indent, columns and gaps.
pub(super) fn table_width<const N: usize>(widths: &[usize; N]) -> usize {
    INDENT.len() + widths.iter().sum::<usize>() + GAP.len() * (N - 1)
}

/// Shares `room` among columns that would like `natural` widths, in proportion
/// to their `weight`: those that fit in their weighted share get their natural
/// width, the rest split what is left by weight, so a short column never
/// starves a long one. None gets less than its `least`, even past `room`.
pub(super) fn share<const N: usize>(
    room: usize,
    natural: [usize; N],
    least: [usize; N],
    weight: [usize; N],
) -> [usize; N] {
    let mut order: [usize; N] = std::array::from_fn(|i| i);
    // Those that need least for their weight first: what they leave goes to the rest.
    order.sort_by_key(|&i| natural[i] * 1000 / weight[i].max(1));
    let mut widths = [0; N];
    let mut left = room;
    let mut weights: usize = weight.iter().sum();
    for &i in &order {
        let fair = left * weight[i] / weights.max(1);
        widths[i] = natural[i].min(fair).max(least[i]);
        left = left.saturating_sub(widths[i]);
        weights -= weight[i];
    }
    widths
}

/// Writes a header and rows, each cell fitted to its column; no trailing spaces.
pub(super) fn table<const N: usize>(
    out: &mut String,
    header: &[&str; N],
    rows: &[[String; N]],
    widths: &[usize; N],
) {
    let mut line = |cells: [&str; N]| {
        let mut text = String::from(INDENT);
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str(GAP);
            }
            let _ = write!(text, "{:<w$}", fit(cell, widths[i]), w = widths[i]);
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(*header);
    for row in rows {
        line(std::array::from_fn(|i| row[i].as_str()));
    }
}

/// At most `width` characters, the cut marked with `…`.
pub(super) fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` broken at spaces into lines of at most `width` characters, the first
/// starting with [`INDENT`] and the rest with two of it; a word longer than a
/// line is cut. For lines whose end matters as much as their start (the
/// commands that answer an approval), where [`fit`] would cut it off.
pub(super) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::from(INDENT);
    let mut empty = true;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let used = line.chars().count();
        if !empty && used + 1 + word.chars().count() > width {
            lines.push(std::mem::replace(&mut line, INDENT.repeat(2)));
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        let room = width.saturating_sub(line.chars().count());
        line.push_str(&fit(word, room));
        empty = false;
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_columns_keep_their_width_and_long_ones_split_the_rest_by_weight() {
        let even = [1, 1, 1];
        assert_eq!(share(30, [5, 40, 40], [4, 4, 4], even), [5, 12, 13]);
        assert_eq!(share(30, [5, 8, 40], [4, 4, 4], even), [5, 8, 17]);
        assert_eq!(share(30, [5, 8, 9], [4, 4, 4], even), [5, 8, 9]);
        // A heavier column gets more of what is short, and only what it needs.
        assert_eq!(share(40, [40, 40, 5], [4, 4, 4], [1, 2, 1]), [12, 23, 5]);
        assert_eq!(share(40, [30, 10, 5], [4, 4, 4], [1, 2, 1]), [25, 10, 5]);
        // Too little room: every column keeps its least.
        assert_eq!(share(6, [20, 20, 20], [5, 4, 10], even), [5, 4, 10]);
    }

    #[test]
    fn wrapping_breaks_at_spaces_and_indents_what_follows() {
        assert_eq!(
            wrap("awaiting approval: a, b (porki approve)", 24),
            ["  awaiting approval: a,", "    b (porki approve)"]
        );
        assert_eq!(wrap("short", 80), ["  short"]);
        assert_eq!(wrap("x averyveryverylongword", 12), ["  x", "    averyve…"]);
    }
}
