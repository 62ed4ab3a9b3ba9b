//! Sorting what a CLI printed when a call failed into the errors porki acts on
//! (authentication, rate or usage limit, a passing API fault, anything else),
//! from the HTTP status the CLI reports when it does and from its own wording.

use std::sync::LazyLock;
use std::time::SystemTime;

use regex::Regex;

use super::CliFlavor;
use crate::llm::LlmError;
use crate::llm::limits::reset_from_message;

/// Longest CLI message kept in an error.
const MESSAGE_LEN: usize = 600;

static AUTH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)invalid (x-)?api[ -]key|not logged in|please run /login|\blogin\b.*required|authentication[_ ]error|\b401\b|\b403\b|unauthorized|forbidden|no api key|api key.*(missing|not set)",
    )
    .expect("valid regex")
});
static LIMIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)rate[ _-]?limit|usage limit|limit reached|hit your (usage )?limit|too many requests|\b429\b|\b529\b|overloaded|quota|spending limit|credit balance",
    )
    .expect("valid regex")
});
static PASSING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b5\d\d\b|internal server error|server error|bad gateway|service unavailable|stream disconnected|connection (reset|refused|closed)|timed out|network error|error sending request",
    )
    .expect("valid regex")
});

/// The error for a failed call: `status` is the API status the CLI reported, if any.
pub(super) fn classify(flavor: CliFlavor, status: Option<u16>, message: &str) -> LlmError {
    let provider = flavor.name().to_string();
    let message = trimmed(message);
    let auth = matches!(status, Some(401 | 403)) || (status.is_none() && AUTH.is_match(&message));
    let limited =
        matches!(status, Some(429 | 529)) || (status.is_none() && LIMIT.is_match(&message));
    if auth && !limited {
        return LlmError::Auth {
            hint: auth_hint(flavor).to_string(),
            provider,
            message,
        };
    }
    if limited {
        return LlmError::RateLimited {
            reset: reset_from_message(&message, SystemTime::now()),
            provider,
            message,
        };
    }
    if status.is_some_and(|s| s >= 500) || (status.is_none() && PASSING.is_match(&message)) {
        return LlmError::Unavailable { provider, message };
    }
    LlmError::Failed { provider, message }
}

/// What to do when a CLI is not authenticated.
fn auth_hint(flavor: CliFlavor) -> &'static str {
    match flavor {
        CliFlavor::Claude => {
            "set ANTHROPIC_API_KEY for porki, or log in with `claude /login` as the user porki runs as"
        }
        CliFlavor::Codex => {
            "set OPENAI_API_KEY (or your provider's env_key) for porki, or log in with `codex login` as the user porki runs as"
        }
        CliFlavor::Command => "give the program the credentials it needs",
    }
}

/// The message on one line-ish, cut to [`MESSAGE_LEN`] characters.
pub(super) fn trimmed(message: &str) -> String {
    let message = message.trim();
    if message.chars().count() <= MESSAGE_LEN {
        return message.to_string();
    }
    let cut: String = message.chars().take(MESSAGE_LEN).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::FailureKind;

    fn kind(flavor: CliFlavor, status: Option<u16>, message: &str) -> FailureKind {
        classify(flavor, status, message).kind()
    }

    #[test]
    fn what_the_real_clis_print_is_sorted() {
        use CliFlavor::{Claude, Codex};
        // claude, observed: error text on stdout, the status in its JSON.
        assert_eq!(
            kind(Claude, Some(401), "Invalid API key · Fix external API key"),
            FailureKind::Fatal
        );
        assert_eq!(
            kind(Claude, None, "Not logged in · Please run /login"),
            FailureKind::Fatal
        );
        assert!(matches!(
            kind(
                Claude,
                Some(429),
                "API Error: Request rejected (429) · rate limited"
            ),
            FailureKind::RateLimited { .. }
        ));
        assert!(matches!(
            kind(
                Claude,
                Some(529),
                "API Error: 529 Overloaded. This is a server-side issue"
            ),
            FailureKind::RateLimited { .. }
        ));
        assert_eq!(
            kind(Claude, Some(500), "API Error: 500 Internal server error."),
            FailureKind::Transient
        );
        // codex, observed: messages of its `error` events.
        assert_eq!(
            kind(
                Codex,
                None,
                "unexpected status 401 Unauthorized: bad key, url: http://x/v1/responses"
            ),
            FailureKind::Fatal
        );
        assert!(matches!(
            kind(
                Codex,
                None,
                "exceeded retry limit, last status: 429 Too Many Requests"
            ),
            FailureKind::RateLimited { reset: None }
        ));
        assert!(matches!(
            kind(
                Codex,
                None,
                "You’ve hit your usage limit. Upgrade to Pro or try again at 3:00 PM."
            ),
            FailureKind::RateLimited { reset: Some(_) }
        ));
        assert_eq!(
            kind(Codex, None, "unexpected status 502 Bad Gateway"),
            FailureKind::Transient
        );
        assert_eq!(kind(Codex, None, "the model refused"), FailureKind::Task);
    }

    #[test]
    fn an_auth_error_says_what_to_set() {
        let text = classify(CliFlavor::Claude, Some(401), "Invalid API key").to_string();
        assert!(
            text.contains("ANTHROPIC_API_KEY") && text.contains("Invalid API key"),
            "{text}"
        );
        let text = classify(CliFlavor::Codex, Some(401), "401").to_string();
        assert!(
            text.contains("OPENAI_API_KEY") && text.contains("codex login"),
            "{text}"
        );
    }

    #[test]
    fn long_messages_are_cut() {
        let text = trimmed(&"x".repeat(5000));
        assert_eq!(text.chars().count(), MESSAGE_LEN + 1);
    }
}
