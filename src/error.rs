//! The engine's error and the exit code each kind maps to.
//!
//! The rules, for this layer and the ones below it:
//! - one error type per layer (`ConfigError`, `FleetError`, `SetupError`, `BackendError`,
//!   `OpenError`, `CryptoError`, this `Error` for the engine); a layer wraps the one below,
//!   never flattens it into a `String` to pass it up;
//! - an error names what the operator typed (the masked location, the option, the file and
//!   line) and, where a person can fix it, what to check;
//! - nothing secret is in it: locations are [`Masked`], texts from servers and restic are
//!   scrubbed by the repository's redactor before they are wrapped here;
//! - which exit code a kind maps to is decided here ([`Error::exit`]), and which code wins
//!   for a fleet in [`crate::exit::merge`].

use crate::config::ConfigError;
use crate::exit::Exit;
use crate::fleet::FleetError;
use crate::location::Masked;
use crate::repo::OpenError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Exit 2: the options or environment do not describe a usable repository and password.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Exit 2: the fleet file cannot be used (named by file and line).
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The repository could not be opened (exit 10, 12 or 1 by kind).
    #[error("{repo}: {err}{}", open_hint(err))]
    Open { repo: Masked, err: OpenError },
    /// A backend this build leaves out (its Cargo feature is off).
    #[error(
        "{repo}: the {scheme} backend is not in this build of locksmith; it reads {}",
        crate::backend::Kind::in_this_build().join(", ")
    )]
    Unsupported { repo: Masked, scheme: &'static str },
    /// The backend could not be set up (bad location, unreadable CA certificate, rclone).
    #[error("{repo}: {err}")]
    Backend {
        repo: Masked,
        err: crate::backend::SetupError,
    },
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
            Error::Config(_) | Error::Fleet(_) => Exit::Config,
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
