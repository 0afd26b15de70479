//! Writing the history: serve's [`Recorder`] (one per repository) and `unlock`'s removals.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Store, StoreError, time};
use crate::report::{Ended, JudgedLock, Life, Report, Span, Worst};

/// What a restart goes on from: the lives still held (or ended by the last unreadable
/// spell) and the last reading, with the time it was last confirmed.
#[derive(Debug, Default)]
pub struct Restored {
    pub lives: Vec<Life>,
    pub reading: Option<(Report, DateTime<Utc>)>,
}

/// One repository's writer.
pub struct Recorder {
    store: Arc<Mutex<Store>>,
    repo: i64,
    /// What the stored reading says ([`fingerprint`]): an unchanged reading is not
    /// written again, only its time.
    saved: Option<u64>,
    /// Lives a failed write did not store (the latest of each): written with the next.
    pending: std::collections::BTreeMap<i64, Life>,
}

/// The most unwritten lives kept while the history cannot be written; past it, the
/// oldest changes are the ones lost (and counted as failed writes meanwhile).
const MAX_PENDING: usize = 100_000;

const PUT: &str = "INSERT INTO holders (id, repo, hostname, username, pid, exclusive, earlier,
      first_seen, held_since, last_seen, ended_at, ended, worst, stale, lock_ids)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
    ON CONFLICT (id) DO UPDATE SET earlier = excluded.earlier, held_since = excluded.held_since,
      last_seen = excluded.last_seen, ended_at = excluded.ended_at, ended = excluded.ended,
      worst = excluded.worst, stale = excluded.stale, lock_ids = excluded.lock_ids
    WHERE holders.ended IS NOT 'removed'";

impl Recorder {
    /// The writer for the repository serve calls `name`, and what was kept of it.
    pub fn open(store: Arc<Mutex<Store>>, name: &str) -> Result<(Recorder, Restored), StoreError> {
        let s = store.lock().expect("not poisoned");
        let (repo, read_at) = s.repository(name)?;
        let lives = s.resumed(repo, read_at).map_err(|e| s.sql(e))?;
        let reading = s.reading(repo).map_err(|e| s.sql(e))?;
        let saved = reading.as_ref().map(fingerprint);
        let reading = reading.zip(read_at.map(time));
        drop(s);
        let recorder = Recorder {
            store,
            repo,
            saved,
            pending: Default::default(),
        };
        Ok((recorder, Restored { lives, reading }))
    }

    /// A good reading: the lives that changed, the time read, and the reading where it
    /// differs from the one stored.
    pub fn good(
        &mut self,
        report: &Report,
        lives: &[Life],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let print = fingerprint(report);
        let blob = (self.saved != Some(print)).then(|| compressed(report));
        let repo = self.repo;
        self.with_pending(lives, |store, lives| {
            store.transaction(|tx| {
                put(tx, repo, lives)?;
                tx.execute(
                    "UPDATE repositories SET read_at = ?1, repository_id = ?2 WHERE id = ?3",
                    params![at.timestamp(), report.repository_id, repo],
                )?;
                if let Some(blob) = &blob {
                    tx.execute(
                        "INSERT INTO readings (repo, report) VALUES (?1, ?2)
                         ON CONFLICT (repo) DO UPDATE SET report = excluded.report",
                        params![repo, blob],
                    )?;
                }
                Ok(())
            })
        })?;
        self.saved = Some(print);
        Ok(())
    }

    /// A failed reading: the lives it ended (unreadable).
    pub fn failed(&mut self, lives: &[Life]) -> Result<(), StoreError> {
        if lives.is_empty() && self.pending.is_empty() {
            return Ok(());
        }
        let repo = self.repo;
        self.with_pending(lives, |store, lives| {
            store.transaction(|tx| put(tx, repo, lives))
        })
    }

    /// Applies `keep` when the database has outgrown its size: the bound holds after every
    /// write, not only at the hourly retention.
    pub fn keep_within(
        &self,
        keep: super::Retention,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut store = self.store.lock().expect("not poisoned");
        if store.used_bytes()? > keep.size {
            store.prune(keep, now)?;
        }
        Ok(())
    }

    /// `write`s `lives` after those a failed write left (a life's latest state wins); on
    /// failure they all wait for the next write.
    fn with_pending(
        &mut self,
        lives: &[Life],
        write: impl FnOnce(&mut Store, &[Life]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let merged: Vec<Life>;
        let all = if self.pending.is_empty() {
            lives
        } else {
            let mut m = std::mem::take(&mut self.pending);
            m.extend(lives.iter().map(|l| (l.id, l.clone())));
            merged = m.into_values().collect();
            &merged
        };
        if let Err(e) = write(&mut self.store.lock().expect("not poisoned"), all) {
            self.pending = all.iter().map(|l| (l.id, l.clone())).collect();
            while self.pending.len() > MAX_PENDING {
                self.pending.pop_first();
            }
            return Err(e);
        }
        Ok(())
    }
}

fn put(tx: &Transaction, repo: i64, lives: &[Life]) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(PUT)?;
    for l in lives {
        // While held, the time last seen is the repository's (one row per refresh).
        let last_seen = l.span.ended.map(|_| l.span.last_seen.timestamp());
        st.execute(params![
            l.id,
            repo,
            l.span.key.hostname,
            l.span.key.username,
            l.span.key.pid,
            l.span.key.exclusive,
            l.span.key.earlier,
            l.span.first_seen.timestamp(),
            l.span.held_since.timestamp(),
            last_seen,
            l.span.ended_at.map(|t| t.timestamp()),
            l.span.ended.map(Ended::as_str),
            l.span.worst.map(Worst::as_str),
            l.stale,
            l.lock_ids.join(" "),
        ])?;
    }
    Ok(())
}

