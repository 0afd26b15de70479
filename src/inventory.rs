//! The one reading pipeline of `locks/`, for `locks`, `unlock` and `serve` alike: list,
//! classify, read, decode. Its guarantees hold for every caller:
//!
//! - the key is derived while the listing and the reads run, and nothing waits past the
//!   deadline: entries not read by then are reported `not_read`, never dropped;
//! - at most [`HELD_BYTES`] of bodies are held before the key is known;
//! - nothing is written, no lock is taken;
//! - error texts are scrubbed of secrets before they leave;
//! - a [`Cache`] (serve's) spares the reads of entries already decoded: lock files are
//!   content-addressed, so an entry listed again under the same name, size and (where the
//!   backend says) modification time is the same — unless it was damaged in place without
//!   a trace in the listing, so a reading [`REVALIDATE_AFTER`] since the last full one
//!   reads and checks every entry again.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use futures::StreamExt;
use tokio::time::Instant;

use crate::backend::{Backend, BackendError, Dir, Entry};
use crate::locks::{
    IgnoreReason, Ignored, Inventory, LOCK_FILE_CAP, Lock, LockDecoder, Problem, Unreadable,
};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::secret::Redactor;

/// Bodies held while the key is still being derived; past this, reading waits for the key,
/// so memory does not grow with the number or the size of the entries.
pub const HELD_BYTES: usize = 8 << 20;

/// What one lock file decoded to; fixed by its content.
pub type Decoded = Result<Lock, (Problem, String)>;

/// How long a cache is trusted: a byte flipped in place keeps the name and the size, and
/// not every backend lists modification times.
pub const REVALIDATE_AFTER: std::time::Duration = std::time::Duration::from_secs(300);

/// What the listing said of an entry when it was read.
type Listed = (Option<u64>, Option<std::time::SystemTime>);

/// Decoded lock files by name, with how they were listed, kept between readings.
#[derive(Debug, Default)]
pub struct Cache {
    seen: HashMap<String, (Listed, Decoded)>,
    /// When every entry was last read and checked.
    validated: Option<std::time::Instant>,
}

impl Cache {
    /// Forgets everything (the key changed: nothing decoded under the old one holds).
    pub fn clear(&mut self) {
        self.seen.clear();
    }

    fn hit(&self, name: &str, listed: Listed) -> Option<&Decoded> {
        self.seen
            .get(name)
            .filter(|(l, _)| *l == listed)
            .map(|(_, d)| d)
    }

    /// Whether its entries may be taken as they are this time; if not, this reading is a
    /// full one.
    fn trusted(&mut self) -> bool {
        let trusted = self
            .validated
            .is_some_and(|at| at.elapsed() < REVALIDATE_AFTER);
        if !trusted {
            self.validated = Some(std::time::Instant::now());
        }
        trusted
    }
}

/// How one reading goes: where from, how many reads at once, until when.
pub struct Reading<'a> {
    pub backend: &'a dyn Backend,
    pub concurrency: usize,
    pub deadline: Instant,
    pub progress: &'a Progress,
    pub redactor: &'a Redactor,
    pub cache: Option<&'a mut Cache>,
}

/// Why reading the locks failed as a whole.
#[derive(Debug)]
pub enum CollectError<E> {
    /// The repository did not open.
    Open(E),
    /// `locks/` could not be listed.
    Listing(BackendError),
    /// The deadline passed before the repository opened or `locks/` was listed.
    Deadline(&'static str),
}

/// An entry sorted by what its listing says, before anything is read.
fn classify(e: Entry, inv: &mut Inventory) -> Option<Entry> {
    let reason = if !e.is_file {
        Some(IgnoreReason::NotAFile)
    } else if !crate::restic::is_id(&e.name) {
        Some(IgnoreReason::NotAnId)
    } else if e.size == Some(0) {
        Some(IgnoreReason::Empty)
    } else {
        None
    };
    match (reason, e.size) {
        (Some(reason), _) => inv.ignored.push(Ignored {
            name: e.name,
            reason,
        }),
        (None, Some(size)) if size > LOCK_FILE_CAP => inv.unreadable.push(Unreadable {
            id: e.name,
            kind: Problem::TooLarge,
            error: format!(
                "{size} bytes, larger than the {} KiB cap",
                LOCK_FILE_CAP >> 10
            ),
        }),
        (None, _) => return Some(e),
    }
    None
}

/// Where each read ends up; decoded at once when the key is known, else held.
struct Sorter<'a> {
    inv: Inventory,
    decoder: Option<LockDecoder>,
    held: Vec<(String, Vec<u8>)>,
    held_bytes: usize,
    cache: Option<&'a mut Cache>,
    /// How each entry being read was listed, for the cache.
    sizes: HashMap<String, Listed>,
    /// When the storage wrote each entry, where its listing says.
    stored: HashMap<String, std::time::SystemTime>,
}

