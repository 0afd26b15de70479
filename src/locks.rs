//! The entries of `locks/`: each one decoded, or set aside with the reason.

use std::io::Read;

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::backend::{Backend, BackendError, Dir};
use crate::crypto::{CryptoError, Key, OVERHEAD};
use crate::progress::Progress;
use crate::repo::Repository;

/// Real lock files are 130–160 bytes; anything past this is junk and is not read whole.
pub const LOCK_FILE_CAP: u64 = 64 << 10;
/// Cap on a decompressed lock, against zstd bombs.
const PLAIN_CAP: u64 = 1 << 20;

/// A lock file's content, as restic writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Time of the last refresh (not of the command's start), in the writer's offset.
    #[serde(serialize_with = "ser_time", deserialize_with = "de_time")]
    pub time: DateTime<FixedOffset>,
    #[serde(default)]
    pub exclusive: bool,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub pid: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub uid: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gid: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn ser_time<S: Serializer>(t: &DateTime<FixedOffset>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<FixedOffset>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .map_err(|e| serde::de::Error::custom(format!("time {s:?} is not RFC 3339: {e}")))
}

/// Why a lock file could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    TooLarge,
    TooShort,
    NameMismatch,
    MacMismatch,
    UnknownEncoding,
    BadZstd,
    BadJson,
    ReadFailed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub id: String,
    pub kind: Problem,
    pub error: String,
}

/// Why an entry was not treated as a lock at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    /// Not 64 hex characters, e.g. a local backend's `-tmp-` upload.
    NotAnId,
    /// Zero bytes: a non-atomic upload restic (0.15.1+) skips too.
    Empty,
    NotAFile,
}

impl IgnoreReason {
    pub fn describe(self) -> &'static str {
        match self {
            IgnoreReason::NotAnId => "name is not a 64-hex ID (temporary upload?)",
            IgnoreReason::Empty => "zero bytes (interrupted upload)",
            IgnoreReason::NotAFile => "not a regular file",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub name: String,
    pub reason: IgnoreReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    pub id: String,
    pub lock: Lock,
}

/// Every entry of `locks/`, each in exactly one place.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Oldest first.
    pub locks: Vec<LockEntry>,
    pub unreadable: Vec<Unreadable>,
    pub ignored: Vec<Ignored>,
    /// Listed, but gone when read: restic replaces its lock file on every refresh.
    pub vanished: Vec<String>,
}

pub(crate) fn is_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn problem(kind: Problem, error: impl Into<String>) -> (Problem, String) {
    (kind, error.into())
}

/// Decodes lock files of one repository, reusing one zstd context (creating a context
/// per lock cost more than everything else a lock needs).
pub struct LockDecoder<'k> {
    key: &'k Key,
    version: u32,
    zstd: zstd::zstd_safe::DCtx<'static>,
}

