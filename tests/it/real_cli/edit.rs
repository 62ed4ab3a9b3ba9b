//! What a codex agent may write under `--llm-permissions edit` (the default):
//! its goal's workspace, wherever that is, and nothing else. codex's
//! `workspace-write` sandbox also opens `/tmp` and `$TMPDIR` unless told not to,
//! and a run may keep its instructions or heartbeat files there.
//!
//! The workspaces here are under the system temp folder (`/tmp`), so the runs
//! also show that shutting `/tmp` leaves a workspace there writable.

use super::{Setup, TASKS, assert_every_file_written, status, text};
use crate::support::{RedisServer, temp_dir};

#[test]
fn codex_under_edit_writes_its_workspace_under_tmp_but_not_tmp_nor_tmpdir() {
    let redis = RedisServer::start();
    let mut setup =
        Setup::new("codex", "edit-tmp").workspaces_under(temp_dir("codex-edit-workspaces"));
    let in_tmp = temp_dir("codex-edit-outside").join("shell.txt");
    let tmpdir = setup.dir.join("tmpdir");
    std::fs::create_dir_all(&tmpdir).unwrap();
    let in_tmpdir = tmpdir.join("shell.txt");
    setup
        .env
        .push(("TMPDIR".into(), tmpdir.display().to_string()));
    setup.model.set_probe(&format!(
        "echo escaped > {}; echo escaped > {}; echo probe-done",
        in_tmp.display(),
        in_tmpdir.display()
    ));
    let output = setup.run(&redis.url(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_every_file_written(&setup, &status(&redis.url()));
    assert!(!in_tmp.exists(), "the agent wrote {}", in_tmp.display());
    assert!(
        !in_tmpdir.exists(),
        "the agent wrote {}",
        in_tmpdir.display()
    );
    // The shell ran both writes and the sandbox refused them.
    let probes: Vec<String> = setup
        .model
        .calls()
        .into_iter()
        .filter_map(|c| c.tool_result)
        .filter(|r| r.contains("probe-done"))
        .collect();
    assert_eq!(probes.len(), TASKS.len(), "one probe per task: {probes:?}");
    for seen in &probes {
        assert_eq!(
            seen.matches("Read-only file system").count(),
            2,
            "both writes refused: {seen}"
        );
    }
}

#[test]
fn codex_under_edit_cannot_patch_a_file_under_tmp_and_the_task_listing_it_is_not_done() {
    let stray = temp_dir("codex-edit-stray").join("stray.md");
    let setup =
        Setup::new("codex", "edit-stray").workspaces_under(temp_dir("codex-edit-workspaces"));
    setup.model.set_stray_write(&stray.display().to_string());
    let output = setup.run("memory://", &["--max-attempts", "1"]);
    let log = text(&output);
    assert_eq!(output.status.code(), Some(1), "the goal fails: {log}");
    assert!(
        !stray.exists(),
        "the agent wrote {}: {log}",
        stray.display()
    );
    for words in ["codex was denied", "--llm-permissions edit", "task FAILED"] {
        assert!(log.contains(words), "{words:?} missing from {log}");
    }
    assert!(!log.contains("task done"), "no task may be done: {log}");
    // Its own file, in the workspace under /tmp, was written.
    assert!(setup.workspace().join("artifacts/t1.md").exists(), "{log}");
}
