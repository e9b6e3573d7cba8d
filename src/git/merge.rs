//! Merging commits without a worktree ([`Git::merge_commits`]): the start of a task with several
//! dependencies, and the integration branch of an orchestration. `git merge-tree --write-tree`
//! merges two commits into a tree in the object store, conflict markers and all, touching no
//! worktree, index or ref; `git commit-tree` makes the commit. Reading merge-tree's answer is
//! pure ([`parse_merge_tree`]).

use std::path::Path;

use super::{Git, GitError, nul_fields};

/// The merge of several commits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// The merge commit (or the one input that contains all the others).
    pub commit: String,
    /// The files whose merge conflicted (their conflict markers are in `commit`'s tree), sorted,
    /// without duplicates; empty for a clean merge.
    pub conflicts: Vec<String>,
}

/// What `git merge-tree --write-tree -z --name-only --no-messages` answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeTree {
    /// The merged tree (with conflict markers in the conflicted files).
    pub tree: String,
    /// The conflicted files, each once, as git listed them.
    pub conflicts: Vec<String>,
}

/// Reads `git merge-tree --write-tree -z --name-only` output: the tree's id, then the conflicted
/// files (each NUL-terminated), then (when messages are not turned off) an empty field and the
/// messages, which are ignored. `None` when there is no tree id.
pub fn parse_merge_tree(output: &[u8]) -> Option<MergeTree> {
    let mut fields = nul_fields(output).into_iter();
    let tree = fields.next()?;
    if tree.len() < 40 || !tree.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut conflicts: Vec<String> = fields.take_while(|f| !f.is_empty()).collect();
    conflicts.dedup();
    Some(MergeTree { tree, conflicts })
}

impl Git {
    /// Merges `commits` into one commit without touching any worktree or ref. One commit (or
    /// several naming the same) is its own result. Inputs contained in another input are left
    /// out, so a chain of dependencies merges cleanly into its last commit. The rest are merged
    /// in the order given, one by one (`git merge-tree --write-tree`); a step that conflicts
    /// keeps its tree, conflict markers in the files, which are listed in
    /// [`Merged::conflicts`], and the next steps go on from it. The result's parents are the
    /// inputs left.
    ///
    /// Deterministic: the same inputs, in the same order, with the same message and identity,
    /// give the same commit — its dates are those of the newest input — so a merge made again
    /// after a crash is the same commit as the one that was lost.
    pub async fn merge_commits(&self, repo: &Path, commits: &[String], message: &str) -> Result<Merged, GitError> {
        if commits.is_empty() {
            return Err(GitError::Failed { command: "merge".to_owned(), message: "no commits to merge".to_owned() });
        }
        let mut shas: Vec<String> = Vec::with_capacity(commits.len());
        for commit in commits {
            let sha = self.resolve_commit(repo, commit).await?;
            if !shas.contains(&sha) {
                shas.push(sha);
            }
        }
        if shas.len() > 1 {
            let output = self
                .command(repo, ["merge-base", "--independent"].into_iter().chain(shas.iter().map(String::as_str)))
                .await?
                .ok()?;
            let independent = output.stdout_text();
            let independent: Vec<&str> = independent.lines().map(str::trim).collect();
            shas.retain(|sha| independent.contains(&sha.as_str()));
        }
        let [first, rest @ ..] = shas.as_slice() else {
            return Err(GitError::Failed {
                command: "git merge-base --independent".to_owned(),
                message: "no commit left".to_owned(),
            });
        };
        if rest.is_empty() {
            return Ok(Merged { commit: first.clone(), conflicts: Vec::new() });
        }
        let date = self.newest_commit_date(repo, &shas).await?;
        let identity = self.identity_config(repo).await?;
        let mut current = first.clone();
        let mut conflicts = Vec::new();
        for (step, next) in rest.iter().enumerate() {
            let merged = self.merge_tree(repo, &current, next).await?;
            conflicts.extend(merged.conflicts);
            let parents: Vec<&String> =
                if step + 1 == rest.len() { shas.iter().collect() } else { vec![&current, next] };
            current = self.commit_tree(repo, &merged.tree, &parents, message, &identity, &date).await?;
        }
        conflicts.sort();
        conflicts.dedup();
        Ok(Merged { commit: current, conflicts })
    }

