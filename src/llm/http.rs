//! HTTP providers: any OpenAI-compatible `/v1/chat/completions` server and the
//! Anthropic `/v1/messages` API.
//!
//! Both retry 429 and 5xx answers (and unreachable servers) with exponential
//! backoff, honouring `Retry-After` in seconds, for up to [`MAX_ATTEMPTS`]
//! attempts within the request's timeout; other 4xx answers fail at once with
//! the server's own message. The API key comes from an environment variable
//! whose name is configured; it never appears in errors, logs or `Debug` output.
//! TLS is rustls (reqwest's default), so https needs no system OpenSSL.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{LlmError, LlmProvider, LlmRequest, LlmResponse, Usage};

/// Attempts per call, counting the first.
pub const MAX_ATTEMPTS: u32 = 4;

/// Default OpenAI-compatible base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com";
/// Default OpenAI model.
pub const OPENAI_DEFAULT_MODEL: &str = "gpt-4o-mini";
/// Default variable holding the OpenAI key.
pub const OPENAI_KEY_ENV: &str = "OPENAI_API_KEY";
/// Default Anthropic base URL.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// Default Anthropic model.
pub const ANTHROPIC_DEFAULT_MODEL: &str = "claude-sonnet-4-5";
/// Default variable holding the Anthropic key.
pub const ANTHROPIC_KEY_ENV: &str = "ANTHROPIC_API_KEY";
/// The Anthropic API version porki speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// `max_tokens` sent to Anthropic.
pub const ANTHROPIC_MAX_TOKENS: u32 = 8192;

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

/// The transport both providers share: POST JSON, retry, read JSON.
#[derive(Debug, Clone)]
struct Endpoint {
    provider: &'static str,
    client: reqwest::Client,
    url: String,
    key: Option<ApiKey>,
}

/// A failed attempt: the error, and whether (and after how long) to try again.
struct Attempt {
    error: LlmError,
    retry_after: Option<Option<Duration>>,
}

