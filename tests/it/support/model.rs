//! A stand-in for the model behind the real `claude` and `codex` CLIs, on
//! loopback: the Anthropic Messages API (streaming SSE, what claude speaks) and
//! the OpenAI Responses API (streaming SSE, what codex speaks), as
//! `REAL-CLIS.md` describes them.
//!
//! It reads porki's prompts out of the CLIs' requests (`porki-phase:`,
//! `porki-task:`) and plays a model that plans a chain of tasks and, on
//! execute, writes `artifacts/<task>.md` with the CLI's own file tool (claude's
//! `Write`, codex's `apply_patch` through its `exec` tool), then answers with
//! the task's JSON once the CLI returns the tool's result. Faults (an HTTP
//! status for every call, or for execute calls until a time) are switchable,
//! and so are a probe, a shell command the model has the CLI run before the write
//! (claude's `Bash`, codex's `exec_command`), and a stray write, a file outside
//! the workspace it writes and lists among the task's outputs, as a
//! prompt-injected model would.
//!
//! For worktree isolation it can also plan tasks with given dependencies (or
//! none), give a task other work ([`Work`]: edit a line of a file, copy one
//! file into another), hold tasks' execute calls until all of them have
//! started (so their CLIs edit at once), approve every review (`<id>.review`),
//! and, on a merge task (`<id>.merge`), read the conflicted file its prompt
//! names and write it back with both sides kept and the markers gone.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// One call the model answered.
#[derive(Debug, Clone)]
pub struct ModelCall {
    /// `anthropic` or `openai`.
    pub api: &'static str,
    /// The porki phase of the prompt, if one was found.
    pub phase: Option<String>,
    /// The task the prompt is about (`goal/task`), if any.
    pub task: Option<String>,
    /// The text of the tool result the CLI sent back, if this call carried one.
    pub tool_result: Option<String>,
    /// The working directory the CLI told the model it runs in.
    pub cwd: Option<String>,
    /// Every text of the request (system prompt, messages, tool results), joined.
    pub text: String,
    /// The HTTP status answered.
    pub status: u16,
}

/// A fault the model answers with instead of working.
#[derive(Debug, Clone)]
pub struct Fault {
    /// HTTP status.
    pub status: u16,
    /// Error body (the API's JSON error document).
    pub body: Value,
    /// Only execute calls get it (plan calls work).
    pub execute_only: bool,
    /// How long it lasts from the first call it answers; `None`: for good.
    pub lasting: Option<Duration>,
    /// A `retry-after` header (seconds) on the answer, if any.
    pub retry_after: Option<u64>,
}

/// What the model has the CLI do on a task's execute call, in place of
/// writing `artifacts/<task>.md`; paths are relative to the CLI's folder.
#[derive(Debug, Clone)]
pub enum Work {
    /// Replace the text `old` with `new` in `path`: claude reads it (`Read`)
    /// and edits it (`Edit`); codex patches it (`apply_patch`, `Update File`).
    Edit {
        /// The file.
        path: String,
        /// The text replaced (a whole line, for codex's patch).
        old: String,
        /// What replaces it.
        new: String,
    },
    /// Read `from` and write its content to the new file `to`: claude with
    /// `Read` and `Write`, codex with `cat` in its shell and `apply_patch`.
    Copy {
        /// The file read.
        from: String,
        /// The file written.
        to: String,
    },
}

#[derive(Default)]
struct State {
    tasks: Vec<String>,
    /// The plan's dependencies (`source → target`); `None`: the chain of `tasks`.
    edges: Option<Vec<(String, String)>>,
    /// Tasks given other work than writing their file.
    work: HashMap<String, Work>,
    /// Tasks whose execute calls wait until each of them has started.
    together: Vec<String>,
    calls: Vec<ModelCall>,
    fault: Option<Fault>,
    /// A shell command to run before each execute call's write.
    probe: Option<String>,
    /// A file (absolute path) to write, and list, before each execute call's own write.
    stray: Option<String>,
    /// When the fault first answered a call.
    fault_started: Option<Instant>,
    /// The tasks of `together` whose execute calls came.
    started: Vec<String>,
}

/// The stand-in model server; stops when dropped.
pub struct ModelServer {
    port: u16,
    state: Arc<Mutex<State>>,
    handle: actix_web::dev::ServerHandle,
}

