//! What can go wrong calling an LLM, and what porki does about each kind:
//! [`LlmError::kind`] sorts an error into fatal (refused credentials: fail the goal at once),
//! rate limit (the whole goal backs off), transient (retry the task after a
//! backoff) or a failure of the task itself.

use std::time::{Duration, SystemTime};

use thiserror::Error;

/// What a failed call means for the task and its goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No call of the goal can succeed (the provider refuses the credentials, its
    /// program is missing, or the goal's budget is spent): the goal fails at once.
    Fatal,
    /// A rate, usage or spending limit, or an overloaded API: every agent of the
    /// goal waits, until `reset` when the provider said when.
    RateLimited {
        /// When the limit resets, if the provider said.
        reset: Option<SystemTime>,
    },
    /// A passing fault (timeout, network, a server error): retry the task later.
    Transient,
    /// The task's attempt failed (a denied tool, an error answer, bad output).
    Task,
}

/// Errors from a provider call or from building a provider.
#[derive(Debug, Error)]
pub enum LlmError {
    /// The configured program does not exist.
    #[error("LLM program {program:?} was not found: install it, or pass its path with --llm-cli")]
    ProgramNotFound {
        /// The program that was looked up.
        program: String,
    },
    /// The program exists but could not be started, or its pipes failed.
    #[error("could not run LLM program {program:?}: {source} (check that it is executable)")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The program exited with a failure status.
    #[error("LLM program {program:?} failed ({}): {}", exit_text(*code), tail_text(stderr_tail))]
    Exit {
        /// The program.
        program: String,
        /// Exit code; `None` when a signal ended it.
        code: Option<i32>,
        /// The last ~2 KB of what it wrote to stderr.
        stderr_tail: String,
    },
    /// The call took longer than the request's timeout.
    #[error(
        "LLM call to {provider} timed out after {}s (raise the timeout or shorten the task)",
        after.as_secs_f64()
    )]
    Timeout {
        /// Provider name.
        provider: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The answer was larger than porki keeps.
    #[error("{provider} answered more than {limit} bytes: porki stops reading there")]
    OutputTooLarge {
        /// Provider name.
        provider: String,
        /// The cap in bytes.
        limit: usize,
    },
    /// The API key variable is not set.
    #[error(
        "{provider} needs an API key: set the environment variable {env}, or name another variable with --llm-api-key-env"
    )]
    MissingApiKey {
        /// Provider name.
        provider: String,
        /// The variable that was read.
        env: String,
    },
    /// The server refused the request or kept failing.
    #[error("{provider} answered HTTP {status}: {message}")]
    Http {
        /// Provider name.
        provider: String,
        /// HTTP status code.
        status: u16,
        /// The server's error message (never contains the API key).
        message: String,
    },
    /// The server could not be reached.
    #[error(
        "could not reach {provider} at {url}: {message} (check --llm-base-url and the network)"
    )]
    Transport {
        /// Provider name.
        provider: String,
        /// The endpoint.
        url: String,
        /// What failed.
        message: String,
    },
    /// The provider answered, but not in the shape it documents.
    #[error("{provider} answered something porki cannot read: {detail}")]
    BadResponse {
        /// Provider name.
        provider: String,
        /// What is wrong.
        detail: String,
    },
    /// The provider reported that the call failed.
    #[error("{provider} reported an error: {message}")]
    Failed {
        /// Provider name.
        provider: String,
        /// Its message.
        message: String,
    },
    /// The CLI was refused a tool it tried to use under the permission policy.
    #[error("{provider} was denied {denied}")]
    Denied {
        /// Provider name.
        provider: String,
        /// What was denied and which policy would allow it.
        denied: String,
    },
    /// The provider does not accept the credentials.
    #[error("{provider} is not authenticated ({message}): {hint}")]
    Auth {
        /// Provider name.
        provider: String,
        /// The provider's own message.
        message: String,
        /// What to do about it.
        hint: String,
    },
    /// A rate, usage or spending limit was reached, or the API is overloaded.
    #[error("{provider} hit a rate or usage limit ({message}){}", reset_text(*reset))]
    RateLimited {
        /// Provider name.
        provider: String,
        /// The provider's own message.
        message: String,
        /// When the limit resets, if the message said.
        reset: Option<SystemTime>,
    },
    /// The API failed in a way that passes (a server error), after the CLI's own retries.
    #[error("{provider}'s API failed ({message}); porki retries the task after a backoff")]
    Unavailable {
        /// Provider name.
        provider: String,
        /// The provider's own message.
        message: String,
    },
    /// The provider configuration cannot work.
    #[error("LLM provider configuration: {0}")]
    Config(String),
}

impl LlmError {
    /// What the error means for the task and its goal.
    pub fn kind(&self) -> FailureKind {
        match self {
            LlmError::Auth { .. }
            | LlmError::MissingApiKey { .. }
            | LlmError::ProgramNotFound { .. }
            | LlmError::Config(_) => FailureKind::Fatal,
            LlmError::Http {
                status: 401 | 403, ..
            } => FailureKind::Fatal,
            LlmError::RateLimited { reset, .. } => FailureKind::RateLimited { reset: *reset },
            LlmError::Http {
                status: 429 | 529, ..
            } => FailureKind::RateLimited { reset: None },
            LlmError::Http { status, .. } if *status >= 500 => FailureKind::Transient,
            LlmError::Timeout { .. }
            | LlmError::Transport { .. }
            | LlmError::Unavailable { .. } => FailureKind::Transient,
            _ => FailureKind::Task,
        }
    }
}

/// `; it resets at …` when the reset is known.
fn reset_text(reset: Option<SystemTime>) -> String {
    let Some(reset) = reset else {
        return String::new();
    };
    let secs = reset
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    format!("; it resets at {} UTC", crate::llm::limits::utc_text(secs))
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exit code {code}"),
        None => "killed by a signal".to_string(),
    }
}

fn tail_text(tail: &str) -> &str {
    let tail = tail.trim();
    if tail.is_empty() {
        "no stderr output"
    } else {
        tail
    }
}