impl<'k> LockDecoder<'k> {
    pub fn new(key: &'k Key, version: u32) -> LockDecoder<'k> {
        LockDecoder {
            key,
            version,
            zstd: zstd::zstd_safe::DCtx::create(),
        }
    }

    /// Decodes one lock file's stored bytes. Checks go from cheapest to dearest, so each
    /// damaged file is reported by its first fault.
    pub fn decode(&mut self, id: &str, stored: &[u8]) -> Result<Lock, (Problem, String)> {
        if stored.len() as u64 > LOCK_FILE_CAP {
            return Err(problem(
                Problem::TooLarge,
                format!("larger than the {} KiB cap", LOCK_FILE_CAP >> 10),
            ));
        }
        if stored.len() < OVERHEAD {
            return Err(problem(
                Problem::TooShort,
                format!("{} bytes, shorter than the 32-byte minimum", stored.len()),
            ));
        }
        if hex::encode(Sha256::digest(stored)) != id {
            return Err(problem(
                Problem::NameMismatch,
                "content does not match its name (SHA-256): damaged or renamed",
            ));
        }
        let plain = self.key.open(stored).map_err(|e| match e {
            CryptoError::MacMismatch => problem(
                Problem::MacMismatch,
                "MAC mismatch: damaged, or sealed under another repository's key",
            ),
            other => problem(Problem::MacMismatch, other.to_string()),
        })?;
        let json = match (self.version, plain.first()) {
            (1, _) | (_, Some(b'{' | b'[')) => plain,
            (_, Some(2)) => self.decompress(&plain[1..])?,
            (_, Some(b)) => {
                return Err(problem(
                    Problem::UnknownEncoding,
                    format!("unknown encoding byte 0x{b:02x}"),
                ));
            }
            (_, None) => return Err(problem(Problem::BadJson, "empty plaintext")),
        };
        serde_json::from_slice::<Lock>(&json)
            .map_err(|e| problem(Problem::BadJson, format!("not a lock: {e}")))
    }

    /// Streams the frame (restic's frames carry no content size), capped against bombs.
    fn decompress(&mut self, frame: &[u8]) -> Result<Vec<u8>, (Problem, String)> {
        let _ = self
            .zstd
            .reset(zstd::zstd_safe::ResetDirective::SessionOnly);
        let mut out = Vec::new();
        zstd::stream::read::Decoder::with_context(frame, &mut self.zstd)
            .take(PLAIN_CAP + 1)
            .read_to_end(&mut out)
            .map_err(|e| problem(Problem::BadZstd, format!("bad zstd data: {e}")))?;
        if out.len() as u64 > PLAIN_CAP {
            return Err(problem(
                Problem::TooLarge,
                "decompresses to more than 1 MiB",
            ));
        }
        Ok(out)
    }
}

/// The stored bytes of every lock file, fetched before the key is known so that reading
/// overlaps key derivation.
#[derive(Debug, Default)]
pub struct Fetched {
    files: Vec<(String, Vec<u8>)>,
    unreadable: Vec<Unreadable>,
    ignored: Vec<Ignored>,
    vanished: Vec<String>,
}

/// Lists `locks/` and reads every candidate concurrently. Takes no lock and writes nothing.
pub async fn fetch(
    backend: &dyn Backend,
    concurrency: usize,
    progress: &Progress,
) -> Result<Fetched, BackendError> {
    let entries = backend.list(Dir::Locks).await?;
    let mut f = Fetched::default();
    let mut to_read = Vec::new();
    for e in entries {
        let reason = if !e.is_file {
            Some(IgnoreReason::NotAFile)
        } else if !is_id(&e.name) {
            Some(IgnoreReason::NotAnId)
        } else if e.size == Some(0) {
            Some(IgnoreReason::Empty)
        } else {
            None
        };
        match (reason, e.size) {
            (Some(reason), _) => f.ignored.push(Ignored {
                name: e.name,
                reason,
            }),
            (None, Some(size)) if size > LOCK_FILE_CAP => f.unreadable.push(Unreadable {
                id: e.name,
                kind: Problem::TooLarge,
                error: format!(
                    "{size} bytes, larger than the {} KiB cap",
                    LOCK_FILE_CAP >> 10
                ),
            }),
            (None, _) => to_read.push(e.name),
        }
    }
    progress.set_listed(to_read.len());
    let reads = backend
        .read_many(
            Dir::Locks,
            to_read,
            LOCK_FILE_CAP + 1,
            concurrency.max(1),
            progress.read.clone(),
        )
        .await;
    for (id, got) in reads {
        match got {
            Ok(bytes) if bytes.is_empty() => f.ignored.push(Ignored {
                name: id,
                reason: IgnoreReason::Empty,
            }),
            Ok(bytes) => f.files.push((id, bytes)),
            Err(BackendError::NotFound) => f.vanished.push(id),
            Err(BackendError::Failed(why)) => f.unreadable.push(Unreadable {
                id,
                kind: Problem::ReadFailed,
                error: why,
            }),
        }
    }
    Ok(f)
}

impl Fetched {
    /// Decodes every fetched file with the repository's key.
    pub fn decode(self, repo: &Repository) -> Inventory {
        let mut inv = Inventory {
            locks: Vec::with_capacity(self.files.len()),
            unreadable: self.unreadable,
            ignored: self.ignored,
            vanished: self.vanished,
        };
        let mut decoder = LockDecoder::new(&repo.master, repo.version);
        for (id, bytes) in self.files {
            match decoder.decode(&id, &bytes) {
                Ok(lock) => inv.locks.push(LockEntry { id, lock }),
                Err((kind, error)) => inv.unreadable.push(Unreadable { id, kind, error }),
            }
        }
        inv.locks
            .sort_by(|a, b| a.lock.time.cmp(&b.lock.time).then(a.id.cmp(&b.id)));
        inv.unreadable.sort_by(|a, b| a.id.cmp(&b.id));
        inv.ignored.sort_by(|a, b| a.name.cmp(&b.name));
        inv.vanished.sort();
        inv
    }
}

/// Reads and decodes every entry of `locks/` of an opened repository.
pub async fn inventory(repo: &Repository, concurrency: usize) -> Result<Inventory, BackendError> {
    Ok(
        fetch(repo.backend.as_ref(), concurrency, &Progress::default())
            .await?
            .decode(repo),
    )
}
