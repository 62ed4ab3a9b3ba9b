//! HTTP providers: any OpenAI-compatible `/v1/chat/completions` server
//! ([`openai`]) and the Anthropic `/v1/messages` API ([`anthropic`]), over one
//! shared client.
//!
//! Both retry 429 and 5xx answers (and unreachable servers) with exponential
//! backoff, honouring `Retry-After` in seconds, for up to [`MAX_ATTEMPTS`]
//! attempts within the request's timeout; other 4xx answers fail at once with
//! the server's own message. The API key comes from an environment variable
//! whose name is configured; it never appears in errors, logs or `Debug` output.
//! TLS is rustls (reqwest's default), so https needs no system OpenSSL.

pub mod anthropic;
pub mod openai;

use std::fmt;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;
use tokio::time::Instant;

use super::{LlmError, LlmRequest, LlmResponse, Usage};

pub use anthropic::{
    ANTHROPIC_BASE_URL, ANTHROPIC_DEFAULT_MODEL, ANTHROPIC_KEY_ENV, ANTHROPIC_MAX_TOKENS,
    ANTHROPIC_VERSION, AnthropicProvider,
};
pub use openai::{OPENAI_BASE_URL, OPENAI_DEFAULT_MODEL, OPENAI_KEY_ENV, OpenAiProvider};

/// Attempts per call, counting the first.
pub const MAX_ATTEMPTS: u32 = 4;

/// Largest response body read.
const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// First backoff; doubles per attempt.
const BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest single backoff.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Settings shared by the HTTP providers; `None` means the provider's default.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// Model name.
    pub model: Option<String>,
    /// Base URL, without `/v1/...`.
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key.
    pub api_key_env: Option<String>,
}

/// An API key; `Debug` never shows it.
#[derive(Clone)]
struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl ApiKey {
    /// Reads the key from `env`; an unset or empty variable is `None`.
    fn from_env(env: &str) -> Option<Self> {
        std::env::var(env)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(|k| ApiKey(k.trim().to_string()))
    }

    /// Reads the key from the configured variable, else from `default_env`.
    ///
    /// A missing key is an error when `required` or when a variable was named.
    fn read(
        provider: &str,
        configured: Option<&str>,
        default_env: &str,
        required: bool,
    ) -> Result<Option<Self>, LlmError> {
        let env = configured.unwrap_or(default_env);
        match Self::from_env(env) {
            Some(key) => Ok(Some(key)),
            None if required || configured.is_some() => Err(LlmError::MissingApiKey {
                provider: provider.to_string(),
                env: env.to_string(),
            }),
            None => Ok(None),
        }
    }

    /// `text` with every occurrence of the key replaced.
    fn redact(key: Option<&ApiKey>, text: String) -> String {
        match key {
            Some(ApiKey(k)) if !k.is_empty() && text.contains(k.as_str()) => {
                text.replace(k.as_str(), "[redacted]")
            }
            _ => text,
        }
    }
}

/// How a provider sends its API key.
#[derive(Debug, Clone, Copy)]
enum Auth {
    /// `Authorization: Bearer KEY`.
    Bearer,
    /// The key as the value of this header.
    Header(&'static str),
}

/// What differs between the HTTP APIs at the transport level.
#[derive(Debug)]
struct Api {
    /// Provider name, for errors and logs.
    provider: &'static str,
    /// Path appended to the base URL.
    path: &'static str,
    /// How the key is sent.
    auth: Auth,
    /// Headers sent with every request.
    headers: &'static [(&'static str, &'static str)],
}

/// The transport both providers share: POST JSON, retry, read JSON.
#[derive(Debug, Clone)]
struct Endpoint {
    provider: &'static str,
    client: reqwest::Client,
    url: String,
    auth: Auth,
    headers: &'static [(&'static str, &'static str)],
    key: Option<ApiKey>,
}

/// A failed attempt: the error, and whether (and after how long) to try again.
struct Attempt {
    error: LlmError,
    retry_after: Option<Option<Duration>>,
}

impl Endpoint {
    fn new(api: &Api, base_url: &str, key: Option<ApiKey>) -> Result<Self, LlmError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("porki/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Config(format!("could not build the HTTP client: {e}")))?;
        let url = format!("{}{}", base_url.trim_end_matches('/'), api.path);
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(LlmError::Config(format!(
                "base URL {base_url:?} is not an http:// or https:// URL: fix --llm-base-url"
            )));
        }
        Ok(Self {
            provider: api.provider,
            client,
            url,
            auth: api.auth,
            headers: api.headers,
            key,
        })
    }