impl ModelServer {
    /// Starts a model that plans the chain `tasks[0] → tasks[1] → …`.
    pub fn start(tasks: &[&str]) -> Self {
        let state = Arc::new(Mutex::new(State {
            tasks: tasks.iter().map(|t| t.to_string()).collect(),
            ..State::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let shared = state.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::new(shared.clone()))
                        .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                        .default_service(web::to(answer))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            });
        });
        let handle = rx.recv().expect("the model server started");
        Self {
            port,
            state,
            handle,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers with `fault` from now on (until it ends, or `clear_fault`).
    pub fn set_fault(&self, fault: Fault) {
        let mut state = self.state.lock().unwrap();
        state.fault = Some(fault);
        state.fault_started = None;
    }

    /// Has the CLI run `command` in its shell before each task's write.
    pub fn set_probe(&self, command: &str) {
        self.state.lock().unwrap().probe = Some(command.to_string());
    }

    /// Has the CLI write `path` (absolute) with its file tool before each task's
    /// own file, and lists it among the task's outputs.
    pub fn set_stray_write(&self, path: &str) {
        self.state.lock().unwrap().stray = Some(path.to_string());
    }

    /// Plans `edges` (`source → target`) between the tasks instead of a chain
    /// (none: every task independent).
    pub fn set_edges(&self, edges: &[(&str, &str)]) {
        self.state.lock().unwrap().edges = Some(
            edges
                .iter()
                .map(|(s, t)| (s.to_string(), t.to_string()))
                .collect(),
        );
    }

    /// Gives `task` `work` to do instead of writing its file.
    pub fn set_work(&self, task: &str, work: Work) {
        self.state
            .lock()
            .unwrap()
            .work
            .insert(task.to_string(), work);
    }

    /// Holds the first execute call of each of `tasks` until every one of them
    /// has made one (at most [`TOGETHER_WAIT`]), so their CLIs start from the
    /// same goal branch and work at once.
    pub fn set_together(&self, tasks: &[&str]) {
        self.state.lock().unwrap().together = tasks.iter().map(|t| t.to_string()).collect();
    }

    /// Every call answered so far.
    pub fn calls(&self) -> Vec<ModelCall> {
        self.state.lock().unwrap().calls.clone()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(handle.stop(false));
        });
    }
}

/// Every string in a JSON document, depth first.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The value of a `prefix…` line in `text`.
fn line_value<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(prefix))
        .map(str::trim)
}

/// What a request is about.
struct Prompt {
    phase: Option<String>,
    goal: Option<String>,
    task: Option<String>,
    /// The CLI's working directory, as it told the model.
    cwd: Option<String>,
}

fn read_prompt(texts: &[String]) -> Prompt {
    let porki = texts.iter().find(|t| t.contains("porki-phase: "));
    let all = texts.join("\n");
    let cwd = line_value(&all, "- Primary working directory:")
        .map(str::to_string)
        .or_else(|| {
            let start = all.find("<cwd>")? + 5;
            let end = all[start..].find("</cwd>")?;
            Some(all[start..start + end].to_string())
        });
    let phase = porki
        .and_then(|p| line_value(p, "porki-phase:"))
        .map(str::to_string);
    let (goal, task) = match porki.and_then(|p| line_value(p, "porki-task:")) {
        Some(gt) => match gt.split_once('/') {
            Some((g, t)) => (Some(g.to_string()), Some(t.to_string())),
            None => (None, None),
        },
        None => (
            porki
                .and_then(|p| line_value(p, "porki-goal:"))
                .map(str::to_string),
            None,
        ),
    };
    Prompt {
        phase,
        goal,
        task,
        cwd,
    }
}

/// What the model says: a tool call that runs a command or writes a file, or
/// a final text.
enum Turn {
    Shell(String),
    /// Read a file: claude's `Read`; codex's shell, `cat` between two lines.
    Read(String),
    Write {
        path: String,
        content: String,
    },
    /// Replace `old` with `new` in `path`: claude's `Edit`, codex's patch.
    Edit {
        path: String,
        old: String,
        new: String,
    },
    Text(String),
}

