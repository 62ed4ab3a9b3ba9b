//! LLM providers behind one trait, the prompts porki sends and the answers it parses.
//!
//! - [`LlmProvider`]: one call, prompt in, text and [`Usage`] out. Implemented by
//!   [`CliProvider`] (`claude`, `codex`, any `command`: a child process in its own
//!   process group), [`OpenAiProvider`] and [`AnthropicProvider`] (HTTP), and
//!   [`OfflineProvider`] (deterministic, no network).
//! - [`prompt`]: builds the prompt of each [`Phase`]; the offline provider reads
//!   them back with the same constants.
//! - [`answer`]: turns answer text into [`answer::PlanAnswer`],
//!   [`answer::SelectAnswer`] or [`answer::TaskAnswer`].
//!
//! Cancellation is by dropping the future of [`LlmProvider::call`]: a CLI child is
//! then killed with its whole process group, which is how lease loss, DROP-TASK and
//! shutdown stop a call. Every provider enforces [`LlmRequest::timeout`] itself.

pub mod answer;
pub mod cli;
mod error;
pub mod http;
pub mod limits;
pub mod offline;
pub mod prompt;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::workspace::GoalWorkspace;

pub use self::cli::{CliFlavor, CliProvider, Permissions, Secrets};
pub use self::error::{FailureKind, LlmError};
pub use self::http::{AnthropicProvider, HttpSettings, OpenAiProvider};
pub use self::offline::OfflineProvider;

/// Default time one LLM call may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(900);

/// The step of the pipeline a call belongs to; it is the first line of every prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Turn a goal into a task DAG.
    Plan,
    /// Choose one of the READY tasks.
    Select,
    /// Do one task.
    Execute,
    /// Summarize what a task produced.
    Summarize,
}

impl Phase {
    /// Every phase, in pipeline order.
    pub const ALL: [Phase; 4] = [Phase::Plan, Phase::Select, Phase::Execute, Phase::Summarize];

    /// The lowercase name used in prompts and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Plan => "plan",
            Phase::Select => "select",
            Phase::Execute => "execute",
            Phase::Summarize => "summarize",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown phase {s:?}: use plan, select, execute or summarize"))
    }
}

/// One call to a provider.
#[derive(Debug, Clone)]
pub struct LlmRequest {
    /// The pipeline step, for logs and for providers that route by phase.
    pub phase: Phase,
    /// The whole prompt, built by [`prompt`].
    pub prompt: String,
    /// The call fails with [`LlmError::Timeout`] after this long.
    pub timeout: Duration,
    /// The goal's workspace: CLI providers run in it and may write there.
    pub workspace: Option<GoalWorkspace>,
}

impl LlmRequest {
    /// A request outside any workspace (CLI providers run in porki's directory).
    pub fn new(phase: Phase, prompt: String, timeout: Duration) -> Self {
        Self {
            phase,
            prompt,
            timeout,
            workspace: None,
        }
    }

    /// The same request, run in `workspace`.
    pub fn in_workspace(mut self, workspace: GoalWorkspace) -> Self {
        self.workspace = Some(workspace);
        self
    }
}

/// Tokens and money one call used.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Answer tokens.
    pub output_tokens: u64,
    /// Cost in US dollars, when the provider reports it.
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// An estimate for providers that report nothing: about four characters per token.
    ///
    /// Budgets fail closed, so an estimate is better than counting nothing.
    pub fn estimate(prompt: &str, answer: &str) -> Self {
        Self {
            input_tokens: estimate_tokens(prompt),
            output_tokens: estimate_tokens(answer),
            cost_usd: None,
        }
    }
}

fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// What a provider answered.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmResponse {
    /// The answer text (for CLIs, already taken out of their JSON envelope).
    pub text: String,
    /// What the call used.
    pub usage: Usage,
}

/// A way to ask an LLM; one call at a time per future, many futures at once.
#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// Short name for logs and errors (`claude`, `openai`, `offline`, …).
    fn name(&self) -> &str;

    /// Sends the prompt and waits for the answer, at most `request.timeout`.
    ///
    /// Dropping the future cancels the call and kills any child process it started.
    async fn call(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError>;

    /// Whether the provider writes files in the workspace itself (a CLI agent, the
    /// offline provider), so the files an answer lists can be checked on disk.
    fn writes_files(&self) -> bool {
        false
    }

    /// A problem that would make every call fail, found before the first task
    /// (e.g. a policy the CLI refuses); `None` when the provider can run.
    fn preflight(&self) -> Option<String> {
        None
    }

    /// Whether the provider answers on this machine without calling any model
    /// (the offline provider): the LLM gate, which caps calls to models across
    /// processes, does not count its calls.
    fn is_local(&self) -> bool {
        false
    }
}

/// Which provider to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
#[value(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The `claude` CLI.
    Claude,
    /// The `codex` CLI.
    Codex,
    /// Any program: prompt on stdin, answer on stdout.
    Command,
    /// An OpenAI-compatible `/v1/chat/completions` server.
    Openai,
    /// The Anthropic `/v1/messages` API.
    Anthropic,
    /// Deterministic, no network: plans from task lists, executes by writing reports.
    Offline,
}

