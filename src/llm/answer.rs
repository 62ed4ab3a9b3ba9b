//! Reading answers: the JSON object in an LLM's text, deserialized into one of the
//! answer shapes.
//!
//! Models wrap JSON in ```json fences and explain themselves around it, so
//! [`parse_answer`] looks for balanced top-level `{…}` objects in the text and
//! takes the first one that has the wanted shape. It never panics.

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::domain::{Dag, Edge, Node};

/// Most `{` positions examined in one answer; bounds the work on hostile text.
const MAX_CANDIDATES: usize = 64;

/// Characters of the answer quoted in errors.
const EXCERPT_CHARS: usize = 160;

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnswerError {
    /// Nothing but whitespace.
    #[error("answer is empty: the model returned no text")]
    Empty,
    /// No JSON object in the text.
    #[error("answer is not JSON: {detail} (answer: {excerpt:?})")]
    NotJson {
        /// What the JSON parser said, or that no object was found.
        detail: String,
        /// The start of the answer.
        excerpt: String,
    },
    /// JSON, but not the expected shape.
    #[error("answer has the wrong shape: {detail} (answer: {excerpt:?})")]
    Shape {
        /// The field and what is wrong with it.
        detail: String,
        /// The start of the answer.
        excerpt: String,
    },
}

/// Parses the first JSON object in `text` that deserializes into `T`.
///
/// Tolerates code fences and prose around the object. When several objects are
/// present, they are tried in order; the error describes the first one that was
/// valid JSON (or the first syntax error when none was).
pub fn parse_answer<T: DeserializeOwned>(text: &str) -> Result<T, AnswerError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(AnswerError::Empty);
    }
    let mut shape_error: Option<String> = None;
    let mut syntax_error: Option<String> = None;
    for candidate in candidates(trimmed) {
        let value: Value = match serde_json::from_str(candidate) {
            Ok(value) => value,
            Err(err) => {
                syntax_error.get_or_insert_with(|| err.to_string());
                continue;
            }
        };
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(answer) => return Ok(answer),
            Err(err) => {
                shape_error.get_or_insert_with(|| shape_detail(&err));
            }
        }
    }
    let excerpt = excerpt(trimmed);
    match (shape_error, syntax_error) {
        (Some(detail), _) => Err(AnswerError::Shape { detail, excerpt }),
        (None, Some(detail)) => Err(AnswerError::NotJson { detail, excerpt }),
        (None, None) => Err(AnswerError::NotJson {
            detail: "no {...} object found".to_string(),
            excerpt,
        }),
    }
}

fn shape_detail(err: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = err.path().to_string();
    if path == "." || path.is_empty() {
        err.inner().to_string()
    } else {
        format!("field `{path}`: {}", err.inner())
    }
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// Every `{` that opens a balanced object, in order, as the candidate span.
///
/// The scan resumes just after each start (not after the span), so an object
/// wrapped in another (`{"answer": {...}}`) or preceded by a stray `{` in prose is
/// still found. At most [`MAX_CANDIDATES`] starts are examined, which bounds the
/// work on text full of braces.
fn candidates(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'{')
        .take(MAX_CANDIDATES)
        .filter_map(move |(start, _)| balanced_end(bytes, start).map(|end| &text[start..end]))
}

/// The index just past the `}` closing the `{` at `start`, respecting strings and escapes.
fn balanced_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate().skip(start) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// The planner's answer: a DAG for one goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanAnswer {
    /// The goal the plan is for (the planner overrides it with the goal it asked about).
    #[serde(default)]
    pub goal_id: String,
    /// The tasks.
    pub nodes: Vec<Node>,
    /// The dependencies.
    #[serde(default, deserialize_with = "null_as_default")]
    pub edges: Vec<Edge>,
}

impl PlanAnswer {
    /// The plan as a [`Dag`] for `goal_id`, whatever goal the answer named.
    pub fn into_dag(self, goal_id: &str) -> Dag {
        Dag {
            goal_id: goal_id.to_string(),
            nodes: self.nodes,
            edges: self.edges,
        }
    }
}

impl From<PlanAnswer> for Dag {
    fn from(answer: PlanAnswer) -> Self {
        Dag {
            goal_id: answer.goal_id,
            nodes: answer.nodes,
            edges: answer.edges,
        }
    }
}

/// The selector's answer: which READY task to run next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectAnswer {
    /// The chosen task id.
    pub selected_task_id: String,
    /// Why.
    #[serde(default, deserialize_with = "lenient_string")]
    pub justification: String,
    /// How sure, 0 to 1, when the model said (a number or a numeric string).
    #[serde(default, deserialize_with = "lenient_number")]
    pub confidence: Option<f64>,
}

/// How an execute or summarize call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskAnswerStatus {
    /// The task is finished.
    Done,
    /// The task could not be done.
    Failed,
}

impl<'de> Deserialize<'de> for TaskAnswerStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.trim().to_ascii_lowercase().as_str() {
            "done" | "complete" | "completed" | "success" | "succeeded" | "ok" => {
                Ok(TaskAnswerStatus::Done)
            }
            "failed" | "fail" | "failure" | "error" => Ok(TaskAnswerStatus::Failed),
            _ => Err(de::Error::custom(format!(
                "status {text:?} is not \"done\" or \"failed\""
            ))),
        }
    }
}

/// The answer to an execute or summarize call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskAnswer {
    /// Done or failed.
    pub status: TaskAnswerStatus,
    /// What the task produced: file paths or short results (objects are kept as JSON text).
    #[serde(default, deserialize_with = "lenient_strings")]
    pub outputs: Vec<String>,
    /// Free text for the progress field and the agent's memory.
    #[serde(default, deserialize_with = "lenient_string")]
    pub notes: String,
    /// Work the model suggests next (recorded, not planned automatically).
    #[serde(default, deserialize_with = "lenient_strings")]
    pub follow_ups: Vec<String>,
    /// A review's or escalation's decision; other tasks leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<AnswerVerdict>,
}

