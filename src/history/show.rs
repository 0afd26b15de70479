//! `locksmith history`: the history as a table per repository, or as JSON.

use chrono::Utc;

use super::{History, Life, Place, RepositoryHistory, Store, StoreError};
use crate::duration::{Style, human};
use crate::exit::Exit;
use crate::printable::printable as p;
use crate::report::Tone;
use crate::report::table::write_rows;

const HEADER: [&str; 7] = [
    "HELD BY",
    "PID",
    "TYPE",
    "HELD SINCE",
    "FOR",
    "ENDED",
    "WORST",
];

/// Prints the history of the last `since` (`only`: one repository) from `place`.
pub fn run(place: Option<Place>, since: chrono::Duration, only: Option<&str>, json: bool) -> Exit {
    let got = place
        .ok_or(StoreError::Nowhere)
        .and_then(|place| Store::open_existing(&place.dir))
        .and_then(|store| {
            let now = Utc::now();
            store.history(now - since, now, only)
        });
    let mut history = match got {
        Ok(h) => h,
        Err(e) => {
            eprintln!("locksmith: {}", p(&e.to_string()));
            return match e {
                StoreError::Missing(_) | StoreError::Nowhere => Exit::Config,
                _ => Exit::Other,
            };
        }
    };
    if let Some(name) = only.filter(|_| history.repositories.is_empty()) {
        eprintln!(
            "locksmith: no repository named {:?} in the history",
            p(name)
        );
        return Exit::Config;
    }
    // The advice fits the restic the jobs here run (`RESTIC_BIN`, else restic on PATH).
    let bin = std::env::var_os("RESTIC_BIN").unwrap_or_else(|| "restic".into());
    let restic = crate::unlock::probe(std::path::Path::new(&bin)).version();
    for r in &mut history.repositories {
        r.summary.advice = super::summary::advice(&r.holders, restic);
    }
    let out = anstream::stdout();
    let mut out = out.lock();
    let written = if json {
        serde_json::to_writer_pretty(&mut out, &history)
            .map_err(std::io::Error::from)
            .and_then(|()| std::io::Write::write_all(&mut out, b"\n"))
    } else {
        write_table(&mut out, &history)
    };
    match written {
        Ok(()) => Exit::Ok,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok,
        Err(e) => {
            eprintln!("locksmith: writing the history: {e}");
            Exit::Other
        }
    }
}

fn write_table(w: &mut impl std::io::Write, h: &History) -> std::io::Result<()> {
    if h.repositories.is_empty() {
        writeln!(w, "no repository in the history yet")?;
    }
    for (i, r) in h.repositories.iter().enumerate() {
        if i > 0 {
            writeln!(w)?;
        }
        write_repository(w, r, h)?;
    }
    Ok(())
}

fn write_repository(
    w: &mut impl std::io::Write,
    r: &RepositoryHistory,
    h: &History,
) -> std::io::Result<()> {
    let n = r.holders.len();
    writeln!(
        w,
        "{}: {n} job{} since {}",
        p(&r.name),
        if n == 1 { "" } else { "s" },
        h.since.format("%Y-%m-%d %H:%M UTC")
    )?;
    if n > 0 {
        write_rows(w, HEADER, r.holders.iter().map(|l| (cells(l), tone(l))))?;
    }
    let s = &r.summary;
    for host in &s.hosts {
        writeln!(
            w,
            "  {}: {} exclusive hold{}, longest {}, 95th percentile {}",
            p(&host.hostname),
            host.exclusive_holds,
            if host.exclusive_holds == 1 { "" } else { "s" },
            human(host.longest_exclusive_seconds, Style::Contract),
            human(host.p95_exclusive_seconds, Style::Contract),
        )?;
    }
    writeln!(
        w,
        "  exclusive locks held for {} in all; {} job{} ended stale",
        human(s.exclusive_blocked_seconds, Style::Contract),
        s.ended_stale,
        if s.ended_stale == 1 { "" } else { "s" },
    )?;
    if let Some(advice) = &s.advice {
        writeln!(w, "  {}", p(advice))?;
    }
    Ok(())
}

fn cells(l: &Life) -> [String; 7] {
    let ended = match (l.span.ended, l.span.ended_at) {
        (Some(e), Some(at)) => format!("{} {}", e.as_str(), crate::duration::date_clock(at)),
        _ => "held".to_string(),
    };
    [
        format!("{}@{}", p(&l.span.key.username), p(&l.span.key.hostname)),
        l.span.key.pid.to_string(),
        if l.span.key.exclusive {
            "exclusive"
        } else {
            "shared"
        }
        .to_string(),
        crate::duration::date_clock(l.span.held_since),
        human(l.held_seconds(), Style::Contract),
        ended,
        l.span.worst.map_or("-", |w| w.as_str()).to_string(),
    ]
}

fn tone(l: &Life) -> Tone {
    match l.span.worst {
        Some(super::Worst::Unsafe) => Tone::Unsafe,
        Some(super::Worst::Stale) => Tone::Removable,
        None => Tone::Plain,
    }
}
