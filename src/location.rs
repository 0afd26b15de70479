//! restic's repository strings: which backend, where, and how to show them without secrets.

use std::fmt;
use std::path::PathBuf;

use crate::backend::Kind;

/// Where a repository lives, parsed the way restic parses `-r`: which backend, and the
/// rest of the string (a path for a local repository).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub kind: Kind,
    pub spec: String,
}

impl Location {
    /// restic's rule: a known `scheme:` prefix picks the backend; anything else, including
    /// an unknown `foo:` prefix, is a local path.
    pub fn parse(s: &str) -> Result<Location, String> {
        if s.trim().is_empty() {
            return Err("the repository location is empty".into());
        }
        let (prefix, rest) = split_scheme(s);
        if prefix.is_empty() {
            return Ok(Location::local(s));
        }
        if rest.is_empty() {
            return Err(format!("{prefix} needs a location after it"));
        }
        let kind = Kind::of_scheme(&prefix[..prefix.len() - 1]).unwrap_or(Kind::Local);
        Ok(Location {
            kind,
            spec: rest.to_string(),
        })
    }

    pub fn local(path: &str) -> Location {
        Location {
            kind: Kind::Local,
            spec: path.to_string(),
        }
    }

    pub fn scheme(&self) -> &'static str {
        self.kind.scheme()
    }

    /// A local repository's directory.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(&self.spec)
    }
}

/// A repository string with any URL password replaced by `***`. The password is found by
/// the same URL parser the REST backend sends credentials from (so `http:/u:p@h`,
/// `http:u:p@h` and backslash forms are covered), and, for strings no URL parser takes, by
/// a rule that masks too much rather than too little: a `:` and `@` in the part before
/// the first `/` are treated as user information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked(String);

/// The restic prefix (`rest:`, `s3:` …; empty for a plain path) and the rest of a
/// repository string.
fn split_scheme(repo: &str) -> (&str, &str) {
    for kind in Kind::ALL {
        if let Some(rest) = repo
            .strip_prefix(kind.scheme())
            .and_then(|r| r.strip_prefix(':'))
        {
            return (&repo[..kind.scheme().len() + 1], rest);
        }
    }
    ("", repo)
}

/// The location as a URL, when the URL parser (the one the REST backend sends credentials
/// from) takes it.
fn as_url(rest: &str) -> Option<url::Url> {
    url::Url::parse(rest)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
}

/// The byte range of a password in a string no URL parser takes: after an optional
/// `scheme:` and any slashes, from the first `:` (if it comes before any `/`) to the
/// last `@` of the whole string — too much rather than too little.
fn heuristic_password(rest: &str) -> Option<std::ops::Range<usize>> {
    let mut start = 0;
    if let Some(i) = rest.find(':')
        && i > 0
        && rest[..i]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && rest[i + 1..].starts_with(['/', '\\'])
    {
        start = i + 1;
    }
    start += rest[start..].len() - rest[start..].trim_start_matches(['/', '\\']).len();
    let tail = &rest[start..];
    let first_slash = tail.find(['/', '\\']).unwrap_or(tail.len());
    let colon = tail[..first_slash].find(':')?;
    let at = tail.rfind('@')?;
    (colon + 1 < at).then(|| start + colon + 1..start + at)
}

/// Whether an rclone connection-string parameter holds a secret (`password`, `pass`,
/// `secret_access_key`, `token`, `sas_url` …); its value may be merely obscured, which
/// `rclone reveal` undoes.
fn rclone_secret_param(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase();
    [
        "pass", "secret", "key", "token", "sas", "auth", "cred", "cookie",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// The byte ranges of secret values in an rclone connection string
/// (`remote,name=value,name="quoted":path`, or `:backend,name=value:path`).
fn rclone_secrets(s: &str) -> Vec<std::ops::Range<usize>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b',' {
            if b[i] == b':' && i > 0 {
                break; // the path begins
            }
            i += 1;
            continue;
        }
        let name_start = i + 1;
        let Some(eq) = s[name_start..].find('=').map(|e| name_start + e) else {
            break;
        };
        let (start, end, next) = match b.get(eq + 1) {
            Some(q @ (b'"' | b'\'')) => {
                let close = s[eq + 2..].find(*q as char).map_or(b.len(), |c| eq + 2 + c);
                (eq + 2, close, close + 1)
            }
            _ => {
                let end = s[eq + 1..].find([',', ':']).map_or(b.len(), |c| eq + 1 + c);
                (eq + 1, end, end)
            }
        };
        if rclone_secret_param(&s[name_start..eq]) && start < end {
            out.push(start..end);
        }
        i = next;
    }
    out
}

