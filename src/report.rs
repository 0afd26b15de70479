//! What `locksmith locks` shows: one judged inventory, as a table or as one JSON document.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::locks::{Ignored, Inventory, LockEntry, Unreadable};
use crate::printable::printable as p;
use crate::process::HostView;
use crate::restic::short_id as short;
use crate::verdict::{Holder, Verdict, human_age, judge};

#[derive(Debug, Clone, Serialize)]
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
}

#[derive(Debug, Clone, Serialize)]
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
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub repository: String,
    pub repository_id: String,
    pub repository_version: u32,
    /// The host the verdicts were reached on.
    pub checked_on: String,
    pub checked_at: String,
    pub counts: Counts,
    pub locks: Vec<JudgedLock>,
    pub unreadable: Vec<Unreadable>,
    pub ignored: Vec<Ignored>,
    pub vanished: Vec<String>,
    /// Why the inventory is incomplete, when it is (entries not read by the deadline).
    pub incomplete: Option<String>,
}

impl Report {
    pub fn new(
        repository: &str,
        repository_id: &str,
        repository_version: u32,
        inv: Inventory,
        now: DateTime<Utc>,
        host: &dyn HostView,
    ) -> Report {
        let locks: Vec<JudgedLock> = inv
            .locks
            .into_iter()
            .map(|LockEntry { id, lock }| JudgedLock {
                verdict: judge(&lock, now, host),
                time: lock.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                id,
                exclusive: lock.exclusive,
                hostname: lock.hostname,
                username: lock.username,
                pid: lock.pid,
                uid: lock.uid,
                gid: lock.gid,
            })
            .collect();
        let exclusive = locks.iter().filter(|l| l.exclusive).count();
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
        };
        Report {
            repository: repository.to_string(),
            repository_id: repository_id.to_string(),
            repository_version,
            checked_on: host.hostname().to_string(),
            checked_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            counts,
            locks,
            unreadable: inv.unreadable,
            ignored: inv.ignored,
            vanished: inv.vanished,
            incomplete: inv.incomplete,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serialises")
    }

    /// The JSON document and a newline, streamed: a report of 100,000 locks is not built
    /// as one string first.
    pub fn write_json(&self, w: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut w = std::io::BufWriter::new(w);
        serde_json::to_writer_pretty(&mut w, self).map_err(std::io::Error::from)?;
        w.write_all(b"\n")?;
        w.flush()
    }

    /// The operator's view: a header with the counts, one row per lock, then what could
    /// not be read and what was set aside.
    pub fn to_table(&self) -> String {
        let c = &self.counts;
        let mut out = format!(
            "repository {}  id {}  format {}  checked on {}\n",
            p(&self.repository),
            p(short(&self.repository_id)),
            self.repository_version,
            p(&self.checked_on)
        );
        if c.total == 0 {
            out.push_str("no locks");
        } else {
            out.push_str(&format!(
                "{} lock{} ({} exclusive, {} shared): {} stale, {} removed by restic unlock, {} unsafe",
                c.total,
                if c.total == 1 { "" } else { "s" },
                c.exclusive,
                c.non_exclusive,
                c.stale,
                c.restic_unlock_removes,
                c.unsafe_
            ));
        }
        out.push_str(&format!(
            " · {} unreadable · {} ignored\n",
            c.unreadable, c.ignored
        ));
        if !self.locks.is_empty() {
            out.push('\n');
            out.push_str(&self.lock_rows());
        }
        let warnings: Vec<_> = self.locks.iter().filter(|l| l.verdict.unsafe_).collect();
        if !warnings.is_empty() {
            out.push_str("\nunsafe to unlock with restic:\n");
            for l in warnings {
                out.push_str(&format!("  {}  {}\n", short(&l.id), p(&l.verdict.reason)));
            }
        }
        if !self.unreadable.is_empty() {
            out.push_str(&format!(
                "\nunreadable — {}:\n",
                crate::locks::UNREADABLE_EFFECT
            ));
            for u in &self.unreadable {
                out.push_str(&format!("  {}  {}\n", p(short(&u.id)), p(&u.error)));
            }
        }
        if !self.ignored.is_empty() {
            out.push_str("\nignored:\n");
            for i in &self.ignored {
                out.push_str(&format!("  {}  {}\n", p(&i.name), i.reason.describe()));
            }
        }
        if !self.vanished.is_empty() {
            out.push_str(&format!(
                "\n{} lock(s) vanished while reading (a refresh or an exit)\n",
                self.vanished.len()
            ));
        }
        out
    }

    fn lock_rows(&self) -> String {
        let header = [
            "ID",
            "TYPE",
            "HELD BY",
            "PID",
            "AGE",
            "HOLDER",
            "STALE",
            "RESTIC UNLOCK",
        ];
        let rows: Vec<[String; 8]> = self
            .locks
            .iter()
            .map(|l| {
                let v = &l.verdict;
                let age = if v.clock_skew {
                    format!("{} (future)", human_age(v.age_seconds))
                } else {
                    human_age(v.age_seconds)
                };
                let holder = match v.holder {
                    Holder::Alive => "alive",
                    Holder::Gone => "gone",
                    Holder::Reused => "reused",
                    Holder::Unknown if v.abandoned => "unknown (abandoned?)",
                    Holder::Unknown => "unknown",
                };
                let restic = match (v.restic_unlock_removes, v.unsafe_) {
                    (true, true) => "removes  UNSAFE",
                    (false, true) => "keeps, SIGHUPs a stranger  UNSAFE",
                    (true, false) => "removes",
                    (false, false) => "keeps",
                };
                [
                    short(&l.id).to_string(),
                    if l.exclusive { "exclusive" } else { "shared" }.to_string(),
                    format!("{}@{} ({})", p(&l.username), p(&l.hostname), l.uid),
                    l.pid.to_string(),
                    age,
                    holder.to_string(),
                    if v.stale { "yes" } else { "no" }.to_string(),
                    restic.to_string(),
                ]
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(w - cell.chars().count() + 2));
                }
            }
            s.push('\n');
            s
        };
        let mut out = line(&header.map(String::from));
        for r in &rows {
            out.push_str(&line(r));
        }
        out
    }
}
