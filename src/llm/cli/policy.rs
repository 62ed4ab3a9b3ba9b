//! The permission policy (`--llm-permissions`) and porki's own options for each
//! CLI: where the agent runs, what it may write, and the machine-readable output
//! porki judges. The flags are the ones the CLIs accept today (see
//! `REAL-CLIS.md` in the design notes): claude's `--permission-mode`, codex's
//! `--sandbox`. A user's `--llm-extra-arg` that names one of these options
//! replaces porki's, so every choice here can be overridden.

use std::ffi::OsString;
use std::path::Path;

use super::CliFlavor;
use crate::workspace::GoalWorkspace;

/// What a CLI agent may do in the goal's workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Permissions {
    /// Read files only: every edit and command that changes something is denied.
    #[value(name = "read-only")]
    ReadOnly,
    /// Create and edit files inside the workspace (and the artifacts folder).
    #[default]
    Edit,
    /// Anything, without asking: commands, network, files anywhere.
    Full,
}

impl Permissions {
    /// The name on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Permissions::ReadOnly => "read-only",
            Permissions::Edit => "edit",
            Permissions::Full => "full",
        }
    }

    /// What a denial under this policy needs, said as the flag that allows it.
    pub fn what_allows(self, inside_workspace: bool) -> &'static str {
        match (self, inside_workspace) {
            (Permissions::ReadOnly, true) => {
                "--llm-permissions edit allows writing inside the workspace"
            }
            (Permissions::Full, _) => {
                "it was denied even with --llm-permissions full: check the CLI's own settings and --llm-extra-arg"
            }
            _ => {
                "--llm-permissions full allows it (writes outside the workspace and commands); or keep the work inside the workspace"
            }
        }
    }
}

/// codex setting (`-c`) that takes `/tmp` out of its `workspace-write` sandbox's
/// writable folders (the workspace stays writable wherever it is). A user's
/// later `-c` of the same key wins.
const CODEX_SLASH_TMP_SHUT: [&str; 2] = ["-c", "sandbox_workspace_write.exclude_slash_tmp=true"];

/// Whether a call of `flavor` under `permissions` gets a private temp folder
/// (`temp.rs`): codex under edit, whose sandbox shuts every other temp folder.
/// claude under edit runs no command that would use one (acceptEdits asks
/// approval for `mktemp` or a compiler, which `-p` refuses), and under full
/// both may use the system's.
pub(super) fn private_temp(flavor: CliFlavor, permissions: Permissions) -> bool {
    flavor == CliFlavor::Codex && permissions == Permissions::Edit
}

/// One of porki's options and the names by which a user's extra argument overrides it.
struct OwnOption {
    names: &'static [&'static str],
    args: Vec<OsString>,
}

/// porki's options for a call of `flavor` under `permissions` in `workspace` with
/// the private temp folder `temp`, minus those the user's `extra` arguments give
/// themselves.
pub(super) fn own_options(
    flavor: CliFlavor,
    permissions: Permissions,
    workspace: Option<&GoalWorkspace>,
    temp: Option<&Path>,
    extra: &[String],
) -> Vec<OsString> {
    let outside: Vec<OsString> = match (permissions, workspace) {
        (Permissions::Edit, Some(ws)) => ws.outside_dirs().into_iter().map(Into::into).collect(),
        _ => Vec::new(),
    };
    let mut options = Vec::new();
    match flavor {
        CliFlavor::Claude => {
            options.push(OwnOption {
                names: &["--output-format"],
                args: vec!["--output-format".into(), "json".into()],
            });
            // `--add-dir` takes several values: it goes before an option, never last.
            for dir in outside {
                options.push(OwnOption {
                    names: &[],
                    args: vec!["--add-dir".into(), dir],
                });
            }
            options.push(OwnOption {
                names: &[
                    "--permission-mode",
                    "--dangerously-skip-permissions",
                    "--allow-dangerously-skip-permissions",
                ],
                args: match permissions {
                    Permissions::ReadOnly => vec!["--permission-mode".into(), "dontAsk".into()],
                    Permissions::Edit => vec!["--permission-mode".into(), "acceptEdits".into()],
                    Permissions::Full => vec!["--dangerously-skip-permissions".into()],
                },
            });
        }
        CliFlavor::Codex => {
            options.push(OwnOption {
                names: &["--skip-git-repo-check"],
                args: vec!["--skip-git-repo-check".into()],
            });
            if let Some(ws) = workspace {
                options.push(OwnOption {
                    names: &["-C", "--cd"],
                    args: vec!["-C".into(), ws.dir.clone().into()],
                });
            }
            options.push(OwnOption {
                names: &["--json"],
                args: vec!["--json".into()],
            });
            options.push(OwnOption {
                names: &[
                    "-s",
                    "--sandbox",
                    "--dangerously-bypass-approvals-and-sandbox",
                    "--full-auto",
                    "--approve-for-me",
                ],
                args: match permissions {
                    Permissions::ReadOnly => vec!["--sandbox".into(), "read-only".into()],
                    Permissions::Edit => vec!["--sandbox".into(), "workspace-write".into()],
                    Permissions::Full => {
                        vec!["--dangerously-bypass-approvals-and-sandbox".into()]
                    }
                },
            });
            if permissions == Permissions::Edit {
                // workspace-write also opens /tmp, where the instructions or heartbeat
                // files may live: edit means the workspace only. It opens $TMPDIR too,
                // which is the call's private temp folder (given explicitly below).
                options.push(OwnOption {
                    names: &[],
                    args: CODEX_SLASH_TMP_SHUT.iter().map(Into::into).collect(),
                });
            }
            for dir in outside.into_iter().chain(temp.map(Into::into)) {
                options.push(OwnOption {
                    names: &[],
                    args: vec!["--add-dir".into(), dir],
                });
            }
        }
        CliFlavor::Command => {}
    }
    options
        .into_iter()
        .filter(|option| !option.names.iter().any(|name| given(name, extra)))
        .flat_map(|option| option.args)
        .collect()
}

