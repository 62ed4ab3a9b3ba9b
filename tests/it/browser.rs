//! The dashboard in a real browser: headless Chromium watches `porki demo
//! --http` (a slow offline provider) and sees the DAG and the task table change
//! as tasks finish, without a reload, then saves a screenshot; at the end, the
//! goal branch and a task's merged commit and diffstat.
//!
//! Needs Chromium from Debian's packages (`.ci/run` installs it); fails, saying
//! how to install it, when it is missing.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::prometheus;
use crate::support::web::get;
use crate::support::webdriver::Browser;
use crate::support::{free_port, porki, signal, temp_dir, wait_exit, wait_for, wait_until};

/// Tasks in the demo's plan as written: the 12 of the agents' task lists and
/// the review of the draft.
const PLANNED: u64 = 13;
/// Tasks at the end: the fix the draft's review asks for once is added.
const TASKS: u64 = PLANNED + 1;

/// Counts the page shows: tasks per state in the drawing and in the table, how
/// many times the live part was swapped, the live indicator, and whether the
/// marker set at load time survived (it would not survive a reload).
const READ_PAGE: &str = r#"
const count = (selector) => document.querySelectorAll(selector).length;
const live = document.getElementById('live');
return {
  svg_done: count('svg.dag a[data-state="DONE"]'),
  svg_running: count('svg.dag a[data-state="RUNNING"]'),
  svg_nodes: count('svg.dag a[data-task]'),
  table_done: count('table.tasks tr[data-state="DONE"]'),
  updates: Number(live && live.getAttribute('data-updates') || 0),
  status: (document.getElementById('live-status') || {}).textContent,
  marker: window.porkiMarker || null,
};
"#;

fn number(value: &Value, field: &str) -> u64 {
    value[field].as_u64().unwrap_or(0)
}

#[test]
fn the_dashboard_shows_a_running_goal_live_in_a_browser() {
    // First, so a missing Chromium fails before anything else starts.
    let browser = Browser::start();
    let dir = temp_dir("browser");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut demo = porki()
        .args([
            "demo",
            "--delay",
            "1500ms",
            "--http",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the demo's goal is planned",
        || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && get(&format!("{base}/goals/demo-001"), &[]).status == 200
        },
    );

    browser.open(&format!("{base}/goals/demo-001"));
    browser.eval("window.porkiMarker = 'no reload'; return true;");
    let first = browser.eval(READ_PAGE);
    assert!(
        (PLANNED..=TASKS).contains(&number(&first, "svg_nodes")),
        "{first}"
    );
    assert!(
        number(&first, "svg_done") < TASKS,
        "the goal is still running: {first}"
    );

    // Mid-run: some tasks done, some running; that is the picture for the README.
    let middle = wait_for(
        Duration::from_secs(60),
        "tasks finish while the page is open",
        || {
            let page = browser.eval(READ_PAGE);
            (number(&page, "svg_done") >= 5
                && number(&page, "svg_done") > number(&first, "svg_done")
                && number(&page, "svg_running") >= 1)
                .then_some(page)
        },
    );
    assert_eq!(middle["status"], "live", "{middle}");
    let screenshot = browser.screenshot();
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG");
    save_screenshot(&screenshot);

    // To the end, still without a reload: the drawing and the table agree.
    let last = wait_for(Duration::from_secs(60), "every task shows DONE", || {
        let page = browser.eval(READ_PAGE);
        (number(&page, "svg_done") == TASKS && number(&page, "table_done") == TASKS).then_some(page)
    });
    assert_eq!(
        last["marker"], "no reload",
        "the page was never reloaded: {last}"
    );
    assert!(
        number(&last, "updates") >= 2,
        "the live part was swapped: {last}"
    );
    let text = browser.eval("return document.querySelector('h1').textContent;");
    assert!(text.as_str().unwrap_or("").contains("complete"), "{text}");
    merged_work_is_shown(&browser, &base);

    // The demo keeps serving its finished goal, with its agents' counters.
    let metrics = prometheus::parse(&get(&format!("{base}/metrics"), &[]).body).unwrap();
    assert_eq!(
        metrics["porki_task_completions_total"]
            .value("porki_task_completions_total", &[("goal", "demo-001")]),
        Some(TASKS as f64)
    );
    drop(browser);
    signal(&demo, Signal::SIGTERM);
    assert_eq!(wait_exit(&mut demo, Duration::from_secs(10)), 0);
}

/// The demo isolates tasks in worktrees (git is on PATH): the goal page names
/// the goal branch, and a task's page shows the commit that merged its work
/// (one the branch holds) and its diffstat, as `/api/status` has them.
fn merged_work_is_shown(browser: &Browser, base: &str) {
    let branch =
        browser.eval("const p = document.querySelector('p.branch'); return p && p.textContent;");
    assert!(
        branch
            .as_str()
            .unwrap_or("")
            .contains("branch porki/demo-001 in "),
        "the goal page names the goal branch: {branch}"
    );
    let status: Value =
        serde_json::from_str(&get(&format!("{base}/api/status"), &[]).body).unwrap();
    let goal = &status["goals"][0];
    let task = goal["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["diffstat"]
                .as_str()
                .is_some_and(|d| d.contains("changed"))
        })
        .unwrap_or_else(|| panic!("a task merged with a diffstat: {goal}"));
    let commit = task["commit"].as_str().unwrap();
    let repository = goal["repository"].as_str().unwrap();
    let on_branch = std::process::Command::new("git")
        .args(["merge-base", "--is-ancestor", commit, "porki/demo-001"])
        .current_dir(repository)
        .status()
        .unwrap();
    assert!(
        on_branch.success(),
        "{commit} is on the goal branch in {repository}"
    );
    browser.open(&format!(
        "{base}/goals/demo-001/tasks/{}",
        task["id"].as_str().unwrap()
    ));
    let shown = browser.eval(
        "const text = (selector) => { const e = document.querySelector(selector); return e && e.textContent; };\n\
return { commit: text('code.commit'), diffstat: text('pre.diffstat') };",
    );
    assert_eq!(shown["commit"], commit, "{shown}");
    assert_eq!(shown["diffstat"], task["diffstat"], "{shown}");
}

/// Keeps the screenshot in the target folder, and as `docs/dashboard.png` (the
/// README's) when `PORKI_UPDATE_SCREENSHOT` is set.
fn save_screenshot(png: &[u8]) {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&target, png).unwrap();
    if std::env::var_os("PORKI_UPDATE_SCREENSHOT").is_some() {
        let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
        std::fs::write(&docs, png).unwrap();
    }
}
