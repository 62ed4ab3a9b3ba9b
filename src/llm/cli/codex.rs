//! Judging a `codex exec --json` run from its JSONL events and its stderr.
//!
//! The answer is the last `agent_message` item, the usage that of
//! `turn.completed`. A failed turn (`turn.failed`, or `error` events that are
//! not "Reconnecting…" progress) is classified from its message. A write the
//! sandbox refused exits 0 with a plausible answer; it shows only as a
//! `patch rejected` or sandbox line among codex's `ERROR` lines on stderr (or a
//! failed `file_change` item), and makes the attempt fail.

use serde_json::Value;

use super::child::Stderr;
use super::classify::{classify, trimmed};
use super::envelope::envelope_answer;
use super::{CliFlavor, Permissions};
use crate::llm::{LlmError, LlmResponse, Usage};

/// What codex's events said.
#[derive(Debug, Default)]
struct Events {
    /// Lines that were JSON events.
    count: usize,
    /// The last agent message.
    message: Option<String>,
    usage: Option<Usage>,
    /// The failure of the turn, if it failed.
    failure: Option<String>,
    /// File changes that did not apply.
    failed_changes: Vec<String>,
}

/// The answer of a codex run, or why there is none.
pub(super) fn codex_answer(
    prompt: &str,
    stdout: &str,
    stderr: &Stderr,
    exited_ok: bool,
    permissions: Permissions,
) -> Result<LlmResponse, LlmError> {
    let stderr_errors = &stderr.errors;
    let events = read_events(stdout);
    if let Some(failure) = &events.failure {
        return Err(classify(CliFlavor::Codex, None, failure));
    }
    let mut denied: Vec<String> = stderr_errors
        .iter()
        .filter(|line| is_denial(line))
        .map(|line| {
            let what = line
                .split_once("error=")
                .map_or(line.as_str(), |(_, rest)| rest);
            trimmed(what)
        })
        .collect();
    denied.extend(events.failed_changes.iter().cloned());
    if !denied.is_empty() {
        return Err(LlmError::Denied {
            provider: CliFlavor::Codex.name().to_string(),
            denied: format!(
                "a change under --llm-permissions {} ({}): {}",
                permissions.as_str(),
                denied.join("; "),
                permissions.what_allows(true)
            ),
        });
    }
    if events.count == 0 {
        if !exited_ok {
            let message = match stderr_errors.last() {
                _ if !stdout.trim().is_empty() => stdout,
                Some(line) => line.as_str(),
                None => stderr.tail.as_str(),
            };
            return Err(classify(CliFlavor::Codex, None, message));
        }
        // Plain `codex exec` output (the user dropped `--json`): bare text.
        return envelope_answer(CliFlavor::Codex.name(), prompt, stdout);
    }
    let Some(text) = events.message else {
        return Err(LlmError::BadResponse {
            provider: CliFlavor::Codex.name().to_string(),
            detail: "the run ended without an agent message".into(),
        });
    };
    let usage = events
        .usage
        .unwrap_or_else(|| Usage::estimate(prompt, &text));
    Ok(LlmResponse { text, usage })
}

fn read_events(stdout: &str) -> Events {
    let mut events = Events::default();
    let mut last_error = None;
    for line in stdout.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        let Some(kind) = event.get("type").and_then(Value::as_str) else {
            continue;
        };
        events.count += 1;
        match kind {
            "item.completed" => {
                let item = event.get("item");
                let field = |key: &str| item.and_then(|i| i.get(key)).and_then(Value::as_str);
                match field("type") {
                    Some("agent_message") => {
                        events.message = field("text").map(str::to_string);
                    }
                    Some("file_change") if field("status") == Some("failed") => {
                        let paths: Vec<&str> = item
                            .and_then(|i| i.get("changes"))
                            .and_then(Value::as_array)
                            .map(|changes| {
                                changes
                                    .iter()
                                    .filter_map(|c| c.get("path").and_then(Value::as_str))
                                    .collect()
                            })
                            .unwrap_or_default();
                        events
                            .failed_changes
                            .push(format!("apply_patch on {}", paths.join(", ")));
                    }
                    _ => {}
                }
            }
            "turn.completed" => {
                let usage = event.get("usage");
                let count = |key: &str| {
                    usage
                        .and_then(|u| u.get(key))
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                };
                events.usage = Some(Usage {
                    input_tokens: count("input_tokens"),
                    output_tokens: count("output_tokens"),
                    cost_usd: None,
                });
            }
            "turn.failed" => {
                events.failure = event
                    .get("error")
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| last_error.clone())
                    .or_else(|| Some("the turn failed".into()));
            }
            "error" => {
                let message = event.get("message").and_then(Value::as_str).unwrap_or("");
                // "Reconnecting... 2/5 (…)" is progress of codex's own retries.
                if !message.starts_with("Reconnecting") {
                    last_error = Some(message.to_string());
                }
            }
            _ => {}
        }
    }
    if events.failure.is_none() && events.message.is_none() {
        events.failure = last_error;
    }
    events
}

