//! Judging a lock: what `restic unlock` would do with it, whether its holder lives, and
//! whether that removal would be a mistake. [`rules`] decides everything (stale, unsafe,
//! abandoned, clock skew) from the lock, the time and the host; [`judge`] assembles the
//! verdict, and [`reason`] only words it.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

use crate::kernel::{Found, START_TIME_SLACK};
use crate::locks::Lock;
use crate::process::{HostView, PidState, SignalTarget};

/// restic calls a lock stale after this long without a refresh, whoever holds it.
pub const RESTIC_STALE_AFTER: Duration = Duration::minutes(30);
/// restic refreshes its lock this often.
pub const REFRESH_INTERVAL: Duration = Duration::minutes(5);
/// Two missed refreshes: the holder has almost surely died.
pub const ABANDONED_AFTER: Duration = Duration::minutes(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    /// The PID exists on this host (EPERM counts: it exists, someone else owns it).
    Alive,
    /// No such process on this host (or no process can have that PID).
    Gone,
    /// The PID exists but its process started after the lock was written: not the holder.
    Reused,
    /// Held on another host: this host cannot tell.
    Unknown,
}

impl Holder {
    pub fn as_str(self) -> &'static str {
        match self {
            Holder::Alive => "alive",
            Holder::Gone => "gone",
            Holder::Reused => "reused",
            Holder::Unknown => "unknown",
        }
    }
}

/// What restic's `kill(pid, SIGHUP)` probe does, run here now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// restic does not probe: another host, or the lock is over 30 minutes old.
    NotSent,
    /// The call fails (Go refuses the PID, ESRCH, or EPERM): restic says "gone".
    Fails,
    /// The signal is delivered: restic says "alive", and whatever it reached got a SIGHUP.
    Delivered(SignalTarget),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Seconds since the last refresh (negative when the time is in the future).
    pub age_seconds: i64,
    pub holder: Holder,
    /// The command name of the process now owning the PID on this host (or, for a PID
    /// restic's probe truncates, of the process its SIGHUP would reach).
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// For an unsafe lock whose only danger is restic's probe: from this moment restic
    /// removes it by age, without a probe (unless it is refreshed meanwhile).
    #[serde(serialize_with = "ser_opt_time")]
    pub safe_after: Option<DateTime<Utc>>,
    pub reason: String,
    /// The host whose view decided `holder`: this host, the holder's host (a peer), or
    /// none (another host no peer answered for).
    #[serde(default)]
    pub judged_on: Option<String>,
    /// Why the holder's host, asked, could not tell.
    #[serde(default)]
    pub peer_error: Option<String>,
    /// Where on its kernel the holder was judged, when not in the PID namespace `restic
    /// unlock` would probe: "another PID namespace of this host", "container \"ctr1\" of …".
    #[serde(default)]
    pub namespace: Option<String>,
    /// What could not be seen where the holder was looked for: a `gone` holder is then not
    /// proven dead (restic may run where this view does not reach).
    #[serde(default)]
    pub unseen: Option<String>,
    /// Seconds since the storage wrote the file, on the storage's clock as estimated here
    /// (`None` where the backend lists no modification time).
    #[serde(default)]
    pub storage_age_seconds: Option<i64>,
    /// The lock's `time` is past restic's 30 minutes while the storage wrote the file less
    /// than 30 minutes ago: its writer's clock is behind, and its holder may live.
    #[serde(default)]
    pub clocks_disagree: bool,
}

/// A time as every JSON document writes it: RFC 3339 in whole seconds, UTC.
pub fn ser_time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

pub fn ser_opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_time(t, s),
        None => s.serialize_none(),
    }
}

/// A lock's age in the table's and the log's words (`12m05s`).
pub fn human_age(secs: i64) -> String {
    crate::duration::human(secs, crate::duration::Style::Age)
}

/// What this host knows about a lock, and what follows from it, before any wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub age: Duration,
    pub same_host: bool,
    /// Over restic's 30 minutes: restic removes it without a probe.
    pub too_old: bool,
    /// Where restic's probe would go, and what it would do.
    pub target: SignalTarget,
    pub probe: Probe,
    /// The lock's PID answered EPERM: another user's process.
    pub other_user: bool,
    pub holder: Holder,
    pub command: Option<String>,
    /// A live PID running something other than restic (another PID namespace, or forged).
    pub not_restic: bool,
    /// The holder is a restic of another PID namespace of this kernel, under this name.
    pub elsewhere: bool,
    /// What could not be seen when the holder was not found (a caveat on `Gone`).
    pub unseen: Option<String>,
    pub restic_unlock_removes: bool,
    pub sighup_to_stranger: bool,
    pub unsafe_: bool,
    pub stale: bool,
    /// Two refreshes missed: the holder has almost surely stopped.
    pub abandoned: bool,
    /// Written in the future by this host's clock.
    pub clock_skew: bool,
}

