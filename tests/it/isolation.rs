//! Isolation as a user meets it, with real git in a repository each test makes: tasks in
//! worktrees of their own, merged along the graph, the user's checkout untouched until `merge`;
//! conflicting results handed to the next task (or failing it, when asked), conflicting sinks
//! resolved by an added task; a task in a subdirectory, a repository with a submodule, a dirty
//! checkout reported and not used. The fake CLI edits files as its prompt says (`@append`,
//! `@write`, `@commit`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Env, task_of, text};

/// Runs git in `dir` with a fixed identity and none of the developer's configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .expect("run git");
    assert!(output.status.success(), "git {args:?} in {}: {}", dir.display(), text(&output.stderr));
    text(&output.stdout).trim_end().to_owned()
}

/// A repository with one commit on `main`: `README` and `shared.txt` (five lines).
fn repository(env: &Env) -> PathBuf {
    let repo = env.work.join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir repo");
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README"), "a project\n").expect("write README");
    std::fs::write(repo.join("shared.txt"), "one\ntwo\nthree\nfour\nfive\n").expect("write shared.txt");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    repo
}

/// The files of a commit.
fn files_of(repo: &Path, commit: &str) -> Vec<String> {
    git(repo, &["ls-tree", "-r", "--name-only", commit]).lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn parallel_tasks_merge_into_their_dependent_and_the_integration_branch_and_the_checkout_waits_for_merge() {
    let env = Env::new();
    let repo = repository(&env);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let client = env.server_in(&repo).await;
    let tasks = json!([
        { "identifier": "auth", "execution_prompt": "refactor auth @append=auth.txt:auth refactored" },
        { "identifier": "api", "execution_prompt": "refactor the api\n@append=api.txt:api refactored\n@commit=api: my own commit" },
        { "identifier": "db", "execution_prompt": "refactor the db layer @append=db.txt:db refactored" },
        { "identifier": "tests", "execution_prompt": "run the tests @append=tests.txt:all green",
          "depends_on": ["auth", "api", "db"] },
    ]);
    let created =
        client.ok("create_orchestration", json!({ "name": "refactor", "isolation": "worktree", "tasks": tasks })).await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let done = client.wait_orchestration(id, 90.0).await;
    assert_eq!(done["status"], "completed", "{done}");

    // Every task ran in a worktree of its own, not in the checkout.
    let cwds: Vec<String> = env.starts().iter().map(|s| s["cwd"].as_str().expect("cwd").to_owned()).collect::<Vec<_>>();
    assert_eq!(cwds.len(), 4, "{cwds:?}");
    for cwd in &cwds {
        assert!(!cwd.starts_with(repo.to_str().expect("utf-8")), "a task ran in the checkout: {cwd}");
    }
    let unique: std::collections::HashSet<&String> = cwds.iter().collect();
    assert_eq!(unique.len(), 4, "one worktree per task: {cwds:?}");

    // The dependent started from the merge of all three, and its result holds everything.
    let status = client.ok("get_status", json!({ "task": "tests" })).await;
    let isolation = &status["isolation"];
    assert_eq!(isolation["branch"], format!("claude-worker/{id}-refactor/tasks/tests"), "{status}");
    let result = isolation["commit"].as_str().expect("a result commit");
    let files = files_of(&repo, result);
    for file in ["auth.txt", "api.txt", "db.txt", "tests.txt", "README", "shared.txt"] {
        assert!(files.contains(&file.to_owned()), "{file} missing from {files:?}");
    }
    assert!(isolation["diffstat"].as_str().is_some_and(|d| d.contains("1 file changed")), "{status}");
    // Claude's own commit is kept on its branch, under the result commit.
    let api = client.ok("get_status", json!({ "task": "api" })).await;
    let api_commit = api["isolation"]["commit"].as_str().expect("api's result");
    assert_eq!(git(&repo, &["log", "-1", "--format=%s", api_commit]), "api: my own commit");
    // The dependent was told what each dependency left: its result commit among its results.
    let prompt = env
        .starts()
        .into_iter()
        .filter_map(|s| std::fs::read_to_string(s["prompt_path"].as_str()?).ok())
        .find(|p| p.starts_with("run the tests"))
        .expect("the dependent's prompt");
    assert!(prompt.contains(api_commit), "the result commit of api reaches its dependent: {prompt}");

    // The checkout is as it was: same commit, nothing new, nothing changed.
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head);
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert!(!repo.join("auth.txt").exists());

    // The integration branch holds everything; completed tasks' worktrees are gone.
    let orchestration = client.ok("get_status", json!({ "orchestration_id": id })).await;
    let integration = &orchestration["isolation"];
    assert_eq!(integration["integration"], "done", "{orchestration}");
    assert_eq!(integration["branch"], format!("claude-worker/{id}-refactor/integration"));
    let branch_head = git(&repo, &["rev-parse", &format!("claude-worker/{id}-refactor/integration")]);
    assert_eq!(integration["commit"].as_str(), Some(branch_head.as_str()));
    assert!(files_of(&repo, &branch_head).contains(&"tests.txt".to_owned()));
    for cwd in &cwds {
        assert!(!Path::new(cwd).exists(), "the worktree {cwd} of a completed task was left");
    }
    // Branches stay.
    assert!(git(&repo, &["branch", "--list", "claude-worker/*"]).contains("tests"));

    // `merge` brings it into the user's branch.
    let merged = env.inspect(&["merge", &id.to_string()]).await;
    assert!(merged.status.success(), "{}", text(&merged.stderr));
    assert!(repo.join("tests.txt").exists() && repo.join("auth.txt").exists());
    assert_eq!(git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]), "main");
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn conflicting_results_are_resolved_by_the_dependent_or_fail_it_when_asked() {
    let env = Env::new();
    let repo = repository(&env);
    let client = env.server_in(&repo).await;
    // Both rewrite the same line of shared.txt.
    let tasks = |on_conflict: &str| {
        json!([
            { "identifier": "left", "execution_prompt": "@write=shared.txt:left side" },
            { "identifier": "right", "execution_prompt": "@write=shared.txt:right side" },
            { "identifier": "join", "execution_prompt": "join them @append=joined.txt:joined",
              "depends_on": ["left", "right"], "on_conflict": on_conflict },
        ])
    };
    let created = client
        .ok("create_orchestration", json!({ "name": "resolving", "isolation": "worktree", "tasks": tasks("resolve") }))
        .await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let done = client.wait_orchestration(id, 90.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let join = client.ok("get_status", json!({ "task": "join" })).await;
    assert_eq!(join["isolation"]["conflicts"], json!(["shared.txt"]), "{join}");
    // Its prompt began with the conflicted files and the instruction to resolve them.
    let prompt = env
        .starts()
        .into_iter()
        .filter_map(|s| std::fs::read_to_string(s["prompt_path"].as_str()?).ok())
        .find(|p| p.contains("join them"))
        .expect("the dependent's prompt");
    let conflicts_at = prompt.find("- `shared.txt`").expect("the conflicted file is listed");
    assert!(conflicts_at < prompt.find("join them").expect("the task"), "listed before the task: {prompt}");
    assert!(prompt.contains("resolve the conflict markers"), "{prompt}");
    let result = join["isolation"]["commit"].as_str().expect("result");
    let shared = git(&repo, &["show", &format!("{result}:shared.txt")]);
    assert!(!shared.contains("<<<<<<<"), "the fake resolved the markers: {shared}");
    assert!(shared.contains("left side") && shared.contains("right side"), "{shared}");

    let created = client
        .ok("create_orchestration", json!({ "name": "failing", "isolation": "worktree", "tasks": tasks("fail") }))
        .await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let failed = client.wait_orchestration(id, 90.0).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let join = task_of(&failed, "join");
    assert_eq!(join["error"]["kind"], "merge_conflict", "{failed}");
    let message = join["error"]["message"].as_str().expect("message");
    assert!(message.contains("shared.txt") && message.contains("left") && message.contains("right"), "{message}");
    // Nothing integrated for a failed orchestration.
    let orchestration = client.ok("get_status", json!({ "orchestration_id": id })).await;
    assert_eq!(orchestration["isolation"]["integration"], "abandoned", "{orchestration}");
}

#[tokio::test]
async fn conflicting_sinks_get_a_task_that_resolves_them() {
    let env = Env::new();
    let repo = repository(&env);
    let client = env.server_in(&repo).await;
    let tasks = json!([
        { "identifier": "left", "execution_prompt": "@write=shared.txt:left side", "model": "opus" },
        { "identifier": "right", "execution_prompt": "@write=shared.txt:right side", "model": "opus" },
    ]);
    let created =
        client.ok("create_orchestration", json!({ "name": "sinks", "isolation": "worktree", "tasks": tasks })).await;
    let id = created["orchestration_id"].as_i64().expect("id");
    let done = client.wait_orchestration(id, 90.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let resolver = task_of(&done, "resolve_integration");
    assert_eq!(resolver["status"], "completed", "{done}");
    // It worked as the tasks it resolved did.
    let resolver = client.ok("get_status", json!({ "task": format!("#{}", resolver["task_id"]) })).await;
    assert_eq!(resolver["model"], "opus", "{resolver}");
    let orchestration = client.ok("get_status", json!({ "orchestration_id": id })).await;
    assert_eq!(orchestration["isolation"]["integration"], "done", "{orchestration}");
    let integrated = orchestration["isolation"]["commit"].as_str().expect("integration commit");
    let shared = git(&repo, &["show", &format!("{integrated}:shared.txt")]);
    assert!(!shared.contains("<<<<<<<") && shared.contains("left side") && shared.contains("right side"), "{shared}");
}

#[tokio::test]
async fn a_task_in_a_subdirectory_runs_in_the_same_place_of_its_worktree() {
    let env = Env::new();
    let repo = repository(&env);
    std::fs::create_dir_all(repo.join("backend/src")).expect("mkdir");
    std::fs::write(repo.join("backend/src/lib.rs"), "// lib\n").expect("write");
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "backend"]);
    let client = env.server_in(&repo).await;
    let created = client
        .create(
            "backend",
            "@append=notes.txt:in the backend",
            json!({ "isolation": "worktree", "working_directory": repo.join("backend").display().to_string() }),
        )
        .await;
    let status = client.wait_task(&format!("#{}", created["task_id"]), 60.0).await;
    assert_eq!(status["status"], "completed", "{status}");
    let cwd = env.starts()[0]["cwd"].as_str().expect("cwd").to_owned();
    assert!(cwd.ends_with("/backend"), "{cwd}");
    let commit = status["isolation"]["commit"].as_str().expect("result");
    assert!(files_of(&repo, commit).contains(&"backend/notes.txt".to_owned()));
}

