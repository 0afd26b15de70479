//! The unlock decision, from what was asked and what was read, and nothing else: run
//! restic, refuse (which locks, why, and until when), or only say what would happen.

use chrono::{DateTime, Utc};

use super::options::{Asked, Scope};
use crate::report::{JudgedLock, Report};
use crate::verdict::Holder;

/// A lock that makes the asked removal dangerous, as the log and the message name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Danger {
    pub id: String,
    pub holder: String,
    pub reason: String,
    /// From when removing it stops being dangerous, if waiting helps at all.
    pub safe_after: Option<DateTime<Utc>>,
    /// The reason in a few words, for the refusal (the log's lock lines carry it whole).
    pub brief: String,
    /// Exactly what `--force` would do to it: "remove lock 4a1abdb1 of …", or "send
    /// SIGHUP to PID 4767 (sleep)".
    pub force_does: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A removal (or restic's probe) would hit a live process.
    Unsafe,
    /// `--remove-all` with the locks unread: it would remove what nobody has seen.
    Unseen,
    /// Some entries of `locks/` were not read (the deadline passed): either scope could
    /// remove, or probe, a live holder's lock nobody has seen.
    Incomplete { not_read: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Inspect only; `dangers` are what a real run would refuse over; `not_read` entries
    /// leave the dry run's answer incomplete.
    DryRun {
        dangers: Vec<Danger>,
        not_read: usize,
    },
    /// restic is not run. `safe_after`: when every danger has passed by waiting (`None`
    /// when waiting does not help, e.g. a live holder that refreshes its lock).
    Refuse {
        why: Refusal,
        dangers: Vec<Danger>,
        safe_after: Option<DateTime<Utc>>,
    },
    /// restic is run. `forced`: dangers overridden by `--force`; `unseen`: the locks could
    /// not be read, so no safety check was possible; `not_read`: entries `--force` ran over.
    Run {
        forced: Vec<Danger>,
        unseen: bool,
        not_read: usize,
    },
}

fn danger(l: &JudgedLock, scope: Scope) -> Danger {
    let unjudged = scope == Scope::All && l.verdict.holder == Holder::Unknown;
    let abandoned_at = abandoned_at(l);
    Danger {
        id: l.id.clone(),
        holder: format!("{}@{} PID {}", l.username, l.hostname, l.pid),
        reason: if unjudged {
            format!(
                "nobody here can judge it and it was refreshed {} ago, so it is presumed alive: run `locksmith agent` on {:?} and pass --peer {}=URL, or wait until it is abandoned, after {}",
                crate::verdict::human_age(l.verdict.age_seconds.max(0)),
                l.hostname,
                l.hostname,
                crate::duration::clock(abandoned_at)
            )
        } else {
            l.verdict.reason.clone()
        },
        // `--remove-all` does not probe: a live holder is in danger, and waiting never
        // helps it; a holder nobody can judge is presumed alive until it is abandoned.
        safe_after: match scope {
            Scope::StaleOnly => l.verdict.safe_after,
            Scope::All => unjudged.then_some(abandoned_at),
        },
        brief: match unjudged {
            true => format!(
                "nobody here can judge it, so it is presumed alive: run `locksmith agent` on {:?} and pass --peer {}=URL",
                l.hostname, l.hostname
            ),
            false => match &l.verdict.namespace {
                Some(ns) => format!("holder {} ({ns})", l.verdict.holder.as_str()),
                None => format!("holder {}", l.verdict.holder.as_str()),
            },
        },
        force_does: force_does(l, scope),
    }
}

/// What `--force` would do to `l`: restic's probe reaches a live process only where it
/// keeps the lock (the PID exists); otherwise the lock goes.
fn force_does(l: &JudgedLock, scope: Scope) -> String {
    let v = &l.verdict;
    let holder = format!("{}@{} PID {}", l.username, l.hostname, l.pid);
    let short = crate::restic::short_id(&l.id);
    if scope == Scope::StaleOnly && !v.restic_unlock_removes {
        let probed = l.pid & 0xffff_ffff;
        let what = v.holder_command.as_deref().unwrap_or("a live process");
        return format!("send SIGHUP to PID {probed} (`{what}`), which is not the holder");
    }
    format!(
        "remove lock {short} of {holder} (holder {})",
        v.holder.as_str()
    )
}

/// Where `--remove-all` is refused: what plain `unlock` would remove safely instead, if
/// anything (it would not be refused itself).
pub fn safe_instead(asked: Asked, read: &Report) -> Option<String> {
    if asked.scope != Scope::All {
        return None;
    }
    let stale_only = Asked {
        scope: Scope::StaleOnly,
        ..asked
    };
    if !matches!(plan(stale_only, Some(read)), Plan::Run { .. }) {
        return None;
    }
    let removed: Vec<String> = read
        .locks
        .iter()
        .filter(|l| l.verdict.restic_unlock_removes)
        .map(|l| {
            format!(
                "{} of {}@{} PID {}",
                crate::restic::short_id(&l.id),
                l.username,
                l.hostname,
                l.pid
            )
        })
        .collect();
    (!removed.is_empty()).then(|| {
        format!(
            "safe instead: `unlock` without --remove-all removes the stale lock{} {} and nothing else",
            if removed.len() == 1 { "" } else { "s" },
            removed.join(", ")
        )
    })
}

/// When a lock nobody can judge counts as abandoned: two refreshes missed by its writer's
/// clock and, where the storage lists one, by the storage's.
fn abandoned_at(l: &JudgedLock) -> DateTime<Utc> {
    let after = crate::verdict::ABANDONED_AFTER + chrono::Duration::seconds(1);
    let v = &l.verdict;
    let now = l.at + chrono::Duration::seconds(v.age_seconds);
    let stored = v
        .storage_age_seconds
        .map(|a| now - chrono::Duration::seconds(a));
    stored.map_or(l.at, |s| s.max(l.at)) + after
}

/// The locks whose removal (or probe) is dangerous under `scope`. `--remove-all` removes
/// every lock: a live holder's, and one nobody can judge while it is fresh.
pub fn dangers(scope: Scope, report: &Report) -> Vec<Danger> {
    report
        .locks
        .iter()
        .filter(|l| match scope {
            Scope::StaleOnly => l.verdict.unsafe_,
            Scope::All => match l.verdict.holder {
                Holder::Alive => true,
                Holder::Unknown => !l.verdict.abandoned,
                Holder::Gone | Holder::Reused => false,
            },
        })
        .map(|l| danger(l, scope))
        .collect()
}

/// When every danger has passed by waiting, if they all do.
fn safe_after(dangers: &[Danger]) -> Option<DateTime<Utc>> {
    dangers
        .iter()
        .map(|d| d.safe_after)
        .collect::<Option<Vec<_>>>()
        .and_then(|all| all.into_iter().max())
}

pub fn plan(asked: Asked, read: Option<&Report>) -> Plan {
    let dangers = read.map(|r| dangers(asked.scope, r)).unwrap_or_default();
    let not_read = read.map_or(0, Report::not_read);
    if asked.dry_run {
        return Plan::DryRun { dangers, not_read };
    }
    let refuse = |why, dangers: Vec<Danger>| Plan::Refuse {
        why,
        safe_after: match why {
            Refusal::Unsafe => safe_after(&dangers),
            _ => None,
        },
        dangers,
    };
    match read {
        _ if asked.force => Plan::Run {
            forced: dangers,
            unseen: read.is_none(),
            not_read,
        },
        None if asked.scope == Scope::All => refuse(Refusal::Unseen, dangers),
        None => Plan::Run {
            forced: dangers,
            unseen: true,
            not_read,
        },
        Some(_) if not_read > 0 => refuse(Refusal::Incomplete { not_read }, dangers),
        Some(_) if !dangers.is_empty() => refuse(Refusal::Unsafe, dangers),
        Some(_) => Plan::Run {
            forced: dangers,
            unseen: false,
            not_read,
        },
    }
}

/// The locks an unlock removed, of those read `before` it and missing `after`: only what
/// restic could have removed (stale by its rule, or anything under `--remove-all`), and
/// never a holder still present after (a live job's refresh replaces its file between
/// two readings: that is not a removal).
pub fn removed<'a>(before: &'a Report, after: &Report, scope: Scope) -> Vec<&'a JudgedLock> {
    let key = |l: &JudgedLock| (l.hostname.clone(), l.username.clone(), l.pid, l.exclusive);
    let left: std::collections::HashSet<&str> = after.locks.iter().map(|l| l.id.as_str()).collect();
    let holding: std::collections::HashSet<_> = after.locks.iter().map(key).collect();
    before
        .locks
        .iter()
        .filter(|l| !left.contains(l.id.as_str()))
        .filter(|l| scope == Scope::All || l.verdict.restic_unlock_removes)
        .filter(|l| !holding.contains(&key(l)))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::verdict::Verdict;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn lock(holder: Holder, unsafe_: bool, safe_after: Option<i64>) -> JudgedLock {
        let v = Verdict {
            unsafe_,
            safe_after: safe_after.map(|m| t0() + Duration::minutes(m)),
            ..sample::verdict(holder)
        };
        sample::lock(&format!("{:064}", safe_after.unwrap_or(0)), false, t0(), v)
    }

    use crate::report::sample::{self, report};

    #[derive(Debug, PartialEq)]
    enum Want {
        DryRun(usize, usize),
        Refuse(Refusal, Option<i64>),
        Run(usize, bool, usize),
    }

    fn kind(p: &Plan) -> Want {
        match p {
            Plan::DryRun { dangers, not_read } => Want::DryRun(dangers.len(), *not_read),
            Plan::Refuse {
                why, safe_after, ..
            } => Want::Refuse(*why, safe_after.map(|t| (t - t0()).num_minutes())),
            Plan::Run {
                forced,
                unseen,
                not_read,
            } => Want::Run(forced.len(), *unseen, *not_read),
        }
    }

    /// What a reading found: nothing read (`None`), or locks and entries not read.
    fn read(what: &str) -> Option<Report> {
        let (gone, alive) = (
            lock(Holder::Gone, false, None),
            lock(Holder::Alive, false, None),
        );
        let probe = || lock(Holder::Reused, true, Some(20));
        Some(match what {
            "unread" => return None,
            "clean" => report(vec![gone], 0),
            "probe only" => report(vec![probe(), lock(Holder::Gone, true, Some(25))], 0),
            "live unsafe" => report(vec![lock(Holder::Alive, true, None), probe()], 0),
            "live kept" => report(vec![alive], 0),
            "unjudged fresh" => report(vec![lock(Holder::Unknown, false, None)], 0),
            "unjudged abandoned" => {
                let mut l = lock(Holder::Unknown, false, None);
                l.verdict.abandoned = true;
                report(vec![l], 0)
            }
            "clean, 2 not read" => report(vec![gone], 2),
            "probe, 1 not read" => report(vec![probe()], 1),
            other => panic!("{other}"),
        })
    }

    #[test]
    fn every_decision_of_the_plan() {
        use Refusal::*;
        use Scope::*;
        use Want::*;
        let incomplete = |n| Refuse(Incomplete { not_read: n }, None);
        #[rustfmt::skip]
        let rows: &[(&str, Scope, bool, bool, Want)] = &[
            // (reading, scope, dry run, force, decision)
            ("clean",             StaleOnly, false, false, Run(0, false, 0)),
            ("clean",             All,       false, false, Run(0, false, 0)),
            ("probe only",        StaleOnly, false, false, Refuse(Unsafe, Some(25))),
            ("live unsafe",       StaleOnly, false, false, Refuse(Unsafe, None)),
            ("probe only",        StaleOnly, false, true,  Run(2, false, 0)),
            ("live kept",         StaleOnly, false, false, Run(0, false, 0)),
            ("live kept",         All,       false, false, Refuse(Unsafe, None)),
            ("unjudged fresh",    All,       false, false, Refuse(Unsafe, Some(10))),
            ("unjudged fresh",    StaleOnly, false, false, Run(0, false, 0)),
            ("unjudged fresh",    All,       false, true,  Run(1, false, 0)),
            ("unjudged fresh",    All,       true,  false, DryRun(1, 0)),
            ("unjudged abandoned", All,      false, false, Run(0, false, 0)),
            ("probe only",        All,       false, false, Run(0, false, 0)),
            ("unread",            StaleOnly, false, false, Run(0, true, 0)),
            ("unread",            All,       false, false, Refuse(Unseen, None)),
            ("unread",            All,       false, true,  Run(0, true, 0)),
            ("clean, 2 not read", StaleOnly, false, false, incomplete(2)),
            ("clean, 2 not read", All,       false, false, incomplete(2)),
            ("probe, 1 not read", StaleOnly, false, false, incomplete(1)),
            ("clean, 2 not read", All,       false, true,  Run(0, false, 2)),
            ("probe, 1 not read", StaleOnly, false, true,  Run(1, false, 1)),
            ("live unsafe",       StaleOnly, true,  false, DryRun(2, 0)),
            ("unread",            All,       true,  false, DryRun(0, 0)),
            ("clean, 2 not read", All,       true,  false, DryRun(0, 2)),
        ];
        for (what, scope, dry_run, force, want) in rows {
            let asked = Asked {
                scope: *scope,
                dry_run: *dry_run,
                force: *force,
            };
            let got = kind(&plan(asked, read(what).as_ref()));
            assert_eq!(
                &got, want,
                "{what}, {scope:?}, dry run {dry_run}, force {force}"
            );
        }
    }

    /// What an unlock is recorded as removing: a lock of the first reading missing from
    /// the second was recorded removed even when restic could not have removed it, or when
    /// its holder's own refresh had replaced it (the live job then ended `removed`).
    #[test]
    fn only_what_restic_could_remove_and_whose_holder_is_gone_is_recorded_removed() {
        let l = |id: &str, pid: i64, restic_removes: bool| {
            let mut l = lock(Holder::Gone, false, None);
            l.id = id.into();
            l.pid = pid;
            l.verdict.restic_unlock_removes = restic_removes;
            l
        };
        let before = report(
            vec![
                l("stale", 1, true),
                l("live", 2, false),
                l("refreshed", 3, true),
            ],
            0,
        );
        // After: PID 3's job refreshed its lock (a new file); the others are gone.
        let after = report(vec![l("refreshed-new", 3, false)], 0);
        let ids = |scope| -> Vec<&str> {
            removed(&before, &after, scope)
                .iter()
                .map(|l| l.id.as_str())
                .collect()
        };
        assert_eq!(ids(Scope::StaleOnly), ["stale"]);
        assert_eq!(ids(Scope::All), ["stale", "live"]);
    }
}
