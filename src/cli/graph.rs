//! `porki graph`: a goal's DAG with each task's state, as Mermaid, DOT or JSON.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use porki::report;

use super::{block_on, check_goal, connect, unknown_goal};

/// Flags of `porki graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    #[command(flatten)]
    store: super::StoreArgs,
    /// The goal whose plan to draw.
    #[arg(long, value_name = "G")]
    goal: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    format: GraphFormat,
}

/// How `porki graph` writes the DAG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GraphFormat {
    /// A Mermaid flowchart, a class per state.
    Mermaid,
    /// A Graphviz digraph, filled by state (`| dot -Tsvg`).
    Dot,
    /// Nodes and edges as JSON (shape in docs/status-json.md).
    Json,
}

/// Runs `porki graph`; exit code 2 when the goal is unknown.
pub fn run(args: GraphArgs) -> anyhow::Result<ExitCode> {
    check_goal(&args.goal)?;
    let text = block_on(async {
        let store = connect(&args.store.redis_url).await?;
        let Some(dag) = store.dag(&args.goal).await? else {
            return Err(unknown_goal(&*store, &args.goal, &args.store.redis_url).await);
        };
        let tasks = store.tasks(&args.goal).await?;
        anyhow::Ok(match args.format {
            GraphFormat::Mermaid => report::graph_mermaid(&dag, &tasks),
            GraphFormat::Dot => report::graph_dot(&dag, &tasks),
            GraphFormat::Json => {
                serde_json::to_string_pretty(&report::graph_json(&dag, &tasks))? + "\n"
            }
        })
    })?;
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
