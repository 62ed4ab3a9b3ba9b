//! The verdict on an execute call: done, failed (retryable or not), or a
//! rate-limit backoff for the whole goal; and which listed outputs are files to
//! check on disk. Pure functions of the answer, apart from I/O.

use std::time::{Duration, SystemTime};

use crate::llm::answer::{TaskAnswer, TaskAnswerStatus, parse_answer};
use crate::llm::limits::limit_wait;
use crate::llm::{FailureKind, LlmResponse};
use crate::llm_gate::CallError;
use crate::workspace::GoalWorkspace;

/// What an execute answer means for the task.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    /// The task is done; this is what it produced.
    Done(TaskAnswer),
    /// The attempt failed.
    Failed {
        /// Whether another attempt may succeed.
        retryable: bool,
        /// Why, for `last_error` and the log.
        error: String,
    },
    /// A rate or usage limit: the task goes back, its attempt not counted, and the
    /// whole goal waits.
    BackOff {
        /// How long the goal waits.
        wait: Duration,
        /// Why, for `porki status` and the log.
        reason: String,
    },
}

/// Judges an execute call's outcome: DONE only for a readable answer that says
/// so. A call error fails the attempt, retryably unless no call of the goal can
/// succeed (refused credentials, a spent budget: the goal fails); a rate or
/// usage limit makes the goal wait until it resets (or a minute).
pub(super) fn judge(answer: Result<LlmResponse, CallError>, now: SystemTime) -> Verdict {
    let response = match answer {
        Ok(response) => response,
        Err(e) => {
            return match e.kind() {
                FailureKind::RateLimited { reset } => Verdict::BackOff {
                    wait: limit_wait(reset, now),
                    reason: e.to_string(),
                },
                kind => Verdict::Failed {
                    retryable: kind != FailureKind::Fatal,
                    error: e.to_string(),
                },
            };
        }
    };
    match parse_answer::<TaskAnswer>(&response.text) {
        Ok(answer) if answer.status == TaskAnswerStatus::Done => Verdict::Done(answer),
        Ok(answer) => Verdict::Failed {
            retryable: true,
            error: format!("the LLM reported the task failed: {}", answer.notes),
        },
        Err(e) => Verdict::Failed {
            retryable: true,
            error: format!("the answer is not usable: {e}"),
        },
    }
}

/// A DONE verdict stands only if every file the answer lists is in the workspace
/// or its artifacts folder (for providers that write files themselves). A listed
/// path outside them fails the same way as a missing one, so the message tells
/// the model nothing about files outside.
pub(super) async fn check_outputs(verdict: Verdict, workspace: &GoalWorkspace) -> Verdict {
    let Verdict::Done(answer) = verdict else {
        return verdict;
    };
    let mut refused = Vec::new();
    for output in answer.outputs.iter().filter(|o| looks_like_a_path(o)) {
        if !workspace.holds(output.trim()).await {
            refused.push(output.as_str());
        }
    }
    if refused.is_empty() {
        return Verdict::Done(answer);
    }
    Verdict::Failed {
        retryable: true,
        error: format!(
            "the answer lists outputs that are not files inside the workspace {}: {}",
            workspace.dir.display(),
            refused.join(", ")
        ),
    }
}

