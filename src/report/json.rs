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

/// A repository's JSON on `/locks`: the `locks --json` document plus its reading's state.
#[derive(Serialize)]
pub struct RepositoryJson<'a> {
    pub name: &'a str,
    pub refreshed_at: Option<String>,
    pub error: Option<String>,
    #[serde(flatten)]
    pub report: Option<&'a Report>,
}

impl<'a> RepositoryJson<'a> {
    pub fn of(s: &'a Status) -> RepositoryJson<'a> {
        RepositoryJson {
            name: &s.name,
            refreshed_at: s
                .refreshed_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            error: s.error_text(),
            report: s.report.as_deref(),
        }
    }
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
