//! The last reading of one repository, as every endpoint and one-shot output shows it.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Report;
use crate::error::Error;

/// What reading a repository has cost so far (counters for `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Costs {
    /// Times the key was derived from the password (scrypt).
    pub key_derivations: u64,
    /// Lock files read from the backend.
    pub lock_files_read: u64,
    /// Refreshes that failed.
    pub failures: u64,
}

/// One repository's state: the last good reading, kept while later readings fail.
#[derive(Debug, Clone, Default)]
pub struct Status {
    pub name: String,
    /// The masked location, once resolved.
    pub location: Option<String>,
    /// The last good reading: kept while later refreshes fail.
    pub report: Option<Arc<Report>>,
    /// When `report` was read.
    pub refreshed_at: Option<DateTime<Utc>>,
    /// Why the last reading failed (`None` when it worked).
    pub error: Option<Arc<Error>>,
    /// Seconds the last reading took.
    pub duration: Option<f64>,
    pub costs: Costs,
    /// serve: seconds an exclusive lock was held over the readings it saw.
    pub exclusive_held_seconds: Option<f64>,
    /// serve: when the next attempt is, while it backs off after a wrong password.
    pub retry_at: Option<DateTime<Utc>>,
    /// serve: `report` is the last reading before a restart, from the history, not yet
    /// read again.
    pub restored: bool,
    /// serve with a history: refreshes it could not record there.
    pub history_failures: Option<u64>,
}

impl Status {
    /// A one-shot reading (`locks --textfile`, `locks --config --json`) of `duration`
    /// seconds. The report is moved in, not copied: it may hold 100,000 locks.
    pub fn of_run(name: &str, got: Result<Report, Error>, duration: f64) -> Status {
        let (report, error) = match got {
            Ok(r) => (Some(Arc::new(r)), None),
            Err(e) => (None, Some(Arc::new(e))),
        };
        let failures = u64::from(error.is_some());
        let read = report.as_ref().map_or(0, |r| {
            (r.counts.total + r.counts.unreadable + r.counts.vanished) as u64
        });
        Status {
            name: name.to_string(),
            location: report.as_ref().map(|r| r.repository.clone()),
            refreshed_at: report.as_ref().map(|_| Utc::now()),
            error,
            report,
            duration: Some(duration),
            costs: Costs {
                key_derivations: 1,
                lock_files_read: read,
                failures,
            },
            exclusive_held_seconds: None,
            retry_at: None,
            restored: false,
            history_failures: None,
        }
    }

    /// Whether the last reading worked (never read is not a success, nor is a reading
    /// restored from before a restart).
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.refreshed_at.is_some() && !self.restored
    }

    /// The error as it is shown (secrets were scrubbed where it was made).
    pub fn error_text(&self) -> Option<String> {
        self.error.as_ref().map(|e| e.to_string())
    }
}
