//! The JSON documents: `locks --json` (one report), and `/locks` and `locks --config
//! --json` (every repository with its reading's state).

use serde::Serialize;

use super::{Report, Status};

impl Report {
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
}

/// Locks listed per repository on `/locks` and in `locks --config --json`; the counts and
/// `locks_omitted` say how many more there are (`locks --json` lists every lock).
pub const LOCKS_CAP: usize = 1000;

/// A repository's JSON on `/locks`: the `locks --json` document plus its reading's state.
#[derive(Serialize)]
pub struct RepositoryJson<'a> {
    pub name: &'a str,
    pub refreshed_at: Option<String>,
    pub error: Option<String>,
    /// While serve backs off after a wrong password: when it tries again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<String>,
    /// The reading is the last one before serve restarted (kept in its history), not read
    /// since: `refreshed_at` is its time.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub restored: bool,
    /// Locks past [`LOCKS_CAP`], left out of `locks` (oldest first, so the newest go);
    /// `unreadable`, `ignored` and `vanished` are cut alike, their counts whole.
    pub locks_omitted: usize,
    #[serde(flatten)]
    pub report: Option<std::borrow::Cow<'a, Report>>,
}

impl<'a> RepositoryJson<'a> {
    pub fn of(s: &'a Status) -> RepositoryJson<'a> {
        RepositoryJson {
            name: &s.name,
            refreshed_at: s
                .refreshed_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            error: s.error_text(),
            retry_at: s
                .retry_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            restored: s.restored,
            locks_omitted: s
                .report
                .as_ref()
                .map_or(0, |r| r.locks.len().saturating_sub(LOCKS_CAP)),
            report: s.report.as_deref().map(capped),
        }
    }
}

/// The report with at most [`LOCKS_CAP`] entries in each list (the counts stay whole).
fn capped(r: &Report) -> std::borrow::Cow<'_, Report> {
    let within = |n: usize| n <= LOCKS_CAP;
    if within(r.locks.len())
        && within(r.holders.len())
        && within(r.unreadable.len())
        && within(r.ignored.len())
    {
        return std::borrow::Cow::Borrowed(r);
    }
    fn first<T: Clone>(v: &[T]) -> Vec<T> {
        v[..v.len().min(LOCKS_CAP)].to_vec()
    }
    std::borrow::Cow::Owned(Report {
        repository: r.repository.clone(),
        repository_id: r.repository_id.clone(),
        repository_version: r.repository_version,
        checked_on: r.checked_on.clone(),
        checked_at: r.checked_at.clone(),
        peers: r.peers.clone(),
        counts: r.counts.clone(),
        holders: first(&r.holders),
        locks: first(&r.locks),
        unreadable: first(&r.unreadable),
        ignored: first(&r.ignored),
        vanished: first(&r.vanished),
        incomplete: r.incomplete.clone(),
        storage_clock: r.storage_clock,
    })
}

/// Every repository's reading, in order.
#[derive(Serialize)]
pub struct Document<'a> {
    pub repositories: Vec<RepositoryJson<'a>>,
}

impl<'a> Document<'a> {
    pub fn of(statuses: &'a [Status]) -> Document<'a> {
        Document {
            repositories: statuses.iter().map(RepositoryJson::of).collect(),
        }
    }

    /// Pretty-printed, with a trailing newline.
    pub fn render(&self) -> String {
        serde_json::to_string_pretty(self).expect("a document serialises") + "\n"
    }
}
