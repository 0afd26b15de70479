//! What `locksmith locks` shows: one judged inventory, as a table or as one JSON document.

use anstyle::Style;
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

impl Counts {
    /// The counts line of the table and the status page, up to the unsafe count.
    pub fn headline(&self) -> String {
        format!(
            "{} lock{} ({} exclusive, {} shared): {} stale, {} removed by restic unlock",
            self.total,
            if self.total == 1 { "" } else { "s" },
            self.exclusive,
            self.non_exclusive,
            self.stale,
            self.restic_unlock_removes,
        )
    }
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

/// The colours of the table, whole rows at a time (so column widths stay those of the
/// text): unsafe red, stale or removable yellow, a live holder green. The caller's stream
/// (`anstream`) drops them when colour is off; the unlock log never has them.
fn row_style(v: &Verdict) -> Style {
    use anstyle::AnsiColor;
    match Tone::of(v) {
        Tone::Unsafe => Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
        Tone::Removable => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
        Tone::Alive => Style::new().fg_color(Some(AnsiColor::Green.into())),
        Tone::Plain => Style::new(),
    }
}

/// How a lock row reads at a glance, in the table's colours and the status page's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Unsafe,
    Removable,
    Alive,
    Plain,
}

impl Tone {
    pub fn of(v: &Verdict) -> Tone {
        if v.unsafe_ {
            Tone::Unsafe
        } else if v.stale || v.restic_unlock_removes {
            Tone::Removable
        } else if v.holder == Holder::Alive {
            Tone::Alive
        } else {
            Tone::Plain
        }
    }
}

/// The lock table's columns.
pub const TABLE_HEADER: [&str; 8] = [
    "ID",
    "TYPE",
    "HELD BY",
    "PID",
    "AGE",
    "HOLDER",
    "STALE",
    "RESTIC UNLOCK",
];

impl JudgedLock {
    /// The lock's row in the table (and on the status page), control characters escaped.
    pub fn table_cells(&self) -> [String; 8] {
        let v = &self.verdict;
        let age = if v.clock_skew {
            format!("{} (future)", human_age(v.age_seconds))
        } else {
            human_age(v.age_seconds)
        };
        let holder = match v.holder {
            Holder::Unknown if v.abandoned => "unknown (abandoned?)",
            h => h.as_str(),
        };
        let restic = match (v.restic_unlock_removes, v.unsafe_) {
            (true, true) => "removes  UNSAFE",
            (false, true) => "keeps, SIGHUPs a stranger  UNSAFE",
            (true, false) => "removes",
            (false, false) => "keeps",
        };
        [
            short(&self.id).to_string(),
            if self.exclusive {
                "exclusive"
            } else {
                "shared"
            }
            .to_string(),
            format!("{}@{} ({})", p(&self.username), p(&self.hostname), self.uid),
            self.pid.to_string(),
            age,
            holder.to_string(),
            if v.stale { "yes" } else { "no" }.to_string(),
            restic.to_string(),
        ]
    }
}

const UNSAFE: Style = Style::new()
    .fg_color(Some(anstyle::Color::Ansi(anstyle::AnsiColor::Red)))
    .bold();
const DIM: Style = Style::new().dimmed();

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

    /// The report of an opened repository's inventory, judged from `host` now.
    pub fn of(
        cfg: &crate::config::RepoConfig,
        repo: &crate::repo::Repository,
        inv: Inventory,
        host: &dyn HostView,
    ) -> Report {
        Report::new(
            cfg.masked.as_str(),
            &repo.id,
            repo.version,
            inv,
            Utc::now(),
            host,
        )
    }

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
    /// The table as plain text (no colour).
    pub fn to_table(&self) -> String {
        let mut out = anstream::StripStream::new(Vec::new());
        self.write_table(&mut out).expect("writing to memory");
        String::from_utf8(out.into_inner()).expect("the table is UTF-8")
    }

    /// The table, streamed: rows are formatted as they are written (twice: once for the
    /// column widths), never all held at once.
    pub fn write_table(&self, w: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut w = std::io::BufWriter::new(w);
        let c = &self.counts;
        writeln!(
            w,
            "repository {}  id {}  format {}  checked on {}",
            p(&self.repository),
            p(short(&self.repository_id)),
            self.repository_version,
            p(&self.checked_on)
        )?;
        if c.total == 0 {
            write!(w, "no locks")?;
        } else {
            write!(w, "{}, {} unsafe", c.headline(), c.unsafe_)?;
        }
        writeln!(w, " · {} unreadable · {} ignored", c.unreadable, c.ignored)?;
        if !self.locks.is_empty() {
            writeln!(w)?;
            self.write_lock_rows(&mut w)?;
        }
        let mut warnings = self.locks.iter().filter(|l| l.verdict.unsafe_).peekable();
        if warnings.peek().is_some() {
            writeln!(w, "\n{UNSAFE}unsafe to unlock with restic:{UNSAFE:#}")?;
            for l in warnings {
                writeln!(
                    w,
                    "  {}  {UNSAFE}{}{UNSAFE:#}",
                    short(&l.id),
                    p(&l.verdict.reason)
                )?;
            }
        }
        if !self.unreadable.is_empty() {
            writeln!(w, "\nunreadable — {}:", crate::locks::UNREADABLE_EFFECT)?;
            for u in &self.unreadable {
                writeln!(w, "{DIM}  {}  {}{DIM:#}", p(short(&u.id)), p(&u.error))?;
            }
        }
        if !self.ignored.is_empty() {
            writeln!(w, "\nignored:")?;
            for i in &self.ignored {
                writeln!(w, "  {}  {}", p(&i.name), i.reason.describe())?;
            }
        }
        if !self.vanished.is_empty() {
            writeln!(
                w,
                "\n{} lock(s) vanished while reading (a refresh or an exit)",
                self.vanished.len()
            )?;
        }
        w.flush()
    }

    fn write_lock_rows(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let cells = JudgedLock::table_cells;
        let mut widths = TABLE_HEADER.map(|h| h.chars().count());
        for l in &self.locks {
            for (w, cell) in widths.iter_mut().zip(cells(l)) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut line = |row: &[String], style: Style| -> std::io::Result<()> {
            write!(w, "{style}")?;
            for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
                if i + 1 == row.len() {
                    write!(w, "{cell}")?;
                } else {
                    write!(w, "{cell}{}", " ".repeat(width - cell.chars().count() + 2))?;
                }
            }
            writeln!(w, "{style:#}")
        };
        line(&TABLE_HEADER.map(String::from), Style::new().bold())?;
        for l in &self.locks {
            line(&cells(l), row_style(&l.verdict))?;
        }
        Ok(())
    }
}
