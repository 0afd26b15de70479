//! locksmith: reads a restic repository's locks natively and says which are stale, who
//! holds them and whether removing them is safe.

pub mod audit;
pub mod backend;
pub mod config;
pub mod crypto;
pub mod error;
pub mod location;
pub mod locks;
pub mod process;
pub mod repo;
pub mod report;
pub mod seal;
pub mod secret;
pub mod unlock;
pub mod verdict;

use std::sync::Arc;

use chrono::Utc;

use crate::backend::{Backend, LocalBackend};
use crate::config::RepoConfig;
use crate::error::Error;
use crate::location::Location;
use crate::process::HostView;
use crate::repo::Repository;
use crate::report::Report;

pub use error::exit;

/// rustls with ring, one provider for every TLS client in the process (reqwest, lettre).
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The storage a location names.
pub fn backend_for(cfg: &RepoConfig) -> Result<Arc<dyn Backend>, Error> {
    match &cfg.location {
        Location::Local(path) => Ok(Arc::new(LocalBackend::new(path))),
        other => Err(Error::Unsupported {
            repo: cfg.masked.clone(),
            scheme: other.scheme(),
        }),
    }
}

pub async fn open(cfg: &RepoConfig) -> Result<Repository, Error> {
    let backend = backend_for(cfg)?;
    Repository::open(backend, &cfg.password, cfg.key_hint.as_deref())
        .await
        .map_err(|err| Error::Open {
            repo: cfg.masked.clone(),
            err,
        })
}

/// Opens the repository, reads every lock and judges each from `host`, now.
pub async fn inspect(
    cfg: &RepoConfig,
    host: &dyn HostView,
    concurrency: usize,
) -> Result<Report, Error> {
    let repo = open(cfg).await?;
    let inv = locks::inventory(&repo, concurrency)
        .await
        .map_err(|e| Error::Listing {
            repo: cfg.masked.clone(),
            why: cfg.redactor.scrub(&e.to_string()),
        })?;
    Ok(Report::new(
        cfg.masked.as_str(),
        &repo.id,
        repo.version,
        inv,
        Utc::now(),
        host,
    ))
}
