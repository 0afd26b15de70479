//! What a host says about its own processes: the one document `locksmith agent` and
//! `serve` answer at [`PATH`]. It needs no repository and no password, and tells only what
//! judging a lock needs: whether each PID (and process group) asked about exists and runs
//! restic, when a restic started, and the host's name, boot and clock. Command lines, and
//! start times of other programs, go only to an authenticated asker.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::kernel::Kernel;
use crate::process::{HostView, PidState, ThisHost};

/// Where agent and serve answer.
pub const PATH: &str = "/api/v1/host";
/// PIDs and groups one question may name: a host's locks have few holders; more is abuse.
pub const MAX_ASKED: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// `kill(pid, 0)` succeeds.
    Signalable,
    /// EPERM: it exists, another user's.
    NoPermission,
    Absent,
}

impl From<PidState> for State {
    fn from(s: PidState) -> State {
        match s {
            PidState::Signalable => State::Signalable,
            PidState::NoPermission => State::NoPermission,
            PidState::Absent => State::Absent,
        }
    }
}

impl From<State> for PidState {
    fn from(s: State) -> PidState {
        match s {
            State::Signalable => PidState::Signalable,
            State::NoPermission => PidState::NoPermission,
            State::Absent => PidState::Absent,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessFacts {
    pub pid: i32,
    pub state: State,
    pub started: Option<DateTime<Utc>>,
    pub command: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFacts {
    pub group: i32,
    pub state: State,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAnswer {
    pub hostname: String,
    /// This host's clock when it answered (milliseconds: the offset is measured with it).
    pub now: DateTime<Utc>,
    pub boot_time: Option<DateTime<Utc>>,
    pub processes: Vec<ProcessFacts>,
    pub groups: Vec<GroupFacts>,
    /// Its kernel: the host names it carries (its containers' and Pods'), and the
    /// processes of every PID namespace whose own PID was asked about.
    #[serde(default)]
    pub kernel: Kernel,
}

/// What one question asks: PIDs and process groups, each > 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Question {
    pub pids: BTreeSet<i32>,
    pub groups: BTreeSet<i32>,
    /// The oldest time of the locks asked about (Unix seconds): an unauthenticated asker
    /// learns of a process that is not restic only whether it started after it.
    pub since: Option<i64>,
}

impl Question {
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.groups.is_empty()
    }

    /// The same question in parts of at most `n` PIDs and groups each (at least one part).
    pub fn batches(&self, n: usize) -> Vec<Question> {
        let n = n.max(1);
        let items: Vec<(bool, i32)> = self
            .pids
            .iter()
            .map(|&p| (true, p))
            .chain(self.groups.iter().map(|&g| (false, g)))
            .collect();
        if items.is_empty() {
            return vec![Question::default()];
        }
        items
            .chunks(n)
            .map(|part| {
                let mut q = Question {
                    since: self.since,
                    ..Question::default()
                };
                for &(is_pid, v) in part {
                    if is_pid {
                        q.pids.insert(v)
                    } else {
                        q.groups.insert(v)
                    };
                }
                q
            })
            .collect()
    }

    /// As a query string: `pid=1,2&group=3`.
    pub fn query(&self) -> String {
        let list = |s: &BTreeSet<i32>| s.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        let since = self
            .since
            .map(|t| format!("&since={t}"))
            .unwrap_or_default();
        format!(
            "pid={}&group={}{since}",
            list(&self.pids),
            list(&self.groups)
        )
    }

    /// From a query's `pid` and `group` values (comma-separated, repeatable).
    pub fn parse<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Result<Question, String> {
        let mut q = Question::default();
        for (k, v) in pairs {
            let set = match k {
                "pid" => &mut q.pids,
                "group" => &mut q.groups,
                "since" => {
                    let t = v.trim().parse::<i64>();
                    q.since = Some(t.map_err(|_| format!("since={v:?}: Unix seconds expected"))?);
                    continue;
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?}: ask pid=, group= and since="
                    ));
                }
            };
            for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                match n.parse::<i32>() {
                    Ok(p) if p > 0 => set.insert(p),
                    _ => return Err(format!("{k}={n:?}: a number above 0 was expected")),
                };
            }
        }
        if q.pids.len() + q.groups.len() > MAX_ASKED {
            return Err(format!("at most {MAX_ASKED} PIDs and groups at once"));
        }
        Ok(q)
    }
}

/// What an unauthenticated asker is told of a process that is not restic.
pub const ANOTHER_PROGRAM: &str = "(another program)";

impl HostAnswer {
    /// The answer for anyone who can reach the agent: only what a verdict needs. Whether
    /// each PID asked about exists (EPERM counts) and runs restic; a restic's start time
    /// (it tells the holder from a later job); of anything else, only whether it started
    /// after `since`. Command lines are never told: "restic", or [`ANOTHER_PROGRAM`].
    pub fn for_anyone(mut self, since: Option<i64>) -> HostAnswer {
        // Of a program that is not restic, only whether it started after the oldest lock
        // asked about (the holder is then gone): as a time just past it, never its own.
        let after = since
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .map(|t| t + crate::kernel::START_TIME_SLACK + chrono::Duration::seconds(1));
        let bound = |started: Option<DateTime<Utc>>| match (started, after) {
            (Some(s), Some(a)) if s >= a => Some(a),
            _ => None,
        };
        for p in &mut self.processes {
            let restic = p.command.as_deref().is_some_and(|c| c.contains("restic"));
            p.command = p
                .command
                .as_ref()
                .map(|_| if restic { "restic" } else { ANOTHER_PROGRAM }.to_string());
            if !restic {
                p.started = bound(p.started);
            }
        }
        for p in &mut self.kernel.processes {
            if !p.restic {
                p.started = bound(p.started);
            }
        }
        self
    }
}

/// This host's answer to `q`.
pub fn answer(q: &Question, host: &ThisHost) -> HostAnswer {
    HostAnswer {
        kernel: crate::kernel::linux::read(host, &q.pids, true),
        hostname: host.hostname().to_string(),
        now: Utc::now(),
        boot_time: host.boot(),
        processes: q
            .pids
            .iter()
            .map(|&pid| {
                let state = State::from(host.probe(pid));
                let exists = state != State::Absent;
                ProcessFacts {
                    pid,
                    state,
                    started: exists.then(|| host.started(pid)).flatten(),
                    command: exists.then(|| host.command(pid)).flatten(),
                }
            })
            .collect(),
        groups: q
            .groups
            .iter()
            .map(|&group| GroupFacts {
                group,
                state: host.probe_group(group).into(),
            })
            .collect(),
    }
}
