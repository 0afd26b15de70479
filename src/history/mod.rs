//! The history: every holder's life and each repository's last reading, in one SQLite
//! database in the state directory. serve writes it (one writer; WAL, so `locksmith
//! history` and the endpoints read while it writes), `unlock` records what it removed,
//! and a restart goes on from it.
//!
//! What is written is what changed: a quiet refresh updates one row (the repository's
//! time read); a life is written when it begins, changes (files, verdict) or ends.

mod place;
mod private;
mod read;
mod record;
mod show;
pub mod summary;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};

use crate::report::{Life, Worst};

pub use place::{FILE_NAME, Place, locate};
pub use private::{DirLock, set_aside};
pub use read::{Expected, History, RepositoryHistory};
pub use record::{Recorder, Restored};
pub use show::run;
pub use summary::Summary;

/// How much history is kept: lives ended longer ago than `days` go, and the oldest go
/// first while the database is larger than `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub days: u32,
    pub size: u64,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            days: 90,
            size: 64 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state directory {}: {err}", dir.display())]
    Dir { dir: PathBuf, err: std::io::Error },
    #[error("history {}: {err}", path.display())]
    Sql { path: PathBuf, err: rusqlite::Error },
    #[error(
        "no history at {}: `locksmith serve` writes it there (--state-dir, LOCKSMITH_STATE_DIR)",
        .0.display()
    )]
    Missing(PathBuf),
    #[error(
        "history {}: written by a newer locksmith (schema {found}; this one knows up to {SCHEMA})",
        path.display()
    )]
    Newer { path: PathBuf, found: i64 },
    #[error(
        "no state directory: give --state-dir (or LOCKSMITH_STATE_DIR, STATE_DIRECTORY, XDG_STATE_HOME, HOME)"
    )]
    Nowhere,
    /// The directory or a file in it could be read or changed by someone else.
    #[error("state directory {}: {why}", dir.display())]
    Unsafe { dir: PathBuf, why: String },
    #[error(
        "state directory {}: another locksmith serve{} writes its history: give this one its own --state-dir, or --no-history",
        dir.display(),
        pid.map(|p| format!(" (PID {p})")).unwrap_or_default()
    )]
    Busy { dir: PathBuf, pid: Option<u32> },
    #[error("history {}: damaged ({why})", .path.display())]
    Damaged { path: PathBuf, why: String },
}

impl StoreError {
    /// Whether the database file itself is damaged (not a database, or corrupt): it can
    /// be set aside and the history started afresh.
    pub fn damaged(&self) -> bool {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        matches!(self, StoreError::Sql { err, .. }
            if matches!(err.sqlite_error_code(), Some(DatabaseCorrupt | NotADatabase)))
            || matches!(self, StoreError::Damaged { .. })
    }
}

