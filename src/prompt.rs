//! The prompt an attempt is given, composed from the task's own prompt and what it must know
//! before it starts: pure, no IO (the executor reads what goes in).
//!
//! [`compose`] puts, in this order:
//! 1. when the task starts on a merge that left conflicts (isolation), a short section that lists
//!    the conflicted files and asks Claude to resolve their conflict markers before anything else;
//! 2. the task's prompt as its caller wrote it;
//! 3. when it has dependencies (and `include_dependency_results` is on), the section "Results of
//!    the tasks this one depends on": for each dependency its identifier and id, its result commit
//!    (with isolation), its result text and its structured result as JSON.
//!
//! Every part is bounded: a result text and a structured result each get at most
//! [`PER_DEPENDENCY_BYTES`] (less when there are many dependencies: the section shares
//! [`SECTION_BYTES`] among them, never below [`MIN_SHARE_BYTES`]), cut with a marker that says
//! where the whole result is; once the section is full the remaining dependencies are only named.
//! With nothing to add, the prompt is returned exactly as written.
//!
//! A resumed session (`--resume`) is not given a composed prompt: the section is already in its
//! conversation, from the attempt that started it (the executor sends the resume prompt instead).

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::model::TaskId;

/// What a dependent is told of one of its dependencies.
#[derive(Clone, Debug, PartialEq)]
pub struct DependencyResult {
    pub identifier: String,
    pub task_id: TaskId,
    /// Its result text, as the CLI reported it (possibly only the head of it: see
    /// [`crate::store::Store::dependency_results`]).
    pub result: Option<String>,
    /// Its structured result (valid against its `result_schema`).
    pub structured_result: Option<serde_json::Value>,
    /// The commit its work ended in, with isolation.
    pub result_commit: Option<String>,
    /// Where its whole output can be read when the section cuts it (its detailed log, whose last
    /// event is the result).
    pub full_output: Option<PathBuf>,
}

/// The most a dependency's result text (and, separately, its structured result) takes.
pub const PER_DEPENDENCY_BYTES: usize = 4 * 1024;
/// The most the whole results section takes, about: shared among the dependencies.
pub const SECTION_BYTES: usize = 48 * 1024;
/// The least a dependency's result gets however many dependencies share the section.
pub const MIN_SHARE_BYTES: usize = 512;
/// What an entry takes besides its texts (its heading, fences and the cut marker, with a log
/// path): taken from each share, so that a section of many cut results still fits.
const ENTRY_OVERHEAD_BYTES: usize = 320;
/// The most the list of conflicted files takes.
const MAX_CONFLICTS_LISTED: usize = 200;
/// The most the line naming the dependencies left out of a full section takes.
const LEFT_OUT_BYTES: usize = 2 * 1024;

/// The heading of the results section (the tests look for it).
pub const RESULTS_HEADING: &str = "## Results of the tasks this one depends on";
/// The heading of the conflicts section.
pub const CONFLICTS_HEADING: &str = "## First: resolve the merge conflicts";

/// The prompt of an attempt: `original` with the conflicts first and the dependencies' results
/// after it (see the module's documentation). `dependencies` are given in the order they are
/// shown (the store reads them by task id).
pub fn compose(original: &str, conflicts: &[String], dependencies: &[DependencyResult]) -> String {
    if conflicts.is_empty() && dependencies.is_empty() {
        return original.to_owned();
    }
    let mut prompt = String::with_capacity(original.len() + SECTION_BYTES / 4);
    if !conflicts.is_empty() {
        conflicts_section(&mut prompt, conflicts);
        prompt.push_str("\n## The task\n\n");
    }
    prompt.push_str(original);
    if !dependencies.is_empty() {
        if !prompt.ends_with('\n') {
            prompt.push('\n');
        }
        prompt.push('\n');
        results_section(&mut prompt, dependencies);
    }
    prompt
}

