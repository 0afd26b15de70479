//! One repository watched over time: the key derived once and kept, each lock file read
//! once (the reading pipeline's [`Cache`]), so a refresh with nothing new costs one listing
//! of `locks/`. What it reports, it has proven: a refresh that finds no lock first checks
//! that `config` is still the repository whose key it holds.

use std::sync::Arc;

use tokio::time::Instant;

use crate::backend::{Backend, BackendError};
use crate::config::{ConfigError, RawRepoOptions, RepoConfig};
use crate::error::Error;
use crate::inventory::{self, Cache, Reading};
use crate::process::HostView;
use crate::progress::Progress;
use crate::repo::{OpenError, Repository};
use crate::report::{Costs, Life, Memory, Report};

/// After a wrong password, the next attempt waits this much at most (doubling from twice
/// the interval): each attempt is a full key derivation, and a fixed password file is
/// still picked up within it.
pub const AUTH_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// A password file's device, inode, size and modification time.
pub type PasswordSource = (u64, u64, u64, i64, i64);

/// The state kept between refreshes of one repository.
pub struct Watch {
    options: RawRepoOptions,
    cfg: Option<RepoConfig>,
    backend: Option<Arc<dyn Backend>>,
    repo: Option<Repository>,
    cache: Cache,
    /// The holders seen so far, and the exclusive time they held.
    memory: Memory,
    /// Lives the last refresh began, changed or ended, for the history.
    changed: Vec<Life>,
    /// Refreshes in a row that failed because no key opened with the password.
    auth_failures: u32,
    pub costs: Costs,
}

/// Whether the repository at the location is still the one whose key is held.
enum Identity {
    Same,
    /// Another repository (another ID, or a `config` the key does not open).
    Changed,
    /// No `config` could be read: vanished, unmounted, or unreachable.
    Unproven(BackendError),
}

impl Watch {
    /// `resolved`: the options already resolved once (serve checks them before it
    /// listens), so a password command does not run twice at start.
    pub fn new(options: RawRepoOptions, resolved: Option<RepoConfig>) -> Watch {
        Watch {
            options,
            cfg: resolved,
            backend: None,
            repo: None,
            cache: Cache::default(),
            memory: Memory::default(),
            changed: Vec::new(),
            auth_failures: 0,
            costs: Costs::default(),
        }
    }

    /// The repository's location as it may be shown, once resolved.
    pub fn masked(&self) -> Option<String> {
        self.cfg.as_ref().map(|c| c.masked.to_string())
    }

    /// Goes on from the lives a history kept (before a restart).
    pub fn resume(&mut self, lives: Vec<Life>) {
        self.memory = Memory::resume(lives);
    }

    /// The lives the last refresh began, changed or ended.
    pub fn take_changes(&mut self) -> Vec<Life> {
        std::mem::take(&mut self.changed)
    }

    /// Seconds an exclusive lock was held over the readings seen.
    pub fn exclusive_held_seconds(&self) -> f64 {
        self.memory.exclusive_held_seconds
    }

    /// How long to wait before the next refresh: `interval`, or after wrong passwords a
    /// delay that doubles each time (up to [`AUTH_BACKOFF_MAX`], or `interval` if longer).
    pub fn next_delay(&self, interval: std::time::Duration) -> std::time::Duration {
        if self.auth_failures == 0 {
            return interval;
        }
        let grown = interval.saturating_mul(1 << self.auth_failures.min(16));
        grown.min(AUTH_BACKOFF_MAX.max(interval))
    }

    /// Asks `peers` from the next refresh on: peers are one fleet-wide set, replaced
    /// whole when the fleet file is read again (their URLs and credentials with it).
    pub fn use_peers(&mut self, peers: Arc<crate::peer::Peers>) {
        if Arc::ptr_eq(&self.options.peers, &peers) {
            return;
        }
        if let Some(cfg) = &mut self.cfg {
            peers.secrets_into(&mut cfg.redactor);
            cfg.peers = peers.clone();
        }
        self.options.peers = peers;
    }

    /// Whether a refresh is waiting out a wrong password.
    pub fn backing_off(&self) -> bool {
        self.auth_failures > 0
    }

    /// What identifies the password file's content, where a file is the password's
    /// source: a changed one ends a backoff at once (the operator fixed it).
    pub async fn password_source(&self) -> Option<PasswordSource> {
        let path = self.options.password_file.as_ref()?;
        let m = tokio::fs::metadata(path).await.ok()?;
        use std::os::unix::fs::MetadataExt;
        Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
    }

    /// The time limit of one refresh.
    pub fn deadline(&self) -> std::time::Duration {
        self.options
            .deadline
            .or(self.cfg.as_ref().map(|c| c.backend.net.deadline))
            .unwrap_or(crate::backend::NetOptions::default().deadline)
    }

    /// Reads what changed in `locks/` and judges every lock from `host`, now. On failure the
    /// kept state stays as it was (a half-done refresh still keeps what it decoded).
    pub async fn refresh(&mut self, host: &(dyn HostView + Sync)) -> Result<Report, Error> {
        // The key is derived again only when the repository no longer opens with it (a
        // repository initialised anew at the same place): a second pass after dropping it.
        for _ in 0..2 {
            if let Some(report) = self.pass(host).await? {
                return Ok(report);
            }
        }
        Err(self.open_error(OpenError::KeyChanged))
    }

