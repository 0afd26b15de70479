//! What one kernel shows of the processes that could hold a lock. A lock names a host and a
//! PID, but a kernel carries many host names (one per UTS namespace: containers, Pods) and
//! many PID namespaces, and a PID means something only in its own. A [`Kernel`] is read
//! once per reading (by [`linux::read`] here, or by an agent for its host), indexed by each
//! process's PID in its own innermost namespace, and looked up by [`Kernel::holder`]
//! without further I/O.
//!
//! Its rule: a restic process whose own PID is the lock's, whose host name is the lock's
//! (or cannot be read), and which started before the lock was written, is the holder —
//! alive. Evidence of life counts even when incomplete; death is claimed only for what was
//! seen, and [`Kernel::unseen`] says what was not.

pub mod linux;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// `/proc` start times are rounded to boot-time seconds; allow for that before calling a
/// process younger than a lock.
pub const START_TIME_SLACK: Duration = Duration::seconds(2);

/// One process of a kernel, as a lock's holder would be named in its lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsProcess {
    /// Its PID in its own (innermost) PID namespace: what restic writes in its lock.
    pub pid: i32,
    /// The host name of its UTS namespace; `None` where it could not be read.
    pub hostname: Option<String>,
    /// In the reader's own PID namespace (where `kill(pid)` reaches it).
    pub here: bool,
    pub started: Option<DateTime<Utc>>,
    pub restic: bool,
}

/// A kernel's processes whose own PID was asked about, and its host names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kernel {
    /// Every UTS host name seen on this kernel, the reader's own included.
    pub names: BTreeSet<String>,
    pub processes: Vec<NsProcess>,
    /// What could not be seen from where this was read (hidepid, another user's
    /// namespaces, sibling containers): each a sentence.
    #[serde(default)]
    pub unseen: Vec<String>,
}

/// What a kernel shows at a lock's PID under its host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A restic older than the lock: the holder, alive. `here`: in the reader's own PID
    /// namespace; `named`: its host name was read (not merely unreadable).
    Holder {
        here: bool,
        named: bool,
    },
    /// Processes at that PID under that name, none of them the holder.
    Stranger,
    Nothing,
}

impl Kernel {
    /// The processes at `pid` (in their own namespace) under `hostname`. `others_only`:
    /// leave out the reader's own PID namespace (already probed directly).
    fn at<'a>(
        &'a self,
        hostname: &'a str,
        pid: i32,
        others_only: bool,
    ) -> impl Iterator<Item = &'a NsProcess> + 'a {
        self.processes.iter().filter(move |p| {
            p.pid == pid
                && !(others_only && p.here)
                && p.hostname.as_deref().is_none_or(|h| h == hostname)
        })
    }

    /// Whether the holder of a lock written at `time` by PID `pid` of `hostname` is
    /// here. A process whose host name could not be read may be it: counted as alive.
    pub fn holder(
        &self,
        hostname: &str,
        pid: i64,
        time: DateTime<Utc>,
        others_only: bool,
    ) -> Found {
        let Some(pid) = i32::try_from(pid).ok().filter(|p| *p > 0) else {
            return Found::Nothing;
        };
        let mut found = Found::Nothing;
        for p in self.at(hostname, pid, others_only) {
            let older = p.started.is_none_or(|s| s <= time + START_TIME_SLACK);
            if p.restic && older {
                return Found::Holder {
                    here: p.here,
                    named: p.hostname.is_some(),
                };
            }
            if p.hostname.is_some() {
                found = Found::Stranger;
            }
        }
        found
    }

    /// Whether this kernel carries `hostname` as one of its UTS names.
    pub fn carries(&self, hostname: &str) -> bool {
        self.names.contains(hostname)
    }

    /// What could not be seen, in one clause, if anything.
    pub fn unseen_note(&self) -> Option<String> {
        (!self.unseen.is_empty()).then(|| self.unseen.join("; "))
    }
}

/// Kernels of several hosts by the names they carry: which one answers for a host name.
#[derive(Debug, Default)]
pub struct Claims<'a> {
    by_name: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> Claims<'a> {
    /// `kernels`: each kernel with the name of whoever reported it (an agent's host).
    pub fn new(kernels: impl IntoIterator<Item = (&'a str, &'a Kernel)>) -> Claims<'a> {
        let mut by_name: HashMap<&str, Vec<&str>> = HashMap::new();
        for (reporter, k) in kernels {
            for n in &k.names {
                by_name.entry(n.as_str()).or_default().push(reporter);
            }
        }
        Claims { by_name }
    }

    /// Who reports `hostname`: nobody, one reporter, or several (an error to name).
    pub fn of(&self, hostname: &str) -> &[&'a str] {
        self.by_name.get(hostname).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests;
