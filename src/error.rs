//! The engine's error and the exit code each kind maps to.

use crate::config::ConfigError;
use crate::exit::Exit;
use crate::location::Masked;
use crate::repo::OpenError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Exit 2: the options or environment do not describe a usable repository and password.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The repository could not be opened (exit 10, 12 or 1 by kind).
    #[error("{repo}: {err}{}", open_hint(err))]
    Open { repo: Masked, err: OpenError },
    /// A backend locksmith cannot read yet.
    #[error(
        "{repo}: the {scheme} backend is not supported yet; locksmith reads local, rest: and rclone: repositories"
    )]
    Unsupported { repo: Masked, scheme: &'static str },
    /// The backend could not be set up (bad location, unreadable CA certificate, rclone).
    #[error("{repo}: {why}")]
    Backend { repo: Masked, why: String },
    /// The lock directory could not be listed.
    #[error("{repo}: cannot list locks: {why}")]
    Listing { repo: Masked, why: String },
    /// Some entries were not read by the deadline (the report says which).
    #[error("{repo}: incomplete: {why}; a slow or stalled backend (--timeout, --deadline)")]
    Incomplete { repo: Masked, why: String },
    /// The run's deadline passed before the repository opened or its locks were listed.
    #[error(
        "{repo}: gave up {what} after the {} s deadline (--deadline); check the backend's reachability and speed",
        limit.as_secs()
    )]
    Deadline {
        repo: Masked,
        what: &'static str,
        limit: std::time::Duration,
    },
}

/// What to check, for the errors a person can fix.
fn open_hint(err: &OpenError) -> &'static str {
    match err {
        OpenError::NoRepository => "; check the repository location",
        OpenError::WrongPassword { .. } => "; check the password (and RESTIC_KEY_HINT)",
        _ => "",
    }
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