#[tokio::test]
async fn a_dirty_checkout_is_reported_and_not_used() {
    let env = Env::new();
    let repo = repository(&env);
    std::fs::write(repo.join("README"), "changed by hand\n").expect("write");
    std::fs::write(repo.join("scratch.txt"), "mine\n").expect("write");
    let client = env.server_in(&repo).await;
    let created = client.create("look", "@append=seen.txt:seen", json!({ "isolation": "worktree" })).await;
    let message = created["message"].as_str().expect("message");
    assert!(message.contains("uncommitted changes") && message.contains("README"), "{message}");
    let status = client.wait_task(&format!("#{}", created["task_id"]), 60.0).await;
    let commit = status["isolation"]["commit"].as_str().expect("result");
    assert_eq!(git(&repo, &["show", &format!("{commit}:README")]), "a project");
    assert!(!files_of(&repo, commit).contains(&"scratch.txt".to_owned()));
    // The checkout keeps its changes.
    assert_eq!(std::fs::read_to_string(repo.join("README")).expect("read"), "changed by hand\n");
}

#[tokio::test]
async fn isolation_outside_a_repository_is_refused_with_what_to_do() {
    let env = Env::new();
    let plain = env.work.join("plain");
    std::fs::create_dir_all(&plain).expect("mkdir");
    let client = env.server_in(&plain).await;
    let refused = client
        .err("create_task", json!({ "task_identifier": "x", "execution_prompt": "x", "isolation": "worktree" }))
        .await;
    assert!(refused.contains("git"), "{refused}");
    assert_eq!(env.sql_count("SELECT count(*) FROM tasks"), 0, "nothing stored");
    let refused = client
        .err("create_task", json!({ "task_identifier": "x", "execution_prompt": "x", "isolation": "sandbox" }))
        .await;
    assert!(refused.contains("\"none\" or \"worktree\""), "{refused}");
}

