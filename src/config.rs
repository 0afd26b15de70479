//! The resolved configuration the engine runs on. Built from plain option values (flag or
//! environment, already merged by the front end), never from the CLI's own types.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::backend::{NetOptions, Settings};
use crate::location::{Location, Masked};
use crate::secret::{Redactor, Secret};

/// Option values as given, before any is checked or read.
#[derive(Debug, Clone, Default)]
pub struct RawRepoOptions {
    pub repo: Option<String>,
    pub repository_file: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    /// `RESTIC_PASSWORD`.
    pub password: Option<Secret>,
    pub key_hint: Option<String>,
    /// The audited unlock's rule: a repository file, when given, wins over `-r` (restic
    /// itself calls both an error).
    pub repository_file_wins: bool,
    /// `-o key=value` backend options, as restic takes them.
    pub options: Vec<String>,
    /// Requests in flight at once (`--connections`, or `-o <scheme>.connections`).
    pub connections: Option<usize>,
    /// Time limit of one request to a remote backend.
    pub timeout: Option<Duration>,
    /// Time limit of the whole reading.
    pub deadline: Option<Duration>,
    /// The backends' environment (`RESTIC_*`, `AWS_*`, `AZURE_*` …), captured once.
    pub env: BTreeMap<String, String>,
    /// A password file must be a regular file: serve reads it again after failures, and a
    /// fleet file's members are read at once (a pipe or a device would block or never
    /// end). A one-shot run reads a pipe (`-p <(pass show x)`) as restic does.
    pub regular_password_file: bool,
    /// The hosts that answer for their own locks (`--peer`, `--peers`, a fleet's `[[peer]]`).
    pub peers: std::sync::Arc<crate::peer::Peers>,
}

/// A repository to open and the password to open it with.
#[derive(Debug, Clone)]
pub struct RepoConfig {
    /// The string as given: may carry a URL password, so only ever shown as `masked`.
    pub repo: Secret,
    pub masked: Masked,
    pub password: Secret,
    pub key_hint: Option<String>,
    /// Every secret seen while resolving, for scrubbing text from elsewhere.
    pub redactor: Redactor,
    /// What the storage is opened with: location, `-o` options, variables, limits.
    pub backend: Settings,
    /// Who to ask about other hosts' locks.
    pub peers: std::sync::Arc<crate::peer::Peers>,
}

/// Every variable whose value is a secret: locksmith's own and every backend's (whether
/// or not this build has that backend: restic gets the whole environment).
pub fn secret_vars() -> impl Iterator<Item = &'static str> {
    crate::secret::OWN_SECRET_VARS
        .iter()
        .copied()
        .chain(crate::backend::secret_vars())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no repository given: pass -r/--repo or --repository-file, or set RESTIC_REPOSITORY or RESTIC_REPOSITORY_FILE"
    )]
    NoRepository,
    #[error(
        "both a repository (-r/RESTIC_REPOSITORY) and a repository file (--repository-file/RESTIC_REPOSITORY_FILE) are given: keep one"
    )]
    ConflictingRepository,
    #[error("repository file: {0}")]
    RepositoryFile(String),
    #[error("repository location: {0}")]
    BadLocation(String),
    #[error(
        "no password given: set RESTIC_PASSWORD, pass -p/--password-file or --password-command (or their RESTIC_ variables), or type it when asked on a terminal"
    )]
    NoPassword,
    #[error(
        "both a password file and a password command are given: restic accepts only one, keep one"
    )]
    ConflictingPassword,
    #[error("password file: {0}")]
    PasswordFile(String),
    #[error("password command: {0}")]
    PasswordCommand(String),
    /// A `-o` option, named as it was typed.
    #[error("-o {0}")]
    BadOption(String),
}

/// The first line that is neither blank nor a `#` comment, trimmed.
fn first_meaningful_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
}

