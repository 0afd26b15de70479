//! The operator's table: `locks` without `--json`, and the rows of the status page.

use anstyle::Style;

use super::{JudgedLock, Report};
use crate::printable::printable as p;
use crate::restic::short_id as short;
use crate::verdict::{Holder, Verdict, human_age};

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
