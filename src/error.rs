//! The engine's error and the exit code each kind maps to.

use crate::config::ConfigError;
use crate::exit::Exit;
use crate::location::Masked;
use crate::repo::OpenError;

#[derive(Debug)]
pub enum Error {
    /// Exit 2: the options or environment do not describe a usable repository and password.
    Config(ConfigError),
    /// The repository could not be opened (exit 10, 12 or 1 by kind).
    Open { repo: Masked, err: OpenError },
    /// A backend locksmith cannot read yet.
    Unsupported { repo: Masked, scheme: &'static str },
    /// The backend could not be set up (bad location, unreadable CA certificate, rclone).
    Backend { repo: Masked, why: String },
    /// The lock directory could not be listed.
    Listing { repo: Masked, why: String },
    /// Some entries were not read by the deadline (the report says which).
    Incomplete { repo: Masked, why: String },
    /// The run's deadline passed before the repository opened or its locks were listed.
    Deadline {
        repo: Masked,
        what: &'static str,
        limit: std::time::Duration,
    },
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Config(_) => Exit::Config,
            Error::Open {
                err: OpenError::NoRepository,
                ..
            } => Exit::NoRepository,
            Error::Open {
                err: OpenError::WrongPassword { .. },
                ..
            } => Exit::WrongPassword,
            _ => Exit::Other,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config(e) => write!(f, "{e}"),
            Error::Open { repo, err } => {
                let hint = match err {
                    OpenError::NoRepository => "; check the repository location",
                    OpenError::WrongPassword { .. } => "; check the password (and RESTIC_KEY_HINT)",
                    _ => "",
                };
                write!(f, "{repo}: {err}{hint}")
            }
            Error::Unsupported { repo, scheme } => write!(
                f,
                "{repo}: the {scheme} backend is not supported yet; locksmith reads local, rest: and rclone: repositories"
            ),
            Error::Backend { repo, why } => write!(f, "{repo}: {why}"),
            Error::Listing { repo, why } => write!(f, "{repo}: cannot list locks: {why}"),
            Error::Incomplete { repo, why } => write!(
                f,
                "{repo}: incomplete: {why}; a slow or stalled backend (--timeout, --deadline)"
            ),
            Error::Deadline { repo, what, limit } => write!(
                f,
                "{repo}: gave up {what} after the {} s deadline (--deadline); check the backend's reachability and speed",
                limit.as_secs()
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}
