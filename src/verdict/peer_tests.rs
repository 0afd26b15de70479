//! Another host's lock judged with its host's answer: each row a situation of the README's
//! multi-host section, every outcome asserted.

use chrono::{Duration, TimeZone};

use super::*;
use crate::peer::Answering;
use crate::peer::answer::{HostAnswer, ProcessFacts, State};
use crate::process::PidState;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap()
}

/// This host: "here", with no process of interest.
struct Here;

impl HostView for Here {
    fn hostname(&self) -> &str {
        "here"
    }
    fn probe(&self, _: i32) -> PidState {
        PidState::Absent
    }
    fn probe_group(&self, _: i32) -> PidState {
        PidState::Absent
    }
    fn started(&self, _: i32) -> Option<DateTime<Utc>> {
        None
    }
    fn command(&self, _: i32) -> Option<String> {
        None
    }
}

/// "hostb", whose clock is `offset` ahead: PID 10 restic since long ago, 11 another user's
/// restic, 12 a `sleep` started a minute ago (a reused PID), everything else gone.
fn hostb(offset: Duration) -> PeerView {
    let theirs = now() + offset;
    let p = |pid, state, started: DateTime<Utc>, command: &str| ProcessFacts {
        pid,
        state,
        started: Some(started),
        command: Some(command.into()),
    };
    PeerView {
        answer: HostAnswer {
            hostname: "hostb".into(),
            now: theirs,
            boot_time: None,
            processes: vec![
                p(10, State::Signalable, theirs - Duration::hours(3), "restic"),
                p(
                    11,
                    State::NoPermission,
                    theirs - Duration::hours(3),
                    "restic",
                ),
                p(
                    12,
                    State::Signalable,
                    theirs - Duration::minutes(1),
                    "sleep",
                ),
            ],
            groups: vec![],
            kernel: Default::default(),
        },
        offset,
    }
}

/// A lock of hostb's PID `pid`, written `mins_ago` minutes ago by hostb's clock.
fn lock(pid: i64, mins_ago: i64, offset: Duration) -> Lock {
    Lock {
        time: (now() + offset - Duration::minutes(mins_ago)).fixed_offset(),
        exclusive: true,
        hostname: "hostb".into(),
        username: "root".into(),
        pid,
        uid: 0,
        gid: 0,
    }
}

struct Row {
    name: &'static str,
    pid: i64,
    mins_ago: i64,
    offset_mins: i64,
    holder: Holder,
    stale: bool,
    restic_removes: bool,
    unsafe_: bool,
    abandoned: bool,
    says: &'static [&'static str],
}

const ROWS: [Row; 8] = [
    Row {
        name: "a live job's fresh lock",
        pid: 10,
        mins_ago: 2,
        offset_mins: 0,
        holder: Holder::Alive,
        stale: false,
        restic_removes: false,
        unsafe_: false,
        abandoned: false,
        says: &[
            "PID 10 on \"hostb\" is alive",
            "restic unlock would keep it",
        ],
    },
    Row {
        name: "EPERM there counts as alive",
        pid: 11,
        mins_ago: 2,
        offset_mins: 0,
        holder: Holder::Alive,
        stale: false,
        restic_removes: false,
        unsafe_: false,
        abandoned: false,
        says: &["another user's process"],
    },
    Row {
        name: "killed: gone there, kept by restic here until 30 minutes",
        pid: 99,
        mins_ago: 2,
        offset_mins: 0,
        holder: Holder::Gone,
        stale: true,
        restic_removes: false,
        unsafe_: false,
        abandoned: false,
        says: &[
            "restic unlock on \"hostb\" removes it now: its PID is gone there",
            "restic unlock here removes it by age after",
        ],
    },
    Row {
        name: "a reused PID: restic there would SIGHUP a stranger",
        pid: 12,
        mins_ago: 5,
        offset_mins: 0,
        holder: Holder::Reused,
        stale: true,
        restic_removes: false,
        unsafe_: false,
        abandoned: false,
        says: &["started after the lock", "would keep it and send SIGHUP"],
    },
    Row {
        name: "a suspended job's old lock: restic here removes a live holder's lock",
        pid: 10,
        mins_ago: 45,
        offset_mins: 0,
        holder: Holder::Alive,
        stale: false,
        restic_removes: true,
        unsafe_: true,
        abandoned: true,
        says: &["UNSAFE", "may be suspended"],
    },
    Row {
        name: "a clock 40 minutes behind makes a fresh lock look old here",
        pid: 10,
        mins_ago: 1,
        offset_mins: -40,
        holder: Holder::Alive,
        stale: false,
        restic_removes: true,
        unsafe_: true,
        abandoned: false,
        says: &[
            "UNSAFE",
            "clock is 40m00s behind this host's",
            "older than they are",
        ],
    },
    Row {
        name: "a clock 40 minutes ahead: a dead job's lock is kept longer here",
        pid: 99,
        mins_ago: 35,
        offset_mins: 40,
        holder: Holder::Gone,
        stale: true,
        restic_removes: false,
        unsafe_: false,
        abandoned: true,
        says: &["40m00s ahead", "keeps a dead job's lock longer"],
    },
    Row {
        name: "an old lock of a gone holder: restic here removes it",
        pid: 99,
        mins_ago: 50,
        offset_mins: 0,
        holder: Holder::Gone,
        stale: true,
        restic_removes: true,
        unsafe_: false,
        abandoned: true,
        says: &["restic unlock here removes it"],
    },
];

