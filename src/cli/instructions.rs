//! `porki instructions validate|create`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use porki::project::Project;

use super::UsageError;

/// Instruction file commands.
#[derive(Debug, Subcommand)]
pub enum InstructionsCommand {
    /// Check an instructions file and the agent files it names.
    Validate {
        /// The instructions file.
        path: PathBuf,
    },
    /// Write a template instruction file for an agent.
    Create {
        /// Agent name; the file is its words upper-cased and joined by `_` (`Core infra dev` → `CORE_INFRA_DEV.md`).
        #[arg(long)]
        name: String,
        /// Folder to write it in.
        #[arg(long)]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
}

/// Runs an instructions command.
pub fn run(command: InstructionsCommand) -> anyhow::Result<ExitCode> {
    match command {
        InstructionsCommand::Validate { path } => {
            let project = Project::load(&path).map_err(|e| UsageError(e.to_string()))?;
            // The summary lists the warnings.
            print!("{}", porki::instructions::summary(&project.instructions));
            Ok(ExitCode::SUCCESS)
        }
        InstructionsCommand::Create { name, path, force } => {
            let names = porki::instructions::AgentFileName::new(&name).map_err(UsageError)?;
            let file = path.join(&names.file);
            if file.exists() && !force {
                return Err(UsageError(format!(
                    "{} already exists: pass --force to overwrite it",
                    file.display()
                ))
                .into());
            }
            std::fs::create_dir_all(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let text = porki::instructions::agent_template(name.trim(), &names.agent, &names.file);
            std::fs::write(&file, text)
                .with_context(|| format!("cannot write {}", file.display()))?;
            println!("wrote {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
