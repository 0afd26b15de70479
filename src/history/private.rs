//! The state directory as ssh treats `~/.ssh`: this user's, writable by nobody else, its
//! files owner-only and never reached through a link; one serve at a time; a damaged
//! database set aside instead of stopping the monitor.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{FILE_NAME, StoreError};

/// SQLite's files beside the database.
const BESIDE: [&str; 3] = ["-wal", "-shm", "-journal"];

fn unsafe_dir(dir: &Path, why: String) -> StoreError {
    StoreError::Unsafe {
        dir: dir.to_path_buf(),
        why,
    }
}

/// `dir` (where it leads) is this user's, and only this user can write into it: anyone
/// else could replace the database or plant a link in its place.
pub(super) fn check_dir(dir: &Path) -> Result<(), StoreError> {
    let m = std::fs::metadata(dir).map_err(|err| StoreError::Dir {
        dir: dir.to_path_buf(),
        err,
    })?;
    let me = rustix::process::geteuid().as_raw();
    if m.uid() != me {
        let why = format!(
            "owned by user {}, not this one ({me}): chown it to this user, or choose another",
            m.uid()
        );
        return Err(unsafe_dir(dir, why));
    }
    if m.mode() & 0o022 != 0 {
        let why = format!(
            "writable by group or others (mode {:04o}): chmod go-w it",
            m.mode() & 0o7777
        );
        return Err(unsafe_dir(dir, why));
    }
    Ok(())
}

/// The database file made owner-only (or made so), never through a link, and SQLite's
/// files beside it checked the same way (SQLite gives them the database's mode).
pub(super) fn prepare_files(dir: &Path, db: &Path) -> Result<(), StoreError> {
    let file = open_private(db).map_err(|err| match err.raw_os_error() {
        Some(libc::ELOOP) => unsafe_dir(dir, link(FILE_NAME)),
        _ => StoreError::Dir {
            dir: dir.to_path_buf(),
            err,
        },
    })?;
    owner_only(dir, FILE_NAME, &file.metadata(), |mode| {
        file.set_permissions(std::fs::Permissions::from_mode(mode))
    })?;
    for suffix in BESIDE {
        let name = format!("{FILE_NAME}{suffix}");
        let path = dir.join(&name);
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if m.file_type().is_symlink() {
            return Err(unsafe_dir(dir, link(&name)));
        }
        owner_only(dir, &name, &Ok(m), |mode| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        })?;
    }
    Ok(())
}

/// `path` opened for reading and writing, made owner-only if new; never through a link,
/// never blocking on a FIFO.
fn open_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
}

fn link(name: &str) -> String {
    format!("{name} is a symbolic link: remove it (the history is never written through one)")
}

/// A regular file of this user's, made owner-only where it was not.
fn owner_only(
    dir: &Path,
    name: &str,
    meta: &std::io::Result<std::fs::Metadata>,
    chmod: impl FnOnce(u32) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let io = |err| StoreError::Dir {
        dir: dir.to_path_buf(),
        err,
    };
    let m = meta
        .as_ref()
        .map_err(|e| io(std::io::Error::new(e.kind(), e.to_string())))?;
    if !m.file_type().is_file() {
        return Err(unsafe_dir(dir, format!("{name} is not a regular file")));
    }
    if m.uid() != rustix::process::geteuid().as_raw() {
        return Err(unsafe_dir(
            dir,
            format!("{name} belongs to user {}", m.uid()),
        ));
    }
    if m.mode() & 0o077 != 0 {
        chmod(0o600).map_err(io)?;
    }
    Ok(())
}

/// serve's hold on its state directory: two serves writing one history counted every job
/// twice. Held (an advisory lock on `serve.lock`, which names the holder's PID) for as
/// long as the value lives.
#[derive(Debug)]
pub struct DirLock(#[allow(dead_code)] File);

/// The lock file's name in the state directory.
const LOCK_NAME: &str = "serve.lock";

impl DirLock {
    pub fn take(dir: &Path) -> Result<DirLock, StoreError> {
        let io = |err| StoreError::Dir {
            dir: dir.to_path_buf(),
            err,
        };
        let mut file = open_private(&dir.join(LOCK_NAME)).map_err(io)?;
        if let Err(e) = file.try_lock() {
            return match e {
                std::fs::TryLockError::WouldBlock => {
                    let mut text = String::new();
                    let _ = file.take(32).read_to_string(&mut text);
                    Err(StoreError::Busy {
                        dir: dir.to_path_buf(),
                        pid: text.trim().parse().ok(),
                    })
                }
                std::fs::TryLockError::Error(err) => Err(io(err)),
            };
        }
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(DirLock(file))
    }
}

/// Moves a damaged database (and SQLite's files beside it) to
/// `history.sqlite.damaged-TIME`, so that a new one can start; returns that name.
pub fn set_aside(db: &Path) -> Result<PathBuf, StoreError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let aside = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(format!("{suffix}.damaged-{stamp}"));
        PathBuf::from(name)
    };
    let dir = db.parent().unwrap_or(Path::new("."));
    std::fs::rename(db, aside("")).map_err(|err| StoreError::Dir {
        dir: dir.to_path_buf(),
        err,
    })?;
    for suffix in BESIDE {
        let mut from = db.as_os_str().to_owned();
        from.push(suffix);
        let _ = std::fs::rename(PathBuf::from(from), aside(suffix));
    }
    Ok(aside(""))
}
