//! Judging a lock: what `restic unlock` would do with it, whether its holder lives, and
//! whether that removal would be a mistake.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::locks::Lock;
use crate::process::{HostView, PidState};

/// restic calls a lock stale after this long without a refresh, whoever holds it.
pub const RESTIC_STALE_AFTER: Duration = Duration::minutes(30);
/// restic refreshes its lock this often.
pub const REFRESH_INTERVAL: Duration = Duration::minutes(5);
/// Two missed refreshes: the holder has almost surely died.
pub const ABANDONED_AFTER: Duration = Duration::minutes(10);
/// `/proc` start times are rounded to boot-time seconds; allow for that before calling a
/// PID reused.
const START_TIME_SLACK: Duration = Duration::seconds(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    /// The PID exists on this host (EPERM counts: it exists, someone else owns it).
    Alive,
    /// No such process on this host.
    Gone,
    /// The PID exists but its process started after the lock was written: not the holder.
    Reused,
    /// Held on another host: this host cannot tell.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Seconds since the last refresh (negative when the time is in the future).
    pub age_seconds: i64,
    pub holder: Holder,
    /// The command name of the process now owning the PID on this host, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder_command: Option<String>,
    /// Exactly what `restic unlock` run here, as this user, would do.
    pub restic_unlock_removes: bool,
    /// Our rule: the holder is demonstrably gone, or (on another host) restic's 30 minutes
    /// have passed. A live holder is never stale.
    pub stale: bool,
    pub abandoned: bool,
    pub clock_skew: bool,
    /// `restic unlock` would remove a live holder's lock, or its SIGHUP probe would hit a
    /// live process that is not the holder.
    #[serde(rename = "unsafe")]
    pub unsafe_: bool,
    pub reason: String,
}

/// Short human duration: `45s`, `12m05s`, `3h07m`, `2d04h`.
pub fn human_age(secs: i64) -> String {
    let (sign, s) = if secs < 0 { ("-", -secs) } else { ("", secs) };
    let body = match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    };
    format!("{sign}{body}")
}