impl Sorter<'_> {
    fn take(&mut self, id: String, got: Result<Vec<u8>, BackendError>) {
        // What did not come back as a body (a failed read among it) is not cached: the
        // next reading reads it again.
        self.inv.fetched += 1;
        let Some((id, bytes)) = self.inv.absorb(id, got) else {
            return;
        };
        match &mut self.decoder {
            Some(d) => {
                let decoded = d.decode(&id, &bytes);
                self.place(id, decoded);
            }
            None => {
                self.held_bytes += bytes.len();
                self.held.push((id, bytes));
            }
        }
    }

    fn place(&mut self, id: String, decoded: Decoded) {
        if matches!(&decoded, Err((Problem::MacMismatch, _))) {
            self.inv.fresh_mac_failures += 1;
        }
        if let Some(cache) = self.cache.as_deref_mut() {
            let listed = self.sizes.get(&id).copied().unwrap_or_default();
            cache.seen.insert(id.clone(), (listed, decoded.clone()));
        }
        self.inv.place(id, decoded);
    }

    /// The repository opened (or did not): decode what is held, from now on as it comes.
    fn opened<E>(&mut self, r: Result<Repository, E>) -> Result<Repository, CollectError<E>> {
        let repo = r.map_err(CollectError::Open)?;
        self.key_known(&repo);
        Ok(repo)
    }

    fn key_known(&mut self, repo: &Repository) {
        let mut d = LockDecoder::new(&repo.master, repo.version);
        for (id, bytes) in std::mem::take(&mut self.held) {
            let decoded = d.decode(&id, &bytes);
            self.place(id, decoded);
        }
        self.held_bytes = 0;
        self.decoder = Some(d);
    }

    /// Sorts the listing: entries set aside, cache hits placed, the rest to read.
    fn sort_listing(&mut self, entries: Vec<Entry>) -> Vec<String> {
        let listed: HashSet<String> = entries.iter().map(|e| e.name.clone()).collect();
        if let Some(cache) = self.cache.as_deref_mut() {
            cache.seen.retain(|name, _| listed.contains(name));
        }
        let mut to_read = Vec::new();
        let trusted = self.cache.as_deref_mut().is_some_and(Cache::trusted);
        for e in entries {
            let Some(e) = classify(e, &mut self.inv) else {
                continue;
            };
            if let Some(at) = e.modified {
                self.stored.insert(e.name.clone(), at);
            }
            let listed = (e.size, e.modified);
            let hit = self
                .cache
                .as_deref()
                .filter(|_| trusted)
                .and_then(|c| c.hit(&e.name, listed));
            match hit {
                Some(decoded) => {
                    let decoded = decoded.clone();
                    self.inv.place(e.name, decoded);
                }
                None => {
                    self.sizes.insert(e.name.clone(), listed);
                    to_read.push(e.name);
                }
            }
        }
        to_read
    }
}

type Opening<'f, E> = Pin<&'f mut (dyn Future<Output = Result<Repository, E>> + Send)>;

/// Lists `locks/` while the repository opens; a repository that does not open says more
/// than a listing that failed.
async fn list<E>(
    backend: &dyn Backend,
    open: &mut Opening<'_, E>,
    repo: &mut Option<Repository>,
    deadline: Instant,
) -> Result<Vec<Entry>, CollectError<E>> {
    let listing = {
        let mut list = std::pin::pin!(backend.list(Dir::Locks));
        loop {
            tokio::select! {
                r = open.as_mut(), if repo.is_none() => *repo = Some(r.map_err(CollectError::Open)?),
                l = &mut list => break l,
                _ = tokio::time::sleep_until(deadline) => return Err(CollectError::Deadline("listing locks/")),
            }
        }
    };
    match listing {
        Ok(entries) => Ok(entries),
        Err(e) => {
            if repo.is_none() {
                open.as_mut().await.map_err(CollectError::Open)?;
            }
            Err(CollectError::Listing(e))
        }
    }
}