/// What a reading says, beyond the passing of time: its locks and their verdicts, its
/// holders, the entries it could not read.
fn fingerprint(r: &Report) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    for l in &r.locks {
        let v = &l.verdict;
        (
            &l.id,
            v.holder.as_str(),
            v.stale,
            v.unsafe_,
            v.restic_unlock_removes,
        )
            .hash(&mut h);
        (v.abandoned, v.clock_skew).hash(&mut h);
    }
    for x in &r.holders {
        (x.span.held_since, x.span.worst.map(Worst::as_str)).hash(&mut h);
    }
    for u in &r.unreadable {
        (&u.id, &u.error).hash(&mut h);
    }
    for i in &r.ignored {
        i.name.hash(&mut h);
    }
    (&r.vanished, &r.incomplete, &r.repository).hash(&mut h);
    h.finish()
}

fn compressed(r: &Report) -> Vec<u8> {
    let json = serde_json::to_vec(r).expect("a report serialises");
    zstd::bulk::compress(&json, 3).expect("zstd compresses")
}

impl Store {
    /// The repository's row (made if new) and when it was last read.
    fn repository(&self, name: &str) -> Result<(i64, Option<i64>), StoreError> {
        self.conn
            .query_row(
                "INSERT INTO repositories (name) VALUES (?1)
                 ON CONFLICT (name) DO UPDATE SET name = name RETURNING id, read_at",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.sql(e))
    }

    /// Lives still held, and those the last unreadable spell ended (taken up again if the
    /// job is still there).
    fn resumed(&self, repo: i64, read_at: Option<i64>) -> rusqlite::Result<Vec<Life>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {} FROM holders h JOIN repositories r ON r.id = h.repo
             WHERE h.repo = ?1 AND (h.ended IS NULL OR (h.ended = 'unreadable' AND h.ended_at >= ?2))",
            super::read::LIFE_COLUMNS
        ))?;
        let rows = st.query_map(params![repo, read_at.unwrap_or(0)], super::read::life)?;
        rows.collect()
    }

    fn reading(&self, repo: i64) -> rusqlite::Result<Option<Report>> {
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT report FROM readings WHERE repo = ?1", [repo], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(blob.and_then(|b| restored(&b)))
    }

    /// Records what an `unlock` of the repository `repository_id` removed (`shown`: its
    /// masked location, the name it gets if serve never watched it): each lock, and its
    /// holder's life ended `removed`.
    pub fn record_removals(
        &mut self,
        repository_id: &str,
        shown: &str,
        removed: &[&JudgedLock],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.transaction(|tx| removals(tx, repository_id, shown, removed, now))
    }
}

fn removals(
    tx: &Transaction,
    repository_id: &str,
    shown: &str,
    removed: &[&JudgedLock],
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let mut repos: Vec<i64> = tx
        .prepare("SELECT id FROM repositories WHERE repository_id = ?1")?
        .query_map([repository_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if repos.is_empty() {
        repos.push(tx.query_row(
            "INSERT INTO repositories (name, repository_id) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET repository_id = excluded.repository_id RETURNING id",
            [shown, repository_id],
            |r| r.get(0),
        )?);
    }
    let at = now.timestamp();
    for l in removed {
        tx.execute(
            "INSERT INTO removals (repo, at, lock_id, hostname, username, pid, exclusive, time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                repos[0],
                at,
                l.id,
                l.hostname,
                l.username,
                l.pid,
                l.exclusive,
                l.time
            ],
        )?;
    }
    let holders = crate::report::holders::group(
        &removed.iter().map(|l| (*l).clone()).collect::<Vec<_>>(),
        now,
        &crate::process::ThisHost::new(),
        &crate::peer::Consulted::default(),
    );
    for h in holders {
        let mut ended = 0;
        for repo in &repos {
            ended += tx.execute(
                "UPDATE holders SET ended = 'removed', ended_at = ?1, last_seen = ?1
                 WHERE repo = ?2 AND (ended IS NULL OR ended = 'unreadable')
                   AND hostname = ?3 AND username = ?4 AND pid = ?5 AND exclusive = ?6",
                params![
                    at,
                    repo,
                    h.span.key.hostname,
                    h.span.key.username,
                    h.span.key.pid,
                    h.span.key.exclusive
                ],
            )?;
        }
        if ended == 0 {
            let life = Life {
                id: crate::report::lives::new_id(),
                span: Span {
                    ended_at: Some(now),
                    ended: Some(Ended::Removed),
                    ..h.span.clone()
                },
                stale: h.stale,
                lock_ids: h.lock_ids.clone(),
            };
            put(tx, repos[0], &[life])?;
        }
    }
    Ok(())
}

/// A stored reading, or `None` if it cannot be read back (a reading is a convenience:
/// the next refresh replaces it).
fn restored(blob: &[u8]) -> Option<Report> {
    let json = zstd::stream::decode_all(blob).ok()?;
    let mut r: Report = serde_json::from_slice(&json).ok()?;
    for l in &mut r.locks {
        l.at = DateTime::parse_from_rfc3339(&l.time)
            .ok()?
            .with_timezone(&Utc);
    }
    Some(r)
}
