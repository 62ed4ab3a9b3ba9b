//! Fitting text to the terminal for `porki status`: tables whose columns share
//! the width, cells cut to it.

use std::fmt::Write as _;

use super::clean;

/// Indent of tables and per-goal lines.
pub(super) const INDENT: &str = "  ";
/// Gap between table columns.
const GAP: &str = "  ";

/// The text on one line, or `-` when there is none.
pub(super) fn or_dash(text: Option<&str>) -> String {
    text.map_or_else(|| "-".to_string(), clean)
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