async fn answer(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let path = request.path().to_string();
    if request.method() == actix_web::http::Method::HEAD
        || request.method() == actix_web::http::Method::GET
    {
        return HttpResponse::Ok().finish();
    }
    if path.ends_with("/count_tokens") {
        return HttpResponse::Ok().json(json!({"input_tokens": 100}));
    }
    let api = if path.starts_with("/v1/messages") {
        "anthropic"
    } else if path.ends_with("/responses") {
        "openai"
    } else {
        return HttpResponse::NotFound().finish();
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut texts = Vec::new();
    strings(&body, &mut texts);
    let prompt = read_prompt(&texts);
    let tool_result = tool_result(api, &body);
    let tools_used = tool_results(api, &body).len();
    if tools_used == 0 && prompt.phase.as_deref() == Some("execute") {
        wait_for_the_others(&state, prompt.task.as_deref().unwrap_or_default()).await;
    }
    let mut state = state.lock().unwrap();
    let applies = |f: &Fault| !f.execute_only || prompt.phase.as_deref() == Some("execute");
    if state.fault.as_ref().is_some_and(applies) && state.fault_started.is_none() {
        state.fault_started = Some(Instant::now());
    }
    let started = state.fault_started;
    let fault = state.fault.clone().filter(|f| {
        applies(f)
            && f.lasting
                .zip(started)
                .is_none_or(|(lasting, started)| started.elapsed() < lasting)
    });
    let status = fault.as_ref().map_or(200, |f| f.status);
    state.calls.push(ModelCall {
        api,
        phase: prompt.phase.clone(),
        task: prompt
            .task
            .as_ref()
            .map(|t| format!("{}/{t}", prompt.goal.clone().unwrap_or_default())),
        tool_result: tool_result.clone(),
        cwd: prompt.cwd.clone(),
        text: texts.join("\n"),
        status,
    });
    if let Some(fault) = fault {
        let mut answer =
            HttpResponse::build(actix_web::http::StatusCode::from_u16(fault.status).unwrap());
        answer.insert_header(("content-type", "application/json"));
        if let Some(seconds) = fault.retry_after {
            answer.insert_header(("retry-after", seconds.to_string()));
        }
        return answer.body(fault.body.to_string());
    }
    let work = Worked {
        api,
        tools_used,
        tool_result: tool_result.as_deref(),
        text: &texts.join("\n"),
    };
    let turn = model_turn(&state, &prompt, &work);
    drop(state);
    let events = match api {
        "anthropic" => anthropic_events(&turn, tools_used),
        _ => openai_events(&turn, tools_used),
    };
    HttpResponse::Ok()
        .insert_header(("content-type", "text/event-stream"))
        .body(events)
}

/// The tool result in the request, if the CLI is reporting one back.
fn tool_result(api: &str, body: &Value) -> Option<String> {
    let items: Vec<&Value> = match api {
        "anthropic" => body["messages"]
            .as_array()?
            .last()?
            .get("content")?
            .as_array()?
            .iter()
            .filter(|c| c["type"] == "tool_result")
            .collect(),
        _ => body["input"]
            .as_array()?
            .iter()
            .filter(|i| {
                matches!(
                    i["type"].as_str(),
                    Some("function_call_output" | "custom_tool_call_output")
                )
            })
            .collect(),
    };
    let item = items.last()?;
    let mut texts = Vec::new();
    strings(
        item.get("content").or_else(|| item.get("output"))?,
        &mut texts,
    );
    Some(texts.join("\n"))
}

/// Every tool result of the conversation so far.
fn tool_results<'b>(api: &str, body: &'b Value) -> Vec<&'b Value> {
    match api {
        "anthropic" => body["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["content"].as_array())
            .flatten()
            .filter(|c| c["type"] == "tool_result")
            .collect(),
        _ => body["input"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| {
                matches!(
                    i["type"].as_str(),
                    Some("function_call_output" | "custom_tool_call_output")
                )
            })
            .collect(),
    }
}

/// Longest an execute call waits for the other tasks of [`ModelServer::set_together`].
pub const TOGETHER_WAIT: Duration = Duration::from_secs(90);

