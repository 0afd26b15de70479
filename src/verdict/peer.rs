//! A lock judged on the host that holds it. Two views decide: this host's, for what
//! `restic unlock` run here does (its rule reads the lock's time on this clock), and the
//! holder's host's, for whether the holder lives (its PID means something only there, and
//! its clock wrote the time). [`rules`] runs on each unchanged.

use chrono::{DateTime, Duration, Utc};

use super::{
    Facts, Holder, Probe, RESTIC_STALE_AFTER, Verdict, human_age, judge, rules, sighup_recipient,
};
use crate::kernel::{Found, Kernel};
use crate::locks::Lock;
use crate::peer::{Answering, PeerView};
use crate::process::HostView;

/// Past this, a peer's clock offset is worth saying: it moves restic's 30-minute rule.
pub const OFFSET_WORTH_SAYING: Duration = Duration::minutes(1);

/// The verdict on `lock`, from this host and, for another host name's lock, from the kernel
/// that carries that name: a peer answering for it (its own name, or a container's it
/// runs), or this kernel (one of its containers).
pub fn judge_with(
    lock: &Lock,
    now: DateTime<Utc>,
    here: &dyn HostView,
    peer: &Answering,
) -> Verdict {
    let mut v = judge(lock, now, here);
    if lock.hostname == here.hostname() {
        v.judged_on = Some(here.hostname().to_string());
        return v;
    }
    match peer {
        Answering::Nobody => match here.kernel().filter(|k| k.carries(&lock.hostname)) {
            Some(k) => in_namespace(lock, now, here, k, (here.hostname(), Duration::zero())),
            None => v,
        },
        Answering::Failed(why) => {
            v.reason
                .push_str(&format!("; its host could not tell: {why}"));
            v.peer_error = Some(why.to_string());
            v
        }
        Answering::View(view) if view.answer.hostname == lock.hostname => {
            on_its_host(lock, now, here, view)
        }
        Answering::View(view) => in_namespace(
            lock,
            now,
            here,
            &view.answer.kernel,
            (&view.answer.hostname, view.offset),
        ),
    }
}

fn on_its_host(lock: &Lock, now: DateTime<Utc>, here: &dyn HostView, view: &PeerView) -> Verdict {
    let f = rules(lock, now, here);
    let p = rules(lock, view.their_now(now), view);
    let stale = matches!(p.holder, Holder::Gone | Holder::Reused);
    let unsafe_ = f.restic_unlock_removes && p.holder == Holder::Alive;
    let safe_after = (stale && !f.restic_unlock_removes)
        .then(|| lock.time.with_timezone(&Utc) + RESTIC_STALE_AFTER + Duration::seconds(1));
    Verdict {
        age_seconds: f.age.num_seconds(),
        holder: p.holder,
        holder_command: p.command.clone(),
        restic_unlock_removes: f.restic_unlock_removes,
        stale,
        abandoned: p.abandoned,
        clock_skew: f.clock_skew || p.clock_skew,
        unsafe_,
        safe_after,
        reason: reason(lock, &f, &p, view, safe_after),
        judged_on: Some(view.answer.hostname.clone()),
        peer_error: None,
        namespace: p
            .elsewhere
            .then(|| format!("another PID namespace of {:?}", lock.hostname)),
        unseen: p.unseen.clone(),
        storage_age_seconds: None,
        clocks_disagree: false,
    }
}

/// What the holder's host says of the holder.
fn holder_words(lock: &Lock, p: &Facts) -> String {
    let at = format!("PID {} on {:?}", lock.pid, lock.hostname);
    match p.holder {
        Holder::Alive if p.elsewhere => format!(
            "{at} is a restic of another PID namespace under that host name (a container): the holder is alive"
        ),
        Holder::Alive if p.not_restic => format!(
            "{at} is alive but runs {:?}, not restic (another PID namespace of that host name, or a forged lock)",
            p.command.as_deref().unwrap_or_default()
        ),
        Holder::Alive if p.other_user => format!("{at} is alive (another user's process)"),
        Holder::Alive => format!("{at} is alive"),
        Holder::Reused => {
            format!("{at} now belongs to a process started after the lock: the holder is gone")
        }
        Holder::Gone | Holder::Unknown if p.unseen.is_some() => {
            format!("{at} is gone in the PID namespaces visible there")
        }
        Holder::Gone | Holder::Unknown => format!("{at} is gone"),
    }
}