fn given(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn given_path(p: &Option<PathBuf>) -> Option<&PathBuf> {
    p.as_ref().filter(|p| !p.as_os_str().is_empty())
}

impl RawRepoOptions {
    /// Where the repository is; restic's rule: `-r` and a repository file exclude each other.
    pub fn resolve_repository(&self) -> Result<String, ConfigError> {
        let repo = given(&self.repo).filter(|_| {
            !(self.repository_file_wins && given_path(&self.repository_file).is_some())
        });
        match (repo, given_path(&self.repository_file)) {
            (Some(_), Some(_)) => Err(ConfigError::ConflictingRepository),
            (Some(r), None) => Ok(r.trim().to_string()),
            (None, Some(path)) => {
                let text = crate::files::read_config(path)
                    .map_err(|e| ConfigError::RepositoryFile(format!("{}: {e}", path.display())))?;
                first_meaningful_line(&text)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ConfigError::RepositoryFile(format!(
                            "{} names no repository",
                            path.display()
                        ))
                    })
            }
            (None, None) => Err(ConfigError::NoRepository),
        }
    }

    /// No command, file or password is given: restic would ask for one.
    pub fn lacks_password_source(&self) -> bool {
        given(&self.password_command).is_none()
            && given_path(&self.password_file).is_none()
            && self.password.as_ref().is_none_or(|p| p.expose().is_empty())
    }

    /// The password, by restic's precedence: command, else file, else `RESTIC_PASSWORD`.
    pub fn resolve_password(&self) -> Result<Secret, ConfigError> {
        let pw = match (
            given(&self.password_command),
            given_path(&self.password_file),
        ) {
            (Some(_), Some(_)) => return Err(ConfigError::ConflictingPassword),
            (Some(cmd), None) => crate::password::from_command(cmd)?,
            (None, Some(path)) => crate::password::from_file(path, self.regular_password_file)?,
            (None, None) => match &self.password {
                Some(p) if !p.expose().is_empty() => p.expose().to_string(),
                _ => return Err(ConfigError::NoPassword),
            },
        };
        if pw.is_empty() {
            return Err(ConfigError::NoPassword);
        }
        Ok(Secret::new(pw))
    }

    pub fn resolve(&self) -> Result<RepoConfig, ConfigError> {
        let repo = self.resolve_repository()?;
        let location = Location::parse(&repo).map_err(ConfigError::BadLocation)?;
        let password = self.resolve_password()?;
        let mut redactor = Redactor::default();
        redactor.add(password.expose());
        for pw in Masked::url_passwords(&repo) {
            redactor.add(&pw);
        }
        for k in secret_vars() {
            if let Some(v) = self.env.get(k) {
                redactor.add(v);
            }
        }
        let mut options = BTreeMap::new();
        for o in &self.options {
            let (k, v) = o
                .split_once('=')
                .ok_or_else(|| ConfigError::BadOption(format!("{o}: not key=value")))?;
            options.insert(k.trim().to_string(), v.trim().to_string());
        }
        let mut net = NetOptions::default();
        // restic's default for SFTP: more sessions than this trip sshd's limits.
        if location.scheme() == "sftp" {
            net.connections = 5;
        }
        if let Some(c) = self.connections {
            net.connections = c.max(1);
        }
        if let Some(t) = self.timeout {
            net.timeout = t;
        }
        if let Some(d) = self.deadline {
            net.deadline = d;
        }
        let key = format!("{}.connections", location.scheme());
        if let Some(v) = options.get(&key) {
            net.connections = v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ConfigError::BadOption(format!("{key}={v}: not a number of connections"))
            })?;
        }
        Ok(RepoConfig {
            backend: Settings {
                location,
                options,
                env: self.env.clone(),
                net,
            },
            masked: Masked::new(&repo),
            repo: Secret::new(repo),
            password,
            key_hint: given(&self.key_hint).map(str::to_string),
            redactor: {
                let mut r = redactor;
                self.peers.secrets_into(&mut r);
                r
            },
            peers: self.peers.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> RawRepoOptions {
        RawRepoOptions {
            repo: Some("/srv/repo".into()),
            password: Some(Secret::new("pw")),
            ..Default::default()
        }
    }

    #[test]
    fn repository_sources() {
        assert_eq!(opts().resolve_repository().unwrap(), "/srv/repo");
        let none = RawRepoOptions::default();
        assert_eq!(none.resolve_repository(), Err(ConfigError::NoRepository));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("repo");
        std::fs::write(&f, "\n# comment\n  s3:h/b  \nignored\n").unwrap();
        let from_file = RawRepoOptions {
            repository_file: Some(f.clone()),
            ..Default::default()
        };
        assert_eq!(from_file.resolve_repository().unwrap(), "s3:h/b");
        let both = RawRepoOptions {
            repository_file: Some(f),
            ..opts()
        };
        assert_eq!(
            both.resolve_repository(),
            Err(ConfigError::ConflictingRepository)
        );
    }

    #[test]
    fn password_sources_and_precedence() {
        assert_eq!(opts().resolve_password().unwrap().expose(), "pw");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "  filepw \n").unwrap();
        let file = RawRepoOptions {
            password_file: Some(f.clone()),
            ..opts()
        };
        assert_eq!(file.resolve_password().unwrap().expose(), "filepw");
        let cmd = RawRepoOptions {
            password_command: Some("printf ' cmd pw \\n'".into()),
            ..opts()
        };
        assert_eq!(cmd.resolve_password().unwrap().expose(), "cmd pw");
        let both = RawRepoOptions {
            password_command: Some("true".into()),
            password_file: Some(f),
            ..opts()
        };
        assert_eq!(
            both.resolve_password(),
            Err(ConfigError::ConflictingPassword)
        );
        let failing = RawRepoOptions {
            password_command: Some("false".into()),
            ..opts()
        };
        assert!(matches!(
            failing.resolve_password(),
            Err(ConfigError::PasswordCommand(_))
        ));
        let empty = RawRepoOptions {
            password: Some(Secret::new("")),
            ..opts()
        };
        assert_eq!(empty.resolve_password(), Err(ConfigError::NoPassword));
    }

    #[test]
    fn option_errors_name_the_option_as_typed() {
        let bad = |o: &str| {
            RawRepoOptions {
                options: vec![o.into()],
                ..opts()
            }
            .resolve()
            .unwrap_err()
            .to_string()
        };
        assert_eq!(bad("s3.region"), "-o s3.region: not key=value");
        assert_eq!(
            bad("local.connections=many"),
            "-o local.connections=many: not a number of connections"
        );
    }

    #[test]
    fn url_password_is_redacted_and_masked() {
        let o = RawRepoOptions {
            repo: Some("rest:http://u:s3cr3t@127.0.0.1:8000/".into()),
            ..opts()
        };
        let c = o.resolve().unwrap();
        assert_eq!(c.masked.as_str(), "rest:http://u:***@127.0.0.1:8000/");
        assert_eq!(c.redactor.scrub("x s3cr3t y"), "x *** y");
    }
}