impl Masked {
    pub fn new(repo: &str) -> Masked {
        let (prefix, rest) = split_scheme(repo);
        if let Some(mut url) = as_url(rest) {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
                return Masked(format!("{prefix}{url}"));
            }
            return Masked(repo.to_string());
        }
        if prefix.is_empty() || prefix == "local:" {
            // A local path: never sent anywhere, shown as given.
            return Masked(repo.to_string());
        }
        if prefix == "rclone:" {
            let mut shown = rest.to_string();
            for range in rclone_secrets(rest).into_iter().rev() {
                shown.replace_range(range, "***");
            }
            return Masked(format!("{prefix}{shown}"));
        }
        match heuristic_password(rest) {
            Some(range) => Masked(format!(
                "{prefix}{}***{}",
                &rest[..range.start],
                &rest[range.end..]
            )),
            None => Masked(repo.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Every form of the string's URL password (as written, and percent-decoded), so that
    /// text from elsewhere can be scrubbed of it.
    pub fn url_passwords(repo: &str) -> Vec<String> {
        let (_, rest) = split_scheme(repo);
        let mut out = Vec::new();
        if let Some(url) = as_url(rest).filter(|u| u.password().is_some()) {
            let raw = url.password().unwrap_or_default();
            out.push(raw.to_string());
            out.push(
                percent_encoding::percent_decode_str(raw)
                    .decode_utf8_lossy()
                    .into_owned(),
            );
        }
        if let Some(range) = heuristic_password(rest) {
            out.push(rest[range].to_string());
        }
        if repo.starts_with("rclone:") {
            out.extend(
                rclone_secrets(rest)
                    .into_iter()
                    .map(|r| rest[r].to_string()),
            );
        }
        out.retain(|p| !p.is_empty());
        out.dedup();
        out
    }
}

impl fmt::Display for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection string's obscured password was shown on /locks, the page and in
    /// `--json`; `rclone reveal` turns it back into the password.
    #[test]
    fn rclone_connection_string_secrets_are_masked() {
        let given = "rclone::crypt,remote=/srv/x,password=ob5cur3d,password2='p2,x':repo";
        let shown = Masked::new(given);
        assert_eq!(
            shown.as_str(),
            "rclone::crypt,remote=/srv/x,password=***,password2='***':repo"
        );
        let found = Masked::url_passwords(given);
        assert!(found.contains(&"ob5cur3d".to_string()), "{found:?}");
        assert!(found.contains(&"p2,x".to_string()), "{found:?}");
        let plain = "rclone:s3remote:bucket/path";
        assert_eq!(Masked::new(plain).as_str(), plain);
        let keyed = "rclone::s3,access_key_id=AKIA,secret_access_key=s3cr3t:b/p";
        assert_eq!(
            Masked::new(keyed).as_str(),
            "rclone::s3,access_key_id=***,secret_access_key=***:b/p"
        );
    }

    #[test]
    fn parses_every_restic_scheme() {
        assert_eq!(
            Location::parse("/srv/repo").unwrap(),
            Location::local("/srv/repo")
        );
        assert_eq!(
            Location::parse("local:/srv/repo").unwrap(),
            Location::local("/srv/repo")
        );
        assert_eq!(
            Location::parse("relative/repo").unwrap(),
            Location::local("relative/repo")
        );
        for (s, scheme) in [
            ("sftp:u@h:/srv", "sftp"),
            ("sftp://u@h:2222//srv", "sftp"),
            ("rest:http://h:8000/", "rest"),
            ("s3:https://h/bucket/prefix", "s3"),
            ("s3:h/bucket", "s3"),
            ("b2:bucket:prefix", "b2"),
            ("azure:c:/p", "azure"),
            ("gs:b:/p", "gs"),
            ("swift:c:/p", "swift"),
            ("rclone:remote:path", "rclone"),
        ] {
            assert_eq!(Location::parse(s).unwrap().scheme(), scheme, "{s}");
        }
    }

    #[test]
    fn unknown_prefix_is_a_local_path_like_restic() {
        assert_eq!(
            Location::parse("foo:bar").unwrap(),
            Location::local("foo:bar")
        );
    }

    #[test]
    fn empty_locations_are_errors() {
        assert!(Location::parse("").is_err());
        assert!(Location::parse("local:").is_err());
        assert!(Location::parse("s3:").is_err());
    }

    #[test]
    fn masks_url_passwords() {
        assert_eq!(
            Masked::new("s3:https://key:secret@s3.example.com/bucket").as_str(),
            "s3:https://key:***@s3.example.com/bucket"
        );
        assert_eq!(
            Masked::new("rest:https://user:p@ss:w/rd@host:8000/").as_str(),
            "rest:https://user:***@host:8000/"
        );
        assert_eq!(
            Masked::new("rest:http://host:8000/").as_str(),
            "rest:http://host:8000/"
        );
        assert_eq!(
            Masked::new("sftp:user@host:/srv").as_str(),
            "sftp:user@host:/srv"
        );
        assert_eq!(Masked::new("/srv/repo").as_str(), "/srv/repo");
        assert_eq!(
            Masked::url_passwords("rest:https://user:p@ss@host/"),
            vec!["p%40ss", "p@ss"]
        );
        assert!(Masked::url_passwords("rest:https://user@host/").is_empty());
    }

    /// The URL parser takes these forms (and sends their credentials): a masking that
    /// looked only after `://` showed the password.
    #[test]
    fn url_password_leak_with_one_slash_or_none() {
        for repo in [
            "rest:http:/user:hunter2@127.0.0.1:8000/",
            "rest:http:user:hunter2@127.0.0.1:8000/",
            "rest:http:\\\\user:hunter2@127.0.0.1:8000/",
            "rest:https:\\user:hunter2@host/",
            "rest:HTTP://user:hunter2@host/",
            "rest:http://user:hunter%32@host/",
            "s3:http:/key:hunter2@host/bucket",
            "s3:key:hunter2@host/bucket",
            "sftp://user:hunter2@host//srv",
        ] {
            let shown = Masked::new(repo);
            assert!(
                !shown.as_str().contains("hunter"),
                "{repo} shown as {shown}"
            );
            assert!(shown.as_str().contains("***"), "{repo} shown as {shown}");
            let pws = Masked::url_passwords(repo);
            assert!(
                pws.iter().any(|p| p == "hunter2"),
                "{repo}: passwords {pws:?}"
            );
        }
    }
}
