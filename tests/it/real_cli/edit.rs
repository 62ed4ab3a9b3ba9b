//! What a codex agent may write under `--llm-permissions edit` (the default):
//! its goal's workspace, wherever that is, and the call's private temp folder
//! (`$TMPDIR`, which porki makes and removes), nothing else. codex's
//! `workspace-write` sandbox also opens `/tmp` unless told not to, and a run may
//! keep its instructions or heartbeat files there.
//!
//! The workspaces here are under the system temp folder (`/tmp`), so the runs
//! also show that shutting `/tmp` leaves a workspace there writable.

use std::path::Path;

use super::{Setup, TASKS, assert_every_file_written, status, text};
use crate::support::{RedisServer, temp_dir};

#[test]
fn codex_under_edit_writes_its_workspace_and_a_private_tmpdir_under_tmp_but_not_tmp() {
    let redis = RedisServer::start();
    let mut setup =
        Setup::new("codex", "edit-tmp").workspaces_under(temp_dir("codex-edit-workspaces"));
    let in_tmp = temp_dir("codex-edit-outside").join("shell.txt");
    // porki's own temp folder, under /tmp: the private ones go in it.
    let porkis_tmp = temp_dir("codex-edit-tmpdir");
    setup
        .env
        .push(("TMPDIR".into(), porkis_tmp.display().to_string()));
    setup.model.set_probe(&format!(
        "echo \"tmpdir=$TMPDIR\"; echo kept > \"$TMPDIR/x\" && cat \"$TMPDIR/x\"; \
         echo \"mktemp=$(mktemp)\"; echo escaped > {}; echo escaped > \"$TMPDIR/../shell.txt\"; \
         echo probe-done",
        in_tmp.display(),
    ));
    let output = setup.run(&redis.url(), &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_every_file_written(&setup, &status(&redis.url()));
    assert!(!in_tmp.exists(), "the agent wrote {}", in_tmp.display());
    let probes: Vec<String> = setup
        .model
        .calls()
        .into_iter()
        .filter_map(|c| c.tool_result)
        .filter(|r| r.contains("probe-done"))
        .collect();
    assert_eq!(probes.len(), TASKS.len(), "one probe per task: {probes:?}");
    let mut seen = Vec::new();
    for seen_by_shell in &probes {
        // The tool result is JSON: its newlines are escaped.
        let lines: Vec<&str> = seen_by_shell.split("\\n").collect();
        let value = |key: &str| {
            lines
                .iter()
                .find_map(|l| l.rsplit_once(key).map(|(_, v)| v.to_string()))
                .unwrap_or_else(|| panic!("no {key} in {seen_by_shell}"))
        };
        let tmpdir = value("tmpdir=");
        assert_eq!(
            Path::new(&tmpdir).parent(),
            Some(porkis_tmp.as_path()),
            "{seen_by_shell}"
        );
        assert!(tmpdir.contains("/porki-tmp-"), "{seen_by_shell}");
        assert!(
            lines.contains(&"kept"),
            "$TMPDIR/x written: {seen_by_shell}"
        );
        assert!(
            value("mktemp=").starts_with(&format!("{tmpdir}/tmp.")),
            "mktemp works: {seen_by_shell}"
        );
        // Both writes outside ($TMPDIR's parent is under /tmp too) were refused.
        assert_eq!(
            seen_by_shell.matches("Read-only file system").count(),
            2,
            "{seen_by_shell}"
        );
        assert!(!seen.contains(&tmpdir), "each call has its own folder");
        seen.push(tmpdir);
    }
    // Every call's folder (the plan calls' too) is gone, and nothing else was left.
    let left: Vec<_> = std::fs::read_dir(&porkis_tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        left.is_empty(),
        "left in {}: {left:?}",
        porkis_tmp.display()
    );
}

#[test]
fn codex_under_edit_cannot_patch_a_file_under_tmp_and_the_task_listing_it_is_not_done() {
    let stray = temp_dir("codex-edit-stray").join("stray.md");
    let setup =
        Setup::new("codex", "edit-stray").workspaces_under(temp_dir("codex-edit-workspaces"));
    setup.model.set_stray_write(&stray.display().to_string());
    // One shared folder: the failed attempt's own file stays there to be seen
    // (in a worktree it would go with the worktree, never merged).
    let output = setup.run(
        "memory://",
        &["--max-attempts", "1", "--isolation", "shared"],
    );
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