/// Marks `task` started and, if it is one of the tasks that work together,
/// waits until all of them have started (or [`TOGETHER_WAIT`] passed).
async fn wait_for_the_others(state: &Mutex<State>, task: &str) {
    let started = Instant::now();
    {
        let mut state = state.lock().unwrap();
        if !state.together.iter().any(|t| t == task) {
            return;
        }
        if !state.started.iter().any(|t| t == task) {
            state.started.push(task.to_string());
        }
    }
    while started.elapsed() < TOGETHER_WAIT {
        {
            let state = state.lock().unwrap();
            if state.together.iter().all(|t| state.started.contains(t)) {
                return;
            }
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the call carries besides the prompt.
struct Worked<'a> {
    api: &'static str,
    /// Tool results so far in this call's conversation.
    tools_used: usize,
    /// The last tool result, if the CLI is reporting one back.
    tool_result: Option<&'a str>,
    /// Every text of the request.
    text: &'a str,
}

/// The model's next turn.
fn model_turn(state: &State, prompt: &Prompt, call: &Worked) -> Turn {
    let tasks = &state.tasks;
    let tools_used = call.tools_used;
    // On execute: the probe and the stray write (if any), then the write, then the answer.
    let probe_turns = usize::from(state.probe.is_some());
    let write_turn = probe_turns + usize::from(state.stray.is_some());
    let goal = prompt.goal.clone().unwrap_or_default();
    let task = prompt.task.clone().unwrap_or_default();
    let content = format!("# {task}\n\nWritten by the stand-in model for goal {goal}.\n");
    let path = |relative: &str| match (&prompt.cwd, call.api) {
        (Some(cwd), "anthropic") => format!("{cwd}/{relative}"),
        _ => relative.to_string(),
    };
    match prompt.phase.as_deref() {
        Some("plan") => {
            let nodes: Vec<Value> = tasks
                .iter()
                .enumerate()
                .map(|(i, t)| json!({"id": t, "title": format!("Write {t}.md"), "priority": (tasks.len() - i) as i64, "expected_artifacts": [format!("{t}.md")]}))
                .collect();
            let edges: Vec<Value> = match &state.edges {
                Some(edges) => edges
                    .iter()
                    .map(|(s, t)| json!({"source": s, "target": t}))
                    .collect(),
                None => tasks
                    .windows(2)
                    .map(|w| json!({"source": w[0], "target": w[1]}))
                    .collect(),
            };
            Turn::Text(json!({"goal_id": goal, "nodes": nodes, "edges": edges}).to_string())
        }
        Some("execute") if task.ends_with(".review") => Turn::Text(
            json!({"status": "done", "outputs": [], "notes": "the work does what its task asks", "verdict": "approved"})
                .to_string(),
        ),
        Some("execute") if is_merge(&task) => {
            match conflicted_file(call.text) {
                Some(file) => match tools_used {
                    0 => Turn::Read(path(&file)),
                    1 => {
                        let old = file_text(call.tool_result.unwrap_or_default());
                        let new = resolved(&old);
                        Turn::Edit { path: path(&file), old, new }
                    }
                    _ => done(&[&file], &format!("resolved the conflict in {file}")),
                },
                None => Turn::Text(
                    json!({"status": "failed", "outputs": [], "notes": "the prompt names no conflicted file"})
                        .to_string(),
                ),
            }
        }
        Some("execute") if state.work.contains_key(&task) => {
            match (&state.work[&task], call.api, tools_used) {
                // claude's Edit needs the file read first; codex's patch does not.
                (Work::Edit { path: file, .. }, "anthropic", 0) => Turn::Read(path(file)),
                (Work::Edit { path: file, old, new }, "anthropic", 1)
                | (Work::Edit { path: file, old, new }, _, 0) => Turn::Edit {
                    path: path(file),
                    old: old.clone(),
                    new: new.clone(),
                },
                (Work::Edit { path: file, .. }, ..) => done(&[file], &format!("edited {file}")),
                (Work::Copy { from, .. }, _, 0) => Turn::Read(path(from)),
                (Work::Copy { to, .. }, _, 1) => Turn::Write {
                    path: path(to),
                    content: file_text(call.tool_result.unwrap_or_default()),
                },
                (Work::Copy { from, to }, ..) => done(&[to], &format!("copied {from} to {to}")),
            }
        }
        Some("execute") if tools_used < probe_turns => {
            Turn::Shell(state.probe.clone().unwrap_or_default())
        }
        Some("execute") if tools_used < write_turn => Turn::Write {
            path: state.stray.clone().unwrap_or_default(),
            content,
        },
        Some("execute") if tools_used == write_turn => Turn::Write {
            path: path(&format!("artifacts/{task}.md")),
            content,
        },
        Some("execute") => {
            let mut outputs = vec![format!("artifacts/{task}.md")];
            outputs.extend(state.stray.clone());
            Turn::Text(
                json!({"status": "done", "outputs": outputs, "notes": format!("wrote {task}.md")})
                    .to_string(),
            )
        }
        Some("select") => {
            Turn::Text(json!({"selected_task_id": "", "justification": "any"}).to_string())
        }
        _ => Turn::Text(json!({"status": "done", "notes": "summary"}).to_string()),
    }
}

/// A DONE answer listing `outputs`.
fn done(outputs: &[&str], notes: &str) -> Turn {
    Turn::Text(json!({"status": "done", "outputs": outputs, "notes": notes}).to_string())
}

/// Whether `task` is a merge task porki added (`<id>.merge`, `<id>.merge-2`).
fn is_merge(task: &str) -> bool {
    task.ends_with(".merge")
        || task
            .rsplit_once(".merge-")
            .is_some_and(|(_, n)| n.parse::<u32>().is_ok())
}

/// The first conflicted file a merge task's prompt names: the notes say
/// `… conflicted with <tasks> in: <file>, <file>`.
fn conflicted_file(prompt: &str) -> Option<String> {
    let notes = prompt
        .lines()
        .find(|l| l.contains("into the goal branch conflicted with"))?;
    let (_, files) = notes.rsplit_once(" in: ")?;
    let file = files.split([',', '"']).next()?.trim();
    (!file.is_empty()).then(|| file.to_string())
}

/// The lines around a file's content in the output of codex's `cat`.
const FILE_START: &str = "=== file start ===";
const FILE_END: &str = "=== file end ===";

/// The content of the file a read tool result shows: between the two lines
/// codex's shell prints around it (its result, whose result is JSON), or the numbered
/// lines of claude's `Read` (`   1→text` or `   1\ttext`).
fn file_text(result: &str) -> String {
    if result.contains(FILE_START) {
        let mut texts = vec![result.to_string()];
        // The JSON document is followed by more of codex's text.
        if let Some(at) = result.find('{')
            && let Some(Ok(value)) = serde_json::Deserializer::from_str(&result[at..])
                .into_iter::<Value>()
                .next()
        {
            strings(&value, &mut texts);
        }
        let shown = texts
            .iter()
            .rev()
            .find(|t| t.contains(&format!("{FILE_START}\n")))
            .unwrap_or(&texts[0]);
        let start = shown.find(FILE_START).unwrap() + FILE_START.len() + 1;
        let end = shown[start..]
            .find(FILE_END)
            .map_or(shown.len(), |e| start + e);
        return shown[start..end].to_string();
    }
    // A file ending in a newline shows an empty last line.
    let lines: Vec<&str> = result
        .lines()
        .filter_map(|line| {
            let trimmed = line.trim_start();
            let rest = trimmed.trim_start_matches(|c: char| c.is_ascii_digit());
            if rest.len() == trimmed.len() {
                return None;
            }
            rest.strip_prefix('\t').or_else(|| rest.strip_prefix('→'))
        })
        .collect();
    lines.join("\n")
}

/// `text` with its conflicts resolved by keeping both sides, ours first (a
/// diff3 base section dropped), and no marker left.
fn resolved(text: &str) -> String {
    let mut out = String::new();
    let mut in_base = false;
    for line in text.lines() {
        if line.starts_with("<<<<<<<") || line.starts_with(">>>>>>>") {
            in_base = false;
            continue;
        }
        if line.starts_with("|||||||") {
            in_base = true;
            continue;
        }
        if line.starts_with("=======") {
            in_base = false;
            continue;
        }
        if !in_base {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn sse(events: &[(&str, Value)]) -> String {
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

/// Anthropic Messages streaming events for one assistant turn.
/// `n` numbers the tool call within the conversation (ids must differ).
fn anthropic_events(turn: &Turn, n: usize) -> String {
    let id = format!("toolu_{n:02}");
    let (block, delta, stop) = match turn {
        Turn::Shell(command) => (
            json!({"type": "tool_use", "id": id, "name": "Bash", "input": {}}),
            json!({"type": "input_json_delta", "partial_json": json!({"command": command, "description": "look around"}).to_string()}),
            "tool_use",
        ),
        Turn::Read(path) => (
            json!({"type": "tool_use", "id": id, "name": "Read", "input": {}}),
            json!({"type": "input_json_delta", "partial_json": json!({"file_path": path}).to_string()}),
            "tool_use",
        ),
        Turn::Write { path, content } => (
            json!({"type": "tool_use", "id": id, "name": "Write", "input": {}}),
            json!({"type": "input_json_delta", "partial_json": json!({"file_path": path, "content": content}).to_string()}),
            "tool_use",
        ),
        Turn::Edit { path, old, new } => (
            json!({"type": "tool_use", "id": id, "name": "Edit", "input": {}}),
            json!({"type": "input_json_delta", "partial_json": json!({"file_path": path, "old_string": old, "new_string": new}).to_string()}),
            "tool_use",
        ),
        Turn::Text(text) => (
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": text}),
            "end_turn",
        ),
    };
    sse(&[
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant", "model": "stand-in", "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 120, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": block}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 30}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ])
}

/// codex's `apply_patch` of `hunks`: its default model works in "code mode",
/// one custom `exec` tool whose input is JavaScript calling the nested tools.
fn apply_patch(id: &str, call_id: &str, hunks: &str) -> Value {
    let patch = format!("*** Begin Patch\n{hunks}*** End Patch\n");
    let js = format!(
        "const r = await tools.apply_patch({});\ntext(JSON.stringify(r));",
        serde_json::to_string(&patch).unwrap()
    );
    json!({"id": id, "type": "custom_tool_call", "status": "completed", "call_id": call_id, "name": "exec", "input": js})
}

/// OpenAI Responses streaming events for one assistant turn.
/// `n` numbers the tool call within the conversation (ids must differ).
fn openai_events(turn: &Turn, n: usize) -> String {
    let (id, call_id) = (format!("ctc_{n}"), format!("call_{n}"));
    let item = match turn {
        Turn::Shell(_) | Turn::Read(_) => {
            let command = match turn {
                // The file between two lines, to be found in the tool's JSON result.
                Turn::Read(path) => {
                    format!("printf '{FILE_START}\\n'; cat -- '{path}'; printf '{FILE_END}\\n'")
                }
                Turn::Shell(command) => command.clone(),
                _ => unreachable!(),
            };
            let js = format!(
                "const r = await tools.exec_command({{cmd: {}}});\ntext(JSON.stringify(r));",
                serde_json::to_string(&command).unwrap()
            );
            json!({"id": id, "type": "custom_tool_call", "status": "completed", "call_id": call_id, "name": "exec", "input": js})
        }
        Turn::Write { path, content } => {
            let relative = path
                .rsplit_once("/artifacts/")
                .map_or(path.clone(), |(_, f)| format!("artifacts/{f}"));
            let body: String = content.lines().map(|l| format!("+{l}\n")).collect();
            apply_patch(&id, &call_id, &format!("*** Add File: {relative}\n{body}"))
        }
        Turn::Edit { path, old, new } => {
            let removed: String = old.lines().map(|l| format!("-{l}\n")).collect();
            let added: String = new.lines().map(|l| format!("+{l}\n")).collect();
            apply_patch(
                &id,
                &call_id,
                &format!("*** Update File: {path}\n@@\n{removed}{added}"),
            )
        }
        Turn::Text(text) => {
            json!({"id": "msg_1", "type": "message", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]})
        }
    };
    let response = json!({"id": "resp_1", "object": "response", "created_at": 1, "status": "in_progress", "model": "stand-in", "output": []});
    let mut done = response.clone();
    done["status"] = json!("completed");
    done["output"] = json!([item.clone()]);
    done["usage"] = json!({"input_tokens": 200, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 240});
    let mut events = vec![
        (
            "response.created",
            json!({"type": "response.created", "sequence_number": 0, "response": response}),
        ),
        (
            "response.output_item.added",
            json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": item}),
        ),
    ];
    if let Turn::Text(text) = turn {
        events.push(("response.output_text.delta", json!({"type": "response.output_text.delta", "sequence_number": 2, "output_index": 0, "item_id": "msg_1", "content_index": 0, "delta": text})));
    }
    events.push(("response.output_item.done", json!({"type": "response.output_item.done", "sequence_number": 3, "output_index": 0, "item": item})));
    events.push((
        "response.completed",
        json!({"type": "response.completed", "sequence_number": 4, "response": done}),
    ));
    sse(&events)
}