    /// POSTs `body` until it succeeds, a non-retryable answer comes, or attempts run out.
    ///
    /// A wait that would end past `deadline` is not started: the last error is
    /// more useful than a timeout.
    async fn post(&self, body: &Value, deadline: Instant) -> Result<Value, LlmError> {
        let mut attempt = 1;
        loop {
            let failure = match self.post_once(body).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            let Some(retry_after) = failure.retry_after else {
                return Err(failure.error);
            };
            if attempt >= MAX_ATTEMPTS {
                return Err(failure.error);
            }
            let backoff = BACKOFF_START
                .saturating_mul(1 << (attempt - 1))
                .min(BACKOFF_CAP);
            let delay = retry_after.unwrap_or(backoff);
            if Instant::now() + delay >= deadline {
                return Err(failure.error);
            }
            tracing::warn!(
                provider = self.provider,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %failure.error,
                "LLM call failed, retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn post_once(&self, body: &Value) -> Result<Value, Attempt> {
        let mut builder = self.client.post(&self.url);
        for (name, value) in self.headers {
            builder = builder.header(*name, *value);
        }
        builder = builder
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(ApiKey(key)) = &self.key {
            builder = match self.auth {
                Auth::Bearer => builder.bearer_auth(key),
                Auth::Header(name) => builder.header(name, key),
            };
        }
        let response = builder.send().await.map_err(|e| Attempt {
            error: self.transport_error(&e),
            retry_after: Some(None),
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = self.read_body(response).await.map_err(|error| Attempt {
            error,
            retry_after: None,
        })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Attempt {
                error: self.bad_response(format!("the body is not JSON: {e}")),
                retry_after: None,
            });
        }
        let retryable = status.as_u16() == 429 || status.is_server_error();
        Err(Attempt {
            error: LlmError::Http {
                provider: self.provider.to_string(),
                status: status.as_u16(),
                message: ApiKey::redact(self.key.as_ref(), error_message(&bytes, status)),
            },
            retry_after: retryable.then_some(retry_after),
        })
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, LlmError> {
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > BODY_LIMIT {
                        return Err(LlmError::OutputTooLarge {
                            provider: self.provider.to_string(),
                            limit: BODY_LIMIT,
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(body),
                Err(e) => return Err(self.transport_error(&e)),
            }
        }
    }

    /// The server could not be reached or stopped answering; the key is redacted.
    fn transport_error(&self, error: &reqwest::Error) -> LlmError {
        LlmError::Transport {
            provider: self.provider.to_string(),
            url: self.url.clone(),
            message: ApiKey::redact(self.key.as_ref(), error_chain(error)),
        }
    }

    fn bad_response(&self, detail: String) -> LlmError {
        LlmError::BadResponse {
            provider: self.provider.to_string(),
            detail,
        }
    }

    /// Runs `complete` within the request's timeout; it gets the deadline so that
    /// no retry waits past it.
    async fn within_timeout<F>(
        &self,
        request: &LlmRequest,
        complete: impl FnOnce(Instant) -> F,
    ) -> Result<LlmResponse, LlmError>
    where
        F: Future<Output = Result<LlmResponse, LlmError>>,
    {
        let deadline = Instant::now() + request.timeout;
        tokio::time::timeout_at(deadline, complete(deadline))
            .await
            .map_err(|_| LlmError::Timeout {
                provider: self.provider.to_string(),
                after: request.timeout,
            })?
    }
}

/// The error and its causes, since reqwest's top-level message is vague.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The server's message: `error.message` in the JSON body, else the start of the body.
fn error_message(body: &[u8], status: reqwest::StatusCode) -> String {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let from_json = json.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let text = from_json.unwrap_or_else(|| {
        String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(500)
            .collect()
    });
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string()
    } else {
        text
    }
}

/// The answer's token counts from its `usage` object, under the API's names for
/// prompt and answer tokens; each missing count is estimated.
fn reported_usage(answer: &Value, [input, output]: [&str; 2], prompt: &str, text: &str) -> Usage {
    let count = |key: &str| answer.get("usage")?.get(key)?.as_u64();
    let estimate = Usage::estimate(prompt, text);
    Usage {
        input_tokens: count(input).unwrap_or(estimate.input_tokens),
        output_tokens: count(output).unwrap_or(estimate.output_tokens),
        cost_usd: None,
    }
}

#[cfg(test)]
mod tests;
