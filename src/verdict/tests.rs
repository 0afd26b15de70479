//! The rules as one table: each row a situation of the README's "Verdicts" section, every
//! outcome asserted.

use std::collections::HashMap;

use chrono::TimeZone;

use super::*;

/// A host keyed by PID: what `kill(pid, 0)` answers, when the process started, what it runs.
struct FakeHost {
    procs: HashMap<i32, (PidState, DateTime<Utc>, &'static str)>,
    groups: HashMap<i32, PidState>,
}

impl HostView for FakeHost {
    fn hostname(&self) -> &str {
        "here"
    }
    fn probe(&self, pid: i32) -> PidState {
        self.procs.get(&pid).map_or(PidState::Absent, |p| p.0)
    }
    fn probe_group(&self, group: i32) -> PidState {
        self.groups.get(&group).copied().unwrap_or(PidState::Absent)
    }
    fn started(&self, pid: i32) -> Option<DateTime<Utc>> {
        self.procs.get(&pid).map(|p| p.1)
    }
    fn command(&self, pid: i32) -> Option<String> {
        self.procs.get(&pid).map(|p| p.2.to_string())
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

fn host() -> FakeHost {
    let long_ago = now() - Duration::hours(1);
    let just_now = now() - Duration::seconds(30);
    FakeHost {
        procs: HashMap::from([
            (10, (PidState::Signalable, long_ago, "restic")),
            (11, (PidState::NoPermission, long_ago, "restic")),
            (12, (PidState::Signalable, just_now, "sleep")),
            (13, (PidState::NoPermission, just_now, "sleep")),
            (14, (PidState::Signalable, long_ago, "nginx")),
        ]),
        groups: HashMap::from([(4242, PidState::Signalable)]),
    }
}

fn lock(hostname: &str, mins_ago: i64, pid: i64) -> Lock {
    Lock {
        time: (now() - Duration::minutes(mins_ago)).fixed_offset(),
        exclusive: false,
        hostname: hostname.into(),
        username: "root".into(),
        pid,
        uid: 0,
        gid: 0,
    }
}

const P32: i64 = 1 << 32;

/// (what, host, minutes ago, pid) → (holder, restic removes, stale, unsafe, safe after,
/// words the reason must contain).
type Row = (
    &'static str,
    &'static str,
    i64,
    i64,
    Holder,
    bool,
    bool,
    bool,
    bool,
    &'static str,
);

#[rustfmt::skip]
const ROWS: &[Row] = &[
    ("live restic holder",              "here",   1, 10,       Holder::Alive,   false, false, false, false, "is alive;"),
    ("no such process",                 "here",   1, 99,       Holder::Gone,    true,  true,  false, false, "is gone"),
    ("another user's live holder",      "here",   1, 11,       Holder::Alive,   true,  false, true,  false, "EPERM"),
    ("PID reused, signalable",          "here",   2, 12,       Holder::Reused,  false, true,  true,  true,  "SIGHUP to PID 12"),
    ("PID reused, another user's",      "here",   2, 13,       Holder::Reused,  true,  true,  false, false, "would remove it"),
    ("live PID that is not restic",     "here",   1, 14,       Holder::Alive,   false, false, true,  false, "PID namespace"),
    ("other host, young",               "there", 29, 10,       Holder::Unknown, false, false, false, false, "probably abandoned"),
    ("other host, over 30 minutes",     "there", 31, 10,       Holder::Unknown, true,  true,  false, false, "would remove it"),
    ("other host, exactly 30 minutes",  "there", 30, 10,       Holder::Unknown, false, false, false, false, "would keep it"),
    ("other host, future time",         "there", -3, 10,       Holder::Unknown, false, false, false, false, "clock skew"),
    ("live holder, over 30 minutes",    "here",  45, 10,       Holder::Alive,   true,  false, true,  false, "waiting does not help"),
    ("gone holder, over 30 minutes",    "here",  45, 99,       Holder::Gone,    true,  true,  false, false, "is gone"),
    ("PID 0: Go refuses",               "here",   1, 0,        Holder::Gone,    true,  true,  false, false, "no process can have"),
    ("PID -1: Go refuses",              "here",   1, -1,       Holder::Gone,    true,  true,  false, false, "no process can have"),
    ("negative PID, live group",        "here",   1, -4242,    Holder::Gone,    false, true,  true,  true,  "process group 4242"),
    ("negative PID, no such group",     "here",   1, -4243,    Holder::Gone,    true,  true,  false, false, "would remove it"),
    ("2^32+P, P alive",                 "here",   1, P32 + 14, Holder::Gone,    false, true,  true,  true,  "low 32 bits"),
    ("2^32+P, P absent",                "here",   1, P32 + 99, Holder::Gone,    true,  true,  false, false, "would remove it"),
    ("2^32: restic's own group",        "here",   1, P32,      Holder::Gone,    false, true,  true,  true,  "own process group"),
    ("2^32-1: every process",           "here",   1, P32 - 1,  Holder::Gone,    false, true,  true,  true,  "EVERY process"),
    ("2^32-1, over 30 minutes",         "here",  45, P32 - 1,  Holder::Gone,    true,  true,  false, false, "would remove it"),
    ("2^32-1 on another host",          "there",  1, P32 - 1,  Holder::Unknown, false, false, false, false, "would keep it"),
    ("-2^31: the kernel's ESRCH",       "here",   1, -(1 << 31), Holder::Gone,  true,  true,  false, false, "would remove it"),
];

#[test]
fn every_row_of_the_rules_table() {
    let h = host();
    for &(what, hostname, mins, pid, holder, removes, stale, unsafe_, safe_after, words) in ROWS {
        let l = lock(hostname, mins, pid);
        let v = judge(&l, now(), &h);
        assert_eq!(v.holder, holder, "{what}: {}", v.reason);
        assert_eq!(v.restic_unlock_removes, removes, "{what}: {}", v.reason);
        assert_eq!(v.stale, stale, "{what}: {}", v.reason);
        assert_eq!(v.unsafe_, unsafe_, "{what}: {}", v.reason);
        assert_eq!(v.safe_after.is_some(), safe_after, "{what}: {}", v.reason);
        assert!(
            v.reason.contains(words),
            "{what}: {:?} lacks {words:?}",
            v.reason
        );
        assert_eq!(
            v.unsafe_,
            v.reason.contains("UNSAFE"),
            "{what}: {}",
            v.reason
        );
        assert_eq!(v.abandoned, mins > 10, "{what}");
        assert_eq!(v.clock_skew, mins < 0, "{what}");
    }
}

#[test]
fn safe_after_is_thirty_minutes_past_the_last_refresh() {
    let l = lock("here", 2, 12);
    let v = judge(&l, now(), &host());
    assert_eq!(
        v.safe_after,
        Some(now() - Duration::minutes(2) + Duration::minutes(30) + Duration::seconds(1))
    );
    // Once there, restic removes it without a probe, and that is safe.
    let later = judge(&l, now() + Duration::minutes(29), &host());
    assert!(
        later.restic_unlock_removes && !later.unsafe_,
        "{}",
        later.reason
    );
}

#[test]
fn the_stranger_that_would_get_the_sighup_is_named() {
    let v = judge(&lock("here", 1, P32 + 14), now(), &host());
    assert_eq!(v.holder_command.as_deref(), Some("nginx"));
}
