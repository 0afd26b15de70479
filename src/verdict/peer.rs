//! A lock judged on the host that holds it. Two views decide: this host's, for what
//! `restic unlock` run here does (its rule reads the lock's time on this clock), and the
//! holder's host's, for whether the holder lives (its PID means something only there, and
//! its clock wrote the time). [`rules`] runs on each unchanged.

use chrono::{DateTime, Duration, Utc};

use super::{
    Facts, Holder, Probe, RESTIC_STALE_AFTER, Verdict, human_age, judge, rules, sighup_recipient,
};
use crate::locks::Lock;
use crate::peer::PeerView;
use crate::process::HostView;

/// Past this, a peer's clock offset is worth saying: it moves restic's 30-minute rule.
pub const OFFSET_WORTH_SAYING: Duration = Duration::minutes(1);

/// The verdict on `lock`, from this host and, for another host's lock, from what its peer
/// answered (`None`: no peer answers for it; `Err`: why the peer could not tell).
pub fn judge_with(
    lock: &Lock,
    now: DateTime<Utc>,
    here: &dyn HostView,
    peer: Option<Result<&PeerView, &str>>,
) -> Verdict {
    let mut v = judge(lock, now, here);
    if lock.hostname == here.hostname() {
        v.judged_on = Some(here.hostname().to_string());
        return v;
    }
    match peer {
        None => v,
        Some(Err(why)) => {
            v.reason
                .push_str(&format!("; its host could not tell: {why}"));
            v.peer_error = Some(why.to_string());
            v
        }
        Some(Ok(view)) => on_its_host(lock, now, here, view),
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
    }
}

/// What the holder's host says of the holder.
fn holder_words(lock: &Lock, p: &Facts) -> String {
    let at = format!("PID {} on {:?}", lock.pid, lock.hostname);
    match p.holder {
        Holder::Alive if p.not_restic => format!(
            "{at} is alive but runs {:?}, not restic (another PID namespace of that host name, or a forged lock)",
            p.command.as_deref().unwrap_or_default()
        ),
        Holder::Alive if p.other_user => format!("{at} is alive (another user's process)"),
        Holder::Alive => format!("{at} is alive"),
        Holder::Reused => {
            format!("{at} now belongs to a process started after the lock: the holder is gone")
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
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&chrono::Local)
            .format("%H:%M:%S")
            .to_string()
    };
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

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
