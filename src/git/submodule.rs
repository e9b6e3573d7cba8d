//! The submodules of a new worktree. `git worktree add` leaves them empty; each is initialised
//! (`git submodule update --init --recursive`), cloned from the main checkout's copy of it
//! (`<common git dir>/modules/<name>`) when there is one, so that it works offline and without
//! credentials — the clone's `origin` is then that local copy. Local paths need
//! `protocol.file.allow=always` in modern git (2.38.1 and later refuse them by default), given
//! for that command only. A submodule already initialised (a resumed worktree) is left as it is.

use std::path::Path;

use super::{Git, GitError, nul_fields};

/// A submodule as `.gitmodules` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submodule {
    pub name: String,
    /// Where it lives in the work tree.
    pub path: String,
    /// Where it is cloned from (may be relative to the superproject).
    pub url: Option<String>,
}

/// Reads `git config -z --file .gitmodules --get-regexp '^submodule\.'`: `key\nvalue\0` each.
pub fn parse_submodules(output: &[u8]) -> Vec<Submodule> {
    let mut submodules: Vec<Submodule> = Vec::new();
    for field in nul_fields(output) {
        let Some((key, value)) = field.split_once('\n') else { continue };
        let Some(rest) = key.strip_prefix("submodule.") else { continue };
        let Some((name, variable)) = rest.rsplit_once('.') else { continue };
        let index = match submodules.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                submodules.push(Submodule { name: name.to_owned(), path: String::new(), url: None });
                submodules.len() - 1
            }
        };
        match variable {
            "path" => submodules[index].path = value.to_owned(),
            "url" => submodules[index].url = Some(value.to_owned()),
            _ => {}
        }
    }
    submodules.retain(|s| !s.path.is_empty());
    submodules
}

/// Whether a submodule URL is a local path (which git refuses to clone from unless
/// `protocol.file.allow` says so).
pub fn is_local_url(url: &str) -> bool {
    url.starts_with('/') || url.starts_with("./") || url.starts_with("../") || url.starts_with("file:")
}

impl Git {
    /// Initialises every submodule of `worktree` that is not yet (see the module's
    /// documentation); a failure names the submodule.
    pub(super) async fn init_submodules(&self, common_dir: &Path, worktree: &Path) -> Result<(), GitError> {
        if !worktree.join(".gitmodules").is_file() {
            return Ok(());
        }
        let output =
            self.command(worktree, ["config", "-z", "--file", ".gitmodules", "--get-regexp", r"^submodule\."]).await?;
        if output.code > 1 {
            return Err(output.failed());
        }
        for submodule in parse_submodules(&output.stdout) {
            if worktree.join(&submodule.path).join(".git").exists() {
                continue;
            }
            let mut args: Vec<String> = Vec::new();
            let local_copy = common_dir.join("modules").join(&submodule.name);
            let from_local_copy = local_copy.join("HEAD").is_file();
            if from_local_copy {
                args.extend(["-c".to_owned(), format!("submodule.{}.url={}", submodule.name, local_copy.display())]);
            }
            if from_local_copy || submodule.url.as_deref().is_some_and(is_local_url) {
                args.extend(["-c", "protocol.file.allow=always"].map(str::to_owned));
            }
            args.extend(["submodule", "update", "--init", "--recursive", "--quiet", "--"].map(str::to_owned));
            args.push(submodule.path.clone());
            let updated = self.command(worktree, &args).await?;
            if updated.code != 0 {
                return Err(GitError::Failed {
                    command: updated.command.clone(),
                    message: format!(
                        "submodule {} (at {}) could not be initialised: {}",
                        submodule.name,
                        submodule.path,
                        super::tail(updated.stderr.trim(), super::MESSAGE_TAIL)
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn gitmodules_are_read() {
        let output = b"submodule.lib.path\nvendor/lib\0submodule.lib.url\n../lib.git\0submodule.a.b.path\nx\0submodule.nopath.url\nu\0";
        let submodules = parse_submodules(output);
        assert_eq!(
            submodules,
            [
                Submodule { name: "lib".to_owned(), path: "vendor/lib".to_owned(), url: Some("../lib.git".to_owned()) },
                Submodule { name: "a.b".to_owned(), path: "x".to_owned(), url: None },
            ]
        );
        assert!(is_local_url("/srv/x.git") && is_local_url("../x") && is_local_url("file:///x"));
        assert!(!is_local_url("https://example.com/x.git") && !is_local_url("git@example.com:x.git"));
    }

    /// A repository with one commit that adds `library` (a repository beside it, one file) as
    /// the submodule `vendor/lib`.
    fn repo_with_submodule() -> (Repo, std::path::PathBuf) {
        let repo = Repo::new();
        let library = repo.sibling("library");
        std::fs::create_dir(&library).expect("mkdir");
        run_git(&library, &["init", "--quiet", "--initial-branch=main"]);
        commit_file_in(&library, "lib.txt", "library\n", "lib");
        repo.git(&["submodule", "add", "--quiet", library.to_str().expect("utf-8"), "vendor/lib"]);
        repo.git(&["commit", "--quiet", "-m", "add the submodule"]);
        (repo, library)
    }

    #[tokio::test]
    async fn a_worktree_gets_its_submodules_even_offline() {
        let (repo, library) = repo_with_submodule();
        let start = repo.git(&["rev-parse", "HEAD"]);
        // The submodule's origin goes away: only the main checkout's copy is left.
        std::fs::remove_dir_all(&library).expect("rm");
        let git = test_git();
        let path = repo.sibling("worktrees").join("sub");
        let made = git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/sub", &start).await.expect("made");
        assert_eq!(
            std::fs::read_to_string(path.join("vendor/lib/lib.txt")).expect("the submodule's file"),
            "library\n"
        );
        // A change inside the submodule, committed there, and its pointer committed by commit_all.
        let inner = commit_file_in(&path.join("vendor/lib"), "lib.txt", "changed\n", "inner change");
        let result = git.commit_all(&path, "task sub").await.expect("commit");
        assert_ne!(result, made.head);
        let pointer = run_git(&path, &["rev-parse", &format!("{result}:vendor/lib")]);
        assert_eq!(pointer, inner);
        // Resumed: the submodule is left as it is.
        let again =
            git.ensure_worktree(repo.path(), &path, "claude-worker/o/tasks/sub", &start).await.expect("resumed");
        assert!(again.resumed);
        assert_eq!(run_git(&path.join("vendor/lib"), &["rev-parse", "HEAD"]), inner);
        git.remove_worktree(repo.path(), &path).await.expect("removed with its submodule");
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_submodule_that_cannot_be_cloned_is_named() {
        let (repo, library) = repo_with_submodule();
        // Neither the origin nor the main checkout's copy is there.
        std::fs::remove_dir_all(&library).expect("rm");
        std::fs::remove_dir_all(repo.path().join(".git/modules")).expect("rm");
        let error = test_git()
            .ensure_worktree(repo.path(), &repo.sibling("wt"), "claude-worker/o/tasks/x", "HEAD")
            .await
            .expect_err("no source");
        assert!(error.to_string().contains("submodule vendor/lib"), "{error}");
    }
}
