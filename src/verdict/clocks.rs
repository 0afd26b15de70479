//! A second clock: the storage's. A lock's `time` is its writer's clock, which can be wrong
//! while the storage's is not; restic replaces a live job's lock file every five minutes,
//! so a file the storage wrote minutes ago says its writer lived minutes ago, whatever its
//! `time` says. A lock is stale by age only when both clocks say so (borg 2 decided the
//! same). The storage's clock is read off its listing; it may differ from this host's, and
//! a listed time in the future shows by how much at least.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{ABANDONED_AFTER, Holder, RESTIC_STALE_AFTER, Verdict, human_age};
use crate::locks::{Inventory, Lock};

/// The storage's clock as one reading's listing shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StorageClock {
    /// Whether the backend listed when it wrote the lock files (REST and rclone do not).
    pub listed: bool,
    /// How far the storage's clock is at least ahead of this host's: its newest listed
    /// time past this host's now (0 when none is).
    pub ahead_seconds: f64,
}

impl StorageClock {
    pub fn of(inv: &Inventory, now: DateTime<Utc>) -> StorageClock {
        let newest = inv.locks.iter().filter_map(|l| l.stored_at).max();
        StorageClock {
            listed: newest.is_some(),
            ahead_seconds: newest.map_or(0.0, |t| {
                ((t - now).num_milliseconds().max(0) as f64) / 1000.0
            }),
        }
    }

    fn ahead(&self) -> Duration {
        Duration::milliseconds((self.ahead_seconds * 1000.0) as i64)
    }

    /// `v` with the storage's opinion of a lock stored at `stored_at`: its age there, and,
    /// where the writer's clock says restic's 30 minutes have passed but the storage's
    /// does not, a lock that is not stale by age (unsafe where restic here removes it).
    pub fn second_opinion(
        &self,
        mut v: Verdict,
        lock: &Lock,
        stored_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Verdict {
        let Some(at) = stored_at else {
            return v;
        };
        let stored_age = now + self.ahead() - at;
        v.storage_age_seconds = Some(stored_age.num_seconds());
        if v.holder == Holder::Unknown && stored_age <= ABANDONED_AFTER {
            v.abandoned = false;
        }
        let writer_age = now - lock.time.with_timezone(&Utc);
        if writer_age <= RESTIC_STALE_AFTER || stored_age > RESTIC_STALE_AFTER {
            return v;
        }
        v.clocks_disagree = true;
        let behind = human_age((writer_age - stored_age).num_seconds());
        v.reason.push_str(&format!(
            "; the storage wrote its file {} ago: its writer's clock is about {behind} behind, and restic's 30 minutes have not passed for it",
            human_age(stored_age.num_seconds().max(0)),
        ));
        let proven_dead = matches!(v.holder, Holder::Gone | Holder::Reused) && v.unseen.is_none();
        if !proven_dead {
            v.stale = false;
            if v.restic_unlock_removes && !v.unsafe_ {
                v.unsafe_ = true;
                let safe = at - self.ahead() + RESTIC_STALE_AFTER + Duration::seconds(1);
                v.safe_after = Some(safe);
                v.reason.push_str(&format!(
                    "; restic unlock here would remove it — UNSAFE until the storage's clock says 30 minutes, after {}",
                    crate::duration::clock(safe)
                ));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::LockEntry;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn lock(minutes_ago: i64) -> Lock {
        Lock {
            time: (now() - Duration::minutes(minutes_ago)).fixed_offset(),
            exclusive: false,
            hostname: "hostc".into(),
            username: "root".into(),
            pid: 7,
            uid: 0,
            gid: 0,
        }
    }

    /// What restic here does with another host's lock: keep it under 30 minutes, remove it
    /// past them; locksmith's rule for a holder nobody can judge follows the age.
    fn unknown(minutes_ago: i64) -> Verdict {
        let too_old = minutes_ago > 30;
        Verdict {
            age_seconds: minutes_ago * 60,
            restic_unlock_removes: too_old,
            stale: too_old,
            abandoned: minutes_ago > 10,
            reason: "held on \"hostc\"".into(),
            ..crate::report::sample::verdict(Holder::Unknown)
        }
    }

    /// (time, stored minutes ago, stale, unsafe, abandoned, clocks disagree)
    type Row = (i64, Option<i64>, bool, bool, bool, bool);

    #[test]
    fn both_clocks_must_say_old() {
        let clock = StorageClock {
            listed: true,
            ahead_seconds: 0.0,
        };
        #[rustfmt::skip]
        let rows: &[Row] = &[
            // (time, stored minutes ago, stale, unsafe, abandoned, clocks disagree)
            (40, Some(0),  false, true,  false, true),   // a writer 40 minutes behind
            (40, Some(12), false, true,  true,  true),
            (40, Some(31), true,  false, true,  false),  // both say old
            (40, None,     true,  false, true,  false),  // no storage clock: restic's rule
            (5,  Some(0),  false, false, false, false),
            (11, Some(11), false, false, true,  false),
            (11, Some(1),  false, false, false, false),  // not abandoned by the storage's
        ];
        for &(mins, stored, stale, unsafe_, abandoned, disagree) in rows {
            let at = stored.map(|m| now() - Duration::minutes(m));
            let v = clock.second_opinion(unknown(mins), &lock(mins), at, now());
            assert_eq!(
                (v.stale, v.unsafe_, v.abandoned, v.clocks_disagree),
                (stale, unsafe_, abandoned, disagree),
                "time {mins} min ago, stored {stored:?}: {}",
                v.reason
            );
        }
    }

    #[test]
    fn a_writer_behind_is_named_and_safe_after_the_storage_s_30_minutes() {
        let clock = StorageClock {
            listed: true,
            ahead_seconds: 0.0,
        };
        let at = now() - Duration::minutes(2);
        let v = clock.second_opinion(unknown(42), &lock(42), Some(at), now());
        assert!(v.reason.contains("about 40m00s behind"), "{}", v.reason);
        assert_eq!(
            v.safe_after,
            Some(at + Duration::minutes(30) + Duration::seconds(1))
        );
        assert_eq!(v.storage_age_seconds, Some(120));
    }

    #[test]
    fn a_proven_death_stands_against_a_fresh_file() {
        let clock = StorageClock {
            listed: true,
            ahead_seconds: 0.0,
        };
        let mut gone = unknown(40);
        gone.holder = Holder::Gone;
        let v = clock.second_opinion(gone.clone(), &lock(40), Some(now()), now());
        assert!(v.stale && !v.unsafe_ && v.clocks_disagree);
        gone.unseen = Some("other containers are not visible".into());
        let v = clock.second_opinion(gone, &lock(40), Some(now()), now());
        assert!(!v.stale && v.unsafe_, "a death not proven: {}", v.reason);
    }

    #[test]
    fn a_storage_clock_ahead_is_measured_by_its_newest_file() {
        let mut inv = Inventory::default();
        for (n, ahead) in [(1u8, -300i64), (2, 90)] {
            inv.locks.push(LockEntry {
                id: format!("{n:02x}").repeat(32),
                lock: lock(1),
                stored_at: Some(now() + Duration::seconds(ahead)),
            });
        }
        let c = StorageClock::of(&inv, now());
        assert!(c.listed);
        assert_eq!(c.ahead_seconds, 90.0);
        // The file the storage stamped 90 s "in the future" was written just now.
        let v = c.second_opinion(
            unknown(1),
            &lock(1),
            Some(now() + Duration::seconds(90)),
            now(),
        );
        assert_eq!(v.storage_age_seconds, Some(0));
        assert!(!StorageClock::of(&Inventory::default(), now()).listed);
    }
}