/// The rules of the README's "Verdicts" section, from the lock, the time and the host.
pub fn rules(lock: &Lock, now: DateTime<Utc>, host: &dyn HostView) -> Facts {
    let age = now.signed_duration_since(lock.time);
    let same_host = lock.hostname == host.hostname();
    let too_old = age > RESTIC_STALE_AFTER;
    let target = SignalTarget::of(lock.pid);
    // The lock's own PID, when a process on this host can have it.
    let own_pid = i32::try_from(lock.pid).ok().filter(|p| *p > 0);

    let state_of = |t: SignalTarget| match t {
        SignalTarget::Process(k) => Some(host.probe(k)),
        SignalTarget::Group(g) => Some(host.probe_group(g)),
        // kill(0) reaches restic's own group and kill(−1) at least one other process.
        SignalTarget::OwnGroup | SignalTarget::Everyone => Some(PidState::Signalable),
        SignalTarget::Nobody => Some(PidState::Absent),
        SignalTarget::Refused => None,
    };
    let probe = if !same_host || too_old {
        Probe::NotSent
    } else {
        match state_of(target) {
            Some(PidState::Signalable) => Probe::Delivered(target),
            _ => Probe::Fails,
        }
    };

    let own_state = if same_host {
        own_pid.map(|p| host.probe(p))
    } else {
        None
    };
    let mut holder = match (same_host, own_pid, own_state) {
        (false, _, _) => Holder::Unknown,
        (true, Some(p), Some(PidState::Signalable | PidState::NoPermission)) => {
            let reused = host
                .started(p)
                .is_some_and(|s| s > lock.time.with_timezone(&Utc) + START_TIME_SLACK);
            if reused {
                Holder::Reused
            } else {
                Holder::Alive
            }
        }
        _ => Holder::Gone,
    };
    let command = match (holder, probe) {
        (Holder::Alive | Holder::Reused, _) => own_pid.and_then(|p| host.command(p)),
        (_, Probe::Delivered(SignalTarget::Process(k))) => host.command(k),
        _ => None,
    };
    // Only restic writes restic locks: a live PID running something else is another
    // process than the holder (another PID namespace, or a forged lock).
    let mut not_restic =
        holder == Holder::Alive && command.as_deref().is_some_and(|c| !c.contains("restic"));
    // Not proven alive here: the holder may be a restic of another PID namespace of this
    // kernel under the same host name (a container keeping the host's name).
    let mut elsewhere = false;
    let mut unseen = None;
    if same_host
        && (holder != Holder::Alive || not_restic)
        && let Some(k) = host.kernel()
    {
        let time = lock.time.with_timezone(&Utc);
        match k.holder(&lock.hostname, lock.pid, time, true) {
            Found::Holder { .. } => {
                (holder, elsewhere, not_restic) = (Holder::Alive, true, false);
            }
            _ if holder != Holder::Alive => unseen = k.unseen_note(),
            _ => {}
        }
    }
    let restic_unlock_removes = too_old || (same_host && probe == Probe::Fails);
    let sighup_to_stranger = matches!(probe, Probe::Delivered(_))
        && (holder != Holder::Alive || not_restic || elsewhere);
    let unsafe_ = (restic_unlock_removes && holder == Holder::Alive) || sighup_to_stranger;
    let stale = match holder {
        Holder::Gone | Holder::Reused => true,
        Holder::Alive => false,
        Holder::Unknown => too_old,
    };
    Facts {
        age,
        same_host,
        too_old,
        target,
        probe,
        other_user: own_state == Some(PidState::NoPermission),
        holder,
        command,
        not_restic,
        elsewhere,
        unseen,
        restic_unlock_removes,
        sighup_to_stranger,
        unsafe_,
        stale,
        abandoned: age > ABANDONED_AFTER,
        clock_skew: age < Duration::zero(),
    }
}

/// When an unsafe lock stops being unsafe by waiting: restic removes a lock older than 30
/// minutes without probing, so a lock whose only danger is the probe is safe to remove
/// from then on. A live holder's lock never gets there (the holder refreshes it, and its
/// removal is the danger itself).
fn safe_after(lock: &Lock, f: &Facts) -> Option<DateTime<Utc>> {
    let probe_only = f.sighup_to_stranger && f.holder != Holder::Alive;
    (f.unsafe_ && probe_only)
        .then(|| lock.time.with_timezone(&Utc) + RESTIC_STALE_AFTER + Duration::seconds(1))
}

