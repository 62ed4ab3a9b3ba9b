//! Heartbeat files: operators steer a running agent by appending directives
//! (`PAUSE`, `DROP-TASK <id>`…) to its control file. This module holds the pure
//! parts: reading lines into [`Directive`]s and the [`Cursor`] that makes each
//! line take effect once.

pub mod cursor;
pub mod directive;

pub use cursor::{Cursor, NewLines, StoredCursor, new_lines};
pub use directive::{Directive, LineKind, MAX_LINE_LEN, parse_line, parse_text};