fn reason(
    lock: &Lock,
    f: &Facts,
    p: &Facts,
    view: &PeerView,
    safe_after: Option<DateTime<Utc>>,
) -> String {
    let host = &lock.hostname;
    let mut parts = vec![holder_words(lock, p)];
    let age = f.age.num_seconds();
    parts.push(if age < 0 {
        format!(
            "time is {} in the future on this host's clock",
            human_age(-age)
        )
    } else {
        format!("last refreshed {} ago", human_age(age))
    });
    let alive = p.holder == Holder::Alive;
    if alive && p.abandoned {
        parts.push(format!(
            "not refreshed for {} on {host:?}'s clock: the job may be suspended (SIGSTOP, a frozen container)",
            human_age(p.age.num_seconds())
        ));
    }
    let local = crate::duration::clock;
    parts.push(match (f.restic_unlock_removes, alive) {
        (true, true) => "restic unlock here would remove it although its holder is alive — UNSAFE; waiting does not help: a live holder refreshes its lock".to_string(),
        (true, false) => "restic unlock here removes it".to_string(),
        (false, true) => "restic unlock would keep it".to_string(),
        (false, false) => {
            let there = match p.probe {
                Probe::Fails => format!("restic unlock on {host:?} removes it now: its PID is gone there"),
                Probe::Delivered(t) => format!(
                    "restic unlock on {host:?} would keep it and send SIGHUP {}",
                    sighup_recipient(t, lock.pid)
                ),
                Probe::NotSent => format!("restic unlock on {host:?} removes it"),
            };
            match safe_after {
                Some(t) => format!("{there}; restic unlock here removes it by age after {}", local(t)),
                None => there,
            }
        }
    });
    if let Some(note) = offset_note(host, view.offset) {
        parts.push(note);
    }
    if let Some(unseen) = p.unseen.as_ref().filter(|_| !alive) {
        parts.push(format!("not proven dead: {unseen}"));
    }
    parts.join("; ")
}

/// What a peer's clock offset does to restic's 30-minute rule here, when it is worth saying.
pub fn offset_note(host: &str, offset: Duration) -> Option<String> {
    if offset.abs() <= OFFSET_WORTH_SAYING {
        return None;
    }
    // Measured to the millisecond: said to the nearest second.
    let by = human_age((offset.num_milliseconds().abs() + 500) / 1000);
    Some(if offset < Duration::zero() {
        format!(
            "{host:?}'s clock is {by} behind this host's: restic here counts its locks {by} older than they are, and removes a live job's lock early"
        )
    } else {
        format!(
            "{host:?}'s clock is {by} ahead of this host's: restic here counts its locks {by} younger than they are, and keeps a dead job's lock longer"
        )
    })
}

/// A lock of a container or Pod, judged on the kernel that runs it: `kernel`, reported by
/// `by` (this host, or an agent) whose clock is `offset` from this host's. restic here
/// keeps another name's lock for 30 minutes; restic inside that container decides by its
/// own probe.
fn in_namespace(
    lock: &Lock,
    now: DateTime<Utc>,
    here: &dyn HostView,
    kernel: &Kernel,
    (by, offset): (&str, Duration),
) -> Verdict {
    let f = rules(lock, now, here);
    let time = lock.time.with_timezone(&Utc);
    let found = kernel.holder(&lock.hostname, lock.pid, time, false);
    let holder = match found {
        Found::Holder { .. } => Holder::Alive,
        Found::Stranger => Holder::Reused,
        Found::Nothing => Holder::Gone,
    };
    let alive = holder == Holder::Alive;
    let their_age = now.checked_add_signed(offset).unwrap_or(now) - time;
    let stale = !alive;
    let safe_after = (stale && !f.restic_unlock_removes)
        .then(|| time + RESTIC_STALE_AFTER + Duration::seconds(1));
    let unseen = kernel.unseen_note().filter(|_| !alive);
    let on = if by == here.hostname() {
        "this host".to_string()
    } else {
        format!("{by:?}")
    };
    let name = &lock.hostname;
    let mut parts = vec![match found {
        Found::Holder { named: true, .. } => {
            format!(
                "PID {} in container {name:?} on {on} is a restic: the holder is alive",
                lock.pid
            )
        }
        Found::Holder { named: false, .. } => format!(
            "PID {} is a restic in a namespace of {on} whose host name could not be read: counted alive",
            lock.pid
        ),
        Found::Stranger => format!(
            "PID {} in container {name:?} on {on} now belongs to another process: the holder is gone",
            lock.pid
        ),
        Found::Nothing => format!("PID {} in container {name:?} on {on} is gone", lock.pid),
    }];
    parts.push(format!(
        "last refreshed {} ago",
        human_age(f.age.num_seconds())
    ));
    let local = crate::duration::clock;
    parts.push(match (f.restic_unlock_removes, alive, safe_after) {
        (true, true, _) => "restic unlock here would remove it although its holder is alive — UNSAFE; waiting does not help: a live holder refreshes its lock".to_string(),
        (true, false, _) => "restic unlock here removes it".to_string(),
        (false, true, _) => "restic unlock would keep it".to_string(),
        (false, false, Some(t)) => format!(
            "restic unlock inside {name:?} removes it now; restic unlock here removes it by age after {}",
            local(t)
        ),
        (false, false, None) => format!("restic unlock inside {name:?} removes it now"),
    });
    if let Some(note) = offset_note(by, offset) {
        parts.push(note);
    }
    if let Some(u) = &unseen {
        parts.push(format!("not proven dead: {u}"));
    }
    Verdict {
        age_seconds: f.age.num_seconds(),
        holder,
        holder_command: alive.then(|| "restic".to_string()),
        restic_unlock_removes: f.restic_unlock_removes,
        stale,
        abandoned: their_age > super::ABANDONED_AFTER,
        clock_skew: f.clock_skew,
        unsafe_: f.restic_unlock_removes && alive,
        safe_after,
        reason: parts.join("; "),
        judged_on: Some(by.to_string()),
        peer_error: None,
        namespace: Some(format!("container {name:?} of {on}")),
        unseen,
        storage_age_seconds: None,
        clocks_disagree: false,
    }
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
