//! Reading the history: each repository's lives over a span, with their summary.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;

use super::summary::{self, Summary};
use super::{Store, StoreError, time};
use crate::report::{Ended, HolderKey, Life, Span, Worst};

/// The columns [`life`] reads, from `holders h` joined with `repositories r`. A held
/// life was last seen at its repository's last reading.
pub(super) const LIFE_COLUMNS: &str = "h.id, h.hostname, h.username, h.pid, h.exclusive,
    h.earlier, h.first_seen, h.held_since, COALESCE(h.last_seen, r.read_at, h.first_seen),
    h.ended_at, h.ended, h.worst, h.stale, h.lock_ids";

pub(super) fn life(r: &rusqlite::Row) -> rusqlite::Result<Life> {
    let ended: Option<String> = r.get(10)?;
    let worst: Option<String> = r.get(11)?;
    let ids: String = r.get(13)?;
    Ok(Life {
        id: r.get(0)?,
        span: Span {
            key: HolderKey {
                hostname: r.get(1)?,
                username: r.get(2)?,
                pid: r.get(3)?,
                exclusive: r.get(4)?,
                earlier: r.get(5)?,
            },
            first_seen: time(r.get(6)?),
            held_since: time(r.get(7)?),
            last_seen: time(r.get(8)?),
            ended_at: r.get::<_, Option<i64>>(9)?.map(time),
            ended: ended.as_deref().and_then(Ended::named),
            worst: worst.as_deref().and_then(Worst::named),
        },
        stale: r.get(12)?,
        lock_ids: ids.split_whitespace().map(str::to_string).collect(),
    })
}

/// `locksmith history --json` and `/api/v1/history`.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    #[serde(serialize_with = "crate::verdict::ser_time")]
    pub since: DateTime<Utc>,
    #[serde(serialize_with = "crate::verdict::ser_time")]
    pub until: DateTime<Utc>,
    pub repositories: Vec<RepositoryHistory>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepositoryHistory {
    pub name: String,
    /// The lives seen in the span, in the order they began (the newest, where limited).
    pub holders: Vec<Life>,
    /// Lives of the span left out by a limit (the oldest).
    pub omitted: usize,
    pub summary: Summary,
}

impl Store {
    /// The lives seen between `since` and `now`, per repository (`only`: that one alone).
    pub fn history(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        only: Option<&str>,
    ) -> Result<History, StoreError> {
        self.history_of(since, now, only, None)
    }

    /// As [`Store::history`], with at most `limit` lives per repository (the newest):
    /// what an answer to a client holds is bounded whatever the history holds.
    pub fn history_of(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        only: Option<&str>,
        limit: Option<usize>,
    ) -> Result<History, StoreError> {
        let names = self.names(only).map_err(|e| self.sql(e))?;
        let mut repositories = Vec::new();
        for (id, name) in names {
            let (holders, omitted) = self.lives(id, since, limit).map_err(|e| self.sql(e))?;
            let summary = summary::summarise(&holders, since, now);
            repositories.push(RepositoryHistory {
                name,
                holders,
                omitted,
                summary,
            });
        }
        Ok(History {
            since,
            until: now,
            repositories,
        })
    }

    fn names(&self, only: Option<&str>) -> rusqlite::Result<Vec<(i64, String)>> {
        let mut st = self.conn.prepare(
            "SELECT id, name FROM repositories WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
        )?;
        let rows = st.query_map([only], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect()
    }

    /// The newest `limit` lives of `repo` seen since `since`, oldest first, and how many
    /// more there were.
    fn lives(
        &self,
        repo: i64,
        since: DateTime<Utc>,
        limit: Option<usize>,
    ) -> rusqlite::Result<(Vec<Life>, usize)> {
        const SEEN: &str = "h.repo = ?1 AND COALESCE(h.last_seen, r.read_at, h.first_seen) >= ?2";
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {LIFE_COLUMNS} FROM holders h JOIN repositories r ON r.id = h.repo
             WHERE {SEEN}
             ORDER BY h.held_since DESC, h.hostname DESC, h.username DESC, h.pid DESC,
               h.exclusive DESC
             LIMIT ?3"
        ))?;
        let cap = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let rows = st.query_map(params![repo, since.timestamp(), cap], life)?;
        let mut lives = rows.collect::<rusqlite::Result<Vec<Life>>>()?;
        lives.reverse();
        let omitted = match limit {
            Some(n) if lives.len() >= n => {
                let all: i64 = self.conn.query_row(
                    &format!(
                        "SELECT COUNT(*) FROM holders h JOIN repositories r ON r.id = h.repo
                         WHERE {SEEN}"
                    ),
                    params![repo, since.timestamp()],
                    |r| r.get(0),
                )?;
                usize::try_from(all)
                    .unwrap_or(0)
                    .saturating_sub(lives.len())
            }
            _ => 0,
        };
        Ok((lives, omitted))
    }
}

/// What the history knows of a holder's hold: since when it holds (where serve saw it
/// begin), and how long its host's holds of that kind last when their holder lives to
/// the end (the median of the last ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub held_since: Option<DateTime<Utc>>,
    pub typical: Option<chrono::Duration>,
    pub samples: usize,
}

/// How many ended holds a typical hold is drawn from, and the fewest that make one.
const TYPICAL_OF: i64 = 20;
const TYPICAL_FROM: usize = 3;

impl Store {
    /// `hostname`'s hold of kind `exclusive` by `pid` in the repository whose ID is
    /// `repository_id`: see [`Expected`].
    pub fn expected(
        &self,
        repository_id: &str,
        hostname: &str,
        pid: i64,
        exclusive: bool,
    ) -> Result<Expected, StoreError> {
        let held_since = self
            .conn
            .query_row(
                "SELECT MIN(h.held_since) FROM holders h JOIN repositories r ON r.id = h.repo
                 WHERE r.repository_id = ?1 AND h.hostname = ?2 AND h.pid = ?3
                   AND h.exclusive = ?4 AND h.ended IS NULL",
                params![repository_id, hostname, pid, exclusive],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map_err(|e| self.sql(e))?
            .map(time);
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT h.ended_at - h.held_since FROM holders h
                 JOIN repositories r ON r.id = h.repo
                 WHERE r.repository_id = ?1 AND h.hostname = ?2 AND h.exclusive = ?3
                   AND h.ended = 'gone' AND h.stale = 0 AND h.ended_at IS NOT NULL
                 ORDER BY h.ended_at DESC LIMIT ?4",
            )
            .map_err(|e| self.sql(e))?;
        let mut holds: Vec<i64> = st
            .query_map(
                params![repository_id, hostname, exclusive, TYPICAL_OF],
                |r| r.get(0),
            )
            .and_then(|rows| rows.collect())
            .map_err(|e| self.sql(e))?;
        holds.sort_unstable();
        let typical = (holds.len() >= TYPICAL_FROM)
            .then(|| chrono::Duration::seconds(holds[holds.len() / 2].max(0)));
        Ok(Expected {
            held_since,
            typical,
            samples: holds.len(),
        })
    }
}
