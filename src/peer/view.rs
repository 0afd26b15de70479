//! A peer's answer read as the verdicts read this host: [`crate::verdict::rules`] runs on it
//! unchanged, so a lock is judged on its own host by the same rules as here.

use chrono::{DateTime, Duration, Utc};

use super::answer::{HostAnswer, State};
use crate::process::{HostView, PidState};

/// One peer's answer, and how far its clock is from this host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    pub answer: HostAnswer,
    /// The peer's clock minus this host's, measured at the middle of the round trip.
    pub offset: Duration,
}

impl PeerView {
    /// This host's `now` on the peer's clock.
    pub fn their_now(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.offset
    }
}

impl HostView for PeerView {
    fn hostname(&self) -> &str {
        &self.answer.hostname
    }

    /// A PID not asked about (never the case for the locks it was asked for) is absent.
    fn probe(&self, pid: i32) -> PidState {
        self.answer
            .processes
            .iter()
            .find(|p| p.pid == pid)
            .map_or(PidState::Absent, |p| p.state.into())
    }

    fn probe_group(&self, group: i32) -> PidState {
        self.answer
            .groups
            .iter()
            .find(|g| g.group == group)
            .map_or(State::Absent, |g| g.state)
            .into()
    }

    fn started(&self, pid: i32) -> Option<DateTime<Utc>> {
        self.answer.processes.iter().find(|p| p.pid == pid)?.started
    }

    fn command(&self, pid: i32) -> Option<String> {
        self.answer
            .processes
            .iter()
            .find(|p| p.pid == pid)?
            .command
            .clone()
    }
}
