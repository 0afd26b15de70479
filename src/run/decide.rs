//! When a job may run: from the lock its command takes and one reading, whether restic
//! runs now, waits, or (with `--recover`) has the dead holders' locks removed first. Pure.
//!
//! Only a holder proven dead is ever cleared: gone or reused on its own kernel (this
//! host's view, its namespace's, or its agent's answer), seen whole (nothing `unseen`),
//! by clocks that agree, in a reading that read every entry. Everything else is waited
//! for: a live holder, and one nobody here can judge.

use chrono::{DateTime, Utc};

use super::kind::Need;
use crate::report::{JudgedLock, Report};
use crate::verdict::Holder;

/// A lock in the job's way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub id: String,
    /// `user@host PID n (exclusive)`.
    pub who: String,
    pub hostname: String,
    pub pid: i64,
    pub exclusive: bool,
    /// The verdict's holder: alive, gone, reused, unknown.
    pub holder: Holder,
    /// Proven dead (see the module's rule).
    pub dead: bool,
    /// Why a holder gone from view is not proven dead, in words.
    pub doubt: Option<String>,
    /// restic's `unlock` would remove it now (stale by restic's rule).
    pub removable: bool,
    /// From when restic removes it, where waiting helps.
    pub safe_after: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing in the way: run restic now.
    Run,
    /// Every lock in the way is a dead holder's that restic's `unlock` removes now.
    Recover(Vec<Blocker>),
    /// Something is in the way: wait (`unreadable`: entries of `locks/` that could not
    /// be read, which restic 0.15 and later refuse to lock past).
    Wait {
        blockers: Vec<Blocker>,
        unreadable: usize,
    },
}

/// What `need` meets in `report`; `recover`: dead holders' locks may be removed.
pub fn decide(need: Need, report: &Report, recover: bool) -> Decision {
    if need == Need::Nothing {
        return Decision::Run;
    }
    let blockers: Vec<Blocker> = report
        .locks
        .iter()
        .filter(|l| need == Need::Exclusive || l.exclusive)
        .map(blocker)
        .collect();
    let unreadable = report.unreadable.len();
    if blockers.is_empty() && unreadable == 0 {
        return Decision::Run;
    }
    let clearable = blockers.iter().all(|b| b.dead && b.removable);
    if recover && unreadable == 0 && clearable {
        return Decision::Recover(blockers);
    }
    Decision::Wait {
        blockers,
        unreadable,
    }
}

fn blocker(l: &JudgedLock) -> Blocker {
    let v = &l.verdict;
    let gone = matches!(v.holder, Holder::Gone | Holder::Reused);
    let doubt = match (&v.unseen, v.clocks_disagree) {
        _ if !gone => None,
        (Some(hidden), _) => Some(format!("part of its kernel is hidden from here ({hidden})")),
        (None, true) => Some("its writer's clock and the storage's disagree on its age".into()),
        (None, false) => None,
    };
    let dead = gone && doubt.is_none();
    Blocker {
        id: l.id.clone(),
        who: format!(
            "{}@{} PID {} ({})",
            l.username,
            l.hostname,
            l.pid,
            if l.exclusive { "exclusive" } else { "shared" }
        ),
        hostname: l.hostname.clone(),
        pid: l.pid,
        exclusive: l.exclusive,
        holder: v.holder,
        dead,
        doubt,
        removable: v.restic_unlock_removes && !v.unsafe_,
        safe_after: v.safe_after,
    }
}

impl Decision {
    /// The earliest time a dead holder's lock becomes removable by restic, where that is
    /// all the job waits for: the next reading is due then, not later.
    pub fn next_change(&self) -> Option<DateTime<Utc>> {
        match self {
            Decision::Wait { blockers, .. } => blockers
                .iter()
                .filter(|b| b.dead && !b.removable)
                .filter_map(|b| b.safe_after)
                .min(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Verdict;

    fn lock(id: &str, exclusive: bool, holder: Holder, removes: bool) -> JudgedLock {
        let v = Verdict {
            restic_unlock_removes: removes,
            stale: matches!(holder, Holder::Gone | Holder::Reused),
            ..sample::verdict(holder)
        };
        sample::lock(id, exclusive, Utc::now(), v)
    }

    use crate::report::sample::{self, report};

    fn kind(d: &Decision) -> &'static str {
        match d {
            Decision::Run => "run",
            Decision::Recover(_) => "recover",
            Decision::Wait { .. } => "wait",
        }
    }

    /// What a case is called, the command's lock, the locks, unreadable entries,
    /// `--recover`, and the decision's kind.
    type Case = (
        &'static str,
        Need,
        Vec<JudgedLock>,
        usize,
        bool,
        &'static str,
    );

    #[test]
    fn a_job_waits_for_the_living_and_the_unproven_and_clears_only_the_proven_dead() {
        use Holder::*;
        use Need::*;
        let unseen = {
            let mut l = lock("u", false, Gone, true);
            l.verdict.unseen = Some("hidepid".into());
            l
        };
        let skewed = {
            let mut l = lock("c", false, Gone, true);
            l.verdict.clocks_disagree = true;
            l
        };
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("no locks", Exclusive, vec![], 0, false, "run"),
            ("a command without a lock", Nothing, vec![lock("a", true, Alive, false)], 0, false, "run"),
            ("shared beside shared", Shared, vec![lock("a", false, Alive, false)], 0, false, "run"),
            ("shared behind exclusive", Shared, vec![lock("a", true, Alive, false)], 0, true, "wait"),
            ("exclusive behind a live shared", Exclusive, vec![lock("a", false, Alive, false)], 0, true, "wait"),
            ("a dead holder, without --recover", Exclusive, vec![lock("a", false, Gone, true)], 0, false, "wait"),
            ("a dead holder, with --recover", Exclusive, vec![lock("a", false, Gone, true)], 0, true, "recover"),
            ("a reused PID", Exclusive, vec![lock("a", false, Reused, true)], 0, true, "recover"),
            ("dead but restic keeps it yet", Exclusive, vec![lock("a", false, Gone, false)], 0, true, "wait"),
            ("nobody can judge it", Exclusive, vec![lock("a", false, Unknown, true)], 0, true, "wait"),
            ("dead, but part of its kernel unseen", Exclusive, vec![unseen], 0, true, "wait"),
            ("dead, but the clocks disagree", Exclusive, vec![skewed], 0, true, "wait"),
            ("dead, but the reading was incomplete", Exclusive, vec![lock("a", false, Gone, true)], 1, true, "wait"),
            ("one dead, one alive", Exclusive, vec![lock("a", false, Gone, true), lock("b", false, Alive, false)], 0, true, "wait"),
            ("an unreadable entry alone", Shared, vec![], 1, true, "wait"),
        ];
        for (what, need, locks, unreadable, recover, want) in cases {
            let d = decide(need, &report(locks, unreadable), recover);
            assert_eq!(kind(&d), want, "{what}");
        }
    }
}