/// A stderr line reporting a change the sandbox or approval policy refused.
fn is_denial(line: &str) -> bool {
    let line = line.to_ascii_lowercase();
    line.contains("patch rejected")
        || line.contains("blocked by read-only sandbox")
        || line.contains("rejected by user approval")
        || (line.contains("sandbox") && line.contains("denied"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::FailureKind;

    /// What codex-cli 0.171.0 printed for a run whose patch was applied.
    const WROTE: &str = r#"{"type":"thread.started","thread_id":"x"}
{"type":"turn.started"}
{"type":"item.started","item":{"id":"item_0","type":"file_change","changes":[{"path":"/w/out.txt","kind":"add"}],"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_0","type":"file_change","changes":[{"path":"/w/out.txt","kind":"add"}],"status":"completed"}}
{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"{\"status\":\"done\"}"}}
{"type":"turn.completed","usage":{"input_tokens":40,"cached_input_tokens":0,"output_tokens":12,"reasoning_output_tokens":0}}
"#;

    #[test]
    fn the_last_agent_message_and_the_turns_usage_are_the_answer() {
        let answer = codex_answer("p", WROTE, &Stderr::default(), true, Permissions::Edit).unwrap();
        assert_eq!(answer.text, r#"{"status":"done"}"#);
        assert_eq!(
            (answer.usage.input_tokens, answer.usage.output_tokens),
            (40, 12)
        );
    }

    #[test]
    fn a_patch_the_sandbox_rejected_fails_the_attempt_even_with_exit_0() {
        let stderr = Stderr {
            tail: String::new(),
            errors: vec![
                "2026-12-01T15:24:49Z ERROR codex_core::tools::router: error=patch rejected: writing is blocked by read-only sandbox; rejected by user approval settings".to_string(),
            ],
        };
        let err = codex_answer("p", WROTE, &stderr, true, Permissions::ReadOnly).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LlmError::Denied { .. }), "{text}");
        assert!(
            text.contains("patch rejected: writing is blocked by read-only sandbox"),
            "{text}"
        );
        assert!(
            text.contains("--llm-permissions read-only") && text.contains("edit allows"),
            "{text}"
        );
    }

    #[test]
    fn a_failed_turn_is_classified_from_its_message() {
        let stdout = r#"{"type":"thread.started","thread_id":"x"}
{"type":"turn.started"}
{"type":"error","message":"Reconnecting... 1/5 (unexpected status 401 Unauthorized: nope)"}
{"type":"error","message":"unexpected status 401 Unauthorized: nope, url: http://127.0.0.1/v1/responses"}
{"type":"turn.failed","error":{"message":"unexpected status 401 Unauthorized: nope, url: http://127.0.0.1/v1/responses"}}
"#;
        let err =
            codex_answer("p", stdout, &Stderr::default(), false, Permissions::Edit).unwrap_err();
        assert_eq!(err.kind(), FailureKind::Fatal, "{err}");
        let limited = stdout.replace("401 Unauthorized: nope", "429 Too Many Requests");
        assert!(matches!(
            codex_answer("p", &limited, &Stderr::default(), false, Permissions::Edit)
                .unwrap_err()
                .kind(),
            FailureKind::RateLimited { .. }
        ));
    }

    #[test]
    fn plain_text_output_is_taken_as_is() {
        let answer = codex_answer(
            "p",
            "plain answer\n",
            &Stderr::default(),
            true,
            Permissions::Edit,
        )
        .unwrap();
        assert_eq!(answer.text, "plain answer");
        let stderr = Stderr {
            tail: "Not inside a trusted directory and --skip-git-repo-check was not specified.\n"
                .into(),
            errors: Vec::new(),
        };
        let err = codex_answer("p", "", &stderr, false, Permissions::Edit).unwrap_err();
        assert!(err.to_string().contains("trusted directory"), "{err}");
    }

    #[test]
    fn events_without_an_agent_message_are_not_an_answer() {
        let stdout = "{\"type\":\"thread.started\"}\n{\"type\":\"turn.completed\",\"usage\":{}}\n";
        assert!(matches!(
            codex_answer("p", stdout, &Stderr::default(), true, Permissions::Edit),
            Err(LlmError::BadResponse { .. })
        ));
    }
}
