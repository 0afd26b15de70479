//! restic's repository strings: which backend, where, and how to show them without secrets.

use std::fmt;
use std::path::PathBuf;

type MakeLocation = fn(String) -> Location;

/// Where a repository lives, parsed the way restic parses `-r`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Sftp(String),
    Rest(String),
    S3(String),
    B2(String),
    Azure(String),
    Gs(String),
    Swift(String),
    Rclone(String),
}

impl Location {
    /// restic's rule: a known `scheme:` prefix picks the backend; anything else, including
    /// an unknown `foo:` prefix, is a local path.
    pub fn parse(s: &str) -> Result<Location, String> {
        if s.trim().is_empty() {
            return Err("the repository location is empty".into());
        }
        let schemes: [(&str, MakeLocation); 8] = [
            ("sftp:", Location::Sftp),
            ("rest:", Location::Rest),
            ("s3:", Location::S3),
            ("b2:", Location::B2),
            ("azure:", Location::Azure),
            ("gs:", Location::Gs),
            ("swift:", Location::Swift),
            ("rclone:", Location::Rclone),
        ];
        if let Some(path) = s.strip_prefix("local:") {
            if path.is_empty() {
                return Err("local: needs a path".into());
            }
            return Ok(Location::Local(PathBuf::from(path)));
        }
        for (prefix, make) in schemes {
            if let Some(rest) = s.strip_prefix(prefix) {
                if rest.is_empty() {
                    return Err(format!("{prefix} needs a location after it"));
                }
                return Ok(make(rest.to_string()));
            }
        }
        Ok(Location::Local(PathBuf::from(s)))
    }

    pub fn scheme(&self) -> &'static str {
        match self {
            Location::Local(_) => "local",
            Location::Sftp(_) => "sftp",
            Location::Rest(_) => "rest",
            Location::S3(_) => "s3",
            Location::B2(_) => "b2",
            Location::Azure(_) => "azure",
            Location::Gs(_) => "gs",
            Location::Swift(_) => "swift",
            Location::Rclone(_) => "rclone",
        }
    }
}

/// A repository string with any `user:password@` password replaced by `***`. Masks too much
/// rather than too little: a `:` and `@` later in a path are treated as userinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked(String);

impl Masked {
    pub fn new(repo: &str) -> Masked {
        let Some(start) = repo.find("://").map(|i| i + 3) else {
            return Masked(repo.to_string());
        };
        let rest = &repo[start..];
        let Some(at) = rest.rfind('@') else {
            return Masked(repo.to_string());
        };
        match rest[..at].find(':') {
            Some(colon) => Masked(format!(
                "{}{}***{}",
                &repo[..start],
                &rest[..=colon],
                &rest[at..]
            )),
            None => Masked(repo.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The password part of the URL, if the string had one (so output can be scrubbed of it).
    pub fn url_password(repo: &str) -> Option<String> {
        let start = repo.find("://")? + 3;
        let rest = &repo[start..];
        let at = rest.rfind('@')?;
        let colon = rest[..at].find(':')?;
        let pw = &rest[colon + 1..at];
        (!pw.is_empty()).then(|| pw.to_string())
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

    #[test]
    fn parses_every_restic_scheme() {
        assert_eq!(
            Location::parse("/srv/repo").unwrap(),
            Location::Local("/srv/repo".into())
        );
        assert_eq!(
            Location::parse("local:/srv/repo").unwrap(),
            Location::Local("/srv/repo".into())
        );
        assert_eq!(
            Location::parse("relative/repo").unwrap(),
            Location::Local("relative/repo".into())
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
            Location::Local("foo:bar".into())
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
            Masked::url_password("rest:https://user:p@ss@host/").as_deref(),
            Some("p@ss")
        );
        assert_eq!(Masked::url_password("rest:https://user@host/"), None);
    }
}
