//! Storage access: list a directory of the repository and read one file, nothing else.
//! locksmith never writes to a repository.
//!
//! One file per backend, each declaring its options and variables beside its code
//! ([`settings::Declared`]); one door in, [`open`]. A backend whose Cargo feature is off
//! keeps its declaration and its location parser, not its client.

pub mod azure;
pub mod b2;
pub mod gcs;
pub mod http;
mod kind;
mod local;
pub mod net;
#[cfg(feature = "object-store")]
mod object;
mod rclone;
mod rest;
pub mod s3;
mod settings;
pub mod sftp;
pub mod swift;

pub use kind::Kind;
pub use local::LocalBackend;
pub use net::NetOptions;
#[cfg(feature = "object-store")]
pub use object::ObjectBackend;
pub use rclone::RcloneBackend;
pub use rest::{RestBackend, parse_listing};
pub use settings::{Declared, Settings, cacert_paths, env_prefixes, is_backend_var, secret_vars};

use async_trait::async_trait;

use crate::secret::Secret;
use futures::StreamExt;
use futures::stream::BoxStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Why a backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A location whose backend this build leaves out (its Cargo feature is off).
    #[error("the {} backend is not in this build", .0.scheme())]
    Unsupported(Kind),
    /// The backend's own account of why: a bad location, an unreadable CA certificate, a
    /// login that failed, rclone that did not start.
    #[error("{why}")]
    Failed { kind: Kind, why: String },
}

impl SetupError {
    /// The same error with `scrub` applied to the backend's words (they may quote a
    /// server's answer or a credential).
    pub fn scrubbed(self, scrub: impl Fn(&str) -> String) -> SetupError {
        match self {
            SetupError::Failed { kind, why } => SetupError::Failed {
                kind,
                why: scrub(&why),
            },
            other => other,
        }
    }
}

/// The one door to storage: a location and its settings (options, variables, limits) in,
/// a backend out. Each location's backend is one match arm, its code one file.
pub async fn open(cfg: &Settings) -> Result<Arc<dyn Backend>, SetupError> {
    let kind = cfg.location.kind;
    let failed = |why| SetupError::Failed { kind, why };
    let cacerts = cfg.cacerts();
    #[cfg(feature = "object-store")]
    let object = |op: Result<opendal::Operator, String>, prefix: &str| {
        op.and_then(|op| ObjectBackend::with_prefix(op, prefix, &cfg.net, &cacerts))
            .map(|b| Arc::new(b) as Arc<dyn Backend>)
            .map_err(failed)
    };
    let spec = &cfg.location.spec;
    match cfg.location.kind {
        Kind::Local => Ok(Arc::new(LocalBackend::new(cfg.location.path()))),
        Kind::Rest => RestBackend::new(
            spec,
            cfg.var("RESTIC_REST_USERNAME").map(str::to_string),
            cfg.var("RESTIC_REST_PASSWORD").map(Secret::new),
            &cacerts,
            cfg.net.clone(),
        )
        .map(|b| Arc::new(b) as Arc<dyn Backend>)
        .map_err(failed),
        Kind::Rclone => {
            let program = cfg
                .options
                .get("rclone.program")
                .map_or("rclone", String::as_str);
            let (spec, program) = (spec.clone(), program.to_string());
            let (env, net) = (cfg.env.clone(), cfg.net.clone());
            // Off the runtime: it waits (up to 20 s) for rclone to listen.
            tokio::task::spawn_blocking(move || RcloneBackend::start(&spec, &program, &env, net))
                .await
                .unwrap_or_else(|_| Err("rclone's start was interrupted".into()))
                .map(|b| Arc::new(b) as Arc<dyn Backend>)
                .map_err(failed)
        }
        #[cfg(feature = "s3")]
        Kind::S3 => object(s3::operator(spec, cfg), ""),
        #[cfg(feature = "azure")]
        Kind::Azure => object(azure::operator(spec, cfg), ""),
        #[cfg(feature = "gcs")]
        Kind::Gs => object(gcs::operator(spec, cfg), ""),
        #[cfg(feature = "b2")]
        Kind::B2 => object(b2::operator(spec, cfg).await, ""),
        #[cfg(feature = "swift")]
        Kind::Swift => object(swift::operator(spec, cfg).await, ""),
        #[cfg(feature = "sftp")]
        Kind::Sftp => match sftp::operator(spec, cfg) {
            Ok((op, path)) => object(Ok(op), &path),
            Err(why) => Err(failed(why)),
        },
        // Reached when a backend's Cargo feature is off.
        #[allow(unreachable_patterns)]
        other => Err(SetupError::Unsupported(other)),
    }
}