fn conflicts_section(out: &mut String, conflicts: &[String]) {
    let _ = writeln!(out, "{CONFLICTS_HEADING}\n");
    out.push_str(
        "This task starts on the merge of its dependencies' results, and that merge left conflicts in \
         these files:\n",
    );
    for file in conflicts.iter().take(MAX_CONFLICTS_LISTED) {
        let _ = writeln!(out, "- {}", shown_path(file));
    }
    if conflicts.len() > MAX_CONFLICTS_LISTED {
        let _ = writeln!(
            out,
            "- and {} more (`git diff --name-only --diff-filter=U` lists them all)",
            conflicts.len() - MAX_CONFLICTS_LISTED
        );
    }
    out.push_str(
        "\nBefore anything else, resolve the conflict markers (<<<<<<<, =======, >>>>>>>) in each of them, \
         keeping what each side meant, so that no marker is left; then do the task below.\n",
    );
}

fn results_section(out: &mut String, dependencies: &[DependencyResult]) {
    // Each text (a result, a structured result) gets an equal part of the section.
    let texts = dependencies.len() + dependencies.iter().filter(|d| d.structured_result.is_some()).count();
    let share =
        (SECTION_BYTES / texts).saturating_sub(ENTRY_OVERHEAD_BYTES).clamp(MIN_SHARE_BYTES, PER_DEPENDENCY_BYTES);
    let start = out.len();
    let _ = writeln!(out, "{RESULTS_HEADING}\n");
    out.push_str(
        "These tasks completed before this one started. Their results are given as they reported them (each \
         cut where it is long, with where to read the rest).\n",
    );
    for (i, dependency) in dependencies.iter().enumerate() {
        if out.len() - start >= SECTION_BYTES {
            left_out(out, &dependencies[i..]);
            break;
        }
        out.push('\n');
        dependency_entry(out, dependency, share);
    }
}

fn dependency_entry(out: &mut String, dependency: &DependencyResult, share: usize) {
    let _ = writeln!(out, "### {} (task #{})", shown_name(&dependency.identifier), dependency.task_id);
    if let Some(commit) = &dependency.result_commit {
        let _ = writeln!(out, "Result commit: {commit}");
    }
    match dependency.result.as_deref() {
        Some(text) if !text.trim().is_empty() => {
            out.push_str("Result:\n");
            fenced(out, "", text, share, dependency);
        }
        _ => out.push_str("Result: (it reported no text)\n"),
    }
    if let Some(value) = &dependency.structured_result {
        out.push_str("Structured result (JSON):\n");
        fenced(out, "json", &value.to_string(), share, dependency);
    }
}

/// `text` in a code fence longer than any run of backticks in it (so that nothing in it can end
/// the fence), cut at `limit` bytes with a marker after the fence.
fn fenced(out: &mut String, language: &str, text: &str, limit: usize, dependency: &DependencyResult) {
    let (kept, cut) = head(text, limit);
    let fence = "`".repeat(longest_backtick_run(kept).max(2) + 1);
    let _ = writeln!(out, "{fence}{language}");
    out.push_str(kept);
    if !kept.ends_with('\n') {
        out.push('\n');
    }
    let _ = writeln!(out, "{fence}");
    if cut {
        let _ = writeln!(out, "{}", cut_marker(kept.len(), dependency));
    }
}

/// What a cut result says of itself: how much was kept, and where the whole of it is.
fn cut_marker(kept: usize, dependency: &DependencyResult) -> String {
    let task = format!("get_task_output with task \"#{}\"", dependency.task_id);
    match &dependency.full_output {
        Some(path) => format!(
            "[... cut after {kept} bytes. The whole result: {task}, or the last line (the result event) of {}]",
            path.display()
        ),
        None => format!("[... cut after {kept} bytes. The whole result: {task}]"),
    }
}

/// The dependencies a full section leaves out, named on one bounded line.
fn left_out(out: &mut String, rest: &[DependencyResult]) {
    let mut line = format!(
        "\nThe section is full: the results of {} more {} are left out ({} gives each): ",
        rest.len(),
        if rest.len() == 1 { "dependency" } else { "dependencies" },
        "get_task_output"
    );
    let header = line.len();
    for (i, dependency) in rest.iter().enumerate() {
        let name = format!("{} (#{})", shown_name(&dependency.identifier), dependency.task_id);
        if line.len() - header + name.len() > LEFT_OUT_BYTES {
            let _ = write!(line, "and {} more", rest.len() - i);
            break;
        }
        if i > 0 {
            line.push_str(", ");
        }
        line.push_str(&name);
    }
    line.push_str(".\n");
    out.push_str(&line);
}

