//! The Anthropic Messages API, `/v1/messages`.

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Api, ApiKey, Auth, Endpoint, HttpSettings, reported_usage};
use crate::llm::{LlmError, LlmProvider, LlmRequest, LlmResponse};

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

const API: Api = Api {
    provider: "anthropic",
    path: "/v1/messages",
    auth: Auth::Header("x-api-key"),
    headers: &[("anthropic-version", ANTHROPIC_VERSION)],
};

/// The Anthropic Messages API.
#[derive(Debug)]
pub struct AnthropicProvider {
    endpoint: Endpoint,
    model: String,
}

impl AnthropicProvider {
    /// Builds the provider, reading the key from the configured variable (default `ANTHROPIC_API_KEY`).
    pub fn new(settings: HttpSettings) -> Result<Self, LlmError> {
        let key = ApiKey::read(
            API.provider,
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
            endpoint: Endpoint::new(&API, base, key)?,
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
        let body = json!({
            "model": self.model,
            "max_tokens": ANTHROPIC_MAX_TOKENS,
            "messages": [{"role": "user", "content": request.prompt}],
        });
        let answer = self.endpoint.post(&body, deadline).await?;
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
        let usage = reported_usage(
            &answer,
            ["input_tokens", "output_tokens"],
            &request.prompt,
            &text,
        );
        Ok(LlmResponse { text, usage })
    }
}

#[async_trait]
impl LlmProvider for AnthropicProvider {
    fn name(&self) -> &str {
        API.provider
    }

    async fn call(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        self.endpoint
            .within_timeout(request, |deadline| self.complete(request, deadline))
            .await
    }
}
