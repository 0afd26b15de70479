//! What this host can tell about a lock's holder: its name, whether a PID exists, and when
//! that PID's process started. The probe is `kill(pid, 0)`: it never delivers a signal.

use chrono::{DateTime, Utc};
use rustix::io::Errno;
use rustix::process::{Pid, test_kill_process, test_kill_process_group};

/// The answer of `kill(pid, 0)` (and so of restic's `kill(pid, SIGHUP)` but for delivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidState {
    /// The call succeeded: a signal would be delivered.
    Signalable,
    /// EPERM: the process exists but belongs to someone else.
    NoPermission,
    /// ESRCH: no such process.
    Absent,
    /// 0 or -1 (Go refuses to signal these) or out of range: restic's probe fails.
    Invalid,
}

/// The host as locks are judged from it; tests substitute their own.
pub trait HostView {
    fn hostname(&self) -> &str;
    /// Signal-0 probe of the raw PID value from a lock (negative values address a group,
    /// exactly as restic's `kill(pid, SIGHUP)` would).
    fn probe(&self, pid: i64) -> PidState;
    /// When the process now holding `pid` started, where the system says.
    fn started(&self, pid: i64) -> Option<DateTime<Utc>>;
    /// The command name of the process now holding `pid`, where the system says.
    fn command(&self, pid: i64) -> Option<String>;
}

/// The real host.
pub struct ThisHost {
    hostname: String,
    boot: Option<i64>,
    ticks: u64,
}

impl ThisHost {
    pub fn new() -> ThisHost {
        ThisHost {
            hostname: local_hostname(),
            boot: boot_time(),
            ticks: rustix::param::clock_ticks_per_second(),
        }
    }
}

impl Default for ThisHost {
    fn default() -> Self {
        Self::new()
    }
}

/// The name restic compares against (Go's `os.Hostname`: the kernel's node name).
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim_end_matches('\n').to_string())
        .unwrap_or_else(|_| {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        })
}

fn boot_time() -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Field 22 of `/proc/PID/stat`: start time in clock ticks after boot. The command name
/// (field 2) may hold spaces and parentheses, so count from the last `)`.
fn start_ticks(pid: i64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

impl HostView for ThisHost {
    fn hostname(&self) -> &str {
        &self.hostname
    }

    fn probe(&self, pid: i64) -> PidState {
        let Ok(raw) = i32::try_from(pid) else {
            return PidState::Invalid;
        };
        if raw == 0 || raw == -1 {
            return PidState::Invalid;
        }
        let res = if raw > 0 {
            test_kill_process(Pid::from_raw(raw).expect("positive"))
        } else {
            test_kill_process_group(Pid::from_raw(-raw).expect("positive"))
        };
        match res {
            Ok(()) => PidState::Signalable,
            Err(Errno::PERM) => PidState::NoPermission,
            Err(_) => PidState::Absent,
        }
    }

    fn started(&self, pid: i64) -> Option<DateTime<Utc>> {
        if pid <= 0 || self.ticks == 0 {
            return None;
        }
        let ticks = start_ticks(pid)?;
        let ms = (ticks as i128 * 1000 / self.ticks as i128) as i64;
        DateTime::from_timestamp_millis(self.boot? * 1000 + ms)
    }

    fn command(&self, pid: i64) -> Option<String> {
        if pid <= 0 {
            return None;
        }
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|s| s.trim_end_matches('\n').to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_signalable_and_started_recently() {
        let host = ThisHost::new();
        let me = std::process::id() as i64;
        assert_eq!(host.probe(me), PidState::Signalable);
        let started = host.started(me).expect("own start time");
        let age = Utc::now() - started;
        assert!(age.num_seconds() >= -2 && age.num_hours() < 24, "{age}");
        assert!(host.command(me).is_some_and(|c| !c.is_empty()));
    }

    #[test]
    fn invalid_pids_are_never_probed() {
        let host = ThisHost::new();
        assert_eq!(host.probe(0), PidState::Invalid);
        assert_eq!(host.probe(-1), PidState::Invalid);
        assert_eq!(host.probe(1 << 40), PidState::Invalid);
    }

    #[test]
    fn hostname_matches_kernel() {
        assert_eq!(
            local_hostname(),
            rustix::system::uname().nodename().to_string_lossy()
        );
    }
}
