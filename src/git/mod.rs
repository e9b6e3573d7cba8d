//! Placeholder until the git module lands (helper-git): only what the plumbing needs.

/// `claude-worker/<orchestration>[/<identifier>]`.
pub fn branch_name(orchestration: &str, identifier: Option<&str>) -> String {
    match identifier {
        Some(identifier) => format!("claude-worker/{orchestration}/{identifier}"),
        None => format!("claude-worker/{orchestration}"),
    }
}

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git is not here yet")]
    GitMissing,
}

pub struct RepoInfo {
    pub top: PathBuf,
    pub common_dir: PathBuf,
    pub subdir: PathBuf,
}

#[derive(Clone, Debug, Default)]
pub struct Git {}

impl Git {
    pub fn new() -> Git {
        Git {}
    }
    pub async fn discover(&self, _dir: &Path) -> Result<RepoInfo, GitError> {
        Err(GitError::GitMissing)
    }
    pub async fn resolve_commit(&self, _repo: &Path, _rev: &str) -> Result<String, GitError> {
        Err(GitError::GitMissing)
    }
    pub async fn dirty_files(&self, _repo: &Path) -> Result<Vec<String>, GitError> {
        Err(GitError::GitMissing)
    }
}

pub struct Merged {
    pub commit: String,
    pub conflicts: Vec<String>,
}
pub struct Worktree {
    pub path: PathBuf,
    pub branch: String,
    pub head: String,
    pub resumed: bool,
}
pub struct RepoLock {}
pub struct CheckoutMerge {}
impl std::fmt::Display for CheckoutMerge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("merged")
    }
}
impl Git {
    pub async fn merge_commits(&self, _repo: &Path, _c: &[String], _m: &str) -> Result<Merged, GitError> {
        Err(GitError::GitMissing)
    }
    pub async fn ensure_worktree(&self, _r: &Path, _p: &Path, _b: &str, _s: &str) -> Result<Worktree, GitError> {
        Err(GitError::GitMissing)
    }
    pub async fn commit_all(&self, _w: &Path, _m: &str) -> Result<String, GitError> {
        Err(GitError::GitMissing)
    }
    pub async fn diffstat(&self, _r: &Path, _f: &str, _t: &str) -> Result<String, GitError> {
        Err(GitError::GitMissing)
    }
    pub async fn set_branch(&self, _r: &Path, _b: &str, _c: &str) -> Result<(), GitError> {
        Err(GitError::GitMissing)
    }
    pub async fn remove_worktree(&self, _r: &Path, _p: &Path) -> Result<(), GitError> {
        Err(GitError::GitMissing)
    }
    pub async fn merge_into_checkout(&self, _r: &Path, _b: &str) -> Result<CheckoutMerge, GitError> {
        Err(GitError::GitMissing)
    }
    pub async fn lock(&self, _c: &Path) -> Result<RepoLock, GitError> {
        Err(GitError::GitMissing)
    }
}