impl ProviderKind {
    /// The isolation of a goal that asks for none under this provider: the
    /// CLIs, which write files, each in a worktree; the others in one folder.
    pub fn default_isolation(self) -> crate::domain::Isolation {
        match self {
            ProviderKind::Claude | ProviderKind::Codex | ProviderKind::Command => {
                crate::domain::Isolation::Worktree
            }
            ProviderKind::Openai | ProviderKind::Anthropic | ProviderKind::Offline => {
                crate::domain::Isolation::Shared
            }
        }
    }

    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Claude => "claude",
            ProviderKind::Codex => "codex",
            ProviderKind::Command => "command",
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Offline => "offline",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything needed to build a provider, already parsed from flags and environment.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Which provider.
    pub kind: ProviderKind,
    /// Program to run for CLI providers (required for `command`).
    pub cli: Option<PathBuf>,
    /// Extra arguments passed to the program after porki's own.
    pub extra_args: Vec<String>,
    /// Model name for HTTP providers.
    pub model: Option<String>,
    /// Base URL for HTTP providers (without `/v1/...`).
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// The timeout callers put in each [`LlmRequest`] (providers enforce the request's).
    pub timeout: Duration,
    /// What CLI agents may do in the workspace.
    pub permissions: Permissions,
    /// porki's secrets, kept out of CLI children's environment.
    pub secrets: Secrets,
}

impl ProviderConfig {
    /// A configuration with only the kind set and the default timeout.
    pub fn new(kind: ProviderKind) -> Self {
        Self {
            kind,
            cli: None,
            extra_args: Vec::new(),
            model: None,
            base_url: None,
            api_key_env: None,
            timeout: DEFAULT_TIMEOUT,
            permissions: Permissions::default(),
            secrets: Secrets::default(),
        }
    }
}

/// Builds the provider a configuration names; fails early on what cannot work.
pub fn provider_from_config(config: &ProviderConfig) -> Result<Arc<dyn LlmProvider>, LlmError> {
    let http = || HttpSettings {
        model: config.model.clone(),
        base_url: config.base_url.clone(),
        api_key_env: config.api_key_env.clone(),
    };
    let cli_only = |what: &str, set: bool| {
        if set {
            Err(LlmError::Config(format!(
                "{what} applies to HTTP providers, not to {}: remove it",
                config.kind
            )))
        } else {
            Ok(())
        }
    };
    let is_cli = matches!(
        config.kind,
        ProviderKind::Claude | ProviderKind::Codex | ProviderKind::Command
    );
    if !is_cli && (config.cli.is_some() || !config.extra_args.is_empty()) {
        return Err(LlmError::Config(format!(
            "--llm-cli and extra arguments apply to claude, codex and command, not to {}: remove them",
            config.kind
        )));
    }
    let provider: Arc<dyn LlmProvider> = match config.kind {
        ProviderKind::Claude | ProviderKind::Codex | ProviderKind::Command => {
            cli_only("--llm-base-url", config.base_url.is_some())?;
            cli_only("--llm-api-key-env", config.api_key_env.is_some())?;
            let flavor = match config.kind {
                ProviderKind::Claude => CliFlavor::Claude,
                ProviderKind::Codex => CliFlavor::Codex,
                _ => CliFlavor::Command,
            };
            Arc::new(
                CliProvider::new(flavor, config.cli.clone(), config.extra_args.clone())?
                    .with_permissions(config.permissions)
                    .with_secrets(config.secrets.clone()),
            )
        }
        ProviderKind::Openai => Arc::new(OpenAiProvider::new(http())?),
        ProviderKind::Anthropic => Arc::new(AnthropicProvider::new(http())?),
        ProviderKind::Offline => Arc::new(OfflineProvider::new()),
    };
    Ok(provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_displays_lowercase_and_parses_back() {
        for phase in Phase::ALL {
            assert_eq!(phase.to_string().parse::<Phase>().unwrap(), phase);
        }
        assert_eq!(Phase::Summarize.to_string(), "summarize");
    }

    #[test]
    fn command_provider_requires_a_program() {
        let err = provider_from_config(&ProviderConfig::new(ProviderKind::Command))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--llm-cli"), "{err}");
    }

    #[test]
    fn offline_rejects_cli_settings() {
        let mut config = ProviderConfig::new(ProviderKind::Offline);
        config.cli = Some(PathBuf::from("claude"));
        assert!(provider_from_config(&config).is_err());
        let provider = provider_from_config(&ProviderConfig::new(ProviderKind::Offline)).unwrap();
        assert_eq!(provider.name(), "offline");
    }

    #[test]
    fn usage_estimate_is_a_quarter_of_the_characters() {
        let usage = Usage::estimate("abcdefgh", "abc");
        assert_eq!((usage.input_tokens, usage.output_tokens), (2, 1));
    }
}
