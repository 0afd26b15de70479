//! Opening a repository: find the key the password opens, then read `config`.

use std::sync::Arc;
use std::sync::mpsc;

use crate::backend::{Backend, BackendError, Dir};
use crate::restic::envelope::Key;
pub use crate::restic::key::KeyFile;
use crate::secret::Secret;

/// restic tries at most this many keys.
pub const MAX_KEYS: usize = 20;
/// A key file is a few hundred bytes; anything far larger is not one.
const KEY_FILE_CAP: u64 = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No `config`: nothing was ever initialised here.
    #[error("there is no repository here (no config file)")]
    NoRepository,
    /// No key file opens with this password (or there is none).
    #[error(
        "wrong password or no key found ({tried} key(s) tried{})",
        unusable(skipped)
    )]
    WrongPassword { tried: usize, skipped: Vec<String> },
    /// The storage could not be read.
    #[error("cannot read the repository: {0}")]
    Backend(String),
    /// The repository's own files are damaged or of a format locksmith does not know.
    #[error("damaged or unsupported repository: {0}")]
    Corrupt(String),
    /// The repository at the location changed under a kept key, and no key opens its
    /// lock files any more.
    #[error(
        "the repository here changed and its lock files do not open with a freshly derived key"
    )]
    KeyChanged,
}

fn unusable(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!("; unusable key files: {}", skipped.join(", "))
    }
}

/// A repository opened with a password: its identity and the key that opens its files.
#[derive(Clone)]
pub struct Repository {
    pub backend: Arc<dyn Backend>,
    pub id: String,
    pub version: u32,
    /// The key file the password opened.
    pub key_id: String,
    pub(crate) master: Key,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("key_id", &self.key_id)
            .finish()
    }
}

fn backend_err(what: &str, e: BackendError) -> OpenError {
    OpenError::Backend(format!("{what}: {e}"))
}

impl Repository {
    /// Opens the repository: the hinted key first (a unique ID prefix, as `RESTIC_KEY_HINT`),
    /// then up to [`MAX_KEYS`] keys in listing order, all derived at once.
    pub async fn open(
        backend: Arc<dyn Backend>,
        password: &Secret,
        key_hint: Option<&str>,
    ) -> Result<Repository, OpenError> {
        let (config, keys) = tokio::join!(backend.read_config(), backend.list(Dir::Keys));
        let config = match config {
            Ok(c) => c,
            Err(BackendError::NotFound) => return Err(OpenError::NoRepository),
            Err(e) => return Err(backend_err("reading config", e)),
        };
        let mut names: Vec<String> = keys
            .map_err(|e| backend_err("listing keys", e))?
            .into_iter()
            .filter(|e| e.is_file && crate::restic::is_id(&e.name))
            .map(|e| e.name)
            .collect();
        let hinted = key_hint.filter(|h| !h.is_empty()).and_then(|h| {
            let mut m = names.iter().filter(|n| n.starts_with(h));
            match (m.next(), m.next()) {
                (Some(one), None) => Some(one.clone()),
                _ => None,
            }
        });
        names.retain(|n| Some(n) != hinted.as_ref());
        names.truncate(MAX_KEYS);

        let mut skipped = Vec::new();
        let mut tried = 0;
        if let Some(h) = hinted {
            let files = read_key_files(&backend, vec![h], &mut skipped).await?;
            tried += files.len();
            if let Some((id, master)) = try_keys(files, password.clone(), &mut skipped).await {
                return Self::finish(backend, id, master, &config);
            }
        }
        let files = read_key_files(&backend, names, &mut skipped).await?;
        tried += files.len();
        match try_keys(files, password.clone(), &mut skipped).await {
            Some((id, master)) => Self::finish(backend, id, master, &config),
            None => Err(OpenError::WrongPassword { tried, skipped }),
        }
    }