/// Whether the user's arguments give option `name` (`--name`, `--name=…`, `-Xvalue`).
fn given(name: &str, extra: &[String]) -> bool {
    extra.iter().any(|arg| {
        arg == name
            || arg.strip_prefix(name).is_some_and(|rest| {
                rest.starts_with('=') || (!name.starts_with("--") && !rest.is_empty())
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::Workspaces;

    fn text(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn workspace(artifacts: Option<&str>) -> GoalWorkspace {
        Workspaces::new(
            Path::new("/w/{goal}"),
            artifacts.map(Path::new),
            Path::new("/"),
        )
        .for_goal("g")
    }

    #[test]
    fn claude_gets_json_output_and_the_policys_permission_mode() {
        let ws = workspace(None);
        let cases = [
            (Permissions::ReadOnly, vec!["--permission-mode", "dontAsk"]),
            (Permissions::Edit, vec!["--permission-mode", "acceptEdits"]),
            (Permissions::Full, vec!["--dangerously-skip-permissions"]),
        ];
        for (policy, flags) in cases {
            let mut want = vec!["--output-format", "json"];
            want.extend(flags);
            assert_eq!(
                text(own_options(CliFlavor::Claude, policy, Some(&ws), None, &[])),
                want
            );
        }
    }

    #[test]
    fn claude_may_write_an_artifacts_dir_outside_the_workspace_under_edit() {
        let ws = workspace(Some("/out"));
        assert_eq!(
            text(own_options(
                CliFlavor::Claude,
                Permissions::Edit,
                Some(&ws),
                None,
                &[]
            )),
            [
                "--output-format",
                "json",
                "--add-dir",
                "/out/g",
                "--permission-mode",
                "acceptEdits"
            ]
        );
    }

    #[test]
    fn codex_runs_in_the_workspace_outside_git_with_the_policys_sandbox() {
        let ws = workspace(Some("/out"));
        assert_eq!(
            text(own_options(
                CliFlavor::Codex,
                Permissions::Edit,
                Some(&ws),
                Some(Path::new("/tmp/porki-tmp-1")),
                &[]
            )),
            [
                "--skip-git-repo-check",
                "-C",
                "/w/g",
                "--json",
                "--sandbox",
                "workspace-write",
                "-c",
                "sandbox_workspace_write.exclude_slash_tmp=true",
                "--add-dir",
                "/out/g",
                "--add-dir",
                "/tmp/porki-tmp-1"
            ]
        );
        let read_only = text(own_options(
            CliFlavor::Codex,
            Permissions::ReadOnly,
            Some(&ws),
            None,
            &[],
        ));
        assert!(read_only.ends_with(&["--sandbox".into(), "read-only".into()]));
        let full = text(own_options(
            CliFlavor::Codex,
            Permissions::Full,
            None,
            None,
            &[],
        ));
        assert_eq!(
            full,
            [
                "--skip-git-repo-check",
                "--json",
                "--dangerously-bypass-approvals-and-sandbox"
            ]
        );
    }

    #[test]
    fn the_users_extra_arguments_replace_porkis_own() {
        let extra = vec![
            "--permission-mode=plan".to_string(),
            "--output-format".into(),
            "text".into(),
        ];
        assert!(own_options(CliFlavor::Claude, Permissions::Edit, None, None, &extra).is_empty());
        let extra = vec![
            "-sdanger-full-access".to_string(),
            "--cd".into(),
            "/x".into(),
        ];
        assert_eq!(
            text(own_options(
                CliFlavor::Codex,
                Permissions::Edit,
                Some(&workspace(None)),
                Some(Path::new("/t")),
                &extra
            )),
            [
                "--skip-git-repo-check",
                "--json",
                "-c",
                "sandbox_workspace_write.exclude_slash_tmp=true",
                "--add-dir",
                "/t"
            ]
        );
    }

    #[test]
    fn a_command_gets_no_options() {
        assert!(
            own_options(
                CliFlavor::Command,
                Permissions::Full,
                Some(&workspace(None)),
                None,
                &[]
            )
            .is_empty()
        );
    }
}