    fn open_error(&self, err: OpenError) -> Error {
        Error::Open {
            repo: self.cfg.as_ref().expect("resolved").masked.clone(),
            err,
        }
    }

    /// The options resolved and the backend set up, kept from the last refresh.
    async fn ready(&mut self) -> Result<(RepoConfig, Arc<dyn Backend>), Error> {
        if self.cfg.is_none() {
            // Resolved anew after every failure to open: a fixed password file is picked up.
            // Off the runtime: a password command may take its time (it is bounded), and
            // the other repositories and the endpoints must not wait for it.
            let options = self.options.clone();
            let resolved = tokio::task::spawn_blocking(move || options.resolve()).await;
            self.cfg = Some(resolved.map_err(|_| ConfigError::PasswordCommand("stopped".into()))??);
        }
        let cfg = self.cfg.clone().expect("resolved");
        let backend = match &self.backend {
            Some(b) => b.clone(),
            None => {
                let b = crate::backend_for(&cfg).await?;
                self.backend = Some(b.clone());
                b
            }
        };
        Ok((cfg, backend))
    }

    async fn pass(&mut self, host: &(dyn HostView + Sync)) -> Result<Option<Report>, Error> {
        let (cfg, backend) = self.ready().await?;
        let kept = self.repo.clone();
        if kept.is_none() {
            self.costs.key_derivations += 1;
            self.cache.clear();
        }
        let open = async {
            match kept {
                Some(repo) => Ok(repo),
                None => crate::open_with(&cfg, backend.clone()).await,
            }
        };
        let reading = Reading {
            backend: backend.as_ref(),
            concurrency: cfg.backend.net.connections,
            deadline: Instant::now() + self.deadline(),
            progress: &Progress::default(),
            redactor: &cfg.redactor,
            cache: Some(&mut self.cache),
        };
        let got = inventory::read(reading, open).await;
        let (repo, inv) = match got {
            Ok(read) => read,
            Err(e) => {
                if matches!(e, inventory::CollectError::Open(_)) {
                    self.cfg = None;
                }
                return Err(crate::collect_error(&cfg, e));
            }
        };
        self.costs.lock_files_read += inv.fetched as u64;
        self.repo = Some(repo.clone());
        if inv.fresh_mac_failures > 0 || inv.locks.is_empty() {
            match identity(&repo, backend.as_ref()).await {
                Identity::Same => {}
                Identity::Changed => {
                    self.forget_key();
                    return Ok(None);
                }
                Identity::Unproven(BackendError::NotFound) => {
                    return Err(self.open_error(OpenError::NoRepository));
                }
                Identity::Unproven(e) => {
                    return Err(
                        self.open_error(OpenError::Backend(cfg.redactor.scrub(&e.to_string())))
                    );
                }
            }
        }
        let mut report = crate::judge_reading(&cfg, &repo, inv, host).await;
        match &report.incomplete {
            Some(why) => Err(Error::Incomplete {
                repo: cfg.masked.clone(),
                why: why.clone(),
            }),
            None => {
                self.changed = self.memory.update(&mut report, chrono::Utc::now());
                Ok(Some(report))
            }
        }
    }

    fn forget_key(&mut self) {
        self.repo = None;
        self.cfg = None;
        self.cache.clear();
    }
}

/// A lock file that fails its MAC is damaged or sealed under another key, and an empty
/// `locks/` may be an unmounted share: the repository's `config` tells which.
async fn identity(repo: &Repository, backend: &dyn Backend) -> Identity {
    match backend.read_config().await {
        Ok(bytes) => match crate::restic::config::decode(&repo.master, &bytes) {
            Ok((id, _)) if id == repo.id => Identity::Same,
            _ => Identity::Changed,
        },
        Err(e) => Identity::Unproven(e),
    }
}

/// One refresh of `watch`, bounded by its deadline (the pipeline keeps it; this bounds the
/// steps around it: setting up the backend, checking `config`).
pub async fn refresh_within(
    watch: &mut Watch,
    host: &(dyn HostView + Sync),
) -> Result<Report, Error> {
    let limit = watch.deadline();
    let started = Instant::now();
    let grace = std::time::Duration::from_secs(5);
    let got = match tokio::time::timeout_at(started + limit + grace, watch.refresh(host)).await {
        Ok(r) => r,
        Err(_) => Err(Error::Deadline {
            repo: watch
                .cfg
                .as_ref()
                .map(|c| c.masked.clone())
                .unwrap_or_else(|| crate::location::Masked::new("")),
            what: "refreshing",
            limit,
        }),
    };
    watch.costs.failures += u64::from(got.is_err());
    if got.is_err() {
        watch.changed = watch.memory.unreadable(chrono::Utc::now());
    }
    let wrong_password = matches!(
        &got,
        Err(Error::Open {
            err: OpenError::WrongPassword { .. } | OpenError::KeyChanged,
            ..
        })
    );
    watch.auth_failures = if wrong_password {
        watch.auth_failures.saturating_add(1)
    } else {
        0
    };
    got
}
