//! A judged inventory, and every way it is shown: `locks`, `unlock` and `serve` all render
//! here — the table, the JSON documents and the one Prometheus exposition.

pub mod holders;
pub mod json;
pub mod lives;
pub mod metrics;
mod status;
pub mod table;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

#[cfg(test)]
pub(crate) mod sample;
pub use holders::{HolderKey, JudgedHolder};
pub use json::{Document, RepositoryJson};
pub use lives::{Ended, Life, Memory, Span, Worst};
pub use status::{Costs, Status};
pub use table::{HOLDER_HEADER, TABLE_HEADER, Tone};

use crate::locks::{Ignored, Inventory, LockEntry, Problem, Unreadable};
use crate::peer::{Consulted, PeerStatus};
use crate::process::{HostView, Sight};
use crate::verdict::{Verdict, judge_with};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counts {
    pub total: usize,
    pub exclusive: usize,
    pub non_exclusive: usize,
    pub stale: usize,
    pub restic_unlock_removes: usize,
    #[serde(rename = "unsafe")]
    pub unsafe_: usize,
    pub unreadable: usize,
    pub ignored: usize,
    pub vanished: usize,
    /// Locks whose host or user name was cut to 255 bytes in every output.
    pub names_cut: usize,
    /// Jobs holding the locks (a job's lock files are one holder).
    pub holders: usize,
}

impl Counts {
    /// The counts line of the table and the status page, up to the unsafe count.
    pub fn headline(&self) -> String {
        format!(
            "{} lock{} ({} exclusive, {} shared): {} stale, restic unlock would remove {}",
            self.total,
            if self.total == 1 { "" } else { "s" },
            self.exclusive,
            self.non_exclusive,
            self.stale,
            self.restic_unlock_removes,
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JudgedLock {
    pub id: String,
    pub exclusive: bool,
    pub time: String,
    pub hostname: String,
    pub username: String,
    pub pid: i64,
    pub uid: u32,
    pub gid: u32,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// `time`, for arithmetic.
    #[serde(skip)]
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub repository: String,
    pub repository_id: String,
    pub repository_version: u32,
    /// The host the verdicts were reached on.
    pub checked_on: String,
    pub checked_at: String,
    pub counts: Counts,
    /// The jobs behind `locks`, longest held first.
    pub holders: Vec<JudgedHolder>,
    pub locks: Vec<JudgedLock>,
    pub unreadable: Vec<Unreadable>,
    pub ignored: Vec<Ignored>,
    pub vanished: Vec<String>,
    /// Why the inventory is incomplete, when it is (entries not read by the deadline).
    pub incomplete: Option<String>,
    /// The peers asked about their hosts' locks, and how each answered.
    #[serde(default)]
    pub peers: Vec<PeerStatus>,
    /// The storage's clock, as its listing showed it (a second clock beside the locks').
    #[serde(default)]
    pub storage_clock: Option<crate::verdict::StorageClock>,
}

/// What a cron job or a script may ask of a report (`locks --fail-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// A removal restic would make, or its probe, would hit a live process.
    Unsafe,
    /// A lock is stale by locksmith's rule.
    Stale,
    /// `restic unlock` would remove a lock.
    ResticRemoves,
    /// A lock file restic cannot load (from 0.15 it blocks every locking command).
    Unreadable,
    /// An exclusive lock is held (prune, forget, check … are running or died).
    Exclusive,
    /// Any lock at all, readable or not.
    Any,
}

impl Condition {
    pub const ALL: [Condition; 6] = [
        Condition::Unsafe,
        Condition::Stale,
        Condition::ResticRemoves,
        Condition::Unreadable,
        Condition::Exclusive,
        Condition::Any,
    ];

    /// As `--fail-on` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Unsafe => "unsafe",
            Condition::Stale => "stale",
            Condition::ResticRemoves => "restic-removes",
            Condition::Unreadable => "unreadable",
            Condition::Exclusive => "exclusive",
            Condition::Any => "any",
        }
    }

    pub fn named(name: &str) -> Option<Condition> {
        Condition::ALL.into_iter().find(|c| c.name() == name)
    }

    /// One line for `--help`.
    pub fn describe(self) -> &'static str {
        match self {
            Condition::Unsafe => {
                "A removal restic would make, or its SIGHUP probe, would hit a live process"
            }
            Condition::Stale => "A lock is stale by locksmith's rule",
            Condition::ResticRemoves => "`restic unlock` would remove a lock",
            Condition::Unreadable => "A lock file restic cannot load",
            Condition::Exclusive => "An exclusive lock is held",
            Condition::Any => "Any lock at all",
        }
    }
}