#[tokio::test]
async fn merge_refuses_a_dirty_checkout_and_leaves_it_untouched() {
    let env = Env::new();
    let repo = repository(&env);
    let client = env.server_in(&repo).await;
    let created = client
        .ok(
            "create_orchestration",
            json!({ "isolation": "worktree", "tasks": [{ "identifier": "a", "execution_prompt": "@append=a.txt:a" }] }),
        )
        .await;
    let id = created["orchestration_id"].as_i64().expect("id");
    client.wait_orchestration(id, 60.0).await;
    std::fs::write(repo.join("README"), "work in progress\n").expect("write");
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let refused = env.inspect(&["merge", &id.to_string()]).await;
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("README") || stderr.contains("uncommitted"), "{stderr}");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head);
    assert_eq!(std::fs::read_to_string(repo.join("README")).expect("read"), "work in progress\n");
    assert!(!repo.join("a.txt").exists());
}

/// The worktrees git knows of in `repo`, the checkout itself left out.
/// The worktrees of `repo` besides the checkout, tasks' own (`spare: false`) or kept for the
/// next tasks (`spare: true`, under `worktrees/spare/`).
fn listed(repo: &Path, spare: bool) -> Vec<String> {
    git(repo, &["worktree", "list", "--porcelain"])
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .filter(|path| Path::new(path) != repo && path.contains("/worktrees/spare/") == spare)
        .map(str::to_owned)
        .collect()
}