#[test]
fn another_hosts_lock_is_judged_by_its_host() {
    for r in ROWS {
        let off = Duration::minutes(r.offset_mins);
        let view = hostb(off);
        let v = judge_with(
            &lock(r.pid, r.mins_ago, off),
            now(),
            &Here,
            &Answering::View(&view),
        );
        let what = (
            v.holder,
            v.stale,
            v.restic_unlock_removes,
            v.unsafe_,
            v.abandoned,
        );
        let want = (r.holder, r.stale, r.restic_removes, r.unsafe_, r.abandoned);
        assert_eq!(what, want, "{}: {}", r.name, v.reason);
        assert_eq!(v.judged_on.as_deref(), Some("hostb"), "{}", r.name);
        for s in r.says {
            assert!(
                v.reason.contains(s),
                "{}: {:?} lacks {s:?}",
                r.name,
                v.reason
            );
        }
        // A gone holder's lock kept here is safe to remove from restic's 30 minutes on.
        assert_eq!(
            v.safe_after.is_some(),
            v.stale && !v.restic_unlock_removes,
            "{}",
            r.name
        );
    }
}

#[test]
fn restics_rule_here_stays_restics_whatever_the_peer_says() {
    for (pid, mins) in [(10, 2), (10, 45), (99, 2), (99, 45), (12, 5)] {
        let view = hostb(Duration::zero());
        let l = lock(pid, mins, Duration::zero());
        let alone = judge(&l, now(), &Here);
        let asked = judge_with(&l, now(), &Here, &Answering::View(&view));
        assert_eq!(
            alone.restic_unlock_removes, asked.restic_unlock_removes,
            "{pid} {mins}"
        );
        assert_eq!(alone.age_seconds, asked.age_seconds);
    }
}

#[test]
fn a_peer_that_cannot_tell_leaves_the_lock_unknown_with_why() {
    let l = lock(10, 2, Duration::zero());
    let v = judge_with(
        &l,
        now(),
        &Here,
        &Answering::Failed("no answer within 2 s (--timeout)".into()),
    );
    assert_eq!(v.holder, Holder::Unknown);
    assert_eq!(v.judged_on, None);
    assert_eq!(
        v.peer_error.as_deref(),
        Some("no answer within 2 s (--timeout)")
    );
    assert!(
        v.reason.contains("its host could not tell: no answer"),
        "{}",
        v.reason
    );
    let none = judge_with(&l, now(), &Here, &Answering::Nobody);
    assert_eq!(
        (none.holder, none.judged_on, none.peer_error),
        (Holder::Unknown, None, None)
    );
}

#[test]
fn this_hosts_own_locks_are_judged_here() {
    let mut l = lock(99, 2, Duration::zero());
    l.hostname = "here".into();
    let view = hostb(Duration::zero());
    let v = judge_with(&l, now(), &Here, &Answering::View(&view));
    assert_eq!(v.holder, Holder::Gone);
    assert_eq!(v.judged_on.as_deref(), Some("here"));
}

#[test]
fn small_clock_offsets_go_unsaid() {
    assert_eq!(offset_note("b", Duration::seconds(59)), None);
    assert!(
        offset_note("b", Duration::seconds(-61))
            .unwrap()
            .contains("behind")
    );
}