pub fn judge(lock: &Lock, now: DateTime<Utc>, host: &dyn HostView) -> Verdict {
    let f = rules(lock, now, host);
    let (abandoned, clock_skew) = (f.abandoned, f.clock_skew);
    Verdict {
        age_seconds: f.age.num_seconds(),
        holder: f.holder,
        holder_command: f.command.clone(),
        restic_unlock_removes: f.restic_unlock_removes,
        stale: f.stale,
        abandoned,
        clock_skew,
        unsafe_: f.unsafe_,
        safe_after: safe_after(lock, &f),
        reason: reason(lock, &f, abandoned, clock_skew),
        judged_on: None,
        peer_error: None,
        namespace: f
            .elsewhere
            .then(|| "another PID namespace of this host".to_string()),
        unseen: f.unseen.clone(),
        storage_age_seconds: None,
        clocks_disagree: false,
    }
}

/// Where restic's SIGHUP would go, in words, for the cases that need saying.
fn sighup_recipient(target: SignalTarget, pid: i64) -> String {
    let truncated = match target {
        SignalTarget::Process(k) => i64::from(k) != pid,
        _ => true,
    };
    let via = if truncated {
        format!("(restic passes PID {pid} to kill(), which keeps its low 32 bits) ")
    } else {
        String::new()
    };
    match target {
        SignalTarget::Process(k) => {
            format!("{via}to PID {k}, a live process that is not the holder")
        }
        SignalTarget::Group(g) => format!("{via}to every process of process group {g}"),
        SignalTarget::OwnGroup => format!(
            "{via}to its own process group (kill(0, SIGHUP)): itself and whatever started it — DANGER"
        ),
        SignalTarget::Everyone => format!(
            "{via}to EVERY process it may signal (kill(-1, SIGHUP)), as root the whole machine — DANGER"
        ),
        SignalTarget::Nobody | SignalTarget::Refused => String::from("to nobody"),
    }
}

/// One line saying why.
pub fn reason(lock: &Lock, f: &Facts, abandoned: bool, clock_skew: bool) -> String {
    let pid = lock.pid;
    let who = if f.same_host {
        format!("PID {pid} on this host")
    } else {
        format!("held on {:?}", lock.hostname)
    };
    let what = match f.holder {
        Holder::Alive if f.elsewhere => format!(
            "{who} is a restic of another PID namespace under this host's name (a container): the holder is alive"
        ),
        Holder::Alive if f.other_user => format!("{who} is alive (another user's process)"),
        Holder::Alive if f.not_restic => format!(
            "{who} is alive but runs {:?}, not restic: most likely a process of another PID namespace on a host of the same name (containers; restic issue 4922), or the lock was forged; check which container ran restic as that PID",
            f.command.as_deref().unwrap_or_default()
        ),
        Holder::Alive => format!("{who} is alive"),
        Holder::Gone if i32::try_from(pid).is_ok_and(|p| p > 0) => match &f.unseen {
            Some(_) => format!("{who} is gone in the PID namespaces visible from here"),
            None => format!("{who} is gone"),
        },
        Holder::Gone => format!("{who}: no process can have that PID, the holder is gone"),
        Holder::Reused => {
            format!("{who} now belongs to a process started after the lock: the holder is gone")
        }
        Holder::Unknown => who,
    };
    let age_s = f.age.num_seconds();
    let when = if clock_skew {
        format!("time is {} in the future (clock skew)", human_age(-age_s))
    } else {
        format!("last refreshed {} ago", human_age(age_s))
    };
    let restic = if f.sighup_to_stranger {
        format!(
            "restic unlock would keep it and send SIGHUP {}",
            sighup_recipient(f.target, pid)
        )
    } else if f.restic_unlock_removes && f.holder == Holder::Alive {
        if f.too_old {
            "restic unlock would remove it although the holder is alive".to_string()
        } else if f.elsewhere {
            "restic unlock would remove it (its probe looks only in its own PID namespace) although the holder is alive".to_string()
        } else {
            "restic unlock would remove it (its probe takes EPERM for gone) although the holder is alive".to_string()
        }
    } else if f.restic_unlock_removes {
        "restic unlock would remove it".to_string()
    } else {
        "restic unlock would keep it".to_string()
    };
    let mut reason = format!("{what}; {when}; {restic}");
    if let Some(unseen) = &f.unseen {
        reason.push_str(&format!("; not proven dead: {unseen}"));
    }
    if f.unsafe_ {
        reason.push_str(" — UNSAFE");
        if let Some(t) = safe_after(lock, f) {
            reason.push_str(&format!(
                "; restic removes it by age without a probe after {} (unless something refreshes it)",
                crate::duration::clock(t)
            ));
        } else if f.holder == Holder::Alive {
            reason.push_str("; waiting does not help: a live holder refreshes its lock");
        }
    } else if abandoned && f.holder == Holder::Unknown && !f.too_old {
        reason.push_str(" (not refreshed for two intervals: probably abandoned)");
    }
    reason
}

mod clocks;
mod peer;

pub use clocks::StorageClock;
pub use peer::{OFFSET_WORTH_SAYING, judge_with, offset_note};

#[cfg(test)]
mod tests;