/// The tasks' worktrees of `repo`.
fn worktrees(repo: &Path) -> Vec<String> {
    listed(repo, false)
}

/// The worktrees of `repo` kept for the next tasks.
fn spares(repo: &Path) -> Vec<String> {
    listed(repo, true)
}

#[tokio::test]
async fn a_task_taken_back_after_kill_9_resumes_in_its_worktree() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let env = Env::new().set("CLAUDE_WORKER_LEASE_SECONDS", "600");
    let repo = repository(&env);
    let first = env.server_in(&repo).await;
    first.create("long", "long\n@sleep=30\n@append=long.txt:done once", json!({ "isolation": "worktree" })).await;
    let start = crate::harness::eventually(20.0, "the first run to start", || env.starts().into_iter().next()).await;
    crate::harness::eventually(10.0, "the session to be recorded", || {
        (env.sql_count("SELECT count(*) FROM tasks WHERE session_id IS NOT NULL") == 1).then_some(())
    })
    .await;
    kill(Pid::from_raw(first.pid), Signal::SIGKILL).expect("kill");
    crate::harness::eventually(10.0, "the server to exit", || (!crate::harness::alive(first.pid)).then_some(())).await;

    let second = env.server_in(&repo).await;
    let done = second.wait_task("long", 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let starts = env.starts();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert_eq!(starts[1]["cwd"], start["cwd"], "the second run is in the same worktree");
    let commit = done["isolation"]["commit"].as_str().expect("result");
    assert_eq!(git(&repo, &["show", &format!("{commit}:long.txt")]), "done once");
    assert_eq!(git(&repo, &["status", "--porcelain"]), "", "the checkout is untouched");
}

#[tokio::test]
async fn a_crash_while_a_worktree_or_the_integration_is_made_leaves_nothing_half_made() {
    for point in ["after_worktree", "after_integration_branch"] {
        let env = Env::new().set("CLAUDE_WORKER_CRASH_AT", point);
        let repo = repository(&env);
        let crashing = env.server_in(&repo).await;
        let tasks = json!({ "name": "crash", "isolation": "worktree", "tasks": [
            { "identifier": "a", "execution_prompt": "@append=a.txt:a" },
            { "identifier": "b", "execution_prompt": "@append=b.txt:b" },
            { "identifier": "c", "execution_prompt": "@append=c.txt:c", "depends_on": ["a", "b"] },
        ] });
        let request = rmcp::model::CallToolRequestParams::new("create_orchestration")
            .with_arguments(tasks.as_object().cloned().unwrap_or_default());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(60), crashing.service.call_tool(request)).await;
        crate::harness::eventually(60.0, "the crash", || (!crate::harness::alive(crashing.pid)).then_some(())).await;

        let env = env.set("CLAUDE_WORKER_CRASH_AT", "none");
        let client = env.server_in(&repo).await;
        let id = env.sql_count("SELECT max(orchestration_id) FROM orchestrations");
        let done = client.wait_orchestration(id, 90.0).await;
        assert_eq!(done["status"], "completed", "{point}: {done}");
        let orchestration = client.ok("get_status", json!({ "orchestration_id": id })).await;
        assert_eq!(orchestration["isolation"]["integration"], "done", "{point}: {orchestration}");
        let integrated = orchestration["isolation"]["commit"].as_str().expect("commit");
        let files = files_of(&repo, integrated);
        for file in ["a.txt", "b.txt", "c.txt"] {
            assert!(files.contains(&file.to_owned()), "{point}: {file} missing from {files:?}");
        }
        assert_eq!(worktrees(&repo), Vec::<String>::new(), "{point}: every worktree of a completed task removed");
        assert_eq!(git(&repo, &["status", "--porcelain"]), "", "{point}: the checkout is untouched");
        client.stop().await;
    }
}

