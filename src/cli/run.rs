//! `porki run`: the orchestrator, or one prompt.

use std::process::ExitCode;
use std::time::Duration;

use actix::prelude::*;
use anyhow::{Context as _, bail};
use porki::llm::{LlmProvider, LlmRequest, Phase};
use porki::project::Project;
use porki::supervisor::{Supervisor, SupervisorConfig};

use super::{RunArgs, open_store, provider, shut_down_on_signal, usage};

/// `porki run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.role != "orchestrator" {
        bail!(usage(format!(
            "--role {:?} is not known: the only role is `orchestrator`",
            args.role
        )));
    }
    let secrets = porki::llm::Secrets::new(&args.store.redis_url, args.http.token());
    let provider = provider(&args.llm, secrets.clone())?;
    if let Some(prompt) = &args.prompt {
        return one_shot(&*provider, prompt, args.llm.llm_timeout);
    }
    let path = args
        .instructions
        .clone()
        .ok_or_else(|| usage("--instructions PATH is required (or --prompt for one prompt)"))?;
    let project = Project::load(&path).map_err(usage)?;
    let mut settings = args.settings();
    if provider.writes_files() {
        settings
            .workspaces()
            .keep_out_of_reach(&project.goals(), &project.control_files())
            .map_err(usage)?;
    }
    let web = args.http.bind(settings.metrics.clone())?;
    let system = System::new();
    let started: anyhow::Result<()> = system.block_on(async {
        settings.git = args.isolation.git(&settings, &project, &secrets).await?;
        let store = open_store(&args.store.redis_url).await?;
        if let Some(web) = web {
            super::serve::start(web, &args.store.redis_url, &store)?;
        }
        let config = SupervisorConfig::new(project, store, provider, settings);
        shut_down_on_signal(Supervisor::new(config).start());
        Ok(())
    });
    started?;
    let code = system.run_with_code().context("the actor system failed")?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// `porki run --prompt`: one call, answer on stdout.
fn one_shot(
    provider: &dyn LlmProvider,
    prompt: &str,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    let request = LlmRequest::new(Phase::Execute, prompt.to_string(), timeout);
    let response = runtime.block_on(provider.call(&request))?;
    println!("{}", response.text);
    Ok(ExitCode::SUCCESS)
}
