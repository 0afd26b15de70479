//! Holders followed over time: what serve remembers of a repository's jobs between
//! readings, and the life of each as the history keeps it. [`Memory::update`] is pure:
//! it carries earlier readings into a report and says which lives changed; the store
//! writes those (and only those: a quiet refresh changes none).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::Report;
use super::holders::{HolderKey, JudgedHolder, ser_opt_time, ser_time};

/// A job missing from a reading of an unbroken watch has ended. Across a gap (a restart,
/// an unreadable spell) a holder of the same key is the same job when it still has one of
/// the lock files seen, or when the gap was shorter than this: restic replaces its file
/// every 5 minutes, so a longer gap cannot tell a job from the next one with that PID.
pub const SAME_JOB_ACROSS: Duration = Duration::minutes(10);

/// How a holder's life ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ended {
    /// Its lock files went by themselves (the job finished, or someone else removed them).
    Gone,
    /// An `unlock` of ours removed them.
    Removed,
    /// Still there when the repository could no longer be read.
    Unreadable,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Gone => "gone",
            Ended::Removed => "removed",
            Ended::Unreadable => "unreadable",
        }
    }

    pub fn named(s: &str) -> Option<Ended> {
        [Ended::Gone, Ended::Removed, Ended::Unreadable]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

/// The worst verdict a holder reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Worst {
    Stale,
    Unsafe,
}

impl Worst {
    pub fn of(h: &JudgedHolder) -> Option<Worst> {
        if h.unsafe_ {
            Some(Worst::Unsafe)
        } else if h.stale {
            Some(Worst::Stale)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Worst::Stale => "stale",
            Worst::Unsafe => "unsafe",
        }
    }

    pub fn named(s: &str) -> Option<Worst> {
        [Worst::Stale, Worst::Unsafe]
            .into_iter()
            .find(|w| w.as_str() == s)
    }
}

/// What the history shows of a job, and `/locks` of a current one (in the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// `hostname`, `username`, `pid`, `exclusive`.
    #[serde(flatten)]
    pub key: HolderKey,
    /// Its earliest lock time seen (in serve, across every replacement it watched), or
    /// its process's start time where this host can tell and it is earlier.
    #[serde(serialize_with = "ser_time")]
    pub held_since: DateTime<Utc>,
    /// The first reading that saw it (serve: across restarts, with a history).
    #[serde(serialize_with = "ser_time")]
    pub first_seen: DateTime<Utc>,
    /// The last reading that saw it.
    #[serde(serialize_with = "ser_time")]
    pub last_seen: DateTime<Utc>,
    /// The first reading that no longer saw it (or the unlock that removed it); null
    /// while held.
    #[serde(serialize_with = "ser_opt_time")]
    pub ended_at: Option<DateTime<Utc>>,
    pub ended: Option<Ended>,
    /// The worst verdict it reached (serve: over every reading of it).
    pub worst: Option<Worst>,
}

/// One holder's life, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Life {
    /// The store's row (random, so a writer never asks the store for one).
    #[serde(skip)]
    pub id: i64,
    #[serde(flatten)]
    pub span: Span,
    /// Whether its last verdict was stale.
    #[serde(skip)]
    pub stale: bool,
    /// Its lock files at the last reading.
    #[serde(skip)]
    pub lock_ids: Vec<String>,
}

impl Life {
    /// For tests: root's job `pid` 42 on `host`, held from `from` to `to`, ended gone then.
    #[cfg(test)]
    pub fn sample(host: &str, exclusive: bool, from: DateTime<Utc>, to: DateTime<Utc>) -> Life {
        Life {
            id: 1,
            span: Span {
                key: HolderKey {
                    hostname: host.into(),
                    username: "root".into(),
                    pid: 42,
                    exclusive,
                    earlier: false,
                },
                first_seen: from,
                held_since: from,
                last_seen: to,
                ended_at: Some(to),
                ended: Some(Ended::Gone),
                worst: None,
            },
            stale: false,
            lock_ids: vec![],
        }
    }

    /// Seconds it was seen holding: from `held_since` to the last reading that saw it.
    pub fn held_seconds(&self) -> i64 {
        (self.span.last_seen - self.span.held_since)
            .num_seconds()
            .max(0)
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    life: Life,
    /// The reading that last saw it; `None` for a life resumed from the store.
    seen: Option<u64>,
}

/// What serve remembers of a repository's holders between readings.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    tracked: HashMap<HolderKey, Tracked>,
    readings: u64,
    /// The last good reading.
    last: Option<DateTime<Utc>>,
    /// A reading failed since the last good one: the watch was broken.
    broken: bool,
    /// Seconds an exclusive lock was held, over the readings seen.
    pub exclusive_held_seconds: f64,
}

impl Memory {
    /// A memory that goes on from `lives` (still held, or ended unreadable at the last
    /// unreadable spell), as the store kept them before a restart.
    pub fn resume(lives: Vec<Life>) -> Memory {
        let tracked = lives
            .into_iter()
            .map(|life| (life.span.key.clone(), Tracked { life, seen: None }))
            .collect();
        Memory {
            tracked,
            broken: true,
            ..Memory::default()
        }
    }