/// The schema this build writes (`PRAGMA user_version`).
const SCHEMA: i64 = 1;

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS repositories (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    repository_id TEXT,
    read_at INTEGER
);
CREATE TABLE IF NOT EXISTS holders (
    id INTEGER PRIMARY KEY,
    repo INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    hostname TEXT NOT NULL,
    username TEXT NOT NULL,
    pid INTEGER NOT NULL,
    exclusive INTEGER NOT NULL,
    earlier INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    held_since INTEGER NOT NULL,
    last_seen INTEGER,
    ended_at INTEGER,
    ended TEXT,
    worst TEXT,
    stale INTEGER NOT NULL,
    lock_ids TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS holders_by_repo ON holders (repo, ended, held_since);
CREATE INDEX IF NOT EXISTS holders_by_end ON holders (ended_at);
CREATE TABLE IF NOT EXISTS readings (
    repo INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    report BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS removals (
    id INTEGER PRIMARY KEY,
    repo INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    lock_id TEXT NOT NULL,
    hostname TEXT NOT NULL,
    username TEXT NOT NULL,
    pid INTEGER NOT NULL,
    exclusive INTEGER NOT NULL,
    time TEXT NOT NULL
);
";

/// One connection to the history.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// The history in `dir`, made (with the directory, owner-only) if there is none. The
    /// directory must be this user's and writable by nobody else (as ssh asks of `~/.ssh`);
    /// the files are made owner-only, and never followed through a link.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        make_dir(dir)?;
        private::check_dir(dir)?;
        let path = dir.join(FILE_NAME);
        private::prepare_files(dir, &path)?;
        let flags = OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| sql_error(&path, e))?;
        let store = Store { conn, path };
        store.set_up(true)?;
        Ok(store)
    }

    /// Whether the database reads whole (`PRAGMA quick_check`): a file cut short or
    /// overwritten opens, and fails only when a damaged page is read.
    pub fn check(&self) -> Result<(), StoreError> {
        let got: String = self
            .conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        match got.as_str() {
            "ok" => Ok(()),
            _ => Err(StoreError::Damaged {
                path: self.path.clone(),
                why: got,
            }),
        }
    }

    /// The history in `dir` for reading; an error if serve never wrote one there.
    pub fn open_existing(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join(FILE_NAME);
        if !path.is_file() {
            return Err(StoreError::Missing(path));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags)
            .or_else(|_| {
                // Another user's history (serve's): readable, and WAL lets it be read.
                Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
            })
            .map_err(|e| sql_error(&path, e))?;
        let store = Store { conn, path };
        store.set_up(false)?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What stops this connection's running statement from another thread.
    pub fn interrupt_handle(&self) -> rusqlite::InterruptHandle {
        self.conn.get_interrupt_handle()
    }

    fn sql(&self, err: rusqlite::Error) -> StoreError {
        sql_error(&self.path, err)
    }

    /// `f` in one transaction: all of it is written, or none.
    fn transaction<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let run = |conn: &mut Connection| {
            let tx = conn.transaction()?;
            let got = f(&tx)?;
            tx.commit()?;
            Ok(got)
        };
        run(&mut self.conn).map_err(|e| sql_error(&self.path, e))
    }

    fn set_up(&self, create: bool) -> Result<(), StoreError> {
        let c = &self.conn;
        c.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| self.sql(e))?;
        let found: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        if found > SCHEMA {
            return Err(StoreError::Newer {
                path: self.path.clone(),
                found,
            });
        }
        if create {
            // Before the first table: free pages are given back by `incremental_vacuum`.
            c.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
                .map_err(|e| self.sql(e))?;
            c.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
                .map_err(|e| self.sql(e))?;
            c.execute_batch(CREATE).map_err(|e| self.sql(e))?;
            c.execute_batch(&format!("PRAGMA user_version = {SCHEMA}"))
                .map_err(|e| self.sql(e))?;
        }
        // WAL: a commit is safe from a crash of the process; NORMAL waits for the disk
        // only at checkpoints.
        c.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON")
            .map_err(|e| self.sql(e))
    }

    /// Applies `keep`: lives ended before its days go (and those of a repository not read
    /// since), then the oldest ended lives (and removals) while the database is larger
    /// than its size. Lives still held stay.
    /// Returns how many lives went.
    pub fn prune(&mut self, keep: Retention, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let cutoff = (now - chrono::Duration::days(i64::from(keep.days))).timestamp();
        let mut gone = self
            .conn
            .execute(
                "DELETE FROM holders WHERE ended IS NOT NULL AND ended_at < ?1",
                [cutoff],
            )
            .map_err(|e| self.sql(e))?;
        // A repository no longer watched (gone from the fleet file) leaves lives that
        // never end: they go with its last reading's age.
        gone += self
            .conn
            .execute(
                "DELETE FROM holders WHERE ended IS NULL AND repo IN
                   (SELECT id FROM repositories WHERE read_at < ?1)",
                [cutoff],
            )
            .map_err(|e| self.sql(e))?;
        self.conn
            .execute("DELETE FROM removals WHERE at < ?1", [cutoff])
            .map_err(|e| self.sql(e))?;
        while self.used_bytes()? > keep.size {
            let n = self
                .conn
                .execute(
                    "DELETE FROM holders WHERE id IN (SELECT id FROM holders
                       WHERE ended IS NOT NULL ORDER BY ended_at LIMIT
                       MAX(100, (SELECT COUNT(*) FROM holders) / 10))",
                    [],
                )
                .map_err(|e| self.sql(e))?;
            self.conn
                .execute(
                    "DELETE FROM removals WHERE id IN (SELECT id FROM removals ORDER BY at
                       LIMIT MAX(100, (SELECT COUNT(*) FROM removals) / 10))",
                    [],
                )
                .map_err(|e| self.sql(e))?;
            gone += n;
            if n == 0 {
                break;
            }
        }
        self.give_back().map_err(|e| self.sql(e))?;
        Ok(gone)
    }

    /// Free pages back to the file system (each step of the pragma frees some), and the
    /// write-ahead log folded in and emptied.
    fn give_back(&self) -> rusqlite::Result<()> {
        let mut st = self.conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = st.query([])?;
        while rows.next()?.is_some() {}
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
    }

    /// Keeps the write-ahead log within a quarter of `size`: it is folded into the database
    /// (and cut back) every that many bytes, instead of SQLite's 4 MB.
    pub fn bound(&self, size: u64) -> Result<(), StoreError> {
        let page: i64 = self
            .conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(|e| self.sql(e))?;
        let quarter = i64::try_from(size / 4).unwrap_or(i64::MAX);
        let pages = (quarter / page.max(512)).clamp(16, 1000);
        let set = |sql: String| -> rusqlite::Result<()> {
            // These pragmas answer with the value set: read past it.
            let mut st = self.conn.prepare(&sql)?;
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {}
            Ok(())
        };
        set(format!("PRAGMA wal_autocheckpoint = {pages}"))
            .and_then(|_| set(format!("PRAGMA journal_size_limit = {quarter}")))
            .map_err(|e| self.sql(e))
    }

    /// Bytes the database's pages hold (free pages not counted).
    pub(crate) fn used_bytes(&self) -> Result<u64, StoreError> {
        let pragma = |name: &str| -> Result<i64, StoreError> {
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(|e| self.sql(e))
        };
        let used = pragma("page_count")? - pragma("freelist_count")?;
        Ok((used.max(0) as u64) * pragma("page_size")?.max(0) as u64)
    }
}

