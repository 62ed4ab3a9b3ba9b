//! A call's private temp folder: codex under `--llm-permissions edit` may
//! write its workspace and nothing else of the machine, not `/tmp` nor the
//! system temp folder (the instructions and heartbeat files may live there),
//! yet the commands it runs (compilers, package managers, `mktemp`, test
//! runners) need a temp folder. Each such call gets its own, outside the
//! workspace, readable by porki's user only, as `TMPDIR`, `TMP` and `TEMP`;
//! it is removed when the call ends, however it ends.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// A folder `porki-tmp-<uuid>` (mode 0700) in the system temp folder, removed on drop.
#[derive(Debug)]
pub(super) struct PrivateTemp {
    path: PathBuf,
}

impl PrivateTemp {
    /// A new, empty folder in the system temp folder; it never reuses one that exists.
    pub(super) fn create() -> std::io::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("porki-tmp-{}", uuid::Uuid::new_v4().simple()));
        // `create`, not `create_all`: a name someone else made (or planted as a
        // symlink) is an error, never a folder shared with them.
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self { path })
    }

    /// Where it is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateTemp {
    fn drop(&mut self) {
        // Symlinks inside are removed, never followed.
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a CLI call's temp folder: remove it by hand");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_temp_folder_is_new_owner_only_and_gone_with_everything_in_it_on_drop() {
        let parent = std::env::temp_dir();
        let temp = PrivateTemp::create().unwrap();
        let path = temp.path().to_path_buf();
        assert_eq!(path.parent(), Some(parent.as_path()));
        assert!(
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("porki-tmp-")
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
        let outside = PrivateTemp::create().unwrap();
        assert_ne!(outside.path(), path);
        std::fs::write(outside.path().join("kept"), "x").unwrap();
        std::fs::create_dir_all(path.join("a/b")).unwrap();
        std::fs::write(path.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), path.join("link")).unwrap();
        drop(temp);
        assert!(!path.exists());
        assert!(
            outside.path().join("kept").exists(),
            "a symlink was followed"
        );
    }
}
