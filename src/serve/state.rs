//! What serve keeps on disk: the history and each repository's last reading, so a
//! restart goes on where it stopped (see [`crate::history`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use crate::history::{Place, Recorder, Restored, Retention, Store, StoreError};

/// `--state-dir` and retention; `None` in [`super::ServeOptions`]: `--no-history`.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    /// `None`: no state directory could be found.
    pub place: Option<Place>,
    pub keep: Retention,
}

/// The open history: one connection writes (every repository's recorder), another
/// answers the endpoints (WAL: it never waits for the writer).
pub struct Kept {
    writer: Arc<Mutex<Store>>,
    reader: Mutex<Store>,
    keep: Retention,
}

/// How often the retention is applied.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Kept {
    /// The history asked for. A state directory given that cannot be used is an error;
    /// the default one only turns the history off, with a line in the log.
    pub fn open(o: &HistoryOptions) -> Result<Option<Kept>, StoreError> {
        let Some(place) = &o.place else {
            super::log("history off: no state directory (--state-dir)");
            return Ok(None);
        };
        let opened =
            Store::open(&place.dir).and_then(|w| Ok((w, Store::open_existing(&place.dir)?)));
        match opened {
            Ok((mut writer, reader)) => {
                writer.prune(o.keep, Utc::now())?;
                super::log(&format!("history: {}", writer.path().display()));
                Ok(Some(Kept {
                    writer: Arc::new(Mutex::new(writer)),
                    reader: Mutex::new(reader),
                    keep: o.keep,
                }))
            }
            Err(e) if !place.chosen => {
                super::log(&format!("history off: {e}"));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `name`'s writer, and what was kept of it (nothing, with a line in the log, if the
    /// history cannot be read).
    pub fn keeping(&self, name: &str) -> Option<(Keeping, Restored)> {
        match Recorder::open(self.writer.clone(), name) {
            Ok((recorder, restored)) => Some((
                Keeping {
                    recorder,
                    failures: 0,
                    last_error: None,
                },
                restored,
            )),
            Err(e) => {
                super::log(&format!("{name}: history off: {e}"));
                None
            }
        }
    }

    pub fn reader(&self) -> std::sync::MutexGuard<'_, Store> {
        self.reader.lock().expect("not poisoned")
    }

    /// Applies the retention every hour, for as long as serve runs.
    pub async fn prune_hourly(self: Arc<Kept>) {
        loop {
            tokio::time::sleep(PRUNE_EVERY).await;
            let pruned = tokio::task::block_in_place(|| {
                self.writer
                    .lock()
                    .expect("not poisoned")
                    .prune(self.keep, Utc::now())
            });
            if let Err(e) = pruned {
                super::log(&format!("history: retention failed: {e}"));
            }
        }
    }
}

/// One repository's writes into the history, and how they went.
pub struct Keeping {
    recorder: Recorder,
    /// Refreshes not recorded (`locksmith_history_write_failures_total`).
    pub failures: u64,
    last_error: Option<String>,
}

impl Keeping {
    /// Records a refresh's outcome and the lives it changed; a failure is counted, and
    /// logged when it differs from the last one.
    pub fn record(
        &mut self,
        name: &str,
        got: &Result<crate::report::Report, crate::error::Error>,
        changes: &[crate::report::Life],
    ) {
        let written = tokio::task::block_in_place(|| match got {
            Ok(report) => self.recorder.good(report, changes, Utc::now()),
            Err(_) => self.recorder.failed(changes),
        });
        let why = written.err().map(|e| e.to_string());
        if let Some(w) = why
            .as_deref()
            .filter(|w| Some(*w) != self.last_error.as_deref())
        {
            super::log(&format!("{name}: history not written: {w}"));
        }
        self.failures += u64::from(why.is_some());
        self.last_error = why;
    }
}
