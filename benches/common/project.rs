//! The instructions the whole-run benchmarks give `porki run`.

use std::path::Path;

/// Writes `INSTRUCTIONS.md` in `dir`: `agents` agents (`agent000`…) of goal
/// `goal`, each with the `extra` bullets it gives for its index; the first one
/// holds the task list `tasks.md`, written from `tasks` (its `## Tasks` items).
pub fn write_project(
    dir: &Path,
    goal: &str,
    agents: usize,
    tasks: &str,
    extra: impl Fn(usize) -> String,
) {
    std::fs::write(
        dir.join("tasks.md"),
        format!("# {goal}\n\n## Tasks\n{tasks}"),
    )
    .unwrap();
    let mut text = format!("# Benchmark of goal {goal}\n\n## Agents\n");
    for a in 0..agents {
        text.push_str(&format!("\n### agent{a:03}\n- Goal: {goal}\n{}", extra(a)));
        if a == 0 {
            text.push_str("- Instructions: tasks.md\n");
        }
    }
    std::fs::write(dir.join("INSTRUCTIONS.md"), text).unwrap();
}
