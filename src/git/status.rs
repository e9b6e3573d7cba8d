//! Uncommitted changes: reading `git status --porcelain -z` (pure, [`parse_status`]) and
//! [`Git::dirty_files`]. An orchestration tells its caller when the checkout has changes its
//! tasks will not see, and a merge into the user's checkout refuses one with changes.

use std::path::Path;

use super::{Git, GitError, nul_fields};

/// One line of `git status --porcelain=v1 -z`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEntry {
    /// The two status letters (`XY`): index and work tree (`??` untracked, `UU` both modified).
    pub code: String,
    /// The path (for a rename or copy, the new one). An untracked directory ends in `/`.
    pub path: String,
    /// For a rename or copy, where it came from.
    pub from: Option<String>,
}

impl StatusEntry {
    /// Neither staged nor tracked: a new file git does not know (`??`).
    pub fn is_untracked(&self) -> bool {
        self.code == "??"
    }
}

/// Reads `git status --porcelain=v1 -z`: `XY path\0`, and for a rename or copy `XY to\0from\0`.
/// Fields that are not entries are skipped.
pub fn parse_status(output: &[u8]) -> Vec<StatusEntry> {
    let fields = nul_fields(output);
    let mut entries = Vec::new();
    let mut fields = fields.into_iter();
    while let Some(field) = fields.next() {
        if field.len() < 4 || !field.is_char_boundary(2) || field.as_bytes()[2] != b' ' {
            continue;
        }
        let code = field[..2].to_owned();
        let path = field[3..].to_owned();
        let from = if code.contains('R') || code.contains('C') { fields.next() } else { None };
        entries.push(StatusEntry { code, path, from });
    }
    entries
}

impl Git {
    /// The entries of `git status` in `repo`'s work tree: staged, unstaged and untracked (not
    /// ignored) changes, untracked directories as one entry ending in `/`.
    pub async fn status(&self, repo: &Path) -> Result<Vec<StatusEntry>, GitError> {
        let output = self
            .command(repo, ["status", "--porcelain=v1", "-z", "--untracked-files=normal", "--ignore-submodules=none"])
            .await?
            .ok()?;
        Ok(parse_status(&output.stdout))
    }

    /// The paths with uncommitted changes in `repo`'s work tree, untracked (not ignored) files
    /// included, sorted: empty when it is clean.
    pub async fn dirty_files(&self, repo: &Path) -> Result<Vec<String>, GitError> {
        let mut files: Vec<String> = self.status(repo).await?.into_iter().map(|entry| entry.path).collect();
        files.sort();
        files.dedup();
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn porcelain_entries_are_read_with_renames() {
        let output = b" M src/a.rs\0R  new name.rs\0old name.rs\0?? dir/\0UU both.txt\0A  weird\nname\0";
        let entries = parse_status(output);
        assert_eq!(entries.len(), 5, "{entries:?}");
        assert_eq!(entries[0], StatusEntry { code: " M".to_owned(), path: "src/a.rs".to_owned(), from: None });
        assert_eq!(
            entries[1],
            StatusEntry { code: "R ".to_owned(), path: "new name.rs".to_owned(), from: Some("old name.rs".to_owned()) }
        );
        assert!(entries[2].is_untracked());
        assert_eq!(entries[2].path, "dir/");
        assert_eq!(entries[3].code, "UU");
        assert_eq!(entries[4].path, "weird\nname");
        assert!(parse_status(b"").is_empty());
    }

    #[tokio::test]
    async fn dirty_files_lists_changes_and_untracked_files_but_not_ignored_ones() {
        let repo = Repo::new();
        repo.commit_file(".gitignore", "target/\n", "ignore");
        let git = test_git();
        assert!(git.dirty_files(repo.path()).await.expect("status").is_empty());
        std::fs::write(repo.path().join("README"), "changed\n").expect("write");
        std::fs::write(repo.path().join("new file.txt"), "new\n").expect("write");
        std::fs::create_dir(repo.path().join("target")).expect("mkdir");
        std::fs::write(repo.path().join("target/out"), "ignored\n").expect("write");
        assert_eq!(git.dirty_files(repo.path()).await.expect("status"), ["README", "new file.txt"]);
    }
}