impl Endpoint {
    fn new(
        provider: &'static str,
        base_url: &str,
        path: &str,
        key: Option<ApiKey>,
    ) -> Result<Self, LlmError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("porki/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Config(format!("could not build the HTTP client: {e}")))?;
        let url = format!("{}{path}", base_url.trim_end_matches('/'));
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(LlmError::Config(format!(
                "base URL {base_url:?} is not an http:// or https:// URL: fix --llm-base-url"
            )));
        }
        Ok(Self {
            provider,
            client,
            url,
            key,
        })
    }

    /// POSTs `body` until it succeeds, a non-retryable answer comes, or attempts run out.
    ///
    /// A wait that would end past `deadline` is not started: the last error is
    /// more useful than a timeout.
    async fn post(
        &self,
        headers: &HeaderMap,
        body: &Value,
        deadline: Instant,
    ) -> Result<Value, LlmError> {
        let mut attempt = 1;
        loop {
            let failure = match self.post_once(headers, body).await {
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

    async fn post_once(&self, headers: &HeaderMap, body: &Value) -> Result<Value, Attempt> {
        let mut builder = self
            .client
            .post(&self.url)
            .headers(headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(ApiKey(key)) = &self.key {
            builder = match self.provider {
                "anthropic" => builder.header("x-api-key", key),
                _ => builder.bearer_auth(key),
            };
        }
        let response = builder.send().await.map_err(|e| Attempt {
            error: LlmError::Transport {
                provider: self.provider.to_string(),
                url: self.url.clone(),
                message: ApiKey::redact(self.key.as_ref(), error_chain(&e)),
            },
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
                Err(e) => {
                    return Err(LlmError::Transport {
                        provider: self.provider.to_string(),
                        url: self.url.clone(),
                        message: ApiKey::redact(self.key.as_ref(), error_chain(&e)),
                    });
                }
            }
        }
    }

    fn bad_response(&self, detail: String) -> LlmError {
        LlmError::BadResponse {
            provider: self.provider.to_string(),
            detail,
        }
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

fn read_key(
    provider: &str,
    configured: Option<&str>,
    default_env: &str,
    required: bool,
) -> Result<Option<ApiKey>, LlmError> {
    let env = configured.unwrap_or(default_env);
    match ApiKey::from_env(env) {
        Some(key) => Ok(Some(key)),
        None if required || configured.is_some() => Err(LlmError::MissingApiKey {
            provider: provider.to_string(),
            env: env.to_string(),
        }),
        None => Ok(None),
    }
}

async fn with_timeout<T>(
    provider: &str,
    request: &LlmRequest,
    deadline: Instant,
    work: impl Future<Output = Result<T, LlmError>>,
) -> Result<T, LlmError> {
    tokio::time::timeout_at(deadline, work)
        .await
        .map_err(|_| LlmError::Timeout {
            provider: provider.to_string(),
            after: request.timeout,
        })?
}

fn count(usage: Option<&Value>, key: &str) -> Option<u64> {
    usage?.get(key)?.as_u64()
}

/// An OpenAI-compatible chat completions server (OpenAI, vLLM, llama.cpp, Ollama).
#[derive(Debug)]
pub struct OpenAiProvider {
    endpoint: Endpoint,
    model: String,
    /// Cleared when the server rejects `response_format`, so later calls skip it.
    json_mode: AtomicBool,
}

impl OpenAiProvider {
    /// Builds the provider, reading the key from the configured variable (default
    /// `OPENAI_API_KEY`). The key may be missing only for a custom base URL (local servers).
    pub fn new(settings: HttpSettings) -> Result<Self, LlmError> {
        let required = settings.base_url.is_none();
        let key = read_key(
            "openai",
            settings.api_key_env.as_deref(),
            OPENAI_KEY_ENV,
            required,
        )?;
        Self::build(settings, key)
    }

    /// Builds the provider with an explicit key instead of reading the environment.
    pub fn with_key(settings: HttpSettings, key: Option<String>) -> Result<Self, LlmError> {
        Self::build(settings, key.map(ApiKey))
    }

    fn build(settings: HttpSettings, key: Option<ApiKey>) -> Result<Self, LlmError> {
        let base = settings.base_url.as_deref().unwrap_or(OPENAI_BASE_URL);
        Ok(Self {
            endpoint: Endpoint::new("openai", base, "/v1/chat/completions", key)?,
            model: settings
                .model
                .unwrap_or_else(|| OPENAI_DEFAULT_MODEL.to_string()),
            json_mode: AtomicBool::new(true),
        })
    }

    fn body(&self, prompt: &str, json_mode: bool) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
        });
        if json_mode {
            body["response_format"] = json!({"type": "json_object"});
        }
        body
    }

    async fn complete(
        &self,
        request: &LlmRequest,
        deadline: Instant,
    ) -> Result<LlmResponse, LlmError> {
        let headers = HeaderMap::new();
        let json_mode = self.json_mode.load(Ordering::Relaxed);
        let answer = match self
            .endpoint
            .post(&headers, &self.body(&request.prompt, json_mode), deadline)
            .await
        {
            // Some compatible servers do not know JSON mode; ask once more without it.
            Err(LlmError::Http {
                status: 400,
                message,
                ..
            }) if json_mode && mentions_response_format(&message) => {
                tracing::info!(%message, "server rejected response_format; retrying without it");
                self.json_mode.store(false, Ordering::Relaxed);
                self.endpoint
                    .post(&headers, &self.body(&request.prompt, false), deadline)
                    .await?
            }
            other => other?,
        };
        let message = answer.pointer("/choices/0/message");
        let text = match message
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
        {
            Some(text) => text.to_string(),
            None => {
                let refusal = message
                    .and_then(|m| m.get("refusal"))
                    .and_then(Value::as_str);
                return Err(self.endpoint.bad_response(match refusal {
                    Some(refusal) => format!("the model refused: {refusal}"),
                    None => "no choices[0].message.content in the answer".to_string(),
                }));
            }
        };
        let usage_json = answer.get("usage");
        let estimate = Usage::estimate(&request.prompt, &text);
        let usage = Usage {
            input_tokens: count(usage_json, "prompt_tokens").unwrap_or(estimate.input_tokens),
            output_tokens: count(usage_json, "completion_tokens").unwrap_or(estimate.output_tokens),
            cost_usd: None,
        };
        Ok(LlmResponse { text, usage })
    }
}

fn mentions_response_format(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("response_format") || lower.contains("json_object")
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    fn name(&self) -> &str {
        "openai"
    }

    async fn call(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let deadline = Instant::now() + request.timeout;
        with_timeout(
            "openai",
            request,
            deadline,
            self.complete(request, deadline),
        )
        .await
    }
}

/// The Anthropic Messages API.
#[derive(Debug)]
pub struct AnthropicProvider {
    endpoint: Endpoint,
    model: String,
}

impl AnthropicProvider {
    /// Builds the provider, reading the key from the configured variable (default `ANTHROPIC_API_KEY`).
    pub fn new(settings: HttpSettings) -> Result<Self, LlmError> {
        let key = read_key(
            "anthropic",
            settings.api_key_env.as_deref(),
            ANTHROPIC_KEY_ENV,
            true,
        )?;
        Self::build(settings, key)
    }

    /// Builds the provider with an explicit key instead of reading the environment.
    pub fn with_key(settings: HttpSettings, key: String) -> Result<Self, LlmError> {
        Self::build(settings, Some(ApiKey(key)))
    }

    fn build(settings: HttpSettings, key: Option<ApiKey>) -> Result<Self, LlmError> {
        let base = settings.base_url.as_deref().unwrap_or(ANTHROPIC_BASE_URL);
        Ok(Self {
            endpoint: Endpoint::new("anthropic", base, "/v1/messages", key)?,
            model: settings
                .model
                .unwrap_or_else(|| ANTHROPIC_DEFAULT_MODEL.to_string()),
        })
    }

    async fn complete(
        &self,
        request: &LlmRequest,
        deadline: Instant,
    ) -> Result<LlmResponse, LlmError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "anthropic-version",
            reqwest::header::HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        let body = json!({
            "model": self.model,
            "max_tokens": ANTHROPIC_MAX_TOKENS,
            "messages": [{"role": "user", "content": request.prompt}],
        });
        let answer = self.endpoint.post(&headers, &body, deadline).await?;
        let Some(content) = answer.get("content").and_then(Value::as_array) else {
            return Err(self
                .endpoint
                .bad_response("no content list in the answer".to_string()));
        };
        let text: String = content
            .iter()
            .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|block| block.get("text").and_then(Value::as_str))
            .collect();
        let usage_json = answer.get("usage");
        let estimate = Usage::estimate(&request.prompt, &text);
        let usage = Usage {
            input_tokens: count(usage_json, "input_tokens").unwrap_or(estimate.input_tokens),
            output_tokens: count(usage_json, "output_tokens").unwrap_or(estimate.output_tokens),
            cost_usd: None,
        };
        Ok(LlmResponse { text, usage })
    }
}

