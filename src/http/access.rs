//! Who may ask the HTTP server anything, pure: the decision on every request's `Host`, `Origin`,
//! `Sec-Fetch-Site` and token, so that a web page elsewhere cannot drive claude-worker through
//! the browser of the person running it (DNS rebinding, cross-site requests), and, off
//! loopback, nobody without the token can.
//!
//! - `Host` must be an IP address (a rebinding attack needs a name it controls), `localhost`,
//!   this machine's name or one listed in `CLAUDE_WORKER_HTTP_HOSTS`.
//! - An `Origin`, when sent, must be this server's own (same scheme-less authority as `Host`):
//!   the dashboard is served from here, and no other page may read or write. No CORS header is
//!   ever sent, so browsers keep other origins from reading answers too.
//! - A request that changes state must not come from another site (`Sec-Fetch-Site`), even
//!   without an `Origin`.
//! - With a token, every request for data carries it: `Authorization: Bearer`, or the
//!   dashboard's cookie (HttpOnly, SameSite=Strict), compared in constant time.

use std::net::IpAddr;

/// The name of the dashboard's cookie that holds the token.
pub const COOKIE: &str = "claude_worker_token";

/// What the server accepts.
#[derive(Clone, Debug)]
pub struct Access {
    /// The token every request for data must carry (`None`: none needed, on loopback).
    token: Option<String>,
    /// Host names answered to besides IP addresses, lowercase, without a trailing dot.
    names: Vec<String>,
}

/// What a request shows of itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct Asked<'a> {
    /// GET, HEAD or OPTIONS: a request that changes nothing.
    pub safe: bool,
    /// The path needs the token (data and actions; not the dashboard's page, its assets or `/health`).
    pub private: bool,
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub fetch_site: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub cookie: Option<&'a str>,
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request has no Host header")]
    NoHost,
    #[error(
        "this server does not answer to the host {0:?}: use its IP address or localhost, or list the name in \
         CLAUDE_WORKER_HTTP_HOSTS"
    )]
    UnknownHost(String),
    #[error("requests from the origin {0:?} are refused: only this server's own pages may use it")]
    CrossOrigin(String),
    #[error("a request that changes something cannot come from another site")]
    CrossSite,
    #[error(
        "this server needs its token: send Authorization: Bearer <token> (CLAUDE_WORKER_HTTP_TOKEN, or the \
         one `serve --http` printed and keeps beside the database)"
    )]
    NoToken,
    #[error("wrong token")]
    WrongToken,
}

impl Refusal {
    /// Whether the fix is to authenticate (401) rather than a request that is never allowed (403).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, Refusal::NoToken | Refusal::WrongToken)
    }
}

