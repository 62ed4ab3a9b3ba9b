//! Reading a CLI's stdout: a claude-style JSON result envelope when there is one
//! (`{"type":"result","result":"…","usage":{…},"total_cost_usd":…}`, also as
//! the last line of `stream-json` output), with usage and cost, else the bare text.

use serde_json::Value;

use crate::llm::{LlmError, LlmResponse, Usage};

/// The result envelope in `stdout`, if it holds one.
pub(super) fn find_envelope(stdout: &str) -> Option<Value> {
    let trimmed = stdout.trim();
    serde_json::from_str::<Value>(trimmed)
        .ok()
        .filter(is_envelope)
        .or_else(|| {
            // `--output-format stream-json` prints one event per line, the result last.
            let last = trimmed.lines().rev().find(|l| !l.trim().is_empty())?;
            serde_json::from_str::<Value>(last).ok().filter(is_envelope)
        })
}

/// The answer in a CLI's stdout: its result envelope when there is one, else the bare text.
pub(super) fn envelope_answer(
    provider: &str,
    prompt: &str,
    stdout: &str,
) -> Result<LlmResponse, LlmError> {
    let Some(envelope) = find_envelope(stdout) else {
        let trimmed = stdout.trim();
        return Ok(LlmResponse {
            text: trimmed.to_string(),
            usage: Usage::estimate(prompt, trimmed),
        });
    };
    envelope_response(provider, prompt, &envelope)
}

/// Whether a result envelope says the run failed.
pub(super) fn is_error(envelope: &Value) -> bool {
    envelope.get("is_error").and_then(Value::as_bool) == Some(true)
}

/// What a failed run's envelope says: its result text, else its subtype.
pub(super) fn error_message(envelope: &Value) -> &str {
    match envelope.get("result").and_then(Value::as_str) {
        Some(result) if !result.is_empty() => result,
        _ => envelope
            .get("subtype")
            .and_then(Value::as_str)
            .unwrap_or("no message"),
    }
}

/// The answer a result envelope carries, with its token use and cost.
pub(super) fn envelope_response(
    provider: &str,
    prompt: &str,
    envelope: &Value,
) -> Result<LlmResponse, LlmError> {
    if is_error(envelope) {
        return Err(LlmError::Failed {
            provider: provider.to_string(),
            message: error_message(envelope).to_string(),
        });
    }
    let text = envelope
        .get("result")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut usage = Usage::estimate(prompt, &text);
    if let Some(u) = envelope.get("usage") {
        let count = |key: &str| u.get(key).and_then(Value::as_u64).unwrap_or(0);
        // Cached prompt tokens are still prompt tokens for the budget.
        usage.input_tokens = count("input_tokens")
            + count("cache_creation_input_tokens")
            + count("cache_read_input_tokens");
        usage.output_tokens = count("output_tokens");
    }
    usage.cost_usd = envelope
        .get("total_cost_usd")
        .or_else(|| envelope.get("cost_usd"))
        .and_then(Value::as_f64);
    Ok(LlmResponse { text, usage })
}

fn is_envelope(value: &Value) -> bool {
    value.get("type").and_then(Value::as_str) == Some("result")
        && (value.get("result").is_some_and(Value::is_string) || value.get("is_error").is_some())
}