    fn finish(
        backend: Arc<dyn Backend>,
        key_id: String,
        master: Key,
        config: &[u8],
    ) -> Result<Repository, OpenError> {
        let (id, version) =
            crate::restic::config::decode(&master, config).map_err(OpenError::Corrupt)?;
        Ok(Repository {
            backend,
            id,
            version,
            key_id,
            master,
        })
    }
}

async fn read_key_files(
    backend: &Arc<dyn Backend>,
    names: Vec<String>,
    skipped: &mut Vec<String>,
) -> Result<Vec<(String, KeyFile)>, OpenError> {
    let reads = names.into_iter().map(|name| {
        let backend = backend.clone();
        async move {
            let r = backend.read(Dir::Keys, &name, KEY_FILE_CAP).await;
            (name, r)
        }
    });
    let mut out = Vec::new();
    for (name, r) in futures::future::join_all(reads).await {
        let short = crate::restic::short_id(&name);
        match r {
            Ok(bytes) => match serde_json::from_slice::<KeyFile>(&bytes) {
                Ok(kf) => match kf.validate() {
                    Ok(_) => out.push((name, kf)),
                    Err(why) => skipped.push(format!("{short} ({why})")),
                },
                Err(e) => skipped.push(format!("{short} (not a key file: {e})")),
            },
            Err(BackendError::NotFound) => {}
            Err(e) => return Err(backend_err("reading a key file", e)),
        }
    }
    Ok(out)
}

/// Derives the candidates in listing order on rayon's pool (which also runs each key's
/// scrypt lanes), starting the next key only while cores would otherwise idle: a key with
/// p ≥ cores runs alone, so keys that will not open neither slow the one that does nor
/// add their lanes to memory. Returns the first key that opens.
async fn try_keys(
    files: Vec<(String, KeyFile)>,
    password: Secret,
    skipped: &mut Vec<String>,
) -> Option<(String, Key)> {
    if files.is_empty() {
        return None;
    }
    let cores = rayon::current_num_threads().max(1);
    // Across repositories opened at once (`serve`, `locks --config`), at most `cores`
    // lanes are in flight: rayon's waiting threads would otherwise steal other keys'
    // lanes and hold several 128·r·N-byte buffers each, with no gain in speed.
    static LANES: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let lanes = LANES.get_or_init(|| tokio::sync::Semaphore::new(cores));
    let want = files
        .iter()
        .map(|(_, kf)| (kf.p as usize).clamp(1, cores))
        .max()
        .unwrap_or(1);
    let _permit = lanes.acquire_many(want as u32).await;
    let (found, errors) = tokio::task::spawn_blocking(move || {
        let (tx, rx) = mpsc::channel();
        let mut queue = files.into_iter();
        let mut errors = Vec::new();
        let (mut in_flight, mut busy) = (0usize, 0usize);
        loop {
            while busy < cores {
                let Some((id, kf)) = queue.next() else { break };
                let lanes = (kf.p as usize).clamp(1, cores);
                let (tx, password) = (tx.clone(), password.clone());
                rayon::spawn(move || {
                    let got = kf.unlock(&password).map(|k| k.map(|k| (id.clone(), k)));
                    let got =
                        got.map_err(|why| format!("{} ({why})", crate::restic::short_id(&id)));
                    let _ = tx.send((lanes, got));
                });
                in_flight += 1;
                busy += lanes;
            }
            if in_flight == 0 {
                return (None, errors);
            }
            let Ok((lanes, got)) = rx.recv() else {
                return (None, errors);
            };
            in_flight -= 1;
            busy -= lanes;
            match got {
                Ok(Some(found)) => {
                    crate::release_large_blocks(in_flight == 0);
                    return (Some(found), errors);
                }
                Ok(None) => {}
                Err(why) => errors.push(why),
            }
        }
    })
    .await
    .unwrap_or((None, Vec::new()));
    if found.is_none() {
        crate::release_large_blocks(true);
    }
    skipped.extend(errors);
    found
}
