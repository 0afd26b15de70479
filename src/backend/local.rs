//! A repository on a mounted file system.

use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;

use super::{Backend, BackendError, Dir, Entry};

pub const DECLARED: super::Declared = super::Declared {
    scheme: "local",
    options: &[],
    env_prefixes: &[],
    secrets: &[],
};

pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend { root: root.into() }
    }
}

fn failed(what: &'static str, path: &Path, e: std::io::Error) -> BackendError {
    match e.kind() {
        ErrorKind::NotFound => BackendError::NotFound,
        _ => BackendError::Io {
            what,
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// Opens without blocking (a FIFO would otherwise wait for a writer forever, and a
/// terminal could become the controlling one), then reads only a regular file.
fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, BackendError> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| failed("cannot open", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| failed("cannot stat", path, e))?;
    if !meta.is_file() {
        return Err(BackendError::NotAFile);
    }
    // Sized from the file, so a body is not read into a buffer doubled past its length.
    let mut buf = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| failed("cannot read", path, e))?;
    Ok(buf)
}

fn list_dir(dir: &Path) -> Result<Vec<Entry>, BackendError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(failed("cannot list", dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| failed("cannot list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // A file removed while listing (restic refreshing its lock) is simply not listed.
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(failed("cannot stat", &entry.path(), e)),
        };
        out.push(Entry {
            name,
            size: Some(meta.len()),
            is_file: meta.is_file(),
            modified: meta.modified().ok(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::Other(format!("I/O task failed: {e}")))?
}

#[async_trait]
impl Backend for LocalBackend {
    async fn read_config(&self) -> Result<Vec<u8>, BackendError> {
        let path = self.root.join("config");
        // A config larger than this is not restic's.
        blocking(move || read_capped(&path, 1 << 20)).await
    }

    async fn list(&self, dir: Dir) -> Result<Vec<Entry>, BackendError> {
        let path = self.root.join(dir.name());
        blocking(move || list_dir(&path)).await
    }

    async fn read(&self, dir: Dir, name: &str, limit: u64) -> Result<Vec<u8>, BackendError> {
        let path = self.root.join(dir.name()).join(name);
        blocking(move || read_capped(&path, limit)).await
    }

    /// Small local files are read faster in batches than one thread handoff each; a few
    /// batches still run at once for slow (network) file systems. At most 4 × 32 files are
    /// in flight, so junk entries of 64 KiB hold 8 MiB at the most.
    fn read_stream<'a>(
        &'a self,
        dir: Dir,
        names: Vec<String>,
        limit: u64,
        concurrency: usize,
        done: Arc<AtomicUsize>,
    ) -> BoxStream<'a, (String, Result<Vec<u8>, BackendError>)> {
        const BATCH: usize = 32;
        let dir = self.root.join(dir.name());
        let batches: Vec<Vec<String>> = names.chunks(BATCH).map(<[String]>::to_vec).collect();
        let tasks = batches.into_iter().map(move |batch| {
            let dir = dir.clone();
            let done = done.clone();
            async move {
                let names = batch.clone();
                let read = tokio::task::spawn_blocking(move || {
                    batch
                        .into_iter()
                        .map(|n| {
                            let got = read_capped(&dir.join(&n), limit);
                            done.fetch_add(1, Ordering::Relaxed);
                            (n, got)
                        })
                        .collect::<Vec<_>>()
                })
                .await;
                // A read task that died still accounts for every entry it was given.
                read.unwrap_or_else(|e| {
                    names
                        .into_iter()
                        .map(|n| {
                            (
                                n,
                                Err(BackendError::Other(format!("read task failed: {e}"))),
                            )
                        })
                        .collect()
                })
            }
        });
        futures::stream::iter(tasks)
            .buffer_unordered(concurrency.clamp(1, 4))
            .flat_map(futures::stream::iter)
            .boxed()
    }
}
