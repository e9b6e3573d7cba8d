//! Branch names of isolation, pure. Every branch of an orchestration lives under
//! `claude-worker/<orchestration>/`:
//!
//! - `claude-worker/<orchestration>/integration` — the merge of every task's result;
//! - `claude-worker/<orchestration>/tasks/<identifier>` — one task's work.
//!
//! Why not `claude-worker/<orchestration>` for the integration branch and
//! `claude-worker/<orchestration>/<identifier>` for the tasks: git stores refs as paths, and a ref
//! cannot be both a file and a directory (`cannot lock ref 'refs/heads/a/b': 'refs/heads/a'
//! exists`), so those two cannot exist at once. Two fixed names under one directory cannot
//! collide with each other or with any task, and the whole orchestration is one prefix
//! ([`orchestration_prefix`]) for `delete_branches`.
//!
//! Orchestration names may hold any printable character and task identifiers a few that git
//! refuses in places (`..`, a leading `.`, a `.lock` ending), so each becomes one safe path
//! component ([`safe_component`]); a name that had to change gets a short hash of the original,
//! so that two names that differ only in what was replaced (`fix auth`, `fix-auth`) keep
//! different branches.

/// The directory of every branch claude-worker makes.
pub const BRANCH_ROOT: &str = "claude-worker";

/// The longest component, in bytes, before its hash: refs are files, and a file name has at most
/// 255 bytes on common file systems.
const MAX_COMPONENT_BYTES: usize = 100;

/// The branch of an orchestration's task (`Some(identifier)`), or its integration branch (`None`).
pub fn branch_name(orchestration: &str, identifier: Option<&str>) -> String {
    let prefix = orchestration_prefix(orchestration);
    match identifier {
        Some(identifier) => format!("{prefix}/tasks/{}", safe_component(identifier)),
        None => format!("{prefix}/integration"),
    }
}

/// `claude-worker/<orchestration>`: the directory of every branch of the orchestration.
pub fn orchestration_prefix(orchestration: &str) -> String {
    format!("{BRANCH_ROOT}/{}", safe_component(orchestration))
}

/// `name` as one component of a branch name that `git check-ref-format --branch` accepts: no
/// `/`, control character, space or any of `~^:?*[\`, no `..` or `@{`, not starting with `.` or
/// `-`, not ending with `.` or `.lock`, not empty, at most 100 bytes (each replaced or cut). A
/// name that had to change ends in `-` and eight hex digits of a hash of the original.
pub fn safe_component(name: &str) -> String {
    let mut safe = String::with_capacity(name.len());
    let mut previous = None;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        let replaced = match c {
            c if c.is_control() || c.is_whitespace() => '-',
            '/' | '~' | '^' | ':' | '?' | '*' | '[' | '\\' => '-',
            '.' if previous == Some('.') || safe.is_empty() => '_',
            '-' if safe.is_empty() => '_',
            '@' if chars.peek() == Some(&'{') => '-',
            c => c,
        };
        safe.push(replaced);
        previous = Some(c);
    }
    if safe.ends_with('.') {
        safe.pop();
        safe.push('_');
    }
    if let Some(stem) = safe.strip_suffix(".lock") {
        safe = format!("{stem}_lock");
    }
    if safe.len() > MAX_COMPONENT_BYTES {
        let mut end = MAX_COMPONENT_BYTES;
        while !safe.is_char_boundary(end) {
            end -= 1;
        }
        safe.truncate(end);
    }
    if safe.is_empty() {
        safe.push('_');
    }
    if safe != name {
        safe = format!("{safe}-{:08x}", fnv1a(name.as_bytes()) as u32);
    }
    safe
}

/// FNV-1a, 64 bits: stable across versions and platforms (the branch of an orchestration must
/// not change when claude-worker is upgraded), and enough to tell a few names apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NASTY: &[&str] = &[
        "refactor",
        "fix auth",
        "fix-auth",
        "a/b",
        "..",
        "a..b",
        ".hidden",
        "-flag",
        "x.lock",
        "x.lock.lock",
        "trailing.",
        "@",
        "a@{b",
        "@{",
        "tab\there",
        "new\nline",
        "del\u{7f}",
        "~^:?*[\\",
        "",
        " ",
        "/",
        "//",
        "a/",
        "ünïcödé-名前",
        "émoji 🎉",
        ".lock",
        "-",
        ".",
        "...",
        "a.",
        "HEAD",
        "a\u{0}b",
    ];

    #[test]
    fn plain_names_stay_as_they_are() {
        assert_eq!(branch_name("refactor", None), "claude-worker/refactor/integration");
        assert_eq!(branch_name("refactor", Some("api")), "claude-worker/refactor/tasks/api");
        assert_eq!(branch_name("Release 2.0", Some("build-docs_1.2")), {
            let orch = safe_component("Release 2.0");
            format!("claude-worker/{orch}/tasks/build-docs_1.2")
        });
        assert_eq!(orchestration_prefix("refactor"), "claude-worker/refactor");
    }

    #[test]
    fn unsafe_characters_are_replaced_and_the_name_hashed() {
        let safe = safe_component("fix auth");
        assert!(safe.starts_with("fix-auth-") && safe.len() == "fix-auth-".len() + 8, "{safe}");
        assert_ne!(safe_component("fix auth"), safe_component("fix-auth"));
        assert_eq!(safe_component("fix-auth"), "fix-auth");
        assert!(safe_component("a..b").starts_with("a._b-"));
        assert!(safe_component(".hidden").starts_with("_hidden-"));
        assert!(safe_component("-flag").starts_with("_flag-"));
        assert!(safe_component("x.lock").starts_with("x_lock-"));
        assert!(safe_component("a@{b").starts_with("a-{b-"));
        assert!(safe_component("").starts_with("_-"));
        assert!(safe_component("a/b").starts_with("a-b-"));
    }

    #[test]
    fn names_are_stable() {
        // A branch name must not change between versions: this pins the hash.
        assert_eq!(safe_component("fix auth"), format!("fix-auth-{:08x}", fnv1a(b"fix auth") as u32));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn long_names_are_cut_at_a_character_boundary() {
        let long = "é".repeat(200);
        let safe = safe_component(&long);
        assert!(safe.len() <= MAX_COMPONENT_BYTES + 9, "{}", safe.len());
        assert_ne!(safe_component(&"a".repeat(150)), safe_component(&format!("{}b", "a".repeat(150))));
    }

    #[test]
    fn every_name_is_one_git_accepts() {
        for name in NASTY {
            for branch in [branch_name(name, None), branch_name("orch", Some(name)), branch_name(name, Some(name))] {
                assert!(branch.split('/').count() == 3 || branch.split('/').count() == 4, "{branch:?}");
                let output = std::process::Command::new("git")
                    .args(["check-ref-format", "--branch", &branch])
                    .output()
                    .expect("git runs");
                assert!(
                    output.status.success(),
                    "git refuses {branch:?} (from {name:?}): {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                assert_eq!(String::from_utf8_lossy(&output.stdout).trim_end_matches('\n'), branch);
            }
        }
    }
}
