//! One repository watched over time: the key derived once and kept, each lock file read
//! once. Lock files are content-addressed (the name is the SHA-256 of the content), so an
//! entry already read under the same name and size cannot have changed; a refresh with
//! nothing new costs one listing of `locks/`.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tokio::time::Instant;

use crate::backend::{Backend, Dir};
use crate::config::{RawRepoOptions, RepoConfig};
use crate::error::Error;
use crate::locks::{Inventory, LOCK_FILE_CAP, LockDecoder, Problem};
use crate::process::HostView;
use crate::repo::Repository;
use crate::report::Report;
use crate::restic::lock::Lock;

/// What one lock file decoded to; fixed by its content, so kept for as long as it is listed.
type Decoded = Result<Lock, (Problem, String)>;

/// What a watch has cost so far (counters for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Costs {
    /// Times the key was derived from the password (scrypt).
    pub key_derivations: u64,
    /// Lock files read from the backend.
    pub lock_files_read: u64,
}

/// The state kept between refreshes of one repository.
pub struct Watch {
    options: RawRepoOptions,
    cfg: Option<RepoConfig>,
    backend: Option<Arc<dyn Backend>>,
    repo: Option<Repository>,
    seen: HashMap<String, (Option<u64>, Decoded)>,
    pub costs: Costs,
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
            seen: HashMap::new(),
            costs: Costs::default(),
        }
    }

    /// The repository's location as it may be shown, once resolved.
    pub fn masked(&self) -> Option<String> {
        self.cfg.as_ref().map(|c| c.masked.to_string())
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
        Err(Error::Backend {
            repo: self.cfg.as_ref().expect("resolved").masked.clone(),
            why: "lock files do not open with a freshly derived key".into(),
        })
    }

    async fn pass(&mut self, host: &(dyn HostView + Sync)) -> Result<Option<Report>, Error> {
        if self.cfg.is_none() {
            // Resolved anew after every failure to open: a fixed password file is picked up.
            self.cfg = Some(self.options.resolve()?);
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
        if self.repo.is_none() {
            self.costs.key_derivations += 1;
            match crate::open_with(&cfg, backend.clone()).await {
                Ok(r) => self.repo = Some(r),
                Err(e) => {
                    self.cfg = None;
                    return Err(e);
                }
            }
            self.seen.clear();
        }
        let repo = self.repo.clone().expect("opened");
        let listed = backend.list(Dir::Locks).await.map_err(|e| Error::Listing {
            repo: cfg.masked.clone(),
            why: cfg.redactor.scrub(&e.to_string()),
        })?;
        let mut inv = Inventory::default();
        let mut wanted = Vec::new();
        let mut listed_now = HashMap::new();
        for e in listed {
            let size = e.size;
            if let Some(name) = crate::locks::classify(e, &mut inv) {
                listed_now.insert(name.clone(), size);
                match self.seen.get(&name) {
                    Some((s, _)) if *s == size => {}
                    _ => wanted.push(name),
                }
            }
        }
        self.seen.retain(|name, _| listed_now.contains_key(name));
        let mut fresh_mac_failure = false;
        let mut decoder = LockDecoder::new(&repo.master, repo.version);
        self.costs.lock_files_read += wanted.len() as u64;
        let mut reads = backend.read_stream(
            Dir::Locks,
            wanted,
            LOCK_FILE_CAP + 1,
            cfg.backend.net.connections,
            Default::default(),
        );
        while let Some((name, got)) = reads.next().await {
            // What did not come back as a body (a failed read among it) is not kept: the
            // next refresh reads it again.
            if let Some((name, bytes)) = inv.absorb(name, got) {
                let decoded = decoder.decode(&name, &bytes);
                fresh_mac_failure |= matches!(&decoded, Err((Problem::MacMismatch, _)));
                let size = listed_now.get(&name).copied().flatten();
                self.seen.insert(name, (size, decoded));
            }
        }
        drop(reads);
        for u in &mut inv.unreadable {
            u.error = cfg.redactor.scrub(&u.error);
        }
        if fresh_mac_failure && !self.key_still_opens(&repo, backend.as_ref()).await {
            self.repo = None;
            self.cfg = None;
            self.seen.clear();
            return Ok(None);
        }
        for (name, (_, decoded)) in &self.seen {
            inv.place(name.clone(), decoded.clone());
        }
        inv.sort();
        Ok(Some(Report::of(&cfg, &repo, inv, host)))
    }

    /// A lock file that fails its MAC is either damaged or sealed under another key: the
    /// repository's `config` tells which.
    async fn key_still_opens(&self, repo: &Repository, backend: &dyn Backend) -> bool {
        match backend.read_config().await {
            Ok(bytes) => crate::restic::config::decode(&repo.master, &bytes)
                .is_ok_and(|(id, _)| id == repo.id),
            // Unreachable now: keep the key, the next refresh will tell.
            Err(_) => true,
        }
    }
}

/// One refresh of `watch`, bounded by its deadline.
pub async fn refresh_within(
    watch: &mut Watch,
    host: &(dyn HostView + Sync),
) -> Result<Report, Error> {
    let limit = watch.deadline();
    let started = Instant::now();
    match tokio::time::timeout_at(started + limit, watch.refresh(host)).await {
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
    }
}