/// Whether an output names a file (`notes.md`, `src/lib.rs`, `/abs/x`) rather
/// than being a short result: no whitespace or URL scheme, and a folder or an
/// extension with a letter.
fn looks_like_a_path(output: &str) -> bool {
    let output = output.trim();
    if output.is_empty()
        || output.len() > 1024
        || output.contains(char::is_whitespace)
        || output.contains("://")
    {
        return false;
    }
    let name = output.rsplit('/').next().unwrap_or(output);
    let extension = name.rsplit_once('.');
    output.contains('/')
        || extension.is_some_and(|(stem, ext)| {
            !stem.is_empty()
                && (1..=8).contains(&ext.len())
                && ext.chars().all(|c| c.is_ascii_alphanumeric())
                && ext.chars().any(|c| c.is_ascii_alphabetic())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::limits::DEFAULT_LIMIT_BACKOFF;
    use crate::llm::{LlmError, Usage};
    use std::path::Path;

    fn answered(text: &str) -> Result<LlmResponse, CallError> {
        Ok(LlmResponse {
            text: text.into(),
            usage: Usage::default(),
        })
    }

    fn judge_now(answer: Result<LlmResponse, CallError>) -> Verdict {
        judge(
            answer,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
        )
    }

    fn failed(verdict: Verdict) -> (bool, String) {
        match verdict {
            Verdict::Failed { retryable, error } => (retryable, error),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn a_done_answer_completes_the_task_with_its_outputs() {
        let verdict = judge_now(answered(
            r#"{"status":"done","outputs":["a.md"],"notes":"wrote a"}"#,
        ));
        let Verdict::Done(answer) = verdict else {
            panic!("expected done, got {verdict:?}");
        };
        assert_eq!(answer.outputs, ["a.md"]);
        assert_eq!(answer.notes, "wrote a");
    }

    #[test]
    fn a_failed_answer_is_a_retryable_failure_with_the_llm_notes() {
        let (retryable, error) = failed(judge_now(answered(
            r#"{"status":"failed","notes":"no access"}"#,
        )));
        assert!(retryable);
        assert_eq!(error, "the LLM reported the task failed: no access");
    }

    #[test]
    fn an_unreadable_answer_is_a_retryable_failure() {
        let (retryable, error) = failed(judge_now(answered("I could not do it")));
        assert!(retryable);
        assert!(error.starts_with("the answer is not usable: "), "{error}");
    }

    #[test]
    fn call_errors_fail_the_attempt_retryably_unless_no_call_of_the_goal_can_succeed() {
        let failed_call = LlmError::Failed {
            provider: "claude".into(),
            message: "boom".into(),
        };
        let refused = LlmError::Auth {
            provider: "claude".into(),
            message: "Invalid API key".into(),
            hint: "set ANTHROPIC_API_KEY".into(),
        };
        let spent = CallError::BudgetSpent {
            goal: "g".into(),
            spent: 10,
            budget: 5,
        };
        let cases = [
            (CallError::Llm(failed_call), true, "boom"),
            (CallError::Llm(refused), false, "ANTHROPIC_API_KEY"),
            (spent, false, "budget"),
        ];
        for (error, retryable, says) in cases {
            let (was_retryable, text) = failed(judge_now(Err(error)));
            assert_eq!(was_retryable, retryable, "{text}");
            assert!(text.contains(says), "{text}");
        }
    }

    #[test]
    fn a_rate_limit_backs_the_goal_off_until_it_resets_or_a_minute() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let limited = |reset| {
            Err(CallError::Llm(LlmError::RateLimited {
                provider: "claude".into(),
                message: "429".into(),
                reset,
            }))
        };
        let Verdict::BackOff { wait, reason } =
            judge(limited(Some(now + Duration::from_secs(42))), now)
        else {
            panic!("expected a backoff");
        };
        assert_eq!(wait, Duration::from_secs(42));
        assert!(reason.contains("429"), "{reason}");
        assert!(matches!(
            judge(limited(None), now),
            Verdict::BackOff { wait, .. } if wait == DEFAULT_LIMIT_BACKOFF
        ));
        assert!(matches!(
            judge(limited(Some(now - Duration::from_secs(5))), now),
            Verdict::BackOff { wait, .. } if wait.is_zero()
        ));
    }

    #[tokio::test]
    async fn outputs_outside_the_workspace_fail_like_missing_ones() {
        let root = std::env::temp_dir().join(format!("porki-verdict-{}", std::process::id()));
        let ws =
            crate::workspace::Workspaces::new(Path::new("w/{goal}"), None, &root).for_goal("g");
        ws.create().await.unwrap();
        std::fs::write(ws.artifacts.join("t1.md"), "t1").unwrap();
        std::fs::write(root.join("outside.md"), "o").unwrap();
        let outside = root.join("outside.md").display().to_string();
        let done = |outputs: &[&str]| {
            let outputs = serde_json::to_string(outputs).unwrap();
            judge_now(answered(&format!(
                r#"{{"status":"done","outputs":{outputs}}}"#
            )))
        };
        assert!(matches!(
            check_outputs(done(&["artifacts/t1.md", "found 3 things"]), &ws).await,
            Verdict::Done(_)
        ));
        let mut errors = Vec::new();
        for output in [outside.as_str(), "../../outside.md", "../../missing.md"] {
            let (retryable, error) = failed(check_outputs(done(&[output]), &ws).await);
            assert!(retryable);
            errors.push(error.replace(output, "PATH"));
        }
        // An existing file outside reads exactly like a missing one.
        assert!(errors.iter().all(|e| *e == errors[0]), "{errors:?}");
        assert!(
            errors[0].contains("not files inside the workspace"),
            "{errors:?}"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn outputs_that_name_files_are_told_from_results() {
        for path in [
            "report.md",
            "artifacts/t1.md",
            "/abs/out.txt",
            "src/lib.rs",
            "a/b",
        ] {
            assert!(looks_like_a_path(path), "{path}");
        }
        for result in [
            "found 3 sources",
            "approved",
            "v1.2",
            "https://x.y/z.md",
            "",
            "e.g.",
        ] {
            assert!(!looks_like_a_path(result), "{result}");
        }
    }
}