#[tokio::test]
async fn a_failed_task_keeps_its_worktree_until_prune_removes_it_with_the_branches() {
    let env = Env::new();
    let repo = repository(&env);
    let client = env.server_in(&repo).await;
    let tasks = json!({ "name": "broken", "isolation": "worktree", "tasks": [
        { "identifier": "good", "execution_prompt": "@append=good.txt:good" },
        { "identifier": "bad", "execution_prompt": "@auth", "depends_on": ["good"] },
    ] });
    let id = client.ok("create_orchestration", tasks).await["orchestration_id"].as_i64().expect("id");
    let failed = client.wait_orchestration(id, 60.0).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let orchestration = client.ok("get_status", json!({ "orchestration_id": id })).await;
    assert_eq!(orchestration["isolation"]["integration"], "abandoned", "{orchestration}");
    let bad = client.ok("get_status", json!({ "task": "bad" })).await;
    let kept = bad["isolation"]["worktree"].as_str().expect("the failed task's worktree is shown").to_owned();
    assert!(Path::new(&kept).join("good.txt").exists(), "kept, on its dependency's result: {bad}");
    let good = client.ok("get_status", json!({ "task": "good" })).await;
    assert!(good["isolation"]["worktree"].is_null(), "a completed task's worktree is removed: {good}");
    let shown = text(&env.inspect(&["status", &format!("#{}", bad["task_id"])]).await.stdout);
    assert!(shown.contains(&format!("worktree:    {kept}")), "{shown}");

    // Something newer, so that prune may take the broken orchestration (the newest stays).
    client.create("later", "later", json!({})).await;
    client.wait_task("later", 60.0).await;
    let pruned = env.inspect(&["prune", "--older-than", "0s", "--json"]).await;
    assert!(pruned.status.success(), "{}", text(&pruned.stderr));
    let report: Value = serde_json::from_slice(&pruned.stdout).expect("json");
    assert_eq!(report["worktrees"], 2, "the failed task's, and the completed one's kept for the next: {report}");
    assert!(!Path::new(&kept).exists(), "the failed task's worktree went with it");
    assert_eq!(worktrees(&repo), Vec::<String>::new());
    assert_eq!(spares(&repo), Vec::<String>::new(), "the spares of the repository too");
    assert_eq!(git(&repo, &["branch", "--list", "claude-worker/*"]), "", "its branches went with it");
}

#[tokio::test]
async fn merge_when_done_brings_the_result_into_the_checkout() {
    let env = Env::new();
    let repo = repository(&env);
    let client = env.server_in(&repo).await;
    let tasks = json!({ "isolation": "worktree", "merge_when_done": true, "tasks": [
        { "identifier": "a", "execution_prompt": "@append=a.txt:a" },
        { "identifier": "b", "execution_prompt": "@append=b.txt:b" },
    ] });
    let id = client.ok("create_orchestration", tasks).await["orchestration_id"].as_i64().expect("id");
    client.wait_orchestration(id, 60.0).await;
    let orchestration = client.ok("get_status", json!({ "orchestration_id": id })).await;
    let note = orchestration["isolation"]["note"].as_str().expect("a note says what happened");
    assert!(note.starts_with("merged into the checkout"), "{note}");
    assert!(repo.join("a.txt").exists() && repo.join("b.txt").exists());
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    assert_eq!(git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]), "main");
}

#[tokio::test]
async fn a_repository_with_a_submodule_and_a_detached_head() {
    let env = Env::new();
    let library = env.work.join("library");
    std::fs::create_dir_all(&library).expect("mkdir");
    git(&library, &["init", "-q", "-b", "main"]);
    std::fs::write(library.join("lib.txt"), "library\n").expect("write");
    git(&library, &["add", "-A"]);
    git(&library, &["commit", "-q", "-m", "library"]);
    let repo = repository(&env);
    git(
        &repo,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            library.to_str().expect("utf-8"),
            "vendor/library",
        ],
    );
    git(&repo, &["commit", "-q", "-m", "a submodule"]);
    git(&repo, &["checkout", "-q", "--detach"]);
    let client = env.server_in(&repo).await;
    let created = client.create("uses", "@append=used.txt:used", json!({ "isolation": "worktree" })).await;
    let status = client.wait_task(&format!("#{}", created["task_id"]), 60.0).await;
    assert_eq!(status["status"], "completed", "{status}");
    let cwd = env.starts()[0]["cwd"].as_str().expect("cwd").to_owned();
    assert_eq!(
        std::fs::read_to_string(Path::new(&cwd).join("vendor/library/lib.txt")).ok().as_deref(),
        Some("library\n"),
        "the submodule was set up in the worktree"
    );
    let commit = status["isolation"]["commit"].as_str().expect("result");
    assert!(files_of(&repo, commit).contains(&"used.txt".to_owned()));
    assert_eq!(git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]), "HEAD", "still detached, untouched");
}