/// serve's history in `dir`: the directory held for this serve alone, the database
/// checked whole, and a writer and a reader on it. A damaged database is set aside and a
/// new one started (its new name is returned, for the log and the metric).
pub fn open_for_serve(dir: &Path) -> Result<ServeStore, StoreError> {
    make_dir(dir)?;
    private::check_dir(dir)?;
    let lock = DirLock::take(dir)?;
    let opened = |set_aside| -> Result<ServeStore, StoreError> {
        let writer = Store::open(dir)?;
        writer.check()?;
        let reader = Store::open_existing(dir)?;
        Ok(ServeStore {
            writer,
            reader,
            set_aside,
            _lock: None,
        })
    };
    let mut got = match opened(None) {
        Err(e) if e.damaged() => opened(Some(set_aside(&dir.join(FILE_NAME))?)),
        got => got,
    }?;
    got._lock = Some(lock);
    Ok(got)
}

/// What [`open_for_serve`] gives.
pub struct ServeStore {
    pub writer: Store,
    pub reader: Store,
    /// Where a damaged database was moved.
    pub set_aside: Option<PathBuf>,
    /// Held for as long as serve writes.
    pub _lock: Option<DirLock>,
}

/// `dir` and its parents, the directory itself owner-only (it holds what the locks
/// revealed: host and user names).
fn make_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|err| StoreError::Dir {
            dir: dir.to_path_buf(),
            err,
        })
}

fn sql_error(path: &Path, err: rusqlite::Error) -> StoreError {
    StoreError::Sql {
        path: path.to_path_buf(),
        err,
    }
}

fn time(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

#[cfg(test)]
mod tests;
