//! The operator's table: `locks` without `--json`, and the rows of the status page.

use anstyle::Style;

use super::{JudgedHolder, JudgedLock, Report};
use crate::printable::printable as p;
use crate::restic::short_id as short;
use crate::verdict::{Holder, Verdict, human_age};

/// The colours of the table, whole rows at a time (so column widths stay those of the
/// text): unsafe red, stale or removable yellow, a live holder green. The caller's stream
/// (`anstream`) drops them when colour is off; the unlock log never has them.
fn row_style(tone: Tone) -> Style {
    use anstyle::AnsiColor;
    match tone {
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
        Tone::judged(v.unsafe_, v.stale || v.restic_unlock_removes, v.holder)
    }

    pub fn of_holder(h: &JudgedHolder) -> Tone {
        Tone::judged(h.unsafe_, h.stale || h.restic_unlock_removes, h.holder)
    }

    fn judged(unsafe_: bool, removable: bool, holder: Holder) -> Tone {
        if unsafe_ {
            Tone::Unsafe
        } else if removable {
            Tone::Removable
        } else if holder == Holder::Alive {
            Tone::Alive
        } else {
            Tone::Plain
        }
    }
}

/// The holders table's columns: one row per job, however many lock files it went through.
pub const HOLDER_HEADER: [&str; 8] = [
    "HELD BY",
    "PID",
    "TYPE",
    "HELD SINCE",
    "FOR",
    "LOCKS",
    "HOLDER",
    "STALE",
];

fn kind(exclusive: bool) -> String {
    if exclusive { "exclusive" } else { "shared" }.to_string()
}

/// The HOLDER cell: the verdict, and where it came from when another host decided it.
fn holder_cell(holder: &str, judged_on: Option<&str>, peer_error: bool, here: &str) -> String {
    match judged_on {
        Some(h) if h != here => format!("{holder} (asked {})", p(h)),
        _ if peer_error => format!("{holder} (its host did not answer)"),
        _ => holder.to_string(),
    }
}

impl JudgedHolder {
    /// The holder's row in the table and on the status page; `here`: the host judging.
    pub fn table_cells(&self, here: &str) -> [String; 8] {
        let held = (self.span.last_seen - self.span.held_since)
            .num_seconds()
            .max(0);
        [
            format!(
                "{}@{}",
                p(&self.span.key.username),
                p(&self.span.key.hostname)
            ),
            self.span.key.pid.to_string(),
            kind(self.span.key.exclusive),
            crate::duration::date_clock(self.span.held_since),
            human_age(held),
            self.lock_ids.len().to_string(),
            holder_cell(
                self.holder.as_str(),
                self.judged_on.as_deref(),
                self.peer_error.is_some(),
                here,
            ),
            if self.stale { "yes" } else { "no" }.to_string(),
        ]
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
    /// The lock's row in the table (and on the status page), control characters escaped;
    /// `here`: the host judging.
    pub fn table_cells(&self, here: &str) -> [String; 8] {
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
            kind(self.exclusive),
            format!("{}@{} ({})", p(&self.username), p(&self.hostname), self.uid),
            self.pid.to_string(),
            age,
            holder_cell(holder, v.judged_on.as_deref(), v.peer_error.is_some(), here),
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
    /// The table as plain text (no colour).
    pub fn to_table(&self) -> String {
        let mut out = anstream::StripStream::new(Vec::new());
        self.write_table(&mut out).expect("writing to memory");
        String::from_utf8(out.into_inner()).expect("the table is UTF-8")
    }

    /// The operator's view, streamed: a header with the counts, one row per lock, then what
    /// could not be read and what was set aside. Rows are formatted as they are written (twice: once for the
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
        if !self.peers.is_empty() {
            writeln!(w, "asked: {}", p(&crate::peer::ask::summary(&self.peers)))?;
        }
        if c.total > 0 && self.storage_clock.is_some_and(|s| !s.listed) {
            writeln!(
                w,
                "storage clock: this backend lists no file times, so ages are the locks' own (their writers' clocks)"
            )?;
        }
        if !self.holders.is_empty() {
            writeln!(w, "\nheld by {} job(s):", self.holders.len())?;
            let rows = self
                .holders
                .iter()
                .map(|h| (h.table_cells(&self.checked_on), Tone::of_holder(h)));
            write_rows(&mut w, HOLDER_HEADER, rows)?;
        }
        if !self.locks.is_empty() {
            writeln!(w)?;
            let rows = self
                .locks
                .iter()
                .map(|l| (l.table_cells(&self.checked_on), Tone::of(&l.verdict)));
            write_rows(&mut w, TABLE_HEADER, rows)?;
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
}

/// Rows under `header`, columns as wide as their widest cell. `rows` is walked twice (once
/// for the widths), so a report of 100,000 locks is never held as text at once.
pub(crate) fn write_rows<const N: usize, I>(
    w: &mut impl std::io::Write,
    header: [&str; N],
    rows: I,
) -> std::io::Result<()>
where
    I: Iterator<Item = ([String; N], Tone)> + Clone,
{
    let mut widths = header.map(|h| h.chars().count());
    for (cells, _) in rows.clone() {
        for (w, cell) in widths.iter_mut().zip(cells) {
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
    line(&header.map(String::from), Style::new().bold())?;
    for (cells, tone) in rows {
        line(&cells, row_style(tone))?;
    }
    Ok(())
}