#[tokio::test]
async fn orchestrate_from_the_terminal_with_isolation_and_merge_when_done() {
    let env = Env::new();
    let repo = repository(&env);
    std::fs::write(
        repo.join("pipeline.json"),
        r#"{"name": "pipeline", "tasks": [
            {"identifier": "plan", "execution_prompt": "@write=PLAN.md:the plan"},
            {"identifier": "one", "execution_prompt": "@append=one.txt:one", "depends_on": ["plan"]},
            {"identifier": "two", "execution_prompt": "@append=two.txt:two", "depends_on": ["plan"]},
            {"identifier": "check", "execution_prompt": "@append=checked.txt:ok", "depends_on": ["one", "two"],
             "verify": "test -f one.txt && test -f two.txt && test -f PLAN.md"}
        ]}"#,
    )
    .expect("workflow");
    git(&repo, &["add", "pipeline.json"]);
    git(&repo, &["commit", "-q", "-m", "the workflow"]);
    let mut command = env.command(crate::harness::SERVER);
    command
        .current_dir(&repo)
        .args(["orchestrate", "pipeline.json", "--isolation", "worktree", "--merge-when-done", "--wait"])
        .stdin(std::process::Stdio::null());
    let done = crate::harness::finished(&mut command).await;
    assert!(done.status.success(), "{}\n{}", text(&done.stdout), text(&done.stderr));
    let said = text(&done.stdout);
    assert!(said.contains("results on claude-worker/1-pipeline/integration"), "{said}");
    assert!(said.contains("merged into the checkout"), "{said}");
    // The verify ran in check's worktree, which held all three results; the result reached the
    // checkout because it was asked to.
    for file in ["PLAN.md", "one.txt", "two.txt", "checked.txt"] {
        assert!(repo.join(file).exists(), "{file} merged into the checkout");
    }
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    let shown = env.inspect(&["orchestration-status", "1"]).await;
    let shown = text(&shown.stdout);
    assert!(shown.contains("integrated on claude-worker/1-pipeline/integration"), "{shown}");
    assert!(shown.contains("merged into the checkout"), "{shown}");
}

#[tokio::test]
async fn a_task_that_leaves_conflict_markers_fails_instead_of_passing_them_on() {
    let env = Env::new();
    let repo = repository(&env);
    let client = env.server_in(&repo).await;
    let tasks = json!({ "isolation": "worktree", "tasks": [
        { "identifier": "left", "execution_prompt": "@write=shared.txt:left side" },
        { "identifier": "right", "execution_prompt": "@write=shared.txt:right side" },
        { "identifier": "join", "execution_prompt": "join\n@keep-conflicts", "depends_on": ["left", "right"] },
    ] });
    let id = client.ok("create_orchestration", tasks).await["orchestration_id"].as_i64().expect("id");
    let failed = client.wait_orchestration(id, 60.0).await;
    let join = task_of(&failed, "join");
    assert_eq!(join["error"]["kind"], "merge_conflict", "{failed}");
    let message = join["error"]["message"].as_str().expect("message");
    assert!(message.contains("conflict markers are left in shared.txt"), "{message}");
    let status = client.ok("get_status", json!({ "task": "join" })).await;
    assert!(status["isolation"]["commit"].is_null(), "no result commit for it: {status}");
}

#[tokio::test]
async fn conflicting_sinks_in_a_full_orchestration_end_said_not_spinning() {
    let env = Env::new().set("MAX_TASKS_PER_ORCHESTRATION", "2");
    let repo = repository(&env);
    let client = env.server_in(&repo).await;
    let tasks = json!({ "isolation": "worktree", "tasks": [
        { "identifier": "left", "execution_prompt": "@write=shared.txt:left side" },
        { "identifier": "right", "execution_prompt": "@write=shared.txt:right side" },
    ] });
    let id = client.ok("create_orchestration", tasks).await["orchestration_id"].as_i64().expect("id");
    client.wait_orchestration(id, 60.0).await;
    let orchestration = client.ok("get_status", json!({ "orchestration_id": id })).await;
    assert_eq!(orchestration["isolation"]["integration"], "abandoned", "{orchestration}");
    let note = orchestration["isolation"]["note"].as_str().expect("note");
    assert!(note.contains("conflict") && note.contains("no task could be added"), "{note}");
}