#[async_trait]
impl LlmProvider for AnthropicProvider {
    fn name(&self) -> &str {
        "anthropic"
    }

    async fn call(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        let deadline = Instant::now() + request.timeout;
        with_timeout(
            "anthropic",
            request,
            deadline,
            self.complete(request, deadline),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Phase;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const KEY: &str = "sk-test-SECRET-0123456789";

    /// A canned HTTP response.
    fn reply(status: &str, headers: &[(&str, &str)], body: &str) -> String {
        let mut text = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        text.push_str(body);
        text
    }

    /// Serves `replies` in order, one per connection; records each request's text.
    async fn serve(replies: Vec<String>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            for reply in replies {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let request = read_request(&mut socket).await;
                log.lock().unwrap().push(request);
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        (base, seen)
    }

    async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            data.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&data).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if data.len() >= end + 4 + length {
                    break;
                }
            }
        }
        String::from_utf8_lossy(&data).to_string()
    }

    fn settings(base: &str) -> HttpSettings {
        HttpSettings {
            model: Some("test-model".into()),
            base_url: Some(base.to_string()),
            api_key_env: None,
        }
    }

    fn request(timeout: Duration) -> LlmRequest {
        LlmRequest {
            phase: Phase::Execute,
            prompt: "porki-phase: execute\nanswer in JSON".into(),
            timeout,
        }
    }

    const OPENAI_OK: &str = r#"{"choices":[{"message":{"role":"assistant","content":"{\"status\":\"done\"}"}}],"usage":{"prompt_tokens":11,"completion_tokens":4}}"#;

    #[tokio::test]
    async fn openai_success_sends_model_messages_and_json_mode() {
        let (base, seen) = serve(vec![reply("200 OK", &[], OPENAI_OK)]).await;
        let provider = OpenAiProvider::with_key(settings(&base), Some(KEY.into())).unwrap();
        let answer = provider
            .call(&request(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(answer.text, r#"{"status":"done"}"#);
        assert_eq!(
            (answer.usage.input_tokens, answer.usage.output_tokens),
            (11, 4)
        );
        let sent = seen.lock().unwrap()[0].clone();
        assert!(sent.starts_with("POST /v1/chat/completions "), "{sent}");
        assert!(sent.to_ascii_lowercase().contains(&format!(
            "authorization: bearer {}",
            KEY.to_ascii_lowercase()
        )));
        let body: Value =
            serde_json::from_str(&sent[sent.find("\r\n\r\n").unwrap() + 4..]).unwrap();
        assert_eq!(body["model"], "test-model");
        assert_eq!(body["messages"][0]["role"], "user");
        assert_eq!(body["response_format"]["type"], "json_object");
    }

    #[tokio::test]
    async fn openai_retries_without_response_format_when_the_server_rejects_it() {
        let rejected = r#"{"error":{"message":"Unknown parameter: response_format"}}"#;
        let (base, seen) = serve(vec![
            reply("400 Bad Request", &[], rejected),
            reply("200 OK", &[], OPENAI_OK),
        ])
        .await;
        let provider = OpenAiProvider::with_key(settings(&base), None).unwrap();
        provider
            .call(&request(Duration::from_secs(10)))
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        assert!(seen[0].contains("response_format"));
        assert!(!seen[1].contains("response_format"));
    }

    #[tokio::test]
    async fn http_429_with_retry_after_is_retried_then_succeeds() {
        let (base, seen) = serve(vec![
            reply(
                "429 Too Many Requests",
                &[("retry-after", "1")],
                r#"{"error":{"message":"slow down"}}"#,
            ),
            reply("503 Service Unavailable", &[("retry-after", "0")], ""),
            reply(
                "200 OK",
                &[],
                r#"{"content":[{"type":"text","text":"hello "},{"type":"text","text":"world"}],"usage":{"input_tokens":7,"output_tokens":2}}"#,
            ),
        ])
        .await;
        let provider = AnthropicProvider::with_key(settings(&base), KEY.into()).unwrap();
        let started = std::time::Instant::now();
        let answer = provider
            .call(&request(Duration::from_secs(20)))
            .await
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(900),
            "Retry-After was ignored"
        );
        assert_eq!(answer.text, "hello world");
        assert_eq!(
            (answer.usage.input_tokens, answer.usage.output_tokens),
            (7, 2)
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        let first = seen[0].to_ascii_lowercase();
        assert!(first.starts_with("post /v1/messages "), "{first}");
        assert!(first.contains("anthropic-version: 2023-06-01"));
        assert!(first.contains(&format!("x-api-key: {}", KEY.to_ascii_lowercase())));
        assert!(first.contains("\"max_tokens\""));
    }

    #[tokio::test]
    async fn http_400_fails_at_once_with_the_server_message_and_no_key() {
        let body = format!(
            r#"{{"error":{{"type":"invalid_request_error","message":"bad model; key {KEY} is fine"}}}}"#
        );
        let (base, seen) = serve(vec![
            reply("400 Bad Request", &[], &body),
            reply("200 OK", &[], OPENAI_OK),
        ])
        .await;
        let provider = AnthropicProvider::with_key(settings(&base), KEY.into()).unwrap();
        let err = provider
            .call(&request(Duration::from_secs(10)))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("HTTP 400") && text.contains("bad model"),
            "{text}"
        );
        assert!(!text.contains(KEY), "{text}");
        assert!(!format!("{err:?}").contains(KEY));
        assert!(!format!("{provider:?}").contains(KEY));
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn retries_stop_after_the_last_attempt() {
        let busy = || {
            reply(
                "500 Internal Server Error",
                &[("retry-after", "0")],
                "overloaded",
            )
        };
        let (base, seen) = serve((0..MAX_ATTEMPTS + 1).map(|_| busy()).collect()).await;
        let provider = OpenAiProvider::with_key(settings(&base), None).unwrap();
        let err = provider
            .call(&request(Duration::from_secs(10)))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("overloaded"), "{err}");
        assert!(err.is_transient());
        assert_eq!(seen.lock().unwrap().len(), MAX_ATTEMPTS as usize);
    }

    #[tokio::test]
    async fn a_retry_after_past_the_timeout_returns_the_server_error() {
        let (base, seen) = serve(vec![reply(
            "429 Too Many Requests",
            &[("retry-after", "120")],
            r#"{"error":{"message":"rate limited"}}"#,
        )])
        .await;
        let provider = OpenAiProvider::with_key(settings(&base), None).unwrap();
        let err = provider
            .call(&request(Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("HTTP 429: rate limited"), "{err}");
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_slow_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hold = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let provider = OpenAiProvider::with_key(settings(&base), None).unwrap();
        let err = provider
            .call(&request(Duration::from_millis(300)))
            .await
            .unwrap_err();
        assert!(matches!(err, LlmError::Timeout { .. }), "{err}");
        hold.abort();
    }

    #[test]
    fn a_missing_key_names_the_variable() {
        let err = AnthropicProvider::new(HttpSettings {
            api_key_env: Some("PORKI_TEST_SURELY_UNSET_KEY".into()),
            ..HttpSettings::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("PORKI_TEST_SURELY_UNSET_KEY"),
            "{err}"
        );
    }
}