    /// Merges two commits into a tree (`git merge-tree --write-tree`): clean or with conflicts.
    pub(super) async fn merge_tree(&self, repo: &Path, ours: &str, theirs: &str) -> Result<MergeTree, GitError> {
        let output = self
            .command(repo, ["merge-tree", "--write-tree", "-z", "--name-only", "--no-messages", ours, theirs])
            .await?;
        if output.code != 0 && output.code != 1 {
            return Err(output.failed());
        }
        let merged = parse_merge_tree(&output.stdout).ok_or_else(|| output.failed())?;
        if output.code == 1 && merged.conflicts.is_empty() {
            // A conflict git did not attach to a file (it always does today): not silently clean.
            return Err(GitError::Failed {
                command: output.command,
                message: "the merge conflicts, but git named no file".to_owned(),
            });
        }
        Ok(merged)
    }

    /// The committer date of the newest of `commits`, as `<seconds> +0000`.
    async fn newest_commit_date(&self, repo: &Path, commits: &[String]) -> Result<String, GitError> {
        let output = self
            .command(repo, ["log", "--no-walk", "--format=%ct"].into_iter().chain(commits.iter().map(String::as_str)))
            .await?
            .ok()?;
        let newest = output.stdout_text().lines().filter_map(|line| line.trim().parse::<i64>().ok()).max().unwrap_or(0);
        Ok(format!("{newest} +0000"))
    }