#[tokio::test]
async fn two_databases_on_one_repository_keep_their_branches_apart() {
    let first = Env::new();
    let repo = repository(&first);
    let second = Env::new();
    let one = first.server_in(&repo).await;
    let tasks = json!({ "name": "refactor", "isolation": "worktree", "tasks": [
        { "identifier": "a", "execution_prompt": "@append=from_db1.txt:one" },
    ] });
    let id = one.ok("create_orchestration", tasks).await["orchestration_id"].as_i64().expect("id");
    let done = one.wait_orchestration(id, 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let integrated = git(&repo, &["rev-parse", &format!("claude-worker/{id}-refactor/integration")]);

    // The second database numbers its orchestrations from 1 too: same names, other work.
    let two = second.server_in(&repo).await;
    let tasks = json!({ "name": "refactor", "isolation": "worktree", "tasks": [
        { "identifier": "a", "execution_prompt": "@append=from_db2.txt:two" },
    ] });
    let id2 = two.ok("create_orchestration", tasks).await["orchestration_id"].as_i64().expect("id");
    assert_eq!(id2, id);
    let done = two.wait_orchestration(id2, 60.0).await;
    assert_eq!(done["status"], "completed", "its branches go under another name: {done}");
    let branch = done["isolation"]["branch"].as_str().expect("an integration branch");
    assert_eq!(branch, format!("claude-worker/{id}-refactor-2/integration"), "{done}");
    assert!(files_of(&repo, branch).contains(&"from_db2.txt".to_owned()));
    assert!(!files_of(&repo, branch).contains(&"from_db1.txt".to_owned()));
    assert_eq!(
        git(&repo, &["rev-parse", &format!("claude-worker/{id}-refactor/integration")]),
        integrated,
        "the first database's integration branch did not move"
    );
    assert!(!files_of(&repo, &integrated).contains(&"from_db2.txt".to_owned()));

    // Each database prunes its own branches only (something newer first: the newest stays).
    one.create("later", "later", json!({})).await;
    one.wait_task("later", 60.0).await;
    let pruned = first.inspect(&["prune", "--older-than", "0s"]).await;
    assert!(pruned.status.success(), "{}", text(&pruned.stderr));
    let branches = git(&repo, &["branch", "--list", "claude-worker/*"]);
    assert!(!branches.contains(&format!("claude-worker/{id}-refactor/")), "{branches}");
    assert!(branches.contains(&format!("claude-worker/{id}-refactor-2/")), "the other database's stay: {branches}");
}

/// The task worktree of `repo` whose directory ends with `-<identifier>`, with its porcelain
/// fields.
fn worktree_of(repo: &Path, identifier: &str) -> Option<(String, String)> {
    let listing = git(repo, &["worktree", "list", "--porcelain"]);
    listing.split("\n\n").find_map(|entry| {
        let path = entry.lines().find_map(|l| l.strip_prefix("worktree "))?;
        (path.ends_with(&format!("-{identifier}")) && !path.contains("/worktrees/spare/"))
            .then(|| (path.to_owned(), entry.to_owned()))
    })
}

#[tokio::test]
async fn a_waiting_task_s_worktree_is_made_ahead_and_taken_at_its_start() {
    let env = Env::new();
    let repo = repository(&env);
    let base = git(&repo, &["rev-parse", "HEAD"]);
    let client = env.server_in(&repo).await;
    let gate = env.work.join("gate");
    let tasks = json!({ "name": "ahead", "isolation": "worktree", "tasks": [
        { "identifier": "first", "execution_prompt": format!("@hold={} @append=first.txt:first", gate.display()) },
        { "identifier": "then", "execution_prompt": "@append=then.txt:then", "depends_on": ["first"] },
    ] });
    let id = client.ok("create_orchestration", tasks).await["orchestration_id"].as_i64().expect("id");

    // While `first` runs, `then` waits with its worktree made: detached at the base, files there.
    let (path, entry) = crate::harness::eventually(20.0, "the waiting task's worktree", || {
        worktree_of(&repo, "then").filter(|(path, _)| Path::new(path).join("README").exists())
    })
    .await;
    assert!(entry.contains("detached") && entry.contains(&format!("HEAD {base}")), "{entry}");
    assert!(!Path::new(&path).join("first.txt").exists());
    let waiting = client.ok("get_status", json!({ "task": "then" })).await;
    assert_eq!(waiting["status"], "waiting", "{waiting}");

    std::fs::write(&gate, "").expect("let the first task go");
    let done = client.wait_orchestration(id, 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let then = client.ok("get_status", json!({ "task": "then" })).await;
    let first = client.ok("get_status", json!({ "task": "first" })).await;
    let starts = env.starts();
    let start_of_then = starts.iter().find(|s| s["prompt_head"].as_str().is_some_and(|p| p.contains("then.txt")));
    let cwd = start_of_then.expect("then ran")["cwd"].as_str().expect("cwd").to_owned();
    assert_eq!(Path::new(&cwd).canonicalize().ok(), Path::new(&path).canonicalize().ok(), "it ran where it was made");
    assert_eq!(then["isolation"]["start_commit"], first["isolation"]["commit"], "on its dependency's result: {then}");
    let commit = then["isolation"]["commit"].as_str().expect("a result commit");
    assert_eq!(files_of(&repo, commit), ["README", "first.txt", "shared.txt", "then.txt"]);
    assert_eq!(worktrees(&repo), Vec::<String>::new(), "removed at the end");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), base, "the checkout never moved");
}

