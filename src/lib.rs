//! locksmith: reads a restic repository's locks natively and says which are stale, who
//! holds them and whether removing them is safe.

mod allocator;
pub mod audit;
pub mod backend;
pub mod config;
pub mod duration;
pub mod error;
pub mod exit;
pub mod files;
pub mod fleet;
pub mod history;
pub mod inventory;
pub mod kernel;
pub mod location;
pub mod locks;
pub mod oneshot;
pub mod password;
pub mod peer;
pub mod printable;
pub mod process;
pub mod progress;
pub mod repo;
pub mod report;
pub mod restic;
pub mod run;
/// Test support: writing restic's formats (tests, benches, fuzzing; `testing` feature).
#[cfg(any(test, feature = "testing"))]
pub mod seal;
pub mod secret;
pub mod serve;
pub mod unlock;
pub mod verdict;
pub mod watch;

use std::sync::Arc;

use crate::backend::Backend;
use crate::config::RepoConfig;
use crate::error::Error;
use crate::process::HostView;
use crate::repo::Repository;
use crate::report::Report;

pub use allocator::{Allocator, limit_malloc_arenas, release_large_blocks};

/// The async runtime for one run: a single thread. The work is I/O-bound and the cores
/// belong to scrypt's lanes; a multi-threaded scheduler only added wake-ups between
/// threads (a third more CPU per request).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// rustls with ring, one provider for every TLS client in the process (reqwest, lettre).
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The storage a location names, its errors worded for the operator (location masked,
/// secrets scrubbed).
pub async fn backend_for(cfg: &RepoConfig) -> Result<Arc<dyn Backend>, Error> {
    backend::open(&cfg.backend).await.map_err(|e| match e {
        backend::SetupError::Unsupported(kind) => Error::Unsupported {
            repo: cfg.masked.clone(),
            scheme: kind.scheme(),
        },
        err => Error::Backend {
            repo: cfg.masked.clone(),
            err: err.scrubbed(|t| cfg.redactor.scrub(t)),
        },
    })
}

pub(crate) async fn open_with(
    cfg: &RepoConfig,
    backend: Arc<dyn Backend>,
) -> Result<Repository, Error> {
    Repository::open(backend, &cfg.password, cfg.key_hint.as_deref())
        .await
        .map_err(|err| Error::Open {
            repo: cfg.masked.clone(),
            err: match err {
                repo::OpenError::Backend(why) => repo::OpenError::Backend(cfg.redactor.scrub(&why)),
                other => other,
            },
        })
}

pub async fn open(cfg: &RepoConfig) -> Result<Repository, Error> {
    open_with(cfg, backend_for(cfg).await?).await
}

/// Opens the repository, reads every lock and judges each from `host`, now. The lock
/// files are fetched and decoded while the key is being derived, all within the run's
/// deadline.
pub async fn inspect(cfg: &RepoConfig, host: &(dyn HostView + Sync)) -> Result<Report, Error> {
    inspect_showing(cfg, host, true).await
}

/// As [`inspect`]; `show_progress` off where several run at once (`locks --config`).
pub async fn inspect_showing(
    cfg: &RepoConfig,
    host: &(dyn HostView + Sync),
    show_progress: bool,
) -> Result<Report, Error> {
    let deadline = tokio::time::Instant::now() + cfg.backend.net.deadline;
    let backend = backend_for(cfg).await?;
    let progress = progress::Progress::new();
    let indicator = tokio::spawn(if show_progress {
        futures::future::Either::Left(progress::show(progress.clone()))
    } else {
        futures::future::Either::Right(std::future::ready(()))
    });
    let reading = inventory::Reading {
        backend: backend.as_ref(),
        concurrency: cfg.backend.net.connections,
        deadline,
        progress: &progress,
        redactor: &cfg.redactor,
        cache: None,
    };
    let got = inventory::read(reading, open_with(cfg, backend.clone())).await;
    progress.finish();
    let _ = indicator.await;
    let (repo, inv) = got.map_err(|e| collect_error(cfg, e))?;
    Ok(judge_reading(cfg, &repo, inv, host).await)
}

/// The one place a reading becomes a report: the peers that answer for the hosts holding
/// its locks are asked first, within the request time limit.
pub(crate) async fn judge_reading(
    cfg: &RepoConfig,
    repo: &Repository,
    inv: locks::Inventory,
    host: &(dyn HostView + Sync),
) -> Report {
    let here = host.hostname();
    let elsewhere = inv
        .locks
        .iter()
        .filter(|e| e.lock.hostname != here)
        .map(|e| peer::ask::Asked {
            hostname: e.lock.hostname.as_str(),
            id: e.id.as_str(),
            pid: e.lock.pid,
            time: e.lock.time.timestamp(),
        });
    let peers = peer::consult(&cfg.peers, elsewhere, cfg.backend.net.timeout).await;
    Report::of(cfg, repo, inv, host, &peers)
}

/// A failed reading in the engine's words (location masked, secrets scrubbed).
pub(crate) fn collect_error(cfg: &RepoConfig, e: inventory::CollectError<Error>) -> Error {
    match e {
        inventory::CollectError::Open(e) => e,
        inventory::CollectError::Listing(e) => Error::Listing {
            repo: cfg.masked.clone(),
            why: cfg.redactor.scrub(&e.to_string()),
        },
        inventory::CollectError::Deadline(what) => Error::Deadline {
            repo: cfg.masked.clone(),
            what,
            limit: cfg.backend.net.deadline,
        },
    }
}
