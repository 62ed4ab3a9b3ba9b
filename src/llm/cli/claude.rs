//! Judging a `claude -p --output-format json` run from what it printed.
//!
//! claude exits 0 with a plausible answer even when every write was denied, so
//! its exit code says little: the JSON result does. `result` is the answer,
//! `usage` and `total_cost_usd` what it cost, `permission_denials` every tool
//! use the policy refused (a failed attempt), and `is_error` with
//! `api_error_status` an API failure (its text also goes to stdout, exit 1).

use serde_json::Value;

use super::classify::{classify, trimmed};
use super::envelope::{envelope_answer, envelope_response, error_message, find_envelope, is_error};
use super::{CliFlavor, Permissions};
use crate::llm::{LlmError, LlmResponse};
use crate::workspace::GoalWorkspace;

/// The answer of a claude run, or why there is none.
pub(super) fn claude_answer(
    prompt: &str,
    stdout: &str,
    exited_ok: bool,
    permissions: Permissions,
    workspace: Option<&GoalWorkspace>,
) -> Result<LlmResponse, LlmError> {
    let Some(envelope) = find_envelope(stdout) else {
        if exited_ok {
            // `--output-format text` from the user's extra arguments: bare text.
            return envelope_answer(CliFlavor::Claude.name(), prompt, stdout);
        }
        return Err(classify(CliFlavor::Claude, None, stdout));
    };
    if is_error(&envelope) || !exited_ok {
        let status = envelope
            .get("api_error_status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok());
        return Err(classify(
            CliFlavor::Claude,
            status,
            error_message(&envelope),
        ));
    }
    let denials = denials(&envelope, permissions, workspace);
    if !denials.is_empty() {
        return Err(LlmError::Denied {
            provider: CliFlavor::Claude.name().to_string(),
            denied: denials.join("; "),
        });
    }
    envelope_response(CliFlavor::Claude.name(), prompt, &envelope)
}

/// Each entry of `permission_denials`, said as the tool, its target and the policy
/// that would allow it.
fn denials(
    envelope: &Value,
    permissions: Permissions,
    workspace: Option<&GoalWorkspace>,
) -> Vec<String> {
    let Some(list) = envelope.get("permission_denials").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|denial| {
            let tool = denial
                .get("tool_name")
                .and_then(Value::as_str)
                .unwrap_or("a tool");
            let input = denial.get("tool_input");
            let field = |key: &str| input.and_then(|i| i.get(key)).and_then(Value::as_str);
            let (target, inside) = match field("file_path").or_else(|| field("notebook_path")) {
                Some(path) => (
                    path.to_string(),
                    workspace.is_none_or(|ws| ws.resolve(path).starts_with(&ws.dir)),
                ),
                None => match field("command") {
                    Some(command) => (format!("`{}`", trimmed(command)), false),
                    None => (String::from("(no path)"), false),
                },
            };
            format!(
                "{tool} on {target} under --llm-permissions {}: {}",
                permissions.as_str(),
                permissions.what_allows(inside)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::FailureKind;
    use crate::workspace::Workspaces;
    use std::path::Path;

    fn workspace() -> GoalWorkspace {
        Workspaces::new(Path::new("/w/{goal}"), None, Path::new("/")).for_goal("g")
    }

    /// What claude 2.1.197 printed when the model's Write was refused (trimmed).
    const DENIED: &str = r#"{"type":"result","subtype":"success","is_error":false,"result":"done","total_cost_usd":0.00041,"usage":{"input_tokens":11,"output_tokens":5},"permission_denials":[{"tool_name":"Write","tool_use_id":"toolu_01","tool_input":{"file_path":"/w/g/out.txt","content":"hello\n"}}]}"#;

    #[test]
    fn a_denied_write_is_a_failure_naming_tool_path_and_policy() {
        let err = claude_answer("p", DENIED, true, Permissions::ReadOnly, Some(&workspace()))
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LlmError::Denied { .. }), "{text}");
        assert!(text.contains("Write on /w/g/out.txt"), "{text}");
        assert!(text.contains("--llm-permissions read-only"), "{text}");
        assert!(text.contains("--llm-permissions edit allows"), "{text}");
        assert_eq!(err.kind(), FailureKind::Task);
    }

    #[test]
    fn a_denied_write_outside_the_workspace_points_at_full() {
        let outside = DENIED.replace("/w/g/out.txt", "/etc/out.txt");
        let text = claude_answer("p", &outside, true, Permissions::Edit, Some(&workspace()))
            .unwrap_err()
            .to_string();
        assert!(text.contains("--llm-permissions full allows"), "{text}");
    }

    #[test]
    fn an_answer_without_denials_carries_usage_and_cost() {
        let ok = DENIED.replace(r#""permission_denials":[{"tool_name":"Write","tool_use_id":"toolu_01","tool_input":{"file_path":"/w/g/out.txt","content":"hello\n"}}]"#, r#""permission_denials":[]"#);
        let answer = claude_answer("p", &ok, true, Permissions::Edit, None).unwrap();
        assert_eq!(answer.text, "done");
        assert_eq!(answer.usage.input_tokens, 11);
        assert_eq!(answer.usage.cost_usd, Some(0.00041));
    }

    #[test]
    fn api_errors_are_classified_from_the_status_claude_reports() {
        let err = |status: u16, result: &str| {
            let json = format!(
                r#"{{"type":"result","subtype":"success","is_error":true,"api_error_status":{status},"result":"{result}","permission_denials":[]}}"#
            );
            claude_answer("p", &json, false, Permissions::Edit, None).unwrap_err()
        };
        assert_eq!(
            err(401, "Invalid API key · Fix external API key").kind(),
            FailureKind::Fatal
        );
        assert!(matches!(
            err(429, "API Error: Request rejected (429) · try again in 5s").kind(),
            FailureKind::RateLimited { reset: Some(_) }
        ));
        assert_eq!(
            err(500, "API Error: 500 Internal server error.").kind(),
            FailureKind::Transient
        );
    }

    #[test]
    fn text_on_stdout_with_a_failed_exit_is_classified() {
        let err = claude_answer(
            "p",
            "Not logged in · Please run /login\n",
            false,
            Permissions::Edit,
            None,
        )
        .unwrap_err();
        assert_eq!(err.kind(), FailureKind::Fatal);
    }
}
