//! The system prompts of an attempt, handed to the CLI through private files rather than its
//! argv: every user of the machine can read a process's arguments (`ps`, `/proc/<pid>/cmdline`),
//! and a system prompt may hold what only its author should see. The CLI (2.1.331) reads
//! `--system-prompt-file PATH` and `--append-system-prompt-file PATH`.
//!
//! Each attempt gets a directory of its own in the temporary directory, created 0700 by `mkdir`
//! (which fails on anything already there, a symlink included) under a random name; the files
//! in it are created 0600 with `O_EXCL` and `O_NOFOLLOW`. The directory is removed when the
//! attempt ends, however it ends ([`PromptFiles`] removes it when dropped); if its server is
//! killed first, the executor that recovers the attempt removes it ([`remove_leftovers`]), as
//! its name carries the attempt's tag.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;

use nix::fcntl::OFlag;

/// The files of one attempt; the directory goes when this is dropped.
#[derive(Debug)]
pub struct PromptFiles {
    /// Held for its `Drop`, which removes the directory and the files.
    #[cfg_attr(not(test), expect(dead_code, reason = "held for its Drop"))]
    dir: tempfile::TempDir,
    /// The arguments that name the files, to give the CLI.
    pub args: Vec<String>,
}

impl PromptFiles {
    /// Writes the prompts that are set; `None` when neither is. `tag` is the attempt's run tag.
    pub fn write(tag: &str, system: Option<&str>, append: Option<&str>) -> std::io::Result<Option<PromptFiles>> {
        if system.is_none() && append.is_none() {
            return Ok(None);
        }
        // By mkdir, under a random suffix, with mode 0700 from the start (not changed after).
        let dir = tempfile::Builder::new()
            .prefix(&prefix_of(tag))
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()?;
        let mut args = Vec::new();
        for (flag, name, text) in [
            ("--system-prompt-file", "system-prompt.md", system),
            ("--append-system-prompt-file", "append-system-prompt.md", append),
        ] {
            let Some(text) = text else { continue };
            let path = dir.path().join(name);
            write_private(&path, text)?;
            // One `--flag=value` argument, like the others: a path is never read as a flag.
            args.push(format!("{flag}={}", path.display()));
        }
        Ok(Some(PromptFiles { dir, args }))
    }

    /// The attempt's directory.
    #[cfg(test)]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the prompt directories an attempt tagged `tag` left behind (its server died before it
/// could): only directories, not symlinks, owned by this user. Returns how many went.
pub fn remove_leftovers(tag: &str) -> usize {
    let prefix = prefix_of(tag);
    let uid = nix::unistd::getuid().as_raw();
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return 0 };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)))
        .filter(|e| std::fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_dir() && m.uid() == uid))
        .filter(|e| std::fs::remove_dir_all(e.path()).is_ok())
        .count()
}

/// The start of an attempt's directory name: its tag with everything but letters and digits
/// made `-`, then a dot before the random part.
fn prefix_of(tag: &str) -> String {
    let safe: String = tag.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("claude-worker-prompt-{safe}.")
}

/// Creates `path` for this user only, never through a symlink nor over an existing file.
fn write_private(path: &PathBuf, text: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_go_to_private_files_that_go_away() {
        let tag = format!("host:{}:1/7/3", std::process::id());
        assert!(PromptFiles::write(&tag, None, None).expect("nothing to write").is_none());
        let files = PromptFiles::write(&tag, Some("- be brief"), Some("secret")).expect("written").expect("files");
        let dir = files.dir().to_owned();
        assert_eq!(std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777, 0o700);
        let system = dir.join("system-prompt.md");
        assert_eq!(std::fs::metadata(&system).expect("file").permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&system).expect("read"), "- be brief");
        assert_eq!(std::fs::read_to_string(dir.join("append-system-prompt.md")).expect("read"), "secret");
        assert_eq!(
            files.args,
            [
                format!("--system-prompt-file={}", system.display()),
                format!("--append-system-prompt-file={}", dir.join("append-system-prompt.md").display()),
            ]
        );
        // Never through a symlink, never over a file that is there.
        let link = dir.join("link");
        std::os::unix::fs::symlink(dir.join("elsewhere"), &link).expect("symlink");
        assert!(write_private(&link, "x").is_err());
        assert!(!dir.join("elsewhere").exists(), "the symlink was not followed");
        assert!(write_private(&system, "x").is_err());
        drop(files);
        assert!(!dir.exists(), "removed with the attempt");
    }

    #[test]
    fn a_dead_attempts_directory_is_found_by_its_tag() {
        let tag = format!("host:{}:2/8/1", std::process::id());
        let files = PromptFiles::write(&tag, Some("s"), None).expect("written").expect("files");
        let dir = files.dir().to_owned();
        // Its server dies: nothing removes it but recovery.
        std::mem::forget(files);
        assert!(dir.exists());
        assert_eq!(remove_leftovers(&format!("host:{}:2/8/11", std::process::id())), 0, "another attempt's tag");
        assert_eq!(remove_leftovers(&tag), 1);
        assert!(!dir.exists());
    }
}