/// The 32 bytes of an entry's ID (names are IDs by the time they are read).
fn id_key(id: &str) -> [u8; 32] {
    let mut k = [0u8; 32];
    let _ = hex::decode_to_slice(id, &mut k);
    k
}

/// Opens the repository (`open`) while listing `locks/` and reading every candidate, and
/// decodes each lock file as soon as both it and the key are there.
pub async fn read<E>(
    r: Reading<'_>,
    open: impl Future<Output = Result<Repository, E>> + Send,
) -> Result<(Repository, Inventory), CollectError<E>> {
    let mut open: Opening<'_, E> = std::pin::pin!(open);
    let mut repo: Option<Repository> = None;
    let entries = list(r.backend, &mut open, &mut repo, r.deadline).await?;
    let mut sorter = Sorter {
        inv: Inventory::default(),
        decoder: None,
        held: Vec::new(),
        held_bytes: 0,
        cache: r.cache,
        sizes: HashMap::new(),
        stored: HashMap::new(),
    };
    if let Some(repo) = &repo {
        sorter.key_known(repo);
    }
    let to_read = sorter.sort_listing(entries);
    r.progress.set_listed(to_read.len());
    let mut outstanding: HashSet<[u8; 32]> = to_read.iter().map(|n| id_key(n)).collect();
    let mut reads = r.backend.read_stream(
        Dir::Locks,
        to_read,
        LOCK_FILE_CAP + 1,
        r.concurrency.max(1),
        r.progress.read.clone(),
    );
    let passed = tokio::time::sleep_until(r.deadline);
    let mut passed = std::pin::pin!(passed);
    loop {
        if repo.is_none() && sorter.held_bytes > HELD_BYTES {
            tokio::select! {
                got = open.as_mut() => repo = Some(sorter.opened(got)?),
                _ = &mut passed => break,
            }
        }
        tokio::select! {
            got = open.as_mut(), if repo.is_none() => repo = Some(sorter.opened(got)?),
            item = reads.next() => match item {
                Some((id, got)) => {
                    outstanding.remove(&id_key(&id));
                    sorter.take(id, got);
                }
                None => break,
            },
            _ = &mut passed => break,
        }
    }
    drop(reads);
    let repo = match repo {
        Some(repo) => repo,
        None => tokio::select! {
            got = open.as_mut() => sorter.opened(got)?,
            _ = &mut passed => return Err(CollectError::Deadline("opening the repository")),
        },
    };
    let mut inv = sorter.inv;
    for l in &mut inv.locks {
        l.stored_at = sorter.stored.get(&l.id).and_then(|&t| stored_time(t));
    }
    mark_not_read(&mut inv, outstanding);
    for u in &mut inv.unreadable {
        u.error = r.redactor.scrub(&u.error);
    }
    inv.sort();
    Ok((repo, inv))
}

/// A listed modification time as a date, where it is one chrono can hold (a storage's
/// listing is outside input: an absurd time is no time).
fn stored_time(t: std::time::SystemTime) -> Option<chrono::DateTime<chrono::Utc>> {
    let (secs, nanos) = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => (i64::try_from(d.as_secs()).ok()?, d.subsec_nanos()),
        Err(e) => (-i64::try_from(e.duration().as_secs()).ok()?, 0),
    };
    chrono::DateTime::from_timestamp(secs, nanos)
}

/// Entries still outstanding when the deadline passed: in the inventory, as not read.
fn mark_not_read(inv: &mut Inventory, outstanding: HashSet<[u8; 32]>) {
    if outstanding.is_empty() {
        return;
    }
    inv.incomplete = Some(format!(
        "{} of the entries in locks/ were not read before the deadline",
        outstanding.len()
    ));
    for id in outstanding {
        inv.unreadable.push(Unreadable {
            id: hex::encode(id),
            kind: Problem::NotRead,
            error: "not read before the deadline".into(),
        });
    }
}
