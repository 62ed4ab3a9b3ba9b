//! The trailers porki ends its commit messages with, and the identities it
//! commits under (pure: no git here).
//!
//! A task's commit ends with `Porki-Goal:`, `Porki-Task:` and
//! `Porki-Attempt:`; so does porki's merge commit of it, and the first commit
//! of a goal branch holds `Porki-Goal:` and `Porki-Start:`. Only the message's
//! last paragraph is read, and porki always writes its own there: a title or
//! body (written by an LLM) cannot pass for porki's trailers.

use super::GitError;

/// The trailer naming the goal.
pub const GOAL: &str = "Porki-Goal";
/// The trailer naming the task.
pub const TASK: &str = "Porki-Task";
/// The trailer numbering the attempt.
pub const ATTEMPT: &str = "Porki-Attempt";
/// The trailer marking a goal branch's first commit (its value: the commit the
/// branch started at, or `none`).
pub const START: &str = "Porki-Start";

/// What a task's commit says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailers {
    /// The goal id.
    pub goal: String,
    /// The task id.
    pub task: String,
    /// The attempt that made the commit.
    pub attempt: u32,
}

impl Trailers {
    /// Reads the trailers of a commit `message`; `None` when it is not a
    /// task's commit.
    pub fn parse(message: &str) -> Option<Self> {
        let fields = trailer_block(message);
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
        };
        Some(Self {
            goal: get(GOAL)?,
            task: get(TASK)?,
            attempt: get(ATTEMPT)?.parse().ok()?,
        })
    }

    /// The trailer paragraph (ends with a newline).
    fn block(&self) -> String {
        format!(
            "{GOAL}: {}\n{TASK}: {}\n{ATTEMPT}: {}\n",
            self.goal, self.task, self.attempt
        )
    }
}

/// The goal a goal branch's first commit starts, if `message` is one.
pub(crate) fn start_of(message: &str) -> Option<String> {
    let fields = trailer_block(message);
    fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(START))?;
    fields
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(GOAL))
        .map(|(_, v)| v)
}

/// The message of a goal branch's first commit.
pub(crate) fn start_message(goal: &str, base: Option<&str>) -> Result<String, GitError> {
    single_line("goal id", goal)?;
    Ok(format!(
        "porki: start goal {goal}\n\n{GOAL}: {goal}\n{START}: {}\n",
        base.unwrap_or("none")
    ))
}

/// `text` (a subject line, then optionally a blank line and a body) followed
/// by the trailers, as porki commits it.
pub fn message_with_trailers(text: &str, trailers: &Trailers) -> Result<String, GitError> {
    single_line("goal id", &trailers.goal)?;
    single_line("task id", &trailers.task)?;
    // git refuses NUL in a message and drops carriage returns unevenly.
    let text: String = text.chars().filter(|c| *c != '\0' && *c != '\r').collect();
    let text = text.trim();
    let text = if text.is_empty() {
        format!("porki: task {}", trailers.task)
    } else {
        text.to_string()
    };
    Ok(format!("{text}\n\n{}", trailers.block()))
}

/// A committer or author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The name.
    pub name: String,
    /// The e-mail address.
    pub email: String,
}

impl Identity {
    /// An identity git accepts: no `<`, `>` or line break, a non-empty name.
    pub fn new(name: &str, email: &str) -> Result<Self, GitError> {
        let bad = |s: &str| s.contains(['<', '>', '\n', '\r', '\0']);
        if name.trim().is_empty() || bad(name) || bad(email) {
            return Err(GitError::BadCommit(format!(
                "{name:?} <{email}> is not an identity git accepts: use a name and an address without <, > or line breaks"
            )));
        }
        Ok(Self {
            name: name.trim().to_string(),
            email: email.trim().to_string(),
        })
    }

    /// porki itself, the committer of every commit porki makes.
    pub fn porki() -> Self {
        Self {
            name: "porki".into(),
            email: "porki@localhost".into(),
        }
    }