/// The longest prefix of `text` of at most `limit` bytes that ends on a character boundary, and
/// whether anything was cut.
fn head(text: &str, limit: usize) -> (&str, bool) {
    if text.len() <= limit {
        return (text, false);
    }
    let end = (0..=limit).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    (&text[..end], true)
}

fn longest_backtick_run(text: &str) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// An identifier in backticks (identifiers are letters, digits, `_`, `-` and `.`).
fn shown_name(identifier: &str) -> String {
    format!("`{identifier}`")
}

/// A file path in backticks, or quoted with escapes when it holds a backtick or a control
/// character (a name git allows).
fn shown_path(path: &str) -> String {
    if path.chars().any(|c| c == '`' || c.is_control()) { format!("{path:?}") } else { format!("`{path}`") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dependency(identifier: &str, task_id: TaskId, result: &str) -> DependencyResult {
        DependencyResult {
            identifier: identifier.to_owned(),
            task_id,
            result: Some(result.to_owned()),
            structured_result: None,
            result_commit: None,
            full_output: Some(PathBuf::from(format!("/logs/task_{task_id}_detailed.log"))),
        }
    }

    #[test]
    fn nothing_to_add_leaves_the_prompt_as_written() {
        for original in ["do it", "do it\n", "", "  spaced \n\n"] {
            assert_eq!(compose(original, &[], &[]), original);
        }
    }

    #[test]
    fn results_come_after_the_prompt_in_the_order_given() {
        let mut analyze = dependency("analyze", 3, "The auth module has 3 entry points.");
        analyze.result_commit = Some("0123abc".to_owned());
        let mut plan = dependency("plan", 7, "Plan:\n1. split\n2. test");
        plan.structured_result = Some(json!({"steps": 2, "files": ["a.rs"]}));
        let prompt = compose("Refactor it.", &[], &[analyze, plan]);
        assert!(prompt.starts_with("Refactor it.\n\n## Results of the tasks this one depends on\n"), "{prompt}");
        let a = prompt.find("### `analyze` (task #3)\nResult commit: 0123abc\nResult:\n```\nThe auth module");
        let p = prompt.find("### `plan` (task #7)\nResult:\n```\nPlan:\n1. split\n2. test\n```\n");
        assert!(a.is_some() && p.is_some() && a < p, "{prompt}");
        assert!(prompt.contains("Structured result (JSON):\n```json\n{\"files\":[\"a.rs\"],\"steps\":2}\n```\n"));
        assert!(!prompt.contains("cut after"), "nothing was cut: {prompt}");
        assert!(!prompt.contains(CONFLICTS_HEADING));
    }

    #[test]
    fn composing_is_deterministic() {
        let deps = vec![dependency("a", 1, "one"), dependency("b", 2, "two")];
        assert_eq!(compose("p", &["x.rs".to_owned()], &deps), compose("p", &["x.rs".to_owned()], &deps));
    }

    #[test]
    fn a_dependency_without_text_says_so() {
        let mut quiet = dependency("quiet", 4, "");
        quiet.result = None;
        let prompt = compose("p", &[], &[quiet, dependency("blank", 5, "  \n")]);
        assert_eq!(prompt.matches("Result: (it reported no text)").count(), 2, "{prompt}");
    }

    #[test]
    fn a_long_result_is_cut_with_where_to_read_the_rest() {
        let long = "é".repeat(PER_DEPENDENCY_BYTES); // 2 bytes each: twice the bound
        let mut dep = dependency("big", 9, &long);
        dep.structured_result = Some(json!({ "text": "y".repeat(PER_DEPENDENCY_BYTES * 2) }));
        let prompt = compose("p", &[], &[dep]);
        let marker = format!(
            "[... cut after {PER_DEPENDENCY_BYTES} bytes. The whole result: get_task_output with task \"#9\", or \
             the last line (the result event) of /logs/task_9_detailed.log]"
        );
        assert_eq!(prompt.matches(&marker).count(), 2, "the text and the JSON: {prompt}");
        assert!(prompt.len() < 3 * PER_DEPENDENCY_BYTES, "{}", prompt.len());
        // Without a log path, the tool alone.
        let mut no_log = dependency("big", 9, &long);
        no_log.full_output = None;
        assert!(compose("p", &[], &[no_log]).contains("The whole result: get_task_output with task \"#9\"]"));
    }

    #[test]
    fn backticks_in_a_result_cannot_end_its_fence() {
        let prompt = compose("p", &[], &[dependency("md", 1, "see:\n```rust\nfn x() {}\n```\n")]);
        assert!(prompt.contains("Result:\n````\nsee:\n```rust\nfn x() {}\n```\n````\n"), "{prompt}");
    }

    #[test]
    fn many_dependencies_share_a_bounded_section() {
        let long = "r".repeat(PER_DEPENDENCY_BYTES * 4);
        let fifty: Vec<_> = (1..=50).map(|i| dependency(&format!("t{i:02}"), i, &long)).collect();
        let prompt = compose("p", &[], &fifty);
        // Each gets a fair share, and all fifty are there.
        let share = SECTION_BYTES / 50 - ENTRY_OVERHEAD_BYTES;
        assert_eq!(prompt.matches(&format!("cut after {share} bytes")).count(), 50, "{}", prompt.len());
        assert!(prompt.len() < SECTION_BYTES + 50 * 400, "{}", prompt.len());
        // A thousand: the section fills up, the rest are named on one bounded line.
        let thousand: Vec<_> = (1..=1000).map(|i| dependency(&format!("task_{i:04}"), i, &long)).collect();
        let prompt = compose("p", &[], &thousand);
        assert!(prompt.len() < SECTION_BYTES + PER_DEPENDENCY_BYTES * 2 + LEFT_OUT_BYTES + 1024, "{}", prompt.len());
        assert!(prompt.contains(&format!("cut after {MIN_SHARE_BYTES} bytes")));
        let left = prompt.lines().find(|l| l.starts_with("The section is full")).expect("the left-out line");
        assert!(left.contains("more dependencies are left out"), "{left}");
        assert!(left.ends_with(" more."), "{left}");
        assert!(prompt.find("### `task_0001`") < prompt.find("### `task_0002`"));
    }

    #[test]
    fn conflicts_come_first_then_the_task() {
        let conflicts = vec!["src/auth.rs".to_owned(), "odd`name".to_owned()];
        let prompt = compose("Fix the tests.", &conflicts, &[]);
        assert!(prompt.starts_with(CONFLICTS_HEADING), "{prompt}");
        assert!(prompt.contains("- `src/auth.rs`\n- \"odd`name\"\n"), "{prompt}");
        assert!(prompt.contains("Before anything else, resolve the conflict markers"), "{prompt}");
        assert!(prompt.ends_with("\n## The task\n\nFix the tests."), "{prompt}");
        // With results too: conflicts, the task, then the results.
        let both = compose("Fix the tests.", &conflicts, &[dependency("a", 1, "done")]);
        let (c, t, r) = (both.find(CONFLICTS_HEADING), both.find("Fix the tests."), both.find(RESULTS_HEADING));
        assert!(c < t && t < r, "{both}");
        // A huge merge: the list is bounded.
        let many: Vec<String> = (0..5000).map(|i| format!("f{i}.rs")).collect();
        let prompt = compose("p", &many, &[]);
        assert!(prompt.contains(&format!("- and {} more", 5000 - MAX_CONFLICTS_LISTED)), "{}", prompt.len());
        assert!(prompt.len() < 8 * 1024, "{}", prompt.len());
    }

    #[test]
    fn head_cuts_on_a_character_boundary() {
        assert_eq!(head("héllo", 2), ("h", true));
        assert_eq!(head("héllo", 3), ("hé", true));
        assert_eq!(head("hé", 3), ("hé", false));
        assert_eq!(longest_backtick_run("a ``` b `` c"), 3);
    }
}
