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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A removal (or restic's probe) would hit a live process.
    Unsafe,
    /// `--remove-all` with the locks unread: it would remove what nobody has seen.
    Unseen,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Inspect only; `dangers` are what a real run would refuse over.
    DryRun { dangers: Vec<Danger> },
    /// restic is not run. `safe_after`: when every danger has passed by waiting (`None`
    /// when waiting does not help, e.g. a live holder that refreshes its lock).
    Refuse {
        why: Refusal,
        dangers: Vec<Danger>,
        safe_after: Option<DateTime<Utc>>,
    },
    /// restic is run. `forced`: dangers overridden by `--force`; `unseen`: the locks could
    /// not be read, so no safety check was possible.
    Run { forced: Vec<Danger>, unseen: bool },
}

fn danger(l: &JudgedLock, scope: Scope) -> Danger {
    Danger {
        id: l.id.clone(),
        holder: format!("{}@{} PID {}", l.username, l.hostname, l.pid),
        reason: l.verdict.reason.clone(),
        // `--remove-all` does not probe and does not wait: only a live holder is in
        // danger, and waiting never helps it.
        safe_after: match scope {
            Scope::StaleOnly => l.verdict.safe_after,
            Scope::All => None,
        },
    }
}

/// The locks whose removal (or probe) is dangerous under `scope`.
pub fn dangers(scope: Scope, report: &Report) -> Vec<Danger> {
    report
        .locks
        .iter()
        .filter(|l| match scope {
            Scope::StaleOnly => l.verdict.unsafe_,
            Scope::All => l.verdict.holder == Holder::Alive,
        })
        .map(|l| danger(l, scope))
        .collect()
}

pub fn plan(asked: Asked, read: Option<&Report>) -> Plan {
    let dangers = read.map(|r| dangers(asked.scope, r)).unwrap_or_default();
    if asked.dry_run {
        return Plan::DryRun { dangers };
    }
    match read {
        None if asked.scope == Scope::All && !asked.force => Plan::Refuse {
            why: Refusal::Unseen,
            dangers,
            safe_after: None,
        },
        None => Plan::Run {
            forced: dangers,
            unseen: true,
        },
        Some(_) if !dangers.is_empty() && !asked.force => {
            let safe_after = dangers
                .iter()
                .map(|d| d.safe_after)
                .collect::<Option<Vec<_>>>()
                .and_then(|all| all.into_iter().max());
            Plan::Refuse {
                why: Refusal::Unsafe,
                dangers,
                safe_after,
            }
        }
        Some(_) => Plan::Run {
            forced: dangers,
            unseen: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::verdict::Verdict;

    fn lock(holder: Holder, unsafe_: bool, safe_after: Option<i64>) -> JudgedLock {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        JudgedLock {
            id: format!("{:064}", safe_after.unwrap_or(0)),
            exclusive: false,
            time: String::new(),
            hostname: "h".into(),
            username: "u".into(),
            pid: 7,
            uid: 0,
            gid: 0,
            verdict: Verdict {
                age_seconds: 60,
                holder,
                holder_command: None,
                restic_unlock_removes: false,
                stale: false,
                abandoned: false,
                clock_skew: false,
                unsafe_,
                safe_after: safe_after.map(|m| t0 + Duration::minutes(m)),
                reason: "why".into(),
            },
        }
    }

    fn report(locks: Vec<JudgedLock>) -> Report {
        let mut r = Report::new(
            "/r",
            "id",
            2,
            Default::default(),
            Utc::now(),
            &crate::process::ThisHost::new(),
        );
        r.locks = locks;
        r
    }

    #[derive(Debug, PartialEq)]
    enum Want {
        DryRun(usize),
        Refuse(Refusal, Option<i64>),
        Run { forced: usize, unseen: bool },
    }

    fn kind(p: &Plan) -> Want {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        match p {
            Plan::DryRun { dangers } => Want::DryRun(dangers.len()),
            Plan::Refuse {
                why, safe_after, ..
            } => Want::Refuse(*why, safe_after.map(|t| (t - t0).num_minutes())),
            Plan::Run { forced, unseen } => Want::Run {
                forced: forced.len(),
                unseen: *unseen,
            },
        }
    }

    #[test]
    fn every_decision_of_the_plan() {
        use Scope::*;
        let clean = || report(vec![lock(Holder::Gone, false, None)]);
        let probe_only = || {
            report(vec![
                lock(Holder::Reused, true, Some(20)),
                lock(Holder::Gone, true, Some(25)),
            ])
        };
        let live = || {
            report(vec![
                lock(Holder::Alive, true, None),
                lock(Holder::Reused, true, Some(20)),
            ])
        };
        let live_kept = || report(vec![lock(Holder::Alive, false, None)]);
        let run = |forced, unseen| Want::Run { forced, unseen };
        #[rustfmt::skip]
        type Row = (&'static str, Scope, bool, bool, Option<Report>, Want);
        let rows: Vec<Row> = vec![
            (
                "clean, stale only",
                StaleOnly,
                false,
                false,
                Some(clean()),
                run(0, false),
            ),
            (
                "clean, remove all",
                All,
                false,
                false,
                Some(clean()),
                run(0, false),
            ),
            (
                "probe danger: refused until",
                StaleOnly,
                false,
                false,
                Some(probe_only()),
                Want::Refuse(Refusal::Unsafe, Some(25)),
            ),
            (
                "live holder: no safe time",
                StaleOnly,
                false,
                false,
                Some(live()),
                Want::Refuse(Refusal::Unsafe, None),
            ),
            (
                "probe danger, forced",
                StaleOnly,
                false,
                true,
                Some(probe_only()),
                run(2, false),
            ),
            (
                "live kept by restic: allowed",
                StaleOnly,
                false,
                false,
                Some(live_kept()),
                run(0, false),
            ),
            (
                "live, remove all: refused",
                All,
                false,
                false,
                Some(live_kept()),
                Want::Refuse(Refusal::Unsafe, None),
            ),
            (
                "probe only, remove all: fine",
                All,
                false,
                false,
                Some(probe_only()),
                run(0, false),
            ),
            (
                "unread, stale only: restic",
                StaleOnly,
                false,
                false,
                None,
                run(0, true),
            ),
            (
                "unread, remove all: refused",
                All,
                false,
                false,
                None,
                Want::Refuse(Refusal::Unseen, None),
            ),
            (
                "unread, remove all, forced",
                All,
                false,
                true,
                None,
                run(0, true),
            ),
            (
                "dry run names the dangers",
                StaleOnly,
                true,
                false,
                Some(live()),
                Want::DryRun(2),
            ),
            ("dry run, unread", All, true, false, None, Want::DryRun(0)),
        ];
        for (what, scope, dry_run, force, read, want) in rows {
            let asked = Asked {
                scope,
                dry_run,
                force,
            };
            assert_eq!(kind(&plan(asked, read.as_ref())), want, "{what}");
        }
    }
}
