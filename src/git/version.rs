//! Which git is installed, and whether it can do what isolation needs: `git merge-tree
//! --write-tree` (git 2.38), which merges two commits into a tree without a worktree. Pure: the
//! caller runs `git version`.

use super::GitError;

/// A git version: `major.minor.patch` (what follows, such as `.windows.1` or ` (Apple Git-137)`,
/// is kept only in `text`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The version as git printed it (`2.39.2.windows.1`).
    pub text: String,
}

/// The oldest git isolation works with: `git merge-tree --write-tree` came in 2.38.
pub const MIN_VERSION: (u32, u32) = (2, 38);

/// Reads the answer of `git version` (`git version 2.47.3`); `None` when it is not one.
pub fn parse_version(answer: &str) -> Option<GitVersion> {
    let text = answer.trim().strip_prefix("git version ")?.split_whitespace().next()?.to_owned();
    let mut numbers = text.split('.').map(|part| {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    let major = numbers.next()??;
    let minor = numbers.next()??;
    let patch = numbers.next().flatten().unwrap_or(0);
    Some(GitVersion { major, minor, patch, text })
}

/// The version in `answer` when it is recent enough; [`GitError::TooOld`] when it is not (or
/// cannot be read: such a git is not one we know).
pub fn check(answer: &str) -> Result<GitVersion, GitError> {
    match parse_version(answer) {
        Some(version) if (version.major, version.minor) >= MIN_VERSION => Ok(version),
        Some(version) => Err(GitError::TooOld { version: version.text }),
        None => Err(GitError::TooOld { version: format!("(unknown: {:?})", answer.trim()) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_with_their_suffixes() {
        let v = parse_version("git version 2.47.3\n").expect("a version");
        assert_eq!((v.major, v.minor, v.patch, v.text.as_str()), (2, 47, 3, "2.47.3"));
        let v = parse_version("git version 2.39.2.windows.1").expect("a version");
        assert_eq!((v.major, v.minor, v.patch), (2, 39, 2));
        let v = parse_version("git version 2.37.1 (Apple Git-137.1)").expect("a version");
        assert_eq!((v.major, v.minor, v.patch, v.text.as_str()), (2, 37, 1, "2.37.1"));
        let v = parse_version("git version 2.45.0.rc1").expect("a version");
        assert_eq!((v.major, v.minor), (2, 45));
        let v = parse_version("git version 3.0").expect("a version");
        assert_eq!((v.major, v.minor, v.patch), (3, 0, 0));
        assert_eq!(parse_version("hub version 2.14"), None);
        assert_eq!(parse_version("git version x.y"), None);
    }

    #[test]
    fn only_2_38_and_newer_pass() {
        assert!(check("git version 2.38.0").is_ok());
        assert!(check("git version 2.47.3").is_ok());
        assert!(check("git version 3.1.0").is_ok());
        assert_eq!(check("git version 2.37.9"), Err(GitError::TooOld { version: "2.37.9".to_owned() }));
        assert_eq!(check("git version 1.99.0"), Err(GitError::TooOld { version: "1.99.0".to_owned() }));
        assert!(matches!(check("something else"), Err(GitError::TooOld { .. })));
    }
}