impl Access {
    /// `names`: the host names answered to besides IP addresses (`localhost` is always one).
    pub fn new(token: Option<String>, names: impl IntoIterator<Item = String>) -> Access {
        let mut names: Vec<String> = names.into_iter().map(|n| normal_name(&n)).filter(|n| !n.is_empty()).collect();
        names.push("localhost".to_owned());
        names.sort();
        names.dedup();
        Access { token, names }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether `request` may be served.
    pub fn check(&self, request: &Asked<'_>) -> Result<(), Refusal> {
        let host = request.host.ok_or(Refusal::NoHost)?;
        let (name, _) = split_authority(host).ok_or_else(|| Refusal::UnknownHost(host.to_owned()))?;
        if name.parse::<IpAddr>().is_err() && !self.names.contains(&normal_name(name)) {
            return Err(Refusal::UnknownHost(host.to_owned()));
        }
        if let Some(origin) = request.origin
            && !same_origin(origin, host)
        {
            return Err(Refusal::CrossOrigin(origin.to_owned()));
        }
        if !request.safe && matches!(request.fetch_site, Some("cross-site" | "same-site")) {
            return Err(Refusal::CrossSite);
        }
        match &self.token {
            Some(token) if request.private => {
                let given = request
                    .authorization
                    .and_then(|a| a.strip_prefix("Bearer ").or_else(|| a.strip_prefix("bearer ")))
                    .map(str::trim)
                    .or_else(|| request.cookie.and_then(cookie_token));
                match given {
                    None => Err(Refusal::NoToken),
                    Some(given) if same_secret(given, token) => Ok(()),
                    Some(_) => Err(Refusal::WrongToken),
                }
            }
            _ => Ok(()),
        }
    }

    /// Whether `token` is this server's (for the dashboard's sign-in).
    pub fn is_token(&self, token: &str) -> bool {
        self.token.as_deref().is_some_and(|ours| same_secret(token.trim(), ours))
    }
}

/// Whether an address is loopback: no token is needed there.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// Host name compared case-insensitively, without the trailing dot of a fully qualified name.
fn normal_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `host[:port]` or `[v6]:port` split into the host (brackets removed) and the port.
fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            port => Some((host, Some(port.strip_prefix(':')?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

/// Whether `origin` (`scheme://authority`) is this server's: the same authority the request was
/// sent to, over http or https.
fn same_origin(origin: &str, host: &str) -> bool {
    let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

/// The token in a `Cookie` header, if one of its cookies is ours.
fn cookie_token(header: &str) -> Option<&str> {
    header.split(';').filter_map(|pair| pair.trim().split_once('=')).find(|(name, _)| *name == COOKIE).map(|(_, v)| v)
}

/// Compares secrets in time that depends only on their lengths.
fn same_secret(given: &str, ours: &str) -> bool {
    let (a, b) = (given.as_bytes(), ours.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(host: &str) -> Asked<'_> {
        Asked { safe: true, private: true, host: Some(host), ..Asked::default() }
    }

    #[test]
    fn hosts_are_addresses_localhost_or_listed_names() {
        let access = Access::new(None, ["build-box".to_owned()]);
        for host in ["127.0.0.1:8000", "localhost:8000", "LOCALHOST", "[::1]:8000", "10.0.0.7:80", "build-box.:8000"] {
            assert_eq!(access.check(&asked(host)), Ok(()), "{host}");
        }
        for host in ["evil.example:8000", "127.0.0.1.evil.example", "::1", "[::1", ""] {
            assert!(matches!(access.check(&asked(host)), Err(Refusal::UnknownHost(_))), "{host}");
        }
        assert_eq!(access.check(&Asked { host: None, ..asked("") }), Err(Refusal::NoHost));
    }

    #[test]
    fn only_this_servers_own_origin_is_accepted() {
        let access = Access::new(None, []);
        let from = |origin| Asked { origin: Some(origin), ..asked("127.0.0.1:8000") };
        assert_eq!(access.check(&from("http://127.0.0.1:8000")), Ok(()));
        for origin in
            ["http://localhost:8000", "http://127.0.0.1:8001", "https://evil.example", "null", "127.0.0.1:8000"]
        {
            assert_eq!(access.check(&from(origin)), Err(Refusal::CrossOrigin(origin.to_owned())), "{origin}");
        }
    }

    #[test]
    fn a_change_cannot_come_from_another_site_even_without_an_origin() {
        let access = Access::new(None, []);
        let post = |site| Asked { safe: false, fetch_site: Some(site), ..asked("127.0.0.1:8000") };
        assert_eq!(access.check(&post("cross-site")), Err(Refusal::CrossSite));
        assert_eq!(access.check(&post("same-site")), Err(Refusal::CrossSite));
        assert_eq!(access.check(&post("same-origin")), Ok(()));
        assert_eq!(access.check(&post("none")), Ok(()));
        // Following a link from elsewhere to the dashboard is fine: it changes nothing.
        assert_eq!(access.check(&Asked { fetch_site: Some("cross-site"), ..asked("127.0.0.1:8000") }), Ok(()));
    }

    #[test]
    fn with_a_token_data_needs_it_as_a_bearer_or_the_cookie() {
        let access = Access::new(Some("s3cret".to_owned()), []);
        let base = asked("10.0.0.7:8000");
        assert_eq!(access.check(&base), Err(Refusal::NoToken));
        assert_eq!(access.check(&Asked { authorization: Some("Bearer s3cret"), ..base }), Ok(()));
        assert_eq!(access.check(&Asked { authorization: Some("Bearer s3cre"), ..base }), Err(Refusal::WrongToken));
        assert_eq!(access.check(&Asked { authorization: Some("Basic s3cret"), ..base }), Err(Refusal::NoToken));
        assert_eq!(access.check(&Asked { cookie: Some("a=b; claude_worker_token=s3cret"), ..base }), Ok(()));
        assert_eq!(access.check(&Asked { cookie: Some("claude_worker_token=nope"), ..base }), Err(Refusal::WrongToken));
        // The page, its assets and /health need none.
        assert_eq!(access.check(&Asked { private: false, ..base }), Ok(()));
        // Without a token, nothing needs one.
        assert_eq!(Access::new(None, []).check(&base), Ok(()));
        assert!(access.is_token("s3cret") && !access.is_token("s3cret2") && !Access::new(None, []).is_token(""));
    }
}