#[tokio::test]
async fn a_worktree_made_ahead_for_a_task_that_never_starts_is_removed_at_the_end() {
    let env = Env::new();
    let repo = repository(&env);
    let client = env.server_in(&repo).await;
    let gate = env.work.join("gate");
    let tasks = json!({ "name": "skipped", "isolation": "worktree", "tasks": [
        { "identifier": "breaks", "execution_prompt": format!("@hold={} @auth", gate.display()) },
        { "identifier": "never", "execution_prompt": "@append=never.txt:never", "depends_on": ["breaks"] },
    ] });
    let id = client.ok("create_orchestration", tasks).await["orchestration_id"].as_i64().expect("id");
    let (path, _) = crate::harness::eventually(20.0, "the waiting task's worktree", || {
        worktree_of(&repo, "never").filter(|(path, _)| Path::new(path).join("README").exists())
    })
    .await;
    std::fs::write(&gate, "").expect("let the first task go");
    let failed = client.wait_orchestration(id, 60.0).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(task_of(&failed, "never")["status"], "skipped", "{failed}");
    assert!(!Path::new(&path).exists(), "nothing to look at in it: removed");
    assert!(worktree_of(&repo, "never").is_none());
    assert!(worktree_of(&repo, "breaks").is_some(), "the failed task's stays for a person to look at");
    assert_eq!(git(&repo, &["branch", "--list", "claude-worker/*/tasks/never"]), "", "no branch was made for it");
}

#[tokio::test]
async fn the_next_task_starts_in_a_kept_worktree_with_nothing_left_of_the_last() {
    let env = Env::new().set("CLAUDE_WORKER_SPARE_WORKTREES", "1");
    let repo = repository(&env);
    std::fs::write(repo.join(".gitignore"), "build/\n").expect("write .gitignore");
    git(&repo, &["add", ".gitignore"]);
    git(&repo, &["commit", "-q", "-m", "ignore build output"]);
    let base = git(&repo, &["rev-parse", "HEAD"]);
    let client = env.server_in(&repo).await;
    let first = json!({ "name": "first", "isolation": "worktree", "tasks": [
        { "identifier": "one", "execution_prompt": "@append=one.txt:one @write=build/out.o:object code" },
        { "identifier": "two", "execution_prompt": "@append=two.txt:two" },
    ] });
    let id = client.ok("create_orchestration", first).await["orchestration_id"].as_i64().expect("id");
    assert_eq!(client.wait_orchestration(id, 60.0).await["status"], "completed");
    assert_eq!(worktrees(&repo), Vec::<String>::new(), "the tasks' worktrees went");
    assert_eq!(spares(&repo).len(), 1, "one kept, as asked: {:?}", spares(&repo));
    let spare = PathBuf::from(&spares(&repo)[0]);
    assert!(spare.join("one.txt").exists() && !spare.join("build").exists(), "kept clean: no ignored output left");
    assert_eq!(git(&spare, &["status", "--porcelain", "--ignored"]), "", "nothing untracked or ignored");
    assert_eq!(
        git(&repo, &["branch", "--list", "claude-worker/*/tasks/*", "--format=%(refname:short) %(worktreepath)"])
            .lines()
            .count(),
        2,
        "their branches stay, checked out nowhere (prune can delete them)"
    );

    let second = json!({ "name": "second", "isolation": "worktree", "tasks": [
        { "identifier": "three", "execution_prompt": "@append=three.txt:three" },
    ] });
    let id = client.ok("create_orchestration", second).await["orchestration_id"].as_i64().expect("id");
    let done = client.wait_orchestration(id, 60.0).await;
    assert_eq!(done["status"], "completed", "{done}");
    let three = client.ok("get_status", json!({ "task": "three" })).await;
    let summary = std::fs::read_to_string(three["summary_log"].as_str().expect("summary_log")).expect("summary log");
    assert!(summary.contains("made its worktree from a kept one"), "{summary}");
    assert_eq!(three["isolation"]["start_commit"], base.as_str(), "{three}");
    let commit = three["isolation"]["commit"].as_str().expect("a result commit");
    assert_eq!(
        files_of(&repo, commit),
        [".gitignore", "README", "shared.txt", "three.txt"],
        "nothing of the last task"
    );
    let start = env.starts().into_iter().find(|s| s["prompt_head"].as_str().is_some_and(|p| p.contains("three.txt")));
    let cwd = start.expect("three ran")["cwd"].as_str().expect("cwd").to_owned();
    assert!(cwd.ends_with("-three"), "it ran at its own path: {cwd}");
    assert_eq!(spares(&repo).len(), 1, "kept again for the next");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), base, "the checkout never moved");
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
}
