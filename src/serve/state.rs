//! What serve keeps on disk: the history and each repository's last reading, so a
//! restart goes on where it stopped (see [`crate::history`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use crate::history::{History, Place, Recorder, Restored, Retention, Store, StoreError};

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
    /// One client read at a time, waited for without a thread.
    reader: Arc<tokio::sync::Mutex<Store>>,
    /// History answers being read or sent at once: each holds up to [`MAX_LIVES`] lives
    /// per repository until its client has it.
    answers: Arc<tokio::sync::Semaphore>,
    keep: Retention,
    /// Damaged databases set aside at start (`locksmith_history_set_aside_total`).
    pub set_aside: u64,
    /// This serve's hold on the state directory.
    _lock: Option<crate::history::DirLock>,
}

/// History answers in flight at once (the page's timeline and `/api/v1/history`).
const ANSWERS_AT_ONCE: usize = 4;

/// The most lives per repository an answer to a client holds (`limit`), and the default.
pub const MAX_LIVES: usize = 5000;
pub const DEFAULT_LIVES: usize = 1000;

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
        match crate::history::open_for_serve(&place.dir) {
            Ok(mut opened) => {
                if let Some(aside) = &opened.set_aside {
                    super::log(&format!(
                        "history was damaged: moved to {} and started afresh",
                        aside.display()
                    ));
                }
                opened.writer.bound(o.keep.size)?;
                opened.writer.prune(o.keep, Utc::now())?;
                super::log(&format!("history: {}", opened.writer.path().display()));
                Ok(Some(Kept {
                    set_aside: u64::from(opened.set_aside.is_some()),
                    writer: Arc::new(Mutex::new(opened.writer)),
                    reader: Arc::new(tokio::sync::Mutex::new(opened.reader)),
                    answers: Arc::new(tokio::sync::Semaphore::new(ANSWERS_AT_ONCE)),
                    keep: o.keep,
                    _lock: opened._lock,
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
                    keep: self.keep,
                },
                restored,
            )),
            Err(e) => {
                super::log(&format!("{name}: history off: {e}"));
                None
            }
        }
    }

    /// A slot for one history answer, to hold until the answer is sent; `None` while
    /// every slot is taken.
    pub fn answer_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.answers.clone().try_acquire_owned().ok()
    }

    /// The lives seen since `since` for a client (at most `limit` per repository): one read
    /// at a time, off the runtime, and abandoned (SQLite interrupted) when the client's
    /// request is dropped.
    pub async fn read(
        &self,
        since: chrono::DateTime<Utc>,
        now: chrono::DateTime<Utc>,
        only: Option<String>,
        limit: usize,
    ) -> Result<History, String> {
        let store = self.reader.clone().lock_owned().await;
        let mut interrupt = Interrupt(Some(store.interrupt_handle()));
        let got = tokio::task::spawn_blocking(move || {
            store
                .history_of(since, now, only.as_deref(), Some(limit))
                .map_err(|e| e.to_string())
        })
        .await;
        interrupt.0 = None;
        got.unwrap_or_else(|_| Err("stopped".to_string()))
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

/// Interrupts a read when dropped before it ends: its request was dropped.
struct Interrupt(Option<rusqlite::InterruptHandle>);

impl Drop for Interrupt {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.interrupt();
        }
    }
}

/// One repository's writes into the history, and how they went.
pub struct Keeping {
    recorder: Recorder,
    /// Refreshes not recorded (`locksmith_history_write_failures_total`).
    pub failures: u64,
    last_error: Option<String>,
    /// The bound checked after each write, not only hourly.
    keep: Retention,
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
        let written = tokio::task::block_in_place(|| {
            match got {
                Ok(report) => self.recorder.good(report, changes, Utc::now()),
                Err(_) => self.recorder.failed(changes),
            }?;
            self.recorder.keep_within(self.keep, Utc::now())
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