pub fn judge(lock: &Lock, now: DateTime<Utc>, host: &dyn HostView) -> Verdict {
    let age = now.signed_duration_since(lock.time);
    let age_s = age.num_seconds();
    let same_host = lock.hostname == host.hostname();
    let pid = lock.pid;
    let too_old = age > RESTIC_STALE_AFTER;

    // What restic's probe answers (only asked when restic would ask it).
    let state = same_host.then(|| host.probe(pid));
    let holder = match state {
        None => Holder::Unknown,
        Some(PidState::Absent | PidState::Invalid) => Holder::Gone,
        Some(PidState::Signalable | PidState::NoPermission) => {
            let reused = pid > 0
                && host
                    .started(pid)
                    .is_some_and(|s| s > lock.time.with_timezone(&Utc) + START_TIME_SLACK);
            if reused {
                Holder::Reused
            } else {
                Holder::Alive
            }
        }
    };
    let command = match holder {
        Holder::Alive | Holder::Reused => host.command(pid),
        _ => None,
    };
    // Only restic writes restic locks: a live PID running something else is another
    // process than the holder (another PID namespace, or a forged lock).
    let not_restic =
        holder == Holder::Alive && command.as_deref().is_some_and(|c| !c.contains("restic"));
    let restic_probes = !too_old && same_host;
    let restic_unlock_removes = too_old || (restic_probes && state != Some(PidState::Signalable));
    // restic's SIGHUP lands on whatever owns the PID now (or on a whole process group).
    let sighup_to_stranger = restic_probes
        && state == Some(PidState::Signalable)
        && (holder == Holder::Reused || pid < 0 || not_restic);
    let unsafe_ = (restic_unlock_removes && holder == Holder::Alive) || sighup_to_stranger;
    let stale = match holder {
        Holder::Gone | Holder::Reused => true,
        Holder::Alive => false,
        Holder::Unknown => too_old,
    };
    let abandoned = age > ABANDONED_AFTER;
    let clock_skew = age < Duration::zero();

    let who = if same_host {
        format!("PID {pid} on this host")
    } else {
        format!("held on {:?}", lock.hostname)
    };
    let what = match holder {
        Holder::Alive if state == Some(PidState::NoPermission) => {
            format!("{who} is alive (another user's process)")
        }
        Holder::Alive if not_restic => format!(
            "{who} is alive but runs {:?}, not restic",
            command.as_deref().unwrap_or_default()
        ),
        Holder::Alive => format!("{who} is alive"),
        Holder::Gone => format!("{who} is gone"),
        Holder::Reused => {
            format!("{who} now belongs to a process started after the lock: the holder is gone")
        }
        Holder::Unknown => who,
    };
    let when = if clock_skew {
        format!("time is {} in the future (clock skew)", human_age(-age_s))
    } else {
        format!("last refreshed {} ago", human_age(age_s))
    };
    let restic = if sighup_to_stranger {
        format!(
            "restic unlock would send SIGHUP to {} that is not the holder",
            if pid < 0 {
                "a process group"
            } else {
                "a live process"
            }
        )
    } else if restic_unlock_removes && holder == Holder::Alive {
        if too_old {
            "restic unlock would remove it although the holder is alive".to_string()
        } else {
            "restic unlock would remove it (its probe takes EPERM for gone) although the holder is alive".to_string()
        }
    } else if restic_unlock_removes {
        "restic unlock would remove it".to_string()
    } else {
        "restic unlock would keep it".to_string()
    };
    let mut reason = format!("{what}; {when}; {restic}");
    if unsafe_ {
        reason.push_str(" — UNSAFE");
    } else if abandoned && holder == Holder::Unknown && !too_old {
        reason.push_str(" (not refreshed for two intervals: probably abandoned)");
    }

    Verdict {
        age_seconds: age_s,
        holder,
        holder_command: command,
        restic_unlock_removes,
        stale,
        abandoned,
        clock_skew,
        unsafe_,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    struct FakeHost {
        name: &'static str,
        state: PidState,
        started: Option<DateTime<Utc>>,
        command: &'static str,
    }

    impl HostView for FakeHost {
        fn hostname(&self) -> &str {
            self.name
        }
        fn probe(&self, _pid: i64) -> PidState {
            self.state
        }
        fn started(&self, _pid: i64) -> Option<DateTime<Utc>> {
            self.started
        }
        fn command(&self, _pid: i64) -> Option<String> {
            Some(self.command.to_string())
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }

    fn lock(host: &str, mins_ago: i64, pid: i64) -> Lock {
        Lock {
            time: (now() - Duration::minutes(mins_ago)).fixed_offset(),
            exclusive: false,
            hostname: host.into(),
            username: "root".into(),
            pid,
            uid: 0,
            gid: 0,
        }
    }

    fn host(state: PidState) -> FakeHost {
        FakeHost {
            name: "here",
            state,
            started: Some(now() - Duration::hours(1)),
            command: "restic",
        }
    }

    #[test]
    fn live_holder_is_kept_by_everyone() {
        let v = judge(&lock("here", 1, 10), now(), &host(PidState::Signalable));
        assert_eq!(v.holder, Holder::Alive);
        assert!(!v.restic_unlock_removes && !v.stale && !v.unsafe_ && !v.abandoned);
    }

    #[test]
    fn gone_holder_is_stale_for_both() {
        let v = judge(&lock("here", 1, 10), now(), &host(PidState::Absent));
        assert_eq!(v.holder, Holder::Gone);
        assert!(v.restic_unlock_removes && v.stale && !v.unsafe_);
    }

    #[test]
    fn eperm_holder_is_alive_but_restic_removes_it() {
        let v = judge(&lock("here", 1, 10), now(), &host(PidState::NoPermission));
        assert_eq!(v.holder, Holder::Alive);
        assert!(v.restic_unlock_removes && !v.stale && v.unsafe_);
        assert!(v.reason.contains("EPERM"), "{}", v.reason);
    }

    #[test]
    fn reused_pid_gets_restics_sighup() {
        let h = FakeHost {
            started: Some(now() - Duration::seconds(30)),
            ..host(PidState::Signalable)
        };
        let v = judge(&lock("here", 2, 10), now(), &h);
        assert_eq!(v.holder, Holder::Reused);
        assert!(!v.restic_unlock_removes && v.stale && v.unsafe_);
        assert!(v.reason.contains("SIGHUP"));
    }

    #[test]
    fn reused_pid_of_another_user_is_removed_safely() {
        let h = FakeHost {
            started: Some(now() - Duration::seconds(30)),
            ..host(PidState::NoPermission)
        };
        let v = judge(&lock("here", 2, 10), now(), &h);
        assert_eq!(v.holder, Holder::Reused);
        assert!(v.restic_unlock_removes && v.stale && !v.unsafe_);
    }

    #[test]
    fn other_host_waits_thirty_minutes() {
        let h = host(PidState::Signalable);
        let young = judge(&lock("there", 29, 10), now(), &h);
        assert_eq!(young.holder, Holder::Unknown);
        assert!(!young.restic_unlock_removes && !young.stale && young.abandoned);
        let old = judge(&lock("there", 31, 10), now(), &h);
        assert!(old.restic_unlock_removes && old.stale && !old.unsafe_);
    }

    #[test]
    fn old_lock_of_live_holder_is_unsafe_to_remove() {
        let v = judge(&lock("here", 45, 10), now(), &host(PidState::Signalable));
        assert_eq!(v.holder, Holder::Alive);
        assert!(v.restic_unlock_removes && !v.stale && v.unsafe_ && v.abandoned);
    }

    #[test]
    fn future_time_is_clock_skew() {
        let v = judge(&lock("there", -3, 10), now(), &host(PidState::Signalable));
        assert!(v.clock_skew && !v.stale && !v.restic_unlock_removes);
        assert_eq!(v.age_seconds, -180);
        assert!(v.reason.contains("future"));
    }

    #[test]
    fn boundary_at_exactly_thirty_minutes_is_kept_like_restic() {
        // restic: time.Since(t) > 30m.
        let v = judge(&lock("there", 30, 10), now(), &host(PidState::Signalable));
        assert!(!v.restic_unlock_removes);
    }

    #[test]
    fn pid_zero_is_gone_and_removed() {
        let v = judge(&lock("here", 1, 0), now(), &host(PidState::Invalid));
        assert_eq!(v.holder, Holder::Gone);
        assert!(v.restic_unlock_removes && v.stale && !v.unsafe_);
    }

    #[test]
    fn negative_pid_sighups_a_group() {
        let v = judge(&lock("here", 1, -4242), now(), &host(PidState::Signalable));
        assert!(v.unsafe_ && !v.restic_unlock_removes);
    }

    #[test]
    fn live_pid_that_is_not_restic_gets_the_sighup() {
        let h = FakeHost {
            command: "nginx",
            ..host(PidState::Signalable)
        };
        let v = judge(&lock("here", 1, 10), now(), &h);
        assert_eq!(v.holder, Holder::Alive);
        assert_eq!(v.holder_command.as_deref(), Some("nginx"));
        assert!(v.unsafe_ && !v.restic_unlock_removes && !v.stale);
        assert!(v.reason.contains("\"nginx\", not restic"), "{}", v.reason);
    }

    #[test]
    fn human_ages() {
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(125), "2m05s");
        assert_eq!(human_age(3 * 3600 + 7 * 60), "3h07m");
        assert_eq!(human_age(2 * 86400 + 4 * 3600), "2d04h");
        assert_eq!(human_age(-90), "-1m30s");
    }
}
