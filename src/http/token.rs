//! The HTTP server's token: the one set in `CLAUDE_WORKER_HTTP_TOKEN`, or, off loopback, one
//! generated once and kept private beside the database, so that a restarted server keeps the
//! token its clients already hold.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::config::Config;

/// Where the token came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Setting,
    /// Made now and stored at the path: printed once.
    Generated(PathBuf),
    /// Made by an earlier start, read from the path.
    Stored(PathBuf),
}

/// The token the server requires, if any: the setting's; none on loopback without one; else the
/// stored one, made first if there is none.
pub fn resolve(config: &Config, loopback: bool) -> std::io::Result<Option<(String, Source)>> {
    if let Some(token) = &config.http_token {
        return Ok(Some((token.clone(), Source::Setting)));
    }
    if loopback {
        return Ok(None);
    }
    let path = config.http_token_path();
    if let Some(token) = read(&path)? {
        return Ok(Some((token, Source::Stored(path))));
    }
    let token = generate()?;
    let mut file = crate::files::create_new(&path)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    Ok(Some((token, Source::Generated(path))))
}

/// The stored token; `None` when there is no file (an empty one is an error to fix by hand).
fn read(path: &Path) -> std::io::Result<Option<String>> {
    let mut text = String::new();
    match crate::files::open_read(path) {
        Ok(mut file) => file.read_to_string(&mut text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let token = text.trim();
    if token.is_empty() {
        return Err(std::io::Error::other(format!(
            "{} is empty: remove it to have a new token made, or write one in it",
            path.display()
        )));
    }
    Ok(Some(token.to_owned()))
}

/// 32 random bytes as hex.
fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(format!("no randomness for a token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(home: &Path, token: Option<&str>) -> Config {
        let home = home.to_string_lossy().into_owned();
        Config::from_lookup(|name| match name {
            "CLAUDE_WORKER_HOME" => Some(home.clone()),
            "CLAUDE_WORKER_HTTP_TOKEN" => token.map(str::to_owned),
            _ => None,
        })
        .expect("config")
    }

    #[test]
    fn off_loopback_a_token_is_made_once_kept_private_and_read_again() {
        let home = tempfile::tempdir().expect("tempdir");
        let config = config(home.path(), None);
        std::fs::create_dir_all(config.http_token_path().parent().expect("dir")).expect("mkdir");
        assert_eq!(resolve(&config, true).expect("loopback"), None);
        let (made, source) = resolve(&config, false).expect("made").expect("a token");
        assert_eq!(source, Source::Generated(config.http_token_path()));
        assert_eq!(made.len(), 64);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(config.http_token_path()).expect("stat").permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let (again, source) = resolve(&config, false).expect("read").expect("a token");
        assert_eq!((again, source), (made, Source::Stored(config.http_token_path())));
    }

    #[test]
    fn the_setting_wins_everywhere_and_an_empty_file_is_an_error() {
        let home = tempfile::tempdir().expect("tempdir");
        let set = config(home.path(), Some("mine"));
        assert_eq!(resolve(&set, true).expect("set"), Some(("mine".to_owned(), Source::Setting)));
        let config = config(home.path(), None);
        std::fs::create_dir_all(config.http_token_path().parent().expect("dir")).expect("mkdir");
        std::fs::write(config.http_token_path(), "\n").expect("write");
        let error = resolve(&config, false).expect_err("empty");
        assert!(error.to_string().contains("is empty"), "{error}");
    }
}
