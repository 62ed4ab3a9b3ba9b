//! An OpenAI-compatible `/v1/chat/completions` server: OpenAI, vLLM, llama.cpp,
//! Ollama. JSON mode is asked for, and dropped for good when a server rejects it.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Api, ApiKey, Auth, Endpoint, HttpSettings, reported_usage};
use crate::llm::{LlmError, LlmProvider, LlmRequest, LlmResponse};

/// Default OpenAI-compatible base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com";
/// Default OpenAI model.
pub const OPENAI_DEFAULT_MODEL: &str = "gpt-4o-mini";
/// Default variable holding the OpenAI key.
pub const OPENAI_KEY_ENV: &str = "OPENAI_API_KEY";

const API: Api = Api {
    provider: "openai",
    path: "/v1/chat/completions",
    auth: Auth::Bearer,
    headers: &[],
};

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
        let key = ApiKey::read(
            API.provider,
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
            endpoint: Endpoint::new(&API, base, key)?,
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
        let json_mode = self.json_mode.load(Ordering::Relaxed);
        let answer = match self
            .endpoint
            .post(&self.body(&request.prompt, json_mode), deadline)
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
                    .post(&self.body(&request.prompt, false), deadline)
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
        let usage = reported_usage(
            &answer,
            ["prompt_tokens", "completion_tokens"],
            &request.prompt,
            &text,
        );
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
        API.provider
    }

    async fn call(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        self.endpoint
            .within_timeout(request, |deadline| self.complete(request, deadline))
            .await
    }
}