/// restic's `name[:prefix]` for buckets and containers → (name, prefix without slashes
/// at either end); `what` and `form` name them in the error.
fn split_spec(spec: &str, what: &str, form: &str) -> Result<(String, String), String> {
    let (name, prefix) = spec.split_once(':').unwrap_or((spec, ""));
    if name.is_empty() {
        return Err(format!("no {what} ({form})"));
    }
    Ok((name.to_string(), prefix.trim_matches('/').to_string()))
}

/// The parts of a repository locksmith reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Keys,
    Locks,
}

impl Dir {
    pub fn name(self) -> &'static str {
        match self {
            Dir::Keys => "keys",
            Dir::Locks => "locks",
        }
    }
}

/// One listed entry. `size` is `None` where a backend's listing does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub size: Option<u64>,
    /// Something other than a plain file (a directory, a socket): never read.
    pub is_file: bool,
    /// When it was last written, where the backend says (a local file's mtime).
    pub modified: Option<std::time::SystemTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The object is not there (for a lock: it vanished between listing and reading).
    #[error("not found")]
    NotFound,
    /// Something other than a regular file (a FIFO, a device) stands where a file should.
    #[error("not a regular file")]
    NotAFile,
    /// The server or the storage refused the credentials.
    #[error("{what}: {detail}: check the credentials")]
    Denied { what: String, detail: String },
    /// A final answer that is not the file: an HTTP status other than 404, 401 and 403.
    #[error("{what}: server answered {status}")]
    Status { what: String, status: u16 },
    /// Transient failures (no connection, time-outs, 5xx, 429) until the retries ran out.
    #[error("{why} (after {attempts} attempts)")]
    GaveUp { why: String, attempts: u32 },
    /// A listing larger than locksmith reads.
    #[error("{what}: larger than the {cap_mib} MiB cap")]
    TooLarge { what: String, cap_mib: u64 },
    /// A listing that does not parse.
    #[error("{what}: {why}")]
    Malformed { what: String, why: String },
    /// A local file or directory could not be read.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Anything else (an object store's other errors, a task that died, a deadline).
    #[error("{0}")]
    Other(String),
}

#[async_trait]
pub trait Backend: Send + Sync {
    /// The `config` file. `NotFound` means there is no repository here.
    async fn read_config(&self) -> Result<Vec<u8>, BackendError>;

    /// Every entry of a directory; a missing directory is empty.
    async fn list(&self, dir: Dir) -> Result<Vec<Entry>, BackendError>;

    /// At most `limit` bytes of one file; a longer file returns `limit` bytes, so a caller
    /// asking for one byte over its cap can tell the file is too large without reading it.
    async fn read(&self, dir: Dir, name: &str, limit: u64) -> Result<Vec<u8>, BackendError>;

    /// Reads many files, at most `concurrency` at a time, yielding each as it arrives (in
    /// any order) and counting each one done in `done`.
    fn read_stream<'a>(
        &'a self,
        dir: Dir,
        names: Vec<String>,
        limit: u64,
        concurrency: usize,
        done: Arc<AtomicUsize>,
    ) -> BoxStream<'a, (String, Result<Vec<u8>, BackendError>)> {
        futures::stream::iter(names)
            .map(move |name| {
                let done = done.clone();
                async move {
                    let got = self.read(dir, &name, limit).await;
                    done.fetch_add(1, Ordering::Relaxed);
                    (name, got)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .boxed()
    }
}
