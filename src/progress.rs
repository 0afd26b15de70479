//! A progress line on stderr while a slow listing or read goes on: only when stderr is a
//! terminal, and only once a second has passed, so quick runs and pipes see nothing.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Progress {
    /// Entries to read, once the listing is done.
    pub total: AtomicUsize,
    pub listed: AtomicBool,
    /// Files read so far.
    pub read: Arc<AtomicUsize>,
    finished: AtomicBool,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress::default())
    }

    pub fn set_listed(&self, total: usize) {
        self.total.store(total, Ordering::Relaxed);
        self.listed.store(true, Ordering::Relaxed);
    }

    pub fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
    }

    fn line(&self) -> String {
        if self.listed.load(Ordering::Relaxed) {
            format!(
                "locksmith: reading locks {}/{}",
                self.read.load(Ordering::Relaxed),
                self.total.load(Ordering::Relaxed)
            )
        } else {
            "locksmith: listing locks…".to_string()
        }
    }
}

/// Shows `p` until it finishes; returns at once when stderr is not a terminal.
pub async fn show(p: Arc<Progress>) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let mut waited = Duration::ZERO;
    let mut shown = false;
    while !p.finished.load(Ordering::Relaxed) {
        if waited >= Duration::from_secs(1) {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K{}", p.line());
            let _ = err.flush();
            shown = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    if shown {
        let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
    }
}