    /// `git commit-tree`: a commit of `tree` with `parents`, dated `date`, never signed (no
    /// prompt can hang it, and the same inputs give the same commit).
    async fn commit_tree(
        &self,
        repo: &Path,
        tree: &str,
        parents: &[&String],
        message: &str,
        identity: &[String],
        date: &str,
    ) -> Result<String, GitError> {
        let mut args: Vec<String> = identity.to_vec();
        args.extend(["-c".to_owned(), "commit.gpgSign=false".to_owned(), "commit-tree".to_owned(), tree.to_owned()]);
        for parent in parents {
            args.push("-p".to_owned());
            args.push((*parent).clone());
        }
        args.push("-m".to_owned());
        args.push(message.to_owned());
        let env = [("GIT_AUTHOR_DATE", date), ("GIT_COMMITTER_DATE", date)];
        let output = self.command_with_env(repo, &args, &env).await?.ok()?;
        Ok(output.stdout_text().trim().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn merge_tree_answers_are_read() {
        let tree = "a".repeat(40);
        let clean = parse_merge_tree(format!("{tree}\0").as_bytes()).expect("clean");
        assert_eq!(clean, MergeTree { tree: tree.clone(), conflicts: vec![] });
        let conflicted = parse_merge_tree(format!("{tree}\0a.txt\0dir/b c.txt\0\0").as_bytes()).expect("conflicted");
        assert_eq!(conflicted.conflicts, ["a.txt", "dir/b c.txt"]);
        // With messages: an empty field, then counts, paths and messages.
        let with_messages =
            parse_merge_tree(format!("{tree}\0a.txt\0\x001\0a.txt\0CONFLICT (contents)\0Merge conflict\0").as_bytes())
                .expect("with messages");
        assert_eq!(with_messages.conflicts, ["a.txt"]);
        assert_eq!(parse_merge_tree(b""), None);
        assert_eq!(parse_merge_tree(b"fatal: oops\0"), None);
    }

    /// A repository with `branches` made from the first commit, each writing its own file.
    fn parallel_branches(repo: &Repo, files: &[&str]) -> Vec<String> {
        let base = repo.git(&["rev-parse", "HEAD"]);
        files
            .iter()
            .map(|file| {
                repo.switch(&format!("b-{file}"), Some(&base));
                repo.commit_file(file, &format!("{file}\n"), &format!("add {file}"))
            })
            .collect()
    }

    #[tokio::test]
    async fn three_parallel_branches_merge_cleanly_with_every_input_a_parent() {
        let repo = Repo::new();
        let heads = parallel_branches(&repo, &["a.txt", "b.txt", "c.txt"]);
        repo.switch("main", None);
        let before = repo.git(&["for-each-ref"]);
        let status_before = repo.git(&["status", "--porcelain"]);
        let git = test_git();
        let merged = git.merge_commits(repo.path(), &heads, "merge a, b, c").await.expect("merge");
        assert!(merged.conflicts.is_empty(), "{merged:?}");
        for file in ["a.txt", "b.txt", "c.txt", "README"] {
            assert!(!show(repo.path(), &merged.commit, file).is_empty(), "{file}");
        }
        let parents = repo.git(&["show", "-s", "--format=%P", &merged.commit]);
        assert_eq!(parents.split(' ').collect::<Vec<_>>(), heads);
        assert_eq!(
            repo.git(&["show", "-s", "--format=%an <%ae>", &merged.commit]),
            "claude-worker <claude-worker@localhost>"
        );
        // Nothing else moved.
        assert_eq!(repo.git(&["for-each-ref"]), before);
        assert_eq!(repo.git(&["status", "--porcelain"]), status_before);
        // Deterministic: the same merge again is the same commit.
        let again = git.merge_commits(repo.path(), &heads, "merge a, b, c").await.expect("merge");
        assert_eq!(again, merged);
    }

    #[tokio::test]
    async fn one_commit_is_its_own_merge() {
        let repo = Repo::new();
        let head = repo.git(&["rev-parse", "HEAD"]);
        let merged =
            test_git().merge_commits(repo.path(), &["main".to_owned(), head.clone()], "m").await.expect("merge");
        assert_eq!(merged, Merged { commit: head, conflicts: vec![] });
        let error = test_git().merge_commits(repo.path(), &["nope".to_owned()], "m").await.expect_err("unknown");
        assert_eq!(error, GitError::UnknownRevision { rev: "nope".to_owned() });
    }

    #[tokio::test]
    async fn the_same_lines_edited_twice_conflict_with_markers_in_the_tree() {
        let repo = Repo::new();
        repo.commit_file("shared.txt", "one\ntwo\nthree\n", "shared");
        let base = repo.git(&["rev-parse", "HEAD"]);
        repo.switch("left", Some(&base));
        repo.commit_file("shared.txt", "one\nLEFT\nthree\n", "left");
        let left = repo.commit_file("left-only.txt", "left\n", "left only");
        repo.switch("right", Some(&base));
        let right = repo.commit_file("shared.txt", "one\nRIGHT\nthree\n", "right");
        repo.switch("third", Some(&base));
        let third = repo.commit_file("third.txt", "third\n", "third");
        let merged = test_git()
            .merge_commits(repo.path(), &[left.clone(), right.clone(), third.clone()], "merge")
            .await
            .expect("a conflicted merge is a result");
        assert_eq!(merged.conflicts, ["shared.txt"]);
        let shared = show(repo.path(), &merged.commit, "shared.txt");
        assert!(shared.contains("<<<<<<<") && shared.contains("LEFT") && shared.contains("RIGHT"), "{shared}");
        // The steps after the conflict went on from it.
        assert_eq!(show(repo.path(), &merged.commit, "third.txt"), "third\n");
        assert_eq!(show(repo.path(), &merged.commit, "left-only.txt"), "left\n");
        let parents = repo.git(&["show", "-s", "--format=%P", &merged.commit]);
        assert_eq!(parents, format!("{left} {right} {third}"));
    }

    #[tokio::test]
    async fn an_input_contained_in_another_is_left_out() {
        let repo = Repo::new();
        let first = repo.commit_file("a.txt", "a\n", "a");
        let second = repo.commit_file("b.txt", "b\n", "b");
        let git = test_git();
        let merged = git.merge_commits(repo.path(), &[first.clone(), second.clone()], "m").await.expect("merge");
        assert_eq!(merged, Merged { commit: second.clone(), conflicts: vec![] });
        // A chain and a parallel branch: the chain's ancestor is not a parent.
        repo.switch("side", Some(&first));
        let side = repo.commit_file("c.txt", "c\n", "c");
        let merged =
            git.merge_commits(repo.path(), &[first.clone(), second.clone(), side.clone()], "m").await.expect("merge");
        assert!(merged.conflicts.is_empty());
        assert_eq!(repo.git(&["show", "-s", "--format=%P", &merged.commit]), format!("{second} {side}"));
    }
}