    /// Carries what earlier readings saw into `report` (a holder keeps the earliest
    /// `held_since`, its first sighting and its worst verdict) and returns the lives that
    /// changed: begun, changed, or ended because this reading no longer has them.
    pub fn update(&mut self, report: &mut Report, now: DateTime<Utc>) -> Vec<Life> {
        let previous = self.readings;
        self.readings += 1;
        let this = self.readings;
        let unbroken = !self.broken;
        let mut changed = Vec::new();
        let mut moved = false;
        for h in &mut report.holders {
            // The common case, a job seen before, in place: no key or life cloned.
            let t = match self.tracked.get_mut(&h.span.key) {
                Some(t) => {
                    let continuous = unbroken && t.seen == Some(previous);
                    if !continuous && !same_job(&t.life, h, now) {
                        if t.life.span.ended.is_none() {
                            changed.push(ended(t.life.clone(), Ended::Gone, now));
                        }
                        t.life = begun(h, now);
                        changed.push(t.life.clone());
                    } else if carry(&mut t.life, h, now) {
                        changed.push(t.life.clone());
                    }
                    t
                }
                None => {
                    let t = match self.rekeyed(h) {
                        // A verdict change is no new job: the life goes on under its key.
                        Some(mut t) => {
                            carry(&mut t.life, h, now);
                            t.life.span.key = h.span.key.clone();
                            changed.push(t.life.clone());
                            t
                        }
                        None => {
                            changed.push(begun(h, now));
                            let life = changed.last().expect("pushed").clone();
                            Tracked { life, seen: None }
                        }
                    };
                    self.tracked.entry(h.span.key.clone()).or_insert(t)
                }
            };
            t.seen = Some(this);
            moved |= t.life.span.held_since != h.span.held_since;
            h.span.held_since = t.life.span.held_since;
            h.span.first_seen = t.life.span.first_seen;
            h.span.worst = t.life.span.worst;
        }
        self.tracked.retain(|_, t| {
            let seen = t.seen == Some(this);
            if !seen && t.life.span.ended.is_none() {
                changed.push(ended(t.life.clone(), Ended::Gone, now));
            }
            seen
        });
        if moved {
            super::holders::sort(&mut report.holders);
        }
        self.count_exclusive(report, now);
        self.broken = false;
        changed
    }

    /// The life of `h` tracked under the other `earlier` (the process that held its PID
    /// ended, or one started), taken out where it holds one of `h`'s lock files.
    fn rekeyed(&mut self, h: &JudgedHolder) -> Option<Tracked> {
        let other = HolderKey {
            earlier: !h.span.key.earlier,
            ..h.span.key.clone()
        };
        let t = self.tracked.get(&other)?;
        let shares = h.lock_ids.iter().any(|id| t.life.lock_ids.contains(id));
        (shares && t.life.span.ended.is_none()).then(|| self.tracked.remove(&other))?
    }

    /// A reading failed: every life still held ends `unreadable` (once per spell), and is
    /// taken up again if a later reading finds the same job.
    pub fn unreadable(&mut self, now: DateTime<Utc>) -> Vec<Life> {
        self.broken = true;
        let mut changed = Vec::new();
        for t in self.tracked.values_mut() {
            if t.life.span.ended.is_none() {
                t.life = ended(t.life.clone(), Ended::Unreadable, now);
                changed.push(t.life.clone());
            }
        }
        changed
    }

    fn count_exclusive(&mut self, report: &Report, now: DateTime<Utc>) {
        let exclusive_since = report
            .holders
            .iter()
            .filter(|h| h.span.key.exclusive)
            .map(|h| h.span.held_since)
            .min();
        if let (Some(last), Some(since)) = (self.last, exclusive_since) {
            let from = since.max(last);
            self.exclusive_held_seconds += (now - from).num_milliseconds().max(0) as f64 / 1000.0;
        }
        self.last = Some(now);
    }
}

/// Across a gap: the same job when a lock file seen before is still there, or the gap was
/// short (see [`SAME_JOB_ACROSS`]).
fn same_job(life: &Life, h: &JudgedHolder, now: DateTime<Utc>) -> bool {
    h.lock_ids.iter().any(|id| life.lock_ids.contains(id))
        || now - life.span.last_seen <= SAME_JOB_ACROSS
}

fn ended(mut life: Life, how: Ended, now: DateTime<Utc>) -> Life {
    life.span.ended = Some(how);
    life.span.ended_at = Some(now);
    life
}

/// Carries `life` on with `h` (taken up again if it had ended unreadable); whether it now
/// differs from what the store has (beyond the time last seen, which the store keeps per
/// repository while a life is held).
fn carry(life: &mut Life, h: &JudgedHolder, now: DateTime<Utc>) -> bool {
    let worst = life.span.worst.max(Worst::of(h));
    let held_since = life.span.held_since.min(h.span.held_since);
    let differs = life.span.ended.is_some()
        || held_since != life.span.held_since
        || worst != life.span.worst
        || h.stale != life.stale
        || life.lock_ids != h.lock_ids;
    life.span.last_seen = now;
    if differs {
        life.span.held_since = held_since;
        life.span.worst = worst;
        life.stale = h.stale;
        life.span.ended = None;
        life.span.ended_at = None;
        life.lock_ids.clone_from(&h.lock_ids);
    }
    differs
}

/// A new life for `h`, first seen now.
fn begun(h: &JudgedHolder, now: DateTime<Utc>) -> Life {
    Life {
        id: new_id(),
        span: Span {
            first_seen: now,
            last_seen: now,
            ended_at: None,
            ended: None,
            worst: Worst::of(h),
            ..h.span.clone()
        },
        stale: h.stale,
        lock_ids: h.lock_ids.clone(),
    }
}

/// A positive random row ID.
pub fn new_id() -> i64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the system's random source works");
    (u64::from_le_bytes(b) >> 1) as i64
}

#[cfg(test)]
mod tests;
