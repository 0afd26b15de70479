//! Other hosts' views of their own locks. A lock written on another host can only be judged
//! there: its PID means something only in that host's process table, and its time was read
//! off that host's clock. Each host runs `locksmith agent` (or `serve`), which answers
//! [`answer::HostAnswer`]s; [`ask::consult`] asks the peers that hold locks, at once and
//! within the run's time limit, and [`view::PeerView`] lets the verdicts read an answer as
//! they read this host.
//!
//! A peer never makes a run fail: one that is down, slow, refuses the credentials or
//! answers for another host leaves its locks `unknown`, with the reason.

pub mod answer;
pub mod ask;
pub mod memo;
pub mod view;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::{Redactor, Secret};

pub use answer::{HostAnswer, ProcessFacts};
pub use ask::{Answering, Consulted, PeerStatus, consult};
pub use view::PeerView;

/// One host that answers for its own locks.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The host name as restic writes it in the lock.
    pub hostname: String,
    /// The agent's base URL, as given (it may carry a password: shown only as `masked`).
    pub url: Secret,
    pub masked: String,
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for an agent that asks for one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Basic auth: from the peer table, else from the URL's user info.
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// The peers of a run, by host name (a later one for the same host replaces an earlier),
/// and their answers of the current round (shared by every clone: a fleet's repositories).
#[derive(Debug, Clone, Default)]
pub struct Peers {
    list: Vec<Peer>,
    memo: std::sync::Arc<memo::Memo>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("--peer {0:?}: expected HOST=URL (the host name as restic writes it in its locks)")]
    Syntax(String),
    #[error("peer {host}: {why}")]
    Url { host: String, why: String },
    #[error("peers file {}: {why}", path.display())]
    File { path: PathBuf, why: String },
    #[error("peer {host}: password file {}: {why}", path.display())]
    PasswordFile {
        host: String,
        path: PathBuf,
        why: String,
    },
}

/// A `[[peer]]` table, in a peers file or a fleet file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    pub hostname: String,
    pub url: String,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeersFile {
    #[serde(default)]
    peer: Vec<PeerEntry>,
}

impl Peers {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The same peers, each asked at most once per `round` about the locks read before it
    /// was asked (serve: its shortest interval); a new set of answers.
    pub fn with_round(&self, round: std::time::Duration) -> Peers {
        Peers {
            list: self.list.clone(),
            memo: std::sync::Arc::new(memo::Memo::new(round)),
        }
    }

    pub(crate) fn memo(&self) -> &memo::Memo {
        &self.memo
    }

    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.list.iter()
    }

    pub fn get(&self, hostname: &str) -> Option<&Peer> {
        self.list.iter().rev().find(|p| p.hostname == hostname)
    }

    pub fn add(&mut self, peer: Peer) {
        self.list.retain(|p| p.hostname != peer.hostname);
        self.list.push(peer);
    }

    /// Every password and URL password, for scrubbing texts from elsewhere.
    pub fn secrets_into(&self, r: &mut Redactor) {
        for p in &self.list {
            if let Some(pw) = &p.password {
                r.add(pw.expose());
            }
            for pw in crate::location::Masked::url_passwords(p.url.expose()) {
                r.add(&pw);
            }
        }
    }

    /// `HOST=URL` flags and `LOCKSMITH_PEERS` (`HOST=URL,…`), then files; later wins.
    pub fn from_options(flags: &[String], files: &[PathBuf]) -> Result<Peers, PeerError> {
        let mut peers = Peers::default();
        for f in files {
            for e in read_file(f)? {
                peers.add(e.resolve(f.parent().unwrap_or(Path::new(".")))?);
            }
        }
        for flag in flags.iter().flat_map(|f| f.split(',')).map(str::trim) {
            if flag.is_empty() {
                continue;
            }
            peers.add(flag_peer(flag)?);
        }
        Ok(peers)
    }
}

fn flag_peer(flag: &str) -> Result<Peer, PeerError> {
    let (host, url) = flag
        .split_once('=')
        .filter(|(h, u)| !h.trim().is_empty() && !u.trim().is_empty())
        .ok_or_else(|| PeerError::Syntax(without_user_info(flag)))?;
    PeerEntry {
        hostname: host.trim().to_string(),
        url: url.trim().to_string(),
        ca_file: None,
        cert_file: None,
        key_file: None,
        username: None,
        password_file: None,
    }
    .resolve(Path::new("."))
}

/// `flag` with whatever stands between `://` and `@` masked: a malformed value may still
/// carry a password.
fn without_user_info(flag: &str) -> String {
    match (flag.find("://"), flag.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => format!("{}***{}", &flag[..s + 3], &flag[at..]),
        _ => flag.to_string(),
    }
}

/// The `[[peer]]` tables of a peers file.
pub fn read_file(path: &Path) -> Result<Vec<PeerEntry>, PeerError> {
    let err = |why: String| PeerError::File {
        path: path.to_path_buf(),
        why,
    };
    let text = crate::files::read_config(path).map_err(|e| err(e.to_string()))?;
    let file: PeersFile = toml::from_str(&text).map_err(|e| err(e.message().to_string()))?;
    Ok(file.peer)
}

impl PeerEntry {
    /// Checked, with relative paths taken beside `base` (the file that names them) and the
    /// password file read.
    pub fn resolve(&self, base: &Path) -> Result<Peer, PeerError> {
        let host = self.hostname.trim().to_string();
        let bad = |why: &str| PeerError::Url {
            host: host.clone(),
            why: why.to_string(),
        };
        let url = url::Url::parse(&self.url).map_err(|e| bad(&format!("URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad("the URL must be http:// or https://HOST[:PORT]"));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(bad("cert_file and key_file go together"));
        }
        let beside = |p: &Option<PathBuf>| p.as_ref().map(|p| base.join(p));
        let password = match beside(&self.password_file) {
            Some(path) => Some(read_password(&host, &path)?),
            None => (!url.password().unwrap_or_default().is_empty()).then(|| {
                let raw = url.password().unwrap_or_default();
                Secret::new(percent_encoding::percent_decode_str(raw).decode_utf8_lossy())
            }),
        };
        let username = self.username.clone().or_else(|| {
            (!url.username().is_empty()).then(|| {
                percent_encoding::percent_decode_str(url.username())
                    .decode_utf8_lossy()
                    .into_owned()
            })
        });
        Ok(Peer {
            masked: crate::location::Masked::new(&self.url).to_string(),
            hostname: host,
            url: Secret::new(self.url.clone()),
            ca_file: beside(&self.ca_file),
            cert_file: beside(&self.cert_file),
            key_file: beside(&self.key_file),
            username,
            password,
        })
    }
}

fn read_password(host: &str, path: &Path) -> Result<Secret, PeerError> {
    let bytes = crate::files::read_regular(path, crate::password::MAX_PASSWORD as u64);
    let text = bytes
        .and_then(|b| String::from_utf8(b).map_err(|_| crate::files::FileError::NotText))
        .map_err(|e| PeerError::PasswordFile {
            host: host.to_string(),
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
    Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
}

#[cfg(test)]
mod tests;
