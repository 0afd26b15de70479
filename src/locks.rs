//! The entries of `locks/`: each one decoded, or set aside with the reason. How they are
//! read is [`crate::inventory`]'s.

use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::BackendError;
use crate::restic::envelope::{CryptoError, Key, OVERHEAD};
use crate::restic::lock::LoadError;
pub use crate::restic::lock::Lock;

/// Real lock files are 130–160 bytes; anything past this is junk and is not read whole.
pub const LOCK_FILE_CAP: u64 = 64 << 10;
/// Cap on a decompressed lock, against zstd bombs (a real one is about 150 bytes).
const PLAIN_CAP: u64 = 64 << 10;

/// Why a lock file could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    TooLarge,
    TooShort,
    NameMismatch,
    MacMismatch,
    UnknownEncoding,
    BadZstd,
    BadJson,
    /// A time Go's RFC 3339 parser refuses: restic cannot load the lock.
    BadTime,
    ReadFailed,
    /// Not read before the run's deadline.
    NotRead,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Unreadable {
    pub id: String,
    pub kind: Problem,
    pub error: String,
}

/// What a lock file restic cannot load does to restic (checked with 0.14, 0.18, 0.19).
pub const UNREADABLE_EFFECT: &str = "restic 0.14 skips it; restic 0.15 and later fail every command that takes a lock (backup, forget, prune, check …) with exit 1 until it is removed (restic unlock keeps it; restic unlock --remove-all removes it)";

impl Problem {
    /// What this entry does to restic, where it is known.
    pub fn restic_effect(&self) -> &'static str {
        match self {
            Problem::ReadFailed | Problem::NotRead => {
                "unknown: locksmith could not read it; if restic cannot either, restic 0.15 and later fail every command that takes a lock"
            }
            _ => UNREADABLE_EFFECT,
        }
    }
}

impl Serialize for Unreadable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Unreadable", 4)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("error", &self.error)?;
        st.serialize_field("restic_effect", self.kind.restic_effect())?;
        st.end()
    }
}

/// Why an entry was not treated as a lock at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    pub name: String,
    pub reason: IgnoreReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    pub id: String,
    pub lock: Lock,
    /// When the storage wrote the file, by its clock (where the backend lists it): a
    /// second clock beside the writer's `time`.
    pub stored_at: Option<chrono::DateTime<chrono::Utc>>,
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
    /// Why the inventory is incomplete (the deadline passed before every entry was read).
    pub incomplete: Option<String>,
    /// Lock files read this time that failed their MAC: damaged, or sealed under another
    /// key (a repository initialised anew at the same place).
    pub fresh_mac_failures: usize,
    /// Lock files fetched from the backend (a cache's hits are not).
    pub fetched: usize,
}

impl Inventory {
    /// Files what reading entry `id` gave, unless it is a body to decode, which it returns.
    pub(crate) fn absorb(
        &mut self,
        id: String,
        got: Result<Vec<u8>, BackendError>,
    ) -> Option<(String, Vec<u8>)> {
        match got {
            Ok(bytes) if bytes.is_empty() => self.ignored.push(Ignored {
                name: id,
                reason: IgnoreReason::Empty,
            }),
            Ok(bytes) => return Some((id, bytes)),
            Err(BackendError::NotFound) => self.vanished.push(id),
            Err(BackendError::NotAFile) => self.ignored.push(Ignored {
                name: id,
                reason: IgnoreReason::NotAFile,
            }),
            Err(e) => self.unreadable.push(Unreadable {
                id,
                kind: Problem::ReadFailed,
                error: e.to_string(),
            }),
        }
        None
    }

    /// A decoded lock, or why it did not decode, in its place.
    pub(crate) fn place(&mut self, id: String, decoded: Result<Lock, (Problem, String)>) {
        match decoded {
            Ok(lock) => self.locks.push(LockEntry {
                id,
                lock,
                stored_at: None,
            }),
            Err((kind, error)) => self.unreadable.push(Unreadable { id, kind, error }),
        }
    }

    /// The order every report shows: locks oldest first, the rest by name.
    pub fn sort(&mut self) {
        self.locks
            .sort_by(|a, b| a.lock.time.cmp(&b.lock.time).then(a.id.cmp(&b.id)));
        self.unreadable.sort_by(|a, b| a.id.cmp(&b.id));
        self.ignored.sort_by(|a, b| a.name.cmp(&b.name));
        self.vanished.sort();
    }
}

/// Host and user names are at most this long anywhere locksmith shows them (a host name
/// is at most 255 bytes by DNS, 64 on Linux): a lock may carry megabytes in either.
pub const NAME_CAP: usize = 255;
/// What a name that was cut ends with.
pub const CUT_MARK: &str = "…[cut]";

/// `s` cut to [`NAME_CAP`] bytes (at a character boundary) and marked; whether it was.
fn cut(s: &mut String) -> bool {
    if s.len() <= NAME_CAP {
        return false;
    }
    let mut end = NAME_CAP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(CUT_MARK);
    true
}

/// Cuts a lock's host and user names. The cut cannot change a verdict: no host's own name
/// is that long, so a cut name is another host's either way.
fn cut_names(lock: &mut Lock) {
    cut(&mut lock.hostname);
    cut(&mut lock.username);
}

/// Whether a name was cut by [`cut_names`].
pub fn was_cut(name: &str) -> bool {
    name.ends_with(CUT_MARK) && name.len() > NAME_CAP
}

fn problem(kind: Problem, error: impl Into<String>) -> (Problem, String) {
    (kind, error.into())
}

/// Decodes lock files of one repository, reusing one zstd context (creating a context
/// per lock cost more than everything else a lock needs).
pub struct LockDecoder {
    key: Key,
    version: u32,
    zstd: zstd::zstd_safe::DCtx<'static>,
}

impl LockDecoder {
    pub fn new(key: &Key, version: u32) -> LockDecoder {
        LockDecoder {
            key: key.clone(),
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
        let mut lock = Lock::from_go_json(&json).map_err(|e| match e {
            LoadError::Time(why) => problem(Problem::BadTime, why),
            LoadError::Json(why) => {
                problem(Problem::BadJson, format!("restic cannot load it: {why}"))
            }
        })?;
        cut_names(&mut lock);
        Ok(lock)
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
                "decompresses to more than 64 KiB",
            ));
        }
        Ok(out)
    }
}
