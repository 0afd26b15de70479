//! A peer's answer read as the verdicts read this host: [`crate::verdict::rules`] runs on it
//! unchanged, so a lock is judged on its own host by the same rules as here.

use chrono::{DateTime, Duration, Utc};

use super::answer::{HostAnswer, State};
use crate::kernel::Kernel;
use crate::process::{HostView, PidState};

/// One peer's answer, and how far its clock is from this host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    pub answer: HostAnswer,
    /// The peer's clock minus this host's, measured at the middle of the round trip.
    pub offset: Duration,
}

/// A clock further off than this is not a clock to judge by (nor one chrono can add).
pub const MAX_OFFSET: Duration = Duration::days(3650);

impl PeerView {
    /// The answer of the peer for `hostname`, asked at `sent_at` and answered `rtt` later:
    /// refused when it speaks for another host or its clock is beyond belief.
    pub fn measured(
        answer: HostAnswer,
        hostname: &str,
        sent_at: DateTime<Utc>,
        rtt: std::time::Duration,
    ) -> Result<PeerView, String> {
        if answer.hostname != hostname {
            return Err(format!(
                "answers for host {:?}, not {hostname:?}: its PIDs say nothing about these locks",
                answer.hostname
            ));
        }
        let middle = sent_at + Duration::from_std(rtt / 2).unwrap_or_default();
        let offset = answer.now.signed_duration_since(middle);
        if offset.abs() > MAX_OFFSET {
            return Err(format!(
                "answers with a clock {} days off: not judged by it",
                offset.num_days().abs()
            ));
        }
        Ok(PeerView { answer, offset })
    }

    /// Joins the answer to a further batch of the same question.
    pub fn absorb(&mut self, more: HostAnswer) {
        let a = &mut self.answer;
        a.processes.extend(more.processes);
        a.groups.extend(more.groups);
        a.kernel.names.extend(more.kernel.names);
        a.kernel.processes.extend(more.kernel.processes);
        for u in more.kernel.unseen {
            if !a.kernel.unseen.contains(&u) {
                a.kernel.unseen.push(u);
            }
        }
    }

    /// This host's `now` on the peer's clock.
    pub fn their_now(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_add_signed(self.offset).unwrap_or(now)
    }
}

impl HostView for PeerView {
    fn hostname(&self) -> &str {
        &self.answer.hostname
    }

    fn kernel(&self) -> Option<&Kernel> {
        Some(&self.answer.kernel)
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