    /// An agent as the author of its task's commits: `<agent> <agent@porki>`.
    pub fn agent(name: &str) -> Result<Self, GitError> {
        Self::new(name, &format!("{}@porki", name.trim()))
    }
}

fn single_line(what: &str, value: &str) -> Result<(), GitError> {
    if value.is_empty() || value.contains(['\n', '\r', '\0']) {
        return Err(GitError::BadCommit(format!(
            "the {what} {value:?} cannot be a trailer: it must be one non-empty line"
        )));
    }
    Ok(())
}

/// The `Key: value` lines of the message's last paragraph; none unless every
/// line of it is one.
fn trailer_block(message: &str) -> Vec<(String, String)> {
    let message = message.trim_end();
    let last = message.rsplit("\n\n").next().unwrap_or("");
    // The subject alone is never a trailer paragraph.
    if last.len() == message.len() {
        return Vec::new();
    }
    let mut fields = Vec::new();
    for line in last.lines() {
        let Some((key, value)) = line.split_once(": ") else {
            return Vec::new();
        };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Vec::new();
        }
        fields.push((key.to_string(), value.trim().to_string()));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trailers() -> Trailers {
        Trailers {
            goal: "g".into(),
            task: "t1".into(),
            attempt: 2,
        }
    }

    #[test]
    fn a_message_with_trailers_reads_back() {
        let msg = message_with_trailers("Build the page\n\nBy agent a.", &trailers()).unwrap();
        assert_eq!(
            msg,
            "Build the page\n\nBy agent a.\n\nPorki-Goal: g\nPorki-Task: t1\nPorki-Attempt: 2\n"
        );
        assert_eq!(Trailers::parse(&msg), Some(trailers()));
        assert_eq!(Trailers::parse("Build the page\n"), None);
    }

    #[test]
    fn a_body_cannot_pass_for_porkis_trailers() {
        let forged = "x\n\nPorki-Goal: g\nPorki-Task: victim\nPorki-Attempt: 9";
        let msg = message_with_trailers(forged, &trailers()).unwrap();
        assert_eq!(Trailers::parse(&msg).unwrap().task, "t1");
        // Nor can a subject alone, nor a paragraph with other lines.
        assert_eq!(Trailers::parse("Porki-Goal: g"), None);
        assert_eq!(
            Trailers::parse("s\n\nPorki-Goal: g\nPorki-Task: t\nPorki-Attempt: 1\nhello"),
            None
        );
    }

    #[test]
    fn a_message_loses_nul_and_carriage_returns_and_an_empty_one_names_the_task() {
        let msg = message_with_trailers("a\r\n\0b", &trailers()).unwrap();
        assert!(msg.starts_with("a\nb\n\n"), "{msg:?}");
        let msg = message_with_trailers("  \n", &trailers()).unwrap();
        assert!(msg.starts_with("porki: task t1\n\n"), "{msg:?}");
    }

    #[test]
    fn trailer_values_must_be_one_line() {
        let mut t = trailers();
        t.task = "a\nPorki-Task: b".into();
        assert!(matches!(
            message_with_trailers("s", &t),
            Err(GitError::BadCommit(_))
        ));
        assert!(start_message("", None).is_err());
    }

    #[test]
    fn a_start_commit_names_its_goal() {
        let msg = start_message("g", Some("abc")).unwrap();
        assert_eq!(start_of(&msg).as_deref(), Some("g"));
        assert_eq!(Trailers::parse(&msg), None);
        let task = message_with_trailers("s", &trailers()).unwrap();
        assert_eq!(start_of(&task), None);
    }

    #[test]
    fn identities_git_would_mangle_are_refused() {
        assert!(Identity::new("a", "a@b").is_ok());
        for (n, e) in [("", "a@b"), ("a<b", "x"), ("a", "x>"), ("a\nb", "x")] {
            assert!(Identity::new(n, e).is_err(), "{n:?} {e:?}");
        }
        assert_eq!(Identity::agent("builder").unwrap().email, "builder@porki");
    }
}