impl Report {
    /// Whether `c` holds.
    pub fn holds(&self, c: Condition) -> bool {
        let n = &self.counts;
        match c {
            Condition::Unsafe => n.unsafe_ > 0,
            Condition::Stale => n.stale > 0,
            Condition::ResticRemoves => n.restic_unlock_removes > 0,
            Condition::Unreadable => n.unreadable > 0,
            Condition::Exclusive => n.exclusive > 0,
            Condition::Any => n.total + n.unreadable > 0,
        }
    }

    /// Entries of `locks/` not read before the deadline: what they hold is unknown.
    pub fn not_read(&self) -> usize {
        self.unreadable
            .iter()
            .filter(|u| u.kind == Problem::NotRead)
            .count()
    }

    /// The report of an opened repository's inventory, judged from `host` and the peers'
    /// answers, now.
    pub fn of(
        cfg: &crate::config::RepoConfig,
        repo: &crate::repo::Repository,
        inv: Inventory,
        host: &dyn HostView,
        peers: &Consulted,
    ) -> Report {
        let id = (cfg.masked.as_str(), repo.id.as_str(), repo.version);
        Report::judged(id, inv, Utc::now(), host, peers)
    }

    /// Judged from `host` alone: other hosts' holders are unknown.
    pub fn new(
        repository: &str,
        repository_id: &str,
        repository_version: u32,
        inv: Inventory,
        now: DateTime<Utc>,
        host: &dyn HostView,
    ) -> Report {
        let id = (repository, repository_id, repository_version);
        Report::judged(id, inv, now, host, &Consulted::default())
    }

    /// `id`: the repository as shown, its ID and its format version.
    pub fn judged(
        (repository, repository_id, repository_version): (&str, &str, u32),
        inv: Inventory,
        now: DateTime<Utc>,
        host: &dyn HostView,
        peers: &Consulted,
    ) -> Report {
        let named = inv
            .locks
            .iter()
            .map(|e| (e.lock.hostname.as_str(), e.lock.pid));
        let sight = Sight::new(host, named);
        let host: &dyn HostView = &sight;
        let storage = crate::verdict::StorageClock::of(&inv, now);
        let locks: Vec<JudgedLock> = inv
            .locks
            .into_iter()
            .map(
                |LockEntry {
                     id,
                     lock,
                     stored_at,
                 }| JudgedLock {
                    verdict: storage.second_opinion(
                        judge_with(&lock, now, host, &peers.of(&lock.hostname)),
                        &lock,
                        stored_at,
                        now,
                    ),
                    at: lock.time.with_timezone(&Utc),
                    time: lock.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                    id,
                    exclusive: lock.exclusive,
                    hostname: lock.hostname,
                    username: lock.username,
                    pid: lock.pid,
                    uid: lock.uid,
                    gid: lock.gid,
                },
            )
            .collect();
        let exclusive = locks.iter().filter(|l| l.exclusive).count();
        let holders = holders::group(&locks, now, host, peers);
        let counts = Counts {
            total: locks.len(),
            exclusive,
            non_exclusive: locks.len() - exclusive,
            stale: locks.iter().filter(|l| l.verdict.stale).count(),
            restic_unlock_removes: locks
                .iter()
                .filter(|l| l.verdict.restic_unlock_removes)
                .count(),
            unsafe_: locks.iter().filter(|l| l.verdict.unsafe_).count(),
            unreadable: inv.unreadable.len(),
            ignored: inv.ignored.len(),
            vanished: inv.vanished.len(),
            names_cut: locks
                .iter()
                .filter(|l| {
                    crate::locks::was_cut(&l.hostname) || crate::locks::was_cut(&l.username)
                })
                .count(),
            holders: holders.len(),
        };
        Report {
            repository: repository.to_string(),
            repository_id: repository_id.to_string(),
            repository_version,
            checked_on: host.hostname().to_string(),
            checked_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            counts,
            holders,
            locks,
            unreadable: inv.unreadable,
            ignored: inv.ignored,
            vanished: inv.vanished,
            incomplete: inv.incomplete,
            peers: peers.status.clone(),
            storage_clock: Some(storage),
        }
    }
}