/// What a reviewer (or a manager settling an escalation) decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerVerdict {
    /// The work passes.
    Approved,
    /// The work needs the changes the notes name.
    ChangesRequested,
}

impl<'de> Deserialize<'de> for AnswerVerdict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let words = text.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        match words.as_str() {
            "approved" | "approve" | "accepted" | "accept" | "pass" | "passed" | "lgtm" => {
                Ok(AnswerVerdict::Approved)
            }
            "changes_requested" | "request_changes" | "changes" | "rejected" | "reject"
            | "needs_changes" => Ok(AnswerVerdict::ChangesRequested),
            _ => Err(de::Error::custom(format!(
                "verdict {text:?} is not \"approved\" or \"changes_requested\""
            ))),
        }
    }
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn value_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A string, or any other JSON value as its JSON text; null is empty.
fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(value_text(Value::deserialize(deserializer)?))
}

/// A list whose items may be strings or objects; a lone value is a list of one.
fn lenient_strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .into_iter()
            .filter(|v| !v.is_null())
            .map(value_text)
            .collect(),
        other => vec![value_text(other)],
    })
}

/// A number, or a string holding one; anything else is `None`.
fn lenient_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_a_fenced_plan_with_prose_around_it() {
        let text = "Here is the plan:\n```json\n{\"goal_id\":\"g\",\"nodes\":[{\"id\":\"a\",\"title\":\"A {x}\"},{\"id\":\"b\"}],\"edges\":[{\"source\":\"a\",\"target\":\"b\"}]}\n```\nDone.";
        let plan: PlanAnswer = parse_answer(text).unwrap();
        assert_eq!(plan.nodes.len(), 2);
        assert_eq!(plan.nodes[0].title, "A {x}");
        let dag = plan.into_dag("goal-1");
        assert_eq!(dag.goal_id, "goal-1");
        assert!(dag.validate().is_ok());
    }

    #[test]
    fn skips_objects_that_do_not_have_the_shape() {
        let text = r#"I considered {"thinking": true} and chose {"selected_task_id":"t2","justification":"first","confidence":"0.8"}"#;
        let select: SelectAnswer = parse_answer(text).unwrap();
        assert_eq!(select.selected_task_id, "t2");
        assert_eq!(select.confidence, Some(0.8));
    }

    #[test]
    fn braces_inside_strings_do_not_end_the_object() {
        let text = r#"{"status":"done","notes":"closing } and \" quote {","outputs":[]} trailing"#;
        let answer: TaskAnswer = parse_answer(text).unwrap();
        assert_eq!(answer.notes, "closing } and \" quote {");
    }

    #[test]
    fn task_answer_is_lenient_about_outputs_and_missing_fields() {
        let text = r#"{"status":"DONE","outputs":["a.md",{"path":"b.md"},null]}"#;
        let answer: TaskAnswer = parse_answer(text).unwrap();
        assert_eq!(answer.status, TaskAnswerStatus::Done);
        assert_eq!(answer.outputs, vec!["a.md", r#"{"path":"b.md"}"#]);
        assert_eq!(answer.notes, "");
        assert!(answer.follow_ups.is_empty());
        let single: TaskAnswer =
            parse_answer(r#"{"status":"failed","outputs":"only.md","follow_ups":"ask"}"#).unwrap();
        assert_eq!(single.outputs, vec!["only.md"]);
        assert_eq!(single.follow_ups, vec!["ask"]);
    }

    #[test]
    fn prose_without_json_says_so_and_quotes_the_answer() {
        let err = parse_answer::<TaskAnswer>("I could not do it, sorry.").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("answer is not JSON"), "{text}");
        assert!(text.contains("I could not do it"), "{text}");
        assert_eq!(
            parse_answer::<TaskAnswer>("  \n").unwrap_err(),
            AnswerError::Empty
        );
    }

    #[test]
    fn wrong_shape_names_the_field() {
        let err = parse_answer::<PlanAnswer>(r#"{"goal_id":"g","nodes":"a,b"}"#).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("field `nodes`: invalid type"), "{text}");
        let err = parse_answer::<PlanAnswer>(r#"{"nodes":[{"title":"no id"}]}"#).unwrap_err();
        assert!(err.to_string().contains("nodes[0]"), "{err}");
        let err = parse_answer::<TaskAnswer>(r#"{"status":"maybe"}"#).unwrap_err();
        assert!(err.to_string().contains("field `status`"), "{err}");
    }

    #[test]
    fn unbalanced_braces_and_invalid_json_are_errors() {
        let err = parse_answer::<TaskAnswer>("{ not json }").unwrap_err();
        assert!(matches!(err, AnswerError::NotJson { .. }), "{err}");
        let err = parse_answer::<TaskAnswer>("{{{{\"status\":").unwrap_err();
        assert!(matches!(err, AnswerError::NotJson { .. }), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parsing_never_panics(text in ".{0,400}") {
            let _ = parse_answer::<PlanAnswer>(&text);
            let _ = parse_answer::<TaskAnswer>(&text);
            let _ = parse_answer::<SelectAnswer>(&text);
        }

        #[test]
        fn parsing_never_panics_on_json_like_text(text in r#"[{}\[\]":,\\a-z0-9 \n`]{0,200}"#) {
            let _ = parse_answer::<TaskAnswer>(&text);
            let _ = parse_answer::<PlanAnswer>(&text);
        }
    }
}
